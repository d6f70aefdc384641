//! WebSockets for the tests, handshake written by hand: an upstream on 127.0.0.1:0 that answers
//! the opening handshake (properly, or in one of the ways a proxy must refuse) and echoes bytes,
//! counting what reaches it after its `101`; and an agent side that opens a tunnel through warden.
//! The tunnel is byte-transparent, so the bytes need not be WebSocket frames.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use super::client::AgentClient;

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 section 4.2.2), computed here independently of
/// warden's own code.
pub fn accept_for(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    STANDARD.encode(digest.as_ref())
}

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A proper `101` for a proper handshake, else 400.
    Proper,
    /// `101` without `Sec-WebSocket-Accept`.
    NoAccept,
    /// `101` with an accept for another key.
    WrongAccept,
    /// `101` to every request, WebSocket or not.
    Always,
}

/// A WebSocket echo upstream.
pub struct WsUpstream {
    pub addr: SocketAddr,
    /// Request heads received, as text.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Bytes received after a `101` was sent, over all connections.
    pub after_switch: Arc<AtomicUsize>,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
}

impl WsUpstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn bytes_after_switch(&self) -> usize {
        self.after_switch.load(Ordering::SeqCst)
    }
}

pub async fn start(answer: Answer) -> WsUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = WsUpstream {
        addr: listener.local_addr().unwrap(),
        heads: Arc::default(),
        after_switch: Arc::default(),
        open: Arc::default(),
    };
    let (heads, after, open) = (up.heads.clone(), up.after_switch.clone(), up.open.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (heads, after, open) = (heads.clone(), after.clone(), open.clone());
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                serve(tcp, answer, heads, after).await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    up
}

/// Reads a message head (through the blank line); `None` if the peer closed first.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The value of header `name` in a message head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

async fn serve(
    mut tcp: TcpStream,
    answer: Answer,
    heads: Arc<Mutex<Vec<String>>>,
    after: Arc<AtomicUsize>,
) {
    let Some(head) = read_head(&mut tcp).await else {
        return;
    };
    heads.lock().unwrap().push(head.clone());
    let key = header(&head, "sec-websocket-key");
    let switch = match (answer, &key) {
        (Answer::Proper, Some(k)) => format!("sec-websocket-accept: {}\r\n", accept_for(k)),
        (Answer::Proper, None) => {
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            return;
        }
        (Answer::NoAccept, _) => String::new(),
        (Answer::WrongAccept, _) => format!("sec-websocket-accept: {}\r\n", accept_for("other")),
        (Answer::Always, k) => k
            .as_ref()
            .map(|k| format!("sec-websocket-accept: {}\r\n", accept_for(k)))
            .unwrap_or_default(),
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n{switch}\r\n"
    );
    if tcp.write_all(resp.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                after.fetch_add(n, Ordering::SeqCst);
                if tcp.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A proper client handshake for `path`.
pub fn handshake_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// An agent's end of a tunnel through warden.
pub struct AgentTunnel {
    pub tls: TlsStream<TcpStream>,
    pub head: String,
}

impl AgentTunnel {
    /// Connects, sends `request`, and reads the response head.
    pub async fn open_with(client: &AgentClient, request: &str) -> AgentTunnel {
        let mut tls = client.connect().await.expect("connect");
        tls.write_all(request.as_bytes()).await.expect("write");
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut tls))
            .await
            .expect("response head in time")
            .unwrap_or_default();
        AgentTunnel { tls, head }
    }

    /// Opens a tunnel on `path` and checks it switched.
    pub async fn open(client: &AgentClient, path: &str) -> AgentTunnel {
        let t = Self::open_with(client, &handshake_request(path)).await;
        assert_eq!(t.status(), 101, "{}", t.head);
        t
    }

    pub fn status(&self) -> u16 {
        super::client::raw_status(&self.head)
    }

    /// Sends `bytes` and reads back the upstream's echo.
    pub async fn echo(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        self.tls.write_all(bytes).await?;
        let mut back = vec![0u8; bytes.len()];
        tokio::time::timeout(Duration::from_secs(5), self.tls.read_exact(&mut back))
            .await
            .map_err(|_| std::io::Error::other("no echo in 5 s"))??;
        Ok(back)
    }

    /// Waits up to `limit` for warden to close the tunnel; how long that took.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            let left = limit.checked_sub(started.elapsed())?;
            match tokio::time::timeout(left, self.tls.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }
}
