//! Load comparison: warden and nginx doing the same job on the same machine in the same run.
//!
//! Both proxies terminate TLS 1.3 (X25519, ECDSA P-256 certificates from one development CA) on
//! 127.0.0.1, require a client certificate from that CA, allow only `GET /inventory/**`, add the
//! agent's identity in `x-warden-agent`, and forward over pooled HTTP/1.1 keep-alive connections
//! to the same upstream (a separate nginx returning a small fixed body). Each proxy runs as its own
//! process, so the CPU it uses per request is read from `/proc/PID/stat`. warden runs three times:
//! with no audit log (like-for-like with nginx's `access_log off`), with its audit log on, and,
//! where `redis-server` is installed, with `cluster.redis` set to one the bench starts (the cost of
//! running as one replica of a fleet, against the plain warden row); a last row sends MCP
//! `tools/call` messages of about 1 KiB to an MCP route instead (against the plain warden row;
//! nginx has no counterpart).
//!
//! `cargo bench --bench load` (cargo builds the `warden` binary in the bench profile first).
//! Without `--bench` (e.g. `cargo test --benches`) it runs a short smoke pass. Without nginx it
//! says how to install it and exits successfully. `WARDEN_LOAD_ROWS=warden,warden+redis` runs only
//! the rows named, in that order (the upstream is always nginx). `WARDEN_LOAD_BINARY=path` drives
//! that warden binary instead of the one cargo built.

#[path = "load/generator.rs"]
mod generator;
#[path = "load/procs.rs"]
mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use http::StatusCode;
use tempfile::TempDir;
use warden::certs::pki::{Ca, IssuedCert, LeafOptions};

use generator::{Call, Mode, Target, Window};
use procs::Proc;

const AGENT_ID: &str = "spiffe://example.org/agent/load-bot";
/// Every row, in the order they run unless `WARDEN_LOAD_ROWS` says otherwise.
const ROWS: &[&str] = &[
    "nginx",
    "warden",
    "warden+audit",
    "warden+redis",
    "warden+mcp",
];
const NGINX_PROXY_CONF: &str = include_str!("load/nginx-proxy.conf");
const NGINX_UPSTREAM_CONF: &str = include_str!("load/nginx-upstream.conf");

/// How hard and how long each proxy is driven.
struct Plan {
    keep_alive_agents: usize,
    keep_alive_warm_up: Duration,
    keep_alive_window: Duration,
    handshake_agents: usize,
    handshake_warm_up: Duration,
    handshake_window: Duration,
}

impl Plan {
    /// About 10 s per proxy, so the three runs stay well under a minute.
    fn full() -> Plan {
        Plan {
            keep_alive_agents: 32,
            keep_alive_warm_up: Duration::from_secs(1),
            keep_alive_window: Duration::from_secs(5),
            handshake_agents: 16,
            handshake_warm_up: Duration::from_millis(500),
            handshake_window: Duration::from_secs(2),
        }
    }

    /// Proves the bench still works, in a couple of seconds.
    fn smoke() -> Plan {
        Plan {
            keep_alive_agents: 4,
            keep_alive_warm_up: Duration::from_millis(100),
            keep_alive_window: Duration::from_millis(400),
            handshake_agents: 2,
            handshake_warm_up: Duration::from_millis(100),
            handshake_window: Duration::from_millis(300),
        }
    }
}

fn main() -> ExitCode {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let Some(nginx) = procs::find_nginx() else {
        println!(
            "load bench skipped: nginx is not installed; install it with\n  \
             apt-get update && apt-get install -y --no-install-recommends nginx-light"
        );
        return ExitCode::SUCCESS;
    };
    let warden = match warden_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("load bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = if smoke { Plan::smoke() } else { Plan::full() };
    match runtime.block_on(run(&plan, &nginx, &warden)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `warden` binary cargo built for this bench (cargo builds a package's binaries before its
/// benches and integration tests and names them in `CARGO_BIN_EXE_<name>`).
fn warden_binary() -> Result<PathBuf, String> {
    // Another build of warden to measure (another allocator, say), in place of cargo's.
    if let Some(other) = std::env::var_os("WARDEN_LOAD_BINARY") {
        return Ok(PathBuf::from(other));
    }
    let built = option_env!("CARGO_BIN_EXE_warden").map(PathBuf::from);
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/warden");
    built
        .into_iter()
        .chain([fallback])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "the warden binary is missing: run `cargo bench --bench load`, which builds it".into()
        })
}

/// The development PKI both proxies use, on disk in `dir`.
struct Pki {
    dir: PathBuf,
    ca_der: Vec<u8>,
    agent: IssuedCert,
}

fn make_pki(dir: &Path) -> Result<Pki, String> {
    let day = Duration::from_secs(86_400);
    let ca = Ca::generate("warden load CA", day).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).map_err(|e| e.to_string())?;
    ca.issue_server(&[], day)
        .and_then(|s| s.write(dir, "server"))
        .map_err(|e| e.to_string())?;
    let agent = ca
        .issue_agent(&LeafOptions::new(AGENT_ID))
        .map_err(|e| e.to_string())?;
    Ok(Pki {
        dir: dir.to_path_buf(),
        ca_der: ca.cert_der().to_vec(),
        agent,
    })
}

/// What one proxy achieved.
struct Figures {
    name: &'static str,
    requests_per_s: f64,
    p50_us: u32,
    p99_us: u32,
    cpu_us_per_request: f64,
    handshakes_per_s: f64,
    cpu_us_per_handshake: f64,
    /// Peak resident memory of the proxy's processes over the whole row.
    peak_rss_mib: f64,
    failed: u64,
}

/// The rows to run: `WARDEN_LOAD_ROWS` (comma-separated, in order), else every row.
fn rows_to_run() -> Result<Vec<&'static str>, String> {
    let Ok(asked) = std::env::var("WARDEN_LOAD_ROWS") else {
        return Ok(ROWS.to_vec());
    };
    asked
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            ROWS.iter().find(|r| **r == n).copied().ok_or_else(|| {
                format!("WARDEN_LOAD_ROWS: no row `{n}` (rows: {})", ROWS.join(", "))
            })
        })
        .collect()
}

async fn run(plan: &Plan, nginx: &Path, warden: &Path) -> Result<(), String> {
    let tmp = TempDir::new().map_err(|e| format!("temp dir: {e}"))?;
    let pki = make_pki(tmp.path())?;
    let tls = generator::client_config(&pki.ca_der, &pki.agent.cert_der, &pki.agent.key_pem)?;
    let ticks_per_s = procs::clock_ticks_per_second();

    let upstream_port = procs::free_port()?;
    let _upstream = start_nginx(
        nginx,
        &tmp.path().join("upstream"),
        NGINX_UPSTREAM_CONF,
        &pki.dir,
        upstream_port,
        0,
    )?;

    let mut rows = Vec::new();
    for name in rows_to_run()? {
        let dir = tmp.path().join(name);
        let port = procs::free_port()?;
        let target = Target {
            addr: loopback(port),
            tls: tls.clone(),
            call: if name == "warden+mcp" {
                Call::mcp("lookup_item")
            } else {
                Call::rest()
            },
        };
        let mut audit_log = None;
        let mut _redis = None;
        let proxy = match name {
            "nginx" => start_nginx(nginx, &dir, NGINX_PROXY_CONF, &pki.dir, port, upstream_port)?,
            "warden+redis" => {
                let Some(redis) = procs::find_redis() else {
                    println!(
                        "warden+redis skipped: redis-server is not installed; install it with\n  \
                         apt-get update && apt-get install -y --no-install-recommends redis-server"
                    );
                    continue;
                };
                let redis = start_redis(&redis, &dir.join("redis"))?;
                let cluster = format!(
                    "cluster:\n  redis: redis://127.0.0.1:{}\n  failure_mode: local\n",
                    redis.1
                );
                _redis = Some(redis.0);
                start_warden(warden, &dir, &pki, port, upstream_port, None, &cluster)?
            }
            "warden+mcp" => start_warden(warden, &dir, &pki, port, upstream_port, None, "")?,
            _ => {
                audit_log = (name == "warden+audit").then(|| dir.join("audit.jsonl"));
                start_warden(
                    warden,
                    &dir,
                    &pki,
                    port,
                    upstream_port,
                    audit_log.as_deref(),
                    "",
                )?
            }
        };
        let figures = drive(name, &proxy, &target, plan, ticks_per_s).await?;
        // Stopping warden drains and flushes the audit log, so the count below is complete.
        drop(proxy);
        if let Some(path) = audit_log {
            check_audit_log(&path, figures.requests_per_s, plan)?;
        }
        rows.push(figures);
    }
    print_table(plan, &rows);
    Ok(())
}

/// A throwaway `redis-server` on a free loopback port, no persistence; and its port.
fn start_redis(redis: &Path, dir: &Path) -> Result<(Proc, u16), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port = procs::free_port()?;
    let mut cmd = Command::new(redis);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    let mut proc = Proc::spawn("redis-server", cmd, dir.join("stderr.log"), false)?;
    proc.wait_ready(loopback(port))?;
    Ok((proc, port))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn start_nginx(
    nginx: &Path,
    dir: &Path,
    template: &str,
    pki: &Path,
    port: u16,
    upstream_port: u16,
) -> Result<Proc, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = template
        .replace("{dir}", &dir.display().to_string())
        .replace("{pki}", &pki.display().to_string())
        .replace("{port}", &port.to_string())
        .replace("{upstream}", &upstream_port.to_string());
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path);
    let mut proc = Proc::spawn("nginx", cmd, dir.join("stderr.log"), true)?;
    proc.wait_ready(loopback(port))?;
    Ok(proc)
}

fn start_warden(
    warden: &Path,
    dir: &Path,
    pki: &Pki,
    port: u16,
    upstream_port: u16,
    audit_log: Option<&Path>,
    cluster: &str,
) -> Result<Proc, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let audit = audit_log.map_or_else(|| "null".to_owned(), |p| p.display().to_string());
    let pki_dir = pki.dir.display();
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
tls:
  cert: {pki_dir}/server.pem
  key: {pki_dir}/server-key.pem
  client_ca: {pki_dir}/ca.pem
  kx_groups: [x25519]
identity:
  trust_domain: example.org
upstreams:
  inventory:
    url: http://127.0.0.1:{upstream_port}
routes:
  - path_prefix: /inventory/mcp
    upstream: inventory
    protocol: mcp
  - path_prefix: /inventory
    upstream: inventory
roles:
  inventory-agent:
    upstreams: [inventory]
    allow:
      - methods: [GET]
        paths: ["/inventory/**"]
      - methods: [POST]
        paths: ["/inventory/mcp"]
        mcp: {{ tools: [lookup_item] }}
agents:
  - id: {AGENT_ID}
    roles: [inventory-agent]
telemetry:
  audit_log: {audit}
{cluster}"#
    );
    let config = dir.join("warden.yaml");
    std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut cmd = Command::new(warden);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--no-watch")
        .env("WARDEN_LOG", "warn");
    let mut proc = Proc::spawn("warden", cmd, dir.join("stderr.log"), false)?;
    proc.wait_ready(loopback(port))?;
    Ok(proc)
}

/// Checks that the proxy does the job (allows the GET, refuses the rest), then measures it.
async fn drive(
    name: &'static str,
    proxy: &Proc,
    target: &Target,
    plan: &Plan,
    ticks_per_s: u64,
) -> Result<Figures, String> {
    preflight(name, target).await?;
    let cpu = || proxy.cpu_ticks();
    let window = Window::after(plan.keep_alive_warm_up, plan.keep_alive_window);
    let (mut kept, cpu0, cpu1) =
        generator::run(target, Mode::KeepAlive, plan.keep_alive_agents, window, cpu).await;
    let window = Window::after(plan.handshake_warm_up, plan.handshake_window);
    let (fresh, hs0, hs1) =
        generator::run(target, Mode::Handshake, plan.handshake_agents, window, cpu).await;
    if kept.ok == 0 || fresh.ok == 0 {
        return Err(format!(
            "{name}: no successful requests ({} keep-alive, {} handshake failures)",
            kept.failed, fresh.failed
        ));
    }
    let us_per_tick = 1e6 / ticks_per_s as f64;
    let keep_secs = plan.keep_alive_window.as_secs_f64();
    let hs_secs = plan.handshake_window.as_secs_f64();
    Ok(Figures {
        name,
        requests_per_s: kept.ok as f64 / keep_secs,
        p50_us: kept.quantile_us(0.50),
        p99_us: kept.quantile_us(0.99),
        cpu_us_per_request: cpu_delta(cpu0, cpu1)? as f64 * us_per_tick / kept.ok as f64,
        handshakes_per_s: fresh.ok as f64 / hs_secs,
        cpu_us_per_handshake: cpu_delta(hs0, hs1)? as f64 * us_per_tick / fresh.ok as f64,
        peak_rss_mib: proxy.peak_rss_kib() as f64 / 1024.0,
        failed: kept.failed + fresh.failed,
    })
}

fn cpu_delta(before: Result<u64, String>, after: Result<u64, String>) -> Result<u64, String> {
    Ok(after?.saturating_sub(before?))
}

/// The proxy must allow the one request the agents send and refuse the others, or the figures
/// would compare different jobs.
async fn preflight(name: &str, target: &Target) -> Result<(), String> {
    let mut send = generator::connect(target)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let call = |method, path| Call {
        method,
        path,
        body: None,
    };
    let mut cases = vec![
        (call("GET", generator::PATH), true),
        (call("POST", generator::PATH), false),
        (call("GET", "/payroll/salaries"), false),
    ];
    if target.call.body.is_some() {
        // The MCP row: the tool the agents call is allowed, another is refused.
        cases.push((target.call.clone(), true));
        cases.push((Call::mcp("delete_item"), false));
    }
    for (call, allowed) in cases {
        let (method, path) = (call.method, call.path);
        let status = generator::request(&mut send, &call)
            .await
            .map_err(|e| format!("{name}: {method} {path}: {e}"))?;
        let ok = if allowed {
            status == StatusCode::OK
        } else {
            status.is_client_error()
        };
        if !ok {
            return Err(format!("{name}: {method} {path} gave {status}"));
        }
    }
    Ok(())
}

/// Every request the agents completed must be in the audit log.
fn check_audit_log(path: &Path, requests_per_s: f64, plan: &Plan) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let records = text.lines().count() as f64;
    let measured = requests_per_s * plan.keep_alive_window.as_secs_f64();
    if records < measured {
        return Err(format!(
            "the audit log holds {records} records, fewer than the {measured} requests measured"
        ));
    }
    Ok(())
}

fn print_table(plan: &Plan, rows: &[Figures]) {
    println!(
        "\nload: {} keep-alive agents for {:?} (after {:?}); {} agents with a new mTLS \
         handshake per request for {:?} (after {:?})",
        plan.keep_alive_agents,
        plan.keep_alive_window,
        plan.keep_alive_warm_up,
        plan.handshake_agents,
        plan.handshake_window,
        plan.handshake_warm_up,
    );
    println!(
        "{:<19} {:>9} {:>8} {:>8} {:>10} {:>9} {:>10} {:>9} {:>7}",
        "proxy",
        "req/s",
        "p50 µs",
        "p99 µs",
        "CPU µs/req",
        "hs/s",
        "CPU µs/hs",
        "peak MiB",
        "failed"
    );
    for r in rows {
        println!(
            "{:<19} {:>9.0} {:>8} {:>8} {:>10.1} {:>9.0} {:>10.0} {:>9.1} {:>7}",
            r.name,
            r.requests_per_s,
            r.p50_us,
            r.p99_us,
            r.cpu_us_per_request,
            r.handshakes_per_s,
            r.cpu_us_per_handshake,
            r.peak_rss_mib,
            r.failed
        );
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    if let Some(nginx) = find("nginx") {
        for r in rows.iter().filter(|r| r.name != "nginx") {
            print_ratio(r, nginx);
        }
    }
    // The cost of running as one replica of a fleet, and of judging MCP messages.
    for other in ["warden+redis", "warden+mcp"] {
        if let (Some(plain), Some(row)) = (find("warden"), find(other)) {
            print_ratio(row, plain);
        }
    }
}

/// `row / base` for every figure.
fn print_ratio(r: &Figures, base: &Figures) {
    println!(
        "{:<19} {:>9.2} {:>8.2} {:>8.2} {:>10.2} {:>9.2} {:>10.2} {:>9.2}",
        format!("{}/{}", r.name, base.name),
        r.requests_per_s / base.requests_per_s,
        f64::from(r.p50_us) / f64::from(base.p50_us.max(1)),
        f64::from(r.p99_us) / f64::from(base.p99_us.max(1)),
        r.cpu_us_per_request / base.cpu_us_per_request,
        r.handshakes_per_s / base.handshakes_per_s,
        r.cpu_us_per_handshake / base.cpu_us_per_handshake,
        r.peak_rss_mib / base.peak_rss_mib.max(f64::MIN_POSITIVE),
    );
}
