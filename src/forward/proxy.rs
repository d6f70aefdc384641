//! Building the upstream request from an authorised agent request, and streaming both ways.
//! The upstream receives exactly what was authorised: the normalised path, sanitised headers,
//! warden's identity headers, the agent's body streamed and capped.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::headers::{sanitize_request_headers, sanitize_response_headers, StripList};
use super::upstream::{BoxError, ProxyBody, Upstream, UpstreamError};
use crate::server::body::Counted;

/// Everything the forwarder needs besides the request.
pub struct ForwardPlan<'a> {
    pub upstream: &'a Arc<Upstream>,
    pub path_and_query: &'a str,
    pub agent_id: &'a str,
    pub roles_header: &'a str,
    pub request_id: &'a str,
    pub client_ip: IpAddr,
    pub host: Option<&'a str>,
    pub strip: &'a StripList,
    pub strip_authorization: bool,
    pub response_timeout: Duration,
    pub max_body_bytes: u64,
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
fn upstream_headers(headers: &mut HeaderMap, plan: &ForwardPlan<'_>, websocket: bool) {
    let prior_xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    sanitize_request_headers(headers, plan.strip, websocket);
    headers.remove("x-request-id");
    headers.remove("x-forwarded-for");
    if plan.strip_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    headers.insert(header::HOST, plan.upstream.host_header.clone());
    set(headers, "x-warden-agent", plan.agent_id);
    set(headers, "x-warden-roles", plan.roles_header);
    set(headers, "x-request-id", plan.request_id);
    let ip = crate::authz::when::canonical_ip(plan.client_ip).to_string();
    let xff = if prior_xff.is_empty() {
        ip
    } else {
        format!("{prior_xff}, {ip}")
    };
    set(headers, "x-forwarded-for", &xff);
    set(headers, "x-forwarded-proto", "https");
    if let Some(h) = plan.host {
        set(headers, "x-forwarded-host", h);
    }
}

/// Forwards `req` as planned and returns the upstream's response, body still streaming.
pub async fn forward(
    plan: ForwardPlan<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let websocket = is_websocket_upgrade(req.version(), req.method(), req.headers());
    let agent_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let uri = plan
        .upstream
        .uri_for(plan.path_and_query)
        .map_err(|e| UpstreamError::Unavailable(format!("bad upstream uri: {e}")))?;
    upstream_headers(&mut parts.headers, &plan, websocket);
    let body: ProxyBody = Limited::new(
        Counted::new(body, plan.bytes_in.clone()),
        plan.max_body_bytes as usize,
    )
    .map_err(BoxError::from)
    .boxed();
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.version_mut() = Version::HTTP_11;
    *up.headers_mut() = parts.headers;

    let mut resp = plan.upstream.send(up, plan.response_timeout).await?;
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
