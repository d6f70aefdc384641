use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn names(h: &HeaderMap) -> Vec<String> {
    let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
    n.sort();
    n
}

/// Every name SPEC section 4 strips, in its canonical spelling.
const SPEC_NAMES: &[&str] = &[
    "x-warden-agent",
    "x-warden-roles",
    "forwarded",
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-s-dn",
    "x-client-dn",
    "x-agent-id",
    "x-spiffe-id",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-remote-user",
    "remote-user",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// The spellings an attacker tries for one name.
fn spellings(name: &str) -> Vec<String> {
    let upper = name.to_ascii_uppercase();
    let title: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-");
    let mixed_underscores: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| if c == '-' && i % 2 == 0 { '_' } else { c })
        .collect();
    vec![
        name.to_owned(),
        upper.clone(),
        title.clone(),
        name.replace('-', "_"),
        upper.replace('-', "_"),
        title.replace('-', "_"),
        mixed_underscores,
    ]
}

#[test]
fn every_spec_name_is_stripped_in_every_spelling() {
    let strip = StripList::new(&[]);
    for name in SPEC_NAMES {
        for s in spellings(name) {
            assert!(strip.should_strip(&s), "{s:?} not stripped");
        }
    }
}

#[test]
fn sanitize_removes_every_spelling_from_a_request() {
    let strip = StripList::default();
    for name in SPEC_NAMES {
        for s in spellings(name) {
            // HeaderName lower-cases, so the map holds the lower-case `_` spelling at worst.
            let mut h = map(&[(s.as_str(), "spoofed"), ("accept", "*/*")]);
            sanitize_request_headers(&mut h, &strip, false);
            assert_eq!(names(&h), ["accept"], "{s:?} survived");
        }
    }
}

#[test]
fn prefix_families_strip_any_suffix() {
    let strip = StripList::new(&[]);
    for name in [
        "x-warden-anything",
        "X_WARDEN_ROLES",
        "x-ssl-client-verify",
        "x_ssl_client_i_dn",
        "X-Auth-Request-Groups",
        "x-auth-request-access-token",
    ] {
        assert!(strip.should_strip(name), "{name:?}");
    }
    // The bare family name without its dash is not a member.
    assert!(!strip.should_strip("x-warden"));
    assert!(!strip.should_strip("x-ssl-client"));
}

#[test]
fn names_that_merely_contain_a_stripped_name_survive() {
    let strip = StripList::new(&[]);
    for name in [
        "x-agent-idea",
        "x-agent-i",
        "my-x-agent-id",
        "x-forwarded-users",
        "x-forwarded-for",
        "x-forwarded",
        "forwarded-for",
        "x-real-ip-address",
        "remote-users",
        "x-wardens",
        "authorization",
        "content-type",
        "",
    ] {
        assert!(!strip.should_strip(name), "{name:?} stripped");
    }
    let mut h = map(&[("x-agent-idea", "1"), ("x-forwarded-for", "10.0.0.1")]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["x-agent-idea", "x-forwarded-for"]);
}

#[test]
fn configured_names_are_folded_and_may_be_prefixes() {
    let strip = StripList::new(&[
        "X_Internal_Debug".to_owned(),
        " x-tenant ".to_owned(),
        "x-corp-*".to_owned(),
        "*".to_owned(),
        String::new(),
    ]);
    assert!(strip.should_strip("x-internal-debug"));
    assert!(strip.should_strip("X-INTERNAL_DEBUG"));
    assert!(strip.should_strip("x-tenant"));
    assert!(strip.should_strip("x_corp_user"));
    assert!(!strip.should_strip("x-corp"));
    assert!(!strip.should_strip("accept"));
    assert!(strip.should_strip("x-forwarded-user"), "defaults stay");
}

#[test]
fn hop_by_hop_headers_and_their_underscore_spellings_are_removed() {
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("keep_alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy_connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("transfer_encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("proxy_authorization", "Basic Zm9vOmJhcg=="),
        ("proxy-authenticate", "Basic"),
        ("accept", "*/*"),
    ]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept"]);
}

#[test]
fn connection_cannot_remove_what_warden_relies_on_nor_smuggle_spoofed_names() {
    // Traefik CVE-2024-45410: `Connection: x-forwarded-user` made the proxy drop its own header.
    // Here the agent's spoofed copy goes (stripped) and warden sets its own afterwards.
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "x-forwarded-user, close"),
        ("x-forwarded-user", "admin"),
        ("accept", "*/*"),
    ]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept"]);

    let mut h = map(&[
        ("connection", "X-Warden-Agent"),
        ("x-warden-agent", "spiffe://example.org/agent/admin"),
        ("accept", "*/*"),
    ]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept"]);
}

#[test]
fn headers_named_by_connection_are_removed_in_any_case_and_spelling() {
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "X_Custom_Hop ,  other-hop"),
        ("connection", "third"),
        ("x-custom-hop", "1"),
        ("x_custom_hop", "1"),
        ("other-hop", "1"),
        ("third", "1"),
        ("x-custom", "kept"),
        ("accept", "*/*"),
    ]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept", "x-custom"]);
}

#[test]
fn keep_upgrade_keeps_only_upgrade_and_a_plain_connection_upgrade() {
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "Upgrade, x-forwarded-user, x-custom"),
        ("upgrade", "websocket"),
        ("x-custom", "1"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("keep-alive", "timeout=5"),
    ]);
    sanitize_request_headers(&mut h, &strip, true);
    assert_eq!(names(&h), ["connection", "sec-websocket-key", "upgrade"]);
    assert_eq!(
        h.get_all(CONNECTION).iter().collect::<Vec<_>>(),
        ["upgrade"]
    );
    assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
}

#[test]
fn without_keep_upgrade_an_upgrade_is_dropped() {
    let strip = StripList::default();
    let mut h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    sanitize_request_headers(&mut h, &strip, false);
    assert!(h.is_empty());
}

#[test]
fn keep_upgrade_never_keeps_h2c_nor_invents_an_upgrade() {
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "Upgrade, HTTP2-Settings"),
        ("upgrade", "H2C"),
    ]);
    h.append(
        "http2-settings",
        HeaderValue::from_static("AAMAAABkAAQAAP__"),
    );
    sanitize_request_headers(&mut h, &strip, true);
    assert!(h.is_empty(), "{h:?}");

    let mut h = map(&[("upgrade", "websocket, h2c/1")]);
    sanitize_request_headers(&mut h, &strip, true);
    assert!(h.is_empty(), "{h:?}");

    let mut h = map(&[("connection", "keep-alive"), ("accept", "*/*")]);
    sanitize_request_headers(&mut h, &strip, true);
    assert_eq!(
        names(&h),
        ["accept"],
        "no Upgrade, so no Connection: upgrade"
    );
}

#[test]
fn http2_settings_goes_even_when_connection_does_not_name_it() {
    let strip = StripList::default();
    let mut h = map(&[
        ("connection", "Upgrade"),
        ("upgrade", "h2c"),
        ("HTTP2_Settings", "AAMAAABkAAQAAP__"),
        ("accept", "*/*"),
    ]);
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept"]);
}

#[test]
fn responses_lose_hop_by_hop_but_keep_identity_like_names() {
    let mut h = map(&[
        ("connection", "close, x-backend-hop"),
        ("x-backend-hop", "1"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "timeout=5"),
        ("proxy-authenticate", "Basic"),
        ("x-forwarded-user", "kept: responses have no strip list"),
        ("content-type", "application/json"),
    ]);
    sanitize_response_headers(&mut h, false);
    assert_eq!(names(&h), ["content-type", "x-forwarded-user"]);
}

#[test]
fn a_switching_protocols_response_keeps_its_upgrade() {
    let mut h = map(&[
        ("connection", "Upgrade, x-extra"),
        ("upgrade", "websocket"),
        ("x-extra", "1"),
        ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]);
    sanitize_response_headers(&mut h, true);
    assert_eq!(names(&h), ["connection", "sec-websocket-accept", "upgrade"]);
    assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
}

#[test]
fn connection_values_that_are_not_text_still_name_headers() {
    let strip = StripList::default();
    let mut h = HeaderMap::new();
    h.insert(CONNECTION, HeaderValue::from_bytes(b"x-hop, \xff").unwrap());
    h.insert("x-hop", HeaderValue::from_static("1"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    sanitize_request_headers(&mut h, &strip, false);
    assert_eq!(names(&h), ["accept"]);
}
