//! An upstream for fair-share tests, on 127.0.0.1:0, written on raw TCP so a test sees exactly
//! when warden opens and drops its connections. By path:
//! `/gate/hold` waits until [`Gate::release`] (counting requests held and their peak),
//! `/gate/stall` sends a response head and one chunk, then nothing,
//! `/gate/endless` streams chunks for as long as warden takes them,
//! `/gate/upload` reads a `Content-Length` body and records whether it arrived whole,
//! `/gate/deaf` stops reading for 2 s, then drains until warden drops it,
//! anything else answers `200 ok` at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::websocket::{header, read_head};

#[derive(Default)]
pub struct GateState {
    /// Requests waiting in `/gate/hold` now, and the most at once.
    pub held: AtomicUsize,
    pub peak: AtomicUsize,
    /// Connections from warden open now, and ever accepted.
    pub open: AtomicUsize,
    pub accepted: AtomicUsize,
    /// Upload bodies: `Ok(len)` when whole, `Err(received)` when the connection ended first.
    pub uploads: Mutex<Vec<Result<usize, usize>>>,
}

pub struct Gate {
    pub addr: SocketAddr,
    pub state: Arc<GateState>,
    release: watch::Sender<bool>,
}

impl Gate {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets every held request (and every later one) through.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    pub fn uploads(&self) -> Vec<Result<usize, usize>> {
        self.state.uploads.lock().unwrap().clone()
    }
}

pub async fn start() -> Gate {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (release, released) = watch::channel(false);
    let gate = Gate {
        addr: listener.local_addr().unwrap(),
        state: Arc::default(),
        release,
    };
    let state = gate.state.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (state, released) = (state.clone(), released.clone());
            state.open.fetch_add(1, Ordering::SeqCst);
            state.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                serve(tcp, &state, released).await;
                state.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    gate
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

/// Serves requests on one connection until it ends.
async fn serve(mut tcp: TcpStream, state: &GateState, mut released: watch::Receiver<bool>) {
    while let Some(head) = read_head(&mut tcp).await {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let done = match path.as_str() {
            "/gate/hold" => hold(&mut tcp, state, &mut released).await,
            "/gate/stall" => stall(&mut tcp).await,
            "/gate/endless" => endless(&mut tcp).await,
            "/gate/upload" => upload(&mut tcp, state, &head).await,
            "/gate/deaf" => deaf(&mut tcp, state).await,
            _ => tcp.write_all(OK).await.is_err(),
        };
        if done {
            return;
        }
    }
}

/// Each returns whether the connection is over.
async fn hold(
    tcp: &mut TcpStream,
    state: &GateState,
    released: &mut watch::Receiver<bool>,
) -> bool {
    let now = state.held.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak.fetch_max(now, Ordering::SeqCst);
    let mut probe = [0u8; 1];
    let gone = tokio::select! {
        _ = released.wait_for(|r| *r) => false,
        // warden gave up on the request: the connection closed under it.
        _ = tcp.read(&mut probe) => true,
    };
    state.held.fetch_sub(1, Ordering::SeqCst);
    gone || tcp.write_all(OK).await.is_err()
}

async fn stall(tcp: &mut TcpStream) -> bool {
    let _ = tcp.write_all(CHUNKED).await;
    let _ = tcp.write_all(b"5\r\nstart\r\n").await;
    // Nothing more, ever: wait for warden to drop the connection.
    let mut buf = [0u8; 1024];
    while let Ok(n) = tcp.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    true
}

async fn endless(tcp: &mut TcpStream) -> bool {
    if tcp.write_all(CHUNKED).await.is_err() {
        return true;
    }
    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
    while tcp.write_all(chunk.as_bytes()).await.is_ok() {}
    true
}

async fn upload(tcp: &mut TcpStream, state: &GateState, head: &str) -> bool {
    let want: usize = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while got < want {
        match tcp.read(&mut buf[..(want - got).min(16 * 1024)]).await {
            Ok(0) | Err(_) => {
                state.uploads.lock().unwrap().push(Err(got));
                return true;
            }
            Ok(n) => got += n,
        }
    }
    state.uploads.lock().unwrap().push(Ok(got));
    tcp.write_all(OK).await.is_err()
}

/// Reads nothing for 2 s (an upstream that stops reading the request body), then drains the
/// connection until warden drops it, recording what arrived as an incomplete upload.
async fn deaf(tcp: &mut TcpStream, state: &GateState) -> bool {
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = tcp.read(&mut buf).await {
        if n == 0 {
            break;
        }
        got += n;
    }
    state.uploads.lock().unwrap().push(Err(got));
    true
}

/// A policy serving the gate on `/gate` to two agents, `hostile` and `polite`; `extra_top` goes
/// first (e.g. `limits:`).
pub fn gate_policy(gate_url: &str, extra_top: &str) -> String {
    format!(
        r#"{extra_top}
upstreams:
  gate:
    url: {gate_url}
routes:
  - path_prefix: /gate
    upstream: gate
roles:
  gate-agent:
    upstreams: [gate]
    allow:
      - methods: [GET, POST]
        paths: ["/gate/**"]
agents:
  - id: spiffe://example.org/agent/hostile
    roles: [gate-agent]
  - id: spiffe://example.org/agent/polite
    roles: [gate-agent]
"#
    )
}

/// warden in this process in front of a [`Gate`], with an audit log.
pub struct Gated {
    pub pki: super::pki::TestPki,
    pub gate: Gate,
    pub warden: super::warden::TestWarden,
    pub log: std::path::PathBuf,
}

impl Gated {
    /// `limits` is the YAML of a `limits:` section (or empty).
    pub async fn start(limits: &str) -> Gated {
        let pki = super::pki::TestPki::new();
        let gate = start().await;
        let log = pki.path().join("audit.jsonl");
        let top = format!("{limits}\ntelemetry:\n  audit_log: {}\n", log.display());
        let yaml = super::warden::config_yaml(&pki, &gate_policy(&gate.url(), &top));
        let warden = super::warden::start_warden(&pki, &yaml).await;
        Gated {
            pki,
            gate,
            warden,
            log,
        }
    }

    pub fn client(&self, name: &str) -> super::client::AgentClient {
        super::client::AgentClient::new(&self.pki, &self.pki.agent(name), self.warden.addr)
    }

    pub fn h2_client(&self, name: &str) -> super::client::AgentClient {
        super::client::AgentClient::h2(&self.pki, &self.pki.agent(name), self.warden.addr)
    }

    /// The audit records of `kind`, after a flush.
    pub async fn records(&self, kind: &str) -> Vec<serde_json::Value> {
        self.warden.flush_audit().await;
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == kind)
            .collect()
    }
}
