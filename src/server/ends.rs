//! The records of what ends without a request record of its own: a connection (`kind:
//! connection`, with its `close_reason`), a WebSocket tunnel (`kind: tunnel`: bytes both ways,
//! duration, `close_reason`, and one observation for the anomaly engine), and a request hyper
//! refused before warden saw its head (`kind: request`, 400 `bad_request` or 431
//! `headers_too_large`, counted in `warden_requests_total` like any refusal).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::conn_info::ConnInfo;
use super::record::{observe, RequestRecord, Scored};
use super::runtime::Runtime;
use crate::agents::{AgentState, CloseReason};
use crate::anomaly::{Observation, ObservationContext};
use crate::clock::UtcMoment;
use crate::decision::{Reason, Verdict, ALLOWED};
use crate::forward::body::OnEnd;
use crate::forward::tunnel::{TunnelEnd, TunnelStats};
use crate::identity::agent_id::PeerCert;
use crate::ids::{AgentId, RequestId, RouteId};
use crate::snapshot::Snapshot;
use crate::telemetry::audit::{AuditDecision, AuditRecord, RecordKind, TryRecordError};

/// Hands a record to the audit log; a full queue hands it to a task that waits, never drops it.
fn submit(rt: &Runtime, rec: AuditRecord) {
    if let Some(audit) = &rt.audit {
        if let Err(TryRecordError::Full(rec)) = audit.try_record(rec) {
            let audit = audit.clone();
            tokio::spawn(async move { audit.record(*rec).await });
        }
    }
}

/// Records the end of an agent connection.
pub fn record_connection_end(rt: &Runtime, info: &ConnInfo, reason: CloseReason, took: Duration) {
    if rt.audit.is_none() {
        return;
    }
    let snap = rt.config.snapshot();
    let ts = crate::clock::utc_datetime(rt.clock.now_unix_ms());
    let mut rec = AuditRecord::connection(ts, rt.ids.next().to_string(), info.peer.ip(), ALLOWED);
    rec.decision = AuditDecision::Allow;
    rec.agent = info
        .identity(&snap.trust_domain)
        .ok()
        .map(|p| p.agent_id.as_arc().clone());
    rec.duration_ms = took.as_secs_f64() * 1000.0;
    rec.bytes_in = info.io.bytes_read();
    rec.bytes_out = info.io.bytes_written();
    rec.close_reason = Some(reason.as_str());
    submit(rt, rec);
}

/// The answer hyper sent on its own for a request it could not read, if it sent one.
fn refused_by_hyper(err: &(dyn StdError + 'static)) -> Option<(u16, Reason)> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            // These are the parse errors hyper answers itself (see its `on_error`).
            let text = h.to_string();
            return if h.is_parse_too_large() && text.contains("URI") {
                Some((414, Reason::BadRequest))
            } else if h.is_parse_too_large() {
                Some((431, Reason::HeadersTooLarge))
            } else if h.is_parse() && !h.is_parse_version_h2() && !text.contains("internal") {
                Some((400, Reason::BadRequest))
            } else {
                None
            };
        }
        source = e.source();
    }
    None
}

/// Records a request hyper refused before calling the service, with the agent the handshake
/// named.
pub fn record_http_refusal(rt: &Arc<Runtime>, info: &ConnInfo, err: &(dyn StdError + 'static)) {
    let Some((status, reason)) = refused_by_hyper(err) else {
        return;
    };
    let snap = rt.config.snapshot();
    let mut rec = Box::new(RequestRecord::unparsed(rt, &snap, info));
    rec.verdict = Verdict::Deny;
    rec.reason = Some(reason);
    rec.status = status;
    tracing::info!(request_id = %rec.request_id, peer = %info.peer, status, "request refused by the HTTP parser: {err}");
    rec.finish(0, false);
}

/// What a tunnel's record needs of the request that opened it.
pub struct TunnelRecord {
    rt: Arc<Runtime>,
    snap: Arc<Snapshot>,
    request_id: RequestId,
    agent_id: Option<AgentId>,
    agent: Option<Arc<AgentState>>,
    peer: Option<Arc<PeerCert>>,
    roles: Option<Arc<[Arc<str>]>>,
    source_ip: IpAddr,
    host: Option<String>,
    path: String,
    route: Option<RouteId>,
    upstream: Option<Arc<str>>,
    rule: Option<Arc<str>>,
    verdict: Verdict,
    reason: Option<Reason>,
}

impl TunnelRecord {
    pub fn of(rec: &RequestRecord) -> Self {
        TunnelRecord {
            rt: rec.rt.clone(),
            snap: rec.snap.clone(),
            request_id: rec.request_id.clone(),
            agent_id: rec.agent_id.clone(),
            agent: rec.agent.clone(),
            peer: rec.peer.clone(),
            roles: rec.role_list.clone(),
            source_ip: rec.source_ip,
            host: rec.host.clone(),
            path: rec.path.clone(),
            route: rec.route,
            upstream: rec
                .upstream
                .and_then(|u| rec.snap.upstream(u))
                .map(|u| u.name.clone()),
            rule: rec.rule_label().map(Arc::from),
            verdict: rec.verdict,
            reason: rec.reason,
        }
    }

    /// One observation for the whole tunnel: its bytes both ways.
    fn observe(&self, stats: &TunnelStats) -> Scored {
        let nothing = || Scored {
            score: 0.0,
            signals: Vec::new(),
            details: Vec::new(),
        };
        let (Some(agent), Some(peer)) = (&self.agent, &self.peer) else {
            return nothing();
        };
        if !self.snap.anomaly.enabled {
            return nothing();
        }
        let obs = Observation {
            upstream: self.upstream.as_deref().unwrap_or(""),
            method: "GET",
            path: &self.path,
            status: 101,
            denied: self.verdict != Verdict::Allow,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            source_ip: crate::net::canonical_ip(self.source_ip),
            cert_serial: &peer.serial_hex,
            now: self.rt.mono(),
            hour_of_week: UtcMoment::from_unix_ms(self.rt.clock.now_unix_ms()).hour_of_week(),
        };
        let scored = observe(
            &self.rt,
            &self.snap,
            agent,
            &obs,
            &ObservationContext::default(),
        );
        if let Some(m) = agent.metrics.get() {
            m.anomaly_score.set(scored.score);
        }
        scored
    }

    fn audit_record(&self, stats: &TunnelStats, why: CloseReason, score: f64) -> AuditRecord {
        let ts = crate::clock::utc_datetime(self.rt.clock.now_unix_ms());
        let mut rec = AuditRecord::connection(ts, self.request_id.to_string(), self.source_ip, "");
        rec.kind = RecordKind::Tunnel;
        rec.agent = self.agent_id.as_ref().map(|a| a.as_arc().clone());
        rec.roles = self.roles.clone().unwrap_or_else(|| Arc::from(Vec::new()));
        rec.method = Some(Cow::Borrowed("GET"));
        rec.host = self.host.clone();
        rec.path = Some(self.path.clone());
        rec.route = self.route.map(RouteId::index);
        rec.upstream = self.upstream.clone();
        rec.rule = self.rule.clone();
        rec.decision = match self.verdict {
            Verdict::ShadowDeny => AuditDecision::ShadowDeny,
            _ => AuditDecision::Allow,
        };
        rec.reason = Cow::Borrowed(self.reason.map_or(ALLOWED, Reason::as_str));
        rec.status = Some(101);
        rec.duration_ms = stats.duration.as_secs_f64() * 1000.0;
        rec.bytes_in = stats.bytes_in;
        rec.bytes_out = stats.bytes_out;
        rec.anomaly_score = score;
        rec.close_reason = Some(why.as_str());
        rec
    }
}

impl TunnelEnd for TunnelRecord {
    fn finish(self: Box<Self>, stats: TunnelStats, reason: CloseReason) {
        let scored = self.observe(&stats);
        let mut rec = self.audit_record(&stats, reason, scored.score);
        rec.signals = scored.signals;
        rec.signal_details = scored.details;
        tracing::info!(
            request_id = %self.request_id,
            agent = self.agent_id.as_ref().map_or("", AgentId::as_str),
            path = %self.path,
            bytes_in = stats.bytes_in,
            bytes_out = stats.bytes_out,
            close_reason = reason.as_str(),
            "tunnel closed"
        );
        submit(&self.rt, rec);
    }
}
