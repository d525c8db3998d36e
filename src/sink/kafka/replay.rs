//! The replay thread: probes Kafka while it is degraded, replaces a
//! producer the broker fenced, and once Kafka is back sends the spool's
//! sealed segments, oldest first, paced so live traffic keeps its room.
//! A segment is deleted (by the spool's thread) only once every record of
//! one replay of it is delivered.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaRespErr;

use metrics::counter;

use super::book::{Progress, MAX_TRIES};
use super::producer::{Callbacks, SharedProducer, STALLED_AFTER};
use super::spool::{Spool, SpoolRecord};
use super::spool_writer::SpoolMsg;
use super::wire::{next_attempt, owned_headers, Outcome, Tag};
use super::{SinkState, Trouble, PURGE_WAIT};
use crate::metrics::{dropped, DropReason, KAFKA_PRODUCER_RESETS};

/// Replay keeps the producer's queue below this, so live traffic always
/// finds room.
const REPLAY_MAX_IN_FLIGHT: i32 = 10_000;
/// How often an unreachable broker is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a metadata probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Failed reads of a segment before it is set aside.
const MAX_READ_FAILURES: u32 = 3;

/// Probes Kafka while degraded and replays the spool while healthy.
pub struct Replayer {
    pub producer: SharedProducer,
    pub topic: String,
    pub spool: Arc<Mutex<Spool>>,
    pub shared: Arc<SinkState>,
    pub spool_tx: SyncSender<SpoolMsg>,
    pub create_topic: Option<(i32, i32)>,
    /// Longest wait for a replayed segment's delivery reports.
    pub settle_timeout: Duration,
    /// The producer's settings, to replace it after a fatal error.
    pub config: ClientConfig,
}

/// Why a producer was replaced: the `reason` of
/// `trackedge_kafka_producer_resets_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// librdkafka reported a fatal error.
    Fatal,
    /// The broker no longer accepts the producer's identity.
    Fenced,
    /// [`STALLED_AFTER`] delivery timeouts in a row with brokers up.
    Stalled,
}

impl Reset {
    pub const ALL: [Reset; 3] = [Reset::Fatal, Reset::Fenced, Reset::Stalled];

    pub fn label(self) -> &'static str {
        match self {
            Reset::Fatal => "fatal",
            Reset::Fenced => "fenced",
            Reset::Stalled => "stalled",
        }
    }
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

    pub fn run(self) {
        // Every reason reads 0 from the start, for alerts on increase().
        for r in Reset::ALL {
            counter!(KAFKA_PRODUCER_RESETS, "reason" => r.label()).absolute(0);
        }
        let mut attempt: u32 = 0;
        let mut created = false;
        let mut progress: Option<Progress> = None;
        let mut read_failures = (0u64, 0u32);
        let link = &self.shared.connectivity;
        while !self.stopped() {
            let fatal = self.producer.load().client().fatal_error();
            if let Some((code, reason)) = fatal {
                link.set_degraded(Trouble::ProducerFailed, format!("{code:?}: {reason}"));
                self.replace_producer(Reset::Fatal);
                continue;
            }
            if link.producer_broken.swap(false, Ordering::Relaxed) {
                link.set_degraded(Trouble::ProducerFenced, "fenced");
                self.replace_producer(Reset::Fenced);
                continue;
            }
            if link.producer_stalled.swap(false, Ordering::Relaxed) {
                link.set_degraded(
                    Trouble::ProducerStalled,
                    format!("{STALLED_AFTER} delivery timeouts in a row with brokers up"),
                );
                self.replace_producer(Reset::Stalled);
                continue;
            }
            if link.is_degraded() {
                match self.probe() {
                    Ok(()) => {
                        link.set_up();
                        tracing::info!(topic = %self.topic, "kafka reachable: producing, and replaying any spooled events");
                    }
                    Err(Probe::NoTopic) if self.create_topic.is_some() && !created => {
                        created = self.create();
                    }
                    Err(p) => {
                        let trouble = match p {
                            Probe::NoTopic => Trouble::TopicMissing,
                            Probe::Unreachable(_) => Trouble::Unreachable,
                        };
                        link.set_degraded(trouble, format!("topic {}: {p}", self.topic));
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
                s.oldest().map(|seg| (seg, s.dir().to_owned()))
            };
            // Sealed segments are never written again: read without the
            // lock, so the spool's thread keeps appending meanwhile.
            let next = next.map(|(seg, dir)| {
                let settled = Spool::read_settled(&dir, seg.seq);
                (seg, Spool::read_sealed(&dir, &seg), settled)
            });
            let Some((seg, scan, settled)) = next else {
                self.sleep(Duration::from_millis(100));
                continue;
            };
            let records = match scan {
                Ok(s) => s.records,
                Err(e) => {
                    // An unreadable oldest segment must not hold the spool
                    // (and everything behind it) forever.
                    let n = if read_failures.0 == seg.seq {
                        read_failures.1 + 1
                    } else {
                        1
                    };
                    read_failures = (seg.seq, n);
                    tracing::error!(error = %e, seq = seg.seq, failures = n, "cannot read a spool segment");
                    if n >= MAX_READ_FAILURES {
                        let lost = self.spool.lock().unwrap().set_aside(seg.seq);
                        tracing::error!(seq = seg.seq, events = lost, "set an unreadable spool segment aside as .bad; its events are counted dropped");
                        dropped(DropReason::SpoolCorrupt, lost);
                        self.spool_tx.send(SpoolMsg::Publish).ok();
                    } else {
                        self.sleep(PROBE_EVERY);
                    }
                    continue;
                }
            };
            // Records the segment should hold (besides those an earlier run
            // settled) but that did not read back are lost to damage on
            // disk: counted once, when it is done.
            let settled_before = settled
                .iter()
                .filter(|&&i| (i as usize) < records.len())
                .count();
            let damaged = (seg.events + settled_before as u64).saturating_sub(records.len() as u64);
            let p = match progress.take() {
                Some(p) if p.seq == seg.seq && p.settled.len() == records.len() => p,
                _ => {
                    let mut p = Progress::new(seg.seq, records.len());
                    p.settle_all(&settled);
                    p
                }
            };
            let p = match self.replay_segment(p, &records, &mut attempt) {
                Ok(p) => p,
                Err(p) => {
                    // Stopped with the attempt's records still in flight:
                    // shutdown settles it after the final flush.
                    self.shared.replay.park(p, damaged);
                    return;
                }
            };
            if p.finished() {
                dropped(DropReason::SpoolCorrupt, damaged);
                self.remove(seg.seq);
            } else {
                progress = Some(p);
                // Kept on disk; what is not yet delivered is sent again once
                // Kafka is healthy.
                self.sleep(PROBE_EVERY);
            }
        }
        // Stopped between attempts at a segment partly delivered: written
        // down at shutdown too (no report is pending; nothing to count as
        // damaged before the segment is done).
        if let Some(p) = progress {
            self.shared.replay.park(p, 0);
        }
    }

    /// One attempt at the records of `p` not yet delivered; `Err` when the
    /// stop came before every report was in (the attempt stays current).
    fn replay_segment(
        &self,
        mut p: Progress,
        records: &[SpoolRecord],
        attempt: &mut u32,
    ) -> Result<Progress, Progress> {
        let sent_ids = p.to_send();
        if sent_ids.is_empty() {
            return Ok(p);
        }
        tracing::debug!(
            seq = p.seq,
            records = sent_ids.len(),
            "replaying spool segment"
        );
        *attempt = next_attempt(*attempt);
        self.shared.replay.begin(*attempt, p.seq, sent_ids.clone());
        let sent = self.replay(records, &sent_ids, *attempt);
        if sent < sent_ids.len() {
            self.shared.replay.unsent(sent);
        }
        let Some(results) = self.outcome() else {
            return Err(p);
        };
        let gave_up = p.merge(&sent_ids[..results.len()], &results);
        if gave_up > 0 {
            tracing::error!(
                seq = p.seq,
                records = gave_up,
                tries = MAX_TRIES,
                "kafka kept refusing spooled records; dropped"
            );
            dropped(DropReason::RetriesExhausted, gave_up);
        }
        Ok(p)
    }

    /// Waits for every delivery report of the current attempt; what came
    /// in when out of time. `None` when told to stop first: the attempt is
    /// left current, for the final flush's reports to settle.
    fn outcome(&self) -> Option<Vec<Option<Outcome>>> {
        let end = Instant::now() + self.settle_timeout;
        while Instant::now() < end {
            if let Some(done) = self.shared.replay.finished() {
                return Some(done);
            }
            if self.stopped() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(self.shared.replay.abandon())
    }

    /// Has the spool's thread delete a segment and waits until it has.
    fn remove(&self, seq: u64) {
        let (done, removed) = mpsc::sync_channel(1);
        if self.spool_tx.send(SpoolMsg::Remove { seq, done }).is_ok() {
            let _ = removed.recv();
        }
    }

    /// Replaces a producer that hit a fatal error, was fenced by the broker
    /// or is stalled: what the old one held comes back through its delivery
    /// callback and is spooled.
    fn replace_producer(&self, why: Reset) {
        let fresh: BaseProducer<Callbacks> = match self
            .config
            .create_with_context(Callbacks::new(self.shared.clone(), self.spool_tx.clone()))
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
        counter!(KAFKA_PRODUCER_RESETS, "reason" => why.label()).increment(1);
        tracing::warn!(reason = why.label(), "replaced the kafka producer");
    }

    /// Sends records `ids` of a segment, keeping the producer's queue short
    /// so live traffic is never starved; returns how many were sent. Stops
    /// early if Kafka degrades: the rest are sent by a later attempt.
    fn replay(&self, records: &[SpoolRecord], ids: &[u32], attempt: u32) -> usize {
        let mut sent = 0;
        for (k, &i) in ids.iter().enumerate() {
            let rec = &records[i as usize];
            let opaque = Tag::Replayed {
                attempt,
                index: k as u32,
            }
            .pack();
            loop {
                if self.stopped() || self.shared.connectivity.is_degraded() {
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
                        self.shared
                            .connectivity
                            .set_degraded(Trouble::NotAcknowledging, format!("replay: {e}"));
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
