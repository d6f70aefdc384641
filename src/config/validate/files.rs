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

/// A file of PEM public keys (`-----BEGIN PUBLIC KEY-----`) to verify tokens with.
pub(super) fn check_public_keys(path: &Path) -> Result<(), String> {
    let bytes = read(path)?;
    let keys = SubjectPublicKeyInfoDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if keys.is_empty() {
        return Err(format!("{} holds no PEM PUBLIC KEY block", path.display()));
    }
    for (i, key) in keys.iter().enumerate() {
        token_key_problem(key).map_err(|e| format!("{}: key #{}: {e}", path.display(), i + 1))?;
    }
    Ok(())
}

/// Tokens are signed with ES256 (P-256) or EdDSA (Ed25519); any other key could never verify one.
fn token_key_problem(key: &SubjectPublicKeyInfoDer<'_>) -> Result<(), String> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(key)
        .map_err(|e| format!("not a public key: {e}"))?;
    let alg = &spki.algorithm;
    let p256 = alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256);
    if p256 || alg.algorithm == OID_SIG_ED25519 {
        Ok(())
    } else {
        Err("only P-256 (ES256) and Ed25519 (EdDSA) keys can verify tokens".to_string())
    }
}

/// A JWKS document: a JSON object with a non-empty `keys` array.
pub(super) fn check_jwks(path: &Path) -> Result<(), String> {
    let bytes = read(path)?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    match doc.get("keys").and_then(|k| k.as_array()) {
        Some(keys) if !keys.is_empty() => Ok(()),
        _ => Err(format!(
            "{} is not a JWKS: it needs a non-empty \"keys\" array",
            path.display()
        )),
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
