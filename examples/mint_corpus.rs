//! Mints the load test's corpus: one request per line, `path<TAB>user-agent`,
//! for N recipients, opens and clicks 80/20, User-Agents from the agent
//! fixture (`tests/fixtures/agents.tsv`). Signs with the key in
//! TRACKEDGE_SIGNING__KEYS-style arguments.
//!
//! cargo run --release --example mint_corpus -- SECRET RECIPIENTS FIXTURE_TSV > corpus.tsv

use trackedge::token::{Claims, Keyring, TokenType};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secret = args.get(1).expect("SECRET");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let fixture = args
        .get(3)
        .map(std::fs::read_to_string)
        .transpose()
        .expect("fixture file");
    let mut uas: Vec<String> = fixture
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('\t').nth(4).map(str::to_owned))
        .collect();
    if uas.is_empty() {
        uas.push("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36".into());
    }
    let ring = Keyring::new(&[("load".to_owned(), secret.as_bytes().to_vec())]);
    let sent = trackedge::now_ms() / 1000 - 3600;
    for i in 0..n {
        // 4 opens for every click.
        for j in 0..5 {
            let t = if j < 4 {
                TokenType::Open
            } else {
                TokenType::Click
            };
            let mut c = Claims::new(t, format!("campaign-{}", i % 20));
            c.r = Some(format!("r-{i}"));
            c.m = Some(format!("m-{}", i % 100));
            c.s = Some(sent);
            let path = if t == TokenType::Open {
                format!("/o/{}.gif", ring.sign(&mut c))
            } else {
                c.l = Some("hero".into());
                c.u = Some(format!("https://shop.example.com/p/{}", i % 500));
                format!("/c/{}", ring.sign(&mut c))
            };
            println!("{path}\t{}", uas[(i * 5 + j) % uas.len()]);
        }
    }
}
