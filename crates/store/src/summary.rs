//! The resources' summary: of the successful writes pruned, per resource, the latest to each
//! key (an attribute path, a member: `scimtrail_scim::write_keys`), the exchange that made it,
//! when, what it wrote, and where it stands in the IdP's order. Replay decides from the writes
//! still recorded and, for those pruned, from the summary: a pruned success still supersedes
//! an older failure, so retention need not keep it.
//!
//! - Kept by the prune, in the transaction that deletes the writes ([`Store::summary_of`]):
//!   nothing is added to the exchange path, and no write leaves the record without being
//!   summarized. A key only ever moves to a later position, so writes summarized in any
//!   order (a replay deleted with its old original) leave the same summary.
//! - A write of everything (a create, a PUT, a DELETE) takes the place of every earlier key of
//!   its resource: it covers them all.
//! - What is set is kept while the resource exists; a removal (a member removed, a resource
//!   deleted) only while an older failure it supersedes remains (`retention.rs`).

use crate::column;
use crate::sql::{key_param, numbered_placeholders, text, Param};
use crate::{Pool, ResourceWrite, Store, StoreError};
use scimtrail_scim::write_keys::{touched, KeyWrite, EVERYTHING};

/// Where the exchange `e` stands in the IdP's order: a replay where its original does, an
/// exchange made for another (an operation of a bulk request) where that one stands.
macro_rules! stands_at {
    () => {
        "COALESCE(e.replay_of, (SELECT COALESCE(p.replay_of, p.id) FROM exchanges p WHERE p.id = e.parent_id), \
         e.parent_id, e.id)"
    };
}

/// Keeps one key's write (parameters: key, written, removal, exchange id), unless a later
/// write of everything already covers it or a later write of the key is kept.
pub(crate) const KEEP: &str = concat!(
    "INSERT INTO resource_writes (route, resource_type, resource_id, write_key, stands_at, exchange_id, \
     written_at, written, removal) \
     SELECT e.route, e.resource_type, e.resource_id, ?, ",
    stands_at!(),
    ", e.id, e.received_at, ?, ? FROM exchanges e WHERE e.id = ? AND e.route IS NOT NULL \
     AND e.resource_type IS NOT NULL AND e.resource_id IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM resource_writes w WHERE w.route = e.route AND w.resource_type = e.resource_type \
     AND w.resource_id = e.resource_id AND w.write_key = '*' AND w.stands_at > ",
    stands_at!(),
    ") ON CONFLICT (route, resource_type, resource_id, write_key) DO UPDATE SET stands_at = excluded.stands_at, \
     exchange_id = excluded.exchange_id, written_at = excluded.written_at, written = excluded.written, \
     removal = excluded.removal WHERE excluded.stands_at >= resource_writes.stands_at"
);

/// Before a write of everything is kept (parameters: its exchange id, twice): the keys of its
/// resource that stand before it go, it covers them. Found by the resource's key (a lookup),
/// not by a scan of every resource's rows.
pub(crate) const COVERED_BY_EVERYTHING: &str = concat!(
    "DELETE FROM resource_writes WHERE (route, resource_type, resource_id) IN \
     (SELECT e.route, e.resource_type, e.resource_id FROM exchanges e WHERE e.id = ?) \
     AND stands_at < (SELECT ",
    stands_at!(),
    " FROM exchanges e WHERE e.id = ?)"
);

pub(crate) const RESOURCE: &str = "SELECT write_key, stands_at, exchange_id, written_at, written FROM resource_writes \
     WHERE route = ? AND resource_type = ? AND resource_id = ? ORDER BY stands_at, write_key";

/// What a write wrote, key by key, from its operation (as classified: `create`, `replace`,
/// `patch`, `delete`; a search by POST writes nothing) and its recorded body.
fn key_writes(operation: &str, method: &str, request_body: Option<&str>) -> Vec<KeyWrite> {
    if !matches!(operation, "create" | "replace" | "patch" | "delete") {
        return Vec::new();
    }
    let body = request_body.and_then(|body| serde_json::from_str(body).ok());
    touched(method, body.as_ref()).into_iter().flatten().collect()
}

/// The statements that keep one successful write's keys, while its record is still there
/// (it holds the resource and where the write stands).
fn keep(id: &str, key_writes: &[KeyWrite]) -> Vec<(String, Vec<Param>)> {
    let mut statements = Vec::with_capacity(key_writes.len() + 1);
    if key_writes.iter().any(|k| k.key == EVERYTHING) {
        statements.push((COVERED_BY_EVERYTHING.to_owned(), vec![key_param(id), key_param(id)]));
    }
    for write in key_writes {
        statements.push((
            KEEP.to_owned(),
            vec![
                key_param(&write.key),
                text(&write.write.to_string()),
                Param::Int(Some(i64::from(write.is_removal()))),
                key_param(id),
            ],
        ));
    }
    statements
}

/// A summary row's key.
pub(crate) const KEY: [&str; 4] = ["route", "resource_type", "resource_id", "write_key"];

/// Removals (`removal = 1`) that no older failure on their resource, not yet replayed
/// successfully, needs: nothing they would supersede is left. `after_bulk` keeps those
/// after a failed bulk request on their route (its operations name their resources only in
/// its body). The summary's row is `x`.
pub(crate) fn needless_removals(failures: &str, after_bulk: &str) -> String {
    format!(
        "x.removal = 1 AND NOT EXISTS (SELECT 1 FROM exchanges f WHERE f.route = x.route \
         AND f.resource_type = x.resource_type AND f.resource_id = x.resource_id AND f.id < x.stands_at \
         AND f.method IN ('POST', 'PUT', 'PATCH', 'DELETE') AND f.outcome IN ({failures}) AND f.replay_of IS NULL \
         AND NOT EXISTS (SELECT 1 FROM exchanges fr WHERE fr.replay_of = f.id AND fr.outcome = 'ok')) \
         AND NOT ({after_bulk})"
    )
}

impl Store {
    /// The summary of one resource: of its successful writes pruned, the latest to each key,
    /// oldest first.
    pub async fn resource_writes(
        &self,
        route: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Vec<ResourceWrite>, StoreError> {
        self.caught_up().await;
        // Bound as they were written (see `column`).
        let [route, resource_type, resource_id] = [route, resource_type, resource_id].map(column::key);
        let rows: Vec<(String, String, String, i64, Option<String>)> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_as(RESOURCE)
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                sqlx::query_as(&numbered_placeholders(RESOURCE))
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(key, stands_at, exchange_id, written_at_ms, written)| ResourceWrite {
                key,
                stands_at,
                exchange_id,
                written_at_ms,
                written: written.and_then(|text| serde_json::from_str(&text).ok()),
            })
            .collect())
    }

    /// The statements that keep, in the summary, the successful writes among the exchanges
    /// `selected` picks (a condition on `exchanges`, binding `params`): to run in the
    /// transaction that deletes them, before the deletes.
    pub(crate) async fn summary_of(
        &self,
        selected: &str,
        params: Vec<Param>,
    ) -> Result<Vec<(String, Vec<Param>)>, StoreError> {
        let statement = pruned_writes(selected);
        type Pruned = (String, String, String, String, Option<String>, Option<String>);
        let rows: Vec<Pruned> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                crate::sql::bind_sqlite_as(sqlx::query_as(&statement), params)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = numbered_placeholders(&statement);
                crate::sql::bind_postgres_as(sqlx::query_as(&statement), params)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            // What a write wrote is read from its operation (`key_writes`): a read or a
            // search writes nothing.
            .filter(|(_, outcome, _, _, resource_id, _)| outcome == "ok" && resource_id.is_some())
            .flat_map(|(id, _, operation, method, _, body)| keep(id, &key_writes(operation, method, body.as_deref())))
            .collect())
    }
}

/// The exchanges `selected` picks, with what a summary needs of a successful write. Only
/// `selected` narrows it, so that each of its conditions is an index lookup (a condition on
/// the outcome drew SQLite to scan every success); the body is read for successes only.
pub(crate) fn pruned_writes(selected: &str) -> String {
    format!(
        "SELECT id, outcome, operation, method, resource_id, \
         CASE WHEN outcome = 'ok' THEN request_body END FROM exchanges WHERE {selected}"
    )
}

#[cfg(test)]
mod tests;
