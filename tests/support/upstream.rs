//! An upstream HTTP server on 127.0.0.1:0 that records every request it receives and answers by
//! path: `/sse` streams events slowly, `/slow` answers after 3 s, `/ws` accepts a WebSocket
//! upgrade and echoes bytes, `/big` sends 1 MiB, anything else echoes a short JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target exactly as received (path and query).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    /// TCP connections accepted so far (keep-alive pooling shows as few connections).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    pub tls: bool,
}

impl Upstream {
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

async fn respond(
    recorder: Recorder,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    if path.ends_with("/ws") {
        let on_upgrade = hyper::upgrade::on(&mut req);
        recorder.seen.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body: Bytes::new(),
        });
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(full(""))
            .unwrap());
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    recorder.seen.lock().unwrap().push(Seen {
        method,
        target: target.clone(),
        headers,
        body: body.clone(),
    });
    match path.as_str() {
        p if p.ends_with("/sse") => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                for i in 0..3 {
                    if tx
                        .send(Bytes::from(format!("data: event {i}\n\n")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
            });
            Ok(Response::builder()
                .header("content-type", "text/event-stream")
                .body(ChannelBody(rx).boxed())
                .unwrap())
        }
        p if p.ends_with("/slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::new(full("slow")))
        }
        p if p.ends_with("/big") => Ok(Response::new(full(vec![b'x'; 1 << 20]))),
        _ => Ok(Response::builder()
            .header("content-type", "application/json")
            .header("connection", "x-upstream-secret")
            .header("x-upstream-secret", "hop")
            .body(full(format!(
                r#"{{"ok":true,"target":"{target}","body_len":{}}}"#,
                body.len()
            )))
            .unwrap()),
    }
}

/// A response body fed by a channel: each message is sent as soon as it is produced.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// Starts a recording upstream on 127.0.0.1:0.
pub async fn start() -> Upstream {
    start_with(None).await
}

/// An HTTPS upstream with a certificate from `pki` for localhost that demands a client
/// certificate signed by `pki`'s CA (an mTLS upstream).
pub async fn start_mtls(pki: &super::pki::TestPki) -> Upstream {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    super::init_crypto();
    let server = pki.ca.issue_server(&[], Duration::from_secs(3600)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.cert_der().to_vec()))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der.clone())],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
}

async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = Recorder::default();
    let rec = recorder.clone();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    let is_tls = tls.is_some();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rec = rec.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| respond(rec.clone(), req));
                let mut builder = hyper::server::conn::http1::Builder::new();
                // As many header fields as warden forwards (hyper's own default is 100).
                builder.max_headers(4096);
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(tcp), svc)
                            .with_upgrades()
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        recorder,
        connections,
        tls: is_tls,
    }
}
