//! Certificates from an ACME CA (RFC 8555), kept without an operator.
//!
//! - At start the cache is read: cached certificates for listed names and
//!   for names the on-demand patterns still allow are served at once, and
//!   the cached account is reused ([`cache`]).
//! - A background task on the caller's runtime orders every listed name
//!   that has no certificate, renews each certificate once a third of its
//!   life is left, and retries a failed name with backoff (30 s doubling
//!   to an hour) while the node serves what it has.
//! - A handshake for an unknown name matching `tls.acme.on_demand` asks
//!   [`Acme::on_demand`], which orders it (at most `max_new_per_hour` new
//!   names an hour) and returns once it is served or failed; the handshake
//!   bounds the wait. Orders always run on the ACME runtime, so one that
//!   outlives the handshake that asked still finishes and is cached.
//! - Only one order per name runs at a time; askers wait on it.

pub mod cache;
pub mod challenge;
pub mod order;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::Account;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};

use self::cache::Cache;
use self::challenge::Challenges;
use self::order::HttpClient;
use super::certs::Loaded;
use super::config::AcmeConfig;
use super::resolver::Certificates;
use super::TlsError;
use crate::metrics::ACME_ORDERS;

/// First wait after a failed order; doubles with each failure.
const RETRY_FIRST: Duration = Duration::from_secs(30);
/// Longest wait between tries of a failing name.
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// Longest sleep of the renewal task: it also rechecks after clock jumps.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// An order that takes longer than this is abandoned and retried.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// The ACME client and its state; one per process.
pub struct Acme {
    /// As started; `on_demand` and `max_new_per_hour` are read from
    /// `rules` instead, which a reload replaces.
    cfg: AcmeConfig,
    rules: arc_swap::ArcSwap<OnDemand>,
    certs: Arc<Certificates>,
    challenges: Arc<Challenges>,
    cache: Cache,
    http: HttpClient,
    /// Where orders run: the runtime `start` was given.
    rt: Handle,
    /// Made at first use; a CA unreachable at start is retried.
    account: tokio::sync::Mutex<Option<Account>>,
    state: Mutex<State>,
    /// Wakes the renewal task (a new on-demand name to keep renewed).
    wake: Notify,
    counts: Counts,
}

/// The on-demand settings a reload may change.
struct OnDemand {
    patterns: Vec<String>,
    max_new_per_hour: u32,
}

impl OnDemand {
    fn of(cfg: &AcmeConfig) -> OnDemand {
        OnDemand {
            patterns: cfg.on_demand.clone(),
            max_new_per_hour: cfg.max_new_per_hour,
        }
    }

    fn allows(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| crate::tls::certs::name_matches(p, name))
    }
}

#[derive(Default)]
struct State {
    /// When each on-demand name of the last hour was first ordered.
    recent_new: VecDeque<Instant>,
    /// Names whose last order failed: how often, when to try again, why.
    failing: HashMap<String, Failing>,
    /// Orders running, by name: `true` once finished.
    running: HashMap<String, watch::Receiver<bool>>,
    /// Why the account could not be restored or made, while that lasts.
    account_error: Option<String>,
}

struct Failing {
    times: u32,
    retry_at: Instant,
    why: String,
}

/// What this node's ACME client did since start; for tests and logs.
#[derive(Debug, Default)]
pub struct Counts {
    pub orders_ok: AtomicU64,
    pub orders_failed: AtomicU64,
    pub accounts_created: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl Acme {
    /// Reads the cache, serves what it holds, and starts the renewal task
    /// on `rt`. Fails only on local trouble (cache dir, `ca_file`).
    pub fn start(
        cfg: AcmeConfig,
        certs: Arc<Certificates>,
        rt: Handle,
    ) -> Result<Arc<Acme>, TlsError> {
        let cache = Cache::open(&cfg.cache_dir)?;
        let http = order::http_client(&cfg)?;
        for name in cache.names() {
            if !cfg.domains.contains(&name) && !cfg.on_demand_allows(&name) {
                continue;
            }
            match cache.cert(&name) {
                Ok(Some(c)) if c.covers(&name) => certs.insert_acme(&name, Arc::new(c)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(name, error = %e, "cached certificate unusable; ordering anew")
                }
            }
        }
        let acme = Arc::new(Acme {
            rules: arc_swap::ArcSwap::from_pointee(OnDemand::of(&cfg)),
            cfg,
            certs,
            challenges: Arc::default(),
            cache,
            http,
            rt: rt.clone(),
            account: tokio::sync::Mutex::new(None),
            state: Mutex::default(),
            wake: Notify::new(),
            counts: Counts::default(),
        });
        let weak = Arc::downgrade(&acme);
        rt.spawn(async move {
            // Ends when the server drops its Acme.
            while let Some(acme) = weak.upgrade() {
                let next = acme.maintain().await;
                let wake = acme.clone();
                drop(acme);
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = wake.wake.notified() => {}
                }
            }
        });
        Ok(acme)
    }

    pub fn config(&self) -> &AcmeConfig {
        &self.cfg
    }

    /// Applies a reloaded `[tls.acme]`: `on_demand` and `max_new_per_hour`
    /// take effect at once; returns whether anything else changed (which
    /// needs a restart).
    pub fn reload(&self, next: &AcmeConfig) -> bool {
        self.rules.store(Arc::new(OnDemand::of(next)));
        let mut same = next.clone();
        same.on_demand = self.cfg.on_demand.clone();
        same.max_new_per_hour = self.cfg.max_new_per_hour;
        same != self.cfg
    }

    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.challenges
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Why certificates may be missing, for `/readyz`: the CA out of
    /// reach, or listed names whose orders are failing. An on-demand
    /// name's failure is logged and counted but does not degrade the node:
    /// a customer who moved their CNAME away must not page anyone.
    pub fn note(&self) -> Option<String> {
        let st = self.lock();
        if let Some(why) = &st.account_error {
            return Some(format!("ACME: {why}"));
        }
        let mut failing: Vec<_> = st
            .failing
            .iter()
            .filter(|(name, _)| self.cfg.domains.contains(name))
            .collect();
        failing.sort_by(|a, b| a.0.cmp(b.0));
        let (name, f) = failing.first()?;
        Some(format!(
            "ACME orders failing for {} name(s), e.g. {name} ({} tries): {}",
            failing.len(),
            f.times,
            f.why
        ))
    }

    /// Gets a certificate for `name` at its first handshake: when the
    /// patterns allow it, no order failed for it lately and the hourly
    /// budget has room. Returns whether a certificate for it is served.
    pub async fn on_demand(self: &Arc<Self>, name: &str) -> bool {
        let rules = self.rules.load_full();
        // The name comes from a stranger's ClientHello and becomes a file
        // name in the cache: letters, digits, hyphens and dots only.
        if !crate::tls::config::valid_name(name, false) || !rules.allows(name) {
            return false;
        }
        let running = {
            let mut st = self.lock();
            let now = Instant::now();
            if let Some(rx) = st.running.get(name) {
                Some(rx.clone())
            } else if st.failing.get(name).is_some_and(|f| f.retry_at > now) {
                return false;
            } else {
                while st
                    .recent_new
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
                {
                    st.recent_new.pop_front();
                }
                if st.recent_new.len() >= rules.max_new_per_hour as usize {
                    drop(st);
                    self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(ACME_ORDERS, "result" => "rate_limited").increment(1);
                    tracing::warn!(
                        name,
                        max = rules.max_new_per_hour,
                        "on-demand certificate refused: tls.acme.max_new_per_hour reached"
                    );
                    return false;
                }
                st.recent_new.push_back(now);
                None
            }
        };
        let mut rx = match running {
            Some(rx) => rx,
            None => self.spawn_order(name),
        };
        let _ = rx.wait_for(|done| *done).await;
        self.certs.acme_cert(name).is_some()
    }

    /// Starts an order for `name` on the ACME runtime unless one runs;
    /// the receiver turns `true` when it is over.
    fn spawn_order(self: &Arc<Self>, name: &str) -> watch::Receiver<bool> {
        let mut st = self.lock();
        if let Some(rx) = st.running.get(name) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(false);
        st.running.insert(name.to_owned(), rx.clone());
        drop(st);
        let (me, name) = (self.clone(), name.to_owned());
        self.rt.spawn(async move {
            let result = tokio::time::timeout(ORDER_TIMEOUT, me.obtain(&name))
                .await
                .unwrap_or_else(|_| Err(String::from("the order took too long").into()));
            me.settle(&name, result);
            me.lock().running.remove(&name);
            let _ = tx.send(true);
            me.wake.notify_one();
        });
        rx
    }

    /// Records an order's outcome: counters, metric, backoff.
    fn settle(&self, name: &str, result: Result<(), order::AcmeError>) {
        let mut st = self.lock();
        match result {
            Ok(()) => {
                st.failing.remove(name);
                self.counts.orders_ok.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(ACME_ORDERS, "result" => "ok").increment(1);
                tracing::info!(name, "certificate obtained");
            }
            Err(why) => {
                let f = st.failing.entry(name.to_owned()).or_insert(Failing {
                    times: 0,
                    retry_at: Instant::now(),
                    why: String::new(),
                });
                f.times += 1;
                let wait = retry_wait(f.times);
                f.retry_at = Instant::now() + wait;
                f.why = why.to_string();
                self.counts.orders_failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(ACME_ORDERS, "result" => "error").increment(1);
                tracing::warn!(
                    name,
                    error = %why,
                    retry_in_s = wait.as_secs(),
                    "ACME order failed; serving what we have"
                );
            }
        }
    }

    /// One order for `name`, start to cache.
    async fn obtain(&self, name: &str) -> Result<(), order::AcmeError> {
        let account = self.account().await?;
        let (chain, key) =
            order::order(&account, name, &self.challenges, self.cfg.challenge).await?;
        let loaded = Loaded::from_pem(
            chain.as_bytes(),
            key.as_bytes(),
            std::path::Path::new(name),
            std::path::Path::new(name),
        )
        .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
        loaded
            .require_names(&[name.to_owned()])
            .map_err(|e| e.to_string())?;
        self.cache
            .store_cert(name, &chain, &key)
            .map_err(|e| e.to_string())?;
        self.certs.insert_acme(name, Arc::new(loaded));
        Ok(())
    }

    async fn account(&self) -> Result<Account, order::AcmeError> {
        let mut slot = self.account.lock().await;
        if let Some(a) = &*slot {
            return Ok(a.clone());
        }
        let made = order::account(&self.cfg, &self.http, &self.cache).await;
        self.lock().account_error = made.as_ref().err().map(|e| e.to_string());
        let (a, created) = made?;
        if created {
            self.counts.accounts_created.fetch_add(1, Ordering::Relaxed);
        }
        *slot = Some(a.clone());
        Ok(a)
    }

    /// Orders what is missing or due, one at a time; returns when to look
    /// again.
    async fn maintain(self: &Arc<Self>) -> Instant {
        let now = Instant::now();
        let wall = crate::now_ms() / 1000;
        let mut names: Vec<String> = self.cfg.domains.clone();
        // On-demand names are renewed while the rule still allows them:
        // dropping a customer's name from the rule stops its renewals.
        let rules = self.rules.load_full();
        for c in self.certs.acme_names() {
            if !names.contains(&c) && rules.allows(&c) {
                names.push(c);
            }
        }
        // Forget failures long past (names nobody asks for any more), so
        // the map stays as small as the names in use.
        self.lock()
            .failing
            .retain(|n, f| names.contains(n) || f.retry_at + RETRY_MAX > now);
        // With only on-demand names, learn early (for /readyz) whether the
        // CA can be reached; otherwise the first order tells.
        if names.is_empty() && self.account().await.is_err() {
            return now + RETRY_FIRST;
        }
        let mut next = now + CHECK_EVERY;
        for name in names {
            let retry_at = self.lock().failing.get(&name).map(|f| f.retry_at);
            let due_at = match self.certs.acme_cert(&name) {
                None => now,
                Some(c) => {
                    let renew_at = renew_at(&c);
                    now + Duration::from_secs(renew_at.saturating_sub(wall).max(0) as u64)
                }
            };
            let at = retry_at.map_or(due_at, |r| r.max(due_at));
            if at > now {
                next = next.min(at);
                continue;
            }
            let mut rx = self.spawn_order(&name);
            let _ = rx.wait_for(|d| *d).await;
            if let Some(f) = self.lock().failing.get(&name) {
                next = next.min(f.retry_at);
            } else if let Some(c) = self.certs.acme_cert(&name) {
                let secs = renew_at(&c).saturating_sub(crate::now_ms() / 1000).max(1);
                next = next.min(Instant::now() + Duration::from_secs(secs as u64));
            }
        }
        next.max(now + Duration::from_secs(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long to wait after the `times`-th failure in a row: 30 s, 1 min,
/// 2 min, ... up to an hour.
fn retry_wait(times: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << times.saturating_sub(1).min(10))
        .min(RETRY_MAX)
}

/// When a certificate is due for renewal: a third of its life before it
/// ends (Unix seconds).
pub fn renew_at(c: &Loaded) -> i64 {
    c.not_after - (c.not_after - c.not_before) / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|n| retry_wait(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_wait(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn on_demand_rules_match_one_label() {
        let rules = OnDemand {
            patterns: vec!["*.track.example".into(), "t.shop.example".into()],
            max_new_per_hour: 1,
        };
        assert!(rules.allows("a.track.example"));
        assert!(rules.allows("t.shop.example"));
        assert!(!rules.allows("a.b.track.example"));
        assert!(!rules.allows("shop.example"));
        // What a pattern would let through, validation stops (on_demand).
        assert!(rules.allows("a/b.track.example"));
        assert!(!crate::tls::config::valid_name("a/b.track.example", false));
    }
}
