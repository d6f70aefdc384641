//! The load generator: mTLS agents speaking HTTP/1.1 through hyper, either on long-lived
//! keep-alive connections or with a new handshake for every request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The one request every agent sends: allowed by both proxies' policies.
pub const PATH: &str = "/inventory/items";
/// The MCP route of the `warden+mcp` row.
pub const MCP_PATH: &str = "/inventory/mcp";

/// What each agent sends, again and again.
#[derive(Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: &'static str,
    /// A JSON body, for a POST.
    pub body: Option<Bytes>,
}

impl Call {
    /// `GET /inventory/items`.
    pub fn rest() -> Call {
        Call {
            method: "GET",
            path: PATH,
            body: None,
        }
    }

    /// An MCP `tools/call` of `tool` of about 1 KiB, as an agent's tool call is.
    pub fn mcp(tool: &str) -> Call {
        let note = "x".repeat(900);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"sku":"A-1","warehouse":"north","note":"{note}"}}}}}}"#
        );
        Call {
            method: "POST",
            path: MCP_PATH,
            body: Some(Bytes::from(body)),
        }
    }
}

/// A TLS 1.3, X25519-only client presenting the agent's certificate. Resumption is off so that
/// every new connection is a full handshake, as a fleet of distinct agents would cause.
pub fn client_config(
    ca_der: &[u8],
    cert_der: &[u8],
    key_pem: &str,
) -> Result<Arc<ClientConfig>, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| format!("CA: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("agent key: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![CertificateDer::from(cert_der.to_vec())], key)
        .map_err(|e| format!("client cert: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Where and how the agents connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Arc<ClientConfig>,
    pub call: Call,
}

/// The measured part of a phase: requests are counted when they complete inside it.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn after(warm_up: Duration, length: Duration) -> Window {
        let start = Instant::now() + warm_up;
        Window {
            start,
            end: start + length,
        }
    }

    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t <= self.end
    }
}

/// What the agents of one phase saw inside the window.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub latencies_us: Vec<u32>,
}

impl Tally {
    fn record(&mut self, window: &Window, started: Instant, outcome: Result<StatusCode, String>) {
        let done = Instant::now();
        if !window.contains(done) {
            return;
        }
        match outcome {
            Ok(StatusCode::OK) => {
                self.ok += 1;
                let us = done.duration_since(started).as_micros();
                self.latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            _ => self.failed += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies_us.extend(other.latencies_us);
    }

    /// The latency at quantile `q` (0..=1) in µs; sorts on first use.
    pub fn quantile_us(&mut self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        self.latencies_us.sort_unstable();
        let last = self.latencies_us.len() - 1;
        let i = ((last as f64) * q).round() as usize;
        self.latencies_us[i.min(last)]
    }
}

/// A new TLS connection and an HTTP/1.1 session on it.
pub async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(target.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// Sends `call` and reads the whole response; its status.
pub async fn request(
    send: &mut SendRequest<Full<Bytes>>,
    call: &Call,
) -> Result<StatusCode, String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header("host", "localhost");
    if call.body.is_some() {
        req = req
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
    }
    let req = req
        .body(Full::new(call.body.clone().unwrap_or_default()))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// One agent on one keep-alive connection, sending back to back until the window ends; it
/// reconnects only when the proxy closes the connection.
async fn keep_alive_agent(target: Target, window: Window) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let started = Instant::now();
        let mut send = match connect(&target).await {
            Ok(s) => s,
            Err(e) => {
                tally.record(&window, started, Err(e));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < window.end {
            let started = Instant::now();
            let outcome = request(&mut send, &target.call).await;
            let broken = outcome.is_err();
            tally.record(&window, started, outcome);
            if broken {
                break;
            }
        }
    }
    tally
}

/// One agent making a new connection, and so a full mTLS handshake, for every request.
async fn handshake_agent(target: Target, window: Window) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let started = Instant::now();
        let outcome = match connect(&target).await {
            Ok(mut send) => request(&mut send, &target.call).await,
            Err(e) => Err(e),
        };
        tally.record(&window, started, outcome);
    }
    tally
}

#[derive(Clone, Copy)]
pub enum Mode {
    KeepAlive,
    Handshake,
}

/// Runs `agents` agents over `window`, calling `at_edges` when the window opens and when it
/// closes (to read the proxy's CPU), and merges what they saw.
pub async fn run<T>(
    target: &Target,
    mode: Mode,
    agents: usize,
    window: Window,
    at_edges: impl Fn() -> T,
) -> (Tally, T, T) {
    let tasks: Vec<_> = (0..agents)
        .map(|_| spawn_agent(mode, target.clone(), window))
        .collect();
    tokio::time::sleep_until(window.start.into()).await;
    let first = at_edges();
    tokio::time::sleep_until(window.end.into()).await;
    let second = at_edges();
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(part) = t.await {
            tally.merge(part);
        }
    }
    (tally, first, second)
}

fn spawn_agent(mode: Mode, target: Target, window: Window) -> tokio::task::JoinHandle<Tally> {
    fn spawn(f: impl Future<Output = Tally> + Send + 'static) -> tokio::task::JoinHandle<Tally> {
        tokio::spawn(f)
    }
    match mode {
        Mode::KeepAlive => spawn(keep_alive_agent(target, window)),
        Mode::Handshake => spawn(handshake_agent(target, window)),
    }
}
