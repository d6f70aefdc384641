//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/agents`, `/agents/{id}`,
//! `POST|DELETE /agents/{id}/quarantine`, `POST /reload`. It never shares a port with agents; on a
//! non-loopback address every call needs `admin.token_file`'s bearer token.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admit::INDEFINITE;
use crate::agents::AgentState;
use crate::ids::AgentId;
use crate::server::Runtime;

type AdminResp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> AdminResp {
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

/// Serves the admin API until `shutdown`.
pub async fn run(rt: Arc<Runtime>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let rt = rt.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let rt = rt.clone();
                        async move { Ok::<_, Infallible>(route(&rt, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
            _ = shutdown.changed() => return,
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
        (Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
        // The runtime exists only once config and TLS are loaded; a fleet in closed mode without
        // its shared store refuses every request, so it is not ready for any.
        (Method::GET, "/readyz") if rt.cluster().is_some_and(|c| c.refuses()) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "cluster unavailable\n",
        ),
        (Method::GET, "/readyz") => respond(StatusCode::OK, "text/plain", "ready\n"),
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
