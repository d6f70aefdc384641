//! One request's hold on a pooled connection, and the bodies that decide whether the connection
//! may serve another request: an HTTP/1.1 connection goes back to the pool only when the request
//! body was sent to its end and the response was read to its end; anything else (an error, a
//! response the agent stopped reading, a timeout, an upgrade) drops it, which closes it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::error::UpstreamError;
use super::gauges::Counted;
use super::pool::{H2Conn, Inner};
use super::{BoxError, ProxyBody};

pub(super) enum LeaseKind {
    H1 {
        sender: http1::SendRequest<ProxyBody>,
        counted: Counted,
        /// It served a request before: it may have been closed by the upstream meanwhile.
        reused: bool,
        /// The request's own connection (a body on GET/HEAD/OPTIONS): never pooled.
        own: bool,
        /// The worker whose runtime runs the connection's task.
        home: usize,
    },
    /// A stream; on a connection of the request's own (closed after it) when the pool does
    /// not hold that connection.
    H2 { conn: Arc<H2Conn> },
}

/// The connection (or stream) a request runs on, until its response ends.
pub struct Lease {
    kind: Option<LeaseKind>,
    pool: Arc<Inner>,
}

/// A request that failed, and the request itself when it never reached the connection.
pub(super) type SendError = (UpstreamError, Option<Request<ProxyBody>>);

impl Lease {
    pub(super) fn new(kind: LeaseKind, pool: Arc<Inner>) -> Self {
        Lease {
            kind: Some(kind),
            pool,
        }
    }

    /// An HTTP/1.1 connection that served a request before (a failure on it may be a close
    /// race, worth one retry on another connection when the request was not written).
    pub(super) fn reused(&self) -> bool {
        matches!(self.kind, Some(LeaseKind::H1 { reused: true, .. }))
    }

    pub(super) async fn send(
        &mut self,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let sent = match &mut self.kind {
            Some(LeaseKind::H1 { sender, .. }) => sender.try_send_request(req).await,
            Some(LeaseKind::H2 { conn, .. }) => conn.sender.clone().try_send_request(req).await,
            None => {
                let released = UpstreamError::Unavailable("connection already released".into());
                return Err((released, Some(req)));
            }
        };
        sent.map_err(|mut e| {
            let req = e.take_message();
            (UpstreamError::from_hyper(&e.into_error()), req)
        })
    }

    /// Ends the request's hold; `reusable` only when both bodies ran to their end.
    pub(super) fn release(&mut self, reusable: bool) {
        match self.kind.take() {
            Some(LeaseKind::H1 {
                sender,
                counted,
                own: false,
                home,
                ..
            }) if reusable => self.pool.check_in(sender, counted, home),
            Some(LeaseKind::H2 { conn, .. }) => self.pool.stream_ended(&conn),
            // Dropped: the connection closes, its slot comes back when the socket is gone.
            Some(LeaseKind::H1 { .. }) | None => {}
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release(false);
    }
}

/// The agent's request body on its way upstream; records when it was sent to its end.
pub struct SentBody {
    inner: ProxyBody,
    done: Arc<AtomicBool>,
}

impl SentBody {
    pub fn new(inner: ProxyBody) -> (Self, Arc<AtomicBool>) {
        let done = Arc::new(AtomicBool::new(inner.is_end_stream()));
        (
            SentBody {
                inner,
                done: done.clone(),
            },
            done,
        )
    }
}

impl Body for SentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body; gives the connection back (or drops it) when it ends.
pub struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
    /// HTTP/1.1: whether the request body was sent to its end.
    request_sent: Option<Arc<AtomicBool>>,
}

impl PooledBody {
    pub(super) fn new(
        inner: Incoming,
        lease: Lease,
        request_sent: Option<Arc<AtomicBool>>,
    ) -> Self {
        PooledBody {
            inner,
            lease: Some(lease),
            request_sent,
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut lease) = self.lease.take() {
            let sent = self
                .request_sent
                .as_ref()
                .is_none_or(|s| s.load(Ordering::Acquire));
            lease.release(complete && sent);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (HEAD, 204, 304) may be dropped without being polled.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
