//! Never wedge, never lose silently: the sinks and the spool under disk
//! faults, and the listeners under hostile clients. Each test reproduces a
//! finding of issue 12 against real files, devices, sockets and processes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kafka::free_port;
use common::*;
use trackedge::token::TokenType;

/// A size-limited tmpfs the test mounts (it needs root, as CI runs), and
/// unmounts when dropped. None, with the reason printed, where it cannot.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { path, _dir: dir }),
            Ok(o) => {
                common::skip(&format!(
                    "cannot mount a small tmpfs here ({}); run as root",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                None
            }
            Err(e) => {
                common::skip(&format!("no mount command ({e})"));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// Sends `n` opens with recipients `{prefix}-{i}`; every one must get the GIF.
async fn opens(base: &str, prefix: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut c = claims(TokenType::Open, "durability");
        c.r = Some(format!("{prefix}-{i}"));
        let ring = trackedge::token::Keyring::new(&[(KEY_ID.into(), SECRET.as_bytes().to_vec())]);
        let url = trackedge::router::token_url(base, TokenType::Open, &ring.sign(&mut c));
        tasks.spawn(async move { get(&url).await.status });
        if tasks.len() >= 32 {
            assert_eq!(tasks.join_next().await.unwrap().unwrap(), 200);
        }
    }
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.unwrap(), 200);
    }
}

/// Finding 1: a spool on a full disk, a crash, and a start on the same full
/// disk. Recovery used to rewrite the damaged segment into a temp file on
/// that disk, fail, and exit: a crash loop. A real 256 KiB tmpfs.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_crashed_on_a_full_disk_starts_again() {
    let Some(fs) = Tmpfs::mount("256k") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = format!("127.0.0.1:{}", free_port()); // no broker: all to the spool
    let spool = fs.path.join("spool");
    let spool_s = spool.to_str().unwrap().to_owned();
    let env = kafka_env(&bootstrap, &spool_s);
    let p = Proc::spawn(dir.path(), &env);
    opens(&p.url(""), "before", 1500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = p.metrics().await;
    assert!(
        metric(
            &m,
            "trackedge_events_dropped_total{reason=\"spool_io_error\"}"
        ) > 0.0,
        "the disk filled up: {m}"
    );
    assert_eq!(p.signal("KILL"), None);

    // Same full disk: the node must start, serve and keep what it had.
    let p = Proc::spawn(dir.path(), &env);
    assert_eq!(get(&p.admin_url("/livez")).await.status, 200);
    opens(&p.url(""), "after", 20).await;
    let m = p.metrics().await;
    assert!(metric(&m, "trackedge_spool_events") > 0.0, "{m}");
    let r = get(&p.admin_url("/readyz")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(p.signal("TERM"), Some(0));
}

/// Finding 4: a file sink whose disk keeps failing (/dev/full: every write
/// is ENOSPC) used to hang on SIGTERM: an earlier failing batch retried
/// forever, `close` blocked on the full queue, the join had no limit.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_failing_disk_exits_within_the_budget() {
    if !Path::new("/dev/full").exists() {
        common::skip("no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::spawn(
        dir.path(),
        &[
            ("TRACKEDGE_SINK__FILE_PATH", "/dev/full"),
            ("TRACKEDGE_SINK__QUEUE_CAPACITY", "16"),
            ("TRACKEDGE_SERVER__SHUTDOWN_GRACE_MS", "1000"),
            ("TRACKEDGE_SERVER__FLUSH_TIMEOUT_MS", "2000"),
        ],
    );
    opens(&p.url(""), "full", 200).await;
    let m = p.metrics().await;
    assert!(
        metric(&m, "trackedge_events_dropped_total{reason=\"queue_full\"}") > 0.0,
        "{m}"
    );
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || p.signal("TERM"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(8),
        "exit took {took:?}, budget 1 s drain + 2 s flush"
    );
}

/// Finding 5: HTTP/2 streams whose bodies never come, on a connection that
/// pings every second, lived forever: each PING answer reset the timers.
#[tokio::test(flavor = "multi_thread")]
async fn http2_streams_without_bodies_do_not_live_forever() {
    use http_body_util::BodyExt;
    let srv =
        TestServer::start("[server]\nheader_read_timeout_ms = 2000\nidle_timeout_ms = 3000\n")
            .await;
    let tcp = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    let (h2, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(1))
        .keep_alive_while_idle(true)
        .handshake::<_, Never>(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let started = Instant::now();
    let mut c = claims(TokenType::Unsubscribe, "h2");
    let url = srv.tracked(&mut c);
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut h2 = h2.clone();
        let req = http::Request::post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Never)
            .unwrap();
        streams.spawn(async move {
            match h2.send_request(req).await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.into_body().collect().await;
                    status
                }
                Err(_) => 0,
            }
        });
    }
    drop(h2);
    let mut statuses = Vec::new();
    let all = async {
        while let Some(s) = streams.join_next().await {
            statuses.push(s.unwrap());
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .is_ok(),
        "bodiless streams were still open after 20 s"
    );
    assert!(
        statuses.iter().all(|s| *s == 408 || *s == 0),
        "a bodiless stream got an answer other than 408: {statuses:?}"
    );
    assert!(statuses.contains(&408));
    let closed = tokio::time::timeout(Duration::from_secs(15), conn).await;
    assert!(
        closed.is_ok(),
        "the connection was still open after {:?}",
        started.elapsed()
    );
    let events = srv.stop().await;
    assert!(events.is_empty(), "nobody unsubscribed: {events:?}");
}

/// A request body that never ends.
struct Never;

impl hyper::body::Body for Never {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

/// Finding 6: 64 idle connections held open starved `/livez` of the admin
/// listener (64 slots, the public idle limit), and the kubelet restarted the pod.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_do_not_starve_the_probes() {
    use tokio::io::AsyncReadExt;
    let srv = TestServer::start("").await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(tokio::net::TcpStream::connect(srv.admin).await.unwrap());
    }
    let probe = tokio::time::timeout(Duration::from_secs(2), get(&srv.admin_url("/livez"))).await;
    assert_eq!(probe.expect("/livez answered").status, 200);
    // And the idle ones are let go soon, not after the public minute.
    let mut s = idle.pop().unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "still open: {n:?}");
    srv.stop().await;
}

/// Finding 7: drain plus flush must fit Kubernetes' default 30 s grace.
#[test]
fn the_default_shutdown_budget_fits_the_default_grace_period() {
    let cfg = trackedge::config::Config::from_toml("").unwrap();
    let budget = cfg.server.shutdown_grace + cfg.server.flush_timeout;
    assert!(budget < std::time::Duration::from_secs(30), "{budget:?}");
}

/// Finding 8: a line torn by a crash was joined to the next run's first line.
#[tokio::test]
async fn a_torn_last_line_is_ended_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, "{\"whole\":1}\n{\"torn\":").unwrap();
    let srv = TestServer::start(&format!(
        "[sink]\nfile_path = {:?}\n",
        path.to_str().unwrap()
    ))
    .await;
    let mut c = claims(TokenType::Open, "torn");
    assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
    drop(srv.stop().await);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "{\"torn\":");
    let ev: serde_json::Value =
        serde_json::from_str(lines[2]).expect("the new event is a line of its own");
    assert_eq!(ev["campaign"], "torn");
}
