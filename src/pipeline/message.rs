//! Steps 5 and 6 on an agent-protocol route (SPEC section 7): segmentation and the covering rules
//! as on any route, then the JSON-RPC message read whole and exactly, the session it presents,
//! the rules judged on what it asks for, the owner of the task it names, the pin of the tool it
//! calls. Reading failures are enforced in every mode; the rest is shadowable.

use bytes::Bytes;
use http::{header, Method};

use super::admission::RpcLive;
use super::outcome::{Judged, Trace};
use super::request::{BodyError, MessageBody, RequestParts};
use crate::authz::{covering, Coverage, RequestFacts};
use crate::decision::{Reason, RuleRef};
use crate::ids::{AgentId, UpstreamId};
use crate::protocol::message::{message, read};
use crate::protocol::rules::judge;
use crate::protocol::{Call, Holder, Judgement, Message, PinMode, Protocol, SESSION_HEADER};
use crate::snapshot::{AgentPolicy, Snapshot};

/// A refusal of the message step: `hard` ones (the message cannot be read) hold in shadow mode.
pub(super) struct Stop {
    pub reason: Reason,
    pub rule: Option<RuleRef>,
    pub why: String,
    pub hard: bool,
}

fn hard(reason: Reason, why: impl Into<String>) -> Stop {
    Stop {
        reason,
        rule: None,
        why: why.into(),
        hard: true,
    }
}

fn soft(reason: Reason, rule: Option<RuleRef>, why: impl Into<String>) -> Stop {
    Stop {
        reason,
        rule,
        why: why.into(),
        hard: false,
    }
}

/// Who asks, and on what.
pub(super) struct Asker<'a> {
    pub agent: &'a AgentId,
    pub thumbprint: Option<&'a [u8; 32]>,
    pub policy: &'a AgentPolicy,
    pub upstream: UpstreamId,
    pub protocol: Protocol,
}

/// The message step. `shadow`: a soft refusal is remembered in `stops` and judging goes on, so
/// that the message is still read and forwarded exactly.
pub(super) async fn judge_message<B: MessageBody>(
    snap: &Snapshot,
    who: &Asker<'_>,
    req: &RequestParts<'_>,
    facts: &RequestFacts<'_>,
    (body, live): (&mut B, Option<RpcLive<'_>>),
    (shadow, stops): (bool, &mut Vec<Stop>),
    trace: &mut Trace,
) -> Result<Judged, Stop> {
    let refuse = |stop: Stop, stops: &mut Vec<Stop>| note(stop, shadow, stops);
    let coverage = judge_path(snap, who, facts, shadow, stops)?;
    let bytes = read_body(snap, req, body).await?;
    let tree = match &bytes {
        Some(b) => Some(read(b).map_err(|e| hard(Reason::BadRequest, e.to_string()))?),
        None => None,
    };
    let msg = match &tree {
        Some(t) => {
            Some(message(t, who.protocol).map_err(|e| hard(Reason::BadRequest, e.to_string()))?)
        }
        None => None,
    };
    if let Some(m) = &msg {
        trace.rpc = Some(Box::new(m.summary()));
    }
    match live {
        Some(live) => {
            if let Err(stop) = check_session(snap, who, req, live).await {
                refuse(stop, stops)?;
            }
        }
        None => trace.rpc_state_not_evaluated = true,
    }
    if let Err(stop) = check_rules(snap, &coverage, msg.as_ref(), trace) {
        refuse(stop, stops)?;
    }
    if let (Some(m), Some(live)) = (&msg, live) {
        if let Err(stop) = check_owner(snap, who, m, live).await {
            refuse(stop, stops)?;
        }
        if let Err(stop) = check_pin(snap, who, m, live, trace) {
            refuse(stop, stops)?;
        }
    }
    Ok(Judged {
        bytes,
        coverage,
        thumbprint: who.thumbprint.copied(),
    })
}

/// A refusal that ends the decision (hard, or enforced), or one noted to go on with (shadow).
fn note(stop: Stop, shadow: bool, stops: &mut Vec<Stop>) -> Result<(), Stop> {
    if stop.hard || !shadow {
        return Err(stop);
    }
    stops.push(stop);
    Ok(())
}

/// What the path alone decides, before the body is read: the rules covering the request, and
/// the refusals that need no message (outside the segment, a deny without an mcp/a2a part, no
/// covering allow at all).
fn judge_path(
    snap: &Snapshot,
    who: &Asker<'_>,
    facts: &RequestFacts<'_>,
    shadow: bool,
    stops: &mut Vec<Stop>,
) -> Result<Coverage, Stop> {
    let coverage = match covering(&snap.roles, &who.policy.grants, who.upstream, facts) {
        Ok(c) => c,
        Err(_) => {
            let why = "the upstream is outside the agent's roles' upstreams";
            note(soft(Reason::Segmentation, None, why), shadow, stops)?;
            Coverage::default()
        }
    };
    if let Some(rule) = coverage
        .denies
        .iter()
        .find(|r| snap.protocol.rule(**r).is_none())
    {
        let why = "a deny rule covers the path";
        note(soft(Reason::Denied, Some(*rule), why), shadow, stops)?;
    }
    if coverage.allows.is_empty() {
        let why = "no allow rule covers this method and path (default deny)";
        note(soft(Reason::NoMatchingRule, None, why), shadow, stops)?;
    }
    Ok(coverage)
}

/// POST carries one message, read whole; GET (the server's stream), DELETE (end of session),
/// HEAD and OPTIONS carry none. Anything else cannot be judged.
async fn read_body<B: MessageBody>(
    snap: &Snapshot,
    req: &RequestParts<'_>,
    body: &mut B,
) -> Result<Option<Bytes>, Stop> {
    let bodiless = [Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS];
    if bodiless.contains(req.method) {
        if req.has_body {
            return Err(hard(
                Reason::BadRequest,
                format!("a body on {}", req.method),
            ));
        }
        return Ok(None);
    }
    if req.method != Method::POST {
        let why = format!(
            "{} on an agent-protocol route: messages are POSTed",
            req.method
        );
        return Err(hard(Reason::BadRequest, why));
    }
    let json = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json || req.headers.get_all(header::CONTENT_TYPE).iter().count() > 1 {
        return Err(hard(
            Reason::BadRequest,
            "a message needs Content-Type: application/json",
        ));
    }
    if req.headers.contains_key(header::CONTENT_ENCODING) {
        return Err(hard(
            Reason::BadRequest,
            "a message must not be compressed (Content-Encoding)",
        ));
    }
    let limit = snap.limits.max_rpc_bytes;
    let too_large = || {
        hard(
            Reason::BodyTooLarge,
            format!("a message over limits.max_rpc_bytes ({limit} bytes)"),
        )
    };
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match body.read(limit).await {
        Ok(b) => Ok(Some(b)),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Failed(why)) => Err(hard(
            Reason::BadRequest,
            format!("the body could not be read: {why}"),
        )),
    }
}

/// An MCP session id belongs to the agent and certificate that began it.
async fn check_session(
    snap: &Snapshot,
    who: &Asker<'_>,
    req: &RequestParts<'_>,
    live: RpcLive<'_>,
) -> Result<(), Stop> {
    if who.protocol != Protocol::Mcp {
        return Ok(());
    }
    let mut ids = req.headers.get_all(SESSION_HEADER).iter();
    let Some(id) = ids.next() else { return Ok(()) };
    if ids.next().is_some() {
        return Err(hard(Reason::BadRequest, "more than one Mcp-Session-Id"));
    }
    let id = id
        .to_str()
        .map_err(|_| hard(Reason::BadRequest, "Mcp-Session-Id is not visible ASCII"))?;
    let upstream = upstream_name(snap, who.upstream);
    let holder = live
        .state
        .session_holder(upstream, id)
        .await
        .map_err(|e| hard(Reason::ClusterUnavailable, e.to_string()))?;
    let Some(holder) = holder else {
        // Never issued through warden: the upstream answers it as unknown.
        return Ok(());
    };
    let presented = Holder {
        agent: who.agent.as_arc().clone(),
        thumbprint: who.thumbprint.copied().unwrap_or([0; 32]),
    };
    if holder != presented {
        let why = if *holder.agent == *presented.agent {
            "the session was begun with another certificate of this agent"
        } else {
            "the session belongs to another agent"
        };
        return Err(soft(Reason::SessionMismatch, None, why));
    }
    Ok(())
}

fn upstream_name(snap: &Snapshot, u: UpstreamId) -> &str {
    snap.upstream(u).map_or("", |u| u.name.as_ref())
}

/// The covering rules judged on the message (deny wins, default deny).
fn check_rules(
    snap: &Snapshot,
    coverage: &Coverage,
    msg: Option<&Message<'_>>,
    trace: &mut Trace,
) -> Result<(), Stop> {
    let with_parts = |refs: &[RuleRef]| {
        refs.iter()
            .map(|r| (*r, snap.protocol.rule(*r)))
            .collect::<Vec<_>>()
    };
    match judge(
        with_parts(&coverage.denies),
        with_parts(&coverage.allows),
        msg,
    ) {
        Judgement::Allow(rule) => {
            trace.rule = Some(rule);
            Ok(())
        }
        Judgement::Deny(rule) => {
            trace.rule = Some(rule);
            let what = msg.map_or_else(|| "the request".to_string(), describe);
            Err(soft(
                Reason::Denied,
                Some(rule),
                format!(
                    "{} denies {what} (a matching deny wins over every allow)",
                    snap.rule_label(&rule)
                ),
            ))
        }
        Judgement::NoAllow(first) => {
            let what = msg.map_or_else(|| "the request".to_string(), describe);
            let mut why = format!("no allow rule names {what} (default deny)");
            if let Some(r) = first {
                why.push_str(&format!(
                    "; {} covers the path but does not name it",
                    snap.rule_label(&r)
                ));
            }
            Err(soft(Reason::NoMatchingRule, None, why))
        }
    }
}

/// `tools/call get_customer`, as explain and the logs say it.
fn describe(m: &Message<'_>) -> String {
    match &m.call {
        Call::Tool { name, .. } => format!("tool `{name}`"),
        Call::Resource { uri } => format!("resource `{uri}`"),
        Call::Prompt { name } => format!("prompt `{name}`"),
        _ => format!("method `{}`", m.method),
    }
}

/// A2A: a task belongs to the agent that created it; one warden never saw created has no owner.
async fn check_owner(
    snap: &Snapshot,
    who: &Asker<'_>,
    m: &Message<'_>,
    live: RpcLive<'_>,
) -> Result<(), Stop> {
    let task = match m.call {
        Call::OnTask { task } | Call::Send { task: Some(task) } => task,
        _ => return Ok(()),
    };
    let owner = live
        .state
        .task_owner(upstream_name(snap, who.upstream), task)
        .await
        .map_err(|e| hard(Reason::ClusterUnavailable, e.to_string()))?;
    match owner {
        Some(o) if *o == *who.agent.as_str() => Ok(()),
        Some(_) => Err(soft(
            Reason::NotOwner,
            None,
            format!("task `{task}` belongs to another agent"),
        )),
        None => Err(soft(
            Reason::NotOwner,
            None,
            format!("warden saw no agent create task `{task}`"),
        )),
    }
}

/// Under `pin_tools: enforce`, a tool whose definition changed since it was pinned is refused.
fn check_pin(
    snap: &Snapshot,
    who: &Asker<'_>,
    m: &Message<'_>,
    live: RpcLive<'_>,
    trace: &mut Trace,
) -> Result<(), Stop> {
    let Call::Tool { name, .. } = m.call else {
        return Ok(());
    };
    if snap.protocol.pin_mode(who.upstream) != PinMode::Enforce {
        return Ok(());
    }
    if !live.pins.changed(upstream_name(snap, who.upstream), name) {
        return Ok(());
    }
    trace.pinned = true;
    trace.rule = None;
    Err(soft(
        Reason::Denied,
        None,
        format!("tool `{name}` changed since it was pinned; approve it on the admin API"),
    ))
}
