//! What browsers and mail clients meet (contract §1): sendBeacon's POST,
//! CORP on every GIF, the click's Referer, pages for people, and
//! destinations a browser would read differently from the validator.

mod common;

use http::Method;

use common::*;
use trackedge::token::TokenType;

#[tokio::test]
async fn send_beacon_posts_are_beacons() {
    let srv = TestServer::start("").await;
    let a = send(
        Method::POST,
        &srv.url("/p.gif?e=leave&page=https%3A%2F%2Fshop.example.com%2Fcart&c=spring"),
        &[("content-type", "text/plain;charset=UTF-8")],
        "{\"scroll\":0.8}",
    )
    .await;
    assert_eq!(a.status, 204);
    // The body is ignored, whatever its size: the event is the query's.
    let big = "x".repeat(10_000);
    let a = send(Method::POST, &srv.url("/p.gif?e=big"), &[], &big).await;
    assert_eq!(a.status, 204);
    let events = srv.stop().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["name"], "big");
    let e = &events[0];
    assert_eq!(
        (e["type"].as_str(), e["name"].as_str()),
        (Some("beacon"), Some("leave"))
    );
    assert_eq!(e["method"], "POST");
    assert_eq!(e["url"], "https://shop.example.com/cart");
    assert_eq!(e["campaign"], "spring");
}

#[tokio::test]
async fn every_gif_answer_allows_cross_origin_embedding() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Open, "corp");
    for url in [
        srv.tracked(&mut c),
        srv.url("/o/not-a-token.gif"),
        srv.url("/p.gif?e=x"),
    ] {
        for m in [Method::GET, Method::HEAD] {
            let a = send(m.clone(), &url, &[], "").await;
            assert_eq!(a.status, 200, "{m} {url}");
            assert_eq!(
                a.header("cross-origin-resource-policy"),
                Some("cross-origin"),
                "{m} {url}"
            );
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn clicks_keep_the_referer_as_sent() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Click, "ref");
    c.u = Some("https://shop.example.com/".into());
    let url = srv.tracked(&mut c);
    let a = get_with(&url, &[("referer", "https://news.example.org/issue-12")]).await;
    assert_eq!(a.status, 302);
    let a = get(&url).await;
    assert_eq!(a.status, 302);
    let events = srv.stop().await;
    assert_eq!(events[0]["referer"], "https://news.example.org/issue-12");
    assert!(
        events[1].get("referer").is_none(),
        "absent, not empty or null"
    );
}

#[tokio::test]
async fn destinations_are_sent_exactly_as_validated() {
    let srv = TestServer::start("").await;
    for (dest, want) in [
        (
            "https://shop.example.com/sale?x=1&y=2",
            Some("https://shop.example.com/sale?x=1&y=2"),
        ),
        (
            "HTTPS://Shop.Example.COM:443/a",
            Some("https://shop.example.com/a"),
        ),
        ("https:///path", None),
        ("https:///evil.example/x", None),
        ("http://0x7f.1/", None),
    ] {
        let mut c = claims(TokenType::Click, "dest");
        c.u = Some(dest.into());
        let a = get(&srv.tracked(&mut c)).await;
        match want {
            Some(loc) => {
                assert_eq!(a.status, 302, "{dest}");
                assert_eq!(a.header("location"), Some(loc), "{dest}");
            }
            None => {
                assert_eq!(a.status, 404, "{dest} must be refused");
                assert!(a.header("location").is_none(), "{dest}");
            }
        }
    }
    let m = String::from_utf8_lossy(&get(&srv.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(
        metric(
            &m,
            "trackedge_invalid_tokens_total{route=\"click\",reason=\"bad_url\"}"
        ),
        3.0
    );
    srv.stop().await;
}

#[tokio::test]
async fn pages_for_people_are_readable_on_a_phone_and_escape_what_they_show() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Unsubscribe, "<script>alert(1)</script>");
    let unsub = srv.tracked(&mut c);
    for url in [
        srv.url("/optout"),
        srv.url("/optin"),
        srv.url("/c/bad"),
        unsub,
    ] {
        let a = get(&url).await;
        let body = String::from_utf8_lossy(&a.body).into_owned();
        assert!(body.contains("name=\"viewport\""), "{url}: {body}");
        assert!(body.contains("<html lang=\"en\">"), "{url}");
        assert!(!body.contains("<script"), "{url}: {body}");
        let csp = a.header("content-security-policy").unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    srv.stop().await;
}
