//! Filtering `*/list` results: the agent sees only the tools, prompts and resources its rules let
//! it use. The response is rewritten by removing entries from the result's array and keeping
//! every other byte as the upstream sent it. Anything that cannot be read for sure fails closed
//! (an error, which the caller turns into 502), never open.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::message::ListKind;

/// Why a list response cannot be filtered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the response is not a JSON-RPC object: {0}")]
    Envelope(String),
    #[error("the result cannot be read: {0}")]
    Result(String),
    #[error("`{0}` is not an array of objects")]
    Entries(&'static str),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<ResultLists<'a>>,
}

/// The lists a result holds, each entry as its raw text: the document is read once here, and
/// each entry once more for its key.
#[derive(Default)]
struct ResultLists<'a> {
    lists: Vec<(ListKind, Vec<&'a RawValue>)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ResultLists<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ResultVisitor(std::marker::PhantomData))
    }
}

struct ResultVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ResultVisitor<'a> {
    type Value = ResultLists<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC result")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = ResultLists::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let kind = ListKind::ALL.into_iter().find(|k| k.result_key() == key);
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            seen.push(key);
            match kind {
                Some(k) => out.lists.push((k, map.next_value()?)),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }

    // Anything but an object holds no list.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(ResultLists::default())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ResultLists::default())
    }
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "uriTemplate")]
    uri_template: Option<Cow<'a, str>>,
}

/// One entry of a list, offered to the caller's judgement.
pub struct ListEntry<'a> {
    pub kind: ListKind,
    /// Its name, URI or URI template.
    pub key: &'a str,
    /// The entry's JSON text as the upstream sent it.
    pub raw: &'a str,
}

/// Rewrites the JSON-RPC response `doc`, keeping the entries `keep` accepts. `kind` is the list
/// that was asked for; `None` (a stream that may replay any answer) filters whichever list the
/// result holds. `Ok(None)`: nothing to filter, the bytes pass unchanged.
pub fn filter_list(
    doc: &str,
    kind: Option<(ListKind, &str)>,
    keep: &mut dyn FnMut(&ListEntry<'_>) -> bool,
) -> Result<Option<String>, ListError> {
    if !doc.trim_start().starts_with('{') {
        return Err(ListError::Envelope("not an object".into()));
    }
    let env: Envelope<'_> =
        serde_json::from_str(doc).map_err(|e| ListError::Envelope(e.to_string()))?;
    let Some(result) = env.result else {
        return Ok(None);
    };
    // Only the answer to the list request: other answers on its stream pass as they are.
    if let Some((_, id)) = kind {
        let same = env
            .id
            .and_then(|raw| super::json::parse(raw.get().as_bytes()).ok())
            .is_some_and(|v| super::message::json_text(&v) == id);
        if !same {
            return Ok(None);
        }
    }
    let mut found: Vec<(ListKind, Vec<&RawValue>)> = result
        .lists
        .into_iter()
        .filter(|(k, _)| kind.is_none_or(|(want, _)| want == *k))
        .collect();
    if found.is_empty() {
        return Ok(None);
    }
    // Rewritten in document order into one new string; an empty list has nothing to remove.
    found.retain(|(_, entries)| !entries.is_empty());
    found.sort_by_key(|(_, entries)| offset(doc, entries[0].get()));
    let mut out = String::with_capacity(doc.len());
    let mut copied = 0;
    for (k, entries) in found {
        let (start, end) = array_span(doc, &entries).ok_or(ListError::Entries(k.result_key()))?;
        out.push_str(&doc[copied..start]);
        out.push_str(&filter_entries(k, &entries, keep)?);
        copied = end;
    }
    out.push_str(&doc[copied..]);
    Ok(Some(out))
}

/// The span of the array holding `entries` (in `doc`): from its `[` to past its `]`.
fn array_span(doc: &str, entries: &[&RawValue]) -> Option<(usize, usize)> {
    let first = offset(doc, entries.first()?.get());
    let last = entries.last()?.get();
    let after = offset(doc, last) + last.len();
    let start = doc[..first].trim_end().strip_suffix('[')?.len();
    let rest = &doc[after..];
    let close = rest.len() - rest.trim_start().len();
    (rest[close..].starts_with(']')).then_some((start, after + close + 1))
}

/// The kept entries of one array, as a JSON array of their original texts.
fn filter_entries(
    kind: ListKind,
    entries: &[&RawValue],
    keep: &mut dyn FnMut(&ListEntry<'_>) -> bool,
) -> Result<String, ListError> {
    let mut out = String::with_capacity(entries.iter().map(|e| e.get().len() + 1).sum());
    out.push('[');
    for &raw in entries {
        let entry: Entry<'_> =
            serde_json::from_str(raw.get()).map_err(|_| ListError::Entries(kind.result_key()))?;
        let key = match kind {
            ListKind::Tools | ListKind::Prompts => entry.name,
            ListKind::Resources => entry.uri,
            ListKind::ResourceTemplates => entry.uri_template,
        };
        // An entry without its key cannot be judged, so it is not shown.
        let Some(key) = key else { continue };
        if keep(&ListEntry {
            kind,
            key: &key,
            raw: raw.get(),
        }) {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(raw.get());
        }
    }
    out.push(']');
    Ok(out)
}

/// Where `part` (a slice of `doc`, as serde_json's borrowed raw values are) starts in `doc`.
fn offset(doc: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(doc.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_search(e: &ListEntry<'_>) -> bool {
        e.key.starts_with("search")
    }

    #[test]
    fn keeps_only_allowed_entries_and_every_other_byte() {
        let doc = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_customers","inputSchema":{"type":"object"}}, {"name":"delete_customer","inputSchema":{}},{"name":"search_orders","description":"x"}],"nextCursor":"c1"}}"#;
        let out = filter_list(doc, Some((ListKind::Tools, "3")), &mut keep_search)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_customers","inputSchema":{"type":"object"}},{"name":"search_orders","description":"x"}],"nextCursor":"c1"}}"#
        );
        let none = filter_list(doc, Some((ListKind::Tools, "3")), &mut |_| false)
            .unwrap()
            .unwrap();
        assert!(none.contains(r#""tools":[],"nextCursor""#));
        // The answer to another request passes.
        assert_eq!(
            filter_list(doc, Some((ListKind::Tools, "4")), &mut |_| false),
            Ok(None)
        );
    }

    #[test]
    fn other_answers_pass_unchanged() {
        let mut keep = |_: &ListEntry<'_>| false;
        for doc in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        ] {
            assert_eq!(filter_list(doc, None, &mut keep), Ok(None), "{doc}");
        }
        // Asked for prompts: a `tools` member is not what was asked, and stays.
        let doc = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#;
        assert_eq!(
            filter_list(doc, Some((ListKind::Prompts, "1")), &mut keep),
            Ok(None)
        );
        // A replayed answer on a stream is filtered by its shape.
        assert!(filter_list(doc, None, &mut keep).unwrap().is_some());
    }

    #[test]
    fn unreadable_lists_fail_closed() {
        let mut keep = |_: &ListEntry<'_>| true;
        for doc in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"tools":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","name":"b"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[1]}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}"#,
        ] {
            assert!(filter_list(doc, None, &mut keep).is_err(), "{doc}");
        }
        // An entry without a name is not shown.
        let doc = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"title":"x"},{"name":"a"}]}}"#;
        let out = filter_list(doc, None, &mut keep).unwrap().unwrap();
        assert!(out.contains(r#""tools":[{"name":"a"}]"#));
    }

    #[test]
    fn resources_and_templates() {
        let doc = r#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"crm://customers/{id}"},{"uriTemplate":"file:///{p}"}]}}"#;
        let mut keep = |e: &ListEntry<'_>| e.key.starts_with("crm://");
        let out = filter_list(doc, Some((ListKind::ResourceTemplates, "1")), &mut keep)
            .unwrap()
            .unwrap();
        assert!(out.contains("crm://customers/{id}") && !out.contains("file:"));
    }
}
