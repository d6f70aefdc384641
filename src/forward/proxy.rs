//! Building the upstream request from a permitted agent request, and streaming both ways.
//! The upstream receives exactly what was authorised: the normalised path, sanitised headers,
//! warden's identity headers, the agent's body streamed and capped.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// HTTP/2 sends a cookie as many `cookie` fields (crumbs); an HTTP/1.1 upstream must get one
/// `Cookie` header with them joined by `; ` (RFC 9113 section 8.2.3), or it reads them as one
/// comma-joined value. Values are joined as bytes: a cookie need not be UTF-8.
fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    let Some(first) = crumbs.next() else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    let mut several = false;
    for crumb in crumbs {
        several = true;
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(crumb.as_bytes());
    }
    if !several {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Rewrites the agent's request head into the upstream's.
fn upstream_headers(
    headers: &mut HeaderMap,
    permit: &Permit,
    how: &Forwarding<'_>,
    host_header: &HeaderValue,
    websocket: bool,
) {
    let snap = how.snap;
    sanitize_request_headers(headers, &snap.strip, websocket);
    join_cookie_crumbs(headers);
    // Read after sanitation: an `x-forwarded-for` that `Connection` named is gone with the hop.
    let prior_xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    headers.remove("x-request-id");
    headers.remove("x-forwarded-for");
    if snap.token.as_ref().is_some_and(|t| !t.forward) {
        headers.remove(header::AUTHORIZATION);
    }
    headers.insert(header::HOST, host_header.clone());
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
    let websocket = is_websocket_upgrade(req.version(), req.method(), req.headers());
    let agent_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let uri = upstream
        .uri_for(&permit.target().target.path_and_query())
        .map_err(|e| UpstreamError::Unavailable(format!("bad upstream uri: {e}")))?;
    upstream_headers(
        &mut parts.headers,
        permit,
        &how,
        &upstream.host_header,
        websocket,
    );
    // A body the agent breaks (bad chunk framing, a cut connection) fails the upstream request;
    // that is the agent's malformed request, not an unavailable upstream.
    let agent_failed = Arc::new(AtomicBool::new(false));
    let flag = agent_failed.clone();
    let body = body.map_err(move |e| {
        flag.store(true, Ordering::Relaxed);
        e
    });
    let body: ProxyBody = Limited::new(
        Counted::new(body, how.bytes_in.clone()),
        usize::try_from(snap.limits.max_request_body_bytes).unwrap_or(usize::MAX),
    )
    .map_err(BoxError::from)
    .boxed();
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.version_mut() = Version::HTTP_11;
    *up.headers_mut() = parts.headers;

    let mut resp = match upstream.send(up, limit).await {
        Ok(resp) => resp,
        Err(_) if agent_failed.load(Ordering::Relaxed) => return Err(UpstreamError::AgentBody),
        Err(e) => return Err(e),
    };
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
    Ok(resp.map(|b| b.map_err(BoxError::from).boxed()))
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
    fn cookie_crumbs_become_one_header_joined_with_semicolons() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_bytes(b"c=\xff").unwrap());
        join_cookie_crumbs(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, [HeaderValue::from_bytes(b"a=1; b=2; c=\xff").unwrap()]);

        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1, b=2"));
        join_cookie_crumbs(&mut one);
        assert_eq!(
            one[header::COOKIE],
            "a=1, b=2",
            "a single header is left as sent"
        );
    }
}
