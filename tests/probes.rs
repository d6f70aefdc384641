//! The admin probes as an orchestrator sees them: `/healthz` and `/readyz` answer without the
//! admin token, `/readyz` is 503 while a SIGTERM drains in-flight requests (while `/healthz`
//! stays 200), and `warden healthcheck` turns them into an exit code for a container HEALTHCHECK.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use support::fixture::{dead_addr, standard_policy, Standard};
use support::pki::TestPki;
use support::upstream;
use support::warden::{admin_request, config_yaml, start_warden, write_config, WardenProcess};

/// `warden healthcheck --addr ADDR [args]`: its exit code and what it printed. Run off the
/// runtime, which must keep serving the in-process warden meanwhile.
async fn healthcheck(addr: SocketAddr, args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_healthcheck(addr, &args))
        .await
        .expect("healthcheck thread")
}

fn run_healthcheck(addr: SocketAddr, args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "healthcheck",
            "--addr",
            &addr.to_string(),
            "--timeout",
            "2s",
        ])
        .args(args)
        .output()
        .expect("run warden healthcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn probes_need_no_token_and_everything_else_does() {
    let pki = TestPki::new();
    let token_file = pki.path().join("admin-token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let yaml = config_yaml(&pki, "upstreams: {}\n").replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\n",
            token_file.display()
        ),
    );
    let w = start_warden(&pki, &yaml).await;
    assert_eq!(
        admin_request(w.admin, "GET", "/healthz", None).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        admin_request(w.admin, "GET", "/readyz", None).await,
        (200, "ready\n".into())
    );
    assert_eq!(admin_request(w.admin, "HEAD", "/readyz", None).await.0, 200);
    for (method, path) in [("GET", "/metrics"), ("GET", "/agents"), ("POST", "/reload")] {
        assert_eq!(
            admin_request(w.admin, method, path, None).await.0,
            401,
            "{path}"
        );
    }
    // A probe path with another method is no probe: it needs the token like the rest.
    assert_eq!(admin_request(w.admin, "POST", "/readyz", None).await.0, 401);
    let (code, out) = healthcheck(w.admin, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "ready\n");
}

#[tokio::test]
async fn readyz_is_503_while_draining() {
    let s = Standard::start().await;
    let admin = s.warden.admin;
    let client = s.client("inventory-bot");
    assert_eq!(admin_request(admin, "GET", "/readyz", None).await.0, 200);
    // A response that streams for about three seconds keeps the drain going.
    let streaming = client.get_streaming("/inventory/sse").await;
    assert_eq!(streaming.status(), 200);
    let shutdown = tokio::spawn(s.warden.running.shutdown());

    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = admin_request(admin, "GET", "/readyz", None).await;
        if status == 503 {
            assert_eq!(body, "not ready: draining\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} after SIGTERM-like shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !shutdown.is_finished(),
        "the drain should still be waiting for the stream"
    );
    assert_eq!(
        admin_request(admin, "GET", "/healthz", None).await.0,
        200,
        "alive while draining"
    );
    let (code, out) = healthcheck(admin, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("503"), "{out}");
    assert_eq!(healthcheck(admin, &["--path", "/healthz"]).await.0, 0);

    // The stream finishes whole; then the drain ends and the admin listener closes.
    let body = streaming.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), "data: event 0\n\n".len() * 3);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("drain ended")
        .unwrap();
    assert_eq!(admin_request(admin, "GET", "/healthz", None).await.0, 0);
    let (code, out) = healthcheck(admin, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot connect"), "{out}");
}

#[tokio::test]
async fn the_binary_reports_draining_after_sigterm() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let yaml = config_yaml(
        &pki,
        &standard_policy(&up.url(), &up.url(), dead_addr(), ""),
    );
    let mut w = WardenProcess::spawn(&write_config(&pki, "warden.yaml", &yaml));
    let admin = w.admin.expect("admin address");
    assert_eq!(healthcheck(admin, &[]).await.0, 0);
    let client = support::client::AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    let streaming = client.get_streaming("/inventory/sse").await;
    w.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    while admin_request(admin, "GET", "/readyz", None).await.0 != 503 {
        assert!(Instant::now() < deadline, "/readyz not 503 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = streaming.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), "data: event 0\n\n".len() * 3);
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
}
