//! Files the config names: certificates, keys, CRLs, token keys. Each is read and parsed now, so
//! that a typo or a mismatched pair is refused by `check` and by a reload, not at the first
//! handshake.
//!
//! Relative paths are resolved against the process's current working directory, the same way
//! the server opens them when it starts.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, SubjectPublicKeyInfoDer,
};

use super::Report;
use crate::config::schema::{TlsSection, UpstreamTlsSection};
use crate::identity::token::keys::{keys_from_jwks, keys_from_pem};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every certificate of a PEM file; at least one, each a parseable X.509 certificate.
pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM CERTIFICATE block", path.display()));
    }
    for (i, cert) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(cert).map_err(|e| {
            format!(
                "{}: certificate #{} does not parse: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{} holds no PEM private key", path.display())
        }
        other => format!("{} is not a valid PEM private key: {other}", path.display()),
    })
}

/// Whether `key` is the private half of the first certificate's public key.
fn key_matches(
    certs: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), String> {
    use rustls::{Error, InconsistentKeys};
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    match rustls::sign::CertifiedKey::new(certs.to_vec(), signer).keys_match() {
        // A key type that cannot tell its public half is left to the handshake.
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate's public key".to_string())
        }
        Err(e) => Err(format!("cannot compare key and certificate: {e}")),
    }
}

/// An expired server certificate would fail every handshake; say so now.
fn check_not_expired(cert: &CertificateDer<'_>) -> Result<(), String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Ok(());
    };
    let not_after = parsed.validity().not_after;
    if not_after < x509_parser::time::ASN1Time::now() {
        return Err(format!("the certificate expired on {not_after}"));
    }
    Ok(())
}

/// A certificate file and its key file, checked as a pair.
fn check_pair(r: &mut Report<'_>, cert: &Path, cert_path: &str, key: &Path, key_path: &str) {
    let certs = match read_certs(cert) {
        Ok(certs) => certs,
        Err(e) => {
            r.err(cert_path, e);
            if let Err(e) = read_key(key) {
                r.err(key_path, e);
            }
            return;
        }
    };
    if let Some(Err(e)) = certs.first().map(check_not_expired) {
        r.err(cert_path, e);
    }
    match read_key(key) {
        Ok(k) => {
            if let Err(e) = key_matches(&certs, &k) {
                r.err(key_path, format!("{e} in {}", cert.display()));
            }
        }
        Err(e) => r.err(key_path, e),
    }
}

/// A bundle of trust anchors.
fn check_ca_bundle(r: &mut Report<'_>, path: &Path, key_path: &str) {
    let certs = match read_certs(path) {
        Ok(certs) => certs,
        Err(e) => return r.err(key_path, e),
    };
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        if let Err(e) = store.add(cert) {
            r.err(
                key_path,
                format!(
                    "{}: certificate #{} is not usable as a trust anchor: {e}",
                    path.display(),
                    i + 1
                ),
            );
        }
    }
}

/// A CRL file, PEM (one or more `X509 CRL` blocks) or DER.
fn check_crl(path: &Path) -> Result<(), String> {
    let bytes = read(path)?;
    let crls: Vec<CertificateRevocationListDer<'static>> =
        if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?
        } else {
            vec![CertificateRevocationListDer::from(bytes)]
        };
    if crls.is_empty() {
        return Err(format!("{} holds no PEM X509 CRL block", path.display()));
    }
    for crl in &crls {
        x509_parser::parse_x509_crl(crl)
            .map_err(|e| format!("{} is not a valid CRL: {e}", path.display()))?;
    }
    Ok(())
}

pub(super) fn check_tls(r: &mut Report<'_>, tls: &TlsSection) {
    check_pair(r, &tls.cert, "tls.cert", &tls.key, "tls.key");
    check_ca_bundle(r, &tls.client_ca, "tls.client_ca");
    for (i, crl) in tls.crl.iter().enumerate() {
        if let Err(e) = check_crl(crl) {
            r.err(&format!("tls.crl[{i}]"), e);
        }
    }
}

pub(super) fn check_upstream_tls(r: &mut Report<'_>, base: &str, tls: &UpstreamTlsSection) {
    if let Some(ca) = &tls.ca {
        check_ca_bundle(r, ca, &format!("{base}.ca"));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => check_pair(
            r,
            cert,
            &format!("{base}.cert"),
            key,
            &format!("{base}.key"),
        ),
        (Some(_), None) => r.err(
            &format!("{base}.cert"),
            "a client certificate needs its key: set key as well",
        ),
        (None, Some(_)) => r.err(
            &format!("{base}.key"),
            "a client key needs its certificate: set cert as well",
        ),
        (None, None) => {}
    }
    if let Some(name) = &tls.server_name {
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            r.err(
                &format!("{base}.server_name"),
                format!("\"{name}\" is not a DNS name or IP address"),
            );
        }
    }
}

/// A file of PEM public keys (`-----BEGIN PUBLIC KEY-----`) to verify tokens with: each RSA of
/// 2048 bits or more, EC P-256 or P-384, or Ed25519, as the verifier reads them.
pub(super) fn check_public_keys(path: &Path) -> Result<(), String> {
    let bytes = read(path)?;
    if SubjectPublicKeyInfoDer::pem_slice_iter(&bytes)
        .next()
        .is_none()
    {
        return Err(format!("{} holds no PEM PUBLIC KEY block", path.display()));
    }
    keys_from_pem(&bytes)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A JWKS document with at least one key the verifier can use.
pub(super) fn check_jwks(path: &Path) -> Result<(), String> {
    let bytes = read(path)?;
    keys_from_jwks(&bytes)
        .map(|_| ())
        .map_err(|e| format!("{} is not a usable JWKS: {e}", path.display()))
}

/// `jwks_url`: an https:// URL with a host (keys fetched in the clear could be anyone's).
pub(super) fn check_jwks_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Ok(()),
        _ => Err(format!("\"{url}\" must be an https:// URL")),
    }
}

/// A bearer-token file: readable and not blank.
pub(super) fn check_token_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(())
}
