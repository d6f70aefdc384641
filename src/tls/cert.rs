//! Dates of certificates: when a connection's certificate stops being valid.

use x509_parser::prelude::{FromDer, X509Certificate};

/// notAfter of a DER certificate, Unix ms.
pub fn not_after_ms(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp().saturating_mul(1000))
}

/// The first instant, Unix ms, at which a DER certificate is expired. notAfter is inclusive
/// (RFC 5280) and the handshake verifier accepts the certificate through that whole second, so a
/// connection closed any earlier could reconnect at once and be closed again.
pub fn expires_at_ms(der: &[u8]) -> Option<i64> {
    not_after_ms(der).map(|t| t.saturating_add(1000))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::certs::pki::{Ca, LeafOptions};

    #[test]
    fn a_certificate_expires_one_second_after_its_inclusive_not_after() {
        let ca = Ca::generate("expiry test CA", Duration::from_secs(3600)).unwrap();
        let issued = ca
            .issue_agent(&LeafOptions::new("spiffe://example.org/agent/a"))
            .unwrap();
        let want_ms = issued.not_after.unix_timestamp() * 1000;
        assert_eq!(not_after_ms(&issued.cert_der), Some(want_ms));
        assert_eq!(expires_at_ms(&issued.cert_der), Some(want_ms + 1000));
        assert_eq!(expires_at_ms(b"not a certificate"), None);
    }
}
