//! `explain` and `serve` are one decision function: for a table of requests, the decision and
//! reason `explain` prints are exactly those `serve` returns.

mod support;

use std::process::Command;

use support::client::AgentClient;
use support::fixture::Standard;
use support::pki::agent_id;
use warden::explain::{explain, ExplainRequest};

struct Case {
    agent: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const fn case(agent: &'static str, method: &'static str, path: &'static str) -> Case {
    Case {
        agent,
        method,
        path,
        headers: &[],
    }
}

const RESTOCK: &[(&str, &str)] = &[("x-purpose", "restock")];
const OTHER_PURPOSE: &[(&str, &str)] = &[("x-purpose", "other")];
const PAYROLL_HOST: &[(&str, &str)] = &[("host", "payroll.internal")];

fn table() -> Vec<Case> {
    vec![
        case("inventory-bot", "GET", "/inventory/items"),
        case("inventory-bot", "HEAD", "/inventory/items"),
        case("inventory-bot", "GET", "/inventory/items/1/price"),
        case("inventory-bot", "GET", "/inventory"),
        case("inventory-bot", "GET", "/inventory/"),
        case("inventory-bot", "GET", "/inventory/admin"),
        case("inventory-bot", "GET", "/inventory/admin/x"),
        case("inventory-bot", "GET", "/inventory/ADMIN/x"),
        case("inventory-bot", "GET", "/Inventory/items"),
        case("inventory-bot", "POST", "/inventory/orders"),
        Case {
            agent: "inventory-bot",
            method: "POST",
            path: "/inventory/orders",
            headers: RESTOCK,
        },
        Case {
            agent: "inventory-bot",
            method: "POST",
            path: "/inventory/orders",
            headers: OTHER_PURPOSE,
        },
        case("inventory-bot", "PUT", "/inventory/items/5"),
        case("inventory-bot", "PUT", "/inventory/items/5/x"),
        case("inventory-bot", "DELETE", "/inventory/items/5"),
        case("inventory-bot", "GET", "/payroll/x"),
        case("inventory-bot", "GET", "/payroll"),
        case("inventory-bot", "GET", "/x"),
        case("inventory-bot", "GET", "/inventory/%2e%2e/payroll/x"),
        case("inventory-bot", "GET", "/inventory/a%2Fb"),
        case("inventory-bot", "GET", "/inventory/..;/x"),
        case("inventory-bot", "GET", "/inventory/%zz"),
        case("inventory-bot", "GET", "/inventory/./items"),
        case("inventory-bot", "GET", "/inventory//items"),
        case("inventory-bot", "GET", "/inventory/items/../../payroll/x"),
        case("inventory-bot", "GET", "/inventory/../.."),
        case("inventory-bot", "GET", "/inventory/%69tems"),
        case("staging-bot", "PUT", "/inventory/items/5"),
        case("staging-bot", "GET", "/inventory/items"),
        case("payroll-bot", "GET", "/payroll/x"),
        Case {
            agent: "payroll-bot",
            method: "GET",
            path: "/",
            headers: PAYROLL_HOST,
        },
        Case {
            agent: "payroll-bot",
            method: "GET",
            path: "/inventory/items",
            headers: PAYROLL_HOST,
        },
        case("payroll-bot", "POST", "/payroll/x"),
        case("payroll-bot", "GET", "/inventory/items"),
        case("support/bob", "GET", "/payroll/x"),
        case("support/bob", "GET", "/payroll/x/y"),
        case("stranger", "GET", "/inventory/items"),
    ]
}

#[tokio::test]
async fn explain_returns_what_serve_returns() {
    let s = Standard::start().await;
    let snap = s.warden.running.runtime.config.snapshot();
    let mut clients = std::collections::HashMap::new();
    let mut reasons = std::collections::BTreeSet::new();
    let table = table();
    assert!(table.len() >= 30);
    for c in &table {
        let client = clients
            .entry(c.agent)
            .or_insert_with(|| AgentClient::new(&s.pki, &s.pki.agent(c.agent), s.warden.addr))
            .clone();
        let served = client.request(c.method, c.path, c.headers, "").await;
        let served_reason = if served.status < 400 {
            "ok".to_string()
        } else {
            served.error()
        };
        let url = match c.headers.iter().find(|(k, _)| *k == "host") {
            Some((_, h)) => format!("https://{h}{}", c.path),
            None => c.path.to_string(),
        };
        let req = ExplainRequest {
            agent: agent_id(c.agent),
            method: c.method.into(),
            url,
            headers: c
                .headers
                .iter()
                .filter(|(k, _)| *k != "host")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect(),
            source_ip: "127.0.0.1".parse().unwrap(),
            unix_ms: warden::clock::Clock::system().now_unix_ms(),
            cert_thumbprint: None,
        };
        let ex = explain(&snap, &req).await.expect("explainable");
        assert_eq!(
            ex.reason.as_str(),
            served_reason,
            "{} {} {}: explain said\n{}",
            c.agent,
            c.method,
            c.path,
            ex.render()
        );
        assert_eq!(
            ex.reason.status().as_u16(),
            served.status,
            "{} {}",
            c.method,
            c.path
        );
        reasons.insert(served_reason);
    }
    for r in [
        "ok",
        "denied",
        "no_matching_rule",
        "segmentation",
        "no_route",
        "bad_request",
        "unknown_agent",
    ] {
        assert!(reasons.contains(r), "the table never produced {r}");
    }
}

#[test]
fn explain_command_prints_decision_layer_rule_and_exit_code() {
    let pki = support::pki::TestPki::new();
    let yaml = support::warden::config_yaml(
        &pki,
        &support::fixture::standard_policy(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            support::fixture::dead_addr(),
            "",
        ),
    );
    let path = support::warden::write_config(&pki, "warden.yaml", &yaml);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("explain")
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let id = agent_id("inventory-bot");
    let out = run(&[
        "--agent",
        &id,
        "--method",
        "GET",
        "--url",
        "https://inventory.internal/inventory/items",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("ALLOW"), "{text}");
    assert!(text.contains("inventory-agent/allow[0]"), "{text}");

    let out = run(&[
        "--agent",
        &id,
        "--method",
        "GET",
        "--url",
        "/inventory/admin/x",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("DENY denied (403)"), "{text}");
    assert!(text.contains("inventory-agent/deny[0]"), "{text}");

    let out = run(&[
        "--agent",
        &id,
        "--method",
        "POST",
        "--url",
        "/inventory/orders",
        "--header",
        "x-purpose: restock",
        "--source-ip",
        "10.1.1.1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("no_matching_rule") && text.contains("source address outside source_cidrs"),
        "{text}"
    );

    let out = run(&[
        "--agent",
        &id,
        "--method",
        "GET",
        "--url",
        "/x",
        "--time",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
