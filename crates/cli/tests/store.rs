//! `scimtrail store prune`: the retention policy applied on demand, dry first.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use scimtrail_store::{Completion, NewExchange, Store, Write};

mod common;

use common::run;
const DAY_MS: i64 = 86_400_000;

fn exchange(age_days: i64, n: u16, outcome: &str) -> Write {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - age_days * DAY_MS;
    let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        (ms / 1000) as u64,
        ((ms % 1000) * 1_000_000) as u32,
    ))
    .to_string();
    let new = NewExchange {
        id: id.clone(),
        received_at_ms: ms,
        instance: "cli-test".into(),
        route: Some("app".into()),
        idp: Some("okta".into()),
        method: "GET".into(),
        path: format!("/Users/{n}"),
        query: None,
        resource_type: Some("Users".into()),
        resource_id: Some(n.to_string()),
        user_name: None,
        operation: "get".into(),
        lifecycle: None,
        request_headers: serde_json::json!([]),
        request_body: None,
        replay_of: None,
        parent_id: None,
        client: Some("127.0.0.1".into()),
    };
    let done = Completion {
        id,
        duration_ms: 1,
        forwarded_headers: Some(serde_json::json!([])),
        forwarded_body: None,
        changes: serde_json::json!([]),
        upstream_status: Some(200),
        status: 200,
        response_headers: serde_json::json!([]),
        response_body: Some("{}".into()),
        outcome: outcome.into(),
        findings: serde_json::json!([]),
        bulk_operations: None,
        error: None,
        resource_id: None,
        user_name: None,
    };
    Write::Whole(Box::new(new), Box::new(done))
}

/// A new SQLite store: its file, URL, and the store.
async fn fresh_store() -> (std::path::PathBuf, String, Store) {
    let file = std::env::temp_dir().join(format!("scimtrail-cli-store-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", file.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (file, url, store)
}

#[tokio::test]
async fn store_prune_shows_what_would_go_then_deletes_it() {
    let (_, url, store) = fresh_store().await;
    // Past the defaults: 3 successes (30 days), 2 refusals (7 days); kept: the rest.
    let writes = vec![
        exchange(40, 1, "ok"),
        exchange(35, 2, "ok"),
        exchange(31, 3, "ok"),
        exchange(10, 4, "rejected"),
        exchange(8, 5, "rejected"),
        exchange(5, 6, "ok"),
        exchange(2, 7, "rejected"),
        exchange(100, 8, "failed"),
    ];
    store.write_batch(writes).await.unwrap();
    store.close().await;
    drop(store);

    let (ok, out, err) = run(&["store", "prune", "--dry-run", "--store", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("ok                   3 would go"), "{out}");
    assert!(out.contains("rejected             2 would go"), "{out}");
    assert!(out.contains("5 exchanges would go in all"), "{out}");

    let (ok, out, err) = run(&["store", "prune", "--store", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("5 exchanges deleted in all"), "{out}");
    assert!(out.contains("store: 3 exchanges"), "{out}");

    let (ok, out, _) = run(&["store", "prune", "--dry-run", "--store", &url]);
    assert!(ok && out.contains("0 exchanges would go in all"), "{out}");
}

#[tokio::test]
async fn store_backup_copies_a_store_into_a_new_file_that_opens_whole() {
    let (file, url, store) = fresh_store().await;
    store
        .write_batch(vec![exchange(1, 1, "ok"), exchange(2, 2, "failed")])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let target = file.with_extension("copy.db");
    let to = target.display().to_string();
    let backup = ["store", "backup", "--store", &url, "--to", &to];
    let (ok, out, err) = run(&backup);
    assert!(ok, "{err}");
    assert!(out.contains("backed up into"), "{out}");
    // Again, into the same file: refused.
    let (ok, _, err) = run(&backup);
    assert!(!ok && err.contains("exists"), "{err}");

    let copy = Store::connect(&format!("sqlite://{}", target.display())).await.unwrap();
    let all = copy
        .list(&scimtrail_store::ExchangeQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
}
