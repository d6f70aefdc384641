//! The second factor end to end: a JWT bound to the client certificate (RFC 8705), demanded per
//! role or globally, checked by `serve` and by `explain` alike; keys from a PEM file (watched) or
//! from an identity provider's JWKS URL that rotates its keys and goes away.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use support::client::{AgentClient, Reply};
use support::jwks::{IdpKey, JwksServer};
use support::pki::{agent_id, AgentCert, TestPki};
use support::upstream::{self, Upstream};
use support::warden::{
    config_yaml, start_warden, start_warden_at, start_warden_with, write_config, TestWarden,
};
use warden::app::StartOptions;
use warden::certs::mint::{generate_signing_pair, mint_token, MintOptions, SigningKey};
use warden::certs::{commands, store};
use warden::clock::Clock;
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

// ---------------------------------------------------------------------------------------------
// An identity provider's JWKS URL: every algorithm, rotation, rate-limited refresh, outages

/// A config whose issuer `idp` publishes its keys at `jwks_url`, verified with the test CA.
fn remote_config(pki: &TestPki, upstream: &str, jwks: &JwksServer, refresh: &str) -> String {
    let rest = format!(
        r#"  token:
    audience: warden
    issuers:
      - name: idp
        jwks_url: {url}
        jwks_ca: {ca}
        jwks_refresh: {refresh}
    required: true
upstreams:
  inventory:
    url: {upstream}
routes:
  - path_prefix: /inventory
    upstream: inventory
roles:
  reader:
    upstreams: [inventory]
    allow:
      - paths: ["/inventory/**"]
agents:
  - id: {agent}
    roles: [reader]
"#,
        url = jwks.url(),
        ca = pki.ca_path.display(),
        agent = agent_id("inventory-bot"),
    );
    config_yaml(pki, &rest)
}

/// Claims for the inventory bot bound to `cert`, issued by `idp` at `now`.
fn idp_claims(cert: &AgentCert, now: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "idp",
        "sub": agent_id("inventory-bot"),
        "aud": "warden",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "cnf": { "x5t#S256": warden::certs::mint::x5t_s256(&cert.issued.cert_der) },
    })
}

struct Remote {
    pki: TestPki,
    jwks: JwksServer,
    _upstream: Upstream,
    warden: TestWarden,
    cert: AgentCert,
    clock: Clock,
}

impl Remote {
    async fn start(keys: &[&IdpKey], refresh: &str, clock: Clock) -> Remote {
        let pki = TestPki::new();
        let jwks = JwksServer::start(&pki).await;
        jwks.publish(keys);
        let upstream = upstream::start().await;
        let yaml = remote_config(&pki, &upstream.url(), &jwks, refresh);
        let warden = start_warden_with(&pki, &yaml, clock.clone()).await;
        let cert = pki.agent("inventory-bot");
        Remote {
            pki,
            jwks,
            _upstream: upstream,
            warden,
            cert,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_unix_ms() / 1000
    }

    /// The status of a GET with a token that `key` signed now.
    async fn status_with(&self, key: &IdpKey) -> (u16, String) {
        let token = key.sign(&idp_claims(&self.cert, self.now()));
        let client = AgentClient::new(&self.pki, &self.cert, self.warden.addr);
        let r = get_with(&client, Some(&format!("Bearer {token}"))).await;
        (r.status, r.error())
    }
}

#[tokio::test]
async fn every_algorithm_verifies_from_a_rotating_jwks_url() {
    let clock = Clock::fixed(time::OffsetDateTime::now_utc().unix_timestamp() * 1000);
    let keys: Vec<IdpKey> = [
        (Algorithm::ES256, "es256-1"),
        (Algorithm::ES384, "es384-1"),
        (Algorithm::EdDSA, "ed-1"),
        (Algorithm::RS256, "rs256-1"),
        (Algorithm::PS256, "ps256-1"),
    ]
    .into_iter()
    .map(|(alg, kid)| IdpKey::generate(alg, kid))
    .collect();
    let r = Remote::start(&keys.iter().collect::<Vec<_>>(), "1h", clock.clone()).await;
    for key in &keys {
        assert_eq!(
            r.status_with(key).await,
            (200, String::new()),
            "{:?}",
            key.alg
        );
    }
    // The set was fetched once at start (and perhaps once more by the first token, had it come
    // before that fetch finished), not once per token.
    let fetched = r.jwks.fetches();
    assert!((1..=2).contains(&fetched), "{fetched} fetches");

    // `explain` reads the same URL and agrees.
    let snap = build_snapshot(&r.warden.config_path, None, 1).expect("config");
    let token = keys[3].sign(&idp_claims(&r.cert, r.now()));
    let req = ExplainRequest {
        agent: agent_id("inventory-bot"),
        method: "GET".into(),
        url: ITEMS.into(),
        headers: vec![format!("Authorization: Bearer {token}")],
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        unix_ms: clock.now_unix_ms(),
        cert_der: Some(r.cert.issued.cert_der.clone()),
        ..ExplainRequest::default()
    };
    let ex = explain(&snap, &req).await.expect("explainable");
    assert_eq!(ex.reason_str(), "ok", "{}", ex.render());

    // The provider rotates: the ES256 key is replaced. The new key's first token finds its kid
    // missing, waits for one refresh, and passes. (Half a minute on: a token that came before
    // the start-up fetch had finished may have used the last refresh slot.)
    clock.advance_ms(31_000);
    let rotated = IdpKey::generate(Algorithm::ES256, "es256-2");
    let mut published: Vec<&IdpKey> = keys[1..].iter().collect();
    published.push(&rotated);
    r.jwks.publish(&published);
    let before = r.jwks.fetches();
    assert_eq!(r.status_with(&rotated).await, (200, String::new()));
    assert_eq!(
        r.jwks.fetches(),
        before + 1,
        "one refresh for the unknown kid"
    );

    // The retired key is gone from the refreshed set, and its kid cannot force another fetch
    // within 30 s.
    assert_eq!(r.status_with(&keys[0]).await, (401, "token_invalid".into()));
    let next = IdpKey::generate(Algorithm::PS256, "ps256-2");
    published.push(&next);
    r.jwks.publish(&published);
    assert_eq!(r.status_with(&next).await, (401, "token_invalid".into()));
    assert_eq!(
        r.jwks.fetches(),
        before + 1,
        "misses within 30 s do not refetch"
    );
    clock.advance_ms(31_000);
    assert_eq!(r.status_with(&next).await, (200, String::new()));
    assert_eq!(r.jwks.fetches(), before + 2);
}

#[tokio::test]
async fn cached_keys_outlive_an_unreachable_issuer() {
    let key = IdpKey::generate(Algorithm::RS256, "rs-1");
    let r = Remote::start(&[&key], "1s", Clock::system()).await;
    assert_eq!(r.status_with(&key).await, (200, String::new()));

    // The issuer goes away: background refreshes fail, tokens keep verifying.
    r.jwks.set_down(true);
    let seen = r.jwks.fetches();
    let failed = r
        .jwks
        .wait_fetches_above(seen, Duration::from_secs(10))
        .await;
    r.jwks
        .wait_fetches_above(failed, Duration::from_secs(10))
        .await;
    assert_eq!(r.status_with(&key).await, (200, String::new()));
    // A token with an unknown kid meanwhile is refused, not waved through.
    let stranger = IdpKey::generate(Algorithm::RS256, "rs-unknown");
    assert_eq!(
        r.status_with(&stranger).await,
        (401, "token_invalid".into())
    );

    // Back, with the key retired: the next background refresh drops it.
    let successor = IdpKey::generate(Algorithm::RS256, "rs-2");
    r.jwks.publish(&[&successor]);
    r.jwks.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    while r.status_with(&key).await.0 == 200 {
        assert!(
            Instant::now() < deadline,
            "the retired key is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(r.status_with(&successor).await, (200, String::new()));
}

#[tokio::test]
async fn token_key_files_are_watched() {
    let pki = TestPki::new();
    let upstream = upstream::start().await;
    commands::token_keygen(pki.path(), false, &mut Vec::new()).expect("keygen");
    let yaml = config(&pki, &upstream.url(), false, true);
    let path = write_config(&pki, "warden.yaml", &yaml);
    let options = StartOptions {
        clock: Clock::system(),
        watch_files: true,
        ..StartOptions::default()
    };
    let warden = start_warden_at(&path, options).await;
    let cert = pki.agent("inventory-bot");
    let client = AgentClient::new(&pki, &cert, warden.addr);
    let sign = |key: &SigningKey| {
        let token = mint_token(
            key,
            &cert.issued.cert_der,
            &MintOptions::new(agent_id("inventory-bot")),
        );
        format!("Bearer {}", token.expect("mint"))
    };
    let old = SigningKey::from_pem(
        &std::fs::read_to_string(pki.path().join(store::TOKEN_KEY)).expect("key"),
    )
    .expect("key");
    assert_eq!(get_with(&client, Some(&sign(&old))).await.status, 200);

    // The issuer's public key file is replaced (as a rotation would): no signal, no API call.
    let (new_private, new_public) = generate_signing_pair(true).expect("pair");
    let new = SigningKey::from_pem(&new_private).expect("key");
    let tmp = pki.path().join("token-pub.pem.tmp");
    std::fs::write(&tmp, new_public).expect("write");
    std::fs::rename(&tmp, pki.path().join(store::TOKEN_PUB)).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_with(&client, Some(&sign(&new))).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "the new key file was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = get_with(&client, Some(&sign(&old))).await;
    assert_eq!((r.status, r.error().as_str()), (401, "token_invalid"));
    let m = warden.metrics();
    assert!(
        m.contains(r#"warden_config_reloads_total{result="ok"} 1"#),
        "{m}"
    );
}
