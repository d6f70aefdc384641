//! Per-agent runtime state, keyed by the agent id from the certificate: counters for `/agents`,
//! its admission state (rate bucket, quarantine, requests in flight), the behaviour baseline. Each connection resolves its agent's
//! state once, so the request path touches only that agent's atomics and small mutexes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::admit::{InFlight, Quarantine, RateLimit, TokenBucket};
use crate::anomaly::AgentBehaviour;
use crate::ids::AgentId;
use crate::telemetry::metrics::AgentMetrics;

#[derive(Debug)]
pub struct AgentState {
    pub id: AgentId,
    /// Its id as the `x-warden-agent` header's value, made once.
    pub id_header: Option<http::HeaderValue>,
    /// The `agent` label this agent's metrics use (its id, or `__other__` past the series cap).
    pub metric_label: Arc<str>,
    rate: Mutex<Option<TokenBucket>>,
    quarantine: Quarantine,
    /// Its requests in flight over all its connections.
    pub in_flight: Arc<InFlight>,
    pub requests: AtomicU64,
    pub denials: AtomicU64,
    pub last_seen_ms: AtomicI64,
    /// Its behavioural baseline and anomaly score.
    pub behaviour: AgentBehaviour,
    /// Its metric handles, resolved on its first recorded request.
    pub metrics: OnceLock<AgentMetrics>,
}

impl AgentState {
    fn new(id: AgentId, metric_label: Arc<str>) -> Self {
        AgentState {
            id_header: http::HeaderValue::from_str(id.as_str()).ok(),
            id,
            metric_label,
            rate: Mutex::new(None),
            quarantine: Quarantine::default(),
            in_flight: Arc::new(InFlight::default()),
            requests: AtomicU64::new(0),
            denials: AtomicU64::new(0),
            last_seen_ms: AtomicI64::new(0),
            behaviour: AgentBehaviour::new(),
            metrics: OnceLock::new(),
        }
    }

    /// Whether the agent is quarantined at `now_ms` (an expired quarantine lifts itself).
    pub fn is_quarantined(&self, now_ms: i64) -> bool {
        self.quarantine.is_active(now_ms)
    }

    /// Unix ms when the quarantine ends (`INDEFINITE` until released), if quarantined.
    pub fn quarantined_until(&self, now_ms: i64) -> Option<i64> {
        self.quarantine.until(now_ms)
    }

    pub fn quarantine(&self, until_ms: i64) {
        self.quarantine.set(until_ms);
    }

    pub fn release(&self) {
        self.quarantine.release();
    }

    /// Takes a token from the agent's bucket; `Err(wait)` when over its rate.
    ///
    /// `share` is this replica's part of the fleet-wide limit (1 when it is alone).
    pub fn check_rate(
        &self,
        limit: Option<&RateLimit>,
        now: Instant,
        share: f64,
    ) -> Result<(), Duration> {
        let Some(limit) = limit else { return Ok(()) };
        // A poisoned lock only means another request panicked mid-update; the bucket is still usable.
        let mut guard = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(bucket) if bucket.is_for(limit) => bucket.try_take_share(now, share),
            _ => {
                let mut bucket = TokenBucket::new(limit, now);
                let r = bucket.try_take_share(now, share);
                *guard = Some(bucket);
                r
            }
        }
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// Every agent seen since start, bounded: past `max_agents`, agents idle the longest are dropped.
#[derive(Debug)]
pub struct AgentRegistry {
    agents: DashMap<AgentId, Arc<AgentState>, foldhash::fast::RandomState>,
    max_agents: usize,
}

impl AgentRegistry {
    pub fn new(max_agents: usize) -> Self {
        AgentRegistry {
            agents: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            max_agents: max_agents.max(1),
        }
    }

    /// The state of `id`, created on first sight; `label` names its metrics series then.
    pub fn get_or_insert(&self, id: &AgentId, label: impl FnOnce() -> Arc<str>) -> Arc<AgentState> {
        if let Some(s) = self.agents.get(id) {
            return s.clone();
        }
        if self.agents.len() >= self.max_agents {
            self.evict_idle();
        }
        self.agents
            .entry(id.clone())
            .or_insert_with(|| Arc::new(AgentState::new(id.clone(), label())))
            .clone()
    }

    pub fn get(&self, id: &AgentId) -> Option<Arc<AgentState>> {
        self.agents.get(id).map(|s| s.clone())
    }

    /// A copy of every state, for the admin API (no map guard is held by the caller).
    pub fn all(&self) -> Vec<Arc<AgentState>> {
        self.agents.iter().map(|e| e.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Drops the tenth of agents idle the longest; quarantined agents are kept.
    fn evict_idle(&self) {
        let mut seen: Vec<(i64, AgentId)> = self
            .agents
            .iter()
            .filter(|e| !e.value().quarantine.is_set())
            .map(|e| {
                (
                    e.value().last_seen_ms.load(Ordering::Relaxed),
                    e.key().clone(),
                )
            })
            .collect();
        seen.sort_unstable_by_key(|(t, _)| *t);
        let n = (self.max_agents / 10).max(1);
        for (_, id) in seen.into_iter().take(n) {
            self.agents.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> AgentId {
        AgentId::parse(&format!("spiffe://example.org/agent-{i}")).unwrap()
    }

    #[test]
    fn bounded() {
        let r = AgentRegistry::new(10);
        for i in 0..100 {
            let s = r.get_or_insert(&id(i), || "x".into());
            s.touch(i as i64);
        }
        assert!(r.len() <= 10);
        assert!(r.get(&id(99)).is_some());
    }

    #[test]
    fn quarantined_agents_are_never_evicted() {
        let r = AgentRegistry::new(10);
        r.get_or_insert(&id(0), || "x".into()).quarantine(i64::MAX);
        for i in 1..100 {
            r.get_or_insert(&id(i), || "x".into()).touch(i as i64);
        }
        assert!(r.get(&id(0)).is_some());
    }
}
