use std::sync::OnceLock;
use std::time::Duration;

use super::*;
use crate::certs::pki::{Ca, IssuedCert, LeafOptions};

const TD: &str = "example.org";
const AGENT: &str = "spiffe://example.org/agent/inventory-bot";

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| Ca::generate("test CA", Duration::from_secs(3600)).expect("CA"))
}

fn issue(options: LeafOptions) -> IssuedCert {
    ca().issue_agent(&options).expect("issue")
}

#[test]
fn reads_the_agent_id_serial_expiry_and_thumbprint() {
    let cert = issue(LeafOptions::new(AGENT));
    let peer = peer_cert(&cert.cert_der, TD).expect("peer");
    assert_eq!(peer.agent_id.as_str(), AGENT);
    assert_eq!(peer.serial_hex, cert.serial_hex);
    assert_eq!(peer.serial_hex.len(), 32);
    assert!(peer
        .serial_hex
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(peer.not_after_unix, cert.not_after.unix_timestamp());
    let expected: [u8; 32] = Sha256::digest(&cert.cert_der).into();
    assert_eq!(peer.thumbprint, expected);
}

#[test]
fn no_uri_san_is_refused_even_with_a_spiffe_cn_and_dns_san() {
    let cert = issue(
        LeafOptions::new(AGENT)
            .without_uri_san()
            .common_name(AGENT)
            .dns_name("inventory-bot.example.org"),
    );
    assert_eq!(peer_cert(&cert.cert_der, TD), Err(IdentityError::NoUriSan));
}

#[test]
fn two_uri_sans_in_the_domain_are_refused() {
    let cert = issue(LeafOptions::new(AGENT).extra_uri_san("spiffe://example.org/agent/other"));
    assert_eq!(
        peer_cert(&cert.cert_der, TD),
        Err(IdentityError::SeveralUriSans)
    );
}

#[test]
fn a_foreign_second_uri_san_still_counts_as_several() {
    let cert = issue(LeafOptions::new(AGENT).extra_uri_san("https://example.com/whoever"));
    assert_eq!(
        peer_cert(&cert.cert_der, TD),
        Err(IdentityError::SeveralUriSans)
    );
}

#[test]
fn foreign_trust_domains_are_refused() {
    for uri in [
        "spiffe://evil.org/agent/inventory-bot",
        "spiffe://example.org.evil/agent/inventory-bot",
        "spiffe://evil.example.org/agent/inventory-bot",
        "spiffe://example.orgx/agent/inventory-bot",
    ] {
        let cert = issue(LeafOptions::new(uri));
        assert_eq!(
            peer_cert(&cert.cert_der, TD),
            Err(IdentityError::ForeignTrustDomain),
            "{uri}"
        );
    }
}

#[test]
fn identities_are_never_folded() {
    // Upper case in the scheme or the trust domain is not a spelling of the lower-case agent.
    for uri in [
        "SPIFFE://example.org/agent/inventory-bot",
        "Spiffe://example.org/agent/inventory-bot",
        "spiffe://EXAMPLE.org/agent/inventory-bot",
        "spiffe://Example.Org/agent/inventory-bot",
    ] {
        let cert = issue(LeafOptions::new(uri));
        assert!(
            matches!(
                peer_cert(&cert.cert_der, TD),
                Err(IdentityError::Malformed(_))
            ),
            "{uri}"
        );
    }
    // The path is case-sensitive and kept as written.
    let cert = issue(LeafOptions::new("spiffe://example.org/agent/Inventory-Bot"));
    let peer = peer_cert(&cert.cert_der, TD).expect("peer");
    assert_eq!(
        peer.agent_id.as_str(),
        "spiffe://example.org/agent/Inventory-Bot"
    );
}

#[test]
fn a_malformed_id_is_no_identity() {
    for uri in [
        "spiffe://example.org",
        "spiffe://example.org/",
        "spiffe://example.org/agent/",
        "spiffe://example.org//agent",
        "spiffe://example.org/agent/../admin",
        "spiffe://example.org/agent/./x",
        "spiffe://example.org/agent%2Fadmin",
        "spiffe://example.org/agent?x=1",
        "spiffe://example.org/agent#frag",
        "spiffe://example.org:443/agent/inventory-bot",
        "spiffe://user@example.org/agent/inventory-bot",
        "https://example.org/agent/inventory-bot",
        "example.org/agent/inventory-bot",
    ] {
        let cert = issue(LeafOptions::new(uri));
        assert!(
            matches!(
                peer_cert(&cert.cert_der, TD),
                Err(IdentityError::Malformed(_))
            ),
            "{uri}"
        );
    }
}

#[test]
fn garbage_and_trailing_bytes_are_unparsable() {
    assert_eq!(peer_cert(b"", TD), Err(IdentityError::Unparsable));
    assert_eq!(peer_cert(b"not a cert", TD), Err(IdentityError::Unparsable));
    let mut der = issue(LeafOptions::new(AGENT)).cert_der;
    der.push(0);
    assert_eq!(peer_cert(&der, TD), Err(IdentityError::Unparsable));
    let der = issue(LeafOptions::new(AGENT)).cert_der;
    assert_eq!(
        peer_cert(&der[..der.len() / 2], TD),
        Err(IdentityError::Unparsable)
    );
}

#[test]
fn serial_hex_drops_sign_padding_only() {
    assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
    assert_eq!(serial_hex(&[0x7F, 0x00]), "7F00");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[]), "");
}
