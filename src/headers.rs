//! Header sanitation: what an agent may not tell an upstream.
//!
//! Upstreams trust headers they believe a proxy wrote (identity, rewritten URLs and methods), and
//! many of them read `_` as `-` (CGI, WSGI, PHP, some frameworks). So names are compared without
//! case and with `_` read as `-`, every spelling of a stripped name is removed, and warden adds
//! its own identity headers only after this cleanup.

use http::header::{HeaderName, HeaderValue, CONNECTION, UPGRADE};
use http::HeaderMap;

#[cfg(test)]
mod tests;

// The headers warden writes, as names made once: a name given as `&str` is copied into every
// map it is inserted in.
pub const X_WARDEN_AGENT: HeaderName = HeaderName::from_static("x-warden-agent");
pub const X_WARDEN_ROLES: HeaderName = HeaderName::from_static("x-warden-roles");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that only mean something on one connection (RFC 9110 section 7.6.1, plus the
/// historical `proxy-connection`, the proxy authentication pair, and `http2-settings`, which
/// only ever belongs to an `Upgrade: h2c` of this hop, RFC 7540 section 3.2.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Request headers an upstream might take as identity, as the client's original URL or method,
/// or as what warden itself sets (`x-forwarded-host`, `x-forwarded-proto`, `x-real-ip`).
const DEFAULT_STRIP: &[&str] = &[
    "forwarded",
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-client-dn",
    "x-agent-id",
    "x-spiffe-id",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-remote-user",
    "remote-user",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    // Other URL and method carriers that common frameworks and proxies trust.
    "x-original-uri",
    "x-original-host",
    "x-original-method",
    "x-forwarded-port",
    "x-forwarded-path",
    "x-envoy-original-path",
];

/// Whole families: every header that starts with one of these.
const DEFAULT_STRIP_PREFIXES: &[&str] = &["x-warden-", "x-ssl-client-", "x-auth-request-"];

/// The compiled list of request headers removed before forwarding (defaults plus config).
///
/// Names are held lower-cased with `_` as `-`, so `should_strip` compares without allocating.
/// A configured name ending in `*` (`x-internal-*`) strips every header with that prefix.
#[derive(Debug, Clone)]
pub struct StripList {
    names: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

impl Default for StripList {
    fn default() -> Self {
        StripList::new(&[])
    }
}

impl StripList {
    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<Box<str>> = DEFAULT_STRIP.iter().map(|&n| n.into()).collect();
        let mut prefixes: Vec<Box<str>> =
            DEFAULT_STRIP_PREFIXES.iter().map(|&p| p.into()).collect();
        for raw in extra {
            let canon: String = raw.trim().bytes().map(|b| char::from(fold(b))).collect();
            match canon.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() => prefixes.push(prefix.into()),
                // `*` alone would strip everything, which no operator means.
                Some(_) => {}
                None if canon.is_empty() => {}
                None => names.push(canon.into()),
            }
        }
        names.sort_unstable();
        names.dedup();
        StripList { names, prefixes }
    }

    /// Whether a request header of this name is removed.
    pub fn should_strip(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.names.iter().any(|n| folded_eq(name, n.as_bytes()))
            || self
                .prefixes
                .iter()
                .any(|p| name.len() >= p.len() && folded_eq(&name[..p.len()], p.as_bytes()))
    }
}

/// One byte of a header name as compared: lower case, `_` read as `-`.
fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

/// `a` equals `b` after folding both.
fn folded_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| folded_eq(name.as_bytes(), h.as_bytes()))
}

/// Every token of every `Connection` header, trimmed; empty tokens skipped.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

fn named_by_connection(headers: &HeaderMap, name: &str) -> bool {
    connection_tokens(headers).any(|t| folded_eq(t, name.as_bytes()))
}

/// Whether an `Upgrade` value offers `h2c`: cleartext HTTP/2 would tunnel past every
/// per-request check, so it is never forwarded.
fn offers_h2c(headers: &HeaderMap) -> bool {
    headers
        .get_all(UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| {
            let proto = t.trim_ascii();
            let proto = proto.split(|b| *b == b'/').next().unwrap_or(proto);
            proto.eq_ignore_ascii_case(b"h2c")
        })
}

/// Removes every header `remove` selects. The decision for all names is taken before any is
/// removed, so `Connection` is still there to be read while deciding.
fn remove_where(headers: &mut HeaderMap, remove: impl Fn(&HeaderMap, &str) -> bool) {
    // Most heads lose a few names or none: those are kept on the stack.
    const FEW: usize = 8;
    let mut few: [Option<HeaderName>; FEW] = Default::default();
    let mut more = Vec::new();
    let doomed = headers.keys().filter(|n| remove(headers, n.as_str()));
    for (i, name) in doomed.enumerate() {
        match few.get_mut(i) {
            Some(slot) => *slot = Some(name.clone()),
            None => more.push(name.clone()),
        }
    }
    for name in few.into_iter().flatten().chain(more) {
        headers.remove(&name);
    }
}

/// Hop-by-hop and `Connection`-named headers; with `keep_upgrade`, `upgrade` survives (unless it
/// offers h2c) and `Connection` is replaced by exactly `upgrade`.
fn sanitize_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let keep_upgrade = keep_upgrade && headers.contains_key(UPGRADE) && !offers_h2c(headers);
    remove_where(headers, |h, name| {
        if keep_upgrade && name == UPGRADE.as_str() {
            return false;
        }
        is_hop_by_hop(name) || named_by_connection(h, name)
    });
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes hop-by-hop headers, those `Connection` names, and every stripped name.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive for a WebSocket handshake:
/// the request's other `Connection` tokens do not, and an `Upgrade` offering `h2c` is removed.
pub fn sanitize_request_headers(headers: &mut HeaderMap, strip: &StripList, keep_upgrade: bool) {
    sanitize_hop_by_hop(headers, keep_upgrade);
    remove_where(headers, |_, name| strip.should_strip(name));
}

/// Removes hop-by-hop headers from an upstream response.
/// With `keep_upgrade` (a `101 Switching Protocols`), `Upgrade` and `Connection: upgrade` survive.
pub fn sanitize_response_headers(headers: &mut HeaderMap, keep_upgrade: bool) {
    sanitize_hop_by_hop(headers, keep_upgrade);
}
