//! TLS in: the agent-facing server config (client certificates required, CRLs honoured, clientAuth
//! EKU enforced), certificate dates, and the classification of failed handshakes for metrics and
//! audit.

pub mod cert;
pub mod reason;
pub mod server;
pub mod verifier;

pub use server::{load_certs, TlsError, TlsFiles, TlsState};
