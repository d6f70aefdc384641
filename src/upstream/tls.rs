//! The rustls client config warden uses towards one upstream: trust anchors (the upstream's
//! `tls.ca` alone when given, else the system's trusted roots), the optional client certificate,
//! and ALPN (`h2` only for an HTTP/2 upstream, `http/1.1` otherwise). aws-lc-rs is the provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::settings::UpstreamTls;

/// The trust anchors: `ca` alone when given (the system's roots are not consulted), else the
/// system's bundle (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the platform's store).
fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            // Unparsable entries in a system bundle are common and harmless; keep the rest.
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no tls.ca and no trusted roots found in the system store{why}; \
                     set tls.ca or SSL_CERT_FILE"
                ));
            }
        }
    }
    Ok(roots)
}

/// The client config for an https upstream.
pub fn client_config(tls: Option<&UpstreamTls>, http2: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = roots(tls.and_then(|t| t.ca.as_deref()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match tls.map(|t| (&t.cert, &t.key)) {
        Some((Some(cert), Some(key))) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| e.to_string())?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The name the upstream's certificate is verified against: `tls.server_name`, else the URL's host.
pub fn server_name(
    tls: Option<&UpstreamTls>,
    url_host: &str,
) -> Result<ServerName<'static>, String> {
    let name = tls
        .and_then(|t| t.server_name.as_deref())
        .unwrap_or(url_host);
    // An IPv6 literal comes bracketed from the URL.
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).map_err(|e| format!("server name `{name}`: {e}"))
}
