//! The agent-protocol parts of a config: `mcp` and `a2a` rule sections must be able to apply (a
//! route of that protocol leads to the rule's upstream), name things in a form that can match,
//! and not name what needs no rule; `pin_tools` needs an MCP route.

use std::collections::BTreeSet;

use super::Report;
use crate::config::schema::{A2aSection, McpSection, RouteProtocol, RuleSection};
use crate::config::suggest::did_you_mean;
use crate::protocol::message::{is_mcp_plumbing, A2A_METHODS, MCP_METHODS};

/// The upstreams a route of `protocol` leads to.
fn reached(r: &Report<'_>, protocol: RouteProtocol) -> BTreeSet<String> {
    r.cfg
        .file
        .routes
        .iter()
        .filter(|route| route.protocol == protocol)
        .map(|route| route.upstream.clone())
        .collect()
}

pub(super) fn check(r: &mut Report<'_>) {
    let mcp = reached(r, RouteProtocol::Mcp);
    let a2a = reached(r, RouteProtocol::A2a);
    for (name, up) in &r.cfg.file.upstreams {
        if up.pin_tools != crate::config::schema::PinTools::Off && !mcp.contains(name) {
            r.err(
                &format!("upstreams.{name}.pin_tools"),
                "pins MCP tools, but no route with `protocol: mcp` leads to this upstream",
            );
        }
    }
    let cfg = r.cfg;
    for (name, role) in &cfg.file.roles {
        for (kind, rules) in [("allow", &role.allow), ("deny", &role.deny)] {
            for (i, rule) in rules.iter().enumerate() {
                let base = format!("roles.{name}.{kind}[{i}]");
                let targets: Vec<&String> = match &rule.upstream {
                    Some(u) => vec![u],
                    None => role.upstreams.iter().collect(),
                };
                let applies = |set: &BTreeSet<String>| targets.iter().any(|u| set.contains(*u));
                if let Some(m) = &rule.mcp {
                    if !applies(&mcp) {
                        r.err(&format!("{base}.mcp"), "never applies: no route with `protocol: mcp` leads to this rule's upstreams");
                    }
                    check_mcp(r, &format!("{base}.mcp"), m, kind == "allow");
                }
                if let Some(a) = &rule.a2a {
                    if !applies(&a2a) {
                        r.err(&format!("{base}.a2a"), "never applies: no route with `protocol: a2a` leads to this rule's upstreams");
                    }
                    check_a2a(r, &format!("{base}.a2a"), a, kind == "allow");
                }
                check_empty_deny(r, &base, rule, kind == "deny");
            }
        }
    }
}

fn check_empty_deny(r: &mut Report<'_>, base: &str, rule: &RuleSection, deny: bool) {
    let empty_mcp = rule.mcp.as_ref().is_some_and(|m| {
        m.tools.is_empty() && m.resources.is_empty() && m.prompts.is_empty() && m.methods.is_empty()
    });
    let empty_a2a = rule.a2a.as_ref().is_some_and(|a| a.methods.is_empty());
    if deny && (empty_mcp || empty_a2a) {
        r.err(
            base,
            "this deny rule names nothing to deny in its mcp/a2a part",
        );
    }
}

/// A name pattern: not empty, no blanks or control characters.
fn name_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("an empty name never matches".into());
    }
    text.chars()
        .find(|c| c.is_whitespace() || c.is_control())
        .map(|c| format!("\"{text}\" contains {c:?}: names are matched as written"))
}

fn check_names(r: &mut Report<'_>, base: &str, key: &str, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        if let Some(e) = name_problem(n) {
            r.err(&format!("{base}.{key}[{i}]"), e);
        }
    }
}

fn check_mcp(r: &mut Report<'_>, base: &str, m: &McpSection, allow: bool) {
    check_names(r, base, "tools", &m.tools);
    check_names(r, base, "prompts", &m.prompts);
    check_names(r, base, "resources", &m.resources);
    for (i, method) in m.methods.iter().enumerate() {
        let at = format!("{base}.methods[{i}]");
        if let Some(e) = name_problem(method) {
            r.err(&at, e);
            continue;
        }
        let by_name = match method.as_str() {
            "tools/call" => Some("tools"),
            "resources/read" => Some("resources"),
            "prompts/get" => Some("prompts"),
            _ => None,
        };
        if let (true, Some(key)) = (allow, by_name) {
            r.err(&at, format!("`{method}` is allowed by naming what it uses: list them in mcp.{key} (`*` for all)"));
        } else if allow && (is_mcp_plumbing(method) || method.ends_with("/list")) {
            r.err(&at, format!("`{method}` is session plumbing: it passes wherever an allow rule covers the path"));
        } else if !MCP_METHODS.contains(&method.as_str()) && !method.contains('*') {
            let hint = did_you_mean(method, MCP_METHODS.iter().copied());
            if !hint.is_empty() {
                r.err(&at, format!("unknown MCP method \"{method}\"{hint}"));
            }
        }
    }
    if !m.arguments.is_empty() && m.tools.is_empty() {
        r.err(
            &format!("{base}.arguments"),
            "argument conditions apply to tools/call: name the tools in mcp.tools",
        );
    }
    for (name, values) in &m.arguments {
        if values.is_empty() {
            r.err(
                &format!("{base}.arguments.{name}"),
                "an empty list of values never holds",
            );
        }
    }
}

fn check_a2a(r: &mut Report<'_>, base: &str, a: &A2aSection, allow: bool) {
    if allow && a.methods.is_empty() {
        r.err(
            &format!("{base}.methods"),
            "names no method: an a2a part allows the methods it names",
        );
    }
    for (i, method) in a.methods.iter().enumerate() {
        let at = format!("{base}.methods[{i}]");
        if let Some(e) = name_problem(method) {
            r.err(&at, e);
        } else if !A2A_METHODS.contains(&method.as_str()) && !method.contains('*') {
            let hint = did_you_mean(method, A2A_METHODS.iter().copied());
            if !hint.is_empty() {
                r.err(&at, format!("unknown A2A method \"{method}\"{hint}"));
            }
        }
    }
}
