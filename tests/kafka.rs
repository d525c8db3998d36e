//! The Kafka sink against a real Kafka-protocol broker process (tansu) over
//! TCP: exact records, outages at start and mid-load, crashes with a
//! spool, damaged spools, a full spool, and a missing topic.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};
use rdkafka::Timestamp;

use common::kafka::*;
use common::*;
use trackedge::sink::kafka::spool::SpoolRecord;
use trackedge::token::{Keyring, TokenType};

const TOPIC: &str = "trackedge.events";

/// A server on the Kafka sink, once readiness says it is delivering.
async fn ready_kafka_server(bootstrap: &str, spool: &std::path::Path, extra: &str) -> TestServer {
    let srv = TestServer::start(&kafka_toml(bootstrap, TOPIC, spool, extra)).await;
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready\n",
        Duration::from_secs(30),
    )
    .await;
    srv
}

fn ring() -> Keyring {
    Keyring::new(&[(KEY_ID.into(), SECRET.as_bytes().to_vec())])
}

fn open_path(r: &str) -> String {
    let mut c = claims(TokenType::Open, "kafka-test");
    c.r = Some(r.to_owned());
    let token = ring().sign(&mut c);
    trackedge::router::token_url("", TokenType::Open, &token)
}

fn keys(msgs: &[OwnedMessage]) -> (HashSet<String>, usize) {
    let set: HashSet<String> = msgs
        .iter()
        .map(|m| String::from_utf8(m.key().unwrap().to_vec()).unwrap())
        .collect();
    (set, msgs.len())
}

async fn consume_async(bootstrap: String, want: usize, secs: u64) -> Vec<OwnedMessage> {
    tokio::task::spawn_blocking(move || consume(&bootstrap, TOPIC, want, Duration::from_secs(secs)))
        .await
        .unwrap()
}

/// Sends one open per recipient `{prefix}-{i}`; every answer must be the GIF.
async fn opens(base: &str, prefix: &str, n: usize) -> HashSet<String> {
    let mut set = HashSet::new();
    for i in 0..n {
        let r = format!("{prefix}-{i}");
        let a = get(&format!("{base}{}", open_path(&r))).await;
        assert_eq!(a.status, 200);
        set.insert(r);
    }
    set
}

/// Each thread of this process: its name and scheduling policy (proc(5),
/// the 41st field of `stat`).
fn thread_policies() -> Vec<(String, u32)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 2..];
            let policy = after.split(' ').nth(41 - 3)?.parse().ok()?;
            Some((name.trim().to_owned(), policy))
        })
        .collect()
}

fn spool_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .all(|e| e.metadata().map(|m| m.len() == 0).unwrap_or(true))
        })
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn n_requests_give_exactly_n_records() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(free_port(), "memory://tansu/", dir.path());
    create_topic(&broker.bootstrap(), TOPIC, 3).await;
    let srv = ready_kafka_server(&broker.bootstrap(), &dir.path().join("spool"), "").await;

    let mut expect_keyed = HashSet::new();
    for i in 0..150 {
        let r = format!("o-{i}");
        let mut c = claims(TokenType::Open, "spring-sale");
        c.r = Some(r.clone());
        assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
        expect_keyed.insert(r);
    }
    for i in 0..100 {
        let r = format!("c-{i}");
        let mut c = claims(TokenType::Click, "spring-sale");
        c.r = Some(r.clone());
        c.u = Some("https://shop.example.com/".into());
        assert_eq!(get(&srv.tracked(&mut c)).await.status, 302);
        expect_keyed.insert(r);
    }
    for _ in 0..50 {
        let mut c = claims(TokenType::Open, "anonymous");
        assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
    }
    // The sink's threads and librdkafka's producer threads are background
    // work (SCHED_BATCH); the serving threads are not. Other tests' Kafka
    // clients run in this process too: one librdkafka main thread (the
    // sink's) must be a batch thread, not every one.
    let policies = thread_policies();
    let background = ["trackedge-kafka", "trackedge-spool", "trackedge-repla"];
    for name in background {
        assert!(
            policies.iter().any(|(n, _)| n == name),
            "no {name} thread in {policies:?}"
        );
    }
    assert!(
        policies.iter().any(|(n, p)| n == "rdk:main" && *p == 3),
        "the producer's librdkafka threads run as SCHED_BATCH: {policies:?}"
    );
    for (name, policy) in &policies {
        if background.contains(&name.as_str()) {
            assert_eq!(*policy, 3, "{name} runs as SCHED_BATCH");
        }
        if name.starts_with("trackedge-http") {
            assert_eq!(*policy, 0, "{name} serves as SCHED_OTHER");
        }
    }
    let msgs = consume_async(broker.bootstrap(), 300, 60).await;
    assert_eq!(msgs.len(), 300, "exactly one record per request");
    let mut ids = HashSet::new();
    let mut keyed = HashSet::new();
    for m in &msgs {
        let raw = m.payload().unwrap();
        assert_ne!(raw.last(), Some(&b'\n'), "no trailing newline in Kafka");
        let v = value(m);
        let h = headers(m);
        let id = v["event_id"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()));
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        match v["recipient"].as_str() {
            Some(r) => {
                assert_eq!(key, r);
                keyed.insert(key);
            }
            None => assert_eq!(key, id, "no recipient: keyed by event id"),
        }
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime(v["ts_ms"].as_i64().unwrap())
        );
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_id"], id);
        assert_eq!(
            h["ce_type"],
            format!("trackedge.{}.v1", v["type"].as_str().unwrap())
        );
        assert_eq!(h["ce_source"], "http://localhost:8080");
        assert_eq!(h["content-type"], "application/json");
        let t = humantime::parse_rfc3339(&h["ce_time"]).unwrap();
        let t_ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        assert_eq!(t_ms, v["ts_ms"].as_i64().unwrap());
    }
    assert_eq!(keyed, expect_keyed);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_at_start_then_up_delivers_and_empties_the_spool() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let srv = TestServer::start(&kafka_toml(&bootstrap, TOPIC, &spool, "")).await;
    let sent = opens(&srv.url(""), "early", 100).await;
    let why = wait_readyz(
        &srv.admin_url("/readyz"),
        "ready, degraded",
        Duration::from_secs(10),
    )
    .await;
    assert!(why.contains("spooled"), "{why}");
    assert!(!spool_is_empty(&spool), "events wait on disk");

    let broker = Tansu::start(port, "memory://tansu/", dir.path());
    create_topic(&broker.bootstrap(), TOPIC, 3).await;
    let (got, n) = keys(&consume_async(broker.bootstrap(), 100, 60).await);
    assert_eq!(got, sent);
    println!("100 accepted while the broker was down; {n} records consumed");
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready\n",
        Duration::from_secs(30),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spool_is_empty(&spool) {
        assert!(Instant::now() < deadline, "spool never emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_mid_load_loses_nothing() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The broker is cut off by a proxy rather than killed: tansu 0.6's
    // sqlite engine panics on an idempotent producer's first produce after
    // a restart ("more or less than one row"), and a memory:// broker
    // forgets everything when killed.
    let broker_port = free_port();
    let proxy = CutProxy::start(broker_port).await;
    let broker = Tansu::start_behind(broker_port, proxy.port, "memory://tansu/", dir.path());
    let bootstrap = format!("127.0.0.1:{}", proxy.port);
    create_topic(&bootstrap, TOPIC, 3).await;
    let srv = ready_kafka_server(&bootstrap, &dir.path().join("spool"), "").await;

    // (phase, latency) per answered request; phase 0 before, 1 during, 2 after the outage.
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let samples: Arc<Mutex<Vec<(u8, Duration)>>> = Arc::default();
    let answered: Arc<Mutex<HashSet<String>>> = Arc::default();
    let bad: Arc<Mutex<Vec<u16>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = srv.url("");
    let mut workers = Vec::new();
    for w in 0..4 {
        let (phase, samples, answered, bad, stop, base) = (
            phase.clone(),
            samples.clone(),
            answered.clone(),
            bad.clone(),
            stop.clone(),
            base.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = client();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = format!("w{w}-{i}");
                i += 1;
                let req = http::Request::get(format!("{base}{}", open_path(&r)))
                    .body(Default::default())
                    .unwrap();
                let t = Instant::now();
                let resp = client.request(req).await.expect("answered");
                let dt = t.elapsed();
                if resp.status() == 200 {
                    answered.lock().unwrap().insert(r);
                    samples
                        .lock()
                        .unwrap()
                        .push((phase.load(std::sync::atomic::Ordering::Relaxed), dt));
                } else {
                    bad.lock().unwrap().push(resp.status().as_u16());
                }
                // A steady load, well below saturation, so latency measures
                // the edge and not a queue in front of it.
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.cut();
    phase.store(1, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.restore();
    phase.store(2, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        bad.lock().unwrap().is_empty(),
        "non-200 answers: {:?}",
        bad.lock().unwrap()
    );

    let msgs = consume_async(bootstrap.clone(), answered.len(), 120).await;
    let (got, n) = keys(&msgs);
    let missing: Vec<_> = answered.difference(&got).collect();
    if !missing.is_empty() {
        let r = get(&srv.admin_url("/readyz")).await;
        let m = get(&srv.admin_url("/metrics")).await;
        let m = String::from_utf8_lossy(&m.body).into_owned();
        let interesting: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with("trackedge_") && !l.contains("bucket"))
            .collect();
        println!(
            "readyz: {}\n{}",
            String::from_utf8_lossy(&r.body),
            interesting.join("\n")
        );
    }
    assert!(
        missing.is_empty(),
        "{} of {} answered events missing, e.g. {:?}",
        missing.len(),
        answered.len(),
        missing.first()
    );
    let mut per: HashMap<u8, Vec<Duration>> = HashMap::new();
    for (p, d) in samples.lock().unwrap().iter() {
        per.entry(*p).or_default().push(*d);
    }
    for v in per.values_mut() {
        v.sort();
    }
    let p99 = |p: u8| percentile(per.get(&p).map(|v| &v[..]).unwrap_or(&[]), 0.99);
    println!(
        "outage test: {} answered, {n} records ({} duplicates); p99 before {:?}, during {:?}, after {:?}",
        answered.len(),
        n - answered.len(),
        p99(0),
        p99(1),
        p99(2)
    );
    // The edge does not slow down while Kafka is away (a 5 ms floor keeps
    // scheduler noise on a small machine from deciding the test).
    let limit = (p99(0) * 2).max(Duration::from_millis(5));
    assert!(
        p99(1) <= limit,
        "p99 during the outage {:?} > {limit:?}",
        p99(1)
    );
    srv.stop().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_with_events_in_the_spool_then_restart_delivers_them() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let p = Proc::spawn(dir.path(), &kafka_env(&bootstrap, &spool_s));
    let sent = opens(&p.url(""), "crash", 50).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&p.metrics().await, "trackedge_spool_events") < 50.0 {
        assert!(Instant::now() < deadline, "events never reached the spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the fsync interval, then a crash: no shutdown, no flush.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.signal("KILL"), None);

    let broker = Tansu::start(port, "memory://tansu/", dir.path());
    create_topic(&broker.bootstrap(), TOPIC, 3).await;
    let p = Proc::spawn(dir.path(), &kafka_env(&bootstrap, &spool_s));
    let (got, _) = keys(&consume_async(broker.bootstrap(), 50, 60).await);
    assert_eq!(got, sent, "every spooled event delivered after the restart");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = p.metrics().await;
        if metric(&m, "trackedge_spool_events") == 0.0
            && metric(&m, "trackedge_events_delivered_total") >= 50.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "spool not drained: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(p.signal("TERM"), Some(0));
}

/// A broker with the topic, and a spool directory under `dir` whose first
/// segment holds `bytes`: the broker, its address and the spool's path.
async fn broker_and_spool(dir: &std::path::Path, bytes: &[u8]) -> (Tansu, String, String) {
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("0000000000000001.spool"), bytes).unwrap();
    let broker = Tansu::start(free_port(), "memory://tansu/", dir);
    create_topic(&broker.bootstrap(), TOPIC, 3).await;
    let bootstrap = broker.bootstrap();
    (broker, bootstrap, spool.to_str().unwrap().to_owned())
}

fn record(i: usize) -> SpoolRecord {
    let id = uuid::Uuid::now_v7().to_string();
    SpoolRecord {
        ts_ms: 1_763_942_400_000 + i as i64,
        key: format!("d-{i}").into_bytes(),
        headers: vec![
            ("ce_specversion".into(), b"1.0".to_vec()),
            ("ce_id".into(), id.clone().into_bytes()),
        ],
        payload: format!(r#"{{"schema":"trackedge.event.v1","event_id":"{id}","type":"open","recipient":"d-{i}"}}"#)
            .into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_spool_delivers_every_intact_record() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<SpoolRecord> = (0..10).map(record).collect();
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    for r in &recs {
        offsets.push(bytes.len());
        r.encode_into(&mut bytes);
    }
    // Record 3 gets a flipped byte in its payload; record 9 is torn.
    bytes[offsets[3] + recs[3].encoded_len() - 5] ^= 0x01;
    bytes.truncate(offsets[9] + 20);
    let (broker, bootstrap, spool_s) = broker_and_spool(dir.path(), &bytes).await;
    let p = Proc::spawn(dir.path(), &kafka_env(&bootstrap, &spool_s));
    let (got, _) = keys(&consume_async(broker.bootstrap(), 8, 60).await);
    let want: HashSet<String> = (0..9)
        .filter(|i| *i != 3)
        .map(|i| format!("d-{i}"))
        .collect();
    assert_eq!(got, want);
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trackedge_events_dropped_total{reason=\"spool_corrupt\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(get(&p.admin_url("/livez")).await.status, 200);
    assert_eq!(p.signal("TERM"), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_drops_the_newest_and_the_books_balance() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let spool = dir.path().join("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let mut env = kafka_env(&bootstrap, &spool_s);
    env.push(("TRACKEDGE_KAFKA__SPOOL_MAX_BYTES", "8192"));
    env.push(("TRACKEDGE_KAFKA__SPOOL_SEGMENT_BYTES", "4096"));
    let p = Proc::spawn(dir.path(), &env);
    // Every pixel is served, full spool or not.
    opens(&p.url(""), "full", 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = p.metrics().await;
    let accepted = metric(&m, "trackedge_events_accepted_total");
    let delivered = metric(&m, "trackedge_events_delivered_total");
    let dropped = metric_sum(&m, "trackedge_events_dropped_total");
    let full = metric(&m, "trackedge_events_dropped_total{reason=\"spool_full\"}");
    let pending = metric(&m, "trackedge_sink_queue_events");
    let spooled = metric(&m, "trackedge_spool_events");
    assert_eq!(accepted, 100.0);
    assert!(
        full > 0.0 && spooled > 0.0,
        "full {full}, spooled {spooled}"
    );
    assert!(metric(&m, "trackedge_spool_bytes") <= 8192.0);
    assert_eq!(accepted, delivered + dropped + pending, "{m}");
    // A full spool reaches every node at once: the node stays ready (it
    // answers every pixel) and says what is wrong (contract §4).
    let ready = get(&p.admin_url("/readyz")).await;
    let body = String::from_utf8_lossy(&ready.body).into_owned();
    assert_eq!(ready.status, 200, "{body}");
    assert!(
        body.starts_with("ready, degraded") && body.contains("spool"),
        "{body}"
    );
    assert_eq!(metric(&p.metrics().await, "trackedge_sink_up"), 0.0);

    // The broker comes back: the spool drains, and the books balance
    // exactly, with every delivered event in the topic once.
    let port: u16 = bootstrap.rsplit(':').next().unwrap().parse().unwrap();
    let broker = Tansu::start(port, "memory://tansu/", dir.path());
    create_topic(&broker.bootstrap(), TOPIC, 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let m = p.metrics().await;
        if metric(&m, "trackedge_spool_events") == 0.0
            && metric(&m, "trackedge_sink_queue_events") == 0.0
            && metric(&m, "trackedge_sink_up") == 1.0
        {
            break m;
        }
        assert!(Instant::now() < deadline, "the spool never drained: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let accepted = metric(&m, "trackedge_events_accepted_total");
    let delivered = metric(&m, "trackedge_events_delivered_total");
    let dropped = metric_sum(&m, "trackedge_events_dropped_total");
    assert_eq!(accepted, 100.0);
    assert_eq!(accepted, delivered + dropped, "{m}");
    assert!(delivered > 0.0 && dropped > 0.0, "{m}");
    let msgs = consume_async(broker.bootstrap(), delivered as usize, 30).await;
    let ids: HashSet<String> = msgs
        .iter()
        .map(|m| value(m)["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len() as f64, delivered, "distinct events in the topic");
    // Live events now go straight to Kafka; once delivered, none is left
    // counted as pending.
    opens(&p.url(""), "after", 20).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = p.metrics().await;
        if metric(&m, "trackedge_events_delivered_total") == delivered + 20.0 {
            assert_eq!(metric(&m, "trackedge_sink_queue_events"), 0.0, "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(p.signal("TERM"), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_is_reported_and_create_topic_creates_it() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(free_port(), "memory://tansu/", dir.path());
    let spool = dir.path().join("spool-a");
    let srv = TestServer::start(&kafka_toml(&broker.bootstrap(), TOPIC, &spool, "")).await;
    let why = wait_readyz(
        &srv.admin_url("/readyz"),
        "ready, degraded",
        Duration::from_secs(20),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut why = why;
    while !why.contains("does not exist") {
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        why = String::from_utf8_lossy(&get(&srv.admin_url("/readyz")).await.body).into_owned();
    }
    let sent = opens(&srv.url(""), "waiting", 20).await;
    srv.stop().await;

    // The same spool, now with create_topic: the topic appears and the
    // waiting events are delivered.
    let srv = ready_kafka_server(
        &broker.bootstrap(),
        &spool,
        "create_topic = true\npartitions = 2\n",
    )
    .await;
    let (got, _) = keys(&consume_async(broker.bootstrap(), 20, 60).await);
    assert_eq!(got, sent);
    srv.stop().await;
}

/// Issue 21, item 8: a broker restarted on an empty store (memory://
/// forgets topics and producer ids) is reachable but never acknowledges
/// the old idempotent producer; trackedge replaces the producer after a
/// run of delivery timeouts with brokers up, and every event arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restarted_on_an_empty_store_gets_a_new_producer_and_every_event() {
    if !broker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(free_port(), "memory://tansu/", dir.path());
    create_topic(&broker.bootstrap(), TOPIC, 1).await;
    let srv = ready_kafka_server(
        &broker.bootstrap(),
        &dir.path().join("spool"),
        "message_timeout = \"2s\"\n",
    )
    .await;
    let before = opens(&srv.url(""), "before", 20).await;
    let (got, _) = keys(&consume_async(broker.bootstrap(), before.len(), 30).await);
    assert_eq!(got, before);

    broker.restart();
    create_topic(&broker.bootstrap(), TOPIC, 1).await;
    // A steady trickle, as traffic is: the producer's stall shows as a run
    // of timeouts while the broker is up.
    let mut after = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut i = 0;
    while Instant::now() < deadline {
        after.extend(opens(&srv.url(""), &format!("after{i}"), 10).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let msgs = consume_async(broker.bootstrap(), after.len(), 90).await;
    let (got, _) = keys(&msgs);
    let missing: Vec<_> = after.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events sent after the restart never reached the new broker, e.g. {missing:?}",
        after.len() - after.intersection(&got).count(),
        after.len()
    );
    let m = get(&srv.admin_url("/metrics")).await;
    let m = String::from_utf8_lossy(&m.body);
    assert!(
        metric(
            &m,
            "trackedge_kafka_producer_resets_total{reason=\"stalled\"}"
        ) >= 1.0,
        "the stalled producer was replaced and counted:\n{}",
        m.lines()
            .filter(|l| l.contains("kafka"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    srv.stop().await;
}

/// Issue 21, item 10: replayed records that librdkafka still holds when
/// the process is told to stop are delivered by the final flush; the next
/// start must neither send them again nor count them again.
#[tokio::test(flavor = "multi_thread")]
async fn replayed_records_delivered_during_shutdown_are_not_sent_again() {
    if !broker_available() {
        return;
    }
    // More than the replay keeps in flight at once (10,000), so the stop
    // always finds some of it still to do, however loaded the machine.
    const N: usize = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for i in 0..N {
        record(i).encode_into(&mut bytes);
    }
    let (_broker, bootstrap, spool_s) = broker_and_spool(dir.path(), &bytes).await;

    // Told to stop as soon as the replay has delivered something: the rest
    // of the segment is in flight, or not sent yet.
    let p = Proc::spawn(dir.path(), &kafka_env(&bootstrap, &spool_s));
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&p.metrics().await, "trackedge_events_delivered_total") == 0.0 {
        assert!(Instant::now() < deadline, "the replay never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(p.signal("TERM"), Some(0));
    let first = consume_async(bootstrap.clone(), N, 5).await.len();
    assert!(
        first < N,
        "the first run finished the replay before it was stopped: nothing to prove"
    );

    let p = Proc::spawn(dir.path(), &kafka_env(&bootstrap, &spool_s));
    let deadline = Instant::now() + Duration::from_secs(60);
    let second = loop {
        let m = p.metrics().await;
        let delivered = metric(&m, "trackedge_events_delivered_total");
        if metric(&m, "trackedge_spool_events") == 0.0 && delivered as usize + first >= N {
            break delivered as usize;
        }
        assert!(Instant::now() < deadline, "spool not drained: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(p.signal("TERM"), Some(0));
    let msgs = consume_async(bootstrap, N + 1, 10).await;
    let (got, total) = keys(&msgs);
    assert_eq!(got.len(), N, "every spooled record delivered");
    assert_eq!(
        total, N,
        "no record delivered twice (first run {first}, second run {second})"
    );
    assert_eq!(first + second, N, "each delivery counted once");
}
