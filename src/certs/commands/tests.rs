use std::path::PathBuf;

use super::*;
use crate::identity::token::{IssuerSettings, TokenSettings};
use crate::identity::token::{TokenError, TokenVerifier};

const AGENT: &str = "spiffe://example.org/agent/inventory-bot";
const DAY: Duration = Duration::from_secs(86_400);

fn initialised() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let mut out = Vec::new();
    init(&dir, false, &mut out).expect("init");
    (tmp, dir)
}

fn text(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).expect("utf8")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn init_writes_the_ca_server_certificate_and_an_empty_crl() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let mut out = Vec::new();
    init(&dir, false, &mut out).expect("init");
    for file in [
        store::CA_CERT,
        store::CA_KEY,
        store::SERVER_CERT,
        store::SERVER_KEY,
        store::CRL,
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.join(store::CA_KEY)), 0o600);
        assert_eq!(mode(&dir.join(store::SERVER_KEY)), 0o600);
    }
    let crl = store::read_crl(&dir).expect("crl");
    assert!(crl.revoked.is_empty());
    assert_eq!(crl.number, 1);
    let printed = text(&out);
    assert!(printed.contains("ca.pem") && printed.contains("server.pem"));
    assert!(!printed.contains("PRIVATE KEY"));
}

#[test]
fn init_keeps_an_existing_ca_unless_forced() {
    let (_tmp, dir) = initialised();
    let before = std::fs::read(dir.join(store::CA_CERT)).expect("ca");
    let err = init(&dir, false, &mut Vec::new()).expect_err("exists");
    assert!(matches!(err, CertsError::Exists(_)));
    assert_eq!(std::fs::read(dir.join(store::CA_CERT)).expect("ca"), before);
    init(&dir, true, &mut Vec::new()).expect("forced");
    assert_ne!(std::fs::read(dir.join(store::CA_CERT)).expect("ca"), before);
}

#[test]
fn issue_writes_the_pair_named_after_the_last_segment_and_indexes_it() {
    let (_tmp, dir) = initialised();
    let mut out = Vec::new();
    let files = issue(&dir, AGENT, DAY, None, &mut out).expect("issue");
    assert_eq!(files.cert, dir.join("inventory-bot.pem"));
    assert_eq!(files.key, dir.join("inventory-bot-key.pem"));
    #[cfg(unix)]
    assert_eq!(mode(&files.key), 0o600);
    let der = store::read_cert_der(&files.cert).expect("der");
    let peer = peer_cert(&der, "example.org").expect("peer");
    assert_eq!(peer.agent_id.as_str(), AGENT);
    assert_eq!(peer.serial_hex, files.serial_hex);
    let printed = text(&out);
    assert!(printed.contains(&files.serial_hex));
    assert!(printed.contains("inventory-bot.pem"));
    assert!(!printed.contains("PRIVATE KEY"));
    let index = store::read_issued(&dir).expect("index");
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].serial, files.serial_hex);
    assert_eq!(index[0].agent_id, AGENT);
    assert_eq!(index[0].file, "inventory-bot.pem");
}

#[test]
fn issue_refuses_bad_ids_and_the_ca_file_names() {
    let (_tmp, dir) = initialised();
    for bad in [
        "inventory-bot",
        "spiffe://example.org/agent/*",
        "spiffe://example.org/",
    ] {
        assert!(
            matches!(
                issue(&dir, bad, DAY, None, &mut Vec::new()),
                Err(CertsError::InvalidAgentId(_))
            ),
            "{bad}"
        );
    }
    let ca_before = std::fs::read(dir.join(store::CA_CERT)).expect("ca");
    assert!(issue(&dir, AGENT, DAY, Some("ca"), &mut Vec::new()).is_err());
    assert!(issue(&dir, AGENT, DAY, Some("server"), &mut Vec::new()).is_err());
    assert_eq!(
        std::fs::read(dir.join(store::CA_CERT)).expect("ca"),
        ca_before
    );
    let files = issue(&dir, AGENT, DAY, Some("../../escape"), &mut Vec::new()).expect("issue");
    assert_eq!(files.cert.parent(), Some(dir.as_path()));
    let tmp = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        issue(tmp.path(), AGENT, DAY, None, &mut Vec::new()),
        Err(CertsError::NoCa(_))
    ));
}

#[test]
fn file_names_are_sanitised() {
    assert_eq!(file_name_for(AGENT), "inventory-bot");
    assert_eq!(file_name_for("spiffe://example.org/a/b c+d"), "b_c_d");
    assert_eq!(file_name_for("spiffe://example.org/a/.."), "agent");
    assert_eq!(sanitize_name("../x"), ".._x");
}

#[test]
fn revoke_lists_the_serial_in_the_crl_and_is_idempotent() {
    let (_tmp, dir) = initialised();
    let bot = issue(&dir, AGENT, DAY, None, &mut Vec::new()).expect("issue");
    let other = issue(
        &dir,
        "spiffe://example.org/agent/other",
        DAY,
        None,
        &mut Vec::new(),
    )
    .expect("issue");
    let mut out = Vec::new();
    let serial = revoke(&dir, &bot.cert, &mut out).expect("revoke");
    assert_eq!(serial, bot.serial_hex);
    assert!(text(&out).contains("revoked"));
    let crl = store::read_crl(&dir).expect("crl");
    assert_eq!(crl.number, 2);
    let listed: Vec<_> = crl.revoked.iter().map(|r| r.serial_hex.clone()).collect();
    assert_eq!(listed, vec![bot.serial_hex.clone()]);

    let mut out = Vec::new();
    revoke(&dir, &bot.cert, &mut out).expect("again");
    assert!(text(&out).contains("already revoked"));
    let crl = store::read_crl(&dir).expect("crl");
    assert_eq!(crl.number, 3);
    assert_eq!(crl.revoked.len(), 1);
    assert_eq!(store::read_revoked(&dir).expect("revoked").len(), 1);

    let mut out = Vec::new();
    list(&dir, &mut out).expect("list");
    let table = text(&out);
    let row = |serial: &str| {
        table
            .lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row(&bot.serial_hex).ends_with("yes"), "{table}");
    assert!(row(&other.serial_hex).ends_with("no"), "{table}");
    assert!(row(&other.serial_hex).contains("spiffe://example.org/agent/other"));
    assert!(table.starts_with("SERIAL"));
}

#[test]
fn revoke_refuses_a_certificate_of_another_ca() {
    let (_tmp, dir) = initialised();
    let (_tmp2, other_dir) = initialised();
    let foreign = issue(&other_dir, AGENT, DAY, None, &mut Vec::new()).expect("issue");
    assert!(revoke(&dir, &foreign.cert, &mut Vec::new()).is_err());
    assert!(store::read_crl(&dir).expect("crl").revoked.is_empty());
}

#[test]
fn issue_from_config_issues_exact_ids_and_skips_patterns() {
    let (tmp, dir) = initialised();
    let config = tmp.path().join("warden.yaml");
    std::fs::write(
        &config,
        "agents:\n  - id: spiffe://example.org/agent/inventory-bot\n    roles: [inventory]\n  \
         - id: spiffe://example.org/agent/support/*\n    roles: [support]\n  \
         - id: spiffe://example.org/agent/payroll-bot\n",
    )
    .expect("write");
    let mut out = Vec::new();
    let issued = issue_from_config(&dir, &config, DAY, &mut out).expect("issue");
    let ids: Vec<_> = issued.iter().map(|f| f.agent_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "spiffe://example.org/agent/inventory-bot",
            "spiffe://example.org/agent/payroll-bot"
        ]
    );
    assert!(dir.join("payroll-bot.pem").is_file());
    assert!(text(&out).contains("skipped spiffe://example.org/agent/support/*"));
    assert_eq!(store::read_issued(&dir).expect("index").len(), 2);
}

fn verifier_for(dir: &Path) -> TokenVerifier {
    let section = TokenSettings {
        audience: DEFAULT_AUDIENCE.to_owned(),
        issuers: vec![IssuerSettings {
            name: DEFAULT_ISSUER.to_owned(),
            keys: Some(PathBuf::from(store::TOKEN_PUB)),
            jwks: None,
        }],
        leeway: None,
        forward: false,
        required: true,
    };
    TokenVerifier::from_config(&section, dir).expect("verifier")
}

#[test]
fn a_minted_token_passes_the_verifier_with_the_generated_key() {
    let (_tmp, dir) = initialised();
    let mut out = Vec::new();
    token_keygen(&dir, false, &mut out).expect("keygen");
    #[cfg(unix)]
    assert_eq!(mode(&dir.join(store::TOKEN_KEY)), 0o600);
    assert!(!text(&out).contains("PRIVATE KEY"));
    assert!(matches!(
        token_keygen(&dir, false, &mut Vec::new()),
        Err(CertsError::Exists(_))
    ));
    let bot = issue(&dir, AGENT, DAY, None, &mut Vec::new()).expect("issue");
    let mut out = Vec::new();
    let token = token_mint(
        &dir.join(store::TOKEN_KEY),
        AGENT,
        &bot.cert,
        DEFAULT_TOKEN_TTL,
        DEFAULT_AUDIENCE,
        DEFAULT_ISSUER,
        &mut out,
    )
    .expect("mint");
    assert_eq!(text(&out).trim(), token);
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);

    let der = store::read_cert_der(&bot.cert).expect("der");
    let peer = peer_cert(&der, "example.org").expect("peer");
    let value = http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let verifier = verifier_for(&dir);
    assert_eq!(
        verifier.verify(Some(&value), AGENT, &peer.thumbprint, now),
        Ok(())
    );
    assert_eq!(
        verifier.verify(Some(&value), AGENT, &[0u8; 32], now),
        Err(TokenError::NotBound)
    );
}

#[test]
fn token_mint_refuses_a_certificate_of_another_agent() {
    let (_tmp, dir) = initialised();
    token_keygen(&dir, false, &mut Vec::new()).expect("keygen");
    let bot = issue(&dir, AGENT, DAY, None, &mut Vec::new()).expect("issue");
    let err = token_mint(
        &dir.join(store::TOKEN_KEY),
        "spiffe://example.org/agent/other",
        &bot.cert,
        DEFAULT_TOKEN_TTL,
        DEFAULT_AUDIENCE,
        DEFAULT_ISSUER,
        &mut Vec::new(),
    )
    .expect_err("mismatch");
    assert!(err.to_string().contains("belongs to"), "{err}");
}
