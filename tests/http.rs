//! End to end over real HTTP: pixels, redirects, unsubscribes, the events
//! they write, client addresses, and garbage requests.

mod common;

use std::sync::Arc;

use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::Method;
use sha2::Sha256;

use common::*;
use trackedge::routes::GIF;
use trackedge::token::TokenType;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn assert_gif_headers(a: &Answer) {
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("image/gif"));
    assert_eq!(a.header("content-length"), Some("43"));
    assert_eq!(
        a.header("cache-control"),
        Some("no-store, no-cache, must-revalidate, max-age=0, private")
    );
    assert_eq!(a.header("pragma"), Some("no-cache"));
    assert_eq!(a.header("expires"), Some("0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pixel_get_and_head() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Open, "spring-sale");
    c.r = Some("r-1".into());
    let url = srv.tracked(&mut c);

    let a = get_with(&url, &[("user-agent", CHROME)]).await;
    assert_gif_headers(&a);
    assert_eq!(&a.body[..], &GIF[..]);

    let h = send(Method::HEAD, &url, &[], "").await;
    assert_gif_headers(&h);
    assert!(h.body.is_empty());

    let events = srv.stop().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "open");
    assert_eq!(events[0]["method"], "GET");
    assert_eq!(events[0]["agent"]["kind"], "human");
    assert_eq!(events[0]["ua"]["name"], "Chrome");
    assert_eq!(events[1]["method"], "HEAD");
    assert_eq!(events[1]["agent"]["kind"], "bot");
    assert_eq!(events[1]["agent"]["reason"], "method");
}

/// Tokens that must not verify on the open route, one per failure reason.
fn bad_open_tokens(srv: &TestServer) -> Vec<(&'static str, String)> {
    let mut c = claims(TokenType::Open, "spring-sale");
    let good = srv.mint(&mut c);
    let (payload, tag) = good.split_once('.').unwrap();
    let other_payload = URL_SAFE_NO_PAD.encode(br#"{"k":"test","t":"o","c":"stolen"}"#);
    let mut expired = claims(TokenType::Open, "spring-sale");
    expired.x = Some(now() - 10);
    let mut click = claims(TokenType::Click, "spring-sale");
    click.u = Some("https://example.com/".into());
    vec![
        ("malformed", "not-a-token".into()),
        ("malformed", payload.to_string()),
        ("bad_signature", format!("{other_payload}.{tag}")),
        ("bad_signature", format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA")),
        ("expired", srv.mint(&mut expired)),
        ("wrong_type", srv.mint(&mut click)),
        (
            "unknown_key",
            format!(
                "{}.{tag}",
                URL_SAFE_NO_PAD.encode(br#"{"k":"nope","t":"o","c":"x"}"#)
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_tokens_still_get_the_gif_and_no_event() {
    let srv = TestServer::start("").await;
    let before = get(&srv.admin_url("/metrics")).await;
    let before = String::from_utf8_lossy(&before.body).into_owned();
    let bad = bad_open_tokens(&srv);
    for (_, t) in &bad {
        let a = get(&srv.route_url(TokenType::Open, t)).await;
        assert_gif_headers(&a);
        assert_eq!(&a.body[..], &GIF[..], "token {t}");
    }
    let after = get(&srv.admin_url("/metrics")).await;
    let after = String::from_utf8_lossy(&after.body).into_owned();
    for reason in [
        "malformed",
        "bad_signature",
        "expired",
        "wrong_type",
        "unknown_key",
    ] {
        let key = format!("trackedge_invalid_tokens_total{{route=\"open\",reason=\"{reason}\"}}");
        assert!(
            metric(&after, &key) > metric(&before, &key),
            "{key} did not grow"
        );
    }
    assert!(
        srv.stop().await.is_empty(),
        "an invalid token must not record an event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_click_redirects_exactly_and_invalid_ones_never_do() {
    let srv = TestServer::start("").await;
    let dest = "https://shop.example.com/sale?x=1&y=2#top";
    let mut c = claims(TokenType::Click, "spring-sale");
    c.u = Some(dest.into());
    c.l = Some("hero".into());
    let token = srv.mint(&mut c);
    let a = get(&srv.route_url(TokenType::Click, &token)).await;
    assert_eq!(a.status, 302);
    assert_eq!(a.header("location"), Some(dest));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let h = send(
        Method::HEAD,
        &srv.route_url(TokenType::Click, &token),
        &[],
        "",
    )
    .await;
    assert_eq!(h.status, 302);
    assert_eq!(h.header("location"), Some(dest));

    let (payload, tag) = token.split_once('.').unwrap();
    let forged =
        URL_SAFE_NO_PAD.encode(br#"{"k":"test","t":"c","c":"x","u":"https://evil.example/"}"#);
    let mut expired = c.clone();
    expired.x = Some(now() - 1);
    let mut open = claims(TokenType::Open, "spring-sale");
    for bad in [
        format!("{forged}.{tag}"),
        format!("{payload}.{}", &tag[1..]),
        srv.mint(&mut expired),
        srv.mint(&mut open),
        "garbage".into(),
    ] {
        let a = get(&srv.route_url(TokenType::Click, &bad)).await;
        assert_eq!(a.status, 404, "{bad}");
        assert!(a.header("location").is_none());
        assert!(String::from_utf8_lossy(&a.body).contains("not valid"));
    }
    let events = srv.stop().await;
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e["type"] == "click" && e["url"] == dest && e["link"] == "hero"));
    assert_eq!(events[1]["method"], "HEAD");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_click_goes_to_the_configured_fallback() {
    let srv = TestServer::start("[click]\nfallback_url = \"https://www.example.com/oops\"\n").await;
    let a = get(&srv.url("/c/garbage")).await;
    assert_eq!(a.status, 302);
    assert_eq!(a.header("location"), Some("https://www.example.com/oops"));
    assert!(srv.stop().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_but_unsafe_destinations_are_refused() {
    let srv = TestServer::start("").await;
    let long = format!("https://example.com/{}", "a".repeat(3000));
    for dest in [
        "javascript:alert(1)",
        "data:text/html,x",
        "//evil.example",
        "https://ok.example@evil.example/",
        "https://evil.example/\r\nSet-Cookie:x=1",
        long.as_str(),
    ] {
        let mut c = claims(TokenType::Click, "c");
        c.u = Some(dest.into());
        let a = get(&srv.tracked(&mut c)).await;
        assert_eq!(a.status, 404, "{dest:?}");
        assert!(a.header("location").is_none(), "{dest:?}");
        assert!(a.header("set-cookie").is_none(), "{dest:?}");
    }
    assert!(srv.stop().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsubscribe_get_post_and_one_click() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Unsubscribe, "spring-sale");
    c.r = Some("r-9".into());
    let plain = srv.mint(&mut c);
    let mut with_url = c.clone();
    with_url.u = Some("https://example.com/preferences".into());
    let redirecting = srv.mint(&mut with_url);

    // A GET never unsubscribes (scanners follow every link): a page whose
    // one button POSTs back, or the sender's own page.
    let a = get(&srv.route_url(TokenType::Unsubscribe, &plain)).await;
    assert_eq!(a.status, 200);
    let page = String::from_utf8_lossy(&a.body).into_owned();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(
        !page.contains("spring-sale"),
        "the page never shows the internal campaign id: {page}"
    );
    let a = get(&srv.route_url(TokenType::Unsubscribe, &redirecting)).await;
    assert_eq!(a.status, 302);
    assert_eq!(
        a.header("location"),
        Some("https://example.com/preferences")
    );

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = send(
        Method::POST,
        &srv.route_url(TokenType::Unsubscribe, &plain),
        &form,
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(a.status, 200);
    let a = send(
        Method::POST,
        &srv.route_url(TokenType::Unsubscribe, &redirecting),
        &form,
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(
        a.status, 200,
        "a one-click POST is answered, not redirected"
    );
    // The page's button.
    let a = send(
        Method::POST,
        &srv.route_url(TokenType::Unsubscribe, &plain),
        &form,
        "unsubscribe=yes",
    )
    .await;
    assert_eq!(a.status, 200);
    let done = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        done.contains("You are unsubscribed") && !done.contains("spring-sale"),
        "{done}"
    );
    let big = "x".repeat(10_000);
    let a = send(
        Method::POST,
        &srv.route_url(TokenType::Unsubscribe, &plain),
        &form,
        &big,
    )
    .await;
    assert_eq!(a.status, 413);
    let a = send(
        Method::POST,
        &srv.url("/u/garbage"),
        &form,
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(a.status, 404);
    let a = get(&srv.url("/u/garbage")).await;
    assert_eq!(a.status, 404);
    let a = send(
        Method::DELETE,
        &srv.route_url(TokenType::Unsubscribe, &plain),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, 405);

    let events = srv.stop().await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["type"] == "unsubscribe" && e["recipient"] == "r-9" && e["method"] == "POST"));
    assert_eq!(events[0]["one_click"], true);
    assert_eq!(events[1]["one_click"], true);
    assert_eq!(events[1]["url"], "https://example.com/preferences");
    assert_eq!(events[2]["one_click"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_carry_the_spec_fields_with_distinct_uuid_v7_ids() {
    let srv = TestServer::start("").await;
    let sent = now() - 3600;
    let attrs: BTreeMap<String, String> = [("variant".to_string(), "B".to_string())].into();
    let mut n = 0;
    for (t, path) in [
        (TokenType::Open, "o"),
        (TokenType::Click, "c"),
        (TokenType::Unsubscribe, "u"),
    ] {
        let mut c = claims(t, "spring-sale");
        c.r = Some("r-42".into());
        c.m = Some("m-7".into());
        c.l = Some("hero".into());
        c.s = Some(sent);
        c.a = Some(attrs.clone());
        if t == TokenType::Click {
            c.u = Some("https://shop.example.com/".into());
        }
        let token = srv.mint(&mut c);
        let suffix = if t == TokenType::Open { ".gif" } else { "" };
        // An unsubscribe is a POST (contract §1); the others are GETs.
        let (method, body) = if t == TokenType::Unsubscribe {
            (Method::POST, "List-Unsubscribe=One-Click")
        } else {
            (Method::GET, "")
        };
        for _ in 0..20 {
            let a = send(
                method.clone(),
                &srv.url(&format!("/{path}/{token}{suffix}")),
                &[("user-agent", CHROME)],
                body,
            )
            .await;
            assert!(a.status.is_success() || a.status.is_redirection());
            n += 1;
        }
    }
    let started = trackedge::now_ms();
    let events = srv.stop().await;
    assert_eq!(events.len(), n);
    let mut ids = HashSet::new();
    for e in &events {
        let o = e.as_object().unwrap();
        assert!(o.values().all(|v| !v.is_null()), "null in {e}");
        assert_eq!(e["schema"], "trackedge.event.v1");
        let id = uuid::Uuid::parse_str(e["event_id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert!(ids.insert(id), "duplicate id {id}");
        let ts = e["ts_ms"].as_i64().unwrap();
        assert!(ts <= started && ts > started - 60_000);
        assert_eq!(e["campaign"], "spring-sale");
        assert_eq!(e["recipient"], "r-42");
        assert_eq!(e["message"], "m-7");
        assert_eq!(e["link"], "hero");
        assert_eq!(e["sent_at_ms"], sent * 1000);
        assert_eq!(e["attrs"]["variant"], "B");
        let want = if e["type"] == "unsubscribe" {
            "POST"
        } else {
            "GET"
        };
        assert_eq!(e["method"], want);
        assert_eq!(e["ip"], "127.0.0.0", "truncated to /24 by default");
        assert_eq!(e["ua"]["raw"], CHROME);
        assert_eq!(e["ua"]["os"], "Windows 10");
        match e["type"].as_str().unwrap() {
            "open" => assert!(o.get("url").is_none()),
            "click" => assert_eq!(e["url"], "https://shop.example.com/"),
            "unsubscribe" => assert!(o.get("url").is_none()),
            other => panic!("unexpected type {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let xff = [("x-forwarded-for", "203.0.113.5, 198.51.100.77")];
    let trusted = TestServer::start("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let mut c = claims(TokenType::Open, "c");
    let token = trusted.mint(&mut c);
    get_with(&trusted.route_url(TokenType::Open, &token), &xff).await;
    let events = trusted.stop().await;
    assert_eq!(events[0]["ip"], "198.51.100.0");

    let untrusted = TestServer::start("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n").await;
    get_with(&untrusted.route_url(TokenType::Open, &token), &xff).await;
    let events = untrusted.stop().await;
    assert_eq!(events[0]["ip"], "127.0.0.0");

    let full = TestServer::start(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[privacy]\nip_anonymization = \"none\"\n",
    )
    .await;
    get_with(&full.route_url(TokenType::Open, &token), &xff).await;
    let events = full.stop().await;
    assert_eq!(events[0]["ip"], "198.51.100.77");
}

/// A sender in another language follows contract §2 with stock HMAC and base64.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_built_by_hand_from_the_spec_recipe_is_accepted() {
    let srv = TestServer::start("").await;
    let json = r#"{"k":"test","t":"c","c":"hand-made","r":"r-1","u":"https://example.org/landing","future_field":1}"#;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("trackedge:v1:{payload}").as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]);
    let a = get(&srv.url(&format!("/c/{payload}.{tag}"))).await;
    assert_eq!(a.status, 302);
    assert_eq!(a.header("location"), Some("https://example.org/landing"));
    let events = srv.stop().await;
    assert_eq!(events[0]["campaign"], "hand-made");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_paths_and_methods() {
    let srv = TestServer::start("").await;
    let a = get(&srv.url("/robots.txt")).await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], b"User-agent: *\nDisallow: /\n");
    assert_eq!(get(&srv.url("/")).await.status, 404);
    assert_eq!(get(&srv.url("/o/abc")).await.status, 404);
    assert_eq!(get(&srv.url("/wp-login.php")).await.status, 404);
    let a = send(Method::POST, &srv.url("/o/abc.gif"), &[], "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        send(Method::PUT, &srv.url("/c/abc"), &[], "").await.status,
        405
    );
    assert_eq!(get(&srv.admin_url("/livez")).await.status, 200);
    assert_eq!(get(&srv.admin_url("/readyz")).await.status, 200);
    assert_eq!(get(&srv.admin_url("/healthz")).await.status, 200);
    let m = get(&srv.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("trackedge_http_requests_total{route=\"not_found\",status=\"404\"}"));
    assert!(text.contains(
        "trackedge_http_request_duration_seconds_bucket{route=\"robots\",le=\"0.0001\"}"
    ));
    assert!(text.contains(&format!(
        "trackedge_build_info{{version=\"{}\"}} 1",
        trackedge::VERSION
    )));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_requests_get_a_4xx_and_the_server_keeps_serving() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Open, "c");
    let token = srv.mint(&mut c);
    let ok_req = format!("GET /o/{token}.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

    let huge_header = format!(
        "GET /robots.txt HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(
        raw_status(&raw(srv.public, huge_header.as_bytes()).await),
        431
    );

    let long_uri = format!(
        "GET /o/{}.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    assert_eq!(raw_status(&raw(srv.public, long_uri.as_bytes()).await), 414);

    let mut many = String::from("GET /robots.txt HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw_status(&raw(srv.public, many.as_bytes()).await), 431);

    assert_eq!(raw_status(&raw(srv.public, b"NONSENSE\r\n\r\n").await), 400);
    assert_eq!(
        raw_status(&raw(srv.public, b"GET / HTTP/9.9\r\n\r\n").await),
        400
    );

    // Latin-1 bytes in a User-Agent are legal obs-text: the pixel is still a
    // pixel (contract §1: always 200), and the UA is kept with U+FFFD.
    let mut latin1 =
        format!("GET /o/{token}.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: ")
            .into_bytes();
    latin1.extend_from_slice(b"Mozilla/5.0 (Caf\xe9\xff)\r\n\r\n");
    let resp = raw(srv.public, &latin1).await;
    assert_eq!(raw_status(&resp), 200);

    // Still serving.
    let resp = raw(srv.public, ok_req.as_bytes()).await;
    assert_eq!(raw_status(&resp), 200);
    let events = srv.stop().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["ua"]["raw"], "Mozilla/5.0 (Caf\u{fffd}\u{fffd})");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_clients_are_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Head limit short, idle limit long: only the head limit can cut the
    // slow client, which keeps sending (so it is never idle).
    let srv =
        TestServer::start("[server]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"60s\"\n")
            .await;
    let t0 = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    slow.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                r = slow.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the server closes a connection whose head trickles in");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A keep-alive connection that got its answer and went quiet is idle,
    // not slow: the head limit does not touch it.
    let mut quiet = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    quiet
        .write_all(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = quiet.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    quiet
        .write_all(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = quiet.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "kept alive past the head limit"
    );
    srv.stop().await;

    // A client that connects and says nothing is closed at the idle limit.
    let srv =
        TestServer::start("[server]\nheader_read_timeout = \"60s\"\nidle_timeout = \"300ms\"\n")
            .await;
    let mut idle = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buf))
        .await
        .expect("the server closes a connection that never sends a request");
    assert!(n.is_ok());
    assert_eq!(get(&srv.url("/robots.txt")).await.status, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_serving_thread_answers_on_the_one_port() {
    // Three threads, three SO_REUSEPORT sockets: the kernel hashes each new
    // connection to one of them, so 30 connections reach every thread (all
    // but certainly) and any thread that does not serve would hang one.
    let srv = TestServer::start("[server]\nworker_threads = 3\n").await;
    let mut claims = trackedge::token::Claims::new(TokenType::Open, "threads");
    claims.r = Some("r-1".into());
    let token = srv.mint(&mut claims);
    let path = trackedge::router::token_url("", TokenType::Open, &token);
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (addr, request) = (srv.public, request.clone());
        answers.spawn(async move { raw(addr, request.as_bytes()).await });
    }
    // raw() gives up after 5 s, so a socket nobody serves shows as "".
    while let Some(a) = answers.join_next().await {
        let a = a.unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a:?}");
    }
    // A second server on the same port is refused, not quietly given half
    // of the connections.
    let err = trackedge::server::bind_public(srv.public, 2).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let events = srv.stop().await;
    assert_eq!(events.len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_connections_are_kept_until_idle_not_cut_at_the_head_limit() {
    use std::time::Duration;
    let srv =
        TestServer::start("[server]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"60s\"\n")
            .await;
    let tcp = tokio::net::TcpStream::connect(srv.public).await.unwrap();
    // The client pings every 100 ms: frames keep arriving, none a request.
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let robots = || {
        http::Request::get(srv.url("/robots.txt"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    assert_eq!(h2.send_request(robots()).await.unwrap().status(), 200);
    // Pings are not request heads: the head limit must not close the
    // connection, only the idle limit may.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = h2
        .send_request(robots())
        .await
        .expect("same HTTP/2 connection still open");
    assert_eq!(again.status(), 200);
    assert!(!conn.is_finished());
    srv.stop().await;
}

#[tokio::test]
async fn expiry_follows_the_server_clock() {
    let clock_ms = Arc::new(std::sync::atomic::AtomicI64::new(1_000_000_000_000));
    let c2 = clock_ms.clone();
    let srv = TestServer::start_with_clock(
        "",
        Arc::new(move || c2.load(std::sync::atomic::Ordering::Relaxed)),
    )
    .await;
    let mut c = claims(TokenType::Click, "clock");
    c.u = Some("https://example.com/".into());
    c.x = Some(1_000_000_060);
    let url = srv.tracked(&mut c);
    assert_eq!(get(&url).await.status, 302, "valid a minute before expiry");
    clock_ms.store(1_000_000_061_000, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        get(&url).await.status,
        404,
        "expired once the clock passes x"
    );
    let events = srv.stop().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["ts_ms"], 1_000_000_000_000i64);
}
