//! The agent classification's large pattern sets, each with one lazy-DFA
//! cache for the whole process.
//!
//! `regex::Regex` keeps a cache per thread that searches it: each serving
//! thread that classified a new User-Agent grew its own copy of every
//! set's cache, to the bound the cold-classification speed needs (6 MiB).
//! Classification only runs on a User-Agent the UA cache has not seen, so
//! the threads rarely search at once; one cache behind a lock holds the
//! memory once. Built with the options `regex::RegexBuilder` and
//! `RegexSetBuilder` use, so a pattern matches here exactly as it would
//! there.

use std::sync::{Mutex, MutexGuard};

use regex_automata::meta::{self, BuildError, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

/// One regex or a set of them, with the process's one cache.
pub(crate) struct Matcher {
    re: Regex,
    cache: Mutex<meta::Cache>,
    /// Built as a set (every match counts), not as one regex.
    set: bool,
}

impl Matcher {
    /// One pattern, as `regex::RegexBuilder` builds it.
    pub(crate) fn one(
        pattern: &str,
        case_insensitive: bool,
        size_limit: usize,
        cache_bytes: usize,
    ) -> Result<Matcher, Box<BuildError>> {
        let config = config(size_limit, cache_bytes).match_kind(MatchKind::LeftmostFirst);
        Matcher::build(&[pattern], case_insensitive, config, false)
    }

    /// A set of patterns, as `regex::RegexSetBuilder` builds it.
    pub(crate) fn set<P: AsRef<str>>(
        patterns: &[P],
        case_insensitive: bool,
        size_limit: usize,
        cache_bytes: usize,
    ) -> Result<Matcher, Box<BuildError>> {
        let config = config(size_limit, cache_bytes)
            .match_kind(MatchKind::All)
            .which_captures(WhichCaptures::None);
        Matcher::build(patterns, case_insensitive, config, true)
    }

    fn build<P: AsRef<str>>(
        patterns: &[P],
        case_insensitive: bool,
        config: meta::Config,
        set: bool,
    ) -> Result<Matcher, Box<BuildError>> {
        let re = meta::Builder::new()
            .configure(config)
            .syntax(
                syntax::Config::new()
                    .utf8(true)
                    .case_insensitive(case_insensitive),
            )
            .build_many(patterns)
            .map_err(Box::new)?;
        let cache = Mutex::new(re.create_cache());
        Ok(Matcher { re, cache, set })
    }

    /// Whether any pattern matches somewhere in `haystack`.
    pub(crate) fn is_match(&self, haystack: &str) -> bool {
        if self.set {
            // A leftmost search means nothing to a set built to report
            // every match: ask which match, as `RegexSet` does.
            return !self.pattern_set(haystack).is_empty();
        }
        let input = Input::new(haystack).earliest(true);
        self.re
            .search_half_with(&mut self.cache(), &input)
            .is_some()
    }

    /// Which patterns match somewhere in `haystack`, by index.
    pub(crate) fn matches(&self, haystack: &str) -> impl Iterator<Item = usize> {
        let set = self.pattern_set(haystack);
        set.iter()
            .map(|p| p.as_usize())
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn pattern_set(&self, haystack: &str) -> PatternSet {
        let mut set = PatternSet::new(self.re.pattern_len());
        self.re
            .which_overlapping_matches_with(&mut self.cache(), &Input::new(haystack), &mut set);
        set
    }

    fn cache(&self) -> MutexGuard<'_, meta::Cache> {
        // A search that panicked leaves a cache that is only a cache.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `regex`'s own defaults, with the limits given.
fn config(size_limit: usize, cache_bytes: usize) -> meta::Config {
    meta::Config::new()
        .nfa_size_limit(Some(size_limit))
        .hybrid_cache_capacity(cache_bytes)
        .utf8_empty(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_as_regex_does() {
        let pats = [r"bot\b", r"^curl/", r"(?:spider|crawl)er", "é"];
        let ours = Matcher::set(&pats, true, 1 << 20, 1 << 20).unwrap();
        let theirs = regex::RegexSetBuilder::new(pats)
            .case_insensitive(true)
            .build()
            .unwrap();
        for hay in [
            "Googlebot/2.1",
            "a bots",
            "curl/8.0",
            "x curl/8.0",
            "WebCrawler",
            "É",
            "Mozilla/5.0",
            "",
        ] {
            assert_eq!(ours.is_match(hay), theirs.is_match(hay), "{hay:?}");
            assert_eq!(
                ours.matches(hay).collect::<Vec<_>>(),
                theirs.matches(hay).into_iter().collect::<Vec<_>>(),
                "{hay:?}"
            );
        }
        let one = Matcher::one(r"(?:bot|spider)\d", false, 1 << 20, 1 << 20).unwrap();
        assert!(one.is_match("xbot9") && !one.is_match("XBOT9"));
    }

    #[test]
    fn threads_share_one_matcher() {
        let m = Matcher::set(&[r"a+b", r"c\d"], false, 1 << 20, 1 << 20).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000 {
                        assert!(m.is_match(&format!("{i}aab")));
                        assert!(!m.is_match(&format!("{i}ba")));
                    }
                });
            }
        });
    }
}
