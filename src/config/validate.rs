//! Every check of the product contract's section 2, each error with its key path.
//!
//! All files the config names (certificates, keys, CRLs, token keys, the admin token) are read
//! here. Relative paths are resolved against the process's current working directory, exactly
//! as the server resolves them when it opens them.

mod agents;
mod files;
mod net;
mod policy;
mod protocol;

use std::path::Path;

use super::load::{load, ConfigError, LoadedConfig};
use super::schema::{AnomalyAction, Mode};

pub use policy::parse_hours;

/// The errors found so far, each located through the config's source map.
struct Report<'a> {
    cfg: &'a LoadedConfig,
    errors: Vec<ConfigError>,
}

impl Report<'_> {
    fn err(&mut self, key_path: &str, message: impl Into<String>) {
        self.errors.push(self.cfg.error_at(key_path, message));
    }
}

/// Every semantic problem of a parsed config; empty means it may be compiled.
pub fn validate(cfg: &LoadedConfig) -> Vec<ConfigError> {
    let mut r = Report {
        cfg,
        errors: Vec::new(),
    };
    net::check_listeners(&mut r);
    net::check_tls(&mut r);
    agents::check_identity(&mut r);
    net::check_limits(&mut r);
    net::check_upstreams(&mut r);
    policy::check_routes(&mut r);
    policy::check_roles(&mut r);
    protocol::check(&mut r);
    agents::check_agents(&mut r);
    net::check_telemetry(&mut r);
    net::check_cluster(&mut r);
    // Reported in file order, as a compiler would.
    r.errors.sort_by_key(|e| (e.line, e.col));
    r.errors
}

/// Loads, parses and validates; the config is returned only when it has no error at all.
pub fn load_and_validate(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let cfg = load(path)?;
    let errors = validate(&cfg);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// The one-paragraph summary `warden check` prints for a valid config.
pub fn summary(cfg: &LoadedConfig) -> String {
    let f = &cfg.file;
    let mode = match f.mode {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow (decisions are logged, not enforced)",
    };
    let rules: usize = f.roles.values().map(|r| r.allow.len() + r.deny.len()).sum();
    let patterns = f.agents.iter().filter(|a| a.id.contains('*')).count();
    let token = match f.identity.as_ref().and_then(|i| i.token.as_ref()) {
        None => "off".to_string(),
        Some(t) if t.required => "required for every agent".to_string(),
        Some(_) => {
            let n = f.roles.values().filter(|r| r.require_token).count();
            format!("required for {n} role{}", plural(n))
        }
    };
    let audit = match f.telemetry.audit_log.as_deref() {
        None => "off".to_string(),
        Some("-") => "stdout".to_string(),
        Some(p) => p.to_string(),
    };
    let anomaly = if f.anomaly.enabled == Some(false) {
        "off".to_string()
    } else {
        let action = match f.anomaly.action {
            AnomalyAction::Alert => "alert",
            AnomalyAction::Quarantine => "quarantine",
        };
        match f.anomaly.threshold {
            Some(t) => format!("{action} above {t}"),
            None => action.to_string(),
        }
    };
    format!(
        "{}: valid. Listening on {} in {mode} mode; {} upstream{}, {} route{}, {} role{} with {rules} rule{}, \
         {} agent entr{} ({} exact id{}, {patterns} pattern{}); token second factor: {token}; \
         audit log: {audit}; anomaly action: {anomaly}.",
        cfg.path.display(),
        f.listen.as_deref().unwrap_or("(none)"),
        f.upstreams.len(),
        plural(f.upstreams.len()),
        f.routes.len(),
        plural(f.routes.len()),
        f.roles.len(),
        plural(f.roles.len()),
        plural(rules),
        f.agents.len(),
        if f.agents.len() == 1 { "y" } else { "ies" },
        f.agents.len() - patterns,
        plural(f.agents.len() - patterns),
        plural(patterns),
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests;
