//! Building the upstream request from a permitted agent request, and streaming both ways.
//! The upstream receives exactly what was authorised: the normalised path, sanitised headers,
//! warden's identity headers, the agent's body streamed, capped and cut when it stalls. A
//! WebSocket handshake that both sides made properly hands back the ends of a tunnel; any other
//! protocol switch is refused.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use thiserror::Error;

use super::body::{AgentBody, AgentBodyWatch, AgentFault, FaultCell, UpstreamBody};
use super::rpc::{follow, RpcForwarding};
use super::stall::{reader_stalled, Progress, ProgressSet};
use super::tunnel::TunnelEnds;
use super::websocket;
use crate::decision::Reason;
use crate::headers::{
    sanitize_request_headers, sanitize_response_headers, X_FORWARDED_FOR, X_FORWARDED_HOST,
    X_FORWARDED_PROTO, X_REQUEST_ID, X_WARDEN_AGENT, X_WARDEN_ROLES,
};
use crate::ids::RequestId;
use crate::pipeline::Permit;
use crate::snapshot::Snapshot;
use crate::upstream::{BoxError, ProxyBody, Upstream, UpstreamError};

/// What the forwarder needs besides the permit: the request's circumstances, never its target.
pub struct Forwarding<'a> {
    pub snap: &'a Arc<Snapshot>,
    pub request_id: &'a RequestId,
    /// The agent's address as `x-forwarded-for` names it (made once per connection).
    pub client_ip: &'a HeaderValue,
    /// The agent's id as `x-warden-agent` carries it (made once per agent), when known.
    pub agent_header: Option<&'a HeaderValue>,
    /// Counts the agent's body bytes as they stream upstream.
    pub bytes_in: Arc<AtomicU64>,
    /// The connection's response bodies in progress: where this one publishes its progress.
    pub bodies: &'a ProgressSet,
    /// On an agent-protocol route: the live state its answer is followed with.
    pub rpc: Option<RpcForwarding>,
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
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
    websocket: bool,
    http2: bool,
) {
    // gRPC needs `te: trailers` on HTTP/2 (the one `te` value HTTP/2 allows); HTTP/1.1 upstreams
    // get no `te`, a hop-by-hop header.
    let trailers = http2 && te_has_trailers(headers);
    let snap = how.snap;
    sanitize_request_headers(headers, &snap.strip, websocket);
    join_cookie_crumbs(headers);
    // Read after sanitation: an `x-forwarded-for` that `Connection` named is gone with the hop.
    let prior_xff = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    headers.remove(&X_REQUEST_ID);
    headers.remove(&X_FORWARDED_FOR);
    if snap.token.as_ref().is_some_and(|t| !t.forward) {
        headers.remove(header::AUTHORIZATION);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    match how.agent_header {
        Some(v) => {
            headers.insert(X_WARDEN_AGENT, v.clone());
        }
        None => set(headers, X_WARDEN_AGENT, permit.agent().as_str()),
    }
    if let Some(policy) = snap.agents.get(permit.agent_entry()) {
        if let Some(roles) = &policy.roles_header {
            headers.insert(X_WARDEN_ROLES, roles.clone());
        }
    }
    headers.insert(X_REQUEST_ID, how.request_id.header());
    if prior_xff.is_empty() {
        headers.insert(X_FORWARDED_FOR, how.client_ip.clone());
    } else {
        let ip = how.client_ip.to_str().unwrap_or_default();
        set(headers, X_FORWARDED_FOR, &format!("{prior_xff}, {ip}"));
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    // Only a host a route names: the permit's host is one, or none at all.
    if let Some(h) = permit
        .target()
        .host
        .as_deref()
        .filter(|h| snap.routes.is_route_host(h))
    {
        set(headers, X_FORWARDED_HOST, h);
    }
}

/// What the upstream answered: its response (body still streaming), and for a WebSocket
/// handshake it accepted, the two ends of the tunnel to open.
pub struct Forwarded {
    pub response: Response<ProxyBody>,
    pub tunnel: Option<TunnelEnds>,
}

/// Why a permitted request got no upstream response: the upstream's failure, or the agent's.
#[derive(Debug, Error)]
pub enum ForwardError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the agent's request body is malformed")]
    AgentBody,
    #[error("the agent's request body made no progress for limits.body_stall_timeout")]
    AgentBodyStalled,
    #[error("the upstream switched protocols without a proper WebSocket handshake: {0}")]
    BadSwitch(&'static str),
}

impl ForwardError {
    pub fn reason(&self) -> Reason {
        match self {
            ForwardError::Upstream(e) => e.reason(),
            ForwardError::AgentBody => Reason::BadRequest,
            ForwardError::AgentBodyStalled => Reason::BodyStalled,
            ForwardError::BadSwitch(_) => Reason::UpstreamUnavailable,
        }
    }

    /// Whether the agent's connection must close after the refusal: its framing cannot be
    /// trusted, or the bytes after it were meant for a tunnel that was not opened.
    pub fn closes_connection(&self) -> bool {
        !matches!(self, ForwardError::Upstream(_))
    }
}

/// Forwards the permitted request and returns the upstream's response, body still streaming.
/// The upstream, the path and the identity headers come from the permit alone.
pub async fn forward(
    permit: &Permit,
    how: Forwarding<'_>,
    mut req: Request<Incoming>,
) -> Result<Forwarded, ForwardError> {
    let snap = how.snap;
    let upstream = snap
        .upstream(permit.upstream())
        .ok_or_else(|| UpstreamError::Unavailable("unknown upstream".into()))?;
    let limit = upstream.timeout.map_or(snap.limits.request_timeout, |t| {
        t.min(snap.limits.request_timeout)
    });
    // A WebSocket handshake is HTTP/1.1's: an HTTP/2 upstream gets a plain request.
    // Agent-protocol routes carry JSON-RPC, never a tunnel.
    let ws_key = websocket::handshake_key(req.version(), req.method(), req.headers())
        .filter(|_| !upstream.http2 && permit.protocol().is_none());
    let agent_upgrade = ws_key.is_some().then(|| hyper::upgrade::on(&mut req));
    let stall = snap.limits.body_stall_timeout;
    let watch = AgentBodyWatch {
        count: how.bytes_in.clone(),
        fault: Arc::new(FaultCell::default()),
        progress: Arc::new(Progress::default()),
    };
    let method = req.method().clone();
    let up = upstream_request(permit, &how, upstream, req, &watch, ws_key.is_some())?;
    let sent = tokio::select! {
        sent = upstream.send(up, limit) => sent,
        // The upstream stopped reading the agent's body: its connection is dropped with the
        // request, never pooled.
        _ = reader_stalled(&watch.progress, stall) => Err(UpstreamError::Timeout(stall)),
    };
    let mut resp = match sent {
        Ok(resp) => resp,
        // The agent's body broke the exchange: that is the agent's fault, not the upstream's.
        Err(e) => {
            return Err(match watch.fault.get() {
                Some(AgentFault::Malformed) => ForwardError::AgentBody,
                Some(AgentFault::Stalled) => ForwardError::AgentBodyStalled,
                None => e.into(),
            })
        }
    };
    let tunnel = match resp.status() {
        StatusCode::SWITCHING_PROTOCOLS => Some(switched(&mut resp, ws_key, agent_upgrade)?),
        _ => None,
    };
    sanitize_response_headers(resp.headers_mut(), tunnel.is_some());
    let progress = how.bodies.track();
    let mut response = resp.map(|b| UpstreamBody::new(b, stall, progress).boxed());
    if let Some(rpc) = how.rpc.clone() {
        // Answers on agent-protocol routes are followed: lists filtered, sessions and tasks bound.
        response = follow(permit, how.snap, rpc, response, &method).await?;
    }
    Ok(Forwarded { response, tunnel })
}

/// The upstream's request: the permit's path on the upstream, sanitised headers, the agent's
/// body counted, watched and capped.
fn upstream_request(
    permit: &Permit,
    how: &Forwarding<'_>,
    upstream: &Upstream,
    req: Request<Incoming>,
    watch: &AgentBodyWatch,
    websocket: bool,
) -> Result<Request<ProxyBody>, ForwardError> {
    let limits = &how.snap.limits;
    let (mut parts, body) = req.into_parts();
    let uri = upstream
        .uri_for(permit.target().target.path_and_query())
        .map_err(|e| UpstreamError::Unavailable(format!("bad upstream uri: {e}")))?;
    upstream_headers(&mut parts.headers, permit, how, websocket, upstream.http2);
    let body: ProxyBody = match permit.message().and_then(|m| m.bytes.clone()) {
        // The message as judged: exactly these bytes go upstream.
        Some(judged) => {
            how.bytes_in
                .fetch_add(judged.len() as u64, std::sync::atomic::Ordering::Relaxed);
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(judged.len()));
            full(judged)
        }
        None => {
            let body = AgentBody::new(body, watch, limits.body_stall_timeout);
            let max_body = usize::try_from(limits.max_request_body_bytes).unwrap_or(usize::MAX);
            Limited::new(body, max_body).map_err(BoxError::from).boxed()
        }
    };
    if permit.protocol().is_some() {
        // Answers are read (lists filtered, tasks recorded): ask for them uncompressed.
        parts.headers.remove(header::ACCEPT_ENCODING);
    }
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = parts.headers;
    Ok(up)
}

/// The tunnel's ends for an upstream `101`, if it answers the agent's WebSocket handshake.
/// Any other switch is refused: the upstream's connection is dropped with its response, so
/// nothing after the `101` reaches it.
fn switched(
    resp: &mut Response<ProxyBody>,
    key: Option<HeaderValue>,
    agent: Option<OnUpgrade>,
) -> Result<TunnelEnds, ForwardError> {
    let (Some(key), Some(agent)) = (key, agent) else {
        return Err(ForwardError::BadSwitch(
            "the agent did not ask for a WebSocket",
        ));
    };
    websocket::check_switch(resp.headers(), &key).map_err(ForwardError::BadSwitch)?;
    Ok(TunnelEnds {
        agent,
        upstream: hyper::upgrade::on(resp),
    })
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
