//! Compiled roles and rules. Rules are filed by upstream and then in a tree of the leading literal
//! segments of their path patterns, so a decision looks at the handful of rules that could match,
//! not at every rule of a role. One level would not do: routes select upstreams by path prefix,
//! so every rule of an upstream usually shares its first segment (`/payroll/...`).

use foldhash::HashMap;
use std::sync::Arc;

use http::Method;

use super::when::{Condition, Unmet, WhenSpec};
use crate::ids::{UpstreamId, UpstreamSet};
use crate::pattern::{PathPattern, Segments};

/// HTTP methods a rule admits: the common ones as bits, extension methods listed.
#[derive(Debug, Clone, Default)]
pub struct MethodSet {
    bits: u16,
    other: Vec<Method>,
}

const KNOWN: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

fn method_bit(m: &Method) -> Option<u16> {
    KNOWN.iter().position(|k| k == m).map(|i| 1 << i)
}

impl MethodSet {
    /// An empty list admits every method.
    pub fn new(methods: &[String]) -> Self {
        let mut set = MethodSet::default();
        for m in methods {
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) => match method_bit(&method) {
                    Some(b) => set.bits |= b,
                    None => set.other.push(method),
                },
                // Validation refuses this; an unparsable method admits nothing extra.
                Err(_) => set.bits |= 1 << 15,
            }
        }
        set
    }

    pub fn any(&self) -> bool {
        self.bits == 0 && self.other.is_empty()
    }

    /// Whether `m` is admitted. A rule on GET also covers HEAD: servers answer HEAD with the GET
    /// handler minus the body, so a deny on GET must not let HEAD through.
    pub fn contains(&self, m: &Method) -> bool {
        if self.any() {
            return true;
        }
        let admitted = |m: &Method| match method_bit(m) {
            Some(b) => self.bits & b != 0,
            None => self.other.contains(m),
        };
        admitted(m) || (*m == Method::HEAD && admitted(&Method::GET))
    }
}

/// Which upstreams a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleUpstream {
    /// No `upstream` key: every upstream of its role.
    Role,
    Named(UpstreamId),
    /// A name validation refused; kept so the rule's position (its id) stays the config's.
    Unknown,
}

/// One allow or deny rule as written, its upstream resolved.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub upstream: RuleUpstream,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub when: Option<WhenSpec>,
}

/// One compiled allow or deny rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub methods: MethodSet,
    /// Empty admits every path.
    pub paths: Vec<PathPattern>,
    pub condition: Option<Condition>,
}

/// Rules of one kind (allow or deny) of one role, with their index.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Per upstream index: the root of that upstream's literal-prefix tree.
    buckets: Vec<Node>,
}

/// Literal segments deeper than this are not indexed; the pattern match still checks them.
/// Four covers `/route-prefix/resource/id/sub-resource`, and bounds the walk per request.
const INDEX_DEPTH: usize = 4;

/// A node of the literal-prefix tree: the rules whose indexed literal prefix ends here, in config
/// order, and the literal segments that lead deeper.
#[derive(Debug, Clone, Default)]
struct Node {
    rules: Vec<u32>,
    children: HashMap<Box<str>, Node>,
}

impl Node {
    /// Files rule `pos` under `prefix`, once per node even when several of its patterns lead
    /// there.
    fn file(&mut self, prefix: &[&str], pos: u32) {
        let mut node = self;
        for seg in prefix.iter().take(INDEX_DEPTH) {
            node = node.children.entry((*seg).into()).or_default();
        }
        if node.rules.last() != Some(&pos) {
            node.rules.push(pos);
        }
    }

    /// The rule lists of every node on `path`'s walk, root first; at most `INDEX_DEPTH + 1`.
    fn candidates<'a>(&'a self, path: &str, case_insensitive: bool) -> Candidates<'a> {
        let mut out = Candidates {
            lists: [&[]; INDEX_DEPTH + 1],
            len: 0,
        };
        out.push(&self.rules);
        let body = path.strip_prefix('/').unwrap_or(path);
        let mut node = self;
        for seg in Segments::of(body).take(INDEX_DEPTH) {
            let next = if case_insensitive && seg.bytes().any(|b| b.is_ascii_uppercase()) {
                node.children.get(seg.to_ascii_lowercase().as_str())
            } else {
                node.children.get(seg)
            };
            let Some(next) = next else {
                break;
            };
            node = next;
            out.push(&node.rules);
        }
        out
    }
}

/// Rule lists gathered on one walk, without allocating.
struct Candidates<'a> {
    lists: [&'a [u32]; INDEX_DEPTH + 1],
    len: usize,
}

impl<'a> Candidates<'a> {
    fn push(&mut self, list: &'a [u32]) {
        if let Some(slot) = self.lists.get_mut(self.len) {
            *slot = list;
            self.len += 1;
        }
    }

    fn lists(&self) -> &[&'a [u32]] {
        &self.lists[..self.len]
    }
}

/// How one rule answers one request.
enum Verdict {
    Matches,
    Unmet(Unmet),
    Misses,
}

/// How a rule set answered, for the decision and for `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch {
    /// Rule at this position matched.
    Matched(u32),
    /// No rule matched; the first rule whose method and path matched but whose condition failed.
    NoMatch(Option<(u32, Unmet)>),
}

/// What the request looks like to the rules.
pub struct RuleInput<'a> {
    pub upstream: UpstreamId,
    pub method: &'a Method,
    pub path: &'a str,
    pub check_condition: &'a dyn Fn(&Condition) -> Option<Unmet>,
}

impl RuleSet {
    /// Compiles `rules`; a rule without `upstream` applies to every upstream of `role_upstreams`.
    /// `case_insensitive` is set for deny rules.
    pub fn compile(
        rules: &[RuleSpec],
        role_upstreams: &UpstreamSet,
        upstream_count: usize,
        case_insensitive: bool,
    ) -> Self {
        let mut set = RuleSet {
            rules: Vec::with_capacity(rules.len()),
            buckets: vec![Node::default(); upstream_count],
        };
        for (pos, r) in rules.iter().enumerate() {
            let pos = pos as u32;
            let compiled = CompiledRule {
                methods: MethodSet::new(&r.methods),
                paths: r
                    .paths
                    .iter()
                    .map(|p| PathPattern::new(p, case_insensitive))
                    .collect(),
                condition: r.when.as_ref().map(Condition::compile),
            };
            let targets: Vec<UpstreamId> = match r.upstream {
                RuleUpstream::Role => role_upstreams
                    .iter()
                    .filter(|u| u.index() < upstream_count)
                    .collect(),
                RuleUpstream::Named(u) => vec![u],
                // A rule naming an unknown upstream files nowhere: it can never allow.
                RuleUpstream::Unknown => vec![],
            };
            for u in targets {
                let Some(root) = set.buckets.get_mut(u.index()) else {
                    continue;
                };
                if compiled.paths.is_empty() {
                    root.file(&[], pos);
                }
                for p in &compiled.paths {
                    root.file(&p.literal_prefix().collect::<Vec<_>>(), pos);
                }
            }
            set.rules.push(compiled);
        }
        set
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule (in config order) that matches.
    pub fn first_match(&self, input: &RuleInput<'_>, case_insensitive: bool) -> RuleMatch {
        let Some(root) = self.buckets.get(input.upstream.index()) else {
            return RuleMatch::NoMatch(None);
        };
        let candidates = root.candidates(input.path, case_insensitive);
        // Each list is ascending, so the first match in config order is the smallest first match
        // of any list; a list is abandoned once it passes the best match found so far.
        let mut best: Option<u32> = None;
        let mut near_miss: Option<(u32, Unmet)> = None;
        for list in candidates.lists() {
            for &pos in *list {
                if best.is_some_and(|b| pos >= b) {
                    break;
                }
                match self.verdict(pos, input) {
                    Verdict::Matches => {
                        best = Some(pos);
                        break;
                    }
                    Verdict::Unmet(unmet) if near_miss.is_none_or(|(p, _)| pos < p) => {
                        near_miss = Some((pos, unmet));
                    }
                    Verdict::Unmet(_) | Verdict::Misses => {}
                }
            }
        }
        match best {
            Some(pos) => RuleMatch::Matched(pos),
            None => RuleMatch::NoMatch(near_miss),
        }
    }

    /// Every rule that matches, in config order (an agent-protocol route judges them all against
    /// the message).
    pub fn all_matches(&self, input: &RuleInput<'_>, case_insensitive: bool) -> Vec<u32> {
        let Some(root) = self.buckets.get(input.upstream.index()) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = root
            .candidates(input.path, case_insensitive)
            .lists()
            .iter()
            .flat_map(|l| l.iter().copied())
            .filter(|&pos| matches!(self.verdict(pos, input), Verdict::Matches))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn verdict(&self, pos: u32, input: &RuleInput<'_>) -> Verdict {
        let Some(rule) = self.rules.get(pos as usize) else {
            return Verdict::Misses;
        };
        if !rule.methods.contains(input.method) {
            return Verdict::Misses;
        }
        if !rule.paths.is_empty() && !rule.paths.iter().any(|p| p.matches(input.path)) {
            return Verdict::Misses;
        }
        match rule
            .condition
            .as_ref()
            .and_then(|c| (input.check_condition)(c))
        {
            Some(unmet) => Verdict::Unmet(unmet),
            None => Verdict::Matches,
        }
    }
}

/// A compiled role.
#[derive(Debug, Clone)]
pub struct CompiledRole {
    pub name: Arc<str>,
    pub upstreams: UpstreamSet,
    pub require_token: bool,
    pub allow: RuleSet,
    pub deny: RuleSet,
}

#[cfg(test)]
mod tests;
