//! Data-losing rules keep everything the IdP did not mean to change: each normalised PATCH
//! is applied with the strict PATCH implementation of `scimtrail-scim`, and what remains is
//! checked.

use crate::{builtin_profile, normalize_request, Request, Target};
use scimtrail_scim::schema::{GROUP_TYPE, USER_TYPE};
use scimtrail_scim::PatchRequest;
use serde_json::{json, Value};

fn forwarded(profile: &str, method: &str, path: &str, body: Value) -> Request {
    forwarded_to(profile, &Target::default(), method, path, body)
}

fn forwarded_to(profile: &str, target: &Target, method: &str, path: &str, body: Value) -> Request {
    let profile = builtin_profile(profile).unwrap().unwrap();
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: None,
        content_type: Some("application/scim+json".to_owned()),
        body: Some(body),
        if_match: None,
        post_filter: None,
        then: Vec::new(),
        pages: None,
    };
    normalize_request(&request, &profile, target, None).unwrap().value
}

fn group_with(members: &[&str]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Engineering",
        "members": members.iter().map(|m| json!({"value": m, "type": "User"})).collect::<Vec<_>>(),
    })
}

fn member_ids(group: &Value) -> Vec<&str> {
    group["members"]
        .as_array()
        .map(|members| members.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn n3_entra_default_member_removal_removes_exactly_the_named_members() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "bob"}, {"value": "dave"}]}]
    });
    // As sent, a strict application empties the group: the data loss N3 prevents.
    let mut as_sent = group_with(&["alice", "bob", "carol", "dave"]);
    let lowercase = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "members", "value": [{"value": "bob"}]}]
    });
    PatchRequest::from_json(&lowercase)
        .unwrap()
        .apply(&mut as_sent, &GROUP_TYPE)
        .unwrap();
    assert_eq!(member_ids(&as_sent), Vec::<&str>::new());

    let normalized = forwarded("entra", "PATCH", "/Groups/g1", body);
    let mut group = group_with(&["alice", "bob", "carol", "dave"]);
    PatchRequest::from_json(normalized.body.as_ref().unwrap())
        .unwrap()
        .apply(&mut group, &GROUP_TYPE)
        .unwrap();
    assert_eq!(member_ids(&group), ["alice", "carol"]);
    assert_eq!(group["displayName"], "Engineering");
}

#[test]
fn n3_jumpcloud_empty_removal_list_keeps_every_member() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "remove", "path": "members", "value": []},
            {"op": "add", "path": "members", "value": [{"value": "erin"}]}
        ]
    });
    let normalized = forwarded("jumpcloud", "PATCH", "/Groups/g1", body);
    let mut group = group_with(&["alice", "bob"]);
    PatchRequest::from_json(normalized.body.as_ref().unwrap())
        .unwrap()
        .apply(&mut group, &GROUP_TYPE)
        .unwrap();
    assert_eq!(member_ids(&group), ["alice", "bob", "erin"]);
}

#[test]
fn n4_dotted_keys_change_only_the_named_sub_attributes() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {
            "name.givenName": "Barbara",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984"
        }}]
    });
    let normalized = forwarded("entra", "PATCH", "/Users/u1", body);
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "u1",
        "userName": "bjensen",
        "name": {"givenName": "Babs", "familyName": "Jensen"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour Operations"}
    });
    PatchRequest::from_json(normalized.body.as_ref().unwrap())
        .unwrap()
        .apply(&mut user, &USER_TYPE)
        .unwrap();
    assert_eq!(user["name"], json!({"givenName": "Barbara", "familyName": "Jensen"}));
    let enterprise = &user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(enterprise["department"], "Tour Operations");
    assert_eq!(enterprise["employeeNumber"], "701984");
    assert!(user.get("name.givenName").is_none());
}

#[test]
fn n14_okta_rename_keeps_the_membership_changes_of_the_same_request() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "value": {"id": "g1", "displayName": "Engineering"}},
            {"op": "remove", "path": "members[value eq \"bob\"]"},
            {"op": "add", "path": "members", "value": [{"value": "erin", "display": "erin@example.com"}]}
        ]
    });
    let normalized = forwarded("okta", "PATCH", "/Groups/g1", body);
    let mut group = group_with(&["alice", "bob"]);
    PatchRequest::from_json(normalized.body.as_ref().unwrap())
        .unwrap()
        .apply(&mut group, &GROUP_TYPE)
        .unwrap();
    assert_eq!(member_ids(&group), ["alice", "erin"]);
}

#[test]
fn n11_onelogin_enterprise_object_keeps_every_attribute_when_it_moves() {
    let body = json!({
        "schemas": ["urn:scim:schemas:core:2.0", "urn:scim:schemas:extension:enterprise:2.0"],
        "userName": "jdoe@example.com",
        "urn:scim:schemas:extension:enterprise:2.0": {"department": "R&D", "costCenter": "42", "manager": {"managerId": "u9"}}
    });
    let normalized = forwarded("onelogin", "POST", "/Users", body);
    let body = normalized.body.unwrap();
    assert_eq!(
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        json!({"department": "R&D", "costCenter": "42", "manager": {"value": "u9"}})
    );
    assert!(body.get("urn:scim:schemas:extension:enterprise:2.0").is_none());
}

#[test]
fn requests_no_rule_touches_come_back_equal() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bjensen",
        "x-unknown": {"kept": [1, 2, 3]},
        "urn:example:custom:2.0:User": {"a": null}
    });
    for profile in ["generic", "google"] {
        let normalized = forwarded(profile, "POST", "/Users", body.clone());
        assert_eq!(normalized.body.as_ref(), Some(&body), "{profile}");
    }
}

#[test]
fn n19_okta_empty_push_as_a_remove_leaves_the_group_empty_as_intended_and_nothing_else_changed() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "members", "value": []}]
    });
    let target = Target {
        empty_members_replace: false,
        ..Target::default()
    };
    let normalized = forwarded_to("okta", &target, "PATCH", "/Groups/g1", body);
    assert_eq!(
        normalized.body.as_ref().unwrap()["Operations"][0],
        json!({"op": "remove", "path": "members"})
    );
    let mut group = group_with(&["alice", "bob"]);
    PatchRequest::from_json(normalized.body.as_ref().unwrap())
        .unwrap()
        .apply(&mut group, &GROUP_TYPE)
        .unwrap();
    assert_eq!(member_ids(&group), Vec::<&str>::new());
    assert_eq!(group["displayName"], "Engineering");
}

/// The pages R4 makes of `GET /Users?{query}` for an application of `max_results`.
fn pages_of(query: &str, target: &Target) -> (Option<String>, Vec<String>) {
    let profile = builtin_profile("okta").unwrap().unwrap();
    let request = Request {
        method: "GET".to_owned(),
        path: "/Users".to_owned(),
        query: Some(query.to_owned()),
        content_type: None,
        body: None,
        if_match: None,
        post_filter: None,
        then: Vec::new(),
        pages: None,
    };
    let sent = normalize_request(&request, &profile, target, None).unwrap().value;
    let pages = sent.pages.as_ref().map_or_else(Vec::new, |pages| {
        (0..).map_while(|n| pages.query(n)).take(1000).collect()
    });
    (sent.query, pages)
}

#[test]
fn r4_a_count_beyond_the_aggregate_bound_is_clamped_and_costs_at_most_its_pages() {
    let target = Target {
        max_results: 50,
        sorting: false,
        ..Target::default()
    };
    // Default bound: ten pages.
    for asked in ["100000", "1000000000000", "18446744073709551615"] {
        let (query, pages) = pages_of(&format!("startIndex=1&count={asked}"), &target);
        assert_eq!(query.as_deref(), Some("startIndex=1&count=50"));
        assert_eq!(pages.len(), 10, "{asked}");
        assert_eq!(pages.last().map(String::as_str), Some("startIndex=451&count=50"));
    }
    let bounded = Target {
        max_aggregate_results: Some(120),
        ..target.clone()
    };
    let (_, pages) = pages_of("count=1000", &bounded);
    assert_eq!(
        pages,
        [
            "startIndex=1&count=50",
            "startIndex=51&count=50",
            "startIndex=101&count=20"
        ]
    );
}

#[test]
fn r4_start_index_near_the_top_of_u64_never_wraps() {
    let target = Target {
        max_results: 50,
        sorting: false,
        ..Target::default()
    };
    let top = u64::MAX - 60;
    let (query, pages) = pages_of(&format!("startIndex={top}&count=500"), &target);
    assert_eq!(query, Some(format!("startIndex={top}&count=50")));
    // u64::MAX - 60 + 50 fits; + 100 does not: the pages stop there, nothing wraps to 1.
    assert_eq!(pages.len(), 2, "{pages:?}");
    // Not numbers, or beyond u64: the application's to refuse, forwarded as they are.
    for query in [
        "startIndex=99999999999999999999999&count=500",
        "count=lots",
        "startIndex=-5&count=500",
    ] {
        let (sent, pages) = pages_of(query, &target);
        assert_eq!(sent.as_deref(), Some(query));
        assert!(pages.is_empty());
    }
}
