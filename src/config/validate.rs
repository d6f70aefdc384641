//! Every check of the product contract's section 2, each error with its key path.

use std::path::Path;

use super::load::{load, ConfigError, LoadedConfig};

/// Every semantic problem of a parsed config; empty means it may be compiled.
pub fn validate(cfg: &LoadedConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let f = &cfg.file;
    if f.listen.is_none() {
        errors.push(cfg.error_at(
            "listen",
            "missing: the agent-facing address, e.g. 127.0.0.1:8443",
        ));
    }
    if f.tls.is_none() {
        errors.push(cfg.error_at("tls", "missing: cert, key and client_ca are required"));
    }
    if f.identity.is_none() {
        errors.push(cfg.error_at("identity", "missing: identity.trust_domain is required"));
    }
    errors
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
    format!(
        "{}: valid. {} upstreams, {} routes, {} roles, {} agent entries.",
        cfg.path.display(),
        f.upstreams.len(),
        f.routes.len(),
        f.roles.len(),
        f.agents.len()
    )
}
