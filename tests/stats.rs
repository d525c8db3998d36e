//! Live campaign counts over real HTTP: a known mix of opens, clicks and
//! unsubscribes from people, proxies and bots, 10,000 distinct recipients;
//! `/stats` and `/metrics` must agree with what was sent.

mod common;

use std::sync::Arc;

use http::Method;
use serde_json::Value;
use tokio::sync::Semaphore;

use common::*;
use trackedge::token::TokenType;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const GMAIL: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

struct Req {
    method: Method,
    path: String,
    ua: &'static str,
}

fn within(estimate: &Value, truth: f64) -> bool {
    (estimate.as_f64().unwrap() - truth).abs() / truth <= 0.02
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_and_metrics_agree_with_a_known_mix() {
    let srv =
        TestServer::start("[server]\nadmin_token = \"s3cret-token-0123456789-abcdefghij\"\n").await;
    let mut reqs = Vec::new();
    let mint = |t: TokenType, r: String, link: Option<&str>| {
        let mut c = claims(t, "spring-sale");
        c.r = Some(r);
        c.l = link.map(str::to_owned);
        c.s = Some(trackedge::now_ms() / 1000 - 3600);
        if t == TokenType::Click {
            c.u = Some("https://shop.example.com/".into());
        }
        srv.mint(&mut c)
    };
    // 10,000 people open; 2,000 of those opens are fetched again by Gmail's proxy.
    for i in 0..10_000 {
        let path = trackedge::router::token_url(
            "",
            TokenType::Open,
            &mint(TokenType::Open, format!("r-{i}"), None),
        );
        if i < 2_000 {
            reqs.push(Req {
                method: Method::GET,
                path: path.clone(),
                ua: GMAIL,
            });
        }
        reqs.push(Req {
            method: Method::GET,
            path,
            ua: CHROME,
        });
    }
    // 3,000 people click (2,000 on "hero", 1,000 on "footer"); a scanner
    // sends HEAD for 500 of the hero links.
    for i in 0..3_000 {
        let link = if i < 2_000 { "hero" } else { "footer" };
        let token = mint(TokenType::Click, format!("r-{i}"), Some(link));
        let path = trackedge::router::token_url("", TokenType::Click, &token);
        if i < 500 {
            reqs.push(Req {
                method: Method::HEAD,
                path: path.clone(),
                ua: CHROME,
            });
        }
        reqs.push(Req {
            method: Method::GET,
            path,
            ua: CHROME,
        });
    }
    for i in 0..50 {
        let token = mint(TokenType::Unsubscribe, format!("r-{i}"), None);
        let path = trackedge::router::token_url("", TokenType::Unsubscribe, &token);
        // A POST unsubscribes; a GET only shows the page (contract §1).
        reqs.push(Req {
            method: Method::POST,
            path,
            ua: CHROME,
        });
    }
    // Another campaign, to see /stats list both.
    let mut other = claims(TokenType::Open, "autumn");
    reqs.push(Req {
        method: Method::GET,
        path: trackedge::router::token_url("", TokenType::Open, &srv.mint(&mut other)),
        ua: CHROME,
    });

    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    for r in reqs {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let url = srv.url(&r.path);
        tasks.push(tokio::spawn(async move {
            let a = send(r.method, &url, &[("user-agent", r.ua)], "").await;
            drop(permit);
            a.status.as_u16()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), 200 | 302));
    }

    // The token is required.
    assert_eq!(get(&srv.admin_url("/stats")).await.status, 401);
    let auth = [("authorization", "Bearer s3cret-token-0123456789-abcdefghij")];
    assert_eq!(
        get_with(
            &srv.admin_url("/stats"),
            &[("authorization", "Bearer nope")]
        )
        .await
        .status,
        401
    );

    let all: Value =
        serde_json::from_slice(&get_with(&srv.admin_url("/stats"), &auth).await.body).unwrap();
    assert_eq!(
        all["campaigns"]["spring-sale"],
        serde_json::json!({"opens": 12000, "clicks": 3500, "unsubscribes": 50})
    );
    assert_eq!(all["campaigns"]["autumn"]["opens"], 1);

    let a = get_with(&srv.admin_url("/stats/campaigns/spring-sale"), &auth).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let s: Value = serde_json::from_slice(&a.body).unwrap();
    println!("{}", serde_json::to_string(&s).unwrap());
    assert_eq!(s["campaign"], "spring-sale");
    assert_eq!(s["opens"]["total"], 12_000);
    assert_eq!(s["opens"]["human"], 10_000);
    assert_eq!(s["opens"]["proxy"], 2_000);
    assert_eq!(s["opens"]["bot"], 0);
    assert!(
        within(&s["opens"]["unique"], 10_000.0),
        "{}",
        s["opens"]["unique"]
    );
    assert_eq!(s["clicks"]["total"], 3_500);
    assert_eq!(s["clicks"]["human"], 3_000);
    assert_eq!(s["clicks"]["bot"], 500);
    assert!(
        within(&s["clicks"]["unique"], 3_000.0),
        "{}",
        s["clicks"]["unique"]
    );
    assert_eq!(s["unsubscribes"], 50);
    assert_eq!(s["unsubscribes_by_agent"]["human"], 50);
    assert_eq!(s["links"]["hero"]["total"], 2_500);
    // Per-link uniques hold the contract's 2%: 2,000 distinct recipients
    // clicked "hero" (and 500 of those links were fetched by a scanner too).
    let hero = s["links"]["hero"]["unique"].as_f64().unwrap();
    assert!((hero - 2_000.0).abs() <= 40.0, "hero unique {hero}");
    assert_eq!(s["links"]["footer"]["total"], 1_000);
    assert_eq!(s["agents"]["gmail_image_proxy"], 2_000);
    let unknown = get_with(&srv.admin_url("/stats/campaigns/no-such"), &auth).await;
    assert_eq!(unknown.status, 404);

    let m = String::from_utf8_lossy(&get(&srv.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(
        metric(
            &m,
            "trackedge_events_total{type=\"open\",agent_kind=\"human\"}"
        ),
        10_001.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_events_total{type=\"open\",agent_kind=\"proxy\"}"
        ),
        2_000.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_events_total{type=\"click\",agent_kind=\"human\"}"
        ),
        3_000.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_events_total{type=\"click\",agent_kind=\"bot\"}"
        ),
        500.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_events_total{type=\"unsubscribe\",agent_kind=\"human\"}"
        ),
        50.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_http_requests_total{route=\"open\",status=\"200\"}"
        ),
        12_001.0
    );
    assert_eq!(
        metric(
            &m,
            "trackedge_http_requests_total{route=\"click\",status=\"302\"}"
        ),
        3_500.0
    );
    assert_eq!(metric(&m, "trackedge_events_accepted_total"), 15_551.0);
    assert_eq!(metric(&m, "trackedge_stats_campaigns"), 2.0);

    let events = srv.stop().await;
    assert_eq!(events.len(), 15_551);
}
