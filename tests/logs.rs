//! Process logs of the real binary: `--log-format json` (or `telemetry.log_format: json`) writes
//! one JSON object a line on stderr, request events carry `request_id`, `agent`, `decision` and
//! `reason` at the top level; `WARDEN_LOG`, else `RUST_LOG`, sets the level; no token is logged.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::client::AgentClient;
use support::fixture::{dead_addr, standard_policy};
use support::pki::{agent_id, TestPki};
use support::upstream;
use support::warden::{config_yaml, write_config, WardenProcess};

const SECRET: &str = "eyJzZWNyZXQtdG9rZW4tdmFsdWU";

fn config(pki: &TestPki, upstream: &str, telemetry: &str) -> std::path::PathBuf {
    let yaml = config_yaml(
        pki,
        &format!(
            "{telemetry}{}",
            standard_policy(upstream, upstream, dead_addr(), "")
        ),
    );
    write_config(pki, "warden.yaml", &yaml)
}

/// One allowed and one denied request (with a bearer value that must never be logged), then
/// SIGTERM; every stderr line once the process has exited.
async fn run(pki: &TestPki, w: WardenProcess) -> Vec<String> {
    let mut w = w;
    let c = AgentClient::new(pki, &pki.agent("inventory-bot"), w.addr);
    let auth = format!("Bearer {SECRET}");
    let headers = [("authorization", auth.as_str())];
    assert_eq!(
        c.request("GET", "/inventory/items", &headers, "")
            .await
            .status,
        200
    );
    assert_eq!(
        c.request("DELETE", "/inventory/items/1", &headers, "")
            .await
            .status,
        403
    );
    w.signal("TERM");
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
    // The reader thread has seen end of file once the process is gone; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let lines = w.stderr_lines.lock().unwrap().clone();
        if lines.iter().any(|l| l.contains("stopped")) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request_events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "warden::request")
        .collect()
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request_fields() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let path = config(&pki, &up.url(), "");
    let w = WardenProcess::spawn_env(
        &path,
        &["--log-format", "json"],
        &[("WARDEN_LOG", Some("warden=info,warden::request=debug"))],
    );
    let lines = run(&pki, w).await;
    assert!(lines.len() >= 4, "{lines:#?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.is_object() && v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(!line.contains(SECRET), "a token was logged: {line}");
    }
    let events = request_events(&lines);
    assert_eq!(events.len(), 2, "{lines:#?}");
    let by = |decision: &str| {
        events
            .iter()
            .find(|e| e["decision"] == decision)
            .unwrap_or_else(|| panic!("no {decision} event: {events:#?}"))
    };
    let allow = by("allow");
    assert_eq!(allow["agent"], agent_id("inventory-bot").as_str());
    assert_eq!(allow["reason"], "ok");
    assert_eq!(allow["status"], 200);
    assert!(
        allow["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{allow}"
    );
    let deny = by("deny");
    assert_eq!(deny["reason"], "no_matching_rule");
    assert_ne!(deny["request_id"], allow["request_id"]);
}

#[tokio::test]
async fn the_config_picks_json_and_rust_log_sets_the_level() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let path = config(&pki, &up.url(), "telemetry:\n  log_format: json\n");
    let w = WardenProcess::spawn_env(&path, &[], &[("RUST_LOG", Some("warden=debug"))]);
    let lines = run(&pki, w).await;
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{lines:#?}"
    );
    assert_eq!(
        request_events(&lines).len(),
        2,
        "RUST_LOG=warden=debug: {lines:#?}"
    );

    // WARDEN_LOG wins over RUST_LOG; and `--log-format text` over the config.
    let w = WardenProcess::spawn_env(
        &path,
        &["--log-format", "text"],
        &[
            ("RUST_LOG", Some("warden=debug")),
            ("WARDEN_LOG", Some("warden=info")),
        ],
    );
    let lines = run(&pki, w).await;
    assert!(
        lines.iter().any(|l| l.contains("warden serving")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("warden::request")),
        "WARDEN_LOG=warden=info must hide debug request lines: {lines:#?}"
    );
}
