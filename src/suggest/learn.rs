//! What each `agents` entry was seen doing, and the smallest role that allows exactly that.
//!
//! An entry is learned as a whole: a pattern entry (`spiffe://example.org/agent/support/*`) gets
//! one role from the union of what its members did, because that role is what every member holds.

use std::collections::{BTreeMap, BTreeSet};

use super::fold::{Methods, PathTree};
use super::records::Seen;

/// JSON-RPC traffic on one path of an `mcp` or `a2a` route.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RpcUse {
    pub a2a: bool,
    /// HTTP methods on the path: POST for messages, GET for the server's stream, DELETE.
    pub http_methods: Methods,
    pub tools: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    pub prompts: BTreeSet<String>,
    /// Other client requests (`completion/complete`, ...), or every method on an A2A route.
    pub methods: BTreeSet<String>,
}

/// What was seen on one upstream.
#[derive(Debug, Default, Clone)]
pub struct UpstreamUse {
    pub paths: PathTree,
    pub rpc: BTreeMap<String, RpcUse>,
}

/// Everything one entry's agents did.
#[derive(Debug, Default, Clone)]
pub struct Learned {
    pub requests: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Distinct agent ids seen (one for an exact entry, the members seen for a pattern).
    pub members: BTreeSet<String>,
    pub upstreams: BTreeMap<String, UpstreamUse>,
}

impl Learned {
    pub fn add(&mut self, seen: &Seen) {
        self.requests += 1;
        if let Some(t) = seen.unix_ms {
            self.first_ms = Some(self.first_ms.map_or(t, |f| f.min(t)));
            self.last_ms = Some(self.last_ms.map_or(t, |l| l.max(t)));
        }
        if !self.members.contains(&seen.agent) {
            self.members.insert(seen.agent.clone());
        }
        let up = self.upstreams.entry(seen.upstream.clone()).or_default();
        let path = normal_path(&seen.path);
        match (&seen.rpc_method, up.rpc.get_mut(path)) {
            (None, None) => up.paths.add(&seen.method, path),
            (None, Some(rpc)) => {
                rpc.http_methods.insert(seen.method.clone());
            }
            (Some(method), _) => {
                let rpc = up.rpc.entry(path.to_string()).or_insert_with(|| RpcUse {
                    a2a: !is_mcp_method(method),
                    ..RpcUse::default()
                });
                rpc.http_methods.insert(seen.method.clone());
                rpc.learn(method, seen.rpc_target.as_deref());
            }
        }
    }
}

/// One trailing `/` is the same resource; the query is not part of a rule.
fn normal_path(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// MCP's method vocabulary; anything else on a JSON-RPC route is read as A2A.
fn is_mcp_method(method: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "tools/",
        "resources/",
        "prompts/",
        "notifications/",
        "completion/",
        "logging/",
        "sampling/",
        "roots/",
        "elicitation/",
    ];
    matches!(method, "initialize" | "ping") || PREFIXES.iter().any(|p| method.starts_with(p))
}

impl RpcUse {
    fn learn(&mut self, method: &str, target: Option<&str>) {
        if self.a2a {
            self.methods.insert(method.to_string());
            return;
        }
        let set = match method {
            "tools/call" => &mut self.tools,
            "resources/read" => &mut self.resources,
            "prompts/get" => &mut self.prompts,
            // Session plumbing passes wherever a rule covers the path.
            m if m == "initialize"
                || m == "ping"
                || m.starts_with("notifications/")
                || m.ends_with("/list") =>
            {
                return
            }
            m => {
                self.methods.insert(m.to_string());
                return;
            }
        };
        if let Some(t) = target.filter(|t| !t.is_empty()) {
            set.insert(t.to_string());
        }
    }
}

/// One allow rule of a suggested role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub upstream: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub rpc: Option<RpcUse>,
}

/// The rules for one upstream: path patterns grouped by the methods used on them, then one rule
/// per JSON-RPC path with its tools (or A2A methods).
pub fn rules_for(upstream: &str, used: &UpstreamUse) -> Vec<RuleSpec> {
    let mut rpc = used.rpc.clone();
    let mut by_methods: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (pattern, methods) in used.paths.patterns() {
        // Seen before its first JSON-RPC message (a GET for the stream): part of that path's rule.
        if let Some(r) = rpc.get_mut(&pattern) {
            r.http_methods.extend(methods);
            continue;
        }
        by_methods
            .entry(methods.into_iter().collect())
            .or_default()
            .push(pattern);
    }
    let mut rules: Vec<RuleSpec> = by_methods
        .into_iter()
        .map(|(methods, paths)| RuleSpec {
            upstream: upstream.to_string(),
            methods,
            paths,
            rpc: None,
        })
        .collect();
    // Most-used shapes read first: sort rules by their first path.
    rules.sort_by(|a, b| a.paths.cmp(&b.paths));
    for (path, mut r) in rpc {
        super::fold::without_head_beside_get(&mut r.http_methods);
        rules.push(RuleSpec {
            upstream: upstream.to_string(),
            methods: r.http_methods.iter().cloned().collect(),
            paths: vec![path],
            rpc: Some(r),
        });
    }
    rules
}

#[cfg(test)]
mod tests;
