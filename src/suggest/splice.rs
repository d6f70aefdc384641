//! Writing the suggestion into the running config's text: the top-level `roles` block gets the
//! learned roles (and loses the roles nobody holds any more), each changed agent's `roles` value
//! names its learned role, and every other byte of the file stays as it was. Comments inside the
//! rewritten values are not carried over; comments above a kept role are.

use std::collections::{BTreeMap, BTreeSet};

use super::render::{flow_list, role_yaml, scalar, RoleSpec};
use super::yaml::{self, column, next_line, Node};

/// What to change.
pub struct Plan<'a> {
    pub new_roles: &'a [RoleSpec],
    /// Roles no agent holds once the plan is applied.
    pub drop_roles: &'a BTreeSet<String>,
    /// `agents[N]` -> its new `roles`.
    pub agent_roles: &'a BTreeMap<usize, Vec<String>>,
}

/// One replacement of `range` by `text`.
type Edit = (std::ops::Range<usize>, String);

/// The config text with the plan applied, or why the file's layout does not allow it.
pub fn splice(text: &str, plan: &Plan<'_>) -> Result<String, String> {
    let root = yaml::parse(text).ok_or("the config could not be parsed")?;
    if root.flow || !matches!(root.kind, yaml::Kind::Map(_)) {
        return Err(
            "the config's top level is not a block mapping; suggest rewrites block-style files"
                .into(),
        );
    }
    let mut edits = vec![roles_edit(text, &root, plan)?];
    for (&entry, roles) in plan.agent_roles {
        edits.push(agent_edit(text, &root, entry, roles)?);
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    let mut floor = usize::MAX;
    for (range, with) in edits {
        if range.end > floor {
            return Err("overlapping edits (roles inside agents?)".into());
        }
        floor = range.start;
        out.replace_range(range, &with);
    }
    Ok(out)
}

fn roles_edit(text: &str, root: &Node, plan: &Plan<'_>) -> Result<Edit, String> {
    let Some((key, value)) = root.entry("roles") else {
        // No roles yet: a new block after the last top-level entry.
        let at = next_line(text, root.end);
        let mut block = String::new();
        if at == text.len() && !text.ends_with('\n') && !text.is_empty() {
            block.push('\n');
        }
        block.push_str("roles:\n");
        for role in plan.new_roles {
            block.push_str(&role_yaml(role, 2));
        }
        return Ok((at..at, block));
    };
    let kept_any = value
        .entries()
        .iter()
        .any(|(k, _)| !k.text().is_some_and(|n| plan.drop_roles.contains(n)));
    if value.flow && kept_any {
        return Err(
            "`roles` is written in flow style ({...}); write it as a block mapping to use suggest"
                .into(),
        );
    }
    if !value.flow && !value.is_empty_scalar() && !matches!(value.kind, yaml::Kind::Map(_)) {
        return Err("`roles` is not a mapping".into());
    }
    let indent = value
        .entries()
        .first()
        .map_or(2, |(k, _)| column(text, k.start));
    let mut block = String::from("roles:\n");
    let entries = value.entries();
    let mut seg_start = next_line(text, key.end);
    for (k, v) in entries {
        let end = next_line(text, v.end.max(k.end));
        let dropped = k.text().is_some_and(|n| plan.drop_roles.contains(n));
        if !dropped {
            block.push_str(&text[seg_start..end]);
            if !block.ends_with('\n') {
                block.push('\n');
            }
        }
        seg_start = end;
    }
    for role in plan.new_roles {
        block.push_str(&role_yaml(role, indent));
    }
    if block == "roles:\n" {
        block = "roles: {}\n".into();
    }
    let end = next_line(text, value.end.max(key.end));
    let mut range = key.start..end;
    // The replaced text ended without a newline (end of file): so does the replacement.
    if !text[..end].ends_with('\n') {
        block.pop();
        range.end = end;
    }
    Ok((range, block))
}

fn agent_edit(text: &str, root: &Node, entry: usize, roles: &[String]) -> Result<Edit, String> {
    let item = root
        .entry("agents")
        .and_then(|(_, agents)| agents.items().get(entry))
        .filter(|item| matches!(item.kind, yaml::Kind::Map(_)))
        .ok_or_else(|| format!("agents[{entry}] is not a mapping in the file"))?;
    let list = flow_list(roles, scalar);
    if let Some((k, v)) = item.entry("roles") {
        let end = if v.is_empty_scalar() {
            k.end + text[k.end..].find(':').map_or(0, |i| i + 1)
        } else {
            v.end
        };
        return Ok((k.end..end, format!(": {list}")));
    }
    let (id_key, id) = item
        .entry("id")
        .ok_or_else(|| format!("agents[{entry}] has no id"))?;
    if item.flow {
        let at = item.entries().last().map_or(id.end, |(_, v)| v.end);
        return Ok((at..at, format!(", roles: {list}")));
    }
    let pad = " ".repeat(column(text, id_key.start));
    Ok((id.end..id.end, format!("\n{pad}roles: {list}")))
}

#[cfg(test)]
mod tests;
