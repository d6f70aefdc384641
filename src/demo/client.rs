//! The demo's agents: an mTLS client that presents an agent certificate, as an agent would.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What an agent got back.
#[derive(Debug)]
pub enum Outcome {
    Response {
        status: u16,
        body: String,
    },
    /// The TLS handshake (or the connection) was refused.
    Refused(String),
}

#[derive(Clone)]
pub struct DemoAgent {
    config: Arc<ClientConfig>,
    addr: SocketAddr,
}

impl DemoAgent {
    /// An agent presenting `cert`/`key`, or none when `cert` is `None`.
    pub fn new(
        ca: &Path,
        cert_key: Option<(&Path, &Path)>,
        addr: SocketAddr,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match cert_key {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(DemoAgent {
            config: Arc::new(config),
            addr,
        })
    }

    /// `method path` on a new connection.
    pub async fn call(&self, method: &str, path: &str) -> Outcome {
        match self.try_call(method, path).await {
            Ok(o) => o,
            Err(e) => Outcome::Refused(e),
        }
    }

    /// A JSON-RPC message POSTed to `path` on a new connection.
    pub async fn post_json(&self, path: &str, body: &str) -> Outcome {
        match self.try_send("POST", path, Some(body)).await {
            Ok(o) => o,
            Err(e) => Outcome::Refused(e),
        }
    }

    async fn try_call(&self, method: &str, path: &str) -> Result<Outcome, String> {
        self.try_send(method, path, None).await
    }

    async fn try_send(
        &self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> Result<Outcome, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if json.is_some() {
            req = req
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or("").to_string())))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| refused(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Outcome::Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

fn refused(e: &hyper::Error) -> String {
    crate::upstream::error_chain(e)
}
