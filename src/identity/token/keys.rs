//! Token verification keys: read from PEM public keys or a JWKS document, each with the JWS
//! algorithms its type allows. Only asymmetric keys exist here, so a public key can never be used
//! as an HMAC secret, and `none` is not an algorithm at all.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// RSA keys shorter than this are refused (and aws-lc-rs verifies 2048 to 8192 bits only).
pub const MIN_RSA_BITS: usize = 2048;

/// Every algorithm a token may be signed with.
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

const RSA_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// What a key is, which fixes the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyType::Rsa => RSA_ALGORITHMS,
            KeyType::P256 => &[Algorithm::ES256],
            KeyType::P384 => &[Algorithm::ES384],
            KeyType::Ed25519 => &[Algorithm::EdDSA],
        }
    }
}

/// One public key of one issuer.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub key_type: KeyType,
    /// Set when a JWK names its `alg`: then that algorithm only.
    pub only: Option<Algorithm>,
    pub key: DecodingKey,
}

impl VerifyKey {
    pub fn allows(&self, alg: Algorithm) -> bool {
        match self.only {
            Some(only) => only == alg,
            None => self.key_type.algorithms().contains(&alg),
        }
    }

    /// Whether this key may have signed a token whose header names `kid`: keys without a kid
    /// (as from a PEM file) stay candidates for any.
    pub fn matches_kid(&self, kid: Option<&str>) -> bool {
        match (kid, self.kid.as_deref()) {
            (Some(wanted), Some(have)) => wanted == have,
            _ => true,
        }
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// Every `PUBLIC KEY` block of a PEM file; each must be RSA (2048 bits or more), EC P-256 or
/// P-384, or Ed25519.
pub fn keys_from_pem(pem: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let mut keys = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label != "PUBLIC KEY" {
            return Err(format!(
                "`{}` block: only PUBLIC KEY (SPKI) blocks are accepted",
                block.label
            ));
        }
        let n = keys.len() + 1;
        let (key_type, key) =
            key_from_spki(&block.contents).map_err(|e| format!("key #{n}: {e}"))?;
        keys.push(VerifyKey {
            kid: None,
            key_type,
            only: None,
            key,
        });
    }
    if keys.is_empty() {
        return Err("no PUBLIC KEY block".into());
    }
    Ok(keys)
}

fn key_from_spki(der: &[u8]) -> Result<(KeyType, DecodingKey), String> {
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
        let (key_type, len) = match curve {
            Some(c) if c == OID_EC_P256 => (KeyType::P256, 65),
            Some(c) if c == OID_NIST_EC_P384 => (KeyType::P384, 97),
            _ => return Err("EC keys must be on P-256 (ES256) or P-384 (ES384)".into()),
        };
        if raw.len() != len || raw.first() != Some(&0x04) {
            return Err("malformed EC public key".into());
        }
        Ok((key_type, DecodingKey::from_ec_der(raw)))
    } else if *oid == OID_SIG_ED25519 {
        if raw.len() != 32 {
            return Err("malformed Ed25519 public key".into());
        }
        Ok((KeyType::Ed25519, DecodingKey::from_ed_der(raw)))
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err("malformed RSA public key".into());
        };
        let modulus = strip_zeros(rsa.modulus);
        check_rsa_bits(modulus)?;
        Ok((
            KeyType::Rsa,
            DecodingKey::from_rsa_raw_components(modulus, strip_zeros(rsa.exponent)),
        ))
    } else {
        Err("unsupported key type: use RSA, EC P-256 or P-384, or Ed25519".into())
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn check_rsa_bits(modulus: &[u8]) -> Result<(), String> {
    let bits = modulus.first().map_or(0, |first| {
        modulus.len() * 8 - first.leading_zeros() as usize
    });
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits: at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(())
}

/// The signature keys of a JWKS this build can use. Other keys (encryption keys, HMAC secrets,
/// short RSA keys, kinds this build does not know) are skipped, as a shared identity-provider
/// JWKS holds them routinely; a set without a single usable key is an error.
pub fn keys_from_jwks(text: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let set: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let entries = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("no `keys` array")?;
    let keys: Vec<VerifyKey> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter_map(|jwk| key_from_jwk(&jwk))
        .collect();
    if keys.is_empty() {
        return Err("no usable signature key (RSA, EC P-256 or P-384, Ed25519)".into());
    }
    Ok(keys)
}

fn key_from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key_type = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyType::P256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => KeyType::P384,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyType::Ed25519
        }
        AlgorithmParameters::RSA(p) => {
            use base64::Engine;
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.n.trim_end_matches('='))
                .ok()?;
            check_rsa_bits(strip_zeros(&n)).ok()?;
            KeyType::Rsa
        }
        _ => return None,
    };
    // A declared `alg` must be one this key type can verify; it then pins the key to it.
    let only = match jwk.common.key_algorithm {
        None => None,
        Some(declared) => {
            let alg = declared_algorithm(declared)?;
            if !key_type.algorithms().contains(&alg) {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        key_type,
        only,
        key,
    })
}

fn declared_algorithm(declared: KeyAlgorithm) -> Option<Algorithm> {
    let alg = Algorithm::try_from(declared).ok()?;
    ALGORITHMS.contains(&alg).then_some(alg)
}
