//! The second factor end to end: a JWT bound to the client certificate (RFC 8705), demanded per
//! role or globally, checked by `serve` and by `explain` alike.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::client::{AgentClient, Reply};
use support::pki::{agent_id, AgentCert, TestPki};
use support::upstream::{self, Upstream};
use support::warden::{config_yaml, start_warden, TestWarden};
use warden::certs::mint::{generate_signing_pair, mint_token, MintOptions, SigningKey};
use warden::certs::{commands, store};
use warden::explain::{explain, ExplainRequest};
use warden::snapshot::build_snapshot;

const ITEMS: &str = "/inventory/items";

fn config(pki: &TestPki, upstream: &str, forward: bool, required: bool) -> String {
    let public_key = pki.path().join(store::TOKEN_PUB);
    let rest = format!(
        r#"  token:
    audience: warden
    issuers:
      - name: agent-auth
        keys: {key}
    leeway: 5s
    forward: {forward}
    required: {required}
upstreams:
  inventory:
    url: {upstream}
routes:
  - path_prefix: /inventory
    upstream: inventory
roles:
  secure:
    upstreams: [inventory]
    require_token: true
    allow:
      - paths: ["/inventory/**"]
  plain:
    upstreams: [inventory]
    allow:
      - paths: ["/inventory/**"]
agents:
  - id: {secure}
    roles: [secure]
  - id: {plain}
    roles: [plain]
"#,
        key = public_key.display(),
        secure = agent_id("inventory-bot"),
        plain = agent_id("staging-bot"),
    );
    config_yaml(pki, &rest)
}

struct Setup {
    pki: TestPki,
    warden: TestWarden,
    upstream: Upstream,
    key: SigningKey,
    secure: AgentCert,
    plain: AgentCert,
}

impl Setup {
    async fn start(forward: bool, required: bool) -> Setup {
        let pki = TestPki::new();
        commands::token_keygen(pki.path(), false, &mut Vec::new()).expect("token keygen");
        let key_pem = std::fs::read_to_string(pki.path().join(store::TOKEN_KEY)).unwrap();
        let key = SigningKey::from_pem(&key_pem).unwrap();
        let upstream = upstream::start().await;
        let warden = start_warden(&pki, &config(&pki, &upstream.url(), forward, required)).await;
        let secure = pki.agent("inventory-bot");
        let plain = pki.agent("staging-bot");
        Setup {
            pki,
            warden,
            upstream,
            key,
            secure,
            plain,
        }
    }

    fn reconfigure(&self, forward: bool, required: bool) {
        let yaml = config(&self.pki, &self.upstream.url(), forward, required);
        std::fs::write(&self.warden.config_path, yaml).unwrap();
        self.warden.reload().expect("reload");
    }

    fn client(&self, cert: &AgentCert) -> AgentClient {
        AgentClient::new(&self.pki, cert, self.warden.addr)
    }

    /// A token for `agent` bound to `cert`, signed by the configured issuer's key.
    fn token(&self, agent: &str, cert: &AgentCert) -> String {
        mint_token(
            &self.key,
            &cert.issued.cert_der,
            &MintOptions::new(agent_id(agent)),
        )
        .unwrap()
    }
}

async fn get_with(client: &AgentClient, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    client.request("GET", ITEMS, &headers, "").await
}

fn assert_refused(r: &Reply, case: &str, reason: &str) {
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, reason),
        "{case}: {}",
        r.text()
    );
    let challenge = r
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        challenge.starts_with("Bearer"),
        "{case}: WWW-Authenticate `{challenge}`"
    );
}

/// What `warden explain` decides for the same request from the same certificate.
async fn explained(
    s: &Setup,
    agent: &str,
    cert: &AgentCert,
    authorization: Option<&str>,
) -> String {
    let snap = build_snapshot(&s.warden.config_path, None, 1).expect("config");
    let req = ExplainRequest {
        agent: agent_id(agent),
        method: "GET".into(),
        url: ITEMS.into(),
        headers: authorization
            .map(|a| format!("Authorization: {a}"))
            .into_iter()
            .collect(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        unix_ms: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        cert_der: Some(cert.issued.cert_der.clone()),
        ..ExplainRequest::default()
    };
    explain(&snap, &req)
        .await
        .expect("explainable")
        .reason_str()
        .to_string()
}

#[tokio::test]
async fn certificate_bound_tokens_are_demanded_where_required() {
    let s = Setup::start(false, false).await;
    let secure = s.client(&s.secure);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let der = s.secure.issued.cert_der.clone();
    let mint = |f: &dyn Fn(&mut MintOptions)| {
        let mut o = MintOptions::new(agent_id("inventory-bot"));
        f(&mut o);
        format!("Bearer {}", mint_token(&s.key, &der, &o).unwrap())
    };
    let (foreign_key_pem, _) = generate_signing_pair(false).unwrap();
    let foreign_key = SigningKey::from_pem(&foreign_key_pem).unwrap();
    let unknown_signer = format!(
        "Bearer {}",
        mint_token(
            &foreign_key,
            &der,
            &MintOptions::new(agent_id("inventory-bot"))
        )
        .unwrap()
    );
    let other_cert = s.pki.agent("inventory-bot");
    let good = format!("Bearer {}", s.token("inventory-bot", &s.secure));

    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("valid", Some(good.clone()), "ok"),
        ("missing", None, "token_missing"),
        (
            "another agent's",
            Some(format!("Bearer {}", s.token("staging-bot", &s.secure))),
            "token_invalid",
        ),
        (
            "expired",
            Some(mint(&|o| {
                o.now_unix = now - 3600;
                o.ttl = Duration::from_secs(600);
            })),
            "token_invalid",
        ),
        (
            "wrong audience",
            Some(mint(&|o| o.audience = "someone-else".into())),
            "token_invalid",
        ),
        ("unknown signer", Some(unknown_signer), "token_invalid"),
        (
            "garbage",
            Some("Bearer not.a.token".into()),
            "token_invalid",
        ),
        (
            "bound to another certificate",
            Some(format!("Bearer {}", s.token("inventory-bot", &other_cert))),
            "token_not_bound",
        ),
    ];
    for (case, authorization, want) in &cases {
        let r = get_with(&secure, authorization.as_deref()).await;
        if *want == "ok" {
            assert_eq!(r.status, 200, "{case}: {}", r.text());
        } else {
            assert_refused(&r, case, want);
        }
        assert_eq!(
            explained(&s, "inventory-bot", &s.secure, authorization.as_deref()).await,
            *want,
            "{case}: explain disagrees with serve"
        );
    }

    // The valid token passed, and (forward: false) the upstream never saw it.
    let seen = s.upstream.recorder.all();
    assert_eq!(seen.len(), 1, "only the valid token reached the upstream");
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "token forwarded"
    );

    // A role without `require_token` passes without one.
    let plain = s.client(&s.plain);
    assert_eq!(get_with(&plain, None).await.status, 200);
    assert_eq!(explained(&s, "staging-bot", &s.plain, None).await, "ok");
}

#[tokio::test]
async fn forward_and_required_switch_with_a_reload() {
    let s = Setup::start(true, false).await;
    let secure = s.client(&s.secure);
    let good = format!("Bearer {}", s.token("inventory-bot", &s.secure));
    assert_eq!(get_with(&secure, Some(&good)).await.status, 200);
    let seen = s.upstream.recorder.last().expect("forwarded");
    assert_eq!(
        seen.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(good.as_str()),
        "forward: true did not pass the token on"
    );

    // `required: true` demands the token of every agent, whatever its roles say.
    s.reconfigure(true, true);
    let plain = s.client(&s.plain);
    assert_refused(
        &get_with(&plain, None).await,
        "required globally",
        "token_missing",
    );
    assert_eq!(
        explained(&s, "staging-bot", &s.plain, None).await,
        "token_missing"
    );
    let plain_token = format!("Bearer {}", s.token("staging-bot", &s.plain));
    assert_eq!(get_with(&plain, Some(&plain_token)).await.status, 200);
    assert_eq!(
        explained(&s, "staging-bot", &s.plain, Some(&plain_token)).await,
        "ok"
    );
}
