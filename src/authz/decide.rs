//! Steps 5 and 6 of the decision order: segmentation (may the agent's roles reach this upstream at
//! all?), then rules (a matching deny wins, the first allow permits, default deny). Pure: same
//! roles, same request, same answer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, Method};

use super::rules::{CompiledRole, RuleInput, RuleMatch};
use super::when::{Condition, Unmet};
use crate::clock::UtcMoment;
use crate::decision::{RuleKind, RuleRef};
use crate::ids::{RoleId, UpstreamId, UpstreamSet};

/// What an agent's `agents` entry grants: its roles, the segment they span, its labels.
#[derive(Debug, Clone, Default)]
pub struct AgentGrants {
    pub roles: Vec<RoleId>,
    /// Union of the roles' `upstreams`: the segment this agent lives in.
    pub upstreams: UpstreamSet,
    pub labels: BTreeMap<String, String>,
}

/// The request as the rules see it.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The normalised path.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub source_ip: IpAddr,
    pub moment: UtcMoment,
}

/// Why the rules refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzDenial {
    /// The upstream is outside every role's `upstreams`.
    Segmentation,
    /// A deny rule matched.
    Denied(RuleRef),
    /// No allow rule matched; the first that matched method and path but not its condition.
    NoMatchingRule(Option<(RuleRef, Unmet)>),
}

/// Every rule whose method, path and condition match a request, deny and allow, each in the
/// order `authorize` tries them (the agent's roles in order, each role's rules in config order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub denies: Vec<RuleRef>,
    pub allows: Vec<RuleRef>,
}

/// Segmentation, then the covering rules; the caller judges them (on an agent-protocol route,
/// against the message).
pub fn covering(
    roles: &[CompiledRole],
    agent: &AgentGrants,
    upstream: UpstreamId,
    req: &RequestFacts<'_>,
) -> Result<Coverage, AuthzDenial> {
    if !agent.upstreams.contains(upstream) {
        return Err(AuthzDenial::Segmentation);
    }
    let check = |c: &Condition| c.check(req.source_ip, &req.moment, req.headers, &agent.labels);
    let input = RuleInput {
        upstream,
        method: req.method,
        path: req.path,
        check_condition: &check,
    };
    let mut cov = Coverage::default();
    for &id in &agent.roles {
        let Some(role) = roles.get(id.index()) else {
            continue;
        };
        let refs = |kind, found: Vec<u32>| {
            found.into_iter().map(move |index| RuleRef {
                role: id,
                kind,
                index,
            })
        };
        cov.denies
            .extend(refs(RuleKind::Deny, role.deny.all_matches(&input, true)));
        cov.allows
            .extend(refs(RuleKind::Allow, role.allow.all_matches(&input, false)));
    }
    Ok(cov)
}

/// Segmentation, deny rules, allow rules: the allow rule that permits, or why none does.
pub fn authorize(
    roles: &[CompiledRole],
    agent: &AgentGrants,
    upstream: UpstreamId,
    req: &RequestFacts<'_>,
) -> Result<RuleRef, AuthzDenial> {
    if !agent.upstreams.contains(upstream) {
        return Err(AuthzDenial::Segmentation);
    }
    let check = |c: &Condition| c.check(req.source_ip, &req.moment, req.headers, &agent.labels);
    let input = RuleInput {
        upstream,
        method: req.method,
        path: req.path,
        check_condition: &check,
    };
    let role_rules = || {
        agent
            .roles
            .iter()
            .filter_map(|&id| roles.get(id.index()).map(|r| (id, r)))
    };
    // A matching deny in any of the agent's roles wins over every allow.
    for (id, role) in role_rules() {
        if let RuleMatch::Matched(i) = role.deny.first_match(&input, true) {
            return Err(AuthzDenial::Denied(RuleRef {
                role: id,
                kind: RuleKind::Deny,
                index: i,
            }));
        }
    }
    let mut near_miss = None;
    for (id, role) in role_rules() {
        match role.allow.first_match(&input, false) {
            RuleMatch::Matched(i) => {
                return Ok(RuleRef {
                    role: id,
                    kind: RuleKind::Allow,
                    index: i,
                })
            }
            RuleMatch::NoMatch(Some((i, unmet))) if near_miss.is_none() => {
                let rule = RuleRef {
                    role: id,
                    kind: RuleKind::Allow,
                    index: i,
                };
                near_miss = Some((rule, unmet));
            }
            RuleMatch::NoMatch(_) => {}
        }
    }
    Err(AuthzDenial::NoMatchingRule(near_miss))
}
