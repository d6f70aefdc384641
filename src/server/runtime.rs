//! What every connection and request shares: the live config, metrics, per-agent state, clock.

use std::sync::Arc;

use crate::agents::{AgentRegistry, AgentState, ChannelRegistry, CloseReason};
use crate::clock::Clock;
use crate::snapshot::ConfigHandle;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::Metrics;

use super::ids::RequestIds;

pub struct Runtime {
    pub config: Arc<ConfigHandle>,
    pub metrics: Arc<Metrics>,
    pub agents: AgentRegistry,
    /// Every connection and tunnel agents hold open.
    pub channels: Arc<ChannelRegistry>,
    pub clock: Clock,
    pub ids: RequestIds,
    /// `None` when `telemetry.audit_log` is unset.
    pub audit: Option<AuditLog>,
    /// The monotonic origin of behaviour windows.
    pub epoch: tokio::time::Instant,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(
        config: Arc<ConfigHandle>,
        metrics: Arc<Metrics>,
        clock: Clock,
        audit: Option<AuditLog>,
    ) -> Self {
        Runtime {
            config,
            metrics,
            agents: AgentRegistry::new(100_000),
            channels: ChannelRegistry::new(),
            clock,
            ids: RequestIds::new(),
            audit,
            epoch: tokio::time::Instant::now(),
        }
    }

    /// Monotonic time since start, as the anomaly engine counts it.
    pub fn mono(&self) -> std::time::Duration {
        self.epoch.elapsed()
    }

    /// Quarantines `agent` until `until_ms` (the admin API, the anomaly engine): its requests
    /// are refused and its open connections and tunnels are closed. Returns how many were open.
    pub fn quarantine(&self, agent: &AgentState, until_ms: i64) -> usize {
        agent.quarantine(until_ms);
        self.metrics
            .quarantined
            .with_label_values(&[&agent.metric_label])
            .set(1);
        self.channels
            .close_agent(&agent.id, CloseReason::Quarantined)
    }

    /// Brings the per-agent gauges up to date with time: quarantines that expired, scores that
    /// decayed while an agent was quiet.
    pub fn refresh_agent_gauges(&self) {
        let now_ms = self.clock.now_unix_ms();
        let now = self.mono();
        for a in self.agents.all() {
            let q = i64::from(a.is_quarantined(now_ms));
            self.metrics
                .quarantined
                .with_label_values(&[&a.metric_label])
                .set(q);
            self.metrics
                .anomaly_score
                .with_label_values(&[&a.metric_label])
                .set(a.behaviour.score_at(now));
        }
    }
}
