//! One upstream's settings as the snapshot compiles them from the config, with the defaults that
//! apply where the config is silent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How long a request waits for a connection (and a new connection for its handshakes).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pooled connections to one upstream when `max_connections` is not set. 256 keeps one busy
/// upstream (or one agent with many HTTP/2 streams) well inside a 1024 file-descriptor limit
/// beside the agent connections, and 256 concurrent HTTP/1.1 requests is already more than most
/// internal APIs serve; past it requests wait up to `connect_timeout`, then 503 `upstream_busy`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// An idle pooled connection is closed after this long unused.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Streams warden opens at once on one HTTP/2 connection before it opens another. Servers
/// commonly allow 100 to 250; a server that allows fewer makes the extra streams queue briefly.
pub const H2_STREAMS_PER_CONNECTION: usize = 100;

/// One `upstreams` entry as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub url: String,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub http2: bool,
    pub bodies_on_get: bool,
}

/// How warden speaks TLS to an upstream: the CA that verifies it (absent: the system's trusted
/// roots), the client certificate it presents, the name it verifies when that differs from the
/// URL's host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

impl UpstreamSettings {
    /// The files it names: a change of any of them rebuilds its pool.
    pub fn files(&self) -> Vec<PathBuf> {
        self.tls
            .iter()
            .flat_map(|t| [&t.ca, &t.cert, &t.key])
            .flatten()
            .cloned()
            .collect()
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .max(1)
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT)
    }

    /// A digest of the settings and the bytes of every file they name: equal digests mean the
    /// pool can be kept across a reload.
    pub fn fingerprint(&self, name: &str) -> Result<[u8; 32], String> {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update(format!("{self:?}").as_bytes());
        for p in self.files() {
            h.update(read(&p)?);
        }
        Ok(h.finalize().into())
    }
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
