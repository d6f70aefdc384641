//! Step 1 of the decision order: handshakes warden refuses, each counted by reason.

mod support;

use std::time::Duration;

use support::client::{client_config, AgentClient};
use support::fixture::Standard;
use support::pki::{agent_id, TestPki};
use warden::certs::pki::LeafOptions;

#[tokio::test]
async fn refused_handshakes_are_refused_and_counted() {
    let s = Standard::start().await;
    let addr = s.warden.addr;
    let id = agent_id("inventory-bot");
    let foreign = TestPki::named("someone else's CA");
    let impostor = TestPki::new();
    let hour = Duration::from_secs(3600);
    let cases: Vec<(&str, AgentClient)> = vec![
        (
            "no_client_cert",
            AgentClient::with_config(client_config(&s.pki, None, &[b"http/1.1"]), addr),
        ),
        (
            "expired",
            AgentClient::new(
                &s.pki,
                &s.pki.issue("expired", &LeafOptions::new(&id).expired(hour)),
                addr,
            ),
        ),
        (
            "not_yet_valid",
            AgentClient::new(
                &s.pki,
                &s.pki
                    .issue("future", &LeafOptions::new(&id).not_yet_valid(hour)),
                addr,
            ),
        ),
        (
            "unknown_ca",
            AgentClient::new(&s.pki, &foreign.agent("inventory-bot"), addr),
        ),
        // Another CA that took our CA's name: found by name, refused by signature.
        (
            "bad_signature",
            AgentClient::new(&s.pki, &impostor.agent("inventory-bot"), addr),
        ),
        (
            "bad_eku",
            AgentClient::new(
                &s.pki,
                &s.pki
                    .issue("noeku", &LeafOptions::new(&id).without_client_auth()),
                addr,
            ),
        ),
    ];
    for (reason, client) in &cases {
        assert!(
            client.handshake_refused().await,
            "{reason}: handshake was accepted"
        );
    }
    // The revoked case needs the CRL reloaded.
    let revoked = s.pki.agent("inventory-bot");
    let client = AgentClient::new(&s.pki, &revoked, addr);
    assert_eq!(client.get("/inventory/items").await.status, 200);
    s.pki.revoke(&[&revoked]);
    s.warden.reload().expect("reload");
    assert!(
        client.handshake_refused().await,
        "revoked: handshake was accepted"
    );

    let m = s.warden.metrics();
    for reason in [
        "no_client_cert",
        "expired",
        "not_yet_valid",
        "unknown_ca",
        "bad_signature",
        "bad_eku",
        "revoked",
    ] {
        assert!(
            support::keepalive::refused_handshakes(&m, reason) >= 1,
            "{reason} not counted:\n{m}"
        );
    }
    // A fresh certificate for the same agent still works.
    let fresh = AgentClient::new(&s.pki, &s.pki.agent("inventory-bot"), addr);
    assert_eq!(fresh.get("/inventory/items").await.status, 200);
}

#[tokio::test]
async fn alpn_offers_h2_and_http1() {
    let s = Standard::start().await;
    let cert = s.agent("inventory-bot");
    let h2 = AgentClient::h2(&s.pki, &cert, s.warden.addr);
    let tls = h2.connect().await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let r = h2.get("/inventory/items").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.inventory.recorder.last().unwrap().target,
        "/inventory/items"
    );
    let h1 = AgentClient::new(&s.pki, &cert, s.warden.addr);
    let tls = h1.connect().await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let s = Standard::start().await;
    let cert = s.agent("inventory-bot");
    for (version, name) in [
        (&rustls::version::TLS12, "TLSv1_2"),
        (&rustls::version::TLS13, "TLSv1_3"),
    ] {
        let config = support::client::client_config_with_versions(
            &s.pki,
            Some(&cert),
            &[b"http/1.1"],
            &[version],
        );
        let c = AgentClient::with_config(config, s.warden.addr);
        let tls = c.connect().await.unwrap();
        assert_eq!(
            format!("{:?}", tls.get_ref().1.protocol_version().unwrap()),
            name
        );
        assert_eq!(c.get("/inventory/items").await.status, 200);
    }
}
