//! Compiled roles and rules. Rules are filed by upstream and then in a tree of the leading literal
//! segments of their path patterns, so a decision looks at the handful of rules that could match,
//! not at every rule of a role. One level would not do: routes select upstreams by path prefix,
//! so every rule of an upstream usually shares its first segment (`/payroll/...`).

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use super::pattern::PathPattern;
use super::when::{Condition, Unmet};
use crate::config::schema::RuleSection;

/// A set of upstream indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSet {
    words: Box<[u64]>,
}

impl UpstreamSet {
    pub fn with_capacity(n: usize) -> Self {
        UpstreamSet {
            words: vec![0; n.div_ceil(64).max(1)].into_boxed_slice(),
        }
    }

    pub fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union_with(&mut self, other: &UpstreamSet) {
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.words.len() * 64).filter(|i| self.contains(*i))
    }
}

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
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
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

    pub fn contains(&self, m: &Method) -> bool {
        if self.any() {
            return true;
        }
        match method_bit(m) {
            Some(b) => self.bits & b != 0,
            None => self.other.contains(m),
        }
    }
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
        for seg in body.split('/').take(INDEX_DEPTH) {
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
    pub upstream: usize,
    pub method: &'a Method,
    pub path: &'a str,
    pub check_condition: &'a dyn Fn(&Condition) -> Option<Unmet>,
}

impl RuleSet {
    /// Compiles `rules`; a rule without `upstream` applies to every upstream of `role_upstreams`.
    /// `case_insensitive` is set for deny rules.
    pub fn compile(
        rules: &[RuleSection],
        role_upstreams: &UpstreamSet,
        upstream_index: &dyn Fn(&str) -> Option<usize>,
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
            let targets: Vec<usize> = match &r.upstream {
                // A rule naming an unknown upstream files nowhere: it can never allow.
                Some(name) => upstream_index(name).into_iter().collect(),
                None => role_upstreams
                    .iter()
                    .filter(|i| *i < upstream_count)
                    .collect(),
            };
            for u in targets {
                let Some(root) = set.buckets.get_mut(u) else {
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
        let Some(root) = self.buckets.get(input.upstream) else {
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
mod tests {
    use super::*;

    fn rule(upstream: Option<&str>, methods: &[&str], paths: &[&str]) -> RuleSection {
        RuleSection {
            upstream: upstream.map(String::from),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            when: None,
        }
    }

    fn index(name: &str) -> Option<usize> {
        ["inventory", "payroll"].iter().position(|n| *n == name)
    }

    fn input<'a>(u: usize, m: &'a Method, p: &'a str) -> RuleInput<'a> {
        RuleInput {
            upstream: u,
            method: m,
            path: p,
            check_condition: &|_| None,
        }
    }

    #[test]
    fn first_match_in_config_order_across_buckets() {
        let mut ups = UpstreamSet::with_capacity(2);
        ups.insert(0);
        let set = RuleSet::compile(
            &[
                rule(None, &["GET"], &["/**"]),
                rule(None, &["GET"], &["/inventory/items"]),
                rule(None, &["POST"], &["/inventory/orders"]),
            ],
            &ups,
            &index,
            2,
            false,
        );
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            set.first_match(&input(0, &get, "/inventory/items"), false),
            RuleMatch::Matched(0)
        );
        assert_eq!(
            set.first_match(&input(0, &post, "/inventory/orders"), false),
            RuleMatch::Matched(2)
        );
        assert_eq!(
            set.first_match(&input(0, &post, "/inventory/items"), false),
            RuleMatch::NoMatch(None)
        );
        // Upstream 1 is outside the role: rules without `upstream` do not file there.
        assert_eq!(
            set.first_match(&input(1, &get, "/x"), false),
            RuleMatch::NoMatch(None)
        );
    }

    #[test]
    fn rule_naming_an_upstream_files_only_there() {
        let mut ups = UpstreamSet::with_capacity(2);
        ups.insert(0);
        ups.insert(1);
        let set = RuleSet::compile(
            &[rule(Some("payroll"), &[], &["/pay/*"])],
            &ups,
            &index,
            2,
            false,
        );
        let get = Method::GET;
        assert_eq!(
            set.first_match(&input(1, &get, "/pay/1"), false),
            RuleMatch::Matched(0)
        );
        assert_eq!(
            set.first_match(&input(0, &get, "/pay/1"), false),
            RuleMatch::NoMatch(None)
        );
    }

    #[test]
    fn deeper_literal_prefixes_keep_config_order() {
        let mut ups = UpstreamSet::with_capacity(1);
        ups.insert(0);
        let set = RuleSet::compile(
            &[
                rule(None, &["GET"], &["/svc/orders/*/detail"]),
                rule(None, &["GET"], &["/svc/**"]),
                rule(None, &["GET"], &["/svc/orders/42"]),
                rule(None, &["POST"], &["/svc/orders/**", "/svc/items"]),
                rule(None, &[], &[]),
            ],
            &ups,
            &index,
            2,
            false,
        );
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        let at = |m: &Method, p: &str| set.first_match(&input(0, m, p), false);
        assert_eq!(at(&get, "/svc/orders/42"), RuleMatch::Matched(1));
        assert_eq!(at(&get, "/svc/orders/7/detail"), RuleMatch::Matched(0));
        assert_eq!(at(&post, "/svc/items"), RuleMatch::Matched(3));
        assert_eq!(at(&post, "/svc/orders/7/lines"), RuleMatch::Matched(3));
        assert_eq!(at(&post, "/svc/other"), RuleMatch::Matched(4));
        assert_eq!(at(&delete, "/elsewhere"), RuleMatch::Matched(4));
    }

    #[test]
    fn near_miss_is_the_first_in_config_order_across_depths() {
        let mut ups = UpstreamSet::with_capacity(1);
        ups.insert(0);
        let when = crate::config::schema::WhenSection {
            source_cidrs: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        let conditional = |paths: &[&str]| RuleSection {
            when: Some(when.clone()),
            ..rule(None, &[], paths)
        };
        let set = RuleSet::compile(
            &[
                conditional(&["/svc/orders/**"]),
                conditional(&["/svc/**"]),
                rule(None, &["POST"], &["/svc/orders/**"]),
            ],
            &ups,
            &index,
            2,
            false,
        );
        let get = Method::GET;
        let post = Method::POST;
        let unmet = RuleInput {
            upstream: 0,
            method: &get,
            path: "/svc/orders/1",
            check_condition: &|_| Some(Unmet::SourceCidr),
        };
        assert_eq!(
            set.first_match(&unmet, false),
            RuleMatch::NoMatch(Some((0, Unmet::SourceCidr)))
        );
        let unmet_post = RuleInput {
            method: &post,
            ..unmet
        };
        assert_eq!(set.first_match(&unmet_post, false), RuleMatch::Matched(2));
    }

    #[test]
    fn deep_deny_index_ignores_case() {
        let mut ups = UpstreamSet::with_capacity(1);
        ups.insert(0);
        let set = RuleSet::compile(
            &[rule(None, &[], &["/Svc/Admin/users/**"])],
            &ups,
            &index,
            2,
            true,
        );
        let get = Method::GET;
        assert_eq!(
            set.first_match(&input(0, &get, "/SVC/admin/Users/1"), true),
            RuleMatch::Matched(0)
        );
        assert_eq!(
            set.first_match(&input(0, &get, "/svc/admin/userz"), true),
            RuleMatch::NoMatch(None)
        );
    }

    #[test]
    fn deny_index_ignores_case() {
        let mut ups = UpstreamSet::with_capacity(1);
        ups.insert(0);
        let set = RuleSet::compile(&[rule(None, &[], &["/Admin/**"])], &ups, &index, 2, true);
        let get = Method::GET;
        assert_eq!(
            set.first_match(&input(0, &get, "/ADMIN/x"), true),
            RuleMatch::Matched(0)
        );
        assert_eq!(
            set.first_match(&input(0, &get, "/admin"), true),
            RuleMatch::Matched(0)
        );
    }

    #[test]
    fn methods() {
        let s = MethodSet::new(&["get".into(), "PURGE".into()]);
        assert!(s.contains(&Method::GET));
        assert!(!s.contains(&Method::POST));
        assert!(s.contains(&Method::from_bytes(b"PURGE").unwrap()));
        assert!(MethodSet::new(&[]).contains(&Method::DELETE));
    }

    #[test]
    fn upstream_set() {
        let mut s = UpstreamSet::with_capacity(130);
        s.insert(0);
        s.insert(129);
        assert!(s.contains(129) && s.contains(0) && !s.contains(1));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 129]);
    }
}
