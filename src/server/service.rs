//! One request's way through warden, in the contract's decision order:
//! identity -> token -> admit (quarantine, rate) -> shape -> route -> segmentation -> rules ->
//! forward -> record. Each step is a call into its own module; each refusal is a [`Reason`].

use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::Recorded;
use super::connection::ConnInfo;
use super::record::RequestRecord;
use super::runtime::Runtime;
use crate::authz::decide::{decide_request, shape_request, RequestFacts};
use crate::clock::UtcMoment;
use crate::config::schema::Mode;
use crate::decision::{Reason, Verdict};
use crate::forward::proxy::{forward, full, ForwardPlan};
use crate::forward::upstream::ProxyBody;
use crate::identity::token::TokenError;

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
    let mut rec = Box::new(RequestRecord {
        request_id: rt.ids.next(),
        started: Instant::now(),
        source_ip: conn.peer.ip(),
        method: req.method().clone(),
        host: None,
        path: req.uri().path().to_string(),
        agent_id: None,
        agent: None,
        peer: None,
        roles: None,
        role_list: None,
        route: None,
        upstream: None,
        rule: None,
        verdict: Verdict::Allow,
        reason: Reason::Ok,
        status: 0,
        bytes_in: Arc::new(AtomicU64::new(0)),
        upstream_elapsed: None,
        anomaly_score: 0.0,
        anomaly_updated: false,
        signals: Vec::new(),
        rt: rt.clone(),
        snap: snap.clone(),
    });

    // Step 2: identity, from the certificate this connection presented.
    let peer = match conn.identity(&snap.trust_domain) {
        Ok(p) => p,
        Err(_) => return Ok(refuse(rec, Reason::NoIdentity, None)),
    };
    rec.agent_id = Some(peer.agent_id.as_str().into());
    rec.peer = Some(peer.clone());
    let Some(agent) = snap.agents.lookup(&peer.agent_id) else {
        return Ok(refuse(rec, Reason::UnknownAgent, None));
    };
    let state = conn.agent_state(&rt, &peer.agent_id);
    rec.agent = Some(state.clone());
    rec.roles = Some(agent.roles_header.clone());
    rec.role_list = snap.agent_roles.get(agent.entry).cloned();
    let now_ms = rt.clock.now_unix_ms();
    state.touch(now_ms);

    if agent.require_token {
        let verified = match &snap.token {
            Some(v) => {
                v.verify(
                    req.headers().get(header::AUTHORIZATION),
                    &peer.agent_id,
                    &peer.thumbprint,
                    now_ms / 1000,
                )
                .await
            }
            // A role demands a token but none can be verified: fail closed.
            None => Err(TokenError::Invalid("no token issuers configured".into())),
        };
        if let Err(e) = verified {
            let reason = match e {
                TokenError::Missing => Reason::TokenMissing,
                TokenError::Invalid(_) => Reason::TokenInvalid,
                TokenError::NotBound => Reason::TokenNotBound,
            };
            return Ok(refuse(rec, reason, None));
        }
    }

    // Step 3: admit. In shadow mode a refusal from here to the rules is recorded, not enforced.
    let shadow = snap.mode == Mode::Shadow;
    let mut shadowed: Option<Reason> = None;
    if state.is_quarantined(now_ms) {
        if !shadow {
            return Ok(refuse(rec, Reason::Quarantined, None));
        }
        shadowed.get_or_insert(Reason::Quarantined);
    }
    if let Err(wait) = state.check_rate(agent.rate_limit.as_ref(), Instant::now()) {
        if !shadow {
            return Ok(refuse(rec, Reason::RateLimited, Some(wait)));
        }
        shadowed.get_or_insert(Reason::RateLimited);
    }

    // Step 4: the request's shape; nothing ambiguous is judged or forwarded, in any mode.
    let shaped = match shape_request(req.version(), req.uri(), req.headers()) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(request_id = %rec.request_id, "bad request: {e}");
            return Ok(refuse(rec, Reason::BadRequest, None));
        }
    };
    rec.host = shaped.host.clone();
    rec.path = shaped.target.path.clone();
    if let Some(len) = content_length(req.headers()) {
        if len > snap.limits.max_request_body_bytes {
            return Ok(refuse(rec, Reason::BodyTooLarge, None));
        }
    }

    // Steps 4-6: route, segmentation, rules.
    let facts = RequestFacts {
        method: req.method(),
        host: shaped.host.as_deref(),
        absolute_form: shaped.absolute_form,
        path: &shaped.target.path,
        headers: req.headers(),
        source_ip: conn.peer.ip(),
        moment: UtcMoment::from_unix_ms(now_ms),
    };
    let outcome = decide_request(&snap, agent, &facts);
    rec.route = outcome.route;
    rec.rule = outcome.rule;
    rec.upstream = outcome.upstream;
    if outcome.reason != Reason::Ok {
        if !(shadow && outcome.reason.shadowable()) {
            return Ok(refuse(rec, outcome.reason, None));
        }
        shadowed.get_or_insert(outcome.reason);
        // A shadowed segmentation refusal still needs the route's upstream to forward to.
        rec.upstream = outcome
            .route
            .and_then(|r| snap.routes.get(r))
            .map(|r| r.upstream);
    }
    let Some(upstream) = rec.upstream.and_then(|u| snap.upstreams.get(u)) else {
        return Ok(refuse(rec, Reason::NoRoute, None));
    };
    if let Some(reason) = shadowed {
        rec.verdict = Verdict::ShadowDeny;
        rec.reason = reason;
        tracing::info!(request_id = %rec.request_id, agent = %peer.agent_id, reason = reason.as_str(), "shadow_deny");
    }

    // Step 7: forward.
    let path_and_query = shaped.target.path_and_query();
    let limit = upstream.timeout.map_or(snap.limits.request_timeout, |t| {
        t.min(snap.limits.request_timeout)
    });
    let plan = ForwardPlan {
        upstream,
        path_and_query: &path_and_query,
        agent_id: &peer.agent_id,
        roles_header: &agent.roles_header,
        request_id: &rec.request_id,
        client_ip: conn.peer.ip(),
        host: shaped.host.as_deref(),
        strip: &snap.strip,
        strip_authorization: snap.token.as_ref().is_some_and(|t| !t.forward),
        response_timeout: limit,
        max_body_bytes: snap.limits.max_request_body_bytes,
        bytes_in: rec.bytes_in.clone(),
    };
    let sent = Instant::now();
    match forward(plan, req).await {
        Ok(resp) => {
            rec.upstream_elapsed = Some(sent.elapsed());
            rec.status = resp.status().as_u16();
            let (mut parts, body) = resp.into_parts();
            set_request_id(&mut parts.headers, &rec.request_id);
            Ok(Response::from_parts(parts, Recorded::new(body, rec)))
        }
        Err(e) => {
            tracing::warn!(request_id = %rec.request_id, upstream = %upstream.name, "upstream: {e}");
            Ok(refuse(rec, e.reason(), None))
        }
    }
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

fn set_request_id(headers: &mut http::HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-request-id", v);
    }
}

/// A refusal: JSON body naming the reason and request id, nothing about the policy.
pub fn refuse(mut rec: Box<RequestRecord>, reason: Reason, retry_after: Option<Duration>) -> Resp {
    let status = reason.status();
    rec.verdict = Verdict::Deny;
    rec.reason = reason;
    rec.status = status.as_u16();
    let body = format!(
        r#"{{"error":"{}","request_id":"{}"}}"#,
        reason.as_str(),
        rec.request_id
    );
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
    resp.map(|b| Recorded::new(b, rec))
}
