//! A throwaway PKI: a CA, a server certificate for 127.0.0.1, and agent certificates of every
//! shape the tests need, written to a temp dir.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use time::OffsetDateTime;
use warden::certs::pki::{Ca, IssuedCert, LeafOptions, Revoked};

pub const TRUST_DOMAIN: &str = "example.org";

pub fn agent_id(name: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/agent/{name}")
}

/// An agent's certificate and key on disk.
#[derive(Clone, Debug)]
pub struct AgentCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub issued: IssuedCert,
}

pub struct TestPki {
    pub dir: TempDir,
    pub ca: Ca,
    pub ca_path: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub crl_path: PathBuf,
    crl_number: std::cell::Cell<u64>,
}

impl TestPki {
    pub fn new() -> Self {
        Self::named("warden test CA")
    }

    /// A PKI whose CA has this common name (a foreign CA with another name than ours).
    pub fn named(ca_name: &str) -> Self {
        super::init_crypto();
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::generate(ca_name, Duration::from_secs(86_400)).expect("CA");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).expect("write CA");
        let server = ca
            .issue_server(&[], Duration::from_secs(86_400))
            .expect("server cert");
        let (server_cert, server_key) = server.write(dir.path(), "server").expect("write server");
        let crl_path = dir.path().join("crl.pem");
        std::fs::write(&crl_path, ca.crl_pem(&[], 1).expect("CRL")).expect("write CRL");
        TestPki {
            dir,
            ca,
            ca_path,
            server_cert,
            server_key,
            crl_path,
            crl_number: std::cell::Cell::new(1),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Issues a certificate as `options` describe and writes it as `NAME.pem`.
    pub fn issue(&self, file_name: &str, options: &LeafOptions) -> AgentCert {
        let issued = self.ca.issue_agent(options).expect("issue agent cert");
        let (cert, key) = issued
            .write(self.dir.path(), file_name)
            .expect("write agent cert");
        AgentCert { cert, key, issued }
    }

    /// A valid agent certificate for `spiffe://example.org/agent/NAME`.
    pub fn agent(&self, name: &str) -> AgentCert {
        self.issue(&name.replace('/', "-"), &LeafOptions::new(agent_id(name)))
    }

    /// Rewrites the CRL to list exactly `certs`.
    pub fn revoke(&self, certs: &[&AgentCert]) {
        let revoked: Vec<Revoked> = certs
            .iter()
            .map(|c| Revoked {
                serial_hex: c.issued.serial_hex.clone(),
                revoked_at: OffsetDateTime::now_utc(),
            })
            .collect();
        self.crl_number.set(self.crl_number.get() + 1);
        let pem = self
            .ca
            .crl_pem(&revoked, self.crl_number.get())
            .expect("CRL");
        std::fs::write(&self.crl_path, pem).expect("write CRL");
    }
}
