//! The real binary: SIGHUP and file changes reload, SIGTERM drains then exits 0, `check` reports.

mod support;

use std::process::Command;
use std::time::Duration;

use http_body_util::BodyExt;
use support::client::AgentClient;
use support::fixture::{dead_addr, standard_policy};
use support::pki::TestPki;
use support::upstream;
use support::warden::{config_yaml, write_config, WardenProcess};

fn policies(pki: &TestPki, inventory: &str) -> (String, String) {
    let p = standard_policy(inventory, inventory, dead_addr(), "");
    let open = config_yaml(pki, &p);
    let closed = config_yaml(
        pki,
        &p.replace(
            "paths: [\"/inventory/**\"]",
            "paths: [\"/inventory/public/**\"]",
        ),
    );
    (open, closed)
}

async fn wait_for_status(c: &AgentClient, path: &str, want: u16) -> bool {
    support::wait::until(Duration::from_secs(10), || async {
        c.get(path).await.status == want
    })
    .await
}

#[tokio::test]
async fn a_file_change_reloads_the_binary() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (open, closed) = policies(&pki, &up.url());
    let path = write_config(&pki, "warden.yaml", &open);
    let w = WardenProcess::spawn(&path);
    let c = AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    assert_eq!(c.get("/inventory/items").await.status, 200);

    // A change of the file reloads by itself (written by rename, as editors do).
    let tmp = pki.path().join("warden.yaml.tmp");
    std::fs::write(&tmp, &closed).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(
        wait_for_status(&c, "/inventory/items", 403).await,
        "file change did not reload"
    );
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (open, closed) = policies(&pki, &up.url());
    let path = write_config(&pki, "warden.yaml", &open);
    let w = WardenProcess::spawn_with(&path, &["--no-watch"]);
    let c = AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    assert_eq!(c.get("/inventory/items").await.status, 200);
    std::fs::write(&path, &closed).unwrap();
    let unchanged = support::wait::holds_for(Duration::from_millis(500), || async {
        c.get("/inventory/items").await.status == 200
    })
    .await;
    assert!(unchanged, "reloaded without a signal");
    w.signal("HUP");
    assert!(
        wait_for_status(&c, "/inventory/items", 403).await,
        "SIGHUP did not reload"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let (open, _) = policies(&pki, &up.url());
    let path = write_config(&pki, "warden.yaml", &open);
    let mut w = WardenProcess::spawn(&path);
    let c = AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    let resp = c.get_streaming("/inventory/sse").await;
    assert_eq!(resp.status(), 200);
    w.signal("TERM");
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("stream completed during drain")
        .to_bytes();
    assert_eq!(body.len(), "data: event 0\n\n".len() * 3);
    let code = tokio::task::spawn_blocking(move || w.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[test]
fn check_accepts_a_good_config_and_locates_errors() {
    let pki = TestPki::new();
    let good = config_yaml(
        &pki,
        &standard_policy("http://127.0.0.1:9", "http://127.0.0.1:9", dead_addr(), ""),
    );
    let path = write_config(&pki, "good.yaml", &good);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = good.replace(
        "upstream: payroll\n  - path_prefix: /dead",
        "upstream: payrol\n  - path_prefix: /dead",
    );
    let path = write_config(&pki, "bad.yaml", &bad);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = bad
        .lines()
        .position(|l| l.trim_end().ends_with("upstream: payrol"))
        .unwrap()
        + 1;
    let want = format!("{}:{line}:", path.display());
    assert!(err.contains(&want), "{err}\nwanted {want}\n{bad}");
    assert!(err.contains("routes[2].upstream"), "{err}");
    assert!(err.contains("did you mean \"payroll\""), "{err}");
}
