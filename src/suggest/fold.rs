//! Path folding: the paths an agent used on one upstream, as the fewest patterns that still name
//! only the shapes it used.
//!
//! A segment that is an identifier (a number, a UUID, hex of 8 or more characters, a long token, a
//! date: the anomaly engine's own notion of an id, so "path shape" means one thing everywhere)
//! becomes `*`. Under one parent, 10 or more distinct literal siblings are folded into `*` too:
//! they name instances (user names, SKUs, slugs), not kinds of things. Folding is done as paths
//! arrive, so memory stays bounded by the number of shapes, not by the number of distinct paths.

use std::collections::{BTreeMap, BTreeSet};

use crate::anomaly::is_identifier;

/// Distinct literal siblings under one parent from which they are folded into `*`.
pub const SIBLING_FOLD: usize = 10;
/// Deeper paths keep their first `MAX_DEPTH - 1` segments and end in `**`: no API nests this
/// deep, and a bound keeps the folding (which recurses over depth) safe on any input.
pub const MAX_DEPTH: usize = 32;

/// The methods one path shape was used with.
pub type Methods = BTreeSet<String>;

#[derive(Debug, Default, Clone)]
struct Node {
    literals: BTreeMap<String, Node>,
    star: Option<Box<Node>>,
    /// `**` below this node: only for paths cut at [`MAX_DEPTH`].
    rest: Methods,
    /// Methods used on exactly this path.
    methods: Methods,
    folded: bool,
}

impl Node {
    fn star(&mut self) -> &mut Node {
        self.star.get_or_insert_with(Box::default)
    }

    /// The child a segment goes to, folding the siblings when they become too many.
    fn child(&mut self, seg: &str) -> &mut Node {
        if self.folded || is_wildcard(seg) {
            return self.star();
        }
        if !self.literals.contains_key(seg) && self.literals.len() + 1 >= SIBLING_FOLD {
            self.folded = true;
            let siblings = std::mem::take(&mut self.literals);
            let star = self.star();
            for (_, node) in siblings {
                star.merge(node);
            }
            return star;
        }
        self.literals.entry(seg.to_string()).or_default()
    }

    /// Adds everything `other` holds; recursion depth is bounded by [`MAX_DEPTH`].
    fn merge(&mut self, other: Node) {
        self.methods.extend(other.methods);
        self.rest.extend(other.rest);
        if let Some(star) = other.star {
            self.star().merge(*star);
        }
        for (seg, node) in other.literals {
            self.child(&seg).merge(node);
        }
    }

    fn emit(&self, prefix: &mut Vec<String>, out: &mut Vec<(String, Methods)>) {
        if !self.methods.is_empty() {
            out.push((join(prefix, None), self.methods.clone()));
        }
        if !self.rest.is_empty() {
            out.push((join(prefix, Some("**")), self.rest.clone()));
        }
        for (seg, node) in &self.literals {
            prefix.push(seg.clone());
            node.emit(prefix, out);
            prefix.pop();
        }
        if let Some(star) = &self.star {
            prefix.push("*".into());
            star.emit(prefix, out);
            prefix.pop();
        }
    }
}

/// A segment that must become `*`: an identifier, or text a pattern would read as a wildcard.
fn is_wildcard(seg: &str) -> bool {
    is_identifier(seg) || seg.contains('*')
}

fn join(segs: &[String], last: Option<&str>) -> String {
    let mut s = String::new();
    for seg in segs.iter().map(String::as_str).chain(last) {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The paths of one upstream, folded as they are added.
#[derive(Debug, Default, Clone)]
pub struct PathTree {
    root: Node,
}

impl PathTree {
    /// Records `method path` (a normalised path, as the audit log has it).
    pub fn add(&mut self, method: &str, path: &str) {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        // `/a/b/` and `/a/b` are one resource: a pattern matches both.
        let body = path.strip_prefix('/').unwrap_or(path);
        let body = body.strip_suffix('/').unwrap_or(body);
        let segs: Vec<&str> = body.split('/').filter(|s| !s.is_empty()).collect();
        let mut node = &mut self.root;
        for (i, seg) in segs.iter().enumerate() {
            if i + 1 == MAX_DEPTH && segs.len() > MAX_DEPTH {
                node.rest.insert(method.to_string());
                return;
            }
            node = node.child(seg);
        }
        node.methods.insert(method.to_string());
    }

    /// Patterns with their methods: folded, with `GET` standing for `HEAD` too (as a rule on
    /// `GET` does), and without patterns another one already covers.
    pub fn patterns(&self) -> Vec<(String, Methods)> {
        let mut out = Vec::new();
        self.root.emit(&mut Vec::new(), &mut out);
        for (_, methods) in &mut out {
            without_head_beside_get(methods);
        }
        let covered: Vec<bool> = out
            .iter()
            .enumerate()
            .map(|(i, (p, m))| {
                out.iter()
                    .enumerate()
                    .any(|(j, (q, n))| i != j && p != q && covers(q, p) && methods_cover(n, m))
            })
            .collect();
        let mut kept: Vec<(String, Methods)> = out
            .into_iter()
            .zip(covered)
            .filter(|(_, c)| !c)
            .map(|(p, _)| p)
            .collect();
        kept.sort();
        kept
    }
}

/// Whether pattern `q` matches every path pattern `p` matches (`*` over a literal or `*`; a
/// trailing `**` over anything at or below its prefix).
fn covers(q: &str, p: &str) -> bool {
    let segs = |s: &'_ str| -> Vec<String> {
        s.split('/')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (qs, ps) = (segs(q), segs(p));
    let one = |a: &String, b: &String| (a == "*" && b != "**") || a == b;
    if qs.last().map(String::as_str) == Some("**") {
        let prefix = &qs[..qs.len() - 1];
        return ps.len() >= prefix.len() && prefix.iter().zip(&ps).all(|(a, b)| one(a, b));
    }
    qs.len() == ps.len() && qs.iter().zip(&ps).all(|(a, b)| one(a, b))
}

fn methods_cover(have: &Methods, need: &Methods) -> bool {
    need.iter()
        .all(|m| have.contains(m) || (m == "HEAD" && have.contains("GET")))
}

/// A rule on `GET` also covers `HEAD` (product contract, section 3): listing both says nothing more.
pub fn without_head_beside_get(methods: &mut Methods) {
    if methods.contains("GET") {
        methods.remove("HEAD");
    }
}

#[cfg(test)]
mod tests;
