//! Connection and request limits: max_connections, slowloris, header and body sizes, idle.

mod support;

use std::time::{Duration, Instant};

use support::client::raw_status;
use support::fixture::Standard;
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
