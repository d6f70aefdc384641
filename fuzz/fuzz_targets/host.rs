//! Canonical hosts are lower-case, port-free and stable; resolution never yields anything else.
//!
//! Input: `host-header \n authority`; a missing part is absent from the request.
#![no_main]

use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Uri, Version};
use libfuzzer_sys::fuzz_target;
use warden::route::host::{canonical_host, resolve_host};

fn assert_canonical(raw: &str, host: &str) {
    assert!(
        !host.bytes().any(|b| b.is_ascii_uppercase()),
        "{raw:?} -> {host:?}"
    );
    assert!(!host.contains('@'), "{raw:?} -> {host:?}");
    assert!(!host.ends_with('.'), "{raw:?} -> {host:?}");
    // No port: only a bracketed IPv6 literal may hold a colon, and then it ends the string.
    if host.starts_with('[') {
        assert!(host.ends_with(']'), "{raw:?} -> {host:?}");
    } else {
        assert!(!host.contains(':'), "{raw:?} -> {host:?}");
    }
    assert_eq!(
        canonical_host(host).as_deref(),
        Ok(host),
        "{raw:?} is not stable"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(host) = canonical_host(text) {
        assert_canonical(text, &host);
    }
    let (header, authority) = text.split_once('\n').unwrap_or((text, ""));
    let mut headers = HeaderMap::new();
    if !header.is_empty() {
        let Ok(value) = HeaderValue::from_str(header) else {
            return;
        };
        headers.insert(HOST, value);
    }
    let uri: Uri = if authority.is_empty() {
        Uri::from_static("/")
    } else {
        match format!("http://{authority}/").parse() {
            Ok(uri) => uri,
            Err(_) => return,
        }
    };
    for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
        if let Ok(resolved) = resolve_host(version, &uri, &headers) {
            if let Some(host) = &resolved.host {
                assert_canonical(text, host);
            }
            let http1 = version != Version::HTTP_2;
            assert_eq!(resolved.absolute_form, http1 && uri.authority().is_some());
        }
    }
});
