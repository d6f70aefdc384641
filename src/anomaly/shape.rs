//! Path shapes and the small hashes the engine keeps instead of strings.
//!
//! A path shape is the path's leading segments with identifiers folded, so that
//! `/inventory/items/42` and `/inventory/items/97` are one shape while `/inventory/admin/users` is
//! another. Only a 64-bit hash of it is kept: no allocation per request, and a bounded footprint.

/// How many leading segments make a shape; deeper segments only count as "there is more".
pub const SHAPE_SEGMENTS: usize = 3;

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
/// Stands for a folded identifier; path bytes are fed as whole words, tags as single bytes.
const ID_TAG: u8 = 0xff;
const SEP_TAG: u8 = b'/';
const MORE_TAG: u8 = 0xfe;

/// A word-at-a-time multiply-rotate hash with a final avalanche, so the bits the Bloom filter
/// uses are well mixed. Not keyed: it only has to spread honest values, and a colliding path
/// would still have to be a path the agent really uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hasher(u64);

impl Hasher {
    pub(crate) fn new(domain: u8) -> Self {
        let mut h = Self(SEED);
        h.byte(domain);
        h
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(MULTIPLIER).rotate_left(29);
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.word(u64::from(b) | 0x100);
    }

    /// The length goes in with the last word, so `"ab" + "c"` and `"a" + "bc"` differ.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        let mut word = [0u8; 8];
        for chunk in &mut chunks {
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56) ^ 0x200);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.word(v);
    }

    pub(crate) fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// splitmix64's finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn hash_str(domain: u8, s: &str) -> u64 {
    let mut h = Hasher::new(domain);
    h.bytes(s.as_bytes());
    h.finish()
}

/// Hash of the path's shape: its first [`SHAPE_SEGMENTS`] non-empty segments, identifiers folded
/// to one token, plus whether deeper segments follow. A query string, if any, is ignored.
pub fn path_shape(path: &str) -> u64 {
    shape_and_object(path).shape
}

/// What a path names, as the engine keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathKey {
    pub(crate) shape: u64,
    /// A hash of the identifiers the shape folded, `None` when it folded none (a collection, a
    /// fixed name).
    pub(crate) object: Option<u64>,
    /// The value of the last folded identifier when it is a plain number (up to 19 digits): ids
    /// read in order show as numbers in order.
    pub(crate) number: Option<u64>,
}

/// The path's shape, the object it names and that object's number, if it is one.
///
/// One pass over the bytes with a table of byte classes: the separators (`/`, `?`, `#`) are
/// ASCII, so a byte search finds exactly what a search by characters would, and the identifier
/// rules need only what the same pass gathers about each segment.
pub(crate) fn shape_and_object(path: &str) -> PathKey {
    let bytes = path.as_bytes();
    let mut h = Hasher::new(b'p');
    let mut object: Option<Hasher> = None;
    let mut number = None;
    let mut taken = 0;
    let mut more = false;
    let mut start = 0;
    let mut class = Class::EMPTY;
    let mut i = 0;
    loop {
        let c = bytes.get(i).map_or(END, |&b| CLASSES[usize::from(b)]);
        if c & (SLASH | END) == 0 {
            if taken == SHAPE_SEGMENTS {
                more = true;
                break;
            }
            class.add(c);
        } else {
            if i > start {
                let segment = &bytes[start..i];
                taken += 1;
                h.byte(SEP_TAG);
                if class.identifier(segment) {
                    h.byte(ID_TAG);
                    object
                        .get_or_insert_with(|| Hasher::new(b'o'))
                        .bytes(segment);
                    number = (class.number() && segment.len() <= 19).then(|| parse_digits(segment));
                } else {
                    h.bytes(segment);
                }
            }
            if c & END != 0 {
                break;
            }
            start = i + 1;
            class = Class::EMPTY;
        }
        i += 1;
    }
    if more {
        h.byte(MORE_TAG);
    }
    PathKey {
        shape: h.finish(),
        object: object.map(Hasher::finish),
        number,
    }
}

/// The value of up to 19 ASCII digits (always within a `u64`).
fn parse_digits(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
}

const DIGIT: u8 = 1;
const HEX: u8 = 2;
/// Of the token alphabet: alphanumerics and `-_=+.`.
const TOKEN: u8 = 4;
const UPPER: u8 = 8;
const LOWER: u8 = 16;
const SLASH: u8 = 32;
/// `?`, `#` and the end of the path: the shape ends there.
const END: u8 = 64;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_digit() {
            class |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            class |= HEX;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'+' | b'.') {
            class |= TOKEN;
        }
        if c.is_ascii_uppercase() {
            class |= UPPER;
        }
        if c.is_ascii_lowercase() {
            class |= LOWER;
        }
        if c == b'/' {
            class |= SLASH;
        }
        if c == b'?' || c == b'#' {
            class |= END;
        }
        t[b] = class;
        b += 1;
    }
    t
};

/// What one scan of a (non-empty) segment tells about its bytes: the classes all of them have,
/// the classes any of them has, and how many are digits.
#[derive(Debug, Clone, Copy)]
struct Class {
    all: u8,
    any: u8,
    digits: usize,
}

impl Class {
    const EMPTY: Self = Self {
        all: u8::MAX,
        any: 0,
        digits: 0,
    };

    fn of(s: &[u8]) -> Self {
        let mut c = Self::EMPTY;
        for &b in s {
            c.add(CLASSES[usize::from(b)]);
        }
        c
    }

    fn add(&mut self, class: u8) {
        self.all &= class;
        self.any |= class;
        self.digits += usize::from(class & DIGIT);
    }

    fn number(&self) -> bool {
        self.all & DIGIT != 0
    }

    /// The rules of [`is_identifier`], from one scan of a non-empty segment.
    fn identifier(&self, s: &[u8]) -> bool {
        let token = s.len() >= 16
            && self.all & TOKEN != 0
            && (self.any & DIGIT != 0 || self.any & (UPPER | LOWER) == UPPER | LOWER);
        self.number()
            || is_uuid(s)
            || (s.len() >= 8 && self.all & HEX != 0)
            || token
            || (self.digits >= 3 && self.digits * 2 >= s.len())
    }
}

/// Whether a segment names one object among many rather than a kind of object: a number, a
/// UUID, a hex digest or object id of 8 characters or more, a long base64/base64url token (a long
/// word-like slug, lower case and dashes only, is kept as it is: those name kinds of things as
/// often as instances), or mostly digits (dates, invoice numbers: `2024-01-31`, `INV-20240101`).
pub fn is_identifier(segment: &str) -> bool {
    let s = segment.as_bytes();
    !s.is_empty() && Class::of(s).identifier(s)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules as first written, by characters and one scan per rule: the one-pass version
    /// must agree with them on every path.
    fn reference(path: &str) -> PathKey {
        fn number(s: &str) -> bool {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
        }
        fn identifier(s: &str) -> bool {
            let token = s.len() >= 16
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'.')
                })
                && (s.bytes().any(|b| b.is_ascii_digit())
                    || (s.bytes().any(|b| b.is_ascii_uppercase())
                        && s.bytes().any(|b| b.is_ascii_lowercase())));
            let digits = s.bytes().filter(u8::is_ascii_digit).count();
            number(s)
                || is_uuid(s.as_bytes())
                || (s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                || token
                || (digits >= 3 && digits * 2 >= s.len())
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut h = Hasher::new(b'p');
        let mut object: Option<Hasher> = None;
        let mut n = None;
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        for segment in segments.by_ref().take(SHAPE_SEGMENTS) {
            h.byte(SEP_TAG);
            if identifier(segment) {
                h.byte(ID_TAG);
                object
                    .get_or_insert_with(|| Hasher::new(b'o'))
                    .bytes(segment.as_bytes());
                n = (number(segment) && segment.len() <= 19)
                    .then(|| segment.parse().ok())
                    .flatten();
            } else {
                h.bytes(segment.as_bytes());
            }
        }
        if segments.next().is_some() {
            h.byte(MORE_TAG);
        }
        PathKey {
            shape: h.finish(),
            object: object.map(Hasher::finish),
            number: n,
        }
    }

    #[test]
    fn one_pass_agrees_with_the_rules() {
        let segments = [
            "",
            "inventory",
            "items",
            "42",
            "0",
            "0042",
            "9999999999999999999",
            "18446744073709551615",
            "123456789012345678901",
            "deadbeef",
            "cafe",
            "DEADBEEF",
            "3f2b1c9d0a",
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "dGhpcyBpcyBhIHRva2Vu9x",
            "a-long-article-slug-here",
            "ALongMixedCaseTokenHere",
            "2024-01-31",
            "INV-20240101",
            "v2",
            "ab12",
            "é42",
            "naïve-téxt-ünïcode-42",
            "users",
            "x?y",
            "x#y",
            "a.b.c.d.e.f.g.h.1",
        ];
        let mut paths = Vec::new();
        for a in segments {
            for b in segments {
                for sep in ["/", "//", "/x/", "/12/"] {
                    paths.push(format!("/{a}{sep}{b}"));
                    paths.push(format!("{a}/{b}{sep}{a}/tail?q={b}"));
                    paths.push(format!("/inventory/{a}{sep}{b}#frag"));
                }
            }
        }
        for path in &paths {
            assert_eq!(shape_and_object(path), reference(path), "{path}");
        }
        for segment in segments
            .iter()
            .filter(|s| !s.is_empty() && !s.contains(['?', '#']))
        {
            let by_rules = reference(&format!("/{segment}")).object.is_some();
            assert_eq!(is_identifier(segment), by_rules, "{segment}");
        }
    }

    #[test]
    fn ids_fold_to_one_shape() {
        let a = path_shape("/inventory/items/42");
        assert_eq!(a, path_shape("/inventory/items/977"));
        assert_eq!(a, path_shape("/inventory/items/3f2b1c9d0a"));
        assert_eq!(
            a,
            path_shape("/inventory/items/123e4567-e89b-12d3-a456-426614174000")
        );
        assert_eq!(a, path_shape("/inventory/items/dGhpcyBpcyBhIHRva2Vu9x"));
        assert_eq!(a, path_shape("/inventory/items/2024-01-31"));
        assert_eq!(
            a,
            path_shape("inventory//items/42/"),
            "empty segments are ignored"
        );
        assert_eq!(a, path_shape("/inventory/items/42?page=2"));
    }

    #[test]
    fn objects_are_the_folded_ids() {
        let key = shape_and_object("/inventory/items/42");
        assert_eq!(key.shape, path_shape("/inventory/items/42"));
        assert!(key.object.is_some());
        assert_eq!(key.number, Some(42));
        assert_ne!(key.object, shape_and_object("/inventory/items/43").object);
        assert_eq!(key, shape_and_object("/inventory/items/42?x=1"));
        assert_eq!(shape_and_object("/inventory/items").object, None);
        assert_eq!(
            shape_and_object("/inventory/items/3f2b1c9d0a").number,
            None,
            "only plain numbers have a number"
        );
        assert_eq!(
            shape_and_object("/inventory/items/123456789012345678901").number,
            None,
            "too long for a number"
        );
    }

    #[test]
    fn names_stay_distinct() {
        let a = path_shape("/inventory/items/42");
        assert_ne!(a, path_shape("/inventory/admin/42"));
        assert_ne!(
            a,
            path_shape("/inventory/items/42/history"),
            "deeper paths differ"
        );
        assert_ne!(
            path_shape("/inventory/items"),
            path_shape("/inventory/orders")
        );
        assert_ne!(path_shape("/"), path_shape("/inventory"));
        assert_eq!(
            path_shape("/inventory/items/42/history"),
            path_shape("/inventory/items/42/notes"),
            "only the leading segments shape a path"
        );
    }

    #[test]
    fn hash_separates_concatenations() {
        let mut a = Hasher::new(0);
        a.bytes(b"ab");
        a.bytes(b"c");
        let mut b = Hasher::new(0);
        b.bytes(b"a");
        b.bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
        assert_ne!(hash_str(0, "12345678"), hash_str(0, "123456789"));
        assert_ne!(hash_str(0, ""), hash_str(1, ""));
    }

    #[test]
    fn identifier_rules() {
        assert!(is_identifier("0"));
        assert!(is_identifier("deadbeef"));
        assert!(is_identifier("INV-20240101"));
        assert!(!is_identifier("v2"));
        assert!(!is_identifier("users"));
        assert!(!is_identifier("cafe"), "short hex-looking words are names");
        assert!(!is_identifier("a-long-article-slug-here"));
    }
}
