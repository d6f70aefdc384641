//! What every connection and request shares: the live config, metrics, per-agent state, clock.

use std::sync::Arc;

use std::sync::{OnceLock, Weak};

use crate::agents::{AgentRegistry, AgentState};
use crate::clock::Clock;
use crate::cluster::{Cluster, Event, LocalAgents};
use crate::ids::AgentId;
use crate::snapshot::ConfigHandle;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::Metrics;

use super::ids::RequestIds;

pub struct Runtime {
    pub config: Arc<ConfigHandle>,
    pub metrics: Arc<Metrics>,
    pub agents: AgentRegistry,
    pub clock: Clock,
    pub ids: RequestIds,
    /// `None` when `telemetry.audit_log` is unset.
    pub audit: Option<AuditLog>,
    /// The monotonic origin of behaviour windows.
    pub epoch: tokio::time::Instant,
    /// The shared state of a fleet, when `cluster` is configured.
    pub cluster: OnceLock<Arc<Cluster>>,
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
            clock,
            ids: RequestIds::new(),
            audit,
            epoch: tokio::time::Instant::now(),
            cluster: OnceLock::new(),
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    fn state_of(&self, agent: &AgentId) -> Arc<AgentState> {
        self.agents
            .get_or_insert(agent, || self.metrics.agent_label(agent.as_str()))
    }

    /// Quarantines `agent` here until `until_ms` (Unix ms; `admit::INDEFINITE` until released).
    pub fn quarantine_here(&self, agent: &AgentId, until_ms: i64) -> Arc<AgentState> {
        let a = self.state_of(agent);
        a.quarantine(until_ms);
        self.metrics
            .quarantined
            .with_label_values(&[&a.metric_label])
            .set(1);
        a
    }

    /// Releases `agent` here.
    pub fn release_here(&self, agent: &AgentId) -> Option<Arc<AgentState>> {
        let a = self.agents.get(agent)?;
        a.release();
        self.metrics
            .quarantined
            .with_label_values(&[&a.metric_label])
            .set(0);
        Some(a)
    }

    /// Quarantines `agent` here and on every replica of the fleet.
    pub fn quarantine(&self, agent: &AgentId, until_ms: i64) -> Arc<AgentState> {
        let a = self.quarantine_here(agent, until_ms);
        if let Some(c) = self.cluster() {
            c.quarantine(agent, until_ms);
        }
        a
    }

    /// Releases `agent` here and on every replica of the fleet.
    pub fn release(&self, agent: &AgentId) -> Option<Arc<AgentState>> {
        let a = self.release_here(agent);
        if let Some(c) = self.cluster() {
            c.release(agent);
        }
        a
    }

    /// The view of this runtime's agents the cluster link applies fleet events to.
    pub fn local_agents(self: &Arc<Self>) -> Arc<dyn LocalAgents> {
        Arc::new(RuntimeAgents(Arc::downgrade(self)))
    }

    /// Monotonic time since start, as the anomaly engine counts it.
    pub fn mono(&self) -> std::time::Duration {
        self.epoch.elapsed()
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

/// Fleet events applied to this replica's agents.
struct RuntimeAgents(Weak<Runtime>);

impl LocalAgents for RuntimeAgents {
    fn apply(&self, event: &Event) {
        let Some(rt) = self.0.upgrade() else { return };
        match event {
            Event::Quarantine { agent, until_ms } => {
                rt.quarantine_here(agent, *until_ms);
                tracing::warn!(agent = %agent, "agent quarantined by another replica");
            }
            Event::Release { agent } => {
                rt.release_here(agent);
                tracing::info!(agent = %agent, "agent released by another replica");
            }
        }
    }

    fn quarantined(&self) -> Vec<(AgentId, i64)> {
        let Some(rt) = self.0.upgrade() else {
            return Vec::new();
        };
        let now = rt.clock.now_unix_ms();
        rt.agents
            .all()
            .into_iter()
            .filter_map(|a| a.quarantined_until(now).map(|u| (a.id.clone(), u)))
            .collect()
    }
}
