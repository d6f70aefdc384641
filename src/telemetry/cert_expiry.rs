//! What `warden_certificate_expiry_timestamp_seconds` shows: the not-after of the server
//! certificate and of every CA in the client CA bundle, and the next update of every CRL. Read
//! from the files when a config is loaded, so a renewed file shows after its reload.

use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// The label `which`.
pub const SERVER: &str = "server";
pub const CLIENT_CA: &str = "client_ca";
pub const CRL_NEXT_UPDATE: &str = "crl_next_update";

/// The files whose dates are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryFiles {
    pub server_cert: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    pub which: &'static str,
    /// The certificate's subject, or the CRL's issuer.
    pub subject: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Every date the files hold; an unreadable file contributes nothing (validation has already
/// refused such a config).
pub fn read(files: &ExpiryFiles) -> Vec<CertExpiry> {
    let mut out = Vec::new();
    if let Some(path) = &files.server_cert {
        // The leaf only: the chain's intermediates are the CA's business.
        out.extend(certificates(path, SERVER).into_iter().take(1));
    }
    if let Some(path) = &files.client_ca {
        out.extend(certificates(path, CLIENT_CA));
    }
    for path in &files.crls {
        out.extend(crl_next_updates(path));
    }
    out
}

fn pem_blocks(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .filter_map(Result::ok)
        .map(|p| (p.label, p.contents))
        .collect();
    if blocks.is_empty() && bytes.first() == Some(&0x30) {
        // DER, as CRLs often are.
        return vec![(String::new(), bytes)];
    }
    blocks
}

fn certificates(path: &Path, which: &'static str) -> Vec<CertExpiry> {
    pem_blocks(path)
        .iter()
        .filter(|(label, _)| label == "CERTIFICATE" || label.is_empty())
        .filter_map(|(_, der)| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            Some(CertExpiry {
                which,
                subject: cert.subject().to_string(),
                timestamp: cert.validity().not_after.timestamp(),
            })
        })
        .collect()
}

fn crl_next_updates(path: &Path) -> Vec<CertExpiry> {
    pem_blocks(path)
        .iter()
        .filter(|(label, _)| label == "X509 CRL" || label.is_empty())
        .filter_map(|(_, der)| {
            let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
            Some(CertExpiry {
                which: CRL_NEXT_UPDATE,
                subject: crl.issuer().to_string(),
                timestamp: crl.next_update()?.timestamp(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
        DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    };
    use time::{Duration, OffsetDateTime};

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("time")
    }

    #[test]
    fn reads_server_ca_and_crl_dates() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name.push(DnType::CommonName, "Test CA");
        ca.not_before = at(1_700_000_000);
        ca.not_after = at(1_900_000_000);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca, &ca_key);
        let leaf_key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::CommonName, "warden");
        leaf.not_before = at(1_700_000_000);
        leaf.not_after = at(1_800_000_000);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
        let crl = CertificateRevocationListParams {
            this_update: at(1_750_000_000),
            next_update: at(1_750_000_000) + Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .expect("crl");
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let files = ExpiryFiles {
            server_cert: Some(write(
                "server.pem",
                format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            )),
            client_ca: Some(write("ca.pem", ca_cert.pem())),
            crls: vec![write("crl.pem", crl.pem().expect("pem"))],
        };
        let got = read(&files);
        let want = |which, subject: &str, timestamp| CertExpiry {
            which,
            subject: subject.to_owned(),
            timestamp,
        };
        assert_eq!(
            got,
            vec![
                want(SERVER, "CN=warden", 1_800_000_000),
                want(CLIENT_CA, "CN=Test CA", 1_900_000_000),
                want(CRL_NEXT_UPDATE, "CN=Test CA", 1_750_000_000 + 7 * 86_400),
            ]
        );
        let missing = ExpiryFiles {
            server_cert: Some(dir.path().join("nope.pem")),
            ..ExpiryFiles::default()
        };
        assert!(read(&missing).is_empty());
    }
}
