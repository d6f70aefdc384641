//! HTTP/1.1 as raw bytes over mTLS: write exactly what a hostile agent would, then read back
//! whole responses (by `Content-Length` or chunked framing), or learn that warden closed the
//! connection. No quiet-period timing: a read ends on a complete response, a close, or a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::AgentClient;

/// How long one exchange may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// One response read off the wire.
#[derive(Debug, Clone)]
pub struct WireResponse {
    pub status: u16,
    /// Status line and header lines, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl WireResponse {
    /// The value of a response header (first occurrence, name without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `error` of a JSON refusal body, or "".
    pub fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// What came back for the bytes written.
#[derive(Debug, Clone)]
pub struct WireOutcome {
    pub responses: Vec<WireResponse>,
    /// Whether warden closed the connection before `expect` responses were read.
    pub closed_early: bool,
}

impl WireOutcome {
    /// The status of the first response, or 0 when warden closed without answering.
    pub fn status(&self) -> u16 {
        self.responses.first().map_or(0, |r| r.status)
    }

    pub fn first(&self) -> Option<&WireResponse> {
        self.responses.first()
    }
}

/// Writes `raw` on a new connection and reads `expect` responses. `heads[i]` says whether the
/// i-th response answers a HEAD (its `Content-Length` announces no body).
pub async fn exchange(client: &AgentClient, raw: &[u8], heads: &[bool]) -> WireOutcome {
    let run = async {
        let mut tls = client.connect().await.expect("connect");
        tls.write_all(raw).await.expect("write");
        tls.flush().await.expect("flush");
        let mut buf = Vec::new();
        let mut responses = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while responses.len() < heads.len() {
                let head_only = heads[responses.len()];
                match parse_response(&buf, head_only) {
                    Some((resp, used)) => {
                        buf.drain(..used);
                        responses.push(resp);
                    }
                    None => break,
                }
            }
            if responses.len() == heads.len() {
                return WireOutcome {
                    responses,
                    closed_early: false,
                };
            }
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return WireOutcome {
                        responses,
                        closed_early: true,
                    }
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, run)
        .await
        .expect("warden neither answered nor closed in time")
}

/// One request, one response (not a HEAD).
pub async fn one(client: &AgentClient, raw: &[u8]) -> WireOutcome {
    let head = raw.starts_with(b"HEAD ");
    exchange(client, raw, &[head]).await
}

/// A complete response at the start of `buf`, and how many bytes it took.
fn parse_response(buf: &[u8], head_only: bool) -> Option<(WireResponse, usize)> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let resp = |body: Vec<u8>| WireResponse {
        status,
        head: head.clone(),
        body,
    };
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some((resp(Vec::new()), end));
    }
    if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        let (body, used) = dechunk(&buf[end..])?;
        return Some((resp(body), end + used));
    }
    let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
    let body = buf.get(end..end + len)?.to_vec();
    Some((resp(body), end + len))
}

/// A whole chunked body at the start of `buf` (trailers skipped), and the bytes it took.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&buf[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers end at an empty line.
            let rest = find(&buf[at..], b"\r\n")?;
            if rest == 0 {
                return Some((body, at + 2));
            }
            let trailers_end = at + find(&buf[at..], b"\r\n\r\n")?;
            return Some((body, trailers_end + 4));
        }
        body.extend_from_slice(buf.get(at..at + size)?);
        at += size + 2;
        if buf.len() < at {
            return None;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
