use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
use serde_json::{json, Value};

use super::*;

const AGENT: &str = "spiffe://example.org/agent/inventory-bot";
const NOW: i64 = 1_760_000_000;
const THUMB: [u8; 32] = [7u8; 32];

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ec: KeyPair,
    ed: KeyPair,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().to_path_buf();
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ec");
        let ed = KeyPair::generate_for(&PKCS_ED25519).expect("ed");
        std::fs::write(dir.join("ec.pem"), ec.public_key_pem()).expect("write");
        std::fs::write(dir.join("ed.pem"), ed.public_key_pem()).expect("write");
        Fixture {
            _tmp: tmp,
            dir,
            ec,
            ed,
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        std::fs::write(self.dir.join(name), contents).expect("write");
        PathBuf::from(name)
    }

    /// Issuer `agent-auth` trusts the P-256 key, issuer `edge-auth` the Ed25519 key.
    fn verifier(&self) -> TokenVerifier {
        self.verifier_with(vec![
            issuer("agent-auth", Some("ec.pem"), None),
            issuer("edge-auth", Some("ed.pem"), None),
        ])
    }

    fn verifier_with(&self, issuers: Vec<IssuerSettings>) -> TokenVerifier {
        TokenVerifier::from_config(&section(issuers), &self.dir).expect("verifier")
    }
}

fn issuer(name: &str, keys: Option<&str>, jwks: Option<&str>) -> IssuerSettings {
    IssuerSettings {
        name: name.to_owned(),
        keys: keys.map(PathBuf::from),
        jwks: jwks.map(PathBuf::from),
    }
}

fn section(issuers: Vec<IssuerSettings>) -> TokenSettings {
    TokenSettings {
        audience: "warden".to_owned(),
        issuers,
        leeway: None,
        forward: false,
        required: true,
    }
}

fn claims() -> Value {
    json!({
        "iss": "agent-auth",
        "sub": AGENT,
        "aud": "warden",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "j1",
        "cnf": { "x5t#S256": URL_SAFE_NO_PAD.encode(THUMB) },
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn sign_ec(key: &KeyPair, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ec_der(&key.serialize_der());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn sign_ed(key: &KeyPair, claims: &Value) -> String {
    let key = EncodingKey::from_ed_der(&key.serialize_der());
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("sign")
}

fn bearer(token: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

fn check(verifier: &TokenVerifier, token: &str) -> Result<(), TokenError> {
    verifier.verify(Some(&bearer(token)), AGENT, &THUMB, NOW)
}

fn assert_invalid(result: Result<(), TokenError>) {
    assert!(matches!(result, Err(TokenError::Invalid(_))), "{result:?}");
}

#[test]
fn valid_es256_and_eddsa_tokens_pass() {
    let f = Fixture::new();
    let v = f.verifier();
    assert_eq!(check(&v, &sign_ec(&f.ec, &claims(), None)), Ok(()));
    let ed_claims = with(claims(), "iss", json!("edge-auth"));
    assert_eq!(check(&v, &sign_ed(&f.ed, &ed_claims)), Ok(()));
    let many = with(claims(), "aud", json!(["other", "warden"]));
    assert_eq!(check(&v, &sign_ec(&f.ec, &many, None)), Ok(()));
    let lower =
        http::HeaderValue::from_str(&format!("bearer  {}", sign_ec(&f.ec, &claims(), None)))
            .expect("header");
    assert_eq!(v.verify(Some(&lower), AGENT, &THUMB, NOW), Ok(()));
}

#[test]
fn a_missing_header_or_another_scheme_is_missing() {
    let f = Fixture::new();
    let v = f.verifier();
    assert_eq!(v.verify(None, AGENT, &THUMB, NOW), Err(TokenError::Missing));
    for value in [
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Bearer",
        "Bearer ",
        "token",
    ] {
        let value = http::HeaderValue::from_str(value).expect("header");
        assert_eq!(
            v.verify(Some(&value), AGENT, &THUMB, NOW),
            Err(TokenError::Missing),
            "{value:?}"
        );
    }
}

#[test]
fn a_token_for_another_agent_is_invalid() {
    let f = Fixture::new();
    let v = f.verifier();
    let other = with(claims(), "sub", json!("spiffe://example.org/agent/other"));
    assert_invalid(check(&v, &sign_ec(&f.ec, &other, None)));
    let none = claims()
        .as_object()
        .map(|m| {
            let mut m = m.clone();
            m.remove("sub");
            Value::Object(m)
        })
        .expect("object");
    assert_invalid(check(&v, &sign_ec(&f.ec, &none, None)));
}

#[test]
fn a_token_bound_to_another_certificate_is_not_bound() {
    let f = Fixture::new();
    let v = f.verifier();
    let other = with(
        claims(),
        "cnf",
        json!({ "x5t#S256": URL_SAFE_NO_PAD.encode([8u8; 32]) }),
    );
    assert_eq!(
        check(&v, &sign_ec(&f.ec, &other, None)),
        Err(TokenError::NotBound)
    );
    let unbound = with(claims(), "cnf", json!({}));
    assert_eq!(
        check(&v, &sign_ec(&f.ec, &unbound, None)),
        Err(TokenError::NotBound)
    );
    let padded = with(
        claims(),
        "cnf",
        json!({ "x5t#S256": base64::engine::general_purpose::STANDARD.encode(THUMB) }),
    );
    assert_eq!(
        check(&v, &sign_ec(&f.ec, &padded, None)),
        Err(TokenError::NotBound)
    );
}

#[test]
fn expiry_and_not_before_use_the_given_time_and_leeway() {
    let f = Fixture::new();
    let v = f.verifier();
    let expired = with(claims(), "exp", json!(NOW - 31));
    assert_invalid(check(&v, &sign_ec(&f.ec, &expired, None)));
    let just_expired = with(claims(), "exp", json!(NOW - 29));
    assert_eq!(check(&v, &sign_ec(&f.ec, &just_expired, None)), Ok(()));
    let early = with(claims(), "nbf", json!(NOW + 31));
    assert_invalid(check(&v, &sign_ec(&f.ec, &early, None)));
    let nearly = with(claims(), "nbf", json!(NOW + 29));
    assert_eq!(check(&v, &sign_ec(&f.ec, &nearly, None)), Ok(()));
    let future_iat = with(claims(), "iat", json!(NOW + 3600));
    assert_invalid(check(&v, &sign_ec(&f.ec, &future_iat, None)));
    let no_exp = claims()
        .as_object()
        .map(|m| {
            let mut m = m.clone();
            m.remove("exp");
            Value::Object(m)
        })
        .expect("object");
    assert_invalid(check(&v, &sign_ec(&f.ec, &no_exp, None)));
    // The same token is fine at its own issue time and refused an hour later.
    let token = sign_ec(&f.ec, &claims(), None);
    assert_eq!(v.verify(Some(&bearer(&token)), AGENT, &THUMB, NOW), Ok(()));
    assert_invalid(v.verify(Some(&bearer(&token)), AGENT, &THUMB, NOW + 3600));
}

#[test]
fn a_configured_leeway_replaces_the_default() {
    let f = Fixture::new();
    let mut s = section(vec![issuer("agent-auth", Some("ec.pem"), None)]);
    s.leeway = Some(Duration::from_secs(0));
    let v = TokenVerifier::from_config(&s, &f.dir).expect("verifier");
    let expired = with(claims(), "exp", json!(NOW - 1));
    assert_invalid(check(&v, &sign_ec(&f.ec, &expired, None)));
    s.leeway = Some(Duration::from_secs(120));
    let v = TokenVerifier::from_config(&s, &f.dir).expect("verifier");
    let expired = with(claims(), "exp", json!(NOW - 100));
    assert_eq!(check(&v, &sign_ec(&f.ec, &expired, None)), Ok(()));
}

#[test]
fn wrong_audience_and_wrong_issuer_are_invalid() {
    let f = Fixture::new();
    let v = f.verifier();
    for aud in [json!("other"), json!(["a", "b"]), json!([]), json!(null)] {
        let c = with(claims(), "aud", aud);
        assert_invalid(check(&v, &sign_ec(&f.ec, &c, None)));
    }
    let unknown = with(claims(), "iss", json!("someone-else"));
    assert_invalid(check(&v, &sign_ec(&f.ec, &unknown, None)));
    // A configured issuer's name on a token signed with another issuer's key.
    let borrowed = with(claims(), "iss", json!("edge-auth"));
    assert_invalid(check(&v, &sign_ec(&f.ec, &borrowed, None)));
}

#[test]
fn an_unknown_signer_is_invalid() {
    let f = Fixture::new();
    let v = f.verifier();
    let stranger = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    assert_invalid(check(&v, &sign_ec(&stranger, &claims(), None)));
    let stranger = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let c = with(claims(), "iss", json!("edge-auth"));
    assert_invalid(check(&v, &sign_ed(&stranger, &c)));
    // A valid token with one byte of its signature changed.
    let token = sign_ec(&f.ec, &claims(), None);
    let (head, sig) = token.rsplit_once('.').expect("parts");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    assert_invalid(check(&v, &format!("{head}.{flipped}{}", &sig[1..])));
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_invalid() {
    let f = Fixture::new();
    let v = f.verifier();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = b64(&claims());
    for alg in ["none", "None", "NONE"] {
        let header = b64(&json!({ "alg": alg, "typ": "JWT" }));
        assert_invalid(check(&v, &format!("{header}.{payload}.")));
        assert_invalid(check(&v, &format!("{header}.{payload}")));
    }
    let pem = std::fs::read(f.dir.join("ec.pem")).expect("pem");
    for secret in [
        pem.as_slice(),
        f.ec.public_key_raw(),
        f.ec.subject_public_key_info().as_slice(),
    ] {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(secret),
        )
        .expect("hmac");
        assert_invalid(check(&v, &token));
    }
    // An ES256 key is not accepted for an EdDSA header, nor the reverse.
    let c = with(claims(), "iss", json!("edge-auth"));
    let ed_token = sign_ed(&f.ed, &c);
    let only_ec = f.verifier_with(vec![issuer("edge-auth", Some("ec.pem"), None)]);
    assert_invalid(check(&only_ec, &ed_token));
}

#[test]
fn garbage_is_invalid() {
    let f = Fixture::new();
    let v = f.verifier();
    let long = "a".repeat(20_000);
    for token in ["abc", "a.b.c", "...", "e30.e30.e30", "🙂", long.as_str()] {
        let value =
            http::HeaderValue::from_bytes(format!("Bearer {token}").as_bytes()).expect("header");
        assert_invalid(v.verify(Some(&value), AGENT, &THUMB, NOW));
    }
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["exp"]}"#);
    let token = sign_ec(&f.ec, &claims(), None);
    let rest = token.split_once('.').map(|(_, r)| r).expect("parts");
    assert_invalid(check(&v, &format!("{header}.{rest}")));
    let wrong_type = with(claims(), "exp", json!("tomorrow"));
    assert_invalid(check(&v, &sign_ec(&f.ec, &wrong_type, None)));
}

fn ec_jwk(key: &KeyPair, kid: &str) -> Value {
    let raw = key.public_key_raw();
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    })
}

#[test]
fn jwks_keys_are_selected_by_kid() {
    let f = Fixture::new();
    let second = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let jwks = json!({ "keys": [
        { "kty": "RSA", "kid": "rsa", "n": "sXch", "e": "AQAB", "alg": "RS256" },
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        ec_jwk(&f.ec, "k1"),
        ec_jwk(&second, "k2"),
        { "kty": "OKP", "crv": "Ed25519", "kid": "e1",
          "x": URL_SAFE_NO_PAD.encode(f.ed.public_key_raw()) },
        { "kty": "future-kind", "kid": "x" },
    ]});
    let path = f.write("jwks.json", &jwks.to_string());
    let v = f.verifier_with(vec![issuer("agent-auth", None, path.to_str())]);
    assert_eq!(check(&v, &sign_ec(&f.ec, &claims(), Some("k1"))), Ok(()));
    assert_eq!(check(&v, &sign_ec(&second, &claims(), Some("k2"))), Ok(()));
    assert_eq!(check(&v, &sign_ec(&second, &claims(), None)), Ok(()));
    assert_eq!(check(&v, &sign_ed(&f.ed, &claims())), Ok(()));
    // The right key under the wrong kid, and an unknown kid.
    assert_invalid(check(&v, &sign_ec(&f.ec, &claims(), Some("k2"))));
    assert_invalid(check(&v, &sign_ec(&f.ec, &claims(), Some("nope"))));
    // The HMAC key of the set is never used.
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .expect("hmac");
    assert_invalid(check(&v, &token));
}

#[test]
fn a_pem_file_may_hold_several_keys() {
    let f = Fixture::new();
    let second = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let both = format!(
        "{}{}{}",
        second.public_key_pem(),
        f.ec.public_key_pem(),
        f.ed.public_key_pem()
    );
    let path = f.write("both.pem", &both);
    let v = f.verifier_with(vec![issuer("agent-auth", path.to_str(), None)]);
    assert_eq!(check(&v, &sign_ec(&f.ec, &claims(), None)), Ok(()));
    assert_eq!(check(&v, &sign_ec(&second, &claims(), None)), Ok(()));
    assert_eq!(check(&v, &sign_ed(&f.ed, &claims())), Ok(()));
}

#[test]
fn bad_key_configuration_is_refused_at_load() {
    let f = Fixture::new();
    let load = |issuers| TokenVerifier::from_config(&section(issuers), &f.dir);
    assert!(load(vec![]).is_err());
    assert!(load(vec![issuer("a", None, None)]).is_err());
    assert!(load(vec![issuer("a", Some("missing.pem"), None)]).is_err());
    assert!(load(vec![
        issuer("a", Some("ec.pem"), None),
        issuer("a", Some("ed.pem"), None)
    ])
    .is_err());
    let private = f.write("private.pem", &f.ec.serialize_pem());
    assert!(load(vec![issuer("a", private.to_str(), None)]).is_err());
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
    let p384 = f.write("p384.pem", &p384.public_key_pem());
    let err = load(vec![issuer("a", p384.to_str(), None)]).expect_err("p384");
    assert!(err.contains("identity.token.issuers[0].keys"), "{err}");
    let empty = f.write("empty.pem", "");
    assert!(load(vec![issuer("a", empty.to_str(), None)]).is_err());
    let rsa_only = f.write(
        "rsa.json",
        &json!({ "keys": [{ "kty": "RSA", "n": "sXch", "e": "AQAB" }] }).to_string(),
    );
    assert!(load(vec![issuer("a", None, rsa_only.to_str())]).is_err());
    let not_json = f.write("bad.json", "{");
    assert!(load(vec![issuer("a", None, not_json.to_str())]).is_err());
}

#[test]
fn debug_output_shows_no_key_material() {
    let f = Fixture::new();
    let shown = format!("{:?}", f.verifier());
    assert!(shown.contains("agent-auth"));
    assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(&f.ec.public_key_raw()[1..33])));
}
