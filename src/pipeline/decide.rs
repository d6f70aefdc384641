//! [`decide`]: the contract's decision order, one step after the other.

use http::{header, Method, Version};

use super::admission::{Admission, AdmitOutcome};
use super::caller::Caller;
use super::message::{judge_message, Asker};
use super::outcome::Judged;
use super::outcome::{Permit, Refusal, Trace};
use super::request::{MessageBody, RequestParts};
use crate::authz::{authorize, AuthzDenial, RequestFacts};
use crate::clock::UtcMoment;
use crate::decision::{Mode, Reason, RuleRef};
use crate::identity::token::TokenError;
use crate::ids::{AgentId, RouteId, UpstreamId};
use crate::route::ambiguous::ambiguity;
use crate::route::shape::{shape_request, Shaped};
use crate::snapshot::{AgentPolicy, Snapshot};

/// A refusal that shadow mode lets through, remembered until the decision ends.
type Shadowed = Option<(Reason, Option<RuleRef>)>;

/// Who asks on an agent-protocol route: the parts of an [`Asker`].
type AskerParts<'a> = (
    &'a AgentId,
    Option<&'a [u8; 32]>,
    &'a AgentPolicy,
    UpstreamId,
    crate::protocol::Protocol,
);

/// Decides one request: `Ok(permit)` to forward, or the refusal. On an agent-protocol route the
/// decision reads the message from `body` (only there, and only once the path is allowed).
pub async fn decide<A: Admission, B: MessageBody>(
    snap: &Snapshot,
    caller: &Caller<'_>,
    admission: &mut A,
    req: &RequestParts<'_>,
    body: &mut B,
) -> Result<Permit, Refusal> {
    decide_all(snap, caller, admission, req, body)
        .await
        .map_err(|mut refusal| {
            if refusal.trace.route.is_none() {
                // Refused before routing: a refusal on an agent-protocol route still answers in
                // JSON-RPC, so the route is looked up for the answer's form alone.
                refusal.trace.protocol = protocol_hint(snap, req);
            }
            refusal
        })
}

/// The protocol of the route the request would take, for the form of an early refusal.
fn protocol_hint(snap: &Snapshot, req: &RequestParts<'_>) -> Option<crate::protocol::Protocol> {
    if !snap.protocol.any_route() {
        return None;
    }
    let shaped = shape_request(req.version, req.uri, req.headers).ok()?;
    let (route, _) = snap
        .routes
        .lookup(shaped.host.as_deref(), shaped.target.path())?;
    snap.protocol.route(route)
}

async fn decide_all<A: Admission, B: MessageBody>(
    snap: &Snapshot,
    caller: &Caller<'_>,
    admission: &mut A,
    req: &RequestParts<'_>,
    body: &mut B,
) -> Result<Permit, Refusal> {
    let mut trace = Trace::default();
    let (agent, thumbprint) = match *caller {
        Caller::Agent { id, thumbprint } => (id, thumbprint),
        Caller::NoIdentity(why) => {
            return Err(Refusal::new(Reason::NoIdentity, trace).because(why));
        }
    };
    let policy = identify(snap, agent, &mut trace)?;
    if policy.require_token {
        // Boxed, like the message step below: the future of a step most requests skip would
        // otherwise be carried, and moved, by every decision.
        Box::pin(second_factor(snap, agent, thumbprint, req, &mut trace)).await?;
    }
    let mut shadowed = admit(snap, admission, (agent, policy), req, &mut trace)?;
    let shaped = shape(snap, req, &mut trace)?;
    let (route, upstream) = match route(snap, req, &shaped, &mut trace) {
        Ok(found) => found,
        Err((reason, why)) => return Err(refuse_with(reason, trace, shaped).because_if(why)),
    };
    let judged = match snap.protocol.route(route) {
        None => {
            if let Err((reason, rule)) = rules(snap, policy, upstream, req, &shaped, &mut trace) {
                if snap.mode != Mode::Shadow {
                    return Err(refuse_with(reason, trace, shaped));
                }
                shadowed.get_or_insert((reason, rule));
            }
            None
        }
        Some(protocol) => {
            trace.protocol = Some(protocol);
            let who = (agent, thumbprint, policy, upstream, protocol);
            let judging = message_rules(snap, who, req, (body, admission), &shaped, &mut trace);
            match Box::pin(judging).await {
                Ok((judged, stop)) => {
                    shadowed = shadowed.or(stop);
                    Some(Box::new(judged))
                }
                Err((reason, why)) => return Err(refuse_with(reason, trace, shaped).because(why)),
            }
        }
    };
    let decided = (route, upstream);
    Ok(Permit::new(
        agent.clone(),
        decided,
        shaped,
        shadowed,
        trace,
        judged,
    ))
}

/// Steps 5 and 6 on an agent-protocol route: the judged message, and in shadow mode the refusal
/// enforce mode would have made; or the refusal.
async fn message_rules<A: Admission, B: MessageBody>(
    snap: &Snapshot,
    (agent, thumbprint, policy, upstream, protocol): AskerParts<'_>,
    req: &RequestParts<'_>,
    (body, admission): (&mut B, &mut A),
    shaped: &Shaped,
    trace: &mut Trace,
) -> Result<(Judged, Shadowed), (Reason, String)> {
    let who = &Asker {
        agent,
        thumbprint,
        policy,
        upstream,
        protocol,
    };
    let facts = RequestFacts {
        method: req.method,
        path: shaped.target.path(),
        headers: req.headers,
        source_ip: req.source_ip,
        moment: UtcMoment::from_unix_ms(req.now_ms),
    };
    let shadow = snap.mode == Mode::Shadow;
    let mut stops = Vec::new();
    let live = admission.rpc();
    match judge_message(
        snap,
        who,
        req,
        &facts,
        (body, live),
        (shadow, &mut stops),
        trace,
    )
    .await
    {
        Ok(judged) => Ok((judged, stops.first().map(|s| (s.reason, s.rule)))),
        Err(stop) => Err((stop.reason, stop.why)),
    }
}

/// Step 3: quarantine, rate, requests in flight. In shadow mode a refusal is remembered, not
/// enforced.
fn admit<A: Admission>(
    snap: &Snapshot,
    admission: &mut A,
    (agent, policy): (&AgentId, &AgentPolicy),
    req: &RequestParts<'_>,
    trace: &mut Trace,
) -> Result<Shadowed, Refusal> {
    match admission.admit(agent, policy, &snap.limits, req.now_ms) {
        AdmitOutcome::Admitted => Ok(None),
        AdmitOutcome::NotEvaluated => {
            trace.admission_not_evaluated = true;
            Ok(None)
        }
        AdmitOutcome::Refused(reason, _) if snap.mode == Mode::Shadow && reason.shadowable() => {
            Ok(Some((reason, None)))
        }
        AdmitOutcome::Refused(reason, retry_after) => {
            let mut r = Refusal::new(reason, trace.clone());
            r.retry_after = retry_after;
            Err(r)
        }
    }
}

/// Step 4b: the route, and the body rule of its upstream.
fn route(
    snap: &Snapshot,
    req: &RequestParts<'_>,
    shaped: &Shaped,
    trace: &mut Trace,
) -> Result<(RouteId, UpstreamId), (Reason, Option<String>)> {
    let (route, upstream) = snap
        .routes
        .lookup(shaped.host.as_deref(), shaped.target.path())
        .map(|(id, r)| (id, r.upstream))
        .ok_or((Reason::NoRoute, None))?;
    trace.route = Some(route);
    trace.upstream = Some(upstream);
    if let Some(why) = body_refused(snap, req, upstream) {
        return Err((Reason::BadRequest, Some(why)));
    }
    Ok((route, upstream))
}

/// Steps 5 and 6: segmentation and rules; the allow rule, or the refusal and its rule.
fn rules(
    snap: &Snapshot,
    policy: &AgentPolicy,
    upstream: UpstreamId,
    req: &RequestParts<'_>,
    shaped: &Shaped,
    trace: &mut Trace,
) -> Result<(), (Reason, Option<RuleRef>)> {
    let facts = RequestFacts {
        method: req.method,
        path: shaped.target.path(),
        headers: req.headers,
        source_ip: req.source_ip,
        moment: UtcMoment::from_unix_ms(req.now_ms),
    };
    let denial = match authorize(&snap.roles, &policy.grants, upstream, &facts) {
        Ok(rule) => {
            trace.rule = Some(rule);
            return Ok(());
        }
        Err(denial) => denial,
    };
    let (reason, rule) = match denial {
        AuthzDenial::Segmentation => (Reason::Segmentation, None),
        AuthzDenial::Denied(rule) => (Reason::Denied, Some(rule)),
        AuthzDenial::NoMatchingRule(near) => {
            trace.near_miss = near.map(Box::new);
            (Reason::NoMatchingRule, None)
        }
    };
    trace.rule = rule;
    Err((reason, rule))
}

fn refuse_with(reason: Reason, mut trace: Trace, shaped: Shaped) -> Refusal {
    trace.shaped = Some(Box::new(shaped));
    Refusal::new(reason, trace)
}

/// Step 2: the agent id must be in the trust domain and covered by an `agents` entry.
fn identify<'s>(
    snap: &'s Snapshot,
    agent: &AgentId,
    trace: &mut Trace,
) -> Result<&'s AgentPolicy, Refusal> {
    if !agent.is_in(&snap.trust_domain) {
        return Err(
            Refusal::new(Reason::NoIdentity, trace.clone()).because(format!(
                "`{agent}` is outside the trust domain {}",
                snap.trust_domain
            )),
        );
    }
    let Some(entry) = snap.agent_index.lookup(agent) else {
        return Err(Refusal::new(Reason::UnknownAgent, trace.clone())
            .because("no `agents` entry (exact id or pattern) covers this id"));
    };
    trace.agent_entry = Some(entry);
    snap.agents
        .get(entry)
        .ok_or_else(|| Refusal::new(Reason::UnknownAgent, trace.clone()))
}

/// Step 2b: the certificate-bound token, where a role or the config demands it.
async fn second_factor(
    snap: &Snapshot,
    agent: &AgentId,
    thumbprint: Option<&[u8; 32]>,
    req: &RequestParts<'_>,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let Some(verifier) = &snap.token else {
        // A role demands a token but none can be verified: fail closed.
        return Err(Refusal::new(Reason::TokenInvalid, trace.clone())
            .because("a role requires a token but no token issuers are configured"));
    };
    let auth = req.headers.get(header::AUTHORIZATION);
    let now = req.now_ms / 1000;
    let result = match thumbprint {
        Some(tp) => verifier.verify(auth, agent.as_str(), tp, now).await,
        None => match verifier.verify(auth, agent.as_str(), &[0; 32], now).await {
            Err(TokenError::NotBound) => {
                trace.binding_unchecked = true;
                Ok(())
            }
            other => other,
        },
    };
    result.map_err(|e| {
        let (reason, why) = match e {
            TokenError::Missing => (
                Reason::TokenMissing,
                "a role of this agent requires the certificate-bound token; no `Authorization: Bearer` header".to_string(),
            ),
            TokenError::Invalid(why) => (Reason::TokenInvalid, format!("token invalid: {why}")),
            TokenError::NotBound => (
                Reason::TokenNotBound,
                "token is not bound to this certificate (cnf.x5t#S256)".to_string(),
            ),
        };
        Refusal::new(reason, trace.clone()).because(why)
    })
}

/// Step 4: nothing ambiguous is judged or forwarded, in any mode.
fn shape(snap: &Snapshot, req: &RequestParts<'_>, trace: &mut Trace) -> Result<Shaped, Refusal> {
    let bad = |why: String| Refusal::new(Reason::BadRequest, trace.clone()).because(why);
    // Frameworks upper-case the method they receive: `delete` would run a DELETE handler.
    if req.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(bad(format!("method `{}` is not upper case", req.method)));
    }
    if req.headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        return Err(bad("more than one Authorization header".into()));
    }
    if let Some(why) = ambiguity(req.version, req.method, req.uri.query(), req.headers) {
        return Err(bad(why.into()));
    }
    let shaped = shape_request(req.version, req.uri, req.headers)
        .map_err(|e| bad(format!("the request cannot be judged safely: {e}")))?;
    // No host from Host or the target: an HTTP/1.1 request without Host.
    if req.version == Version::HTTP_11 && shaped.host.is_none() {
        return Err(bad("HTTP/1.1 request without Host".into()));
    }
    if shaped.absolute_form
        && !shaped
            .host
            .as_deref()
            .is_some_and(|h| snap.routes.is_route_host(h))
    {
        return Err(refuse_with(Reason::BadRequest, trace.clone(), shaped)
            .because("absolute-form target naming a host no route selects"));
    }
    if content_length(req.headers).is_some_and(|len| len > snap.limits.max_request_body_bytes) {
        return Err(refuse_with(Reason::BodyTooLarge, trace.clone(), shaped)
            .because("Content-Length over limits.max_request_body_bytes"));
    }
    Ok(shaped)
}

/// A body on GET, HEAD or OPTIONS is refused unless the upstream takes such bodies: an upstream
/// that ignores it would read it as the next request on the connection.
fn body_refused(snap: &Snapshot, req: &RequestParts<'_>, upstream: UpstreamId) -> Option<String> {
    let bodiless = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !req.has_body || !bodiless.contains(req.method) {
        return None;
    }
    if snap.upstream(upstream).is_some_and(|u| u.bodies_on_get) {
        return None;
    }
    Some(format!(
        "a body on {} (the upstream does not set bodies_on_get)",
        req.method
    ))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
