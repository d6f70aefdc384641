//! Upstream connections: one capped pool per upstream (`pool`), opened over TCP or TLS
//! (`connect`, `tls`: `tls.ca` alone, else the system's trusted roots) with hyper's own HTTP/1.1
//! or HTTP/2 client connections; a request holds a `lease` on its connection until its response
//! ends. `settings` has the defaults, `gauges` the connection gauge, `error` the failures.
//! An upstream is kept across reloads while its settings and files are unchanged, so pools
//! survive.

mod connect;
mod error;
mod gauges;
mod lease;
mod pool;
mod settings;
mod tls;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;

pub use error::{error_chain, UpstreamError};
pub use settings::{
    UpstreamSettings, UpstreamTls, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, H2_STREAMS_PER_CONNECTION,
};

use connect::Dialer;
use gauges::ConnGauges;
use lease::{PooledBody, SentBody};
use pool::Pool;

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type warden sends upstream: the agent's body, streamed and capped.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// One configured upstream and its connection pool.
pub struct Upstream {
    pub name: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` sent to an HTTP/1.1 upstream: its own authority, as a reverse proxy does by
    /// default (HTTP/2 carries the same as `:authority`).
    pub host_header: HeaderValue,
    pub timeout: Option<Duration>,
    /// Bodies on GET/HEAD/OPTIONS are forwarded, each on a connection of its own.
    pub bodies_on_get: bool,
    /// Speaks HTTP/2 to the upstream.
    pub http2: bool,
    pool: Pool,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

/// The gauges a measured pool sets.
#[derive(Debug, Clone, Copy)]
pub struct PoolGauges<'a> {
    pub connections: &'a prometheus::IntGaugeVec,
    pub max_connections: &'a prometheus::IntGaugeVec,
}

impl Upstream {
    /// Builds the upstream, reusing `previous` when nothing about it changed. `gauges` are
    /// `warden_upstream_connections` and `warden_upstream_max_connections` where the pool is
    /// measured.
    pub fn build(
        name: &str,
        s: &UpstreamSettings,
        previous: Option<&Arc<Upstream>>,
        gauges: Option<PoolGauges<'_>>,
    ) -> Result<Arc<Upstream>, String> {
        let fp = s.fingerprint(name)?;
        if let Some(prev) = previous.filter(|p| p.fingerprint == fp) {
            return Ok(prev.clone());
        }
        let uri: Uri = s.url.parse().map_err(|e| format!("url `{}`: {e}", s.url))?;
        let scheme = uri.scheme().cloned().ok_or("url has no scheme")?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let https = scheme == Scheme::HTTPS;
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = format!("{}:{port}", authority.host());
        let tls = if https {
            let config = tls::client_config(s.tls.as_ref(), s.http2)?;
            Some((config, tls::server_name(s.tls.as_ref(), authority.host())?))
        } else {
            None
        };
        let dialer = Dialer::new(addr, tls, s.http2, s.connect_timeout());
        let pool = Pool::new(
            dialer,
            s.http2,
            s.max_connections(),
            s.connect_timeout(),
            s.idle_timeout(),
            ConnGauges::new(gauges.map(|g| g.connections), name),
        );
        if let Some(g) = gauges {
            let max = i64::try_from(s.max_connections()).unwrap_or(i64::MAX);
            g.max_connections.with_label_values(&[name]).set(max);
        }
        Ok(Arc::new(Upstream {
            name: name.into(),
            scheme,
            authority,
            host_header,
            timeout: s.timeout,
            bodies_on_get: s.bodies_on_get,
            http2: s.http2,
            pool,
            fingerprint: fp,
        }))
    }

    /// The URI a request for `path_and_query` carries on this upstream: origin-form for
    /// HTTP/1.1 (with `Host` beside it), absolute for HTTP/2 (`:scheme` and `:authority`).
    pub fn uri_for(&self, path_and_query: &PathAndQuery) -> Result<Uri, http::Error> {
        let pq = path_and_query.clone();
        if !self.http2 {
            return Ok(Uri::from(pq));
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }

    /// Sends a request whose URI came from [`uri_for`](Self::uri_for). A pooled connection is
    /// used unless the request carries a body on GET/HEAD/OPTIONS, which gets a connection of its
    /// own closed after it: an upstream that does not read such a body would take it for the
    /// next request on the connection. `limit` bounds the wait for the response head.
    pub async fn send(
        &self,
        mut req: Request<ProxyBody>,
        limit: Duration,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let own = is_safe_method(req.method()) && !req.body().is_end_stream();
        if self.http2 {
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        } else {
            *req.version_mut() = Version::HTTP_11;
            let headers = req.headers_mut();
            headers.insert(header::HOST, self.host_header.clone());
            if own {
                // The upstream stops reading after this request, whatever follows it.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        let sent = if self.http2 {
            None
        } else {
            let (parts, body) = req.into_parts();
            let (body, sent) = SentBody::new(body);
            req = Request::from_parts(parts, body.boxed());
            Some(sent)
        };
        let deadline = tokio::time::Instant::now() + limit;
        let mut req = Some(req);
        loop {
            let Some(next) = req.take() else {
                return Err(UpstreamError::Unavailable("request lost".into()));
            };
            let mut lease = self.pool.acquire(own).await?;
            match tokio::time::timeout_at(deadline, lease.send(next)).await {
                Err(_) => return Err(UpstreamError::Timeout(limit)),
                Ok(Ok(resp)) => {
                    return Ok(resp.map(|b| PooledBody::new(b, lease, sent).boxed()));
                }
                // A reused connection closed under us before the request was written: once
                // more on another connection.
                Ok(Err((_, Some(back)))) if lease.reused() => req = Some(back),
                Ok(Err((e, _))) => return Err(e),
            }
        }
    }
}

/// Methods whose body most servers do not expect, and may not read.
fn is_safe_method(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD || m == Method::OPTIONS
}
