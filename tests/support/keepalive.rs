//! One long-lived HTTP/1.1 connection to warden: several requests on the same TLS session, the
//! moment the server closes it, and what the TLS session looked like (server certificate,
//! whether it was resumed).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::task::JoinHandle;

use super::client::{AgentClient, Reply};

pub struct KeepAlive {
    send: SendRequest<Full<Bytes>>,
    /// Ends when either side closes the connection.
    conn: JoinHandle<()>,
    /// The server's end-entity certificate, DER.
    pub server_cert: Vec<u8>,
    pub handshake: Option<HandshakeKind>,
}

impl KeepAlive {
    /// Opens a connection; the TLS or HTTP handshake error when it fails.
    pub async fn open(client: &AgentClient) -> Result<KeepAlive, String> {
        let tls = client
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let session = tls.get_ref().1;
        let server_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let handshake = session.handshake_kind();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(KeepAlive {
            send,
            conn,
            server_cert,
            handshake,
        })
    }

    /// One request on this connection.
    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.send.ready().await.map_err(|e| e.to_string())?;
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        Reply::read(resp).await
    }

    pub fn is_closed(&self) -> bool {
        self.conn.is_finished()
    }

    /// Waits up to `limit` for the server to close the connection; when it did, the instant
    /// the close was seen.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Instant> {
        match tokio::time::timeout(limit, &mut self.conn).await {
            Ok(_) => Some(Instant::now()),
            Err(_) => None,
        }
    }
}

/// A client config from PEM files on disk: trusts `ca`, presents `cert`/`key`.
pub fn client_config_from_files(ca: &Path, cert: &Path, key: &Path) -> ClientConfig {
    super::init_crypto();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The count of refused handshakes with `reason` in a metrics page.
pub fn refused_handshakes(metrics: &str, reason: &str) -> u64 {
    let key = format!(r#"warden_tls_handshakes_total{{reason="{reason}",result="error"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
