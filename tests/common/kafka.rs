//! Kafka helpers for tests: a real consumer, a topic admin, readiness waits,
//! and a tansu broker process.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// Reads every record of `topic` from the beginning until `want` have
/// arrived (then a little longer, to see duplicates) or `timeout` passes.
pub fn consume(bootstrap: &str, topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            if let Some(t) = md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
            {
                if !t.partitions().is_empty() {
                    break t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>();
                }
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never showed up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut extra_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || extra_until.is_some_and(|e| now >= e) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
        if out.len() >= want && extra_until.is_none() {
            extra_until = Some(Instant::now() + Duration::from_millis(700));
        }
    }
    out
}

/// The headers of a record as a map.
pub fn headers(m: &OwnedMessage) -> HashMap<String, String> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON value of a record.
pub fn value(m: &OwnedMessage) -> serde_json::Value {
    serde_json::from_slice(m.payload().expect("a value")).expect("JSON value")
}

/// Creates a topic with an admin client, as an operator would.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match rt.block_on(admin.create_topics([&t], &opts)) {
            Ok(r) if r.iter().all(|r| r.is_ok()) => return,
            Ok(r) => {
                if r.iter().all(|r| {
                    matches!(
                        r,
                        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                    )
                }) {
                    return;
                }
                assert!(Instant::now() < deadline, "cannot create {topic}: {r:?}");
            }
            Err(e) => assert!(Instant::now() < deadline, "cannot create {topic}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls `/readyz` until its body starts with `want` (e.g. "ready\n").
pub async fn wait_readyz(admin_url: &str, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let a = super::get(admin_url).await;
        let body = String::from_utf8_lossy(&a.body).into_owned();
        if body.starts_with(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never said {want:?}; last: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tansu binary: on PATH or in ~/.cargo/bin, where `.ci/run` installs it.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo = Path::new(&home).join(".cargo/bin/tansu");
    if cargo.exists() {
        return cargo;
    }
    PathBuf::from("tansu")
}

/// A real Kafka-protocol broker (tansu) on a loopback port.
pub struct Tansu {
    pub port: u16,
    storage: String,
    child: Option<Child>,
}

impl Tansu {
    /// Starts a broker on `port` with `storage` (`memory://tansu/` or `sqlite://FILE`).
    pub fn start(port: u16, storage: &str) -> Tansu {
        let mut t = Tansu {
            port,
            storage: storage.to_owned(),
            child: None,
        };
        t.spawn();
        t
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args([
                "--kafka-listener-url",
                &url,
                "--kafka-advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .args([
                "--prometheus-listener-url",
                &format!("tcp://127.0.0.1:{}", free_port()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({e}); install it with \
                     `cargo install tansu --locked --features dynostore,libsql` or run .ci/run"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the broker.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}
