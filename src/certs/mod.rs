//! The certificate commands (`warden certs ...`) and the PKI they share with the tests and demo.
//!
//! - [`pki`]: a development CA that issues server and agent certificates and signs CRLs;
//! - [`store`]: the CA directory on disk (files, issued index, revocations, CRL);
//! - [`mint`]: certificate-bound development tokens and their signing keys;
//! - [`commands`]: the functions behind `warden certs ...` and `warden token ...`.

use std::path::PathBuf;

use thiserror::Error;

pub mod commands;
pub mod mint;
pub mod pki;
pub mod store;

pub use pki::{Ca, IssuedCert, LeafOptions};

#[derive(Debug, Error)]
pub enum CertsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{} not found: run `warden certs init --dir DIR` first", .0.display())]
    NoCa(PathBuf),
    #[error("`{0}` is not a valid agent id (expected spiffe://<trust domain>/<path>)")]
    InvalidAgentId(String),
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("token: {0}")]
    Token(String),
    #[error("{0}")]
    Invalid(String),
}

impl CertsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CertsError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CertsError::Parse {
            path: path.into(),
            message: message.into(),
        }
    }
}
