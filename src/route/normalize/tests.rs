use super::*;

fn path_of(raw: &str) -> String {
    match normalize_target(raw) {
        Ok(t) => t.path().to_owned(),
        Err(e) => panic!("{raw:?} was refused: {e}"),
    }
}

fn err_of(raw: &str) -> PathError {
    match normalize_target(raw) {
        Ok(t) => panic!("{raw:?} was accepted as {:?}", t.path()),
        Err(e) => e,
    }
}

/// Each row: a target an attacker sends, and the refusal it must meet.
const HOSTILE: &[(&str, PathError)] = &[
    // Path normalisation mismatch (Envoy, Istio): encoded dots and slashes.
    ("/%2e%2e", PathError::AboveRoot),
    ("/%2E%2e/", PathError::AboveRoot),
    ("/%2e%2e/admin", PathError::AboveRoot),
    ("/public/%2e%2e/%2e%2e/admin", PathError::AboveRoot),
    ("/..", PathError::AboveRoot),
    ("/../admin", PathError::AboveRoot),
    ("/a/b/../../..", PathError::AboveRoot),
    ("/a/./../..", PathError::AboveRoot),
    ("/.%2e/etc/passwd", PathError::AboveRoot),
    ("/..%2fadmin", PathError::EncodedSlash),
    ("/public/..%2f..%2fadmin", PathError::EncodedSlash),
    ("/%2f", PathError::EncodedSlash),
    ("/a%2Fb", PathError::EncodedSlash),
    ("/a%2fb", PathError::EncodedSlash),
    ("/public#/../admin", PathError::Fragment),
    ("/a/%2e%2e/%2E%2E/x", PathError::AboveRoot),
    ("#/admin", PathError::NotAbsolute),
    ("/a?b#c", PathError::Fragment),
    // Decoded-vs-forwarded split (nginx): backslashes, path parameters, overlong UTF-8.
    ("/%5c", PathError::EncodedBackslash),
    ("/a%5Cb", PathError::EncodedBackslash),
    ("/..%5c..%5cadmin", PathError::EncodedBackslash),
    ("/a\\b", PathError::Backslash),
    ("/public\\..\\admin", PathError::Backslash),
    ("\\admin", PathError::NotAbsolute),
    ("/..;/admin", PathError::PathParameter),
    ("/public/..;/admin", PathError::PathParameter),
    ("/a;jsessionid=1", PathError::PathParameter),
    ("/admin;/", PathError::PathParameter),
    ("/public/..%3B/admin", PathError::PathParameter),
    ("/a%3bb", PathError::PathParameter),
    ("/%c0%ae%c0%ae/admin", PathError::InvalidUtf8),
    ("/%c0%ae", PathError::InvalidUtf8),
    ("/%e0%80%ae", PathError::InvalidUtf8),
    ("/%f0%80%80%ae", PathError::InvalidUtf8),
    ("/%c0%af", PathError::InvalidUtf8),
    ("/%ed%a0%80", PathError::InvalidUtf8),
    ("/%c3", PathError::InvalidUtf8),
    ("/%c3/", PathError::InvalidUtf8),
    ("/%c3a", PathError::InvalidUtf8),
    ("/%ff", PathError::InvalidUtf8),
    ("/%f5%80%80%80", PathError::InvalidUtf8),
    // Server-specific readings (IIS double decoding, Windows trimming).
    ("/%252e%252e/admin", PathError::DoubleEncoding),
    ("/%252f", PathError::DoubleEncoding),
    ("/a%2541", PathError::DoubleEncoding),
    ("/%25%32%65%25%32%65/admin", PathError::DoubleEncoding),
    ("/%25%32e", PathError::DoubleEncoding),
    ("/a.", PathError::TrailingDotOrSpace),
    ("/admin./", PathError::TrailingDotOrSpace),
    ("/admin%2e", PathError::TrailingDotOrSpace),
    ("/...", PathError::TrailingDotOrSpace),
    ("/a/.../b", PathError::TrailingDotOrSpace),
    ("/a%20", PathError::TrailingDotOrSpace),
    ("/admin%20/", PathError::TrailingDotOrSpace),
    // Control characters, NUL, spaces, non-ASCII.
    ("/%00", PathError::EncodedNul),
    ("/admin%00.json", PathError::EncodedNul),
    ("/a%0d%0aX-Injected:%201", PathError::ControlCharacter),
    ("/a%09", PathError::ControlCharacter),
    ("/a%7f", PathError::ControlCharacter),
    ("/a%1F", PathError::ControlCharacter),
    ("/a\tb", PathError::ControlCharacter),
    ("/a\r\nb", PathError::ControlCharacter),
    ("/a\u{7f}", PathError::ControlCharacter),
    ("/a\0", PathError::ControlCharacter),
    ("/a b", PathError::Space),
    ("/a ", PathError::Space),
    ("/caf\u{e9}", PathError::NonAscii),
    ("/\u{ff0e}\u{ff0e}/admin", PathError::NonAscii),
    ("/a?b c", PathError::Space),
    ("/a?b\r\nc", PathError::ControlCharacter),
    ("/a?\u{e9}", PathError::NonAscii),
    // Invalid escapes, in the path and in the query.
    ("/%", PathError::InvalidEscape),
    ("/%2", PathError::InvalidEscape),
    ("/a%g0", PathError::InvalidEscape),
    ("/a%0g", PathError::InvalidEscape),
    ("/a%%32%65", PathError::InvalidEscape),
    ("/a%u002e", PathError::InvalidEscape),
    ("/a?x=%", PathError::InvalidEscape),
    ("/a?x=%zz", PathError::InvalidEscape),
    ("/a?x=%4", PathError::InvalidEscape),
    // Authority confusion and non-origin forms.
    ("", PathError::NotAbsolute),
    ("admin", PathError::NotAbsolute),
    ("*", PathError::NotAbsolute),
    ("http://evil/admin", PathError::NotAbsolute),
    ("?x=1", PathError::NotAbsolute),
    ("%2fadmin", PathError::NotAbsolute),
];

#[test]
fn hostile_targets_are_refused_with_the_specific_error() {
    assert!(HOSTILE.len() >= 50);
    for (raw, want) in HOSTILE {
        assert_eq!(&err_of(raw), want, "target {raw:?}");
    }
}

#[test]
fn too_long_targets_are_refused() {
    let at_limit = format!("/{}", "a".repeat(MAX_TARGET_LEN - 1));
    assert_eq!(path_of(&at_limit).len(), MAX_TARGET_LEN);
    let over = format!("/{}", "a".repeat(MAX_TARGET_LEN));
    assert_eq!(err_of(&over), PathError::TooLong);
    let long_query = format!("/a?{}", "q".repeat(MAX_TARGET_LEN));
    assert_eq!(err_of(&long_query), PathError::TooLong);
    // Found by fuzzing: 3000 raw `>` fit as received but grow to 9001 bytes once encoded, and the
    // normal form must itself be accepted.
    let grows = format!("/{}", ">".repeat(3000));
    assert!(grows.len() <= MAX_TARGET_LEN);
    assert_eq!(err_of(&grows), PathError::TooLong);
    let fits = format!("/{}", ">".repeat(2730));
    let normal = path_of(&fits);
    assert_eq!(normal.len(), 1 + 3 * 2730);
    assert_eq!(path_of(&normal), normal);
}

#[test]
fn too_many_segments_are_refused_even_when_dot_segments() {
    let at_limit = "/a".repeat(MAX_SEGMENTS);
    assert_eq!(segments(&path_of(&at_limit)).count(), MAX_SEGMENTS);
    assert_eq!(
        err_of(&"/a".repeat(MAX_SEGMENTS + 1)),
        PathError::TooManySegments
    );
    // Dot segments cost work too, so they count before removal.
    let dots = format!("/a{}", "/.".repeat(MAX_SEGMENTS));
    assert_eq!(err_of(&dots), PathError::TooManySegments);
    // Merged empty segments do not count.
    assert_eq!(path_of(&format!("/a{}b", "/".repeat(500))), "/a/b");
}

/// Each row: an accepted target and its normal path.
const ACCEPTED: &[(&str, &str)] = &[
    ("/", "/"),
    ("//", "/"),
    ("///", "/"),
    ("/a", "/a"),
    ("/a/", "/a/"),
    ("//admin", "/admin"),
    ("//a///b", "/a/b"),
    ("/a//", "/a/"),
    ("/a/./b", "/a/b"),
    ("/./a", "/a"),
    ("/a/.", "/a/"),
    ("/a/./", "/a/"),
    ("/a/b/..", "/a/"),
    ("/a/b/../", "/a/"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/../../c", "/c"),
    ("/a/..", "/"),
    ("/.", "/"),
    ("/a/%2e/b", "/a/b"),
    ("/a/%2E%2E/b", "/b"),
    ("/a/.%2e/b", "/b"),
    ("/public/%2e%2e/admin", "/admin"),
    // An encoded `#` is an ordinary byte of its segment.
    ("/public/%23/../admin", "/public/admin"),
    // Unreserved escapes decode; others keep their escape with upper-case hex.
    ("/%41%62%7e%2D%5f", "/Ab~-_"),
    ("/a%20b", "/a%20b"),
    ("/a%3fb", "/a%3Fb"),
    ("/a%23b", "/a%23b"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/%F0%9F%A6%80", "/%F0%9F%A6%80"),
    ("/%e2%82%ac", "/%E2%82%AC"),
    ("/a%25", "/a%25"),
    ("/a%25zz", "/a%25zz"),
    // Case is never changed.
    ("/ADMIN/Users", "/ADMIN/Users"),
    ("/a%2e.b", "/a..b"),
    // Raw characters URIs never allow unencoded get their one spelling.
    ("/a|b", "/a%7Cb"),
    ("/{id}", "/%7Bid%7D"),
    ("/a\"b<c>", "/a%22b%3Cc%3E"),
    ("/a[0]^`", "/a%5B0%5D%5E%60"),
    // Sub-delims, `:` and `@` stay as they are.
    ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
    ("/.well-known/x", "/.well-known/x"),
    ("/a/.b/c..d/~e", "/a/.b/c..d/~e"),
];

#[test]
fn accepted_targets_have_the_expected_normal_form() {
    for (raw, want) in ACCEPTED {
        assert_eq!(path_of(raw), *want, "target {raw:?}");
    }
}

#[test]
fn the_query_is_kept_as_received() {
    let t = normalize_target("/a/../b?x=%2e%2E&y=..;/\\&z=%2f").unwrap();
    assert_eq!(t.path(), "/b");
    assert_eq!(t.query(), Some("x=%2e%2E&y=..;/\\&z=%2f"));
    assert_eq!(t.path_and_query(), "/b?x=%2e%2E&y=..;/\\&z=%2f");
    let empty = normalize_target("/a?").unwrap();
    assert_eq!(empty.query(), Some(""));
    assert_eq!(empty.path_and_query(), "/a?");
    let none = normalize_target("/a").unwrap();
    assert_eq!(none.query(), None);
    assert_eq!(none.path_and_query(), "/a");
    // Only the first `?` starts the query.
    let two = normalize_target("/a?b?c").unwrap();
    assert_eq!((two.path(), two.query()), ("/a", Some("b?c")));
}

#[test]
fn segments_skip_the_empty_trailing_segment() {
    assert_eq!(segments("/").count(), 0);
    assert_eq!(segments("/a/b").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(segments("/a/b/").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(segments("/a%2Fb/c").collect::<Vec<_>>(), ["a%2Fb", "c"]);
}

#[test]
fn errors_have_messages() {
    for (_, e) in HOSTILE {
        assert!(!e.to_string().is_empty());
    }
    assert!(PathError::TooLong.to_string().contains("8192"));
}

/// A small deterministic generator (xorshift), so the property test needs no extra crate and
/// fails the same way every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that combine into the shapes attackers use, so random targets hit the interesting
/// branches far more often than random bytes would.
const PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "//",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "%5c",
    "%25",
    "%00",
    "%20",
    "%3b",
    "%3B",
    "%41",
    "%7e",
    "%c3%a9",
    "%C3",
    "%a9",
    "%c0%ae",
    "%e2%82%ac",
    "%",
    "%2",
    "%zz",
    "a",
    "B",
    "z9",
    "~",
    "-",
    "_",
    ";",
    "\\",
    " ",
    "?",
    "#",
    "|",
    "{",
    ":",
    "@",
    "!",
    "=",
    "&",
    "\t",
    "\u{e9}",
    "%3f",
    "%23",
    "%7C",
    "2e",
    "5",
];

fn random_target(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.below(10) != 0 {
        s.push('/');
    }
    for _ in 0..rng.below(16) {
        s.push_str(PIECES[rng.below(PIECES.len())]);
    }
    s
}

fn assert_normal_form(raw: &str, path: &str) {
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(!path.contains("//"), "{raw:?} -> {path:?}");
    assert!(!path.contains('\\'), "{raw:?} -> {path:?}");
    assert!(!path.contains(';'), "{raw:?} -> {path:?}");
    for seg in segments(path) {
        assert!(seg != "." && seg != "..", "{raw:?} -> {path:?}");
    }
    let upper = path.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E", "%3B"] {
        assert!(!upper.contains(bad), "{raw:?} -> {path:?}");
    }
}

#[test]
fn normalisation_is_idempotent_and_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for _ in 0..50_000 {
        let raw = random_target(&mut rng);
        let Ok(first) = normalize_target(&raw) else {
            continue;
        };
        accepted += 1;
        assert_normal_form(&raw, first.path());
        let again = normalize_target(first.path_and_query().as_str()).unwrap_or_else(|e| {
            panic!(
                "{raw:?} -> {:?} refused on the second pass: {e}",
                first.path()
            )
        });
        assert_eq!(again, first, "{raw:?}");
    }
    // The generator must exercise the accepting branch, not only refusals.
    assert!(accepted > 5_000, "only {accepted} accepted");
}

#[test]
fn a_path_already_normal_is_its_own_normal_form() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut normal = 0;
    for _ in 0..50_000 {
        let raw = random_target(&mut rng);
        let path = raw.split_once('?').map_or(raw.as_str(), |(p, _)| p);
        if is_normal(path.as_bytes()) {
            normal += 1;
            assert_eq!(build_normal(path), Ok(path.to_string()), "{raw:?}");
        }
    }
    for path in [
        "/",
        "/a",
        "/a/",
        "/svc3/orders/12345",
        "/a/b.c/d~e",
        "/x:y@z!$&'()*+,=",
    ] {
        assert!(is_normal(path.as_bytes()), "{path:?}");
        assert_eq!(build_normal(path), Ok(path.to_string()), "{path:?}");
    }
    for path in [
        "", "a", "//", "/a//b", "/a/.", "/a/..", "/a./b", "/%41", "/a b", "/a;b", "/a|b",
    ] {
        assert!(!is_normal(path.as_bytes()), "{path:?}");
    }
    let deep = "/s".repeat(MAX_SEGMENTS + 1);
    assert!(!is_normal(deep.as_bytes()));
    assert_eq!(build_normal(&deep), Err(PathError::TooManySegments));
    // The generator must reach the fast path often, not only the slow one.
    assert!(normal > 1_000, "only {normal} already normal");
}

#[test]
fn a_request_target_is_normalised_as_its_text_is() {
    let mut rng = Rng(0x1405_7B7E_F767_814F);
    let mut compared = 0;
    for _ in 0..50_000 {
        let raw = random_target(&mut rng);
        let Ok(target) = http::uri::PathAndQuery::try_from(raw.as_str()) else {
            continue;
        };
        compared += 1;
        assert_eq!(
            normalize_request_target(&target),
            normalize_target(target.as_str()),
            "{raw:?}"
        );
    }
    assert!(compared > 10_000, "only {compared} compared");
    let target = http::uri::PathAndQuery::from_static("/svc3/orders/12345?limit=50");
    let normal = normalize_request_target(&target).unwrap();
    // Already normal: the same bytes, not a copy.
    assert_eq!(
        normal.path_and_query().as_str().as_ptr(),
        target.as_str().as_ptr()
    );
}
