//! The request path, piece by piece and whole: token verification, UA
//! parsing cold and cached, geo lookup, agent classification, event JSON
//! encoding, and one open pixel through the router in-process (no socket).
//!
//! `cargo bench --bench hot_path`; targets (issue figures): verify ≤ 1 µs,
//! cached UA ≤ 100 ns, encode ≤ 1 µs.
//!
//! The benches allocate with mimalloc, as the `trackedge` binary does, so
//! they time what ships.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::Full;
use serde::Serialize;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use trackedge::app::App;
use trackedge::config::Config;
use trackedge::enrich::agent::{Classifier, Facts, UaVerdict};
use trackedge::enrich::geo::GeoIp;
use trackedge::enrich::ua::{UaCache, UaParser};
use trackedge::event::{Event, EventType};
use trackedge::sink::{Health, Sink};
use trackedge::token::{Claims, Keyring, TokenType};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn ring() -> Keyring {
    Keyring::new(&[("test".into(), SECRET.as_bytes().to_vec())])
}

fn open_token() -> String {
    let mut c = Claims::new(TokenType::Open, "spring-sale");
    c.r = Some("r-42".into());
    c.m = Some("m-7".into());
    c.s = Some(1_763_942_400);
    ring().sign(&mut c)
}

fn token(c: &mut Criterion) {
    let r = ring();
    let t = open_token();
    c.bench_function("token_verify", |b| {
        b.iter(|| {
            r.verify(black_box(&t), TokenType::Open, 1_763_942_500)
                .unwrap()
        })
    });
}

fn ua(c: &mut Criterion) {
    let parser = UaParser::default();
    c.bench_function("ua_parse_uncached", |b| {
        b.iter(|| parser.parse(black_box(CHROME)))
    });
    let classifier = Classifier::new(&Config::from_toml("").unwrap().agent);
    let cache = UaCache::new(10_000);
    cache.get(CHROME, &classifier);
    c.bench_function("ua_parse_cached", |b| {
        b.iter(|| cache.get(black_box(CHROME), &classifier))
    });
}

fn agent(c: &mut Criterion) {
    let classifier = Classifier::new(&Config::from_toml("").unwrap().agent);
    let get = http::Method::GET;
    let ip = "198.51.100.7".parse().unwrap();
    fn facts<'a>(
        get: &'a http::Method,
        ip: std::net::IpAddr,
        ua: Option<&'a UaVerdict>,
    ) -> Facts<'a> {
        Facts {
            route: EventType::Click,
            method: get,
            ip,
            asn: None,
            ua,
            sent_at: Some(1_763_940_000),
            now_secs: 1_763_942_400,
            burst: false,
        }
    }
    c.bench_function("agent_classify", |b| {
        b.iter(|| classifier.classify(black_box(&facts(&get, ip, None))))
    });
    // Every User-Agent of the fixture (crawlers, email machines, people),
    // each seen for the first time: the full rule pass, no cache.
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents.tsv"),
    )
    .unwrap();
    let uas: Vec<&str> = fixture
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(4))
        .collect();
    let mut i = 0;
    c.bench_function("agent_classify_cold", |b| {
        b.iter(|| {
            i = (i + 1) % uas.len();
            let v = classifier.ua_verdict(black_box(uas[i]));
            classifier.classify(&facts(&get, ip, Some(&v)))
        })
    });
    let cache = UaCache::new(10_000);
    cache.get(CHROME, &classifier);
    c.bench_function("agent_classify_cached", |b| {
        b.iter(|| {
            let info = cache.get(black_box(CHROME), &classifier);
            classifier.classify(&facts(&get, ip, Some(&info.verdict)))
        })
    });
}

#[derive(Serialize)]
struct Iso {
    iso_code: &'static str,
}
#[derive(Serialize)]
struct CityRec {
    country: Iso,
    city: BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>,
}

fn geo(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = mmdb_writer::Writer::new("GeoIP2-City");
    for i in 0..=255u8 {
        let net: ipnet::IpNet = format!("10.{i}.0.0/16").parse().unwrap();
        let rec = CityRec {
            country: Iso { iso_code: "US" },
            city: [("names", [("en", "Somewhere")].into())].into(),
        };
        w.insert(net, &rec).unwrap();
    }
    let path = dir.path().join("city.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let cfg = Config::from_toml(&format!(
        "[geoip]\ncity_db = {:?}\n",
        path.to_str().unwrap()
    ))
    .unwrap();
    let g = GeoIp::open(&cfg.geoip).unwrap();
    let ip = "10.77.1.2".parse().unwrap();
    c.bench_function("geo_lookup", |b| b.iter(|| g.lookup(black_box(ip))));
}

fn sample_event() -> Event {
    let mut e = Event::new(EventType::Open, 1_763_942_400_123, "GET");
    e.campaign = Some("spring-sale".into());
    e.recipient = Some("r-42".into());
    e.message = Some("m-7".into());
    e.sent_at_ms = Some(1_763_940_000_000);
    e.ip = Some("198.51.100.0".parse().unwrap());
    e.ua = Some(UaParser::default().parse(CHROME));
    e
}

fn encode(c: &mut Criterion) {
    let e = sample_event();
    let mut buf = Vec::with_capacity(1024);
    c.bench_function("event_encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&e).encode_into(&mut buf);
        })
    });
}

/// Swallows events: the whole-request bench measures the edge, not a disk.
struct NullSink;

impl Sink for NullSink {
    fn submit(&self, event: Event) {
        black_box(event);
    }
    fn health(&self) -> Health {
        Health::Ok
    }
    fn pending(&self) -> usize {
        0
    }
    fn shutdown(&self, _: Duration) {}
}

fn whole_request(c: &mut Criterion) {
    trackedge::metrics::install();
    let cfg = Config::from_toml(&format!(
        "[signing]\nkeys = [{{ id = \"test\", secret = \"{SECRET}\" }}]\n"
    ))
    .unwrap();
    let app = App::new(cfg, Arc::new(NullSink)).unwrap();
    let uri = format!("/o/{}.gif", open_token());
    let peer = "198.51.100.7:40000".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = || {
        http::Request::get(&uri)
            .header("host", "t.example.com")
            .header("user-agent", CHROME)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // What is measured is a whole open, not a refusal.
    assert_eq!(rt.block_on(app.handle(request(), peer)).status(), 200);
    c.bench_function("request_open_pixel", |b| {
        b.iter(|| rt.block_on(app.handle(request(), peer)))
    });
}

criterion_group!(benches, token, ua, agent, geo, encode, whole_request);
criterion_main!(benches);
