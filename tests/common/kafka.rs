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
    let mut last;
    let partitions = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    break t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>();
                }
                Some(t) => {
                    last = format!(
                        "topic error {:?}, {} partitions",
                        t.error(),
                        t.partitions().len()
                    )
                }
                None => last = "topic not in metadata".into(),
            },
            Err(e) => last = e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} never showed up: {last}"
        );
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
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match admin.create_topics([&t], &opts).await {
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
        tokio::time::sleep(Duration::from_millis(300)).await;
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

/// Whether a tansu binary is at hand. When it is not: under CI a failure
/// naming what to install, on a developer's machine a skip saying so.
pub fn broker_available() -> bool {
    super::have_tool(
        tansu_bin(),
        "no tansu broker: install it with `cargo install tansu --version 0.6.0 --locked \
         --features dynostore,libsql` (or run .ci/run, which does)",
    )
}

/// A real Kafka-protocol broker (tansu) on a loopback port.
pub struct Tansu {
    pub port: u16,
    storage: String,
    dir: PathBuf,
    /// The port put in metadata, when not `port`.
    advertised: Option<u16>,
    child: Option<Child>,
}

impl Tansu {
    /// Starts a broker on `port` with `storage` (`memory://tansu/`, or
    /// `sqlite://FILE` with FILE relative to `dir`, where it runs).
    pub fn start(port: u16, storage: &str, dir: &Path) -> Tansu {
        let mut t = Tansu {
            port,
            storage: storage.to_owned(),
            dir: dir.to_path_buf(),
            advertised: None,
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
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let child = Command::new(tansu_bin())
            .current_dir(&self.dir)
            .arg("broker")
            .args([
                "--kafka-listener-url",
                &url,
                "--kafka-advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", &self.storage])
            .stdout(Stdio::null())
            .stderr(self.log())
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
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "tansu exited with {status} before listening on {}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's log file (appended across restarts), for post-mortems.
    fn log(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("tansu-{}.log", self.port)))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
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

/// A TCP proxy the test controls, to cut a broker off the network and
/// bring it back without restarting it.
pub struct CutProxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `upstream_port`.
    pub async fn start(upstream_port: u16) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if *rx.borrow() {
                    continue; // cut off: the connection is dropped at once
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CutProxy { port, cut }
    }

    /// Drops every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

impl Tansu {
    /// A broker that advertises `advertised_port` (a proxy in front of it)
    /// instead of its own.
    pub fn start_behind(port: u16, advertised_port: u16, storage: &str, dir: &Path) -> Tansu {
        let mut t = Tansu {
            port,
            storage: storage.to_owned(),
            dir: dir.to_path_buf(),
            advertised: Some(advertised_port),
            child: None,
        };
        t.spawn();
        t
    }
}
