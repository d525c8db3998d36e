//! A serving thread's own bounded map of answers it worked out before
//! (the User-Agent cache's front, geo by address): a hit takes no lock and
//! touches nothing another serving thread writes. What it holds is only
//! good for the owner that filled it (a cache, a set of databases); a new
//! owner finds it empty. Full, it is emptied and refills with what is
//! current, which keeps memory flat under a flood of new keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

/// A new owner's id, never given out before in this process.
pub fn owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Answers by key, for one owner at a time.
pub struct Remembered<K: ToOwned + ?Sized, V> {
    owner: u64,
    map: HashMap<K::Owned, V, foldhash::fast::RandomState>,
}

impl<K: ToOwned + ?Sized, V> Default for Remembered<K, V> {
    fn default() -> Self {
        Remembered {
            owner: 0,
            map: HashMap::default(),
        }
    }
}

impl<K, V> Remembered<K, V>
where
    K: ToOwned + Hash + Eq + ?Sized,
    K::Owned: Hash + Eq,
    V: Clone,
{
    /// `owner`'s answer for `key`, from `make` the first time; at most
    /// `limit` kept.
    pub fn get_or_make(
        &mut self,
        owner: u64,
        limit: usize,
        key: &K,
        make: impl FnOnce() -> V,
    ) -> V {
        if self.owner != owner {
            self.map.clear();
            self.owner = owner;
        }
        if let Some(v) = self.map.get(key) {
            return v.clone();
        }
        let v = make();
        if self.map.len() >= limit {
            self.map.clear();
        }
        self.map.insert(key.to_owned(), v.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_once_per_owner_and_stays_bounded() {
        let mut r = Remembered::<str, u32>::default();
        let (a, b) = (owner_id(), owner_id());
        assert_eq!(r.get_or_make(a, 2, "x", || 1), 1);
        assert_eq!(r.get_or_make(a, 2, "x", || 2), 1, "remembered");
        assert_eq!(
            r.get_or_make(b, 2, "x", || 3),
            3,
            "another owner's answer is not reused"
        );
        r.get_or_make(b, 2, "y", || 4);
        r.get_or_make(b, 2, "z", || 5);
        assert!(r.map.len() <= 2);
    }
}
