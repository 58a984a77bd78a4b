use super::*;
use serde_json::json;

/// The outcomes replay sends again (the store's `REPLAYABLE_OUTCOMES`, which the proxy passes).
const REPLAYABLE: [&str; 4] = ["failed", "unreachable", "partial", "interrupted"];

/// An exchange at time `t` on user `u1` of route `r`.
fn write(t: u32, method: &str, outcome: &str, body: Value) -> Record {
    Record {
        id: format!("0000000{t:02}"),
        route: Some("r".into()),
        method: method.into(),
        resource_type: Some("Users".into()),
        resource_id: Some("u1".into()),
        operation: match method {
            "PUT" => "replace",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "create",
        }
        .into(),
        request_body: (!body.is_null()).then(|| body.to_string()),
        outcome: outcome.into(),
        ..Record::default()
    }
}

/// A PATCH at `t` setting `active`.
fn active(t: u32, outcome: &str, value: bool) -> Record {
    write(
        t,
        "PATCH",
        outcome,
        patch(json!([{"op": "replace", "path": "active", "value": value}])),
    )
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn replay_of(mut replay: Record, original: &Record) -> Record {
    replay.replay_of = Some(original.id.clone());
    replay
}

/// Plans `candidates` with `others` also recorded on the resource; returns each step's kind.
fn kinds(candidates: Vec<Record>, others: Vec<Record>) -> Vec<String> {
    steps(candidates, others, Vec::new())
        .into_iter()
        .map(|step| match step {
            Step::Send {
                left_out,
                left_out_members,
                ..
            } if left_out.is_empty() && left_out_members.is_empty() => "send".to_owned(),
            Step::Send {
                left_out,
                left_out_members,
                ..
            } if left_out.is_empty() => format!("send without members {left_out_members:?}"),
            Step::Send { left_out, .. } => format!("send without {left_out:?}"),
            Step::Skip { kind, .. } => kind.to_owned(),
        })
        .collect()
}

/// The steps for `candidates`, with `others` also recorded on the resource and `summary` the
/// resource's summary.
fn steps(candidates: Vec<Record>, others: Vec<Record>, summary: Vec<Kept>) -> Vec<Step> {
    let mut recorded = Recorded::default();
    for exchange in candidates.iter().chain(&others) {
        if let Some(key) = resource_of(exchange) {
            recorded.writes.entry(key.clone()).or_default().push(exchange.clone());
            recorded.summaries.insert(key, summary.clone());
        }
        if let Some(original) = &exchange.replay_of {
            recorded
                .replays
                .entry(original.clone())
                .or_default()
                .push(exchange.clone());
        }
    }
    plan(&candidates, &recorded, &REPLAYABLE)
}

/// A row of the resource's summary: `key` written at `t` by exchange `by` (at `t` but for a
/// replay or a bulk operation).
fn kept(key: &str, t: u32, by: u32) -> Kept {
    Kept {
        key: key.into(),
        stands_at: format!("0000000{t:02}"),
        exchange_id: format!("0000000{by:02}"),
    }
}

#[test]
fn a_deactivation_followed_by_a_reactivation_is_superseded() {
    let off = active(1, "unreachable", false);
    let on = write(
        2,
        "PATCH",
        "unreachable",
        patch(json!([{"op": "Replace", "value": {"active": true}}])),
    );
    assert_eq!(kinds(vec![off.clone(), on.clone()], vec![]), ["superseded", "send"]);
    // Superseded just the same when the reactivation succeeded at the time.
    let on_ok = write(
        2,
        "PATCH",
        "ok",
        on.request_body
            .as_deref()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap(),
    );
    assert_eq!(kinds(vec![off], vec![on_ok]), ["superseded"]);
}

#[test]
fn a_deactivation_followed_by_another_attribute_is_still_sent() {
    let off = active(1, "failed", false);
    let title = write(
        2,
        "PATCH",
        "ok",
        patch(json!([{"op": "replace", "path": "title", "value": "x"}])),
    );
    assert_eq!(kinds(vec![off], vec![title]), ["send"]);
}

#[test]
fn an_earlier_write_is_never_superseded_by_an_earlier_success() {
    let title = active(1, "ok", true);
    let off = active(2, "failed", false);
    assert_eq!(kinds(vec![off], vec![title]), ["send"]);
}

#[test]
fn a_failed_later_write_supersedes_nothing() {
    let off = active(1, "failed", false);
    let on = active(2, "failed", true);
    assert_eq!(kinds(vec![off], vec![on]), ["send"]);
}

#[test]
fn members_are_superseded_one_by_one() {
    let add = write(
        1,
        "PATCH",
        "failed",
        patch(json!([{"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}])),
    );
    let remove_a = write(
        2,
        "PATCH",
        "ok",
        patch(json!([{"op": "remove", "path": "members[value eq \"a\"]"}])),
    );
    // Sent without `a`: re-adding it would undo its later removal.
    assert_eq!(
        kinds(vec![add.clone()], vec![remove_a]),
        ["send without members [(0, [\"a\"])]"]
    );
    let remove_b = write(
        3,
        "PATCH",
        "ok",
        patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "B"}]}])),
    );
    let remove_a = write(
        2,
        "PATCH",
        "ok",
        patch(json!([{"op": "remove", "path": "members[value eq \"a\"]"}])),
    );
    assert_eq!(kinds(vec![add], vec![remove_a, remove_b]), ["superseded"]);
}

#[test]
fn a_patch_partly_superseded_is_sent_without_those_operations() {
    let both = write(
        1,
        "PATCH",
        "failed",
        patch(json!([
            {"op": "replace", "path": "title", "value": "a"},
            {"op": "replace", "path": "name.givenName", "value": "b"}
        ])),
    );
    let name = write(2, "PUT", "failed", json!({"userName": "x"}));
    let later_name = write(
        3,
        "PATCH",
        "ok",
        patch(json!([{"op": "replace", "value": {"name": {"givenName": "c"}}}])),
    );
    assert_eq!(kinds(vec![both.clone()], vec![later_name]), ["send without [1]"]);
    // A later PUT replaces everything; one that failed replaces nothing.
    assert_eq!(kinds(vec![both.clone()], vec![name.clone()]), ["send"]);
    assert_eq!(kinds(vec![both, name], vec![]), ["superseded", "send"]);
}

#[test]
fn a_later_delete_supersedes_everything_but_a_put_does_not_supersede_a_delete() {
    let put = write(1, "PUT", "unreachable", json!({"userName": "x"}));
    let delete = write(2, "DELETE", "unreachable", Value::Null);
    assert_eq!(kinds(vec![put.clone(), delete.clone()], vec![]), ["superseded", "send"]);
    let delete_first = write(1, "DELETE", "unreachable", Value::Null);
    let put_later = write(2, "PUT", "ok", json!({"userName": "x"}));
    assert_eq!(kinds(vec![delete_first], vec![put_later]), ["send"]);
}

#[test]
fn extension_attributes_are_keyed_each_by_name() {
    let manager = write(
        1,
        "PATCH",
        "failed",
        patch(
            json!([{"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}}}]),
        ),
    );
    let department = write(
        2,
        "PATCH",
        "ok",
        patch(
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "d"}]),
        ),
    );
    let manager_path = write(
        3,
        "PATCH",
        "ok",
        patch(
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "n"}}]),
        ),
    );
    assert_eq!(kinds(vec![manager.clone()], vec![department.clone()]), ["send"]);
    assert_eq!(kinds(vec![manager], vec![department, manager_path]), ["superseded"]);
}

#[test]
fn replays_count_where_their_original_stands() {
    let off = active(1, "unreachable", false);
    let on = active(2, "unreachable", true);
    // The reactivation was replayed (successfully) after both: the deactivation stays superseded.
    let on_replayed = replay_of(write(9, "PATCH", "ok", Value::Null), &on);
    let mut on_replayed = on_replayed;
    on_replayed.request_body = on.request_body.clone();
    assert_eq!(
        kinds(vec![off.clone(), on.clone()], vec![on_replayed]),
        ["superseded", "already_replayed"]
    );
    // A replay of the deactivation does not supersede the reactivation that came after it.
    let mut off_replayed = replay_of(write(9, "PATCH", "ok", Value::Null), &off);
    off_replayed.request_body = off.request_body.clone();
    assert_eq!(kinds(vec![on], vec![off_replayed]), ["send"]);
}

#[test]
fn reads_replays_and_successes_are_not_sent() {
    let mut read = write(1, "GET", "failed", Value::Null);
    read.operation = "get".into();
    let ok = write(2, "PATCH", "ok", patch(json!([])));
    let mut replay = write(3, "PATCH", "failed", patch(json!([])));
    replay.replay_of = Some("000000001".into());
    // Synthetic traffic (verify's) is not the IdP's: a replay of it would become intent.
    let mut synthetic = write(4, "PATCH", "failed", patch(json!([])));
    synthetic.synthetic = Some("verify".into());
    assert_eq!(
        kinds(vec![read, ok, replay, synthetic], vec![]),
        ["read_only", "not_replayable", "is_a_replay", "not_replayable"]
    );
}

#[test]
fn creates_are_sent_for_the_runner_to_check() {
    let mut create = write(1, "POST", "unreachable", json!({"userName": "x"}));
    create.resource_id = None;
    assert_eq!(kinds(vec![create], vec![]), ["send"]);
}

#[test]
fn a_put_that_would_undo_a_later_deactivation_is_a_conflict() {
    let put = write(1, "PUT", "unreachable", json!({"userName": "x", "active": true}));
    let off = active(2, "ok", false);
    assert_eq!(kinds(vec![put.clone()], vec![off.clone()]), ["conflict"]);
    // Planned in the same run, the same.
    let mut off_failed = off;
    off_failed.outcome = "unreachable".into();
    assert_eq!(kinds(vec![put, off_failed], vec![]), ["conflict", "send"]);
}

#[test]
fn a_whole_attribute_that_would_undo_a_later_part_is_left_out() {
    let both = write(
        1,
        "PATCH",
        "failed",
        patch(json!([
            {"op": "replace", "path": "name", "value": {"givenName": "a", "familyName": "b"}},
            {"op": "replace", "path": "members", "value": [{"value": "m1"}]},
            {"op": "replace", "path": "title", "value": "t"}
        ])),
    );
    let later = write(
        2,
        "PATCH",
        "ok",
        patch(json!([
            {"op": "replace", "value": {"name": {"givenName": "c"}}},
            {"op": "add", "path": "members", "value": {"value": "m2"}}
        ])),
    );
    assert_eq!(kinds(vec![both], vec![later]), ["send without [0, 1]"]);
}

#[test]
fn a_member_is_covered_only_by_itself_or_all_members() {
    let remove = write(
        1,
        "PATCH",
        "failed",
        patch(json!([{"op": "remove", "path": "members[value eq \"a.b\"]"}])),
    );
    let add_a = write(
        2,
        "PATCH",
        "ok",
        patch(json!([{"op": "add", "path": "members", "value": [{"value": "a"}]}])),
    );
    assert_eq!(kinds(vec![remove.clone()], vec![add_a]), ["send"]);
    let replace_all = write(
        3,
        "PATCH",
        "ok",
        patch(json!([{"op": "replace", "path": "members", "value": []}])),
    );
    assert_eq!(kinds(vec![remove], vec![replace_all]), ["superseded"]);
}

#[test]
fn values_added_later_overwrite_nothing_earlier() {
    let work_email = write(
        1,
        "PATCH",
        "failed",
        patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@x"}])),
    );
    let added = write(
        2,
        "PATCH",
        "ok",
        patch(json!([{"op": "add", "path": "emails", "value": [{"value": "b@x"}]}])),
    );
    let added_pathless = write(
        3,
        "PATCH",
        "ok",
        patch(json!([{"op": "add", "value": {"emails": [{"value": "c@x"}]}}])),
    );
    assert_eq!(kinds(vec![work_email], vec![added, added_pathless]), ["send"]);
}

#[test]
fn a_pruned_success_still_supersedes_an_older_failure_through_the_summary() {
    let off = active(1, "failed", false);
    // The reactivation at 2 was pruned; the summary keeps its write to `active`.
    let [step] = steps(vec![off.clone()], vec![], vec![kept("active", 2, 2)])
        .try_into()
        .unwrap();
    let Step::Skip { kind, reason } = step else {
        panic!("{step:?}")
    };
    assert_eq!(kind, "superseded");
    assert!(reason.contains("000000002 (pruned since"), "{reason}");

    // A summary row standing before it, or where it stands (its own replay, a fanned-out
    // operation of its replay), supersedes nothing.
    for row in [kept("active", 0, 0), kept("active", 1, 7)] {
        assert!(
            matches!(
                steps(vec![off.clone()], vec![], vec![row.clone()])[..],
                [Step::Send { .. }]
            ),
            "{row:?}"
        );
    }
    // A later write to a part of what it writes is a conflict, as when recorded.
    let put = write(1, "PUT", "failed", json!({"userName": "x", "active": true}));
    assert!(matches!(
        steps(vec![put], vec![], vec![kept("active", 2, 2)])[..],
        [Step::Skip { kind: "conflict", .. }]
    ));
}

#[test]
fn a_write_still_recorded_is_named_once_not_again_from_the_summary() {
    let off = active(1, "failed", false);
    let on = active(2, "ok", true);
    let [Step::Skip { reason, .. }] = &steps(vec![off], vec![on], vec![kept("active", 2, 2)])[..] else {
        panic!("not skipped")
    };
    assert_eq!(reason.matches("000000002").count(), 1, "{reason}");
    assert!(!reason.contains("pruned"), "{reason}");
}
