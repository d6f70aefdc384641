//! An agent: a real TLS client presenting a client certificate, speaking HTTP/1.1 or HTTP/2
//! through hyper, or raw bytes for requests no well-behaved client would send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::pki::{AgentCert, TestPki};

/// A finished response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(resp: http::Response<Incoming>) -> Result<Reply, String> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The refusal reason of a JSON error body, or "" for a success.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

#[derive(Clone)]
pub struct AgentClient {
    config: Arc<ClientConfig>,
    pub addr: SocketAddr,
    h2: bool,
}

fn roots(pki: &TestPki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.cert_der().to_vec()))
        .unwrap();
    roots
}

pub fn client_config(pki: &TestPki, cert: Option<&AgentCert>, alpn: &[&[u8]]) -> ClientConfig {
    client_config_with_versions(pki, cert, alpn, rustls::DEFAULT_VERSIONS)
}

/// A client config restricted to `versions` (to prove TLS 1.2 and 1.3 are each served).
pub fn client_config_with_versions(
    pki: &TestPki,
    cert: Option<&AgentCert>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    super::init_crypto();
    let builder =
        ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(roots(pki));
    let mut config = match cert {
        Some(c) => {
            let certs = vec![CertificateDer::from(c.issued.cert_der.clone())];
            let key = PrivateKeyDer::from_pem_slice(c.issued.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

impl AgentClient {
    pub fn new(pki: &TestPki, cert: &AgentCert, addr: SocketAddr) -> Self {
        AgentClient {
            config: Arc::new(client_config(pki, Some(cert), &[b"http/1.1"])),
            addr,
            h2: false,
        }
    }

    pub fn h2(pki: &TestPki, cert: &AgentCert, addr: SocketAddr) -> Self {
        AgentClient {
            config: Arc::new(client_config(pki, Some(cert), &[b"h2"])),
            addr,
            h2: true,
        }
    }

    pub fn with_config(config: ClientConfig, addr: SocketAddr) -> Self {
        AgentClient {
            config: Arc::new(config),
            addr,
            h2: false,
        }
    }

    /// A TLS connection to warden; the handshake error when it is refused.
    pub async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        Ok(tls)
    }

    /// Whether warden refuses this client's TLS handshake. TLS 1.3 reports a refused client
    /// certificate only after the client's side of the handshake completes, so this sends a
    /// request and checks that no HTTP response comes back.
    pub async fn handshake_refused(&self) -> bool {
        let Ok(mut tls) = self.connect().await else {
            return true;
        };
        if tls
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .is_err()
        {
            return true;
        }
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
            Ok(Ok(n)) => n == 0 || !buf.starts_with(b"HTTP/"),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    /// Sends one request on a new connection and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        Reply::read(self.send_streaming(req).await?).await
    }

    /// Sends one request on a new connection and returns the response with its body unread.
    pub async fn send_streaming(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, String> {
        let tls = self.connect().await.map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(tls);
        if self.h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            if req.uri().authority().is_none() {
                let host = req
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost")
                    .to_string();
                *req.uri_mut() = format!(
                    "https://{host}{}",
                    req.uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                )
                .parse()
                .unwrap();
            }
            send.send_request(req).await.map_err(|e| e.to_string())
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn.with_upgrades());
            if !req.headers().contains_key("host") {
                req.headers_mut()
                    .insert("host", "localhost".parse().unwrap());
            }
            send.send_request(req).await.map_err(|e| e.to_string())
        }
    }

    /// `GET path` on a new connection, the response body left to stream.
    pub async fn get_streaming(&self, path: &str) -> http::Response<Incoming> {
        let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
        self.send_streaming(req).await.expect("response head")
    }

    /// A keep-alive HTTP/1.1 connection for many requests.
    pub async fn session(&self) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
        let tls = self.connect().await.expect("connect");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        send
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .unwrap()
    }

    /// Writes `raw` on a new connection and returns everything read until the server closes or
    /// stays quiet for `quiet`.
    pub async fn raw(&self, raw: &[u8], quiet: Duration) -> String {
        let mut tls = self.connect().await.expect("connect");
        tls.write_all(raw).await.expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout(quiet, tls.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Status code of the first response in raw HTTP/1.1 bytes.
pub fn raw_status(raw: &str) -> u16 {
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
