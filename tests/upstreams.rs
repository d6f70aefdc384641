//! Upstream connections: pooled keep-alive, HTTPS verified with the upstream's CA, and mutual TLS
//! with warden's own client certificate.

mod support;

use support::client::AgentClient;
use support::pki::{agent_id, TestPki};
use support::upstream;
use support::warden::{config_yaml, start_warden};
use warden::certs::pki::LeafOptions;

fn policy(upstream_block: &str) -> String {
    format!(
        "upstreams:\n{upstream_block}routes:\n  - upstream: api\nroles:\n  reader:\n    upstreams: [api]\n    allow:\n      - methods: [GET]\n\
agents:\n  - id: {}\n    roles: [reader]\n",
        agent_id("bot")
    )
}

#[tokio::test]
async fn requests_share_pooled_keep_alive_upstream_connections() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let w = start_warden(
        &pki,
        &config_yaml(&pki, &policy(&format!("  api:\n    url: {}\n", up.url()))),
    )
    .await;
    let c = AgentClient::new(&pki, &pki.agent("bot"), w.addr);
    for i in 0..20 {
        // A new agent connection each time: pooling is on warden's upstream side.
        assert_eq!(c.get(&format!("/items/{i}")).await.status, 200);
    }
    assert_eq!(up.recorder.count(), 20);
    assert!(
        up.connection_count() <= 2,
        "{} upstream connections for 20 requests",
        up.connection_count()
    );
}

#[tokio::test]
async fn mutual_tls_to_the_upstream() {
    let pki = TestPki::new();
    let up = upstream::start_mtls(&pki).await;
    let client = pki.issue(
        "warden-client",
        &LeafOptions::new("spiffe://example.org/warden"),
    );
    let with_cert = format!(
        "  api:\n    url: {}\n    tls:\n      ca: {}\n      cert: {}\n      key: {}\n",
        up.url(),
        pki.ca_path.display(),
        client.cert.display(),
        client.key.display()
    );
    let w = start_warden(&pki, &config_yaml(&pki, &policy(&with_cert))).await;
    let c = AgentClient::new(&pki, &pki.agent("bot"), w.addr);
    let r = c.get("/items").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.recorder.last().unwrap().headers["x-warden-agent"],
        agent_id("bot").as_str()
    );
}

#[tokio::test]
async fn an_upstream_that_cannot_be_verified_or_refuses_warden_is_502() {
    let pki = TestPki::new();
    let up = upstream::start_mtls(&pki).await;
    let other = TestPki::named("another CA");
    let client = pki.issue(
        "warden-client",
        &LeafOptions::new("spiffe://example.org/warden"),
    );
    // Trusting the wrong CA: the upstream's certificate does not verify.
    let wrong_ca = format!(
        "  api:\n    url: {}\n    tls:\n      ca: {}\n      cert: {}\n      key: {}\n",
        up.url(),
        other.ca_path.display(),
        client.cert.display(),
        client.key.display()
    );
    let w = start_warden(&pki, &config_yaml(&pki, &policy(&wrong_ca))).await;
    let r = AgentClient::new(&pki, &pki.agent("bot"), w.addr)
        .get("/items")
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (502, "upstream_unavailable")
    );
    // Right CA but no client certificate: the upstream refuses warden.
    let pki2 = TestPki::new();
    let no_cert = format!(
        "  api:\n    url: {}\n    tls:\n      ca: {}\n",
        up.url(),
        pki.ca_path.display()
    );
    let w2 = start_warden(&pki2, &config_yaml(&pki2, &policy(&no_cert))).await;
    let r = AgentClient::new(&pki2, &pki2.agent("bot"), w2.addr)
        .get("/items")
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (502, "upstream_unavailable")
    );
    assert_eq!(up.recorder.count(), 0);
}
