//! JSON as a SCIM body must be: one value per member name.
//!
//! RFC 8259 §4 leaves duplicate member names to the receiver, and receivers disagree: serde
//! keeps the last value, many application stacks keep the first. A body such as
//! `{"active": false, "active": true}` would then mean one thing to a proxy that reads it and
//! another to the application that applies it. SCIM names are case-insensitive (RFC 7643
//! §2.1), so `active` and `Active` name the same member too. [`parse`] refuses both, saying
//! where; everything else parses as `serde_json` parses it (same depth limit, same numbers,
//! member order kept).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::HashSet;
use std::fmt;

/// Why a body is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    /// Not JSON at all (or trailing bytes after the value).
    #[error("{0}")]
    Syntax(String),
    /// An object names a member twice (compared case-insensitively).
    #[error("{}", duplicate_detail(.pointer, .name, .first))]
    Duplicate {
        /// RFC 6901 pointer to the object (`""` for the top level).
        pointer: String,
        /// The name as it appears the second time.
        name: String,
        /// The name as it appeared first.
        first: String,
    },
}

fn duplicate_detail(pointer: &str, name: &str, first: &str) -> String {
    let at = if pointer.is_empty() {
        "the top-level object".to_owned()
    } else {
        format!("the object at {pointer}")
    };
    if name == first {
        format!("{at} has the member \"{name}\" twice; each member must appear once")
    } else {
        format!(
            "{at} has the member \"{name}\" and \"{first}\", the same SCIM name (names are case-insensitive); each member must appear once"
        )
    }
}

/// Parses `bytes` as one JSON value whose objects name each member once.
pub fn parse(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut found: Option<StrictJsonError> = None;
    let parsed = Seed {
        at: &Location::Root,
        found: &mut found,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, found) {
        (_, Some(duplicate)) => Err(duplicate),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(StrictJsonError::Syntax(error.to_string())),
    }
}

/// Where a value sits, as a chain of parents: the pointer is only spelled out on error.
enum Location<'a> {
    Root,
    Member(&'a Location<'a>, &'a str),
    Element(&'a Location<'a>, usize),
}

impl Location<'_> {
    fn pointer(&self) -> String {
        match self {
            Location::Root => String::new(),
            Location::Member(parent, name) => {
                format!("{}/{}", parent.pointer(), name.replace('~', "~0").replace('/', "~1"))
            }
            Location::Element(parent, index) => format!("{}/{index}", parent.pointer()),
        }
    }
}

/// Objects up to this size are checked by comparing names pairwise; larger ones through a
/// set of lower-cased names, so that a body of many members costs linear time.
const PAIRWISE_UP_TO: usize = 16;

struct Seed<'a, 'f> {
    at: &'a Location<'a>,
    found: &'f mut Option<StrictJsonError>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let at = Location::Element(self.at, items.len());
            let seed = Seed {
                at: &at,
                found: self.found,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let mut folded: HashSet<String> = HashSet::new();
        while let Some(name) = access.next_key::<String>()? {
            let first = if map.len() < PAIRWISE_UP_TO {
                map.keys().find(|k| k.eq_ignore_ascii_case(&name)).cloned()
            } else {
                if folded.is_empty() {
                    folded.extend(map.keys().map(|k| k.to_ascii_lowercase()));
                }
                if folded.insert(name.to_ascii_lowercase()) {
                    None
                } else {
                    map.keys().find(|k| k.eq_ignore_ascii_case(&name)).cloned()
                }
            };
            if let Some(first) = first {
                *self.found = Some(StrictJsonError::Duplicate {
                    pointer: self.at.pointer(),
                    name,
                    first,
                });
                // Stop here: the error above is the one reported.
                return Err(de::Error::custom("duplicate member"));
            }
            let at = Location::Member(self.at, &name);
            let value = access.next_value_seed(Seed {
                at: &at,
                found: self.found,
            })?;
            if !folded.is_empty() {
                folded.insert(name.to_ascii_lowercase());
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_refused_where_they_are() {
        let cases = [
            (r#"{"active":false,"active":true}"#, "", "active", "active"),
            (r#"{"active":false,"Active":true}"#, "", "Active", "active"),
            (
                r#"{"Operations":[{"op":"replace","path":"active","value":false,"path":"title"}]}"#,
                "/Operations/0",
                "path",
                "path",
            ),
            (r#"{"a/b":{"x~":{"k":1,"K":2}}}"#, "/a~1b/x~0", "K", "k"),
        ];
        for (text, pointer, name, first) in cases {
            let error = parse(text.as_bytes()).unwrap_err();
            assert_eq!(
                error,
                StrictJsonError::Duplicate {
                    pointer: pointer.to_owned(),
                    name: name.to_owned(),
                    first: first.to_owned()
                },
                "{text}"
            );
        }
    }

    #[test]
    fn a_large_object_is_checked_through_its_folded_names() {
        let mut members: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let unique = format!("{{{}}}", members.join(","));
        assert_eq!(parse(unique.as_bytes()).unwrap().as_object().unwrap().len(), 100);
        members.push("\"K7\":0".to_owned());
        let doubled = format!("{{{}}}", members.join(","));
        assert!(matches!(
            parse(doubled.as_bytes()),
            Err(StrictJsonError::Duplicate { ref name, ref first, .. }) if name == "K7" && first == "k7"
        ));
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        for text in [
            r#"{"b":1,"a":[1,2.5,-3,"x",null,true,{"c":{}}],"big":18446744073709551615}"#,
            r#"[]"#,
            r#""text""#,
            "  42 ",
            r#"{"k":1e400}"#,
        ] {
            let ours = parse(text.as_bytes());
            let theirs: Result<Value, _> = serde_json::from_str(text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => {
                    assert_eq!(ours, theirs, "{text}");
                    assert_eq!(ours.to_string(), theirs.to_string(), "{text}: member order");
                }
                (Err(StrictJsonError::Syntax(_)), Err(_)) => {}
                (ours, theirs) => panic!("{text}: {ours:?} against {theirs:?}"),
            }
        }
        assert_eq!(parse(br#"{"a":1}"#).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn syntax_errors_and_trailing_bytes_are_syntax_errors() {
        for text in ["", "{", r#"{"a":1} x"#, "nul", r#"{"a" 1}"#] {
            assert!(
                matches!(parse(text.as_bytes()), Err(StrictJsonError::Syntax(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn depth_is_bounded_as_serde_json_bounds_it() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(deep.as_bytes()), Err(StrictJsonError::Syntax(_))));
    }
}
