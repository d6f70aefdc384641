//! `text/event-stream`, event by event: complete events are cut from the bytes as they arrive
//! and handed out at once, so at most one incomplete event is ever held. An event whose data is
//! rewritten is written anew; every other event passes byte for byte.

use bytes::Bytes;

/// Why a stream cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event of the stream is larger than {0} bytes")]
    TooLarge(usize),
}

/// Cuts a byte stream into events.
#[derive(Debug)]
pub struct EventSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned, and where the line being scanned starts.
    scanned: usize,
    line_start: usize,
    max_event: usize,
}

impl EventSplitter {
    pub fn new(max_event: usize) -> Self {
        EventSplitter {
            buf: Vec::new(),
            scanned: 0,
            line_start: 0,
            max_event,
        }
    }

    /// Takes `chunk` and returns the events it completes, each with its terminating blank line.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            if b == b'\r' {
                // A CR at the end may be half of a CRLF: wait for the next byte.
                match self.buf.get(i + 1) {
                    None => break,
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                }
            }
            if i == self.line_start {
                let rest = self.buf.split_off(end);
                events.push(Bytes::from(std::mem::replace(&mut self.buf, rest)));
                i = 0;
                self.line_start = 0;
                continue;
            }
            i = end;
            self.line_start = end;
        }
        self.scanned = i;
        if self.buf.len() > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(events)
    }

    /// What is left when the stream ends: an unterminated last event, passed as it is.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.buf)))
    }
}

/// The lines of an event without their terminators.
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let next = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => end + 2,
            (Some(_), _) => end + 1,
            (None, _) => end,
        };
        rest = &rest[next..];
        Some(line)
    })
}

/// A line's field name and value (one leading space of the value dropped).
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|b| *b == b':') {
        Some(at) => {
            let value = &line[at + 1..];
            (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

/// The data of a `message` event (data lines joined with `\n`), if it has any.
pub fn message_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut seen = false;
    for line in lines(event) {
        match field(line) {
            (b"event", v) if !v.is_empty() && v != b"message" => return None,
            (b"data", v) => {
                if seen {
                    data.push(b'\n');
                }
                data.extend_from_slice(v);
                seen = true;
            }
            _ => {}
        }
    }
    seen.then_some(data)
}

/// `event` with its data replaced by `data`: other fields keep their order and text, the new
/// data lines stand where the first data line stood.
pub fn replace_data(event: &[u8], data: &str) -> Bytes {
    let mut out = Vec::with_capacity(event.len());
    let mut written = false;
    for line in lines(event) {
        if line.is_empty() {
            continue;
        }
        if field(line).0 == b"data" {
            if !written {
                for l in data.split('\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(l.as_bytes());
                    out.push(b'\n');
                }
                written = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut s = EventSplitter::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c).unwrap());
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn events_are_cut_at_blank_lines_of_any_ending() {
        let stream = b"id: 1\ndata: a\n\nevent: message\r\ndata: b\r\n\r\ndata: c\r\rdata: d\n";
        let whole = split_all(&[stream]);
        assert_eq!(
            whole,
            vec![
                Bytes::from_static(b"id: 1\ndata: a\n\n"),
                Bytes::from_static(b"event: message\r\ndata: b\r\n\r\n"),
                Bytes::from_static(b"data: c\r\r"),
                Bytes::from_static(b"data: d\n"),
            ]
        );
        // Byte by byte, the same events: a CRLF split between chunks is one line ending.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split_all(&bytes), whole);
    }

    #[test]
    fn nothing_is_held_past_an_event() {
        let mut s = EventSplitter::new(1 << 20);
        let out = s.push(b"data: one\n\ndata: tw").unwrap();
        assert_eq!(out, vec![Bytes::from_static(b"data: one\n\n")]);
        let out = s.push(b"o\n\n").unwrap();
        assert_eq!(out, vec![Bytes::from_static(b"data: two\n\n")]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn events_are_bounded() {
        let mut s = EventSplitter::new(16);
        assert!(s.push(b"data: 0123456789abcdef").is_err());
    }

    #[test]
    fn data_lines_are_joined_and_replaced() {
        let ev = b"id: 7\nevent: message\ndata: {\"a\":\ndata: 1}\nretry: 5\n\n";
        assert_eq!(message_data(ev).unwrap(), b"{\"a\":\n1}".to_vec());
        assert_eq!(message_data(b"event: ping\ndata: x\n\n"), None);
        assert_eq!(message_data(b": comment\n\n"), None);
        assert_eq!(
            replace_data(ev, "{\"b\":2}"),
            Bytes::from_static(b"id: 7\nevent: message\ndata: {\"b\":2}\nretry: 5\n\n")
        );
    }
}
