//! A real browser (Debian's headless `chromium`) meets trackedge as a
//! recipient and a web page do: a page on another origin loads the web
//! beacon the README's snippet builds, an open pixel, sends a
//! `navigator.sendBeacon`, and follows a tracked link. Every event must be
//! there with the visitor id the browser kept and the `url`/`referer` it
//! sent. Skipped, with the reason printed, where chromium is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::*;
use trackedge::token::TokenType;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| {
            let out = Command::new("which").arg(b).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Starts headless chromium on `url` with `extra` flags.
fn spawn_chromium(
    bin: &Path,
    profile: &Path,
    url: &str,
    extra: &[&str],
    stdout: Stdio,
) -> std::process::Child {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts")
}

/// Runs headless chromium on `url` with `extra` flags to its end.
fn run_chromium(bin: &Path, profile: &Path, url: &str, extra: &[&str]) {
    let mut child = spawn_chromium(bin, profile, url, extra, Stdio::null());
    wait_bounded(&mut child);
}

/// Waits for the browser, stopping it after a minute: bounded, by its own
/// handle (no stray kill of a reused process id later).
fn wait_bounded(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serves `pages` (path → HTML) on `listener`: the sender's web site.
fn site(listener: TcpListener, pages: Vec<(String, String)>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = match pages.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", String::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_browser_records_beacon_pixel_send_beacon_and_click() {
    let Some(bin) = chromium() else {
        common::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let srv = TestServer::start("").await;
    let t = format!("http://{}", srv.public);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut open = claims(TokenType::Open, "browser");
    open.r = Some("r-1".into());
    let mut click = claims(TokenType::Click, "browser");
    click.r = Some("r-1".into());
    click.u = Some(format!("{origin}/landing"));
    let (pixel, link) = (srv.tracked(&mut open), srv.tracked(&mut click));
    // The README's snippet: the beacon with the page's full address, then
    // sendBeacon for an event on the way out; then the person clicks.
    let page = format!(
        r#"<!doctype html><html><body><h1>Shop</h1>
<img src="{pixel}" alt="">
<a id="go" href="{link}">Sale</a>
<script>
var b = new Image();
b.referrerPolicy = "no-referrer-when-downgrade";
b.onload = function () {{
  navigator.sendBeacon("{t}/p.gif?e=leave&c=browser&page=" + encodeURIComponent(location.href), "");
  setTimeout(function () {{ document.getElementById("go").click(); }}, 500);
}};
b.src = "{t}/p.gif?e=pageview&c=browser&page=" + encodeURIComponent(location.href) +
  "&ref=" + encodeURIComponent(document.referrer);
</script></body></html>"#
    );
    let site_task = site(
        listener,
        vec![
            ("/page".into(), page),
            (
                "/landing".into(),
                "<!doctype html><title>landed</title><p id=landed>landed</p>".into(),
            ),
        ],
    );
    let profile = tempfile::tempdir().unwrap();
    let page_url = format!("{origin}/page");
    let mut browser = spawn_chromium(&bin, profile.path(), &page_url, &[], Stdio::null());
    // The browser is done once the click arrives (the sink writes events
    // as they come); it is stopped by its process id either way.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline
        && !read_events(&srv.events_path)
            .iter()
            .any(|e| e["type"] == "click")
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = browser.kill();
    let _ = browser.wait();
    site_task.abort();
    let events = srv.stop().await;
    let find = |ty: &str, name: Option<&str>| {
        events
            .iter()
            .find(|e| e["type"] == ty && name.is_none_or(|n| e["name"] == n))
            .unwrap_or_else(|| panic!("no {ty} {name:?} event in {events:#?}"))
    };
    let view = find("beacon", Some("pageview"));
    let leave = find("beacon", Some("leave"));
    let opened = find("open", None);
    let clicked = find("click", None);
    assert_eq!(view["url"], page_url, "page= carries the full address");
    assert_eq!(leave["url"], page_url);
    assert_eq!(leave["method"], "POST", "sendBeacon POSTs");
    assert_eq!(opened["recipient"], "r-1");
    let visitor = view["visitor"]
        .as_str()
        .expect("the beacon hands out a visitor id");
    assert_eq!(leave["visitor"], visitor, "sendBeacon carries the cookie");
    assert_eq!(clicked["visitor"], visitor, "the click carries the cookie");
    let referer = clicked["referer"]
        .as_str()
        .expect("the click keeps the Referer");
    assert!(
        referer.starts_with(&format!("{origin}/")),
        "as the browser sent it: {referer}"
    );
    assert_eq!(clicked["url"], format!("{origin}/landing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unsubscribe_page_renders_on_a_phone_sized_screen() {
    let Some(bin) = chromium() else {
        common::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Unsubscribe, "spring-sale");
    c.a = Some([("list".to_owned(), "the Acme newsletter".to_owned())].into());
    let url = srv.tracked(&mut c);
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("unsubscribe.png");
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking({
        let (bin, p) = (bin.clone(), profile.path().join("p"));
        move || {
            run_chromium(
                &bin,
                &p,
                &url,
                &[&arg, "--window-size=390,844", "--hide-scrollbars"],
            )
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if let Ok(dest) = std::env::var("TRACKEDGE_SCREENSHOT") {
        std::fs::write(dest, &png).unwrap();
    }
    assert!(
        srv.stop().await.is_empty(),
        "showing the page unsubscribes nobody"
    );
}

/// Runs headless chromium on `url` and returns the DOM it rendered.
fn dump_dom(bin: &Path, profile: &Path, url: &str) -> String {
    let mut child = spawn_chromium(bin, profile, url, &["--dump-dom"], Stdio::piped());
    // Read on a thread: the browser is waited for (bounded) meanwhile.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
        out
    });
    wait_bounded(&mut child);
    reader.join().unwrap()
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const GMAIL_PROXY: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

/// The text of the element carrying `data-k="{key}"` in `html`, after
/// `from` (a row's or a section's start).
fn figure<'a>(html: &'a str, from: &str, key: &str) -> &'a str {
    let start = html
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the page:\n{html}"));
    let at = format!("data-k=\"{key}\">");
    let i = html[start..]
        .find(&at)
        .unwrap_or_else(|| panic!("{key} not after {from}:\n{html}"))
        + start
        + at.len();
    &html[i..i + html[i..].find('<').unwrap()]
}

/// The click-to-open rate the pages show, from a `/stats/campaigns` report.
fn ctor(s: &serde_json::Value) -> String {
    let (o, c) = (
        s["opens"]["unique_human"].as_u64().unwrap(),
        s["clicks"]["unique_human"].as_u64().unwrap(),
    );
    if o == 0 {
        "–".into()
    } else {
        format!("{:.1}%", c as f64 * 100.0 / o as f64)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_pages_show_what_stats_says() {
    let Some(bin) = chromium() else {
        common::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let srv = TestServer::start("").await;
    let send_as = |ua: &'static str, method: http::Method, url: String| async move {
        send(method, &url, &[("user-agent", ua)], "").await.status
    };
    for (campaign, people, proxies) in [("spring-sale", 9, 4), ("autumn", 3, 0)] {
        for i in 0..people {
            let mut c = claims(TokenType::Open, campaign);
            c.r = Some(format!("r-{i}"));
            // Some people open twice: totals and uniques differ.
            for _ in 0..1 + i % 2 {
                assert_eq!(
                    send_as(CHROME, http::Method::GET, srv.tracked(&mut c)).await,
                    200
                );
            }
        }
        for i in 0..proxies {
            let mut c = claims(TokenType::Open, campaign);
            c.r = Some(format!("r-{i}"));
            assert_eq!(
                send_as(GMAIL_PROXY, http::Method::GET, srv.tracked(&mut c)).await,
                200
            );
        }
    }
    for (i, link) in ["hero", "hero", "footer", "hero", "sale"]
        .iter()
        .enumerate()
    {
        let mut c = claims(TokenType::Click, "spring-sale");
        c.r = Some(format!("r-{i}"));
        c.l = Some(link.to_string());
        c.u = Some("https://example.com/".into());
        assert_eq!(
            send_as(CHROME, http::Method::GET, srv.tracked(&mut c)).await,
            302
        );
        // A scanner checks the first two links too.
        if i < 2 {
            assert_eq!(
                send_as(CHROME, http::Method::HEAD, srv.tracked(&mut c)).await,
                302
            );
        }
    }
    let mut u = claims(TokenType::Unsubscribe, "spring-sale");
    u.r = Some("r-8".into());
    let one_click = send(
        http::Method::POST,
        &srv.tracked(&mut u),
        &[("content-type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(one_click.status, 200);

    let profile = tempfile::tempdir().unwrap();
    let dom = |path: &str| {
        let (bin, p, url) = (bin.clone(), profile.path().to_owned(), srv.admin_url(path));
        tokio::task::spawn_blocking(move || dump_dom(&bin, &p, &url))
    };
    let overview = dom("/").await.unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&get(&srv.admin_url("/stats")).await.body).unwrap();
    let campaigns = stats["campaigns"].as_object().unwrap();
    assert_eq!(campaigns.len(), 2);
    for name in campaigns.keys() {
        let s: serde_json::Value = serde_json::from_slice(
            &get(&srv.admin_url(&format!("/stats/campaigns/{name}")))
                .await
                .body,
        )
        .unwrap();
        let row = format!("<tr data-campaign=\"{name}\">");
        assert!(
            overview.contains(&format!(
                "{row}<th scope=\"row\"><a href=\"campaigns/{name}\">{name}</a>"
            )),
            "the name links to its page:\n{overview}"
        );
        for (key, want) in [
            ("opens.total", s["opens"]["total"].to_string()),
            ("opens.unique", s["opens"]["unique"].to_string()),
            ("opens.unique_human", s["opens"]["unique_human"].to_string()),
            ("clicks.total", s["clicks"]["total"].to_string()),
            ("clicks.unique", s["clicks"]["unique"].to_string()),
            (
                "clicks.unique_human",
                s["clicks"]["unique_human"].to_string(),
            ),
            (
                "opens.machine",
                (s["opens"]["proxy"].as_u64().unwrap() + s["opens"]["bot"].as_u64().unwrap())
                    .to_string(),
            ),
            (
                "clicks.machine",
                (s["clicks"]["proxy"].as_u64().unwrap() + s["clicks"]["bot"].as_u64().unwrap())
                    .to_string(),
            ),
            ("unsubscribes", s["unsubscribes"].to_string()),
            ("ctor", ctor(&s)),
        ] {
            assert_eq!(figure(&overview, &row, key), want, "{name} {key} on /");
        }

        let page = dom(&format!("/campaigns/{name}")).await.unwrap();
        assert!(page.contains(&format!("<h1>{name}</h1>")), "{page}");
        for what in ["opens", "clicks"] {
            for k in ["total", "unique", "human", "unique_human", "proxy", "bot"] {
                let key = format!("{what}.{k}");
                assert_eq!(
                    figure(&page, "<table>", &key),
                    s[what][k].to_string(),
                    "{name} {key} on its page"
                );
            }
        }
        assert_eq!(figure(&page, "<main>", "ctor"), ctor(&s));
        assert_eq!(
            figure(&page, "<table>", "unsubscribes"),
            s["unsubscribes"].to_string()
        );
        for (link, l) in s["links"].as_object().unwrap() {
            let row = format!("<tr data-link=\"{link}\">");
            assert_eq!(figure(&page, &row, "total"), l["total"].to_string());
            assert_eq!(figure(&page, &row, "unique"), l["unique"].to_string());
        }
        assert!(
            page.contains(">minutes ago<") && page.contains(">per minute<"),
            "axes"
        );
        assert!(!page.contains("<script"));
    }
    // The mix is what the page is for: people apart from machines.
    let s: serde_json::Value = serde_json::from_slice(
        &get(&srv.admin_url("/stats/campaigns/spring-sale"))
            .await
            .body,
    )
    .unwrap();
    assert!(s["opens"]["proxy"].as_u64().unwrap() > 0, "{s}");
    assert!(s["clicks"]["bot"].as_u64().unwrap() > 0, "{s}");
    assert!(s["unsubscribes"].as_u64().unwrap() == 1, "{s}");
    assert!(overview.contains("<svg") && overview.contains("id=\"rate-open\""));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn campaign_pages_take_the_same_token_and_csp_as_the_live_page() {
    let token = "0123456789abcdef0123456789abcdef-live";
    let srv = TestServer::start(&format!("[server]\nadmin_token = \"{token}\"\n")).await;
    let mut c = claims(TokenType::Open, "spring sale/2");
    assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
    let path = "/campaigns/spring%20sale%2F2";
    let refused = get(&srv.admin_url(path)).await;
    assert_eq!(refused.status, 401);
    assert!(refused
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    let auth = format!("Bearer {token}");
    let page = get_with(&srv.admin_url(path), &[("authorization", &auth)]).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    let body = String::from_utf8_lossy(&page.body);
    assert!(body.contains("<h1>spring sale/2</h1>"), "{body}");
    let overview = get_with(&srv.admin_url("/"), &[("authorization", &auth)]).await;
    assert!(
        String::from_utf8_lossy(&overview.body).contains("href=\"campaigns/spring%20sale%2F2\"")
    );
    let unknown = get_with(
        &srv.admin_url("/campaigns/nope"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(unknown.status, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unsubscribe_page_names_the_list_never_the_campaign_id() {
    let srv = TestServer::start("[pages]\nlist_name = \"the Acme newsletter\"\n").await;
    let mut c = claims(TokenType::Unsubscribe, "2024-q3-winback-b");
    let page = get(&srv.tracked(&mut c)).await;
    let body = String::from_utf8_lossy(&page.body);
    assert!(
        body.contains("Stop receiving <strong>the Acme newsletter</strong>."),
        "{body}"
    );
    assert!(!body.contains("winback"), "{body}");
    c.a = Some([("list".to_owned(), "Acme Deals".to_owned())].into());
    let page = get(&srv.tracked(&mut c)).await;
    let body = String::from_utf8_lossy(&page.body);
    assert!(
        body.contains("<strong>Acme Deals</strong>"),
        "the token's name wins: {body}"
    );
    srv.stop().await;
}

/// An hour of a campaign's traffic, rendered by the live page's code and
/// shot in chromium at a phone's and a desktop's size: what
/// docs/live-page-*.png show (set TRACKEDGE_SCREENSHOT_DIR=docs to refresh
/// them).
#[tokio::test(flavor = "multi_thread")]
async fn the_campaign_page_reads_on_a_phone_and_a_desktop() {
    use trackedge::event::{AgentKind, EventType};
    use trackedge::stats::{Hit, Stats};
    let Some(bin) = chromium() else {
        common::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let cfg = trackedge::config::Config::from_toml("").unwrap();
    let stats = Stats::new(&cfg.stats);
    let t0: i64 = 1_763_942_400_000;
    let mut n = 0u64;
    let links = [
        "hero",
        "hero",
        "sale-banner",
        "footer-shop",
        "hero",
        "product-1",
        "product-2",
    ];
    for minute in 0..60i64 {
        let now = t0 + minute * 60_000;
        stats.sample(now);
        // Mail goes out at minute 5; opens peak, then tail off.
        let load = if minute < 5 {
            0
        } else {
            40 * 12 / (minute - 3) as u64
        };
        for j in 0..load {
            n += 1;
            let r = format!("r-{}", n % 700);
            let (kind, agent_kind, name) = match j % 10 {
                0..=2 => (EventType::Open, AgentKind::Proxy, Some("apple_mpp")),
                3 => (EventType::Open, AgentKind::Proxy, Some("gmail_image_proxy")),
                4 => (
                    EventType::Click,
                    AgentKind::Bot,
                    Some("microsoft_safe_links"),
                ),
                5 | 6 => (EventType::Click, AgentKind::Human, None),
                _ => (EventType::Open, AgentKind::Human, None),
            };
            stats.record(&Hit {
                kind,
                campaign: "spring-sale",
                recipient: Some(&r),
                link: Some(links[(n % 7) as usize]),
                country: Some(["US", "DE", "FR", "GB"][(n % 4) as usize]),
                agent_kind,
                agent_name: name,
                now_ms: now + (j as i64 % 60) * 1000,
            });
        }
        if minute % 9 == 0 && minute > 0 {
            stats.record(&Hit {
                kind: EventType::Unsubscribe,
                campaign: "spring-sale",
                recipient: Some("r-1"),
                link: None,
                country: None,
                agent_kind: AgentKind::Human,
                agent_name: None,
                now_ms: now,
            });
        }
    }
    let page =
        trackedge::dashboard::render_campaign(&stats, "spring-sale", t0 + 59 * 60_000 + 30_000, 5)
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("campaign.html");
    std::fs::write(&html, page).unwrap();
    let url = format!("file://{}", html.display());
    for (name, size) in [("phone", "390,844"), ("desktop", "1280,1400")] {
        let shot = dir.path().join(format!("{name}.png"));
        let args = [
            format!("--screenshot={}", shot.display()),
            format!("--window-size={size}"),
            "--hide-scrollbars".to_owned(),
        ];
        let (bin, p, url) = (bin.clone(), dir.path().join(name), url.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_chromium(&bin, &p, &url, &args)
        })
        .await
        .unwrap();
        let png = std::fs::read(&shot).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Ok(to) = std::env::var("TRACKEDGE_SCREENSHOT_DIR") {
            std::fs::write(Path::new(&to).join(format!("live-page-{name}.png")), &png).unwrap();
        }
    }
}
