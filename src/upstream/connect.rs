//! Opening one connection to an upstream: TCP, TLS when the URL is https (ALPN `h2` for an
//! HTTP/2 upstream, which must agree to it), then hyper's HTTP/1.1 or HTTP/2 handshake. The
//! connection runs in a task of its own that holds the pool's permit, so the permit comes back
//! only when the socket is closed: the upstream never sees more connections than the cap.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsConnector;

use super::error::{error_chain, UpstreamError};
use super::ProxyBody;

/// A fresh connection's request sender.
pub enum Sender {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

/// Everything needed to open a connection to one upstream.
pub struct Dialer {
    /// `host:port` as the URL names it (a name is resolved on each dial).
    addr: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    http2: bool,
    timeout: Duration,
}

impl Dialer {
    pub fn new(
        addr: String,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        http2: bool,
        timeout: Duration,
    ) -> Self {
        Dialer {
            addr,
            tls: tls.map(|(config, name)| (TlsConnector::from(config), name)),
            http2,
            timeout,
        }
    }

    /// Opens a connection within the connect timeout; `permit` lives as long as the socket.
    pub async fn dial(&self, permit: OwnedSemaphorePermit) -> Result<Sender, UpstreamError> {
        match tokio::time::timeout(self.timeout, self.open(permit)).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Unavailable(format!(
                "no connection to {} within {:?}",
                self.addr, self.timeout
            ))),
        }
    }

    async fn open(&self, permit: OwnedSemaphorePermit) -> Result<Sender, UpstreamError> {
        let unavailable = |what: &str, e: &dyn std::error::Error| {
            UpstreamError::Unavailable(format!("{what} {}: {}", self.addr, error_chain(e)))
        };
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| unavailable("connect to", &e))?;
        // Requests are small writes that must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return self.handshake(tcp, permit).await;
        };
        let tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| unavailable("TLS with", &e))?;
        if self.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(UpstreamError::Unavailable(format!(
                "{} did not agree to HTTP/2 (ALPN h2); set http2: false for it",
                self.addr
            )));
        }
        self.handshake(tls, permit).await
    }

    async fn handshake<T>(
        &self,
        io: T,
        permit: OwnedSemaphorePermit,
    ) -> Result<Sender, UpstreamError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let failed = |e: hyper::Error| {
            UpstreamError::Unavailable(format!("handshake with {}: {}", self.addr, error_chain(&e)))
        };
        if self.http2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = conn.await {
                    tracing::debug!("upstream h2 connection: {}", error_chain(&e));
                }
            });
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new().handshake(io).await.map_err(failed)?;
            tokio::spawn(async move {
                let _permit = permit;
                // Upgrades: a WebSocket tunnel takes the socket over when the upstream says 101.
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!("upstream connection: {}", error_chain(&e));
                }
            });
            Ok(Sender::H1(sender))
        }
    }
}
