use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri, Version};

use super::*;

fn canon(raw: &str) -> Result<String, HostError> {
    canonical_host(raw)
}

#[test]
fn spellings_of_one_host_are_one_canonical_host() {
    for raw in [
        "inventory.internal",
        "INVENTORY.internal",
        "Inventory.Internal.",
        "INVENTORY.internal.",
        "inventory.internal:8443",
        "inventory.internal.:443",
        "inventory.internal:1",
        "inventory.internal:65535",
    ] {
        assert_eq!(canon(raw).as_deref(), Ok("inventory.internal"), "{raw:?}");
    }
    assert_eq!(canon("localhost").as_deref(), Ok("localhost"));
    assert_eq!(canon("a-b.c9").as_deref(), Ok("a-b.c9"));
    assert_eq!(canon("127.0.0.1:9001").as_deref(), Ok("127.0.0.1"));
    assert_eq!(canon("10.0.0.1.").as_deref(), Ok("10.0.0.1"));
}

#[test]
fn ipv6_literals_are_bracketed_and_compressed() {
    assert_eq!(canon("[::1]").as_deref(), Ok("[::1]"));
    assert_eq!(canon("[::1]:8443").as_deref(), Ok("[::1]"));
    assert_eq!(canon("[0:0:0:0:0:0:0:1]:443").as_deref(), Ok("[::1]"));
    assert_eq!(canon("[FE80::AB]").as_deref(), Ok("[fe80::ab]"));
    assert_eq!(
        canon("[::ffff:127.0.0.1]").as_deref(),
        Ok("[::ffff:127.0.0.1]")
    );
}

#[test]
fn malformed_hosts_are_invalid() {
    for raw in [
        "",
        ".",
        "..",
        "inventory.internal..",
        "inventory..internal",
        ".inventory.internal",
        "evil@inventory.internal",
        "user:pass@inventory.internal",
        "inventory.internal@evil",
        "inv%65ntory.internal",
        "inventory_internal",
        "inventory internal",
        "inventory.internal/",
        "inventory.internal\\",
        "-inventory.internal",
        "inventory-.internal",
        "invent\u{f6}ry.internal",
        "inventory.internal:",
        "inventory.internal:0",
        "inventory.internal:65536",
        "inventory.internal:99999",
        "inventory.internal:+80",
        "inventory.internal:80a",
        "inventory.internal:443:443",
        "inventory.internal:-1",
        "::1",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[::1]:0",
        "[fe80::1%25eth0]",
        "[inventory.internal]",
        "[]",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.0.0.256",
        "1.2.3.4.5",
        "2130706433",
        "a.0x10",
    ] {
        assert_eq!(canon(raw), Err(HostError::Invalid), "{raw:?}");
    }
}

#[test]
fn label_and_name_lengths_are_bounded() {
    let label = "a".repeat(63);
    assert!(canon(&label).is_ok());
    assert_eq!(canon(&"a".repeat(64)), Err(HostError::Invalid));
    let name = vec!["a".repeat(49); 5].join("."); // 249 characters
    assert!(canon(&name).is_ok());
    let long = vec!["a".repeat(50); 5].join("."); // 254 characters
    assert_eq!(canon(&long), Err(HostError::Invalid));
}

fn headers(hosts: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in hosts {
        h.append(HOST, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn resolve(version: Version, target: &str, hosts: &[&str]) -> Result<RequestHost, HostError> {
    resolve_host(version, &uri(target), &headers(hosts))
}

fn host(h: &str, absolute_form: bool) -> Result<RequestHost, HostError> {
    Ok(RequestHost {
        host: Some(h.to_owned()),
        absolute_form,
    })
}

#[test]
fn http1_origin_form_takes_the_host_header() {
    assert_eq!(
        resolve(Version::HTTP_11, "/a", &["INVENTORY.internal.:8443"]),
        host("inventory.internal", false)
    );
    assert_eq!(
        resolve(Version::HTTP_10, "/a", &[]),
        Ok(RequestHost {
            host: None,
            absolute_form: false
        })
    );
    assert_eq!(
        resolve(Version::HTTP_11, "/a", &["inventory.internal.."]),
        Err(HostError::Invalid)
    );
    assert_eq!(
        resolve(Version::HTTP_11, "/a", &["evil@inventory.internal"]),
        Err(HostError::Invalid)
    );
    assert_eq!(
        resolve(Version::HTTP_11, "/a", &[""]),
        Err(HostError::Invalid)
    );
}

#[test]
fn several_host_headers_conflict_even_when_equal() {
    assert_eq!(
        resolve(
            Version::HTTP_11,
            "/a",
            &["inventory.internal", "payroll.internal"]
        ),
        Err(HostError::Conflict)
    );
    assert_eq!(
        resolve(
            Version::HTTP_11,
            "/a",
            &["inventory.internal", "inventory.internal"]
        ),
        Err(HostError::Conflict)
    );
    assert_eq!(
        resolve(Version::HTTP_2, "https://inventory.internal/a", &["a", "b"]),
        Err(HostError::Conflict)
    );
}

#[test]
fn http1_absolute_form_must_agree_with_the_host_header() {
    assert_eq!(
        resolve(Version::HTTP_11, "http://inventory.internal/a", &[]),
        host("inventory.internal", true)
    );
    assert_eq!(
        resolve(
            Version::HTTP_11,
            "http://Inventory.Internal:80/a",
            &["inventory.internal."]
        ),
        host("inventory.internal", true)
    );
    assert_eq!(
        resolve(
            Version::HTTP_11,
            "http://payroll.internal/a",
            &["inventory.internal"]
        ),
        Err(HostError::Conflict)
    );
    assert_eq!(
        resolve(
            Version::HTTP_11,
            "http://evil@inventory.internal/a",
            &["inventory.internal"]
        ),
        Err(HostError::Invalid)
    );
}

#[test]
fn http2_authority_must_agree_with_a_host_header() {
    assert_eq!(
        resolve(Version::HTTP_2, "https://inventory.internal:8443/a", &[]),
        host("inventory.internal", false)
    );
    assert_eq!(
        resolve(
            Version::HTTP_2,
            "https://inventory.internal/a",
            &["INVENTORY.INTERNAL.:8443"]
        ),
        host("inventory.internal", false)
    );
    assert_eq!(
        resolve(
            Version::HTTP_2,
            "https://inventory.internal/a",
            &["payroll.internal"]
        ),
        Err(HostError::Conflict)
    );
    assert_eq!(
        resolve(Version::HTTP_2, "https://evil@inventory.internal/a", &[]),
        Err(HostError::Invalid)
    );
    // A host header alone (no :authority) still names the host.
    assert_eq!(
        resolve(Version::HTTP_2, "/a", &["inventory.internal"]),
        host("inventory.internal", false)
    );
}

#[test]
fn a_host_header_that_is_not_text_is_invalid() {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_bytes(b"inv\xe9ntory").unwrap());
    assert_eq!(
        resolve_host(Version::HTTP_11, &uri("/a"), &h),
        Err(HostError::Invalid)
    );
}
