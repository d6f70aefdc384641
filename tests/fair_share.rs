//! One hostile agent cannot starve a well-behaved one. The real binary runs under a limit of
//! 1,024 file descriptors while the hostile agent holds many HTTP/2 streams against a slow
//! upstream, runs a client that never reads a large response, and keeps 500 bare TCP sockets
//! open (reopening each as warden cuts it); every request of the well-behaved agent succeeds.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::client::{client_config, AgentClient};
use support::gate::{self, gate_policy};
use support::pki::TestPki;
use support::wait;
use support::warden::{admin_request, config_yaml, write_config, WardenProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: &str = "limits:
  max_in_flight_per_agent: 64
  max_streams_per_connection: 100
  body_stall_timeout: 2s
  handshake_timeout: 2s";

const BARE_SOCKETS: usize = 500;
const HOSTILE_STREAMS: usize = 300;

fn h2_get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn h2_sender(
    pki: &TestPki,
    name: &str,
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let cert = pki.agent(name);
    let c = AgentClient::with_config(client_config(pki, Some(&cert), &[b"h2"]), addr);
    let tls = c.connect().await.expect("h2 connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// Keeps `n` bare TCP sockets open against `addr`: each waits until warden cuts it, then
/// reconnects. Returns the count of cuts seen.
fn hold_bare_sockets(addr: SocketAddr, n: usize) -> Arc<AtomicUsize> {
    let cuts = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let cuts = cuts.clone();
        tokio::spawn(async move {
            loop {
                let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut buf = [0u8; 64];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                cuts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    cuts
}

/// Many streams on two HTTP/2 connections, all to the slow path; returns how many were refused
/// `429` and a handle on the rest.
async fn flood_streams(pki: &TestPki, addr: SocketAddr) -> Arc<AtomicUsize> {
    let refused = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let send = h2_sender(pki, "hostile", addr).await;
        for _ in 0..HOSTILE_STREAMS / 2 {
            let mut send = send.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                if let Ok(r) = send.send_request(h2_get("/gate/hold")).await {
                    if r.status() == 429 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    refused
}

/// A client that asks for an endless response and never reads it.
async fn never_read(
    client: &AgentClient,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = client.connect().await.expect("connect");
    tls.write_all(b"GET /gate/endless HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_agent_does_not_starve_a_polite_one_under_1024_descriptors() {
    let pki = TestPki::new();
    let gate = gate::start().await;
    let log = pki.path().join("audit.jsonl");
    let top = format!("{LIMITS}\ntelemetry:\n  audit_log: {}\n", log.display());
    let config = write_config(
        &pki,
        "fair.yaml",
        &config_yaml(&pki, &gate_policy(&gate.url(), &top)),
    );
    let warden = WardenProcess::spawn_with_fd_limit(&config, 1024);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", warden.child.id())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(nofile.split_whitespace().any(|w| w == "1024"), "{nofile}");
    let (addr, admin) = (warden.addr, warden.admin.expect("admin address"));
    let started = Instant::now();

    // The hostile agent: bare sockets, many streams against a slow upstream, a non-reader.
    let hostile = AgentClient::new(&pki, &pki.agent("hostile"), addr);
    let _reader = never_read(&hostile).await;
    assert!(wait::until(Duration::from_secs(5), || async { gate.open() == 1 }).await);
    let cuts = hold_bare_sockets(addr, BARE_SOCKETS);
    let refused = flood_streams(&pki, addr).await;
    // Bare sockets are cut together at `handshake_timeout` and reconnect together, so the
    // pending handshakes and descriptors swing; the pressure is their peak, sampled throughout.
    let fd_dir = format!("/proc/{}/fd", warden.child.id());
    let (peak_pending, peak_fds) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let pressure = wait::until(Duration::from_secs(15), || async {
        let m = admin_request(admin, "GET", "/metrics", None).await.1;
        let pending = metric(&m, "warden_pending_handshakes ") as usize;
        let fds = std::fs::read_dir(&fd_dir).map_or(0, |d| d.count());
        peak_pending.fetch_max(pending, Ordering::Relaxed);
        peak_fds.fetch_max(fds, Ordering::Relaxed);
        gate.held() >= 60
            && peak_pending.load(Ordering::Relaxed) >= 400
            && peak_fds.load(Ordering::Relaxed) > BARE_SOCKETS
    })
    .await;
    let fds = peak_fds.load(Ordering::Relaxed);
    assert!(
        pressure,
        "the hostile load did not build up: held {}, peak pending handshakes {}, peak descriptors {fds}",
        gate.held(),
        peak_pending.load(Ordering::Relaxed)
    );

    // The polite agent, meanwhile: new connections and one HTTP/2 connection, all served.
    let polite = AgentClient::new(&pki, &pki.agent("polite"), addr);
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let t = Instant::now();
        assert_eq!(polite.get("/gate/ok").await.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    let send = h2_sender(&pki, "polite", addr).await;
    let streams: Vec<_> = (0..50)
        .map(|_| {
            let mut send = send.clone();
            tokio::spawn(async move {
                send.send_request(h2_get("/gate/ok"))
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    for s in streams {
        assert_eq!(s.await.unwrap().unwrap(), 200);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a polite request took {slowest:?}"
    );
    eprintln!("warden held {fds} of 1024 descriptors; slowest polite request {slowest:?}");

    // The hostile agent got exactly its share, and warden cut what it held without progress.
    assert!(gate.peak() <= 64, "peak {}", gate.peak());
    assert!(refused.load(Ordering::Relaxed) > 0);
    let cut = wait::until(Duration::from_secs(5), || async {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(r#""close_reason":"stalled""#))
    })
    .await;
    assert!(cut, "the non-reading client was not cut");
    assert!(cuts.load(Ordering::Relaxed) > 0, "no bare socket was cut");
    assert_eq!(admin_request(admin, "GET", "/healthz", None).await.0, 200);
    gate.release();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
