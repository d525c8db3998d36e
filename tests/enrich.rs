//! Enrichment over real HTTP: agent classification for every row of the
//! fixture, geo from real `.mmdb` files built here, privacy signals,
//! the opt-out cookie flow, the visitor cookie, and web beacons.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::Method;
use serde::Serialize;

use common::*;
use trackedge::token::TokenType;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Client addresses come from X-Forwarded-For, as behind a load balancer.
const BEHIND_LB: &str = "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents.tsv")
}

/// Every labelled request of `tests/fixtures/agents.tsv` (real crawlers of
/// the public `crawler-user-agents` list, the email families with their
/// sources, and people's browsers, in-app browsers and mail clients) over
/// real HTTP. Prints precision and recall per kind; fails when a person is
/// read as a machine, when fewer than 97% of the machines are caught, or
/// when a hand-labelled row (outside the generated crawler block) is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_row_classifies_as_expected() {
    let text =
        std::fs::read_to_string(fixtures()).expect("tests/fixtures/agents.tsv in the repository");
    let mut generated = false;
    let mut rows: Vec<(Vec<&str>, bool)> = Vec::new();
    for l in text.lines() {
        if l.starts_with("# BEGIN crawler-user-agents") {
            generated = true;
        } else if l.starts_with("# END crawler-user-agents") {
            generated = false;
        }
        if !l.starts_with('#') && !l.trim().is_empty() {
            rows.push((l.split('\t').collect(), generated));
        }
    }
    assert!(rows.len() >= 15);
    let srv = TestServer::start(BEHIND_LB).await;
    for (i, (row, _)) in rows.iter().enumerate() {
        let [route, method, ip, secs, ua, _, _] = row[..] else {
            panic!("row {i}: {row:?}");
        };
        let t = if route == "open" {
            TokenType::Open
        } else {
            TokenType::Click
        };
        let mut c = claims(t, "fixtures");
        c.r = Some(format!("row-{i}"));
        c.s = secs.parse::<i64>().ok().map(|s| now() - s);
        c.u = Some("https://example.com/".into());
        let url = srv.tracked(&mut c);
        let m = if method == "HEAD" {
            Method::HEAD
        } else {
            Method::GET
        };
        let a = send(m, &url, &[("user-agent", ua), ("x-forwarded-for", ip)], "").await;
        assert!(a.status == 200 || a.status == 302, "row {i}: {}", a.status);
    }
    let events = srv.stop().await;
    assert_eq!(events.len(), rows.len());
    // (want, got) counts, and the hand-labelled rows that are wrong.
    let kinds = ["human", "proxy", "bot"];
    let mut confusion = [[0usize; 3]; 3];
    let mut wrong = Vec::new();
    let mut misread_people = Vec::new();
    for e in &events {
        let i: usize = e["recipient"].as_str().unwrap()[4..].parse().unwrap();
        let (row, generated) = &rows[i];
        let (want, name) = (row[5], row[6]);
        let got = e["agent"]["kind"].as_str().unwrap();
        let (w, g) = (
            kinds.iter().position(|k| *k == want).unwrap(),
            kinds.iter().position(|k| *k == got).unwrap(),
        );
        confusion[w][g] += 1;
        if want == "human" && got != "human" {
            misread_people.push(format!("row {i} {row:?}: {}", e["agent"]));
        }
        let name_ok = name == "-" || e["agent"]["name"] == name;
        if !*generated && (got != want || !name_ok) {
            wrong.push(format!("row {i} {row:?}: {}", e["agent"]));
        }
        if got != "human" {
            assert!(
                e["agent"]["reason"].is_string(),
                "row {i}: a machine verdict says why"
            );
        }
    }
    println!("kind    precision  recall  (requests)");
    for (k, kind) in kinds.iter().enumerate() {
        let tp = confusion[k][k] as f64;
        let predicted: usize = (0..3).map(|w| confusion[w][k]).sum();
        let actual: usize = confusion[k].iter().sum();
        println!(
            "{kind:<7} {:>8.1}%  {:>5.1}%  ({actual})",
            100.0 * tp / predicted.max(1) as f64,
            100.0 * tp / actual.max(1) as f64
        );
    }
    let machines: usize = confusion[1].iter().sum::<usize>() + confusion[2].iter().sum::<usize>();
    let caught = machines - confusion[1][0] - confusion[2][0];
    let recall = caught as f64 / machines as f64;
    println!(
        "machines read as machines: {caught} of {machines} ({:.2}%)",
        100.0 * recall
    );
    assert!(
        misread_people.is_empty(),
        "people read as machines: {misread_people:#?}"
    );
    assert!(recall >= 0.97, "machine recall {recall:.4} < 0.97");
    assert!(
        wrong.is_empty(),
        "hand-labelled rows read wrong: {wrong:#?}"
    );
}

/// The held-out evaluation set, `tests/fixtures/agents-eval/agents-eval.tsv`
/// (third-party parsers' labelled test data: device-detector, isbot,
/// uap-core; built by `scripts/agents_eval.py`, none of it in `agents.tsv`
/// or in a rule). Each string is classified as the server does it (the UA
/// cache, then the classifier) on a request with no other machine signal:
/// GET from a documentation address an hour after sending, opens and clicks
/// alternating. Prints precision and recall per label and source.
///
/// Labels follow `scripts/agents_eval.py`'s documented policy: an app's own
/// HTTP requests (device-detector "mobile app" rows with no browser or web
/// view token) are left out, headless browsers are machines, and products
/// two sources label both ways are left out.
///
/// The issue-22 targets, asserted: at most 0.3% of people read as machines
/// and at least 98.5% of machines caught. Measured: 16 of 5,790 people
/// (0.28%) and 1,331 of 1,341 machines (99.25%). The people still misread
/// are obsolete or disputed strings (a PalmOS browser whose device is
/// called `Proxyless`, BitTorrent's `Torrent/` token, FirePHP, OpenVAS,
/// Yahoo's crawler `Yahoo! Slurp` labelled a browser by isbot's list), see
/// the printed list. `AGENTS_EVAL=path` measures another file of the same
/// format (a larger sample, say).
#[test]
fn the_evaluation_set_meets_the_precision_targets() {
    evaluate(0.003, 0.985);
}

fn evaluate(max_false_alarms: f64, min_recall: f64) {
    use trackedge::config::Config;
    use trackedge::enrich::agent::{Classifier, Facts};
    use trackedge::enrich::ua::UaCache;
    use trackedge::event::{AgentKind, EventType};

    let path = std::env::var("AGENTS_EVAL").map_or_else(
        |_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents-eval/agents-eval.tsv")
        },
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).expect("the evaluation set");
    let classifier = Classifier::new(&Config::from_toml("").unwrap().agent);
    let cache = UaCache::new(0);
    let get = Method::GET;
    let ip = "192.0.2.10".parse().unwrap();
    // [label][read as machine], overall and by source.
    let mut all = [[0usize; 2]; 2];
    let mut by_source: BTreeMap<&str, [[usize; 2]; 2]> = BTreeMap::new();
    let mut misread = Vec::new();
    for (i, l) in text.lines().filter(|l| !l.starts_with('#')).enumerate() {
        let [source, label, ua] = l.splitn(3, '\t').collect::<Vec<_>>()[..] else {
            panic!("{}: bad row {l:?}", path.display());
        };
        let info = cache.get(ua, &classifier);
        let a = classifier.classify(&Facts {
            route: if i % 2 == 0 {
                EventType::Open
            } else {
                EventType::Click
            },
            method: &get,
            ip,
            asn: None,
            ua: Some(&info.verdict),
            sent_at: Some(1_000_000),
            now_secs: 1_003_600,
            burst: false,
        });
        let want = usize::from(label != "human");
        let got = usize::from(a.kind != AgentKind::Human);
        all[want][got] += 1;
        by_source.entry(source).or_default()[want][got] += 1;
        if want != got {
            misread.push(format!(
                "{label:<5} read as {:<5} {:?} [{source}] {ua}",
                a.kind.as_str(),
                a.name
            ));
        }
    }
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    println!("{}", path.display());
    println!("label   precision  recall  (user agents)");
    for (k, label) in ["human", "machine"].iter().enumerate() {
        let predicted = all[0][k] + all[1][k];
        let actual = all[k][0] + all[k][1];
        println!(
            "{label:<7} {:>8.2}%  {:>6.2}%  ({actual})",
            pct(all[k][k], predicted),
            pct(all[k][k], actual)
        );
    }
    println!("source                                people misread   machines caught");
    for (s, c) in &by_source {
        println!(
            "{s:<37} {:>5} of {:<6} {:>5} of {}",
            c[0][1],
            c[0][0] + c[0][1],
            c[1][1],
            c[1][0] + c[1][1]
        );
    }
    for m in &misread {
        println!("{m}");
    }
    let people = all[0][0] + all[0][1];
    let machines = all[1][0] + all[1][1];
    let false_alarms = all[0][1] as f64 / people as f64;
    let recall = all[1][1] as f64 / machines as f64;
    println!(
        "people read as machines: {} of {people} ({:.2}%); machines read as machines: {} of {machines} ({:.2}%)",
        all[0][1],
        100.0 * false_alarms,
        all[1][1],
        100.0 * recall
    );
    assert!(
        people >= 1000 && machines >= 500,
        "the evaluation set is too small"
    );
    assert!(
        false_alarms <= max_false_alarms,
        "people read as machines {false_alarms:.4} > {max_false_alarms}"
    );
    assert!(
        recall >= min_recall,
        "machine recall {recall:.4} < {min_recall}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn people_are_not_mistaken_for_bots() {
    let srv = TestServer::start(BEHIND_LB).await;
    let people = [
        CHROME,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; CUBOT KINGKONG 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    ];
    for (i, ua) in people.iter().enumerate() {
        let mut c = claims(TokenType::Click, "people");
        c.s = Some(now() - 7200);
        c.u = Some("https://example.com/".into());
        c.r = Some(format!("p{i}"));
        let a = get_with(
            &srv.tracked(&mut c),
            &[("user-agent", ua), ("x-forwarded-for", "203.0.113.50")],
        )
        .await;
        assert_eq!(a.status, 302);
    }
    for e in srv.stop().await {
        assert_eq!(e["agent"]["kind"], "human", "{}", e["ua"]["raw"]);
    }
}

#[derive(Serialize)]
struct Iso {
    iso_code: &'static str,
}
#[derive(Serialize)]
struct Names {
    names: BTreeMap<&'static str, &'static str>,
}
#[derive(Serialize)]
struct Loc {
    latitude: f64,
    longitude: f64,
}
#[derive(Serialize)]
struct CityRec {
    country: Iso,
    subdivisions: Vec<Iso>,
    city: Names,
    location: Loc,
}
#[derive(Serialize)]
struct AsnRec {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

/// Builds real City and ASN databases with known networks.
fn build_mmdbs(dir: &Path, city_name: &'static str) -> (PathBuf, PathBuf) {
    let mut city = mmdb_writer::Writer::new("GeoIP2-City");
    city.insert(
        "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
        &CityRec {
            country: Iso { iso_code: "US" },
            subdivisions: vec![Iso { iso_code: "CA" }],
            city: Names {
                names: [("en", city_name)].into(),
            },
            location: Loc {
                latitude: 37.7749,
                longitude: -122.4194,
            },
        },
    )
    .unwrap();
    city.insert(
        "2001:db8:1::/48".parse::<ipnet::IpNet>().unwrap(),
        &CityRec {
            country: Iso { iso_code: "DE" },
            subdivisions: vec![Iso { iso_code: "BE" }],
            city: Names {
                names: [("en", "Berlin")].into(),
            },
            location: Loc {
                latitude: 52.52,
                longitude: 13.405,
            },
        },
    )
    .unwrap();
    let mut asn = mmdb_writer::Writer::new("GeoLite2-ASN");
    asn.insert(
        "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
        &AsnRec {
            autonomous_system_number: 64500,
            autonomous_system_organization: "Example Transit",
        },
    )
    .unwrap();
    let (c, a) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    // Write elsewhere and rename, as database updaters do.
    let tmp = dir.join("city.mmdb.tmp");
    std::fs::write(&tmp, city.to_bytes().unwrap()).unwrap();
    std::fs::rename(&tmp, &c).unwrap();
    std::fs::write(&a, asn.to_bytes().unwrap()).unwrap();
    (c, a)
}

fn geo_config(city: &Path, asn: &Path) -> String {
    format!(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[geoip]\ncity_db = {:?}\nasn_db = {:?}\n",
        city.to_str().unwrap(),
        asn.to_str().unwrap()
    )
}

async fn open_from(srv: &TestServer, ip: &str, extra: &[(&str, &str)]) {
    let mut c = claims(TokenType::Open, "geo");
    c.r = Some(ip.to_owned());
    let url = srv.tracked(&mut c);
    let mut h = vec![("x-forwarded-for", ip), ("user-agent", CHROME)];
    h.extend_from_slice(extra);
    assert_eq!(get_with(&url, &h).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn geo_from_real_mmdb_files() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = build_mmdbs(dir.path(), "San Francisco");
    let srv = TestServer::start(&geo_config(&city, &asn)).await;
    open_from(&srv, "198.51.100.77", &[]).await;
    open_from(&srv, "2001:db8:1:2::5", &[]).await;
    open_from(&srv, "203.0.113.9", &[]).await;
    open_from(&srv, "198.51.100.78", &[("dnt", "1")]).await;
    let events = srv.stop().await;

    let e = &events[0];
    assert_eq!(e["geo"]["country"], "US");
    assert_eq!(e["geo"]["subdivision"], "CA");
    assert_eq!(e["geo"]["city"], "San Francisco");
    assert_eq!(e["geo"]["latitude"], 37.7749);
    assert_eq!(e["geo"]["longitude"], -122.4194);
    assert_eq!(e["geo"]["asn"], 64500);
    assert_eq!(e["geo"]["as_org"], "Example Transit");
    assert_eq!(
        e["ip"], "198.51.100.0",
        "looked up on the full address, then truncated"
    );

    let e = &events[1];
    assert_eq!(e["geo"]["country"], "DE");
    assert_eq!(e["geo"]["city"], "Berlin");
    assert!(e["geo"].get("asn").is_none());
    assert_eq!(e["ip"], "2001:db8:1::");

    let e = &events[2];
    assert!(e.get("geo").is_none(), "an unknown network has no geo: {e}");
    assert_eq!(e["ip"], "203.0.113.0");

    let e = &events[3];
    assert_eq!(e["geo"]["country"], "US");
    assert!(
        e["geo"].get("city").is_none() && e["geo"].get("latitude").is_none(),
        "{e}"
    );
    assert!(e.get("ip").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_database_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = build_mmdbs(dir.path(), "San Francisco");
    let cfg = trackedge::config::Config::from_toml(&geo_config(&city, &asn)).unwrap();
    let geo = trackedge::enrich::geo::GeoIp::open(&cfg.geoip).unwrap();
    let ip = "198.51.100.1".parse().unwrap();
    assert_eq!(
        geo.lookup(ip).unwrap().city.as_deref(),
        Some("San Francisco")
    );
    assert_eq!(geo.reload(false), 0, "nothing changed");
    // A new release of the database, renamed into place.
    std::thread::sleep(std::time::Duration::from_millis(20));
    build_mmdbs(dir.path(), "Oakland");
    assert!(geo.reload(false) >= 1);
    assert_eq!(geo.lookup(ip).unwrap().city.as_deref(), Some("Oakland"));
    // A corrupt replacement keeps the working database.
    let tmp = dir.path().join("bad.tmp");
    std::fs::write(&tmp, b"not a database at all").unwrap();
    std::fs::rename(&tmp, &city).unwrap();
    geo.reload(true);
    assert_eq!(geo.lookup(ip).unwrap().city.as_deref(), Some("Oakland"));
    // A configuration reload (SIGHUP) is told, so it counts an error.
    let err = geo.try_reload(true).unwrap_err();
    assert!(err.to_string().contains("geoip.city_db"), "{err}");
    assert_eq!(geo.lookup(ip).unwrap().city.as_deref(), Some("Oakland"));
}

#[test]
fn a_missing_or_corrupt_database_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, b"garbage").unwrap();
    for (path, key) in [
        (bad.to_str().unwrap(), "geoip.city_db"),
        ("/no/such.mmdb", "geoip.city_db"),
    ] {
        let out = bare_command(dir.path())
            .args(["serve"])
            .env("TRACKEDGE_SERVER__LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_GEOIP__CITY_DB", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dnt_gpc_and_opt_out_anonymize_or_drop() {
    let srv = TestServer::start(BEHIND_LB).await;
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("dnt", "1")],
        &[("sec-gpc", "1")],
        &[("cookie", "trackedge_optout=1; tev=0190-known")],
    ];
    let mut answers = Vec::new();
    for (i, h) in cases.iter().enumerate() {
        let mut c = claims(TokenType::Click, "privacy");
        c.r = Some(format!("case-{i}"));
        c.u = Some("https://example.com/".into());
        let mut headers = vec![
            ("x-forwarded-for", "198.51.100.7"),
            ("cookie", "tev=0190-known"),
        ];
        if h.iter().any(|(k, _)| *k == "cookie") {
            headers.retain(|(k, _)| *k != "cookie");
        }
        headers.extend_from_slice(h);
        let a = get_with(&srv.tracked(&mut c), &headers).await;
        answers.push(a);
    }
    // The answer is the same either way.
    for a in &answers {
        assert_eq!(a.status, 302);
        assert_eq!(a.header("location"), Some("https://example.com/"));
        assert!(
            a.header("set-cookie").is_none(),
            "a known or opted-out visitor gets no new cookie"
        );
    }
    let events = srv.stop().await;
    assert_eq!(events[0]["ip"], "198.51.100.0");
    assert_eq!(events[0]["visitor"], "0190-known");
    assert_eq!(
        events[0]["privacy"],
        serde_json::json!({"dnt": false, "gpc": false, "opted_out": false})
    );
    for (e, flag) in events[1..].iter().zip(["dnt", "gpc", "opted_out"]) {
        assert!(e.get("ip").is_none(), "{e}");
        assert!(e.get("visitor").is_none(), "{e}");
        assert_eq!(e["privacy"][flag], true, "{e}");
        assert_eq!(
            e["recipient"].as_str().map(|r| r.starts_with("case-")),
            Some(true)
        );
    }

    // Honouring can be switched off per signal, and opted-out requests can
    // give no event at all.
    let srv = TestServer::start("[privacy]\nhonor_dnt = false\non_opt_out = \"drop\"\n").await;
    for h in [("dnt", "1"), ("sec-gpc", "1")] {
        let mut c = claims(TokenType::Open, "privacy");
        let a = get_with(&srv.tracked(&mut c), &[h]).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-length"), Some("43"));
    }
    let events = srv.stop().await;
    assert_eq!(events.len(), 1, "GPC dropped, DNT not honoured");
    assert_eq!(events[0]["privacy"]["dnt"], true);
    assert!(events[0]["ip"].is_string());
}

/// The cookie pairs a browser would send back from Set-Cookie headers.
fn jar(a: &Answer, jar: &mut BTreeMap<String, String>) {
    for v in a.headers.get_all("set-cookie") {
        let v = v.to_str().unwrap();
        let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
        let (k, val) = pair.split_once('=').unwrap();
        if attrs.contains("Max-Age=0") {
            jar.remove(k);
        } else {
            jar.insert(k.to_owned(), val.to_owned());
        }
    }
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread")]
async fn opt_out_and_visitor_cookies_work_like_a_browser() {
    let srv = TestServer::start("").await;
    let mut cookies = BTreeMap::new();
    let beacon = srv.url("/p.gif?e=signup&page=https%3A%2F%2Fshop.example.com%2Fthanks&c=spring");

    // First visit: a visitor cookie is set and recorded.
    let a = get(&beacon).await;
    assert_eq!(a.status, 200);
    jar(&a, &mut cookies);
    let visitor = cookies.get("tev").cloned().expect("a visitor cookie");
    let set = a.header("set-cookie").unwrap();
    assert!(
        set.contains("Max-Age=31536000")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Lax"),
        "{set}"
    );

    // Second visit: the same visitor, no new cookie.
    let a = get_with(&beacon, &[("cookie", &cookie_header(&cookies))]).await;
    assert!(a.header("set-cookie").is_none());

    // Opt out in the browser: the opt-out cookie is set, the visitor cleared.
    let a = get_with(&srv.url("/optout"), &[("cookie", &cookie_header(&cookies))]).await;
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("opted out"));
    jar(&a, &mut cookies);
    assert_eq!(
        cookies.get("trackedge_optout").map(String::as_str),
        Some("1")
    );
    assert!(!cookies.contains_key("tev"));

    // Later requests are honoured, and no visitor cookie is set again.
    let a = get_with(&beacon, &[("cookie", &cookie_header(&cookies))]).await;
    assert_eq!(a.status, 200);
    assert!(a.header("set-cookie").is_none());

    // Opt back in.
    let a = get_with(&srv.url("/optin"), &[("cookie", &cookie_header(&cookies))]).await;
    jar(&a, &mut cookies);
    assert!(!cookies.contains_key("trackedge_optout"));
    let a = get_with(&beacon, &[("cookie", &cookie_header(&cookies))]).await;
    assert!(
        a.header("set-cookie").is_some(),
        "a fresh visitor after opting in"
    );

    let events = srv.stop().await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["visitor"], visitor.as_str());
    assert_eq!(events[1]["visitor"], visitor.as_str());
    assert!(events[2].get("visitor").is_none() && events[2].get("ip").is_none());
    assert_eq!(events[2]["privacy"]["opted_out"], true);
    assert!(events[3]["visitor"].is_string());
    assert_ne!(events[3]["visitor"], visitor.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn web_beacons() {
    let srv = TestServer::start("").await;
    let a = get_with(
        &srv.url("/p.gif?e=add_to_cart&ref=https%3A%2F%2Fsearch.example%2F%3Fq%3Dx&c=summer&src=affiliate-7"),
        &[("referer", "https://shop.example.com/p/42"), ("user-agent", CHROME)],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("image/gif"));
    assert_eq!(a.body.len(), 43);
    // Defaults, HTML kept as given, control characters stripped, lengths capped.
    let long = "x".repeat(5000);
    get(&srv.url(&format!(
        "/p.gif?page=https%3A%2F%2Fshop.example.com%2F%3Ca%3E%26amp%3B%0D%0Aevil&c={long}"
    )))
    .await;
    get(&srv.url("/p.gif")).await;
    // What navigator.sendBeacon sends: a beacon too (contract §1).
    assert_eq!(
        send(Method::POST, &srv.url("/p.gif"), &[], "").await.status,
        204
    );
    let events = srv.stop().await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[3]["method"], "POST");
    let e = &events[0];
    assert_eq!(e["type"], "beacon");
    assert_eq!(e["name"], "add_to_cart");
    assert_eq!(
        e["url"], "https://shop.example.com/p/42",
        "page defaults to the Referer"
    );
    assert_eq!(e["referer"], "https://search.example/?q=x");
    assert_eq!(e["campaign"], "summer");
    assert_eq!(e["src"], "affiliate-7");
    assert_eq!(e["ua"]["name"], "Chrome");
    let e = &events[1];
    assert_eq!(e["name"], "pageview");
    assert_eq!(e["url"], "https://shop.example.com/<a>&amp;evil");
    assert_eq!(e["campaign"].as_str().unwrap().len(), 128);
    assert!(events[2].get("url").is_none());
}
