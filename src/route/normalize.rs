//! Path normalisation: the one reading of a request target that is both authorised and forwarded.
//!
//! Proxies and upstreams that read one path two ways are the oldest authorisation bypass there is
//! (`%2e%2e`, `%2f`, `..;/`, `%252e`, overlong UTF-8, backslashes). warden therefore produces a
//! single normal form, judges that form and forwards exactly that form; any shape a common server
//! could read as a different path is refused rather than guessed at.
//!
//! The normal form of a path:
//! - starts with `/`, has no empty segments (repeated slashes are merged) and no dot segments;
//! - keeps a trailing slash when the target had one (or ended in a dot segment);
//! - holds percent-escapes of unreserved characters (ALPHA DIGIT `-._~`) decoded, every other escape
//!   kept with upper-case hex, and raw characters that URIs never allow unencoded
//!   (`"<>[]^`{|}`) percent-encoded;
//! - never changes the case of anything else.

use http::uri::PathAndQuery;
use thiserror::Error;

#[cfg(test)]
mod tests;

/// Longest request target accepted, in bytes (path and query together), as received and as
/// normalised.
pub const MAX_TARGET_LEN: usize = 8 * 1024;
/// Most path segments accepted, counting every non-empty segment as received (dot segments too).
pub const MAX_SEGMENTS: usize = 128;

/// A request target in the one form warden judges and forwards.
#[derive(Debug, Clone)]
pub struct NormalizedTarget {
    /// `path?query`: the path absolute, dot segments removed, unreserved escapes decoded, no empty
    /// segments; the query as received. When the request's own target was in this form already,
    /// this shares its bytes.
    normal: PathAndQuery,
}

impl NormalizedTarget {
    /// The normalised path.
    pub fn path(&self) -> &str {
        self.normal.path()
    }

    /// The query as received (without `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.normal.query()
    }

    /// `path?query`, as sent upstream.
    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.normal
    }
}

/// Targets are equal when they read the same: a request's target of nothing but a fragment is
/// held empty and reads as `/`.
impl PartialEq for NormalizedTarget {
    fn eq(&self, other: &Self) -> bool {
        self.normal.as_str() == other.normal.as_str()
    }
}

impl Eq for NormalizedTarget {}

/// Why a request target was refused. Every variant maps to `400 bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotAbsolute,
    #[error("the request target is longer than {MAX_TARGET_LEN} bytes")]
    TooLong,
    #[error("the path has more than {MAX_SEGMENTS} segments")]
    TooManySegments,
    #[error("the request target carries a fragment (`#`)")]
    Fragment,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path contains an encoded backslash (%5C)")]
    EncodedBackslash,
    #[error("the path contains an encoded NUL (%00)")]
    EncodedNul,
    #[error("the request target contains a control character, raw or encoded")]
    ControlCharacter,
    #[error("the request target contains a raw space")]
    Space,
    #[error("the request target contains a non-ASCII byte")]
    NonAscii,
    #[error("the request target contains an invalid or truncated percent-escape")]
    InvalidEscape,
    #[error("the path is percent-encoded twice (%25 followed by hex digits)")]
    DoubleEncoding,
    #[error("the decoded path is not valid UTF-8")]
    InvalidUtf8,
    #[error("the path contains a `;` path parameter, raw or encoded")]
    PathParameter,
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    #[error("a path segment ends in a dot or a space")]
    TrailingDotOrSpace,
    #[error("the query holds a character a request target cannot carry")]
    InvalidQuery,
}

/// Normalises an origin-form target (`/path?query`).
///
/// The query is kept byte for byte; it is only checked for a raw `#`, invalid escapes, control
/// characters, spaces and non-ASCII bytes, which no well-formed client sends and which upstreams
/// read in incompatible ways.
pub fn normalize_target(raw: &str) -> Result<NormalizedTarget, PathError> {
    normalize(raw, None)
}

/// [`normalize_target`] of a request's own target; when that is in the normal form already (as
/// most are), the result shares its bytes instead of copying them.
pub fn normalize_request_target(target: &PathAndQuery) -> Result<NormalizedTarget, PathError> {
    normalize(target.as_str(), Some(target))
}

fn normalize(raw: &str, shared: Option<&PathAndQuery>) -> Result<NormalizedTarget, PathError> {
    if raw.len() > MAX_TARGET_LEN {
        return Err(PathError::TooLong);
    }
    // A byte scan: the general `str` searcher costs more than it saves on a short target.
    let (path, query) = match raw.bytes().position(|b| b == b'?') {
        Some(at) => (raw.get(..at).unwrap_or(raw), raw.get(at + 1..)),
        None => (raw, None),
    };
    let rebuilt = if is_normal(path.as_bytes()) {
        None
    } else {
        Some(build_normal(path)?)
    };
    // Encoding raw `"<>...` can triple a path: the bound holds for what is forwarded too, so the
    // normal form of an accepted target is itself accepted.
    let path_len = rebuilt.as_ref().map_or(path.len(), String::len);
    if path_len + query.map_or(0, |q| q.len() + 1) > MAX_TARGET_LEN {
        return Err(PathError::TooLong);
    }
    if let Some(q) = query {
        check_query(q)?;
    }
    let normal = match (rebuilt, shared) {
        (None, Some(target)) => target.clone(),
        (rebuilt, _) => {
            let mut text = rebuilt.unwrap_or_else(|| path.to_owned());
            if let Some(q) = query {
                text.push('?');
                text.push_str(q);
            }
            PathAndQuery::try_from(text).map_err(|_| PathError::InvalidQuery)?
        }
    };
    Ok(NormalizedTarget { normal })
}

/// The segments of a normalised path, in order. Empty segments are skipped, so a trailing slash
/// yields no segment of its own (`/a/` and `/a` both yield `["a"]`, `/` yields nothing); callers that
/// care about the trailing slash look at `path.ends_with('/')`.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Whether a path is already in the normal form, so that it is its own normal form: plain
/// characters only (nothing refused, encoded or escaped), no empty segment but a trailing one, no
/// segment ending in a dot (which covers `.` and `..`), at most [`MAX_SEGMENTS`] segments. Most
/// requests' paths are; they are copied once instead of being rebuilt byte by byte. Anything else
/// takes [`build_normal`], which gives the same answer for these (a test compares the two).
fn is_normal(path: &[u8]) -> bool {
    let Some((b'/', rest)) = path.split_first() else {
        return false;
    };
    let mut segments = 0;
    // The byte before the current one; a segment starts after a `/`.
    let mut prev = b'/';
    for &c in rest {
        if c == b'/' {
            // An empty segment, or one ending in a dot (which covers `.` and `..`).
            if prev == b'/' || prev == b'.' {
                return false;
            }
            segments += 1;
        } else if !PLAIN[usize::from(c)] {
            return false;
        }
        prev = c;
    }
    if prev == b'.' {
        return false;
    }
    if prev != b'/' {
        segments += 1;
    }
    segments <= MAX_SEGMENTS
}

/// The bytes a normal path holds as themselves: printable ASCII that is neither refused
/// (`\ ; #` and space), nor encoded (`"<>[]^`{|}`), nor an escape (`%`), nor the separator.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0x21;
    while c <= 0x7E {
        table[c] = true;
        c += 1;
    }
    let excluded = b"\\;#%\"<>[]^`{|}/";
    let mut i = 0;
    while i < excluded.len() {
        table[excluded[i] as usize] = false;
        i += 1;
    }
    table
};

/// The normal form of any path, built byte by byte, or the reason there is none.
fn build_normal(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut b = Builder::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'/' => {
                b.end_segment()?;
                i += 1;
            }
            b'%' => {
                let v = decode_escape(bytes, i)?;
                b.push_decoded(v)?;
                i += 3;
            }
            _ => {
                b.push_raw(c)?;
                i += 1;
            }
        }
    }
    b.finish()
}

/// The byte a `%XY` escape at `at` stands for.
fn decode_escape(bytes: &[u8], at: usize) -> Result<u8, PathError> {
    match (bytes.get(at + 1), bytes.get(at + 2)) {
        (Some(&h), Some(&l)) => match (hex_value(h), hex_value(l)) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(PathError::InvalidEscape),
        },
        _ => Err(PathError::InvalidEscape),
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Printable ASCII that RFC 3986 never allows raw in a path; encoding them gives one spelling.
fn needs_encoding(c: u8) -> bool {
    matches!(
        c,
        b'"' | b'<' | b'>' | b'[' | b']' | b'^' | b'`' | b'{' | b'|' | b'}'
    )
}

/// Rejections shared by raw and decoded bytes.
fn check_byte(c: u8) -> Result<(), PathError> {
    match c {
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::PathParameter),
        b'#' => Err(PathError::Fragment),
        b' ' => Err(PathError::Space),
        0x00..=0x1F | 0x7F => Err(PathError::ControlCharacter),
        0x80..=0xFF => Err(PathError::NonAscii),
        _ => Ok(()),
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Builds the normal form segment by segment into one buffer.
///
/// `out` always holds `/seg/seg...` without a trailing slash; the segment being read sits after
/// `seg_start`. A finished segment is either kept, dropped (empty or `.`) or pops its parent (`..`).
struct Builder {
    out: String,
    seg_start: usize,
    /// The last decoded byte of the current segment: a segment may not end in `.` or space.
    last: Option<u8>,
    trailing_slash: bool,
    segments: usize,
    utf8: Utf8Validator,
}

impl Builder {
    fn with_capacity(len: usize) -> Self {
        let mut out = String::with_capacity(len + 1);
        out.push('/');
        Builder {
            out,
            seg_start: 1,
            last: None,
            trailing_slash: false,
            segments: 0,
            utf8: Utf8Validator::default(),
        }
    }

    fn push_raw(&mut self, c: u8) -> Result<(), PathError> {
        check_byte(c)?;
        self.utf8.feed(c)?;
        self.last = Some(c);
        if needs_encoding(c) {
            self.push_escape(c);
        } else {
            self.out.push(char::from(c));
        }
        Ok(())
    }

    /// A `%25` stays `%25`; whether it starts a double encoding is judged on the output, see
    /// `check_double_encoding`.
    fn push_decoded(&mut self, v: u8) -> Result<(), PathError> {
        match v {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::EncodedBackslash),
            0x00 => return Err(PathError::EncodedNul),
            0x01..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
            b';' => return Err(PathError::PathParameter),
            _ => {}
        }
        self.utf8.feed(v)?;
        self.last = Some(v);
        if is_unreserved(v) {
            self.out.push(char::from(v));
        } else {
            self.push_escape(v);
        }
        Ok(())
    }

    fn push_escape(&mut self, v: u8) {
        self.out.push('%');
        self.out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
        self.out.push(char::from(HEX_UPPER[usize::from(v & 0x0F)]));
    }

    /// Called at every `/` and at the end of the path.
    fn end_segment(&mut self) -> Result<(), PathError> {
        self.utf8.feed(b'/')?;
        let seg = &self.out[self.seg_start..];
        if seg.is_empty() {
            // A merged slash. Right after the root it changes nothing: `/` is `/` already.
            if self.seg_start > 1 {
                self.trailing_slash = true;
            }
            return Ok(());
        }
        self.segments += 1;
        if self.segments > MAX_SEGMENTS {
            return Err(PathError::TooManySegments);
        }
        match seg {
            "." => self.pop_to(self.seg_start - 1),
            ".." => {
                let parent_end = self.seg_start - 1;
                if parent_end == 0 {
                    return Err(PathError::AboveRoot);
                }
                let parent_start = self.out[..parent_end].rfind('/').unwrap_or(0);
                self.pop_to(parent_start);
            }
            _ => {
                if matches!(self.last, Some(b'.' | b' ')) {
                    return Err(PathError::TrailingDotOrSpace);
                }
                self.trailing_slash = false;
            }
        }
        self.out.push('/');
        self.seg_start = self.out.len();
        self.last = None;
        Ok(())
    }

    /// Drops everything from `at` (the `/` before a segment) and marks a trailing slash, as
    /// RFC 3986 section 5.2.4 does for a path ending in a dot segment.
    fn pop_to(&mut self, at: usize) {
        self.out.truncate(at);
        self.trailing_slash = true;
    }

    fn finish(mut self) -> Result<String, PathError> {
        self.end_segment()?;
        // `end_segment` left a `/` after the last kept segment; it stays only for a trailing slash.
        if !self.trailing_slash && self.out.len() > 1 {
            self.out.pop();
        }
        if self.out.is_empty() {
            self.out.push('/');
        }
        self.check_double_encoding()?;
        Ok(self.out)
    }

    /// `%25` followed by two hex digits reads as another byte to a server that decodes twice
    /// (IIS). Mixed spellings such as `%25%32%65` only become `%252e` after decoding, so the check
    /// runs on the output, which is also exactly what a second normalisation would see.
    fn check_double_encoding(&self) -> Result<(), PathError> {
        let out = self.out.as_bytes();
        let found = out.windows(5).any(|w| {
            w[0] == b'%'
                && w[1] == b'2'
                && w[2] == b'5'
                && hex_value(w[3]).is_some()
                && hex_value(w[4]).is_some()
        });
        if found {
            Err(PathError::DoubleEncoding)
        } else {
            Ok(())
        }
    }
}

/// An incremental UTF-8 check over the decoded path bytes (RFC 3629 table), so overlong forms
/// such as `%C0%AE` and surrogates are refused without decoding into a second buffer.
#[derive(Default)]
struct Utf8Validator {
    /// Continuation bytes still expected.
    need: u8,
    /// The range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
}

impl Utf8Validator {
    fn feed(&mut self, c: u8) -> Result<(), PathError> {
        if self.need > 0 {
            if c < self.lo || c > self.hi {
                return Err(PathError::InvalidUtf8);
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            return Ok(());
        }
        let (need, lo, hi) = match c {
            0x00..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(PathError::InvalidUtf8),
        };
        self.need = need;
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }
}

fn check_query(q: &str) -> Result<(), PathError> {
    let bytes = q.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                decode_escape(bytes, i)?;
                i += 3;
            }
            // `\` and `;` mean nothing special in a query.
            b'\\' | b';' => i += 1,
            c => {
                check_byte(c)?;
                i += 1;
            }
        }
    }
    Ok(())
}
