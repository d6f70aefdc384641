//! The shipped dashboard and alert rules against a real Prometheus: the `/metrics` text passes
//! `promtool check metrics`, every PromQL expression of the Grafana dashboard returns data from a
//! Prometheus that scraped a warden under traffic, and the alert rules load, evaluate and fire.
//!
//! The tests that need `prometheus` and `promtool` on the PATH are `#[ignore]`d; `.ci/run`
//! installs them and runs `cargo test -- --ignored`.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::client::{client_config, AgentClient};
use support::fixture::Standard;
use support::pki::agent_id;
use support::warden::admin_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NEEDS_PROMETHEUS: &str = "needs Prometheus (apt-get install prometheus); run by .ci/run";

/// The metric names of the contract (SPEC section 5).
const CONTRACT_METRICS: [&str; 13] = [
    "warden_requests_total",
    "warden_request_duration_seconds",
    "warden_upstream_duration_seconds",
    "warden_agent_bytes_total",
    "warden_agent_anomaly_score",
    "warden_agent_quarantined",
    "warden_tls_handshakes_total",
    "warden_active_connections",
    "warden_config_reloads_total",
    "warden_audit_records_total",
    "warden_build_info",
    "warden_certificate_expiry_timestamp_seconds",
    "warden_upstream_connections",
];

/// The standard process metrics, read from /proc.
const PROCESS_METRICS: [&str; 6] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// A pool no config names, whose gauges the test sets itself: the pools report
/// `warden_upstream_connections` as they open and close connections, and a short test cannot
/// rely on a saturated one.
const PROBE_POOL: &str = "pool-probe";

const ANOMALY_GAUGE: &str = "warden_agent_anomaly_score";

/// What `$__rate_interval` becomes: several scrapes at the test's 1 s interval.
const RATE_INTERVAL: &str = "30s";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn dashboard() -> Value {
    let path = repo_file("config/grafana/warden-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"))
}

fn rules_path() -> PathBuf {
    repo_file("config/prometheus/warden-rules.yaml")
}

fn require_tools() {
    for tool in ["prometheus", "promtool"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed: {NEEDS_PROMETHEUS} \
             (apt-get install -y --no-install-recommends prometheus)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The dashboard's expressions

/// Every panel target's PromQL, with the panel title.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = panels.pop() {
        // Collapsed rows keep their panels inside.
        panels.extend(p["panels"].as_array().into_iter().flatten());
        let title = p["title"].as_str().unwrap_or("").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((title.clone(), expr.to_string()));
            }
        }
    }
    out
}

/// The expression Grafana would send with every template variable at "All".
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("${agent}", ".*")
        .replace("$agent", ".*")
        .replace("${upstream}", ".*")
        .replace("$upstream", ".*")
}

/// `(variable name, metric, label)` of every `label_values(metric, label)` query variable.
fn label_value_variables(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or("");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(..): {q}", v["name"]));
        let (metric, label) = inner
            .split_once(',')
            .unwrap_or_else(|| panic!("variable {}: label_values needs a metric: {q}", v["name"]));
        out.push((
            v["name"].as_str().unwrap_or("").to_string(),
            metric.trim().to_string(),
            label.trim().to_string(),
        ));
    }
    out
}

#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap_or(0) >= 36,
        "schemaVersion"
    );
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "uid");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("template variable {name} missing"))
    };
    let ds = var("datasource");
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    for name in ["agent", "upstream"] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        // "All" must be a regex the `=~` matchers accept, not Grafana's alternation of values.
        assert_eq!(v["allValue"], ".*", "{name}");
    }
    assert_eq!(label_value_variables(&d).len(), 2);

    let mut panels = 0;
    for p in d["panels"].as_array().expect("panels") {
        panels += 1;
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {title}");
        }
    }
    assert!(panels >= 10, "only {panels} panels");

    let exprs = dashboard_exprs(&d);
    for (title, expr) in &exprs {
        let e = substitute(expr);
        assert!(
            !e.contains('$'),
            "{title}: unsubstituted variable in {expr}"
        );
        // Every range selector follows the dashboard's interval, never a fixed window.
        for (i, _) in e.match_indices('[') {
            assert!(
                e[i..].starts_with(&format!("[{RATE_INTERVAL}]")),
                "{title}: fixed range window in {expr}"
            );
        }
    }
    let all: String = exprs.iter().map(|(_, e)| e.as_str()).collect();
    for name in CONTRACT_METRICS {
        assert!(all.contains(name), "no panel shows {name}");
    }
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "warden_upstream_max_connections",
    ] {
        assert!(all.contains(name), "no panel shows {name}");
    }
    // Process metrics carry generic names: each panel keeps to warden's own targets.
    for (title, expr) in &exprs {
        if expr.contains("process_") {
            assert!(
                expr.contains("and on (job, instance) warden_build_info"),
                "{title}: {expr} would show every process Prometheus scrapes"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// The agents and clients the traffic uses.
#[derive(Clone)]
struct Fleet {
    inventory: AgentClient,
    support: AgentClient,
    payroll: AgentClient,
    quarantined: AgentClient,
    no_cert: AgentClient,
}

impl Fleet {
    fn new(s: &Standard) -> Self {
        Fleet {
            inventory: s.client("inventory-bot"),
            support: s.client("support-bot"),
            payroll: s.client("payroll-bot"),
            quarantined: s.client("staging-bot"),
            no_cert: AgentClient::with_config(
                client_config(&s.pki, None, &[b"http/1.1"]),
                s.warden.addr,
            ),
        }
    }

    /// One request of each kind the dashboard shows, asserting each decision so that a change
    /// of behaviour shows here rather than as a puzzling empty panel.
    async fn round(&self) {
        let inv = &self.inventory;
        let cases: [(&AgentClient, &str, &str, u16, &str); 7] = [
            (inv, "GET", "/inventory/items", 200, ""),
            (&self.payroll, "GET", "/payroll/slips", 200, ""),
            (inv, "GET", "/inventory/admin/users", 403, "denied"),
            (inv, "DELETE", "/inventory/items/1", 403, "no_matching_rule"),
            (inv, "GET", "/payroll/salaries", 403, "segmentation"),
            (inv, "GET", "/nowhere", 404, "no_route"),
            (
                &self.quarantined,
                "GET",
                "/inventory/items",
                403,
                "quarantined",
            ),
        ];
        for (client, method, path, status, reason) in cases {
            let r = client.request(method, path, &[], "").await;
            assert_eq!(
                (r.status, r.error().as_str()),
                (status, reason),
                "{method} {path}: {}",
                r.text()
            );
        }
        // MCP: an allowed tool call and a denied one, for the tool-call panels.
        for (tool, status, reason) in [
            ("search_customers", 200, ""),
            ("delete_customer", 403, "denied"),
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
            );
            let r = self
                .support
                .request(
                    "POST",
                    "/mcp",
                    &[("content-type", "application/json")],
                    &body,
                )
                .await;
            let got = r.json()["error"]["data"]["reason"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert_eq!(
                (r.status, got.as_str()),
                (status, reason),
                "{tool}: {}",
                r.text()
            );
        }
        assert!(
            self.no_cert.handshake_refused().await,
            "a handshake without a client certificate was accepted"
        );
    }
}

async fn quarantine(s: &Standard, name: &str) {
    let id = agent_id(name);
    let (status, body) = admin_request(
        s.warden.admin,
        "POST",
        &format!("/agents/{id}/quarantine"),
        None,
    )
    .await;
    assert_eq!(status, 200, "quarantine {id}: {body}");
}

/// A reload of a broken file through the admin API: refused, counted as an error, and the good
/// config put back so traffic goes on.
async fn failed_reload(s: &Standard) {
    let good = std::fs::read_to_string(&s.warden.config_path).expect("config");
    std::fs::write(&s.warden.config_path, "listen: [this is not\n").expect("write config");
    let (status, body) = admin_request(s.warden.admin, "POST", "/reload", None).await;
    std::fs::write(&s.warden.config_path, good).expect("restore config");
    assert_eq!(status, 422, "a broken reload was not refused: {body}");
}

/// Every decision, a quarantine, a refused handshake, an upstream failure and both reload
/// results: each metric and label the dashboard reads gets a series.
async fn start_with_traffic() -> (Standard, Fleet) {
    let s = Standard::start_with_mcp().await;
    let fleet = Fleet::new(&s);
    quarantine(&s, "staging-bot").await;
    fleet.round().await;
    let r = fleet.inventory.get("/dead/x").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (502, "upstream_unavailable")
    );
    failed_reload(&s).await;
    let (status, body) = admin_request(s.warden.admin, "POST", "/reload", None).await;
    assert_eq!(status, 200, "reload: {body}");
    let m = &s.warden.running.runtime.metrics;
    m.upstream_connections
        .with_label_values(&[PROBE_POOL, "busy"])
        .set(95);
    m.upstream_connections
        .with_label_values(&[PROBE_POOL, "idle"])
        .set(5);
    m.upstream_max_connections
        .with_label_values(&[PROBE_POOL])
        .set(100);
    (s, fleet)
}

/// Keeps the fleet's traffic flowing until dropped, so every `rate()` sees increases.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(fleet: Fleet) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                fleet.round().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Traffic { stop, task }
    }

    /// Stops the traffic and surfaces a failed assertion from inside it.
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let task = self.task;
        if let Err(e) = task.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// promtool

fn promtool(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e}; {NEEDS_PROMETHEUS}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn anomaly_gauge_present(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|l| l.starts_with(&format!("{ANOMALY_GAUGE}{{")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Prometheus (apt-get install prometheus); run by .ci/run"]
async fn metrics_pass_promtool_and_name_the_contract() {
    require_tools();
    let (s, _fleet) = start_with_traffic().await;
    let (status, text) = admin_request(s.warden.admin, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let (code, findings) = promtool(&["check", "metrics"], Some(&text));
    assert_eq!(
        code, 0,
        "promtool check metrics:\n{findings}\n--- metrics:\n{text}"
    );
    let has = |name: &str| text.lines().any(|l| l.starts_with(name));
    for name in CONTRACT_METRICS.iter().chain(&PROCESS_METRICS) {
        assert!(has(name), "{name} missing from /metrics:\n{text}");
    }
    for series in [
        r#"decision="allow""#,
        r#"reason="segmentation""#,
        r#"reason="no_route""#,
        r#"reason="quarantined""#,
        r#"warden_config_reloads_total{result="error"} 1"#,
        r#"warden_config_reloads_total{result="ok"} 1"#,
        r#"reason="no_client_cert",result="error""#,
        &format!(
            r#"warden_agent_quarantined{{agent="{}"}} 1"#,
            agent_id("staging-bot")
        ),
        &format!(
            r#"warden_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
        r#"which="server""#,
        r#"which="client_ca""#,
        r#"which="crl_next_update""#,
        r#"warden_request_duration_seconds_bucket{decision="allow",upstream="inventory",le="120"}"#,
    ] {
        assert!(
            text.contains(series),
            "{series} missing from /metrics:\n{text}"
        );
    }
}

#[test]
#[ignore = "needs Prometheus (apt-get install prometheus); run by .ci/run"]
fn shipped_rules_and_example_config_pass_promtool() {
    require_tools();
    let rules = rules_path();
    let (code, out) = promtool(&["check", "rules", &rules.to_string_lossy()], None);
    assert_eq!(code, 0, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // The rules' own unit tests: certificate expiry, CRL, pool saturation fire when they should.
    let tests = repo_file("config/prometheus/warden-rules.test.yaml");
    let (code, out) = promtool(&["test", "rules", &tests.to_string_lossy()], None);
    assert_eq!(code, 0, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    let example = repo_file("config/prometheus/prometheus.yml");
    let (code, out) = promtool(&["check", "config", &example.to_string_lossy()], None);
    assert_eq!(code, 0, "promtool check config:\n{out}");
    assert!(out.contains("1 rule files found"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus server of this test's own, killed (by its pid) when dropped, also on failure.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second and loading the shipped rules.
    async fn start(target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: warden\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules = rules_path().display()
            ),
        )
        .expect("write prometheus.yml");
        let log_path = dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus: {e}; {NEEDS_PROMETHEUS}"));
        let mut p = Prometheus { child, addr, dir };
        p.wait_ready().await;
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if let Ok((200, _)) = http_get(self.addr, "/-/ready").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `data` of a successful API answer.
    async fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = http_get(self.addr, path_and_query)
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}\n{}", self.log()));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}: {body}"));
        assert_eq!(
            (status, v["status"].as_str()),
            (200, Some("success")),
            "GET {path_and_query}: {body}"
        );
        v["data"].clone()
    }

    /// The result vector of an instant query.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encode(expr)))
            .await;
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A GET over HTTP/1.0, so the answer is neither chunked nor kept alive: read to the end.
async fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 10 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Polls until every expression has a non-empty result or the deadline passes; returns those
/// still empty.
async fn until_all_have_data(
    prom: &Prometheus,
    mut pending: Vec<(String, String)>,
    deadline: Instant,
) -> Vec<(String, String)> {
    loop {
        let mut still = Vec::new();
        for (title, expr) in pending {
            if prom.query(&expr).await.is_empty() {
                still.push((title, expr));
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn alert_names(rules_yaml: &str) -> BTreeSet<String> {
    rules_yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// `name -> (health, state)` of every rule Prometheus loaded into group `warden`.
async fn loaded_rules(prom: &Prometheus) -> Vec<(String, String, String)> {
    let data = prom.api("/api/v1/rules").await;
    let mut out = Vec::new();
    for g in data["groups"].as_array().into_iter().flatten() {
        if g["name"] != "warden" {
            continue;
        }
        for r in g["rules"].as_array().into_iter().flatten() {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            out.push((s("name"), s("health"), s("state")));
        }
    }
    out
}

/// Waits until every alert of the rule file is loaded and evaluated without error, and the
/// alerts in `firing` fire.
async fn until_rules_evaluated(prom: &Prometheus, firing: &[&str], deadline: Instant) {
    let expected = alert_names(&std::fs::read_to_string(rules_path()).expect("rules file"));
    assert!(expected.len() >= 5, "too few alerts: {expected:?}");
    loop {
        let rules = loaded_rules(prom).await;
        let names: BTreeSet<String> = rules.iter().map(|r| r.0.clone()).collect();
        let unhealthy: Vec<_> = rules.iter().filter(|r| r.1 != "ok").collect();
        let not_firing: Vec<_> = firing
            .iter()
            .filter(|n| !rules.iter().any(|r| r.0 == **n && r.2 == "firing"))
            .collect();
        if names == expected && unhealthy.is_empty() && not_firing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rules: loaded {names:?}, expected {expected:?}; not healthy: {unhealthy:?}; \
             not firing: {not_firing:?}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Prometheus (apt-get install prometheus); run by .ci/run"]
async fn dashboard_queries_and_alert_rules_work_against_prometheus() {
    require_tools();
    let started = Instant::now();
    let (s, fleet) = start_with_traffic().await;
    let traffic = Traffic::start(fleet);
    let prom = Prometheus::start(s.warden.admin).await;
    // The first scrape lands about 6 s after start and rate() needs a second one.
    let deadline = Instant::now() + Duration::from_secs(40);

    let up = until_all_have_data(
        &prom,
        vec![("up".into(), r#"up{job="warden"} == 1"#.into())],
        deadline,
    )
    .await;
    assert!(up.is_empty(), "warden never scraped:\n{}", prom.log());
    // A failed reload Prometheus sees happen, so the reload alert has something to fire on.
    failed_reload(&s).await;

    assert!(
        anomaly_gauge_present(&s.warden.metrics()),
        "{ANOMALY_GAUGE} has no series"
    );
    let strict: Vec<_> = dashboard_exprs(&dashboard())
        .into_iter()
        .map(|(title, expr)| (title, substitute(&expr)))
        .collect();
    assert!(strict.len() >= 10, "too few dashboard queries: {strict:?}");
    let empty = until_all_have_data(&prom, strict.clone(), deadline).await;
    assert!(
        empty.is_empty(),
        "dashboard queries with no data after {:?}: {empty:#?}\n--- metrics:\n{}",
        started.elapsed(),
        s.warden.metrics()
    );
    for (name, metric, label) in label_value_variables(&dashboard()) {
        let values = prom
            .api(&format!(
                "/api/v1/label/{label}/values?match[]={}",
                percent_encode(&metric)
            ))
            .await;
        assert!(
            values.as_array().is_some_and(|v| !v.is_empty()),
            "template variable {name}: label_values({metric}, {label}) is empty"
        );
    }

    until_rules_evaluated(
        &prom,
        &["WardenAgentQuarantined", "WardenConfigReloadFailed"],
        deadline,
    )
    .await;
    let quarantined = prom
        .query("ALERTS{alertname=\"WardenAgentQuarantined\"}")
        .await;
    assert!(
        quarantined
            .iter()
            .any(|a| a["metric"]["agent"] == agent_id("staging-bot").as_str()),
        "{quarantined:?}"
    );

    // The test PKI's certificates live a day and the probe pool is 95% busy: both alerts are
    // on their way (pending for their `for:`; `promtool test rules` covers the firing).
    let pending = vec![
        (
            "certificate expiry".to_string(),
            r#"ALERTS{alertname="WardenCertificateExpiresSoon", which="server"}"#.to_string(),
        ),
        (
            "pool saturation".to_string(),
            format!(
                r#"ALERTS{{alertname="WardenUpstreamPoolSaturated", upstream="{PROBE_POOL}"}}"#
            ),
        ),
    ];
    let silent = until_all_have_data(&prom, pending, deadline).await;
    assert!(
        silent.is_empty(),
        "alerts not raised: {silent:?}\n{}",
        prom.log()
    );

    traffic.finish().await;
    drop(prom);
    eprintln!(
        "{} dashboard queries and the alert rules checked in {:?}",
        strict.len(),
        started.elapsed()
    );
}
