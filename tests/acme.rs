//! ACME against a real CA: Debian's `pebble` (the Let's Encrypt test
//! server), started and stopped here on free loopback ports. No DNS points
//! the test names at loopback, so pebble runs with challenges always valid
//! (`PEBBLE_VA_ALWAYS_VALID=1`); the challenge answers themselves are
//! tested in tests/tls.rs.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use common::tls::{eventually, free_port, handshake, FakeDns, Pebble, TestCa, TlsServer};

const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn acme_toml(pebble: &Pebble, cache: &Path) -> String {
    format!(
        "[tls.acme]\ndirectory_url = {:?}\nca_file = {:?}\ncontact = \"mailto:ops@example.com\"\n\
         domains = [\"listed.example.com\"]\non_demand = [\"*.od.example.com\"]\n\
         max_new_per_hour = 1\non_demand_wait = \"30s\"\ncache_dir = {:?}\n",
        pebble.directory_url, pebble.ca_file, cache
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_and_on_demand_names_get_certificates_that_a_restart_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Some(pebble) = Pebble::start(dir.path(), &ca).await else {
        return;
    };
    let root = pebble.root_pem().await;
    let cache = dir.path().join("acme");
    let run1 = dir.path().join("run1");
    std::fs::create_dir_all(&run1).unwrap();
    let srv = TlsServer::start(&run1, &acme_toml(&pebble, &cache))
        .await
        .unwrap();
    let acme = srv.tls().acme().unwrap().clone();

    // The listed name is ordered at start, without any client asking.
    let certs = srv.tls().certificates().clone();
    assert!(
        eventually(60, || certs.has("listed.example.com")).await,
        "no certificate for the listed name: {:?}",
        srv.tls().note()
    );
    let listed = handshake(srv.https, "listed.example.com", Some(&root), ALPN)
        .await
        .expect("the listed name's certificate verifies against pebble's root");
    assert_eq!(listed.names(), ["listed.example.com"]);

    // An on-demand name: its first handshake waits for the order.
    let od = handshake(srv.https, "shop.od.example.com", Some(&root), ALPN)
        .await
        .expect("the on-demand name's certificate verifies against pebble's root");
    assert_eq!(od.names(), ["shop.od.example.com"]);
    assert_eq!(acme.counts().orders_ok.load(Ordering::Relaxed), 2);

    // Outside the patterns: no order, no certificate.
    for name in ["other.example.com", "a.b.od.example.com"] {
        assert!(
            handshake(srv.https, name, None, ALPN).await.is_err(),
            "{name} got a certificate"
        );
    }
    // Inside them, past max_new_per_hour (1): refused, counted.
    assert!(handshake(srv.https, "second.od.example.com", None, ALPN)
        .await
        .is_err());
    assert_eq!(acme.counts().rate_limited.load(Ordering::Relaxed), 1);
    assert_eq!(acme.counts().orders_ok.load(Ordering::Relaxed), 2);
    assert_eq!(acme.counts().orders_failed.load(Ordering::Relaxed), 0);
    assert_eq!(acme.counts().accounts_created.load(Ordering::Relaxed), 1);
    assert!(srv.tls().note().is_none(), "{:?}", srv.tls().note());
    srv.stop().await;
    drop(acme);

    // A restart serves the cached certificates at once and orders nothing.
    let run2 = dir.path().join("run2");
    std::fs::create_dir_all(&run2).unwrap();
    let srv = TlsServer::start(&run2, &acme_toml(&pebble, &cache))
        .await
        .unwrap();
    for (name, before) in [
        ("listed.example.com", &listed),
        ("shop.od.example.com", &od),
    ] {
        let h = handshake(srv.https, name, Some(&root), ALPN).await.unwrap();
        assert_eq!(
            h.chain[0], before.chain[0],
            "{name}: not the cached certificate"
        );
    }
    // Give the renewal task time to (wrongly) order or make an account.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let counts = srv.tls().acme().unwrap().counts();
    assert_eq!(counts.orders_ok.load(Ordering::Relaxed), 0);
    assert_eq!(counts.orders_failed.load(Ordering::Relaxed), 0);
    assert_eq!(counts.accounts_created.load(Ordering::Relaxed), 0);
    // A new name is ordered with the cached account, not a new one.
    let h = handshake(srv.https, "third.od.example.com", Some(&root), ALPN)
        .await
        .unwrap();
    assert_eq!(h.names(), ["third.od.example.com"]);
    assert_eq!(counts.orders_ok.load(Ordering::Relaxed), 1);
    assert_eq!(counts.accounts_created.load(Ordering::Relaxed), 0);

    // A customer added by SIGHUP: the rule and the budget reload.
    let added = "t.shop.example.org";
    assert!(handshake(srv.https, added, None, ALPN).await.is_err());
    let text = std::fs::read_to_string(&srv.config_path)
        .unwrap()
        .replace(
            "on_demand = [\"*.od.example.com\"]",
            &format!("on_demand = [\"*.od.example.com\", \"{added}\"]"),
        )
        .replace("max_new_per_hour = 1", "max_new_per_hour = 2");
    std::fs::write(&srv.config_path, text).unwrap();
    trackedge::reload::reload(&srv.app, Some(&srv.config_path)).unwrap();
    let h = handshake(srv.https, added, Some(&root), ALPN)
        .await
        .unwrap();
    assert_eq!(h.names(), [added]);
    srv.stop().await;
}

/// Without `PEBBLE_VA_ALWAYS_VALID`: pebble resolves the names (fake DNS:
/// loopback) and checks the answers on trackedge's own listeners,
/// TLS-ALPN-01 on the TLS one, then HTTP-01 on the plain one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_validates_both_challenges_against_the_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Some(dns) = FakeDns::start(dir.path()).await else {
        return;
    };
    let (plain_port, tls_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start_with(
        dir.path(),
        &ca,
        Some((dns.addr, plain_port, tls_port)),
        None,
    )
    .await
    else {
        return;
    };
    let root = pebble.root_pem().await;
    for (i, (challenge, name)) in [
        ("tls-alpn-01", "alpn.v.example.com"),
        ("http-01", "http.v.example.com"),
    ]
    .into_iter()
    .enumerate()
    {
        let run = dir.path().join(format!("run{i}"));
        std::fs::create_dir_all(&run).unwrap();
        let extra = format!(
            "[tls.acme]\ndirectory_url = {:?}\nca_file = {:?}\non_demand = [\"*.v.example.com\"]\n\
             on_demand_wait = \"60s\"\nchallenge = \"{challenge}\"\ncache_dir = {:?}\n",
            pebble.directory_url,
            pebble.ca_file,
            run.join("acme")
        );
        let srv = TlsServer::start_on(&run, &extra, plain_port, tls_port)
            .await
            .unwrap();
        let h = handshake(srv.https, name, Some(&root), ALPN).await;
        let counts = srv.tls().acme().unwrap().counts();
        let failed = counts.orders_failed.load(Ordering::Relaxed);
        let h = h.unwrap_or_else(|e| {
            panic!(
                "{challenge}: no certificate for {name} ({e}; {failed} failed: {:?}); see {}",
                srv.tls().note(),
                dir.path().join("pebble.log").display()
            )
        });
        assert_eq!(h.names(), [name]);
        assert_eq!(counts.orders_ok.load(Ordering::Relaxed), 1, "{challenge}");
        // The validation really reached our listener.
        let body = common::get(&format!("http://{}/metrics", srv.admin))
            .await
            .body;
        let text = String::from_utf8_lossy(&body);
        let seen = match challenge {
            "tls-alpn-01" => "trackedge_tls_handshakes_total{result=\"acme_challenge\"}",
            _ => "trackedge_http_requests_total{route=\"not_found\",status=\"200\"}",
        };
        assert!(common::metric(&text, seen) >= 1.0, "{challenge}: no {seen}");
        srv.stop().await;
    }
}

/// A certificate is renewed once a third of its life is left: pebble
/// issues 9-second certificates here, so the listed name is ordered again
/// about 6 seconds after each issue, and handshakes get the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_when_a_third_of_their_life_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Some(pebble) = Pebble::start_with(dir.path(), &ca, None, Some(9)).await else {
        return;
    };
    let srv = TlsServer::start(dir.path(), &acme_toml(&pebble, &dir.path().join("acme")))
        .await
        .unwrap();
    let certs = srv.tls().certificates().clone();
    assert!(eventually(60, || certs.has("listed.example.com")).await);
    let first = certs.acme_cert("listed.example.com").unwrap();
    let life = first.not_after - first.not_before;
    assert!(life <= 10, "pebble made a {life} s certificate");
    let counts = &srv.tls().acme().unwrap().counts();
    assert!(
        eventually(30, || counts.orders_ok.load(Ordering::Relaxed) >= 2).await,
        "not renewed"
    );
    let renewed = certs.acme_cert("listed.example.com").unwrap();
    assert_ne!(renewed.key.cert[0], first.key.cert[0]);
    let at = trackedge::tls::acme::renew_at(&first);
    assert!(at < first.not_after && at >= first.not_after - life / 3 - 1);
    let h = handshake(srv.https, "listed.example.com", None, ALPN)
        .await
        .unwrap();
    assert_ne!(h.chain[0], first.key.cert[0]);
    assert_eq!(counts.orders_failed.load(Ordering::Relaxed), 0);
    srv.stop().await;
}
