//! The config file's YAML as a tree of byte ranges, so `suggest` can rewrite the `roles` block and
//! the agents' `roles` values and leave every other byte of the file as it was.

use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

/// One node and where its text stands: `start..end` is from its first to its last character
/// (a block collection ends with its last child, not at the next key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub flow: bool,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The scalar's text; `empty` for a missing value (`key:` with nothing after it).
    Scalar {
        text: String,
        empty: bool,
    },
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Alias,
}

impl Node {
    /// The value of `key` in a mapping, with its key node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.text() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(i) => i,
            _ => &[],
        }
    }

    pub fn is_empty_scalar(&self) -> bool {
        matches!(self.kind, Kind::Scalar { empty: true, .. })
    }
}

struct Open {
    map: bool,
    flow: bool,
    start: usize,
    items: Vec<Node>,
}

/// Parses the first document of `text`; `None` on a syntax error or a source without byte
/// offsets (the loader has refused such a file before `suggest` gets here).
pub fn parse(text: &str) -> Option<Node> {
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let start = span.start.byte_offset()?;
        let end = span.end.byte_offset()?;
        let node = match event {
            Event::MappingStart(style, ..) | Event::SequenceStart(style, ..) => {
                stack.push(Open {
                    map: matches!(event, Event::MappingStart(..)),
                    flow: style == StructureStyle::Flow,
                    start,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => close(stack.pop()?, end),
            Event::Scalar(text, style, ..) => {
                // A missing value is reported as a zero-width plain `~`.
                let empty =
                    start == end && style == serde_saphyr::granit_parser::ScalarStyle::Plain;
                Node {
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        empty,
                    },
                    flow: false,
                    start,
                    end: if empty { start } else { end },
                }
            }
            Event::Alias(_) => Node {
                kind: Kind::Alias,
                flow: false,
                start,
                end,
            },
            Event::DocumentEnd if root.is_some() => break,
            _ => continue,
        };
        match stack.last_mut() {
            Some(open) => open.items.push(node),
            None => root = Some(node),
        }
    }
    root
}

/// The node a collection makes once its end is read (`end`: where its end token ends).
fn close(open: Open, end: usize) -> Node {
    let kind = if open.map {
        let mut pairs = Vec::with_capacity(open.items.len() / 2);
        let mut it = open.items.into_iter();
        while let (Some(k), Some(mut v)) = (it.next(), it.next()) {
            // A missing value stands where the key ends, not at the next token.
            if v.is_empty_scalar() {
                (v.start, v.end) = (k.end, k.end);
            }
            pairs.push((k, v));
        }
        Kind::Map(pairs)
    } else {
        Kind::Seq(open.items)
    };
    let last = match &kind {
        Kind::Map(pairs) => pairs.iter().map(|(k, v)| k.end.max(v.end)).max(),
        Kind::Seq(items) => items.iter().map(|n| n.end).max(),
        _ => None,
    };
    Node {
        kind,
        flow: open.flow,
        start: open.start,
        // A block collection ends with its last child, not at the token after it.
        end: if open.flow {
            end
        } else {
            last.unwrap_or(open.start)
        },
    }
}

/// Where the line holding byte `at` starts.
pub fn line_start(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

/// Where the line after the one holding byte `at` starts (or the end of the text).
pub fn next_line(text: &str, at: usize) -> usize {
    text[at.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| at + i + 1)
}

/// The column (in bytes) of byte `at`.
pub fn column(text: &str, at: usize) -> usize {
    at - line_start(text, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_exactly_the_node_text() {
        let text = "a: 1\nroles:\n  r:\n    upstreams: [x, \"y\"]\n# about b\nb:\n  - p\n  - q  # c\nc: {k: v}\nd:\n";
        let root = parse(text).unwrap();
        let (_, roles) = root.entry("roles").unwrap();
        assert_eq!(
            &text[roles.start..roles.end],
            "r:\n    upstreams: [x, \"y\"]"
        );
        let (_, b) = root.entry("b").unwrap();
        assert_eq!(&text[b.start..b.end], "- p\n  - q");
        let (_, c) = root.entry("c").unwrap();
        assert!(c.flow);
        assert_eq!(&text[c.start..c.end], "{k: v}");
        let (dk, d) = root.entry("d").unwrap();
        assert!(d.is_empty_scalar());
        assert_eq!(&text[dk.start..dk.end], "d");
        assert_eq!(column(text, b.start), 2);
        assert_eq!(
            &text[line_start(text, b.start)..next_line(text, b.start)],
            "  - p\n"
        );
    }
}
