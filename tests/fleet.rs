//! Running as a fleet (contract §4, §6): configuration from the environment as
//! Kubernetes sets it, reload on SIGHUP, keys that rotate across nodes,
//! safe defaults, readiness that survives a sink outage, and `/stats`
//! closed beyond loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{free_port, wait_readyz};
use common::*;
use trackedge::token::{Keyring, TokenType};

const K1: &str = "k1-secret-0123456789abcdef-0123456789";
const K2: &str = "k2-secret-0123456789abcdef-0123456789";

/// A click URL on `p` signed with `(id, secret)`.
fn click_with(p: &Proc, id: &str, secret: &str) -> String {
    let ring = Keyring::new(&[(id.to_owned(), secret.as_bytes().to_vec())]);
    let mut c = claims(TokenType::Click, "fleet");
    c.u = Some("https://example.com/landing".into());
    trackedge::router::token_url(&p.url(""), TokenType::Click, &ring.sign(&mut c))
}

async fn status(url: &str) -> u16 {
    get(url).await.status.as_u16()
}

/// Waits until `url` answers `want`, up to 10 s.
async fn eventually(url: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(url).await != want {
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kubernetes_service_link_variables_are_not_configuration() {
    let dir = tempfile::tempdir().unwrap();
    // What Kubernetes injects for a Service named `trackedge`.
    let p = Proc::spawn(
        dir.path(),
        &[
            ("TRACKEDGE_PORT", "tcp://10.0.0.1:8080"),
            ("TRACKEDGE_SERVICE_HOST", "10.0.0.1"),
            ("TRACKEDGE_SERVICE_PORT", "8080"),
            ("TRACKEDGE_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("TRACKEDGE_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("TRACKEDGE_PORT_8080_TCP_PORT", "8080"),
            ("TRACKEDGE_PORT_8080_TCP_PROTO", "tcp"),
        ],
    );
    assert_eq!(status(&p.admin_url("/livez")).await, 200);
    let url = click_with(&p, KEY_ID, SECRET);
    assert_eq!(status(&url).await, 302);
    assert_eq!(p.signal("TERM"), Some(0));

    // check-config agrees, and a real override with the same prefix still applies.
    let out = bare_command(dir.path())
        .env("TRACKEDGE_PORT", "tcp://10.0.0.1:8080")
        .env("TRACKEDGE_SERVICE_HOST", "10.0.0.1")
        .env("TRACKEDGE_KAFKA__TOPIC", "from-env")
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("topic = \"from-env\""), "{stdout}");
}

#[tokio::test]
async fn sighup_swaps_keys_in_and_a_broken_file_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k1"), format!("{K1}\n")).unwrap();
    std::fs::write(dir.path().join("k2"), format!("{K2}\n")).unwrap();
    let config = dir.path().join("trackedge.toml");
    std::fs::write(
        &config,
        "[signing]\nkeys = [{ id = \"k1\", secret_file = \"k1\" }]\n",
    )
    .unwrap();
    // No GeoIP configured: SIGHUP must not end such a node.
    let p = Proc::spawn_with_config(dir.path(), &config, &[]);
    let (by_k1, by_k2) = (click_with(&p, "k1", K1), click_with(&p, "k2", K2));
    assert_eq!(status(&by_k1).await, 302);
    assert_eq!(status(&by_k2).await, 404, "k2 is not configured yet");

    // Step one of a rotation: k2 verifies everywhere, k1 still signs.
    std::fs::write(
        &config,
        "[signing]\nkeys = [{ id = \"k2\", secret_file = \"k2\", verify_only = true },\n\
         { id = \"k1\", secret_file = \"k1\" }]\n",
    )
    .unwrap();
    p.kill("HUP");
    eventually(&by_k2, 302).await;
    assert_eq!(status(&by_k1).await, 302);
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "trackedge_config_reloads_total{result=\"ok\"}"),
        1.0
    );

    // A broken file, then a key file that is gone: both keep what runs.
    for bad in [
        "[signing\nkeys = [".to_owned(),
        "[signing]\nkeys = [{ id = \"k3\", secret_file = \"missing\" }]\n".to_owned(),
    ] {
        std::fs::write(&config, bad).unwrap();
        let before = metric(
            &p.metrics().await,
            "trackedge_config_reloads_total{result=\"error\"}",
        );
        p.kill("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(
            &p.metrics().await,
            "trackedge_config_reloads_total{result=\"error\"}",
        ) == before
        {
            assert!(
                Instant::now() < deadline,
                "the failed reload was not counted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status(&by_k2).await, 302, "the running keys stay");
        assert_eq!(status(&by_k1).await, 302);
    }
    assert_eq!(status(&p.admin_url("/livez")).await, 200);
    assert_eq!(p.signal("TERM"), Some(0));
}

#[test]
fn sign_skips_a_verify_only_key_and_its_tokens_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "[{{id=\"next\",secret=\"{K2}\",verify_only=true}},{{id=\"cur\",secret=\"{K1}\"}}]"
    );
    let run = |args: &[&str]| {
        let out = bare_command(dir.path())
            .env("TRACKEDGE_SIGNING__KEYS", &keys)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, url) = run(&["sign", "open", "--campaign", "c1"]);
    assert_eq!(code, Some(0));
    let (code, out) = run(&["verify", url.trim()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signed with key \"cur\""), "{out}");

    let next = Keyring::new(&[("next".to_owned(), K2.as_bytes().to_vec())]);
    let token = next.sign(&mut claims(TokenType::Open, "c1"));
    let (code, out) = run(&["verify", &token]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signed with key \"next\""), "{out}");
}

#[test]
fn the_development_key_never_serves_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare_command(dir.path())
        .env("TRACKEDGE_SERVER__LISTEN", "0.0.0.0:0")
        .env("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("signing.keys"), "{err}");
    // check-config says the same; gen-key needs no configuration at all.
    let out = bare_command(dir.path())
        .env("TRACKEDGE_SERVER__LISTEN", "0.0.0.0:0")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = bare_command(dir.path())
        .env("TRACKEDGE_SERVER__LISTEN", "0.0.0.0:0")
        .env(
            "TRACKEDGE_SIGNING__KEYS",
            "[{id=\"a\",secret_file=\"/nope\"}]",
        )
        .arg("gen-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_config_opens_what_serve_would() {
    let dir = tempfile::tempdir().unwrap();
    for (k, v, want) in [
        ("TRACKEDGE_GEOIP__CITY_DB", "/no/city.mmdb", "geoip.city_db"),
        (
            "TRACKEDGE_SIGNING__KEYS",
            "[{id=\"k\",secret_file=\"/no/key\"}]",
            "signing.keys[0].secret_file",
        ),
    ] {
        let out = bare_command(dir.path())
            .env(k, v)
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let out = bare_command(dir.path())
        .env("TRACKEDGE_SINK__KIND", "kafka")
        .env("TRACKEDGE_KAFKA__LIBRDKAFKA", "{\"no.such.setting\"=\"1\"}")
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("no.such.setting"), "{err}");
}

#[tokio::test]
async fn a_node_whose_broker_is_down_stays_ready() {
    // Nothing listens on this port: Kafka is down from the start.
    let dir = tempfile::tempdir().unwrap();
    let toml = kafka_toml(
        &format!("127.0.0.1:{}", free_port()),
        "trackedge.events",
        &dir.path().join("spool"),
        "",
    );
    let srv = TestServer::start(&toml).await;
    let why = wait_readyz(
        &srv.admin_url("/readyz"),
        "ready, degraded",
        Duration::from_secs(10),
    )
    .await;
    assert!(why.contains("kafka"), "{why}");
    let mut c = claims(TokenType::Open, "outage");
    assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
    let r = get(&srv.admin_url("/readyz")).await;
    assert_eq!(r.status, 200);
    let m = String::from_utf8_lossy(&get(&srv.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(metric(&m, "trackedge_sink_up"), 0.0, "{m}");
    assert_eq!(metric(&m, "trackedge_ready"), 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn stats_need_the_token_beyond_loopback() {
    for token in ["", "admin-token-0123456789-abcdefghij"] {
        let cfg = trackedge::config::Config::from_toml(&format!(
            "[server]\nadmin_token = \"{token}\"\n[sink]\nkind = \"stdout\"\n"
        ))
        .unwrap();
        let sink = trackedge::sink::from_config(&cfg).unwrap();
        let app = Arc::new(trackedge::app::App::new(cfg, sink).unwrap());
        let ask = |peer: &str, bearer: Option<&str>| {
            let mut b = http::Request::get("/stats");
            if let Some(t) = bearer {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let peer: SocketAddr = peer.parse().unwrap();
            trackedge::admin::handle(&app, b.body(()).unwrap(), peer)
                .status()
                .as_u16()
        };
        let local = ask("127.0.0.1:5000", None);
        let remote = ask("10.1.2.3:5000", None);
        let remote_with = ask("10.1.2.3:5000", Some("admin-token-0123456789-abcdefghij"));
        let probe = {
            let peer: SocketAddr = "10.1.2.3:5000".parse().unwrap();
            trackedge::admin::handle(&app, http::Request::get("/livez").body(()).unwrap(), peer)
                .status()
                .as_u16()
        };
        if token.is_empty() {
            assert_eq!(
                (local, remote, probe),
                (200, 401, 200),
                "no token configured"
            );
        } else {
            assert_eq!(
                (local, remote, remote_with),
                (401, 401, 200),
                "token configured"
            );
        }
        app.sink().shutdown(Duration::from_secs(1));
    }
}

#[tokio::test]
async fn sighup_reloads_the_agent_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trackedge.toml");
    let keys = format!("[signing]\nkeys = [{{ id = \"{KEY_ID}\", secret = \"{SECRET}\" }}]\n");
    std::fs::write(&config, &keys).unwrap();
    let p = Proc::spawn_with_config(dir.path(), &config, &[]);
    let open = |r: &str| {
        let mut c = claims(TokenType::Open, "rules");
        c.r = Some(r.to_owned());
        trackedge::router::token_url(
            &p.url(""),
            TokenType::Open,
            &Keyring::new(&[(KEY_ID.into(), SECRET.as_bytes().to_vec())]).sign(&mut c),
        )
    };
    let ua = [(
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0) AcmeMailGate/3.1",
    )];
    assert_eq!(get_with(&open("before"), &ua).await.status, 200);
    std::fs::write(
        &config,
        format!(
            "{keys}[agent]\nrules = [{{ name = \"acme_gateway\", kind = \"proxy\", \
             ua = ['AcmeMailGate/'], source = [\"our mail team\"] }}]\n"
        ),
    )
    .unwrap();
    p.kill("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &p.metrics().await,
        "trackedge_config_reloads_total{result=\"ok\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "no reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_with(&open("after"), &ua).await.status, 200);
    assert_eq!(p.signal("TERM"), Some(0));
    let events = read_events(&dir.path().join("data/events.ndjson"));
    let agent = |r: &str| {
        events
            .iter()
            .find(|e| e["recipient"] == r)
            .map(|e| e["agent"].clone())
            .unwrap()
    };
    assert_eq!(agent("before")["kind"], "human");
    assert_eq!(agent("after")["kind"], "proxy");
    assert_eq!(agent("after")["name"], "acme_gateway");
}
