//! The `mcp` and `a2a` parts of allow and deny rules, compiled, and how they judge a message.
//!
//! A rule's HTTP part (upstream, methods, paths, `when`) is matched by `authz`; the rules whose
//! HTTP part covers the request are then judged here on the message:
//! - a deny rule without an `mcp`/`a2a` part refuses everything on its paths; with one, only the
//!   calls it names (a deny with `arguments` only when they hold);
//! - session plumbing passes under any covering allow rule; a tool, resource, prompt or other
//!   method needs a covering allow rule whose part names it (and whose `arguments` hold).

use super::glob::Glob;
use super::json::Json;
use super::message::{Call, Message};
use super::Protocol;
use crate::decision::RuleRef;

/// One listed value of `mcp.arguments`.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    /// A string; `*` globs.
    Str(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// The `mcp` part of a rule, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpSpec {
    pub tools: Vec<String>,
    pub resources: Vec<String>,
    pub prompts: Vec<String>,
    pub methods: Vec<String>,
    pub arguments: Vec<(String, Vec<ArgValue>)>,
}

/// The `mcp` / `a2a` parts of one rule, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpcSpec {
    pub mcp: Option<McpSpec>,
    /// `a2a.methods`.
    pub a2a: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
enum ArgMatch {
    Str(Glob),
    Number(f64),
    Bool(bool),
    Null,
}

impl ArgMatch {
    fn holds(&self, v: &Json<'_>) -> bool {
        match (self, v) {
            (ArgMatch::Str(g), Json::Str(s)) => g.matches(s),
            (ArgMatch::Number(a), Json::Number(b)) => a == b,
            (ArgMatch::Bool(a), Json::Bool(b)) => a == b,
            (ArgMatch::Null, Json::Null) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct McpMatcher {
    tools: Vec<Glob>,
    resources: Vec<Glob>,
    prompts: Vec<Glob>,
    methods: Vec<Glob>,
    arguments: Vec<(Box<str>, Vec<ArgMatch>)>,
}

/// The compiled `mcp` / `a2a` parts of one rule.
#[derive(Debug, Clone, Default)]
pub struct RpcRule {
    mcp: Option<McpMatcher>,
    a2a: Option<Vec<Glob>>,
}

fn any(globs: &[Glob], text: &str) -> bool {
    globs.iter().any(|g| g.matches(text))
}

impl RpcRule {
    pub fn compile(spec: &RpcSpec) -> Self {
        let names = |v: &[String]| v.iter().map(|s| Glob::name(s)).collect::<Vec<_>>();
        RpcRule {
            mcp: spec.mcp.as_ref().map(|m| McpMatcher {
                tools: names(&m.tools),
                resources: m.resources.iter().map(|s| Glob::uri(s)).collect(),
                prompts: names(&m.prompts),
                methods: names(&m.methods),
                arguments: m
                    .arguments
                    .iter()
                    .map(|(k, vals)| {
                        let vals = vals
                            .iter()
                            .map(|v| match v {
                                ArgValue::Str(s) => ArgMatch::Str(Glob::name(s)),
                                ArgValue::Number(n) => ArgMatch::Number(*n),
                                ArgValue::Bool(b) => ArgMatch::Bool(*b),
                                ArgValue::Null => ArgMatch::Null,
                            })
                            .collect();
                        (k.as_str().into(), vals)
                    })
                    .collect(),
            }),
            a2a: spec.a2a.as_ref().map(|m| names(m)),
        }
    }

    /// Whether, as an allow rule, it permits `msg` (plumbing is judged by the caller).
    pub fn allows(&self, msg: &Message<'_>) -> bool {
        match &msg.call {
            Call::Plumbing | Call::List(_) => true,
            Call::Tool { name, arguments } => self
                .mcp
                .as_ref()
                .is_some_and(|m| any(&m.tools, name) && m.arguments_hold(*arguments)),
            Call::Resource { uri } => self.mcp.as_ref().is_some_and(|m| any(&m.resources, uri)),
            Call::Prompt { name } => self.mcp.as_ref().is_some_and(|m| any(&m.prompts, name)),
            Call::Method => match msg.protocol {
                Protocol::Mcp => self
                    .mcp
                    .as_ref()
                    .is_some_and(|m| any(&m.methods, msg.method)),
                Protocol::A2a => self.a2a.as_ref().is_some_and(|a| any(a, msg.method)),
            },
            Call::Send { .. } | Call::OnTask { .. } => {
                self.a2a.as_ref().is_some_and(|a| any(a, msg.method))
            }
        }
    }

    /// Whether, as a deny rule, it refuses `msg`.
    pub fn denies(&self, msg: &Message<'_>) -> bool {
        let by_method = |m: &[Glob]| !msg.method.is_empty() && any(m, msg.method);
        if msg.protocol == Protocol::A2a {
            return self.a2a.as_ref().is_some_and(|a| by_method(a));
        }
        if let Some(m) = &self.mcp {
            if by_method(&m.methods) {
                return true;
            }
            let named = match &msg.call {
                Call::Tool { name, arguments } => {
                    any(&m.tools, name) && m.arguments_hold(*arguments)
                }
                Call::Resource { uri } => any(&m.resources, uri),
                Call::Prompt { name } => any(&m.prompts, name),
                _ => false,
            };
            return named;
        }
        false
    }

    /// Whether, as an allow rule, it lets `entry` of a list be used (argument conditions aside:
    /// a tool allowed only under conditions is listed).
    pub fn allows_entry(&self, kind: super::ListKind, entry: &str) -> bool {
        let Some(m) = &self.mcp else { return false };
        match kind {
            super::ListKind::Tools => any(&m.tools, entry),
            super::ListKind::Prompts => any(&m.prompts, entry),
            super::ListKind::Resources | super::ListKind::ResourceTemplates => {
                any(&m.resources, entry)
            }
        }
    }

    /// Whether, as a deny rule, it hides `entry` of a list: it names it without conditions, or
    /// denies the method that would use it.
    pub fn hides_entry(&self, kind: super::ListKind, entry: &str) -> bool {
        let Some(m) = &self.mcp else { return false };
        let method = match kind {
            super::ListKind::Tools => "tools/call",
            super::ListKind::Prompts => "prompts/get",
            super::ListKind::Resources | super::ListKind::ResourceTemplates => "resources/read",
        };
        if any(&m.methods, method) {
            return true;
        }
        match kind {
            super::ListKind::Tools => m.arguments.is_empty() && any(&m.tools, entry),
            super::ListKind::Prompts => any(&m.prompts, entry),
            _ => any(&m.resources, entry),
        }
    }
}

impl McpMatcher {
    /// Every named argument present and equal to one listed value.
    fn arguments_hold(&self, arguments: Option<&Json<'_>>) -> bool {
        self.arguments.iter().all(|(name, allowed)| {
            arguments
                .and_then(|a| a.get(name))
                .is_some_and(|v| allowed.iter().any(|m| m.holds(v)))
        })
    }
}

/// The compiled `mcp`/`a2a` parts of one role's rules, by rule position (`None`: the rule has
/// neither part).
#[derive(Debug, Clone, Default)]
pub struct RoleRpcRules {
    pub allow: Vec<Option<RpcRule>>,
    pub deny: Vec<Option<RpcRule>>,
}

impl RoleRpcRules {
    pub fn compile(allow: &[RpcSpec], deny: &[RpcSpec]) -> Self {
        let one = |s: &RpcSpec| (s.mcp.is_some() || s.a2a.is_some()).then(|| RpcRule::compile(s));
        RoleRpcRules {
            allow: allow.iter().map(one).collect(),
            deny: deny.iter().map(one).collect(),
        }
    }
}

/// How the covering rules judge a message (or, for a GET or DELETE, no message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Allow(RuleRef),
    Deny(RuleRef),
    /// No covering allow rule permits it; the first covering allow rule, if any.
    NoAllow(Option<RuleRef>),
}

/// Deny rules first (any match refuses), then the first allow rule that permits.
pub fn judge<'r>(
    denies: impl IntoIterator<Item = (RuleRef, Option<&'r RpcRule>)>,
    allows: impl IntoIterator<Item = (RuleRef, Option<&'r RpcRule>)>,
    msg: Option<&Message<'_>>,
) -> Judgement {
    for (rule, rpc) in denies {
        let refuses = match (rpc, msg) {
            (None, _) => true,
            (Some(r), Some(m)) => r.denies(m),
            (Some(_), None) => false,
        };
        if refuses {
            return Judgement::Deny(rule);
        }
    }
    let mut first = None;
    for (rule, rpc) in allows {
        first.get_or_insert(rule);
        let permits = match msg {
            None => true,
            Some(m) if matches!(m.call, Call::Plumbing | Call::List(_)) => true,
            Some(m) => rpc.is_some_and(|r| r.allows(m)),
        };
        if permits {
            return Judgement::Allow(rule);
        }
    }
    Judgement::NoAllow(first)
}

#[cfg(test)]
mod tests;
