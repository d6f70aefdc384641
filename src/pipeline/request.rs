//! The request as the decision sees it: its head, where it came from, when.

use std::net::IpAddr;

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
