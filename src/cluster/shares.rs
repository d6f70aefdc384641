//! Fleet-wide rate limits by demand shares. Each replica counts, per rate-limited agent, the
//! requests it was asked; the link publishes the counts and reads back everyone's. A replica's
//! share of an agent's limit is its part of the recent demand, so the shares sum to one and the
//! fleet as a whole holds the configured rate however the load balancer spreads the agent.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::ids::AgentId;

/// Shares stored as parts per million, so they live in an atomic.
const ONE: u64 = 1_000_000;

#[derive(Debug)]
struct Entry {
    /// Requests asked of this replica since the last publication.
    asked: AtomicU64,
    /// This replica's share, parts per million.
    share: AtomicU64,
}

/// Per agent: local demand, and this replica's share of its limit.
#[derive(Debug, Default)]
pub struct RateShares {
    agents: DashMap<AgentId, Entry>,
}

impl RateShares {
    /// Notes one request and returns the current share (1 until the fleet says otherwise).
    pub fn note_and_share(&self, agent: &AgentId) -> f64 {
        if let Some(e) = self.agents.get(agent) {
            e.asked.fetch_add(1, Ordering::Relaxed);
            return e.share.load(Ordering::Relaxed) as f64 / ONE as f64;
        }
        self.agents
            .entry(agent.clone())
            .or_insert_with(|| Entry {
                asked: AtomicU64::new(0),
                share: AtomicU64::new(ONE),
            })
            .asked
            .fetch_add(1, Ordering::Relaxed);
        1.0
    }

    /// The demand counted since the last call, per agent. Agents that asked nothing and hold a
    /// whole share are forgotten (a new request starts them again), so the map stays bounded.
    pub fn drain_demand(&self) -> Vec<(AgentId, u64)> {
        let mut idle = Vec::new();
        let busy = self
            .agents
            .iter()
            .filter_map(|e| {
                let n = e.value().asked.swap(0, Ordering::Relaxed);
                if n == 0 && e.value().share.load(Ordering::Relaxed) == ONE {
                    idle.push(e.key().clone());
                    return None;
                }
                Some((e.key().clone(), n))
            })
            .collect();
        // Removed after the walk: never while an iterator holds a shard.
        for a in idle {
            self.agents
                .remove_if(&a, |_, e| e.asked.load(Ordering::Relaxed) == 0);
        }
        busy
    }

    /// Sets the share from this replica's demand and the fleet's (this replica's included).
    pub fn set_share(&self, agent: &AgentId, mine: f64, total: f64) {
        let share = if total <= 0.0 || mine >= total {
            1.0
        } else {
            (mine / total).clamp(0.0, 1.0)
        };
        if let Some(e) = self.agents.get(agent) {
            e.share
                .store((share * ONE as f64) as u64, Ordering::Relaxed);
        }
    }

    /// Back to deciding alone (Redis away): every share is whole again.
    pub fn reset(&self) {
        for e in self.agents.iter() {
            e.value().share.store(ONE, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_demand() {
        let s = RateShares::default();
        let a = AgentId::parse("spiffe://example.org/a").unwrap();
        assert_eq!(s.note_and_share(&a), 1.0);
        s.note_and_share(&a);
        assert_eq!(s.drain_demand(), vec![(a.clone(), 2)]);
        s.set_share(&a, 2.0, 8.0);
        assert!((s.note_and_share(&a) - 0.25).abs() < 1e-6);
        s.reset();
        assert_eq!(s.note_and_share(&a), 1.0);
        s.set_share(&a, 0.0, 0.0);
        assert_eq!(s.note_and_share(&a), 1.0);
    }
}
