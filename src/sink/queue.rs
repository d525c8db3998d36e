//! The bounded queue between the request path and a sink's thread, and
//! the batching loop that thread runs. Both sinks use it; it knows nothing
//! of either.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::{dropped, DropReason, EVENTS_ACCEPTED_COUNT};

/// A sink thread naps this long after each batch so events gather in its
/// queue meanwhile: a consumer parked in `recv` costs every sender a futex
/// wake-up (a system call and a context switch per event under load); one
/// that naps does not.
const COALESCE: Duration = Duration::from_millis(1);

/// A sink thread's loop: waits for a message, takes what else is queued (at
/// most `max` in all), hands the batch to `handle`, then naps [`COALESCE`]
/// while the next batch gathers. Ends when `handle` breaks or every sender
/// is gone.
pub fn in_batches<M>(
    rx: &Receiver<M>,
    max: usize,
    handle: impl FnMut(&mut Vec<M>) -> ControlFlow<()>,
) {
    batches(rx, max, None, handle, || {});
}

/// [`in_batches`], calling `tick` after each batch's nap and whenever
/// `every` passes without a message: for work the thread does besides its
/// queue (the Kafka feeder serves librdkafka's delivery reports there).
pub fn in_batches_ticking<M>(
    rx: &Receiver<M>,
    max: usize,
    every: Duration,
    handle: impl FnMut(&mut Vec<M>) -> ControlFlow<()>,
    tick: impl FnMut(),
) {
    batches(rx, max, Some(every), handle, tick);
}

fn batches<M>(
    rx: &Receiver<M>,
    max: usize,
    every: Option<Duration>,
    mut handle: impl FnMut(&mut Vec<M>) -> ControlFlow<()>,
    mut tick: impl FnMut(),
) {
    let mut batch = Vec::with_capacity(max);
    loop {
        let first = match every {
            None => rx.recv().ok(),
            Some(every) => match rx.recv_timeout(every) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tick();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if handle(&mut batch).is_break() {
            return;
        }
        batch.clear();
        std::thread::sleep(COALESCE);
        tick();
    }
}

/// The request path's side of a bounded queue in front of a sink thread:
/// counts every event accepted, and every one it cannot queue as dropped
/// with the reason.
pub struct Intake<M> {
    tx: SyncSender<M>,
    /// Events queued or being handled by the thread; it calls [`Self::settled`].
    pending: Arc<AtomicUsize>,
    closed: AtomicBool,
}

impl<M> Intake<M> {
    /// A queue of `capacity` messages and the receiver the thread drains.
    pub fn new(capacity: usize) -> (Intake<M>, Receiver<M>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let intake = Intake {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
        };
        (intake, rx)
    }

    /// Queues one event's message without waiting.
    pub fn offer(&self, msg: M) {
        EVENTS_ACCEPTED_COUNT.add(0, 1);
        if self.closed.load(Ordering::Relaxed) {
            dropped(DropReason::Shutdown, 1);
            return;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(msg) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            dropped(
                match e {
                    TrySendError::Full(_) => DropReason::QueueFull,
                    TrySendError::Disconnected(_) => DropReason::Shutdown,
                },
                1,
            );
        }
    }

    /// The counter the thread lowers as it delivers or drops events.
    pub fn pending_counter(&self) -> Arc<AtomicUsize> {
        self.pending.clone()
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Refuses events from now on and sends `last` behind every queued
    /// one, waiting for room until `deadline`; false when the thread is
    /// gone or the queue stayed full.
    pub fn close(&self, last: M, deadline: Instant) -> bool {
        self.closed.store(true, Ordering::Relaxed);
        send_by(&self.tx, last, deadline)
    }
}

/// Sends `msg`, waiting for room until `deadline`; false when the receiver
/// is gone or the channel stayed full. For shutdown, which must not wait
/// without a limit.
pub fn send_by<M>(tx: &SyncSender<M>, mut msg: M, deadline: Instant) -> bool {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TrySendError::Full(_)) => return false,
        }
    }
}

/// Waits for `thread` to end until `deadline`; false (and the thread left
/// to finish on its own) when it does not. Shutdown never waits without a
/// limit: the orchestrator's SIGKILL would lose more than a late thread.
pub fn join_by(thread: std::thread::JoinHandle<()>, deadline: Instant) -> bool {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(
                thread = thread.thread().name().unwrap_or("?"),
                "sink thread did not finish within the shutdown budget"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = thread.join();
    true
}
