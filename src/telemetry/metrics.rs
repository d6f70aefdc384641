//! Prometheus metrics on an explicit registry. Agent labels are bounded: past
//! `telemetry.max_agent_series` distinct agents, new agents share the label `__other__`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashSet;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::cert_expiry::CertExpiry;
use super::process::ProcessCollector;

pub const OTHER_AGENT: &str = "__other__";

/// Buckets from 100 µs to 120 s: a proxy's own latency is sub-millisecond, an upstream's
/// seconds, and an LLM-backed upstream's often half a minute to two.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub agent_bytes: IntCounterVec,
    pub anomaly_score: GaugeVec,
    pub quarantined: IntGaugeVec,
    pub tls_handshakes: IntCounterVec,
    pub active_connections: IntGauge,
    pub config_reloads: IntCounterVec,
    pub audit_records: IntCounter,
    pub connections_refused: IntCounter,
    /// `warden_certificate_expiry_timestamp_seconds{which, subject}`; see [`Metrics::set_certificate_expiry`].
    pub certificate_expiry: GaugeVec,
    /// `warden_upstream_connections{upstream, state}`, state `idle` or `busy`: set by the
    /// upstream pools.
    pub upstream_connections: IntGaugeVec,
    /// `warden_upstream_max_connections{upstream}`: each pool's `max_connections`, the
    /// denominator of the pool-saturation alert; set by the upstream pools.
    pub upstream_max_connections: IntGaugeVec,
    pub pending_handshakes: IntGauge,
    /// MCP and A2A messages judged: agent, upstream, method, target, decision.
    pub mcp_calls: IntCounterVec,
    /// Tool definitions seen changed since they were pinned, by upstream.
    pub mcp_tool_changes: IntCounterVec,
    series_agents: DashSet<Arc<str>>,
    series_targets: DashSet<Arc<str>>,
    series_count: AtomicUsize,
    max_agent_series: AtomicUsize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn int_gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    pub fn new(max_agent_series: usize) -> prometheus::Result<Self> {
        let r = Registry::new();
        let requests = counter_vec(
            &r,
            "warden_requests_total",
            "Requests decided, by agent, upstream, method, decision, reason and status class.",
            &[
                "agent",
                "upstream",
                "method",
                "decision",
                "reason",
                "status_class",
            ],
        )?;
        let request_duration = histogram_vec(
            &r,
            "warden_request_duration_seconds",
            "Time from request head to the end of the response, seconds.",
            &["upstream", "decision"],
        )?;
        let upstream_duration = histogram_vec(
            &r,
            "warden_upstream_duration_seconds",
            "Time the upstream took to answer with a response head, seconds.",
            &["upstream"],
        )?;
        let agent_bytes = counter_vec(
            &r,
            "warden_agent_bytes_total",
            "Body bytes from (in) and to (out) each agent.",
            &["agent", "direction"],
        )?;
        let anomaly_score = GaugeVec::new(
            Opts::new(
                "warden_agent_anomaly_score",
                "Current anomaly score of each agent, 0 to 1.",
            ),
            &["agent"],
        )?;
        r.register(Box::new(anomaly_score.clone()))?;
        let quarantined = IntGaugeVec::new(
            Opts::new(
                "warden_agent_quarantined",
                "1 while the agent is quarantined.",
            ),
            &["agent"],
        )?;
        r.register(Box::new(quarantined.clone()))?;
        let tls_handshakes = counter_vec(
            &r,
            "warden_tls_handshakes_total",
            "TLS handshakes on the agent listener, by result and failure reason.",
            &["result", "reason"],
        )?;
        let active_connections =
            IntGauge::new("warden_active_connections", "Open agent connections.")?;
        r.register(Box::new(active_connections.clone()))?;
        let config_reloads = counter_vec(
            &r,
            "warden_config_reloads_total",
            "Config reloads, by result.",
            &["result"],
        )?;
        let audit_records =
            IntCounter::new("warden_audit_records_total", "Audit records written.")?;
        r.register(Box::new(audit_records.clone()))?;
        let connections_refused = IntCounter::new(
            "warden_connections_refused_total",
            "Connections closed at accept because max_connections was reached.",
        )?;
        r.register(Box::new(connections_refused.clone()))?;
        let build_info = int_gauge_vec(
            &r,
            "warden_build_info",
            "Always 1; the version label says which warden this is.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let certificate_expiry = gauge_vec(
            &r,
            "warden_certificate_expiry_timestamp_seconds",
            "Not-after of the server certificate and of each client CA, and next update of each CRL, in Unix seconds.",
            &["which", "subject"],
        )?;
        let upstream_connections = int_gauge_vec(
            &r,
            "warden_upstream_connections",
            "Pooled connections to each upstream, idle or busy.",
            &["upstream", "state"],
        )?;
        let upstream_max_connections = int_gauge_vec(
            &r,
            "warden_upstream_max_connections",
            "The max_connections of each upstream's pool.",
            &["upstream"],
        )?;
        r.register(Box::new(ProcessCollector::new()?))?;
        let pending_handshakes = IntGauge::new(
            "warden_pending_handshakes",
            "Agent-listener sockets in their TLS handshake (limits.max_pending_handshakes).",
        )?;
        r.register(Box::new(pending_handshakes.clone()))?;
        let mcp_calls = counter_vec(
            &r,
            "warden_mcp_calls_total",
            "MCP and A2A messages judged, by agent, upstream, JSON-RPC method, target (tool, resource or prompt; bounded) and decision.",
            &["agent", "upstream", "method", "target", "decision"],
        )?;
        let mcp_tool_changes = counter_vec(
            &r,
            "warden_mcp_tool_changes_total",
            "Tool definitions listed by an upstream that differ from their pin, by upstream.",
            &["upstream"],
        )?;
        // Series that exist from the start, so dashboards and alerts see zeros, not gaps.
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        tls_handshakes.with_label_values(&["ok", "ok"]);
        Ok(Metrics {
            registry: r,
            requests,
            request_duration,
            upstream_duration,
            agent_bytes,
            anomaly_score,
            quarantined,
            tls_handshakes,
            active_connections,
            config_reloads,
            audit_records,
            connections_refused,
            certificate_expiry,
            upstream_connections,
            upstream_max_connections,
            pending_handshakes,
            mcp_calls,
            mcp_tool_changes,
            series_agents: DashSet::new(),
            series_targets: DashSet::new(),
            series_count: AtomicUsize::new(0),
            max_agent_series: AtomicUsize::new(max_agent_series.max(1)),
        })
    }

    /// Replaces every `warden_certificate_expiry_timestamp_seconds` series, so a certificate
    /// that left the config leaves the metric too.
    pub fn set_certificate_expiry(&self, dates: &[CertExpiry]) {
        self.certificate_expiry.reset();
        for d in dates {
            self.certificate_expiry
                .with_label_values(&[d.which, &d.subject])
                .set(d.timestamp as f64);
        }
    }

    pub fn set_max_agent_series(&self, n: usize) {
        self.max_agent_series.store(n.max(1), Ordering::Relaxed);
    }

    /// The label an agent's series use: its id while under the cap, else `__other__`. Called once
    /// per agent (the result is kept in its runtime state), not per request.
    pub fn agent_label(&self, agent: &str) -> Arc<str> {
        if let Some(a) = self.series_agents.get(agent) {
            return a.clone();
        }
        let max = self.max_agent_series.load(Ordering::Relaxed);
        if self.series_count.fetch_add(1, Ordering::Relaxed) >= max {
            self.series_count.fetch_sub(1, Ordering::Relaxed);
            return OTHER_AGENT.into();
        }
        let id: Arc<str> = agent.into();
        if !self.series_agents.insert(id.clone()) {
            self.series_count.fetch_sub(1, Ordering::Relaxed);
        }
        id
    }

    /// The `target` label of an MCP call: the name while fewer than `telemetry.max_agent_series`
    /// distinct targets have been labelled, else `__other__` (an agent may name anything).
    pub fn target_label(&self, target: &str) -> Arc<str> {
        if let Some(t) = self.series_targets.get(target) {
            return t.clone();
        }
        if self.series_targets.len() >= self.max_agent_series.load(Ordering::Relaxed) {
            return OTHER_AGENT.into();
        }
        let t: Arc<str> = target.into();
        self.series_targets.insert(t.clone());
        t
    }

    /// The `method` label of a JSON-RPC message: a method of MCP or A2A, else `__other__`.
    pub fn rpc_method_label(method: &str) -> &str {
        let known = crate::protocol::message::MCP_METHODS.contains(&method)
            || crate::protocol::message::A2A_METHODS.contains(&method)
            || method.starts_with("notifications/")
            || method.is_empty();
        if known {
            method
        } else {
            OTHER_AGENT
        }
    }

    /// The handles of one agent's series, resolved once so that recording a request touches
    /// atomics instead of hashing label values.
    pub fn agent_metrics(&self, agent: &str) -> AgentMetrics {
        AgentMetrics {
            agent: agent.into(),
            bytes_in: self.agent_bytes.with_label_values(&[agent, "in"]),
            bytes_out: self.agent_bytes.with_label_values(&[agent, "out"]),
            anomaly_score: self.anomaly_score.with_label_values(&[agent]),
            quarantined: self.quarantined.with_label_values(&[agent]),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The `method` label: standard methods by name, anything else `OTHER` (bounded).
    pub fn method_label(method: &http::Method) -> &'static str {
        match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::PATCH => "PATCH",
            http::Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        }
    }

    pub fn status_class(status: u16) -> &'static str {
        match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// An agent's metric handles (see [`Metrics::agent_metrics`]).
pub struct AgentMetrics {
    agent: Arc<str>,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub anomaly_score: Gauge,
    pub quarantined: IntGauge,
    /// `warden_requests_total` series this agent has used; few per agent, so a short scan.
    requests: Mutex<Vec<RequestSeries>>,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

struct RequestSeries {
    upstream: Arc<str>,
    labels: [&'static str; 4],
    counter: IntCounter,
}

/// Past this many distinct series for one agent, new ones are resolved per request, uncached.
const MAX_CACHED_SERIES: usize = 64;

impl AgentMetrics {
    /// Counts one request in `warden_requests_total`. `labels` are method, decision, reason
    /// and status class, in that order.
    pub fn count_request(&self, m: &Metrics, upstream: &Arc<str>, labels: [&'static str; 4]) {
        let mut cache = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache
            .iter()
            .find(|s| s.labels == labels && s.upstream == *upstream)
        {
            s.counter.inc();
            return;
        }
        let [method, decision, reason, class] = labels;
        let counter =
            m.requests
                .with_label_values(&[&self.agent, upstream, method, decision, reason, class]);
        counter.inc();
        if cache.len() < MAX_CACHED_SERIES {
            cache.push(RequestSeries {
                upstream: upstream.clone(),
                labels,
                counter,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_series_are_bounded() {
        let m = Metrics::new(3).unwrap();
        let labels: Vec<_> = (0..10).map(|i| m.agent_label(&format!("a{i}"))).collect();
        assert_eq!(
            labels.iter().filter(|l| l.as_ref() == OTHER_AGENT).count(),
            7
        );
        assert_eq!(m.agent_label("a0").as_ref(), "a0");
        assert_eq!(m.agent_label("a9").as_ref(), OTHER_AGENT);
    }

    #[test]
    fn cached_agent_handles_count_the_same_series() {
        let m = Metrics::new(10).unwrap();
        let label = m.agent_label("a");
        let am = m.agent_metrics(&label);
        let up: Arc<str> = "inv".into();
        for _ in 0..3 {
            am.count_request(&m, &up, ["GET", "allow", "ok", "2xx"]);
        }
        am.count_request(&m, &up, ["GET", "deny", "denied", "4xx"]);
        am.bytes_out.inc_by(5);
        let text = m.render();
        assert!(text.contains(r#"warden_requests_total{agent="a",decision="allow",method="GET",reason="ok",status_class="2xx",upstream="inv"} 3"#), "{text}");
        assert!(text.contains(
            r#"decision="deny",method="GET",reason="denied",status_class="4xx",upstream="inv"} 1"#
        ));
        assert!(text.contains(r#"warden_agent_bytes_total{agent="a",direction="out"} 5"#));
    }

    #[test]
    fn renders_contract_names() {
        let m = Metrics::new(10).unwrap();
        m.requests
            .with_label_values(&["a", "inv", "GET", "allow", "ok", "2xx"])
            .inc();
        m.active_connections.set(2);
        let text = m.render();
        for name in [
            "warden_requests_total",
            "warden_tls_handshakes_total",
            "warden_active_connections",
            "warden_config_reloads_total",
            "warden_build_info{version=",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn latency_buckets_reach_two_minutes() {
        let m = Metrics::new(10).unwrap();
        m.request_duration
            .with_label_values(&["inv", "allow"])
            .observe(95.0);
        let text = m.render();
        assert!(text.contains(r#"warden_request_duration_seconds_bucket{decision="allow",upstream="inv",le="60"} 0"#), "{text}");
        assert!(text.contains(r#"warden_request_duration_seconds_bucket{decision="allow",upstream="inv",le="120"} 1"#), "{text}");
    }

    #[test]
    fn certificate_expiry_series_are_replaced() {
        let m = Metrics::new(10).unwrap();
        let date = |subject: &str, timestamp| CertExpiry {
            which: "server",
            subject: subject.to_owned(),
            timestamp,
        };
        m.set_certificate_expiry(&[date("CN=old", 1_800_000_000)]);
        m.set_certificate_expiry(&[date("CN=new", 1_900_000_000)]);
        let text = m.render();
        assert!(text.contains(r#"warden_certificate_expiry_timestamp_seconds{subject="CN=new",which="server"} 1900000000"#), "{text}");
        assert!(!text.contains("CN=old"), "{text}");
    }
}
