//! The agent index: which `agents` entry covers an agent id. Exact ids are a hash lookup; patterns
//! (`spiffe://example.org/agent/support/*`) are tried only when no exact id matches, most
//! specific first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::authz::pattern::PathPattern;
use crate::authz::rules::UpstreamSet;
use crate::config::schema::RateLimitSection;

/// What the config says about one agent (or a fleet, for a pattern entry).
#[derive(Debug, Clone)]
pub struct AgentPolicy {
    /// Position in the config's `agents` list.
    pub entry: usize,
    /// The entry's `id`, exact or pattern.
    pub id: Arc<str>,
    /// Indices into the snapshot's roles.
    pub roles: Vec<usize>,
    /// `a,b`: the `x-warden-roles` value, computed once.
    pub roles_header: Arc<str>,
    pub labels: BTreeMap<String, String>,
    pub rate_limit: Option<RateLimitSection>,
    /// Union of the roles' `upstreams`: the segment this agent lives in.
    pub upstreams: UpstreamSet,
    /// Whether any of its roles (or the global setting) demands the second factor.
    pub require_token: bool,
}

#[derive(Debug, Clone)]
struct AgentPattern {
    /// `spiffe://trust.domain`
    authority: Box<str>,
    path: PathPattern,
    literal_segments: usize,
    entry: usize,
}

/// Exact ids and patterns, compiled.
#[derive(Debug, Clone, Default)]
pub struct AgentIndex {
    agents: Vec<AgentPolicy>,
    exact: HashMap<Box<str>, usize>,
    patterns: Vec<AgentPattern>,
}

/// Splits `spiffe://domain/path` into (`spiffe://domain`, `/path`).
fn split_spiffe(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    let slash = rest.find('/')?;
    Some((&id[..9 + slash], &rest[slash..]))
}

impl AgentIndex {
    pub fn new(agents: Vec<AgentPolicy>) -> Self {
        let mut index = AgentIndex {
            agents,
            ..Default::default()
        };
        for (i, a) in index.agents.iter().enumerate() {
            if a.id.contains('*') {
                let Some((authority, path)) = split_spiffe(&a.id) else {
                    continue;
                };
                let literal_segments = path
                    .split('/')
                    .filter(|s| !s.is_empty() && !s.contains('*'))
                    .count();
                index.patterns.push(AgentPattern {
                    authority: authority.to_ascii_lowercase().into(),
                    path: PathPattern::new(path, false),
                    literal_segments,
                    entry: i,
                });
            } else {
                // Validation refuses duplicates; should one slip through, the first entry wins.
                index.exact.entry(a.id.as_ref().into()).or_insert(i);
            }
        }
        // Most literal segments first; config order breaks ties (sort is stable).
        index
            .patterns
            .sort_by_key(|p| std::cmp::Reverse(p.literal_segments));
        index
    }

    /// The entry covering `agent_id`, exact ids before patterns.
    pub fn lookup(&self, agent_id: &str) -> Option<&AgentPolicy> {
        if let Some(&i) = self.exact.get(agent_id) {
            return self.agents.get(i);
        }
        let (authority, path) = split_spiffe(agent_id)?;
        self.patterns
            .iter()
            .find(|p| p.authority.eq_ignore_ascii_case(authority) && p.path.matches(path))
            .and_then(|p| self.agents.get(p.entry))
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn exact_count(&self) -> usize {
        self.exact.len()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AgentPolicy> {
        self.agents.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entry: usize, id: &str) -> AgentPolicy {
        AgentPolicy {
            entry,
            id: id.into(),
            roles: vec![],
            roles_header: "".into(),
            labels: BTreeMap::new(),
            rate_limit: None,
            upstreams: UpstreamSet::with_capacity(1),
            require_token: false,
        }
    }

    #[test]
    fn exact_wins_over_pattern() {
        let idx = AgentIndex::new(vec![
            policy(0, "spiffe://example.org/agent/support/*"),
            policy(1, "spiffe://example.org/agent/support/vip"),
        ]);
        assert_eq!(
            idx.lookup("spiffe://example.org/agent/support/vip")
                .unwrap()
                .entry,
            1
        );
        assert_eq!(
            idx.lookup("spiffe://example.org/agent/support/bob")
                .unwrap()
                .entry,
            0
        );
        assert!(idx
            .lookup("spiffe://example.org/agent/support/bob/x")
            .is_none());
        assert!(idx.lookup("spiffe://example.org/agent/other").is_none());
        assert!(idx.lookup("spiffe://evil.org/agent/support/bob").is_none());
        assert!(idx.lookup("not a spiffe id").is_none());
    }

    #[test]
    fn more_specific_pattern_wins() {
        let idx = AgentIndex::new(vec![
            policy(0, "spiffe://example.org/agent/**"),
            policy(1, "spiffe://example.org/agent/support/*"),
        ]);
        assert_eq!(
            idx.lookup("spiffe://example.org/agent/support/a")
                .unwrap()
                .entry,
            1
        );
        assert_eq!(
            idx.lookup("spiffe://example.org/agent/x/y").unwrap().entry,
            0
        );
        assert_eq!(idx.exact_count(), 0);
        assert_eq!(idx.pattern_count(), 2);
    }
}
