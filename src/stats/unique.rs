//! Distinct-recipient estimates: a lock-free HyperLogLog for a campaign's
//! opens and clicks, and an exact-then-dense set for a link's clicks.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A link counts its distinct recipients exactly up to this many (their
/// 64-bit hashes, 8 KiB at most)...
pub(super) const LINK_EXACT_MAX: usize = 1024;
/// ...then with a HyperLogLog of 2^13 one-byte registers (8 KiB, standard
/// error 1.15%; linear counting, within 1% at 2,000, up to ~20,000). Memory
/// grows with the recipients a link really has: 8 KiB per link at most.
pub(super) const LINK_P: u32 = 13;

/// A HyperLogLog distinct-count estimate with lock-free registers,
/// allocated on first use.
pub struct Hll {
    p: u32,
    registers: OnceLock<Box<[AtomicU8]>>,
}

impl Hll {
    pub const fn new(p: u32) -> Hll {
        Hll {
            p,
            registers: OnceLock::new(),
        }
    }

    /// Adds an item by its 64-bit hash.
    pub fn add(&self, hash: u64) {
        let m = 1usize << self.p;
        let regs = self
            .registers
            .get_or_init(|| (0..m).map(|_| AtomicU8::new(0)).collect());
        let (idx, rank) = hll_slot(hash, self.p);
        regs[idx].fetch_max(rank, Ordering::Relaxed);
    }

    /// The estimated number of distinct items.
    pub fn estimate(&self) -> u64 {
        let Some(regs) = self.registers.get() else {
            return 0;
        };
        hll_estimate(regs.iter().map(|r| r.load(Ordering::Relaxed)))
    }

    /// Bytes of registers held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.registers.get().map_or(0, |r| r.len())
    }
}

impl Hll {
    /// The estimated number of distinct items of `a` and `b` together: a
    /// HyperLogLog union is exact (the larger of each register pair).
    pub fn union_estimate(a: &Hll, b: &Hll) -> u64 {
        match (a.registers.get(), b.registers.get()) {
            (None, None) => 0,
            (Some(_), None) => a.estimate(),
            (None, Some(_)) => b.estimate(),
            (Some(x), Some(y)) => hll_estimate(
                x.iter()
                    .zip(y.iter())
                    .map(|(x, y)| x.load(Ordering::Relaxed).max(y.load(Ordering::Relaxed))),
            ),
        }
    }
}

/// Distinct items: exact while few, a HyperLogLog beyond. Not shared
/// between threads (a link's counts live under its campaign's lock).
pub(super) enum Uniques {
    /// Sorted hashes.
    Exact(Vec<u64>),
    Dense(Box<[u8]>),
}

impl Uniques {
    pub(super) fn new() -> Uniques {
        Uniques::Exact(Vec::new())
    }

    pub(super) fn add(&mut self, hash: u64) {
        match self {
            Uniques::Exact(v) => {
                if let Err(i) = v.binary_search(&hash) {
                    if v.len() < LINK_EXACT_MAX {
                        v.insert(i, hash);
                    } else {
                        let mut regs = vec![0u8; 1 << LINK_P].into_boxed_slice();
                        for h in v.iter().copied().chain([hash]) {
                            hll_add(&mut regs, h);
                        }
                        *self = Uniques::Dense(regs);
                    }
                }
            }
            Uniques::Dense(regs) => hll_add(regs, hash),
        }
    }

    pub(super) fn estimate(&self) -> u64 {
        match self {
            Uniques::Exact(v) => v.len() as u64,
            Uniques::Dense(regs) => hll_estimate(regs.iter().copied()),
        }
    }
}

fn hll_add(regs: &mut [u8], hash: u64) {
    let (idx, rank) = hll_slot(hash, regs.len().trailing_zeros());
    regs[idx] = regs[idx].max(rank);
}

/// The register of `hash` among 2^p and its rank: the position of the
/// first set bit in the remaining bits (1-based).
fn hll_slot(hash: u64, p: u32) -> (usize, u8) {
    let idx = (hash >> (64 - p)) as usize;
    let rest = (hash << p) | (1 << (p - 1));
    (idx, rest.leading_zeros() as u8 + 1)
}

/// The HyperLogLog estimate of registers, with linear counting for small
/// cardinalities.
fn hll_estimate(regs: impl ExactSizeIterator<Item = u8>) -> u64 {
    let len = regs.len();
    let m = len as f64;
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for v in regs {
        sum += 2f64.powi(-(v as i32));
        zeros += usize::from(v == 0);
    }
    let alpha = match len {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let raw = alpha * m * m / sum;
    if raw <= 2.5 * m && zeros > 0 {
        (m * (m / zeros as f64).ln()).round() as u64
    } else {
        raw.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    const CAMPAIGN_P: u32 = super::super::CAMPAIGN_P;

    #[test]
    fn hll_is_within_two_percent() {
        let hasher = foldhash::fast::FixedState::with_seed(1);
        for n in [10u64, 1_000, 10_000, 100_000, 1_000_000] {
            let h = Hll::new(CAMPAIGN_P);
            for i in 0..n {
                let r = format!("recipient-{i}");
                h.add(hasher.hash_one(&r));
                h.add(hasher.hash_one(&r)); // repeats do not count
            }
            let e = h.estimate() as f64;
            let err = (e - n as f64).abs() / n as f64;
            assert!(err <= 0.02, "n={n} estimate={e} error={err:.4}");
        }
        assert_eq!(Hll::new(CAMPAIGN_P).estimate(), 0);
        assert_eq!(Hll::new(CAMPAIGN_P).bytes(), 0, "no registers until used");
    }

    #[test]
    fn unions_count_each_item_once() {
        let hasher = foldhash::fast::FixedState::with_seed(3);
        let (a, b) = (Hll::new(CAMPAIGN_P), Hll::new(CAMPAIGN_P));
        for i in 0..10_000 {
            a.add(hasher.hash_one(format!("r-{i}")));
        }
        assert_eq!(Hll::union_estimate(&a, &b), a.estimate());
        for i in 5_000..15_000 {
            b.add(hasher.hash_one(format!("r-{i}")));
        }
        let e = Hll::union_estimate(&a, &b) as f64;
        assert!((e - 15_000.0).abs() / 15_000.0 <= 0.02, "{e}");
    }

    #[test]
    fn link_uniques_are_exact_when_few_and_within_two_percent_beyond() {
        let hasher = foldhash::fast::FixedState::with_seed(7);
        for n in [10u64, 1_000, 2_000, 2_049, 10_000, 100_000] {
            let mut u = Uniques::new();
            for i in 0..n {
                let h = hasher.hash_one(format!("recipient-{i}"));
                u.add(h);
                u.add(h); // twice: counted once
            }
            let est = u.estimate();
            if n as usize <= LINK_EXACT_MAX {
                assert_eq!(est, n, "exact at {n}");
            }
            let err = (est as f64 - n as f64).abs() / n as f64;
            assert!(
                err <= 0.02,
                "{n}: estimate {est}, off by {:.2}%",
                err * 100.0
            );
        }
    }
}
