//! Routes, roles and their rules: every name must resolve, every pattern must be able to match.

use std::collections::BTreeMap;

use super::Report;
use crate::config::schema::{RoleSection, RouteSection, RuleSection, WhenSection};
use crate::config::suggest::did_you_mean;
use crate::route::normalize::normalize_target;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `unknown upstream "x"; did you mean "y"?` when `name` is not defined, else nothing.
fn unknown_upstream(r: &Report<'_>, name: &str) -> Option<String> {
    let ups = &r.cfg.file.upstreams;
    (!ups.contains_key(name)).then(|| {
        format!(
            "unknown upstream \"{name}\"{}",
            did_you_mean(name, ups.keys().map(String::as_str))
        )
    })
}

pub(super) fn check_routes(r: &mut Report<'_>) {
    let routes = &r.cfg.file.routes;
    for (i, route) in routes.iter().enumerate() {
        let base = format!("routes[{i}]");
        if let Some(e) = unknown_upstream(r, &route.upstream) {
            r.err(&format!("{base}.upstream"), e);
        }
        if let Some(host) = &route.host {
            if let Err(e) = host_problem(host) {
                r.err(&format!("{base}.host"), e);
            }
        }
        if let Some(prefix) = &route.path_prefix {
            if let Err(e) = prefix_problem(prefix) {
                r.err(&format!("{base}.path_prefix"), e);
            }
        }
        if let Some(j) = routes[..i]
            .iter()
            .position(|earlier| shadows(earlier, route))
        {
            r.err(
                &base,
                format!("never matches: routes[{j}] comes first and takes all its requests"),
            );
        }
    }
}

fn prefix_of(route: &RouteSection) -> &str {
    match route.path_prefix.as_deref() {
        None | Some("") => "/",
        Some(p) if p.len() > 1 => p.trim_end_matches('/'),
        Some(p) => p,
    }
}

/// Whether every request `later` would match is taken by `earlier` first, whatever the prefix
/// matching rules: same host (or any host) and the same prefix, or the root prefix.
fn shadows(earlier: &RouteSection, later: &RouteSection) -> bool {
    let host_covers = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (Some(_), None) => false,
    };
    let prefix = prefix_of(earlier);
    host_covers && (prefix == "/" || prefix == prefix_of(later))
}

/// A route host is a bare name as the request's Host carries it, compared without port.
fn host_problem(host: &str) -> Result<(), String> {
    if host.contains("://") {
        return Err(format!(
            "\"{host}\" must be a bare host name, without scheme"
        ));
    }
    if host.contains('/') {
        return Err(format!("\"{host}\" must be a bare host name, without path"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!(
            "\"{host}\" must be a bare host name, without port: the port is ignored when matching"
        ));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "write \"{}\" in lower case: hosts are compared lower-cased",
            host.to_ascii_lowercase()
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("\"{host}\" is not a valid host name"));
    }
    Ok(())
}

fn prefix_problem(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err(format!("\"{prefix}\" must start with /"));
    }
    if prefix.contains('*') {
        return Err("a path prefix is literal; `*` belongs in role rules".to_string());
    }
    literal_path_problem(prefix, prefix.trim_end_matches('/').split('/').skip(1))
}

/// What no request path can contain once normalised, so a pattern holding it never matches.
fn literal_path_problem<'a>(
    text: &str,
    segments: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "\"{text}\" contains {c:?}: a path pattern is a plain path, matched after normalisation"
        ));
    }
    for seg in segments {
        match seg {
            "" => return Err(format!("\"{text}\" has an empty segment (`//`)")),
            "." | ".." => {
                return Err(format!(
                    "\"{text}\" has a `{seg}` segment; requests are matched after dot segments are removed"
                ))
            }
            "*" | "**" => {}
            _ => segment_problem(text, seg)?,
        }
    }
    Ok(())
}

/// A literal segment matches only if it is already in the normal form requests are judged in:
/// the same normalisation is applied to it, and any difference means it can never match.
pub(super) fn segment_problem(text: &str, seg: &str) -> Result<(), String> {
    let written = format!("/{seg}");
    match normalize_target(&written) {
        Ok(n) if n.path() == written && n.query().is_none() => Ok(()),
        Ok(n) if n.query().is_some() => Err(format!(
            "\"{text}\" contains `?`: a path pattern is a plain path, without a query"
        )),
        Ok(n) => {
            let hint = if seg.contains(['{', '}', '<', '>']) {
                " (for a variable segment write `*`)"
            } else {
                ""
            };
            Err(format!(
                "\"{text}\": segment `{seg}` never matches, since requests are matched in normal form, where it reads `{}`{hint}",
                &n.path()[1..]
            ))
        }
        Err(e) => Err(format!(
            "\"{text}\": segment `{seg}` never matches: a request holding it is refused ({e})"
        )),
    }
}

/// A rule path: literal segments, `*` (one segment) or `**` (zero or more), each whole.
pub(super) fn pattern_problem(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("\"{pattern}\" must start with /"));
    }
    if let Some(seg) = pattern
        .split('/')
        .find(|s| s.contains('*') && *s != "*" && *s != "**")
    {
        return Err(format!(
            "\"{pattern}\": `*` and `**` must be a whole segment (found `{seg}`)"
        ));
    }
    // A trailing `/` is a literal empty last segment; elsewhere an empty segment never matches.
    let body = &pattern[1..];
    let body = body.strip_suffix('/').unwrap_or(body);
    let segments = body.split('/').filter(|_| !body.is_empty());
    literal_path_problem(pattern, segments)
}

/// An HTTP method token (RFC 9110 `token`).
fn method_ok(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn check_roles(r: &mut Report<'_>) {
    let token_configured = r
        .cfg
        .file
        .identity
        .as_ref()
        .is_some_and(|i| i.token.is_some());
    let roles: &BTreeMap<String, RoleSection> = &r.cfg.file.roles;
    for (name, role) in roles {
        let base = format!("roles.{name}");
        for (i, up) in role.upstreams.iter().enumerate() {
            if let Some(e) = unknown_upstream(r, up) {
                r.err(&format!("{base}.upstreams[{i}]"), e);
            }
        }
        if role.upstreams.is_empty() && !role.allow.is_empty() {
            r.err(
                &format!("{base}.upstreams"),
                format!("role \"{name}\" has allow rules but no upstreams, so it can never reach anything; list them in upstreams"),
            );
        }
        if role.require_token && !token_configured {
            r.err(
                &format!("{base}.require_token"),
                "needs identity.token to be configured",
            );
        }
        for (kind, rules) in [("allow", &role.allow), ("deny", &role.deny)] {
            for (i, rule) in rules.iter().enumerate() {
                check_rule(r, name, role, &format!("{base}.{kind}[{i}]"), rule);
            }
        }
    }
}

fn check_rule(
    r: &mut Report<'_>,
    role_name: &str,
    role: &RoleSection,
    base: &str,
    rule: &RuleSection,
) {
    if let Some(up) = &rule.upstream {
        if let Some(e) = unknown_upstream(r, up) {
            r.err(&format!("{base}.upstream"), e);
        } else if !role.upstreams.contains(up) {
            r.err(
                &format!("{base}.upstream"),
                format!(
                    "rule's upstream \"{up}\" is outside role \"{role_name}\"'s upstreams [{}]",
                    role.upstreams.join(", ")
                ),
            );
        }
    }
    for (i, method) in rule.methods.iter().enumerate() {
        if !method_ok(method) {
            r.err(
                &format!("{base}.methods[{i}]"),
                format!("\"{method}\" is not an HTTP method token"),
            );
        } else if method.bytes().any(|b| b.is_ascii_lowercase()) {
            r.err(
                &format!("{base}.methods[{i}]"),
                format!(
                    "methods are upper case: write \"{}\" (requests with a lower-case method are refused before the rules)",
                    method.to_ascii_uppercase()
                ),
            );
        }
    }
    for (i, path) in rule.paths.iter().enumerate() {
        if let Err(e) = pattern_problem(path) {
            r.err(&format!("{base}.paths[{i}]"), e);
        }
    }
    if let Some(when) = &rule.when {
        check_when(r, &format!("{base}.when"), when);
    }
}

fn check_when(r: &mut Report<'_>, base: &str, when: &WhenSection) {
    for (i, cidr) in when.source_cidrs.iter().enumerate() {
        if let Err(e) = cidr_problem(cidr) {
            r.err(&format!("{base}.source_cidrs[{i}]"), e);
        }
    }
    if let Some(hours) = &when.hours_utc {
        if let Err(e) = parse_hours(hours) {
            r.err(&format!("{base}.hours_utc"), e);
        }
    }
    for (i, day) in when.weekdays.iter().enumerate() {
        let lower = day.to_ascii_lowercase();
        if !WEEKDAYS.contains(&lower.as_str()) {
            r.err(
                &format!("{base}.weekdays[{i}]"),
                format!(
                    "\"{day}\" is not a weekday; use mon, tue, wed, thu, fri, sat, sun{}",
                    did_you_mean(&lower, WEEKDAYS)
                ),
            );
        }
    }
    for (name, value) in &when.headers {
        let key_path = format!("{base}.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            r.err(&key_path, format!("\"{name}\" is not a valid header name"));
        } else if http::HeaderValue::from_str(value).is_err() {
            r.err(&key_path, "the value is not a valid header value");
        }
    }
}

/// A network (`10.0.0.0/8`) or a single address.
fn cidr_problem(text: &str) -> Result<(), String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let net: ipnet::IpNet = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not an address or a CIDR network"))?;
    if net.trunc() != net {
        return Err(format!(
            "\"{text}\" has host bits set; did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(())
}

/// `HH:MM-HH:MM` in minutes of the day; the window may wrap past midnight.
pub fn parse_hours(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("\"{text}\" is not a time window; write HH:MM-HH:MM, e.g. 06:00-20:00");
    let (from, to) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |t: &str, allow_24: bool| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        let ok = (h < 24 && m < 60) || (allow_24 && h == 24 && m == 0);
        ok.then_some(h * 60 + m)
    };
    let from = minutes(from, false).ok_or_else(bad)?;
    let to = minutes(to, true).ok_or_else(bad)?;
    if from == to {
        return Err(format!("\"{text}\" is an empty window"));
    }
    Ok((from, to))
}
