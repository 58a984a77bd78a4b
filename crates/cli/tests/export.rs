//! `scimtrail exchanges export`: every exchange the filters select, as HAR or JSONL, into a
//! private file or standard output, audited.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::{exchange, fresh_store, run};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn exchanges_export_writes_har_and_jsonl_and_is_audited() {
    let (file, url, store) = fresh_store().await;
    let writes = (1..=5)
        .map(|n| exchange(1, n, if n == 3 { "failed" } else { "ok" }))
        .collect();
    store.write_batch(writes).await.unwrap();
    store.close().await;
    drop(store);

    let out = file.with_extension("export.jsonl");
    let target = out.display().to_string();
    let (ok, _, err) = run(&[
        "exchanges",
        "export",
        "--format",
        "jsonl",
        "--outcome",
        "ok",
        "--store",
        &url,
        "--out",
        &target,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("4 exchanges exported"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text
        .lines()
        .all(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["outcome"] == "ok"));
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600,
        "an export holds personal data"
    );

    let (ok, har, err) = run(&["exchanges", "export", "--store", &url, "--limit", "2"]);
    assert!(ok, "{err}");
    let har: serde_json::Value = serde_json::from_str(&har).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), 2);

    let (ok, _, err) = run(&["exchanges", "export", "--format", "csv", "--store", &url]);
    assert!(!ok && err.contains("not one of har, jsonl"), "{err}");

    let (ok, listed, err) = run(&["audit", "list", "--action", "export", "--store", &url, "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let entries = listed["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["detail"]["filter"]["outcome"], "ok");
    assert_eq!(entries[1]["detail"]["exchanges"], 4);
}
