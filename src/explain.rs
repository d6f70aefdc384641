//! `warden explain`: the decision `serve` would make for one request, with the layer, role and
//! rule that made it and why. It calls the same functions, in the same order, as the request path.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use crate::authz::decide::{decide_request, rule_label, shape_request, RequestFacts};
use crate::clock::UtcMoment;
use crate::config::compile::Snapshot;
use crate::config::schema::Mode;
use crate::decision::Reason;
use crate::identity::token::TokenError;

/// One request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub agent: String,
    pub method: String,
    /// `https://host/path?q` or `/path?q`.
    pub url: String,
    /// `Name: value` lines.
    pub headers: Vec<String>,
    pub source_ip: IpAddr,
    pub unix_ms: i64,
    /// SHA-256 of the client certificate, to check a token's binding.
    pub cert_thumbprint: Option<[u8; 32]>,
}

/// The decision and what made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub reason: Reason,
    /// In shadow mode a shadowable refusal is let through: `ALLOW (shadow_deny ...)`.
    pub shadow: bool,
    pub roles: Vec<String>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub rule: Option<String>,
    pub why: String,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Ok || self.shadow
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let verdict = if self.reason == Reason::Ok {
            "ALLOW".to_string()
        } else if self.shadow {
            format!(
                "ALLOW (shadow mode; enforce would DENY {})",
                self.reason.as_str()
            )
        } else {
            format!(
                "DENY {} ({})",
                self.reason.as_str(),
                self.reason.status().as_u16()
            )
        };
        let _ = writeln!(s, "{verdict}");
        let _ = writeln!(s, "  layer:    {}", self.reason.layer());
        let _ = writeln!(
            s,
            "  roles:    {}",
            if self.roles.is_empty() {
                "-".into()
            } else {
                self.roles.join(", ")
            }
        );
        let _ = writeln!(s, "  route:    {}", self.route.as_deref().unwrap_or("-"));
        let _ = writeln!(s, "  upstream: {}", self.upstream.as_deref().unwrap_or("-"));
        let _ = writeln!(s, "  rule:     {}", self.rule.as_deref().unwrap_or("-"));
        let _ = writeln!(s, "  why:      {}", self.why);
        s
    }
}

/// Input that cannot be explained (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn parse_request(req: &ExplainRequest) -> Result<(Method, Uri, HeaderMap), BadInput> {
    let method = Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| BadInput(format!("invalid method `{}`", req.method)))?;
    let url: Uri = req
        .url
        .parse()
        .map_err(|e| BadInput(format!("invalid url `{}`: {e}", req.url)))?;
    let mut headers = HeaderMap::new();
    for line in &req.headers {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| BadInput(format!("header `{line}` is not `Name: value`")))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| BadInput(format!("invalid header name `{k}`")))?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| BadInput(format!("invalid header value in `{line}`")))?;
        headers.append(name, value);
    }
    // An absolute URL is what a client would send as Host plus an origin-form target.
    if let Some(authority) = url.authority() {
        if !headers.contains_key(http::header::HOST) {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(http::header::HOST, v);
            }
        }
    }
    let origin: Uri = url
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e| BadInput(format!("invalid path: {e}")))?;
    Ok((method, origin, headers))
}

/// Explains `req` against `snap`.
pub async fn explain(snap: &Snapshot, req: &ExplainRequest) -> Result<Explanation, BadInput> {
    let (method, uri, headers) = parse_request(req)?;
    let mut ex = Explanation {
        reason: Reason::Ok,
        shadow: false,
        roles: vec![],
        route: None,
        upstream: None,
        rule: None,
        why: String::new(),
    };
    let prefix = format!("spiffe://{}/", snap.trust_domain);
    if !req.agent.starts_with(&prefix) || req.agent.len() == prefix.len() {
        ex.reason = Reason::NoIdentity;
        ex.why = format!(
            "`{}` is not an agent id in the trust domain (spiffe://{}/...)",
            req.agent, snap.trust_domain
        );
        return Ok(ex);
    }
    let Some(agent) = snap.agents.lookup(&req.agent) else {
        ex.reason = Reason::UnknownAgent;
        ex.why = "no `agents` entry (exact id or pattern) covers this id".into();
        return Ok(ex);
    };
    ex.roles = agent
        .roles
        .iter()
        .map(|r| snap.role_name(*r).to_string())
        .collect();
    let mut notes = vec![format!(
        "agent matched agents[{}] `{}`",
        agent.entry, agent.id
    )];

    if agent.require_token {
        let result = match (&snap.token, req.cert_thumbprint) {
            (None, _) => Err(TokenError::Invalid("no token issuers configured".into())),
            (Some(v), Some(tp)) => {
                v.verify(
                    headers.get(http::header::AUTHORIZATION),
                    &req.agent,
                    &tp,
                    req.unix_ms / 1000,
                )
                .await
            }
            (Some(v), None) => match v
                .verify(
                    headers.get(http::header::AUTHORIZATION),
                    &req.agent,
                    &[0; 32],
                    req.unix_ms / 1000,
                )
                .await
            {
                Err(TokenError::NotBound) => {
                    notes.push(
                        "token valid; its certificate binding is not checked without --cert".into(),
                    );
                    Ok(())
                }
                other => other,
            },
        };
        if let Err(e) = result {
            ex.reason = match e {
                TokenError::Missing => Reason::TokenMissing,
                TokenError::Invalid(_) => Reason::TokenInvalid,
                TokenError::NotBound => Reason::TokenNotBound,
            };
            ex.why = match e {
                TokenError::Missing => "a role of this agent requires the certificate-bound token; no `Authorization: Bearer` header".into(),
                TokenError::Invalid(why) => format!("token invalid: {why}"),
                TokenError::NotBound => "token is not bound to this certificate (cnf.x5t#S256)".into(),
            };
            return Ok(ex);
        }
    }
    notes.push("quarantine and rate limits depend on live state and are not evaluated here".into());

    let shaped = match shape_request(Version::HTTP_11, &uri, &headers) {
        Ok(s) => s,
        Err(e) => {
            ex.reason = Reason::BadRequest;
            ex.why = format!("the request cannot be judged safely: {e}");
            return Ok(ex);
        }
    };
    let facts = RequestFacts {
        method: &method,
        host: shaped.host.as_deref(),
        absolute_form: shaped.absolute_form,
        path: &shaped.target.path,
        headers: &headers,
        source_ip: req.source_ip,
        moment: UtcMoment::from_unix_ms(req.unix_ms),
    };
    let out = decide_request(snap, agent, &facts);
    ex.reason = out.reason;
    ex.route = out.route.map(|r| format!("routes[{r}]"));
    let route_upstream = out
        .route
        .and_then(|r| snap.routes.get(r))
        .and_then(|r| snap.upstreams.get(r.upstream));
    ex.upstream = route_upstream.map(|u| u.name.to_string());
    ex.rule = out.rule.as_ref().map(|r| rule_label(snap, r));
    ex.shadow = snap.mode == Mode::Shadow && out.reason.shadowable();
    let target = format!("{} {}", method, shaped.target.path);
    let up = ex.upstream.clone().unwrap_or_default();
    let why = match out.reason {
        Reason::Ok => format!(
            "{} allows {target} on upstream {up}",
            ex.rule.as_deref().unwrap_or("?")
        ),
        Reason::BadRequest => "absolute-form target naming a host no route selects".into(),
        Reason::NoRoute => format!(
            "no route matches host {:?} and path {}",
            shaped.host.as_deref().unwrap_or("-"),
            shaped.target.path
        ),
        Reason::Segmentation => format!(
            "upstream {up} is outside the upstreams of roles [{}]",
            ex.roles.join(", ")
        ),
        Reason::Denied => format!(
            "{} denies {target} (a matching deny wins over every allow)",
            ex.rule.as_deref().unwrap_or("?")
        ),
        Reason::NoMatchingRule => {
            let mut w = format!(
                "no allow rule of roles [{}] matches {target} on upstream {up} (default deny)",
                ex.roles.join(", ")
            );
            if let Some((r, unmet)) = out.near_miss {
                let _ = write!(
                    w,
                    "; closest: {} matches method and path but {}",
                    rule_label(snap, &r),
                    unmet.as_str()
                );
            }
            w
        }
        other => other.as_str().to_string(),
    };
    ex.why = format!("{why}. ({})", notes.join("; "));
    Ok(ex)
}
