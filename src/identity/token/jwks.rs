//! An issuer's keys fetched from its `jwks_url`: over HTTPS verified against `jwks_ca` or the
//! system's trusted roots, with a timeout and a size cap; cached; refreshed in the background and
//! when a token names a key the cache lacks (at most once per [`MISS_REFRESH_SECS`]); and kept,
//! stale, while the issuer cannot be reached, so an identity-provider outage does not lock every
//! agent out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::keys::{keys_from_jwks, VerifyKey};

/// A token naming an unknown key refreshes the set at most this often (caller's clock).
pub const MISS_REFRESH_SECS: i64 = 30;
/// The whole fetch (connect, TLS, request, body) must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed background fetch, the next try comes this soon (or at the refresh interval,
/// whichever is sooner).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const NEVER: i64 = i64::MIN;

/// One HTTPS GET per fetch, on a connection of its own: a JWKS is fetched every few minutes,
/// so nothing is pooled.
struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
}

impl HttpsClient {
    async fn get(
        &self,
        request: Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let uri = request.uri().clone();
        if uri.scheme_str() != Some("https") {
            return Err("jwks_url must be https".into());
        }
        let host = uri.host().ok_or("jwks_url has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| format!("{host}: {e}"))?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {}", error_chain(&e)))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {}", error_chain(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = request;
        let authority = uri.authority().map(|a| a.as_str().to_string());
        if let Some(v) = authority.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
            request.headers_mut().insert(header::HOST, v);
        }
        // Origin form on the wire, as a server expects from a client (not a proxy).
        if let Some(pq) = uri.path_and_query().and_then(|pq| pq.as_str().parse().ok()) {
            *request.uri_mut() = pq;
        }
        send.send_request(request)
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))
    }
}

/// One issuer's remote key set.
pub struct RemoteJwks {
    issuer: String,
    url: Uri,
    ca: Option<PathBuf>,
    refresh: Duration,
    client: HttpsClient,
    keys: ArcSwap<Vec<VerifyKey>>,
    /// Held while a fetch runs, so concurrent misses wait for one fetch instead of each starting
    /// their own.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches finished (either way); a waiter that sees it move knows a fetch happened.
    fetches: AtomicU64,
    /// Fetches that brought a new set; the background skips a round that one already covered.
    successes: AtomicU64,
    /// Caller's Unix seconds of the last refresh a miss started.
    last_miss: AtomicI64,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("issuer", &self.issuer)
            .field("url", &self.url)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Builds the client; no network yet. `previous`, for the same URL, lends its cached keys so
    /// a reload does not forget them. The background refresh starts when a runtime is present
    /// (not in `warden check`).
    pub fn new(
        issuer: &str,
        url: &str,
        ca: Option<&Path>,
        refresh: Duration,
        previous: Option<&RemoteJwks>,
    ) -> Result<Arc<Self>, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(format!("`{url}` must be an https:// URL"));
        }
        let keys = previous
            .filter(|p| p.url == uri)
            .map(|p| p.keys.load_full())
            .unwrap_or_default();
        let remote = Arc::new(RemoteJwks {
            issuer: issuer.to_owned(),
            url: uri,
            ca: ca.map(Path::to_path_buf),
            refresh,
            client: https_client(ca)?,
            keys: ArcSwap::new(keys),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            last_miss: AtomicI64::new(NEVER),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let initial = if remote.keys.load().is_empty() {
                Duration::ZERO
            } else {
                refresh
            };
            runtime.spawn(background(Arc::downgrade(&remote), initial));
        }
        Ok(remote)
    }

    /// Whether a reload may keep this one as it is.
    pub fn same_source(&self, url: &str, ca: Option<&Path>, refresh: Duration) -> bool {
        self.url == url && self.ca.as_deref() == ca && self.refresh == refresh
    }

    /// The cached keys (possibly empty before the first successful fetch).
    pub fn keys(&self) -> arc_swap::Guard<Arc<Vec<VerifyKey>>> {
        self.keys.load()
    }

    /// A token named a key the cache lacks: refresh unless a miss did within the last
    /// [`MISS_REFRESH_SECS`] of `now_unix`; either way, wait for a fetch already running.
    pub async fn refresh_on_miss(&self, now_unix: i64) {
        let seen = self.fetches.load(Ordering::Acquire);
        let last = self.last_miss.load(Ordering::Acquire);
        // A clock that went backwards does not block refreshes until it catches up.
        let due = last == NEVER || now_unix < last || now_unix - last >= MISS_REFRESH_SECS;
        let claimed = due
            && self
                .last_miss
                .compare_exchange(last, now_unix, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        let _fetching = self.fetching.lock().await;
        if claimed && self.fetches.load(Ordering::Acquire) == seen {
            self.fetch_and_store().await;
        }
    }

    /// A background refresh, unless a set newer than `seen_ok` arrived meanwhile; returns
    /// whether the keys are fresh.
    async fn refresh(&self, seen_ok: u64) -> bool {
        let _fetching = self.fetching.lock().await;
        if self.successes.load(Ordering::Acquire) != seen_ok {
            return true;
        }
        self.fetch_and_store().await
    }

    /// Fetches and swaps in the new set; on failure keeps the cached keys. Call with `fetching`.
    async fn fetch_and_store(&self) -> bool {
        let result = tokio::time::timeout(FETCH_TIMEOUT, self.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")));
        self.fetches.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(keys) => {
                tracing::debug!(issuer = %self.issuer, url = %self.url, keys = keys.len(), "JWKS refreshed");
                self.keys.store(Arc::new(keys));
                self.successes.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    url = %self.url,
                    cached_keys = self.keys.load().len(),
                    "JWKS fetch failed, keeping the cached keys: {e}"
                );
                false
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<VerifyKey>, String> {
        let request = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .header(
                header::USER_AGENT,
                concat!("warden/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(request))
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??;
        if response.status() != StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        keys_from_jwks(&body)
    }
}

/// Refreshes every `refresh` (sooner after a failure) while anything still holds the set.
async fn background(remote: Weak<RemoteJwks>, initial: Duration) {
    let mut delay = initial;
    let mut seen_ok = 0;
    loop {
        tokio::time::sleep(delay).await;
        let Some(remote) = remote.upgrade() else {
            return;
        };
        let fresh = remote.refresh(seen_ok).await;
        seen_ok = remote.successes.load(Ordering::Acquire);
        delay = if fresh {
            remote.refresh
        } else {
            remote.refresh.min(RETRY_AFTER_FAILURE)
        };
    }
}

fn https_client(ca: Option<&Path>) -> Result<HttpsClient, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no usable CA certificate", path.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(format!(
                    "no trusted root certificates found on this system ({} errors); set jwks_ca",
                    native.errors.len()
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(HttpsClient {
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
    })
}

/// An error and its sources, so "request failed" says why (refused, certificate unknown...).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
