//! What replays have delivered: each spooled record's progress across
//! attempts, and the reports of the attempt in flight.

use std::sync::Mutex;

use super::wire::Outcome;

/// Tries a spooled record gets in replay before it is given up and counted
/// dropped: a record the broker keeps refusing for a reason it does not call
/// permanent must not hold the spool (and re-send its segment) forever.
pub const MAX_TRIES: u8 = 5;

/// What became of each record of the segment being replayed, across
/// attempts: only records not yet delivered are sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub seq: u64,
    /// Delivered (or refused for good, and counted) by some attempt.
    pub settled: Vec<bool>,
    /// Failed sends per record.
    pub tries: Vec<u8>,
}

impl Progress {
    pub fn new(seq: u64, records: usize) -> Progress {
        Progress {
            seq,
            settled: vec![false; records],
            tries: vec![0; records],
        }
    }

    /// Records to send in the next attempt.
    pub fn to_send(&self) -> Vec<u32> {
        (0..self.settled.len())
            .filter(|&i| !self.settled[i] && self.tries[i] < MAX_TRIES)
            .map(|i| i as u32)
            .collect()
    }

    /// Takes an attempt's reports in: `results[k]` is the outcome of
    /// `sent[k]` (None: not sent, or no report). Returns how many records
    /// this gave up on.
    pub fn merge(&mut self, sent: &[u32], results: &[Option<Outcome>]) -> u64 {
        let mut gave_up = 0;
        for (&i, r) in sent.iter().zip(results) {
            let i = i as usize;
            match r {
                Some(Outcome::Delivered) => self.settled[i] = true,
                Some(Outcome::Refused) => {
                    self.tries[i] = self.tries[i].saturating_add(1);
                    if self.tries[i] == MAX_TRIES {
                        gave_up += 1;
                    }
                }
                Some(Outcome::NotSent) | None => {}
            }
        }
        gave_up
    }

    /// Every record is delivered or given up.
    pub fn finished(&self) -> bool {
        (0..self.settled.len()).all(|i| self.settled[i] || self.tries[i] >= MAX_TRIES)
    }

    /// Marks records settled by an earlier run (the spool's `.settled`
    /// file); indices past the segment are ignored.
    pub fn settle_all(&mut self, indices: &[u32]) {
        for &i in indices {
            if let Some(s) = self.settled.get_mut(i as usize) {
                *s = true;
            }
        }
    }

    /// The records accounted for so far (delivered, or given up and
    /// counted dropped), for the spool to write down: a next start sends
    /// neither again.
    pub fn accounted_indices(&self) -> Vec<u32> {
        (0..self.settled.len())
            .filter(|&i| self.settled[i] || self.tries[i] >= MAX_TRIES)
            .map(|i| i as u32)
            .collect()
    }
}

/// A segment's replay interrupted by shutdown, settled once every
/// delivery report is in.
#[derive(Debug)]
pub struct Parked {
    pub progress: Progress,
    /// Records lost to damage, to count once the segment is finished.
    pub damaged: u64,
    /// Records given up by the interrupted attempt (already merged).
    pub gave_up: u64,
}

/// One attempt's delivery reports, by position in the attempt.
#[derive(Debug)]
struct Attempt {
    id: u32,
    /// The segment, and the record index of each position.
    seq: u64,
    sent: Vec<u32>,
    results: Vec<Option<Outcome>>,
    /// Reports still to come.
    left: usize,
}

/// The replay attempt in progress, settled by delivery reports.
#[derive(Default)]
pub struct ReplayBook {
    current: Mutex<Option<Attempt>>,
    /// The progress of a segment whose replay the stop interrupted; its
    /// attempt stays current so the final flush's reports still settle it.
    parked: Mutex<Option<(Progress, u64)>>,
}

impl ReplayBook {
    /// Starts attempt `id` at records `sent` of segment `seq`; reports
    /// come by position in `sent`.
    pub(super) fn begin(&self, id: u32, seq: u64, sent: Vec<u32>) {
        let n = sent.len();
        *self.current.lock().unwrap() = Some(Attempt {
            id,
            seq,
            sent,
            results: vec![None; n],
            left: n,
        });
    }

    /// Keeps the progress of the segment the stop interrupted (with its
    /// `damaged` count) for [`ReplayBook::take_parked`].
    pub(super) fn park(&self, progress: Progress, damaged: u64) {
        *self.parked.lock().unwrap() = Some((progress, damaged));
    }

    /// At shutdown, once librdkafka has reported on every record: the
    /// interrupted segment's progress with its last attempt merged in.
    pub fn take_parked(&self) -> Option<Parked> {
        let (mut progress, damaged) = self.parked.lock().unwrap().take()?;
        let mut gave_up = 0;
        if let Some(a) = self.current.lock().unwrap().take() {
            if a.seq == progress.seq {
                gave_up = progress.merge(&a.sent[..a.results.len()], &a.results);
            }
        }
        Some(Parked {
            progress,
            damaged,
            gave_up,
        })
    }

    /// The delivery report of record `index` of attempt `attempt`; reports
    /// of an earlier attempt are ignored.
    pub fn settle(&self, attempt: u32, index: u32, outcome: Outcome) {
        let mut cur = self.current.lock().unwrap();
        if let Some(a) = cur.as_mut().filter(|a| a.id == attempt) {
            if let Some(r @ None) = a.results.get_mut(index as usize) {
                *r = Some(outcome);
                a.left -= 1;
            }
        }
    }

    /// Records past `sent` of the attempt were never sent: no report comes.
    pub(super) fn unsent(&self, sent: usize) {
        if let Some(a) = self.current.lock().unwrap().as_mut() {
            let missing = a.results.len().saturating_sub(sent);
            a.results.truncate(sent);
            a.left = a.left.saturating_sub(missing);
        }
    }

    /// The attempt's results once every report is in.
    pub(super) fn finished(&self) -> Option<Vec<Option<Outcome>>> {
        let mut cur = self.current.lock().unwrap();
        if cur.as_ref().is_some_and(|a| a.left == 0) {
            return cur.take().map(|a| a.results);
        }
        None
    }

    /// Ends the attempt with what came in.
    pub(super) fn abandon(&self) -> Vec<Option<Outcome>> {
        self.current
            .lock()
            .unwrap()
            .take()
            .map(|a| a.results)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_undelivered_records_are_sent_again() {
        let mut p = Progress::new(9, 4);
        assert_eq!(p.to_send(), [0, 1, 2, 3]);
        // Records 0 and 2 delivered, 1 failed, 3 never sent (Kafka went away).
        use Outcome::*;
        let gave_up = p.merge(
            &[0, 1, 2],
            &[Some(Delivered), Some(Refused), Some(Delivered)],
        );
        assert_eq!(gave_up, 0);
        assert_eq!(p.to_send(), [1, 3]);
        assert!(!p.finished());
        p.merge(&[1, 3], &[Some(Delivered), Some(Delivered)]);
        assert!(p.finished());
        assert!(p.to_send().is_empty());
    }

    #[test]
    fn kafka_being_away_costs_no_tries() {
        let mut p = Progress::new(1, 1);
        for _ in 0..20 {
            assert_eq!(p.merge(&[0], &[Some(Outcome::NotSent)]), 0);
        }
        assert_eq!(p.to_send(), [0], "still to send, never given up");
    }

    #[test]
    fn a_record_refused_every_time_is_given_up_once() {
        let mut p = Progress::new(1, 2);
        let mut gave_up = 0;
        for _ in 0..10 {
            let ids = p.to_send();
            if ids.is_empty() {
                break;
            }
            let results: Vec<_> = ids
                .iter()
                .map(|&i| {
                    Some(if i == 0 {
                        Outcome::Delivered
                    } else {
                        Outcome::Refused
                    })
                })
                .collect();
            gave_up += p.merge(&ids, &results);
        }
        assert_eq!(gave_up, 1);
        assert_eq!(p.tries[1], MAX_TRIES);
        assert!(p.finished());
        assert_eq!(
            p.accounted_indices(),
            [0, 1],
            "a given-up record is not sent again"
        );
    }

    #[test]
    fn reports_of_an_earlier_attempt_are_ignored() {
        let book = ReplayBook::default();
        use Outcome::*;
        book.begin(2, 1, vec![0, 1]);
        book.settle(1, 0, Refused);
        assert_eq!(book.finished(), None, "attempt 1 is not the current one");
        book.settle(2, 0, Delivered);
        book.settle(2, 0, Refused);
        assert_eq!(book.finished(), None, "a record settles once");
        book.settle(2, 1, Refused);
        assert_eq!(book.finished(), Some(vec![Some(Delivered), Some(Refused)]));
        assert_eq!(book.finished(), None, "a finished attempt is ended");
    }

    #[test]
    fn unsent_records_end_the_attempt_early() {
        let book = ReplayBook::default();
        book.begin(3, 1, (0..5).collect());
        book.settle(3, 0, Outcome::Delivered);
        book.settle(3, 1, Outcome::Delivered);
        book.unsent(2);
        assert_eq!(
            book.finished(),
            Some(vec![Some(Outcome::Delivered), Some(Outcome::Delivered)])
        );
    }

    #[test]
    fn a_parked_replay_takes_the_reports_that_came_after_the_stop() {
        let book = ReplayBook::default();
        let mut p = Progress::new(7, 6);
        p.settle_all(&[0, 9]);
        assert_eq!(
            p.accounted_indices(),
            [0],
            "an index past the segment is ignored"
        );
        book.begin(4, 7, vec![1, 2, 3, 4, 5]);
        book.park(p, 0);
        // The final flush delivers some of the attempt's records.
        book.settle(4, 0, Outcome::Delivered);
        book.settle(4, 2, Outcome::Delivered);
        book.settle(4, 3, Outcome::NotSent);
        let parked = book.take_parked().unwrap();
        assert_eq!(parked.progress.accounted_indices(), [0, 1, 3]);
        assert!(!parked.progress.finished());
        assert!(book.take_parked().is_none());
    }
}
