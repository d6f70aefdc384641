//! The agent-protocol part of the snapshot: which routes speak MCP or A2A, the compiled `mcp` and
//! `a2a` parts of every rule, each upstream's tool pinning, and where live state is kept.

use std::path::PathBuf;

use crate::config::schema::{ArgValueSection, ConfigFile, PinTools, RouteProtocol, RuleSection};
use crate::decision::{RuleKind, RuleRef};
use crate::ids::{RouteId, UpstreamId};
use crate::protocol::rules::{ArgValue, McpSpec};
use crate::protocol::{PinMode, Protocol, RoleRpcRules, RpcRule, RpcSpec};

#[derive(Debug, Clone, Default)]
pub struct ProtocolPolicy {
    /// By route position: the protocol it speaks, `None` for plain HTTP.
    routes: Vec<Option<Protocol>>,
    /// By role position.
    roles: Vec<RoleRpcRules>,
    /// By upstream position.
    pins: Vec<PinMode>,
    /// Where session bindings, task owners and tool pins are kept; `None`: memory only.
    pub state_dir: Option<PathBuf>,
}

impl ProtocolPolicy {
    /// `upstream_names` in the snapshot's upstream order.
    pub fn compile(f: &ConfigFile, upstream_names: &[&str]) -> Self {
        let routes = f
            .routes
            .iter()
            .map(|r| match r.protocol {
                RouteProtocol::Http => None,
                RouteProtocol::Mcp => Some(Protocol::Mcp),
                RouteProtocol::A2a => Some(Protocol::A2a),
            })
            .collect();
        let roles = f
            .roles
            .values()
            .map(|r| {
                let specs = |rules: &[RuleSection]| rules.iter().map(rpc_spec).collect::<Vec<_>>();
                RoleRpcRules::compile(&specs(&r.allow), &specs(&r.deny))
            })
            .collect();
        let pins = upstream_names
            .iter()
            .map(|n| match f.upstreams.get(*n).map(|u| u.pin_tools) {
                Some(PinTools::Alert) => PinMode::Alert,
                Some(PinTools::Enforce) => PinMode::Enforce,
                _ => PinMode::Off,
            })
            .collect();
        let state_dir = f.state_dir.clone().or_else(|| {
            let log = f.telemetry.audit_log.as_deref().filter(|p| *p != "-")?;
            let dir = std::path::Path::new(log).parent()?;
            Some(if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            })
        });
        ProtocolPolicy {
            routes,
            roles,
            pins,
            state_dir,
        }
    }

    pub fn route(&self, route: RouteId) -> Option<Protocol> {
        self.routes.get(route.index()).copied().flatten()
    }

    pub fn any_route(&self) -> bool {
        self.routes.iter().any(Option::is_some)
    }

    /// The `mcp`/`a2a` part of a rule, `None` if it has none.
    pub fn rule(&self, rule: RuleRef) -> Option<&RpcRule> {
        let role = self.roles.get(rule.role.index())?;
        let list = match rule.kind {
            RuleKind::Allow => &role.allow,
            RuleKind::Deny => &role.deny,
        };
        list.get(rule.index as usize)?.as_ref()
    }

    pub fn pin_mode(&self, upstream: UpstreamId) -> PinMode {
        self.pins.get(upstream.index()).copied().unwrap_or_default()
    }
}

fn rpc_spec(r: &RuleSection) -> RpcSpec {
    RpcSpec {
        mcp: r.mcp.as_ref().map(|m| McpSpec {
            tools: m.tools.clone(),
            resources: m.resources.clone(),
            prompts: m.prompts.clone(),
            methods: m.methods.clone(),
            arguments: m
                .arguments
                .iter()
                .map(|(k, vals)| (k.clone(), vals.iter().map(arg_value).collect()))
                .collect(),
        }),
        a2a: r.a2a.as_ref().map(|a| a.methods.clone()),
    }
}

fn arg_value(v: &ArgValueSection) -> ArgValue {
    match v {
        ArgValueSection::Bool(b) => ArgValue::Bool(*b),
        ArgValueSection::Int(i) => ArgValue::Number(*i as f64),
        ArgValueSection::Float(f) => ArgValue::Number(*f),
        ArgValueSection::Str(s) => ArgValue::Str(s.clone()),
        ArgValueSection::Null(()) => ArgValue::Null,
    }
}
