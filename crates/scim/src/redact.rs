//! Redaction of attributes that are never stored: the SCIM `password` always, and the
//! attributes a route names (`[route.record] redact_attributes`). Wherever one appears: as a
//! member of any object (resources, extension objects, path-less PATCH values, bulk `data`,
//! list responses), in any casing and URN-qualified; as the `value` of a PATCH operation whose
//! `path` names it, and inside that path's value filter; as a comparison value in a filter.
//!
//! An attribute is matched by its name wherever it appears, whatever its schema: naming it
//! with its URN says which one is meant but does not narrow it, so that an attribute an IdP
//! sends unqualified, or under another schema, is redacted all the same. Whole attributes
//! only: `name` redacts every part of a name.

use crate::filter::{AttrTest, CompValue, Filter};
use crate::path::PatchPath;
use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Names that structure SCIM messages rather than hold a person's data: redacting them would
/// make the record unreadable (and `userName` is how records are found and erased).
const NOT_REDACTABLE: [&str; 14] = [
    "schemas",
    "id",
    "meta",
    "operations",
    "op",
    "path",
    "value",
    "resources",
    "data",
    "method",
    "bulkid",
    "username",
    "$ref",
    "type",
];

/// The attributes never stored: `password`, and those a route names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    /// Configured attribute names, lowercase, without their URN.
    attributes: Vec<String>,
    /// The names as configured, for messages.
    configured: Vec<String>,
}

impl Redaction {
    /// Passwords only.
    pub fn passwords_only() -> Redaction {
        Redaction::default()
    }

    /// Passwords and `attributes` (`phoneNumbers`, `urn:…:enterprise:2.0:User:employeeNumber`).
    /// `Err` says which name cannot be redacted and why.
    pub fn new(attributes: &[String]) -> Result<Redaction, String> {
        let mut redaction = Redaction::default();
        for name in attributes {
            let bare = name.rsplit(':').next().unwrap_or(name);
            if bare.is_empty() || bare.contains(['.', '[', ']', ' ', '"']) {
                return Err(format!(
                    "redact_attributes: \"{name}\" is not an attribute name: give a whole attribute (\"name\", not \"name.familyName\"), optionally with its schema URN"
                ));
            }
            if NOT_REDACTABLE.contains(&bare.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "redact_attributes: \"{name}\" cannot be redacted: it structures SCIM messages, or is how records are found and erased"
                ));
            }
            let lower = bare.to_ascii_lowercase();
            if lower != "password" && !redaction.attributes.contains(&lower) {
                redaction.attributes.push(lower);
                redaction.configured.push(name.clone());
            }
        }
        Ok(redaction)
    }

    /// Everything any of `redactions` redacts: for what no route claims.
    pub fn union<'a>(redactions: impl IntoIterator<Item = &'a Redaction>) -> Redaction {
        let mut union = Redaction::default();
        for redaction in redactions {
            for (lower, configured) in redaction.attributes.iter().zip(&redaction.configured) {
                if !union.attributes.contains(lower) {
                    union.attributes.push(lower.clone());
                    union.configured.push(configured.clone());
                }
            }
        }
        union
    }

    /// The attributes named beside `password`, as configured.
    pub fn configured(&self) -> &[String] {
        &self.configured
    }

    /// Whether an attribute name or path names a redacted attribute: `password` (its last
    /// component, `urn:…:User:password`), or a configured attribute (the attribute of
    /// `phoneNumbers`, `phoneNumbers[type eq "work"].value`, `urn:…:User:employeeNumber`).
    pub fn names(&self, name: &str) -> bool {
        names_password(name) || self.names_configured(name)
    }

    /// Whether `name` names one of the configured attributes (not `password`).
    pub fn names_configured(&self, name: &str) -> bool {
        !self.attributes.is_empty() && {
            let attribute = attribute_of(name);
            self.attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute))
        }
    }

    /// Whether some text mentions a redacted attribute's name anywhere (any casing).
    pub fn mentioned_in(&self, bytes: &[u8]) -> bool {
        std::iter::once("password")
            .chain(self.attributes.iter().map(String::as_str))
            .any(|name| contains_ignore_case(bytes, name.as_bytes()))
    }

    /// Redacts every redacted attribute in `value`; returns how many values were replaced.
    pub fn redact(&self, value: &mut Value) -> usize {
        match value {
            Value::Array(items) => items.iter_mut().map(|item| self.redact(item)).sum(),
            Value::Object(members) => {
                let mut count = 0;
                // A PATCH operation (or anything shaped like one) whose path names one.
                let path_named = members
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                    .and_then(|(_, v)| v.as_str())
                    .filter(|path| self.names(path))
                    .map(str::to_owned);
                for (key, member) in members.iter_mut() {
                    let is_path = key.eq_ignore_ascii_case("path");
                    let secret = self.names(key) || (path_named.is_some() && key.eq_ignore_ascii_case("value"));
                    if secret && !member.is_null() {
                        *member = Value::String(REDACTED.to_owned());
                        count += 1;
                    } else if is_path && path_named.is_some() {
                        if let Some(redacted) = member.as_str().and_then(|path| self.redact_path(path)) {
                            *member = Value::String(redacted);
                            count += 1;
                        }
                    } else if key.eq_ignore_ascii_case("filter") && member.is_string() {
                        if let Some(redacted) = member.as_str().and_then(|text| self.redact_filter(text)) {
                            *member = Value::String(redacted);
                            count += 1;
                        }
                    } else {
                        count += self.redact(member);
                    }
                }
                count
            }
            _ => 0,
        }
    }

    /// A PATCH path naming a redacted attribute with the values of its filter redacted
    /// (`phoneNumbers[value eq "[REDACTED]"].type`), or `None` when it has none. A path that
    /// does not parse is redacted whole.
    fn redact_path(&self, path: &str) -> Option<String> {
        if !path.contains('[') {
            return None;
        }
        let Ok(mut parsed) = PatchPath::parse(path) else {
            return Some(REDACTED.to_owned());
        };
        let filter = parsed.filter.as_mut()?;
        (redact_every_value(filter) > 0).then(|| parsed.to_string())
    }

    /// A string that may be a filter or a PATCH path (as a recorded change holds them) with
    /// the values it compares to a redacted attribute replaced, or `None` when there are none.
    pub fn redact_text(&self, text: &str) -> Option<String> {
        if !self.mentioned_in(text.as_bytes()) {
            return None;
        }
        if Filter::parse(text).is_ok() {
            return self.redact_filter(text);
        }
        let mut path = PatchPath::parse(text).ok()?;
        if !self.names(&path.attr.to_string()) {
            return None;
        }
        let filter = path.filter.as_mut()?;
        (redact_every_value(filter) > 0).then(|| path.to_string())
    }

    /// A filter with every value compared to a redacted attribute replaced, or `None` when
    /// the filter names none. A filter that mentions one but does not parse is redacted whole.
    pub fn redact_filter(&self, filter: &str) -> Option<String> {
        if !self.mentioned_in(filter.as_bytes()) {
            return None;
        }
        let Ok(mut parsed) = Filter::parse(filter) else {
            return Some(REDACTED.to_owned());
        };
        if self.redact_filter_tree(&mut parsed) == 0 {
            return None;
        }
        Some(parsed.to_string())
    }

    fn redact_filter_tree(&self, filter: &mut Filter) -> usize {
        match filter {
            Filter::Attr {
                path,
                test: AttrTest::Compare(_, value),
            } if self.names(&path.to_string()) => {
                *value = CompValue::String(REDACTED.to_owned());
                1
            }
            Filter::Attr { .. } => 0,
            Filter::ValuePath { path, .. } if self.names_configured(&path.to_string()) => redact_every_value(filter),
            Filter::ValuePath { filter, then, .. } => {
                let mut count = self.redact_filter_tree(filter);
                if let Some(tail) = then {
                    if let (true, AttrTest::Compare(_, value)) = (names_password(&tail.sub), &mut tail.test) {
                        *value = CompValue::String(REDACTED.to_owned());
                        count += 1;
                    }
                }
                count
            }
            Filter::And(l, r) | Filter::Or(l, r) => self.redact_filter_tree(l) + self.redact_filter_tree(r),
            Filter::Not(inner) => self.redact_filter_tree(inner),
        }
    }

    /// Takes every redacted value out of a recorded body, so that it can be sent again:
    /// members holding [`REDACTED`] under a redacted name, and PATCH operations (`Operations`
    /// items) whose `path` names one. Returns the attributes left out (`password` first if
    /// it was), each once, as they are named in the body.
    pub fn strip_redacted(&self, value: &mut Value) -> Vec<String> {
        let mut left_out = Vec::new();
        self.strip_into(value, &mut left_out);
        left_out.sort_by_key(|name| !names_password(name));
        left_out
    }

    fn strip_into(&self, value: &mut Value, left_out: &mut Vec<String>) {
        let note = |name: &str, left_out: &mut Vec<String>| {
            let attribute = if names_password(name) {
                "password"
            } else {
                attribute_of(name)
            };
            if !left_out.iter().any(|n| n.eq_ignore_ascii_case(attribute)) {
                left_out.push(attribute.to_owned());
            }
        };
        match value {
            Value::Array(items) => {
                items.retain(|item| match self.redacted_operation(item) {
                    Some(path) => {
                        note(path, left_out);
                        false
                    }
                    None => true,
                });
                items.iter_mut().for_each(|item| self.strip_into(item, left_out));
            }
            Value::Object(members) => {
                members.retain(|key, member| {
                    let redacted = self.names(key) && member.as_str() == Some(REDACTED);
                    if redacted {
                        note(key, left_out);
                    }
                    !redacted
                });
                members
                    .values_mut()
                    .for_each(|member| self.strip_into(member, left_out));
            }
            _ => {}
        }
    }

    /// The path of a PATCH operation that targets a redacted attribute.
    fn redacted_operation<'a>(&self, item: &'a Value) -> Option<&'a str> {
        let members = item.as_object()?;
        members
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("op"))
            .then_some(())?;
        members
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("path"))
            .and_then(|(_, v)| v.as_str())
            .filter(|path| self.names(path) || *path == REDACTED)
    }
}

/// The attribute a name or path is about: before any value filter, after its schema URN,
/// before any sub-attribute (`urn:…:User:manager.value` → `manager`).
fn attribute_of(name: &str) -> &str {
    let head = name.split('[').next().unwrap_or(name);
    let tail = head.rsplit(':').next().unwrap_or(head);
    tail.split('.').next().unwrap_or(tail)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Replaces every comparison value in `filter`; returns how many.
fn redact_every_value(filter: &mut Filter) -> usize {
    match filter {
        Filter::Attr {
            test: AttrTest::Compare(_, value),
            ..
        } => {
            *value = CompValue::String(REDACTED.to_owned());
            1
        }
        Filter::Attr { .. } => 0,
        Filter::ValuePath { filter, then, .. } => {
            let mut count = redact_every_value(filter);
            if let Some(AttrTest::Compare(_, value)) = then.as_mut().map(|t| &mut t.test) {
                *value = CompValue::String(REDACTED.to_owned());
                count += 1;
            }
            count
        }
        Filter::And(l, r) | Filter::Or(l, r) => redact_every_value(l) + redact_every_value(r),
        Filter::Not(inner) => redact_every_value(inner),
    }
}

/// Redacts every password in `value`; returns how many values were replaced.
pub fn redact_passwords(value: &mut Value) -> usize {
    Redaction::passwords_only().redact(value)
}

/// Takes every redacted password out of a recorded body (see [`Redaction::strip_redacted`]);
/// returns whether one was.
pub fn strip_redacted_passwords(value: &mut Value) -> bool {
    !Redaction::passwords_only().strip_redacted(value).is_empty()
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
    Redaction::passwords_only().redact_filter(filter)
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
        assert!(strip_redacted_passwords(&mut body));
        assert_eq!(
            body["Operations"],
            json!([{"op": "replace", "value": {"active": true}}, {"op": "replace", "path": "nickName", "value": "kept"}])
        );
        let mut user = json!({"userName": "a", "password": REDACTED, "nickName": "password"});
        assert!(strip_redacted_passwords(&mut user));
        assert_eq!(user, json!({"userName": "a", "nickName": "password"}));
    }

    #[test]
    fn unparseable_filters_naming_a_password_are_redacted_whole() {
        assert_eq!(redact_filter("password eq secret"), Some(REDACTED.to_owned()));
        assert_eq!(redact_filter("userName eq \"a\""), None);
        assert_eq!(redact_filter("userName eq \"my password\""), None);
    }

    fn chosen() -> Redaction {
        Redaction::new(&[
            "phoneNumbers".to_owned(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".to_owned(),
        ])
        .unwrap()
    }

    #[test]
    fn chosen_attributes_are_redacted_everywhere() {
        let redaction = chosen();
        let mut body = json!({
            "Operations": [
                {"method": "POST", "path": "/Users", "data": {"userName": "x", "PhoneNumbers": [{"value": "+1-555-0101"}]}},
                {"method": "PATCH", "path": "/Users/1", "data": {"Operations": [
                    {"op": "replace", "path": "phoneNumbers[type eq \"work\" and value eq \"+1-555-0102\"].value", "value": "+1-555-0103"},
                    {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "E-0104"},
                    {"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "E-0105", "active": true}},
                    {"op": "replace", "path": "nickName", "value": "kept"}
                ]}}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "E-0106", "costCenter": "kept too"},
            "filter": "phoneNumbers.value eq \"+1-555-0107\" or phoneNumbers[value sw \"+1-555-0108\"] or userName eq \"x\""
        });
        // Seven members replaced; the filter counts once.
        assert_eq!(redaction.redact(&mut body), 7, "{body:#}");
        let text = body.to_string();
        for value in ["0101", "0102", "0103", "0104", "0105", "0106", "0107", "0108"] {
            assert!(!text.contains(value), "{value} leaked: {body:#}");
        }
        assert!(text.contains("kept") && text.contains("kept too"));
        assert_eq!(
            body["filter"],
            "phoneNumbers.value eq \"[REDACTED]\" or phoneNumbers[value sw \"[REDACTED]\"] or userName eq \"x\""
        );
        let mut once = body.clone();
        redaction.redact(&mut once);
        assert_eq!(once, body, "redaction is idempotent");
    }

    #[test]
    fn chosen_attributes_are_stripped_for_replay_and_named() {
        let redaction = chosen();
        let mut patch = json!({"Operations": [
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1-555-0101"},
            {"op": "replace", "path": "password", "value": "s"},
            {"op": "replace", "value": {"employeeNumber": "E-1", "active": false}}
        ]});
        redaction.redact(&mut patch);
        assert_eq!(
            redaction.strip_redacted(&mut patch),
            ["password", "phoneNumbers", "employeeNumber"]
        );
        assert_eq!(
            patch,
            json!({"Operations": [{"op": "replace", "value": {"active": false}}]})
        );
    }

    #[test]
    fn structural_and_partial_names_are_refused() {
        for (name, says) in [
            ("userName", "cannot be redacted"),
            ("urn:ietf:params:scim:schemas:core:2.0:User:id", "cannot be redacted"),
            ("Operations", "cannot be redacted"),
            ("name.familyName", "not an attribute name"),
            ("", "not an attribute name"),
        ] {
            let error = Redaction::new(&[name.to_owned()]).unwrap_err();
            assert!(error.contains(says), "{name}: {error}");
        }
        assert_eq!(
            Redaction::new(&["password".to_owned()]).unwrap(),
            Redaction::passwords_only()
        );
    }
}
