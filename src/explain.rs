//! `warden explain`: the decision `serve` would make for one request, with the layer, role and
//! rule that made it and why. It calls [`pipeline::decide`](crate::pipeline::decide), the very
//! function the proxy calls; only the live admission state is given instead of read.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::decision::{Reason, ALLOWED};
use crate::identity::agent_id::{peer_cert, thumbprint};
use crate::ids::AgentId;
use crate::pipeline::{
    decide, Caller, GivenAdmission, GivenBody, Permit, Refusal, RequestParts, Trace,
};
use crate::snapshot::Snapshot;

/// One request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub agent: String,
    pub method: String,
    /// `/path?q` (Host from `headers`) or an absolute-form `https://host/path?q`.
    pub url: String,
    /// `Name: value` lines.
    pub headers: Vec<String>,
    pub source_ip: IpAddr,
    pub unix_ms: i64,
    /// The agent's certificate (DER): its identity is read as `serve` reads it, and a token's
    /// binding is checked against it.
    pub cert_der: Option<Vec<u8>>,
    /// Quarantine, rate and concurrency state; "not evaluated" unless given.
    pub admission: GivenAdmission,
    /// The request body, where one is sent.
    pub body: Option<Vec<u8>>,
}

impl Default for ExplainRequest {
    fn default() -> Self {
        ExplainRequest {
            agent: String::new(),
            method: "GET".into(),
            url: "/".into(),
            headers: Vec::new(),
            source_ip: IpAddr::from([127, 0, 0, 1]),
            unix_ms: 0,
            cert_der: None,
            admission: GivenAdmission::default(),
            body: None,
        }
    }
}

/// The decision and what made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// `None`: allowed.
    pub reason: Option<Reason>,
    /// In shadow mode a shadowable refusal is let through: `ALLOW (shadow mode ...)`.
    pub shadow: bool,
    pub roles: Vec<String>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub rule: Option<String>,
    pub why: String,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.reason.is_none() || self.shadow
    }

    /// `ok` or the reason, as the audit log and metrics spell it.
    pub fn reason_str(&self) -> &'static str {
        self.reason.map_or(ALLOWED, Reason::as_str)
    }

    /// The status `serve` answers before any upstream is involved (200 standing for the
    /// upstream's own answer).
    pub fn status(&self) -> StatusCode {
        match self.reason {
            Some(r) if !self.shadow => r.status(),
            _ => StatusCode::OK,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let verdict = match self.reason {
            None => "ALLOW".to_string(),
            Some(r) if self.shadow => {
                format!("ALLOW (shadow mode; enforce would DENY {})", r.as_str())
            }
            Some(r) => format!("DENY {} ({})", r.as_str(), r.status().as_u16()),
        };
        let layer = self.reason.map_or("rules", Reason::layer);
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let roles = if self.roles.is_empty() {
            "-".into()
        } else {
            self.roles.join(", ")
        };
        let _ = writeln!(s, "{verdict}");
        let _ = writeln!(s, "  layer:    {layer}");
        let _ = writeln!(s, "  roles:    {roles}");
        let _ = writeln!(s, "  route:    {}", dash(&self.route));
        let _ = writeln!(s, "  upstream: {}", dash(&self.upstream));
        let _ = writeln!(s, "  rule:     {}", dash(&self.rule));
        let _ = writeln!(s, "  why:      {}", self.why);
        s
    }
}

/// Input that cannot be explained (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The head `serve` would have received.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

fn parse_head(snap: &Snapshot, req: &ExplainRequest) -> Result<Head, BadInput> {
    // Not upper-cased: `delete` is what the agent sent, and the decision refuses it as serve does.
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| BadInput(format!("invalid method `{}`", req.method)))?;
    let uri: Uri = req
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
    // A client sending a body says how long it is.
    if let Some(body) = &req.body {
        if !headers.contains_key(http::header::CONTENT_LENGTH)
            && !headers.contains_key(http::header::TRANSFER_ENCODING)
        {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }
    // An origin-form target without Host: the agent addressed warden by its listen address, as
    // `curl https://127.0.0.1:8443/...` does.
    if uri.authority().is_none() && !headers.contains_key(http::header::HOST) {
        let host = match snap.listen.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(http::header::HOST, v);
        }
    }
    Ok(Head {
        method,
        uri,
        headers,
    })
}

/// Explains `req` against `snap`.
pub async fn explain(snap: &Snapshot, req: &ExplainRequest) -> Result<Explanation, BadInput> {
    let head = parse_head(snap, req)?;
    let claimed = AgentId::parse(&req.agent);
    let from_cert = req.cert_der.as_ref().map(|der| {
        peer_cert(der, &snap.trust_domain)
            .map(|p| p.agent_id)
            .map_err(|e| e.to_string())
    });
    if let (Some(Ok(cert_id)), Ok(claimed)) = (&from_cert, &claimed) {
        if cert_id != claimed {
            return Err(BadInput(format!(
                "--agent {claimed} but the certificate names {cert_id}"
            )));
        }
    }
    let tp = req.cert_der.as_deref().map(thumbprint);
    let claimed_why;
    let caller = match (&from_cert, &claimed) {
        (Some(Ok(id)), _) => Caller::Agent {
            id,
            thumbprint: tp.as_ref(),
        },
        (Some(Err(why)), _) => Caller::NoIdentity(why),
        (None, Ok(id)) => Caller::Agent {
            id,
            thumbprint: None,
        },
        (None, Err(e)) => {
            claimed_why = format!("`{}` is not a SPIFFE ID: {e}", req.agent);
            Caller::NoIdentity(&claimed_why)
        }
    };
    let parts = RequestParts {
        method: &head.method,
        uri: &head.uri,
        version: Version::HTTP_11,
        headers: &head.headers,
        has_body: req.body.as_ref().is_some_and(|b| !b.is_empty()),
        source_ip: req.source_ip,
        now_ms: req.unix_ms,
    };
    let mut admission = req.admission;
    // The body is judged exactly as serve judges it: on an agent-protocol route it is the message.
    let mut body = GivenBody(req.body.clone().map(bytes::Bytes::from));
    let decided = decide(snap, &caller, &mut admission, &parts, &mut body).await;
    Ok(describe(snap, &head, decided))
}

fn describe(snap: &Snapshot, head: &Head, decided: Result<Permit, Refusal>) -> Explanation {
    let (reason, shadow, detail, trace) = match &decided {
        Ok(p) => (p.shadowed(), p.shadowed().is_some(), None, p.trace()),
        Err(r) => (
            Some(r.reason),
            false,
            r.detail.as_deref().map(String::from),
            &r.trace,
        ),
    };
    let path = match &decided {
        Ok(p) => p.target().target.path().to_owned(),
        Err(r) => r.trace.shaped.as_ref().map_or_else(
            || head.uri.path().to_string(),
            |s| s.target.path().to_owned(),
        ),
    };
    let mut ex = Explanation {
        reason,
        shadow,
        roles: trace
            .agent_entry
            .and_then(|e| snap.agents.get(e))
            .map(|a| a.role_names.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default(),
        route: trace.route.map(|r| format!("routes[{r}]")),
        upstream: trace
            .upstream
            .and_then(|u| snap.upstream(u))
            .map(|u| u.name.to_string()),
        rule: match trace.pinned_tool() {
            Some(tool) => Some(format!("pin/{tool}")),
            None => trace.rule.as_ref().map(|r| snap.rule_label(r)),
        },
        why: String::new(),
    };
    let target = format!("{} {path}", head.method);
    let why = detail.unwrap_or_else(|| why(snap, &ex, trace, &target));
    ex.why = format!("{why}. ({})", notes(snap, trace).join("; "));
    ex
}

fn why(snap: &Snapshot, ex: &Explanation, trace: &Trace, target: &str) -> String {
    let up = ex.upstream.clone().unwrap_or_default();
    let rule = ex.rule.as_deref().unwrap_or("?");
    let roles = ex.roles.join(", ");
    match ex.reason {
        None => format!("{rule} allows {target} on upstream {up}"),
        Some(Reason::NoRoute) => {
            let host = trace.shaped.as_ref().and_then(|s| s.host.clone());
            format!(
                "no route matches host {:?} and {target}",
                host.as_deref().unwrap_or("-")
            )
        }
        Some(Reason::Segmentation) => {
            format!("upstream {up} is outside the upstreams of roles [{roles}]")
        }
        Some(Reason::Denied) => {
            format!("{rule} denies {target} (a matching deny wins over every allow)")
        }
        Some(Reason::NoMatchingRule) => {
            let mut w = format!(
                "no allow rule of roles [{roles}] matches {target} on upstream {up} (default deny)"
            );
            if let Some(&(r, unmet)) = trace.near_miss.as_deref() {
                let _ = write!(
                    w,
                    "; closest: {} matches method and path but {}",
                    snap.rule_label(&r),
                    unmet.as_str()
                );
            }
            w
        }
        Some(Reason::Quarantined) => "the agent is quarantined (given as state)".into(),
        Some(Reason::RateLimited) => "the agent is over its rate limit (given as state)".into(),
        Some(Reason::ConcurrencyLimited) => {
            "the agent has too many requests in flight (given as state)".into()
        }
        Some(other) => other.as_str().to_string(),
    }
}

fn notes(snap: &Snapshot, trace: &Trace) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(a) = trace.agent_entry.and_then(|e| snap.agents.get(e)) {
        notes.push(format!("agent matched agents[{}] `{}`", a.entry, a.id));
    }
    if trace.binding_unchecked {
        notes.push("token valid; its certificate binding is not checked without --cert".into());
    }
    if let Some(rpc) = &trace.rpc {
        let mut m = format!(
            "message {}",
            if rpc.method.is_empty() {
                "(a response)"
            } else {
                &rpc.method
            }
        );
        if let Some(t) = &rpc.target {
            let _ = write!(m, " `{t}`");
        }
        let _ = write!(m, ", id {}", rpc.id.as_deref().unwrap_or("none"));
        if let Some(a) = &rpc.args_sha256 {
            let _ = write!(m, ", args_sha256 {a}");
        }
        notes.push(m);
    }
    if trace.rpc_state_not_evaluated {
        notes.push(
            "session binding, task ownership and tool pins depend on live state and are not evaluated here"
                .into(),
        );
    }
    if trace.admission_not_evaluated {
        notes.push(
            "quarantine and rate limits depend on live state and are not evaluated here".into(),
        );
    }
    if notes.is_empty() {
        notes.push("decided before the agent's entry was found".into());
    }
    notes
}
