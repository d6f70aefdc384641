//! What can go wrong towards an upstream, and the refusal reason each failure becomes.

use std::error::Error as StdError;
use std::time::Duration;

use thiserror::Error;

use crate::decision::Reason;

#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Unavailable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("no upstream connection free within {0:?} (max_connections reached)")]
    Busy(Duration),
    #[error("request body over the limit")]
    BodyTooLarge,
}

impl UpstreamError {
    pub fn reason(&self) -> Reason {
        match self {
            UpstreamError::Unavailable(_) => Reason::UpstreamUnavailable,
            UpstreamError::Timeout(_) => Reason::UpstreamTimeout,
            UpstreamError::Busy(_) => Reason::UpstreamBusy,
            UpstreamError::BodyTooLarge => Reason::BodyTooLarge,
        }
    }

    /// A failed exchange: a request body over the limit is the agent's fault, anything else
    /// the upstream's.
    pub(super) fn from_hyper(e: &hyper::Error) -> Self {
        let mut source: Option<&(dyn StdError + 'static)> = e.source();
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return UpstreamError::BodyTooLarge;
            }
            source = s.source();
        }
        UpstreamError::Unavailable(error_chain(e))
    }
}

/// `a: b: c` for an error and its sources.
pub fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
