//! Agent protocols (SPEC section 7): on a route with `protocol: mcp` or `a2a` warden reads the
//! JSON-RPC message, judges what it asks for, filters the lists the agent is shown, binds MCP
//! sessions and A2A tasks to the identity that began them, and pins tool definitions.
//!
//! - `json`: a strict reader (one value, no duplicate keys, bounded depth); `canonical`: RFC 8785
//!   for `args_sha256` and tool digests;
//! - `message`: the JSON-RPC envelope and what an MCP or A2A message asks for;
//! - `glob`, `rules`: the compiled `mcp` / `a2a` parts of rules and how they judge a message;
//! - `list`, `sse`: filtering `*/list` results, in JSON and inside event streams;
//! - `state`, `pins`, `journal`: session bindings, task owners and tool pins, kept across restarts.

pub mod canonical;
pub mod glob;
mod journal;
pub mod json;
pub mod list;
pub mod message;
pub mod pins;
pub mod rules;
pub mod sse;
pub mod state;

pub use message::{Call, ListKind, Message, ReadError, RpcSummary};
pub use pins::{PinMode, PinSeen, ToolPins};
pub use rules::{Judgement, RoleRpcRules, RpcRule, RpcSpec};
pub use state::{Holder, LocalRpcState, RpcState, StateError};

/// The agent protocol a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Mcp,
    A2a,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mcp => "mcp",
            Protocol::A2a => "a2a",
        }
    }
}

/// The header that carries an MCP session id.
pub const SESSION_HEADER: &str = "mcp-session-id";
