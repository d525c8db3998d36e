//! The Kafka sink: every event produced to `kafka.topic`, none lost through
//! broker outages, slow brokers or restarts.
//!
//! The request path only queues the event (a bounded channel, as the file
//! sink does); the producing thread encodes events in batches and hands them
//! to librdkafka's queue by topic handle, and serves librdkafka's delivery
//! reports itself between batches (a `BaseProducer` with a delivery callback,
//! no future per record: rdkafka's maintainers and users report
//! `FutureProducer` markedly slower, and its `send` leaking where
//! `send_result` did not). Keeping librdkafka's locks, allocations and
//! wake-ups off the serving threads is measured in `loadtest/RESULTS.md`.
//! Whatever Kafka cannot
//! take goes to the disk [`spool::Spool`]: a full producer queue, a failed or timed
//! out delivery, and, while Kafka is known to be unreachable, every new
//! event. A background thread probes the broker while degraded and replays
//! the spool, paced, once it is back. Disk writes happen on the spool's own
//! thread; the request path never waits for the disk or the network.
//!
//! Accounting: `accepted = delivered + dropped + pending`, where pending is
//! the intake queue, the producer's queue, the spool's channel and the spool
//! on disk.
//!
//! # Layout
//!
//! - this file: the sink, its start and shutdown, and the state its threads share;
//! - [`producer`]: librdkafka's settings and callbacks, the feeding thread,
//!   the record format;
//! - [`replay`]: probing a degraded broker and replaying the spool;
//! - [`spool`]: the on-disk format; [`spool_writer`]: the thread that writes it.

pub mod book;
pub mod frame;
pub mod producer;
pub mod replay;
pub mod spool;
pub mod spool_writer;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metrics::gauge;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer, PurgeConfig};

use super::queue::{join_by, send_by, Intake};
use super::{Health, Sink};
use crate::config::KafkaConfig;
use crate::event::Event;
use crate::metrics::{dropped, DropReason, SPOOL_BYTES, SPOOL_EVENTS, SPOOL_MAX_BYTES};
use book::ReplayBook;
use producer::{Callbacks, Feed, Feeder, SharedProducer};
use replay::Replayer;
use spool::Spool;
use spool_writer::{SpoolMsg, SpoolStatus};

/// How long shutdown waits for purged records to be handed back.
const PURGE_WAIT: Duration = Duration::from_secs(5);

/// What is wrong with Kafka, in the words an operator needs (readiness
/// shows them; librdkafka's own text goes to the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Trouble {
    #[error("no Kafka broker is reachable (check kafka.brokers and the network)")]
    Unreachable,
    #[error("Kafka is not acknowledging events in time")]
    NotAcknowledging,
    #[error("Kafka refused new events")]
    Refusing,
    #[error("the Kafka producer hit a fatal error and is being replaced")]
    ProducerFailed,
    #[error(
        "the broker no longer accepts this producer (fenced or state lost); it is being replaced"
    )]
    ProducerFenced,
    #[error(
        "Kafka is reachable but acknowledges nothing from this producer (a broker lost its state?); it is being replaced"
    )]
    ProducerStalled,
    #[error("the topic (kafka.topic) does not exist; create it, or set kafka.create_topic = true")]
    TopicMissing,
}

/// Whether Kafka is known to be reachable. Set degraded by whoever sees it
/// fail (callbacks, feeder, replayer); set up only by the replayer's probe.
pub struct Connectivity {
    /// Kafka is not known to be reachable: new events go straight to the spool.
    degraded: AtomicBool,
    /// Why Kafka is degraded, for readiness and logs.
    why: Mutex<Option<String>>,
    /// The broker rejected the producer's identity: it must be replaced.
    pub producer_broken: AtomicBool,
    /// Brokers librdkafka had up at its last statistics (every second).
    pub brokers_up: AtomicUsize,
    /// Deliveries keep timing out while brokers are up: the producer is
    /// wedged (a broker restarted without its state) and must be replaced.
    pub producer_stalled: AtomicBool,
}

impl Connectivity {
    fn connecting() -> Connectivity {
        Connectivity {
            degraded: AtomicBool::new(true),
            why: Mutex::new(Some("connecting to Kafka".into())),
            producer_broken: AtomicBool::new(false),
            brokers_up: AtomicUsize::new(0),
            producer_stalled: AtomicBool::new(false),
        }
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Marks Kafka unreachable for `trouble`; `detail` (librdkafka's own
    /// words) goes to the log, readiness says `trouble` in ours.
    pub fn set_degraded(&self, trouble: Trouble, detail: impl std::fmt::Display) {
        let why = trouble.to_string();
        let mut w = self.why.lock().unwrap_or_else(|e| e.into_inner());
        // Logged when Kafka goes away, not at every retry; readiness always
        // has the latest reason.
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(reason = %why, %detail, "kafka degraded: events go to the disk spool");
        } else if w.as_deref() != Some(why.as_str()) {
            tracing::debug!(reason = %why, %detail, "kafka still degraded");
        }
        *w = Some(why);
    }

    fn set_up(&self) {
        let mut w = self.why.lock().unwrap();
        self.degraded.store(false, Ordering::Relaxed);
        *w = None;
    }

    fn why(&self) -> String {
        self.why.lock().unwrap().clone().unwrap_or_default()
    }
}

/// What the sink's threads share, grouped by who writes it.
pub struct SinkState {
    pub connectivity: Connectivity,
    /// Written by the spool's thread (and the queue count by its feeders).
    pub spool: SpoolStatus,
    /// Written by the replayer and the delivery callback.
    pub replay: ReplayBook,
    /// Tells the replay thread to stop; written by shutdown.
    pub stop: AtomicBool,
    /// Live records handed to librdkafka whose delivery report has not
    /// been served: up when the producing thread sends one, down in the
    /// delivery callback. librdkafka's own out-queue length also counts
    /// waiting reports of other kinds (statistics, errors), which the
    /// producing thread serves between batches.
    pub live_in_flight: AtomicUsize,
}

/// Creates and removes a file in `dir`.
fn probe_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".trackedge-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// The Kafka sink.
pub struct KafkaSink {
    intake: Intake<Feed>,
    producer: SharedProducer,
    shared: Arc<SinkState>,
    spool_tx: mpsc::SyncSender<SpoolMsg>,
    /// The producing thread, then the spool and replay threads.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl KafkaSink {
    /// Opens the spool (recovering what a previous run left), creates the
    /// producer and starts the spool and replay threads. Does not need the
    /// broker to be up.
    /// `queue_capacity` bounds the events waiting for the producing thread.
    pub fn start(
        cfg: &KafkaConfig,
        source: &str,
        queue_capacity: usize,
    ) -> anyhow::Result<KafkaSink> {
        let (spool, found) =
            Spool::open(&cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_segment_bytes)
                .map_err(|e| anyhow::anyhow!("kafka.spool_dir {}: {e}", cfg.spool_dir.display()))?;
        // Found now, not at the first outage when every event would be
        // dropped: the spool directory must take a new file.
        probe_writable(&cfg.spool_dir).map_err(|e| {
            anyhow::anyhow!(
                "kafka.spool_dir {}: cannot create files there ({e}); the spool would lose every event while Kafka is away",
                cfg.spool_dir.display()
            )
        })?;
        if found.corrupt > 0 {
            tracing::warn!(
                corrupt = found.corrupt,
                "spool recovery skipped damaged records"
            );
            dropped(DropReason::SpoolCorrupt, found.corrupt as u64);
        }
        if found.set_aside > 0 {
            tracing::error!(
                segments = found.set_aside,
                dir = %cfg.spool_dir.display(),
                "unreadable spool segments set aside as .bad files"
            );
            metrics::counter!(crate::metrics::SPOOL_SET_ASIDE).increment(found.set_aside as u64);
        }
        let (events, bytes) = spool.totals();
        if events > 0 {
            tracing::info!(
                events,
                bytes,
                "spool holds events from an earlier run; they will be replayed"
            );
        }
        gauge!(SPOOL_EVENTS).set(events as f64);
        gauge!(SPOOL_BYTES).set(bytes as f64);
        gauge!(SPOOL_MAX_BYTES).set(cfg.spool_max_bytes as f64);
        let shared = Arc::new(SinkState {
            connectivity: Connectivity::connecting(),
            spool: SpoolStatus::new(events),
            replay: ReplayBook::default(),
            stop: AtomicBool::new(false),
            live_in_flight: AtomicUsize::new(0),
        });
        let (spool_tx, spool_rx) = mpsc::sync_channel(cfg.spool_queue_capacity);
        let cc = client_config(cfg);
        let producer: BaseProducer<Callbacks> = cc
            .create_with_context(Callbacks::new(shared.clone(), spool_tx.clone()))
            .map_err(|e| anyhow::anyhow!("kafka producer settings: {e}"))?;
        let producer: SharedProducer = Arc::new(ArcSwap::from_pointee(producer));
        let spool = Arc::new(Mutex::new(spool));
        let (intake, feed_rx) = Intake::new(queue_capacity);
        let feeder = Feeder {
            producer: producer.clone(),
            topic: cfg.topic.clone(),
            source: source.trim_end_matches('/').to_owned(),
            shared: shared.clone(),
            spool_tx: spool_tx.clone(),
            pending: intake.pending_counter(),
        };
        let mut threads = vec![std::thread::Builder::new()
            .name("trackedge-kafka".into())
            .spawn(move || feeder.run(feed_rx))?];
        {
            let (spool, shared) = (spool.clone(), shared.clone());
            let fsync = cfg.spool_fsync;
            threads.push(
                std::thread::Builder::new()
                    .name("trackedge-spool".into())
                    .spawn(move || spool_writer::run(&spool, spool_rx, &shared.spool, fsync))?,
            );
        }
        let replayer = Replayer {
            producer: producer.clone(),
            topic: cfg.topic.clone(),
            spool,
            shared: shared.clone(),
            spool_tx: spool_tx.clone(),
            create_topic: cfg
                .create_topic
                .then_some((cfg.partitions, cfg.replication_factor)),
            settle_timeout: cfg.message_timeout * 2 + Duration::from_secs(10),
            config: cc,
        };
        threads.push(
            std::thread::Builder::new()
                .name("trackedge-replay".into())
                .spawn(move || replayer.run())?,
        );
        Ok(KafkaSink {
            intake,
            producer,
            shared,
            spool_tx,
            threads: Mutex::new(threads),
        })
    }
}

/// librdkafka's settings: ours, then the configured passthrough.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in producer::producer_defaults(cfg, &crate::node_name()) {
        cc.set(k, v);
    }
    for (k, v) in &cfg.librdkafka {
        cc.set(k, v);
    }
    cc
}

impl Sink for KafkaSink {
    fn submit(&self, event: Event) {
        self.intake.offer(Feed::Event(Box::new(event)));
    }

    fn health(&self) -> Health {
        if !self.shared.connectivity.is_degraded() {
            return Health::Ok;
        }
        let why = self.shared.connectivity.why();
        match self.shared.spool.trouble() {
            None => Health::Degraded(format!("kafka: {why}; events are spooled to disk")),
            Some(s) => Health::Down(format!(
                "kafka: {why}; and the spool cannot take events: {s}"
            )),
        }
    }

    fn pending(&self) -> usize {
        // A replayed record in flight is still in its spool segment:
        // counted there, not again as librdkafka's.
        self.intake.pending()
            + self.shared.live_in_flight.load(Ordering::Relaxed)
            + self.shared.spool.queued.load(Ordering::Relaxed)
            + self.shared.spool.events.load(Ordering::Relaxed)
    }

    /// Delivers what it can within `timeout` and moves the rest to the
    /// spool, every step bounded by one deadline: the orchestrator's
    /// SIGKILL after its grace period would lose what is still in memory.
    fn shutdown(&self, timeout: Duration) {
        let mut threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        if threads.is_empty() {
            return;
        }
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        // The producing thread first: every queued event into the producer
        // or the spool.
        let feeder = threads.remove(0);
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.intake.close(Feed::Close(ack_tx), deadline) && ack_rx.recv_timeout(left()).is_ok() {
            join_by(feeder, deadline);
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        // Then the replay thread: it must not send or swap producers while
        // the producer is drained.
        if let Some(replay) = threads.pop() {
            join_by(replay, deadline);
        }
        let producer = self.producer.load_full();
        // Deliver what librdkafka holds while there is time, keeping a
        // share of it to take the rest back...
        let purge_for = PURGE_WAIT.min(left() / 3);
        let flush_for = left()
            .saturating_sub(purge_for)
            .max(Duration::from_millis(100));
        if producer.flush(flush_for).is_err() {
            tracing::warn!(
                in_flight = producer.in_flight_count(),
                "kafka flush timed out; moving the rest to the spool"
            );
        }
        // ...then take back the rest: purged records come back through the
        // delivery callback, which spools them. Dropping a producer would
        // discard them instead.
        producer.purge(PurgeConfig::default().queue().inflight());
        while producer.in_flight_count() > 0 && Instant::now() < deadline {
            producer.poll(Duration::from_millis(10));
        }
        // The spool's thread gets a second past the deadline at most for
        // its last writes.
        let end = deadline + Duration::from_secs(1);
        // A replay the stop interrupted: every report is in now, so what it
        // delivered is known. Written down (or its segment removed), so the
        // next start neither sends nor counts those records again.
        if let Some(parked) = self.shared.replay.take_parked() {
            let p = parked.progress;
            dropped(DropReason::RetriesExhausted, parked.gave_up);
            let (done, settled) = mpsc::sync_channel(1);
            let msg = if p.finished() {
                dropped(DropReason::SpoolCorrupt, parked.damaged);
                SpoolMsg::Remove { seq: p.seq, done }
            } else {
                SpoolMsg::Settled {
                    seq: p.seq,
                    records: p.settled.len(),
                    settled: p.accounted_indices(),
                    done,
                }
            };
            if send_by(&self.spool_tx, msg, end) {
                let _ = settled.recv_timeout(end.saturating_duration_since(Instant::now()));
            }
        }
        // Then it writes what it was given, syncs and stops.
        let (tx, rx) = mpsc::sync_channel(1);
        if send_by(&self.spool_tx, SpoolMsg::Close(tx), end) {
            let _ = rx.recv_timeout(end.saturating_duration_since(Instant::now()));
        }
        for t in threads {
            join_by(t, end);
        }
    }
}
