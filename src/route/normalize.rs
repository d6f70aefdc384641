//! Path normalisation: the one reading of a request target that is both authorised and forwarded.

use thiserror::Error;

/// A request target in the one form warden judges and forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedTarget {
    /// Absolute path, dot segments removed, unreserved escapes decoded, no empty segments.
    pub path: String,
    /// The query as received (without `?`), if any.
    pub query: Option<String>,
}

impl NormalizedTarget {
    /// `path?query`, as sent upstream.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotAbsolute,
}

/// Normalises an origin-form target (`/path?query`).
pub fn normalize_target(raw: &str) -> Result<NormalizedTarget, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (raw, None),
    };
    Ok(NormalizedTarget {
        path: path.to_string(),
        query,
    })
}
