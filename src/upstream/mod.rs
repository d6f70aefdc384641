//! Upstream connections: one pooled keep-alive client per upstream, over http or https (verifying
//! the upstream with its `tls.ca` and presenting `tls.cert`/`tls.key` when given). A client is
//! kept across reloads while its upstream's settings and files are unchanged, so pools survive.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::decision::Reason;

/// One `upstreams` entry as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub url: String,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub http2: bool,
    pub bodies_on_get: bool,
}

/// How warden speaks TLS to an upstream: the CA that verifies it, the client certificate it
/// presents, the name it verifies when that differs from the URL's host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

impl UpstreamSettings {
    /// The files it names: a change of any of them rebuilds its pool.
    pub fn files(&self) -> Vec<PathBuf> {
        self.tls
            .iter()
            .flat_map(|t| [&t.ca, &t.cert, &t.key])
            .flatten()
            .cloned()
            .collect()
    }
}

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type warden sends upstream: the agent's body, streamed and capped.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Unavailable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("request body over the limit")]
    BodyTooLarge,
    /// The agent's own body failed while it streamed (malformed framing, a cut connection).
    #[error("the agent's request body is malformed or was cut off")]
    AgentBody,
}

impl UpstreamError {
    pub fn reason(&self) -> Reason {
        match self {
            UpstreamError::Unavailable(_) => Reason::UpstreamUnavailable,
            UpstreamError::Timeout(_) => Reason::UpstreamTimeout,
            UpstreamError::BodyTooLarge => Reason::BodyTooLarge,
            UpstreamError::AgentBody => Reason::BadRequest,
        }
    }
}

/// One configured upstream and its connection pool.
pub struct Upstream {
    pub name: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` sent upstream: the upstream's own authority, as a reverse proxy does by default.
    pub host_header: HeaderValue,
    pub timeout: Option<Duration>,
    /// Bodies on GET/HEAD/OPTIONS are forwarded (on a connection of their own).
    pub bodies_on_get: bool,
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn fingerprint(name: &str, s: &UpstreamSettings) -> Result<[u8; 32], String> {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(format!("{s:?}").as_bytes());
    if let Some(tls) = &s.tls {
        for p in [&tls.ca, &tls.cert, &tls.key].into_iter().flatten() {
            h.update(read(p)?);
        }
    }
    Ok(h.finalize().into())
}

fn tls_config(s: &UpstreamSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    let tls = s.tls.as_ref();
    if let Some(ca) = tls.and_then(|t| t.ca.as_ref()) {
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match tls.map(|t| (&t.cert, &t.key)) {
        Some((Some(cert), Some(key))) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| e.to_string())
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

impl Upstream {
    /// Builds the upstream, reusing `previous` when nothing about it changed.
    pub fn build(
        name: &str,
        s: &UpstreamSettings,
        previous: Option<&Arc<Upstream>>,
    ) -> Result<Arc<Upstream>, String> {
        let fp = fingerprint(name, s)?;
        if let Some(prev) = previous.filter(|p| p.fingerprint == fp) {
            return Ok(prev.clone());
        }
        let uri: Uri = s.url.parse().map_err(|e| format!("url `{}`: {e}", s.url))?;
        let scheme = uri.scheme().cloned().ok_or("url has no scheme")?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(s.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)));
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(s)?)
            .https_or_http();
        if let Some(sn) = s.tls.as_ref().and_then(|t| t.server_name.clone()) {
            let name = rustls::pki_types::ServerName::try_from(sn).map_err(|e| e.to_string())?;
            builder =
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Arc::new(Upstream {
            name: name.into(),
            scheme,
            authority,
            host_header,
            timeout: s.timeout,
            bodies_on_get: s.bodies_on_get,
            client,
            fingerprint: fp,
        }))
    }

    /// The absolute URI of `path_and_query` on this upstream.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Sends the request; `limit` bounds the wait for the response head.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        limit: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(limit, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(limit)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::BodyTooLarge;
        }
        source = s.source();
    }
    UpstreamError::Unavailable(error_chain(e))
}

/// `a: b: c` for an error and its sources.
pub fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
