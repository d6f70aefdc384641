//! The second factor: a JWT bound to the client certificate (RFC 8705).
//!
//! Only asymmetric algorithms are accepted (ES256 with P-256 keys, EdDSA with Ed25519 keys), so a
//! public key can never be abused as an HMAC secret, and `none` is not an algorithm at all. Keys
//! are read and checked once, when the config is loaded; a request costs one header parse and one
//! signature check per key that could have signed it (normally one). Time comes from the caller.

use std::collections::HashSet;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The `identity.token` section as the verifier needs it.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub audience: String,
    pub issuers: Vec<IssuerSettings>,
    pub leeway: Option<std::time::Duration>,
    pub forward: bool,
    pub required: bool,
}

/// One trusted token issuer and where its keys are.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub name: String,
    pub keys: Option<std::path::PathBuf>,
    pub jwks: Option<std::path::PathBuf>,
}

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
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// One public key of one issuer.
struct VerifyKey {
    /// Index into `TokenVerifier::issuers`.
    issuer: usize,
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// Verifies certificate-bound tokens against the configured issuers' keys.
pub struct TokenVerifier {
    pub forward: bool,
    pub required: bool,
    audience: String,
    issuers: Vec<String>,
    keys: Vec<VerifyKey>,
    leeway: i64,
    es256: Validation,
    eddsa: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("audience", &self.audience)
            .field("issuers", &self.issuers)
            .field("keys", &self.keys.len())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    cnf: Option<Confirmation>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

#[derive(Deserialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

fn invalid(reason: &str) -> TokenError {
    TokenError::Invalid(reason.to_owned())
}

impl TokenVerifier {
    /// Loads the issuers' keys (relative paths against `base_dir`).
    pub fn from_config(section: &TokenSettings, base_dir: &Path) -> Result<Self, String> {
        if section.audience.is_empty() {
            return Err("identity.token.audience: must not be empty".into());
        }
        if section.issuers.is_empty() {
            return Err("identity.token.issuers: at least one issuer is required".into());
        }
        let mut issuers = Vec::new();
        let mut keys = Vec::new();
        for (index, issuer) in section.issuers.iter().enumerate() {
            let at = format!("identity.token.issuers[{index}]");
            if issuer.name.is_empty() {
                return Err(format!("{at}.name: must not be empty"));
            }
            if issuers.contains(&issuer.name) {
                return Err(format!("{at}.name: `{}` is listed twice", issuer.name));
            }
            keys.extend(load_issuer_keys(issuer, index, &at, base_dir)?);
            issuers.push(issuer.name.clone());
        }
        let leeway = section.leeway.map_or(DEFAULT_LEEWAY_SECS, |d| d.as_secs());
        Ok(TokenVerifier {
            forward: section.forward,
            required: section.required,
            audience: section.audience.clone(),
            issuers,
            keys,
            leeway: i64::try_from(leeway).unwrap_or(i64::MAX),
            es256: signature_only(Algorithm::ES256),
            eddsa: signature_only(Algorithm::EdDSA),
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
        let token = bearer_token(authorization)?;
        let (issuer, claims) = self.verified_claims(token)?;
        self.check_claims(&claims, issuer, agent_id, now_unix)?;
        let bound = claims
            .cnf
            .and_then(|c| c.x5t_s256)
            .is_some_and(|x5t| x5t == URL_SAFE_NO_PAD.encode(thumbprint));
        if bound {
            Ok(())
        } else {
            Err(TokenError::NotBound)
        }
    }

    /// Checks the signature against the keys that could have made it; returns the signing
    /// issuer's name and the claims.
    fn verified_claims(&self, token: &str) -> Result<(&str, Claims), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        let validation = match header.alg {
            Algorithm::ES256 => &self.es256,
            Algorithm::EdDSA => &self.eddsa,
            _ => return Err(invalid("algorithm not allowed")),
        };
        // No extension is understood here, so a token that marks one as critical is refused.
        if header.crit.is_some() {
            return Err(invalid("unsupported critical header"));
        }
        let mut malformed = false;
        for candidate in self.candidates(header.alg, header.kid.as_deref()) {
            match jsonwebtoken::decode::<Claims>(token, &candidate.key, validation) {
                Ok(data) => {
                    let issuer = self
                        .issuers
                        .get(candidate.issuer)
                        .map(String::as_str)
                        .unwrap_or_default();
                    return Ok((issuer, data.claims));
                }
                Err(e) => {
                    malformed |=
                        !matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature)
                }
            }
        }
        Err(invalid(if malformed {
            "malformed token"
        } else {
            "unknown signer or bad signature"
        }))
    }

    /// Keys of the token's algorithm; when the token names a `kid`, keys with another kid are
    /// skipped (keys without a kid, as from a PEM file, stay candidates).
    fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.alg == alg
                && match (kid, k.kid.as_deref()) {
                    (Some(wanted), Some(have)) => wanted == have,
                    _ => true,
                }
        })
    }

    fn check_claims(
        &self,
        claims: &Claims,
        issuer: &str,
        agent_id: &str,
        now: i64,
    ) -> Result<(), TokenError> {
        // The issuer whose key signed must be the one the token names: a key trusted for one
        // issuer does not vouch for another's tokens.
        if claims.iss.as_deref() != Some(issuer) {
            return Err(invalid("wrong issuer"));
        }
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains(&self.audience))
        {
            return Err(invalid("wrong audience"));
        }
        // Byte for byte, as identities are compared everywhere: no folding of case.
        if claims.sub.as_deref() != Some(agent_id) {
            return Err(invalid("token for another agent"));
        }
        let exp = claims
            .exp
            .and_then(numeric_date)
            .ok_or_else(|| invalid("no expiry"))?;
        if now > exp.saturating_add(self.leeway) {
            return Err(invalid("expired"));
        }
        let early = |t: Option<f64>| {
            t.map(|t| numeric_date(t).is_none_or(|t| t > now.saturating_add(self.leeway)))
                .unwrap_or(false)
        };
        if early(claims.nbf) {
            return Err(invalid("not yet valid"));
        }
        if early(claims.iat) {
            return Err(invalid("issued in the future"));
        }
        Ok(())
    }
}

/// The token of `Authorization: Bearer <token>`; any other header is treated as no token.
fn bearer_token(authorization: Option<&http::HeaderValue>) -> Result<&str, TokenError> {
    let value = authorization.ok_or(TokenError::Missing)?.as_bytes();
    let value = value.trim_ascii();
    let scheme_end = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(TokenError::Missing)?;
    let (scheme, token) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(TokenError::Missing);
    }
    let token = std::str::from_utf8(token.trim_ascii())
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| invalid("malformed token"))?;
    if token.is_empty() {
        return Err(invalid("empty token"));
    }
    Ok(token)
}

fn numeric_date(t: f64) -> Option<i64> {
    // Beyond ±2^53 an f64 is no longer an exact second; such dates are nonsense anyway.
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    (t.is_finite() && t.abs() < LIMIT).then(|| t.floor() as i64)
}

/// The library's own claim checks and clock are switched off: every claim, and the time, is
/// checked by `check_claims` against the caller's `now`.
fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

fn load_issuer_keys(
    issuer: &IssuerSettings,
    index: usize,
    at: &str,
    base_dir: &Path,
) -> Result<Vec<VerifyKey>, String> {
    if issuer.keys.is_none() && issuer.jwks.is_none() {
        return Err(format!("{at}: needs `keys` (PEM) or `jwks`"));
    }
    let mut keys = Vec::new();
    if let Some(path) = &issuer.keys {
        let path = base_dir.join(path);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{at}.keys: {}: {e}", path.display()))?;
        keys.extend(
            keys_from_pem(&bytes, index)
                .map_err(|e| format!("{at}.keys: {}: {e}", path.display()))?,
        );
    }
    if let Some(path) = &issuer.jwks {
        let path = base_dir.join(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{at}.jwks: {}: {e}", path.display()))?;
        keys.extend(
            keys_from_jwks(&text, index)
                .map_err(|e| format!("{at}.jwks: {}: {e}", path.display()))?,
        );
    }
    Ok(keys)
}

/// Every `PUBLIC KEY` block of a PEM file; each must be EC P-256 or Ed25519.
fn keys_from_pem(pem: &[u8], issuer: usize) -> Result<Vec<VerifyKey>, String> {
    let mut keys = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label != "PUBLIC KEY" {
            return Err(format!(
                "`{}` block: only PUBLIC KEY (SPKI) blocks are accepted",
                block.label
            ));
        }
        let (alg, key) = key_from_spki(&block.contents)?;
        keys.push(VerifyKey {
            issuer,
            alg,
            kid: None,
            key,
        });
    }
    if keys.is_empty() {
        return Err("no PUBLIC KEY block".into());
    }
    Ok(keys)
}

fn key_from_spki(der: &[u8]) -> Result<(Algorithm, DecodingKey), String> {
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("unreadable public key: {e}"))?;
    let oid = &spki.algorithm.algorithm;
    let raw = spki.subject_public_key.data.as_ref();
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if curve.as_ref() != Some(&OID_EC_P256) {
            return Err("EC keys must be on P-256 (ES256)".into());
        }
        if raw.len() != 65 || raw.first() != Some(&0x04) {
            return Err("malformed P-256 public key".into());
        }
        Ok((Algorithm::ES256, DecodingKey::from_ec_der(raw)))
    } else if *oid == OID_SIG_ED25519 {
        if raw.len() != 32 {
            return Err("malformed Ed25519 public key".into());
        }
        Ok((Algorithm::EdDSA, DecodingKey::from_ed_der(raw)))
    } else {
        Err("unsupported key type: use EC P-256 (ES256) or Ed25519 (EdDSA)".into())
    }
}

/// The P-256 and Ed25519 signature keys of a JWKS. Other keys (RSA, encryption keys, keys of
/// kinds this build does not know) are skipped, as a shared identity-provider JWKS holds them
/// routinely; a set without a single usable key is an error.
fn keys_from_jwks(text: &str, issuer: usize) -> Result<Vec<VerifyKey>, String> {
    let set: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let entries = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("no `keys` array")?;
    let keys: Vec<VerifyKey> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter_map(|jwk| key_from_jwk(&jwk, issuer))
        .collect();
    if keys.is_empty() {
        return Err("no EC P-256 or Ed25519 signature key".into());
    }
    Ok(keys)
}

fn key_from_jwk(jwk: &Jwk, issuer: usize) -> Option<VerifyKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(_) => false,
    };
    if !declared_fits {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        issuer,
        alg,
        kid: jwk.common.key_id.clone(),
        key,
    })
}

#[cfg(test)]
mod tests;
