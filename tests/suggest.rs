//! Least privilege learned from traffic, end to end: a shadow-mode warden on 127.0.0.1 sees a
//! traffic mix from a few agents; `warden suggest` turns its audit log into a config; `warden
//! check` accepts it; enforced, every audited request is allowed when replayed through `explain`
//! (and live through a warden serving it), and an upstream, method, path shape or tool the agent
//! never used is denied.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::client::AgentClient;
use support::pki::{agent_id, TestPki};
use support::upstream;
use support::warden::{config_yaml, start_warden, write_config};
use warden::explain::{explain, ExplainRequest};
use warden::suggest::AuditLine;

fn policy(inventory: &str, payroll: &str, crm: &str, audit: &Path) -> String {
    format!(
        r#"mode: shadow
upstreams:
  inventory: {{ url: "{inventory}" }}
  payroll: {{ url: "{payroll}" }}
  crm: {{ url: "{crm}" }}
routes:
  - {{ path_prefix: /inventory, upstream: inventory }}
  - {{ path_prefix: /payroll, upstream: payroll }}
  - {{ path_prefix: /crm, upstream: crm }}
roles:
  # The broad starting point shadow mode is run with.
  inventory-agent:
    upstreams: [inventory, crm]
    allow:
      - upstream: inventory
        paths: ["/inventory/**"]
      - upstream: crm
        paths: ["/crm/**"]
  payroll-agent:
    upstreams: [payroll]
    allow:
      - paths: ["/payroll/**"]
agents:
  - id: spiffe://example.org/agent/inventory-bot
    roles: [inventory-agent]
    labels: {{ team: supply }}
  - id: spiffe://example.org/agent/payroll-bot
    roles: [payroll-agent]
  - id: spiffe://example.org/agent/support/*
    roles: [inventory-agent]
telemetry:
  audit_log: {audit}
anomaly:
  enabled: false
"#,
        audit = audit.display()
    )
}

const UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

/// (agent, method, path): what the agents do during the shadow period.
fn traffic() -> Vec<(&'static str, &'static str, String)> {
    let mut t = vec![
        ("inventory-bot", "GET", "/inventory/items".to_string()),
        ("inventory-bot", "HEAD", "/inventory/items".to_string()),
        ("inventory-bot", "POST", "/inventory/orders".to_string()),
        ("inventory-bot", "GET", format!("/inventory/items/{UUID}")),
        (
            "inventory-bot",
            "GET",
            "/inventory/items/3f2b1c9d0a".to_string(),
        ),
        // Outside the running policy: shadow mode lets it through as shadow_deny, so it is
        // something the agent did and is learned.
        ("inventory-bot", "GET", "/payroll/holidays".to_string()),
        // Refused even in shadow mode (no route, a path that cannot be judged): not learned.
        ("inventory-bot", "GET", "/nowhere".to_string()),
        ("inventory-bot", "GET", "/inventory/a%2Fb".to_string()),
        ("payroll-bot", "GET", "/payroll/salaries".to_string()),
        ("support/bot-1", "GET", "/inventory/items/7".to_string()),
        (
            "support/bot-2",
            "PUT",
            "/inventory/items/8/notes".to_string(),
        ),
    ];
    for i in 0..6 {
        t.push((
            "inventory-bot",
            "GET",
            format!("/inventory/items/{}", 100 + i),
        ));
    }
    for name in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
        "mallory",
    ] {
        t.push(("payroll-bot", "GET", format!("/payroll/employees/{name}")));
    }
    t
}

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

async fn explain_as(
    snap: &warden::snapshot::Snapshot,
    agent: &str,
    method: &str,
    path: &str,
) -> warden::explain::Explanation {
    explain(
        snap,
        &ExplainRequest {
            agent: agent.to_string(),
            method: method.to_string(),
            url: path.to_string(),
            headers: vec!["host: localhost".into()],
            source_ip: "127.0.0.1".parse().unwrap(),
            unix_ms: warden::clock::Clock::system().now_unix_ms(),
            ..ExplainRequest::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn shadow_traffic_becomes_a_policy_that_allows_exactly_it() {
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let crm = upstream::start().await;
    let audit = pki.path().join("audit.jsonl");
    let yaml = config_yaml(
        &pki,
        &policy(&inventory.url(), &payroll.url(), &crm.url(), &audit),
    );
    let w = start_warden(&pki, &yaml).await;
    for (agent, method, path) in traffic() {
        let client = AgentClient::new(&pki, &pki.agent(agent), w.addr);
        let reply = client.request(method, &path, &[], "").await;
        assert!(
            reply.status == 200 || path == "/nowhere" || path.contains("%2F"),
            "{agent} {method} {path}: {} (shadow mode lets the policy's refusals through)",
            reply.status
        );
    }
    w.flush_audit().await;
    let config = w.config_path.clone();
    w.running.shutdown().await;

    // The audit log holds what the agents did; a few refusals are not learned.
    let records: Vec<AuditLine> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decisions = |d: &str| {
        records
            .iter()
            .filter(|r| r.decision.as_deref() == Some(d))
            .count()
    };
    assert_eq!(
        decisions("shadow_deny"),
        1,
        "GET /payroll/holidays by inventory-bot"
    );
    assert_eq!(decisions("deny"), 2, "no route, and an encoded slash");

    // suggest -> a complete config that check accepts.
    let out = warden(&["suggest", "--config", s(&config), "--audit", s(&audit)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let suggested = text(&out.stdout);
    for expected in [
        "  learned-inventory-bot:\n    upstreams: [inventory, payroll]\n    allow:\n",
        "        methods: [GET]\n        paths: [\"/inventory/items\", \"/inventory/items/*\"]\n",
        "        methods: [POST]\n        paths: [\"/inventory/orders\"]\n",
        "      - upstream: payroll\n        methods: [GET]\n        paths: [\"/payroll/holidays\"]\n",
        "        methods: [GET]\n        paths: [\"/payroll/employees/*\", \"/payroll/salaries\"]\n",
        "  learned-support-any:\n",
        "        methods: [PUT]\n        paths: [\"/inventory/items/*/notes\"]\n",
        "    roles: [learned-inventory-bot]\n    labels: { team: supply }\n",
        "# The broad starting point",
    ] {
        if expected.starts_with("# The broad") {
            assert!(!suggested.contains(expected), "the replaced role is gone:\n{suggested}");
        } else {
            assert!(suggested.contains(expected), "missing `{expected}` in\n{suggested}");
        }
    }
    assert!(
        stderr.contains("2 refused request(s) (decision deny) are not learned"),
        "{stderr}"
    );
    let suggested_path = write_config(&pki, "suggested.yaml", &suggested);
    let check = warden(&["check", "--config", s(&suggested_path)]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));

    let diff = warden(&[
        "suggest",
        "--config",
        s(&config),
        "--audit",
        s(&audit),
        "--diff",
    ]);
    let diff = text(&diff.stdout);
    assert!(
        diff.starts_with(&format!(
            "--- {}\n+++ {} (suggested)\n@@ ",
            config.display(),
            config.display()
        )),
        "{diff}"
    );
    assert!(
        diff.contains("-    roles: [inventory-agent]\n+    roles: [learned-inventory-bot]\n"),
        "{diff}"
    );
    assert!(diff.contains("-  inventory-agent:\n"), "{diff}");

    // Enforced, every audited request the agents made is allowed...
    let enforced = write_config(
        &pki,
        "enforced.yaml",
        &suggested.replace("mode: shadow", "mode: enforce"),
    );
    let snap = warden::snapshot::build_snapshot(&enforced, None, 0).unwrap();
    let mut replayed = 0;
    for r in records
        .iter()
        .filter(|r| r.decision.as_deref() != Some("deny"))
    {
        let (agent, method, path) = (
            r.agent.as_deref().unwrap(),
            r.method.as_deref().unwrap(),
            r.path.as_deref().unwrap(),
        );
        let ex = explain_as(&snap, agent, method, path).await;
        assert!(
            ex.allowed() && !ex.shadow,
            "{agent} {method} {path}:\n{}",
            ex.render()
        );
        replayed += 1;
    }
    assert_eq!(replayed, traffic().len() - 2);

    // ... and what no agent did is denied: an upstream, a method, a path shape it never used.
    let inv = agent_id("inventory-bot");
    for (agent, method, path, reason) in [
        (inv.as_str(), "GET", "/crm/accounts", "segmentation"),
        (
            inv.as_str(),
            "DELETE",
            "/inventory/items/5",
            "no_matching_rule",
        ),
        (
            inv.as_str(),
            "POST",
            "/inventory/items/5",
            "no_matching_rule",
        ),
        (
            inv.as_str(),
            "GET",
            "/inventory/items/5/secrets",
            "no_matching_rule",
        ),
        (inv.as_str(), "GET", "/inventory/admin", "no_matching_rule"),
        (inv.as_str(), "GET", "/payroll/salaries", "no_matching_rule"),
        (
            "spiffe://example.org/agent/payroll-bot",
            "GET",
            "/payroll/employees/alice/bank",
            "no_matching_rule",
        ),
        (
            "spiffe://example.org/agent/payroll-bot",
            "GET",
            "/inventory/items",
            "segmentation",
        ),
        (
            "spiffe://example.org/agent/support/bot-3",
            "PUT",
            "/inventory/items/9",
            "no_matching_rule",
        ),
    ] {
        let ex = explain_as(&snap, agent, method, path).await;
        assert!(
            !ex.allowed(),
            "{agent} {method} {path} must be denied:\n{}",
            ex.render()
        );
        assert_eq!(
            ex.reason_str(),
            reason,
            "{agent} {method} {path}:\n{}",
            ex.render()
        );
    }
    // A new member of the support fleet may do what its peers did.
    assert!(explain_as(
        &snap,
        "spiffe://example.org/agent/support/bot-3",
        "GET",
        "/inventory/items/9"
    )
    .await
    .allowed());

    // Served for real: what was seen passes and reaches the upstream; what was not is refused.
    let enforced_yaml = std::fs::read_to_string(&enforced).unwrap();
    let w = start_warden(&pki, &enforced_yaml).await;
    let bot = AgentClient::new(&pki, &pki.agent("inventory-bot"), w.addr);
    let reply = bot.get("/inventory/items/42").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        inventory.recorder.last().unwrap().target,
        "/inventory/items/42"
    );
    let seen_before = inventory.recorder.count() + crm.recorder.count();
    for (method, path, reason) in [
        ("DELETE", "/inventory/items/42", "no_matching_rule"),
        ("GET", "/inventory/items/42/secrets", "no_matching_rule"),
        ("GET", "/crm/accounts", "segmentation"),
    ] {
        let reply = bot.request(method, path, &[], "").await;
        assert_eq!(
            (reply.status, reply.error()),
            (403, reason.to_string()),
            "{method} {path}"
        );
    }
    assert_eq!(
        inventory.recorder.count() + crm.recorder.count(),
        seen_before,
        "refused requests never reach an upstream"
    );
    w.running.shutdown().await;
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
