//! What one recorded IdP write says the IdP intends: the keys it touches
//! (`scimtrail_scim::write_keys`), each with what it wrote and where the write stands in the
//! IdP's order.

use scimtrail_scim::json;
use scimtrail_scim::write_keys::touched;
use serde_json::Value;

/// One IdP write to a user or group, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct RecordedWrite<'a> {
    /// The exchange that carried it.
    pub exchange_id: &'a str,
    /// Where it stands in the IdP's order: its exchange's id, its original's for a replay.
    pub stands_at: &'a str,
    pub method: &'a str,
    /// `Users` or `Groups` (anything else is no intent this crate follows).
    pub resource_type: &'a str,
    /// The resource's id: from the path, or for a create the one the application gave.
    pub resource_id: Option<&'a str>,
    /// The body as forwarded to the application (redacted as recorded).
    pub body: Option<&'a Value>,
}

/// One key a write touched, as the store keeps it: the latest per key is the intent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntentWrite {
    pub resource_type: String,
    /// The application's id, or [`BY_NAME`] and the name for a create no id came of.
    pub resource_id: String,
    /// The key (`write_keys`), lower case.
    pub key: String,
    /// Where it stands in the IdP's order: the write's place, then its operation's
    /// (`<stands_at>/<operation, 5 digits>`), so that text order is the IdP's order.
    pub order: String,
    /// The exchange that wrote it.
    pub exchange_id: String,
    /// `{"op", "value"}`.
    pub written: Value,
}

/// The first character of the id of a resource the IdP created but the application gave no
/// id for (it failed, or never received it): `?` and the userName (or a group's displayName),
/// lower case. Reconcile finds such a resource in the application by that name.
pub const BY_NAME: char = '?';

/// The id of a resource known by its name (see [`BY_NAME`]).
pub fn by_name(name: &str) -> String {
    format!("{BY_NAME}{}", name.to_lowercase())
}

/// The keys `write` touches, in its operations' order; none for a read, for another resource
/// type, or for a create the application gave no id for whose name is not in its body.
pub fn intent_writes(write: &RecordedWrite<'_>) -> Vec<IntentWrite> {
    let name_attribute = match write.resource_type {
        "Users" => "userName",
        "Groups" => "displayName",
        _ => return Vec::new(),
    };
    let resource_id = match write.resource_id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None if write.method.eq_ignore_ascii_case("POST") => {
            let name = write
                .body
                .and_then(Value::as_object)
                .and_then(|body| json::get(body, name_attribute))
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty());
            match name {
                Some(name) => by_name(name),
                None => return Vec::new(),
            }
        }
        None => return Vec::new(),
    };
    touched(write.method, write.body)
        .into_iter()
        .enumerate()
        .flat_map(|(operation, keys)| keys.into_iter().map(move |key| (operation, key)))
        .map(|(operation, key)| IntentWrite {
            resource_type: write.resource_type.to_owned(),
            resource_id: resource_id.clone(),
            key: key.key,
            order: format!("{}/{operation:05}", write.stands_at),
            exchange_id: write.exchange_id.to_owned(),
            written: key.write,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write<'a>(
        method: &'a str,
        resource_type: &'a str,
        id: Option<&'a str>,
        body: Option<&'a Value>,
    ) -> RecordedWrite<'a> {
        RecordedWrite {
            exchange_id: "e1",
            stands_at: "s1",
            method,
            resource_type,
            resource_id: id,
            body,
        }
    }

    #[test]
    fn each_write_becomes_its_keys_in_order_and_a_create_without_an_id_is_known_by_name() {
        let user = json!({"userName": "Ann@Example.com", "active": true});
        let nameless = json!({"active": true});
        let patch = json!({"Operations": [
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "U1"}]},
        ]});
        /// A write, and its keys: `(resource id, key, order)`.
        type Case<'a> = (RecordedWrite<'a>, Vec<(&'static str, &'static str, &'static str)>);
        let cases: Vec<Case<'_>> = vec![
            (
                write("POST", "Users", Some("u1"), Some(&user)),
                vec![("u1", "*", "s1/00000")],
            ),
            (
                write("POST", "Users", None, Some(&user)),
                vec![("?ann@example.com", "*", "s1/00000")],
            ),
            (
                write("PATCH", "Groups", Some("g1"), Some(&patch)),
                vec![("g1", "members", "s1/00000"), ("g1", "members=u1", "s1/00001")],
            ),
            (
                write("DELETE", "Users", Some("u1"), None),
                vec![("u1", "(deleted)", "s1/00000"), ("u1", "*", "s1/00000")],
            ),
            // No intent: a read, another resource type, a create with neither id nor name.
            (write("GET", "Users", Some("u1"), None), vec![]),
            (write("POST", "Schemas", Some("x"), Some(&user)), vec![]),
            (write("POST", "Users", None, Some(&nameless)), vec![]),
            (write("PATCH", "Users", None, Some(&patch)), vec![]),
        ];
        for (recorded, expected) in cases {
            let got: Vec<(String, String, String)> = intent_writes(&recorded)
                .into_iter()
                .map(|w| (w.resource_id, w.key, w.order))
                .collect();
            let expected: Vec<(String, String, String)> = expected
                .into_iter()
                .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
                .collect();
            assert_eq!(got, expected, "{} {:?}", recorded.method, recorded.body);
        }
    }
}
