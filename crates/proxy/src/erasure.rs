//! An erasure of one person's records (`Store::erase`), as the CLI and the admin API run it:
//! checked, carried out, and audited — the person named in the entry by the fingerprint of
//! the name given, never the name.

use crate::audit::{self, Caller};
use crate::fingerprint::Key;
use scimtrail_store::{Erasure, ErasureReport, Store, StoreError};
use serde_json::json;

/// Carries out `erasure` (counts only when `dry_run`) and audits it as `caller`'s.
pub async fn erase(
    store: &Store,
    key: &Key,
    instance: &str,
    caller: &Caller,
    erasure: &Erasure,
    dry_run: bool,
) -> Result<ErasureReport, StoreError> {
    let erased = store.erase(erasure, dry_run).await;
    let mut detail = json!({
        "user": erasure.user.as_deref().map(|user| key.fingerprint(user)),
        "resource": erasure.resource,
        "route": erasure.route,
        "dry_run": dry_run,
    });
    match &erased {
        Ok(report) => {
            detail["resources"] = json!(report.resources.len());
            detail["exchanges"] = json!(report.exchanges);
            detail["snapshots"] = json!(report.snapshots);
            detail["summary_rows"] = json!(report.summary_rows);
        }
        // A refusal names the person (the text asked for): kept as the kind of failure only.
        Err(StoreError::Refused(_)) => {
            detail["failed"] = json!("refused: the name fits several users, or records were not yet in the database")
        }
        Err(error) => detail["failed"] = json!(error.to_string()),
    }
    audit::record(store, caller, instance, "erasure", detail).await;
    erased
}

/// What an erasure request must name: a user or a resource, not both, not empty.
pub fn check(erasure: &Erasure) -> Result<(), String> {
    let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    match (given(&erasure.user), given(&erasure.resource)) {
        (true, false) | (false, true) => Ok(()),
        (true, true) => Err("give a user or a resource, not both".to_owned()),
        (false, false) => {
            Err("give the user (a userName, externalId or displayName) or the resource id to erase".to_owned())
        }
    }
}
