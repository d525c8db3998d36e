//! A campaign's opens and clicks per minute over the last hour, for the
//! live page's chart.
//!
//! Nothing is done per request: once a minute the sampler (the admin
//! side's once-a-second tick, off the request path) copies each campaign's
//! running totals into a small ring; a minute's counts are the difference
//! between consecutive copies. Memory: [`MINUTES`] + 1 copies of four
//! counters per campaign (about 2.5 KiB), so bounded with the campaigns.

use std::collections::VecDeque;

use serde::Serialize;

/// Minutes of history kept and charted.
pub const MINUTES: usize = 60;

/// The totals copied: opens, opens by people, clicks, clicks by people.
pub type Counts = [u64; 4];

/// Copies of a campaign's totals at the start of each minute, oldest first.
pub struct Series {
    /// (minute since the epoch, totals then).
    copies: VecDeque<(i64, Counts)>,
}

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    /// Unix ms at the minute's start.
    pub start_ms: i64,
    pub opens: u64,
    pub opens_human: u64,
    pub clicks: u64,
    pub clicks_human: u64,
}

pub fn minute_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(60_000)
}

impl Series {
    /// A series that starts, at zero, in the minute of `now_ms`.
    pub fn new(now_ms: i64) -> Series {
        let mut copies = VecDeque::with_capacity(MINUTES + 1);
        copies.push_back((minute_of(now_ms), [0; 4]));
        Series { copies }
    }

    /// Keeps a copy of `totals` as of the start of `minute`.
    pub fn push(&mut self, minute: i64, totals: Counts) {
        if self.copies.len() > MINUTES {
            self.copies.pop_front();
        }
        self.copies.push_back((minute, totals));
    }

    /// The last [`MINUTES`] minutes up to the one of `now_ms`, oldest
    /// first, the current minute counted up to `now` (from `totals`).
    pub fn minutes(&self, totals: Counts, now_ms: i64) -> Vec<Minute> {
        let now = minute_of(now_ms);
        let first = now - MINUTES as i64 + 1;
        let mut out: Vec<Minute> = (first..=now)
            .map(|m| Minute {
                start_ms: m * 60_000,
                ..Minute::default()
            })
            .collect();
        let ends = self
            .copies
            .iter()
            .skip(1)
            .map(|(_, c)| *c)
            .chain(std::iter::once(totals));
        for ((m, from), to) in self.copies.iter().zip(ends) {
            if *m < first || *m > now {
                continue;
            }
            let slot = &mut out[(*m - first) as usize];
            let d = |i: usize| to[i].saturating_sub(from[i]);
            slot.opens += d(0);
            slot.opens_human += d(1);
            slot.clicks += d(2);
            slot.clicks_human += d(3);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_differences_of_copies_and_the_ring_is_bounded() {
        let t0 = 1_000 * 60_000 + 30_000; // half way through minute 1000
        let mut s = Series::new(t0);
        // 5 opens (3 by people) in minute 1000, copied at 1001's start.
        s.push(1001, [5, 3, 0, 0]);
        // 2 clicks in minute 1001, then 1 open so far in 1002.
        s.push(1002, [5, 3, 2, 2]);
        let m = s.minutes([6, 3, 2, 2], 1002 * 60_000 + 10_000);
        assert_eq!(m.len(), MINUTES);
        let last3: Vec<_> = m[MINUTES - 3..]
            .iter()
            .map(|m| (m.opens, m.opens_human, m.clicks))
            .collect();
        assert_eq!(last3, [(5, 3, 0), (0, 0, 2), (1, 0, 0)]);
        assert_eq!(m[MINUTES - 1].start_ms, 1002 * 60_000);
        for i in 0..1000 {
            s.push(1003 + i, [6, 3, 2, 2]);
        }
        assert_eq!(s.copies.len(), MINUTES + 1, "bounded");
        let m = s.minutes([6, 3, 2, 2], 2003 * 60_000);
        assert!(m.iter().all(|m| m.opens == 0 && m.clicks == 0));
    }
}
