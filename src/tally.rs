//! Counts the request path bumps on every request, kept per thread and
//! summed only when read.
//!
//! A counter or histogram shared by the serving threads is one cache line
//! every core writes on every request: under load the line moves between
//! cores each time (the metrics registry's counters and histogram buckets
//! showed as ~3% of the CPU at peak). Here each thread adds to its own
//! padded shard; `/metrics` sums the shards, which is cheap and rare.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Shards per tally; threads beyond it share one (still correct, only
/// slower). The serving threads are one per core.
const SHARDS: usize = 16;

/// One thread's cells, on cache lines of their own.
#[repr(align(128))]
struct Shard<const N: usize>([AtomicU64; N]);

/// `N` counters, each the sum of its per-thread cells.
pub struct Tally<const N: usize> {
    shards: [Shard<N>; SHARDS],
}

impl<const N: usize> Tally<N> {
    pub const fn new() -> Self {
        Tally {
            shards: [const { Shard([const { AtomicU64::new(0) }; N]) }; SHARDS],
        }
    }

    /// Adds `n` to counter `i`, in this thread's shard.
    pub fn add(&self, i: usize, n: u64) {
        self.shards[shard()].0[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Counter `i` over every thread.
    pub fn sum(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[i].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// This thread's shard, given out in turn on first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| match s.get() {
        usize::MAX => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(n);
            n
        }
        n => n,
    })
}

/// `SERIES` histograms over the bucket bounds `bounds` (seconds, rising,
/// at most `B`): per series, a count per bucket, the count above the last
/// bound, and the sum in nanoseconds; `B + 2` cells each.
pub struct Histograms<const SERIES: usize, const B: usize, const CELLS: usize> {
    bounds_ns: [u64; B],
    cells: Tally<CELLS>,
}

/// One histogram as read: cumulative counts per bound, the total count and
/// the sum in seconds, the way Prometheus exposes them.
pub struct Snapshot {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl<const SERIES: usize, const B: usize, const CELLS: usize> Histograms<SERIES, B, CELLS> {
    /// `CELLS` must be `SERIES * (B + 2)`.
    pub const fn new(bounds_ns: [u64; B]) -> Self {
        assert!(CELLS == SERIES * (B + 2), "CELLS is SERIES * (B + 2)");
        Histograms {
            bounds_ns,
            cells: Tally::new(),
        }
    }

    /// Records `d` in series `series`.
    pub fn record(&self, series: usize, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_ns.iter().position(|&b| ns <= b).unwrap_or(B);
        let base = series * (B + 2);
        self.cells.add(base + bucket, 1);
        self.cells.add(base + B + 1, ns);
    }

    /// Series `series` as read now; `None` when nothing was recorded in it.
    pub fn snapshot(&self, series: usize) -> Option<Snapshot> {
        let base = series * (B + 2);
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(B);
        for i in 0..B {
            running += self.cells.sum(base + i);
            cumulative.push(running);
        }
        let count = running + self.cells.sum(base + B);
        (count > 0).then(|| Snapshot {
            cumulative,
            count,
            sum_seconds: self.cells.sum(base + B + 1) as f64 / 1e9,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cover_every_thread() {
        static T: Tally<3> = Tally::new();
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        T.add(1, 1);
                    }
                    T.add(2, 5);
                });
            }
        });
        assert_eq!((T.sum(0), T.sum(1), T.sum(2)), (0, 20_000, 100));
    }

    #[test]
    fn histograms_are_cumulative_with_count_and_sum() {
        let h: Histograms<2, 3, 10> = Histograms::new([1_000, 10_000, 100_000]);
        assert!(h.snapshot(1).is_none());
        for us in [0, 1, 5, 50, 500] {
            h.record(1, Duration::from_micros(us));
        }
        let s = h.snapshot(1).unwrap();
        assert_eq!(s.cumulative, [2, 3, 4]);
        assert_eq!(s.count, 5);
        assert!((s.sum_seconds - 556e-6).abs() < 1e-12);
        assert!(h.snapshot(0).is_none());
    }
}
