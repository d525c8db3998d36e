//! The producing side: librdkafka's settings and callbacks, and the thread
//! that feeds it from the intake, by topic handle ([`Bound`]). The record
//! format is in [`super::wire`].

use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr, CString};
use std::ops::ControlFlow;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{counter, gauge, Counter};
use rdkafka::bindings;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;

use super::spool::SpoolRecord;
use super::spool_writer::SpoolMsg;
#[cfg(test)]
use super::wire::next_attempt;
use super::wire::{
    breaks_producer, cloudevent_headers, is_permanent, is_purge, record_key, CeHeaders, Ids,
    Outcome, Tag, CE_HEADERS,
};
use super::{SinkState, Trouble};
use crate::config::KafkaConfig;
use crate::event::Event;
use crate::metrics::{
    dropped, DropReason, EVENTS_DELIVERED, KAFKA_BROKERS_UP, KAFKA_QUEUE, KAFKA_TX_ERRORS,
};
use crate::sink::queue::in_batches_ticking;

/// Events the producing thread takes from the intake per batch.
const FEED_BATCH: usize = 1024;

/// How often the producing thread serves librdkafka's reports when no
/// event comes (under load it serves them after every batch).
const REPORTS_EVERY: Duration = Duration::from_millis(20);

/// Most reports (each a batch of records) served per turn, so a backlog
/// cannot hold up the intake.
const REPORTS_PER_TURN: usize = 256;

/// Delivery timeouts in a row, with brokers up, after which the producer
/// counts as stalled and is replaced (issue 21, item 8): an idempotent
/// producer whose broker restarted without its state retries forever.
/// An outage (no broker up) never counts.
pub const STALLED_AFTER: u32 = 50;

/// The producer settings, each with its reason; `kafka.librdkafka` entries
/// override them.
pub fn producer_defaults(cfg: &KafkaConfig, node: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", cfg.brokers.clone()),
        // Brokers' logs and quotas tell the nodes of a fleet apart.
        ("client.id", format!("trackedge-{node}")),
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
        (
            "message.timeout.ms",
            cfg.message_timeout.as_millis().to_string(),
        ),
        // Statistics feed the Prometheus gauges every second.
        ("statistics.interval.ms", "1000".into()),
        ("socket.keepalive.enable", "true".into()),
        ("reconnect.backoff.max.ms", "1000".into()),
    ]
}

/// librdkafka's callbacks.
pub struct Callbacks {
    shared: Arc<SinkState>,
    spool_tx: SyncSender<SpoolMsg>,
    /// `trackedge_events_delivered_total`, kept: it is counted per record.
    delivered: OnceLock<Counter>,
    /// Delivery timeouts since the last delivery.
    timeouts_in_a_row: AtomicU32,
}

impl ClientContext for Callbacks {
    fn stats(&self, s: Statistics) {
        gauge!(KAFKA_QUEUE).set(s.msg_cnt as f64);
        let up = s.brokers.values().filter(|b| b.state == "UP").count();
        gauge!(KAFKA_BROKERS_UP).set(up as f64);
        self.shared
            .connectivity
            .brokers_up
            .store(up, Ordering::Relaxed);
        let txerrs: u64 = s.brokers.values().map(|b| b.txerrs).sum();
        gauge!(KAFKA_TX_ERRORS).set(txerrs as f64);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared
                .connectivity
                .set_degraded(Trouble::Unreachable, reason);
        } else {
            tracing::debug!(%error, reason, "librdkafka error");
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // librdkafka repeats connection errors at every retry; the states
        // that matter reach the error callback and readiness instead.
    }
}

impl ProducerContext for Callbacks {
    /// A packed [`Tag`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let tag = Tag::unpack(opaque);
        // Whether a failure counts as one of a replayed record's tries: a
        // purge (our shutdown or producer swap) or a timeout (Kafka away)
        // says nothing of the record.
        let mut refused = false;
        let ok = match result {
            Ok(_) => {
                self.delivered
                    .get_or_init(|| counter!(EVENTS_DELIVERED))
                    .increment(1);
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                true
            }
            Err((e, _)) if is_permanent(e.rdkafka_error_code()) => {
                dropped(DropReason::Rejected, 1);
                tracing::error!(error = %e, "kafka rejected an event for good; dropped");
                true
            }
            Err((e, msg)) => {
                let code = e.rdkafka_error_code();
                refused = !is_purge(code) && code != Some(RDKafkaErrorCode::MessageTimedOut);
                if !is_purge(code) {
                    self.shared
                        .connectivity
                        .set_degraded(Trouble::NotAcknowledging, e);
                }
                if code == Some(RDKafkaErrorCode::MessageTimedOut) {
                    self.timed_out();
                }
                if breaks_producer(code) {
                    self.shared
                        .connectivity
                        .producer_broken
                        .store(true, Ordering::Relaxed);
                }
                // A replayed record that fails is not spooled again: it is
                // still in its segment, which stays until one replay
                // delivers all of it.
                if tag == Tag::Live {
                    self.spool_message(msg);
                }
                false
            }
        };
        if tag == Tag::Live {
            // After the record is counted where it went (delivered,
            // dropped, or queued for the spool): never counted nowhere.
            self.shared.live_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if let Tag::Replayed { attempt, index } = tag {
            let outcome = match (ok, refused) {
                (true, _) => Outcome::Delivered,
                (false, true) => Outcome::Refused,
                (false, false) => Outcome::NotSent,
            };
            self.shared.replay.settle(attempt, index, outcome);
        }
    }
}

impl Callbacks {
    pub fn new(shared: Arc<SinkState>, spool_tx: SyncSender<SpoolMsg>) -> Callbacks {
        Callbacks {
            shared,
            spool_tx,
            delivered: OnceLock::new(),
            timeouts_in_a_row: AtomicU32::new(0),
        }
    }

    /// Counts a delivery timeout; a run of them while brokers are up marks
    /// the producer stalled, for the replayer to replace.
    fn timed_out(&self) {
        let n = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let link = &self.shared.connectivity;
        if n >= STALLED_AFTER && link.brokers_up.load(Ordering::Relaxed) > 0 {
            link.producer_stalled.store(true, Ordering::Relaxed);
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
        self.shared.spool.queued.fetch_add(1, Ordering::Relaxed);
        // Blocking is fine here: this is the producing thread (or shutdown)
        // serving reports, never a request; the spool's thread drains the
        // channel on its own.
        if self.spool_tx.send(SpoolMsg::Record(Box::new(rec))).is_err() {
            self.shared.spool.queued.fetch_sub(1, Ordering::Relaxed);
            dropped(DropReason::Shutdown, 1);
        }
    }
}

/// The producer, replaceable after a fatal error without a lock on the
/// request path. Its delivery reports are served by the producing thread
/// ([`Feeder`]), which allocated the records they free: no thread of
/// rdkafka's own polls it.
pub type SharedProducer = Arc<ArcSwap<BaseProducer<Callbacks>>>;

/// What the request path queues for the producing thread. Boxed, as in the
/// file sink's queue: a slot is 16 bytes, not 528.
pub enum Feed {
    Event(Box<Event>),
    /// Everything before this is produced or spooled: acknowledge and stop.
    Close(SyncSender<()>),
}

/// The producing thread: takes queued events in batches, produces them, or
/// spools what Kafka cannot take.
pub struct Feeder {
    pub producer: SharedProducer,
    pub topic: String,
    /// CloudEvents `ce_source`.
    pub source: String,
    pub shared: Arc<SinkState>,
    pub spool_tx: SyncSender<SpoolMsg>,
    /// The intake's count of events not yet produced or spooled.
    pub pending: Arc<AtomicUsize>,
}

impl Feeder {
    pub fn run(self, rx: Receiver<Feed>) {
        // One JSON buffer for every event: librdkafka copies the payload.
        let mut json = Vec::with_capacity(1024);
        // The topic's handle in the current producer, made again when the
        // producer is replaced.
        // (Shared by the two callbacks below, one at a time.)
        let bound: RefCell<Option<Bound>> = RefCell::new(None);
        in_batches_ticking(
            &rx,
            FEED_BATCH,
            REPORTS_EVERY,
            |batch| {
                let mut close = None;
                let mut bound = bound.borrow_mut();
                for msg in batch.drain(..) {
                    match msg {
                        Feed::Event(event) => {
                            self.produce(&event, &mut json, &mut bound);
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
            },
            || {
                if let Some(b) = self.bind(&mut bound.borrow_mut()) {
                    b.serve_reports();
                }
            },
        );
    }

    /// The topic's handle in the current producer: `bound`, or a new one
    /// when the producer was replaced. `None` (Kafka marked refusing) when
    /// librdkafka refuses the topic name.
    fn bind<'b>(&self, bound: &'b mut Option<Bound>) -> Option<&'b Bound> {
        let current = self.producer.load();
        if let Some(b) = bound {
            if Arc::ptr_eq(&b.producer, &current) {
                return bound.as_ref();
            }
        }
        match Bound::new(Arc::clone(&current), &self.topic) {
            Some(b) => Some(bound.insert(b)),
            None => {
                *bound = None;
                let e = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic);
                self.shared.connectivity.set_degraded(Trouble::Refusing, &e);
                None
            }
        }
    }

    fn produce(&self, event: &Event, json: &mut Vec<u8>, bound: &mut Option<Bound>) {
        json.clear();
        event.encode_into(json);
        let ids = Ids::of(event);
        let key = record_key(event, &ids);
        let headers = cloudevent_headers(event, &ids, &self.source);
        if !self.shared.connectivity.is_degraded() {
            let Some(b) = self.bind(bound) else {
                return self.to_spool(spool_record(event, key, &headers, json));
            };
            // Counted before the send: its report may be served (by
            // shutdown's flush) before `send` returns.
            let in_flight = &self.shared.live_in_flight;
            in_flight.fetch_add(1, Ordering::Relaxed);
            match b.send(
                key.as_bytes(),
                json,
                event.ts_ms,
                &headers,
                Tag::Live.pack(),
            ) {
                Ok(()) => return,
                Err(RDKafkaErrorCode::QueueFull) => {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                Err(code) => {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    let e = KafkaError::MessageProduction(code);
                    self.shared.connectivity.set_degraded(Trouble::Refusing, &e)
                }
            }
        }
        self.to_spool(spool_record(event, key, &headers, json));
    }

    fn to_spool(&self, rec: SpoolRecord) {
        let queued = &self.shared.spool.queued;
        queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.spool_tx.try_send(SpoolMsg::Record(Box::new(rec))) {
            queued.fetch_sub(1, Ordering::Relaxed);
            dropped(
                match e {
                    TrySendError::Full(_) => DropReason::SpoolQueueFull,
                    TrySendError::Disconnected(_) => DropReason::Shutdown,
                },
                1,
            );
        }
    }
}

/// An event's record as the spool keeps it.
fn spool_record(event: &Event, key: &str, headers: &CeHeaders<'_>, json: &[u8]) -> SpoolRecord {
    SpoolRecord {
        ts_ms: event.ts_ms,
        key: key.as_bytes().to_vec(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_str().expect("header names are ASCII").to_owned(),
                    v.as_bytes().to_vec(),
                )
            })
            .collect(),
        payload: json.to_vec(),
    }
}

/// A producer with librdkafka's handle of the topic. A record produced by
/// topic name (what rdkafka's `BaseRecord` does) costs a C string, a
/// lookup of the name under the client's topic lock and a reference count
/// each; by handle, only the count. Live events are produced through it,
/// below `BaseRecord`; replays keep the safe API.
pub struct Bound {
    producer: Arc<BaseProducer<Callbacks>>,
    topic: NonNull<bindings::rd_kafka_topic_t>,
    /// The client's main queue, where its delivery reports wait.
    reports: NonNull<bindings::rd_kafka_queue_t>,
}

#[allow(unsafe_code)]
impl Bound {
    /// The handle of `topic` in `producer`; `None` when librdkafka refuses
    /// the name.
    fn new(producer: Arc<BaseProducer<Callbacks>>, topic: &str) -> Option<Bound> {
        let name = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `producer` lives, and
        // `Bound` keeps it alive until the handle is destroyed (Drop); a
        // null configuration means the producer's own topic settings.
        let rkt = unsafe {
            bindings::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        let topic = NonNull::new(rkt)?;
        // SAFETY: as above; the reference is released in Drop.
        let reports = unsafe { bindings::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        let Some(reports) = NonNull::new(reports) else {
            // SAFETY: made above, destroyed once.
            unsafe { bindings::rd_kafka_topic_destroy(topic.as_ptr()) };
            return None;
        };
        Some(Bound {
            topic,
            reports,
            producer,
        })
    }

    /// Serves the delivery reports waiting (at most [`REPORTS_PER_TURN`]),
    /// without waiting for more.
    fn serve_reports(&self) {
        for _ in 0..REPORTS_PER_TURN {
            // SAFETY: the queue reference is ours until Drop.
            if unsafe { bindings::rd_kafka_queue_length(self.reports.as_ptr()) } == 0 {
                break;
            }
            self.producer.poll(Duration::ZERO);
        }
    }

    /// Hands one record to librdkafka, which copies key, payload and
    /// headers; `tag` comes back in the delivery report.
    fn send(
        &self,
        key: &[u8],
        payload: &[u8],
        ts_ms: i64,
        headers: &CeHeaders<'_>,
        tag: usize,
    ) -> Result<(), RDKafkaErrorCode> {
        use bindings::rd_kafka_vtype_t as V;
        use bindings::rd_kafka_vu_s__bindgen_ty_1 as U;
        use bindings::rd_kafka_vu_t as Vu;
        let mem = |b: &[u8]| U {
            mem: bindings::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: b.as_ptr() as *mut c_void,
                size: b.len(),
            },
        };
        let header = |(name, value): &(&CStr, &str)| Vu {
            vtype: V::RD_KAFKA_VTYPE_HEADER,
            u: U {
                header: bindings::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: name.as_ptr(),
                    val: value.as_ptr() as *const c_void,
                    size: value.len() as isize,
                },
            },
        };
        let vus: [Vu; 7 + CE_HEADERS] = [
            Vu {
                vtype: V::RD_KAFKA_VTYPE_RKT,
                u: U {
                    rkt: self.topic.as_ptr(),
                },
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_PARTITION,
                u: U { i32_: PARTITION_UA },
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_MSGFLAGS,
                u: U {
                    i: bindings::RD_KAFKA_MSG_F_COPY as c_int,
                },
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_VALUE,
                u: mem(payload),
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_KEY,
                u: mem(key),
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_OPAQUE,
                u: U {
                    ptr: tag as *mut c_void,
                },
            },
            Vu {
                vtype: V::RD_KAFKA_VTYPE_TIMESTAMP,
                u: U { i64_: ts_ms },
            },
            header(&headers[0]),
            header(&headers[1]),
            header(&headers[2]),
            header(&headers[3]),
            header(&headers[4]),
            header(&headers[5]),
        ];
        // SAFETY: every pointer in `vus` is valid for this call (librdkafka
        // copies what it keeps: MSG_F_COPY, headers by value); the header
        // names are NUL-terminated; the topic handle belongs to this
        // producer's client, alive through `self.producer`. The opaque is
        // a plain number, which is what the delivery callback reads back
        // (`usize` as rdkafka's `IntoOpaque`).
        let error = unsafe {
            bindings::rd_kafka_produceva(
                self.producer.client().native_ptr(),
                vus.as_ptr(),
                vus.len(),
            )
        };
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null error is ours to read and destroy, once.
        let code = unsafe {
            let code = bindings::rd_kafka_error_code(error);
            bindings::rd_kafka_error_destroy(error);
            code
        };
        Err(code.into())
    }
}

#[allow(unsafe_code)]
impl Drop for Bound {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_topic_new and rd_kafka_queue_get_main on
        // this producer's client, released once, before `producer` (a
        // field) lets the client go.
        unsafe {
            bindings::rd_kafka_topic_destroy(self.topic.as_ptr());
            bindings::rd_kafka_queue_destroy(self.reports.as_ptr());
        }
    }
}

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner chooses (by key).
const PARTITION_UA: i32 = -1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_never_collide_with_live() {
        assert_eq!(Tag::unpack(Tag::Live.pack()), Tag::Live);
        for (attempt, index) in [(1, 0), (1, 1), (7, u32::MAX), (u32::MAX, 42)] {
            let t = Tag::Replayed { attempt, index };
            assert_ne!(t.pack(), 0, "{t:?}");
            assert_eq!(Tag::unpack(t.pack()), t);
        }
        // Record 0 of a replay stays a replay even after the attempts wrap.
        let mut a = u32::MAX - 1;
        for _ in 0..4 {
            a = next_attempt(a);
            assert_ne!(a, 0);
        }
    }

    #[test]
    fn error_rules() {
        use RDKafkaErrorCode as E;
        for c in [E::MessageSizeTooLarge, E::InvalidRecord] {
            assert!(is_permanent(Some(c)) && !breaks_producer(Some(c)));
        }
        for c in [E::ProducerFenced, E::OutOfOrderSequenceNumber] {
            assert!(breaks_producer(Some(c)) && !is_permanent(Some(c)));
        }
        // Outages are retried, never dropped.
        for c in [E::MessageTimedOut, E::AllBrokersDown, E::QueueFull] {
            assert!(!is_permanent(Some(c)) && !breaks_producer(Some(c)));
        }
        assert!(is_purge(Some(E::PurgeQueue)) && !is_purge(Some(E::MessageTimedOut)));
    }
}
