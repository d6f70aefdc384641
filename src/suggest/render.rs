//! The suggested roles as YAML text, and their names.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::learn::{RpcUse, RuleSpec};

/// A role `suggest` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    /// Where it was learned from, written as a comment above the role.
    pub comment: String,
    pub upstreams: Vec<String>,
    /// Kept from the roles it replaces: learning from traffic never drops the second factor.
    pub require_token: bool,
    pub rules: Vec<RuleSpec>,
}

/// A YAML scalar: plain where that cannot be misread, else double-quoted (JSON escaping is valid
/// YAML).
pub fn scalar(s: &str) -> String {
    const RESERVED: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "nan", "inf",
    ];
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s));
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// Paths and tool patterns are always quoted, as the examples write them.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `[a, b]`
pub fn flow_list<'a>(
    items: impl IntoIterator<Item = &'a String>,
    quote: fn(&str) -> String,
) -> String {
    let items: Vec<String> = items.into_iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// The role as the entry of a block mapping indented by `indent` spaces.
pub fn role_yaml(role: &RoleSpec, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut s = String::new();
    for line in role.comment.lines() {
        let _ = writeln!(s, "{pad}# {line}");
    }
    let _ = writeln!(s, "{pad}{}:", scalar(&role.name));
    let _ = writeln!(
        s,
        "{pad}  upstreams: {}",
        flow_list(&role.upstreams, scalar)
    );
    if role.require_token {
        let _ = writeln!(s, "{pad}  require_token: true");
    }
    if role.rules.is_empty() {
        let _ = writeln!(s, "{pad}  allow: []");
        return s;
    }
    let _ = writeln!(s, "{pad}  allow:");
    for rule in &role.rules {
        let _ = writeln!(s, "{pad}    - upstream: {}", scalar(&rule.upstream));
        if !rule.methods.is_empty() {
            let _ = writeln!(
                s,
                "{pad}      methods: {}",
                flow_list(&rule.methods, scalar)
            );
        }
        let _ = writeln!(s, "{pad}      paths: {}", flow_list(&rule.paths, quoted));
        if let Some(rpc) = &rule.rpc {
            rpc_yaml(&mut s, &pad, rpc);
        }
    }
    s
}

fn rpc_yaml(s: &mut String, pad: &str, rpc: &RpcUse) {
    if rpc.a2a {
        let _ = writeln!(s, "{pad}      a2a:");
        let _ = writeln!(
            s,
            "{pad}        methods: {}",
            flow_list(&rpc.methods, quoted)
        );
        return;
    }
    let lists = [
        ("tools", &rpc.tools),
        ("resources", &rpc.resources),
        ("prompts", &rpc.prompts),
        ("methods", &rpc.methods),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        // Session plumbing only: the path rule alone lets it through, and no tool.
        return;
    }
    let _ = writeln!(s, "{pad}      mcp:");
    for (key, list) in lists {
        if !list.is_empty() {
            let _ = writeln!(s, "{pad}        {key}: {}", flow_list(list, quoted));
        }
    }
}

/// The segments of an agent entry's id after the trust domain, wildcards spelled out.
fn id_words(id: &str) -> Vec<String> {
    let path = id
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .map_or(id, |(_, path)| path);
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "*" => "any".to_string(),
            "**" => "all".to_string(),
            other => other
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect(),
        })
        .collect()
}

/// A role name for each entry id: `learned-` and the shortest tail of the id's path that tells
/// the ids apart, then a number if a kept role already has that name.
pub fn role_names(ids: &[&str], taken: &BTreeSet<String>) -> Vec<String> {
    let words: Vec<Vec<String>> = ids.iter().map(|id| id_words(id)).collect();
    let tail = |w: &[String], k: usize| w[w.len().saturating_sub(k)..].join("-");
    let mut used = taken.clone();
    let mut names = Vec::with_capacity(ids.len());
    for (i, w) in words.iter().enumerate() {
        // A tail of wildcards alone (`any`) says nothing: take one literal segment with it.
        let min_k = w
            .iter()
            .rev()
            .take_while(|s| *s == "any" || *s == "all")
            .count()
            + 1;
        let k = (min_k.min(w.len().max(1))..=w.len().max(1))
            .find(|&k| {
                words
                    .iter()
                    .enumerate()
                    .all(|(j, other)| j == i || tail(other, k) != tail(w, k))
            })
            .unwrap_or(w.len());
        let base = format!("learned-{}", tail(w, k))
            .trim_end_matches('-')
            .to_string();
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        used.insert(name.clone());
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_plain_only_when_unambiguous() {
        assert_eq!(scalar("inventory"), "inventory");
        assert_eq!(scalar("GET"), "GET");
        assert_eq!(scalar("no"), "\"no\"");
        assert_eq!(scalar("8443"), "\"8443\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("x\"y"), "\"x\\\"y\"");
        assert_eq!(scalar(""), "\"\"");
    }

    #[test]
    fn names_use_the_shortest_distinguishing_tail() {
        let ids = [
            "spiffe://example.org/agent/inventory-bot",
            "spiffe://example.org/team-a/worker",
            "spiffe://example.org/team-b/worker",
            "spiffe://example.org/agent/support/*",
        ];
        let taken = BTreeSet::from(["learned-inventory-bot".to_string()]);
        assert_eq!(
            role_names(&ids, &taken),
            [
                "learned-inventory-bot-2",
                "learned-team-a-worker",
                "learned-team-b-worker",
                "learned-support-any"
            ]
        );
    }

    #[test]
    fn a_role_renders_as_yaml_the_schema_reads() {
        let role = RoleSpec {
            name: "learned-bot".into(),
            comment: "learned from 3 requests".into(),
            upstreams: vec!["inventory".into()],
            require_token: true,
            rules: vec![RuleSpec {
                upstream: "inventory".into(),
                methods: vec!["GET".into()],
                paths: vec!["/inventory/items/*".into()],
                rpc: None,
            }],
        };
        let text = format!("roles:\n{}", role_yaml(&role, 2));
        assert_eq!(
            text,
            "roles:\n  # learned from 3 requests\n  learned-bot:\n    upstreams: [inventory]\n    require_token: true\n    allow:\n      - upstream: inventory\n        methods: [GET]\n        paths: [\"/inventory/items/*\"]\n"
        );
        let parsed: std::collections::BTreeMap<String, crate::config::schema::RoleSection> =
            serde_saphyr::from_str(text.trim_start_matches("roles:\n")).unwrap();
        assert_eq!(parsed["learned-bot"].allow[0].paths, ["/inventory/items/*"]);
    }
}
