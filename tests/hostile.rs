//! What hostile clients and careless start-ups must not get (issue 21):
//! an unsubscribe lost to a privacy setting, a guessable admin token, a
//! process a SIGHUP can kill, a start-up that accepts what cannot work.

mod common;

use std::time::{Duration, Instant};

use common::*;
use trackedge::token::TokenType;

#[tokio::test]
async fn an_unsubscribe_is_recorded_whatever_the_privacy_mode() {
    let srv = TestServer::start("[privacy]\non_opt_out = \"drop\"\n").await;
    let mut c = claims(TokenType::Unsubscribe, "spring");
    c.r = Some("r-1".into());
    let unsub = srv.tracked(&mut c);
    let open = srv.tracked(&mut claims(TokenType::Open, "spring"));
    for signal in [
        ("sec-gpc", "1"),
        ("dnt", "1"),
        ("cookie", "trackedge_optout=1"),
    ] {
        let r = send(
            http::Method::POST,
            &unsub,
            &[
                signal,
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "List-Unsubscribe=One-Click",
        )
        .await;
        assert_eq!(r.status, 200, "{signal:?}");
        // An open with the same signal is dropped, as configured.
        assert_eq!(get_with(&open, &[signal]).await.status, 200);
    }
    let events = srv.stop().await;
    let unsubs: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "unsubscribe")
        .collect();
    assert_eq!(unsubs.len(), 3, "{events:?}");
    for e in &unsubs {
        assert_eq!(e["recipient"], "r-1");
        assert!(
            e.get("ip").is_none() && e.get("visitor").is_none(),
            "anonymized: {e}"
        );
        let p = &e["privacy"];
        assert!(
            p["gpc"] == true || p["dnt"] == true || p["opted_out"] == true,
            "{e}"
        );
    }
    assert!(events.iter().all(|e| e["type"] != "open"), "{events:?}");
}

#[tokio::test]
async fn wrong_admin_tokens_are_counted_and_slowed_down() {
    let token = "admin-token-0123456789-abcdefghijkl";
    let srv = TestServer::start(&format!("[server]\nadmin_token = \"{token}\"\n")).await;
    let stats = srv.admin_url("/stats");
    // The scheme is case-insensitive.
    let ok = get_with(&stats, &[("authorization", &format!("bearer {token}"))]).await;
    assert_eq!(ok.status, 200);
    let mut took = vec![];
    for i in 0..7 {
        let t = Instant::now();
        let r = get_with(&stats, &[("authorization", &format!("Bearer guess-{i}"))]).await;
        assert_eq!(r.status, 401);
        took.push(t.elapsed());
    }
    assert!(took[0] < Duration::from_millis(40), "{took:?}");
    assert!(
        took[6] >= Duration::from_millis(100),
        "later guesses wait: {took:?}"
    );
    let m = String::from_utf8_lossy(&get(&srv.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(
        metric(&m, "trackedge_admin_auth_failures_total"),
        7.0,
        "{m}"
    );
    srv.stop().await;
}

/// `check-config` in an empty directory with `env`; exit code and stderr.
fn check_config(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = bare_command(dir);
    c.arg("check-config").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_refuses_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    // A short admin token.
    let (code, err) = check_config(dir.path(), &[], &[("TRACKEDGE_SERVER__ADMIN_TOKEN", "a")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("server.admin_token") && err.contains("32"),
        "{err}"
    );
    // --config naming a directory.
    let (code, err) = check_config(dir.path(), &["--config", dir.path().to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // The public and admin listeners on one address.
    let (code, err) = check_config(
        dir.path(),
        &[],
        &[("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:8080")],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("server.admin_listen"), "{err}");
    // A FIFO as a secret file would hang start-up forever: refused at once.
    let fifo = dir.path().join("secret.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let keys = format!("[{{id=\"k\",secret_file=\"{}\"}}]", fifo.display());
        let t = Instant::now();
        let (code, err) = check_config(dir.path(), &[], &[("TRACKEDGE_SIGNING__KEYS", &keys)]);
        assert_eq!(code, 64, "{err}");
        assert!(
            err.contains("secret_file") && err.contains("not a regular file"),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(10));
    } else {
        skip("mkfifo is missing (coreutils)");
    }
}

/// Whether `pid` has SIGHUP ignored or caught (its own code has run).
fn sighup_handled(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| {
        (l.starts_with("SigIgn:") || l.starts_with("SigCgt:"))
            && u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap_or(0) & 1
                == 1
    })
}

/// SIGHUP is ignored from the C runtime's first constructor on, before
/// `main`. What runs before that (the kernel's exec, the dynamic loader
/// relocating the binary: milliseconds for this unoptimised test build on
/// a busy machine) is out of any program's reach, so the delays count from
/// the moment the process shows SIGHUP handled; before it does, the test
/// only checks that this comes at all.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_in_the_first_milliseconds_never_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    for delay_ms in [0u64, 1, 2, 5, 10] {
        let mut c = bare_command(dir.path());
        c.args(["serve"])
            .env("TRACKEDGE_SERVER__LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let t = Instant::now();
        while !sighup_handled(child.id()) {
            assert!(t.elapsed() < Duration::from_secs(5), "SIGHUP never handled");
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let alive = child.try_wait().unwrap().is_none();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        assert!(
            alive,
            "a SIGHUP {delay_ms} ms after exec ended the process: {status}"
        );
    }
}

/// A connection from `from` (a loopback address) to `to` that sends nothing.
async fn silent(from: &str, to: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4().ok()?;
    s.bind(format!("{from}:0").parse().unwrap()).ok()?;
    tokio::time::timeout(Duration::from_secs(2), s.connect(to))
        .await
        .ok()?
        .ok()
}

/// How long a GET of `path` from 127.0.0.1 takes, with its status.
async fn timed_get(url: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), get(url)).await;
    (r.map_or(0, |a| a.status.as_u16()), t.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_sockets_from_one_address_fill_neither_port() {
    let srv = TestServer::start(
        "[server]\nmax_connections = 64\nmax_connections_per_address = 8\n\
         header_read_timeout = \"3s\"\n",
    )
    .await;
    let pixel = srv.tracked(&mut claims(TokenType::Open, "c"));
    // More silent sockets from one address than both listeners' slots.
    let mut held = vec![];
    for _ in 0..300 {
        if let Some(s) = silent("127.0.0.2", srv.public).await {
            held.push(s);
        }
        if let Some(s) = silent("127.0.0.2", srv.admin).await {
            held.push(s);
        }
    }
    assert!(
        held.len() >= 300,
        "the attacker's connects went through: {}",
        held.len()
    );
    // Others are served at once, on both ports.
    let (status, took) = timed_get(&pixel).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(100), "pixel took {took:?}");
    let (status, took) = timed_get(&srv.admin_url("/livez")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(100), "/livez took {took:?}");
    let m = String::from_utf8_lossy(&get(&srv.admin_url("/metrics")).await.body).into_owned();
    assert!(
        metric(
            &m,
            "trackedge_connections_refused_total{reason=\"per_address_limit\"}"
        ) > 200.0,
        "{m}"
    );
    drop(held);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_cut_at_the_head_deadline_not_the_idle_timeout() {
    let srv =
        TestServer::start("[server]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"60s\"\n")
            .await;
    let mut s = silent("127.0.0.1", srv.public).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await
    .expect("closed well before the idle timeout");
    assert_eq!(n.unwrap_or(0), 0, "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    srv.stop().await;
}

#[tokio::test]
async fn malformed_or_ambiguous_requests_are_refused_and_never_recorded() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Unsubscribe, "c");
    c.r = Some("r".into());
    let unsub = srv.tracked(&mut c);
    let unsub_path = unsub.trim_start_matches(&srv.url(""));
    let bad_chunks = "Transfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n";
    // A malformed chunked body: 400 on the beacon and on the unsubscribe.
    let r = raw(
        srv.public,
        format!("POST /p.gif?e=signup HTTP/1.1\r\nHost: t\r\n{bad_chunks}").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = raw(
        srv.public,
        format!("POST {unsub_path} HTTP/1.1\r\nHost: t\r\n{bad_chunks}").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    // HTTP/1.1 with no Host, or two.
    let r = raw(srv.public, b"GET /p.gif?e=nohost HTTP/1.1\r\n\r\n").await;
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = raw(
        srv.public,
        b"GET /p.gif?e=twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    // A 405 is never cached.
    let r = raw(srv.public, b"DELETE /p.gif HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(raw_status(&r), 405, "{r}");
    assert!(
        r.to_ascii_lowercase().contains("cache-control: no-store"),
        "{r}"
    );
    // A well-formed request still counts.
    let r = raw(srv.public, b"GET /p.gif?e=fine HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(raw_status(&r), 200, "{r}");
    let events = srv.stop().await;
    let names: Vec<_> = events
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        names,
        ["fine"],
        "only the well-formed request is recorded: {events:?}"
    );
}

/// Issue 21, item 9: a client that floods SETTINGS frames on an HTTP/2
/// connection (each one costs the server an ACK) has its connection
/// closed, whether it sends them in bursts or one per ACK; pixels from
/// others keep answering.
#[tokio::test(flavor = "multi_thread")]
async fn an_http2_settings_flood_is_cut_and_pixels_keep_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    let srv = TestServer::start("").await;
    let mut buf = vec![0u8; 64 * 1024];

    // One frame per ACK: within h2's rules, each a round trip.
    let mut s = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut sent = 0;
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if s.write_all(&SETTINGS).await.is_err() {
                return;
            }
            sent += 1;
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if sent == 20_000 {
                std::future::pending::<()>().await;
            }
        }
    })
    .await;
    assert!(
        cut.is_ok(),
        "{sent} SETTINGS frames, one per ACK, and the connection is still open"
    );

    // Bursts.
    let s = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let burst = SETTINGS.repeat(1000);
        for _ in 0..100 {
            if wr.write_all(&burst).await.is_err() {
                return;
            }
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        closed.is_ok(),
        "100,000 SETTINGS frames in bursts and the connection is still open"
    );

    let mut c = claims(TokenType::Open, "flood");
    let t = Instant::now();
    assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
    assert!(t.elapsed() < Duration::from_secs(1));
    srv.stop().await;
}
