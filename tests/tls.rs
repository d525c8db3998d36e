//! HTTPS end to end (contract §9): certificates made by a test CA, a real
//! server with `server.tls_listen`, real TLS clients (tokio-rustls, curl
//! with HTTP/2 and HTTP/1.1 by ALPN).

mod common;

use std::path::Path;

use common::tls::{certificates_toml, curl, handshake, have, TestCa, TlsServer};
use common::{claims, get, metric};
use trackedge::token::TokenType;

const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// `a.test` exact, `*.w.test` wildcard; the first answers without SNI.
fn two_certs(ca: &TestCa, dir: &Path) -> String {
    let a = ca.write_leaf(dir, "a", &["a.test"]);
    let w = ca.write_leaf(dir, "w", &["*.w.test", "w.test"]);
    format!("[tls]\ncertificates = {}\n", certificates_toml(&[a, w]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_picked_by_sni_wildcards_included() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let srv = TlsServer::start(dir.path(), &two_certs(&ca, dir.path()))
        .await
        .unwrap();
    let pem = ca.pem();

    let h = handshake(srv.https, "a.test", Some(&pem), ALPN)
        .await
        .unwrap();
    assert_eq!(h.names(), ["a.test"]);
    assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]));
    let h = handshake(srv.https, "x.w.test", Some(&pem), ALPN)
        .await
        .unwrap();
    assert_eq!(h.names(), ["*.w.test", "w.test"]);
    let h = handshake(srv.https, "w.test", Some(&pem), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"http/1.1"[..]));
    // An IP address sends no SNI: the first certificate answers.
    let h = handshake(srv.https, "127.0.0.1", None, ALPN).await.unwrap();
    assert_eq!(h.names(), ["a.test"]);
    // A wildcard covers one label only; unknown names get no certificate.
    for name in ["a.b.w.test", "nope.test"] {
        let e = handshake(srv.https, name, None, ALPN).await;
        assert!(e.is_err(), "{name} got a certificate");
    }
    // The server counts a failed handshake after the client has its alert.
    let mut text = String::new();
    for _ in 0..50 {
        let body = get(&format!("http://{}/metrics", srv.admin)).await.body;
        text = String::from_utf8_lossy(&body).into_owned();
        if metric(
            &text,
            "trackedge_tls_handshakes_total{result=\"no_certificate\"}",
        ) >= 2.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metric(&text, "trackedge_tls_handshakes_total{result=\"ok\"}") >= 4.0);
    assert!(
        metric(
            &text,
            "trackedge_tls_handshakes_total{result=\"no_certificate\"}"
        ) >= 2.0
    );
    assert!(metric(&text, "trackedge_tls_certificate_expiry_seconds") > common::now() as f64);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pixels_clicks_and_beacons_over_https_with_http2_and_http11() {
    if !have("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let srv = TlsServer::start(dir.path(), &two_certs(&ca, dir.path()))
        .await
        .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let mut open = claims(TokenType::Open, "tls-campaign");
    open.r = Some("r1".into());
    let open_path = trackedge::router::token_url("", TokenType::Open, &srv.keys.sign(&mut open));
    let mut click = claims(TokenType::Click, "tls-campaign");
    click.u = Some("https://shop.example/sale".into());
    let click_path = trackedge::router::token_url("", TokenType::Click, &srv.keys.sign(&mut click));

    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        for host in ["a.test", "t.w.test"] {
            let o = curl(srv.https, host, &open_path, &ca_file, &[flag]);
            assert_eq!(
                (o.status, o.http_version.as_str()),
                (200, version),
                "{host} {flag}"
            );
            assert_eq!(o.body.len(), 43);
            assert!(o
                .headers
                .to_ascii_lowercase()
                .contains("content-type: image/gif"));
            let c = curl(srv.https, host, &click_path, &ca_file, &[flag]);
            assert_eq!(c.status, 302, "{host} {flag}");
            assert!(
                c.headers.contains("https://shop.example/sale"),
                "{}",
                c.headers
            );
        }
        let b = curl(srv.https, "a.test", "/p.gif?e=signup", &ca_file, &[flag]);
        assert_eq!(b.status, 200);
    }
    // TLS 1.2 too (curl on OpenSSL, HTTP/2 by ALPN).
    let o = curl(
        srv.https,
        "a.test",
        "/robots.txt",
        &ca_file,
        &["--tls-max", "1.2", "--http2"],
    );
    assert_eq!((o.status, o.http_version.as_str()), (200, "2"));
    // The plain listener still answers as before.
    assert_eq!(
        get(&format!("http://{}{open_path}", srv.public))
            .await
            .status,
        200
    );

    let events = srv.stop().await;
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(count("open"), 5, "{events:?}");
    assert_eq!(count("click"), 4);
    assert_eq!(count("beacon"), 2);
    let e = events.iter().find(|e| e["type"] == "open").unwrap();
    assert_eq!(e["campaign"], "tls-campaign");
    assert_eq!(e["recipient"], "r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let srv = TlsServer::start(dir.path(), &two_certs(&ca, dir.path()))
        .await
        .unwrap();
    let first = handshake(srv.https, "a.test", Some(&ca.pem()), ALPN)
        .await
        .unwrap()
        .chain[0]
        .clone();

    // Replaced in place, then SIGHUP's reload: the next handshake sees it.
    ca.write_leaf(dir.path(), "a", &["a.test", "also.test"]);
    trackedge::reload::reload(&srv.app, Some(&srv.config_path)).unwrap();
    let h = handshake(srv.https, "a.test", Some(&ca.pem()), ALPN)
        .await
        .unwrap();
    assert_ne!(h.chain[0], first);
    assert_eq!(h.names(), ["a.test", "also.test"]);
    let second = h.chain[0].clone();

    // A key that does not match: the reload fails, the running set stays.
    let (_, other_key) = ca.leaf(&["a.test"]);
    std::fs::write(dir.path().join("a.key"), other_key).unwrap();
    let e = trackedge::reload::reload(&srv.app, Some(&srv.config_path))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.key") && e.contains("does not belong"), "{e}");
    let h = handshake(srv.https, "a.test", Some(&ca.pem()), ALPN)
        .await
        .unwrap();
    assert_eq!(h.chain[0], second);
    srv.stop().await;
}

#[tokio::test]
async fn bad_certificate_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let d = dir.path();
    let (cert, key) = ca.write_leaf(d, "a", &["a.test"]);
    let start = |extra: String| {
        let sub = tempfile::tempdir_in(d).unwrap();
        async move { TlsServer::start(sub.path(), &extra).await.err() }
    };

    let missing = d.join("missing.key");
    let e = start(format!(
        "[tls]\ncertificates = {}",
        certificates_toml(&[(cert.clone(), missing)])
    ))
    .await
    .expect("a missing key file fails");
    assert!(
        e.contains("cannot read key file") && e.contains("missing.key"),
        "{e}"
    );

    let (_, other) = ca.write_leaf(d, "b", &["a.test"]);
    let e = start(format!(
        "[tls]\ncertificates = {}",
        certificates_toml(&[(cert.clone(), other)])
    ))
    .await
    .expect("a mismatched key fails");
    assert!(
        e.contains("b.key does not belong to the certificate"),
        "{e}"
    );

    let e = start(format!(
        "[[tls.certificates]]\ncert_file = {cert:?}\nkey_file = {key:?}\nnames = [\"a.test\", \"b.test\"]"
    ))
    .await
    .expect("a certificate without the names asked fails");
    assert!(e.contains("does not cover [\"b.test\"]"), "{e}");

    let e = start(String::new())
        .await
        .expect("TLS without certificates fails");
    assert!(
        e.contains("server.tls_listen") && e.contains("tls.certificates"),
        "{e}"
    );

    let e = start(format!(
        "[tls]\ncertificates = {}",
        certificates_toml(&[(key.clone(), key.clone())])
    ))
    .await
    .expect("a key as certificate fails");
    assert!(e.contains("a.key") && e.contains("no CERTIFICATE"), "{e}");
}

/// HTTP-01 answers on the plain listener, TLS-ALPN-01 on the TLS one, and
/// an ACME server that cannot be reached shows in /readyz and the metrics
/// while the node serves its other certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_answered_and_an_unreachable_ca_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let port = common::tls::free_port();
    let extra = format!(
        "{}[tls.acme]\ndirectory_url = \"https://127.0.0.1:{port}/dir\"\ndomains = [\"listed.test\"]\n\
         cache_dir = {:?}\n",
        two_certs(&ca, dir.path()),
        dir.path().join("acme")
    );
    let srv = TlsServer::start(dir.path(), &extra).await.unwrap();
    let challenges = srv.tls().acme().unwrap().challenges().clone();

    challenges.put_http01("tok-1", "tok-1.thumbprint");
    let a = get(&format!(
        "http://{}/.well-known/acme-challenge/tok-1",
        srv.public
    ))
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], b"tok-1.thumbprint");
    let a = get(&format!(
        "http://{}/.well-known/acme-challenge/tok-2",
        srv.public
    ))
    .await;
    assert_eq!(a.status, 404);

    challenges.put_tls_alpn01("listed.test", &[9; 32]).unwrap();
    let h = handshake(srv.https, "listed.test", None, &[b"acme-tls/1"])
        .await
        .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"acme-tls/1"[..]));
    assert_eq!(h.names(), ["listed.test"]);
    let (_, x) = x509_parser::parse_x509_certificate(&h.chain[0]).unwrap();
    assert!(x
        .extensions()
        .iter()
        .any(|e| e.critical && e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31"));
    // No challenge pending for that name: nothing.
    assert!(handshake(srv.https, "a.test", None, &[b"acme-tls/1"])
        .await
        .is_err());

    let ready = common::tls::eventually(20, || srv.tls().note().is_some()).await;
    assert!(ready, "the failing CA is noted");
    let r = get(&format!("http://{}/readyz", srv.admin)).await;
    assert_eq!(r.status, 200);
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.starts_with("ready, degraded: ") && body.contains("ACME"),
        "{body}"
    );
    // Still serving the certificates it has.
    handshake(srv.https, "a.test", Some(&ca.pem()), ALPN)
        .await
        .unwrap();
    srv.stop().await;
}

/// The binary: `check-config` lists certificates (and refuses a bad one
/// with exit 64), `serve` answers on server.tls_listen, SIGHUP swaps the
/// certificate, SIGTERM drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_https_and_reloads_on_sighup() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let d = dir.path();
    let pair = ca.write_leaf(d, "a", &["a.test"]);
    let config = d.join("trackedge.toml");
    let write_config = |certs: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 tls_listen = \"127.0.0.1:0\"\nworker_threads = 1\n\
                 [signing]\nkeys = [{{ id = \"{}\", secret = \"{}\" }}]\n\
                 [sink]\nkind = \"file\"\nfile_path = {:?}\n[tls]\ncertificates = {certs}\n",
                common::KEY_ID,
                common::SECRET,
                d.join("events.ndjson")
            ),
        )
        .unwrap()
    };
    write_config(&certificates_toml(std::slice::from_ref(&pair)));

    let out = common::bare_command(d)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("a.crt: names [\"a.test\"], expires "),
        "check-config lists the certificate: {err}"
    );

    let (_, other_key) = ca.leaf(&["a.test"]);
    let bad = d.join("other.key");
    std::fs::write(&bad, other_key).unwrap();
    write_config(&certificates_toml(&[(pair.0.clone(), bad.clone())]));
    let out = common::bare_command(d)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("other.key does not belong to the certificate"),
        "{err}"
    );
    let out = common::bare_command(d)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "serve refuses it too");

    write_config(&certificates_toml(std::slice::from_ref(&pair)));
    let mut child = common::bare_command(d)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut https = None;
    while let Some(Ok(line)) = lines.next() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listener bound" && v["listener"] == "tls" {
            https = Some(v["addr"].as_str().unwrap().parse().unwrap());
        }
        if v["message"] == "ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let https = https.expect("the TLS listener is logged");
    let first = handshake(https, "a.test", Some(&ca.pem()), ALPN)
        .await
        .unwrap();

    ca.write_leaf(d, "a", &["a.test", "b.test"]);
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success())
    };
    kill("-HUP");
    let mut swapped = false;
    for _ in 0..100 {
        let h = handshake(https, "b.test", Some(&ca.pem()), ALPN).await;
        if let Ok(h) = h {
            assert_ne!(h.chain[0], first.chain[0]);
            swapped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(swapped, "SIGHUP did not swap the certificate in");
    kill("-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A real browser over HTTPS: headless chromium, trusting the test CA
/// (by its key, `--ignore-certificate-errors-spki-list`, so no NSS
/// database is needed; the served chains end in the CA), resolving the test names to loopback, loads a pixel and
/// follows a tracked link; both are recorded as over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_pixel_and_follows_a_link_over_https() {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    if !have("chromium", "chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let certs = two_certs(&ca, dir.path());
    // Chains that end in the CA: chromium matches the key list against
    // the chain the server sends.
    for f in ["a.crt", "w.crt"] {
        let p = dir.path().join(f);
        let chain = std::fs::read_to_string(&p).unwrap() + &ca.pem();
        std::fs::write(p, chain).unwrap();
    }
    let srv = TlsServer::start(dir.path(), &certs).await.unwrap();
    use rustls::pki_types::pem::PemObject;
    let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let spki = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(parsed.tbs_certificate.subject_pki.raw));

    let mut open = claims(TokenType::Open, "browser-tls");
    let mut click = claims(TokenType::Click, "browser-tls");
    click.u = Some("https://shop.example/landing".into());
    let base = format!("https://t.w.test:{}", srv.https.port());
    let urls = [
        trackedge::router::token_url(&base, TokenType::Open, &srv.keys.sign(&mut open)),
        trackedge::router::token_url(&base, TokenType::Click, &srv.keys.sign(&mut click)),
    ];
    for url in urls {
        let profile = dir.path().join("profile");
        let flags = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.display()),
            "--host-resolver-rules=MAP *.w.test 127.0.0.1".into(),
            format!("--ignore-certificate-errors-spki-list={spki}"),
            "--dump-dom".into(),
            url,
        ];
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("chromium")
                .args(&flags)
                .stderr(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success());
    }
    let events = srv.stop().await;
    let by_type = |t: &str| {
        events
            .iter()
            .find(|e| e["type"] == t && e["campaign"] == "browser-tls")
            .unwrap_or_else(|| panic!("no {t} from chromium: {events:?}"))
    };
    for t in ["open", "click"] {
        let ua = by_type(t)["ua"].to_string();
        assert!(ua.contains("Chrom"), "{t}: {ua}");
    }
}
