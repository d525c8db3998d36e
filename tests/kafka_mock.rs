//! Error paths of the Kafka sink driven by librdkafka's mock cluster: a
//! broker that goes down, a broker so slow that records time out, a full
//! producer queue, and brokers answering "not available". In each case every
//! answered request's event reaches the topic in the end.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use common::kafka::*;
use common::*;
use trackedge::token::TokenType;

const TOPIC: &str = "trackedge.events";

fn mock() -> MockCluster<'static, DefaultProducerContext> {
    let m = MockCluster::new(1).expect("mock cluster");
    m.create_topic(TOPIC, 2, 1).expect("mock topic");
    m
}

async fn start(
    m: &MockCluster<'static, DefaultProducerContext>,
    extra: &str,
) -> (TestServer, tempfile::TempDir) {
    let spool = tempfile::tempdir().unwrap();
    let cfg = kafka_toml(&m.bootstrap_servers(), TOPIC, spool.path(), extra);
    let srv = TestServer::start(&cfg).await;
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready\n",
        Duration::from_secs(20),
    )
    .await;
    (srv, spool)
}

/// Sends `n` opens for recipients `{prefix}-{i}`, all must get the GIF.
async fn send_opens(srv: &TestServer, prefix: &str, n: usize) -> HashSet<String> {
    let mut sent = HashSet::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let r = format!("{prefix}-{i}");
        let mut c = claims(TokenType::Open, "mock");
        c.r = Some(r.clone());
        let url = srv.tracked(&mut c);
        sent.insert(r);
        tasks.push(tokio::spawn(async move { get(&url).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    sent
}

fn recipients(bootstrap: &str, want: usize) -> (HashSet<String>, usize) {
    let msgs = consume(bootstrap, TOPIC, want, Duration::from_secs(60));
    let n = msgs.len();
    let set = msgs
        .iter()
        .map(|m| String::from_utf8(m.key().unwrap().to_vec()).unwrap())
        .collect();
    (set, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_then_up_delivers_everything() {
    let m = mock();
    let (srv, _spool) = start(&m, "message_timeout_ms = 1000\n").await;
    m.broker_down(1).unwrap();
    let sent = send_opens(&srv, "down", 100).await;
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready, degraded",
        Duration::from_secs(20),
    )
    .await;
    m.broker_up(1).unwrap();
    let b = m.bootstrap_servers();
    let (got, n) = tokio::task::spawn_blocking(move || recipients(&b, 100))
        .await
        .unwrap();
    assert_eq!(
        got, sent,
        "every event delivered after the broker came back"
    );
    println!("100 sent, {n} records ({} duplicates)", n - 100);
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready\n",
        Duration::from_secs(20),
    )
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timed_out_records_are_spooled_and_replayed() {
    let m = mock();
    let (srv, _spool) = start(&m, "message_timeout_ms = 300\n").await;
    m.broker_round_trip_time(1, Duration::from_secs(3)).unwrap();
    let sent = send_opens(&srv, "slow", 50).await;
    wait_readyz(
        &srv.admin_url("/readyz"),
        "ready, degraded",
        Duration::from_secs(20),
    )
    .await;
    m.broker_round_trip_time(1, Duration::ZERO).unwrap();
    let b = m.bootstrap_servers();
    let (got, _) = tokio::task::spawn_blocking(move || recipients(&b, 50))
        .await
        .unwrap();
    assert_eq!(got, sent);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_producer_queue_overflows_to_the_spool() {
    let m = mock();
    let extra =
        "[kafka.librdkafka]\n\"queue.buffering.max.messages\" = \"5\"\n\"linger.ms\" = \"0\"\n";
    let (srv, spool) = start(&m, extra).await;
    m.broker_round_trip_time(1, Duration::from_millis(1500))
        .unwrap();
    let sent = send_opens(&srv, "full", 200).await;
    // Most of these could not fit in a 5-message queue: they are on disk.
    let on_disk: u64 = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk > 0, "nothing overflowed to the spool");
    m.broker_round_trip_time(1, Duration::ZERO).unwrap();
    let b = m.bootstrap_servers();
    let (got, _) = tokio::task::spawn_blocking(move || recipients(&b, 200))
        .await
        .unwrap();
    assert_eq!(got, sent);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_not_available_errors_are_retried() {
    let m = mock();
    let (srv, _spool) = start(&m, "").await;
    m.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE; 5],
    );
    let sent = send_opens(&srv, "bna", 40).await;
    let b = m.bootstrap_servers();
    let (got, _) = tokio::task::spawn_blocking(move || recipients(&b, 40))
        .await
        .unwrap();
    assert_eq!(got, sent);
    srv.stop().await;
}
