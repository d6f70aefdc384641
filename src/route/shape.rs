//! Step 4a: the request's host and target made safe to judge, or the reason they cannot be.

use http::HeaderMap;

use super::host::{resolve_host, HostError};
use super::normalize::{normalize_request_target, normalize_target, NormalizedTarget, PathError};

/// A request target made safe to judge.
#[derive(Debug, Clone)]
pub struct Shaped {
    pub target: NormalizedTarget,
    /// Canonical host, if the request named one.
    pub host: Option<String>,
    /// The target was in absolute form (`GET http://host/path HTTP/1.1`).
    pub absolute_form: bool,
}

/// Why a request's shape was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    Path(PathError),
    Host(HostError),
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Path(e) => write!(f, "path: {e}"),
            ShapeError::Host(e) => write!(f, "host: {e}"),
        }
    }
}

/// Host and path, normalised, or the reason they cannot be judged.
pub fn shape_request(
    version: http::Version,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<Shaped, ShapeError> {
    let host = resolve_host(version, uri, headers).map_err(ShapeError::Host)?;
    let target = match uri.path_and_query() {
        Some(target) => normalize_request_target(target),
        None => normalize_target("/"),
    }
    .map_err(ShapeError::Path)?;
    Ok(Shaped {
        target,
        host: host.host,
        absolute_form: host.absolute_form,
    })
}
