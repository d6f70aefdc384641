//! From what each entry did to what changes in the file, and the checks on the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::learn::rules_for;
use super::render::{role_names, RoleSpec};
use super::Tally;
use crate::config::load::{ConfigError, LoadedConfig, SourceMap};
use crate::config::schema::ConfigFile;

pub(super) struct Planned {
    pub roles: Vec<RoleSpec>,
    pub dropped: BTreeSet<String>,
    pub agent_roles: BTreeMap<usize, Vec<String>>,
    pub notes: Vec<String>,
}

impl Planned {
    pub fn new(file: &ConfigFile, tally: &Tally, only: Option<usize>) -> Self {
        let changed: Vec<usize> = tally.learned.keys().copied().collect();
        let still_held: BTreeSet<&str> = file
            .agents
            .iter()
            .enumerate()
            .filter(|(i, _)| !tally.learned.contains_key(i))
            .flat_map(|(_, a)| a.roles.iter().map(String::as_str))
            .collect();
        let dropped: BTreeSet<String> = changed
            .iter()
            .flat_map(|&e| file.agents[e].roles.iter())
            .filter(|r| !still_held.contains(r.as_str()) && file.roles.contains_key(*r))
            .cloned()
            .collect();
        let taken: BTreeSet<String> = file
            .roles
            .keys()
            .filter(|r| !dropped.contains(*r))
            .cloned()
            .collect();
        let ids: Vec<&str> = changed
            .iter()
            .map(|&e| file.agents[e].id.as_str())
            .collect();
        let names = role_names(&ids, &taken);
        let mut planned = Planned {
            roles: Vec::new(),
            dropped,
            agent_roles: BTreeMap::new(),
            notes: Vec::new(),
        };
        for (&entry, name) in changed.iter().zip(names) {
            planned.add_entry(file, tally, entry, name);
        }
        for (i, a) in file.agents.iter().enumerate() {
            if !tally.learned.contains_key(&i) && only.is_none_or(|o| o == i) {
                planned.notes.push(format!(
                    "agents[{i}] {}: no request in the records read; its roles are kept",
                    a.id
                ));
            }
        }
        if !changed.is_empty() {
            planned.notes.push(
                "comments inside the rewritten `roles` entries and agents' `roles` values are \
                 not carried over; the rest of the file is unchanged"
                    .into(),
            );
        }
        planned
    }

    fn add_entry(&mut self, file: &ConfigFile, tally: &Tally, entry: usize, name: String) {
        let agent = &file.agents[entry];
        let learned = &tally.learned[&entry];
        let old: Vec<&str> = agent.roles.iter().map(String::as_str).collect();
        let old_roles: Vec<_> = old.iter().filter_map(|r| file.roles.get(*r)).collect();
        let rules: Vec<_> = learned
            .upstreams
            .iter()
            .flat_map(|(u, used)| rules_for(u, used))
            .collect();
        let mut comment = format!(
            "learned by `warden suggest` from {} request(s) of {}",
            learned.requests, agent.id
        );
        if agent.id.contains('*') {
            comment.push_str(&format!(" ({} agent(s))", learned.members.len()));
        }
        if let (Some(first), Some(last)) = (learned.first_ms, learned.last_ms) {
            comment.push_str(&format!("\nseen {} to {}", utc(first), utc(last)));
        }
        let role = RoleSpec {
            name: name.clone(),
            comment,
            upstreams: learned.upstreams.keys().cloned().collect(),
            require_token: old_roles.iter().any(|r| r.require_token),
            rules,
        };
        self.notes.push(format!(
            "agents[{entry}] {}: {} request(s) -> role {name}: {} allow rule(s) on [{}], replacing [{}]",
            agent.id,
            learned.requests,
            role.rules.len(),
            role.upstreams.join(", "),
            old.join(", "),
        ));
        if old_roles
            .iter()
            .any(|r| !r.deny.is_empty() || r.allow.iter().any(|a| a.when.is_some()))
        {
            self.notes.push(format!(
                "agents[{entry}]: the deny rules and `when` conditions of [{}] are not carried \
                 into {name}; add back those you still need",
                old.join(", ")
            ));
        }
        if let Some(samples) = tally.overridden.get(&entry) {
            self.notes.push(format!(
                "agents[{entry}]: a deny rule refused these in shadow mode and {name} allows \
                 them; review: {}",
                samples.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        self.agent_roles.insert(entry, vec![name]);
        self.roles.push(role);
    }
}

fn utc(unix_ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix_ms.to_string())
}

/// The spliced text must say exactly what was planned and nothing else: every other key of the
/// file reads back as it was.
pub(super) fn verify_splice(file: &ConfigFile, text: &str, plan: &Planned) -> Result<(), String> {
    let parsed: ConfigFile =
        serde_saphyr::from_str(text).map_err(|e| format!("the result does not parse: {e}"))?;
    if parsed.agents.len() != file.agents.len() {
        return Err("the result has another number of agents".into());
    }
    for (i, (before, after)) in file.agents.iter().zip(&parsed.agents).enumerate() {
        let mut expected = before.clone();
        if let Some(roles) = plan.agent_roles.get(&i) {
            expected.roles = roles.clone();
        }
        if format!("{expected:?}") != format!("{after:?}") {
            return Err(format!("agents[{i}] reads back as {after:?}"));
        }
    }
    let mut expected_names: BTreeSet<&str> = file
        .roles
        .keys()
        .filter(|r| !plan.dropped.contains(*r))
        .map(String::as_str)
        .collect();
    for role in &plan.roles {
        expected_names.insert(&role.name);
        let got = parsed.roles.get(&role.name);
        if got.is_none_or(|g| g.upstreams != role.upstreams || g.allow.len() != role.rules.len()) {
            return Err(format!("role {} reads back as {got:?}", role.name));
        }
    }
    let names: BTreeSet<&str> = parsed.roles.keys().map(String::as_str).collect();
    if names != expected_names {
        return Err(format!("the result has roles {names:?}"));
    }
    for (name, before) in &file.roles {
        if let Some(after) = parsed
            .roles
            .get(name)
            .filter(|_| !plan.dropped.contains(name))
        {
            if format!("{before:?}") != format!("{after:?}") {
                return Err(format!("role {name} changed"));
            }
        }
    }
    let (mut a, mut b) = (file.clone(), parsed);
    for f in [&mut a, &mut b] {
        f.roles.clear();
        f.agents.clear();
    }
    if format!("{a:?}") != format!("{b:?}") {
        return Err("a key outside roles and agents changed".into());
    }
    Ok(())
}

/// What `warden check` would say about `text`: parse, validate, compile.
pub fn check_text(text: &str, path: &Path) -> Vec<ConfigError> {
    let shown = std::path::PathBuf::from(format!("{} (suggested)", path.display()));
    let file: ConfigFile = match serde_saphyr::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let (line, col) = e
                .location()
                .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
            return vec![ConfigError {
                file: shown,
                line,
                col,
                key_path: String::new(),
                message: e.to_string(),
            }];
        }
    };
    let loaded = LoadedConfig {
        file,
        path: shown,
        positions: SourceMap::build(text),
    };
    let errors = crate::config::validate::validate(&loaded);
    if !errors.is_empty() {
        return errors;
    }
    crate::snapshot::compile(&loaded, None, 0)
        .err()
        .unwrap_or_default()
}
