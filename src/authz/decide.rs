//! The decision function shared by `serve` and `explain`: request shape -> route -> segmentation
//! -> rules (steps 4 to 6 of the contract's decision order). It is pure: same snapshot, same
//! request, same answer.

use std::net::IpAddr;

use http::{HeaderMap, Method};

use super::rules::{RuleInput, RuleMatch};
use super::when::Unmet;
use crate::clock::UtcMoment;
use crate::config::compile::Snapshot;
use crate::decision::{Reason, RuleKind, RuleRef};
use crate::identity::index::AgentPolicy;
use crate::route::host::{resolve_host, HostError};
use crate::route::normalize::{normalize_target, NormalizedTarget, PathError};

/// The request as the rules see it.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// Canonical host, if the request named one.
    pub host: Option<&'a str>,
    /// The target was in absolute form (`GET http://host/path HTTP/1.1`).
    pub absolute_form: bool,
    /// The normalised path.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub source_ip: IpAddr,
    pub moment: UtcMoment,
}

/// A request target made safe to judge.
#[derive(Debug, Clone)]
pub struct Shaped {
    pub target: NormalizedTarget,
    pub host: Option<String>,
    pub absolute_form: bool,
}

/// Why a request's shape was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    Path(PathError),
    Host(HostError),
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Path(e) => write!(f, "path: {e}"),
            ShapeError::Host(e) => write!(f, "host: {e}"),
        }
    }
}

/// Step 4a: host and path, normalised, or the reason they cannot be judged.
pub fn shape_request(
    version: http::Version,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<Shaped, ShapeError> {
    let host = resolve_host(version, uri, headers).map_err(ShapeError::Host)?;
    let raw = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let target = normalize_target(raw).map_err(ShapeError::Path)?;
    Ok(Shaped {
        target,
        host: host.host,
        absolute_form: host.absolute_form,
    })
}

/// What was decided, and by what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub reason: Reason,
    pub route: Option<usize>,
    pub upstream: Option<usize>,
    pub rule: Option<RuleRef>,
    /// For `no_matching_rule`: the first rule that matched method and path but not its condition.
    pub near_miss: Option<(RuleRef, Unmet)>,
}

impl Outcome {
    fn refuse(reason: Reason) -> Self {
        Outcome {
            reason,
            route: None,
            upstream: None,
            rule: None,
            near_miss: None,
        }
    }
}

/// Steps 4b to 6: route, segmentation, deny rules, allow rules.
pub fn decide_request(snap: &Snapshot, agent: &AgentPolicy, req: &RequestFacts<'_>) -> Outcome {
    if req.absolute_form && !req.host.is_some_and(|h| snap.routes.is_route_host(h)) {
        return Outcome::refuse(Reason::BadRequest);
    }
    let Some(route) = snap.routes.lookup(req.host, req.path) else {
        return Outcome::refuse(Reason::NoRoute);
    };
    let upstream = snap
        .routes
        .get(route)
        .map(|r| r.upstream)
        .unwrap_or(usize::MAX);
    let mut out = Outcome {
        reason: Reason::Segmentation,
        route: Some(route),
        upstream: None,
        rule: None,
        near_miss: None,
    };
    if !agent.upstreams.contains(upstream) || upstream >= snap.upstreams.len() {
        return out;
    }
    out.upstream = Some(upstream);
    let check = |c: &super::when::Condition| {
        c.check(req.source_ip, &req.moment, req.headers, &agent.labels)
    };
    let input = RuleInput {
        upstream,
        method: req.method,
        path: req.path,
        check_condition: &check,
    };

    // A matching deny in any of the agent's roles wins over every allow.
    for &role in &agent.roles {
        let Some(r) = snap.roles.get(role) else {
            continue;
        };
        if let RuleMatch::Matched(i) = r.deny.first_match(&input, true) {
            out.reason = Reason::Denied;
            out.rule = Some(RuleRef {
                role: role as u32,
                kind: RuleKind::Deny,
                index: i,
            });
            return out;
        }
    }
    for &role in &agent.roles {
        let Some(r) = snap.roles.get(role) else {
            continue;
        };
        match r.allow.first_match(&input, false) {
            RuleMatch::Matched(i) => {
                out.reason = Reason::Ok;
                out.rule = Some(RuleRef {
                    role: role as u32,
                    kind: RuleKind::Allow,
                    index: i,
                });
                return out;
            }
            RuleMatch::NoMatch(Some((i, unmet))) if out.near_miss.is_none() => {
                out.near_miss = Some((
                    RuleRef {
                        role: role as u32,
                        kind: RuleKind::Allow,
                        index: i,
                    },
                    unmet,
                ));
            }
            RuleMatch::NoMatch(_) => {}
        }
    }
    out.reason = Reason::NoMatchingRule;
    out
}

/// `role/allow[N]` as written in audit records, logs and `explain`.
pub fn rule_label(snap: &Snapshot, rule: &RuleRef) -> String {
    format!(
        "{}/{}[{}]",
        snap.role_name(rule.role as usize),
        rule.kind.as_str(),
        rule.index
    )
}
