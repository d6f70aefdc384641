//! Connection and request limits: max_connections, slowloris, header and body sizes, idle; the
//! fair shares (requests in flight per agent, streams per connection, stalled bodies either way,
//! handshake budgets, the admin listener's own limits); and the refusals of the HTTP layer,
//! recorded like any other.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::client::{client_config, raw_status, AgentClient};
use support::fixture::Standard;
use support::gate::Gated;
use support::keepalive::KeepAlive;
use support::wait;
use support::warden::admin_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: &str = "limits:
  max_connections: 2
  header_read_timeout: 1s
  handshake_timeout: 1s
  idle_timeout: 1s
  max_request_header_bytes: 8KiB
  max_request_body_bytes: 1KiB";

/// Reads until the peer closes; returns how long that took, or None if it stayed open.
async fn closed_within<S: AsyncReadExt + Unpin>(s: &mut S, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn max_connections_refuses_the_next_connection() {
    let s = Standard::start_with(LIMITS).await;
    let c = s.client("inventory-bot");
    let a = c.connect().await.unwrap();
    let b = c.connect().await.unwrap();
    assert!(c.handshake_refused().await, "a third connection was served");
    assert!(s
        .warden
        .metrics()
        .contains("warden_connections_refused_total 1"));
    drop(a);
    drop(b);
    // The slots free once the server has seen both connections close.
    let served = support::wait::until(Duration::from_secs(5), || async {
        c.send(
            http::Request::get("/inventory/items")
                .body(Default::default())
                .unwrap(),
        )
        .await
        .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(served, "the freed slots were not reused");
}

#[tokio::test]
async fn slowloris_is_cut_off() {
    let s = Standard::start_with(LIMITS).await;
    let c = s.client("inventory-bot");
    // Headers that never finish.
    let mut tls = c.connect().await.unwrap();
    tls.write_all(b"GET /inventory/items HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut tls, Duration::from_secs(4))
        .await
        .expect("slow headers were not cut off");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // A TCP connection that never starts TLS.
    let mut tcp = tokio::net::TcpStream::connect(s.warden.addr).await.unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(4))
        .await
        .expect("silent connection was not cut off");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let s = Standard::start_with(LIMITS).await;
    let c = s.client("inventory-bot");
    let big = "a".repeat(10 * 1024);
    let req = format!("GET /inventory/items HTTP/1.1\r\nhost: localhost\r\nx-big: {big}\r\n\r\n");
    let raw = c.raw(req.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(raw_status(&raw), 431, "{raw}");
    assert_eq!(s.inventory.recorder.count(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = Standard::start_with(LIMITS).await;
    let c = s.client("inventory-bot");
    let big = "z".repeat(2048);
    let r = c
        .request(
            "POST",
            "/inventory/orders",
            &[("x-purpose", "restock")],
            &big,
        )
        .await;
    assert_eq!((r.status, r.error().as_str()), (413, "body_too_large"));
    assert_eq!(s.inventory.recorder.count(), 0);
    // Chunked, so no Content-Length announces the size: the cap cuts the stream.
    let chunk = "z".repeat(600);
    let req = format!(
        "POST /inventory/orders HTTP/1.1\r\nhost: localhost\r\nx-purpose: restock\r\ntransfer-encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let raw = c.raw(req.as_bytes(), Duration::from_millis(1000)).await;
    assert_eq!(raw_status(&raw), 413, "{raw}");
    // Small bodies pass.
    let r = c
        .request(
            "POST",
            "/inventory/orders",
            &[("x-purpose", "restock")],
            "ok",
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let s = Standard::start_with(LIMITS).await;
    let c = s.client("inventory-bot");
    let mut tls = c.connect().await.unwrap();
    tls.write_all(b"GET /inventory/items HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
    let took = closed_within(&mut tls, Duration::from_secs(5))
        .await
        .expect("idle connection stayed open");
    assert!(took < Duration::from_millis(3000), "{took:?}");
}

// Fair shares: one agent's load never takes what another agent needs.

/// The value of the first metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
}

/// The sum of every metric line that contains all of `parts`.
fn metric_sum(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn max_in_flight_per_agent_refuses_one_agent_while_another_is_served_promptly() {
    let g = Gated::start("limits:\n  max_in_flight_per_agent: 3").await;
    let hostile = g.client("hostile");
    let held: Vec<_> = (0..3)
        .map(|_| {
            let c = hostile.clone();
            tokio::spawn(async move { c.get("/gate/hold").await })
        })
        .collect();
    assert!(wait::until(Duration::from_secs(5), || async { g.gate.held() == 3 }).await);
    let r = hostile.get("/gate/hold").await;
    assert_eq!((r.status, r.error().as_str()), (429, "concurrency_limited"));
    let polite = g.client("polite");
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(polite.get("/gate/ok").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    g.gate.release();
    for h in held {
        assert_eq!(h.await.unwrap().status, 200);
    }
    assert_eq!(hostile.get("/gate/ok").await.status, 200, "slots not freed");
}

/// One HTTP/2 connection as `name`: its request sender, and the task that ends with it.
async fn h2_connection(
    g: &Gated,
    name: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let cert = g.pki.agent(name);
    let c = AgentClient::with_config(client_config(&g.pki, Some(&cert), &[b"h2"]), g.warden.addr);
    let tls = c.connect().await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task)
}

fn h2_get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn max_streams_per_connection_caps_concurrent_streams_on_one_connection() {
    let g = Gated::start("limits:\n  max_streams_per_connection: 2").await;
    let (mut send, _conn) = h2_connection(&g, "hostile").await;
    // One exchange first, so the client has warden's SETTINGS (a client that opens streams past
    // the limit before reading them gets them refused: REFUSED_STREAM).
    assert_eq!(
        send.send_request(h2_get("/gate/ok"))
            .await
            .unwrap()
            .status(),
        200
    );
    let streams: Vec<_> = (0..6)
        .map(|_| {
            let mut send = send.clone();
            tokio::spawn(async move {
                send.send_request(h2_get("/gate/hold"))
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    assert!(wait::until(Duration::from_secs(5), || async { g.gate.held() == 2 }).await);
    assert!(
        wait::holds_for(Duration::from_millis(500), || async { g.gate.held() <= 2 }).await,
        "more than 2 streams of one connection reached the upstream"
    );
    g.gate.release();
    for s in streams {
        assert_eq!(s.await.unwrap().unwrap(), 200);
    }
    assert_eq!(g.gate.peak(), 2);
}

const STALL: &str = "limits:\n  body_stall_timeout: 1s";

#[tokio::test]
async fn body_stall_timeout_cuts_a_stalled_response_and_frees_its_upstream_connection() {
    let g = Gated::start(STALL).await;
    let resp = g.client("hostile").get_streaming("/gate/stall").await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"start");
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect()).await;
    let took = started.elapsed();
    assert!(matches!(rest, Ok(Err(_))), "the stalled body was not cut");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(
        wait::until(Duration::from_secs(1), || async { g.gate.open() == 0 }).await,
        "the upstream connection was kept"
    );
}

#[tokio::test]
async fn body_stall_timeout_cuts_a_stalled_request_body_and_frees_its_upstream_connection() {
    let g = Gated::start(STALL).await;
    let c = g.client("hostile");
    let started = Instant::now();
    let raw = c
        .raw(
            b"POST /gate/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1000\r\n\r\nten bytes.",
            Duration::from_secs(4),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(raw_status(&raw), 408, "{raw}");
    assert!(raw.contains("body_stalled"), "{raw}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(wait::until(Duration::from_secs(1), || async { g.gate.open() == 0 }).await);
    assert_eq!(g.gate.uploads(), vec![Err(10)]);
}

#[tokio::test]
async fn body_stall_timeout_cuts_a_request_body_the_upstream_stopped_reading() {
    let g =
        Gated::start("limits:\n  body_stall_timeout: 500ms\n  max_request_body_bytes: 64MiB").await;
    // More than the socket buffers on both sides hold, so the upstream's silence stops the body.
    const LEN: usize = 48 << 20;
    let mut tls = g.client("hostile").connect().await.unwrap();
    let writer = tokio::spawn(async move {
        let head =
            format!("POST /gate/deaf HTTP/1.1\r\nhost: localhost\r\ncontent-length: {LEN}\r\n\r\n");
        let _ = tls.write_all(head.as_bytes()).await;
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..LEN >> 20 {
            if tls.write_all(&chunk).await.is_err() {
                break;
            }
        }
        tls
    });
    let recorded = wait::until(Duration::from_secs(6), || async {
        g.records("request")
            .await
            .iter()
            .any(|r| r["status"] == 504)
    })
    .await;
    assert!(recorded, "{:?}", g.records("request").await);
    let rec = &g.records("request").await[0];
    assert_eq!(rec["reason"], "upstream_timeout");
    assert!(wait::until(Duration::from_secs(5), || async { g.gate.open() == 0 }).await);
    let uploads = g.gate.uploads();
    assert!(matches!(uploads[..], [Err(n)] if n < LEN), "{uploads:?}");
    writer.abort();
}

#[tokio::test]
async fn an_agent_that_stops_reading_is_cut_and_its_upstream_freed() {
    let g = Gated::start(STALL).await;
    // HTTP/1.1: the socket fills and warden's writes wait.
    let mut tls = g.client("hostile").connect().await.unwrap();
    tls.write_all(b"GET /gate/endless HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(wait::until(Duration::from_secs(2), || async { g.gate.open() == 1 }).await);
    assert!(
        wait::until(Duration::from_secs(4), || async { g.gate.open() == 0 }).await,
        "a non-reading HTTP/1.1 agent kept its upstream connection"
    );
    // HTTP/2: the stream's flow-control window fills and nobody polls the body.
    let (mut send, mut conn) = h2_connection(&g, "hostile").await;
    let resp = send.send_request(h2_get("/gate/endless")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        wait::until(Duration::from_secs(4), || async { g.gate.open() == 0 }).await,
        "a non-reading HTTP/2 agent kept its upstream connection"
    );
    assert!(tokio::time::timeout(Duration::from_secs(1), &mut conn)
        .await
        .is_ok());
    drop(resp);
    let stalled = g.records("connection").await;
    let stalled = stalled
        .iter()
        .filter(|r| r["close_reason"] == "stalled")
        .count();
    assert_eq!(stalled, 2);
    drop(tls);
}

#[tokio::test]
async fn handshake_timeout_and_pending_limit_keep_bare_sockets_from_agents_slots() {
    let g = Gated::start(
        "limits:\n  max_connections: 2\n  max_pending_handshakes: 4\n  handshake_timeout: 1s",
    )
    .await;
    let pending = "warden_pending_handshakes ";
    let mut bare = Vec::new();
    for _ in 0..3 {
        bare.push(tokio::net::TcpStream::connect(g.warden.addr).await.unwrap());
    }
    assert!(
        wait::until(Duration::from_secs(2), || async {
            metric(&g.warden.metrics(), pending) == Some(3.0)
        })
        .await
    );
    // More bare sockets than max_connections, and both of the agents' slots are still free.
    let polite = g.client("polite");
    let mut a = KeepAlive::open(&polite).await.unwrap();
    // The client ends its handshake before warden reads its last flight: only then is the pending
    // place free for the next one (4 places, 3 held by bare sockets).
    assert!(
        wait::until(Duration::from_secs(2), || async {
            metric(&g.warden.metrics(), pending) == Some(3.0)
        })
        .await
    );
    let mut b = KeepAlive::open(&polite).await.unwrap();
    assert_eq!(a.get("/gate/ok").await.unwrap().status, 200);
    assert_eq!(b.get("/gate/ok").await.unwrap().status, 200);
    // Past max_pending_handshakes, a new socket is closed at once.
    bare.push(tokio::net::TcpStream::connect(g.warden.addr).await.unwrap());
    assert!(
        wait::until(Duration::from_secs(2), || async {
            metric(&g.warden.metrics(), pending) == Some(4.0)
        })
        .await
    );
    let mut fifth = tokio::net::TcpStream::connect(g.warden.addr).await.unwrap();
    let cut = closed_within(&mut fifth, Duration::from_millis(500)).await;
    assert!(
        cut.is_some(),
        "a socket past max_pending_handshakes was kept"
    );
    // The bare sockets are cut after handshake_timeout.
    for s in &mut bare {
        let took = closed_within(s, Duration::from_secs(3)).await;
        assert!(took.is_some(), "a bare socket outlived handshake_timeout");
    }
    // The client sees the close before warden's worker thread counts it.
    wait::until(Duration::from_secs(2), || async {
        metric(&g.warden.metrics(), pending) == Some(0.0)
    })
    .await;
    let m = g.warden.metrics();
    assert!(
        metric_sum(&m, &[r#"reason="timeout""#, "warden_tls_handshakes_total"]) >= 4.0,
        "{m}"
    );
    assert!(metric_sum(&m, &[r#"reason="pending_limit""#]) >= 1.0, "{m}");
    assert_eq!(metric(&m, pending), Some(0.0));
    assert_eq!(a.get("/gate/ok").await.unwrap().status, 200);
}

#[tokio::test]
async fn the_admin_listener_cuts_slow_heads_and_caps_its_connections() {
    let g = Gated::start("limits:\n  header_read_timeout: 1s\n  idle_timeout: 30s").await;
    let admin = g.warden.admin;
    let mut slow = tokio::net::TcpStream::connect(admin).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(4)).await;
    let took = took.expect("a slow admin request head was not cut");
    assert!(took < Duration::from_millis(2500), "{took:?}");

    let mut held = Vec::new();
    for _ in 0..warden::admin::MAX_ADMIN_CONNECTIONS {
        held.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(admin).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_millis(500))
            .await
            .is_some(),
        "the admin listener took more than 64 connections"
    );
    assert_eq!(admin_request(admin, "GET", "/healthz", None).await.0, 0);
    drop(held);
    let back = wait::until(Duration::from_secs(2), || async {
        admin_request(admin, "GET", "/healthz", None).await.0 == 200
    })
    .await;
    assert!(back, "admin slots were not freed");
}

#[tokio::test]
async fn the_admin_listener_closes_idle_connections() {
    let g = Gated::start("limits:\n  header_read_timeout: 30s\n  idle_timeout: 1s").await;
    let mut tcp = tokio::net::TcpStream::connect(g.warden.admin)
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tcp.read(&mut buf).await.unwrap();
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
    let took = closed_within(&mut tcp, Duration::from_secs(4)).await;
    let took = took.expect("an idle admin connection stayed open");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

// Nothing unrecorded: what the HTTP layer refuses is answered, audited and counted.

#[tokio::test]
async fn http_layer_refusals_are_recorded_with_the_agent() {
    let g = Gated::start("limits:\n  max_request_header_bytes: 8KiB").await;
    let c = g.client("hostile");
    let big = format!(
        "GET /gate/ok HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let cases: [(&[u8], u16); 4] = [
        (big.as_bytes(), 431),
        (
            b"GET /gate/ok HTTP/1.1\r\nhost: localhost\r\nno colon here\r\n\r\n",
            400,
        ),
        (b"GET /gate/ok HTTP/7.3\r\nhost: localhost\r\n\r\n", 400),
        (b"GET /gate/ok HTTP/1.1\r\n\r\n", 400),
    ];
    for (raw, want) in cases {
        let got = c.raw(raw, Duration::from_millis(500)).await;
        assert_eq!(raw_status(&got), want, "{got}");
    }
    let id = support::pki::agent_id("hostile");
    let refused = wait::until(Duration::from_secs(2), || async {
        g.records("request").await.len() == 4
    })
    .await;
    assert!(refused, "{:?}", g.records("request").await);
    let records = g.records("request").await;
    for r in &records {
        assert_eq!(r["agent"], id.as_str(), "{r}");
        assert_eq!(r["decision"], "deny", "{r}");
    }
    let by = |reason: &str, status: u16| {
        records
            .iter()
            .filter(|r| r["reason"] == reason && r["status"] == status)
            .count()
    };
    assert_eq!(
        (by("headers_too_large", 431), by("bad_request", 400)),
        (1, 3)
    );
    let m = g.warden.metrics();
    let agent = format!(r#"agent="{id}""#);
    let deny = r#"decision="deny""#;
    assert_eq!(
        metric_sum(&m, &[&agent, deny, r#"reason="headers_too_large""#]),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, &[&agent, deny, r#"reason="bad_request""#]),
        3.0,
        "{m}"
    );
    assert_eq!(
        g.gate
            .state
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_malformed_chunked_body_is_bad_request_not_a_502() {
    let g = Gated::start("").await;
    let raw = g
        .client("hostile")
        .raw(
            b"POST /gate/hold HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(raw_status(&raw), 400, "{raw}");
    assert!(raw.contains("bad_request"), "{raw}");
    let records = g.records("request").await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0]["reason"].as_str(), records[0]["status"].as_u64()),
        (Some("bad_request"), Some(400))
    );
}
