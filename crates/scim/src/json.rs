//! The JSON view of resources: case-insensitive member access over `serde_json` maps.
//!
//! Resources stay `serde_json::Value`s end to end, so every attribute a schema does not know and
//! every extension object passes through unchanged. These helpers find members the way SCIM
//! names them: case-insensitively (RFC 7643 §2.1).

use serde_json::{Map, Value};

/// The key of the member named `name` in any casing.
pub fn find_key<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The member named `name` in any casing.
pub fn get<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The member named `name` in any casing, mutably.
pub fn get_mut<'m>(map: &'m mut Map<String, Value>, name: &str) -> Option<&'m mut Value> {
    map.iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Removes the member named `name` in any casing (every spelling of it).
pub fn remove(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let keys: Vec<String> = map.keys().filter(|k| k.eq_ignore_ascii_case(name)).cloned().collect();
    let mut removed = None;
    for key in keys {
        removed = map.shift_remove(&key).or(removed);
    }
    removed
}

/// Sets the member named `name`, replacing any spelling of it in place and writing the
/// key as `canonical`.
pub fn set(map: &mut Map<String, Value>, canonical: &str, value: Value) {
    match find_key(map, canonical).cloned() {
        Some(key) if key == canonical => {
            map.insert(key, value);
        }
        Some(key) => {
            // Rebuild to keep the member's position while fixing the key's spelling.
            let mut value = Some(value);
            for (k, v) in std::mem::take(map) {
                match (k == key, value.take()) {
                    (true, Some(new)) => map.insert(canonical.to_owned(), new),
                    (_, pending) => {
                        value = pending;
                        map.insert(k, v)
                    }
                };
            }
        }
        None => {
            map.insert(canonical.to_owned(), value);
        }
    }
}

/// The attribute `name` of a resource: inside the object of its extension when it is an
/// extension's (`extension`, the schema URN: RFC 7643 §3.3 puts an extension's attributes
/// under its URN), at the top otherwise. Each member is found in any casing.
pub fn attribute<'m>(resource: &'m Map<String, Value>, extension: Option<&str>, name: &str) -> Option<&'m Value> {
    let object = match extension {
        Some(urn) => get(resource, urn)?.as_object()?,
        None => resource,
    };
    get(object, name)
}

/// Whether a value counts as assigned. RFC 7643 §2.5 makes `null` and an empty array
/// equivalent to an unassigned attribute; an object whose members are all unassigned is too.
pub fn is_assigned(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().any(is_assigned),
        Value::Object(members) => members.values().any(is_assigned),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_found_in_any_casing() {
        let value = json!({"userName": "a", "NAME": {"givenName": "b"}});
        let map = value.as_object().unwrap();
        assert_eq!(get(map, "USERNAME"), Some(&json!("a")));
        assert_eq!(find_key(map, "name").map(String::as_str), Some("NAME"));
        assert_eq!(get(map, "nope"), None);
    }

    #[test]
    fn set_fixes_spelling_and_keeps_position() {
        let mut value = json!({"a": 1, "USERNAME": "x", "z": 2});
        let map = value.as_object_mut().unwrap();
        set(map, "userName", json!("y"));
        assert_eq!(serde_json::to_string(map).unwrap(), r#"{"a":1,"userName":"y","z":2}"#);
        assert_eq!(remove(map, "username"), Some(json!("y")));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn an_extension_attribute_is_found_under_its_urn() {
        const URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let value = json!({"title": "t", URN.to_ascii_lowercase(): {"Department": "d"}, "other": 1});
        let map = value.as_object().unwrap();
        assert_eq!(attribute(map, Some(URN), "department"), Some(&json!("d")));
        assert_eq!(attribute(map, None, "TITLE"), Some(&json!("t")));
        assert_eq!(attribute(map, Some(URN), "title"), None);
        assert_eq!(attribute(map, Some("other"), "x"), None);
        assert_eq!(attribute(map, Some("urn:missing"), "title"), None);
    }

    #[test]
    fn unassigned_values() {
        assert!(!is_assigned(&json!(null)));
        assert!(!is_assigned(&json!([])));
        assert!(!is_assigned(&json!({"a": null})));
        assert!(is_assigned(&json!("")));
        assert!(is_assigned(&json!(false)));
    }
}
