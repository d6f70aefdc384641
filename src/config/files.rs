//! Every file a config names: what the reloader watches (a change of any of them reloads) and
//! which dates the certificate-expiry metric shows.

use std::path::{Path, PathBuf};

use super::schema::ConfigFile;
use crate::telemetry::cert_expiry::ExpiryFiles;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFiles {
    /// TLS certificates, keys, CAs and CRLs, the admin token, token keys, JWKS files and CAs,
    /// upstream TLS files; absolute, in config order, without duplicates.
    pub watched: Vec<PathBuf>,
    pub expiry: ExpiryFiles,
}

/// The files `f` names, relative paths resolved against `base_dir` as the loaders read them.
pub fn named_files(f: &ConfigFile, base_dir: &Path) -> ConfigFiles {
    let abs = |p: &PathBuf| base_dir.join(p);
    let mut named: Vec<PathBuf> = Vec::new();
    let mut expiry = ExpiryFiles::default();
    if let Some(tls) = &f.tls {
        named.extend([abs(&tls.cert), abs(&tls.key), abs(&tls.client_ca)]);
        named.extend(tls.crl.iter().map(abs));
        expiry = ExpiryFiles {
            server_cert: Some(abs(&tls.cert)),
            client_ca: Some(abs(&tls.client_ca)),
            crls: tls.crl.iter().map(abs).collect(),
        };
    }
    if let Some(token_file) = f.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
        named.push(abs(token_file));
    }
    let issuers = f
        .identity
        .iter()
        .filter_map(|i| i.token.as_ref())
        .flat_map(|t| t.issuers.iter());
    for issuer in issuers {
        named.extend(
            [&issuer.keys, &issuer.jwks, &issuer.jwks_ca]
                .into_iter()
                .flatten()
                .map(abs),
        );
    }
    for tls in f.upstreams.values().filter_map(|u| u.tls.as_ref()) {
        named.extend(
            [&tls.ca, &tls.cert, &tls.key]
                .into_iter()
                .flatten()
                .map(abs),
        );
    }
    let mut watched = Vec::with_capacity(named.len());
    for p in named {
        if !watched.contains(&p) {
            watched.push(p);
        }
    }
    ConfigFiles { watched, expiry }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_file_once() {
        let yaml = r#"
tls: { cert: c/server.pem, key: c/server-key.pem, client_ca: c/ca.pem, crl: [c/crl.pem] }
admin: { listen: "127.0.0.1:9901", token_file: /run/secrets/admin }
identity:
  trust_domain: example.org
  token:
    audience: w
    issuers:
      - { name: a, keys: c/token.pem }
      - { name: b, jwks_url: "https://idp/jwks", jwks_ca: c/ca.pem }
upstreams:
  u: { url: "https://u:1", tls: { ca: c/u-ca.pem, cert: c/u.pem, key: c/u-key.pem } }
"#;
        let f: ConfigFile = serde_saphyr::from_str(yaml).expect("yaml");
        let files = named_files(&f, Path::new("/base"));
        let names: Vec<String> = files
            .watched
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/base/c/server.pem",
                "/base/c/server-key.pem",
                "/base/c/ca.pem",
                "/base/c/crl.pem",
                "/run/secrets/admin",
                "/base/c/token.pem",
                "/base/c/u-ca.pem",
                "/base/c/u.pem",
                "/base/c/u-key.pem",
            ]
        );
        assert_eq!(
            files.expiry.server_cert.as_deref(),
            Some(Path::new("/base/c/server.pem"))
        );
        assert_eq!(files.expiry.crls, vec![PathBuf::from("/base/c/crl.pem")]);
    }
}
