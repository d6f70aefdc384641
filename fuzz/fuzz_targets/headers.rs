//! After sanitation no stripped, hop-by-hop or `Connection`-named header is left.
//!
//! Input: the first byte chooses `keep_upgrade`, the rest is `name: value` lines.
#![no_main]

use http::header::{HeaderName, HeaderValue, CONNECTION, UPGRADE};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use warden::headers::{sanitize_request_headers, sanitize_response_headers, StripList};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn parse(lines: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| fold(&String::from_utf8_lossy(t.trim_ascii())))
        .filter(|t| !t.is_empty())
        .collect()
}

fn check(before: &HeaderMap, after: &HeaderMap, strip: Option<&StripList>, keep_upgrade: bool) {
    let named = connection_tokens(before);
    for name in after.keys() {
        let folded = fold(name.as_str());
        if let Some(strip) = strip {
            assert!(!strip.should_strip(name.as_str()), "{name} survived");
        }
        let kept_upgrade = keep_upgrade && (name == UPGRADE || name == CONNECTION);
        if !kept_upgrade {
            assert!(!HOP_BY_HOP.contains(&folded.as_str()), "{name} survived");
            assert!(
                !named.contains(&folded),
                "{name} named by Connection survived"
            );
        }
    }
    for value in after.get_all(CONNECTION) {
        assert_eq!(value, "upgrade");
    }
    if after.contains_key(CONNECTION) {
        assert!(after.contains_key(UPGRADE));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, lines)) = data.split_first() else {
        return;
    };
    let keep_upgrade = mode & 1 == 1;
    let strip = StripList::new(&["x-internal-debug".to_owned(), "x-corp-*".to_owned()]);
    let before = parse(lines);

    let mut request = before.clone();
    sanitize_request_headers(&mut request, &strip, keep_upgrade);
    check(&before, &request, Some(&strip), keep_upgrade);

    let mut response = before.clone();
    sanitize_response_headers(&mut response, keep_upgrade);
    check(&before, &response, None, keep_upgrade);
});
