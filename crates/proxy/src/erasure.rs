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
    let report = store.erase(erasure, dry_run).await?;
    let detail = json!({
        "user": erasure.user.as_deref().map(|user| key.fingerprint(user)),
        "resource": erasure.resource,
        "route": erasure.route,
        "dry_run": dry_run,
        "resources": report.resources.len(),
        "exchanges": report.exchanges,
        "snapshots": report.snapshots,
        "summary_rows": report.summary_rows,
    });
    audit::record(store, caller, instance, "erasure", detail).await;
    Ok(report)
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
