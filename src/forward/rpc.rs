//! Following an agent-protocol answer (SPEC section 7): the session an `initialize` opens is bound
//! to the identity that opened it; `*/list` results are filtered to what the agent may use, in
//! JSON and inside event streams, and tool definitions are pinned; the tasks an A2A send creates
//! are recorded as the sender's; an event stream ends when its agent is quarantined.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response};
use http_body_util::BodyExt;

use super::stream::RpcStream;
use crate::authz::Coverage;
use crate::decision::Mode;
use crate::pipeline::Permit;
use crate::protocol::list::{filter_list, ListEntry};
use crate::protocol::message::{result_task_ids, ListKind};
use crate::protocol::{Holder, PinMode, PinSeen, Protocol, RpcState, ToolPins, SESSION_HEADER};
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{ProxyBody, UpstreamError};

/// The live state and hooks an agent-protocol answer is followed with.
#[derive(Clone)]
pub struct RpcForwarding {
    pub state: Arc<dyn RpcState>,
    pub pins: Arc<ToolPins>,
    pub metrics: Arc<Metrics>,
    /// Whether the agent may still be served (not quarantined).
    pub still_admitted: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Called when a listed tool is seen changed since its pin.
    pub tool_changed: Arc<dyn Fn() + Send + Sync>,
}

/// What is done to each JSON-RPC message of the answer.
#[derive(Clone)]
pub(super) struct Tap {
    /// Filter `*/list` results: the list asked for and its request id, or `None` for whichever
    /// list an answer on the server's stream holds.
    pub(super) list: Option<Option<(ListKind, Box<str>)>>,
    /// Record the tasks an A2A send created as the agent's.
    pub(super) owner: Option<Arc<str>>,
    filter: Arc<Filter>,
}

/// What decides which entries of a list stay.
struct Filter {
    snap: Arc<Snapshot>,
    coverage: Coverage,
    upstream: Arc<str>,
    pin_mode: PinMode,
    enforce: bool,
    rpc: RpcForwarding,
}

impl Filter {
    fn keep(&self, e: &ListEntry<'_>) -> bool {
        if e.kind == ListKind::Tools && self.pin_mode != PinMode::Off {
            if let Some(seen) = self.rpc.pins.observe_listed(&self.upstream, e.key, e.raw) {
                if seen == PinSeen::Changed {
                    tracing::warn!(upstream = %self.upstream, tool = e.key, "tool definition changed since it was pinned");
                    self.rpc
                        .metrics
                        .mcp_tool_changes
                        .with_label_values(&[&self.upstream])
                        .inc();
                }
                if self.rpc.pins.changed(&self.upstream, e.key) {
                    (self.rpc.tool_changed)();
                    if self.pin_mode == PinMode::Enforce && self.enforce {
                        return false;
                    }
                }
            }
        }
        if !self.enforce {
            return true;
        }
        let rules = &self.snap.protocol;
        let allowed = self.coverage.allows.iter().any(|r| {
            rules
                .rule(*r)
                .is_some_and(|x| x.allows_entry(e.kind, e.key))
        });
        let hidden = self
            .coverage
            .denies
            .iter()
            .any(|r| rules.rule(*r).is_some_and(|x| x.hides_entry(e.kind, e.key)));
        allowed && !hidden
    }
}

/// Why an answer cannot be passed on.
pub(super) fn broken(why: impl Into<String>) -> UpstreamError {
    UpstreamError::Unavailable(why.into())
}

impl Tap {
    /// One message: its replacement text, if rewritten, and the task ids to record.
    pub(super) fn message(
        &self,
        doc: &str,
    ) -> Result<(Option<String>, Vec<String>), UpstreamError> {
        let mut rewritten = None;
        if let Some(list) = &self.list {
            let kind = list.as_ref().map(|(k, id)| (*k, id.as_ref()));
            let filter = &self.filter;
            rewritten = filter_list(doc, kind, &mut |e| filter.keep(e))
                .map_err(|e| broken(format!("a list answer cannot be filtered: {e}")))?;
        }
        let mut tasks = Vec::new();
        if self.owner.is_some() {
            if let Ok(tree) = crate::protocol::json::parse(doc.as_bytes()) {
                if let Some(result) = tree.get("result") {
                    tasks = result_task_ids(result)
                        .into_iter()
                        .map(String::from)
                        .collect();
                }
            }
        }
        Ok((rewritten, tasks))
    }

    pub(super) fn needed(&self) -> bool {
        self.list.is_some() || self.owner.is_some()
    }
}

/// Follows the upstream's answer to a permitted agent-protocol request.
pub async fn follow(
    permit: &Permit,
    snap: &Arc<Snapshot>,
    rpc: RpcForwarding,
    mut resp: Response<ProxyBody>,
    method: &Method,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let Some(protocol) = permit.protocol() else {
        return Ok(resp);
    };
    let summary = permit.trace().rpc.as_deref();
    let upstream: Arc<str> = snap
        .upstream(permit.upstream())
        .map_or_else(|| Arc::from(""), |u| u.name.clone());
    if protocol == Protocol::Mcp && summary.is_some_and(|s| &*s.method == "initialize") {
        bind_session(permit, &rpc, &upstream, &resp).await?;
    }
    let ok = resp.status().is_success();
    let list = match (protocol, summary) {
        (Protocol::Mcp, Some(s)) => s
            .list
            .map(|k| Some((k, s.id.clone().unwrap_or_else(|| "null".into())))),
        (Protocol::Mcp, None) if method == Method::GET => Some(None),
        _ => None,
    };
    let owner = (protocol == Protocol::A2a && summary.is_some_and(|s| s.creates_task))
        .then(|| permit.agent().as_arc().clone());
    let tap = Tap {
        list: list.filter(|_| ok),
        owner: owner.filter(|_| ok),
        filter: Arc::new(Filter {
            snap: snap.clone(),
            coverage: permit
                .message()
                .map(|m| m.coverage.clone())
                .unwrap_or_default(),
            pin_mode: snap.protocol.pin_mode(permit.upstream()),
            enforce: snap.mode == Mode::Enforce,
            upstream: upstream.clone(),
            rpc: rpc.clone(),
        }),
    };
    let kind = content_kind(resp.headers());
    if tap.list.is_some() {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    if tap.needed() && resp.headers().contains_key(header::CONTENT_ENCODING) {
        return Err(broken("a compressed answer cannot be judged"));
    }
    match kind {
        Content::Json if tap.needed() => json_answer(snap, tap, &rpc, upstream, resp).await,
        Content::EventStream => {
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            let max_event = max_answer(snap);
            let owner = tap.owner.clone();
            Ok(resp.map(|body| RpcStream::new(body, tap, rpc, upstream, owner, max_event).boxed()))
        }
        _ => Ok(resp),
    }
}

/// The largest list answer or event followed (bigger ones are cut: they cannot be judged).
fn max_answer(snap: &Snapshot) -> usize {
    usize::try_from(snap.limits.max_rpc_bytes.saturating_mul(16)).unwrap_or(usize::MAX)
}

enum Content {
    Json,
    EventStream,
    Other,
}

fn content_kind(headers: &http::HeaderMap) -> Content {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match ct.as_deref() {
        Some("application/json") => Content::Json,
        Some("text/event-stream") => Content::EventStream,
        _ => Content::Other,
    }
}

/// The session an `initialize` answer opens belongs to the agent and certificate that asked.
async fn bind_session(
    permit: &Permit,
    rpc: &RpcForwarding,
    upstream: &str,
    resp: &Response<ProxyBody>,
) -> Result<(), UpstreamError> {
    let Some(id) = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let holder = Holder {
        agent: permit.agent().as_arc().clone(),
        thumbprint: permit
            .message()
            .and_then(|m| m.thumbprint)
            .unwrap_or([0; 32]),
    };
    let bound = rpc
        .state
        .bind_session(upstream, id, holder.clone())
        .await
        .map_err(|e| broken(e.to_string()))?;
    if bound != holder {
        // The upstream handed out a session id that another identity holds: never pass it on.
        tracing::error!(
            upstream,
            "upstream issued a session id already bound to another identity"
        );
        return Err(broken("session id already bound to another identity"));
    }
    Ok(())
}

/// A JSON answer, read whole (bounded), judged and passed on.
async fn json_answer(
    snap: &Snapshot,
    tap: Tap,
    rpc: &RpcForwarding,
    upstream: Arc<str>,
    resp: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, UpstreamError> {
    let (mut parts, body) = resp.into_parts();
    let read = read_whole(body, max_answer(snap));
    let bytes = match tokio::time::timeout(snap.limits.request_timeout, read).await {
        Ok(r) => r?,
        Err(_) => return Err(UpstreamError::Timeout(snap.limits.request_timeout)),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| broken("answer is not UTF-8"))?;
    let (rewritten, tasks) = tap.message(text)?;
    if let Some(owner) = &tap.owner {
        for t in &tasks {
            record_owner(&*rpc.state, &upstream, t, owner.clone()).await;
        }
    }
    let out = rewritten.map_or(bytes, Bytes::from);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(parts, super::proxy::full(out)))
}

/// The whole body, at most `max` bytes.
async fn read_whole(mut body: ProxyBody, max: usize) -> Result<Bytes, UpstreamError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken(format!("answer: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(broken("a list answer too large to filter"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

pub(super) async fn record_owner(
    state: &dyn RpcState,
    upstream: &str,
    task: &str,
    owner: Arc<str>,
) {
    match state.set_task_owner(upstream, task, owner.clone()).await {
        Ok(held) if held != owner => {
            tracing::warn!(upstream, task, "an answer names a task of another agent");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(upstream, task, "task owner not recorded: {e}"),
    }
}
