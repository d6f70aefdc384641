//! An identity provider's JWKS endpoint over HTTPS on 127.0.0.1:0, with a certificate from the
//! test PKI: it publishes whatever set the test gives it, counts fetches, and can go away (it
//! then closes every connection at once, as an unreachable issuer would look).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::pki::TestPki;

pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    set: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn start(pki: &TestPki) -> JwksServer {
        super::init_crypto();
        let server = pki
            .ca
            .issue_server(&[], Duration::from_secs(3600))
            .expect("server cert");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(server.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("key"),
            )
            .expect("tls config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let set = Arc::new(Mutex::new(json!({ "keys": [] })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (s, f, d) = (set.clone(), fetches.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    f.fetch_add(1, Ordering::SeqCst);
                    drop(tcp);
                    continue;
                }
                let (acceptor, set, fetches) = (acceptor.clone(), s.clone(), f.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let body = set.lock().expect("set").to_string();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/jwk-set+json")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        JwksServer {
            addr,
            set,
            fetches,
            down,
        }
    }

    pub fn url(&self) -> String {
        format!(
            "https://127.0.0.1:{}/.well-known/jwks.json",
            self.addr.port()
        )
    }

    /// Serves `keys` (their public JWKs) from now on.
    pub fn publish(&self, keys: &[&IdpKey]) {
        let jwks: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        *self.set.lock().expect("set") = json!({ "keys": jwks });
    }

    /// Fetches so far: requests answered, and connections refused while down.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Waits until more than `seen` fetches happened.
    pub async fn wait_fetches_above(&self, seen: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.fetches();
            if now > seen {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "no JWKS fetch within {limit:?} (still {now})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One signing key of the identity provider.
pub struct IdpKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    public_raw: Vec<u8>,
}

impl IdpKey {
    /// A fresh key for `alg` (ES256, ES384, EdDSA, RS256/PS256).
    pub fn generate(alg: Algorithm, kid: &str) -> IdpKey {
        let pair = match alg {
            Algorithm::ES256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            Algorithm::ES384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
            Algorithm::EdDSA => KeyPair::generate_for(&PKCS_ED25519),
            _ => KeyPair::generate_for(&PKCS_RSA_SHA256),
        }
        .expect("key pair");
        let pem = pair.serialize_pem();
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        IdpKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            public_raw: rcgen::PublicKeyData::der_bytes(&pair).to_vec(),
        }
    }

    pub fn jwk(&self) -> Value {
        if self.alg == Algorithm::EdDSA {
            use base64::Engine;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public_raw);
            return json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid, "x": x });
        }
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("jwk");
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).expect("json")
    }

    /// A token with these claims, its header naming this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}
