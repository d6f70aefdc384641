//! Compiling a validated config into the immutable [`Snapshot`] the request path reads. Nothing
//! here runs per request; everything the hot path needs is precomputed: the route table, each
//! role's indexed rules, the agent index, the upstream pools, the TLS config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::limits::Limits;
use crate::admit::RateLimit;
use crate::anomaly::AnomalySettings;
use crate::authz::rules::{CompiledRole, RuleSet, RuleSpec, RuleUpstream};
use crate::authz::when::WhenSpec;
use crate::authz::AgentGrants;
use crate::cluster::ClusterSettings;
use crate::config::load::{ConfigError, LoadedConfig};
use crate::config::schema::{
    AnomalySection, ConfigFile, IssuerSection, RuleSection, TlsSection, TokenSection,
    UpstreamSection,
};
use crate::decision::{Mode, RuleRef};
use crate::headers::StripList;
use crate::identity::index::AgentIndex;
use crate::identity::token::{
    IssuerSettings, KeySource, TokenSettings, TokenVerifier, DEFAULT_JWKS_REFRESH, DEFAULT_LEEWAY,
};
use crate::ids::{AgentId, RoleId, UpstreamId, UpstreamSet};
use crate::route::table::RouteTable;
use crate::telemetry::cert_expiry::ExpiryFiles;
use crate::telemetry::logging::LogFormat;
use crate::tls::{TlsFiles, TlsState};
use crate::upstream::{Upstream, UpstreamSettings, UpstreamTls};

#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// `-` is stdout; `None` writes no audit log.
    pub audit_log: Option<String>,
    pub audit_max_bytes: Option<u64>,
    pub max_agent_series: usize,
    pub log_format: LogFormat,
}

/// What the config says about one agent (or a fleet, for a pattern entry).
#[derive(Debug, Clone)]
pub struct AgentPolicy {
    /// Position in the config's `agents` list.
    pub entry: usize,
    /// The entry's `id`, exact or pattern.
    pub id: Arc<str>,
    pub grants: AgentGrants,
    /// `a,b`: the `x-warden-roles` value, made once (none for names no header value can carry).
    pub roles_header: Option<http::HeaderValue>,
    /// Its role names, shared by every audit record of its requests.
    pub role_names: Arc<[Arc<str>]>,
    /// Its anomaly peer group (sorted roles, or labels), computed once.
    pub peer_group: Option<Arc<str>>,
    pub rate_limit: Option<RateLimit>,
    /// Whether any of its roles (or the global setting) demands the second factor.
    pub require_token: bool,
}

/// The `x-warden-roles` value for these role names, shared by every request of the entry.
fn roles_header(names: &[Arc<str>]) -> Option<http::HeaderValue> {
    let joined = names
        .iter()
        .map(|n| n.as_ref())
        .collect::<Vec<_>>()
        .join(",");
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)).ok()
}

/// `auto`: one per core this process may run on (its CPU affinity, as `taskset` sets it).
fn worker_count(w: crate::config::schema::Workers) -> usize {
    match w {
        crate::config::schema::Workers::Count(n) => usize::try_from(n).unwrap_or(1).max(1),
        crate::config::schema::Workers::Auto => {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }
    }
}

/// Everything the request path reads, immutable once built; a reload builds a new one.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub source: PathBuf,
    pub mode: Mode,
    pub listen: SocketAddr,
    /// Threads serving agents; read at start.
    pub workers: usize,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token: Option<Arc<str>>,
    pub trust_domain: Arc<str>,
    pub limits: Limits,
    pub agent_index: AgentIndex,
    pub agents: Vec<AgentPolicy>,
    pub routes: RouteTable,
    pub roles: Vec<CompiledRole>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub strip: StripList,
    pub token: Option<Arc<TokenVerifier>>,
    pub telemetry: TelemetrySettings,
    pub anomaly: AnomalySettings,
    pub tls: Arc<TlsState>,
    /// MCP and A2A: protocol routes, the `mcp`/`a2a` parts of rules, tool pinning, state.
    pub protocol: super::protocol::ProtocolPolicy,
    /// Every file the config names besides itself: a change of any of them reloads.
    pub watched_files: Vec<PathBuf>,
    /// The server certificate, client CAs and CRLs whose dates the expiry metric shows.
    pub expiry_files: ExpiryFiles,
    /// The fleet's shared store; read at start only.
    pub cluster: Option<ClusterSettings>,
}

impl Snapshot {
    /// The `agents` entry covering `id`.
    pub fn agent(&self, id: &AgentId) -> Option<&AgentPolicy> {
        self.agent_index.lookup(id).and_then(|i| self.agents.get(i))
    }

    pub fn upstream(&self, id: UpstreamId) -> Option<&Arc<Upstream>> {
        self.upstreams.get(id.index())
    }

    pub fn role_name(&self, id: RoleId) -> &str {
        self.roles
            .get(id.index())
            .map(|r| r.name.as_ref())
            .unwrap_or("?")
    }

    pub fn upstream_index(&self, name: &str) -> Option<UpstreamId> {
        self.upstreams
            .iter()
            .position(|u| u.name.as_ref() == name)
            .map(UpstreamId::new)
    }

    /// `role/allow[N]` as written in audit records, logs and `explain`.
    pub fn rule_label(&self, rule: &RuleRef) -> String {
        format!(
            "{}/{}[{}]",
            self.role_name(rule.role),
            rule.kind.as_str(),
            rule.index
        )
    }
}

fn upstream_settings(s: &UpstreamSection) -> UpstreamSettings {
    UpstreamSettings {
        url: s.url.clone(),
        tls: s.tls.as_ref().map(|t| UpstreamTls {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
            server_name: t.server_name.clone(),
        }),
        connect_timeout: s.connect_timeout.map(|d| d.0),
        timeout: s.timeout.map(|d| d.0),
        max_connections: s.max_connections,
        idle_timeout: s.idle_timeout.map(|d| d.0),
        http2: s.http2,
        bodies_on_get: s.bodies_on_get,
    }
}

fn token_settings(t: &TokenSection) -> Result<TokenSettings, String> {
    let issuers = t
        .issuers
        .iter()
        .enumerate()
        .map(|(i, issuer)| {
            key_source(issuer)
                .map(|keys| IssuerSettings {
                    name: issuer.name.clone(),
                    keys,
                })
                .map_err(|e| format!("identity.token.issuers[{i}]: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(TokenSettings {
        audience: t.audience.clone(),
        issuers,
        leeway: t.leeway.map_or(DEFAULT_LEEWAY, |d| d.0),
        forward: t.forward,
        required: t.required,
    })
}

fn key_source(issuer: &IssuerSection) -> Result<KeySource, String> {
    match (&issuer.keys, &issuer.jwks, &issuer.jwks_url) {
        (Some(pem), None, None) => Ok(KeySource::Pem(pem.clone())),
        (None, Some(file), None) => Ok(KeySource::JwksFile(file.clone())),
        (None, None, Some(url)) => Ok(KeySource::JwksUrl {
            url: url.clone(),
            ca: issuer.jwks_ca.clone(),
            refresh: issuer.jwks_refresh.map_or(DEFAULT_JWKS_REFRESH, |d| d.0),
        }),
        (None, None, None) => Err("needs keys, jwks or jwks_url".into()),
        _ => Err("give one of keys, jwks and jwks_url".into()),
    }
}

/// The files whose dates `warden_certificate_expiry_timestamp_seconds` shows.
fn expiry_files(t: Option<&TlsSection>) -> ExpiryFiles {
    t.map(|t| ExpiryFiles {
        server_cert: Some(t.cert.clone()),
        client_ca: Some(t.client_ca.clone()),
        crls: t.crl.clone(),
    })
    .unwrap_or_default()
}

fn tls_files(t: &TlsSection) -> TlsFiles {
    TlsFiles {
        cert: t.cert.clone(),
        key: t.key.clone(),
        client_ca: t.client_ca.clone(),
        crl: t.crl.clone(),
        kx_groups: t.kx_groups.clone(),
    }
}

fn anomaly_settings(s: &AnomalySection) -> AnomalySettings {
    let d = AnomalySettings::default();
    AnomalySettings {
        enabled: s.enabled.unwrap_or(d.enabled),
        learning_period: s.learning_period.map_or(d.learning_period, |p| p.0),
        threshold: s.threshold.filter(|t| t.is_finite()).unwrap_or(d.threshold),
        action: s.action,
        quarantine_for: s.quarantine_for.map_or(d.quarantine_for, |q| q.0),
    }
}

fn rule_spec(r: &RuleSection, upstream_index: &dyn Fn(&str) -> Option<UpstreamId>) -> RuleSpec {
    RuleSpec {
        upstream: match &r.upstream {
            None => RuleUpstream::Role,
            Some(name) => upstream_index(name).map_or(RuleUpstream::Unknown, RuleUpstream::Named),
        },
        methods: r.methods.clone(),
        paths: r.paths.clone(),
        when: r.when.as_ref().map(|w| WhenSpec {
            source_cidrs: w.source_cidrs.clone(),
            hours_utc: w.hours_utc.clone(),
            weekdays: w.weekdays.clone(),
            headers: w.headers.clone(),
            labels: w.labels.clone(),
        }),
    }
}

fn compile_roles(
    f: &ConfigFile,
    upstream_index: &dyn Fn(&str) -> Option<UpstreamId>,
    upstream_count: usize,
) -> Vec<CompiledRole> {
    f.roles
        .iter()
        .map(|(name, r)| {
            let mut set = UpstreamSet::with_capacity(upstream_count);
            for u in r.upstreams.iter().filter_map(|u| upstream_index(u)) {
                set.insert(u);
            }
            let specs = |rules: &[RuleSection]| -> Vec<RuleSpec> {
                rules.iter().map(|r| rule_spec(r, upstream_index)).collect()
            };
            CompiledRole {
                name: name.as_str().into(),
                allow: RuleSet::compile(&specs(&r.allow), &set, upstream_count, false),
                deny: RuleSet::compile(&specs(&r.deny), &set, upstream_count, true),
                upstreams: set,
                require_token: r.require_token,
            }
        })
        .collect()
}

fn compile_agents(
    f: &ConfigFile,
    roles: &[CompiledRole],
    upstream_count: usize,
) -> Vec<AgentPolicy> {
    let global_token_required = f
        .identity
        .as_ref()
        .and_then(|i| i.token.as_ref())
        .is_some_and(|t| t.required);
    let role_index = |name: &str| {
        roles
            .iter()
            .position(|r| r.name.as_ref() == name)
            .map(RoleId::new)
    };
    f.agents
        .iter()
        .enumerate()
        .map(|(entry, a)| {
            let role_ids: Vec<RoleId> = a.roles.iter().filter_map(|r| role_index(r)).collect();
            let role = |r: &RoleId| &roles[r.index()];
            let mut set = UpstreamSet::with_capacity(upstream_count);
            for r in &role_ids {
                set.union_with(&role(r).upstreams);
            }
            let names: Vec<Arc<str>> = role_ids.iter().map(|r| role(r).name.clone()).collect();
            let peer_group = crate::anomaly::group_key(
                names.iter().map(|n| n.as_ref()),
                a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            AgentPolicy {
                peer_group,
                entry,
                id: a.id.as_str().into(),
                roles_header: roles_header(&names),
                role_names: names.into(),
                require_token: global_token_required
                    || role_ids.iter().any(|r| role(r).require_token),
                rate_limit: a.rate_limit.map(|r| RateLimit {
                    per_second: r.per_second,
                    burst: r.burst,
                }),
                grants: AgentGrants {
                    roles: role_ids,
                    upstreams: set,
                    labels: a.labels.clone(),
                },
            }
        })
        .collect()
}

fn read_admin_token(cfg: &LoadedConfig, errors: &mut Vec<ConfigError>) -> Option<Arc<str>> {
    let path = cfg.file.admin.as_ref()?.token_file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t.trim().into()),
        Err(e) => {
            errors.push(cfg.error_at(
                "admin.token_file",
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}

/// Compiles a validated config. `previous` lends unchanged upstream pools and TLS state.
pub fn compile(
    cfg: &LoadedConfig,
    previous: Option<&Snapshot>,
    generation: u64,
) -> Result<Snapshot, Vec<ConfigError>> {
    compile_measured(cfg, previous, generation, None)
}

/// [`compile`] for the running proxy: its upstream pools set `warden_upstream_connections`.
pub fn compile_measured(
    cfg: &LoadedConfig,
    previous: Option<&Snapshot>,
    generation: u64,
    upstream_connections: Option<crate::upstream::PoolGauges<'_>>,
) -> Result<Snapshot, Vec<ConfigError>> {
    let f = &cfg.file;
    let mut errors = Vec::new();
    let mut watched_files = Vec::new();

    let mut upstreams = Vec::with_capacity(f.upstreams.len());
    for (name, section) in &f.upstreams {
        let prev = previous.and_then(|p| {
            p.upstreams
                .iter()
                .find(|u| u.name.as_ref() == name.as_str())
        });
        let settings = upstream_settings(section);
        watched_files.extend(settings.files());
        match Upstream::build(name, &settings, prev, upstream_connections) {
            Ok(u) => upstreams.push(u),
            Err(e) => errors.push(cfg.error_at(&format!("upstreams.{name}"), e)),
        }
    }
    let upstream_index = |name: &str| {
        upstreams
            .iter()
            .position(|u| u.name.as_ref() == name)
            .map(UpstreamId::new)
    };
    let roles = compile_roles(f, &upstream_index, upstreams.len());
    let agents = compile_agents(f, &roles, upstreams.len());
    let routes = RouteTable::new(
        f.routes
            .iter()
            .map(|r| {
                RouteTable::route(
                    r.host.as_deref(),
                    r.path_prefix.as_deref(),
                    upstream_index(&r.upstream).unwrap_or(UpstreamId::new(usize::MAX)),
                )
            })
            .collect(),
    );

    let token = match f.identity.as_ref().and_then(|i| i.token.as_ref()) {
        None => None,
        Some(t) => {
            watched_files.extend(
                t.issuers
                    .iter()
                    .flat_map(|i| [&i.keys, &i.jwks, &i.jwks_ca])
                    .flatten()
                    .cloned(),
            );
            let previous = previous.and_then(|p| p.token.as_deref());
            match token_settings(t)
                .and_then(|settings| TokenVerifier::new(&settings, &cfg.base_dir(), previous))
            {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    errors.push(cfg.error_at("identity.token", e));
                    None
                }
            }
        }
    };

    let tls = match &f.tls {
        None => None,
        Some(section) => {
            let files = tls_files(section);
            watched_files.extend(files.paths());
            match crate::tls::server::build(&files, previous.map(|p| &p.tls)) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(cfg.error_at("tls", e.to_string()));
                    None
                }
            }
        }
    };

    let listen = f
        .listen
        .as_deref()
        .and_then(|l| l.parse::<SocketAddr>().ok());
    let admin_listen = f
        .admin
        .as_ref()
        .and_then(|a| a.listen.as_deref())
        .and_then(|l| l.parse().ok());
    let admin_token = read_admin_token(cfg, &mut errors);
    if let Some(p) = f.admin.as_ref().and_then(|a| a.token_file.clone()) {
        watched_files.push(p);
    }

    let (Some(tls), Some(listen), Some(identity)) = (tls, listen, f.identity.as_ref()) else {
        if errors.is_empty() {
            errors.push(cfg.error_at("", "listen, tls and identity are required"));
        }
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    let protocol = super::protocol::ProtocolPolicy::compile(
        f,
        &upstreams
            .iter()
            .map(|u| u.name.as_ref())
            .collect::<Vec<_>>(),
    );
    Ok(Snapshot {
        generation,
        source: cfg.path.clone(),
        mode: f.mode,
        listen,
        workers: worker_count(f.workers),
        admin_listen,
        admin_token,
        trust_domain: identity.trust_domain.as_str().into(),
        limits: Limits::from_config(&f.limits),
        agent_index: AgentIndex::new(f.agents.iter().map(|a| a.id.as_str())),
        agents,
        routes,
        roles,
        upstreams,
        strip: StripList::new(&f.strip_request_headers),
        token,
        telemetry: TelemetrySettings {
            audit_log: f.telemetry.audit_log.clone(),
            audit_max_bytes: f.telemetry.audit_max_bytes.map(|b| b.0),
            max_agent_series: f.telemetry.max_agent_series.unwrap_or(5000),
            log_format: f.telemetry.log_format.unwrap_or_default(),
        },
        anomaly: anomaly_settings(&f.anomaly),
        tls,
        protocol,
        watched_files,
        expiry_files: expiry_files(f.tls.as_ref()),
        cluster: f.cluster.as_ref().map(|c| ClusterSettings {
            redis: c.redis.clone(),
            key_prefix: c.key_prefix.clone().unwrap_or_else(|| "warden:".into()),
            failure_mode: c.failure_mode,
            binding_ttl: c
                .binding_ttl
                .map_or(crate::cluster::DEFAULT_BINDING_TTL, |d| d.0),
        }),
    })
}
