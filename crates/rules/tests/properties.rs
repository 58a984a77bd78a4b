//! Normalisation is total: whatever an IdP sends, every profile answers with a request to
//! forward or a refusal, never a panic, whatever the resource's state; and without state it
//! is idempotent on what it produced.

use proptest::prelude::*;
use scimtrail_rules::{builtin_profiles, normalize_request, normalize_response, Request, Response, Target};
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "op",
        "Op",
        "path",
        "value",
        "Operations",
        "schemas",
        "members",
        "manager",
        "active",
        "emails",
        "primary",
        "name.givenName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:scim:schemas:core:1.0",
        "meta",
        "groups",
        "id",
        "$ref",
        "userName",
        "managerId",
        "Resources",
        "totalResults",
        "status",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "True",
            "false",
            "members",
            "members[value eq \"u1\"]",
            "emails[type eq \"work\"].value",
            "Remove",
            "replace",
            "manager",
            "urn:scim:schemas:core:1.0",
            "u1",
            "",
        ])
        .prop_map(|s| json!(s)),
        "[a-zA-Z\\[\\]\" .:]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_profile_panics_and_normalised_requests_are_fixed_points(
        body in json_value(),
        method in prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]),
        path in prop::sample::select(vec!["/Users", "/Users/u1", "/Groups/g1", "/Groups", "/Users/.search", "/Bulk", "/x"]),
        query in proptest::option::of("[a-zA-Z=&+%2\" .]{0,24}"),
        status in prop::sample::select(vec![200_u16, 201, 204, 400, 404, 500]),
        state in json_value(),
    ) {
        let request = Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            content_type: Some("application/json".to_owned()),
            body: Some(body.clone()),
            if_match: None,
            post_filter: None,
            then: Vec::new(),
            pages: None,
        };
        for profile in builtin_profiles().unwrap() {
            if let Ok(first) = normalize_request(&request, &profile, &Target::default(), None) {
                let second = normalize_request(&first.value, &profile, &Target::default(), None);
                let second = second.expect("a normalised request is not refused");
                prop_assert_eq!(&second.value, &first.value, "profile {}", profile.name);
                let response = Response { status, content_type: None, body: Some(body.clone()), has_body: true, retry_after: Some("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()), received_at_secs: 784111700 };
                let _ = normalize_response(&first.value, &response, &profile, &Target::default());
            }
            // The stateful rules, for applications without PATCH or without value-path
            // filters, on an arbitrary state: total too.
            for (patch, value_path_filters) in [(false, true), (true, false), (true, true)] {
                let target = Target { patch, value_path_filters, ..Target::default() };
                let _ = normalize_request(&request, &profile, &target, Some(&body));
                let _ = normalize_request(&request, &profile, &target, Some(&state));
            }
            // Every knob of a lacking application at once, responses included (R12 evaluates).
            let lacking = Target {
                password_sync: false,
                empty_members_replace: false,
                filter_attributes: vec!["displayName".to_owned()],
                filter_operators: vec!["eq".to_owned()],
                strict_booleans: false,
                bulk: true,
                user_name_case_exact: true,
                max_results: 3,
                put: false,
                max_patch_operations: Some(1),
                max_operation_values: Some(1),
                ..Target::default()
            };
            let _ = normalize_request(&request, &profile, &lacking, Some(&state));
            if let Ok(forwarded) = normalize_request(&request, &profile, &lacking, None) {
                let response = Response { status, content_type: None, body: Some(state.clone()), has_body: true, retry_after: None, received_at_secs: 0 };
                let _ = normalize_response(&forwarded.value, &response, &profile, &lacking);
            }
        }
    }
}
