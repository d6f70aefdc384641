//! The second factor: a JWT bound to the client certificate (RFC 8705).
//!
//! Only asymmetric algorithms are accepted (RS256/384/512 and PS256/384/512 with RSA keys of
//! 2048 bits or more, ES256 with P-256, ES384 with P-384, EdDSA with Ed25519), each key only for
//! the algorithms its type allows, so a public key can never be abused as an HMAC secret and
//! `none` is not an algorithm at all. An issuer's keys come from a PEM file, a JWKS file (both
//! read when the config is loaded; a change of either reloads it) or a `jwks_url` (see [`jwks`]).
//!
//! A request costs one header and payload parse and one signature check per key of the named
//! issuer that could have made it (normally one, chosen by `kid`). Time comes from the caller.
//! Tokens and `Authorization` values are never logged.

pub mod claims;
pub mod jwks;
pub mod keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use thiserror::Error;

use claims::{bearer_token, invalid, Unverified};
use jwks::RemoteJwks;
use keys::{keys_from_jwks, keys_from_pem, VerifyKey, ALGORITHMS};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("token_missing")]
    Missing,
    #[error("token_invalid")]
    Invalid(String),
    #[error("token_not_bound")]
    NotBound,
}

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless the config says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// How often a `jwks_url` is fetched in the background unless the config says otherwise.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);

/// `identity.token`, as the verifier needs it.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub audience: String,
    pub issuers: Vec<IssuerSettings>,
    pub leeway: Duration,
    pub forward: bool,
    pub required: bool,
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The `iss` its tokens carry.
    pub name: String,
    pub keys: KeySource,
}

/// Where an issuer's keys come from; relative paths are read against the verifier's base dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Pem(PathBuf),
    JwksFile(PathBuf),
    JwksUrl {
        url: String,
        ca: Option<PathBuf>,
        refresh: Duration,
    },
}

enum IssuerKeys {
    Fixed(Vec<VerifyKey>),
    Remote(Arc<RemoteJwks>),
}

struct Issuer {
    name: String,
    keys: IssuerKeys,
}

/// Verifies certificate-bound tokens against the configured issuers' keys.
pub struct TokenVerifier {
    pub forward: bool,
    pub required: bool,
    audience: String,
    issuers: Vec<Issuer>,
    leeway: i64,
    /// One signature-only validation per accepted algorithm.
    validations: Vec<(Algorithm, Validation)>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers.iter().map(|i| i.name.as_str()).collect();
        f.debug_struct("TokenVerifier")
            .field("audience", &self.audience)
            .field("issuers", &issuers)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Loads the issuers' key files (relative paths against `base_dir`) and prepares their
    /// remote sets; no network. `previous` (the running config's verifier) lends each unchanged
    /// `jwks_url` its cache and background refresh.
    pub fn new(
        settings: &TokenSettings,
        base_dir: &Path,
        previous: Option<&TokenVerifier>,
    ) -> Result<Self, String> {
        if settings.audience.is_empty() {
            return Err("identity.token.audience: must not be empty".into());
        }
        if settings.issuers.is_empty() {
            return Err("identity.token.issuers: at least one issuer is required".into());
        }
        let mut issuers: Vec<Issuer> = Vec::with_capacity(settings.issuers.len());
        for (index, issuer) in settings.issuers.iter().enumerate() {
            let at = format!("identity.token.issuers[{index}]");
            if issuer.name.is_empty() {
                return Err(format!("{at}.name: must not be empty"));
            }
            if issuers.iter().any(|i| i.name == issuer.name) {
                return Err(format!("{at}.name: `{}` is listed twice", issuer.name));
            }
            let previous = previous.and_then(|p| p.remote(&issuer.name));
            let keys = load_keys(issuer, base_dir, previous).map_err(|e| format!("{at}.{e}"))?;
            issuers.push(Issuer {
                name: issuer.name.clone(),
                keys,
            });
        }
        Ok(TokenVerifier {
            forward: settings.forward,
            required: settings.required,
            audience: settings.audience.clone(),
            issuers,
            leeway: i64::try_from(settings.leeway.as_secs()).unwrap_or(i64::MAX),
            validations: ALGORITHMS
                .iter()
                .map(|alg| (*alg, signature_only(*alg)))
                .collect(),
        })
    }

    fn remote(&self, issuer: &str) -> Option<&Arc<RemoteJwks>> {
        self.issuers.iter().find_map(|i| match &i.keys {
            IssuerKeys::Remote(r) if i.name == issuer => Some(r),
            _ => None,
        })
    }

    /// Checks the `Authorization` header value for `agent_id` on a connection whose client
    /// certificate has `thumbprint`; `now_unix` is the current time in Unix seconds. A token
    /// naming a key that its issuer's `jwks_url` set lacks waits for one refresh of that set
    /// (at most one per 30 s of `now_unix`, shared by concurrent requests); every other token is
    /// decided without waiting.
    pub async fn verify(
        &self,
        authorization: Option<&http::HeaderValue>,
        agent_id: &str,
        thumbprint: &[u8; 32],
        now_unix: i64,
    ) -> Result<(), TokenError> {
        let token = bearer_token(authorization)?;
        let parsed = Unverified::parse(token)?;
        let issuer = self.issuer_of(&parsed)?;
        match self.check(issuer, &parsed, agent_id, thumbprint, now_unix) {
            Err(Miss) => {
                if let IssuerKeys::Remote(remote) = &issuer.keys {
                    remote.refresh_on_miss(now_unix).await;
                }
                self.check(issuer, &parsed, agent_id, thumbprint, now_unix)
                    .unwrap_or_else(|Miss| Err(invalid("no key of the issuer matches the token")))
            }
            Ok(decided) => decided,
        }
    }

    /// [`TokenVerifier::verify`] against the keys at hand, never waiting for a refresh: for a
    /// caller that cannot wait. A token naming an unknown key is invalid.
    pub fn verify_cached(
        &self,
        authorization: Option<&http::HeaderValue>,
        agent_id: &str,
        thumbprint: &[u8; 32],
        now_unix: i64,
    ) -> Result<(), TokenError> {
        let token = bearer_token(authorization)?;
        let parsed = Unverified::parse(token)?;
        let issuer = self.issuer_of(&parsed)?;
        self.check(issuer, &parsed, agent_id, thumbprint, now_unix)
            .unwrap_or_else(|Miss| Err(invalid("no key of the issuer matches the token")))
    }

    /// The configured issuer the token names. Only its keys are tried: a key trusted for one
    /// issuer does not vouch for another's tokens.
    fn issuer_of(&self, parsed: &Unverified<'_>) -> Result<&Issuer, TokenError> {
        let named = parsed.claims.iss.as_deref();
        self.issuers
            .iter()
            .find(|i| Some(i.name.as_str()) == named)
            .ok_or_else(|| invalid("unknown issuer"))
    }

    /// The decision, or [`Miss`] when no key of the issuer could have signed the token.
    fn check(
        &self,
        issuer: &Issuer,
        parsed: &Unverified<'_>,
        agent_id: &str,
        thumbprint: &[u8; 32],
        now: i64,
    ) -> Result<Result<(), TokenError>, Miss> {
        let remote_keys;
        let keys: &[VerifyKey] = match &issuer.keys {
            IssuerKeys::Fixed(keys) => keys,
            IssuerKeys::Remote(remote) => {
                remote_keys = remote.keys();
                &remote_keys
            }
        };
        let Some(validation) = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == parsed.alg)
            .map(|(_, v)| v)
        else {
            return Ok(Err(invalid("algorithm not allowed")));
        };
        let mut candidates = keys
            .iter()
            .filter(|k| k.allows(parsed.alg) && k.matches_kid(parsed.kid.as_deref()))
            .peekable();
        if candidates.peek().is_none() {
            return Err(Miss);
        }
        let signed = candidates.any(|k| {
            jsonwebtoken::decode::<serde::de::IgnoredAny>(parsed.token, &k.key, validation).is_ok()
        });
        if !signed {
            return Ok(Err(invalid("bad signature")));
        }
        let claims = &parsed.claims;
        Ok(claims
            .check(&self.audience, agent_id, now, self.leeway)
            .and_then(|()| {
                if claims.bound_to(thumbprint) {
                    Ok(())
                } else {
                    Err(TokenError::NotBound)
                }
            }))
    }
}

/// No key of the issuer could have signed the token (unknown `kid`, or none of its algorithm).
struct Miss;

fn load_keys(
    issuer: &IssuerSettings,
    base_dir: &Path,
    previous: Option<&Arc<RemoteJwks>>,
) -> Result<IssuerKeys, String> {
    let read = |field: &str, path: &Path| {
        let path = base_dir.join(path);
        std::fs::read(&path)
            .map(|bytes| (bytes, path.clone()))
            .map_err(|e| format!("{field}: {}: {e}", path.display()))
    };
    match &issuer.keys {
        KeySource::Pem(path) => {
            let (bytes, path) = read("keys", path)?;
            keys_from_pem(&bytes)
                .map(IssuerKeys::Fixed)
                .map_err(|e| format!("keys: {}: {e}", path.display()))
        }
        KeySource::JwksFile(path) => {
            let (bytes, path) = read("jwks", path)?;
            keys_from_jwks(&bytes)
                .map(IssuerKeys::Fixed)
                .map_err(|e| format!("jwks: {}: {e}", path.display()))
        }
        KeySource::JwksUrl { url, ca, refresh } => {
            let ca = ca.as_ref().map(|p| base_dir.join(p));
            if let Some(same) = previous.filter(|p| p.same_source(url, ca.as_deref(), *refresh)) {
                return Ok(IssuerKeys::Remote(same.clone()));
            }
            let previous = previous.map(Arc::as_ref);
            RemoteJwks::new(&issuer.name, url, ca.as_deref(), *refresh, previous)
                .map(IssuerKeys::Remote)
                .map_err(|e| format!("jwks_url: {e}"))
        }
    }
}

/// The library's own claim checks and clock are switched off: every claim, and the time, is
/// checked by [`claims::Claims::check`] against the caller's `now`.
fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims = std::collections::HashSet::new();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

#[cfg(test)]
mod tests;
