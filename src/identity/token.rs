//! The second factor: a JWT bound to the client certificate (RFC 8705).

use std::path::Path;

use thiserror::Error;

use crate::config::schema::TokenSection;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("token_missing")]
    Missing,
    #[error("token_invalid")]
    Invalid(String),
    #[error("token_not_bound")]
    NotBound,
}

/// Verifies certificate-bound tokens against the configured issuers' keys.
pub struct TokenVerifier {
    pub forward: bool,
    pub required: bool,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Loads the issuers' keys (relative paths against `base_dir`).
    pub fn from_config(section: &TokenSection, base_dir: &Path) -> Result<Self, String> {
        let _ = base_dir;
        Ok(TokenVerifier {
            forward: section.forward,
            required: section.required,
        })
    }

    /// Checks the `Authorization` header value for `agent_id` on a connection whose client
    /// certificate has `thumbprint`; `now_unix` is the current time in Unix seconds.
    pub fn verify(
        &self,
        authorization: Option<&http::HeaderValue>,
        agent_id: &str,
        thumbprint: &[u8; 32],
        now_unix: i64,
    ) -> Result<(), TokenError> {
        let _ = (agent_id, thumbprint, now_unix);
        match authorization {
            None => Err(TokenError::Missing),
            Some(_) => Err(TokenError::Invalid("not implemented".into())),
        }
    }
}
