//! What the decision returns: a [`Permit`] that only [`decide`](super::decide) can make, or a
//! [`Refusal`]. Both carry the [`Trace`] of what was found on the way, which `explain`, the audit
//! record and the logs report.

use std::time::Duration;

use crate::authz::when::Unmet;
use crate::decision::{Reason, RuleRef};
use crate::ids::{AgentId, RouteId, UpstreamId};
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
    pub near_miss: Option<(RuleRef, Unmet)>,
    /// Step 3 was not judged (`explain` without live state).
    pub admission_not_evaluated: bool,
    /// A valid token whose certificate binding could not be checked (`explain` without `--cert`).
    pub binding_unchecked: bool,
}

/// A refused request: the reason (its status, JSON body, audit and metric label), and what was
/// found before the refusal.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: Reason,
    /// For `rate_limited`: when to retry (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Why, in words, for `explain` and debug logs; never sent to the agent.
    pub detail: Option<String>,
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
        self.detail = Some(detail.into());
        self
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
}

impl Permit {
    /// Only the decision makes permits.
    pub(super) fn new(
        agent: AgentId,
        route: RouteId,
        upstream: UpstreamId,
        shaped: Shaped,
        shadowed: Option<(Reason, Option<RuleRef>)>,
        trace: Trace,
    ) -> Self {
        Permit {
            agent,
            route,
            upstream,
            shaped,
            shadowed,
            trace,
        }
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
