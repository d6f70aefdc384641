//! Upstream connections: pooled keep-alive, HTTPS verified with the upstream's CA or the system's
//! trusted roots, mutual TLS with warden's own client certificate, HTTP/2 by ALPN and by prior
//! knowledge.

mod support;

use support::client::AgentClient;
use support::pki::{agent_id, TestPki};
use support::upstream;
use support::warden::{config_yaml, start_warden, write_config, WardenProcess};
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

/// A route per upstream: `/NAME/...` goes to upstream NAME; every GET allowed.
fn routed_policy(upstreams: &[(&str, String)]) -> String {
    let mut yaml = String::from("upstreams:\n");
    for (name, block) in upstreams {
        yaml.push_str(&format!("  {name}:\n{block}"));
    }
    yaml.push_str("routes:\n");
    for (name, _) in upstreams {
        yaml.push_str(&format!("  - path_prefix: /{name}\n    upstream: {name}\n"));
    }
    let names: Vec<&str> = upstreams.iter().map(|(n, _)| *n).collect();
    yaml.push_str(&format!(
        "roles:\n  reader:\n    upstreams: [{}]\n    allow:\n      - methods: [GET]\nagents:\n  - id: {}\n    roles: [reader]\n",
        names.join(", "),
        agent_id("bot")
    ));
    yaml
}

/// An HTTPS upstream whose certificate comes from a CA of its own, not warden's test CA.
async fn upstream_with_own_ca() -> (TestPki, upstream::Upstream) {
    let ca = TestPki::named("upstream CA");
    let up = upstream::start_tls(&ca.server_cert, &ca.server_key).await;
    (ca, up)
}

/// A system-style bundle (PEM certificates one after another) holding these CAs.
fn bundle(pki: &TestPki, name: &str, cas: &[&TestPki]) -> std::path::PathBuf {
    let path = pki.path().join(name);
    let pem: String = cas.iter().map(|c| c.ca.cert_pem()).collect();
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn https_upstreams_without_tls_ca_trust_the_system_store_and_tls_ca_alone_when_given() {
    let pki = TestPki::new();
    let (upstream_ca, up) = upstream_with_own_ca().await;
    let unrelated = TestPki::named("unrelated CA");
    let block = |ca: Option<&TestPki>| match ca {
        None => format!("    url: {}\n", up.url()),
        Some(ca) => format!(
            "    url: {}\n    tls: {{ ca: {} }}\n",
            up.url(),
            ca.ca_path.display()
        ),
    };
    let yaml = config_yaml(
        &pki,
        &routed_policy(&[
            ("system", block(None)),
            // The system store trusts the upstream's CA, but tls.ca names another: refused.
            ("pinned_other", block(Some(&unrelated))),
            ("pinned", block(Some(&upstream_ca))),
        ]),
    );
    let config = write_config(&pki, "warden.yaml", &yaml);

    // The system bundle holds the upstream's CA (among others).
    let trusting = bundle(&pki, "system-bundle.pem", &[&unrelated, &upstream_ca]);
    let w = WardenProcess::spawn_env(
        &config,
        &[],
        &[("SSL_CERT_FILE", Some(trusting.to_str().unwrap()))],
    );
    let c = AgentClient::new(&pki, &pki.agent("bot"), w.addr);
    let r = c.get("/system/items").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.recorder.last().unwrap().headers["x-warden-agent"],
        agent_id("bot").as_str()
    );
    let r = c.get("/pinned_other/items").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (502, "upstream_unavailable")
    );
    assert_eq!(c.get("/pinned/items").await.status, 200);
    drop(w);

    // A system bundle without the upstream's CA: the same upstream is not trusted.
    let other = bundle(&pki, "other-bundle.pem", &[&unrelated]);
    let w = WardenProcess::spawn_env(
        &config,
        &[],
        &[("SSL_CERT_FILE", Some(other.to_str().unwrap()))],
    );
    let c = AgentClient::new(&pki, &pki.agent("bot"), w.addr);
    let r = c.get("/system/items").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (502, "upstream_unavailable")
    );
    assert_eq!(
        c.get("/pinned/items").await.status,
        200,
        "tls.ca needs no system store"
    );
    assert_eq!(up.recorder.count(), 3);
}

#[tokio::test]
async fn http2_upstreams_speak_h2_by_alpn_over_tls_and_by_prior_knowledge_over_http() {
    let pki = TestPki::new();
    let (upstream_ca, tls_up) = upstream_with_own_ca().await;
    let plain_up = upstream::start().await;
    let ca = upstream_ca.ca_path.display();
    let yaml = config_yaml(
        &pki,
        &routed_policy(&[
            (
                "h2tls",
                format!(
                    "    url: {}\n    http2: true\n    tls: {{ ca: {ca} }}\n",
                    tls_up.url()
                ),
            ),
            (
                "h1tls",
                format!("    url: {}\n    tls: {{ ca: {ca} }}\n", tls_up.url()),
            ),
            (
                "h2c",
                format!("    url: {}\n    http2: true\n", plain_up.url()),
            ),
        ]),
    );
    let w = start_warden(&pki, &yaml).await;
    // An HTTP/1.1 agent and an HTTP/2 agent alike.
    for c in [
        AgentClient::new(&pki, &pki.agent("bot"), w.addr),
        AgentClient::h2(&pki, &pki.agent("bot"), w.addr),
    ] {
        tls_up.recorder.clear();
        plain_up.recorder.clear();
        assert_eq!(c.get("/h2tls/a").await.status, 200);
        let seen = tls_up.recorder.last().unwrap();
        assert_eq!(
            (seen.version, seen.target.as_str()),
            (http::Version::HTTP_2, "/h2tls/a")
        );
        assert!(!seen.headers.contains_key("host"), "h2 carries :authority");

        assert_eq!(c.get("/h1tls/b").await.status, 200);
        let seen = tls_up.recorder.last().unwrap();
        assert_eq!(seen.version, http::Version::HTTP_11);
        // HTTP/1.1 upstreams get their own authority as Host, as before.
        assert_eq!(
            seen.headers["host"].to_str().unwrap(),
            tls_up.url().trim_start_matches("https://")
        );

        assert_eq!(c.get("/h2c/c").await.status, 200);
        let seen = plain_up.recorder.last().unwrap();
        assert_eq!(seen.version, http::Version::HTTP_2);
        assert_eq!(seen.headers["x-warden-agent"], agent_id("bot").as_str());
    }
}
