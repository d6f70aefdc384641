//! What a signal is about (a tool, a path shape, an upstream), kept inline so a [`Signal`] stays
//! `Copy` and filling one allocates nothing.
//!
//! [`Signal`]: super::Signal

use serde::{Serialize, Serializer};

use super::shape::{is_identifier, SHAPE_SEGMENTS};

const CAPACITY: usize = 62;

/// A short text, truncated (at a character boundary, with `…`) past 62 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    len: u8,
    bytes: [u8; CAPACITY],
}

impl Default for Subject {
    fn default() -> Self {
        Self {
            len: 0,
            bytes: [0; CAPACITY],
        }
    }
}

impl Subject {
    pub fn new(text: &str) -> Self {
        let mut s = Self::default();
        s.push(text);
        s
    }

    /// The shape of a path as an operator reads it: `/inventory/items/*`, deeper segments as `/…`.
    pub fn path_shape(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut s = Self::default();
        let mut segments = path.split('/').filter(|seg| !seg.is_empty());
        for segment in segments.by_ref().take(SHAPE_SEGMENTS) {
            s.push("/");
            s.push(if is_identifier(segment) { "*" } else { segment });
        }
        if segments.next().is_some() {
            s.push("/…");
        }
        if s.is_empty() {
            s.push("/");
        }
        s
    }

    /// Where a request came from: `203.0.113.7, certificate 5a3f…`.
    pub fn source(ip: std::net::IpAddr, serial: &str) -> Self {
        use std::fmt::Write as _;
        let mut s = Self::default();
        let _ = write!(s, "{ip}, certificate {serial}");
        s
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this cannot fail; an empty text is the
        // harmless answer if it ever did.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    fn push(&mut self, text: &str) {
        const ELLIPSIS: &str = "…";
        let len = usize::from(self.len);
        if len + text.len() <= CAPACITY {
            self.bytes[len..len + text.len()].copy_from_slice(text.as_bytes());
            self.len = (len + text.len()) as u8;
            return;
        }
        if self.as_str().ends_with(ELLIPSIS) {
            return;
        }
        let room = CAPACITY.saturating_sub(len + ELLIPSIS.len());
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let head = &text[..cut];
        self.bytes[len..len + head.len()].copy_from_slice(head.as_bytes());
        let end = len + head.len();
        self.bytes[end..end + ELLIPSIS.len()].copy_from_slice(ELLIPSIS.as_bytes());
        self.len = (end + ELLIPSIS.len()) as u8;
    }
}

impl std::fmt::Write for Subject {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.push(text);
        Ok(())
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_read_with_ids_starred() {
        assert_eq!(
            Subject::path_shape("/public/items/48213?x=1").as_str(),
            "/public/items/*"
        );
        assert_eq!(
            Subject::path_shape("/a/b/c/d/e").as_str(),
            "/a/b/c/…",
            "deeper segments are only hinted"
        );
        assert_eq!(Subject::path_shape("").as_str(), "/");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let s = Subject::new(&long);
        assert!(s.as_str().ends_with('…'));
        assert!(s.as_str().len() <= CAPACITY);
        assert_eq!(Subject::new("search_docs").as_str(), "search_docs");
    }

    #[test]
    fn a_source_names_address_and_certificate() {
        let ip = std::net::IpAddr::from([203, 0, 113, 7]);
        assert_eq!(
            Subject::source(ip, "5a3f").as_str(),
            "203.0.113.7, certificate 5a3f"
        );
    }
}
