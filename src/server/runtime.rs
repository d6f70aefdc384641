//! What every connection and request shares: the live config, metrics, per-agent state, clock.

use std::sync::Arc;

use crate::admit::AgentRegistry;
use crate::clock::Clock;
use crate::config::reload::ConfigHandle;
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
        }
    }
}
