//! User-Agent parsing with woothee into the event's `ua` object, behind a
//! bounded cache.
//!
//! Real traffic repeats a small set of User-Agents (a few mail clients and
//! browsers), so each distinct string is parsed and classified once; a hit
//! costs one hash and one `Arc` clone. The cache is sharded (no global
//! lock) and bounded: when full it is emptied and refills with what is
//! current, which keeps memory flat under a flood of random strings.
//!
//! In front of it each serving thread keeps its own small map of the
//! strings it saw, each with a handle of its own on the shared parsed value:
//! a hit there takes no shard lock and touches no reference count another
//! serving thread writes (with the shared map alone, both per request: cache
//! lines moving between cores, ~3% of the CPU at peak).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use metrics::{counter, Counter};

use super::agent::{Classifier, UaVerdict};
use super::remember::{owner_id, Remembered};
use crate::event::{SealedUserAgent, UserAgent};
use crate::metrics::UA_CACHE_EVICTIONS;

/// Longest User-Agent kept; real ones are a few hundred bytes.
pub const MAX_UA_BYTES: usize = 512;

/// woothee marks what it cannot tell with this value; events omit it.
const UNKNOWN: &str = "UNKNOWN";

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != UNKNOWN).then(|| s.to_owned())
}

/// A parsed and classified User-Agent.
#[derive(Debug, Clone)]
pub struct UaInfo {
    pub ua: Arc<SealedUserAgent>,
    pub verdict: UaVerdict,
}

/// Parses User-Agent strings (uncached).
pub struct UaParser {
    parser: woothee::parser::Parser,
}

impl Default for UaParser {
    fn default() -> Self {
        UaParser {
            parser: woothee::parser::Parser::new(),
        }
    }
}

impl UaParser {
    /// The `ua` object for a raw header value (already lossily decoded),
    /// its JSON written once.
    pub fn parse(&self, raw: &str) -> Arc<SealedUserAgent> {
        let raw = truncate(raw, MAX_UA_BYTES);
        let mut ua = UserAgent {
            raw: raw.to_owned(),
            name: None,
            version: None,
            os: None,
            os_version: None,
            category: None,
            vendor: None,
        };
        if let Some(r) = self.parser.parse(raw) {
            ua.name = known(r.name);
            ua.version = known(r.version);
            ua.os = known(r.os);
            ua.os_version = known(&r.os_version);
            ua.category = known(r.category);
            ua.vendor = known(r.vendor);
        }
        Arc::new(ua.seal())
    }
}

/// Parsed and classified User-Agents by raw string.
pub struct UaCache {
    /// Tells this cache's entries in a thread's [`FRONT`] from an earlier
    /// one's (a reload builds a new cache with the new rules).
    id: u64,
    parser: UaParser,
    map: DashMap<Box<str>, UaInfo, foldhash::fast::RandomState>,
    capacity: usize,
    /// Times the cache was full and emptied, also counted in
    /// `trackedge_ua_cache_evictions_total`.
    evictions: AtomicU64,
    evictions_total: Counter,
}

impl UaCache {
    pub fn new(capacity: usize) -> UaCache {
        UaCache {
            id: owner_id(),
            parser: UaParser::default(),
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            capacity,
            evictions: AtomicU64::new(0),
            evictions_total: counter!(UA_CACHE_EVICTIONS),
        }
    }

    /// The parsed User-Agent for `raw`, with what `classifier` makes of it;
    /// both computed once per distinct string. The cache belongs to one
    /// classifier: a reload builds a new cache with the new rules.
    pub fn get(&self, raw: &str, classifier: &Classifier) -> UaInfo {
        let raw = truncate(raw, MAX_UA_BYTES);
        if self.capacity == 0 {
            return self.shared(raw, classifier);
        }
        let limit = FRONT_ENTRIES.min(self.capacity);
        FRONT.with(|front| {
            front.borrow_mut().get_or_make(self.id, limit, raw, || {
                let shared = self.shared(raw, classifier);
                UaInfo {
                    ua: Arc::new(SealedUserAgent::clone(&shared.ua)),
                    verdict: shared.verdict,
                }
            })
        })
    }

    /// The shared map's entry for `raw`, parsed and classified on a miss.
    fn shared(&self, raw: &str, classifier: &Classifier) -> UaInfo {
        if let Some(hit) = self.map.get(raw) {
            return hit.clone();
        }
        let info = UaInfo {
            ua: self.parser.parse(raw),
            verdict: classifier.ua_verdict(raw),
        };
        if self.capacity > 0 {
            if self.map.len() >= self.capacity {
                self.map.clear();
                self.evictions.fetch_add(1, Ordering::Relaxed);
                self.evictions_total.increment(1);
            }
            self.map.insert(raw.into(), info.clone());
        }
        info
    }

    /// Times the cache was full and emptied.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Strings each serving thread keeps in front of the shared map (at most
/// `agent.ua_cache_entries`): a campaign's audience sends a few hundred,
/// the load test's corpus 2,269. At 1,024 that corpus emptied it again and
/// again, and the refills cost more than the shared map saved. An entry is
/// the string and a handle on the shared value (~0.2 KiB; a copy of the
/// value was ~1 KiB, 3 MiB per serving thread full).
const FRONT_ENTRIES: usize = 4096;

thread_local! {
    /// This thread's front map, for the [`UaCache`] that filled it.
    static FRONT: RefCell<Remembered<str, UaInfo>> = RefCell::new(Remembered::default());
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn chrome_on_windows() {
        let ua = UaParser::default().parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(ua.name.as_deref(), Some("Chrome"));
        assert_eq!(ua.version.as_deref(), Some("120.0.0.0"));
        assert_eq!(ua.os.as_deref(), Some("Windows 10"));
        assert_eq!(ua.category.as_deref(), Some("pc"));
        assert_eq!(ua.vendor.as_deref(), Some("Google"));
    }

    #[test]
    fn unknown_values_are_omitted() {
        let ua = UaParser::default().parse("curl-ish/0");
        assert_eq!(ua.raw, "curl-ish/0");
        assert!(ua.name.is_none());
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let s = "é".repeat(400);
        assert!(truncate(&s, MAX_UA_BYTES).len() <= MAX_UA_BYTES);
    }

    #[test]
    fn the_cache_is_bounded_and_hits_share_one_parse() {
        let classifier = Classifier::new(&Config::from_toml("").unwrap().agent);
        let cache = UaCache::new(100);
        let a = cache.get("Mozilla/5.0 (compatible; Googlebot/2.1)", &classifier);
        let b = cache.get("Mozilla/5.0 (compatible; Googlebot/2.1)", &classifier);
        assert!(Arc::ptr_eq(&a.ua, &b.ua));
        assert!(a.verdict.generic, "the generic list knows Googlebot");
        for i in 0..1000 {
            cache.get(&format!("random-{i}"), &classifier);
        }
        assert!(cache.len() <= 100);
        assert!(cache.evictions() >= 9);
    }

    #[test]
    fn each_thread_keeps_its_own_handle_on_one_parsed_value() {
        let classifier = Classifier::new(&Config::from_toml("").unwrap().agent);
        let cache = UaCache::new(100);
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/120.0";
        let here = cache.get(ua, &classifier);
        let there = std::thread::scope(|s| s.spawn(|| cache.get(ua, &classifier)).join().unwrap());
        assert!(
            !Arc::ptr_eq(&here.ua, &there.ua),
            "no count shared between threads"
        );
        assert!(
            UserAgent::shared(&here.ua, &there.ua),
            "the parsed value itself is not copied per thread"
        );
        assert_eq!(cache.len(), 1, "parsed once, in the shared map");
    }

    #[test]
    fn a_new_cache_does_not_answer_from_the_last_ones_entries() {
        let ua = "AcmeMail/3.2 (iPhone; iOS 17.1)";
        let before = Classifier::new(&Config::from_toml("").unwrap().agent);
        let old = UaCache::new(100);
        assert!(old.get(ua, &before).verdict.rules().is_empty());
        // A reload with a rule naming the client builds a new cache.
        let after = Classifier::new(
            &Config::from_toml(
                "[agent]\nrules = [{ name = \"acme\", kind = \"human\", ua = ['AcmeMail/'], source = [\"t\"] }]",
            )
            .unwrap()
            .agent,
        );
        let new = UaCache::new(100);
        assert_eq!(new.get(ua, &after).verdict.rules().len(), 1);
    }
}
