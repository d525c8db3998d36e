//! The `trackedge` binary as users run it: sign, verify, check-config,
//! gen-key, bad configurations, and serve under SIGTERM.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use trackedge::token::{Keyring, TokenType};

const KEYS_ENV: &str = "[{id=\"test\",secret=\"test-secret-0123456789abcdef-0123456789\"}]";

fn cmd(dir: &std::path::Path) -> Command {
    bare_command(dir)
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sign_output_verifies_and_tampering_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, prefix, extra) in [
        ("open", "http://localhost:8080/o/", vec![]),
        (
            "click",
            "http://localhost:8080/c/",
            vec!["--url", "https://shop.example.com/sale?x=1&y=2"],
        ),
        ("unsubscribe", "http://localhost:8080/u/", vec![]),
    ] {
        let (code, url, err) = run(cmd(dir.path())
            .args([
                "sign",
                kind,
                "--campaign",
                "spring-sale",
                "--recipient",
                "r-42",
                "--link",
                "hero",
            ])
            .args(["--expires-in", "30d", "--attr", "variant=B"])
            .args(extra));
        assert_eq!(code, 0, "{err}");
        let url = url.trim();
        assert!(url.starts_with(prefix), "{url}");
        let (code, out, _) = run(cmd(dir.path()).args(["verify", url]));
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("valid"), "{out}");
        assert!(out.contains("\"spring-sale\""), "{out}");
        assert!(out.contains("\"variant\": \"B\""), "{out}");

        let tampered = format!("{}x", url);
        let (code, out, _) = run(cmd(dir.path()).args(["verify", &tampered]));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("invalid"), "{out}");
    }
    // Signed by another key: does not verify here.
    let (_, url, _) = run(cmd(dir.path())
        .env("TRACKEDGE_SIGNING__KEYS", KEYS_ENV)
        .args(["sign", "open", "--campaign", "c"]));
    let (code, out, _) = run(cmd(dir.path()).args(["verify", url.trim()]));
    assert_eq!(code, 1);
    assert!(out.contains("unknown_key"), "{out}");
}

#[test]
fn sign_refuses_what_the_server_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cmd(dir.path()).args([
        "sign",
        "click",
        "--campaign",
        "c",
        "--url",
        "javascript:alert(1)",
    ]));
    assert_eq!(code, 64);
    assert!(err.contains("--url"), "{err}");
    let (code, _, err) = run(cmd(dir.path()).args(["sign", "click", "--campaign", "c"]));
    assert_eq!(code, 64, "{err}");
    let (code, _, err) =
        run(cmd(dir.path()).args(["sign", "open", "--campaign", "c", "--expires-in", "soon"]));
    assert_eq!(code, 64);
    assert!(err.contains("--expires-in"), "{err}");
    let (code, _, _) = run(cmd(dir.path()).args(["sign", "bogus", "--campaign", "c"]));
    assert_eq!(code, 64);
}

#[test]
fn bad_configs_name_the_key_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"0.0.0.0:8080\"\nmax_conections = 5\n",
    )
    .unwrap();
    let (code, _, err) = run(cmd(dir.path()).args(["serve", "--config", file.to_str().unwrap()]));
    assert_eq!(code, 64);
    assert!(err.contains("max_conections"), "{err}");

    std::fs::write(&file, "[privacy]\nip_anonymization = \"hash\"\n").unwrap();
    let (code, _, err) =
        run(cmd(dir.path()).args(["check-config", "--config", file.to_str().unwrap()]));
    assert_eq!(code, 64);
    assert!(err.contains("privacy.ip_anonymization"), "{err}");

    let (code, _, err) = run(cmd(dir.path())
        .env("TRACKEDGE_SERVER__LISTEN", "nowhere")
        .args(["serve"]));
    assert_eq!(code, 64);
    assert!(err.to_lowercase().contains("server.listen"), "{err}");

    let (code, _, err) = run(cmd(dir.path())
        .env("TRACKEDGE_SIGNING__KEYS", "[{id=\"a\",secret=\"short\"}]")
        .args(["check-config"]));
    assert_eq!(code, 64);
    assert!(err.contains("signing.keys[0].secret"), "{err}");

    let (code, _, err) = run(cmd(dir.path()).args(["serve", "--config", "/no/such/file.toml"]));
    assert_eq!(code, 64);
    assert!(err.contains("/no/such/file.toml"), "{err}");
}

#[test]
fn check_config_shows_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(cmd(dir.path())
        .env("TRACKEDGE_SIGNING__KEYS", KEYS_ENV)
        .env("TRACKEDGE_KAFKA__BROKERS", "10.0.0.1:9092")
        .args(["check-config"]));
    assert_eq!(code, 0);
    assert!(out.contains("brokers = \"10.0.0.1:9092\""), "{out}");
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
    assert!(out.contains("<redacted>"), "{out}");
    assert!(!out.contains("test-secret-0123456789abcdef"), "{out}");
}

#[test]
fn gen_key_prints_fresh_usable_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (code, a, _) = run(cmd(dir.path()).arg("gen-key"));
    assert_eq!(code, 0);
    let (_, b, _) = run(cmd(dir.path()).arg("gen-key"));
    assert_ne!(a, b);
    let key = a.trim();
    assert!(key.len() >= 32);
    let keys = format!("[{{id=\"k\",secret=\"{key}\"}}]");
    let (code, _, err) = run(cmd(dir.path())
        .env("TRACKEDGE_SIGNING__KEYS", keys)
        .arg("check-config"));
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let mut child = cmd(dir.path())
        .args(["serve", "--log-format", "json"])
        .env("TRACKEDGE_SERVER__LISTEN", "127.0.0.1:0")
        .env("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .env("TRACKEDGE_SINK__FILE_PATH", events.to_str().unwrap())
        .env("TRACKEDGE_SIGNING__KEYS", KEYS_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (public, admin) = bound_addrs(child.stderr.take().unwrap());
    let ring = Keyring::new(&[(KEY_ID.into(), SECRET.as_bytes().to_vec())]);

    let answered = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (ring, public, answered) = (ring.clone(), public.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            for i in 0.. {
                let r = format!("r-{w}-{i}");
                let mut c = claims(TokenType::Open, "sigterm");
                c.r = Some(r.clone());
                let uri = trackedge::router::token_url(
                    &format!("http://{public}"),
                    TokenType::Open,
                    &ring.sign(&mut c),
                );
                let req = http::Request::get(uri).body(Default::default()).unwrap();
                match client.request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        answered.lock().unwrap().insert(r);
                    }
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    // The listener is closed: the server is going away.
                    Err(_) => break,
                }
            }
        }));
    }
    // Let traffic flow, then ask the server to stop in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for w in workers {
        w.await.unwrap();
    }
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0), "clean exit after SIGTERM");

    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 100,
        "the load test made too few requests: {}",
        answered.len()
    );
    let recorded: HashSet<String> = read_events(&events)
        .iter()
        .map(|e| e["recipient"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<_> = answered.difference(&recorded).collect();
    assert!(
        lost.is_empty(),
        "{} answered requests have no event, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    println!(
        "answered {} requests; {} events on disk",
        answered.len(),
        recorded.len()
    );
}

#[test]
fn completions_and_the_manual_come_from_the_command_line_definition() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(cmd(dir.path()).args(["completions", shell]));
        assert_eq!(code, 0, "{shell}");
        assert!(
            out.contains("check-config") && out.contains("gen-key"),
            "{shell}: {out}"
        );
    }
    let (code, out, _) = run(cmd(dir.path()).arg("man"));
    assert_eq!(code, 0);
    assert!(out.contains(".TH trackedge 1"), "{out}");
    assert!(out.contains("sign"), "{out}");
}

/// Runs `check-config` in `dir` with `args` and `env`.
fn check_config(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut c = cmd(dir);
    c.arg("check-config").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

/// What every configuration error must not show: figment's own key
/// spelling and nested backticks.
fn in_our_words(err: &str) {
    assert!(
        !err.contains("default."),
        "figment's profile in the key: {err}"
    );
    assert!(
        !err.contains("``") && !err.contains("`\"") && !err.contains("\"`"),
        "{err}"
    );
}

#[test]
fn a_misspelt_key_in_a_file_is_named_with_its_file_line_and_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trackedge.toml");
    std::fs::write(
        &file,
        "# mine\n[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listn = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let abs = file.to_str().unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", abs], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(&format!(
            "{abs} line 4: unknown key `server.admin_listn`; did you mean `admin_listen`?"
        )),
        "{err}"
    );
    in_our_words(&err);
    // A relative path is shown as given, too.
    let (_, _, err) = check_config(dir.path(), &["--config", "trackedge.toml"], &[]);
    assert!(err.contains("trackedge.toml line 4: unknown key"), "{err}");
    assert!(!err.contains(abs), "{err}");
}

#[test]
fn a_misspelt_section_is_named_with_the_nearest_section() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[kafka]\ntopic = \"t\"\n\n[servr]\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("c.toml line 4: unknown section [servr]; did you mean [server]?"),
        "{err}"
    );
    in_our_words(&err);
}

#[test]
fn a_key_with_no_near_match_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check_config(dir.path(), &[], &[("TRACKEDGE_SINK__ZZZZ", "1")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("environment variable TRACKEDGE_SINK__ZZZZ=\"1\": unknown key `sink.zzzz`; the keys of [sink] are kind, file_path, queue_capacity"),
        "{err}"
    );
}

#[test]
fn an_environment_error_names_the_variable_and_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check_config(
        dir.path(),
        &[],
        &[("TRACKEDGE_SERVER__ADMIN_LISTN", "127.0.0.1:1")],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("environment variable TRACKEDGE_SERVER__ADMIN_LISTN=\"127.0.0.1:1\": unknown key `server.admin_listn`; did you mean `admin_listen`?"),
        "{err}"
    );
    in_our_words(&err);
    let (code, _, err) = check_config(dir.path(), &[], &[("TRACKEDGE_SERVER__LISTEN", "nowhere")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("environment variable TRACKEDGE_SERVER__LISTEN=\"nowhere\": `server.listen`: invalid socket address syntax: expected host:port"),
        "{err}"
    );
    in_our_words(&err);
}

#[test]
fn a_bad_socket_address_in_a_file_says_host_port_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nadmin_listen = \"9464\"\n",
    )
    .unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("c.toml line 2: `server.admin_listen` = \"9464\": invalid socket address syntax: expected host:port, e.g. 127.0.0.1:8080"),
        "{err}"
    );
    in_our_words(&err);
}

#[test]
fn bad_values_name_the_choices_and_type_and_toml_errors_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[sink]\nkind = \"kafak\"\n").unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("c.toml line 2: `sink.kind` = \"kafak\": \"kafak\" is not one of file, kafka, stdout; did you mean \"kafka\"?"),
        "{err}"
    );
    std::fs::write(&file, "[server]\nmax_connections = \"many\"\n").unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("c.toml line 2: `server.max_connections` = \"many\": expected"),
        "{err}"
    );
    in_our_words(&err);
    std::fs::write(&file, "[server\nlisten = 1\n").unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("config file c.toml: not valid TOML") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn validation_errors_say_where_the_value_was_set_and_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nlisten = \"127.0.0.1:7000\"\nadmin_listen = \"127.0.0.1:7000\"\n",
    )
    .unwrap();
    let (code, _, err) = check_config(dir.path(), &["--config", "c.toml"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("server.admin_listen") && err.contains("(set in c.toml line 3)"),
        "{err}"
    );
    let (code, _, err) = check_config(
        dir.path(),
        &[],
        &[(
            "TRACKEDGE_SIGNING__KEYS",
            "[{id=\"a\",secret=\"short-and-secret\"}]",
        )],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("TRACKEDGE_SIGNING__KEYS=\"<redacted>\""),
        "{err}"
    );
    assert!(!err.contains("short-and-secret"), "{err}");
}

#[test]
fn a_variable_with_one_underscore_is_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check_config(
        dir.path(),
        &[],
        &[
            ("TRACKEDGE_SERVER_LISTEN", "127.0.0.1:8081"),
            ("TRACKEDGE_PORT", "tcp://10.0.0.1:80"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("TRACKEDGE_SERVER_LISTEN is not configuration and is ignored: did you mean TRACKEDGE_SERVER__LISTEN?"),
        "{err}"
    );
    assert!(
        err.contains("TRACKEDGE_PORT"),
        "Kubernetes' variables are named too: {err}"
    );
}

#[test]
fn check_config_says_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nlisten = \"127.0.0.1:8081\"\n\n[kafka]\ntopic = \"mine\"\n",
    )
    .unwrap();
    // As in the container image: the environment sets the listener too.
    let (code, out, err) = check_config(
        dir.path(),
        &["--config", "c.toml"],
        &[
            ("TRACKEDGE_SERVER__LISTEN", "0.0.0.0:8080"),
            ("TRACKEDGE_SIGNING__KEYS", KEYS_ENV),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("listen = \"0.0.0.0:8080\"  # from TRACKEDGE_SERVER__LISTEN\n"),
        "{out}"
    );
    assert!(
        out.contains("topic = \"mine\"  # from c.toml line 5\n"),
        "{out}"
    );
    assert!(
        out.contains("admin_listen = \"127.0.0.1:9464\"\n"),
        "defaults unmarked: {out}"
    );
    assert!(
        out.contains("keys = [") || out.contains("[[signing.keys]]"),
        "{out}"
    );
    assert!(out.contains("# from TRACKEDGE_SIGNING__KEYS"), "{out}");
    assert!(
        err.contains("TRACKEDGE_SERVER__LISTEN=\"0.0.0.0:8080\" overrides server.listen set in c.toml line 2: the environment wins over the file"),
        "{err}"
    );
}

#[test]
fn check_config_shows_an_unset_admin_token_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = check_config(dir.path(), &[], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("admin_token = \"\"\n"), "{out}");
    let token = "0123456789abcdef0123456789abcdef-admin";
    let (code, out, _) = check_config(dir.path(), &[], &[("TRACKEDGE_SERVER__ADMIN_TOKEN", token)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("admin_token = \"<redacted>\"  # from TRACKEDGE_SERVER__ADMIN_TOKEN"),
        "{out}"
    );
    assert!(!out.contains(token), "{out}");
}

#[test]
fn sign_click_without_url_names_url() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cmd(dir.path()).args(["sign", "click", "--campaign", "c"]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("sign click needs --url"), "{err}");
}

#[test]
fn help_says_where_the_config_is_read_and_options_go_where_they_work() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check-config", "--help"],
    ] {
        let (code, out, _) = run(cmd(dir.path()).args(&args));
        assert_eq!(code, 0);
        assert!(out.contains("./config/trackedge.toml"), "{args:?}: {out}");
        assert!(out.contains("working directory"), "{args:?}: {out}");
    }
    let (_, out, _) = run(cmd(dir.path()).args(["serve", "--help"]));
    assert!(
        out.contains("--config") && out.contains("--log-format"),
        "{out}"
    );
    for sub in [&["gen-key"][..], &["man"], &["completions", "bash"]] {
        let (code, out, err) = run(cmd(dir.path()).args(sub).args(["--config", "x.toml"]));
        assert_eq!(code, 64, "{sub:?} takes no --config: {out}{err}");
        let (_, out, _) = run(cmd(dir.path()).args(sub).arg("--help"));
        assert!(
            !out.contains("--config") && !out.contains("--log-format"),
            "{sub:?}: {out}"
        );
    }
}

#[test]
fn the_manual_has_the_sections_a_manual_has() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(cmd(dir.path()).arg("man"));
    assert_eq!(code, 0);
    for section in [
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH COMMANDS",
    ] {
        assert!(out.contains(section), "{section} missing:\n{out}");
    }
    assert!(
        out.contains("TRACKEDGE_") && out.contains("RUST_LOG"),
        "{out}"
    );
    assert!(
        !out.contains("CI\\fR") && !out.contains("\\fBCI"),
        "CI is not the user's: {out}"
    );
    assert!(out.contains("\\fB64\\fR") && out.contains("\\fB1\\fR") && out.contains("\\fB0\\fR"));
    assert!(
        !out.contains("trackedge-sign(1)") && !out.contains("trackedge\\-sign(1)"),
        "{out}"
    );
    assert!(
        out.contains("trackedge sign"),
        "the commands are described here: {out}"
    );
}
