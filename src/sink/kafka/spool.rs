//! The disk spool: Kafka records that could not be delivered yet.
//!
//! A directory of append-only segment files, `{seq:016x}.spool`. New records
//! go to the active segment; replay reads sealed segments oldest first and a
//! segment is deleted only once every record in it has been acknowledged (or
//! written back to the spool). Each record is framed as
//!
//! ```text
//! magic u32 | len u32 | crc32 u32 (over len and body) | body (len bytes)
//! body = ts_ms i64 | key_len u16 | key | n_headers u8 | (name_len u8 | name | value_len u16 | value)* | payload
//! ```
//!
//! all little-endian. The magic lets recovery find the next record after a
//! damaged one; the checksum tells an intact record from a torn or flipped
//! one. This module only does file I/O; it never talks to Kafka.
//!
//! Recovery never writes: a node that crashed on a full disk must start on
//! that full disk. A segment with damage is renamed `{seq:016x}.damaged`
//! (a rename needs no space), its damage counted once, and replayed like
//! any other (reading skips the damage); a segment that cannot be read at
//! all is renamed `{seq:016x}.bad` and set aside for an operator.
//!
//! A replay that shutdown interrupts leaves `{seq:016x}.settled` beside its
//! segment: the records it did deliver, which the next start neither sends
//! nor counts again (the books balance across the restart).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use super::frame::{scan, Scan, SpoolRecord};

/// A closed segment waiting for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    /// Intact records it should hold.
    pub events: u64,
    /// Bytes of it that hold them: a write that failed halfway leaves a
    /// tail past this that is never read.
    pub bytes: u64,
    /// Damage in it was found (and counted) at a start.
    pub damaged: bool,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Damaged records skipped, counted once (not again at the next start).
    pub corrupt: usize,
    /// Segments that could not be read, set aside as `.bad` files.
    pub set_aside: usize,
}

/// The spool directory. Not thread-safe by itself: the Kafka sink owns it
/// behind a mutex, with one writer thread appending.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sealed: VecDeque<Sealed>,
    active: Option<(u64, File)>,
    active_events: u64,
    active_bytes: u64,
    next_seq: u64,
    dirty: bool,
}

/// Why a record was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full")]
    Full,
    #[error("spool I/O: {0}")]
    Io(#[from] io::Error),
}

const LIVE: &str = "spool";
const DAMAGED: &str = "damaged";
const BAD: &str = "bad";
/// Beside a segment: the indices (u32, little-endian) of its records an
/// interrupted replay delivered, so the next start neither sends nor counts
/// them again.
const SETTLED: &str = "settled";

fn settled_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.{SETTLED}"))
}

fn seg_path(dir: &Path, seq: u64, damaged: bool) -> PathBuf {
    dir.join(format!(
        "{seq:016x}.{}",
        if damaged { DAMAGED } else { LIVE }
    ))
}

/// Renames a segment; false (logged) when even that fails.
fn rename(dir: &Path, seq: u64, from: &str, to: &str) -> bool {
    let (a, b) = (
        dir.join(format!("{seq:016x}.{from}")),
        dir.join(format!("{seq:016x}.{to}")),
    );
    match fs::rename(&a, &b) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, file = %a.display(), "cannot rename a spool segment");
            false
        }
    }
}

impl Spool {
    /// Opens (creating) the spool in `dir` and recovers what is there,
    /// without writing: every intact record is kept for replay, damaged
    /// segments are marked and their damage counted once, unreadable ones
    /// set aside. Only an unusable directory is an error.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<(Spool, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut segs: Vec<(u64, String)> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (seq, ext) = name.split_once('.')?;
                Some((u64::from_str_radix(seq, 16).ok()?, ext.to_owned()))
            })
            .filter(|(_, ext)| [LIVE, DAMAGED, BAD].contains(&ext.as_str()))
            .collect();
        segs.sort_unstable();
        let next_seq = segs.last().map_or(1, |(s, _)| s + 1);
        let mut sealed = VecDeque::new();
        let mut found = Recovered::default();
        for (seq, ext) in segs {
            if ext == BAD {
                continue;
            }
            let was_damaged = ext == DAMAGED;
            let data = match fs::read(seg_path(dir, seq, was_damaged)) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, seq, "cannot read a spool segment; setting it aside as .bad");
                    rename(dir, seq, &ext, BAD);
                    found.set_aside += 1;
                    continue;
                }
            };
            let s = scan(&data);
            if s.records.is_empty() {
                if let Err(e) = fs::remove_file(seg_path(dir, seq, was_damaged)) {
                    tracing::warn!(error = %e, seq, "cannot delete an empty spool segment");
                }
                if !was_damaged {
                    found.corrupt += s.corrupt;
                }
                continue;
            }
            let settled = Self::read_settled(dir, seq)
                .into_iter()
                .filter(|&i| (i as usize) < s.records.len())
                .count() as u64;
            let mut damaged = was_damaged;
            if s.corrupt > 0 && !was_damaged {
                // Counted now; the new name says so at the next start.
                found.corrupt += s.corrupt;
                damaged = rename(dir, seq, LIVE, DAMAGED);
            }
            sealed.push_back(Sealed {
                seq,
                events: s.records.len() as u64 - settled,
                bytes: data.len() as u64,
                damaged,
            });
        }
        // A settled list whose segment is gone is stale.
        for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some((seq, SETTLED)) = name.to_str().and_then(|n| n.split_once('.')) else {
                continue;
            };
            if !u64::from_str_radix(seq, 16).is_ok_and(|q| sealed.iter().any(|s| s.seq == q)) {
                let _ = fs::remove_file(e.path());
            }
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            sealed,
            active: None,
            active_events: 0,
            active_bytes: 0,
            next_seq,
            dirty: false,
        };
        Ok((spool, found))
    }

    /// Events and bytes on disk.
    pub fn totals(&self) -> (u64, u64) {
        let (e, b) = self
            .sealed
            .iter()
            .fold((0, 0), |(e, b), s| (e + s.events, b + s.bytes));
        (e + self.active_events, b + self.active_bytes)
    }

    /// Appends already-encoded records (`count` of them). Refuses the whole
    /// batch when it would pass the size limit.
    pub fn append_encoded(&mut self, buf: &[u8], count: u64) -> Result<(), SpoolError> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.totals().1 + buf.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full);
        }
        if self.active_bytes >= self.segment_bytes {
            self.seal()?;
        }
        if self.active.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, seq, false))?;
            self.active = Some((seq, f));
        }
        let (_, f) = self.active.as_mut().unwrap();
        if let Err(e) = f.write_all(buf) {
            // A write that stopped halfway (a full disk) may have left whole
            // records of a batch counted as dropped: cut them off, so they
            // are never replayed too. Should even that fail, the segment's
            // `bytes` ends before them, and replay reads no further.
            let _ = f.set_len(self.active_bytes);
            let _ = self.seal();
            return Err(e.into());
        }
        self.active_events += count;
        self.active_bytes += buf.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Whether a batch of `bytes` would fit.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.totals().1 + bytes <= self.max_bytes
    }

    /// Makes appended records durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            if let Some((_, f)) = &self.active {
                f.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Closes the active segment (synced) so replay can take it.
    pub fn seal(&mut self) -> io::Result<()> {
        if let Some((seq, f)) = self.active.take() {
            // The segment is queued for replay whatever the sync says: its
            // records were written and must be replayed or counted.
            let synced = f.sync_data();
            self.dirty = false;
            if self.active_events > 0 {
                self.sealed.push_back(Sealed {
                    seq,
                    events: self.active_events,
                    bytes: self.active_bytes,
                    damaged: false,
                });
            } else {
                let _ = fs::remove_file(seg_path(&self.dir, seq, false));
            }
            self.active_events = 0;
            self.active_bytes = 0;
            synced?;
        }
        Ok(())
    }

    /// Whether the active segment holds records.
    pub fn active_has_records(&self) -> bool {
        self.active_events > 0
    }

    /// The oldest sealed segment.
    pub fn oldest(&self) -> Option<Sealed> {
        self.sealed.front().copied()
    }

    /// Reads a sealed segment's intact records, up to its known length.
    pub fn read(&self, seg: &Sealed) -> io::Result<Scan> {
        Self::read_sealed(&self.dir, seg)
    }

    /// [`Spool::read`] without the spool: sealed segments do not change.
    pub fn read_sealed(dir: &Path, seg: &Sealed) -> io::Result<Scan> {
        let mut data = fs::read(seg_path(dir, seg.seq, seg.damaged))?;
        data.truncate(seg.bytes as usize);
        Ok(scan(&data))
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The records of segment `seq` an interrupted replay delivered
    /// ([`Spool::mark_settled`]); none when there is no list.
    pub fn read_settled(dir: &Path, seq: u64) -> Vec<u32> {
        fs::read(settled_path(dir, seq))
            .map(|b| {
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes down that records `settled` (sorted, distinct) of segment
    /// `seq`, which holds `records`, are delivered: replaced whole (a
    /// temporary file renamed over it) and synced; the segment then counts
    /// only the others.
    pub fn mark_settled(&mut self, seq: u64, records: usize, settled: &[u32]) -> io::Result<()> {
        let Some(seg) = self.sealed.iter_mut().find(|s| s.seq == seq) else {
            return Ok(());
        };
        let tmp = self.dir.join(format!("{seq:016x}.{SETTLED}.tmp"));
        let bytes: Vec<u8> = settled.iter().flat_map(|i| i.to_le_bytes()).collect();
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, settled_path(&self.dir, seq))?;
        seg.events = records.saturating_sub(settled.len()) as u64;
        Ok(())
    }

    /// Deletes a sealed segment whose records are all accounted for.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        let Some(i) = self.sealed.iter().position(|s| s.seq == seq) else {
            return Ok(());
        };
        match fs::remove_file(settled_path(&self.dir, seq)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let seg = self.sealed.remove(i).expect("found above");
        match fs::remove_file(seg_path(&self.dir, seq, seg.damaged)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Takes a segment that cannot be read out of the queue, renamed
    /// `.bad` for an operator to look at; returns the events it held.
    pub fn set_aside(&mut self, seq: u64) -> u64 {
        let Some(i) = self.sealed.iter().position(|s| s.seq == seq) else {
            return 0;
        };
        let seg = self.sealed.remove(i).expect("found above");
        let _ = fs::remove_file(settled_path(&self.dir, seq));
        let from = if seg.damaged { DAMAGED } else { LIVE };
        rename(&self.dir, seq, from, BAD);
        seg.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::kafka::frame::tests::{encode, rec};

    #[test]
    fn open_recovers_damaged_segments_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<_> = (0..10).map(rec).collect();
        let mut b = encode(&recs);
        b.truncate(b.len() - 3);
        fs::write(dir.path().join("0000000000000007.spool"), &b).unwrap();
        let (spool, found) = Spool::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        assert_eq!(found.corrupt, 1);
        assert_eq!(spool.totals().0, 9);
        let seg = spool.oldest().unwrap();
        assert_eq!(spool.read(&seg).unwrap().records, recs[..9]);
        // Marked by a rename, not rewritten: the bytes are as they were.
        assert_eq!(
            fs::read(dir.path().join("0000000000000007.damaged")).unwrap(),
            b
        );
        drop(spool);
        let (spool, found) = Spool::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        assert_eq!(
            (found.corrupt, spool.totals().0),
            (0, 9),
            "counted once, not at every start"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_segment_is_set_aside_and_the_rest_recovered() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("0000000000000002.spool"), encode(&[rec(2)])).unwrap();
        // A directory where a segment file should be: reading it fails.
        fs::create_dir(dir.path().join("0000000000000001.spool")).unwrap();
        let (spool, found) = Spool::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        assert_eq!(found.set_aside, 1);
        assert_eq!(spool.totals().0, 1);
        assert!(dir.path().join("0000000000000001.bad").exists());
        assert_eq!(spool.oldest().unwrap().seq, 2);
    }

    #[test]
    fn append_seal_replay_remove_and_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), 4096, 1024).unwrap();
        let mut n = 0u64;
        loop {
            let b = encode(&[rec(n as i64)]);
            match spool.append_encoded(&b, 1) {
                Ok(()) => n += 1,
                Err(SpoolError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(n > 10);
        assert!(spool.totals().1 <= 4096);
        assert_eq!(spool.totals().0, n);
        spool.seal().unwrap();
        let mut seen = 0;
        while let Some(s) = spool.oldest() {
            let scan = spool.read(&s).unwrap();
            assert_eq!(scan.records.len() as u64, s.events);
            for r in &scan.records {
                assert_eq!(*r, rec(seen));
                seen += 1;
            }
            spool.remove(s.seq).unwrap();
        }
        assert_eq!(seen as u64, n);
        assert_eq!(spool.totals(), (0, 0));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn settled_records_are_written_down_and_counted_out_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        let recs: Vec<_> = (0..5).map(rec).collect();
        s.append_encoded(&encode(&recs), 5).unwrap();
        s.seal().unwrap();
        let seq = s.oldest().unwrap().seq;
        s.mark_settled(seq, 5, &[1, 3]).unwrap();
        assert_eq!(s.totals().0, 3);
        drop(s);
        let (mut s, _) = Spool::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        assert_eq!(s.totals().0, 3, "counted out again at the next start");
        assert_eq!(Spool::read_settled(dir.path(), seq), [1, 3]);
        s.remove(seq).unwrap();
        assert!(
            Spool::read_settled(dir.path(), seq).is_empty(),
            "removed with its segment"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
