//! HTTP/2 as a hostile agent speaks it, over mTLS with ALPN `h2`.
//!
//! The `h2` crate runs the protocol (preface, settings, flow control, HPACK decoding of the
//! answer), but it refuses to send what a hostile agent sends: connection-specific headers,
//! upper-case names, a `:path` the `http` crate would not parse, pseudo-headers in odd places.
//! So the request's header block is written here, field by field, as HPACK literals (never
//! indexed, never Huffman-coded), and swapped into the `HEADERS` frame the crate produced on its
//! way to the socket. One request per connection, so the crate's HPACK encoder state (which the
//! server never sees) is never used again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::AgentClient;

const PREFACE_LEN: usize = 24;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
/// The default SETTINGS_MAX_FRAME_SIZE, which warden does not raise.
const MAX_FRAME: usize = 16_384;
const DEADLINE: Duration = Duration::from_secs(10);

/// One request, header by header, exactly as it goes on the wire.
#[derive(Debug, Clone, Default)]
pub struct H2Request {
    /// Every field in order, pseudo-headers included (`:method`, `:scheme`, `:path`, ...).
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// A DATA frame after the headers, when present.
    pub body: Option<Bytes>,
}

impl H2Request {
    /// `:method`, `:scheme https`, `:authority localhost`, `:path`, in the usual order.
    pub fn new(method: &str, path: &str) -> Self {
        H2Request::default()
            .field(":method", method)
            .field(":scheme", "https")
            .field(":authority", "localhost")
            .field(":path", path)
    }

    /// A request with exactly these pseudo-headers and nothing else yet.
    pub fn bare() -> Self {
        H2Request::default()
    }

    pub fn field(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.fields
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Replaces the value of every field of this name (`:authority`, `:path`, ...).
    pub fn set(mut self, name: &str, value: &str) -> Self {
        for (n, v) in &mut self.fields {
            if n.as_slice() == name.as_bytes() {
                *v = value.as_bytes().to_vec();
            }
        }
        self
    }

    /// Drops every field of this name.
    pub fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n.as_slice() != name.as_bytes());
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(Bytes::from(body.to_owned()));
        self
    }

    /// The HPACK header block: each field a literal without indexing, new name, no Huffman.
    fn block(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.fields {
            out.push(0x00);
            hpack_string(&mut out, name);
            hpack_string(&mut out, value);
        }
        out
    }
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut n: usize) {
    let max = (1usize << prefix_bits) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// What warden did with the request.
#[derive(Debug, Clone)]
pub enum H2Outcome {
    Response {
        status: u16,
        headers: http::HeaderMap,
        body: Bytes,
    },
    /// The stream was reset (a malformed request is a stream error in HTTP/2).
    Reset(h2::Reason),
    /// The whole connection was refused with GOAWAY (a header block that cannot be decoded).
    GoAway(h2::Reason),
    /// The connection ended (GOAWAY or closed) without an answer.
    Closed(String),
}

impl H2Outcome {
    /// The response status, or 0 when there was none.
    pub fn status(&self) -> u16 {
        match self {
            H2Outcome::Response { status, .. } => *status,
            _ => 0,
        }
    }

    pub fn error(&self) -> String {
        match self {
            H2Outcome::Response { body, .. } => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    pub fn reset_reason(&self) -> Option<h2::Reason> {
        match self {
            H2Outcome::Reset(r) => Some(*r),
            _ => None,
        }
    }
}

/// Sends `req` on a new HTTP/2 connection and reads what comes back.
pub async fn send(client: &AgentClient, req: &H2Request) -> H2Outcome {
    tokio::time::timeout(DEADLINE, send_inner(client, req))
        .await
        .expect("warden neither answered nor reset in time")
}

async fn send_inner(client: &AgentClient, req: &H2Request) -> H2Outcome {
    let tls = client.connect().await.expect("connect");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the client must be built with AgentClient::h2"
    );
    let io = SwapHeaders::new(tls, req.block());
    let (send, conn) = match h2::client::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => return H2Outcome::Closed(e.to_string()),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = match send.ready().await {
        Ok(s) => s,
        Err(e) => return H2Outcome::Closed(e.to_string()),
    };
    // The crate's own request only carries the stream; its header block is replaced. Its method
    // is HEAD for a HEAD, so the crate expects no body with the answer's Content-Length.
    let head = req
        .fields
        .iter()
        .any(|(n, v)| n.as_slice() == b":method" && v.as_slice() == b"HEAD");
    let method = if head { "HEAD" } else { "GET" };
    let placeholder = Request::builder()
        .method(method)
        .uri("https://localhost/")
        .body(())
        .unwrap();
    let end = req.body.is_none();
    let (response, mut stream) = match send.send_request(placeholder, end) {
        Ok(pair) => pair,
        Err(e) => return H2Outcome::Closed(e.to_string()),
    };
    if let Some(body) = &req.body {
        let _ = stream.send_data(body.clone(), true);
    }
    match response.await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut recv = resp.into_body();
            let mut body = Vec::new();
            while let Some(chunk) = recv.data().await {
                match chunk {
                    Ok(c) => {
                        let _ = recv.flow_control().release_capacity(c.len());
                        body.extend_from_slice(&c);
                    }
                    Err(_) => break,
                }
            }
            H2Outcome::Response {
                status,
                headers,
                body: body.into(),
            }
        }
        Err(e) if e.is_reset() => H2Outcome::Reset(e.reason().unwrap_or(h2::Reason::NO_ERROR)),
        Err(e) => match e.reason() {
            Some(r) if e.is_go_away() => H2Outcome::GoAway(r),
            Some(r) if !e.is_io() => H2Outcome::Reset(r),
            _ => H2Outcome::Closed(e.to_string()),
        },
    }
}

/// Passes the client's bytes through, except that the first `HEADERS` frame (and its
/// `CONTINUATION`s) is replaced by `block`, split into frames no larger than the default maximum.
struct SwapHeaders<T> {
    inner: T,
    block: Option<Vec<u8>>,
    /// Client bytes not yet framed.
    pending: Vec<u8>,
    /// Bytes ready for the socket.
    out: Vec<u8>,
    preface_done: bool,
    /// The replaced block had no END_HEADERS: its CONTINUATION frames are dropped too.
    skipping_continuation: bool,
}

impl<T> SwapHeaders<T> {
    fn new(inner: T, block: Vec<u8>) -> Self {
        SwapHeaders {
            inner,
            block: Some(block),
            pending: Vec::new(),
            out: Vec::new(),
            preface_done: false,
            skipping_continuation: false,
        }
    }

    /// Moves every complete frame from `pending` to `out`, swapping the first header block.
    fn reframe(&mut self) {
        if !self.preface_done {
            if self.pending.len() < PREFACE_LEN {
                return;
            }
            self.out.extend(self.pending.drain(..PREFACE_LEN));
            self.preface_done = true;
        }
        while self.pending.len() >= 9 {
            let len = usize::from(self.pending[0]) << 16
                | usize::from(self.pending[1]) << 8
                | usize::from(self.pending[2]);
            if self.pending.len() < 9 + len {
                return;
            }
            let frame: Vec<u8> = self.pending.drain(..9 + len).collect();
            let (kind, flags) = (frame[3], frame[4]);
            let stream = [frame[5], frame[6], frame[7], frame[8]];
            if kind == FRAME_CONTINUATION && self.skipping_continuation {
                self.skipping_continuation = flags & FLAG_END_HEADERS == 0;
                continue;
            }
            match (kind, self.block.take()) {
                (FRAME_HEADERS, Some(block)) => {
                    self.skipping_continuation = flags & FLAG_END_HEADERS == 0;
                    self.write_block(&block, flags & FLAG_END_STREAM, stream);
                }
                (_, block) => {
                    self.block = block;
                    self.out.extend_from_slice(&frame);
                }
            }
        }
    }

    fn write_block(&mut self, block: &[u8], end_stream: u8, stream: [u8; 4]) {
        let chunks: Vec<&[u8]> = if block.is_empty() {
            vec![&[][..]]
        } else {
            block.chunks(MAX_FRAME).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let kind = if i == 0 {
                FRAME_HEADERS
            } else {
                FRAME_CONTINUATION
            };
            let mut flags = if i == 0 { end_stream } else { 0 };
            if i == last {
                flags |= FLAG_END_HEADERS;
            }
            let len = chunk.len();
            self.out.extend_from_slice(&[
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                kind,
                flags,
            ]);
            self.out.extend_from_slice(&stream);
            self.out.extend_from_slice(chunk);
        }
    }
}

impl<T: AsyncWrite + Unpin> SwapHeaders<T> {
    fn drain_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SwapHeaders<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SwapHeaders<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.pending.extend_from_slice(buf);
        this.reframe();
        // Buffered either way; a pending socket is driven again by poll_flush.
        if let Poll::Ready(Err(e)) = this.drain_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain_out(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain_out(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
