use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::*;

const AGENT: &str = "spiffe://example.org/agent/inventory-bot";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca: &Ca) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .expect("root");
    Arc::new(roots)
}

/// Verifies `leaf` as a client certificate the way the proxy's listener will.
fn verify_client(ca: &Ca, leaf: &IssuedCert, crl_pem: Option<&str>) -> Result<(), rustls::Error> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots(ca), provider());
    if let Some(pem) = crl_pem {
        let der = store::pem_block(pem.as_bytes(), "X509 CRL").expect("crl pem");
        builder = builder.with_crls([CertificateRevocationListDer::from(der)]);
    }
    let verifier = builder.build().expect("verifier");
    verifier
        .verify_client_cert(
            &CertificateDer::from(leaf.cert_der.clone()),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn ca() -> Ca {
    Ca::generate("test CA", Duration::from_secs(3600)).expect("CA")
}

#[test]
fn an_agent_certificate_passes_client_verification() {
    let ca = ca();
    let leaf = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    assert_eq!(verify_client(&ca, &leaf, None), Ok(()));
    let empty_crl = ca.crl_pem(&[], 1).expect("crl");
    assert_eq!(verify_client(&ca, &leaf, Some(&empty_crl)), Ok(()));
}

#[test]
fn a_revoked_agent_certificate_fails_client_verification() {
    let ca = ca();
    let leaf = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    let other = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    let crl = ca
        .crl_pem(
            &[Revoked {
                serial_hex: leaf.serial_hex.clone(),
                revoked_at: OffsetDateTime::now_utc(),
            }],
            2,
        )
        .expect("crl");
    assert!(matches!(
        verify_client(&ca, &leaf, Some(&crl)),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Revoked
        ))
    ));
    assert_eq!(verify_client(&ca, &other, Some(&crl)), Ok(()));
}

#[test]
fn hostile_variants_fail_client_verification() {
    let ca = ca();
    let expired = ca
        .issue_agent(&LeafOptions::new(AGENT).expired(Duration::from_secs(600)))
        .expect("leaf");
    let early = ca
        .issue_agent(&LeafOptions::new(AGENT).not_yet_valid(Duration::from_secs(600)))
        .expect("leaf");
    let no_eku = ca
        .issue_agent(&LeafOptions::new(AGENT).without_client_auth())
        .expect("leaf");
    for leaf in [&expired, &early, &no_eku] {
        assert!(verify_client(&ca, leaf, None).is_err(), "{leaf:?}");
    }
    let foreign_ca = Ca::generate("other CA", Duration::from_secs(3600)).expect("CA");
    let foreign = foreign_ca
        .issue_agent(&LeafOptions::new(AGENT))
        .expect("leaf");
    assert!(verify_client(&ca, &foreign, None).is_err());
}

#[test]
fn explicit_validity_and_ttl_are_honoured() {
    let ca = ca();
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let end = start + time::Duration::minutes(5);
    let leaf = ca
        .issue_agent(&LeafOptions::new(AGENT).validity(start, end))
        .expect("leaf");
    let peer = crate::identity::agent_id::peer_cert(&leaf.cert_der, "example.org").expect("peer");
    assert_eq!(peer.not_after_unix, end.unix_timestamp());
    assert_eq!(leaf.not_after, end);

    let leaf = ca
        .issue_agent(&LeafOptions::new(AGENT).ttl(Duration::from_secs(7200)))
        .expect("leaf");
    let left = leaf.not_after - OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(119) && left <= time::Duration::minutes(120));
}

#[test]
fn serials_are_random_positive_16_byte_values() {
    let ca = ca();
    let a = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    let b = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    assert_ne!(a.serial_hex, b.serial_hex);
    for leaf in [&a, &b] {
        assert_eq!(leaf.serial_hex.len(), 32);
        let first = u8::from_str_radix(&leaf.serial_hex[..2], 16).expect("hex");
        assert!((1..=0x7F).contains(&first));
    }
}

#[test]
fn the_server_certificate_is_valid_for_localhost_and_loopback() {
    let ca = ca();
    let server = ca
        .issue_server(&["proxy.test".to_owned()], Duration::from_secs(3600))
        .expect("server");
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&ca), provider())
            .build()
            .expect("verifier");
    let der = CertificateDer::from(server.cert_der.clone());
    for name in ["localhost", "127.0.0.1", "::1", "proxy.test"] {
        let name = ServerName::try_from(name).expect("name");
        assert!(
            verifier
                .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
                .is_ok(),
            "{name:?}"
        );
    }
    let other = ServerName::try_from("example.com").expect("name");
    assert!(verifier
        .verify_server_cert(&der, &[], &other, &[], UnixTime::now())
        .is_err());
}

#[test]
fn a_saved_and_loaded_ca_issues_certificates_that_chain_to_the_original() {
    let dir = tempfile::tempdir().expect("tmp");
    let original = ca();
    original.save(dir.path()).expect("save");
    let loaded = Ca::load(dir.path()).expect("load");
    assert_eq!(loaded.cert_der(), original.cert_der());
    let leaf = loaded.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    assert_eq!(verify_client(&original, &leaf, None), Ok(()));
    let crl = loaded.crl_pem(&[], 3).expect("crl");
    assert_eq!(verify_client(&original, &leaf, Some(&crl)), Ok(()));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(store::CA_KEY))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_ca_with_someone_elses_key_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = ca();
    let b = ca();
    a.save(dir.path()).expect("save");
    let other_dir = tempfile::tempdir().expect("tmp");
    b.save(other_dir.path()).expect("save");
    let key = std::fs::read_to_string(other_dir.path().join(store::CA_KEY)).expect("key");
    let err = Ca::from_pem(a.cert_pem(), &key).expect_err("mismatch");
    assert!(err.contains("does not belong"), "{err}");
    assert!(matches!(
        Ca::load(&dir.path().join("missing")),
        Err(CertsError::NoCa(_))
    ));
}

#[test]
fn debug_output_never_shows_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca();
    ca.save(dir.path()).expect("save");
    let key = std::fs::read_to_string(dir.path().join(store::CA_KEY)).expect("key");
    let body: String = key.lines().nth(1).expect("line").to_owned();
    let shown = format!("{ca:?}");
    assert!(!shown.contains(&body));
    assert!(!shown.contains("PRIVATE"));
    let leaf = ca.issue_agent(&LeafOptions::new(AGENT)).expect("leaf");
    assert!(!format!("{leaf:?}").contains("PRIVATE"));
}

#[test]
fn hex_decode_round_trips_and_refuses_junk() {
    assert_eq!(hex_decode("7F01").expect("hex"), vec![0x7F, 0x01]);
    assert!(hex_decode("").is_err());
    assert!(hex_decode("ABC").is_err());
    assert!(hex_decode("ZZ").is_err());
}
