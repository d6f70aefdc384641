//! The hash chain: sealing a serialised record into a line, and checking a line's seal.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A hex SHA-256 digest, lowercase, as written in `prev_hash` and `hash`.
pub type HexHash = [u8; 64];

/// `prev_hash` of the first record of a chain that continues nothing.
pub const GENESIS: HexHash = [b'0'; 64];

const HASH_KEY: &[u8] = b",\"hash\":\"";
const PREV_KEY: &[u8] = b",\"prev_hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`: the tail `seal` appends and `check_line` strips.
pub const HASH_SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// Turns `{...}` (a serialised record) into the sealed line `{...,"prev_hash":P,"hash":H}\n`
/// in place, and returns H.
///
/// H is the SHA-256 of the line as it stands once `prev_hash` is added, before `hash` is:
/// `{...,"prev_hash":P}`. Hashing the bytes as written, not a re-serialisation, keeps the
/// definition independent of any JSON library's number or escape formatting.
pub fn seal(line: &mut Vec<u8>, prev: &HexHash) -> HexHash {
    debug_assert_eq!(line.last(), Some(&b'}'));
    line.pop();
    line.extend_from_slice(PREV_KEY);
    line.extend_from_slice(prev);
    line.extend_from_slice(b"\"}");
    let hash = hex(&Sha256::digest(line.as_slice()).into());
    line.pop();
    line.extend_from_slice(HASH_KEY);
    line.extend_from_slice(&hash);
    line.extend_from_slice(b"\"}\n");
    hash
}

/// Why a line does not hold its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BrokenReason {
    #[error("truncated line (no final newline)")]
    Truncated,
    #[error("not a JSON record: {0}")]
    Malformed(String),
    #[error("`hash` is not the last member of the record")]
    HashNotLast,
    #[error("hash mismatch: recorded {recorded}, computed {computed}")]
    HashMismatch { recorded: String, computed: String },
    #[error(
        "chain broken: prev_hash {found} does not match the previous record's hash {expected}"
    )]
    ChainBroken { expected: String, found: String },
    #[error("read error: {0}")]
    Io(String),
}

#[derive(Deserialize)]
struct Links {
    prev_hash: String,
    hash: String,
}

/// The links of a line whose seal holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub prev_hash: HexHash,
    pub hash: HexHash,
}

/// Checks one line (without its newline): valid JSON, `hash` last, and `hash` recomputes.
/// Whether `prev_hash` matches the previous line is the caller's check.
pub fn check_line(line: &[u8]) -> Result<Sealed, BrokenReason> {
    // Parsing first rejects broken JSON and duplicate `hash` or `prev_hash` members, which
    // could otherwise make a reader see other links than the ones hashed.
    let links: Links =
        serde_json::from_slice(line).map_err(|e| BrokenReason::Malformed(e.to_string()))?;
    let prev_hash = parse_hex(&links.prev_hash).ok_or_else(|| {
        BrokenReason::Malformed("prev_hash is not 64 lowercase hex digits".into())
    })?;
    let recorded = parse_hex(&links.hash)
        .ok_or_else(|| BrokenReason::Malformed("hash is not 64 lowercase hex digits".into()))?;
    let body = hashed_part(line, &recorded).ok_or(BrokenReason::HashNotLast)?;
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    let computed = hex(&hasher.finalize().into());
    if computed != recorded {
        return Err(BrokenReason::HashMismatch {
            recorded: links.hash,
            computed: as_str(&computed).to_owned(),
        });
    }
    Ok(Sealed {
        prev_hash,
        hash: recorded,
    })
}

/// The line without its `,"hash":"H"}` tail, if the line ends with exactly that tail.
fn hashed_part<'a>(line: &'a [u8], hash: &HexHash) -> Option<&'a [u8]> {
    let split = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, tail) = line.split_at(split);
    let ok = tail.starts_with(HASH_KEY)
        && &tail[HASH_KEY.len()..HASH_KEY.len() + 64] == hash
        && tail.ends_with(b"\"}");
    ok.then_some(body)
}

pub fn hex(digest: &[u8; 32]) -> HexHash {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

pub fn parse_hex(text: &str) -> Option<HexHash> {
    let bytes: HexHash = text.as_bytes().try_into().ok()?;
    bytes
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .then_some(bytes)
}

/// A hex hash as text; it is ASCII by construction.
pub fn as_str(hash: &HexHash) -> &str {
    std::str::from_utf8(hash).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: &str, prev: &HexHash) -> (Vec<u8>, HexHash) {
        let mut line = body.as_bytes().to_vec();
        let h = seal(&mut line, prev);
        (line, h)
    }

    #[test]
    fn seal_hashes_the_record_with_prev_hash_and_without_hash() {
        let (line, h) = sealed(r#"{"a":1}"#, &GENESIS);
        let zeros = "0".repeat(64);
        let expected_body = format!(r#"{{"a":1,"prev_hash":"{zeros}"}}"#);
        let expected = hex(&Sha256::digest(expected_body.as_bytes()).into());
        assert_eq!(h, expected);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"a":1,"prev_hash":"{zeros}","hash":"{}"}}"#, as_str(&h)) + "\n"
        );
    }

    #[test]
    fn check_line_accepts_a_sealed_line_and_rejects_an_edit() {
        let (line, h) = sealed(r#"{"a":1}"#, &GENESIS);
        let body = &line[..line.len() - 1];
        assert_eq!(
            check_line(body),
            Ok(Sealed {
                prev_hash: GENESIS,
                hash: h
            })
        );
        let edited = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("\"a\":1", "\"a\":2");
        assert!(matches!(
            check_line(edited.as_bytes()),
            Err(BrokenReason::HashMismatch { .. })
        ));
    }

    #[test]
    fn check_line_rejects_a_duplicate_hash_member_and_a_moved_hash() {
        let (line, h) = sealed(r#"{"a":1}"#, &GENESIS);
        let body = String::from_utf8(line[..line.len() - 1].to_vec()).unwrap();
        let dup = body.replacen('{', &format!(r#"{{"hash":"{}","#, as_str(&h)), 1);
        assert!(matches!(
            check_line(dup.as_bytes()),
            Err(BrokenReason::Malformed(_))
        ));
        let moved = format!(
            r#"{{"hash":"{}","a":1,"prev_hash":"{}"}}"#,
            as_str(&h),
            as_str(&GENESIS)
        );
        assert_eq!(check_line(moved.as_bytes()), Err(BrokenReason::HashNotLast));
    }

    #[test]
    fn parse_hex_wants_64_lowercase_digits() {
        assert!(parse_hex(&"a".repeat(64)).is_some());
        assert!(parse_hex(&"A".repeat(64)).is_none());
        assert!(parse_hex(&"a".repeat(63)).is_none());
    }
}
