//! The request as the decision sees it: its head, where it came from, when.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};

/// One request's head and circumstances.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    /// Whether a body follows the head (a non-empty or unknown-length body).
    pub has_body: bool,
    pub source_ip: IpAddr,
    /// Wall-clock time, Unix ms: time conditions, token expiry, quarantine.
    pub now_ms: i64,
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The agent stalled or the stream broke.
    Failed(String),
}

/// The request body, for the one step that reads it: a JSON-RPC message on an agent-protocol
/// route is read whole before it is judged, and the bytes judged are the bytes forwarded.
pub trait MessageBody {
    /// The whole body, at most `limit` bytes.
    fn read(
        &mut self,
        limit: u64,
    ) -> impl std::future::Future<Output = Result<Bytes, BodyError>> + Send;
}

/// A body given whole (`explain --body`), or none.
#[derive(Debug, Clone, Default)]
pub struct GivenBody(pub Option<Bytes>);

impl MessageBody for GivenBody {
    async fn read(&mut self, limit: u64) -> Result<Bytes, BodyError> {
        let body = self.0.clone().unwrap_or_default();
        if body.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(body)
    }
}
