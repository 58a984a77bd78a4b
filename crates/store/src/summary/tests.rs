//! The resources' summary on every backend: what a prune keeps of the writes it deletes,
//! whatever order they go in, and what it lets go.

use crate::retention::Retention;
use crate::tests::{completion, fresh_stores, id_at, new_exchange};
use crate::{NewExchange, Store, StoreError, Write};
use serde_json::{json, Value};

const DAY_MS: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_760_000_000_000;

/// A write to `resource` at `ms` (`seq` orders writes of the same millisecond) with `outcome`.
fn write(seq: u16, ms: i64, resource: (&str, &str), method: &str, body: Value, outcome: &str) -> (NewExchange, Write) {
    let id = id_at(ms, seq);
    let mut new = new_exchange(&id, ms, "someone");
    new.method = method.into();
    new.operation = match method {
        "PUT" => "replace",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "create",
    }
    .into();
    new.resource_type = Some(resource.0.into());
    new.resource_id = Some(resource.1.into());
    new.path = format!("/{}/{}", resource.0, resource.1);
    new.request_body = (!body.is_null()).then(|| body.to_string());
    let mut done = completion(&id, 200, outcome);
    done.resource_id = None;
    let whole = Write::Whole(Box::new(new.clone()), Box::new(done));
    (new, whole)
}

/// `write`, as a replay of `original`.
fn replay(seq: u16, ms: i64, original: &NewExchange, body: Value) -> (NewExchange, Write) {
    let resource = (
        original.resource_type.as_deref().unwrap_or_default(),
        original.resource_id.as_deref().unwrap_or_default(),
    );
    let (mut new, Write::Whole(_, done)) = write(seq, ms, resource, &original.method, body, "ok") else {
        unreachable!("a whole write")
    };
    new.replay_of = Some(original.id.clone());
    (new.clone(), Write::Whole(Box::new(new), done))
}

fn patch(path: &str, value: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": path, "value": value}]})
}

/// Keeps these outcomes for no time at all, the others forever.
fn forget(outcomes: &[&str]) -> Retention {
    Retention {
        keep_ms: outcomes.iter().map(|o| ((*o).to_owned(), Some(0))).collect(),
        max_store_bytes: None,
    }
}

/// A resource's summary as `key → (stands at, written by)`.
async fn summary_of(store: &Store, resource: (&str, &str)) -> Vec<(String, String, String)> {
    let rows = store.resource_writes("okta", resource.0, resource.1).await.unwrap();
    rows.into_iter().map(|r| (r.key, r.stands_at, r.exchange_id)).collect()
}

#[tokio::test]
async fn a_prune_keeps_the_latest_success_to_each_key_in_the_idps_order() {
    let user = ("Users", "u1");
    for store in fresh_stores().await {
        let backend = format!("{} (journal: {})", store.backend(), store.journaled());
        let at = |n: i64| NOW - 100_000 + n * 1000;
        let everything = forget(&["ok", "failed", "partial"]);
        let row = |key: &str, at: &NewExchange, by: &NewExchange| (key.to_owned(), at.id.clone(), by.id.clone());

        // A failure, three successes, a failure, and the first failure's replay, recorded last:
        // it stands where its original does, so it raises nothing.
        let (failure, failure_write) = write(0, at(0), user, "PATCH", patch("active", json!(false)), "failed");
        let (_, off) = write(1, at(1), user, "PATCH", patch("active", json!(false)), "ok");
        let (given, given_write) = write(2, at(2), user, "PATCH", patch("name.givenName", json!("A")), "ok");
        let (on, on_write) = write(3, at(3), user, "PATCH", patch("active", json!(true)), "ok");
        let (_, failed) = write(4, at(4), user, "PATCH", patch("title", json!("x")), "failed");
        let (_, replayed) = replay(5, at(5), &failure, patch("active", json!(false)));
        store
            .write_batch(vec![failure_write, off, given_write, on_write, failed, replayed])
            .await
            .unwrap();
        store.prune(&everything, NOW, false, None, |_| {}).await.unwrap();
        assert_eq!(
            summary_of(&store, user).await,
            [row("name.givenname", &given, &given), row("active", &on, &on)],
            "{backend}: the later success to each key; not the failures, not the replay"
        );
        let kept = store.resource_writes("okta", "Users", "u1").await.unwrap();
        assert_eq!(
            kept[1].written,
            Some(json!({"op": "replace", "value": true})),
            "{backend}"
        );
        assert_eq!(kept[1].written_at_ms, at(3), "{backend}");

        // A PUT covers every earlier key; a replay standing before it adds nothing.
        let (failure, failure_write) = write(6, at(6), user, "PATCH", patch("title", json!("y")), "failed");
        let (put, put_write) = write(7, at(7), user, "PUT", json!({"userName": "a"}), "ok");
        let (_, replayed) = replay(8, at(8), &failure, patch("title", json!("y")));
        store
            .write_batch(vec![failure_write, put_write, replayed])
            .await
            .unwrap();
        store.prune(&everything, NOW, false, None, |_| {}).await.unwrap();
        assert_eq!(summary_of(&store, user).await, [row("*", &put, &put)], "{backend}");

        // A DELETE leaves only itself, kept while an older failure on the resource remains.
        let (_, failed) = write(9, at(9), user, "PATCH", patch("title", json!("z")), "failed");
        let (delete, delete_write) = write(10, at(10), user, "DELETE", Value::Null, "ok");
        store.write_batch(vec![failed, delete_write]).await.unwrap();
        let report = store.prune(&forget(&["ok"]), NOW, false, None, |_| {}).await.unwrap();
        assert_eq!(report.summary_rows, 0, "{backend}");
        assert_eq!(
            summary_of(&store, user).await,
            [row("(deleted)", &delete, &delete), row("*", &delete, &delete)],
            "{backend}"
        );

        // An operation fanned out of a bulk request's replay stands where the replay's
        // original does. The older failure on u1 goes too, and with it u1's deletion.
        let (bulk, bulk_write) = write(11, at(11), ("Bulk", "-"), "POST", json!({}), "failed");
        let (mut bulk_replay, _) = write(12, at(12), ("Bulk", "-"), "POST", json!({}), "partial");
        bulk_replay.replay_of = Some(bulk.id.clone());
        let (mut child, Write::Whole(_, child_done)) = write(
            13,
            at(13),
            ("Users", "u2"),
            "PATCH",
            patch("active", json!(false)),
            "ok",
        ) else {
            unreachable!("a whole write")
        };
        child.parent_id = Some(bulk_replay.id.clone());
        let replay_done = completion(&bulk_replay.id, 200, "partial");
        store
            .write_batch(vec![
                bulk_write,
                Write::Whole(Box::new(bulk_replay), Box::new(replay_done)),
                Write::Whole(Box::new(child.clone()), child_done),
            ])
            .await
            .unwrap();
        let report = store.prune(&everything, NOW, false, None, |_| {}).await.unwrap();
        assert_eq!(
            summary_of(&store, ("Users", "u2")).await,
            [row("active", &bulk, &child)],
            "{backend}"
        );
        assert_eq!(report.summary_rows, 2, "{backend}: u1's deletion, no longer needed");
        assert!(summary_of(&store, user).await.is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn a_pruned_success_stays_in_the_summary_and_removals_go_once_no_failure_needs_them() {
    for store in fresh_stores().await {
        let backend = format!("{} (journal: {})", store.backend(), store.journaled());
        let day = |d: i64| NOW - d * DAY_MS;
        // A failure 100 days ago, the success that supersedes it 50 days ago (past `ok`'s 30).
        let (failure, failure_write) = write(
            1,
            day(100),
            ("Users", "u1"),
            "PATCH",
            patch("active", json!(false)),
            "failed",
        );
        let (success, success_write) = write(2, day(50), ("Users", "u1"), "PATCH", patch("active", json!(true)), "ok");
        // Removals: a member removed from g1 after a failure that added it (kept while the
        // failure is), one removed from g2 with nothing before it, u3 deleted with nothing
        // before it (both go).
        let member =
            |id: &str, op: &str| json!({"Operations": [{"op": op, "path": "members", "value": [{"value": id}]}]});
        let (g1_failure, g1_failed) = write(5, day(90), ("Groups", "g1"), "PATCH", member("m", "add"), "failed");
        let (_, g1_removed) = write(6, day(40), ("Groups", "g1"), "PATCH", member("m", "remove"), "ok");
        let (_, g2_removed) = write(7, day(40), ("Groups", "g2"), "PATCH", member("m", "remove"), "ok");
        let (_, u3_deleted) = write(8, day(40), ("Users", "u3"), "DELETE", Value::Null, "ok");
        store
            .write_batch(vec![
                failure_write,
                success_write,
                g1_failed,
                g1_removed,
                g2_removed,
                u3_deleted,
            ])
            .await
            .unwrap();

        let report = store
            .prune(&Retention::default(), NOW, false, None, |_| {})
            .await
            .unwrap();
        assert_eq!(report.exchanges.get("ok"), Some(&4), "{backend}: {report:?}");
        assert_eq!(
            report.summary_rows, 3,
            "{backend}: g2's removal, u3's deletion (two keys)"
        );
        assert!(
            matches!(store.get(&success.id).await, Err(StoreError::NotFound(_))),
            "{backend}"
        );
        for kept in [&failure.id, &g1_failure.id] {
            assert!(store.get(kept).await.is_ok(), "{backend}: {kept}");
        }
        assert_eq!(
            summary_of(&store, ("Users", "u1")).await,
            [("active".to_owned(), success.id.clone(), success.id.clone())],
            "{backend}: what supersedes the failure"
        );
        let g1: Vec<String> = summary_of(&store, ("Groups", "g1"))
            .await
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(g1, ["members=m"], "{backend}: the removal a failure still needs");
        assert!(summary_of(&store, ("Groups", "g2")).await.is_empty(), "{backend}");
        assert!(summary_of(&store, ("Users", "u3")).await.is_empty(), "{backend}");

        // Once the failure on g1 is gone, so is its removal; what is set stays.
        store
            .prune(&forget(&["failed"]), NOW, false, None, |_| {})
            .await
            .unwrap();
        assert!(summary_of(&store, ("Groups", "g1")).await.is_empty(), "{backend}");
        assert_eq!(summary_of(&store, ("Users", "u1")).await.len(), 1, "{backend}");
    }
}

/// What a prune reads and adds to its transactions for each write it deletes is found by
/// key, never by a scan: a delete of a resource's earlier keys once scanned every resource's
/// rows, and a batch's successes were once found by scanning every success (the soak's
/// prunes never finished). The removals a prune lets go are read through their own partial
/// index.
#[tokio::test]
async fn the_summary_is_kept_and_read_by_lookups_not_scans() {
    let store = fresh_stores().await.remove(0);
    let crate::Pool::Sqlite(pool, ..) = &store.pool else {
        unreachable!("the first store is SQLite")
    };
    let removals = super::needless_removals("'failed'", "FALSE");
    let removals = format!("SELECT x.route FROM resource_writes x WHERE {removals}");
    let batch = format!("id IN (?, ?) OR {}", crate::retention::hanging_off("?, ?").join(" OR "));
    let pruned = super::pruned_writes(&batch);
    let cases: [(&str, &str, &str); 5] = [
        ("what a batch prunes", &pruned, ""),
        ("keep", super::KEEP, ""),
        ("covered by everything", super::COVERED_BY_EVERYTHING, ""),
        ("a resource's summary", super::RESOURCE, ""),
        ("removals", &removals, "resource_writes_removals"),
    ];
    for (what, statement, partial_index) in cases {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", statement.replace('?', "'1'")))
                .fetch_all(pool)
                .await
                .unwrap();
        for (.., step) in &plan {
            // A search of every success by its outcome is a scan too.
            let scan = step.starts_with("SCAN") || step.ends_with("(outcome=?)");
            assert!(
                !scan || (!partial_index.is_empty() && step.contains(partial_index)),
                "{what}: {step} in {plan:?}"
            );
        }
    }
}
