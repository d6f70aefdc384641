//! The parts of a token read before and after its signature is checked: the bearer value, the
//! header and payload, and the claim checks against the caller's clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::TokenError;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub fn invalid(reason: &str) -> TokenError {
    TokenError::Invalid(reason.to_owned())
}

#[derive(Deserialize)]
pub struct Claims {
    pub iss: Option<String>,
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

/// A token split and read, its signature not yet checked: nothing here may be trusted until a
/// key of the issuer it names has verified the signature over exactly these bytes.
pub struct Unverified<'a> {
    pub token: &'a str,
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub claims: Claims,
}

impl<'a> Unverified<'a> {
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("malformed token"));
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if !super::keys::ALGORITHMS.contains(&header.alg) {
            return Err(invalid("algorithm not allowed"));
        }
        // No extension is understood here, so a token that marks one as critical is refused.
        if header.crit.is_some() {
            return Err(invalid("unsupported critical header"));
        }
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice::<Claims>(&json).ok())
            .ok_or_else(|| invalid("malformed token"))?;
        Ok(Unverified {
            token,
            alg: header.alg,
            kid: header.kid,
            claims,
        })
    }
}

impl Claims {
    /// Audience, subject and time; the issuer was matched when its keys were chosen.
    pub fn check(
        &self,
        audience: &str,
        agent_id: &str,
        now: i64,
        leeway: i64,
    ) -> Result<(), TokenError> {
        if !self.aud.as_ref().is_some_and(|aud| aud.contains(audience)) {
            return Err(invalid("wrong audience"));
        }
        // Identities are compared byte for byte, never folded.
        if self.sub.as_deref() != Some(agent_id) {
            return Err(invalid("token for another agent"));
        }
        let exp = self
            .exp
            .and_then(numeric_date)
            .ok_or_else(|| invalid("no expiry"))?;
        if now > exp.saturating_add(leeway) {
            return Err(invalid("expired"));
        }
        let early = |t: Option<f64>| {
            t.map(|t| numeric_date(t).is_none_or(|t| t > now.saturating_add(leeway)))
                .unwrap_or(false)
        };
        if early(self.nbf) {
            return Err(invalid("not yet valid"));
        }
        if early(self.iat) {
            return Err(invalid("issued in the future"));
        }
        Ok(())
    }

    /// RFC 8705: `cnf.x5t#S256` is the base64url SHA-256 of this connection's certificate.
    pub fn bound_to(&self, thumbprint: &[u8; 32]) -> bool {
        self.cnf
            .as_ref()
            .and_then(|c| c.x5t_s256.as_deref())
            .is_some_and(|x5t| x5t == URL_SAFE_NO_PAD.encode(thumbprint))
    }
}

/// The token of `Authorization: Bearer <token>`; any other header is treated as no token.
pub fn bearer_token(authorization: Option<&http::HeaderValue>) -> Result<&str, TokenError> {
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
