//! The replay thread: probes Kafka while it is degraded, replaces a
//! producer the broker fenced, and once Kafka is back sends the spool's
//! sealed segments, oldest first, paced so live traffic keeps its room.
//! A segment is deleted (by the spool's thread) only once every record of
//! one replay of it is delivered.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;

use super::producer::{next_generation, owned_headers, Ctx, SharedProducer, Tag};
use super::spool::{Spool, SpoolRecord};
use super::spool_writer::SpoolMsg;
use super::{Shared, PURGE_WAIT};

/// Replay keeps the producer's queue below this, so live traffic always
/// finds room.
const REPLAY_MAX_IN_FLIGHT: i32 = 10_000;
/// How often an unreachable broker is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a metadata probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One replay of one spool segment.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Tells this attempt's delivery reports from an earlier attempt's.
    pub generation: u16,
    /// Records sent and not yet reported, plus records not sent at all.
    pub left: u64,
    /// Some record was not delivered: the segment stays and is replayed again.
    pub failed: bool,
    /// Set once `left` reaches 0: whether every record was delivered.
    pub done: Option<bool>,
}

impl Attempt {
    pub fn new(generation: u16, records: u64) -> Attempt {
        Attempt {
            generation,
            left: records,
            failed: false,
            done: None,
        }
    }

    /// Accounts for `n` records' outcome; the attempt's verdict when this
    /// settles its last record.
    pub fn settle(&mut self, n: u64, ok: bool) -> Option<bool> {
        self.failed |= !ok;
        self.left = self.left.saturating_sub(n);
        if self.left == 0 && self.done.is_none() {
            self.done = Some(!self.failed);
            return self.done;
        }
        None
    }
}

/// Replay attempts in progress by segment, settled by delivery reports.
#[derive(Default)]
pub struct ReplayBook {
    attempts: Mutex<HashMap<u64, Attempt>>,
}

impl ReplayBook {
    fn begin(&self, seq: u64, attempt: Attempt) {
        self.attempts.lock().unwrap().insert(seq, attempt);
    }

    /// A delivery report of a replayed record; reports of an older attempt
    /// of the same segment are ignored.
    pub fn settle(&self, seq: u64, generation: u16, ok: bool) {
        let mut book = self.attempts.lock().unwrap();
        if let Some(a) = book.get_mut(&seq).filter(|a| a.generation == generation) {
            a.settle(1, ok);
        }
    }

    fn settle_unsent(&self, seq: u64, n: u64) {
        if let Some(a) = self.attempts.lock().unwrap().get_mut(&seq) {
            a.settle(n, false);
        }
    }

    /// The attempt's verdict once settled, ending it.
    fn finished(&self, seq: u64) -> Option<bool> {
        let mut book = self.attempts.lock().unwrap();
        let done = book.get(&seq).and_then(|a| a.done);
        if done.is_some() {
            book.remove(&seq);
        }
        done
    }

    fn abandon(&self, seq: u64) {
        self.attempts.lock().unwrap().remove(&seq);
    }
}

/// Probes Kafka while degraded and replays the spool while healthy.
pub struct Replayer {
    pub producer: SharedProducer,
    pub topic: String,
    pub spool: Arc<Mutex<Spool>>,
    pub shared: Arc<Shared>,
    pub spool_tx: SyncSender<SpoolMsg>,
    pub create_topic: Option<(i32, i32)>,
    /// Longest wait for a replayed segment's delivery reports.
    pub settle_timeout: Duration,
    /// The producer's settings, to replace it after a fatal error.
    pub config: ClientConfig,
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
        let mut generation: u16 = 0;
        let mut created = false;
        let link = &self.shared.link;
        while !self.stopped() {
            let fatal = self.producer.load().client().fatal_error();
            if let Some((code, reason)) = fatal {
                link.set_degraded(format!("producer fatal error {code:?}: {reason}"));
                self.replace_producer();
                continue;
            }
            if link.producer_broken.swap(false, Ordering::Relaxed) {
                link.set_degraded("the broker fenced the producer".into());
                self.replace_producer();
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
                        link.set_degraded(format!("topic {}: {p}", self.topic));
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
                self.remove(seg.seq);
                continue;
            }
            tracing::debug!(
                seq = seg.seq,
                records = records.len(),
                "replaying spool segment"
            );
            generation = next_generation(generation);
            let total = records.len() as u64;
            self.shared
                .replay
                .begin(seg.seq, Attempt::new(generation, total));
            let tag = Tag::Replayed {
                seq: seg.seq,
                generation,
            };
            let sent = self.replay(&records, tag.pack());
            if sent < total {
                self.shared.replay.settle_unsent(seg.seq, total - sent);
            }
            match self.outcome(seg.seq) {
                Some(true) => self.remove(seg.seq),
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
            if let Some(done) = self.shared.replay.finished(seq) {
                return Some(done);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.replay.abandon(seq);
        None
    }

    /// Has the spool's thread delete a segment and waits until it has.
    fn remove(&self, seq: u64) {
        let (done, removed) = mpsc::sync_channel(1);
        if self.spool_tx.send(SpoolMsg::Remove { seq, done }).is_ok() {
            let _ = removed.recv();
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
                if self.stopped() || self.shared.link.is_degraded() {
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
                        self.shared.link.set_degraded(format!("replay failed: {e}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_succeeds_only_when_every_record_is_delivered() {
        let mut a = Attempt::new(1, 3);
        assert_eq!(a.settle(1, true), None);
        assert_eq!(a.settle(1, true), None);
        assert_eq!(a.settle(1, true), Some(true));
        // Later reports change nothing.
        assert_eq!(a.settle(1, false), None);
        assert_eq!(a.done, Some(true));

        let mut b = Attempt::new(1, 3);
        assert_eq!(b.settle(1, false), None);
        assert_eq!(
            b.settle(2, true),
            Some(false),
            "one failure keeps the segment"
        );
    }

    #[test]
    fn reports_of_an_older_attempt_are_ignored() {
        let book = ReplayBook::default();
        book.begin(7, Attempt::new(2, 1));
        book.settle(7, 1, false);
        assert_eq!(
            book.finished(7),
            None,
            "generation 1 is not the current attempt"
        );
        book.settle(7, 2, true);
        assert_eq!(book.finished(7), Some(true));
        assert_eq!(book.finished(7), None, "a finished attempt is ended");
    }

    #[test]
    fn unsent_records_fail_the_attempt() {
        let book = ReplayBook::default();
        book.begin(3, Attempt::new(1, 5));
        for _ in 0..2 {
            book.settle(3, 1, true);
        }
        book.settle_unsent(3, 3);
        assert_eq!(book.finished(3), Some(false));
    }
}
