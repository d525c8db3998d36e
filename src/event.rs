//! The event (contract §3) and its JSON encoding.
//!
//! An event is built on the request path from the verified token and the
//! request, then handed to a sink, which encodes it off the request path.
//! Absent values are `None` and are omitted from the JSON, never `null`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

/// The schema name every event carries.
pub const SCHEMA: &str = "trackedge.event.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Open,
    Click,
    Unsubscribe,
    Beacon,
}

impl EventType {
    /// How many kinds there are, for tables indexed by `kind as usize`.
    pub const COUNT: usize = EventType::Beacon as usize + 1;
    pub const ALL: [EventType; EventType::COUNT] = [
        EventType::Open,
        EventType::Click,
        EventType::Unsubscribe,
        EventType::Beacon,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Open => "open",
            EventType::Click => "click",
            EventType::Unsubscribe => "unsubscribe",
            EventType::Beacon => "beacon",
        }
    }

    /// The CloudEvents `ce_type` of this kind of event.
    pub fn cloudevent_type(self) -> &'static str {
        match self {
            EventType::Open => "trackedge.open.v1",
            EventType::Click => "trackedge.click.v1",
            EventType::Unsubscribe => "trackedge.unsubscribe.v1",
            EventType::Beacon => "trackedge.beacon.v1",
        }
    }
}

/// What `agent.kind` says about who made the request; also the verdict a
/// rule gives (`kind = "bot"` in `agents/agents.toml` and `agent.rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    Human,
    Proxy,
    Bot,
}

impl AgentKind {
    /// How many kinds there are, for tables indexed by `kind as usize`.
    pub const COUNT: usize = AgentKind::Bot as usize + 1;
    pub const ALL: [AgentKind; AgentKind::COUNT] =
        [AgentKind::Human, AgentKind::Proxy, AgentKind::Bot];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Human => "human",
            AgentKind::Proxy => "proxy",
            AgentKind::Bot => "bot",
        }
    }
}

/// Person, proxy or bot, with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub kind: AgentKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The parsed User-Agent; shared so a cache can hand out one copy.
///
/// Its JSON is written once, when the cache parses a new User-Agent
/// ([`UserAgent::seal`]), and copied into every event that carries it: the
/// raw string is the longest text of an event, and escaping it again for
/// every request was a good part of the encoding's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserAgent {
    pub raw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// A [`UserAgent`] with its JSON written once.
///
/// Both parts are shared: a clone (what each serving thread's front of the
/// UA cache keeps, to count references of its own) costs two pointers, not
/// a copy of every string.
#[derive(Debug, Clone)]
pub struct SealedUserAgent {
    pub ua: Arc<UserAgent>,
    json: Arc<serde_json::value::RawValue>,
}

impl UserAgent {
    /// Writes the JSON once; events then copy it as it is.
    pub fn seal(self) -> SealedUserAgent {
        let json = serde_json::value::to_raw_value(&self).expect("a User-Agent always serializes");
        SealedUserAgent {
            ua: Arc::new(self),
            json: Arc::from(json),
        }
    }

    /// Whether `a` and `b` share their parsed values (not only equal ones).
    pub fn shared(a: &SealedUserAgent, b: &SealedUserAgent) -> bool {
        Arc::ptr_eq(&a.ua, &b.ua) && Arc::ptr_eq(&a.json, &b.json)
    }
}

impl std::ops::Deref for SealedUserAgent {
    type Target = UserAgent;
    fn deref(&self) -> &UserAgent {
        &self.ua
    }
}

impl PartialEq for SealedUserAgent {
    fn eq(&self, other: &Self) -> bool {
        self.ua == other.ua
    }
}

impl Serialize for SealedUserAgent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// Geo facts looked up on the full client address.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Geo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

/// The privacy signals the request carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Privacy {
    pub dnt: bool,
    pub gpc: bool,
    pub opted_out: bool,
}

/// One tracked request. Field order is the JSON order.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: &'static str,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub ts_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attrs: Option<BTreeMap<String, String>>,
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_click: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<Arc<Geo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua: Option<Arc<SealedUserAgent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy: Option<Privacy>,
}

/// A UUIDv7 at `ts_ms` (the request's own clock read, not another one),
/// unique and rising within this thread. The context is per thread:
/// `Uuid::now_v7` shares one behind a mutex that every serving thread took
/// per event.
fn new_v7(ts_ms: i64) -> Uuid {
    thread_local! {
        static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
    }
    let ms = ts_ms.max(0) as u64;
    let nanos = (ms % 1000) as u32 * 1_000_000;
    CONTEXT.with(|c| Uuid::new_v7(uuid::Timestamp::from_unix(c, ms / 1000, nanos)))
}

impl Event {
    /// A fresh event with a new UUIDv7 id and nothing else filled in.
    pub fn new(kind: EventType, ts_ms: i64, method: &'static str) -> Event {
        Event {
            schema: SCHEMA,
            event_id: new_v7(ts_ms),
            kind,
            ts_ms,
            campaign: None,
            recipient: None,
            message: None,
            link: None,
            url: None,
            name: None,
            src: None,
            referer: None,
            sent_at_ms: None,
            attrs: None,
            method,
            one_click: None,
            ip: None,
            geo: None,
            ua: None,
            agent: None,
            visitor: None,
            privacy: None,
        }
    }

    /// Appends the event's JSON (no newline) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("events always serialize");
    }

    /// The event's JSON as bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(512);
        self.encode_into(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_omitted() {
        let mut e = Event::new(EventType::Open, 1_763_942_400_123, "GET");
        e.campaign = Some("spring-sale".into());
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj["schema"], "trackedge.event.v1");
        assert_eq!(obj["type"], "open");
        assert_eq!(obj["ts_ms"], 1_763_942_400_123i64);
        assert_eq!(obj["method"], "GET");
        assert_eq!(obj["event_id"].as_str().unwrap().len(), 36);
        assert!(!obj.contains_key("recipient"));
        assert!(obj.values().all(|v| !v.is_null()));
    }

    #[test]
    fn a_sealed_user_agent_encodes_as_its_fields_did() {
        let ua = UserAgent {
            raw: "Mozilla/5.0 \"quoted\" \u{1}".into(),
            name: Some("Chrome".into()),
            version: None,
            os: Some("Windows 10".into()),
            os_version: None,
            category: Some("pc".into()),
            vendor: None,
        };
        let plain = serde_json::to_string(&ua).unwrap();
        let mut e = Event::new(EventType::Open, 0, "GET");
        e.ua = Some(Arc::new(ua.clone().seal()));
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(
            v["ua"],
            serde_json::from_str::<serde_json::Value>(&plain).unwrap()
        );
        assert_eq!(v["ua"]["raw"], "Mozilla/5.0 \"quoted\" \u{1}");
    }

    #[test]
    fn ids_are_uuid_v7_at_the_event_time_and_rise() {
        let ts = 1_763_942_400_123;
        let ids: Vec<_> = (0..1000)
            .map(|_| Event::new(EventType::Click, ts, "GET").event_id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "distinct and rising");
        assert_eq!(ids[0].get_version_num(), 7);
        let (secs, nanos) = ids[999].get_timestamp().unwrap().to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, ts as u64);
    }
}
