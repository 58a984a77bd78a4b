//! What a SCIM write touches, as keys: an attribute path (`active`, `name.givenname`, the
//! extension's `urn:…:user:manager`), one key per member for add and remove
//! (`members=<id>`), [`EVERYTHING`] for a create or a PUT (it sets everything) and for a
//! DELETE (after it, nothing earlier matters), and [`DELETED`] for what only a later DELETE
//! writes over. Values added to a multi-valued attribute overwrite none of it: their key ends
//! in [`ADDED`] and covers nothing else.
//!
//! Replay decides from these keys whether a failed write is superseded by later ones (every
//! key it writes is written again later) or in conflict with them (it would overwrite part
//! of a later write); the store keeps, per resource, the latest successful write to each key
//! so that the decision survives the pruning of the writes themselves.

use crate::json;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The key of a write that sets everything: a create, a PUT, a DELETE.
pub const EVERYTHING: &str = "*";
/// Suffix of the key of values added to a multi-valued attribute: it covers nothing else.
pub const ADDED: &str = "+added";
/// The key only a DELETE writes: what only a later DELETE supersedes.
pub const DELETED: &str = "(deleted)";

/// One key a write touches, and what it wrote there: `{"op", "value"}` (no `value` for a
/// removal or a DELETE).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyWrite {
    /// The key (lower case).
    pub key: String,
    /// The operation and its value for this key.
    pub write: Value,
}

impl KeyWrite {
    /// Whether it takes something away (a removal, a DELETE) rather than setting it: a
    /// summary needs it only while an older failure it supersedes remains.
    pub fn is_removal(&self) -> bool {
        matches!(self.write.get("op").and_then(Value::as_str), Some("remove" | "delete"))
    }
}

/// What a write touches: one list of keys per operation (a create, PUT or DELETE is one
/// operation; a PATCH one per operation). Reads touch nothing.
pub fn write_keys(method: &str, body: Option<&Value>) -> Vec<Vec<String>> {
    touched(method, body)
        .into_iter()
        .map(|op| op.into_iter().map(|k| k.key).collect())
        .collect()
}

/// [`write_keys`] with what was written to each key.
pub fn touched(method: &str, body: Option<&Value>) -> Vec<Vec<KeyWrite>> {
    let whole = |op: &str| KeyWrite {
        key: EVERYTHING.to_owned(),
        write: json!({"op": op, "value": body.cloned().unwrap_or(Value::Null)}),
    };
    match method.to_ascii_uppercase().as_str() {
        "POST" => vec![vec![whole("create")]],
        "PUT" => vec![vec![whole("put")]],
        "DELETE" => {
            let deleted = |key: &str| KeyWrite {
                key: key.to_owned(),
                write: json!({"op": "delete"}),
            };
            vec![vec![deleted(DELETED), deleted(EVERYTHING)]]
        }
        "PATCH" => operations(body).iter().map(operation_keys).collect(),
        _ => Vec::new(),
    }
}

/// A PATCH body's operations (`Operations`, any casing).
pub fn operations(body: Option<&Value>) -> Vec<Value> {
    body.and_then(|body| member(body, "Operations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether a later write of `later` writes over all of `key`.
pub fn covered(key: &str, later: &BTreeSet<&str>) -> bool {
    if key == DELETED {
        return later.contains(DELETED);
    }
    later.contains(EVERYTHING) || later.iter().any(|l| l == &key || inside(key, l))
}

/// Whether `inner` is a strict part of `outer`: an attribute of it (`name.givenname` in
/// `name`, `urn:…:user:manager` in `urn:…:user`, `emails[type eq "work"]` in `emails`), one
/// member of all of them (`members=<id>` in `members`), anything in a whole replacement.
pub fn inside(inner: &str, outer: &str) -> bool {
    if inner == outer || inner == DELETED || outer == DELETED {
        return false;
    }
    if outer == EVERYTHING {
        return inner != EVERYTHING;
    }
    // One member is part only of all members: ids may hold any character.
    if outer.starts_with("members=") {
        return false;
    }
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with(['.', '[', '=', ':']))
}

fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    json::get(value.as_object()?, name)
}

fn operation_keys(operation: &Value) -> Vec<KeyWrite> {
    let op = member(operation, "op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let value = member(operation, "value");
    let wrote = |key: String, value: Option<&Value>| KeyWrite {
        key,
        write: written(&op, value),
    };
    match member(operation, "path").and_then(Value::as_str).map(str::to_lowercase) {
        Some(path) => {
            let path = path.trim().to_owned();
            if path == "members" && (op == "add" || op == "remove") {
                match value {
                    Some(Value::Array(values)) => member_keys(&op, values),
                    Some(one @ Value::Object(_)) => member_keys(&op, std::slice::from_ref(one)),
                    // `remove` of every member.
                    _ => vec![wrote(path, value)],
                }
            } else if let Some(id) = path
                .strip_prefix("members[value eq \"")
                .and_then(|rest| rest.strip_suffix("\"]"))
            {
                vec![wrote(format!("members={id}"), value)]
            } else if op == "add" && matches!(value, Some(Value::Array(_))) {
                // Values added to a multi-valued attribute overwrite none of it.
                vec![wrote(format!("{path}{ADDED}"), value)]
            } else {
                vec![wrote(path, value)]
            }
        }
        None => match value.and_then(Value::as_object) {
            Some(attributes) => attributes
                .iter()
                .flat_map(|(name, value)| match value {
                    // An extension's attributes, each its own key.
                    Value::Object(inner) if name.to_ascii_lowercase().starts_with("urn:") => inner
                        .iter()
                        .flat_map(|(sub, value)| {
                            value_keys(&op, &format!("{}:{}", name.to_lowercase(), sub.to_lowercase()), value)
                        })
                        .collect(),
                    _ => value_keys(&op, &name.to_lowercase(), value),
                })
                .collect(),
            None => Vec::new(),
        },
    }
}

/// The keys of one attribute of a path-less value: a complex attribute's sub-attributes each
/// their own key; members one by one; values added to a multi-valued attribute overwrite
/// nothing.
fn value_keys(op: &str, name: &str, value: &Value) -> Vec<KeyWrite> {
    let wrote = |key: String, value: &Value| KeyWrite {
        key,
        write: written(op, Some(value)),
    };
    match value {
        Value::Array(values) if name == "members" && (op == "add" || op == "remove") => member_keys(op, values),
        Value::Array(_) if op == "add" => vec![wrote(format!("{name}{ADDED}"), value)],
        Value::Object(inner) if !inner.is_empty() => inner
            .iter()
            .map(|(sub, value)| wrote(format!("{name}.{}", sub.to_lowercase()), value))
            .collect(),
        _ => vec![wrote(name.to_owned(), value)],
    }
}

fn member_keys(op: &str, values: &[Value]) -> Vec<KeyWrite> {
    values
        .iter()
        .map(|v| KeyWrite {
            key: match member(v, "value").and_then(Value::as_str) {
                Some(id) => format!("members={}", id.to_lowercase()),
                None => "members".to_owned(),
            },
            write: written(op, Some(v)),
        })
        .collect()
}

/// `{"op", "value"}`: what one operation wrote to one key.
fn written(op: &str, value: Option<&Value>) -> Value {
    let mut write = Map::new();
    write.insert("op".to_owned(), Value::String(op.to_owned()));
    if let Some(value) = value {
        write.insert("value".to_owned(), value.clone());
    }
    Value::Object(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(ops: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
    }

    #[test]
    fn each_write_touches_its_keys_with_what_it_wrote() {
        let user = json!({"userName": "a", "active": true});
        let manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user";
        /// Per operation, each key and what was written to it.
        type Touched = Vec<Vec<(&'static str, Value)>>;
        let cases: Vec<(&str, Value, Touched)> = vec![
            (
                "POST",
                user.clone(),
                vec![vec![("*", json!({"op": "create", "value": user}))]],
            ),
            (
                "put",
                user.clone(),
                vec![vec![("*", json!({"op": "put", "value": user}))]],
            ),
            (
                "DELETE",
                Value::Null,
                vec![vec![
                    ("(deleted)", json!({"op": "delete"})),
                    ("*", json!({"op": "delete"})),
                ]],
            ),
            ("GET", Value::Null, vec![]),
            (
                "PATCH",
                patch(json!([
                    {"op": "Replace", "path": "active", "value": false},
                    {"op": "remove", "path": "members[value eq \"G1\"]"},
                    {"op": "add", "path": "members", "value": [{"value": "M1"}, {"display": "no id"}]},
                    {"op": "add", "path": "emails", "value": [{"value": "a@example.com"}]},
                    {"op": "remove", "path": "members"},
                ])),
                vec![
                    vec![("active", json!({"op": "replace", "value": false}))],
                    vec![("members=g1", json!({"op": "remove"}))],
                    vec![
                        ("members=m1", json!({"op": "add", "value": {"value": "M1"}})),
                        ("members", json!({"op": "add", "value": {"display": "no id"}})),
                    ],
                    vec![(
                        "emails+added",
                        json!({"op": "add", "value": [{"value": "a@example.com"}]}),
                    )],
                    vec![("members", json!({"op": "remove"}))],
                ],
            ),
            (
                "PATCH",
                patch(json!([{"op": "replace", "value": {
                    "name": {"givenName": "A"},
                    "displayName": "A B",
                    manager: {"manager": {"value": "m"}},
                }}])),
                vec![vec![
                    ("name.givenname", json!({"op": "replace", "value": "A"})),
                    ("displayname", json!({"op": "replace", "value": "A B"})),
                    (
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value",
                        json!({"op": "replace", "value": "m"}),
                    ),
                ]],
            ),
        ];
        for (method, body, expected) in cases {
            let body = (!body.is_null()).then_some(body);
            let got: Vec<Vec<(String, Value)>> = touched(method, body.as_ref())
                .into_iter()
                .map(|op| op.into_iter().map(|k| (k.key, k.write)).collect())
                .collect();
            let expected: Vec<Vec<(String, Value)>> = expected
                .into_iter()
                .map(|op| op.into_iter().map(|(k, w)| (k.to_owned(), w)).collect())
                .collect();
            assert_eq!(got, expected, "{method} {body:?}");
        }
    }

    #[test]
    fn coverage_follows_the_attribute_tree() {
        let later = |keys: &[&'static str]| keys.iter().copied().collect::<BTreeSet<&str>>();
        let cases = [
            ("active", vec!["active"], true),
            ("name.givenname", vec!["name"], true),
            ("name", vec!["name.givenname"], false),
            ("members=a", vec!["members"], true),
            ("members", vec!["members=a"], false),
            ("members=a", vec!["members=ab"], false),
            ("emails+added", vec!["emails"], false),
            ("anything", vec!["*"], true),
            ("(deleted)", vec!["*"], false),
            ("(deleted)", vec!["(deleted)"], true),
        ];
        for (key, keys, expected) in cases {
            assert_eq!(covered(key, &later(&keys)), expected, "{key} by {keys:?}");
        }
    }
}
