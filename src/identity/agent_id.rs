//! The agent id: exactly one `spiffe://<trust domain>/...` URI SAN of the client certificate.
//!
//! Only the URI SAN counts. The subject CN and DNS SANs are never read as an identity: a CA that
//! signs a name into the CN for some other purpose must not thereby mint an agent.

use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

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

const SCHEME: &str = "spiffe://";

/// Reads the agent id and the other facts from a DER certificate.
///
/// The returned id has its scheme and trust domain in lower case (SPIFFE trust domains are
/// case-insensitive) and its path exactly as written. A URI SAN in the trust domain whose path is
/// not a valid SPIFFE path counts as no identity at all ([`IdentityError::NoUriSan`]).
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

fn agent_id_of(cert: &X509Certificate<'_>, trust_domain: &str) -> Result<String, IdentityError> {
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
    match spiffe_trust_domain(uri) {
        Some(domain) if domain.eq_ignore_ascii_case(trust_domain) => {}
        _ => return Err(IdentityError::ForeignTrustDomain),
    }
    if !spiffe_id_is_valid(uri) {
        return Err(IdentityError::NoUriSan);
    }
    Ok(normalize_spiffe_id(uri))
}

/// The trust domain of `spiffe://<domain>/...`, or `None` when `id` is not a SPIFFE URI.
/// The scheme is compared without case; the domain is returned as written.
pub fn spiffe_trust_domain(id: &str) -> Option<&str> {
    let scheme = id.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = id.get(SCHEME.len()..)?;
    let end = rest.find('/').unwrap_or(rest.len());
    rest.get(..end)
}

/// Whether `id` is a workload SPIFFE ID: `spiffe://` (any case), a trust domain of
/// `[a-zA-Z0-9.-_]`, and a non-empty path of segments of `[a-zA-Z0-9.-_]`, none empty, `.` or `..`;
/// no port, user info, query, fragment or percent-encoding.
pub fn spiffe_id_is_valid(id: &str) -> bool {
    let Some(domain) = spiffe_trust_domain(id) else {
        return false;
    };
    if domain.is_empty() || !domain.bytes().all(is_spiffe_domain_byte) {
        return false;
    }
    let path = &id[SCHEME.len() + domain.len()..];
    let Some(path) = path.strip_prefix('/') else {
        return false;
    };
    path.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.bytes().all(is_spiffe_path_byte)
    })
}

/// Whether `id` is a valid SPIFFE ID whose trust domain is `trust_domain` (without case).
pub fn spiffe_id_in_domain(id: &str, trust_domain: &str) -> bool {
    spiffe_id_is_valid(id)
        && spiffe_trust_domain(id).is_some_and(|d| d.eq_ignore_ascii_case(trust_domain))
}

/// Lower-cases the scheme and the trust domain of a valid SPIFFE ID; the path is kept as is.
pub fn normalize_spiffe_id(id: &str) -> String {
    match spiffe_trust_domain(id) {
        Some(domain) => {
            let path = &id[SCHEME.len() + domain.len()..];
            format!("{SCHEME}{}{path}", domain.to_ascii_lowercase())
        }
        None => id.to_owned(),
    }
}

fn is_spiffe_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn is_spiffe_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

#[cfg(test)]
mod tests;
