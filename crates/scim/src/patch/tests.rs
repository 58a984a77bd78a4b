//! One test per example of RFC 7644 §3.5.2 and per IdP PATCH shape of IDP-QUIRKS.md, showing
//! what strict RFC semantics do with it.

use super::*;
use crate::schema::{GROUP_TYPE, USER_TYPE};
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

#[track_caller]
fn apply(rt: &ResourceType, resource: &Value, ops: Value) -> Result<Value, PatchError> {
    let request = PatchRequest::from_json(&patch(ops))?;
    let mut out = resource.clone();
    request.apply(&mut out, rt)?;
    Ok(out)
}

#[track_caller]
fn refused(rt: &ResourceType, resource: &Value, ops: Value, scim_type: ScimType, fragment: &str) {
    let err = apply(rt, resource, ops).unwrap_err();
    assert_eq!(err.scim_type, scim_type, "{err}");
    assert!(err.to_string().contains(fragment), "{err}");
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}]
    })
}

fn user_without_work_email() -> Value {
    let mut user = user();
    user["emails"] = json!([{"value": "babs@jensen.org", "type": "home"}]);
    user
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"},
            {"value": "u1091", "display": "Leaver"}
        ]
    })
}

fn member_ids(group: &Value) -> Vec<&str> {
    group
        .get("members")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |m| m.iter().map(|m| m["value"].as_str().unwrap()).collect())
}

// === RFC 7644 §3.5.2.1 add ===

#[test]
fn rfc_add_member_to_group() {
    let out = apply(&GROUP_TYPE, &group(), json!([{
        "op": "add", "path": "members",
        "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646", "value": "2819c223-7f76-453a-919d-413861904646"}]
    }])).unwrap();
    // Same value already there, with a different $ref: it is a new value and is added.
    assert_eq!(member_ids(&out).len(), 4);
    let again = apply(
        &GROUP_TYPE,
        &out,
        json!([{"op": "add", "path": "members", "value": [out["members"][3].clone()]}]),
    )
    .unwrap();
    assert_eq!(member_ids(&again).len(), 4, "an identical value is not added twice");
}

#[test]
fn rfc_add_without_path_is_a_partial_resource() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{
            "op": "add",
            "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}
        }]),
    )
    .unwrap();
    assert_eq!(out["emails"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["nickName"], "Babs",
        "names are case-insensitive and stored canonically"
    );
}

#[test]
fn add_to_single_valued_replaces_and_complex_merges() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([
            {"op": "add", "path": "name", "value": {"middleName": "Jane"}},
            {"op": "add", "path": "title", "value": "Tour Guide"},
            {"op": "add", "path": "title", "value": "Manager"}
        ]),
    )
    .unwrap();
    assert_eq!(
        out["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen", "middleName": "Jane"})
    );
    assert_eq!(out["title"], "Manager");
}

#[test]
fn add_of_new_primary_clears_the_old_one() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{
            "op": "add", "path": "emails", "value": [{"value": "b@x.org", "type": "home", "primary": true}]
        }]),
    )
    .unwrap();
    assert_eq!(out["emails"][0]["primary"], false);
    assert_eq!(out["emails"][1]["primary"], true);
}

// === RFC 7644 §3.5.2.2 remove ===

#[test]
fn rfc_remove_one_member() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}]),
    )
    .unwrap();
    assert_eq!(member_ids(&out), ["902c246b-6245-4190-8e05-00816be7344a", "u1091"]);
}

#[test]
fn rfc_remove_all_members() {
    let out = apply(&GROUP_TYPE, &group(), json!([{"op": "remove", "path": "members"}])).unwrap();
    assert!(out.get("members").is_none(), "the attribute is unassigned");
}

#[test]
fn rfc_remove_by_complex_filter() {
    let mut resource = user();
    resource["emails"] = json!([
        {"value": "bjensen@example.com", "type": "work"},
        {"value": "babs@jensen.org", "type": "home"}
    ]);
    let out = apply(
        &USER_TYPE,
        &resource,
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    )
    .unwrap();
    assert_eq!(out["emails"], json!([{"value": "babs@jensen.org", "type": "home"}]));
}

#[test]
fn rfc_remove_all_then_add_replaces_members() {
    let out = apply(&GROUP_TYPE, &group(), json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"display": "James Smith", "value": "08e1d05d"}, {"display": "Tim Smith", "value": "08e1d05e"}]}
    ])).unwrap();
    assert_eq!(member_ids(&out), ["08e1d05d", "08e1d05e"]);
}

#[test]
fn rfc_remove_x509_certificate_by_value() {
    let mut resource = user();
    resource["x509Certificates"] =
        json!([{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}, {"value": "MIIB"}]);
    let out = apply(&USER_TYPE, &resource, json!([{"op": "remove", "path": "x509Certificates[value eq \"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx\"]"}])).unwrap();
    assert_eq!(out["x509Certificates"], json!([{"value": "MIIB"}]));
}

#[test]
fn remove_sub_attribute_and_errors() {
    let out = apply(&USER_TYPE, &user(), json!([{"op": "remove", "path": "name.givenName"}])).unwrap();
    assert_eq!(out["name"], json!({"familyName": "Jensen"}));
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "remove"}]),
        ScimType::NoTarget,
        "needs a \"path\"",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "remove", "path": "userName"}]),
        ScimType::InvalidValue,
        "required",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "remove", "path": "id"}]),
        ScimType::Mutability,
        "readOnly",
    );
    refused(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]),
        ScimType::NoTarget,
        "matches no value",
    );
}

// === RFC 7644 §3.5.2.3 replace ===

#[test]
fn rfc_replace_all_members() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{
            "op": "replace", "path": "members",
            "value": [{"display": "Babs Jensen", "value": "2819c223"}, {"display": "James Smith", "value": "08e1d05d"}]
        }]),
    )
    .unwrap();
    assert_eq!(member_ids(&out), ["2819c223", "08e1d05d"]);
}

#[test]
fn rfc_replace_work_address() {
    let out = apply(&USER_TYPE, &user(), json!([{
        "op": "replace", "path": "addresses[type eq \"work\"]",
        "value": {"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true}
    }])).unwrap();
    assert_eq!(out["addresses"][0]["streetAddress"], "911 Universal City Plaza");
    assert_eq!(out["addresses"][0]["postalCode"], "91608");
}

#[test]
fn rfc_replace_street_of_work_address() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
    )
    .unwrap();
    assert_eq!(
        out["addresses"][0],
        json!({"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "Hollywood"})
    );
}

#[test]
fn rfc_replace_without_path() {
    let out = apply(&USER_TYPE, &user(), json!([{
        "op": "replace",
        "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}
    }])).unwrap();
    assert_eq!(out["emails"].as_array().unwrap().len(), 2);
    assert_eq!(out["nickName"], "Babs");
}

#[test]
fn replace_of_absent_attribute_adds_and_complex_keeps_other_subs() {
    let out = apply(&USER_TYPE, &user(), json!([
        {"op": "replace", "path": "nickName", "value": "Babs"},
        {"op": "replace", "path": "name", "value": {"givenName": "Babs"}},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701984"}
    ])).unwrap();
    assert_eq!(out["nickName"], "Babs");
    assert_eq!(out["name"], json!({"givenName": "Babs", "familyName": "Jensen"}));
    assert_eq!(out[ENTERPRISE]["employeeNumber"], "701984");
    assert!(
        out["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)),
        "the extension URN is declared"
    );
}

#[test]
fn replace_with_filter_that_matches_nothing_is_no_target() {
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x@y.z"}]),
        ScimType::NoTarget,
        "matches no value",
    );
}

#[test]
fn whole_extension_by_urn_path() {
    let out = apply(&USER_TYPE, &user(), json!([{"op": "add", "path": ENTERPRISE, "value": {"schemas": [ENTERPRISE], "employeeNumber": "1", "manager": {"value": "26118915"}}}])).unwrap();
    assert_eq!(
        out[ENTERPRISE],
        json!({"employeeNumber": "1", "manager": {"value": "26118915"}})
    );
    let removed = apply(&USER_TYPE, &out, json!([{"op": "remove", "path": ENTERPRISE}])).unwrap();
    assert!(removed.get(ENTERPRISE).is_none());
    assert!(!removed["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)));
}

#[test]
fn failed_request_leaves_resource_unchanged() {
    let resource = user();
    let request = PatchRequest::from_json(&patch(json!([
        {"op": "replace", "path": "nickName", "value": "Babs"},
        {"op": "remove", "path": "emails[type eq \"nope\"]"}
    ])))
    .unwrap();
    let mut target = resource.clone();
    let err = request.apply(&mut target, &USER_TYPE).unwrap_err();
    assert_eq!(err.op_index, Some(1));
    assert_eq!(target, resource);
}

// === message syntax ===

#[test]
fn malformed_messages_are_refused_with_the_right_scim_type() {
    let cases = [
        (
            json!({"Operations": [{"op": "add", "path": "a", "value": 1}]}),
            ScimType::InvalidSyntax,
            "\"schemas\" must be",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "Operations": []}),
            ScimType::InvalidSyntax,
            "\"schemas\" must be",
        ),
        (patch(json!([])), ScimType::InvalidSyntax, "non-empty array"),
        (patch(json!({"op": "add"})), ScimType::InvalidSyntax, "non-empty array"),
        (patch(json!(["add"])), ScimType::InvalidSyntax, "must be a JSON object"),
        (
            patch(json!([{"op": "move", "path": "a"}])),
            ScimType::InvalidSyntax,
            "\"op\" is \"move\"",
        ),
        (
            patch(json!([{"path": "a"}])),
            ScimType::InvalidSyntax,
            "\"op\" is missing",
        ),
        (
            patch(json!([{"op": "add", "path": "a", "value": 1, "from": "b"}])),
            ScimType::InvalidSyntax,
            "unknown member \"from\"",
        ),
        (
            patch(json!([{"op": "add", "path": "emails[type eq", "value": 1}])),
            ScimType::InvalidPath,
            "offset 14",
        ),
        (
            patch(json!([{"op": "add", "path": 7, "value": 1}])),
            ScimType::InvalidPath,
            "must be a string",
        ),
        (
            patch(json!([{"op": "add", "path": "title"}])),
            ScimType::InvalidValue,
            "needs a \"value\"",
        ),
        (
            patch(json!([{"op": "replace", "value": "x"}])),
            ScimType::InvalidValue,
            "must be an object",
        ),
        (json!([1]), ScimType::InvalidSyntax, "JSON object"),
    ];
    for (body, scim_type, fragment) in cases {
        let err = PatchRequest::from_json(&body).unwrap_err();
        assert_eq!(err.scim_type, scim_type, "{body}: {err}");
        assert!(err.to_string().contains(fragment), "{body}: {err}");
    }
}

#[test]
fn semantic_errors() {
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "nope", "value": 1}]),
        ScimType::InvalidPath,
        "not an attribute",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "emails.value", "value": "a"}]),
        ScimType::InvalidPath,
        "needs a value filter",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "title", "value": 5}]),
        ScimType::InvalidValue,
        "must be a string",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "emails", "value": {"value": "a"}}]),
        ScimType::InvalidValue,
        "must be an array",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "name", "value": {"nope": "a"}}]),
        ScimType::InvalidSyntax,
        "no sub-attribute \"nope\"",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
        ScimType::Mutability,
        "readOnly",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "groups", "value": []}]),
        ScimType::Mutability,
        "readOnly",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "userName[value pr]", "value": "x"}]),
        ScimType::InvalidPath,
        "multi-valued complex",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "name[givenName pr].familyName", "value": "x"}]),
        ScimType::InvalidPath,
        "multi-valued complex",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "emails[nope eq \"x\"].value", "value": "x"}]),
        ScimType::InvalidPath,
        "not a sub-attribute",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "emails", "value": [{"value": "a@b", "primary": true}, {"value": "c@d", "primary": true}]}]),
        ScimType::InvalidValue,
        "at most one",
    );
}

// === IdP shapes (IDP-QUIRKS.md §1.3, §2.3, §4), under strict RFC semantics ===

#[test]
fn okta_deactivate_and_reactivate_pathless_replace() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .unwrap();
    assert_eq!(out["active"], false);
    let out = apply(&USER_TYPE, &out, json!([{"op": "replace", "value": {"active": true}}])).unwrap();
    assert_eq!(out["active"], true);
}

#[test]
fn okta_password_sync_pathless_replace() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]),
    )
    .unwrap();
    assert_eq!(out["password"], "t1meMa$heen");
}

#[test]
fn okta_group_rename_with_read_only_id_is_accepted_when_id_unchanged() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "value": {"id": "e9e30dba", "displayName": "Tour Guides 2"}}]),
    )
    .unwrap();
    assert_eq!(out["displayName"], "Tour Guides 2");
    refused(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "value": {"id": "other", "displayName": "x"}}]),
        ScimType::Mutability,
        "readOnly",
    );
}

#[test]
fn okta_membership_update_remove_by_filter_and_add_without_type() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([
            {"op": "remove", "path": "members[value eq \"u1091\"]"},
            {"op": "add", "path": "members", "value": [{"value": "00u1", "display": "new.hire@example.com"}]}
        ]),
    )
    .unwrap();
    assert_eq!(
        member_ids(&out),
        [
            "2819c223-7f76-453a-919d-413861904646",
            "902c246b-6245-4190-8e05-00816be7344a",
            "00u1"
        ]
    );
}

#[test]
fn okta_full_push_replace_members_including_empty() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1091", "display": "Leaver"}]}]),
    )
    .unwrap();
    assert_eq!(member_ids(&out), ["u1091"]);
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "path": "members", "value": []}]),
    )
    .unwrap();
    assert!(member_ids(&out).is_empty());
}

#[test]
fn entra_default_capitalised_ops_are_refused() {
    for op in ["Replace", "Add", "Remove"] {
        refused(
            &USER_TYPE,
            &user(),
            json!([{"op": op, "path": "nickName", "value": "Babs"}]),
            ScimType::InvalidSyntax,
            &format!("\"op\" is \"{op}\""),
        );
    }
}

#[test]
fn entra_default_string_boolean_is_refused_even_with_lowercase_op() {
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
        ScimType::InvalidSyntax,
        "\"Replace\"",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "active", "value": "False"}]),
        ScimType::InvalidValue,
        "true or false",
    );
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "active", "value": "false"}]),
        ScimType::InvalidValue,
        "true or false",
    );
}

#[test]
fn entra_flag_disable_is_rfc() {
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .unwrap();
    assert_eq!(out["active"], false);
}

#[test]
fn entra_default_one_replace_per_attribute_works_once_lowercased() {
    let ops = json!([
        {"op": "replace", "path": "displayName", "value": "Babs Jensen"},
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "babs@example.com"},
        {"op": "replace", "path": "name.givenName", "value": "Babs"},
        {"op": "replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "replace", "path": "externalId", "value": "babs"},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"}
    ]);
    let out = apply(&USER_TYPE, &user(), ops.clone()).unwrap();
    assert_eq!(out["emails"][0]["value"], "babs@example.com");
    assert_eq!(out["name"]["familyName"], "Jensen-Smith");
    assert_eq!(out[ENTERPRISE]["employeeNumber"], "42");
    // Entra writes to the work email whether or not one exists (create-on-absent, N8):
    // a strict server answers noTarget and nothing is applied.
    refused(
        &USER_TYPE,
        &user_without_work_email(),
        ops,
        ScimType::NoTarget,
        "Operations[1]",
    );
}

#[test]
fn entra_flag_pathless_replace_with_dotted_keys_is_refused() {
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "replace", "value": {"displayName": "Babs", "name.givenName": "Babs", "name.familyName": "Jensen", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "1"}}]),
        ScimType::InvalidValue,
        "\"name.givenName\"",
    );
}

#[test]
fn entra_default_member_removal_is_refused_for_its_op_and_empties_the_group_once_lowercased() {
    // As Entra sends it by default: refused for "Remove".
    refused(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}]),
        ScimType::InvalidSyntax,
        "\"Remove\"",
    );
    // Lowercased (and as JumpCloud sends it): RFC 7644 §3.5.2.2 removes *every* member — the
    // `value` naming one leaver is not part of `remove`. This is why normalisation (N3) exists.
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "remove", "path": "members", "value": [{"value": "u1091"}]}]),
    )
    .unwrap();
    assert!(member_ids(&out).is_empty(), "the whole group was emptied");
}

#[test]
fn entra_flag_member_removal_is_rfc() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "remove", "path": "members[value eq \"u1091\"]"}]),
    )
    .unwrap();
    assert_eq!(member_ids(&out).len(), 2);
}

#[test]
fn entra_member_add_with_null_ref() {
    let out = apply(&GROUP_TYPE, &group(), json!([{"op": "add", "path": "members", "value": [{"$ref": null, "value": "u2"}, {"$ref": null, "value": "u3"}]}])).unwrap();
    assert_eq!(member_ids(&out).len(), 5);
    assert_eq!(
        out["members"][3],
        json!({"value": "u2"}),
        "null is unassigned (RFC 7643 §2.5)"
    );
}

#[test]
fn entra_partial_replace_members_drops_the_others() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1091"}]}]),
    )
    .unwrap();
    assert_eq!(
        member_ids(&out),
        ["u1091"],
        "replace is a full replacement: the other members are gone"
    );
}

#[test]
fn entra_group_rename() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "replace", "path": "displayName", "value": "Guides"}]),
    )
    .unwrap();
    assert_eq!(out["displayName"], "Guides");
}

#[test]
fn entra_add_to_missing_filtered_email_is_no_target() {
    refused(
        &USER_TYPE,
        &user_without_work_email(),
        json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "b@x.com"}]),
        ScimType::NoTarget,
        "matches no value",
    );
}

#[test]
fn entra_validator_email_sub_attribute_ops() {
    let mut resource = user();
    resource["emails"] =
        json!([{"value": "w@x.com", "type": "work", "primary": true}, {"value": "h@x.com", "type": "home"}]);
    let out = apply(
        &USER_TYPE,
        &resource,
        json!([
            {"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home"},
            {"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}
        ]),
    )
    .unwrap();
    assert_eq!(out["emails"][1]["display"], "Home");
    assert_eq!(out["emails"][1]["primary"], true);
    assert_eq!(
        out["emails"][0]["primary"], false,
        "setting a primary clears the others"
    );
}

#[test]
fn entra_roles_filter_with_string_boolean_is_invalid_path() {
    let mut resource = user();
    resource["roles"] = json!([{"value": "Admin", "primary": true}]);
    refused(
        &USER_TYPE,
        &resource,
        json!([{"op": "replace", "path": "roles[primary eq \"True\"].value", "value": "User"}]),
        ScimType::InvalidPath,
        "use true or false",
    );
}

#[test]
fn entra_role_as_json_string_is_stored_literally() {
    let encoded = "{\"id\":\"1\",\"value\":\"Admin\",\"displayName\":\"Admin\"}";
    let out = apply(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "roles", "value": [{"value": encoded}]}]),
    )
    .unwrap();
    assert_eq!(
        out["roles"][0]["value"], encoded,
        "RFC-valid, but the role is now a JSON string (N7)"
    );
}

#[test]
fn entra_manager_shapes() {
    // Documented sample: unqualified `manager` with an array value.
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "manager", "value": [{"$ref": "https://x/Users/26118915", "value": "26118915"}]}]),
        ScimType::InvalidPath,
        "not an attribute",
    );
    // Real traffic: URN path with a bare string.
    refused(
        &USER_TYPE,
        &user(),
        json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "26118915"}]),
        ScimType::InvalidValue,
        "must be an object",
    );
    let out = apply(&USER_TYPE, &user(), json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "26118915"}}])).unwrap();
    assert_eq!(out[ENTERPRISE]["manager"]["value"], "26118915");
}

#[test]
fn jumpcloud_member_removal_empties_the_group() {
    let out = apply(
        &GROUP_TYPE,
        &group(),
        json!([{"op": "remove", "path": "members", "value": [{"value": "902c246b-6245-4190-8e05-00816be7344a"}]}]),
    )
    .unwrap();
    assert!(member_ids(&out).is_empty());
}
