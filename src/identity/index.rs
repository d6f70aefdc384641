//! The agent index: which `agents` entry covers an agent id. Exact ids are a hash lookup; patterns
//! (`spiffe://example.org/agent/support/*`) are tried only when no exact id matches, most
//! specific first.

use foldhash::HashMap;

use crate::ids::AgentId;
use crate::pattern::PathPattern;

#[derive(Debug, Clone)]
struct AgentPattern {
    /// `spiffe://trust.domain`
    authority: Box<str>,
    path: PathPattern,
    literal_segments: usize,
    entry: usize,
}

/// Exact ids and patterns, compiled: an agent id to the position of the `agents` entry covering it.
#[derive(Debug, Clone, Default)]
pub struct AgentIndex {
    len: usize,
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
    /// Indexes the `agents` entries' ids (exact or patterns), in config order.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut index = AgentIndex {
            len: ids.len(),
            ..Default::default()
        };
        for (i, id) in ids.iter().enumerate() {
            if id.contains('*') {
                let Some((authority, path)) = split_spiffe(id) else {
                    continue;
                };
                let literal_segments = path
                    .split('/')
                    .filter(|s| !s.is_empty() && !s.contains('*'))
                    .count();
                index.patterns.push(AgentPattern {
                    authority: authority.into(),
                    path: PathPattern::new(path, false),
                    literal_segments,
                    entry: i,
                });
            } else {
                // Validation refuses duplicates; should one slip through, the first entry wins.
                index.exact.entry((*id).into()).or_insert(i);
            }
        }
        // Most literal segments first; config order breaks ties (sort is stable).
        index
            .patterns
            .sort_by_key(|p| std::cmp::Reverse(p.literal_segments));
        for (i, p) in index.patterns.iter().enumerate() {
            let path = ids
                .get(p.entry)
                .and_then(|id| split_spiffe(id))
                .map_or("", |(_, path)| path);
            index
                .by_prefix
                .entry(literal_prefix(path).into())
                .or_default()
                .push(i);
        }
        index
    }

    /// The position of the entry covering `agent_id`, exact ids before patterns.
    pub fn lookup(&self, agent_id: &AgentId) -> Option<usize> {
        self.lookup_str(agent_id.as_str())
    }

    fn lookup_str(&self, agent_id: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(agent_id) {
            return Some(i);
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
                    p.authority.as_ref() == authority && p.path.matches(path)
                });
            if found.is_some() {
                best = found;
            }
        }
        best.and_then(|i| self.patterns.get(i)).map(|p| p.entry)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn exact_count(&self) -> usize {
        self.exact.len()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::parse(s).unwrap()
    }

    #[test]
    fn exact_wins_over_pattern() {
        let idx = AgentIndex::new([
            "spiffe://example.org/agent/support/*",
            "spiffe://example.org/agent/support/vip",
        ]);
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/agent/support/vip")),
            Some(1)
        );
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/agent/support/bob")),
            Some(0)
        );
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/agent/support/bob/x")),
            None
        );
        assert_eq!(idx.lookup(&id("spiffe://example.org/agent/other")), None);
        assert_eq!(idx.lookup(&id("spiffe://evil.org/agent/support/bob")), None);
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
        let mut ids: Vec<String> = (0..100)
            .map(|i| format!("spiffe://example.org/fleet/f{i}/*"))
            .collect();
        ids.push("spiffe://example.org/fleet/**".into());
        ids.push("spiffe://example.org/*/f7/*".into());
        let idx = AgentIndex::new(ids.iter().map(String::as_str));
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/fleet/f42/bot")),
            Some(42)
        );
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/fleet/f7/bot")),
            Some(7)
        );
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/fleet/f420/bot")),
            Some(100)
        );
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/other/f7/bot")),
            Some(101)
        );
        assert_eq!(idx.lookup(&id("spiffe://example.org/fleet")), Some(100));
        assert_eq!(idx.lookup(&id("spiffe://example.org/nothing")), None);
        // Ids are never folded: another spelling of the trust domain is another id.
        assert_eq!(idx.lookup_str("spiffe://EXAMPLE.org/fleet/f1/x"), None);
    }

    #[test]
    fn more_specific_pattern_wins() {
        let idx = AgentIndex::new([
            "spiffe://example.org/agent/**",
            "spiffe://example.org/agent/support/*",
        ]);
        assert_eq!(
            idx.lookup(&id("spiffe://example.org/agent/support/a")),
            Some(1)
        );
        assert_eq!(idx.lookup(&id("spiffe://example.org/agent/x/y")), Some(0));
        assert_eq!(idx.exact_count(), 0);
        assert_eq!(idx.pattern_count(), 2);
    }
}
