//! Per-agent runtime state, keyed by the agent id from the certificate: counters for `/agents`,
//! the rate bucket, the quarantine, the behaviour baseline. Each connection resolves its agent's
//! state once, so the request path touches only that agent's atomics and small mutexes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use super::rate::TokenBucket;
use crate::anomaly::AgentBehaviour;
use crate::config::schema::RateLimitSection;
use crate::telemetry::metrics::AgentMetrics;

/// Quarantine state: 0 = free, `i64::MAX` = until released, else Unix ms when it ends.
const FREE: i64 = 0;
pub const INDEFINITE: i64 = i64::MAX;

#[derive(Debug)]
pub struct AgentState {
    pub id: Arc<str>,
    /// The `agent` label this agent's metrics use (its id, or `__other__` past the series cap).
    pub metric_label: Arc<str>,
    rate: Mutex<Option<TokenBucket>>,
    quarantined_until_ms: AtomicI64,
    pub requests: AtomicU64,
    pub denials: AtomicU64,
    pub last_seen_ms: AtomicI64,
    /// Its behavioural baseline and anomaly score.
    pub behaviour: AgentBehaviour,
    /// Its metric handles, resolved on its first recorded request.
    pub metrics: OnceLock<AgentMetrics>,
}

impl AgentState {
    fn new(id: Arc<str>, metric_label: Arc<str>) -> Self {
        AgentState {
            id,
            metric_label,
            rate: Mutex::new(None),
            quarantined_until_ms: AtomicI64::new(FREE),
            requests: AtomicU64::new(0),
            denials: AtomicU64::new(0),
            last_seen_ms: AtomicI64::new(0),
            behaviour: AgentBehaviour::new(),
            metrics: OnceLock::new(),
        }
    }

    /// Whether the agent is quarantined at `now_ms` (an expired quarantine lifts itself).
    pub fn is_quarantined(&self, now_ms: i64) -> bool {
        let until = self.quarantined_until_ms.load(Ordering::Relaxed);
        until != FREE && now_ms < until
    }

    /// Unix ms when the quarantine ends (`INDEFINITE` until released), if quarantined.
    pub fn quarantined_until(&self, now_ms: i64) -> Option<i64> {
        let until = self.quarantined_until_ms.load(Ordering::Relaxed);
        (until != FREE && now_ms < until).then_some(until)
    }

    pub fn quarantine(&self, until_ms: i64) {
        self.quarantined_until_ms
            .store(until_ms.max(1), Ordering::Relaxed);
    }

    pub fn release(&self) {
        self.quarantined_until_ms.store(FREE, Ordering::Relaxed);
    }

    /// Takes a token from the agent's bucket; `Err(wait)` when over its rate.
    pub fn check_rate(
        &self,
        limit: Option<&RateLimitSection>,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(limit) = limit else { return Ok(()) };
        // A poisoned lock only means another request panicked mid-update; the bucket is still usable.
        let mut guard = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(bucket) if bucket.is_for(limit) => bucket.try_take(now),
            _ => {
                let mut bucket = TokenBucket::new(limit, now);
                let r = bucket.try_take(now);
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
    agents: DashMap<Arc<str>, Arc<AgentState>>,
    max_agents: usize,
}

impl AgentRegistry {
    pub fn new(max_agents: usize) -> Self {
        AgentRegistry {
            agents: DashMap::new(),
            max_agents: max_agents.max(1),
        }
    }

    /// The state of `id`, created on first sight; `label` names its metrics series then.
    pub fn get_or_insert(&self, id: &str, label: impl FnOnce() -> Arc<str>) -> Arc<AgentState> {
        if let Some(s) = self.agents.get(id) {
            return s.clone();
        }
        if self.agents.len() >= self.max_agents {
            self.evict_idle();
        }
        let key: Arc<str> = id.into();
        self.agents
            .entry(key.clone())
            .or_insert_with(|| Arc::new(AgentState::new(key, label())))
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<AgentState>> {
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
        let mut seen: Vec<(i64, Arc<str>)> = self
            .agents
            .iter()
            .filter(|e| e.value().quarantined_until_ms.load(Ordering::Relaxed) == FREE)
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

    #[test]
    fn quarantine_lifts_itself() {
        let r = AgentRegistry::new(10);
        let a = r.get_or_insert("a", || "a".into());
        assert!(!a.is_quarantined(1000));
        a.quarantine(2000);
        assert!(a.is_quarantined(1999));
        assert!(!a.is_quarantined(2000));
        a.quarantine(INDEFINITE);
        assert!(a.is_quarantined(i64::MAX - 1));
        a.release();
        assert!(!a.is_quarantined(0));
    }

    #[test]
    fn bounded() {
        let r = AgentRegistry::new(10);
        for i in 0..100 {
            let s = r.get_or_insert(&format!("agent-{i}"), || "x".into());
            s.touch(i);
        }
        assert!(r.len() <= 10);
        assert!(r.get("agent-99").is_some());
    }
}
