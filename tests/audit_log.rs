//! The audit log under load: one record for every decision and every connection's end, none
//! lost, the chain intact.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::fixture::Standard;
use warden::telemetry::audit::verify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_requests_from_fifty_clients_make_five_thousand_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = Standard::start_with(&format!("telemetry:\n  audit_log: {}\n", log.display())).await;
    let cert = s.agent("inventory-bot");
    let mut tasks = Vec::new();
    for client in 0..50 {
        let c = support::client::AgentClient::new(&s.pki, &cert, s.warden.addr);
        tasks.push(tokio::spawn(async move {
            let mut session = c.session().await;
            for i in 0..100 {
                // A mix of decisions: allowed, denied, refused by segmentation.
                let path = match i % 10 {
                    0 => "/inventory/admin/x".to_string(),
                    1 => "/payroll/x".to_string(),
                    _ => format!("/inventory/items/{client}-{i}"),
                };
                let req = Request::get(path)
                    .header("host", "localhost")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let resp = session.send_request(req).await.expect("response");
                let _ = resp.into_body().collect().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each of the 50 connections also writes its end (`kind: connection`) once warden sees it
    // closed: wait for those, so that nothing is written while the totals are compared.
    let ended = support::wait::until(std::time::Duration::from_secs(10), || async {
        s.warden.flush_audit().await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches(r#""kind":"connection""#).count() == 50
    })
    .await;
    assert!(ended, "not every connection's end was recorded");
    let report = verify(&log).expect("chain intact");
    let text = std::fs::read_to_string(&log).unwrap();
    let requests: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "request")
        .collect();
    assert_eq!(requests.len(), 5000, "{report:?}");
    let denied = requests.iter().filter(|v| v["reason"] == "denied").count();
    let segmentation = requests
        .iter()
        .filter(|v| v["reason"] == "segmentation")
        .count();
    assert_eq!((denied, segmentation), (500, 500));
    let first = requests.iter().find(|v| v["decision"] == "allow").unwrap();
    assert_eq!(first["agent"], support::pki::agent_id("inventory-bot"));
    assert_eq!(first["roles"], serde_json::json!(["inventory-agent"]));
    assert_eq!(first["upstream"], "inventory");
    assert_eq!(first["rule"], "inventory-agent/allow[0]");
    assert_eq!(first["status"], 200);
    let m = s.warden.metrics();
    assert!(m.contains("warden_audit_records_total 5050"), "{m}");
    let ends: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "connection")
        .collect();
    assert!(ends
        .iter()
        .all(|v| v["close_reason"] == "closed" && v["agent"] == first["agent"]));
}

#[tokio::test]
async fn a_refused_handshake_is_a_connection_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = Standard::start_with(&format!("telemetry:\n  audit_log: {}\n", log.display())).await;
    let anonymous = support::client::AgentClient::with_config(
        support::client::client_config(&s.pki, None, &[b"http/1.1"]),
        s.warden.addr,
    );
    assert!(anonymous.handshake_refused().await);
    assert_eq!(
        s.client("inventory-bot")
            .get("/inventory/items")
            .await
            .status,
        200
    );
    // The handshake record is written by the connection task: wait until it has landed.
    let landed = support::wait::until(std::time::Duration::from_secs(5), || async {
        s.warden.flush_audit().await;
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(r#""kind":"connection""#))
    })
    .await;
    assert!(landed, "no connection record");
    verify(&log).expect("chain intact");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let conn = records
        .iter()
        .find(|r| r["kind"] == "connection")
        .expect("a connection record");
    assert_eq!(conn["reason"], "tls_no_client_cert");
    assert_eq!(conn["decision"], "deny");
    assert_eq!(conn["source_ip"], "127.0.0.1");
    assert!(conn["status"].is_null());
    assert_eq!(records.iter().filter(|r| r["kind"] == "request").count(), 1);
}
