//! Compiling a validated config into the immutable [`Snapshot`] the request path reads. Nothing
//! here runs per request; everything the hot path needs is precomputed: the route table, each
//! role's indexed rules, the agent index, the upstream pools, the TLS config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::files::{named_files, ConfigFiles};
use super::load::{ConfigError, LoadedConfig};
use super::schema::Mode;
use super::schema::{IssuerSection, TokenSection};
use crate::anomaly::AnomalySettings;
use crate::authz::rules::{CompiledRole, RuleSet, UpstreamSet};
use crate::forward::headers::StripList;
use crate::forward::upstream::Upstream;
use crate::identity::index::{AgentIndex, AgentPolicy};
use crate::identity::token::{
    IssuerSettings, KeySource, TokenSettings, TokenVerifier, DEFAULT_JWKS_REFRESH, DEFAULT_LEEWAY,
};
use crate::route::table::RouteTable;
use crate::telemetry::logging::LogFormat;
use crate::tls::TlsState;

/// Connection and request limits, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_request_header_bytes: 16 * 1024,
            max_request_body_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// `-` is stdout; `None` writes no audit log.
    pub audit_log: Option<String>,
    pub audit_max_bytes: Option<u64>,
    pub max_agent_series: usize,
    pub log_format: LogFormat,
}

/// Everything the request path reads, immutable once built; a reload builds a new one.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub source: PathBuf,
    pub mode: Mode,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token: Option<Arc<str>>,
    pub trust_domain: Arc<str>,
    pub limits: Limits,
    pub agents: AgentIndex,
    /// Per agent entry, its role names: shared by every audit record of its requests.
    pub agent_roles: Vec<Arc<[Arc<str>]>>,
    pub routes: RouteTable,
    pub roles: Vec<CompiledRole>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub strip: StripList,
    pub token: Option<Arc<TokenVerifier>>,
    pub telemetry: TelemetrySettings,
    pub anomaly: AnomalySettings,
    pub tls: Arc<TlsState>,
    /// Every file the config names: a change of any of them reloads.
    pub files: ConfigFiles,
}

impl Snapshot {
    pub fn role_name(&self, i: usize) -> &str {
        self.roles.get(i).map(|r| r.name.as_ref()).unwrap_or("?")
    }

    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name.as_ref() == name)
    }
}

/// Compiles a validated config. `previous` lends unchanged upstream pools and TLS state.
pub fn compile(
    cfg: &LoadedConfig,
    previous: Option<&Snapshot>,
    generation: u64,
) -> Result<Snapshot, Vec<ConfigError>> {
    let f = &cfg.file;
    let mut errors = Vec::new();

    let mut upstreams = Vec::with_capacity(f.upstreams.len());
    for (name, section) in &f.upstreams {
        let prev = previous.and_then(|p| {
            p.upstreams
                .iter()
                .find(|u| u.name.as_ref() == name.as_str())
        });
        match Upstream::build(name, section, prev) {
            Ok(u) => upstreams.push(u),
            Err(e) => errors.push(cfg.error_at(&format!("upstreams.{name}"), e)),
        }
    }
    let upstream_index = |name: &str| upstreams.iter().position(|u| u.name.as_ref() == name);

    let global_token_required = f
        .identity
        .as_ref()
        .and_then(|i| i.token.as_ref())
        .is_some_and(|t| t.required);
    let roles: Vec<CompiledRole> = f
        .roles
        .iter()
        .map(|(name, r)| {
            let mut set = UpstreamSet::with_capacity(upstreams.len());
            for u in r.upstreams.iter().filter_map(|u| upstream_index(u)) {
                set.insert(u);
            }
            CompiledRole {
                name: name.as_str().into(),
                allow: RuleSet::compile(&r.allow, &set, &upstream_index, upstreams.len(), false),
                deny: RuleSet::compile(&r.deny, &set, &upstream_index, upstreams.len(), true),
                upstreams: set,
                require_token: r.require_token,
            }
        })
        .collect();
    let role_index = |name: &str| roles.iter().position(|r| r.name.as_ref() == name);

    let agent_roles: Vec<Arc<[Arc<str>]>> = f
        .agents
        .iter()
        .map(|a| {
            a.roles
                .iter()
                .filter_map(|r| role_index(r))
                .map(|r| roles[r].name.clone())
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let agents = f
        .agents
        .iter()
        .enumerate()
        .map(|(entry, a)| {
            let role_ids: Vec<usize> = a.roles.iter().filter_map(|r| role_index(r)).collect();
            let mut set = UpstreamSet::with_capacity(upstreams.len());
            for r in &role_ids {
                set.union_with(&roles[*r].upstreams);
            }
            AgentPolicy {
                entry,
                id: a.id.as_str().into(),
                roles_header: role_ids
                    .iter()
                    .map(|r| roles[*r].name.as_ref())
                    .collect::<Vec<_>>()
                    .join(",")
                    .into(),
                require_token: global_token_required
                    || role_ids.iter().any(|r| roles[*r].require_token),
                roles: role_ids,
                labels: a.labels.clone(),
                rate_limit: a.rate_limit,
                upstreams: set,
            }
        })
        .collect();

    let routes = RouteTable::new(
        f.routes
            .iter()
            .map(|r| {
                RouteTable::route(
                    r.host.as_deref(),
                    r.path_prefix.as_deref(),
                    upstream_index(&r.upstream).unwrap_or(usize::MAX),
                )
            })
            .collect(),
    );

    let token = match f.identity.as_ref().and_then(|i| i.token.as_ref()) {
        None => None,
        Some(t) => match token_settings(t).and_then(|settings| {
            let previous = previous.and_then(|p| p.token.as_deref());
            TokenVerifier::new(&settings, &cfg.base_dir(), previous)
        }) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                errors.push(cfg.error_at("identity.token", e));
                None
            }
        },
    };

    let tls = match &f.tls {
        None => None,
        Some(section) => match crate::tls::server::build(section, previous.map(|p| &p.tls)) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(cfg.error_at("tls", e.to_string()));
                None
            }
        },
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
    let admin_token = match f.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
        None => None,
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t.trim().into()),
            Err(e) => {
                errors.push(cfg.error_at(
                    "admin.token_file",
                    format!("cannot read {}: {e}", p.display()),
                ));
                None
            }
        },
    };

    let (Some(tls), Some(listen), Some(identity)) = (tls, listen, f.identity.as_ref()) else {
        if errors.is_empty() {
            errors.push(cfg.error_at("", "listen, tls and identity are required"));
        }
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    let d = Limits::default();
    let l = &f.limits;
    let limits = Limits {
        max_connections: l.max_connections.unwrap_or(d.max_connections),
        header_read_timeout: l
            .header_read_timeout
            .map(|x| x.0)
            .unwrap_or(d.header_read_timeout),
        idle_timeout: l.idle_timeout.map(|x| x.0).unwrap_or(d.idle_timeout),
        request_timeout: l.request_timeout.map(|x| x.0).unwrap_or(d.request_timeout),
        max_request_header_bytes: l
            .max_request_header_bytes
            .map(|x| x.0 as usize)
            .unwrap_or(d.max_request_header_bytes),
        max_request_body_bytes: l
            .max_request_body_bytes
            .map(|x| x.0)
            .unwrap_or(d.max_request_body_bytes),
    };

    Ok(Snapshot {
        generation,
        source: cfg.path.clone(),
        mode: f.mode,
        listen,
        admin_listen,
        admin_token,
        trust_domain: identity.trust_domain.as_str().into(),
        limits,
        agents: AgentIndex::new(agents),
        agent_roles,
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
        anomaly: AnomalySettings::from_config(&f.anomaly),
        tls,
        files: named_files(f, &cfg.base_dir()),
    })
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
