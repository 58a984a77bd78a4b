//! Redaction of the SCIM `password` attribute wherever it appears: as a member of any object
//! (resources, extension objects, path-less PATCH values, bulk `data`), in any casing and
//! URN-qualified; as the `value` of a PATCH operation whose `path` names it; and as a
//! comparison value in a filter.

use crate::filter::{AttrTest, CompValue, Filter};
use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Redacts every password in `value`; returns how many values were replaced.
pub fn redact_passwords(value: &mut Value) -> usize {
    match value {
        Value::Array(items) => items.iter_mut().map(redact_passwords).sum(),
        Value::Object(members) => {
            let mut count = 0;
            // A PATCH operation (or anything shaped like one) whose path names the password.
            let path_names_password = members
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(names_password));
            for (key, member) in members.iter_mut() {
                let secret = names_password(key) || (path_names_password && key.eq_ignore_ascii_case("value"));
                if secret && !member.is_null() {
                    *member = Value::String(REDACTED.to_owned());
                    count += 1;
                } else if key.eq_ignore_ascii_case("filter") && member.is_string() {
                    if let Some(text) = member.as_str() {
                        if let Some(redacted) = redact_filter(text) {
                            *member = Value::String(redacted);
                            count += 1;
                        }
                    }
                } else {
                    count += redact_passwords(member);
                }
            }
            count
        }
        _ => 0,
    }
}

/// Takes every redacted password out of a recorded body, so that it can be sent again:
/// members holding [`REDACTED`] under a password name, and PATCH operations (`Operations`
/// items) whose `path` names the password. Returns how many were taken out.
pub fn strip_redacted_passwords(value: &mut Value) -> usize {
    match value {
        Value::Array(items) => {
            let before = items.len();
            items.retain(|item| !is_password_operation(item));
            let mut count = before - items.len();
            count += items.iter_mut().map(strip_redacted_passwords).sum::<usize>();
            count
        }
        Value::Object(members) => {
            let before = members.len();
            members.retain(|key, member| !(names_password(key) && member.as_str() == Some(REDACTED)));
            let mut count = before - members.len();
            count += members.values_mut().map(strip_redacted_passwords).sum::<usize>();
            count
        }
        _ => 0,
    }
}

fn is_password_operation(item: &Value) -> bool {
    let Some(members) = item.as_object() else { return false };
    members
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(names_password))
        && members.iter().any(|(k, _)| k.eq_ignore_ascii_case("op"))
}

/// Whether an attribute name or path ends at `password` (`password`, `PASSWORD`,
/// `urn:ietf:params:scim:schemas:core:2.0:User:password`).
pub fn names_password(name: &str) -> bool {
    name.rsplit([':', '.'])
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("password"))
}

/// A filter with every value compared to a password replaced, or `None` when the filter
/// names no password. A filter that mentions a password but does not parse is redacted whole.
pub fn redact_filter(filter: &str) -> Option<String> {
    if !filter.to_ascii_lowercase().contains("password") {
        return None;
    }
    let Ok(mut parsed) = Filter::parse(filter) else {
        return Some(REDACTED.to_owned());
    };
    if redact_filter_tree(&mut parsed) == 0 {
        return None;
    }
    Some(parsed.to_string())
}

fn redact_filter_tree(filter: &mut Filter) -> usize {
    match filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(_, value),
        } if names_password(&path.to_string()) => {
            *value = CompValue::String(REDACTED.to_owned());
            1
        }
        Filter::Attr { .. } => 0,
        Filter::ValuePath { filter, then, .. } => {
            let mut count = redact_filter_tree(filter);
            if let Some(tail) = then {
                if let (true, AttrTest::Compare(_, value)) = (names_password(&tail.sub), &mut tail.test) {
                    *value = CompValue::String(REDACTED.to_owned());
                    count += 1;
                }
            }
            count
        }
        Filter::And(l, r) | Filter::Or(l, r) => redact_filter_tree(l) + redact_filter_tree(r),
        Filter::Not(inner) => redact_filter_tree(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_are_redacted_everywhere() {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "x", "Password": "s1"}},
                {"method": "PATCH", "path": "/Users/1", "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [
                        {"op": "replace", "path": "PASSWORD", "value": "s2"},
                        {"op": "replace", "value": {"password": "s3", "active": true}},
                        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "s4"},
                        {"op": "replace", "path": "nickName", "value": "not secret"}
                    ]
                }}
            ],
            "urn:example:ext:1.0:User": {"password": "s5"},
            "filter": "userName eq \"x\" and password eq \"s6\""
        });
        assert_eq!(redact_passwords(&mut body), 6);
        let text = body.to_string();
        for secret in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            assert!(
                !text.contains(&format!("\"{secret}\"")) && !text.contains(&format!("\\\"{secret}\\\"")),
                "{secret} leaked: {text}"
            );
        }
        assert!(text.contains("not secret"));
        assert_eq!(body["filter"], "userName eq \"x\" and password eq \"[REDACTED]\"");
    }

    #[test]
    fn redacted_passwords_are_stripped_for_replay() {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "PASSWORD", "value": "s2"},
                {"op": "replace", "value": {"password": "s3", "active": true}},
                {"op": "replace", "path": "nickName", "value": "kept"}
            ]
        });
        redact_passwords(&mut body);
        assert_eq!(strip_redacted_passwords(&mut body), 2);
        assert_eq!(
            body["Operations"],
            json!([{"op": "replace", "value": {"active": true}}, {"op": "replace", "path": "nickName", "value": "kept"}])
        );
        let mut user = json!({"userName": "a", "password": REDACTED, "nickName": "password"});
        assert_eq!(strip_redacted_passwords(&mut user), 1);
        assert_eq!(user, json!({"userName": "a", "nickName": "password"}));
    }

    #[test]
    fn unparseable_filters_naming_a_password_are_redacted_whole() {
        assert_eq!(redact_filter("password eq secret"), Some(REDACTED.to_owned()));
        assert_eq!(redact_filter("userName eq \"a\""), None);
        assert_eq!(redact_filter("userName eq \"my password\""), None);
    }
}
