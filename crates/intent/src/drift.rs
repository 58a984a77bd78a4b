//! Where what the application holds differs from what the IdP intends.

use crate::intended::Intended;
use scimtrail_scim::json;
use scimtrail_scim::redact::REDACTED;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A kind of drift, in the order a report lists them: a leaver with access first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// A user the IdP deactivated or deleted who is active in the application.
    ActiveMismatch,
    /// A user the IdP wants active who is not: a joiner without access.
    InactiveInApp,
    /// A resource the IdP wants that the application does not have.
    MissingInApp,
    /// A member the IdP put in a group that the application's group lacks.
    MemberMissing,
    /// A member of the application's group that the IdP did not put there (or took out).
    MemberExtra,
    /// A single value the IdP set that the application holds otherwise.
    AttributeMismatch,
    /// In the application, never provisioned through this route: informational.
    UnknownToIdp,
}

impl DriftKind {
    /// Every kind, in report order.
    pub const ALL: [DriftKind; 7] = [
        DriftKind::ActiveMismatch,
        DriftKind::InactiveInApp,
        DriftKind::MissingInApp,
        DriftKind::MemberMissing,
        DriftKind::MemberExtra,
        DriftKind::AttributeMismatch,
        DriftKind::UnknownToIdp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::ActiveMismatch => "active_mismatch",
            DriftKind::InactiveInApp => "inactive_in_app",
            DriftKind::MissingInApp => "missing_in_app",
            DriftKind::MemberMissing => "member_missing",
            DriftKind::MemberExtra => "member_extra",
            DriftKind::AttributeMismatch => "attribute_mismatch",
            DriftKind::UnknownToIdp => "unknown_to_idp",
        }
    }

    pub fn parse(text: &str) -> Option<DriftKind> {
        DriftKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One difference between the application and the IdP's intent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Drift {
    pub kind: DriftKind,
    pub resource_type: String,
    /// The application's id (for a create it never got, `?name`).
    pub resource_id: String,
    /// The userName or displayName, as the IdP or the application gives it.
    pub name: Option<String>,
    /// The attribute (`active`, `username`, `name.givenname`), or the member's id.
    pub part: Option<String>,
    pub intended: Value,
    pub actual: Value,
    /// The exchange that established the intent (none for `unknown_to_idp`).
    pub established_by: Option<String>,
}

/// How `actual` (the application's resource, `None` when it has none) differs from `intended`.
pub fn compare(intended: &Intended, actual: Option<&Value>) -> Vec<Drift> {
    let name = intended
        .user_name
        .clone()
        .or_else(|| intended.display_name.clone())
        .or_else(|| actual.and_then(|a| text_at(a, "username").or_else(|| text_at(a, "displayname"))));
    let drift = |kind, part: &str, intended_value: Value, actual_value: Value| Drift {
        kind,
        resource_type: intended.resource_type.clone(),
        resource_id: actual
            .and_then(|a| text_at(a, "id"))
            .unwrap_or_else(|| intended.resource_id.clone()),
        name: name.clone(),
        part: Some(part.to_owned()),
        intended: intended_value,
        actual: actual_value,
        established_by: intended.established_by(part).map(str::to_owned),
    };
    let users = intended.resource_type == "Users";
    let Some(actual) = actual else {
        return match intended.exists {
            true => vec![drift(DriftKind::MissingInApp, "exists", json!(true), json!(false))],
            false => Vec::new(),
        };
    };
    let app_active = value_at(actual, "active").and_then(Value::as_bool);
    if !intended.exists {
        // Deleted by the IdP and still there: a user with access, a group with members.
        if users && app_active != Some(false) {
            return vec![drift(
                DriftKind::ActiveMismatch,
                "exists",
                json!("deleted"),
                json!(app_active.unwrap_or(true)),
            )];
        }
        return member_ids(actual)
            .into_values()
            .map(|id| {
                drift(
                    DriftKind::MemberExtra,
                    &format!("members={}", id.to_lowercase()),
                    json!(false),
                    json!(id),
                )
            })
            .collect();
    }

    let mut drifts = Vec::new();
    match (intended.active, app_active) {
        // An application that never says `active` keeps a deactivated user as it was.
        (Some(false), Some(true) | None) if users => {
            drifts.push(drift(
                DriftKind::ActiveMismatch,
                "active",
                json!(false),
                json!(app_active),
            ));
        }
        (Some(true), Some(false)) if users => {
            drifts.push(drift(DriftKind::InactiveInApp, "active", json!(true), json!(false)));
        }
        _ => {}
    }
    let named = [
        ("username", &intended.user_name, true),
        ("externalid", &intended.external_id, false),
        ("displayname", &intended.display_name, false),
    ];
    let attributes = intended
        .attributes
        .iter()
        .map(|(key, value)| (key.as_str(), Some(value)));
    let mut singles: Vec<(&str, Option<Value>, bool)> = named
        .iter()
        .map(|(key, value, folded)| (*key, value.as_ref().map(|v| json!(v)), *folded))
        .collect();
    singles.extend(attributes.map(|(key, value)| (key, value.cloned(), false)));
    for (key, wanted, case_insensitive) in singles {
        let Some(wanted) = wanted else { continue };
        // What the record keeps redacted is not compared.
        if wanted == json!(REDACTED) {
            continue;
        }
        let held = value_at(actual, key).cloned().unwrap_or(Value::Null);
        let same = match (&wanted, &held) {
            (Value::String(a), Value::String(b)) if case_insensitive => a.to_lowercase() == b.to_lowercase(),
            (a, b) => a == b,
        };
        if !same {
            drifts.push(drift(DriftKind::AttributeMismatch, key, wanted, held));
        }
    }
    if let Some(members) = &intended.members {
        let held = member_ids(actual);
        for (lower, id) in members {
            if !held.contains_key(lower) {
                drifts.push(drift(
                    DriftKind::MemberMissing,
                    &format!("members={lower}"),
                    json!(id),
                    json!(null),
                ));
            }
        }
        for (lower, id) in held {
            if !members.contains_key(&lower) {
                drifts.push(drift(
                    DriftKind::MemberExtra,
                    &format!("members={lower}"),
                    json!(null),
                    json!(id),
                ));
            }
        }
    }
    drifts.sort_by_key(|d| d.kind);
    drifts
}

/// A resource in the application that no write through this route made.
pub fn unknown_to_idp(resource_type: &str, actual: &Value) -> Drift {
    Drift {
        kind: DriftKind::UnknownToIdp,
        resource_type: resource_type.to_owned(),
        resource_id: text_at(actual, "id").unwrap_or_default(),
        name: text_at(actual, "username").or_else(|| text_at(actual, "displayname")),
        part: None,
        intended: Value::Null,
        actual: json!({"active": value_at(actual, "active")}),
        established_by: None,
    }
}

/// The value at a key (`name.givenname`, `urn:…:user:employeenumber`), any casing.
fn value_at<'a>(resource: &'a Value, key: &str) -> Option<&'a Value> {
    let object = resource.as_object()?;
    if key.starts_with("urn:") {
        let (urn, attribute) = key.rsplit_once(':')?;
        let extension = json::get(object, urn)?;
        return value_at(extension, attribute);
    }
    let mut parts = key.split('.');
    let first = json::get(object, parts.next()?)?;
    parts.try_fold(first, |value, part| json::get(value.as_object()?, part))
}

/// The text at a key (see [`value_at`]), any casing.
pub fn text_at(resource: &Value, key: &str) -> Option<String> {
    value_at(resource, key).and_then(Value::as_str).map(str::to_owned)
}

/// The application's members of a group, by lower-case id.
fn member_ids(resource: &Value) -> BTreeMap<String, String> {
    value_at(resource, "members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            m.as_object()
                .and_then(|m| json::get(m, "value"))
                .and_then(Value::as_str)
        })
        .map(|id| (id.to_lowercase(), id.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(exists: bool, active: Option<bool>) -> Intended {
        let mut intended = Intended {
            resource_type: "Users".into(),
            resource_id: "u1".into(),
            exists,
            active,
            user_name: Some("Ann".into()),
            ..Intended::default()
        };
        intended.established.insert("exists".into(), "e-create".into());
        intended.established.insert("active".into(), "e-active".into());
        intended
    }

    fn kinds(drifts: &[Drift]) -> Vec<(&'static str, Option<&str>, Option<&str>)> {
        drifts
            .iter()
            .map(|d| (d.kind.as_str(), d.part.as_deref(), d.established_by.as_deref()))
            .collect()
    }

    #[test]
    fn a_users_state_is_compared_with_the_intent_and_each_drift_names_its_exchange() {
        let app = |active: Value| json!({"id": "u1", "userName": "ann", "active": active});
        type Case = (
            Intended,
            Option<Value>,
            Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
        );
        let cases: Vec<Case> = vec![
            (user(true, Some(true)), Some(app(json!(true))), vec![]),
            // userName compares case-insensitively (RFC 7643 caseExact false).
            (user(true, Some(false)), Some(app(json!(false))), vec![]),
            (
                user(true, Some(false)),
                Some(app(json!(true))),
                vec![("active_mismatch", Some("active"), Some("e-active"))],
            ),
            (
                user(true, Some(false)),
                Some(json!({"id": "u1", "userName": "ann"})),
                vec![("active_mismatch", Some("active"), Some("e-active"))],
            ),
            (
                user(true, Some(true)),
                Some(app(json!(false))),
                vec![("inactive_in_app", Some("active"), Some("e-active"))],
            ),
            (
                user(true, Some(true)),
                None,
                vec![("missing_in_app", Some("exists"), Some("e-create"))],
            ),
            (
                user(false, None),
                Some(app(json!(true))),
                vec![("active_mismatch", Some("exists"), Some("e-create"))],
            ),
            (user(false, None), Some(app(json!(false))), vec![]),
            (user(false, None), None, vec![]),
            (
                user(true, Some(true)),
                Some(json!({"id": "u1", "userName": "bob", "active": true})),
                vec![("attribute_mismatch", Some("username"), Some("e-create"))],
            ),
        ];
        for (intended, actual, expected) in cases {
            let drifts = compare(&intended, actual.as_ref());
            assert_eq!(kinds(&drifts), expected, "{intended:?} against {actual:?}");
        }
    }

    #[test]
    fn single_values_are_compared_where_the_idp_set_them_redacted_ones_never() {
        let mut intended = user(true, None);
        intended.attributes.insert("name.givenname".into(), json!("Ann"));
        intended.attributes.insert("title".into(), json!("Lead"));
        intended.attributes.insert("phonenumber".into(), json!(REDACTED));
        intended.attributes.insert(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber".into(),
            json!("701984"),
        );
        let actual = json!({"id": "u1", "userName": "Ann", "name": {"givenName": "Ann"}, "title": "Intern",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": 701984}});
        let drifts = compare(&intended, Some(&actual));
        let parts: Vec<(&str, &Value, &Value)> = drifts
            .iter()
            .map(|d| (d.part.as_deref().unwrap_or_default(), &d.intended, &d.actual))
            .collect();
        assert_eq!(
            parts,
            [
                ("title", &json!("Lead"), &json!("Intern")),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber",
                    &json!("701984"),
                    &json!(701984)
                ),
            ]
        );
    }

    #[test]
    fn a_groups_members_are_compared_both_ways_and_a_deleted_group_keeps_none() {
        let mut group = Intended {
            resource_type: "Groups".into(),
            resource_id: "g1".into(),
            exists: true,
            display_name: Some("Team".into()),
            members: Some(BTreeMap::from([
                ("u1".to_owned(), "U1".to_owned()),
                ("u2".to_owned(), "u2".to_owned()),
            ])),
            ..Intended::default()
        };
        group.established.insert("members=u2".into(), "e-add-u2".into());
        let actual = json!({"id": "g1", "displayName": "Team", "members": [{"value": "u1"}, {"value": "u9"}]});
        let drifts = compare(&group, Some(&actual));
        assert_eq!(
            kinds(&drifts),
            [
                ("member_missing", Some("members=u2"), Some("e-add-u2")),
                ("member_extra", Some("members=u9"), None),
            ]
        );
        group.members = None;
        assert_eq!(kinds(&compare(&group, Some(&actual))), [], "the IdP never said who");
        group.exists = false;
        let leftovers = compare(&group, Some(&actual));
        assert_eq!(leftovers.len(), 2, "a deleted group's members should not be members");
        assert!(leftovers.iter().all(|d| d.kind == DriftKind::MemberExtra));
    }

    #[test]
    fn a_kind_reads_back_from_its_name() {
        for kind in DriftKind::ALL {
            assert_eq!(DriftKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DriftKind::parse("nothing"), None);
    }
}
