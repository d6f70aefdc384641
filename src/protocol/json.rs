//! A strict, bounded JSON reader: one pass of serde_json into a borrowed tree, refusing what two
//! parsers could read differently. serde_json alone keeps the last of duplicate keys; a Python or
//! JavaScript upstream may keep the first or the last, so a duplicate key at any depth is an
//! error here, as are invalid UTF-8, lone surrogates, trailing bytes and nesting deeper than
//! [`MAX_DEPTH`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Nesting deeper than this is refused (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 64;

/// A JSON value borrowing its strings from the input where they hold no escape.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// Every JSON number as the IEEE 754 double RFC 8785 reads it.
    Number(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in document order; keys are unique (checked while reading).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::Str(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Why a body is not one unambiguous JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the body is not valid UTF-8")]
    Utf8,
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("duplicate key `{0}`")]
    Duplicate(String),
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Reads `bytes` as exactly one JSON value.
pub fn parse(bytes: &[u8]) -> Result<Json<'_>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Utf8)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed { depth: 0 }
        .deserialize(&mut de)
        .map_err(classify_error)?;
    de.end().map_err(classify_error)?;
    Ok(value)
}

/// serde's error is a string; the markers below are ours, set by the visitor.
fn classify_error(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(DUPLICATE_MARK) {
        let key = rest.split(MARK_END).next().unwrap_or_default();
        return JsonError::Duplicate(key.to_string());
    }
    if text.starts_with(DEPTH_MARK) || text.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep;
    }
    JsonError::Syntax(text)
}

const DUPLICATE_MARK: &str = "\u{1}duplicate:";
const DEPTH_MARK: &str = "\u{1}depth";
const MARK_END: char = '\u{1}';

struct Seed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Json<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ValueVisitor { depth: self.depth })
    }
}

struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    fn deeper<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(DEPTH_MARK));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Json::Number(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let depth = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed { depth })? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let depth = self.deeper()?;
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(Seed { depth })?;
            members.push((key, value));
        }
        if let Some(dup) = duplicate(&members) {
            return Err(de::Error::custom(format_args!(
                "{DUPLICATE_MARK}{dup}{MARK_END}"
            )));
        }
        Ok(Json::Object(members))
    }
}

/// The first key found twice: pairwise for small objects, sorted for large ones.
fn duplicate<'m>(members: &'m [(Cow<'_, str>, Json<'_>)]) -> Option<&'m str> {
    if members.len() <= 12 {
        for (i, (k, _)) in members.iter().enumerate() {
            if members[..i].iter().any(|(e, _)| e == k) {
                return Some(k);
            }
        }
        return None;
    }
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values() {
        let v = parse(br#"{"a":[1,2.5,"x\n",true,null],"b":{"c":-3}}"#).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Json::Array(vec![
                Json::Number(1.0),
                Json::Number(2.5),
                Json::Str("x\n".into()),
                Json::Bool(true),
                Json::Null
            ]))
        );
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")),
            Some(&Json::Number(-3.0))
        );
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#),
            Err(JsonError::Duplicate("a".into()))
        );
        assert_eq!(
            parse(br#"{"x":[{"k":{"deep":1,"deep":2}}]}"#),
            Err(JsonError::Duplicate("deep".into()))
        );
        // The same key spelt with an escape is the same key.
        assert_eq!(
            parse(br#"{"name":"a","n\u0061me":"b"}"#),
            Err(JsonError::Duplicate("name".into()))
        );
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let text = format!("{{{},\"k7\":0}}", many.join(","));
        assert_eq!(
            parse(text.as_bytes()),
            Err(JsonError::Duplicate("k7".into()))
        );
        assert!(parse(format!("{{{}}}", many.join(",")).as_bytes()).is_ok());
    }

    #[test]
    fn ambiguous_input_is_refused() {
        assert_eq!(parse(b"{\"a\":\"\xff\"}"), Err(JsonError::Utf8));
        assert!(matches!(
            parse(br#"{"a":"\ud800"}"#),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse(br#"{"a":1} {}"#), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(br#"{"a":NaN}"#), Err(JsonError::Syntax(_))));
        assert!(matches!(
            parse(b"\xef\xbb\xbf{}"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse(br#"{"a":1e400}"#),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse(b""), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(b"{'a':1}"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn serde_json_s_private_keys_are_ordinary_keys() {
        // serde_json::Value reads this key as its raw-value marker; an upstream reads an
        // ordinary key, and so does warden.
        let v = parse(br#"{"$serde_json::private::RawValue":"2.0","id":0}"#).unwrap();
        assert_eq!(
            v.get("$serde_json::private::RawValue"),
            Some(&Json::Str("2.0".into()))
        );
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()), Err(JsonError::TooDeep));
        let very = "[".repeat(100_000);
        assert_eq!(parse(very.as_bytes()), Err(JsonError::TooDeep));
    }
}
