//! The record step: once a request is over (its response body finished or dropped), count it in
//! the metrics, the agent's counters, the audit log and the behaviour baseline.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::borrow::Cow;

use tokio::time::Instant;

use super::body::OnEnd;
use super::runtime::Runtime;
use crate::admit::AgentState;
use crate::anomaly::Observation;
use crate::clock::UtcMoment;
use crate::config::compile::Snapshot;
use crate::config::schema::AnomalyAction;
use crate::decision::{Reason, RuleRef, Verdict};
use crate::identity::agent_id::PeerCert;
use crate::telemetry::audit::{AuditDecision, AuditRecord, RecordKind, TryRecordError};
use crate::telemetry::metrics::Metrics;

/// What is known about a request by the time it is decided.
pub struct RequestRecord {
    pub rt: Arc<Runtime>,
    pub snap: Arc<Snapshot>,
    pub request_id: String,
    pub started: Instant,
    pub source_ip: IpAddr,
    pub method: http::Method,
    pub host: Option<String>,
    pub path: String,
    pub agent_id: Option<Arc<str>>,
    pub agent: Option<Arc<AgentState>>,
    /// The verified client certificate's facts (serial, for the clone signal).
    pub peer: Option<Arc<PeerCert>>,
    pub roles: Option<Arc<str>>,
    /// The agent entry's role names, for the audit record.
    pub role_list: Option<Arc<[Arc<str>]>>,
    pub route: Option<usize>,
    pub upstream: Option<usize>,
    pub rule: Option<RuleRef>,
    pub verdict: Verdict,
    pub reason: Reason,
    pub status: u16,
    pub bytes_in: Arc<AtomicU64>,
    /// When the upstream answered with a response head.
    pub upstream_elapsed: Option<std::time::Duration>,
    pub anomaly_score: f64,
    /// Whether the anomaly engine scored this request (its gauge is then updated).
    pub anomaly_updated: bool,
    pub signals: Vec<Cow<'static, str>>,
}

impl RequestRecord {
    fn upstream_name(&self) -> &str {
        self.upstream
            .and_then(|u| self.snap.upstreams.get(u))
            .map(|u| u.name.as_ref())
            .unwrap_or("")
    }

    /// `role/allow[N]`, when a rule decided.
    pub fn rule_label(&self) -> Option<String> {
        self.rule
            .as_ref()
            .map(|r| crate::authz::decide::rule_label(&self.snap, r))
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
            request_id: self.request_id.clone(),
            agent: self.agent_id.clone(),
            roles: self
                .role_list
                .clone()
                .unwrap_or_else(|| Arc::from(Vec::new())),
            source_ip: self.source_ip,
            method: Some(match Metrics::method_label(&self.method) {
                "OTHER" => Cow::Owned(self.method.as_str().to_string()),
                m => Cow::Borrowed(m),
            }),
            host: self.host.clone(),
            path: Some(self.path.clone()),
            route: self.route,
            upstream: self
                .upstream
                .and_then(|u| self.snap.upstreams.get(u))
                .map(|u| u.name.clone()),
            rule: self.rule_label().map(Arc::from),
            decision: match self.verdict {
                Verdict::Allow => AuditDecision::Allow,
                Verdict::Deny => AuditDecision::Deny,
                Verdict::ShadowDeny => AuditDecision::ShadowDeny,
            },
            reason: Cow::Borrowed(self.reason.as_str()),
            status: Some(self.status),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            anomaly_score: self.anomaly_score,
            signals: self.signals.clone(),
        }
    }
}

impl RequestRecord {
    /// Feeds the agent's behaviour baseline; quarantines it when the score says so.
    fn observe_behaviour(&mut self, bytes_in: u64, bytes_out: u64) {
        let (Some(agent), Some(peer)) = (self.agent.clone(), self.peer.clone()) else {
            return;
        };
        let settings = &self.snap.anomaly;
        // A quarantined agent's refused requests say nothing new about it: they neither teach
        // its baseline nor score.
        if !settings.enabled || self.reason == Reason::Quarantined {
            return;
        }
        let now_ms = self.rt.clock.now_unix_ms();
        let obs = Observation {
            upstream: self.upstream_name(),
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            denied: self.verdict != Verdict::Allow,
            bytes_in,
            bytes_out,
            source_ip: crate::authz::when::canonical_ip(self.source_ip),
            cert_serial: &peer.serial_hex,
            now: self.rt.mono(),
            hour_of_week: UtcMoment::from_unix_ms(now_ms).hour_of_week(),
        };
        let score = agent.behaviour.observe(&obs, settings);
        self.anomaly_score = score.value;
        self.anomaly_updated = true;
        if !score.top.is_empty() {
            self.signals = score
                .top
                .iter()
                .map(|s| Cow::Borrowed(s.kind.as_str()))
                .collect();
        }
        if settings.exceeded_by(score.value) {
            match settings.action {
                AnomalyAction::Quarantine if !agent.is_quarantined(now_ms) => {
                    let until = now_ms.saturating_add(settings.quarantine_for.as_millis() as i64);
                    agent.quarantine(until);
                    self.rt
                        .metrics
                        .quarantined
                        .with_label_values(&[&agent.metric_label])
                        .set(1);
                    tracing::warn!(agent = %agent.id, score = score.value, signals = ?self.signals, "agent quarantined: anomaly score over threshold");
                }
                AnomalyAction::Quarantine => {}
                AnomalyAction::Alert => {
                    tracing::warn!(agent = %agent.id, score = score.value, signals = ?self.signals, "anomaly score over threshold");
                }
            }
        }
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
            .and_then(|u| self.snap.upstreams.get(u))
            .map_or(no_upstream(), |u| &u.name);
        let labels = [
            Metrics::method_label(&self.method),
            self.verdict.as_str(),
            self.reason.as_str(),
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
            agent = self.agent_id.as_deref().unwrap_or(""),
            method = %self.method,
            path = %self.path,
            upstream = self.upstream_name(),
            rule = self.rule_label().as_deref().unwrap_or(""),
            decision = self.verdict.as_str(),
            reason = self.reason.as_str(),
            status = self.status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            "request"
        );
    }
}
