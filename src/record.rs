//! Recording an event: enrich it, count it, hand it to the sink.
//!
//! Routes are handed a [`Recorder`] (through their `Ctx`) instead of the
//! app that called them, so the request path's dependencies run one way:
//! app → routes → record → enrich, stats, sink.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::header::HeaderValue;

use crate::enrich::{Enriched, RequestFacts, Visitor};
use crate::event::{AgentKind, Event, EventType};
use crate::live::Live;
use crate::metrics::EVENT_COUNTS;
use crate::sink::Sink;
use crate::stats::{Hit, Stats};
use crate::tally::Tally;

/// Takes the events of every route: enrich, count, sink.
pub struct Recorder {
    /// Receives every event; never waited on.
    sink: Arc<dyn Sink>,
    /// Live per-campaign counts.
    stats: Stats,
    /// Events recorded since start by type: what the live page charts,
    /// read without rendering the metrics; per thread, like
    /// `trackedge_events_total` ([`EVENT_COUNTS`]).
    totals: Tally<{ EventType::COUNT }>,
    /// Per-second samples of `totals`.
    rates: Rates,
}

impl Recorder {
    pub fn new(sink: Arc<dyn Sink>, stats: Stats) -> Recorder {
        Recorder {
            sink,
            stats,
            totals: Tally::new(),
            rates: Rates::default(),
        }
    }

    /// The per-second history of the totals (see [`Recorder::sample`]).
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// Adds one sample of the totals to the history, and once a minute
    /// copies each campaign's totals into its per-minute history; called
    /// once a second, off the request path.
    pub fn sample(&self) {
        self.rates.sample(self.totals());
        self.stats.sample(crate::now_ms());
    }

    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Events recorded since start, by [`EventType`] (as `usize`).
    pub fn totals(&self) -> [u64; EventType::COUNT] {
        std::array::from_fn(|i| self.totals.sum(i))
    }

    /// Enriches `ev` with what `live` and the request tell, counts it and
    /// hands it to the sink. Returns the visitor cookie to set, if a new
    /// visitor was given one.
    pub fn record(
        &self,
        live: &Live,
        mut ev: Event,
        req: &RequestFacts<'_>,
        visitor: Visitor,
    ) -> Option<HeaderValue> {
        let set_cookie = match live.enricher.enrich(&mut ev, req, visitor) {
            Enriched::Suppressed => {
                crate::metrics::suppressed_opt_out();
                return None;
            }
            Enriched::Recorded { set_cookie } => set_cookie,
        };
        let agent = ev.agent.as_ref().expect("enrich sets the agent");
        let agent_kind = agent.kind;
        if let Some(campaign) = ev.campaign.as_deref() {
            self.stats.record(&Hit {
                kind: ev.kind,
                campaign,
                recipient: ev.recipient.as_deref(),
                link: ev.link.as_deref(),
                country: ev.geo.as_ref().and_then(|g| g.country.as_deref()),
                agent_kind,
                agent_name: agent.name.as_deref(),
                now_ms: req.now_ms,
            });
        }
        let kind = ev.kind;
        EVENT_COUNTS.add(kind as usize * AgentKind::COUNT + agent_kind as usize, 1);
        self.totals.add(kind as usize, 1);
        self.sink.submit(ev);
        set_cookie
    }
}

/// Seconds of per-second history [`Rates`] keeps for the live page.
pub const HISTORY: usize = 300;

/// Samples of the per-type totals, one a second, newest last: what the live
/// page turns into events per second. Sampled off the request path.
#[derive(Default)]
pub struct Rates {
    samples: Mutex<VecDeque<[u64; EventType::COUNT]>>,
}

impl Rates {
    /// Takes one sample of the totals.
    pub fn sample(&self, totals: [u64; EventType::COUNT]) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() > HISTORY {
            s.pop_front();
        }
        s.push_back(totals);
    }

    /// Events per second by type, oldest first.
    pub fn per_second(&self) -> Vec<[u64; EventType::COUNT]> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.iter()
            .zip(s.iter().skip(1))
            .map(|(a, b)| std::array::from_fn(|i| b[i].saturating_sub(a[i])))
            .collect()
    }
}
