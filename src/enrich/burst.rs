//! Bursts: a link scanner fetches every link of a message within seconds of
//! its delivery, from one network; a person clicks one, reads, maybe clicks
//! another a minute later. One source fetching `agent.burst_links` distinct
//! links of one message within `agent.burst_window` is a machine
//! (`reason: "burst"`), from that click on.
//!
//! Memory is bounded: one small entry per (message, source network) seen
//! within the window, at most `agent.burst_entries`; when full, expired
//! entries are dropped, and if none are, new pairs are not watched until
//! some expire. Nothing here waits: a sharded map, a few comparisons.

use std::hash::BuildHasher;
use std::net::IpAddr;

use dashmap::DashMap;

/// Distinct links remembered per entry: enough for any sane threshold.
const MAX_LINKS: usize = 8;

#[derive(Clone, Copy)]
struct Entry {
    since_ms: i64,
    links: [u64; MAX_LINKS],
    n: u8,
}

/// Recent clicks by (message, source network).
pub struct Bursts {
    map: DashMap<u64, Entry, foldhash::fast::RandomState>,
    links: usize,
    window_ms: i64,
    cap: usize,
    /// When full entries were last swept: at most once a window, so a
    /// flood of new pairs cannot make every click walk the map.
    swept_ms: std::sync::atomic::AtomicI64,
}

/// What one click is, as far as bursts go.
pub struct Click<'a> {
    pub campaign: &'a str,
    /// The message id, else the recipient: whose mail it is.
    pub message: Option<&'a str>,
    /// The link id, else its destination.
    pub link: Option<&'a str>,
    pub source: IpAddr,
    pub now_ms: i64,
}

/// The source's network: scanners spread their fetches over nearby
/// addresses (a /24, or an IPv6 /48).
fn network(ip: IpAddr) -> (u8, u128) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4) >> 8)),
        IpAddr::V6(v6) => (6, u128::from(v6) >> 80),
    }
}

impl Bursts {
    pub fn new(links: usize, window_ms: u64, cap: usize) -> Bursts {
        Bursts {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            links: links.clamp(2, MAX_LINKS),
            window_ms: window_ms as i64,
            cap,
            swept_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// Notes a click; whether it completes (or continues) a burst.
    pub fn click(&self, c: &Click<'_>) -> bool {
        let (Some(message), Some(link)) = (c.message, c.link) else {
            return false;
        };
        let hasher = self.map.hasher();
        let key = hasher.hash_one((c.campaign, message, network(c.source)));
        let link = hasher.hash_one(link);
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            use std::sync::atomic::Ordering;
            let window = self.window_ms;
            let last = self.swept_ms.load(Ordering::Relaxed);
            if c.now_ms.saturating_sub(last) > window
                && self
                    .swept_ms
                    .compare_exchange(last, c.now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.map.retain(|_, e| c.now_ms - e.since_ms <= window);
            }
            if self.map.len() >= self.cap {
                return false;
            }
        }
        let mut e = self.map.entry(key).or_insert(Entry {
            since_ms: c.now_ms,
            links: [0; MAX_LINKS],
            n: 0,
        });
        if c.now_ms - e.since_ms > self.window_ms {
            e.since_ms = c.now_ms;
            e.n = 0;
        }
        let n = e.n as usize;
        if !e.links[..n].contains(&link) && n < MAX_LINKS {
            e.links[n] = link;
            e.n += 1;
        }
        e.n as usize >= self.links
    }

    /// Pairs watched now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click<'a>(link: &'a str, source: &str, now_ms: i64) -> Click<'a> {
        Click {
            campaign: "c",
            message: Some("m-1"),
            link: Some(link),
            source: source.parse().unwrap(),
            now_ms,
        }
    }

    #[test]
    fn a_scanner_fetching_every_link_is_a_burst_a_person_is_not() {
        let b = Bursts::new(3, 2000, 1000);
        // A scanner: three links in a second, from neighbouring addresses.
        assert!(!b.click(&click("hero", "40.107.1.10", 0)));
        assert!(!b.click(&click("footer", "40.107.1.11", 300)));
        assert!(b.click(&click("logo", "40.107.1.12", 700)));
        assert!(b.click(&click("unsub", "40.107.1.13", 900)));
        // A person: the same link twice, then another a minute later.
        assert!(!b.click(&click("hero", "198.51.100.7", 0)));
        assert!(!b.click(&click("hero", "198.51.100.7", 500)));
        assert!(!b.click(&click("footer", "198.51.100.7", 60_000)));
        assert!(!b.click(&click("logo", "198.51.100.7", 120_000)));
    }

    #[test]
    fn memory_stays_bounded() {
        let b = Bursts::new(3, 2000, 100);
        for i in 0..10_000 {
            let m = format!("m-{i}");
            b.click(&Click {
                campaign: "c",
                message: Some(&m),
                link: Some("hero"),
                source: "198.51.100.7".parse().unwrap(),
                now_ms: i as i64,
            });
            assert!(b.len() <= 100);
        }
    }
}
