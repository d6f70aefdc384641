//! A connection's socket as its loop watches it: bytes each way, and since when a write has been
//! waiting for the agent to read (an agent that stops reading must still be cut, even when no
//! body is left to poll: the tail of a response can sit in the buffers).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::forward::stall::now_ms;

/// What a connection's socket did.
#[derive(Debug, Default)]
pub struct IoStats {
    read: AtomicU64,
    written: AtomicU64,
    /// `now_ms() + 1` when a write started waiting, 0 while writes go through.
    write_blocked_since: AtomicU64,
}

impl IoStats {
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// How long a write has been waiting for the agent to take bytes.
    pub fn write_blocked_for(&self) -> Duration {
        match self.write_blocked_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(now_ms().saturating_sub(since - 1)),
        }
    }

    fn blocked(&self) {
        let _ = self.write_blocked_since.compare_exchange(
            0,
            now_ms() + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn unblocked(&self) {
        self.write_blocked_since.store(0, Ordering::Relaxed);
    }
}

/// Wraps a connection's stream and keeps its [`IoStats`].
pub struct MeteredIo<T> {
    inner: T,
    stats: Arc<IoStats>,
}

impl<T> MeteredIo<T> {
    pub fn new(inner: T, stats: Arc<IoStats>) -> Self {
        MeteredIo { inner, stats }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for MeteredIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len().saturating_sub(before);
            self.stats.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> MeteredIo<T> {
    fn note(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.stats.written.fetch_add(*n as u64, Ordering::Relaxed);
                self.stats.unblocked();
            }
            Poll::Ready(Err(_)) => self.stats.unblocked(),
            Poll::Pending => self.stats.blocked(),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MeteredIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        match polled {
            Poll::Pending => self.stats.blocked(),
            Poll::Ready(_) => self.stats.unblocked(),
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
