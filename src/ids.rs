//! Identifiers, parsed once: the agent id (a SPIFFE ID, by the standard's rules) and the indices of
//! the compiled snapshot's routes, upstreams and roles. A bare `String` or `usize` never crosses a
//! layer boundary as one of these.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

const SCHEME: &str = "spiffe://";
/// The SPIFFE ID standard's bounds: 255 bytes of trust domain, 2048 bytes in all.
const MAX_TRUST_DOMAIN: usize = 255;
const MAX_ID: usize = 2048;

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SpiffeIdError {
    #[error("does not start with `spiffe://` (lower case)")]
    Scheme,
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    #[error("the trust domain may hold only a-z 0-9 . - _ (no upper case, port or user info)")]
    TrustDomainChar,
    #[error("the trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("the id has no path")]
    NoPath,
    #[error("a path segment is empty (`//` or a trailing `/`)")]
    EmptySegment,
    #[error("a path segment is `.` or `..`")]
    DotSegment,
    #[error(
        "a path segment may hold only A-Z a-z 0-9 . - _ (no percent-encoding, query or fragment)"
    )]
    PathChar,
    #[error("the id is longer than 2048 bytes")]
    TooLong,
    #[error("a wildcard segment must be exactly `*` or `**`")]
    Wildcard,
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks a trust domain name (`example.org`).
pub fn check_trust_domain(domain: &str) -> Result<(), SpiffeIdError> {
    if domain.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if domain.len() > MAX_TRUST_DOMAIN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    if !domain.bytes().all(is_domain_byte) {
        return Err(SpiffeIdError::TrustDomainChar);
    }
    Ok(())
}

/// Splits `spiffe://domain/path` after checking the scheme and the domain; the path keeps its `/`.
fn split(id: &str) -> Result<(&str, &str), SpiffeIdError> {
    if id.len() > MAX_ID {
        return Err(SpiffeIdError::TooLong);
    }
    let rest = id.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (domain, path) = rest.split_at(end);
    check_trust_domain(domain)?;
    if path.is_empty() {
        return Err(SpiffeIdError::NoPath);
    }
    Ok((domain, path))
}

fn check_segment(segment: &str, wildcards: bool) -> Result<(), SpiffeIdError> {
    match segment {
        "" => Err(SpiffeIdError::EmptySegment),
        "." | ".." => Err(SpiffeIdError::DotSegment),
        "*" | "**" if wildcards => Ok(()),
        s if wildcards && s.contains('*') => Err(SpiffeIdError::Wildcard),
        s if s.bytes().all(is_path_byte) => Ok(()),
        _ => Err(SpiffeIdError::PathChar),
    }
}

fn check_path(path: &str, wildcards: bool) -> Result<(), SpiffeIdError> {
    // `path` starts with `/` (see `split`).
    path[1..]
        .split('/')
        .try_for_each(|s| check_segment(s, wildcards))
}

/// An agent's identity: a SPIFFE ID exactly as the standard writes one. Identities are compared
/// byte for byte and never folded: `SPIFFE://Example.org/a` is not an id at all.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(Arc<str>);

impl AgentId {
    /// Parses `spiffe://trust.domain/path/segments`.
    pub fn parse(id: &str) -> Result<AgentId, SpiffeIdError> {
        let (_, path) = split(id)?;
        check_path(path, false)?;
        Ok(AgentId(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, for records and labels that keep the id.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }

    pub fn trust_domain(&self) -> &str {
        let rest = &self.0[SCHEME.len()..];
        &rest[..rest.find('/').unwrap_or(rest.len())]
    }

    /// Whether the id belongs to `domain`, compared as the verifier compares it: exactly.
    pub fn is_in(&self, domain: &str) -> bool {
        domain.bytes().all(|b| b != b'/')
            && self.0[SCHEME.len()..]
                .strip_prefix(domain)
                .is_some_and(|path| path.is_empty() || path.starts_with('/'))
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.0[SCHEME.len() + self.trust_domain().len()..]
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An `agents` entry's id: an exact [`AgentId`] or a pattern whose segments may be `*` (one
/// segment) or `**` (any number) to cover a fleet.
pub fn check_agent_pattern(id: &str) -> Result<(), SpiffeIdError> {
    let (_, path) = split(id)?;
    check_path(path, true)
}

macro_rules! index_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            /// The id of the `i`-th entry; the snapshot holds fewer than 2^32 of anything.
            pub fn new(i: usize) -> Self {
                $name(u32::try_from(i).unwrap_or(u32::MAX))
            }

            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

index_id!(
    /// A route of the compiled snapshot (its position in `routes`).
    RouteId
);
index_id!(
    /// An upstream of the compiled snapshot.
    UpstreamId
);
index_id!(
    /// A role of the compiled snapshot.
    RoleId
);

/// A set of upstreams, as a bitmap: a role's or an agent's segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSet {
    words: Box<[u64]>,
}

impl UpstreamSet {
    pub fn with_capacity(n: usize) -> Self {
        UpstreamSet {
            words: vec![0; n.div_ceil(64).max(1)].into_boxed_slice(),
        }
    }

    pub fn insert(&mut self, u: UpstreamId) {
        let i = u.index();
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, u: UpstreamId) -> bool {
        let i = u.index();
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union_with(&mut self, other: &UpstreamSet) {
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = UpstreamId> + '_ {
        (0..self.words.len() * 64)
            .map(UpstreamId::new)
            .filter(|u| self.contains(*u))
    }
}

/// One request's id: 32 lower-case hex digits, made once as a header value and shared, not
/// copied, by the upstream's request, the agent's response and the record.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(http::HeaderValue);

impl RequestId {
    /// `prefix` and `n` as 16 hex digits each.
    pub fn new(prefix: u64, n: u64) -> RequestId {
        let mut digits = [0u8; 32];
        hex(prefix, &mut digits[..16]);
        hex(n, &mut digits[16..]);
        // Hex digits are always a valid value; the fallback is never taken.
        let value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(digits))
            .unwrap_or_else(|_| http::HeaderValue::from_static("0"));
        RequestId(value)
    }

    pub fn as_str(&self) -> &str {
        // Always hex digits, so always a `str`.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as the `x-request-id` header's value (sharing its bytes).
    pub fn header(&self) -> http::HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `n` as 16 hex digits.
fn hex(n: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().take(16).enumerate() {
        *b = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests;
