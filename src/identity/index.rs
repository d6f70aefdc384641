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
    /// Patterns filed by their literal path prefix (the segments before the first wildcard),
    /// each list in priority order: a lookup tries only the patterns whose prefix the id has.
    by_prefix: HashMap<Box<str>, Vec<usize>>,
}

/// `/agent/support` for `/agent/support/*`: the path up to the first segment with a wildcard.
fn literal_prefix(path: &str) -> &str {
    match path.find('*') {
        Some(star) => path[..star].rfind('/').map_or("", |slash| &path[..slash]),
        None => path,
    }
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
        for (i, p) in index.patterns.iter().enumerate() {
            let path = split_spiffe(&index.agents[p.entry].id).map_or("", |(_, path)| path);
            index
                .by_prefix
                .entry(literal_prefix(path).into())
                .or_default()
                .push(i);
        }
        index
    }

    /// The entry covering `agent_id`, exact ids before patterns.
    pub fn lookup(&self, agent_id: &str) -> Option<&AgentPolicy> {
        if let Some(&i) = self.exact.get(agent_id) {
            return self.agents.get(i);
        }
        let (authority, path) = split_spiffe(agent_id)?;
        // Every prefix of the id's path at a segment boundary: "", "/agent", "/agent/support", ...
        let boundaries = std::iter::once(0)
            .chain(path.match_indices('/').map(|(i, _)| i).filter(|i| *i > 0))
            .chain(std::iter::once(path.len()));
        let mut best: Option<usize> = None;
        for end in boundaries {
            let Some(list) = self.by_prefix.get(&path[..end]) else {
                continue;
            };
            // Each list is in priority order: its first match is its best.
            let found = list
                .iter()
                .copied()
                .take_while(|i| best.is_none_or(|b| *i < b))
                .find(|i| {
                    let p = &self.patterns[*i];
                    p.authority.eq_ignore_ascii_case(authority) && p.path.matches(path)
                });
            if found.is_some() {
                best = found;
            }
        }
        best.and_then(|i| self.agents.get(self.patterns[i].entry))
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
    fn literal_prefixes() {
        assert_eq!(literal_prefix("/agent/support/*"), "/agent/support");
        assert_eq!(literal_prefix("/agent/**"), "/agent");
        assert_eq!(literal_prefix("/**"), "");
        assert_eq!(literal_prefix("/a/*/b"), "/a");
    }

    #[test]
    fn many_patterns_same_answer_as_a_scan() {
        let mut agents: Vec<AgentPolicy> = (0..100)
            .map(|i| policy(i, &format!("spiffe://example.org/fleet/f{i}/*")))
            .collect();
        agents.push(policy(100, "spiffe://example.org/fleet/**"));
        agents.push(policy(101, "spiffe://example.org/*/f7/*"));
        let idx = AgentIndex::new(agents);
        assert_eq!(
            idx.lookup("spiffe://example.org/fleet/f42/bot")
                .unwrap()
                .entry,
            42
        );
        assert_eq!(
            idx.lookup("spiffe://example.org/fleet/f7/bot")
                .unwrap()
                .entry,
            7
        );
        assert_eq!(
            idx.lookup("spiffe://example.org/fleet/f420/bot")
                .unwrap()
                .entry,
            100
        );
        assert_eq!(
            idx.lookup("spiffe://example.org/other/f7/bot")
                .unwrap()
                .entry,
            101
        );
        assert_eq!(idx.lookup("spiffe://example.org/fleet").unwrap().entry, 100);
        assert!(idx.lookup("spiffe://example.org/nothing").is_none());
        assert!(idx.lookup("spiffe://EXAMPLE.org/fleet/f1/x").is_some());
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
