//! What every connection and request shares: the live config, metrics, per-agent state, clock.

use std::sync::{Arc, Weak};

use crate::agents::{AgentRegistry, AgentState, ChannelRegistry, CloseReason};
use crate::anomaly::PeerGroups;
use crate::clock::Clock;
use crate::cluster::{Cluster, Event, LocalAgents, SharedRpcState};
use crate::ids::AgentId;
use crate::protocol::state::MAX_ENTRIES;
use crate::protocol::{LocalRpcState, RpcState, ToolPins};
use crate::snapshot::ConfigHandle;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::readiness::Readiness;

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
    /// What `/readyz` answers; starts held for `starting`.
    pub readiness: Arc<Readiness>,
    /// MCP session bindings and A2A task owners: this replica's, or the fleet's with `cluster`.
    pub rpc_state: Arc<dyn RpcState>,
    /// Pinned MCP tool definitions.
    pub pins: Arc<ToolPins>,
    /// The shared state of a fleet, when `cluster` is configured.
    pub cluster: Option<Arc<Cluster>>,
    /// The anomaly engine's peer-group baselines, kept across reloads.
    pub peer_groups: PeerGroups,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Session bindings, task owners and tool pins, kept in the state directory when there is one.
fn protocol_state(config: &ConfigHandle) -> (LocalRpcState, Arc<ToolPins>) {
    let snap = config.snapshot();
    let Some(dir) = snap.protocol.state_dir.as_deref() else {
        if snap.protocol.any_route() {
            tracing::warn!("no state_dir (nor audit log file): MCP session bindings, A2A task owners and tool pins do not survive a restart");
        }
        return (
            LocalRpcState::in_memory(MAX_ENTRIES),
            Arc::new(ToolPins::in_memory(MAX_ENTRIES)),
        );
    };
    let state = match LocalRpcState::persistent(dir, MAX_ENTRIES) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(dir = %dir.display(), "cannot keep protocol state, memory only: {e}");
            LocalRpcState::in_memory(MAX_ENTRIES)
        }
    };
    let pins = match ToolPins::persistent(dir, MAX_ENTRIES) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(dir = %dir.display(), "cannot keep tool pins, memory only: {e}");
            Arc::new(ToolPins::in_memory(MAX_ENTRIES))
        }
    };
    (state, pins)
}

impl Runtime {
    /// With `cluster`, session bindings and task owners are the fleet's, this replica's own
    /// state their local copy.
    pub fn new(
        config: Arc<ConfigHandle>,
        metrics: Arc<Metrics>,
        clock: Clock,
        audit: Option<AuditLog>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let (local, pins) = protocol_state(&config);
        let rpc_state: Arc<dyn RpcState> = match &cluster {
            Some(c) => SharedRpcState::start(c.clone(), local),
            None => Arc::new(local),
        };
        Runtime {
            rpc_state,
            pins,
            config,
            metrics,
            agents: AgentRegistry::new(100_000),
            channels: ChannelRegistry::new(),
            clock,
            ids: RequestIds::new(),
            audit,
            epoch: tokio::time::Instant::now(),
            readiness: Arc::new(Readiness::default()),
            cluster,
            peer_groups: PeerGroups::default(),
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    fn state_of(&self, agent: &AgentId) -> Arc<AgentState> {
        self.agents
            .get_or_insert(agent, || self.metrics.agent_label(agent.as_str()))
    }

    /// Quarantines `agent` here until `until_ms` (Unix ms; `admit::INDEFINITE` until released):
    /// its requests are refused and its open connections and tunnels here are closed.
    pub fn quarantine_here(&self, agent: &AgentId, until_ms: i64) -> Arc<AgentState> {
        let a = self.state_of(agent);
        a.quarantine(until_ms);
        self.metrics
            .quarantined
            .with_label_values(&[&a.metric_label])
            .set(1);
        let closed = self.channels.close_agent(agent, CloseReason::Quarantined);
        if closed > 0 {
            tracing::info!(agent = %agent, closed, "quarantine: closed the agent's connections and tunnels");
        }
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
