//! Body wrappers: count bytes as they stream, and run the record step exactly once when the
//! response ends — or is dropped because the agent went away.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::upstream::BoxError;

/// Counts the data bytes that pass through into a shared counter.
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
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

/// Something to do once, when a response body is finished or dropped.
pub trait OnEnd: Send + Sync + 'static {
    fn finish(self: Box<Self>, bytes_out: u64, completed: bool);
}

/// A response body that counts bytes out and calls [`OnEnd::finish`] exactly once.
pub struct Recorded<B> {
    inner: B,
    bytes: u64,
    on_end: Option<Box<dyn OnEnd>>,
}

impl<B> Recorded<B> {
    pub fn new(inner: B, on_end: Box<dyn OnEnd>) -> Self {
        Recorded {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, completed: bool) {
        if let Some(f) = self.on_end.take() {
            f.finish(self.bytes, completed);
        }
    }
}

impl<B> Body for Recorded<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
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

impl<B> Drop for Recorded<B> {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            // A body dropped before its end: the agent went away or the stream broke.
            f.finish(self.bytes, false);
        }
    }
}
