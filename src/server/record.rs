//! The record step: once a request is over (its response body finished or dropped), count it in
//! the metrics, the agent's counters, the audit log and the behaviour baseline.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use tokio::time::Instant;

use super::conn_info::ConnInfo;
use super::runtime::Runtime;
use crate::admit::InFlightSlot;
use crate::agents::AgentState;
use crate::anomaly::{AnomalyAction, Observation, ObservationContext};
use crate::clock::UtcMoment;
use crate::decision::{Reason, RuleRef, Verdict, ALLOWED};
use crate::forward::body::OnEnd;
use crate::identity::agent_id::PeerCert;
use crate::ids::{AgentId, RequestId, RouteId, UpstreamId};
use crate::pipeline::{Permit, Refusal, Trace};
use crate::protocol::{Protocol, RpcSummary};
use crate::snapshot::Snapshot;
use crate::telemetry::audit::{
    AuditDecision, AuditRecord, RecordKind, SignalDetail, TryRecordError,
};
use crate::telemetry::metrics::Metrics;

/// What is known about a request by the time it is decided.
pub struct RequestRecord {
    pub rt: Arc<Runtime>,
    pub snap: Arc<Snapshot>,
    pub request_id: RequestId,
    pub started: Instant,
    /// Wall-clock start, Unix ms: the time the decision judged.
    pub started_ms: i64,
    pub source_ip: IpAddr,
    /// `None` for a request whose head hyper could not read.
    pub method: Option<http::Method>,
    pub host: Option<String>,
    pub path: String,
    pub agent_id: Option<AgentId>,
    pub agent: Option<Arc<AgentState>>,
    /// The verified client certificate's facts (serial, for the clone signal).
    pub peer: Option<Arc<PeerCert>>,
    /// The agent entry's role names, for the audit record.
    pub role_list: Option<Arc<[Arc<str>]>>,
    /// The agent entry's anomaly peer group.
    pub peer_group: Option<Arc<str>>,
    pub route: Option<RouteId>,
    pub upstream: Option<UpstreamId>,
    pub rule: Option<RuleRef>,
    pub verdict: Verdict,
    /// `None` for an allowed request.
    pub reason: Option<Reason>,
    pub status: u16,
    pub bytes_in: Arc<AtomicU64>,
    /// When the upstream answered with a response head.
    pub upstream_elapsed: Option<std::time::Duration>,
    pub anomaly_score: f64,
    /// Whether the anomaly engine scored this request (its gauge is then updated).
    pub anomaly_updated: bool,
    pub signals: Vec<Cow<'static, str>>,
    /// The same, in words (`signal_details` in the audit record).
    pub signal_details: Vec<SignalDetail>,
    /// The agent's in-flight slot, freed when the request ends.
    pub in_flight: Option<InFlightSlot>,
    /// The agent protocol of the route (MCP, A2A), if any.
    pub protocol: Option<Protocol>,
    /// The JSON-RPC message judged, on an agent-protocol route.
    pub rpc: Option<Box<RpcSummary>>,
    /// A tool refused because its definition changed since it was pinned.
    pub pinned_tool: Option<Box<str>>,
    /// What the answer showed: set while its body streams.
    pub rpc_seen: Option<Arc<RpcSeen>>,
}

/// What an agent-protocol answer showed, noted while its body streams.
#[derive(Debug, Default)]
pub struct RpcSeen {
    /// A listed tool's definition differs from its pin (the `tool_changed` signal).
    pub tool_changed: std::sync::atomic::AtomicBool,
}

impl RequestRecord {
    pub fn new(
        rt: &Arc<Runtime>,
        snap: &Arc<Snapshot>,
        conn: &ConnInfo,
        req: &http::Request<Incoming>,
    ) -> Self {
        let method = Some(req.method().clone());
        Self::begun(rt, snap, conn, method, req.uri().path().to_string())
    }

    /// A request hyper refused before warden saw its head (broken framing, an oversized head):
    /// what its connection knows — the agent the handshake named.
    pub fn unparsed(rt: &Arc<Runtime>, snap: &Arc<Snapshot>, conn: &ConnInfo) -> Self {
        let mut rec = Self::begun(rt, snap, conn, None, String::new());
        if let Ok(peer) = conn.identity(&snap.trust_domain) {
            if let Some(entry) = snap.agent_index.lookup(&peer.agent_id) {
                let policy = snap.agents.get(entry);
                rec.role_list = policy.map(|a| a.role_names.clone());
                rec.peer_group = policy.and_then(|a| a.peer_group.clone());
                rec.agent = Some(conn.agent_state(rt, &peer.agent_id));
            }
            rec.agent_id = Some(peer.agent_id.clone());
            rec.peer = Some(peer);
        }
        rec
    }

    fn begun(
        rt: &Arc<Runtime>,
        snap: &Arc<Snapshot>,
        conn: &ConnInfo,
        method: Option<http::Method>,
        path: String,
    ) -> Self {
        RequestRecord {
            request_id: rt.ids.next(),
            started: Instant::now(),
            started_ms: rt.clock.now_unix_ms(),
            source_ip: conn.peer.ip(),
            method,
            host: None,
            path,
            agent_id: None,
            agent: None,
            peer: None,
            role_list: None,
            peer_group: None,
            route: None,
            upstream: None,
            rule: None,
            verdict: Verdict::Allow,
            reason: None,
            status: 0,
            bytes_in: Arc::new(AtomicU64::new(0)),
            upstream_elapsed: None,
            anomaly_score: 0.0,
            anomaly_updated: false,
            signals: Vec::new(),
            signal_details: Vec::new(),
            in_flight: None,
            protocol: None,
            rpc: None,
            pinned_tool: None,
            rpc_seen: None,
            rt: rt.clone(),
            snap: snap.clone(),
        }
    }

    fn traced(&mut self, trace: &Trace) {
        let policy = trace.agent_entry.and_then(|e| self.snap.agents.get(e));
        self.role_list = policy.map(|a| a.role_names.clone());
        self.peer_group = policy.and_then(|a| a.peer_group.clone());
        self.route = trace.route;
        self.upstream = trace.upstream;
        self.rule = trace.rule;
        self.protocol = trace.protocol;
        self.rpc.clone_from(&trace.rpc);
        self.pinned_tool = trace.pinned_tool().map(Into::into);
        if let Some(shaped) = &trace.shaped {
            self.host.clone_from(&shaped.host);
            self.path.clear();
            self.path.push_str(shaped.target.path());
        }
    }

    /// What the decision allowed (or shadow mode let through).
    pub fn permitted(&mut self, permit: &Permit) {
        self.traced(permit.trace());
        let target = permit.target();
        self.host.clone_from(&target.host);
        self.path.clear();
        self.path.push_str(target.target.path());
        if let Some(reason) = permit.shadowed() {
            self.verdict = Verdict::ShadowDeny;
            self.reason = Some(reason);
        }
    }

    /// What the decision (or the upstream, after it) refused.
    pub fn refused(&mut self, refusal: &Refusal) {
        self.traced(&refusal.trace);
        self.verdict = Verdict::Deny;
        self.reason = Some(refusal.reason);
        self.status = refusal.reason.status().as_u16();
    }

    fn reason_str(&self) -> &'static str {
        self.reason.map_or(ALLOWED, Reason::as_str)
    }

    fn upstream_name(&self) -> &str {
        self.upstream
            .and_then(|u| self.snap.upstream(u))
            .map(|u| u.name.as_ref())
            .unwrap_or("")
    }

    /// `role/allow[N]` when a rule decided, `pin/<tool>` when a tool pin did.
    pub fn rule_label(&self) -> Option<String> {
        if let Some(tool) = &self.pinned_tool {
            return Some(format!("pin/{tool}"));
        }
        self.rule.as_ref().map(|r| self.snap.rule_label(r))
    }

    /// The tool an MCP `tools/call` names, for the engine's tool signals.
    fn called_tool(&self) -> Option<&str> {
        let rpc = self.rpc.as_ref()?;
        (&*rpc.method == "tools/call").then_some(rpc.target.as_deref())?
    }

    /// What the anomaly engine's MCP signals read: the JSON-RPC method and the tool, resource or
    /// prompt it names (task ids are not targets: they are new for every task).
    pub fn rpc_observed(&self) -> (Option<&str>, Option<&str>) {
        let Some(rpc) = &self.rpc else {
            return (None, None);
        };
        let target = match &*rpc.method {
            "tools/call" | "resources/read" | "prompts/get" => rpc.target.as_deref(),
            _ => None,
        };
        let method = (!rpc.method.is_empty()).then_some(&*rpc.method);
        (method, target)
    }
}

impl RequestRecord {
    fn audit_record(
        &self,
        elapsed: std::time::Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) -> AuditRecord {
        let now_ms = self.rt.clock.now_unix_ms();
        AuditRecord {
            ts: crate::clock::utc_datetime(now_ms),
            kind: RecordKind::Request,
            request_id: self.request_id.to_string(),
            agent: self.agent_id.as_ref().map(|a| a.as_arc().clone()),
            roles: self
                .role_list
                .clone()
                .unwrap_or_else(|| Arc::from(Vec::new())),
            source_ip: self.source_ip,
            method: self
                .method
                .as_ref()
                .map(|m| match Metrics::method_label(m) {
                    "OTHER" => Cow::Owned(m.as_str().to_string()),
                    label => Cow::Borrowed(label),
                }),
            host: self.host.clone(),
            path: Some(self.path.clone()),
            route: self.route.map(RouteId::index),
            upstream: self
                .upstream
                .and_then(|u| self.snap.upstream(u))
                .map(|u| u.name.clone()),
            rule: self.rule_label().map(Arc::from),
            decision: match self.verdict {
                Verdict::Allow => AuditDecision::Allow,
                Verdict::Deny => AuditDecision::Deny,
                Verdict::ShadowDeny => AuditDecision::ShadowDeny,
            },
            reason: Cow::Borrowed(self.reason_str()),
            status: Some(self.status),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            anomaly_score: self.anomaly_score,
            signals: self.audit_signals(),
            signal_details: self.signal_details.clone(),
            close_reason: None,
            rpc_method: self.rpc.as_ref().map(|r| r.method.clone()),
            rpc_target: self.rpc.as_ref().and_then(|r| r.target.clone()),
            rpc_id: self.rpc.as_ref().and_then(|r| r.id.clone()),
            args_sha256: self.rpc.as_ref().and_then(|r| r.args_sha256.clone()),
        }
    }

    /// The anomaly engine's signals, and `tool_changed` when a listed tool left its pin.
    fn audit_signals(&self) -> Vec<Cow<'static, str>> {
        let mut signals = self.signals.clone();
        if self
            .rpc_seen
            .as_ref()
            .is_some_and(|s| s.tool_changed.load(Ordering::Relaxed))
        {
            signals.push(Cow::Borrowed("tool_changed"));
        }
        signals
    }
}

impl RequestRecord {
    /// Feeds the agent's behaviour baseline; quarantines it when the score says so.
    fn observe_behaviour(&mut self, bytes_in: u64, bytes_out: u64) {
        let (Some(agent), Some(peer), Some(method)) = (&self.agent, &self.peer, &self.method)
        else {
            return;
        };
        // A quarantined agent's refused requests say nothing new about it: they neither teach
        // its baseline nor score.
        if !self.snap.anomaly.enabled || self.reason == Some(Reason::Quarantined) {
            return;
        }
        let now_ms = self.rt.clock.now_unix_ms();
        let obs = Observation {
            upstream: self.upstream_name(),
            method: method.as_str(),
            path: &self.path,
            status: self.status,
            denied: self.verdict != Verdict::Allow,
            bytes_in,
            bytes_out,
            source_ip: crate::net::canonical_ip(self.source_ip),
            cert_serial: &peer.serial_hex,
            now: self.rt.mono(),
            hour_of_week: UtcMoment::from_unix_ms(now_ms).hour_of_week(),
        };
        let group = self.peer_group.as_ref().map(|k| self.rt.peer_groups.get(k));
        let ctx = ObservationContext {
            tool: self.called_tool(),
            peers: group.as_ref(),
        };
        let scored = observe(&self.rt, &self.snap, agent, &obs, &ctx);
        self.anomaly_score = scored.score;
        self.anomaly_updated = true;
        if !scored.signals.is_empty() {
            self.signals = scored.signals;
            self.signal_details = scored.details;
        }
    }
}

/// What the engine said about one exchange, as the audit record and the logs show it.
pub(super) struct Scored {
    pub score: f64,
    pub signals: Vec<Cow<'static, str>>,
    /// Empty unless signals fired: words are only made then.
    pub details: Vec<SignalDetail>,
}

/// Feeds one finished exchange (a request, a tunnel) to its agent's behaviour baseline, and
/// applies `anomaly.action` when the score is over the threshold. The score and its strongest
/// signals.
pub(super) fn observe(
    rt: &Runtime,
    snap: &Snapshot,
    agent: &AgentState,
    obs: &Observation<'_>,
    ctx: &ObservationContext<'_>,
) -> Scored {
    let settings = &snap.anomaly;
    let score = agent.behaviour.observe_with(obs, ctx, settings);
    let signals: Vec<Cow<'static, str>> = score
        .top
        .iter()
        .map(|s| Cow::Borrowed(s.kind.as_str()))
        .collect();
    let details: Vec<SignalDetail> = score
        .top
        .iter()
        .map(|s| SignalDetail {
            signal: s.kind.as_str(),
            detail: s.detail(),
            subject: (!s.subject.is_empty()).then(|| s.subject.to_string()),
        })
        .collect();
    if settings.exceeded_by(score.value) {
        let now_ms = rt.clock.now_unix_ms();
        match settings.action {
            AnomalyAction::Quarantine if !agent.is_quarantined(now_ms) => {
                let until = now_ms.saturating_add(settings.quarantine_for.as_millis() as i64);
                // Here and on every replica of the fleet.
                rt.quarantine(&agent.id, until);
                tracing::warn!(agent = %agent.id, score = score.value, ?signals, details = ?details, "agent quarantined: anomaly score over threshold");
            }
            AnomalyAction::Quarantine => {}
            AnomalyAction::Alert => {
                tracing::warn!(agent = %agent.id, score = score.value, ?signals, details = ?details, "anomaly score over threshold");
            }
        }
    }
    Scored {
        score: score.value,
        signals,
        details,
    }
}

fn no_upstream() -> &'static Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from(""))
}

impl RequestRecord {
    fn record_metrics(&self, elapsed: std::time::Duration, bytes_in: u64, bytes_out: u64) {
        let m: &Metrics = &self.rt.metrics;
        let upstream = self
            .upstream
            .and_then(|u| self.snap.upstream(u))
            .map_or(no_upstream(), |u| &u.name);
        let labels = [
            self.method.as_ref().map_or("OTHER", Metrics::method_label),
            self.verdict.as_str(),
            self.reason_str(),
            Metrics::status_class(self.status),
        ];
        match &self.agent {
            Some(a) => {
                // Resolved once per agent: a request then touches only atomics here.
                let am = a.metrics.get_or_init(|| m.agent_metrics(&a.metric_label));
                am.count_request(m, upstream, labels);
                am.bytes_in.inc_by(bytes_in);
                am.bytes_out.inc_by(bytes_out);
                if let Some(score) = self.anomaly_updated.then_some(self.anomaly_score) {
                    am.anomaly_score.set(score);
                }
            }
            None => {
                let agent = if self.agent_id.is_some() {
                    "__unknown__"
                } else {
                    ""
                };
                let [method, decision, reason, class] = labels;
                m.requests
                    .with_label_values(&[agent, upstream, method, decision, reason, class])
                    .inc();
            }
        }
        if let (Some(_), Some(rpc)) = (self.protocol, &self.rpc) {
            let agent = self.agent.as_ref().map_or("", |a| a.metric_label.as_ref());
            let target = self.rpc_observed().1.map(|t| m.target_label(t));
            m.mcp_calls
                .with_label_values(&[
                    agent,
                    upstream,
                    Metrics::rpc_method_label(&rpc.method),
                    target.as_deref().unwrap_or(""),
                    self.verdict.as_str(),
                ])
                .inc();
        }
        m.request_duration
            .with_label_values(&[upstream, self.verdict.as_str()])
            .observe(elapsed.as_secs_f64());
        if let Some(d) = self.upstream_elapsed {
            m.upstream_duration
                .with_label_values(&[upstream])
                .observe(d.as_secs_f64());
        }
    }
}

impl OnEnd for RequestRecord {
    fn finish(mut self: Box<Self>, bytes_out: u64, _completed: bool) {
        let elapsed = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.observe_behaviour(bytes_in, bytes_out);
        self.record_metrics(elapsed, bytes_in, bytes_out);
        if let Some(a) = &self.agent {
            a.requests.fetch_add(1, Ordering::Relaxed);
            if self.verdict != Verdict::Allow {
                a.denials.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(audit) = &self.rt.audit {
            let rec = self.audit_record(elapsed, bytes_in, bytes_out);
            if let Err(TryRecordError::Full(rec)) = audit.try_record(rec) {
                // The request already waited for room before it started; a record that still
                // finds the queue full is handed to a task that waits, never dropped.
                let audit = audit.clone();
                tokio::spawn(async move { audit.record(*rec).await });
            }
        }
        tracing::debug!(
            target: crate::telemetry::logging::REQUEST_TARGET,
            request_id = %self.request_id,
            agent = self.agent_id.as_ref().map_or("", AgentId::as_str),
            method = self.method.as_ref().map_or("", http::Method::as_str),
            path = %self.path,
            upstream = self.upstream_name(),
            rule = self.rule_label().as_deref().unwrap_or(""),
            rpc_method = self.rpc.as_ref().map_or("", |r| &*r.method),
            rpc_target = self.rpc.as_ref().and_then(|r| r.target.as_deref()).unwrap_or(""),
            decision = self.verdict.as_str(),
            reason = self.reason_str(),
            status = self.status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            "request"
        );
    }
}
