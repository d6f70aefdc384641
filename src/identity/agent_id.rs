//! The agent id: exactly one `spiffe://<trust domain>/...` URI SAN of the client certificate.
//!
//! Only the URI SAN counts. The subject CN and DNS SANs are never read as an identity: a CA that
//! signs a name into the CN for some other purpose must not thereby mint an agent.

use sha2::{Digest, Sha256};

use crate::ids::{AgentId, SpiffeIdError};
use thiserror::Error;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("the certificate cannot be parsed")]
    Unparsable,
    #[error("the certificate has no URI SAN")]
    NoUriSan,
    #[error("the certificate has several URI SANs")]
    SeveralUriSans,
    #[error("the certificate's URI SAN is not a SPIFFE ID: {0}")]
    Malformed(SpiffeIdError),
    #[error("the certificate's SPIFFE ID is outside the trust domain")]
    ForeignTrustDomain,
}

/// Facts about a verified client certificate that later steps need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The agent id, exactly as the certificate spells it.
    pub agent_id: AgentId,
    /// The certificate serial, as uppercase hex without separators.
    pub serial_hex: String,
    /// notAfter as Unix seconds.
    pub not_after_unix: i64,
    /// SHA-256 of the DER certificate (RFC 8705 `x5t#S256`).
    pub thumbprint: [u8; 32],
}

/// Reads the agent id and the other facts from a DER certificate.
///
/// The one URI SAN must be a SPIFFE ID by the standard's rules, in `trust_domain`, compared byte
/// for byte: a scheme or trust domain spelt in upper case is not folded into the lower-case agent
/// (whose rules would then apply to a name the CA never meant), it is no identity at all.
pub fn peer_cert(der: &[u8], trust_domain: &str) -> Result<PeerCert, IdentityError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparsable)?;
    if !rest.is_empty() {
        return Err(IdentityError::Unparsable);
    }
    let agent_id = agent_id_of(&cert, trust_domain)?;
    Ok(PeerCert {
        agent_id,
        serial_hex: serial_hex(cert.raw_serial()),
        not_after_unix: cert.validity().not_after.timestamp(),
        thumbprint: thumbprint(der),
    })
}

/// SHA-256 over the DER certificate, as RFC 8705 `x5t#S256` binds it.
pub fn thumbprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// A serial number's raw big-endian bytes as uppercase hex, without the sign-padding zero bytes,
/// so that the same serial prints the same whatever encoder produced it.
pub fn serial_hex(raw: &[u8]) -> String {
    let first = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw.get(first..)
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn agent_id_of(cert: &X509Certificate<'_>, trust_domain: &str) -> Result<AgentId, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| IdentityError::Unparsable)?;
    let mut uris = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    let uri = uris.next().ok_or(IdentityError::NoUriSan)?;
    // Two URI SANs are refused even when only one is in the trust domain: which of them the
    // upstream or a log reader would take as "the" identity is ambiguous.
    if uris.next().is_some() {
        return Err(IdentityError::SeveralUriSans);
    }
    let id = AgentId::parse(uri).map_err(IdentityError::Malformed)?;
    if id.trust_domain() != trust_domain {
        return Err(IdentityError::ForeignTrustDomain);
    }
    Ok(id)
}

#[cfg(test)]
mod tests;
