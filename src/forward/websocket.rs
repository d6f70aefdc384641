//! The WebSocket opening handshake (RFC 6455 section 4), checked on both sides: an upgrade passes
//! only when the agent asked properly and the upstream answered properly. Anything else is not a
//! WebSocket, and warden does not open a tunnel for it.

use aws_lc_rs::digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};

/// The GUID every `Sec-WebSocket-Accept` is derived with.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether the comma-separated `name` headers hold `token` (without case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The one value of `name`, if there is exactly one.
fn only(headers: &HeaderMap, name: header::HeaderName) -> Option<&HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// The agent's `Sec-WebSocket-Key` when it asked for a WebSocket properly: HTTP/1.1 GET,
/// `Upgrade: websocket`, `Connection: upgrade`, version 13, and one key of 16 base64 bytes.
pub fn handshake_key(
    version: Version,
    method: &Method,
    headers: &HeaderMap,
) -> Option<HeaderValue> {
    if version != Version::HTTP_11 || method != Method::GET {
        return None;
    }
    let upgrade = only(headers, header::UPGRADE)?;
    if !upgrade
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
        || only(headers, header::SEC_WEBSOCKET_VERSION)?
            .as_bytes()
            .trim_ascii()
            != b"13"
    {
        return None;
    }
    let key = only(headers, header::SEC_WEBSOCKET_KEY)?;
    let decoded = STANDARD.decode(key.as_bytes().trim_ascii()).ok()?;
    (decoded.len() == 16).then(|| key.clone())
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
pub fn accept_for(key: &HeaderValue) -> String {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes().trim_ascii());
    ctx.update(GUID);
    STANDARD.encode(ctx.finish().as_ref())
}

/// Checks the upstream's `101 Switching Protocols` against the agent's key; what is wrong if it
/// is not the answer to that handshake.
pub fn check_switch(headers: &HeaderMap, key: &HeaderValue) -> Result<(), &'static str> {
    let upgrade = only(headers, header::UPGRADE).ok_or("no single Upgrade header")?;
    if !upgrade
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket")
    {
        return Err("Upgrade is not websocket");
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err("Connection does not name upgrade");
    }
    let accept = only(headers, header::SEC_WEBSOCKET_ACCEPT).ok_or("no Sec-WebSocket-Accept")?;
    if accept.as_bytes().trim_ascii() != accept_for(key).as_bytes() {
        return Err("wrong Sec-WebSocket-Accept");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const PROPER: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn the_rfc_example_accept() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept_for(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn only_a_proper_request_is_a_websocket_handshake() {
        let get = Method::GET;
        assert!(handshake_key(Version::HTTP_11, &get, &request(PROPER)).is_some());
        assert!(handshake_key(Version::HTTP_2, &get, &request(PROPER)).is_none());
        assert!(handshake_key(Version::HTTP_11, &Method::POST, &request(PROPER)).is_none());
        for (drop, _) in PROPER {
            let h: Vec<_> = PROPER.iter().filter(|(k, _)| k != drop).copied().collect();
            assert!(
                handshake_key(Version::HTTP_11, &get, &request(&h)).is_none(),
                "{drop}"
            );
        }
        for (name, bad) in [
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "c2hvcnQ="),
            ("sec-websocket-key", "not base64!!"),
            ("upgrade", "h2c"),
        ] {
            let mut h = request(PROPER);
            h.insert(header::HeaderName::from_static(name), bad.parse().unwrap());
            assert!(
                handshake_key(Version::HTTP_11, &get, &h).is_none(),
                "{name}"
            );
        }
        let mut two_keys = request(PROPER);
        two_keys.append(
            header::SEC_WEBSOCKET_KEY,
            "AAAAAAAAAAAAAAAAAAAAAA==".parse().unwrap(),
        );
        assert!(handshake_key(Version::HTTP_11, &get, &two_keys).is_none());
    }

    #[test]
    fn only_the_answer_to_this_key_switches() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let good = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        assert_eq!(check_switch(&request(&good), &key), Ok(()));
        let wrong = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ];
        assert!(check_switch(&request(&wrong), &key).is_err());
        assert!(check_switch(&request(&good[..2]), &key).is_err());
        let other = [good[1], good[2], ("upgrade", "h2c")];
        assert!(check_switch(&request(&other), &key).is_err());
    }
}
