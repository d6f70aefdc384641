//! What the decision returns: a [`Permit`] that only [`decide`](super::decide) can make, or a
//! [`Refusal`]. Both carry the [`Trace`] of what was found on the way, which `explain`, the audit
//! record and the logs report.

use std::time::Duration;

use bytes::Bytes;

use crate::authz::when::Unmet;
use crate::authz::Coverage;
use crate::decision::{Reason, RuleRef};
use crate::ids::{AgentId, RouteId, UpstreamId};
use crate::protocol::{Protocol, RpcSummary};
use crate::route::shape::Shaped;

/// What the decision found, step by step, as far as it went.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Position of the `agents` entry covering the caller.
    pub agent_entry: Option<usize>,
    /// The request's host and normalised target, once shaped.
    pub shaped: Option<Box<Shaped>>,
    pub route: Option<RouteId>,
    pub upstream: Option<UpstreamId>,
    /// The rule that decided (`role/allow[N]` or `role/deny[N]`).
    pub rule: Option<RuleRef>,
    /// For `no_matching_rule`: the first rule that matched method and path but not its condition.
    pub near_miss: Option<Box<(RuleRef, Unmet)>>,
    /// Step 3 was not judged (`explain` without live state).
    pub admission_not_evaluated: bool,
    /// A valid token whose certificate binding could not be checked (`explain` without `--cert`).
    pub binding_unchecked: bool,
    /// The agent protocol of the route, once routed.
    pub protocol: Option<Protocol>,
    /// The JSON-RPC message, once read.
    pub rpc: Option<Box<RpcSummary>>,
    /// The tool the message calls was refused because its definition changed since it was
    /// pinned (rule `pin/<tool>`).
    pub pinned: bool,
    /// Session binding, task ownership and tool pins were not judged (`explain`).
    pub rpc_state_not_evaluated: bool,
}

impl Trace {
    /// The tool whose pin refused the request, if one did.
    pub fn pinned_tool(&self) -> Option<&str> {
        if !self.pinned {
            return None;
        }
        self.rpc.as_ref().and_then(|r| r.target.as_deref())
    }

    /// The id of the JSON-RPC message as JSON text, `null` when it has none.
    pub fn rpc_id(&self) -> &str {
        self.rpc
            .as_ref()
            .and_then(|r| r.id.as_deref())
            .unwrap_or("null")
    }
}

/// A refused request: the reason (its status, JSON body, audit and metric label), and what was
/// found before the refusal.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: Reason,
    /// For `rate_limited`: when to retry (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Why, in words, for `explain` and debug logs; never sent to the agent.
    pub detail: Option<Box<str>>,
    pub trace: Trace,
}

impl Refusal {
    pub(super) fn new(reason: Reason, trace: Trace) -> Self {
        Refusal {
            reason,
            retry_after: None,
            detail: None,
            trace,
        }
    }

    pub(super) fn because(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into().into_boxed_str());
        self
    }

    pub(super) fn because_if(self, detail: Option<String>) -> Self {
        match detail {
            Some(detail) => self.because(detail),
            None => self,
        }
    }

    /// A refusal after the decision (an upstream that failed the permitted request).
    pub fn after(permit: Permit, reason: Reason) -> Self {
        let mut trace = permit.trace;
        trace.shaped = Some(Box::new(permit.shaped));
        Refusal::new(reason, trace)
    }
}

/// A request the decision allowed (or, in shadow mode, let through). Its fields are private and it
/// is made in one place, [`decide`](super::decide): holding one is the proof that the request was
/// judged, and it is the only thing the forwarder accepts.
#[derive(Debug, Clone)]
pub struct Permit {
    agent: AgentId,
    route: RouteId,
    upstream: UpstreamId,
    shaped: Shaped,
    /// In shadow mode, the refusal that enforce mode would have made.
    shadowed: Option<(Reason, Option<RuleRef>)>,
    trace: Trace,
    /// Boxed: most permits carry none, and every permit is moved a few times.
    message: Option<Box<Judged>>,
}

/// What the message step judged, carried to the forwarder.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The body as read and judged: exactly what is forwarded.
    pub bytes: Option<Bytes>,
    /// The rules that covered the request, to filter a list result by.
    pub coverage: Coverage,
    /// The certificate the caller presented (a session is bound to it).
    pub thumbprint: Option<[u8; 32]>,
}

impl Permit {
    /// Only the decision makes permits.
    pub(super) fn new(
        agent: AgentId,
        (route, upstream): (RouteId, UpstreamId),
        shaped: Shaped,
        shadowed: Option<(Reason, Option<RuleRef>)>,
        trace: Trace,
        message: Option<Box<Judged>>,
    ) -> Self {
        Permit {
            agent,
            route,
            upstream,
            shaped,
            shadowed,
            trace,
            message,
        }
    }

    /// On an agent-protocol route: the judged message and what judged it.
    pub fn message(&self) -> Option<&Judged> {
        self.message.as_deref()
    }

    /// The agent protocol of the route, if any.
    pub fn protocol(&self) -> Option<Protocol> {
        self.trace.protocol
    }

    /// The agent it was granted to: the identity warden tells the upstream.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// Position of the `agents` entry that granted it.
    pub fn agent_entry(&self) -> usize {
        self.trace.agent_entry.unwrap_or(usize::MAX)
    }

    pub fn route(&self) -> RouteId {
        self.route
    }

    pub fn upstream(&self) -> UpstreamId {
        self.upstream
    }

    /// The authorised host and target: exactly what is forwarded.
    pub fn target(&self) -> &Shaped {
        &self.shaped
    }

    /// The refusal shadow mode let through, if any.
    pub fn shadowed(&self) -> Option<Reason> {
        self.shadowed.map(|(r, _)| r)
    }

    /// The rule that allowed (or, shadowed, would have refused).
    pub fn rule(&self) -> Option<RuleRef> {
        self.trace.rule
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }
}
