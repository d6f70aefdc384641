//! The agent id: exactly one `spiffe://<trust domain>/...` URI SAN of the client certificate.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("the certificate cannot be parsed")]
    Unparsable,
    #[error("the certificate has no URI SAN in the trust domain")]
    NoUriSan,
    #[error("the certificate has several URI SANs")]
    SeveralUriSans,
    #[error("the certificate's URI SAN is outside the trust domain")]
    ForeignTrustDomain,
}

/// Facts about a verified client certificate that later steps need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The agent id (`spiffe://...`).
    pub agent_id: String,
    /// The certificate serial, as uppercase hex without separators.
    pub serial_hex: String,
    /// notAfter as Unix seconds.
    pub not_after_unix: i64,
    /// SHA-256 of the DER certificate (RFC 8705 `x5t#S256`).
    pub thumbprint: [u8; 32],
}

/// Reads the agent id and the other facts from a DER certificate.
pub fn peer_cert(der: &[u8], trust_domain: &str) -> Result<PeerCert, IdentityError> {
    let _ = (der, trust_domain);
    Err(IdentityError::Unparsable)
}
