//! Development tokens: a JWT for one agent, bound to one certificate (RFC 8705 `cnf.x5t#S256`),
//! signed with a PKCS#8 key: ES256 (P-256), ES384 (P-384), EdDSA (Ed25519) or RS256 (RSA).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
    PKCS_RSA_SHA384, PKCS_RSA_SHA512,
};
use serde::Serialize;

use super::pki::random_bytes;
use super::CertsError;
use crate::identity::agent_id::thumbprint;

pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_AUDIENCE: &str = "warden";
pub const DEFAULT_ISSUER: &str = "agent-auth";

/// The claims of a token; `exp`/`nbf`/`iat` derive from `now_unix` and `ttl`.
#[derive(Debug, Clone)]
pub struct MintOptions {
    pub agent_id: String,
    pub audience: String,
    pub issuer: String,
    pub ttl: Duration,
    /// Issue time; `nbf` equals it.
    pub now_unix: i64,
    /// `kid` header, to select a key in a JWKS.
    pub kid: Option<String>,
}

impl MintOptions {
    pub fn new(agent_id: impl Into<String>) -> Self {
        MintOptions {
            agent_id: agent_id.into(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            ttl: DEFAULT_TOKEN_TTL,
            now_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
            kid: None,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    cnf: Cnf,
}

#[derive(Serialize)]
struct Cnf {
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// A signing key read from PKCS#8 PEM, with the JWS algorithm its type implies.
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// P-256 keys sign ES256, P-384 keys ES384, Ed25519 keys EdDSA, RSA keys RS256; any other
    /// key is refused.
    pub fn from_pem(pem: &str) -> Result<SigningKey, CertsError> {
        let pair = KeyPair::from_pem(pem).map_err(|_| {
            CertsError::Token("unreadable private key (PKCS#8 PEM expected)".into())
        })?;
        let der = pair.serialize_der();
        let unusable =
            |e: jsonwebtoken::errors::Error| CertsError::Token(format!("unusable key: {e}"));
        if pair.algorithm() == &PKCS_ECDSA_P384_SHA384 {
            return Ok(SigningKey {
                key: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(unusable)?,
                alg: Algorithm::ES384,
            });
        }
        let rsa = [&PKCS_RSA_SHA256, &PKCS_RSA_SHA384, &PKCS_RSA_SHA512];
        if rsa.contains(&pair.algorithm()) {
            return Ok(SigningKey {
                key: EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(unusable)?,
                alg: Algorithm::RS256,
            });
        }
        if pair.algorithm() == &PKCS_ECDSA_P256_SHA256 {
            Ok(SigningKey {
                key: EncodingKey::from_ec_der(&der),
                alg: Algorithm::ES256,
            })
        } else if pair.algorithm() == &PKCS_ED25519 {
            Ok(SigningKey {
                key: EncodingKey::from_ed_der(&der),
                alg: Algorithm::EdDSA,
            })
        } else {
            Err(CertsError::Token(
                "unsupported key type: use an EC P-256 or P-384, Ed25519 or RSA key".into(),
            ))
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// `base64url(SHA-256(cert DER))` without padding: the `x5t#S256` value for `cert_der`.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(thumbprint(cert_der))
}

/// A token for `options.agent_id`, bound to the certificate `cert_der`.
pub fn mint_token(
    key: &SigningKey,
    cert_der: &[u8],
    options: &MintOptions,
) -> Result<String, CertsError> {
    let ttl = i64::try_from(options.ttl.as_secs())
        .map_err(|_| CertsError::Token("ttl too long".into()))?;
    let claims = Claims {
        iss: &options.issuer,
        sub: &options.agent_id,
        aud: &options.audience,
        iat: options.now_unix,
        nbf: options.now_unix,
        exp: options.now_unix.saturating_add(ttl),
        jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
        cnf: Cnf {
            x5t_s256: x5t_s256(cert_der),
        },
    };
    let mut header = Header::new(key.alg);
    header.kid = options.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key.key).map_err(|e| CertsError::Token(e.to_string()))
}

/// A new signing pair: (PKCS#8 private key PEM, SPKI public key PEM).
pub fn generate_signing_pair(ed25519: bool) -> Result<(String, String), CertsError> {
    let alg = if ed25519 {
        &PKCS_ED25519
    } else {
        &PKCS_ECDSA_P256_SHA256
    };
    let pair = KeyPair::generate_for(alg)?;
    Ok((pair.serialize_pem(), pair.public_key_pem()))
}
