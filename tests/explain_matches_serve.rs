//! `explain` and `serve` are one decision function. A table of raw requests covering every reason
//! of the decision order, and a few hundred generated ones, are sent over real mTLS and explained;
//! the decision, the reason, the status and the rule (read back from the audit record) agree.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::client::{raw_status, AgentClient};
use support::fixture::{dead_addr, standard_policy};
use support::pki::{agent_id, AgentCert, TestPki};
use support::upstream::{self, Upstream};
use support::warden::{config_yaml, start_warden, TestWarden};
use warden::certs::mint::{mint_token, MintOptions, SigningKey};
use warden::certs::pki::LeafOptions;
use warden::certs::{commands, store};
use warden::explain::{explain, ExplainRequest};
use warden::pipeline::GivenAdmission;

/// Who presents the certificate.
#[derive(Clone, Copy, Debug)]
enum Cert {
    Agent(&'static str),
    /// A URI SAN as written (malformed or foreign ids).
    Uri(&'static str),
    NoSan,
    TwoSans,
}

#[derive(Clone, Debug)]
struct Case {
    cert: Cert,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    admission: GivenAdmission,
}

fn case(cert: Cert, method: &str, target: &str) -> Case {
    Case {
        cert,
        method: method.into(),
        target: target.into(),
        headers: vec![],
        body: None,
        admission: GivenAdmission::default(),
    }
}

impl Case {
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn body(mut self, b: &str) -> Self {
        self.body = Some(b.into());
        self
    }
}

struct Fixture {
    pki: TestPki,
    warden: TestWarden,
    log: std::path::PathBuf,
    key: SigningKey,
    certs: std::sync::Mutex<HashMap<String, AgentCert>>,
    _upstreams: (Upstream, Upstream, support::mcp::McpServer),
    _dir: tempfile::TempDir,
}

/// The standard policy, an audit log, a token issuer and a role that requires the token.
async fn fixture(mode: &str) -> Fixture {
    let pki = TestPki::new();
    commands::token_keygen(pki.path(), false, &mut Vec::new()).expect("token keygen");
    let key_pem = std::fs::read_to_string(pki.path().join(store::TOKEN_KEY)).unwrap();
    let key = SigningKey::from_pem(&key_pem).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let mcp = support::mcp::start().await;
    let top = format!(
        r#"  token:
    audience: warden
    issuers:
      - name: agent-auth
        keys: {key}
mode: {mode}
limits:
  max_request_body_bytes: 1KiB
telemetry:
  audit_log: {log}
"#,
        key = pki.path().join(store::TOKEN_PUB).display(),
        log = log.display(),
    );
    let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), &top)
        .replace(
            "roles:\n",
            "roles:\n  secure-agent:\n    upstreams: [inventory]\n    require_token: true\n    allow:\n      - paths: [\"/inventory/**\"]\n",
        )
        .replace(
            "agents:\n",
            "agents:\n  - id: spiffe://example.org/agent/secure-bot\n    roles: [secure-agent]\n",
        );
    let policy = support::mcp::with_agent_protocols(&policy, &mcp.url());
    let warden = start_warden(&pki, &config_yaml(&pki, &policy)).await;
    Fixture {
        pki,
        warden,
        log,
        key,
        certs: Default::default(),
        _upstreams: (inventory, payroll, mcp),
        _dir: dir,
    }
}

/// A JSON-RPC message POSTed to `path`.
fn rpc(cert: Cert, path: &str, body: &str) -> Case {
    case(cert, "POST", path)
        .header("Content-Type", "application/json")
        .body(body)
}

fn tool_call(name: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#
    )
}

impl Fixture {
    fn cert(&self, cert: Cert) -> AgentCert {
        let name = format!("{cert:?}");
        let mut certs = self.certs.lock().unwrap();
        certs
            .entry(name.clone())
            .or_insert_with(|| {
                let file = name.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
                let opts = match cert {
                    Cert::Agent(a) => LeafOptions::new(agent_id(a)),
                    Cert::Uri(u) => LeafOptions::new(u),
                    Cert::NoSan => LeafOptions::new(agent_id("inventory-bot")).without_uri_san(),
                    Cert::TwoSans => LeafOptions::new(agent_id("inventory-bot"))
                        .extra_uri_san(agent_id("payroll-bot")),
                };
                self.pki.issue(&file, &opts)
            })
            .clone()
    }

    fn token(&self, agent: &str, bound_to: &AgentCert) -> String {
        let t = mint_token(
            &self.key,
            &bound_to.issued.cert_der,
            &MintOptions::new(agent_id(agent)),
        )
        .unwrap();
        format!("Bearer {t}")
    }

    /// Sends the case as raw HTTP/1.1; returns the status and the request id.
    async fn serve(&self, c: &Case) -> (u16, String) {
        let client = AgentClient::new(&self.pki, &self.cert(c.cert), self.warden.addr);
        let mut head = format!("{} {} HTTP/1.1\r\n", c.method, c.target);
        if !c
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.warden.addr.port()));
        }
        for (k, v) in &c.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = c.body.clone().unwrap_or_default();
        if c.body.is_some() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        head.push_str(&body);
        let raw = client.raw(head.as_bytes(), Duration::from_secs(3)).await;
        let id = raw
            .lines()
            .find_map(|l| {
                l.strip_prefix("x-request-id: ")
                    .or_else(|| l.strip_prefix("X-Request-Id: "))
            })
            .unwrap_or_default()
            .trim()
            .to_string();
        (raw_status(&raw), id)
    }

    async fn explain(&self, c: &Case) -> Option<warden::explain::Explanation> {
        let snap = self.warden.running.runtime.config.snapshot();
        let cert = self.cert(c.cert);
        let req = ExplainRequest {
            agent: match c.cert {
                Cert::Agent(a) => agent_id(a),
                Cert::Uri(u) => u.to_string(),
                _ => agent_id("inventory-bot"),
            },
            method: c.method.clone(),
            url: c.target.clone(),
            headers: c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
            unix_ms: warden::clock::Clock::system().now_unix_ms(),
            cert_der: Some(cert.issued.cert_der.clone()),
            admission: c.admission,
            body: c.body.clone().map(String::into_bytes),
            ..ExplainRequest::default()
        };
        explain(&snap, &req).await.ok()
    }

    async fn audit(&self) -> HashMap<String, serde_json::Value> {
        self.warden.flush_audit().await;
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "request")
            .map(|v| (v["request_id"].as_str().unwrap_or("").to_string(), v))
            .collect()
    }

    /// Serves and explains every case; returns the reasons seen. Panics on any disagreement.
    async fn compare(&self, cases: &[Case], skip_unexplainable: bool) -> Vec<String> {
        let mut served = Vec::new();
        for c in cases {
            served.push(self.serve(c).await);
        }
        let audit = self.audit().await;
        let mut reasons = Vec::new();
        for (c, (status, id)) in cases.iter().zip(served) {
            let Some(ex) = self.explain(c).await else {
                assert!(skip_unexplainable, "{c:?}: explain refused the input");
                continue;
            };
            let rec = audit
                .get(&id)
                .unwrap_or_else(|| panic!("{c:?}: no audit record for `{id}` (status {status})"));
            let rule = rec["rule"].as_str().map(String::from);
            let ctx = || format!("{c:?}\nserve: {status} {rec}\nexplain:\n{}", ex.render());
            let served_reason = rec["reason"].as_str().unwrap_or("");
            if served_reason.starts_with("upstream_") {
                // Allowed, then the upstream failed: past the decision.
                assert!(ex.allowed(), "{}", ctx());
                assert_eq!(ex.rule, rule, "{}", ctx());
                continue;
            }
            assert_eq!(ex.reason_str(), served_reason, "{}", ctx());
            assert_eq!(ex.rule, rule, "{}", ctx());
            let decision = match (ex.reason, ex.shadow) {
                (None, _) => "allow",
                (Some(_), true) => "shadow_deny",
                (Some(_), false) => "deny",
            };
            assert_eq!(decision, rec["decision"], "{}", ctx());
            assert_eq!(ex.status().as_u16(), status, "{}", ctx());
            reasons.push(ex.reason_str().to_string());
        }
        reasons
    }
}

fn table(f: &Fixture) -> Vec<Case> {
    use Cert::*;
    let inv = Agent("inventory-bot");
    let secure = f.cert(Agent("secure-bot"));
    let other = f.cert(Agent("inventory-bot"));
    vec![
        case(inv, "GET", "/inventory/items"),
        case(inv, "HEAD", "/inventory/items"),
        case(inv, "GET", "/inventory/items/1/price"),
        case(inv, "GET", "/inventory/admin"),
        case(inv, "GET", "/inventory/admin/"),
        case(inv, "GET", "/inventory/ADMIN/x"),
        case(inv, "HEAD", "/inventory/admin/x"),
        case(inv, "POST", "/inventory/orders").header("x-purpose", "restock"),
        case(inv, "POST", "/inventory/orders").header("x-purpose", "other"),
        case(inv, "PUT", "/inventory/items/5"),
        case(inv, "PUT", "/inventory/items/5/"),
        case(Agent("staging-bot"), "PUT", "/inventory/items/5"),
        case(inv, "DELETE", "/inventory/items/5"),
        case(inv, "GET", "/payroll/x"),
        case(inv, "GET", "/x"),
        // Shape: every refusal of step 4.
        case(inv, "get", "/inventory/items"),
        case(inv, "Delete", "/inventory/items/5"),
        case(inv, "GET", "/inventory/%2e%2e/payroll/x"),
        case(inv, "GET", "/inventory/a%2Fb"),
        case(inv, "GET", "/inventory/..;/x"),
        case(inv, "GET", "/inventory/%zz"),
        case(inv, "GET", "/inventory/../.."),
        case(inv, "GET", "/inventory/./items"),
        case(inv, "GET", "/inventory//items"),
        case(inv, "GET", "/inventory/%69tems"),
        case(inv, "GET", "/inventory/items")
            .header("authorization", "Bearer a")
            .header("authorization", "Bearer b"),
        case(inv, "GET", "/inventory/items").body("a body on GET"),
        case(inv, "POST", "/inventory/orders")
            .header("x-purpose", "restock")
            .body(&"x".repeat(2000)),
        // Absolute-form targets: only a route's host may be named.
        case(
            Agent("payroll-bot"),
            "GET",
            "http://payroll.internal/payroll/x",
        )
        .header("host", "payroll.internal"),
        case(inv, "GET", "http://evil.example/inventory/items").header("host", "evil.example"),
        case(Agent("payroll-bot"), "GET", "/").header("host", "payroll.internal"),
        case(Agent("payroll-bot"), "GET", "/inventory/items").header("host", "payroll.internal"),
        case(Agent("support/bob"), "GET", "/payroll/x"),
        // Identity: unknown agents and every spelling that is no identity.
        case(Agent("stranger"), "GET", "/inventory/items"),
        case(
            Uri("SPIFFE://example.org/agent/inventory-bot"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("spiffe://EXAMPLE.org/agent/inventory-bot"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("spiffe://example.org/agent/inventory-bot/"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("spiffe://example.org/agent/../inventory-bot"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("spiffe://example.org/agent/inventory%2Dbot"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("spiffe://evil.org/agent/inventory-bot"),
            "GET",
            "/inventory/items",
        ),
        case(
            Uri("https://example.org/agent/inventory-bot"),
            "GET",
            "/inventory/items",
        ),
        case(NoSan, "GET", "/inventory/items"),
        case(TwoSans, "GET", "/inventory/items"),
        // The second factor.
        case(Agent("secure-bot"), "GET", "/inventory/items"),
        case(Agent("secure-bot"), "GET", "/inventory/items")
            .header("authorization", "Bearer x.y.z"),
        case(Agent("secure-bot"), "GET", "/inventory/items")
            .header("authorization", &f.token("secure-bot", &other)),
        case(Agent("secure-bot"), "GET", "/inventory/items")
            .header("authorization", &f.token("inventory-bot", &secure)),
        case(Agent("secure-bot"), "GET", "/inventory/items")
            .header("authorization", &f.token("secure-bot", &secure)),
    ]
}

#[tokio::test]
async fn every_reason_of_the_decision_order_is_explained_as_served() {
    let f = fixture("enforce").await;
    let mut reasons = f.compare(&table(&f), false).await;

    // Live admission state, given to explain as the state serve was in.
    let payroll = Cert::Agent("payroll-bot");
    let quarantined = GivenAdmission {
        quarantined: Some(true),
        ..GivenAdmission::default()
    };
    let (status, _) = support::warden::admin_request(
        f.warden.admin,
        "POST",
        &format!("/agents/{}/quarantine", agent_id("payroll-bot")),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut q = case(payroll, "GET", "/payroll/x");
    q.admission = quarantined;
    reasons.extend(f.compare(&[q], false).await);

    let limited = Cert::Agent("limited");
    for _ in 0..4 {
        f.serve(&case(limited, "GET", "/inventory/items")).await;
    }
    let mut r = case(limited, "GET", "/inventory/items");
    r.admission.rate_limited = Some(true);
    reasons.extend(f.compare(&[r], false).await);

    for want in [
        "ok",
        "no_identity",
        "unknown_agent",
        "token_missing",
        "token_invalid",
        "token_not_bound",
        "quarantined",
        "rate_limited",
        "bad_request",
        "body_too_large",
        "no_route",
        "segmentation",
        "denied",
        "no_matching_rule",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "the table never produced {want}"
        );
    }
}

#[tokio::test]
async fn shadow_mode_is_explained_as_served() {
    let f = fixture("shadow").await;
    let inv = Cert::Agent("inventory-bot");
    let cases = vec![
        case(inv, "GET", "/inventory/items"),
        case(inv, "GET", "/inventory/admin/x"),
        case(inv, "DELETE", "/inventory/items/5"),
        case(inv, "GET", "/payroll/x"),
        case(inv, "GET", "/x"),
        case(inv, "get", "/inventory/items"),
        case(Cert::Agent("stranger"), "GET", "/inventory/items"),
    ];
    let reasons = f.compare(&cases, false).await;
    assert_eq!(
        reasons,
        [
            "ok",
            "denied",
            "no_matching_rule",
            "segmentation",
            "no_route",
            "bad_request",
            "unknown_agent"
        ]
    );
}

#[tokio::test]
async fn mcp_and_a2a_messages_are_explained_as_served() {
    let f = fixture("enforce").await;
    let sup = Cert::Agent("support-bot");
    let worker = Cert::Agent("worker-a");
    let inv = Cert::Agent("inventory-bot");
    let cases = vec![
        rpc(sup, "/mcp", &tool_call("search_customers", "{}")),
        rpc(
            sup,
            "/mcp",
            &tool_call("get_customer", r#"{"region":"us"}"#),
        ),
        rpc(
            sup,
            "/mcp",
            &tool_call("get_customer", r#"{"region":"cn"}"#),
        ),
        rpc(sup, "/mcp", &tool_call("delete_customer", "{}")),
        rpc(
            sup,
            "/mcp",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        ),
        rpc(sup, "/mcp", r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#),
        rpc(
            sup,
            "/mcp",
            r#"{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{}}"#,
        ),
        rpc(sup, "/mcp", &format!("[{}]", tool_call("search_x", "{}"))),
        rpc(
            sup,
            "/mcp",
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_x","name":"delete_customer"}}"#,
        ),
        rpc(sup, "/mcp", r#"{"jsonrpc":"2.0","id":6}"#),
        case(sup, "POST", "/mcp")
            .header("Content-Type", "text/plain")
            .body(&tool_call("search_x", "{}")),
        case(sup, "PUT", "/mcp")
            .header("Content-Type", "application/json")
            .body(&tool_call("search_x", "{}")),
        case(sup, "DELETE", "/mcp"),
        rpc(inv, "/mcp", &tool_call("search_customers", "{}")),
        rpc(
            worker,
            "/a2a",
            r#"{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"role":"user","parts":[],"messageId":"m"}}}"#,
        ),
        rpc(
            worker,
            "/a2a",
            r#"{"jsonrpc":"2.0","id":8,"method":"tasks/cancel","params":{"id":"t"}}"#,
        ),
        rpc(
            worker,
            "/a2a",
            r#"{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"id":"t","taskId":"u"}}"#,
        ),
    ];
    let reasons = f.compare(&cases, false).await;
    assert_eq!(
        reasons,
        [
            "ok",
            "ok",
            "no_matching_rule",
            "denied",
            "ok",
            "ok",
            "no_matching_rule",
            "bad_request",
            "bad_request",
            "bad_request",
            "bad_request",
            "bad_request",
            "ok",
            "segmentation",
            "ok",
            "no_matching_rule",
            "bad_request",
        ]
    );
}

#[tokio::test]
async fn mcp_in_shadow_mode_is_explained_as_served() {
    let f = fixture("shadow").await;
    let sup = Cert::Agent("support-bot");
    let cases = vec![
        rpc(sup, "/mcp", &tool_call("delete_customer", "{}")),
        rpc(sup, "/mcp", &tool_call("export_all", "{}")),
        rpc(sup, "/mcp", &format!("[{}]", tool_call("search_x", "{}"))),
    ];
    let reasons = f.compare(&cases, false).await;
    assert_eq!(reasons, ["denied", "no_matching_rule", "bad_request"]);
}

/// splitmix64: generated requests, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn generated(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng(seed);
    let agents = [
        "inventory-bot",
        "staging-bot",
        "payroll-bot",
        "support/bob",
        "stranger",
    ];
    let methods = [
        "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "Put",
    ];
    let segments = [
        "inventory",
        "inventory",
        "payroll",
        "admin",
        "ADMIN",
        "items",
        "orders",
        "5",
        "x",
        "..",
        ".",
        "%2e",
        "%2e%2e",
        "%2F",
        "%41",
        "%7e",
        "a%zz",
        "",
        "Inventory",
    ];
    let hosts = [
        None,
        None,
        None,
        Some("payroll.internal"),
        Some("inventory.internal"),
        Some("evil.example"),
    ];
    (0..n)
        .map(|_| {
            let depth = 1 + rng.next() % 4;
            let mut target = String::new();
            for _ in 0..depth {
                target.push('/');
                target.push_str(rng.pick(&segments));
            }
            if rng.next().is_multiple_of(8) {
                target.push('/');
            }
            let cert = Cert::Agent(rng.pick(&agents));
            let mut c = case(cert, rng.pick(&methods), &target);
            if let Some(h) = rng.pick(&hosts) {
                c = c.header("host", h);
            }
            if rng.next().is_multiple_of(4) {
                c = c.header("x-purpose", rng.pick(&["restock", "other"]));
            }
            c
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_are_explained_as_served() {
    let f = fixture("enforce").await;
    let cases = generated(0x5eed_0001, 300);
    let reasons = f.compare(&cases, true).await;
    assert!(reasons.len() >= 250, "only {} explainable", reasons.len());
    let distinct: std::collections::BTreeSet<_> = reasons.iter().collect();
    assert!(distinct.len() >= 6, "too little variety: {distinct:?}");
}

#[test]
fn explain_command_prints_decision_layer_rule_and_exit_code() {
    let pki = TestPki::new();
    let yaml = config_yaml(
        &pki,
        &standard_policy("http://127.0.0.1:9", "http://127.0.0.1:9", dead_addr(), ""),
    );
    let path = support::warden::write_config(&pki, "warden.yaml", &yaml);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("explain")
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let id = agent_id("inventory-bot");
    let base = ["--agent", id.as_str(), "--method"];
    fn join<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
        [base, rest].concat()
    }
    let with = |rest: &[&'static str]| join(&base, rest);

    let out = run(&with(&[
        "GET",
        "--url",
        "/inventory/items",
        "--header",
        "Host: inventory.internal",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("ALLOW"), "{text}");
    assert!(text.contains("inventory-agent/allow[0]"), "{text}");

    let out = run(&with(&["GET", "--url", "/inventory/admin/x"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("DENY denied (403)"), "{text}");
    assert!(text.contains("inventory-agent/deny[0]"), "{text}");

    let out = run(&with(&[
        "POST",
        "--url",
        "/inventory/orders",
        "--header",
        "x-purpose: restock",
        "--source-ip",
        "10.1.1.1",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("no_matching_rule") && text.contains("source address outside source_cidrs"),
        "{text}"
    );

    // What serve refuses, explain refuses: a lower-case method, an absolute-form foreign host.
    let out = run(&with(&["delete", "--url", "/inventory/items/5"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("DENY bad_request (400)"), "{text}");
    let out = run(&with(&[
        "GET",
        "--url",
        "https://evil.example/inventory/items",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("DENY bad_request"));

    // Live state given as flags.
    let out = run(&with(&[
        "GET",
        "--url",
        "/inventory/items",
        "--quarantined",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("DENY quarantined (403)"), "{text}");

    // A malformed agent id is no identity, never folded into a known one.
    let out = run(&[
        "--agent",
        "SPIFFE://example.org/agent/inventory-bot",
        "--method",
        "GET",
        "--url",
        "/inventory/items",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("DENY no_identity (403)"));

    let out = run(&with(&["GET", "--url", "/x", "--time", "yesterday"]));
    assert_eq!(out.status.code(), Some(2));
}
