//! One request's way through warden: decide (the whole contract order, in `pipeline::decide`),
//! then forward the permit, then record. Each step is a call into its own module.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::admission::LiveAdmission;
use super::conn_info::ConnInfo;
use super::grpc;
use super::message::IncomingMessage;
use super::record::RequestRecord;
use super::runtime::Runtime;
use super::supervise::RequestHead;
use crate::decision::{Reason, Verdict};
use crate::forward::body::Recorded;
use crate::forward::proxy::{empty, forward, full, Forwarded, Forwarding};
use crate::forward::rpc::RpcForwarding;
use crate::forward::websocket::handshake_key;
use crate::headers::X_REQUEST_ID;
use crate::ids::RequestId;
use crate::pipeline::{decide, Caller, Permit, Refusal, RequestParts};
use crate::snapshot::Snapshot;
use crate::upstream::ProxyBody;

pub type Resp = Response<Recorded<ProxyBody>>;

/// The hyper service function for one request on an accepted connection.
pub async fn handle(
    rt: Arc<Runtime>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let _inflight = conn.begin_request();
    if let Some(audit) = &rt.audit {
        // Back-pressure: while the audit writer is behind, new requests wait, none is lost.
        audit.room().await;
    }
    let snap = rt.config.snapshot();
    let mut rec = Box::new(RequestRecord::new(&rt, &snap, &conn, &req));
    let grpc = grpc::is_grpc(req.headers());
    let (parts, mut body) = req.into_parts();
    match decide_request(&rt, &snap, &conn, (&parts, &mut body), &mut rec).await {
        Ok(permit) => {
            let req = Request::from_parts(parts, body);
            Ok(forward_permitted(&rt, &snap, &conn, rec, permit, req, grpc).await)
        }
        Err(refusal) => Ok(refuse(rec, refusal, grpc)),
    }
}

/// Steps 1-6: the decision, on the identity this connection proved and the agent's live state.
async fn decide_request(
    rt: &Arc<Runtime>,
    snap: &Snapshot,
    conn: &ConnInfo,
    (req, body): (&http::request::Parts, &mut Incoming),
    rec: &mut RequestRecord,
) -> Result<Permit, Refusal> {
    let identity = conn.identity(&snap.trust_domain);
    let why;
    let caller = match &identity {
        Ok(peer) => {
            rec.agent_id = Some(peer.agent_id.clone());
            rec.peer = Some(peer.clone());
            Caller::Agent {
                id: &peer.agent_id,
                thumbprint: Some(&peer.thumbprint),
            }
        }
        Err(e) => {
            why = e.to_string();
            Caller::NoIdentity(&why)
        }
    };
    let parts = RequestParts {
        method: &req.method,
        uri: &req.uri,
        version: req.version,
        headers: &req.headers,
        has_body: !body.is_end_stream(),
        source_ip: conn.peer.ip(),
        now_ms: rec.started_ms,
    };
    let mut admission = LiveAdmission::new(rt, conn);
    let mut message = IncomingMessage::new(body, snap.limits.body_stall_timeout);
    let decided = decide(snap, &caller, &mut admission, &parts, &mut message).await;
    // Held until the response ends: a streaming answer is a request in flight.
    rec.in_flight = admission.into_slot();
    if let (Some(id), Some(_)) = (&rec.agent_id, decided_agent(&decided)) {
        rec.agent = Some(conn.agent_state(rt, id));
    }
    decided
}

/// Step 7 and the response: the permit forwarded, its answer streamed back through the record;
/// a WebSocket handshake both sides made properly opens a tunnel.
async fn forward_permitted(
    rt: &Arc<Runtime>,
    snap: &Arc<Snapshot>,
    conn: &Arc<ConnInfo>,
    mut rec: Box<RequestRecord>,
    permit: Permit,
    req: Request<Incoming>,
    grpc: bool,
) -> Resp {
    rec.permitted(&permit);
    if let Some(reason) = permit.shadowed() {
        tracing::info!(request_id = %rec.request_id, agent = %permit.agent(), reason = reason.as_str(), "shadow_deny");
    }
    let head =
        handshake_key(req.version(), req.method(), req.headers()).map(|_| RequestHead::of(&req));
    let rpc = rpc_runtime(rt, &mut rec);
    let how = Forwarding {
        snap,
        request_id: &rec.request_id,
        client_ip: &conn.forwarded_for,
        agent_header: rec.agent.as_ref().and_then(|a| a.id_header.as_ref()),
        bytes_in: rec.bytes_in.clone(),
        bodies: &conn.bodies,
        rpc,
    };
    let sent = Instant::now();
    match forward(&permit, how, req).await {
        Ok(Forwarded { response, tunnel }) => {
            rec.upstream_elapsed = Some(sent.elapsed());
            rec.status = response.status().as_u16();
            if let (Some(ends), Some(head)) = (tunnel, head) {
                super::tunnel::open(rt, conn, &rec, &permit, head, ends);
            }
            let (mut parts, body) = response.into_parts();
            set_request_id(&mut parts.headers, &rec.request_id);
            Response::from_parts(parts, Recorded::new(body, rec))
        }
        Err(e) => {
            tracing::warn!(request_id = %rec.request_id, upstream = %permit.upstream(), "forward: {e}");
            let close = e.closes_connection();
            let mut resp = refuse(rec, Refusal::after(permit, e.reason()), grpc);
            if close {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// The `agents` entry the decision found, allowed or not.
fn decided_agent(decided: &Result<Permit, Refusal>) -> Option<usize> {
    match decided {
        Ok(p) => p.trace().agent_entry,
        Err(r) => r.trace.agent_entry,
    }
}

fn set_request_id(headers: &mut http::HeaderMap, id: &RequestId) {
    headers.insert(X_REQUEST_ID, id.header());
}

/// A refusal: JSON body naming the reason and request id, nothing about the policy; to a gRPC
/// call, a gRPC status (see `grpc`).
pub fn refuse(mut rec: Box<RequestRecord>, refusal: Refusal, grpc: bool) -> Resp {
    let reason = refusal.reason;
    if let Some(why) = &refusal.detail {
        tracing::debug!(request_id = %rec.request_id, reason = reason.as_str(), "refused: {why}");
    }
    rec.refused(&refusal);
    if grpc {
        let id = rec.request_id.clone();
        let wait_ms = refusal.retry_after.map(|d| d.as_millis());
        return grpc::refusal(reason, id.as_str(), wait_ms, Recorded::new(empty(), rec));
    }
    refusal_response(rec, reason, refusal.retry_after)
}

/// What the forwarder needs to follow an agent-protocol answer: the live state it writes, the
/// agent's quarantine it watches, where it notes what it saw.
fn rpc_runtime(rt: &Arc<Runtime>, rec: &mut RequestRecord) -> Option<RpcForwarding> {
    rec.protocol?;
    let agent = rec.agent.clone();
    let clock = rt.clock.clone();
    Some(RpcForwarding {
        state: rt.rpc_state.clone(),
        pins: rt.pins.clone(),
        metrics: rt.metrics.clone(),
        still_admitted: Arc::new(move || {
            agent
                .as_ref()
                .is_none_or(|a| !a.is_quarantined(clock.now_unix_ms()))
        }),
        tool_changed: Arc::new({
            let seen = rec.rpc_seen.get_or_insert_with(Arc::default).clone();
            move || {
                seen.tool_changed
                    .store(true, std::sync::atomic::Ordering::Relaxed)
            }
        }),
    })
}

/// The response for a refusal already recorded in `rec`.
pub fn refusal_response(
    rec: Box<RequestRecord>,
    reason: Reason,
    retry_after: Option<Duration>,
) -> Resp {
    let status = reason.status();
    let body = match rec.protocol {
        // On an agent-protocol route the refusal is a JSON-RPC error the client can read.
        Some(_) => format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32050,"message":"{r}","data":{{"reason":"{r}","request_id":"{}"}}}}}}"#,
            rec.rpc
                .as_ref()
                .and_then(|m| m.id.as_deref())
                .unwrap_or("null"),
            rec.request_id,
            r = reason.as_str(),
        ),
        None => format!(
            r#"{{"error":"{}","request_id":"{}"}}"#,
            reason.as_str(),
            rec.request_id
        ),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_request_id(h, &rec.request_id);
    if status == StatusCode::UNAUTHORIZED {
        let v = match reason {
            Reason::TokenMissing => "Bearer realm=\"warden\"",
            _ => "Bearer realm=\"warden\", error=\"invalid_token\"",
        };
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    if let Some(wait) = retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    debug_assert!(rec.verdict == Verdict::Deny);
    resp.map(|b| Recorded::new(b, rec))
}

/// The request future must be `Send` (hyper spawns it): checked when the tests build.
#[cfg(test)]
#[allow(dead_code)]
fn assert_send(rt: Arc<Runtime>, conn: Arc<ConnInfo>, req: Request<Incoming>) {
    fn is_send<T: Send>(_: T) {}
    is_send(handle(rt, conn, req));
}
