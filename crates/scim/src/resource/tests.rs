use super::*;
use crate::schema::{GROUP_TYPE, USER_TYPE};
use serde_json::json;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[track_caller]
fn refused(body: Value, scim_type: ScimType, fragment: &str) {
    let err = check_input(&body, &USER_TYPE).unwrap_err();
    assert_eq!(err.scim_type, Some(scim_type), "{err}");
    assert!(err.detail.contains(fragment), "{err}");
}

#[test]
fn input_is_canonicalised() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "USERNAME": "bjensen",
        "id": "client-chosen",
        "meta": {"resourceType": "User"},
        "groups": [],
        "Name": {"GivenName": "Barbara", "familyName": null},
        "addresses": null,
        "emails": [],
        "active": false,
        (ENTERPRISE): {"EmployeeNumber": "1"}
    });
    let out = check_input(&body, &USER_TYPE).unwrap();
    assert_eq!(
        Value::Object(out),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "active": false,
            (ENTERPRISE): {"employeeNumber": "1"}
        })
    );
}

#[test]
fn strict_refusals() {
    refused(json!({"userName": "a"}), ScimType::InvalidSyntax, "\"schemas\" must be");
    refused(
        json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "a"}),
        ScimType::InvalidSyntax,
        "urn:scim:schemas:core:1.0",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        ScimType::InvalidValue,
        "\"userName\" is required",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "active": "False"}),
        ScimType::InvalidValue,
        "true or false",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": {"value": "a@b"}}),
        ScimType::InvalidValue,
        "must be an array",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "nope": 1}),
        ScimType::InvalidSyntax,
        "unknown attribute \"nope\"",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "name.givenName": "x"}),
        ScimType::InvalidSyntax,
        "dotted",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", (ENTERPRISE): {"employeeNumber": "1"}}),
        ScimType::InvalidSyntax,
        "not listed in \"schemas\"",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
        ScimType::InvalidValue,
        "at most one",
    );
    refused(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE], "userName": "a", (ENTERPRISE): {"manager": "26118915"}}),
        ScimType::InvalidValue,
        "must be an object",
    );
    refused(json!([]), ScimType::InvalidSyntax, "JSON object");
    let group_err = check_input(
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]}),
        &GROUP_TYPE,
    )
    .unwrap_err();
    assert!(group_err.detail.contains("\"displayName\" is required"));
}

fn stored_user() -> Map<String, Value> {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": "1",
        "userName": "bjensen",
        "password": "secret",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "a@b", "type": "work"}],
        "meta": {"resourceType": "User"},
        (ENTERPRISE): {"employeeNumber": "1", "department": "Tours"}
    })
    .as_object()
    .unwrap()
    .clone()
}

#[track_caller]
fn projected(attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let projection = Projection::parse(attributes, excluded, &[&USER_TYPE]).unwrap();
    Value::Object(projection.apply(&stored_user(), &USER_TYPE))
}

#[test]
fn projection_follows_returned_and_parameters() {
    let all = projected(None, None);
    assert!(all.get("password").is_none(), "returned: never");
    assert_eq!(all["name"]["givenName"], "Barbara");

    let only = projected(Some("userName,name.familyName"), None);
    assert_eq!(
        only,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE], "id": "1", "userName": "bjensen", "name": {"familyName": "Jensen"}})
    );
    let ext = projected(Some(&format!("{ENTERPRISE}:department")), None);
    assert_eq!(ext[ENTERPRISE], json!({"department": "Tours"}));
    let excluded = projected(None, Some("emails,name.givenName,id,meta"));
    assert!(excluded.get("emails").is_none() && excluded.get("meta").is_none());
    assert_eq!(excluded["id"], "1", "returned: always survives excludedAttributes");
    assert_eq!(excluded["name"], json!({"familyName": "Jensen"}));
    let err = Projection::parse(Some("nope"), None, &[&USER_TYPE]).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn sorting_honours_types_and_missing_values() {
    let mut users = [
        json!({"userName": "b", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]}),
        json!({"userName": "A"}),
        json!({"userName": "c", "emails": [{"value": "m@x"}]}),
    ];
    let by_name = AttrPath::parse("userName").unwrap();
    users.sort_by(|a, b| compare_for_sort(a, b, &USER_TYPE, &by_name));
    assert_eq!(
        users
            .iter()
            .map(|u| u["userName"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["A", "b", "c"]
    );
    let by_email = AttrPath::parse("emails").unwrap();
    users.sort_by(|a, b| compare_for_sort(a, b, &USER_TYPE, &by_email));
    assert_eq!(
        users
            .iter()
            .map(|u| u["userName"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["b", "c", "A"]
    );
}
