//! Listeners, limits, upstream URLs, telemetry and anomaly settings.

use std::net::SocketAddr;
use std::time::Duration;

use super::{files, Report};
use crate::config::schema::{UpstreamSection, Workers};
use crate::config::units::Dur;

/// hyper's HTTP/1 read buffer cannot be smaller than this.
const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// More agent threads than this is a typo, not a machine.
const MAX_WORKERS: u64 = 1024;

const KX_GROUPS: [&str; 4] = ["x25519", "secp256r1", "secp384r1", "x25519mlkem768"];

fn socket_addr(r: &mut Report<'_>, key_path: &str, text: &str) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            r.err(
                key_path,
                format!(
                    "\"{text}\" is not a socket address; write IP:PORT, e.g. 127.0.0.1:8443 or [::1]:8443"
                ),
            );
            None
        }
    }
}

fn positive(r: &mut Report<'_>, key_path: &str, value: Option<Dur>) {
    if value.is_some_and(|d| d.0 == Duration::ZERO) {
        r.err(key_path, "must be longer than 0");
    }
}

pub(super) fn check_listeners(r: &mut Report<'_>) {
    let f = &r.cfg.file;
    let listen = match &f.listen {
        Some(text) => socket_addr(r, "listen", text),
        None => {
            r.err(
                "listen",
                "missing: the agent-facing address, e.g. 127.0.0.1:8443",
            );
            None
        }
    };
    if let Workers::Count(n) = f.workers {
        if !(1..=MAX_WORKERS).contains(&n) {
            r.err(
                "workers",
                format!("{n} threads: write `auto` (one per core) or 1 to {MAX_WORKERS}"),
            );
        }
    }
    let Some(admin) = &f.admin else { return };
    if let Some(text) = &admin.listen {
        if let Some(addr) = socket_addr(r, "admin.listen", text) {
            if Some(addr) == listen && addr.port() != 0 {
                r.err(
                    "admin.listen",
                    "the admin listener must not share the agent listener's address",
                );
            }
            if !addr.ip().is_loopback() && admin.token_file.is_none() {
                r.err(
                    "admin.listen",
                    format!(
                        "the admin listener on non-loopback address {addr} needs admin.token_file"
                    ),
                );
            }
        }
    }
    if let Some(path) = &admin.token_file {
        if let Err(e) = files::check_token_file(path) {
            r.err("admin.token_file", e);
        }
    }
}

pub(super) fn check_tls(r: &mut Report<'_>) {
    let Some(tls) = &r.cfg.file.tls else {
        r.err(
            "tls",
            "missing: tls.cert, tls.key and tls.client_ca are required",
        );
        return;
    };
    files::check_tls(r, tls);
    let mut seen = Vec::new();
    for (i, group) in tls.kx_groups.iter().enumerate() {
        let name = group.to_ascii_lowercase();
        let key_path = format!("tls.kx_groups[{i}]");
        if !KX_GROUPS.contains(&name.as_str()) {
            r.err(
                &key_path,
                format!(
                    "unknown key-exchange group \"{group}\"; known: {}{}",
                    KX_GROUPS.join(", "),
                    crate::config::suggest::did_you_mean(&name, KX_GROUPS)
                ),
            );
        } else if seen.contains(&name) {
            r.err(&key_path, format!("\"{group}\" is listed twice"));
        }
        seen.push(name);
    }
}

pub(super) fn check_limits(r: &mut Report<'_>) {
    let l = &r.cfg.file.limits;
    if l.max_connections == Some(0) {
        r.err("limits.max_connections", "must be at least 1");
    }
    positive(r, "limits.header_read_timeout", l.header_read_timeout);
    positive(r, "limits.idle_timeout", l.idle_timeout);
    positive(r, "limits.request_timeout", l.request_timeout);
    if let Some(size) = l.max_request_header_bytes {
        if size.0 < MIN_HEADER_BYTES {
            r.err(
                "limits.max_request_header_bytes",
                format!(
                    "must be at least 8KiB, the smallest read buffer hyper accepts (found {} bytes)",
                    size.0
                ),
            );
        }
    }
    if l.max_request_body_bytes.is_some_and(|s| s.0 == 0) {
        r.err("limits.max_request_body_bytes", "must be at least 1 byte");
    }
}

pub(super) fn check_telemetry(r: &mut Report<'_>) {
    let t = &r.cfg.file.telemetry;
    if t.audit_log.as_deref().is_some_and(|p| p.trim().is_empty()) {
        r.err(
            "telemetry.audit_log",
            "empty; write a path, \"-\" for stdout, or null for none",
        );
    }
    if t.audit_max_bytes.is_some_and(|s| s.0 == 0) {
        r.err("telemetry.audit_max_bytes", "must be at least 1 byte");
    }
    if t.max_agent_series == Some(0) {
        r.err("telemetry.max_agent_series", "must be at least 1");
    }
    let a = &r.cfg.file.anomaly;
    if let Some(threshold) = a.threshold {
        // Written so that NaN fails too.
        if !(threshold > 0.0 && threshold <= 1.0) {
            r.err(
                "anomaly.threshold",
                format!("must be in (0, 1], found {threshold}"),
            );
        }
    }
    positive(r, "anomaly.learning_period", a.learning_period);
    positive(r, "anomaly.quarantine_for", a.quarantine_for);
}

pub(super) fn check_upstreams(r: &mut Report<'_>) {
    for (name, up) in &r.cfg.file.upstreams {
        let base = format!("upstreams.{name}");
        if name.trim().is_empty() {
            r.err(&base, "an upstream needs a name");
        }
        check_upstream(r, &base, up);
    }
    for (i, header) in r.cfg.file.strip_request_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            r.err(
                &format!("strip_request_headers[{i}]"),
                format!("\"{header}\" is not a valid header name"),
            );
        }
    }
}

fn check_upstream(r: &mut Report<'_>, base: &str, up: &UpstreamSection) {
    let url_path = format!("{base}.url");
    let https = match url_problem(&up.url) {
        Ok(https) => Some(https),
        Err(e) => {
            r.err(&url_path, e);
            None
        }
    };
    if let Some(tls) = &up.tls {
        if https == Some(false) {
            r.err(&format!("{base}.tls"), "tls settings need an https:// url");
        }
        files::check_upstream_tls(r, &format!("{base}.tls"), tls);
    }
    positive(r, &format!("{base}.connect_timeout"), up.connect_timeout);
    positive(r, &format!("{base}.timeout"), up.timeout);
    positive(r, &format!("{base}.idle_timeout"), up.idle_timeout);
    if up.max_connections == Some(0) {
        r.err(
            &format!("{base}.max_connections"),
            "must be at least 1: no connection means every request waits, then fails with upstream_busy",
        );
    }
    // `http2` on an http:// URL is HTTP/2 with prior knowledge, on https:// h2 by ALPN; an https
    // URL without `tls.ca` is verified against the system's trusted roots. Both are valid.
}

/// Whether the URL is https, or what is wrong with it. Only scheme and authority are allowed:
/// the request's own path is what goes upstream.
fn url_problem(url: &str) -> Result<bool, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(format!("scheme \"{other}\" is not http or https")),
        None => return Err(format!("\"{url}\" needs a scheme: http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("\"{url}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are refused".to_string());
    }
    if authority.host().is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(format!(
            "the url must not have a path (found {}); the request's own path is forwarded",
            uri.path()
        ));
    }
    if uri.query().is_some() {
        return Err("the url must not have a query".to_string());
    }
    Ok(https)
}

/// `cluster.redis` must be a Redis URL the client can use.
pub(super) fn check_cluster(r: &mut Report<'_>) {
    let Some(c) = &r.cfg.file.cluster else {
        return;
    };
    let scheme_ok = c.redis.starts_with("redis://") || c.redis.starts_with("rediss://");
    if !scheme_ok {
        r.err(
            "cluster.redis",
            format!("\"{}\" is not a redis:// or rediss:// URL", c.redis),
        );
    } else if let Err(e) = redis::Client::open(c.redis.as_str()) {
        r.err("cluster.redis", format!("\"{}\": {e}", c.redis));
    }
    if c.key_prefix
        .as_deref()
        .is_some_and(|p| p.contains(char::is_whitespace))
    {
        r.err("cluster.key_prefix", "must not contain white space");
    }
    // A binding gone within a second would be gone before another replica could read it.
    if c.binding_ttl
        .is_some_and(|d| d.0 < std::time::Duration::from_secs(1))
    {
        r.err("cluster.binding_ttl", "must be at least 1s");
    }
}
