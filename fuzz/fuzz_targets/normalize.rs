//! The normal form holds for every accepted target, and normalising it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::route::normalize::{normalize_target, segments};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = normalize_target(raw) else {
        return;
    };
    let path = target.path();
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(!path.contains("//"), "{raw:?} -> {path:?}");
    assert!(!path.contains('\\'), "{raw:?} -> {path:?}");
    assert!(!path.contains(';'), "{raw:?} -> {path:?}");
    assert!(
        !path.contains('#') && !path.contains('?'),
        "{raw:?} -> {path:?}"
    );
    assert!(
        !path.contains("/./") && !path.contains("/../"),
        "{raw:?} -> {path:?}"
    );
    assert!(
        segments(path).all(|s| s != "." && s != ".."),
        "{raw:?} -> {path:?}"
    );
    let upper = path.to_ascii_uppercase();
    for banned in ["%2F", "%5C", "%00", "%2E", "%3B"] {
        assert!(!upper.contains(banned), "{raw:?} -> {path:?}");
    }
    assert!(
        path.bytes().all(|b| b.is_ascii_graphic()),
        "{raw:?} -> {path:?}"
    );
    let again = normalize_target(target.path_and_query().as_str());
    assert_eq!(again.as_ref(), Ok(&target), "{raw:?} is not idempotent");
});
