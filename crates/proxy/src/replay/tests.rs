use super::preview::diff;
use super::rebuild::{replay_body, without_members, LeftOut};
use scimtrail_scim::redact::Redaction;
use scimtrail_store::{Exchange, NewExchange};
use serde_json::json;

#[test]
fn diff_names_each_changed_member() {
    let mut out = Vec::new();
    diff(
        "",
        &json!({"a": 1, "n": {"g": "x", "f": "y"}, "gone": true}),
        &json!({"a": 1, "n": {"g": "z", "f": "y"}, "new": [1]}),
        &mut out,
    );
    assert_eq!(
        out,
        vec![
            json!({"pointer": "/gone", "before": true, "after": null}),
            json!({"pointer": "/n/g", "before": "x", "after": "z"}),
            json!({"pointer": "/new", "before": null, "after": [1]}),
        ]
    );
}

#[test]
fn members_differ_one_by_one() {
    let mut out = Vec::new();
    diff(
        "",
        &json!({"members": [{"value": "a"}, {"value": "b"}]}),
        &json!({"members": [{"value": "b"}, {"value": "c"}]}),
        &mut out,
    );
    assert_eq!(
        out,
        vec![
            json!({"pointer": "/members[value eq \"a\"]", "before": {"value": "a"}, "after": null}),
            json!({"pointer": "/members[value eq \"c\"]", "before": null, "after": {"value": "c"}}),
        ]
    );
}

#[test]
fn members_changed_later_are_taken_out_of_a_member_operation() {
    let mut op = json!({"op": "add", "path": "members", "value": [{"value": "A"}, {"value": "b"}]});
    without_members(&mut op, &["a".to_owned()]);
    assert_eq!(op["value"], json!([{"value": "b"}]));
    let mut pathless = json!({"op": "add", "value": {"members": [{"value": "a"}, {"value": "c"}]}});
    without_members(&mut pathless, &["a".to_owned()]);
    assert_eq!(pathless["value"], json!({"members": [{"value": "c"}]}));
}

#[test]
fn a_password_only_patch_has_nothing_to_replay() {
    let original = Exchange::begun(NewExchange {
        method: "PATCH".into(),
        request_body: Some(
            json!({"Operations": [{"op": "replace", "path": "password", "value": "[REDACTED]"}]}).to_string(),
        ),
        ..NewExchange::default()
    });
    assert_eq!(
        replay_body(&original, LeftOut::default(), &Redaction::passwords_only())
            .unwrap_err()
            .0,
        "nothing_to_send"
    );
}

#[test]
fn left_out_operations_and_passwords_are_taken_out() {
    let original = Exchange::begun(NewExchange {
        method: "PATCH".into(),
        request_body: Some(
            json!({"Operations": [
                {"op": "replace", "path": "title", "value": "a"},
                {"op": "replace", "value": {"active": false, "password": "[REDACTED]"}}
            ]})
            .to_string(),
        ),
        ..NewExchange::default()
    });
    let leave_out = LeftOut {
        operations: &[0],
        members: &[],
    };
    let (body, notes) = replay_body(&original, leave_out, &Redaction::passwords_only()).unwrap();
    assert_eq!(
        body.unwrap(),
        json!({"Operations": [{"op": "replace", "value": {"active": false}}]})
    );
    assert_eq!(notes.len(), 1);
}

#[test]
fn redacted_attributes_are_left_out_of_a_patch_and_refuse_a_put() {
    let phones = Redaction::new(&["phoneNumbers".to_owned()]).unwrap();
    let patch = Exchange::begun(NewExchange {
        method: "PATCH".into(),
        request_body: Some(
            json!({"Operations": [
                {"op": "replace", "path": "phoneNumbers[type eq \"[REDACTED]\"].value", "value": "[REDACTED]"},
                {"op": "replace", "value": {"active": false, "phoneNumbers": "[REDACTED]"}}
            ]})
            .to_string(),
        ),
        ..NewExchange::default()
    });
    let (body, notes) = replay_body(&patch, LeftOut::default(), &phones).unwrap();
    assert_eq!(
        body.unwrap(),
        json!({"Operations": [{"op": "replace", "value": {"active": false}}]})
    );
    assert_eq!(
        notes,
        ["phoneNumbers is not stored ([route.record] redact_attributes) and is left out: set it again from the IdP"]
    );
    let put = Exchange::begun(NewExchange {
        method: "PUT".into(),
        request_body: Some(
            json!({"userName": "a", "phoneNumbers": "[REDACTED]", "password": "[REDACTED]"}).to_string(),
        ),
        ..NewExchange::default()
    });
    let (kind, reason) = replay_body(&put, LeftOut::default(), &phones).unwrap_err();
    assert_eq!(kind, "not_replayable");
    assert!(reason.starts_with("phoneNumbers is not stored"), "{reason}");
    // Without phone numbers in it, the same PUT goes, the password left out.
    let put = Exchange::begun(NewExchange {
        request_body: Some(json!({"userName": "a", "password": "[REDACTED]"}).to_string()),
        ..put.begun
    });
    assert_eq!(
        replay_body(&put, LeftOut::default(), &phones).unwrap().0.unwrap(),
        json!({"userName": "a"})
    );
    let bulk = Exchange::begun(NewExchange {
        method: "POST".into(),
        operation: "bulk".into(),
        request_body: Some(
            json!({"Operations": [{"method": "PUT", "path": "/Users/1", "data": {"userName": "a", "phoneNumbers": "[REDACTED]"}}]})
                .to_string(),
        ),
        ..NewExchange::default()
    });
    assert_eq!(
        replay_body(&bulk, LeftOut::default(), &phones).unwrap_err().0,
        "not_replayable"
    );
}

#[test]
fn an_erased_record_is_not_replayable_and_says_why() {
    let erased = Exchange::begun(NewExchange {
        method: "PATCH".into(),
        request_body: Some(scimtrail_store::ERASED.into()),
        ..NewExchange::default()
    });
    let (kind, reason) = replay_body(&erased, LeftOut::default(), &Redaction::passwords_only()).unwrap_err();
    assert_eq!(kind, "not_replayable");
    assert!(reason.contains("erased"), "{reason}");
}
