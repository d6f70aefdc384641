//! Compiled roles and rules. Rules are filed by upstream and by the first path segment, so a
//! decision looks at the handful of rules that could match, not at every rule of a role.

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
    /// Per upstream index: rule positions filed by first literal segment, and the rest.
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    by_first: HashMap<Box<str>, Vec<u32>>,
    any_first: Vec<u32>,
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
            buckets: vec![Bucket::default(); upstream_count],
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
                let Some(bucket) = set.buckets.get_mut(u) else {
                    continue;
                };
                if compiled.paths.is_empty()
                    || compiled.paths.iter().any(|p| p.first_literal().is_none())
                {
                    bucket.any_first.push(pos);
                }
                for p in &compiled.paths {
                    if let Some(first) = p.first_literal() {
                        let list = bucket.by_first.entry(first.into()).or_default();
                        if list.last() != Some(&pos) {
                            list.push(pos);
                        }
                    }
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
        let Some(bucket) = self.buckets.get(input.upstream) else {
            return RuleMatch::NoMatch(None);
        };
        let first = first_segment(input.path);
        let keyed: &[u32] = if case_insensitive && first.bytes().any(|b| b.is_ascii_uppercase()) {
            bucket
                .by_first
                .get(first.to_ascii_lowercase().as_str())
                .map(|v| v.as_slice())
                .unwrap_or(&[])
        } else {
            bucket
                .by_first
                .get(first)
                .map(|v| v.as_slice())
                .unwrap_or(&[])
        };
        let mut near_miss = None;
        // Merge the two ascending lists so the first match in config order wins.
        let (mut i, mut j) = (0, 0);
        let any = bucket.any_first.as_slice();
        while i < keyed.len() || j < any.len() {
            let pos = match (keyed.get(i), any.get(j)) {
                (Some(&a), Some(&b)) if a == b => {
                    i += 1;
                    j += 1;
                    a
                }
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(_), Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            let Some(rule) = self.rules.get(pos as usize) else {
                continue;
            };
            if !rule.methods.contains(input.method) {
                continue;
            }
            if !rule.paths.is_empty() && !rule.paths.iter().any(|p| p.matches(input.path)) {
                continue;
            }
            if let Some(cond) = &rule.condition {
                if let Some(unmet) = (input.check_condition)(cond) {
                    near_miss.get_or_insert((pos, unmet));
                    continue;
                }
            }
            return RuleMatch::Matched(pos);
        }
        RuleMatch::NoMatch(near_miss)
    }
}

fn first_segment(path: &str) -> &str {
    let body = path.strip_prefix('/').unwrap_or(path);
    body.split('/').next().unwrap_or("")
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
