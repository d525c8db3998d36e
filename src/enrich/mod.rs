//! Facts derived from a request beyond its token: who the client is (IP,
//! geo, User-Agent), what kind of agent made the request, and what privacy
//! the request asks for.
//!
//! [`Enricher`] owns every part of that and fills an event's facts in one
//! pass; the submodules each take request parts and return values. Nothing
//! here touches a sink or the stats, or does I/O on the request path (the
//! geo databases are memory-mapped and reloaded off the request path).

pub mod agent;
pub mod burst;
pub mod geo;
pub mod ip;
pub mod privacy;
pub mod remember;
pub mod ua;

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use ipnet::IpNet;

use crate::config::{Config, CookieConfig, OnOptOut, PrivacyConfig};
use crate::event::{Event, EventType, Geo, Privacy};
use agent::{Classifier, Facts};
use burst::{Bursts, Click};
use geo::GeoIp;
use privacy::{CookieWriter, Signals};
use ua::UaCache;

/// Whether a route gives a new visitor a visitor cookie (clicks and
/// beacons do; opens come from mail clients, which keep no cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor {
    Assign,
    KeepOnly,
}

/// The request an event came from.
pub struct RequestFacts<'a> {
    pub parts: &'a Parts,
    pub peer: SocketAddr,
    pub now_ms: i64,
}

/// What enrichment decided beyond the event's own fields.
pub enum Enriched {
    /// The request asked not to be recorded (`privacy.on_opt_out = "drop"`).
    Suppressed,
    /// The event is complete; set this visitor cookie, if any.
    Recorded { set_cookie: Option<HeaderValue> },
}

/// Turns a request into an event's facts: client address, geo, User-Agent,
/// agent kind, privacy and visitor.
pub struct Enricher {
    ua: UaCache,
    classifier: Classifier,
    geo: Arc<GeoIp>,
    cookies: CookieWriter,
    cookie_cfg: CookieConfig,
    privacy: PrivacyConfig,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpNet>,
    /// Recent clicks by message and source, for bursts.
    bursts: Bursts,
}

impl Enricher {
    /// Builds the rules and caches of `cfg` around the (shared, hot-reloaded)
    /// GeoIP databases.
    pub fn new(cfg: &Config, geo: Arc<GeoIp>) -> Result<Enricher, agent::RulesError> {
        Ok(Enricher {
            ua: UaCache::new(cfg.agent.ua_cache_entries),
            classifier: Classifier::try_new(&cfg.agent)?,
            geo,
            cookies: CookieWriter::new(&cfg.cookie),
            cookie_cfg: cfg.cookie.clone(),
            privacy: cfg.privacy.clone(),
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            bursts: Bursts::new(
                cfg.agent.burst_links,
                cfg.agent.burst_window.as_millis() as u64,
                cfg.agent.burst_entries,
            ),
        })
    }

    pub fn cookies(&self) -> &CookieWriter {
        &self.cookies
    }

    pub fn geo(&self) -> &Arc<GeoIp> {
        &self.geo
    }

    /// Distinct User-Agents cached.
    pub fn ua_cache_len(&self) -> usize {
        self.ua.len()
    }

    /// Fills `ev`'s address, geo, User-Agent, agent, privacy and visitor.
    pub fn enrich(&self, ev: &mut Event, req: &RequestFacts<'_>, visitor: Visitor) -> Enriched {
        let headers = &req.parts.headers;
        let mut signals = Signals::read(headers, &self.cookie_cfg);
        let restricted = signals.restricts(&self.privacy);
        // An unsubscribe is recorded whatever the privacy settings, at most
        // anonymized: the sender is bound to honour it (contract §3).
        if restricted
            && self.privacy.on_opt_out == OnOptOut::Drop
            && ev.kind != EventType::Unsubscribe
        {
            return Enriched::Suppressed;
        }
        let client = ip::client_ip(req.peer.ip(), headers, &self.trusted_proxies);
        let ua = headers.get(header::USER_AGENT).map(|raw| {
            self.ua
                .get(&String::from_utf8_lossy(raw.as_bytes()), &self.classifier)
        });
        // Geo on the full address; only then is the address cut down.
        let geo = self.geo.lookup(client);
        let burst = ev.kind == EventType::Click
            && self.bursts.click(&Click {
                campaign: ev.campaign.as_deref().unwrap_or(""),
                message: ev.message.as_deref().or(ev.recipient.as_deref()),
                link: ev.link.as_deref().or(ev.url.as_deref()),
                source: client,
                now_ms: req.now_ms,
            });
        ev.agent = Some(self.classifier.classify(&Facts {
            route: ev.kind,
            method: &req.parts.method,
            ip: client,
            asn: geo.as_ref().and_then(|g| g.asn),
            ua: ua.as_ref().map(|u| &u.verdict),
            sent_at: ev.sent_at_ms.map(|ms| ms / 1000),
            now_secs: req.now_ms / 1000,
            burst,
        }));
        ev.geo = geo.map(|g| {
            if !restricted {
                return g;
            }
            Arc::new(Geo {
                city: None,
                latitude: None,
                longitude: None,
                ..Geo::clone(&g)
            })
        });
        let mut set_cookie = None;
        if !restricted {
            ev.ip = Some(ip::anonymize(client, self.privacy.ip_anonymization));
            ev.visitor = signals.visitor.take();
            if ev.visitor.is_none() && visitor == Visitor::Assign {
                let id = uuid::Uuid::now_v7().to_string();
                set_cookie = HeaderValue::from_str(&self.cookies.visitor(&id)).ok();
                ev.visitor = Some(id);
            }
        }
        ev.ua = ua.map(|u| u.ua);
        ev.privacy = Some(Privacy {
            dnt: signals.dnt,
            gpc: signals.gpc,
            opted_out: signals.opted_out,
        });
        Enriched::Recorded { set_cookie }
    }
}
