//! The YAML file as plain serde structs. Every struct refuses unknown keys: a misspelt key in a
//! security policy must be an error, never a silently ignored line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::units::{ByteSize, Dur};
pub use crate::anomaly::AnomalyAction;
pub use crate::cluster::FailureMode;
pub use crate::decision::Mode;
pub use crate::telemetry::logging::LogFormat;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<String>,
    /// Threads serving agents: `auto` (one per core) or a number; read at start.
    #[serde(default)]
    pub workers: Workers,
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub admin: Option<AdminSection>,
    #[serde(default)]
    pub identity: Option<IdentitySection>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSection>,
    #[serde(default)]
    pub strip_request_headers: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSection>,
    #[serde(default)]
    pub agents: Vec<AgentSection>,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub anomaly: AnomalySection,
    /// Where live protocol state is kept across restarts (MCP session bindings, A2A task owners,
    /// tool pins). Absent: the directory of `telemetry.audit_log` when that is a file, else
    /// memory only.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
}

/// How many threads serve agents: one per core the process may run on, or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    #[default]
    Auto,
    Count(u64),
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Workers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`auto` or a number of threads")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Workers, E> {
                Ok(Workers::Count(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Workers, E> {
                u64::try_from(n)
                    .map(Workers::Count)
                    .map_err(|_| E::custom(format!("{n}: write `auto` or a number of threads")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Workers, E> {
                match s {
                    "auto" => Ok(Workers::Auto),
                    _ => Err(E::custom(format!(
                        "`{s}`: write `auto` or a number of threads"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Key-exchange groups in preference order (`x25519`, `secp256r1`, `x25519mlkem768`, ...);
    /// empty keeps rustls' secure default.
    #[serde(default)]
    pub kx_groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    pub trust_domain: String,
    #[serde(default)]
    pub token: Option<TokenSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    pub audience: String,
    #[serde(default)]
    pub issuers: Vec<IssuerSection>,
    #[serde(default)]
    pub leeway: Option<Dur>,
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    pub name: String,
    #[serde(default)]
    pub keys: Option<PathBuf>,
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// An https:// URL of the issuer's JWKS, fetched, cached and refreshed.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// CAs that verify `jwks_url`; absent: the system's trusted roots.
    #[serde(default)]
    pub jwks_ca: Option<PathBuf>,
    /// How often `jwks_url` is fetched in the background (default 5m).
    #[serde(default)]
    pub jwks_refresh: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub request_timeout: Option<Dur>,
    pub max_request_header_bytes: Option<ByteSize>,
    pub max_request_body_bytes: Option<ByteSize>,
    pub handshake_timeout: Option<Dur>,
    pub max_pending_handshakes: Option<usize>,
    pub max_in_flight_per_agent: Option<usize>,
    pub max_streams_per_connection: Option<u32>,
    pub body_stall_timeout: Option<Dur>,
    pub max_rpc_bytes: Option<ByteSize>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub url: String,
    #[serde(default)]
    pub tls: Option<UpstreamTlsSection>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Pooled connections to this upstream; past it requests wait up to `connect_timeout`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// An idle pooled connection is closed after this long unused (default 60s).
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
    /// Speak HTTP/2 to it (h2 by ALPN over TLS, prior knowledge over plain http).
    #[serde(default)]
    pub http2: bool,
    /// Allow bodies on GET/HEAD/OPTIONS; such requests use a connection closed after them.
    #[serde(default)]
    pub bodies_on_get: bool,
    /// Pin the definitions of the MCP tools this upstream lists (SPEC section 7).
    #[serde(default)]
    pub pin_tools: PinTools,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PinTools {
    #[default]
    Off,
    Alert,
    Enforce,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSection {
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name to verify the upstream's certificate against, when it differs from the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    pub upstream: String,
    /// The agent protocol the route speaks: its JSON-RPC messages are read and judged.
    #[serde(default)]
    pub protocol: RouteProtocol,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouteProtocol {
    #[default]
    Http,
    Mcp,
    A2a,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoleSection {
    #[serde(default)]
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub require_token: bool,
    #[serde(default)]
    pub allow: Vec<RuleSection>,
    #[serde(default)]
    pub deny: Vec<RuleSection>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub when: Option<WhenSection>,
    /// On `protocol: mcp` routes: the tools, resources, prompts and methods the rule names.
    #[serde(default)]
    pub mcp: Option<McpSection>,
    /// On `protocol: a2a` routes: the JSON-RPC methods the rule names.
    #[serde(default)]
    pub a2a: Option<A2aSection>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    /// `tools/call` conditions: each named argument present and equal to one listed value.
    #[serde(default)]
    pub arguments: BTreeMap<String, Vec<ArgValueSection>>,
}

/// One listed argument value: a string (`*` globs), a number, a boolean or null.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ArgValueSection {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Null(()),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct A2aSection {
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WhenSection {
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    #[serde(default)]
    pub hours_utc: Option<String>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSection>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    pub per_second: f64,
    #[serde(default)]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Path of the audit log, `-` for stdout; absent or null for none.
    #[serde(default)]
    pub audit_log: Option<String>,
    /// Rotate the audit log when it grows past this size.
    #[serde(default)]
    pub audit_max_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_agent_series: Option<usize>,
    /// `text` or `json` (one object a line on stderr); `serve --log-format` overrides it.
    #[serde(default)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AnomalySection {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub learning_period: Option<Dur>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub action: AnomalyAction,
    #[serde(default)]
    pub quarantine_for: Option<Dur>,
}

/// State shared by many replicas (SPEC section 8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://host:port` or `rediss://` for TLS.
    pub redis: String,
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// How long Redis keeps an MCP session binding or an A2A task owner; default 7d.
    #[serde(default)]
    pub binding_ttl: Option<Dur>,
}
