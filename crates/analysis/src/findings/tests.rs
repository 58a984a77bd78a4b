use super::*;

fn observe<'a>(
    method: &'a str,
    path: &'a str,
    request: Option<&'a Value>,
    lifecycle: Option<&'a str>,
    status: u16,
    response: Option<&'a Value>,
) -> Observed<'a> {
    Observed {
        method,
        path,
        filter: None,
        request,
        lifecycle,
        status,
        response,
        has_body: response.is_some(),
        read_back: None,
        redaction: &NONE,
    }
}

/// Passwords only.
static NONE: std::sync::LazyLock<Redaction> = std::sync::LazyLock::new(Redaction::passwords_only);

fn kinds(found: &[Finding]) -> Vec<&'static str> {
    found.iter().map(|f| f.kind).collect()
}

#[test]
fn a_deactivation_answered_with_an_active_user_is_not_applied() {
    let request = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let still_active = json!({"id": "u1", "userName": "a", "active": true});
    let inactive = json!({"id": "u1", "userName": "a", "active": false});
    let found = findings(&observe(
        "PATCH",
        "/Users/u1",
        Some(&request),
        Some("deactivate"),
        200,
        Some(&still_active),
    ));
    assert_eq!(kinds(&found), ["deprovision_not_applied", "attribute_not_applied"]);
    assert!(found.iter().all(Finding::is_partial));
    assert!(findings(&observe(
        "PATCH",
        "/Users/u1",
        Some(&request),
        Some("deactivate"),
        200,
        Some(&inactive)
    ))
    .is_empty());
    // No body: nothing to compare (a read-back would tell).
    assert!(findings(&observe(
        "PATCH",
        "/Users/u1",
        Some(&request),
        Some("deactivate"),
        204,
        None
    ))
    .is_empty());
}

#[test]
fn written_values_are_compared_as_the_schema_says() {
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Bjensen",
        "title": "Tour Guide", "name": {"givenName": "Barbara"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"},
        "password": "secret", "emails": [{"value": "b@example.com"}]});
    let cases = [
        // userName is caseExact false: a change of case is the same value.
        (json!({"id": "u1", "userName": "bjensen", "title": "Tour Guide", "name": {"givenName": "Barbara"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}), vec![]),
        (json!({"id": "u1", "userName": "bjensen", "title": "Guide", "name": {"givenName": "Barbara"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}),
            vec!["title was written as \"Tour Guide\" but the application returned \"Guide\""]),
        (json!({"id": "u1", "userName": "bjensen", "title": "Tour Guide", "name": {}}),
            vec!["name.givenName was written as \"Barbara\" but the application returned no value for it",
                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber was written as \"701984\" but the application returned no value for it"]),
    ];
    for (returned, expected) in cases {
        let found = findings(&observe(
            "PUT",
            "/Users/u1",
            Some(&put),
            Some("update"),
            200,
            Some(&returned),
        ));
        let details: Vec<&str> = found.iter().map(|f| f.detail.as_str()).collect();
        assert_eq!(details, expected, "{returned}");
    }
}

#[test]
fn membership_changes_missing_from_the_returned_group_are_not_applied() {
    let request = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": "u3"}]},
        {"op": "remove", "path": "members[value eq \"u1\"]"}]});
    let applied = json!({"id": "g1", "displayName": "Eng", "members": [{"value": "u2"}, {"value": "u3"}]});
    let ignored = json!({"id": "g1", "displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}]});
    let lean = json!({"id": "g1", "displayName": "Eng"});
    let answered_with = |group: &Value| {
        findings(&observe(
            "PATCH",
            "/Groups/g1",
            Some(&request),
            Some("membership"),
            200,
            Some(group),
        ))
    };
    assert!(answered_with(&applied).is_empty());
    let found = answered_with(&ignored);
    assert_eq!(kinds(&found), ["membership_not_applied"]);
    assert_eq!(found[0].detail, "added but missing: u3; removed but still members: u1");
    assert!(answered_with(&lean).is_empty());
}

#[test]
fn lookups_are_checked_against_their_filter() {
    let lookup = |filter: &'static str, list: &Value| {
        let mut observed = observe("GET", "/Users", None, Some("lookup"), 200, None);
        observed.filter = Some(filter);
        observed.response = Some(list);
        kinds(&findings(&observed))
    };
    let list = |names: &[&str]| {
        json!({"totalResults": names.len(), "Resources": names.iter().enumerate()
            .map(|(i, n)| json!({"id": format!("u{i}"), "userName": n})).collect::<Vec<_>>()})
    };
    assert_eq!(lookup("userName eq \"alice\"", &list(&["alice"])), Vec::<&str>::new());
    assert_eq!(lookup("userName eq \"ALICE\"", &list(&["alice"])), Vec::<&str>::new());
    assert_eq!(lookup("userName eq \"alice\"", &list(&["bob"])), ["lookup_mismatch"]);
    assert_eq!(
        lookup("userName eq \"alice\"", &list(&["alice", "Alice"])),
        ["lookup_mismatch", "username_case_collision"]
    );
}

#[test]
fn errors_that_are_not_scim_errors_are_found() {
    let scim =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness"});
    let plain = json!({"error": "conflict"});
    assert!(findings(&observe("POST", "/Users", None, None, 409, Some(&scim))).is_empty());
    assert_eq!(
        kinds(&findings(&observe("POST", "/Users", None, None, 409, Some(&plain)))),
        ["non_scim_error"]
    );
    let mut html = observe("POST", "/Users", None, None, 500, None);
    html.has_body = true;
    assert_eq!(
        findings(&html)[0].detail,
        "the application answered 500 with a body that is not JSON"
    );
}

#[test]
fn bulk_operations_that_failed_make_a_partial_failure() {
    let response = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"], "Operations": [
        {"method": "POST", "bulkId": "q1", "status": "201"},
        {"method": "POST", "bulkId": "q2", "status": "409"}]});
    let found = findings(&observe("POST", "/Bulk", None, None, 200, Some(&response)));
    assert_eq!(kinds(&found), ["bulk_partial_failure"]);
    assert_eq!(found[0].detail, "1 of 2 bulk operations failed: #1 (bulkId q2) 409");
    assert!(found[0].is_partial());
}

#[test]
fn shapes_keep_the_form_and_drop_the_values() {
    let patch = json!({"Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "remove", "path": "members[value eq \"u1\"]"},
        {"op": "remove", "path": "members[value eq \"u2\"]"},
        {"op": "replace", "value": {"title": "x", "displayName": "y"}}]});
    let cases = [
        (
            "GET",
            "/Users",
            Some("userName eq \"alice\""),
            None,
            Some("get /users filter username eq"),
        ),
        (
            "GET",
            "/Users",
            Some("USERNAME eq \"bob\""),
            None,
            Some("get /users filter username eq"),
        ),
        (
            "GET",
            "/Users",
            Some("externalId eq \"e1\""),
            None,
            Some("get /users filter externalid eq"),
        ),
        (
            "GET",
            "/Users",
            Some("emails[type eq \"work\"].value eq \"a\""),
            None,
            Some("get /users filter emails[type eq].value eq"),
        ),
        ("GET", "/Users/42", None, None, Some("get /users/{id}")),
        ("DELETE", "/scim/v2/Users/42", None, None, Some("delete /users/{id}")),
        (
            "PATCH",
            "/Groups/g1",
            None,
            Some(&patch),
            Some("patch /groups/{id} remove:members[value eq] replace:active replace:{displayname,title}"),
        ),
        ("GET", "/ServiceProviderConfig", None, None, None),
    ];
    for (method, path, filter, body, expected) in cases {
        assert_eq!(
            shape(method, path, filter, body).as_deref(),
            expected,
            "{method} {path} {filter:?}"
        );
    }
}

#[test]
fn what_is_read_back_wins_over_what_the_write_answered() {
    let request = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    // Answered 204 with no body: only the read-back shows the user still active.
    let still_active = ReadBack::Resource(json!({"id": "u1", "userName": "a", "active": true}));
    let mut observed = observe("PATCH", "/Users/u1", Some(&request), Some("deactivate"), 204, None);
    assert!(findings(&observed).is_empty());
    observed.read_back = Some(&still_active);
    assert_eq!(
        kinds(&findings(&observed)),
        ["deprovision_not_applied", "attribute_not_applied"]
    );
    let inactive = ReadBack::Resource(json!({"id": "u1", "userName": "a", "active": false}));
    observed.read_back = Some(&inactive);
    assert!(findings(&observed).is_empty());
}

#[test]
fn a_deletion_read_back_as_still_there_is_not_applied() {
    let there = ReadBack::Resource(json!({"id": "u1", "userName": "a"}));
    let mut observed = observe("DELETE", "/Users/u1", None, Some("deprovision"), 204, None);
    observed.read_back = Some(&there);
    assert_eq!(kinds(&findings(&observed)), ["deprovision_not_applied"]);
    observed.read_back = Some(&ReadBack::Gone);
    assert!(findings(&observed).is_empty());
}

#[test]
fn findings_on_redacted_attributes_say_so_and_show_no_value() {
    let redaction = Redaction::new(&[
        "phoneNumbers".to_owned(),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".to_owned(),
        "nickName".to_owned(),
    ])
    .unwrap();
    let request = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "phoneNumbers", "value": [{"value": "+1-555-0101", "type": "work"}]},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "E-0102"},
        {"op": "replace", "path": "nickName", "value": "Babs-0103"},
        {"op": "replace", "path": "title", "value": "Engineer"}
    ]});
    let returned = json!({"id": "u1", "userName": "a", "title": "Manager", "nickName": "Babs-0198",
        "phoneNumbers": [{"value": "+1-555-0199", "type": "work"}]});
    let mut observed = observe("PATCH", "/Users/u1", Some(&request), None, 200, Some(&returned));
    observed.redaction = &redaction;
    let found = findings(&observed);
    assert_eq!(kinds(&found), ["attribute_not_applied"; 3], "{found:?}");
    let details: Vec<&str> = found.iter().map(|f| f.detail.as_str()).collect();
    for value in ["0101", "0102", "0103", "0198", "0199"] {
        assert!(details.iter().all(|d| !d.contains(value)), "{value} shown: {details:?}");
    }
    assert!(
        details.iter().any(|d| d.contains("nickName is redacted")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("employeeNumber is redacted")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("\"Engineer\"")),
        "what is stored is still compared openly: {details:?}"
    );

    let list = json!({"Resources": [{"id": "u1", "phoneNumbers": [{"value": "+1-555-0101"}]}]});
    let mut lookup = observe("GET", "/Users", None, None, 200, Some(&list));
    lookup.filter = Some("phoneNumbers.value eq \"+1-555-0102\"");
    lookup.redaction = &redaction;
    let found = findings(&lookup);
    assert_eq!(kinds(&found), ["lookup_mismatch"]);
    assert!(!found[0].detail.contains("0102"), "{}", found[0].detail);
}
