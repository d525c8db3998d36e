//! The spool's thread: the only writer of the disk [`Spool`]. It appends
//! what Kafka could not take, in batches, syncs at `kafka.spool_fsync`,
//! and deletes segments the replayer has delivered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::gauge;

use super::spool::{Spool, SpoolError, SpoolRecord};
use crate::metrics::{dropped, DropReason, SPOOL_BYTES, SPOOL_EVENTS};

/// Records the spool thread takes per batch.
const SPOOL_BATCH: usize = 1024;
/// Room a full spool must have again before it takes events again, so it
/// does not flap at the limit.
const REOPEN_ROOM: u64 = 1 << 20;

/// Boxed records: the channel writes every slot when it is made, and is
/// only busy while Kafka is away.
pub enum SpoolMsg {
    Record(Box<SpoolRecord>),
    /// Delete a replayed segment, after syncing what came before; then
    /// acknowledge.
    Remove {
        seq: u64,
        done: SyncSender<()>,
    },
    /// Write down the records of segment `seq` (of `records`) a replay
    /// interrupted by shutdown delivered; then acknowledge.
    Settled {
        seq: u64,
        records: usize,
        settled: Vec<u32>,
        done: SyncSender<()>,
    },
    /// Publish the spool's totals (the replayer set a segment aside).
    Publish,
    Close(SyncSender<()>),
}

/// Whether the spool takes events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolState {
    Ok,
    /// At `kafka.spool_max_bytes`: the newest events are dropped.
    Full,
    /// Writes fail.
    Failing(String),
    /// An fsync failed: what was written since the last good one may not
    /// survive a crash. Only a later good fsync clears it; a write does not.
    SyncFailing(String),
}

impl std::fmt::Display for SpoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolState::Ok => f.write_str("ok"),
            SpoolState::Full => f.write_str("spool is full (kafka.spool_max_bytes)"),
            SpoolState::Failing(why) | SpoolState::SyncFailing(why) => f.write_str(why),
        }
    }
}

/// What the spool thread publishes for the others.
pub struct SpoolStatus {
    /// Records in the spool channel (written by whoever queues them).
    pub queued: AtomicUsize,
    /// Events on disk, mirrored from the spool for `pending()`.
    pub events: AtomicUsize,
    pub state: Mutex<SpoolState>,
}

impl SpoolStatus {
    pub fn new(events: u64) -> SpoolStatus {
        SpoolStatus {
            queued: AtomicUsize::new(0),
            events: AtomicUsize::new(events as usize),
            state: Mutex::new(SpoolState::Ok),
        }
    }

    /// The reason the spool cannot take events, if it cannot.
    pub fn trouble(&self) -> Option<String> {
        let s = self.state.lock().unwrap();
        (*s != SpoolState::Ok).then(|| s.to_string())
    }

    fn set(&self, s: SpoolState) {
        *self.state.lock().unwrap() = s;
    }

    /// After a good write: a failure is over; a full spool reopens once it
    /// has room again.
    fn wrote(&self, has_room: bool) {
        let mut s = self.state.lock().unwrap();
        let clear = match &*s {
            SpoolState::Ok | SpoolState::SyncFailing(_) => false,
            SpoolState::Full => has_room,
            SpoolState::Failing(_) => true,
        };
        if clear {
            *s = SpoolState::Ok;
        }
    }

    /// After a good fsync: a sync failure is over.
    fn synced(&self) {
        let mut s = self.state.lock().unwrap();
        if matches!(*s, SpoolState::SyncFailing(_)) {
            *s = SpoolState::Ok;
        }
    }

    fn publish(&self, spool: &Spool) {
        let (events, bytes) = spool.totals();
        self.events.store(events as usize, Ordering::Relaxed);
        gauge!(SPOOL_EVENTS).set(events as f64);
        gauge!(SPOOL_BYTES).set(bytes as f64);
    }
}

/// The spool thread's loop, until `Close` or every sender is gone.
pub fn run(
    spool: &Mutex<Spool>,
    rx: Receiver<SpoolMsg>,
    status: &SpoolStatus,
    fsync_every: Duration,
) {
    let mut w = Writer {
        spool,
        status,
        buf: Vec::with_capacity(1 << 20),
        count: 0,
    };
    let mut last_sync = Instant::now();
    loop {
        let first = match rx.recv_timeout(fsync_every) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                w.sync();
                last_sync = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut next = Some(first);
        let mut taken = 0;
        let mut full = 0u64;
        let mut close = None;
        while let Some(msg) = next.take() {
            taken += 1;
            match msg {
                SpoolMsg::Record(rec) => {
                    status.queued.fetch_sub(1, Ordering::Relaxed);
                    let room = spool
                        .lock()
                        .unwrap()
                        .has_room((w.buf.len() + rec.encoded_len()) as u64);
                    if room {
                        rec.encode_into(&mut w.buf);
                        w.count += 1;
                    } else {
                        // A full spool drops the newest.
                        full += 1;
                    }
                }
                SpoolMsg::Remove { seq, done } => {
                    w.append();
                    w.sync();
                    let mut s = spool.lock().unwrap();
                    if let Err(e) = s.remove(seq) {
                        tracing::error!(error = %e, seq, "cannot delete a replayed spool segment");
                    }
                    status.publish(&s);
                    let _ = done.send(());
                }
                SpoolMsg::Settled {
                    seq,
                    records,
                    settled,
                    done,
                } => {
                    let mut s = spool.lock().unwrap();
                    if let Err(e) = s.mark_settled(seq, records, &settled) {
                        tracing::error!(error = %e, seq, "cannot write down a replay's progress; the next start sends those records again");
                    }
                    status.publish(&s);
                    let _ = done.send(());
                }
                SpoolMsg::Publish => status.publish(&spool.lock().unwrap()),
                SpoolMsg::Close(ack) => {
                    close = Some(ack);
                    break;
                }
            }
            if taken < SPOOL_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if full > 0 {
            dropped(DropReason::SpoolFull, full);
            status.set(SpoolState::Full);
        }
        w.append();
        if close.is_some() || last_sync.elapsed() >= fsync_every {
            w.sync();
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

/// The batch being encoded, and where it goes.
struct Writer<'a> {
    spool: &'a Mutex<Spool>,
    status: &'a SpoolStatus,
    buf: Vec<u8>,
    count: u64,
}

impl Writer<'_> {
    /// Writes the encoded batch; on an I/O error the batch is dropped and
    /// counted.
    fn append(&mut self) {
        if self.count == 0 {
            self.buf.clear();
            return;
        }
        let mut s = self.spool.lock().unwrap();
        match s.append_encoded(&self.buf, self.count) {
            Ok(()) => self.status.wrote(s.has_room(REOPEN_ROOM)),
            Err(e) => {
                let reason = match e {
                    SpoolError::Full => DropReason::SpoolFull,
                    SpoolError::Io(_) => DropReason::SpoolIoError,
                };
                tracing::error!(error = %e, events = self.count, "spool write failed; events dropped");
                dropped(reason, self.count);
                self.status.set(match e {
                    SpoolError::Full => SpoolState::Full,
                    SpoolError::Io(_) => SpoolState::Failing(e.to_string()),
                });
            }
        }
        self.status.publish(&s);
        self.buf.clear();
        self.count = 0;
    }

    fn sync(&self) {
        match self.spool.lock().unwrap().sync() {
            Ok(()) => self.status.synced(),
            Err(e) => {
                tracing::error!(error = %e, "spool fsync failed");
                self.status
                    .set(SpoolState::SyncFailing(format!("fsync: {e}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spool_reopens_only_with_room_a_failing_one_on_the_next_write() {
        let s = SpoolStatus::new(0);
        assert_eq!(s.trouble(), None);
        s.set(SpoolState::Full);
        s.wrote(false);
        assert_eq!(
            s.trouble().as_deref(),
            Some("spool is full (kafka.spool_max_bytes)")
        );
        s.wrote(true);
        assert_eq!(s.trouble(), None);
        s.set(SpoolState::Failing("disk on fire".into()));
        s.wrote(false);
        assert_eq!(s.trouble(), None);
    }

    #[test]
    fn an_fsync_failure_is_not_forgotten_by_the_next_write() {
        let s = SpoolStatus::new(0);
        s.set(SpoolState::SyncFailing("fsync: EIO".into()));
        s.wrote(true);
        assert_eq!(s.trouble().as_deref(), Some("fsync: EIO"));
        s.synced();
        assert_eq!(s.trouble(), None);
    }
}
