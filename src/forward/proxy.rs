//! Building the upstream request from a permitted agent request, and streaming both ways.
//! The upstream receives exactly what was authorised: the normalised path, sanitised headers,
//! warden's identity headers, the agent's body streamed and capped.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::body::Counted;
use crate::headers::{sanitize_request_headers, sanitize_response_headers};
use crate::pipeline::Permit;
use crate::snapshot::Snapshot;
use crate::upstream::{BoxError, ProxyBody, UpstreamError};

/// What the forwarder needs besides the permit: the request's circumstances, never its target.
pub struct Forwarding<'a> {
    pub snap: &'a Snapshot,
    pub request_id: &'a str,
    pub client_ip: IpAddr,
    /// Counts the agent's body bytes as they stream upstream.
    pub bytes_in: Arc<AtomicU64>,
}

/// Whether this is a WebSocket handshake (HTTP/1.1 GET with `Upgrade: websocket`).
pub fn is_websocket_upgrade(version: Version, method: &http::Method, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && method == http::Method::GET
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Rewrites the agent's request head into the upstream's.
fn upstream_headers(
    headers: &mut HeaderMap,
    permit: &Permit,
    how: &Forwarding<'_>,
    websocket: bool,
    http2: bool,
) {
    // gRPC needs `te: trailers` on HTTP/2 (the one `te` value HTTP/2 allows); HTTP/1.1 upstreams
    // get no `te`, a hop-by-hop header.
    let trailers = http2 && te_has_trailers(headers);
    let prior_xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let snap = how.snap;
    sanitize_request_headers(headers, &snap.strip, websocket);
    headers.remove("x-request-id");
    headers.remove("x-forwarded-for");
    if snap.token.as_ref().is_some_and(|t| !t.forward) {
        headers.remove(header::AUTHORIZATION);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    set(headers, "x-warden-agent", permit.agent().as_str());
    if let Some(policy) = snap.agents.get(permit.agent_entry()) {
        set(headers, "x-warden-roles", &policy.roles_header);
    }
    set(headers, "x-request-id", how.request_id);
    let ip = crate::net::canonical_ip(how.client_ip).to_string();
    let xff = if prior_xff.is_empty() {
        ip
    } else {
        format!("{prior_xff}, {ip}")
    };
    set(headers, "x-forwarded-for", &xff);
    set(headers, "x-forwarded-proto", "https");
    // Only a host a route names: the permit's host is one, or none at all.
    if let Some(h) = permit
        .target()
        .host
        .as_deref()
        .filter(|h| snap.routes.is_route_host(h))
    {
        set(headers, "x-forwarded-host", h);
    }
}

/// Forwards the permitted request and returns the upstream's response, body still streaming.
/// The upstream, the path and the identity headers come from the permit alone.
pub async fn forward(
    permit: &Permit,
    how: Forwarding<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let snap = how.snap;
    let upstream = snap
        .upstream(permit.upstream())
        .ok_or_else(|| UpstreamError::Unavailable("unknown upstream".into()))?;
    let limit = upstream.timeout.map_or(snap.limits.request_timeout, |t| {
        t.min(snap.limits.request_timeout)
    });
    // A WebSocket handshake is HTTP/1.1's: an HTTP/2 upstream gets a plain request.
    let websocket =
        !upstream.http2 && is_websocket_upgrade(req.version(), req.method(), req.headers());
    let agent_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let uri = upstream
        .uri_for(&permit.target().target.path_and_query())
        .map_err(|e| UpstreamError::Unavailable(format!("bad upstream uri: {e}")))?;
    upstream_headers(&mut parts.headers, permit, &how, websocket, upstream.http2);
    let body: ProxyBody = Limited::new(
        Counted::new(body, how.bytes_in.clone()),
        usize::try_from(snap.limits.max_request_body_bytes).unwrap_or(usize::MAX),
    )
    .map_err(BoxError::from)
    .boxed();
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = parts.headers;

    let mut resp = upstream.send(up, limit).await?;
    let upgraded = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    sanitize_response_headers(resp.headers_mut(), upgraded && websocket);
    if upgraded {
        match agent_upgrade {
            Some(agent_side) => {
                let upstream_side = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    if let (Ok(a), Ok(u)) = (agent_side.await, upstream_side.await) {
                        let mut a = TokioIo::new(a);
                        let mut u = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut u).await;
                    }
                });
            }
            // An upstream may not switch protocols the agent did not ask for.
            None => {
                return Err(UpstreamError::Unavailable(
                    "unsolicited protocol switch".into(),
                ))
            }
        }
    }
    Ok(resp)
}

/// Whether a `te` header lists `trailers` (read before hop-by-hop headers are removed).
fn te_has_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        })
}

/// An empty body of the proxy's type.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(BoxError::from)
        .boxed()
}

/// A complete body of the proxy's type.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(bytes.into())
        .map_err(BoxError::from)
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        let mut h = HeaderMap::new();
        assert!(!te_has_trailers(&h));
        h.insert(header::TE, HeaderValue::from_static("gzip, Trailers;q=1"));
        assert!(te_has_trailers(&h));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailersx"));
        assert!(!te_has_trailers(&h));
    }
}
