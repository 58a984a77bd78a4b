//! The write that restores the IdP's intent for one resource, from its drifts.
//!
//! A repair only ever brings the application back to what the IdP asked for, and never
//! removes a person: a user the IdP deactivated *or deleted* who is active in the application
//! is deactivated (`active: false`), not deleted — a deletion cannot be undone, and the IdP's
//! own deletion may have been refused for a reason an operator should see. A resource the
//! application lost is created again from the body the IdP created it with, with the single
//! values the IdP set since; everything else is one PATCH per resource.

use crate::drift::{text_at, Drift, DriftKind};
use crate::intended::Intended;
use scimtrail_scim::endpoint::id_segment;
use scimtrail_scim::json;
use scimtrail_scim::path::AttrPath;
use scimtrail_scim::redact::REDACTED;
use scimtrail_scim::ResourceType;
use serde_json::{json, Map, Value};

/// The PATCH message schema (RFC 7644 §3.5.2).
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One write that restores a resource's intent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Repair {
    pub resource_type: String,
    /// The intent's id for it (the IdP's).
    pub resource_id: String,
    pub name: Option<String>,
    /// `POST` (the application lost it) or `PATCH`.
    pub method: String,
    /// Below the route's prefix: `/Users`, `/Groups/{id}` (the id percent-encoded).
    pub path: String,
    pub body: Value,
    /// The drifts it repairs, in report order.
    pub kinds: Vec<DriftKind>,
    /// What it could not restore, and why.
    pub notes: Vec<String>,
}

/// The write that repairs `drifts` — found by comparing `intended` with `actual`, the
/// application's resource (`None`: it has none) — or `None` when nothing can or need be
/// written (`unknown_to_idp` is only reported; so is a resource whose id cannot be a path).
pub fn plan(intended: &Intended, actual: Option<&Value>, drifts: &[Drift]) -> Option<Repair> {
    let repairable: Vec<&Drift> = drifts.iter().filter(|d| d.kind != DriftKind::UnknownToIdp).collect();
    let first = repairable.first()?;
    let mut repair = Repair {
        resource_type: intended.resource_type.clone(),
        resource_id: intended.resource_id.clone(),
        name: first.name.clone(),
        method: "PATCH".to_owned(),
        path: String::new(),
        body: Value::Null,
        kinds: repairable.iter().map(|d| d.kind).collect(),
        notes: Vec::new(),
    };
    repair.kinds.dedup();
    if repairable.iter().any(|d| d.kind == DriftKind::MissingInApp) {
        repair.method = "POST".to_owned();
        repair.path = format!("/{}", intended.resource_type);
        repair.body = create_body(intended, &mut repair.notes);
        return Some(repair);
    }
    let id = actual.and_then(|a| text_at(a, "id"))?;
    if id.is_empty() || id == "." || id == ".." {
        return None;
    }
    repair.path = format!("/{}/{}", intended.resource_type, id_segment(&id));
    let mut operations = Vec::new();
    let mut added = Vec::new();
    for drift in repairable {
        let part = drift.part.as_deref().unwrap_or_default();
        match drift.kind {
            // Deactivation only, never a deletion, whatever the IdP did.
            DriftKind::ActiveMismatch => operations.push(replace("active", json!(false))),
            DriftKind::InactiveInApp => operations.push(replace("active", json!(true))),
            DriftKind::AttributeMismatch => {
                operations.push(replace(
                    &canonical(&intended.resource_type, part),
                    drift.intended.clone(),
                ));
            }
            DriftKind::MemberMissing => added.push(json!({"value": drift.intended})),
            DriftKind::MemberExtra => {
                let id = drift.actual.as_str().unwrap_or_default();
                // A JSON string is a SCIM filter's string literal, escapes and all.
                let literal = Value::String(id.to_owned()).to_string();
                operations.push(json!({"op": "remove", "path": format!("members[value eq {literal}]")}));
            }
            DriftKind::MissingInApp | DriftKind::UnknownToIdp => {}
        }
    }
    operations.dedup();
    if !added.is_empty() {
        operations.push(json!({"op": "add", "path": "members", "value": added}));
    }
    repair.body = json!({"schemas": [PATCH_OP], "Operations": operations});
    Some(repair)
}

/// A replace operation of one attribute.
fn replace(path: &str, value: Value) -> Value {
    json!({"op": "replace", "path": path, "value": value})
}

/// The body that creates a resource again: the create's (or PUT's) as recorded, with what the
/// application owns and what the record keeps redacted left out, then every single value the
/// IdP set since, its `active`, and for a group its members.
fn create_body(intended: &Intended, notes: &mut Vec<String>) -> Value {
    let mut body = intended.body.clone().unwrap_or_default();
    for owned in ["id", "meta", "groups", "password"] {
        json::remove(&mut body, owned);
    }
    if without_redacted(&mut body) {
        notes.push(
            "values the record keeps redacted (a password, the attributes the route redacts) are not sent: the application holds them as it chooses"
                .to_owned(),
        );
    }
    let resource_type = intended.resource_type.as_str();
    let endpoint = format!("/{resource_type}");
    let schema = ResourceType::by_endpoint(&endpoint).map(|rt| rt.schema.id);
    if !body.contains_key("schemas") {
        if let Some(schema) = schema {
            body.insert("schemas".to_owned(), json!([schema]));
        }
    }
    let named = [
        ("userName", &intended.user_name),
        ("externalId", &intended.external_id),
        ("displayName", &intended.display_name),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            json::set(&mut body, name, json!(value));
        }
    }
    for (key, value) in &intended.attributes {
        if value != &json!(REDACTED) {
            set_path(&mut body, &canonical(resource_type, key), value.clone());
        }
    }
    if let Some(active) = intended.active {
        json::set(&mut body, "active", json!(active));
    }
    if let Some(members) = &intended.members {
        let members: Vec<Value> = members.values().map(|id| json!({"value": id})).collect();
        json::set(&mut body, "members", Value::Array(members));
    }
    Value::Object(body)
}

/// Sets `path` (`title`, `name.givenName`, `urn:…:User:employeeNumber`) in `body`.
fn set_path(body: &mut Map<String, Value>, path: &str, value: Value) {
    let set_attribute =
        |container: &mut Map<String, Value>, attribute: &str, value: Value| match attribute.split_once('.') {
            Some((parent, sub)) => within(container, parent, |inner| json::set(inner, sub, value)),
            None => json::set(container, attribute, value),
        };
    match path.rsplit_once(':') {
        Some((urn, attribute)) if path.starts_with("urn:") => {
            within(body, urn, |extension| set_attribute(extension, attribute, value));
        }
        _ => set_attribute(body, path, value),
    }
}

/// Runs `change` on the object at `name` in `map` (any spelling), in place; on a new one set
/// there when it holds anything else.
fn within(map: &mut Map<String, Value>, name: &str, change: impl FnOnce(&mut Map<String, Value>)) {
    match json::get_mut(map, name) {
        Some(Value::Object(inner)) => change(inner),
        _ => {
            let mut inner = Map::new();
            change(&mut inner);
            json::set(map, name, Value::Object(inner));
        }
    }
}

/// Takes out every value the record keeps redacted; whether there was one.
fn without_redacted(body: &mut Map<String, Value>) -> bool {
    let before = body.len();
    body.retain(|_, value| value != &json!(REDACTED));
    let mut any = body.len() != before;
    for value in body.values_mut() {
        any |= match value {
            Value::Object(inner) => without_redacted(inner),
            Value::Array(items) => {
                let before = items.len();
                items.retain(|item| item != &json!(REDACTED));
                let mut any = items.len() != before;
                for item in items.iter_mut() {
                    if let Value::Object(inner) = item {
                        any |= without_redacted(inner);
                    }
                }
                // A multi-valued entry whose value was redacted says nothing left.
                items.retain(|item| !matches!(item, Value::Object(inner) if inner.is_empty()));
                any
            }
            _ => false,
        };
    }
    // An empty list is no value (RFC 7643 §2.5): one whose values were all redacted goes.
    body.retain(|_, value| !matches!(value, Value::Array(items) if items.is_empty()));
    any
}

/// The canonical spelling of an intent key (`name.givenname` → `name.givenName`), or the key
/// as it is when the schema does not know it.
fn canonical(resource_type: &str, key: &str) -> String {
    let endpoint = format!("/{resource_type}");
    ResourceType::by_endpoint(&endpoint)
        .zip(AttrPath::parse(key).ok())
        .and_then(|(rt, path)| rt.resolve(&path))
        .map_or_else(|| key.to_owned(), |resolved| resolved.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::compare;
    use std::collections::BTreeMap;

    fn ann(active: Option<bool>, exists: bool) -> Intended {
        Intended {
            resource_type: "Users".into(),
            resource_id: "u1".into(),
            exists,
            active,
            user_name: Some("ann".into()),
            attributes: BTreeMap::from([("name.givenname".to_owned(), json!("Ann"))]),
            body: json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann",
                "password": "[REDACTED]", "name": {"givenName": "Annie"},
                "emails": [{"value": "ann@example.com", "type": "work"}], "phoneNumbers": [{"value": "[REDACTED]"}]})
            .as_object()
            .cloned(),
            ..Intended::default()
        }
    }

    fn planned(intended: &Intended, actual: Option<Value>) -> Option<Repair> {
        let drifts = compare(intended, actual.as_ref());
        plan(intended, actual.as_ref(), &drifts)
    }

    fn operations(repair: &Repair) -> Vec<Value> {
        repair.body["Operations"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn a_leaver_with_access_is_deactivated_never_deleted() {
        let app = json!({"id": "u1", "userName": "ann", "name": {"givenName": "Ann"}, "active": true});
        for (intended, why) in [
            (ann(Some(false), true), "deactivated by the IdP"),
            (ann(None, false), "deleted by the IdP"),
        ] {
            let repair = planned(&intended, Some(app.clone())).expect(why);
            assert_eq!(repair.method, "PATCH", "{why}");
            assert_eq!(repair.path, "/Users/u1", "{why}");
            assert_eq!(repair.kinds, [DriftKind::ActiveMismatch], "{why}");
            assert_eq!(
                operations(&repair),
                [json!({"op": "replace", "path": "active", "value": false})],
                "{why}"
            );
        }
    }

    #[test]
    fn each_drift_of_a_resource_is_one_operation_of_one_patch() {
        let app = json!({"id": "u/1", "userName": "ann", "name": {"givenName": "Bob"}, "active": false});
        let repair = planned(&ann(Some(true), true), Some(app)).unwrap();
        assert_eq!(repair.path, "/Users/u%2F1", "the application's id is one path segment");
        assert_eq!(
            operations(&repair),
            [
                json!({"op": "replace", "path": "active", "value": true}),
                json!({"op": "replace", "path": "name.givenName", "value": "Ann"}),
            ]
        );
        assert_eq!(repair.kinds, [DriftKind::InactiveInApp, DriftKind::AttributeMismatch]);
    }

    #[test]
    fn a_lost_user_is_created_again_from_its_create_and_what_the_idp_set_since() {
        let repair = planned(&ann(Some(false), true), None).unwrap();
        assert_eq!((repair.method.as_str(), repair.path.as_str()), ("POST", "/Users"));
        assert_eq!(
            repair.body,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann",
                "name": {"givenName": "Ann"}, "emails": [{"value": "ann@example.com", "type": "work"}],
                "active": false})
        );
        assert_eq!(
            repair.notes.len(),
            1,
            "the redacted password and phone number are said to be left out"
        );
    }

    #[test]
    fn a_groups_members_are_added_and_removed_by_id() {
        let group = Intended {
            resource_type: "Groups".into(),
            resource_id: "g1".into(),
            exists: true,
            display_name: Some("Team".into()),
            members: Some(BTreeMap::from([("u2".to_owned(), "U2".to_owned())])),
            ..Intended::default()
        };
        let app = json!({"id": "g1", "displayName": "Team", "members": [{"value": "u\"9"}]});
        let repair = planned(&group, Some(app)).unwrap();
        assert_eq!(
            operations(&repair),
            [
                json!({"op": "remove", "path": "members[value eq \"u\\\"9\"]"}),
                json!({"op": "add", "path": "members", "value": [{"value": "U2"}]}),
            ]
        );
        let created = planned(&group, None).unwrap();
        assert_eq!(
            created.body,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Team",
                "members": [{"value": "U2"}]})
        );
    }

    #[test]
    fn nothing_is_written_for_what_only_needs_reporting_or_cannot_be_addressed() {
        let unknown = crate::drift::unknown_to_idp("Users", &json!({"id": "x", "userName": "eve"}));
        assert_eq!(plan(&ann(Some(true), true), None, &[unknown]), None);
        let app = json!({"id": "..", "userName": "ann", "name": {"givenName": "Ann"}, "active": true});
        assert_eq!(
            planned(&ann(Some(false), true), Some(app)),
            None,
            "`..` is no resource's path"
        );
        let same = json!({"id": "u1", "userName": "ANN", "name": {"givenName": "Ann"}, "active": true});
        assert_eq!(planned(&ann(Some(true), true), Some(same)), None);
    }
}
