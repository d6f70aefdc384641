//! RS256, PS256 and ES384 besides ES256 and EdDSA: each from a PEM file and from a JWKS, and
//! each key refused for the algorithms its type does not allow.

use jsonwebtoken::jwk::Jwk;
use rcgen::PKCS_RSA_SHA256;

use super::*;

struct Keys {
    rsa: KeyPair,
    p384: KeyPair,
}

fn keys() -> Keys {
    Keys {
        rsa: KeyPair::generate_for(&PKCS_RSA_SHA256).expect("rsa"),
        p384: KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("p384"),
    }
}

fn encoding_key(key: &KeyPair, alg: Algorithm) -> EncodingKey {
    let pem = key.serialize_pem();
    match alg {
        Algorithm::ES384 | Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("encoding key")
}

fn sign(key: &KeyPair, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims(), &encoding_key(key, alg)).expect("sign")
}

/// The public JWK of `key` for `alg`, with `kid`, as an identity provider publishes it.
fn jwk(key: &KeyPair, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(key, alg), alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).expect("json")
}

#[test]
fn rsa_and_p384_keys_from_pem_verify_their_algorithms() {
    let f = Fixture::new();
    let k = keys();
    let pem = format!("{}{}", k.rsa.public_key_pem(), k.p384.public_key_pem());
    let path = f.write("more.pem", &pem);
    let v = f.verifier_with(vec![issuer("agent-auth", path.to_str(), None)]);
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::RS512,
        Algorithm::PS384,
    ] {
        assert_eq!(check(&v, &sign(&k.rsa, alg, None)), Ok(()), "{alg:?}");
    }
    assert_eq!(check(&v, &sign(&k.p384, Algorithm::ES384, None)), Ok(()));
    // A P-384 key does not verify an ES256 claim, nor a P-256 key an ES384 one.
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("p256");
    assert_invalid(check(&v, &sign(&p256, Algorithm::ES256, None)));
    let only_p256 = f.verifier_with(vec![issuer("agent-auth", Some("ec.pem"), None)]);
    assert_invalid(check(&only_p256, &sign(&k.p384, Algorithm::ES384, None)));
    // An RSA public key is never an HMAC secret.
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(k.rsa.public_key_pem().as_bytes()).expect("hmac key"),
    )
    .expect("hmac");
    assert_invalid(check(&v, &hmac));
}

#[test]
fn jwks_keys_of_every_algorithm_are_chosen_by_kid_and_pinned_by_alg() {
    let f = Fixture::new();
    let k = keys();
    let set = json!({ "keys": [
        jwk(&k.rsa, Algorithm::RS256, "rsa-1"),
        jwk(&k.p384, Algorithm::ES384, "ec-384"),
        ec_jwk(&f.ec, "ec-256"),
    ]});
    let path = f.write("set.json", &set.to_string());
    let v = f.verifier_with(vec![issuer("agent-auth", None, path.to_str())]);
    assert_eq!(
        check(&v, &sign(&k.rsa, Algorithm::RS256, Some("rsa-1"))),
        Ok(())
    );
    assert_eq!(
        check(&v, &sign(&k.p384, Algorithm::ES384, Some("ec-384"))),
        Ok(())
    );
    assert_eq!(
        check(&v, &sign_ec(&f.ec, &claims(), Some("ec-256"))),
        Ok(())
    );
    // The JWK says RS256: the same key signing PS256 is refused.
    assert_invalid(check(&v, &sign(&k.rsa, Algorithm::PS256, Some("rsa-1"))));
    // Without `alg` in the JWK, any RSA algorithm of the key passes.
    let mut open = jwk(&k.rsa, Algorithm::PS256, "rsa-2");
    open.as_object_mut().expect("object").remove("alg");
    let path = f.write("open.json", &json!({ "keys": [open] }).to_string());
    let v = f.verifier_with(vec![issuer("agent-auth", None, path.to_str())]);
    assert_eq!(
        check(&v, &sign(&k.rsa, Algorithm::PS256, Some("rsa-2"))),
        Ok(())
    );
    assert_eq!(
        check(&v, &sign(&k.rsa, Algorithm::RS256, Some("rsa-2"))),
        Ok(())
    );
    // A JWK whose `alg` does not fit its key type is no key at all.
    let mut wrong = jwk(&k.p384, Algorithm::ES384, "x");
    wrong["alg"] = json!("ES256");
    let path = f.write("wrong.json", &json!({ "keys": [wrong] }).to_string());
    let err = TokenVerifier::new(
        &section(vec![issuer("agent-auth", None, path.to_str())]),
        &f.dir,
        None,
    )
    .expect_err("no usable key");
    assert!(err.contains("no usable signature key"), "{err}");
}
