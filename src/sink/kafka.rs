//! The Kafka sink: every event produced to `kafka.topic`, none lost through
//! broker outages, slow brokers or restarts.
//!
//! The request path only queues the event (a bounded channel, as the file
//! sink does); the producing thread encodes events in batches and hands them
//! to librdkafka's queue through a `ThreadedProducer` (a delivery callback,
//! no future per record: rdkafka's maintainers and users report
//! `FutureProducer` markedly slower, and its `send` leaking where
//! `send_result` did not). Keeping librdkafka's locks, allocations and
//! wake-ups off the serving threads took 31.9k to 37.7k requests/s in the
//! load test (see the commit that made it). Whatever Kafka cannot
//! take goes to the disk [`Spool`]: a full producer queue, a failed or timed
//! out delivery, and, while Kafka is known to be unreachable, every new
//! event. A background thread probes the broker while degraded and replays
//! the spool, paced, once it is back. Disk writes happen on the spool's own
//! thread; the request path never waits for the disk or the network.
//!
//! Accounting: `accepted = delivered + dropped + pending`, where pending is
//! the intake queue, the producer's queue, the spool's channel and the spool
//! on disk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use arc_swap::ArcSwap;
use metrics::{counter, gauge, Counter};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;

use super::spool::{Spool, SpoolRecord};
use super::{in_batches, Health, Intake, Sink};
use crate::config::KafkaConfig;
use crate::event::Event;
use crate::metrics::{
    EVENTS_DELIVERED, EVENTS_DROPPED, KAFKA_BROKERS_UP, KAFKA_QUEUE, KAFKA_TX_ERRORS, SPOOL_BYTES,
    SPOOL_EVENTS,
};

/// Records the spool thread takes per batch.
const SPOOL_BATCH: usize = 1024;
/// Events the producing thread takes from the intake per batch.
const FEED_BATCH: usize = 1024;
/// Replay keeps the producer's queue below this, so live traffic always
/// finds room.
const REPLAY_MAX_IN_FLIGHT: i32 = 10_000;
/// How often an unreachable broker is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a metadata probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for purged records to be handed back.
const PURGE_WAIT: Duration = Duration::from_secs(5);

/// The producer settings, each with its reason; `kafka.librdkafka` entries
/// override them.
fn producer_defaults(cfg: &KafkaConfig) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", cfg.brokers.clone()),
        ("client.id", "trackedge".into()),
        // An event is only delivered once every in-sync replica has it.
        ("acks", "all".into()),
        // Retries never duplicate or reorder a recipient's events.
        ("enable.idempotence", "true".into()),
        // Cheap on CPU, and event JSON compresses well.
        ("compression.codec", "lz4".into()),
        // Small batches of 20 ms cost little latency nobody waits for.
        ("linger.ms", "20".into()),
        // The producer's queue is bounded (16 MiB: a second of heavy
        // traffic; the process stays small): beyond it events go to the spool.
        ("queue.buffering.max.messages", "50000".into()),
        ("queue.buffering.max.kbytes", "16384".into()),
        // A record not delivered within 10 s goes to the spool, so an outage
        // moves events to disk quickly instead of holding them in memory.
        ("message.timeout.ms", cfg.message_timeout_ms.to_string()),
        // Statistics feed the Prometheus gauges every second.
        ("statistics.interval.ms", "1000".into()),
        ("socket.keepalive.enable", "true".into()),
        ("reconnect.backoff.max.ms", "1000".into()),
    ]
}

/// State shared by the request path, the delivery callback and the threads.
struct Shared {
    /// Kafka is not known to be reachable: new events go straight to the spool.
    degraded: AtomicBool,
    /// Why Kafka is degraded, for readiness and logs.
    why: Mutex<Option<String>>,
    /// Why the spool cannot take events (full, I/O error), if it cannot.
    spool_failing: Mutex<Option<String>>,
    /// Records in the spool channel.
    spool_queue: AtomicUsize,
    /// Events on disk, mirrored from the spool for `pending()`.
    spool_events: AtomicUsize,
    /// Replay progress per segment being replayed.
    replay: Mutex<HashMap<u64, Attempt>>,
    /// Tells the replay thread to stop.
    stop: AtomicBool,
    /// The broker rejected the producer's identity: it must be replaced.
    producer_broken: AtomicBool,
}

impl Shared {
    fn set_degraded(&self, why: String) {
        let mut w = self.why.lock().unwrap();
        // Logged when Kafka goes away, not at every retry; readiness always
        // has the latest reason.
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(reason = %why, "kafka degraded: events go to the disk spool");
        } else if w.as_deref() != Some(why.as_str()) {
            tracing::debug!(reason = %why, "kafka still degraded");
        }
        *w = Some(why);
    }
}

/// One replay of one spool segment.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// Tells this attempt's delivery reports from an earlier attempt's.
    generation: u16,
    /// Records sent and not yet reported, plus records not sent at all.
    left: u64,
    /// Some record was not delivered: the segment stays and is replayed again.
    failed: bool,
    /// Set once `left` reaches 0: whether every record was delivered.
    done: Option<bool>,
}

impl Attempt {
    fn settle(&mut self, n: u64, ok: bool) -> Option<bool> {
        self.failed |= !ok;
        self.left = self.left.saturating_sub(n);
        if self.left == 0 && self.done.is_none() {
            self.done = Some(!self.failed);
            return self.done;
        }
        None
    }
}

/// Boxed records: the channel writes every slot when it is made, and is
/// only busy while Kafka is away.
enum SpoolMsg {
    Record(Box<SpoolRecord>),
    /// Delete a replayed segment, after syncing what came before.
    Remove(u64),
    Close(SyncSender<()>),
}

/// librdkafka's callbacks.
struct Ctx {
    shared: Arc<Shared>,
    spool_tx: SyncSender<SpoolMsg>,
    /// `trackedge_events_delivered_total`, kept: it is counted per record.
    delivered: OnceLock<Counter>,
}

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        gauge!(KAFKA_QUEUE).set(s.msg_cnt as f64);
        let up = s.brokers.values().filter(|b| b.state == "UP").count();
        gauge!(KAFKA_BROKERS_UP).set(up as f64);
        let txerrs: u64 = s.brokers.values().map(|b| b.txerrs).sum();
        gauge!(KAFKA_TX_ERRORS).set(txerrs as f64);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared
                .set_degraded(format!("all brokers down: {reason}"));
        } else {
            tracing::debug!(%error, reason, "librdkafka error");
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // librdkafka repeats connection errors at every retry; the states
        // that matter reach the error callback and readiness instead.
    }
}

/// Errors after which an idempotent producer's id or epoch is no good: the
/// broker has fenced it or lost its state. Only a new producer recovers.
fn breaks_producer(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// Errors that retrying will never fix: the record is dropped and counted.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl ProducerContext for Ctx {
    /// 0 for live records; `seq << 16 | generation` for replayed ones.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        // A replayed record that fails is not spooled again: it is still in
        // its segment, which stays until one replay delivers all of it.
        let replayed = opaque != 0;
        let ok = match result {
            Ok(_) => {
                self.delivered
                    .get_or_init(|| counter!(EVENTS_DELIVERED))
                    .increment(1);
                true
            }
            Err((e, _)) if is_permanent(e) => {
                counter!(EVENTS_DROPPED, "reason" => "rejected").increment(1);
                tracing::error!(error = %e, "kafka rejected an event for good; dropped");
                true
            }
            Err((e, msg)) => {
                if !matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                ) {
                    self.shared.set_degraded(format!("delivery failed: {e}"));
                }
                if breaks_producer(e) {
                    self.shared.producer_broken.store(true, Ordering::Relaxed);
                }
                if !replayed {
                    self.spool_message(msg);
                }
                false
            }
        };
        if replayed {
            let (seq, generation) = ((opaque >> 16) as u64, (opaque & 0xffff) as u16);
            let mut replay = self.shared.replay.lock().unwrap();
            if let Some(a) = replay.get_mut(&seq).filter(|a| a.generation == generation) {
                if a.settle(1, ok) == Some(true) {
                    let _ = self.spool_tx.send(SpoolMsg::Remove(seq));
                }
            }
        }
    }
}

impl Ctx {
    fn new(shared: Arc<Shared>, spool_tx: SyncSender<SpoolMsg>) -> Ctx {
        Ctx {
            shared,
            spool_tx,
            delivered: OnceLock::new(),
        }
    }

    /// Hands an undelivered live record to the spool thread.
    fn spool_message(&self, msg: &rdkafka::message::BorrowedMessage<'_>) {
        let rec = SpoolRecord {
            ts_ms: msg.timestamp().to_millis().unwrap_or(0),
            key: msg.key().unwrap_or_default().to_vec(),
            headers: msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            payload: msg.payload().unwrap_or_default().to_vec(),
        };
        self.shared.spool_queue.fetch_add(1, Ordering::Relaxed);
        // Blocking is fine here: this is librdkafka's callback thread,
        // never a request.
        if self.spool_tx.send(SpoolMsg::Record(Box::new(rec))).is_err() {
            self.shared.spool_queue.fetch_sub(1, Ordering::Relaxed);
            counter!(EVENTS_DROPPED, "reason" => "shutdown").increment(1);
        }
    }
}

/// The producer, replaceable after a fatal error without a lock on the
/// request path.
type SharedProducer = Arc<ArcSwap<ThreadedProducer<Ctx>>>;

/// What the request path queues for the producing thread. Boxed, as in the
/// file sink's queue: a slot is 16 bytes, not 528.
enum Feed {
    Event(Box<Event>),
    /// Everything before this is produced or spooled: acknowledge and stop.
    Close(SyncSender<()>),
}

/// The Kafka sink.
pub struct KafkaSink {
    intake: Intake<Feed>,
    producer: SharedProducer,
    shared: Arc<Shared>,
    spool_tx: SyncSender<SpoolMsg>,
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
        let (spool, corrupt) =
            Spool::open(&cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_segment_bytes)
                .map_err(|e| anyhow::anyhow!("kafka.spool_dir {}: {e}", cfg.spool_dir.display()))?;
        if corrupt > 0 {
            tracing::warn!(corrupt, "spool recovery skipped damaged records");
            counter!(EVENTS_DROPPED, "reason" => "spool_corrupt").increment(corrupt as u64);
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
        let shared = Arc::new(Shared {
            degraded: AtomicBool::new(true),
            why: Mutex::new(Some("connecting to kafka".into())),
            spool_failing: Mutex::new(None),
            spool_queue: AtomicUsize::new(0),
            spool_events: AtomicUsize::new(events as usize),
            replay: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            producer_broken: AtomicBool::new(false),
        });
        let (spool_tx, spool_rx) = mpsc::sync_channel(cfg.spool_queue_capacity);
        let mut cc = ClientConfig::new();
        for (k, v) in producer_defaults(cfg) {
            cc.set(k, v);
        }
        for (k, v) in &cfg.librdkafka {
            cc.set(k, v);
        }
        let producer: ThreadedProducer<Ctx> = cc
            .create_with_context(Ctx::new(shared.clone(), spool_tx.clone()))
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
            let fsync = Duration::from_millis(cfg.spool_fsync_ms);
            threads.push(
                std::thread::Builder::new()
                    .name("trackedge-spool".into())
                    .spawn(move || spool_loop(&spool, spool_rx, &shared, fsync))?,
            );
        }
        {
            let replayer = Replayer {
                producer: producer.clone(),
                topic: cfg.topic.clone(),
                spool,
                shared: shared.clone(),
                spool_tx: spool_tx.clone(),
                create_topic: cfg
                    .create_topic
                    .then_some((cfg.partitions, cfg.replication_factor)),
                settle_timeout: Duration::from_millis(cfg.message_timeout_ms) * 2
                    + Duration::from_secs(10),
                config: cc,
            };
            threads.push(
                std::thread::Builder::new()
                    .name("trackedge-replay".into())
                    .spawn(move || replayer.run())?,
            );
        }
        Ok(KafkaSink {
            intake,
            producer,
            shared,
            spool_tx,
            threads: Mutex::new(threads),
        })
    }
}

/// The producing thread: takes queued events in batches, produces them, or
/// spools what Kafka cannot take.
struct Feeder {
    producer: SharedProducer,
    topic: String,
    /// CloudEvents `ce_source`.
    source: String,
    shared: Arc<Shared>,
    spool_tx: SyncSender<SpoolMsg>,
    /// The intake's count of events not yet produced or spooled.
    pending: Arc<AtomicUsize>,
}

impl Feeder {
    fn run(self, rx: Receiver<Feed>) {
        in_batches(&rx, FEED_BATCH, |batch| {
            let mut close = None;
            for msg in batch.drain(..) {
                match msg {
                    Feed::Event(event) => {
                        self.produce(&event);
                        self.pending.fetch_sub(1, Ordering::Relaxed);
                    }
                    Feed::Close(ack) => close = Some(ack),
                }
            }
            match close {
                Some(ack) => {
                    let _ = ack.send(());
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        });
    }

    fn produce(&self, event: &Event) {
        let payload = event.to_json();
        let key = record_key(event);
        let headers = cloudevent_headers(event, &self.source);
        if !self.shared.degraded.load(Ordering::Relaxed) {
            let h = owned_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
            let rec = BaseRecord::with_opaque_to(&self.topic, 0)
                .key(key.as_bytes())
                .payload(&payload[..])
                .timestamp(event.ts_ms)
                .headers(h);
            match self.producer.load().send(rec) {
                Ok(()) => return,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {}
                Err((e, _)) => self.shared.set_degraded(format!("produce failed: {e}")),
            }
        }
        self.to_spool(SpoolRecord {
            ts_ms: event.ts_ms,
            key: key.into_owned().into_bytes(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_owned().into_bytes()))
                .collect(),
            payload,
        });
    }

    fn to_spool(&self, rec: SpoolRecord) {
        self.shared.spool_queue.fetch_add(1, Ordering::Relaxed);
        match self.spool_tx.try_send(SpoolMsg::Record(Box::new(rec))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.spool_queue.fetch_sub(1, Ordering::Relaxed);
                counter!(EVENTS_DROPPED, "reason" => "spool_queue_full").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.spool_queue.fetch_sub(1, Ordering::Relaxed);
                counter!(EVENTS_DROPPED, "reason" => "shutdown").increment(1);
            }
        }
    }
}

/// librdkafka headers from name/value pairs.
fn owned_headers<'a>(pairs: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(pairs.len());
    for (key, value) in pairs {
        h = h.insert(Header {
            key,
            value: Some(value),
        });
    }
    h
}

/// The CloudEvents binary-mode headers of an event. Only the id and the
/// time are formatted per event; the rest are borrowed.
pub fn cloudevent_headers<'a>(event: &Event, source: &'a str) -> [(&'static str, Cow<'a, str>); 6] {
    let time = UNIX_EPOCH + Duration::from_millis(event.ts_ms.max(0) as u64);
    [
        ("ce_specversion", Cow::Borrowed("1.0")),
        ("ce_id", Cow::Owned(event.event_id.to_string())),
        ("ce_type", Cow::Borrowed(event.kind.cloudevent_type())),
        ("ce_source", Cow::Borrowed(source)),
        (
            "ce_time",
            Cow::Owned(humantime::format_rfc3339_millis(time).to_string()),
        ),
        ("content-type", Cow::Borrowed("application/json")),
    ]
}

/// The record key: the recipient, so each recipient's events stay in
/// order on one partition; else the event id.
pub fn record_key(event: &Event) -> Cow<'_, str> {
    match &event.recipient {
        Some(r) => Cow::Borrowed(r),
        None => Cow::Owned(event.event_id.to_string()),
    }
}

impl Sink for KafkaSink {
    fn submit(&self, event: Event) {
        self.intake.offer(Feed::Event(Box::new(event)));
    }

    fn health(&self) -> Health {
        let degraded = self.shared.degraded.load(Ordering::Relaxed);
        let spool = self.shared.spool_failing.lock().unwrap().clone();
        let why = self.shared.why.lock().unwrap().clone().unwrap_or_default();
        match (degraded, spool) {
            (false, _) => Health::Ok,
            (true, None) => Health::Degraded(format!("kafka: {why}; events are spooled to disk")),
            (true, Some(s)) => Health::Down(format!(
                "kafka: {why}; and the spool cannot take events: {s}"
            )),
        }
    }

    fn pending(&self) -> usize {
        self.intake.pending()
            + self.producer.load().in_flight_count().max(0) as usize
            + self.shared.spool_queue.load(Ordering::Relaxed)
            + self.shared.spool_events.load(Ordering::Relaxed)
    }

    fn shutdown(&self, timeout: Duration) {
        let mut threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        if threads.is_empty() {
            return;
        }
        let deadline = Instant::now() + timeout;
        // The producing thread first: every queued event into the producer
        // or the spool.
        let feeder = threads.remove(0);
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.intake.close(Feed::Close(ack_tx)) && ack_rx.recv_timeout(timeout).is_ok() {
            let _ = feeder.join();
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        // Then the replay thread: it must not send or swap producers while
        // the producer is drained.
        if let Some(replay) = threads.pop() {
            let _ = replay.join();
        }
        let producer = self.producer.load_full();
        // Deliver what librdkafka holds while there is time...
        let flush_for = timeout
            .saturating_sub(PURGE_WAIT)
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
        let (tx, rx) = mpsc::sync_channel(1);
        if self.spool_tx.send(SpoolMsg::Close(tx)).is_ok() {
            let _ = rx.recv_timeout(
                deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5),
            );
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The spool thread: appends records in batches, syncs at the configured
/// interval, deletes replayed segments.
fn spool_loop(
    spool: &Mutex<Spool>,
    rx: Receiver<SpoolMsg>,
    shared: &Shared,
    fsync_every: Duration,
) {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut last_sync = Instant::now();
    loop {
        let first = match rx.recv_timeout(fsync_every) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                sync(spool, shared);
                last_sync = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut next = Some(first);
        let mut taken = 0;
        let mut count = 0u64;
        let mut dropped = 0u64;
        let mut close = None;
        while let Some(msg) = next.take() {
            taken += 1;
            match msg {
                SpoolMsg::Record(rec) => {
                    shared.spool_queue.fetch_sub(1, Ordering::Relaxed);
                    let room = spool
                        .lock()
                        .unwrap()
                        .has_room((buf.len() + rec.encoded_len()) as u64);
                    if room {
                        rec.encode_into(&mut buf);
                        count += 1;
                    } else {
                        // A full spool drops the newest.
                        dropped += 1;
                    }
                }
                SpoolMsg::Remove(seq) => {
                    append(spool, shared, &mut buf, &mut count);
                    sync(spool, shared);
                    let mut s = spool.lock().unwrap();
                    if let Err(e) = s.remove(seq) {
                        tracing::error!(error = %e, seq, "cannot delete a replayed spool segment");
                    }
                    publish(&s, shared);
                }
                SpoolMsg::Close(ack) => {
                    close = Some(ack);
                    break;
                }
            }
            if taken < SPOOL_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if dropped > 0 {
            counter!(EVENTS_DROPPED, "reason" => "spool_full").increment(dropped);
            *shared.spool_failing.lock().unwrap() =
                Some("spool is full (kafka.spool_max_bytes)".into());
        }
        append(spool, shared, &mut buf, &mut count);
        if close.is_some() || last_sync.elapsed() >= fsync_every {
            sync(spool, shared);
            last_sync = Instant::now();
        }
        if let Some(ack) = close {
            let mut s = spool.lock().unwrap();
            if let Err(e) = s.seal() {
                tracing::error!(error = %e, "spool: final sync failed");
            }
            let (events, _) = s.totals();
            if events > 0 {
                tracing::info!(events, "events left in the spool for the next start");
            }
            let _ = ack.send(());
            return;
        }
    }
}

/// Writes the encoded batch; on an I/O error the batch is dropped and counted.
fn append(spool: &Mutex<Spool>, shared: &Shared, buf: &mut Vec<u8>, count: &mut u64) {
    if *count == 0 {
        buf.clear();
        return;
    }
    let mut s = spool.lock().unwrap();
    match s.append_encoded(buf, *count) {
        Ok(()) => {
            let mut f = shared.spool_failing.lock().unwrap();
            if f.as_deref().is_some_and(|w| !w.contains("full"))
                || (f.is_some() && s.has_room(1 << 20))
            {
                *f = None;
            }
        }
        Err(e) => {
            let reason = match e {
                super::spool::SpoolError::Full => "spool_full",
                super::spool::SpoolError::Io(_) => "spool_io_error",
            };
            tracing::error!(error = %e, events = *count, "spool write failed; events dropped");
            counter!(EVENTS_DROPPED, "reason" => reason).increment(*count);
            *shared.spool_failing.lock().unwrap() = Some(e.to_string());
        }
    }
    publish(&s, shared);
    buf.clear();
    *count = 0;
}

fn sync(spool: &Mutex<Spool>, shared: &Shared) {
    if let Err(e) = spool.lock().unwrap().sync() {
        tracing::error!(error = %e, "spool fsync failed");
        *shared.spool_failing.lock().unwrap() = Some(format!("fsync: {e}"));
    }
}

fn publish(s: &Spool, shared: &Shared) {
    let (events, bytes) = s.totals();
    shared
        .spool_events
        .store(events as usize, Ordering::Relaxed);
    gauge!(SPOOL_EVENTS).set(events as f64);
    gauge!(SPOOL_BYTES).set(bytes as f64);
}

/// Probes Kafka while degraded and replays the spool while healthy.
struct Replayer {
    producer: SharedProducer,
    topic: String,
    spool: Arc<Mutex<Spool>>,
    shared: Arc<Shared>,
    spool_tx: SyncSender<SpoolMsg>,
    create_topic: Option<(i32, i32)>,
    /// Longest wait for a replayed segment's delivery reports.
    settle_timeout: Duration,
    /// The producer's settings, to replace it after a fatal error.
    config: ClientConfig,
}

impl Replayer {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20).min(d));
        }
    }

    fn run(self) {
        let mut generation: u16 = 0;
        let mut created = false;
        while !self.stopped() {
            let fatal = self.producer.load().client().fatal_error();
            if let Some((code, reason)) = fatal {
                self.shared
                    .set_degraded(format!("producer fatal error {code:?}: {reason}"));
                self.replace_producer();
                continue;
            }
            if self.shared.producer_broken.swap(false, Ordering::Relaxed) {
                self.shared
                    .set_degraded("the broker fenced the producer".into());
                self.replace_producer();
                continue;
            }
            if self.shared.degraded.load(Ordering::Relaxed) {
                match self.probe() {
                    Ok(()) => {
                        self.shared.degraded.store(false, Ordering::Relaxed);
                        *self.shared.why.lock().unwrap() = None;
                        tracing::info!(topic = %self.topic, "kafka reachable: producing, and replaying any spooled events");
                    }
                    Err(Probe::NoTopic) if self.create_topic.is_some() && !created => {
                        created = self.create();
                    }
                    Err(p) => {
                        self.shared
                            .set_degraded(format!("topic {}: {p}", self.topic));
                        self.sleep(PROBE_EVERY);
                    }
                }
                continue;
            }
            let next = {
                let mut s = self.spool.lock().unwrap();
                if s.oldest().is_none() && s.active_has_records() {
                    if let Err(e) = s.seal() {
                        tracing::error!(error = %e, "cannot seal the spool segment for replay");
                    }
                }
                s.oldest().map(|seg| (seg, s.read(seg.seq)))
            };
            let Some((seg, scan)) = next else {
                self.sleep(Duration::from_millis(100));
                continue;
            };
            let records = match scan {
                Ok(s) => s.records,
                Err(e) => {
                    tracing::error!(error = %e, seq = seg.seq, "cannot read a spool segment");
                    self.sleep(PROBE_EVERY);
                    continue;
                }
            };
            if records.is_empty() {
                let _ = self.spool_tx.send(SpoolMsg::Remove(seg.seq));
                self.wait_removed(seg.seq);
                continue;
            }
            tracing::debug!(
                seq = seg.seq,
                records = records.len(),
                "replaying spool segment"
            );
            generation = generation.wrapping_add(1);
            let total = records.len() as u64;
            self.shared.replay.lock().unwrap().insert(
                seg.seq,
                Attempt {
                    generation,
                    left: total,
                    failed: false,
                    done: None,
                },
            );
            let opaque = ((seg.seq as usize) << 16) | generation as usize;
            let sent = self.replay(&records, opaque);
            if sent < total {
                let mut replay = self.shared.replay.lock().unwrap();
                if let Some(a) = replay.get_mut(&seg.seq) {
                    a.settle(total - sent, false);
                }
            }
            match self.outcome(seg.seq) {
                Some(true) => self.wait_removed(seg.seq),
                // Kept on disk; replayed whole once Kafka is healthy again.
                Some(false) | None => self.sleep(PROBE_EVERY),
            }
        }
    }

    /// Waits for every delivery report of the segment's current attempt:
    /// whether all were delivered, or None when stopping or out of time.
    fn outcome(&self, seq: u64) -> Option<bool> {
        let end = Instant::now() + self.settle_timeout;
        while !self.stopped() && Instant::now() < end {
            {
                let mut replay = self.shared.replay.lock().unwrap();
                if let Some(done) = replay.get(&seq).and_then(|a| a.done) {
                    replay.remove(&seq);
                    return Some(done);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.replay.lock().unwrap().remove(&seq);
        None
    }

    /// Waits until the spool thread has deleted a replayed segment.
    fn wait_removed(&self, seq: u64) {
        while !self.stopped()
            && self
                .spool
                .lock()
                .unwrap()
                .oldest()
                .is_some_and(|o| o.seq == seq)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Replaces a producer that hit a fatal error (an idempotent producer
    /// fenced by the broker, say): what the old one held comes back through
    /// its delivery callback and is spooled.
    fn replace_producer(&self) {
        let fresh: ThreadedProducer<Ctx> = match self
            .config
            .create_with_context(Ctx::new(self.shared.clone(), self.spool_tx.clone()))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot create a new kafka producer");
                self.sleep(PROBE_EVERY);
                return;
            }
        };
        let old = self.producer.swap(Arc::new(fresh));
        old.purge(PurgeConfig::default().queue().inflight());
        let end = Instant::now() + PURGE_WAIT;
        while old.in_flight_count() > 0 && Instant::now() < end {
            old.poll(Duration::from_millis(10));
        }
        tracing::warn!("replaced the kafka producer after a fatal error");
    }

    /// Sends a segment's records, keeping the producer's queue short so live
    /// traffic is never starved; returns how many were sent. Stops early if
    /// Kafka degrades: the segment is then replayed whole later (duplicates
    /// are allowed, loss is not).
    fn replay(&self, records: &[SpoolRecord], opaque: usize) -> u64 {
        let mut sent = 0;
        for rec in records {
            loop {
                if self.stopped() || self.shared.degraded.load(Ordering::Relaxed) {
                    return sent;
                }
                let producer = self.producer.load();
                if producer.in_flight_count() > REPLAY_MAX_IN_FLIGHT {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let h = owned_headers(rec.headers.iter().map(|(k, v)| (k.as_str(), &v[..])));
                let r = BaseRecord::with_opaque_to(&self.topic, opaque)
                    .key(&rec.key[..])
                    .payload(&rec.payload[..])
                    .timestamp(rec.ts_ms)
                    .headers(h);
                match producer.send(r) {
                    Ok(()) => {
                        sent += 1;
                        break;
                    }
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        self.shared.set_degraded(format!("replay failed: {e}"));
                        return sent;
                    }
                }
            }
        }
        sent
    }

    fn probe(&self) -> Result<(), Probe> {
        let md = self
            .producer
            .load()
            .client()
            .fetch_metadata(Some(&self.topic), PROBE_TIMEOUT)
            .map_err(|e| Probe::Unreachable(e.to_string()))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == self.topic) else {
            return Err(Probe::NoTopic);
        };
        match t.error() {
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                return Err(Probe::NoTopic)
            }
            Some(e) => return Err(Probe::Unreachable(format!("topic metadata: {e:?}"))),
            None => {}
        }
        if t.partitions().is_empty() {
            return Err(Probe::NoTopic);
        }
        if t.partitions().iter().any(|p| p.leader() < 0) {
            return Err(Probe::Unreachable("a partition has no leader".into()));
        }
        Ok(())
    }

    fn create(&self) -> bool {
        let Some((partitions, rf)) = self.create_topic else {
            return false;
        };
        let admin: AdminClient<_> = match self.config.create() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot create a kafka admin client");
                return false;
            }
        };
        let topic = NewTopic::new(&self.topic, partitions, TopicReplication::Fixed(rf));
        let opts = AdminOptions::new().operation_timeout(Some(PROBE_TIMEOUT));
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return false,
        };
        match rt.block_on(admin.create_topics([&topic], &opts)) {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(name) => {
                            tracing::info!(topic = %name, partitions, "created kafka topic")
                        }
                        Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            tracing::info!(topic = %name, "kafka topic exists")
                        }
                        Err((name, e)) => {
                            tracing::error!(topic = %name, error = %e, "cannot create kafka topic");
                            return false;
                        }
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot create kafka topic");
                false
            }
        }
    }
}

/// Why a probe failed.
#[derive(Debug)]
enum Probe {
    Unreachable(String),
    NoTopic,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Unreachable(e) => write!(f, "unreachable: {e}"),
            Probe::NoTopic => f.write_str(
                "topic does not exist; create it, or set kafka.create_topic = true (events wait in the spool)",
            ),
        }
    }
}
