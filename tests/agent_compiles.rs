//! The agent rules compile exactly once per configuration load: loading
//! and validating a config compiles none, starting the server compiles
//! one, and each reload (what SIGHUP does) one more (issue 19). Its own
//! test binary, so no other test compiles rules meanwhile.

use trackedge::config::Config;
use trackedge::enrich::agent::compile_count;
use trackedge::serve::{spawn, Listeners, Options};

#[tokio::test]
async fn rules_compile_once_per_start_and_once_per_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trackedge.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [sink]\nkind = \"file\"\nfile_path = {:?}\n",
            dir.path().join("events.ndjson").to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = Config::load(Some(&file)).unwrap();
    assert_eq!(compile_count(), 0, "validation compiles no rules");
    let listeners = Listeners::bind(&cfg.server).unwrap();
    let opts = Options {
        config_path: Some(file.clone()),
        sighup: false,
        ..Default::default()
    };
    let running = spawn(cfg, opts, listeners);
    // Ready once the admin listener answers /readyz with 200.
    for _ in 0..200 {
        if compile_count() >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(compile_count(), 1, "one compile per start");
    assert!(running.reload().await, "the reload takes");
    assert_eq!(compile_count(), 2, "one more per reload");
    assert!(running.reload().await);
    assert_eq!(compile_count(), 3);
    running.stop().await.unwrap();
}
