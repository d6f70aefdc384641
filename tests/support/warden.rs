//! Starting warden for a test: in-process through `warden::app::start`, or as the real binary
//! when the test needs signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warden::app::{start, Running, StartOptions};
use warden::clock::Clock;

use super::pki::{TestPki, TRUST_DOMAIN};

/// The common head of a test config: listeners on port 0 and the test PKI; `rest` is appended.
pub fn config_yaml(pki: &TestPki, rest: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
tls:
  cert: {cert}
  key: {key}
  client_ca: {ca}
  crl: [{crl}]
identity:
  trust_domain: {TRUST_DOMAIN}
{rest}"#,
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca_path.display(),
        crl = pki.crl_path.display(),
    )
}

pub struct TestWarden {
    pub running: Running,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
}

impl TestWarden {
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn metrics(&self) -> String {
        self.running.runtime.metrics.render()
    }

    /// Writes and syncs every audit record queued so far.
    pub async fn flush_audit(&self) {
        let audit = self
            .running
            .runtime
            .audit
            .as_ref()
            .expect("an audit log is configured");
        audit.flush().await.expect("audit flush");
    }

    /// Reloads from the config file as SIGHUP would.
    pub fn reload(&self) -> Result<u64, Vec<warden::config::load::ConfigError>> {
        self.running.runtime.config.reload()
    }
}

pub fn write_config(pki: &TestPki, name: &str, yaml: &str) -> PathBuf {
    let path = pki.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Writes `yaml` as the config and starts warden in this process.
pub async fn start_warden(pki: &TestPki, yaml: &str) -> TestWarden {
    start_warden_with(pki, yaml, Clock::system()).await
}

/// In-process tests serve on worker threads as `serve` does (one per core, each with its own
/// socket), so every gate is tested where connections really run.
pub async fn start_warden_with(pki: &TestPki, yaml: &str, clock: Clock) -> TestWarden {
    let options = StartOptions {
        clock,
        watch_files: false,
        threads: warden::app::Threads::Workers,
    };
    start_warden_at(&write_config(pki, "warden.yaml", yaml), options).await
}

/// Starts warden in this process on the config file at `config_path`.
pub async fn start_warden_at(config_path: &Path, options: StartOptions) -> TestWarden {
    super::init_crypto();
    let config_path = config_path.to_path_buf();
    let running = start(&config_path, options)
        .await
        .unwrap_or_else(|e| panic!("warden did not start: {e}"));
    let addr = running.agent_addr;
    let admin = running.admin_addr.expect("admin listener");
    TestWarden {
        running,
        addr,
        admin,
        config_path,
    }
}

/// The real binary, serving `config`.
pub struct WardenProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WardenProcess {
    pub fn spawn(config: &Path) -> Self {
        Self::spawn_with(config, &[])
    }

    pub fn spawn_with(config: &Path, extra: &[&str]) -> Self {
        Self::spawn_env(config, extra, &[("WARDEN_LOG", Some("warden=info"))])
    }

    /// With environment variables set (`Some`) or removed (`None`). `RUST_LOG`, `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` are removed unless given, so the test's own environment does not leak
    /// into the child's logs or trust store.
    pub fn spawn_env(config: &Path, extra: &[&str], env: &[(&str, Option<&str>)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
        cmd.args(["serve", "--config"]).arg(config).args(extra);
        Self::spawn_command(cmd, env)
    }

    /// The binary under `ulimit -n nofile` (soft and hard), as a small host would run it.
    pub fn spawn_with_fd_limit(config: &Path, nofile: u32) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                r#"ulimit -n {nofile} && exec "$0" serve --config "$1""#
            ))
            .arg(env!("CARGO_BIN_EXE_warden"))
            .arg(config);
        Self::spawn_command(cmd, &[("WARDEN_LOG", Some("warden=info"))])
    }

    fn spawn_command(mut cmd: Command, env: &[(&str, Option<&str>)]) -> Self {
        cmd.env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env_remove("RUST_LOG")
            .env_remove("WARDEN_LOG");
        for (name, value) in env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warden");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("warden serving") {
                    let _ = tx.send(line.clone());
                }
                keep.lock().unwrap().push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("warden did not start: {:?}", lines.lock().unwrap());
            });
        // A JSON log line carries the same fields as keys.
        let line = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(json) => format!(
                "agent_addr={} admin={}",
                json["agent_addr"].as_str().unwrap_or(""),
                json["admin"].as_str().unwrap_or("")
            ),
            Err(_) => line,
        };
        let field = |name: &str| -> Option<SocketAddr> {
            let start = line.find(name)? + name.len();
            let rest = &line[start..];
            let end = rest
                .find(|c: char| c == ')' || c.is_whitespace())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        };
        let Some(addr) = field("agent_addr=") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no agent address in the log line: {line}");
        };
        let admin = field("admin=Some(");
        WardenProcess {
            child,
            addr,
            admin,
            stderr_lines: lines,
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for WardenProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.1 request to the admin listener.
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    warden::admin::call(addr, method, path, token).await
}
