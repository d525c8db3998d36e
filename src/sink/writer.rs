//! The `file` and `stdout` sinks: NDJSON written by one background thread.
//!
//! The request path only `try_send`s into a bounded channel; the writer
//! thread encodes events in batches and writes each batch with one system
//! call. A write error (a full disk, say) keeps the batch in memory and
//! retries, so nothing accepted is lost while the disk recovers; meanwhile
//! the channel fills and the newest events are dropped and counted.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::counter;

use super::queue::{in_batches, join_by, Intake};
use super::{Health, Sink};
use crate::event::Event;
use crate::metrics::{dropped, DropReason, EVENTS_DELIVERED};

/// Events encoded and written per system call at most.
const BATCH: usize = 1024;
/// Pause between retries of a failed write.
const RETRY_EVERY: Duration = Duration::from_millis(200);

// Events travel boxed: std's bounded channel writes every slot when it is
// made, so unboxed 528-byte events kept 8.6 MiB resident for the default
// 16,384 slots; boxed, a slot is 16 bytes and a move is a pointer copy.
enum Msg {
    Event(Box<Event>),
    /// Write everything before this, sync it, acknowledge, and stop.
    Close {
        deadline: Instant,
        done: SyncSender<()>,
    },
}

enum Target {
    File(File),
    Stdout(io::Stdout),
}

impl Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(f) => f.write(buf),
            Target::Stdout(s) => {
                let mut s = s.lock();
                let n = s.write(buf)?;
                s.flush()?;
                Ok(n)
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Target::File(f) => f.sync_data(),
            Target::Stdout(s) => s.flush(),
        }
    }
}

/// State shared by the request path and the writer thread.
struct Shared {
    /// Events in the channel or in the batch being written.
    pending: Arc<AtomicUsize>,
    /// Set while writes fail, so readiness can say why.
    failing: Mutex<Option<String>>,
    /// Set at shutdown: failing writes are retried until then, no longer,
    /// whichever batch they are in.
    deadline: Mutex<Option<Instant>>,
}

/// A sink that appends NDJSON lines to a file or to stdout.
pub struct WriterSink {
    intake: Intake<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterSink {
    /// Appends to `path`, creating it and its directory when missing.
    pub fn file(path: &Path, capacity: usize) -> anyhow::Result<WriterSink> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("sink.file_path: cannot create {}: {e}", dir.display())
            })?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("sink.file_path: cannot open {}: {e}", path.display()))?;
        end_torn_line(&mut file).map_err(|e| {
            anyhow::anyhow!("sink.file_path: cannot repair {}: {e}", path.display())
        })?;
        Ok(Self::start(Target::File(file), capacity))
    }

    /// Writes to standard output.
    pub fn stdout(capacity: usize) -> WriterSink {
        Self::start(Target::Stdout(io::stdout()), capacity)
    }

    fn start(target: Target, capacity: usize) -> WriterSink {
        let (intake, rx) = Intake::new(capacity);
        let shared = Arc::new(Shared {
            pending: intake.pending_counter(),
            failing: Mutex::new(None),
            deadline: Mutex::new(None),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("trackedge-sink".into())
            .spawn(move || write_loop(target, rx, &s))
            .expect("spawn sink writer thread");
        WriterSink {
            intake,
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }
}

impl Sink for WriterSink {
    fn submit(&self, event: Event) {
        self.intake.offer(Msg::Event(Box::new(event)));
    }

    fn health(&self) -> Health {
        match &*self.shared.failing.lock().unwrap() {
            Some(e) => Health::Down(format!("sink cannot write: {e}")),
            None => Health::Ok,
        }
    }

    fn pending(&self) -> usize {
        self.intake.pending()
    }

    fn shutdown(&self, timeout: Duration) {
        let Some(thread) = self.thread.lock().unwrap().take() else {
            return;
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        *self.shared.deadline.lock().unwrap() = Some(deadline);
        // A little past the deadline: a thread that gave up on the disk
        // drains the queue quickly, counting what it drops.
        let end = deadline + RETRY_EVERY * 2;
        // Behind every event already queued, so all of them are written first.
        if self.intake.close(
            Msg::Close {
                deadline,
                done: done_tx,
            },
            end,
        ) {
            let _ = done_rx.recv_timeout(end.saturating_duration_since(Instant::now()));
        }
        join_by(thread, end);
    }
}

fn write_loop(mut target: Target, rx: Receiver<Msg>, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    in_batches(&rx, BATCH, |batch| {
        let mut close = None;
        let mut n = 0usize;
        for msg in batch.drain(..) {
            match msg {
                Msg::Event(e) => {
                    e.encode_into(&mut buf);
                    buf.push(b'\n');
                    n += 1;
                }
                Msg::Close { deadline, done } => close = Some((deadline, done)),
            }
        }
        let deadline = close
            .as_ref()
            .map(|(d, _)| *d)
            .or(*shared.deadline.lock().unwrap());
        if write_all(&mut target, &buf, shared, deadline) {
            counter!(EVENTS_DELIVERED).increment(n as u64);
        } else {
            dropped(DropReason::IoError, n as u64);
        }
        shared.pending.fetch_sub(n, Ordering::Relaxed);
        buf.clear();
        let Some((_, done)) = close else {
            return ControlFlow::Continue(());
        };
        if let Err(e) = target.sync() {
            tracing::error!(error = %e, "sink: final sync failed");
        }
        let _ = done.send(());
        ControlFlow::Break(())
    });
}

/// Writes `buf` completely, retrying failed writes from where they stopped.
/// Gives up only past `deadline` (at shutdown); returns whether it all went.
fn write_all(target: &mut Target, buf: &[u8], shared: &Shared, deadline: Option<Instant>) -> bool {
    let mut off = 0;
    while off < buf.len() {
        match target.write(&buf[off..]) {
            Ok(0) => {
                if !retry(shared, "write returned 0 bytes".into(), deadline) {
                    return false;
                }
            }
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !retry(shared, e.to_string(), deadline) {
                    return false;
                }
            }
        }
    }
    let mut failing = shared.failing.lock().unwrap();
    if failing.take().is_some() {
        tracing::info!("sink: writes succeed again");
    }
    true
}

/// Ends a line a crash left half-written, so the next event starts on a
/// line of its own instead of being joined to the torn one.
fn end_torn_line(file: &mut File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        tracing::warn!("sink.file_path ends with a torn line (a crash mid-write); ending it");
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// Records a failure and waits before the next try; false once past the
/// deadline (the batch's, or the shutdown's, which reaches a retry in
/// progress too).
fn retry(shared: &Shared, err: String, deadline: Option<Instant>) -> bool {
    let deadline = deadline.or(*shared.deadline.lock().unwrap());
    {
        let mut failing = shared.failing.lock().unwrap();
        if failing.is_none() {
            // Logged once per outage, not once per retry.
            tracing::error!(error = %err, "sink: write failed; keeping events in memory and retrying");
        }
        *failing = Some(err);
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        tracing::error!(
            "sink: shutdown deadline passed with unwritten events; they are counted as dropped"
        );
        return false;
    }
    std::thread::sleep(RETRY_EVERY);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn every_accepted_event_is_on_disk_after_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.ndjson");
        let sink = WriterSink::file(&path, 100_000).unwrap();
        let mut ids = Vec::new();
        for i in 0..5000 {
            let e = Event::new(EventType::Open, i, "GET");
            ids.push(e.event_id.to_string());
            sink.submit(e);
        }
        sink.shutdown(Duration::from_secs(5));
        assert_eq!(sink.pending(), 0);
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(got, ids);
    }
}
