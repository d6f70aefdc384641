//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/agents`, `/agents/{id}`,
//! `POST|DELETE /agents/{id}/quarantine`, `POST /reload`,
//! `POST /upstreams/{name}/tools/{tool}/approve`. It never shares a port with agents; with
//! `admin.token_file` every call but the two probes ([`probes`]) needs its bearer token. It has its
//! own limits: `limits.header_read_timeout`, `limits.idle_timeout`, and at most
//! [`MAX_ADMIN_CONNECTIONS`] connections.

pub mod probes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::admit::INDEFINITE;
use crate::agents::AgentState;
use crate::ids::AgentId;
use crate::server::io::{IoStats, MeteredIo};
use crate::server::Runtime;

pub(crate) type AdminResp = Response<Full<Bytes>>;

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> AdminResp {
    respond(status, "application/json", v.to_string())
}

/// At most this many admin connections at once: probes and scrapes need few, and a flood of
/// them must not take the descriptors the agents' listener needs.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Serves the admin API until `shutdown`.
pub async fn run(rt: Arc<Runtime>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!("admin accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!("admin listener at {MAX_ADMIN_CONNECTIONS} connections: closing a new one");
                    continue;
                };
                tokio::spawn(serve_connection(rt.clone(), tcp, slot));
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// One admin connection, under the listener's own limits: `header_read_timeout` for each
/// request head, and closed after `idle_timeout` without a byte either way.
async fn serve_connection(rt: Arc<Runtime>, tcp: TcpStream, _slot: OwnedSemaphorePermit) {
    let limits = rt.config.snapshot().limits;
    let stats = Arc::new(IoStats::default());
    let svc = service_fn(move |req| {
        let rt = rt.clone();
        async move { Ok::<_, Infallible>(route(&rt, req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let io = TokioIo::new(MeteredIo::new(tcp, stats.clone()));
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let period = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    let mut seen = 0;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tick.tick() => {
                let total = stats.bytes_read() + stats.bytes_written();
                if total != seen {
                    seen = total;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= limits.idle_timeout {
                    return;
                }
            }
        }
    }
}

fn authorised(rt: &Runtime, req: &Request<Incoming>) -> bool {
    let snap = rt.config.snapshot();
    let Some(token) = snap.admin_token.as_deref() else {
        return true;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(presented.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Dispatches one admin request.
pub async fn route(rt: &Arc<Runtime>, req: Request<Incoming>) -> AdminResp {
    if let Some(probe) = probes::answer(rt, req.method(), req.uri().path()) {
        return probe;
    }
    if !authorised(rt, &req) {
        let mut r = json_resp(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            rt.metrics.render(),
        ),
        (Method::GET, "/agents") => {
            let mut list: Vec<_> = rt.agents.all().iter().map(|a| agent_json(rt, a)).collect();
            list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            json_resp(StatusCode::OK, serde_json::Value::Array(list))
        }
        (Method::POST, "/reload") => {
            let h = rt.config.clone();
            match tokio::task::spawn_blocking(move || h.reload()).await {
                Ok(Ok(generation)) => json_resp(
                    StatusCode::OK,
                    json!({"result": "ok", "generation": generation}),
                ),
                Ok(Err(errors)) => json_resp(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"result": "error", "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()}),
                ),
                Err(_) => json_resp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"result": "error"}),
                ),
            }
        }
        (method, p) if p.starts_with("/agents/") => agent_route(rt, method, &p["/agents/".len()..]),
        (method, p) if p.starts_with("/upstreams/") => {
            tool_route(rt, method, &p["/upstreams/".len()..])
        }
        _ => json_resp(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

fn agent_route(rt: &Arc<Runtime>, method: Method, rest: &str) -> AdminResp {
    let (raw_id, quarantine) = match rest.strip_suffix("/quarantine") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let raw = percent_decode(raw_id);
    // Ids are taken by the rule the certificates are read by: a malformed one is an error, never
    // a quarantine that silently matches no agent.
    let id = match AgentId::parse(&raw) {
        Ok(id) => id,
        Err(e) => {
            return json_resp(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_agent_id", "message": format!("`{raw}` is not a SPIFFE ID: {e}")}),
            )
        }
    };
    match (method, quarantine) {
        (Method::GET, false) => match rt.agents.get(&id) {
            Some(a) => json_resp(StatusCode::OK, agent_json(rt, &a)),
            None => json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown_agent"})),
        },
        (Method::POST, true) => {
            // An agent may be quarantined before it was ever seen, but only if the policy knows it.
            if rt.config.snapshot().agent(&id).is_none() && rt.agents.get(&id).is_none() {
                return json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown_agent"}));
            }
            let a = rt.quarantine(&id, INDEFINITE);
            tracing::warn!(agent = %id, "agent quarantined by the admin API");
            json_resp(StatusCode::OK, agent_json(rt, &a))
        }
        (Method::DELETE, true) => match rt.release(&id) {
            Some(a) => {
                tracing::info!(agent = %id, "agent released from quarantine by the admin API");
                json_resp(StatusCode::OK, agent_json(rt, &a))
            }
            None => json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown_agent"})),
        },
        _ => json_resp(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed"}),
        ),
    }
}

/// `POST /upstreams/{name}/tools/{tool}/approve`: pins the tool's current definition.
fn tool_route(rt: &Arc<Runtime>, method: Method, rest: &str) -> AdminResp {
    let parts: Vec<&str> = rest.split('/').collect();
    let [upstream, "tools", tool, "approve"] = parts.as_slice() else {
        return json_resp(StatusCode::NOT_FOUND, json!({"error": "not_found"}));
    };
    if method != Method::POST {
        return json_resp(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed"}),
        );
    }
    let (upstream, tool) = (percent_decode(upstream), percent_decode(tool));
    let snap = rt.config.snapshot();
    let Some(id) = snap.upstream_index(&upstream) else {
        return json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown_upstream"}));
    };
    if snap.protocol.pin_mode(id) == crate::protocol::PinMode::Off {
        return json_resp(
            StatusCode::CONFLICT,
            json!({"error": "pinning_off", "message": format!("upstreams.{upstream}.pin_tools is off")}),
        );
    }
    if !rt.pins.approve(&upstream, &tool) {
        return json_resp(StatusCode::NOT_FOUND, json!({"error": "unknown_tool"}));
    }
    tracing::info!(upstream, tool, "tool definition approved on the admin API");
    json_resp(
        StatusCode::OK,
        json!({"upstream": upstream, "tool": tool, "approved": true}),
    )
}

fn agent_json(rt: &Runtime, a: &AgentState) -> serde_json::Value {
    use std::sync::atomic::Ordering;
    let now = rt.clock.now_unix_ms();
    let snap = rt.config.snapshot();
    let roles: Vec<String> = snap
        .agent(&a.id)
        .map(|p| p.role_names.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    let last = a.last_seen_ms.load(Ordering::Relaxed);
    json!({
        "id": a.id.as_str(),
        "roles": roles,
        "last_seen": (last > 0).then(|| rfc3339_ms(last)),
        "requests": a.requests.load(Ordering::Relaxed),
        "denials": a.denials.load(Ordering::Relaxed),
        "anomaly_score": a.behaviour.score_at(rt.mono()),
        "anomaly": a.behaviour.snapshot(),
        "quarantined": a.is_quarantined(now),
        "quarantined_until": a.quarantined_until(now).filter(|t| *t != INDEFINITE).map(rfc3339_ms),
    })
}

/// One plain HTTP/1.1 call to an admin listener (`connection: close`): status and body, or
/// status 0 when the listener cannot be reached. The demo and the tests speak to warden with it.
pub async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: admin\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
    if tcp.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let t = crate::clock::utc_datetime(unix_ms);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_agent_ids() {
        assert_eq!(
            percent_decode("spiffe%3A%2F%2Fexample.org%2Fa"),
            "spiffe://example.org/a"
        );
        assert_eq!(
            percent_decode("spiffe://example.org/a"),
            "spiffe://example.org/a"
        );
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        assert_eq!(percent_decode("%é%"), "%é%");
    }

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339_ms(1_795_632_300_123), "2026-11-25T18:45:00.123Z");
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
