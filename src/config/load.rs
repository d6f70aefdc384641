//! Reading the YAML file: parse into [`ConfigFile`] and remember where each key path stands, so
//! every later error can say `FILE:LINE:COL: key.path: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::schema::ConfigFile;

/// One problem in a config file, located by position and key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, list items as `[N]`: `roles.inventory-agent.allow[1].upstream`.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            if self.key_path.is_empty() {
                "(root)"
            } else {
                &self.key_path
            },
            self.message
        )
    }
}

/// A 1-based line and column.
type Pos = (usize, usize);

/// Where each key path of the file stands (1-based line and column).
///
/// A key path whose value is a scalar points at the value (that is what a message about it
/// is about); one whose value is a mapping or a list points at its key; a list item points at
/// the item.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    entries: std::collections::HashMap<String, (usize, usize)>,
    /// Every key and value in document order, to name the key path of a parser position.
    nodes: Vec<((usize, usize), String)>,
    /// Every mapping's first and last position and key path, to say which one lacks a key.
    mappings: Vec<(Pos, Pos, String)>,
}

impl SourceMap {
    /// The position of `key_path`, or of its nearest ancestor that has one, or 1:1.
    pub fn position(&self, key_path: &str) -> (usize, usize) {
        let mut p = key_path;
        loop {
            if let Some(pos) = self.entries.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }

    /// The key path of the key or value that starts at, or last before, `(line, col)`.
    pub fn key_path_at(&self, line: usize, col: usize) -> Option<&str> {
        let n = self.nodes.partition_point(|(pos, _)| *pos <= (line, col));
        n.checked_sub(1).map(|i| self.nodes[i].1.as_str())
    }

    /// The key path of the innermost mapping that spans `(line, col)`.
    fn mapping_at(&self, line: usize, col: usize) -> Option<&str> {
        self.mappings
            .iter()
            .filter(|(start, end, _)| *start <= (line, col) && (line, col) <= *end)
            .max_by_key(|(start, _, _)| *start)
            .map(|(_, _, path)| path.as_str())
    }

    /// Walks the YAML events of `text` and records every key path. Stops quietly at a syntax
    /// error: the deserializer reports it, and what was mapped before it still serves.
    pub fn build(text: &str) -> SourceMap {
        walk(text).0
    }

    fn record(&mut self, path: &str, pos: (usize, usize), as_entry: bool) {
        if as_entry {
            self.entries.entry(path.to_string()).or_insert(pos);
        }
        self.nodes.push((pos, path.to_string()));
    }
}

/// What the walker is inside of.
enum Frame {
    Map {
        path: String,
        start: (usize, usize),
        /// The path of the entry whose value comes next; `None` while a key is expected.
        pending: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

/// Event walker with an explicit stack, so that deep nesting cannot exhaust the thread's stack.
#[derive(Default)]
struct Walker {
    /// Open collections, each flagged when it is itself a mapping key.
    stack: Vec<(Frame, bool)>,
    /// Set once the root node has been seen; later documents are the deserializer's business.
    root_seen: bool,
}

enum Node<'a> {
    Scalar(&'a str),
    Open { is_map: bool },
    Alias,
}

impl Walker {
    fn event(
        &mut self,
        event: &serde_saphyr::granit_parser::Event<'_>,
        pos: (usize, usize),
        map: &mut SourceMap,
    ) {
        use serde_saphyr::granit_parser::Event;
        let node = match event {
            Event::Scalar(text, ..) => Node::Scalar(text),
            Event::MappingStart(..) => Node::Open { is_map: true },
            Event::SequenceStart(..) => Node::Open { is_map: false },
            Event::Alias(_) => Node::Alias,
            Event::MappingEnd | Event::SequenceEnd => {
                let popped = self.stack.pop();
                if let Some((Frame::Map { path, start, .. }, _)) = &popped {
                    map.mappings.push((*start, pos, path.clone()));
                }
                // A collection used as a key is followed by its value, not by another key.
                if let Some((_, false)) = popped {
                    self.after_value();
                }
                return;
            }
            _ => return,
        };
        self.node(node, pos, map);
    }

    fn node(&mut self, node: Node<'_>, pos: (usize, usize), map: &mut SourceMap) {
        let path = match self.stack.last_mut().map(|(frame, _)| frame) {
            None if self.root_seen => return,
            None => {
                self.root_seen = true;
                String::new()
            }
            Some(Frame::Map { path, pending, .. }) => match pending.take() {
                None => {
                    // A key: complex keys are refused by the schema, so a placeholder will do.
                    let key = match node {
                        Node::Scalar(k) => k,
                        _ => "?",
                    };
                    let full = join_key(path, key);
                    map.record(&full, pos, true);
                    *pending = Some(full);
                    if let Node::Open { is_map } = node {
                        self.open(is_map, "?".to_string(), pos, true);
                    }
                    return;
                }
                Some(full) => {
                    // Keep the key's path for collections, the value's for scalars.
                    if matches!(node, Node::Scalar(_)) {
                        map.entries.insert(full.clone(), pos);
                    }
                    map.nodes.push((pos, full.clone()));
                    full
                }
            },
            Some(Frame::Seq { path, next }) => {
                let full = format!("{path}[{next}]");
                *next += 1;
                map.record(&full, pos, true);
                full
            }
        };
        match node {
            Node::Open { is_map } => self.open(is_map, path, pos, false),
            Node::Scalar(_) | Node::Alias => self.after_value(),
        }
    }

    fn open(&mut self, is_map: bool, path: String, start: (usize, usize), is_key: bool) {
        let frame = if is_map {
            Frame::Map {
                path,
                start,
                pending: None,
            }
        } else {
            Frame::Seq { path, next: 0 }
        };
        self.stack.push((frame, is_key));
    }

    /// A value is complete: its mapping expects a key again.
    fn after_value(&mut self) {
        if let Some((Frame::Map { pending, .. }, _)) = self.stack.last_mut() {
            *pending = None;
        }
    }
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A parsed config file and what is needed to report on it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: ConfigFile,
    pub path: PathBuf,
    pub positions: SourceMap,
}

impl LoadedConfig {
    /// An error located at `key_path`.
    pub fn error_at(&self, key_path: &str, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.positions.position(key_path);
        ConfigError {
            file: self.path.clone(),
            line,
            col,
            key_path: key_path.to_string(),
            message: message.into(),
        }
    }
}

/// Reads and parses the file; syntax and shape errors come back located.
///
/// An empty file, or one of comments only, is an error: an empty policy must never load.
pub fn load(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let at_root = |message: String| {
        vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            key_path: String::new(),
            message,
        }]
    };
    let text = std::fs::read_to_string(path).map_err(|e| at_root(format!("cannot read: {e}")))?;
    let (positions, root) = walk(&text);
    match root {
        Root::Empty => {
            return Err(at_root(
                "the file is empty or holds only comments; a policy must state at least \
                 listen, tls and identity"
                    .to_string(),
            ))
        }
        Root::NotMapping => {
            return Err(at_root(
                "the top level must be a mapping of keys (listen, tls, identity, ...)".to_string(),
            ))
        }
        Root::Mapping | Root::Unparsed => {}
    }
    let file: ConfigFile = serde_saphyr::from_str(&text)
        .map_err(|e| vec![located_parse_error(&e, &positions, path)])?;
    Ok(LoadedConfig {
        file,
        path: path.to_path_buf(),
        positions,
    })
}

/// What the document's top node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// No node, or a null scalar (`~`, `null`, nothing).
    Empty,
    NotMapping,
    Mapping,
    /// The parser failed before reaching the top node.
    Unparsed,
}

fn walk(text: &str) -> (SourceMap, Root) {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut root = Root::Empty;
    let mut root_seen = false;
    let mut map = SourceMap::default();
    let mut walker = Walker::default();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            if !root_seen {
                // A syntax error came first: the deserializer will locate and word it.
                root = Root::Unparsed;
            }
            break;
        };
        if !root_seen {
            root_seen = true;
            root = match &event {
                Event::MappingStart(..) => Root::Mapping,
                Event::Scalar(v, ..) if is_null(v) => Root::Empty,
                Event::Scalar(..) | Event::SequenceStart(..) | Event::Alias(_) => Root::NotMapping,
                _ => {
                    root_seen = false;
                    Root::Empty
                }
            };
        }
        let pos = (span.start.line(), span.start.col() + 1);
        walker.event(&event, pos, &mut map);
    }
    (map, root)
}

fn is_null(scalar: &str) -> bool {
    matches!(scalar, "" | "~" | "null" | "Null" | "NULL")
}

/// Turns the deserializer's error into a located one with the key path it concerns.
fn located_parse_error(
    err: &serde_saphyr::Error,
    positions: &SourceMap,
    file: &Path,
) -> ConfigError {
    use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};
    let (line, col) = err
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .filter(|(l, c)| *l > 0 && *c > 0)
        .unwrap_or((1, 1));
    let mut key_path = positions
        .key_path_at(line, col)
        .unwrap_or_default()
        .to_string();
    let (mut line, mut col) = (line, col);
    let message = match err.without_snippet() {
        Error::SerdeUnknownField {
            field, expected, ..
        } => {
            let hint = super::suggest::did_you_mean(field, expected.iter().copied());
            if hint.is_empty() {
                format!(
                    "unknown key \"{field}\"; expected one of: {}",
                    expected.join(", ")
                )
            } else {
                format!("unknown key \"{field}\"{hint}")
            }
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown value \"{variant}\"; expected one of: {}{}",
            expected.join(", "),
            super::suggest::did_you_mean(variant, expected.iter().copied())
        ),
        Error::MultipleDocuments { .. } => {
            key_path.clear();
            "the file must hold a single YAML document (no second `---`)".to_string()
        }
        Error::SerdeMissingField { field, .. } => {
            let parent = positions.mapping_at(line, col).unwrap_or_default();
            key_path = join_key(parent, field);
            (line, col) = positions.position(parent);
            format!("missing required key \"{field}\"")
        }
        other => plain_message(&UserMessageFormatter.format_message(other)),
    };
    ConfigError {
        file: file.to_path_buf(),
        line,
        col,
        key_path,
        message: without_control_chars(&message),
    }
}

/// The parser's terms in an operator's words.
fn plain_message(message: &str) -> String {
    const WORDS: [(&str, &str); 6] = [
        ("expected sequence start", "expected a list, e.g. [a, b]"),
        ("expected mapping start", "expected a mapping of keys"),
        ("expected string scalar", "expected a string"),
        ("invalid floating point", "expected a number"),
        ("invalid u", "expected a whole number, 0 or more"),
        ("invalid i", "expected a whole number"),
    ];
    WORDS
        .iter()
        .find(|(parser, _)| message.starts_with(parser))
        .map(|(_, plain)| plain.to_string())
        .unwrap_or_else(|| message.to_string())
}

/// Control characters from the file must not reach a terminal or a log line raw.
fn without_control_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

impl LoadedConfig {
    /// Relative paths in the config are read against the working directory of the process.
    pub fn base_dir(&self) -> PathBuf {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}
