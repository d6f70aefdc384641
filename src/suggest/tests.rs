//! `suggest` on a real config (with a development PKI) and hand-written audit records.

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    audit: PathBuf,
}

const POLICY: &str = r#"
identity:
  trust_domain: example.org
  token:
    audience: warden
    issuers: [{ name: agent-auth, keys: DIR/token-signing-pub.pem }]
upstreams:
  inventory: { url: "http://127.0.0.1:9" }
  payroll: { url: "http://127.0.0.1:9" }
  crm: { url: "http://127.0.0.1:9" }
routes:
  - { path_prefix: /inventory, upstream: inventory }
  - { path_prefix: /payroll, upstream: payroll }
  - { path_prefix: /, upstream: crm, protocol: mcp }
roles:
  # broad: everything on inventory
  inventory-agent:
    upstreams: [inventory]
    require_token: true
    allow:
      - methods: [GET, POST, DELETE]
        paths: ["/inventory/**"]
    deny:
      - paths: ["/inventory/admin/**"]
  payroll-agent:
    upstreams: [payroll]
    allow:
      - paths: ["/payroll/**"]
  unused:
    upstreams: [crm]
agents:
  - id: spiffe://example.org/agent/inventory-bot
    roles: [inventory-agent]
  - id: spiffe://example.org/agent/support/*
    roles: [payroll-agent]
  - id: spiffe://example.org/agent/idle
    roles: [payroll-agent]
"#;

fn fixture(records: &[serde_json::Value]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    crate::certs::commands::init(dir.path(), false, &mut std::io::sink()).unwrap();
    crate::certs::commands::token_keygen(dir.path(), false, &mut std::io::sink()).unwrap();
    let d = dir.path().display();
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ntls:\n  cert: {d}/server.pem\n  key: {d}/server-key.pem\n  client_ca: {d}/ca.pem\n{}",
            POLICY.replace("DIR", &d.to_string())
        ),
    )
    .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    Fixture { dir, config, audit }
}

fn rec(agent: &str, decision: &str, method: &str, path: &str, upstream: &str) -> serde_json::Value {
    serde_json::json!({
        "ts": "2026-11-02T10:00:00.000Z", "kind": "request", "request_id": "r",
        "agent": format!("spiffe://example.org/agent/{agent}"), "method": method,
        "host": "localhost", "path": path, "route": 0, "upstream": upstream,
        "decision": decision, "reason": if decision == "allow" { "ok" } else { "no_matching_rule" },
        "status": 200
    })
}

fn opts(f: &Fixture) -> Options {
    Options {
        config: f.config.clone(),
        audit: vec![f.audit.clone()],
        agent: None,
        since: None,
        now_unix_ms: 1_793_620_800_000,
    }
}

fn parsed(s: &Suggestion) -> ConfigFile {
    serde_saphyr::from_str(&s.text).unwrap()
}

#[test]
fn each_seen_entry_gets_the_smallest_role_and_the_rest_is_kept() {
    let mut records = vec![];
    for i in 0..4 {
        records.push(rec(
            "inventory-bot",
            "allow",
            "GET",
            &format!("/inventory/items/{}", 10 + i),
            "inventory",
        ));
    }
    records.push(rec(
        "inventory-bot",
        "allow",
        "GET",
        "/inventory/items",
        "inventory",
    ));
    records.push(rec(
        "inventory-bot",
        "deny",
        "DELETE",
        "/inventory/items/3",
        "inventory",
    ));
    let mut denied = rec(
        "inventory-bot",
        "shadow_deny",
        "GET",
        "/inventory/admin/users",
        "inventory",
    );
    denied["reason"] = "denied".into();
    records.push(denied);
    records.push(rec(
        "support/bot-1",
        "shadow_deny",
        "GET",
        "/payroll/salaries",
        "payroll",
    ));
    records.push(rec(
        "support/bot-2",
        "allow",
        "POST",
        "/payroll/runs",
        "payroll",
    ));
    records.push(rec("stranger", "allow", "GET", "/payroll/x", "payroll"));
    let f = fixture(&records);
    let s = suggest(&opts(&f)).unwrap();
    assert!(s.problems.is_empty(), "{:?}\n{}", s.problems, s.text);
    let cfg = parsed(&s);
    assert_eq!(cfg.agents[0].roles, ["learned-inventory-bot"]);
    assert_eq!(cfg.agents[1].roles, ["learned-support-any"]);
    assert_eq!(
        cfg.agents[2].roles,
        ["payroll-agent"],
        "an idle entry keeps its roles"
    );
    // inventory-agent is held by nobody now; payroll-agent still by the idle entry; unused was never held.
    let names: Vec<&String> = cfg.roles.keys().collect();
    assert_eq!(
        names,
        [
            "learned-inventory-bot",
            "learned-support-any",
            "payroll-agent",
            "unused"
        ]
    );
    let inv = &cfg.roles["learned-inventory-bot"];
    assert!(inv.require_token, "the second factor is kept");
    assert_eq!(inv.upstreams, ["inventory"]);
    let rules: Vec<(Vec<String>, Vec<String>)> = inv
        .allow
        .iter()
        .map(|r| (r.methods.clone(), r.paths.clone()))
        .collect();
    assert_eq!(
        rules,
        [(
            vec!["GET".to_string()],
            vec![
                "/inventory/admin/users".to_string(),
                "/inventory/items".to_string(),
                "/inventory/items/*".to_string()
            ]
        )],
        "the refused DELETE is not learned"
    );
    assert!(inv.deny.is_empty());
    let support = &cfg.roles["learned-support-any"];
    assert_eq!(support.allow.len(), 2, "union of both members");
    let notes = s.notes.join("\n");
    for expected in [
        "1 refused request(s) (decision deny) are not learned",
        "agents[2] spiffe://example.org/agent/idle: no request",
        "spiffe://example.org/agent/stranger",
        "deny rules and `when` conditions of [inventory-agent]",
        "a deny rule refused these in shadow mode and learned-inventory-bot allows them; review: GET /inventory/admin/users",
        "comments inside",
    ] {
        assert!(notes.contains(expected), "missing `{expected}` in\n{notes}");
    }
    assert!(s.text.contains("# learned by `warden suggest` from 6 request(s) of spiffe://example.org/agent/inventory-bot\n"), "{}", s.text);
    assert!(
        !s.text.contains("# broad: everything on inventory"),
        "the dropped role's comment goes with it"
    );
    let diff = s.diff(&f.config);
    assert!(
        diff.contains("-  inventory-agent:") && diff.contains("+  learned-inventory-bot:"),
        "{diff}"
    );
    assert!(
        diff.contains("-    roles: [inventory-agent]\n+    roles: [learned-inventory-bot]"),
        "{diff}"
    );
    drop(f.dir);
}

#[test]
fn one_agent_only_and_the_time_window() {
    let mut old = rec(
        "inventory-bot",
        "allow",
        "GET",
        "/inventory/old",
        "inventory",
    );
    old["ts"] = "2026-10-01T00:00:00.000Z".into();
    let f = fixture(&[
        old,
        rec(
            "inventory-bot",
            "allow",
            "GET",
            "/inventory/new",
            "inventory",
        ),
        rec("support/bot-1", "allow", "GET", "/payroll/a", "payroll"),
    ]);
    let mut o = opts(&f);
    o.agent = Some("spiffe://example.org/agent/inventory-bot".into());
    o.since = Some(Duration::from_secs(7 * 24 * 3600));
    let s = suggest(&o).unwrap();
    let cfg = parsed(&s);
    assert_eq!(
        cfg.agents[1].roles,
        ["payroll-agent"],
        "other entries untouched"
    );
    assert_eq!(
        cfg.roles["learned-inventory-bot"].allow[0].paths,
        ["/inventory/new"]
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("1 record(s) older than --since")),
        "{:?}",
        s.notes
    );

    o.agent = Some("spiffe://example.org/agent/support/bot-1".into());
    let err = suggest(&o).unwrap_err().to_string();
    assert!(
        err.contains("covered by agents[1] `spiffe://example.org/agent/support/*`"),
        "{err}"
    );
    o.agent = Some("spiffe://example.org/agent/inventory-bto".into());
    let err = suggest(&o).unwrap_err().to_string();
    assert!(
        err.contains("did you mean \"spiffe://example.org/agent/inventory-bot\""),
        "{err}"
    );
}

#[test]
fn running_it_again_on_its_own_output_is_stable() {
    let f = fixture(&[
        rec(
            "inventory-bot",
            "allow",
            "GET",
            "/inventory/items/1",
            "inventory",
        ),
        rec(
            "inventory-bot",
            "allow",
            "POST",
            "/inventory/orders",
            "inventory",
        ),
    ]);
    let first = suggest(&opts(&f)).unwrap();
    std::fs::write(&f.config, &first.text).unwrap();
    let second = suggest(&opts(&f)).unwrap();
    assert_eq!(first.text, second.text, "{}", second.diff(&f.config));
}

#[test]
fn mcp_tools_are_learned_from_rpc_records() {
    let mut records = vec![];
    for (method, target) in [
        ("initialize", ""),
        ("tools/list", ""),
        ("tools/call", "search_accounts"),
        ("tools/call", "get_customer"),
        ("tools/call", "search_accounts"),
    ] {
        let mut r = rec("inventory-bot", "shadow_deny", "POST", "/mcp", "crm");
        r["rpc_method"] = method.into();
        r["rpc_target"] = target.into();
        records.push(r);
    }
    let f = fixture(&records);
    let s = suggest(&opts(&f)).unwrap();
    let role = &s.roles[0];
    assert_eq!(role.upstreams, ["crm"]);
    let rpc = role.rules[0].rpc.as_ref().unwrap();
    assert_eq!(
        rpc.tools.iter().collect::<Vec<_>>(),
        ["get_customer", "search_accounts"]
    );
    assert!(
        s.text.contains("      - upstream: crm\n        methods: [POST]\n        paths: [\"/mcp\"]\n        mcp:\n          tools: [\"get_customer\", \"search_accounts\"]\n"),
        "{}",
        s.text
    );
    // The rules read MCP: the suggested config passes check.
    assert!(s.problems.is_empty(), "{:?}", s.problems);
}

#[test]
fn a_damaged_config_or_log_is_an_error() {
    let f = fixture(&[]);
    std::fs::write(&f.audit, "{\"kind\":\"request\"}\nnot json\n").unwrap();
    let err = suggest(&opts(&f)).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "{}:2: not an audit record: expected ident at line 1 column 2",
            f.audit.display()
        )),
        "{err}"
    );
    std::fs::write(&f.config, "listen: [\n").unwrap();
    assert!(matches!(suggest(&opts(&f)), Err(SuggestError::Config(_))));
}
