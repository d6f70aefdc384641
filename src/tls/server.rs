//! The agent-facing `rustls::ServerConfig`. It is rebuilt only when the certificate, key, client
//! CA, CRL files or key-exchange groups change: a new config means a new session cache, so a change
//! of trust also ends resumption of every earlier session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::verifier::RequireClientAuthEku;

/// The files and choices the agent-facing TLS is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crl: Vec<PathBuf>,
    /// Key-exchange groups in preference order; empty keeps rustls' secure default.
    pub kx_groups: Vec<String>,
}

impl TlsFiles {
    /// Every file named: a change of any of them rebuilds the TLS state.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.cert.clone(), self.key.clone(), self.client_ca.clone()];
        v.extend(self.crl.iter().cloned());
        v
    }
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("tls: {0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The built server side of TLS, shared by every handshake until trust changes.
pub struct TlsState {
    pub config: Arc<ServerConfig>,
    /// The verifier inside `config`, kept to re-check open connections after a reload.
    pub verifier: Arc<dyn ClientCertVerifier>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState").finish_non_exhaustive()
    }
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// Reads a CRL file, PEM or DER.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    if !pem.is_empty() {
        return Ok(pem);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(file_error(path, "not a CRL (PEM or DER)"))
}

/// The crypto provider with the operator's key-exchange groups, if any were chosen.
pub fn provider(kx_groups: &[String]) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    if !kx_groups.is_empty() {
        let mut chosen = Vec::new();
        for name in kx_groups {
            let g = p
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(name))
                .ok_or_else(|| TlsError::Config(format!("unknown key-exchange group `{name}`")))?;
            chosen.push(*g);
        }
        p.kx_groups = chosen;
    }
    Ok(Arc::new(p))
}

fn fingerprint(section: &TlsFiles) -> Result<[u8; 32], TlsError> {
    let mut h = Sha256::new();
    let mut files = vec![&section.cert, &section.key, &section.client_ca];
    files.extend(section.crl.iter());
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| file_error(f, e))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    for g in &section.kx_groups {
        h.update(g.as_bytes());
        h.update([0]);
    }
    Ok(h.finalize().into())
}

/// The client-certificate verifier for a CA bundle and CRLs.
pub fn client_verifier(
    section: &TlsFiles,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&section.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| file_error(&section.client_ca, format!("not a usable CA: {e}")))?;
    }
    let mut crls = Vec::new();
    for path in &section.crl {
        crls.extend(load_crls(path)?);
    }
    // CRLs are optional per CA: a CA whose CRL is not listed (one just added beside the old one,
    // say) revokes nothing, as when no CRL is configured at all, instead of refusing every
    // certificate it signed. A CA whose CRL is listed is checked against it.
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    Ok(Arc::new(RequireClientAuthEku::new(inner)))
}

/// Builds the TLS state, or returns `previous` untouched when no input changed.
pub fn build(
    section: &TlsFiles,
    previous: Option<&Arc<TlsState>>,
) -> Result<Arc<TlsState>, TlsError> {
    let fp = fingerprint(section)?;
    if let Some(prev) = previous.filter(|p| p.fingerprint == fp) {
        return Ok(prev.clone());
    }
    let provider = provider(&section.kx_groups)?;
    let verifier = client_verifier(section, provider.clone())?;
    let certs = load_certs(&section.cert)?;
    let key = load_key(&section.key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(TlsState {
        config: Arc::new(config),
        verifier,
        fingerprint: fp,
    }))
}
