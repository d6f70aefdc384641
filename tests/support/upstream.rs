//! An upstream HTTP server on 127.0.0.1:0 that records every request it receives and answers by
//! path: `/sse` streams events slowly, `/slow` answers after 3 s, `/wait/MS` after MS
//! milliseconds, `/ws` accepts a WebSocket upgrade and echoes bytes, `/big` sends 1 MiB, anything
//! else echoes a short JSON. It speaks HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS)
//! and counts its open connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
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
    pub version: http::Version,
    /// Which accepted connection carried it (0 for the first).
    pub conn: usize,
    /// Trailers that ended the request body.
    pub trailers: Option<HeaderMap>,
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

    pub fn push(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    /// TCP connections accepted so far (keep-alive pooling shows as few connections).
    pub connections: Arc<AtomicUsize>,
    /// Connections open now, and the most ever open at once.
    pub open: Arc<AtomicUsize>,
    pub max_open: Arc<AtomicUsize>,
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
        self.connections.load(Ordering::Relaxed)
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max_open_connections(&self) -> usize {
        self.max_open.load(Ordering::Relaxed)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

async fn respond(
    recorder: Recorder,
    conn: usize,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let version = req.version();
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
        let key = headers
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        recorder.seen.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body: Bytes::new(),
            version,
            conn,
            trailers: None,
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
            .header("sec-websocket-accept", super::websocket::accept_for(&key))
            .body(full(""))
            .unwrap());
    }
    let (body, trailers) = match req.into_body().collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), None),
    };
    recorder.seen.lock().unwrap().push(Seen {
        method,
        target: target.clone(),
        headers,
        body: body.clone(),
        version,
        conn,
        trailers,
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
        p if p.contains("/wait/") => {
            let ms = p
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Response::new(full("waited")))
        }
        p if p.ends_with("/trailers") => {
            // A gRPC-style answer: data, then the status in trailers.
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            trailers.insert("x-checksum", http::HeaderValue::from_static("abc123"));
            let body = Frames(
                [
                    Frame::data(Bytes::from_static(b"payload")),
                    Frame::trailers(trailers),
                ]
                .into(),
            );
            Ok(Response::builder()
                .header("content-type", "application/grpc")
                .body(body.boxed())
                .unwrap())
        }
        p if p.ends_with("/big") => Ok(Response::new(full(vec![b'x'; 1 << 20]))),
        // More than every socket buffer between the upstream and an agent can hold, so a reader
        // that stops leaves it unfinished.
        p if p.ends_with("/huge") => Ok(Response::new(full(vec![b'x'; 64 << 20]))),
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

/// A body of frames ready at once (data, then trailers).
pub struct Frames(pub std::collections::VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
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
    start_with(Some(acceptor(config))).await
}

/// An HTTPS upstream serving `cert`/`key` (PEM files) without asking for a client certificate.
pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Upstream {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    super::init_crypto();
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    start_with(Some(acceptor(config))).await
}

fn acceptor(mut config: rustls::ServerConfig) -> tokio_rustls::TlsAcceptor {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Counts an open connection until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: &Arc<AtomicUsize>, max: &Arc<AtomicUsize>) -> Self {
        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        OpenGuard(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve<I>(io: I, rec: Recorder, conn: usize)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| respond(rec.clone(), conn, req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // As many header fields as warden forwards (hyper's own default is 100).
    builder.http1().max_headers(4096);
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .await;
}

async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = Recorder::default();
    let rec = recorder.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let max_open = Arc::new(AtomicUsize::new(0));
    let (count, open2, max2) = (connections.clone(), open.clone(), max_open.clone());
    let is_tls = tls.is_some();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let conn = count.fetch_add(1, Ordering::SeqCst);
            let guard = OpenGuard::new(&open2, &max2);
            let rec = rec.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _guard = guard;
                match tls {
                    None => serve(tcp, rec, conn).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve(stream, rec, conn).await;
                        }
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        recorder,
        connections,
        open,
        max_open,
        tls: is_tls,
    }
}
