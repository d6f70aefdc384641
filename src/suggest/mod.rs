//! `warden suggest`: least privilege learned from traffic (product contract, section 9).
//!
//! It reads audit records (typically a period in `mode: shadow`) and writes, for each `agents`
//! entry that was seen, the smallest role that allows exactly what it did: the upstreams it used,
//! its paths folded into patterns (see [`fold`]), each pattern with the methods used on it, and on
//! JSON-RPC routes the tools, resources, prompts (MCP) or methods (A2A) it called. The result is
//! the running config with those roles in place of each entry's roles, checked as `warden check`
//! would before it is printed.
//!
//! Choices, each the conservative one:
//! - `allow` and `shadow_deny` records are what an agent did; `deny` records were refused (enforce
//!   mode, or before the policy could judge them) and teach nothing.
//! - A pattern entry (`.../support/*`) gets one role learned from the union of its members: the
//!   role is what every member holds, and a new member is not denied what its peers do.
//! - An entry with no record in the window keeps its roles (it may simply not have run).
//! - The learned role keeps `require_token` when any role it replaces had it. It does not carry
//!   the replaced roles' `deny` rules or `when` conditions: it allows exactly what was seen, and a
//!   note on stderr names what was dropped, and every seen request a deny rule had refused.
//! - Roles that no agent holds afterwards are removed; others stay as written.

mod fold;
mod learn;
mod records;
mod render;
mod splice;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::config::load::ConfigError;
use crate::config::schema::ConfigFile;

pub use fold::{PathTree, SIBLING_FOLD};
pub use learn::{Learned, RpcUse, RuleSpec};
pub use records::{AuditLine, Seen, Skipped};
pub use render::RoleSpec;

/// What `warden suggest` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub audit: Vec<PathBuf>,
    /// An `agents` entry id (exact or pattern): suggest for that entry only.
    pub agent: Option<String>,
    /// Only records at most this old.
    pub since: Option<Duration>,
    /// "Now", for `since`.
    pub now_unix_ms: i64,
}

#[derive(Debug, Error)]
pub enum SuggestError {
    #[error("{}", lines(.0))]
    Config(Vec<ConfigError>),
    #[error("{}:{line}: {message}", file.display())]
    Audit {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("--agent: {0}")]
    Agent(String),
    #[error("cannot write the suggestion into {}: {why}", path.display())]
    Layout { path: PathBuf, why: String },
}

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The suggested config and what went into it.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub original: String,
    pub text: String,
    /// The learned roles, in the order of their agents entries.
    pub roles: Vec<RoleSpec>,
    /// What an operator should know: what was learned, skipped and dropped.
    pub notes: Vec<String>,
    /// What `warden check` says about `text`; empty when it accepts it.
    pub problems: Vec<ConfigError>,
}

impl Suggestion {
    /// A unified diff of the running config against the suggestion.
    pub fn diff(&self, path: &Path) -> String {
        let name = path.display().to_string();
        similar::TextDiff::from_lines(&self.original, &self.text)
            .unified_diff()
            .context_radius(3)
            .header(&name, &format!("{name} (suggested)"))
            .to_string()
    }
}

/// Reads the config and the audit records, and builds the suggestion.
pub fn suggest(opts: &Options) -> Result<Suggestion, SuggestError> {
    let original = std::fs::read_to_string(&opts.config).map_err(|e| {
        SuggestError::Config(vec![ConfigError {
            file: opts.config.clone(),
            line: 1,
            col: 1,
            key_path: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    // The running config must pass `check`: its agent index says which entry covers an id.
    let snap =
        crate::snapshot::build_snapshot(&opts.config, None, 0).map_err(SuggestError::Config)?;
    let loaded = crate::config::load::load(&opts.config).map_err(SuggestError::Config)?;
    let file = &loaded.file;
    let only = opts
        .agent
        .as_deref()
        .map(|id| select_entry(file, id, |a| entry_for(&snap, a)))
        .transpose()?;
    let not_before = opts
        .since
        .map(|d| opts.now_unix_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut tally = Tally::default();
    records::read_all(&opts.audit, not_before, &mut |r| {
        tally.add(r, |id| entry_for(&snap, id), only, file)
    })?;
    let plan = Planned::new(file, &tally, only);
    let splice_plan = splice::Plan {
        new_roles: &plan.roles,
        drop_roles: &plan.dropped,
        agent_roles: &plan.agent_roles,
    };
    let layout = |why: String| SuggestError::Layout {
        path: opts.config.clone(),
        why,
    };
    let text = splice::splice(&original, &splice_plan).map_err(layout)?;
    let problems = check_text(&text, &opts.config);
    if problems.is_empty() {
        verify_splice(file, &text, &plan).map_err(layout)?;
    }
    let mut notes = plan.notes;
    notes.extend(tally.notes());
    Ok(Suggestion {
        original,
        text,
        roles: plan.roles,
        notes,
        problems,
    })
}

/// The `agents` entry covering `id` in the running config.
fn entry_for(snap: &crate::snapshot::Snapshot, id: &str) -> Option<usize> {
    let id = crate::ids::AgentId::parse(id).ok()?;
    snap.agent(&id).map(|a| a.entry)
}

/// `--agent` names an entry as the config writes it.
fn select_entry(
    file: &ConfigFile,
    id: &str,
    covering: impl Fn(&str) -> Option<usize>,
) -> Result<usize, SuggestError> {
    if let Some(i) = file.agents.iter().position(|a| a.id == id) {
        return Ok(i);
    }
    if let Some(i) = covering(id) {
        let entry = &file.agents[i].id;
        return Err(SuggestError::Agent(format!(
            "{id} is covered by agents[{i}] `{entry}`; that entry is learned from all its \
             members: pass --agent '{entry}'"
        )));
    }
    let hint = crate::config::suggest::did_you_mean(id, file.agents.iter().map(|a| a.id.as_str()));
    Err(SuggestError::Agent(format!(
        "no agents entry has the id {id}{hint}"
    )))
}

/// The records read, per entry, and what was not learned.
#[derive(Default)]
struct Tally {
    learned: BTreeMap<usize, Learned>,
    skipped: BTreeMap<Skipped, u64>,
    uncovered: BTreeSet<String>,
    gone_upstreams: BTreeSet<String>,
    /// Requests a deny rule refused in shadow mode, which the suggestion now allows.
    overridden: BTreeMap<usize, BTreeSet<String>>,
}

impl Tally {
    fn add(
        &mut self,
        r: Result<Seen, Skipped>,
        entry_of: impl Fn(&str) -> Option<usize>,
        only: Option<usize>,
        file: &ConfigFile,
    ) {
        let seen = match r {
            Ok(s) => s,
            Err(why) => {
                *self.skipped.entry(why).or_default() += 1;
                return;
            }
        };
        let Some(entry) = entry_of(&seen.agent) else {
            if self.uncovered.len() < 20 {
                self.uncovered.insert(seen.agent);
            }
            return;
        };
        if only.is_some_and(|o| o != entry) {
            return;
        }
        if !file.upstreams.contains_key(&seen.upstream) {
            self.gone_upstreams.insert(seen.upstream);
            return;
        }
        if seen.deny_rule_matched {
            let samples = self.overridden.entry(entry).or_default();
            if samples.len() < 5 {
                samples.insert(format!("{} {}", seen.method, seen.path));
            }
        }
        self.learned.entry(entry).or_default().add(&seen);
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(n) = self.skipped.get(&Skipped::Refused) {
            notes.push(format!(
                "{n} refused request(s) (decision deny) are not learned"
            ));
        }
        if let Some(n) = self.skipped.get(&Skipped::TooOld) {
            notes.push(format!("{n} record(s) older than --since are not read"));
        }
        if !self.uncovered.is_empty() {
            notes.push(format!(
                "requests of agents no entry covers are not learned: {}",
                self.uncovered
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.gone_upstreams.is_empty() {
            notes.push(format!(
                "requests to upstreams the config no longer has are not learned: {}",
                self.gone_upstreams
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        notes
    }
}

mod plan;
use plan::{check_text, verify_splice, Planned};

#[cfg(test)]
mod tests;
