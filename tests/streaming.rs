//! Bodies stream both ways: server-sent events arrive while the upstream is still sending, large
//! bodies pass, WebSocket upgrades pass on allowed paths only.

mod support;

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use support::client::raw_status;
use support::fixture::Standard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn first_sse_event_arrives_while_the_upstream_is_still_sending() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let started = Instant::now();
    let resp = c.get_streaming("/inventory/sse").await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = loop {
        let frame = body.frame().await.expect("a frame").expect("no error");
        if let Ok(data) = frame.into_data() {
            break data;
        }
    };
    // The upstream sends three events 1.5 s apart: the first must not wait for the rest.
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "first event took {:?}",
        started.elapsed()
    );
    assert_eq!(&first[..], b"data: event 0\n\n");
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: event 1\n\ndata: event 2\n\n");
    assert!(started.elapsed() >= Duration::from_millis(2900));
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let r = c.get("/inventory/big").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1 << 20);
    let payload = "y".repeat(3 << 20);
    let r = c
        .request(
            "POST",
            "/inventory/orders",
            &[("x-purpose", "restock")],
            &payload,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.inventory.recorder.last().unwrap().body.len(), 3 << 20);
    let m = s.warden.metrics();
    assert!(m.contains(r#"direction="in"} 3145728"#), "{m}");
}

#[tokio::test]
async fn websocket_upgrade_passes_on_an_allowed_path_only() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let mut tls = c.connect().await.unwrap();
    tls.write_all(
        b"GET /inventory/ws HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(raw_status(&head), 101, "{head}");
    tls.write_all(b"ping-frame").await.unwrap();
    let mut echo = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping-frame");
    let seen = s.inventory.recorder.last().unwrap();
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(
        seen.headers["x-warden-agent"],
        support::pki::agent_id("inventory-bot").as_str()
    );

    let raw = c
        .raw(
            b"GET /inventory/admin/ws HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
            Duration::from_millis(500),
        )
        .await;
    assert_eq!(raw_status(&raw), 403, "{raw}");
}

#[tokio::test]
async fn h2c_upgrade_is_never_forwarded() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let raw = c
        .raw(
            b"GET /inventory/items HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
            Duration::from_millis(500),
        )
        .await;
    assert_eq!(raw_status(&raw), 200, "{raw}");
    let seen = s.inventory.recorder.last().unwrap();
    assert!(!seen.headers.contains_key("upgrade"));
    assert!(!seen.headers.contains_key("http2-settings"));
}
