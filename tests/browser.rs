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

#[tokio::test(flavor = "multi_thread")]
async fn the_live_page_shows_what_stats_says() {
    let Some(bin) = chromium() else {
        common::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let srv = TestServer::start("").await;
    for (campaign, opens, clicks) in [("spring-sale", 7, 2), ("autumn", 3, 0)] {
        for i in 0..opens {
            let mut c = claims(TokenType::Open, campaign);
            c.r = Some(format!("r-{i}"));
            assert_eq!(get(&srv.tracked(&mut c)).await.status, 200);
        }
        for i in 0..clicks {
            let mut c = claims(TokenType::Click, campaign);
            c.r = Some(format!("r-{i}"));
            c.u = Some("https://example.com/".into());
            assert_eq!(get(&srv.tracked(&mut c)).await.status, 302);
        }
    }
    // Two samples a second apart give the chart a rate.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let profile = tempfile::tempdir().unwrap();
    let url = srv.admin_url("/");
    let dom = tokio::task::spawn_blocking({
        let (bin, p) = (bin.clone(), profile.path().to_owned());
        move || dump_dom(&bin, &p, &url)
    })
    .await
    .unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&get(&srv.admin_url("/stats")).await.body).unwrap();
    let campaigns = stats["campaigns"].as_object().unwrap();
    assert_eq!(campaigns.len(), 2);
    for (name, t) in campaigns {
        let row = format!(
            "<th scope=\"row\">{name}</th><td>{}</td><td>{}</td><td>{}</td>",
            t["opens"], t["clicks"], t["unsubscribes"]
        );
        assert!(dom.contains(&row), "{row} not in the page:\n{dom}");
    }
    assert!(dom.contains("<svg"), "the chart is there");
    assert!(dom.contains("id=\"rate-open\""));
    srv.stop().await;
}
