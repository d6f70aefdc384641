//! The request's host: one canonical name from Host, `:authority` or an absolute-form target.
//!
//! A Host only selects among configured routes, so every spelling of one name must compare equal
//! (`INVENTORY.internal.:443` is `inventory.internal`), and every request that names two hosts is
//! refused rather than resolved in favour of one of them (Traefik CVE-2022-23632, Istio
//! CVE-2021-39155, HTTP/2 `:authority` against `host`).

use std::net::{Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, Uri, Version};
use thiserror::Error;

#[cfg(test)]
mod tests;

/// Longest host name accepted (RFC 1035, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("invalid host")]
    Invalid,
    #[error("conflicting hosts")]
    Conflict,
}

/// Lower-cases, drops the port and one trailing dot, and validates the characters.
///
/// Accepted: a DNS name of letters, digits, `-` and `.` (labels of 1-63 characters, not starting
/// or ending in `-`), a dotted-quad IPv4 address, or a bracketed IPv6 address (given back in its
/// compressed form, `[::1]`), each optionally followed by `:port` (1-65535 as digits).
/// Refused: empty, userinfo (`@`), percent-escapes, underscores, empty labels (`a..b`, a second
/// trailing dot), numeric spellings other than a dotted quad (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`),
/// IPv6 zone ids, and an empty, non-numeric or out-of-range port.
pub fn canonical_host(raw: &str) -> Result<String, HostError> {
    if let Some(rest) = raw.strip_prefix('[') {
        if rest.bytes().any(|b| b == b'@') {
            return Err(HostError::Invalid);
        }
        return canonical_ipv6(rest);
    }
    // Userinfo (`@`) and every other byte outside a name are refused by the name's one pass.
    canonical_name(raw)
}

/// `rest` is what follows `[`: `addr]` or `addr]:port`.
fn canonical_ipv6(rest: &str) -> Result<String, HostError> {
    let (addr, after) = rest.split_once(']').ok_or(HostError::Invalid)?;
    if !after.is_empty() {
        let port = after.strip_prefix(':').ok_or(HostError::Invalid)?;
        check_port(port)?;
    }
    let ip: Ipv6Addr = addr.parse().map_err(|_| HostError::Invalid)?;
    Ok(format!("[{ip}]"))
}

fn check_port(port: &str) -> Result<(), HostError> {
    let digits_only =
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(p) if digits_only && p != 0 => Ok(()),
        _ => Err(HostError::Invalid),
    }
}

/// `name` or `name:port`.
fn canonical_name(raw: &str) -> Result<String, HostError> {
    // Labels of 1-63 letters, digits and `-`, not starting or ending in `-`, up to an optional
    // `:port`: one pass, as this runs on every request.
    let bytes = raw.as_bytes();
    let mut label_len = 0;
    let mut label_start = 0;
    let mut prev = b'.';
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            check_port(raw.get(i + 1..).ok_or(HostError::Invalid)?)?;
            end = i;
            break;
        }
        if b == b'.' {
            if label_len == 0 {
                // An empty label: `a..b`, a leading dot, or a second trailing dot.
                return Err(HostError::Invalid);
            }
            if prev == b'-' {
                return Err(HostError::Invalid);
            }
            label_len = 0;
            label_start = i + 1;
        } else {
            let ldh = b.is_ascii_alphanumeric() || (b == b'-' && label_len > 0);
            label_len += 1;
            if !ldh || label_len > MAX_LABEL_LEN {
                return Err(HostError::Invalid);
            }
        }
        prev = b;
    }
    // One trailing dot is the fully-qualified spelling of the same name; a second is not.
    let (name, last_label) = if label_len == 0 && end > 0 {
        let name = raw.get(..end - 1).ok_or(HostError::Invalid)?;
        let start = name.rfind('.').map_or(0, |dot| dot + 1);
        (name, name.as_bytes().get(start..).unwrap_or_default())
    } else {
        let name = raw.get(..end).ok_or(HostError::Invalid)?;
        (name, bytes.get(label_start..end).unwrap_or_default())
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN || prev == b'-' {
        return Err(HostError::Invalid);
    }
    // A name whose last label is numeric is an IPv4 literal to every resolver; only the
    // dotted-quad spelling is accepted, so `127.1` and `0x7f.0.0.1` cannot alias an address.
    let numeric = last_label.iter().all(|b| b.is_ascii_digit())
        || last_label
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"0x"));
    if numeric && name.parse::<Ipv4Addr>().is_err() {
        return Err(HostError::Invalid);
    }
    Ok(name.to_ascii_lowercase())
}

/// What the request says its host is, and whether the target was in absolute form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost {
    /// The canonical host, or `None` when the request names none.
    pub host: Option<String>,
    /// An HTTP/1 absolute-form target (`GET http://host/path`).
    pub absolute_form: bool,
}

/// Resolves Host / `:authority` / absolute-form into one canonical host; conflicts are errors.
///
/// - HTTP/1.x: the Host header; a target with an authority (absolute form) sets `absolute_form`
///   and must name the same host as a Host header, when there is one.
/// - HTTP/2 and later: the URI's authority is `:authority`; a `host` header, when also present,
///   must name the same host.
///
/// Hosts are compared canonically, so ports and one trailing dot do not make a conflict. More
/// than one Host header is a conflict. A request that names no host gets `host: None`: whether
/// that is acceptable (HTTP/1.0) is the caller's decision.
pub fn resolve_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<RequestHost, HostError> {
    let header = host_header(headers)?;
    let authority = uri
        .authority()
        .map(|a| canonical_host(a.as_str()))
        .transpose()?;
    let host = match (authority, header) {
        (Some(a), Some(h)) if a != h => return Err(HostError::Conflict),
        (Some(a), _) => Some(a),
        (None, h) => h,
    };
    let is_http1 = matches!(
        version,
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    Ok(RequestHost {
        host,
        absolute_form: is_http1 && uri.authority().is_some(),
    })
}

/// The one Host header, canonical; several are a conflict even when they agree, since proxies
/// and servers disagree on which one counts.
fn host_header(headers: &HeaderMap) -> Result<Option<String>, HostError> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HostError::Conflict);
    }
    let raw = first.to_str().map_err(|_| HostError::Invalid)?;
    canonical_host(raw).map(Some)
}
