//! The trust domain, the token second factor and the agent entries.

use std::collections::HashMap;

use super::{files, Report};
use crate::config::schema::{AgentSection, TokenSection};
use crate::config::suggest::did_you_mean;

pub(super) fn check_identity(r: &mut Report<'_>) {
    let Some(identity) = &r.cfg.file.identity else {
        r.err(
            "identity.trust_domain",
            "missing: the trust domain of agent ids, e.g. example.org",
        );
        return;
    };
    if let Err(e) = trust_domain_problem(&identity.trust_domain) {
        r.err("identity.trust_domain", e);
    }
    if let Some(token) = &identity.token {
        check_token(r, token);
    }
}

/// SPIFFE trust domain names: lower-case letters, digits, `.`, `-`, `_`.
fn trust_domain_problem(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("must not be empty".to_string());
    }
    if let Some(bare) = td.strip_prefix("spiffe://") {
        return Err(format!("write the trust domain without scheme: \"{bare}\""));
    }
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    {
        return Err(format!(
            "\"{td}\" is not a trust domain: lower-case letters, digits, '.', '-' and '_' only"
        ));
    }
    Ok(())
}

fn check_token(r: &mut Report<'_>, token: &TokenSection) {
    if token.audience.trim().is_empty() {
        r.err("identity.token.audience", "must not be empty");
    }
    if token.issuers.is_empty() {
        r.err(
            "identity.token.issuers",
            "at least one issuer is required to verify tokens",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, issuer) in token.issuers.iter().enumerate() {
        let base = format!("identity.token.issuers[{i}]");
        if issuer.name.trim().is_empty() {
            r.err(&format!("{base}.name"), "must not be empty");
        } else if let Some(first) = names.insert(&issuer.name, i) {
            r.err(
                &format!("{base}.name"),
                format!(
                    "issuer \"{}\" is already defined at issuers[{first}]",
                    issuer.name
                ),
            );
        }
        let checked = match (&issuer.keys, &issuer.jwks) {
            (Some(keys), None) => files::check_public_keys(keys).map_err(|e| ("keys", e)),
            (None, Some(jwks)) => files::check_jwks(jwks).map_err(|e| ("jwks", e)),
            (Some(_), Some(_)) => Err(("jwks", "give either keys or jwks, not both".to_string())),
            (None, None) => Err(("", "needs keys (PEM public keys) or jwks".to_string())),
        };
        if let Err((field, e)) = checked {
            let key_path = if field.is_empty() {
                base
            } else {
                format!("{base}.{field}")
            };
            r.err(&key_path, e);
        }
    }
}

pub(super) fn check_agents(r: &mut Report<'_>) {
    let td = r
        .cfg
        .file
        .identity
        .as_ref()
        .map(|i| i.trust_domain.as_str());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, agent) in r.cfg.file.agents.iter().enumerate() {
        let base = format!("agents[{i}]");
        if let Some(td) = td {
            if let Err(e) = agent_id_problem(&agent.id, td) {
                r.err(&format!("{base}.id"), e);
            }
        }
        if let Some(first) = seen.insert(agent.id.as_str(), i) {
            r.err(
                &format!("{base}.id"),
                format!(
                    "overlapping duplicate agent ids: \"{}\" is already agents[{first}].id",
                    agent.id
                ),
            );
        }
        check_agent_refs(r, &base, agent);
    }
}

fn check_agent_refs(r: &mut Report<'_>, base: &str, agent: &AgentSection) {
    let roles = &r.cfg.file.roles;
    for (i, role) in agent.roles.iter().enumerate() {
        if !roles.contains_key(role) {
            r.err(
                &format!("{base}.roles[{i}]"),
                format!(
                    "unknown role \"{role}\"{}",
                    did_you_mean(role, roles.keys().map(String::as_str))
                ),
            );
        }
    }
    if let Some(rl) = &agent.rate_limit {
        // Written so that NaN fails too.
        if !(rl.per_second > 0.0 && rl.per_second.is_finite()) {
            r.err(
                &format!("{base}.rate_limit.per_second"),
                format!("must be a number above 0, found {}", rl.per_second),
            );
        }
        if rl.burst == Some(0) {
            r.err(&format!("{base}.rate_limit.burst"), "must be at least 1");
        }
    }
}

/// `spiffe://<trust domain>/<path>`; `*` stands for one whole segment and `**` for the rest,
/// only as the last segment.
fn agent_id_problem(id: &str, td: &str) -> Result<(), String> {
    // The rule certificates are read by: an id no certificate can carry never matches anyone.
    if let Err(e) = crate::ids::check_agent_pattern(id) {
        return Err(format!("agent id \"{id}\" is not a SPIFFE ID: {e}"));
    }
    let prefix = format!("spiffe://{td}/");
    let Some(path) = id.strip_prefix(&prefix) else {
        return Err(format!(
            "agent id \"{id}\" is outside the trust domain \"{td}\" (ids start with {prefix})"
        ));
    };
    if path.is_empty() {
        return Err(format!("agent id \"{id}\" needs a path after {prefix}"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "" => return Err(format!("agent id \"{id}\" has an empty path segment")),
            "." | ".." => return Err(format!("agent id \"{id}\" has a `{seg}` segment")),
            "*" => {}
            "**" if i == last => {}
            "**" => {
                return Err(format!(
                    "agent id \"{id}\": `**` is allowed only as the last segment"
                ))
            }
            s if s.contains('*') => {
                return Err(format!(
                    "agent id \"{id}\": `*` must be a whole segment (found `{s}`)"
                ))
            }
            s => {
                if let Some(c) = s
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
                {
                    return Err(format!(
                        "agent id \"{id}\": {c:?} is not allowed in a SPIFFE id (letters, digits, '-', '.', '_')"
                    ));
                }
            }
        }
    }
    Ok(())
}
