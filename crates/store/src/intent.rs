//! The IdP's intent as the store keeps it (`intended_writes`: the latest write to each key of
//! each resource, `scimtrail_intent`), the writes not yet folded into it, and reconciliation
//! runs with their drifts.

use crate::sql::{text, Param};
use crate::{Store, StoreError};
use scimtrail_intent::{Drift, IntentWrite};
use serde_json::Value;
use std::collections::BTreeMap;

/// The operations whose writes are intent.
pub(crate) const WRITE_OPERATIONS: &str = "('create', 'replace', 'patch', 'delete')";

/// The `store_settings` entry of the id every write up to which is folded.
const INTENT_CURSOR: &str = "intent_folded_through";

/// How long a record may take to reach the database after a younger one did: the writes of
/// the last this many milliseconds are folded again at the next fold.
const SETTLE_MS: i64 = 5_000;

/// The start of the ids of UUIDv7s made at `ms`: every id below it was made before.
pub(crate) fn id_prefix_at(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    format!("{:08x}-{:04x}-", ms >> 16, ms & 0xffff)
}

/// A recorded write not yet folded into the intent.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UnfoldedWrite {
    pub id: String,
    pub replay_of: Option<String>,
    pub route: Option<String>,
    pub method: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// As forwarded (the received body when nothing changed it), redacted as recorded.
    pub body: Option<String>,
    pub outcome: String,
}

impl UnfoldedWrite {
    /// Whether it says what the IdP intends: an authenticated request the proxy did not refuse
    /// (a refusal — bad credentials, a request the rules could not make safe — says nothing
    /// the application should hold).
    pub fn is_intent(&self) -> bool {
        self.outcome != "rejected"
    }
}

/// One reconciliation run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reconciliation {
    pub id: String,
    pub route: String,
    pub resource_types: Vec<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Drifts by kind.
    pub counts: BTreeMap<String, u64>,
    pub error: Option<String>,
    pub actor: String,
    pub instance: String,
    /// What its repair did (`null`: it repaired nothing).
    pub repair: Option<Value>,
}

impl Store {
    /// Folds the completed writes recorded since the last fold into the intent, `batch` at a
    /// time; how many writes were folded. Idempotent: a write folded twice (two instances at
    /// once, or again below) changes nothing the second time.
    ///
    /// The writes are read in id order after the cursor (`store_settings`), up to the oldest
    /// exchange still in flight (its write is not complete yet). The cursor then moves to
    /// [`SETTLE_MS`] ago at the latest, not to the last write folded: a record may reach the
    /// database a little after younger ones (another instance's commit, a clock a little
    /// behind), and the writes of those last seconds are folded again next time. A spool
    /// drained into PostgreSQL moves the cursor back to its oldest record.
    pub async fn fold_pending_intent(&self, batch: i64) -> Result<u64, StoreError> {
        Ok(self.fold_intent_through(batch).await?.0)
    }

    /// [`Store::fold_pending_intent`]: how many writes were folded, and the id every write up
    /// to which is now folded (none past it may be pruned).
    pub(crate) async fn fold_intent_through(&self, batch: i64) -> Result<(u64, String), StoreError> {
        self.caught_up().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        let settled = id_prefix_at(now.saturating_sub(SETTLE_MS));
        let mut cursor = self.intent_cursor().await?;
        let in_flight: Vec<(Option<String>,)> = self
            .rows("SELECT MIN(id) FROM exchanges WHERE outcome = 'in_flight'", Vec::new())
            .await?;
        let before = in_flight.into_iter().next().and_then(|(id,)| id);
        let mut folded = 0;
        loop {
            let writes = self.unfolded_writes(&cursor, before.as_deref(), batch).await?;
            let Some(last) = writes.last().map(|w| w.id.clone()) else {
                return Ok((folded, cursor));
            };
            let mut rows = Vec::new();
            for write in writes.iter().filter(|w| w.is_intent()) {
                let (Some(route), Some(resource_type)) = (&write.route, &write.resource_type) else {
                    continue;
                };
                let body: Option<Value> = write.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
                let recorded = scimtrail_intent::RecordedWrite {
                    exchange_id: &write.id,
                    stands_at: write.replay_of.as_deref().unwrap_or(&write.id),
                    method: &write.method,
                    resource_type,
                    resource_id: write.resource_id.as_deref(),
                    body: body.as_ref(),
                };
                rows.extend(
                    scimtrail_intent::intent_writes(&recorded)
                        .into_iter()
                        .map(|row| (route.clone(), row)),
                );
            }
            let stored = self.intent_cursor().await?;
            let settled_through = last.clone().min(settled.clone()).max(stored);
            self.fold_intent(&rows, &settled_through).await?;
            folded += writes.len() as u64;
            let complete = (writes.len() as i64) < batch;
            cursor = last;
            if complete {
                return Ok((folded, cursor));
            }
        }
    }

    /// Where folding stands: every write with an id up to it is folded.
    pub(crate) async fn intent_cursor(&self) -> Result<String, StoreError> {
        let statement = "SELECT value FROM store_settings WHERE name = ?";
        let value = self.scalars(statement, vec![text(INTENT_CURSOR)]).await?;
        Ok(value.into_iter().next().unwrap_or_default())
    }

    /// At most `limit` completed writes after `after` (and before `before`), in id order: the
    /// IdP's, not a repair's or synthetic traffic's.
    async fn unfolded_writes(
        &self,
        after: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UnfoldedWrite>, StoreError> {
        let statement = format!(
            "SELECT id, replay_of, route, method, resource_type, resource_id, \
             COALESCE(forwarded_body, request_body) AS body, outcome FROM exchanges \
             WHERE id > ? AND id < ? AND operation IN {WRITE_OPERATIONS} AND outcome <> 'in_flight' \
             AND reconcile_of IS NULL AND synthetic IS NULL ORDER BY id LIMIT {limit}"
        );
        // Past every id: a UUIDv7 is lower-case hexadecimal.
        let before = before.unwrap_or("~");
        self.rows(&statement, vec![text(after), text(before)]).await
    }

    /// Folds `rows` (each with its route) into the intent, a row replacing the one kept for
    /// its key only when it stands later in the IdP's order, and moves the cursor to
    /// `cursor`: one transaction.
    async fn fold_intent(&self, rows: &[(String, IntentWrite)], cursor: &str) -> Result<(), StoreError> {
        let mut statements = Vec::with_capacity(rows.len() + 1);
        for (route, row) in rows {
            statements.push((
                "INSERT INTO intended_writes (route, resource_type, resource_id, write_key, order_key, exchange_id, written) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (route, resource_type, resource_id, write_key) DO UPDATE \
                 SET order_key = excluded.order_key, exchange_id = excluded.exchange_id, written = excluded.written \
                 WHERE excluded.order_key >= intended_writes.order_key"
                    .to_owned(),
                vec![
                    text(route),
                    text(&row.resource_type),
                    text(&row.resource_id),
                    text(&row.key),
                    text(&row.order),
                    text(&row.exchange_id),
                    text(&row.written.to_string()),
                ],
            ));
        }
        statements.push((
            "INSERT INTO store_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                .to_owned(),
            vec![text(INTENT_CURSOR), text(cursor)],
        ));
        self.execute_in_one_transaction(statements).await
    }

    /// Moves the cursor back before `oldest`: records that reached the database late (a
    /// drained spool) are folded at the next fold.
    pub(crate) fn unfold_from_statement(oldest: &str) -> (String, Vec<Param>) {
        // The start of its id (its time) is below it: the cursor's writes are those above.
        let below = oldest.get(..14).unwrap_or_default();
        (
            "UPDATE store_settings SET value = ? WHERE name = ? AND value > ?".to_owned(),
            vec![text(below), text(INTENT_CURSOR), text(below)],
        )
    }

    /// The intent of these resources (by id, or `?name` for creates no id came of).
    pub async fn intended_of(
        &self,
        route: &str,
        resource_type: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<IntentWrite>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = format!(
            "SELECT resource_id, write_key, order_key, exchange_id, written FROM intended_writes \
             WHERE route = ? AND resource_type = ? AND resource_id IN ({}) ORDER BY resource_id",
            placeholders(ids.len())
        );
        let mut params = vec![text(route), text(resource_type)];
        params.extend(ids.iter().map(|id| text(id)));
        self.intent_rows(resource_type, &statement, params).await
    }

    async fn intent_rows(
        &self,
        resource_type: &str,
        statement: &str,
        params: Vec<Param>,
    ) -> Result<Vec<(String, Vec<IntentWrite>)>, StoreError> {
        let rows: Vec<(String, String, String, String, String)> = self.rows(statement, params).await?;
        let mut resources: Vec<(String, Vec<IntentWrite>)> = Vec::new();
        for (resource_id, key, order, exchange_id, written) in rows {
            let row = IntentWrite {
                resource_type: resource_type.to_owned(),
                resource_id: resource_id.clone(),
                key,
                order,
                exchange_id,
                written: serde_json::from_str(&written).unwrap_or(Value::Null),
            };
            match resources.last_mut() {
                Some((id, rows)) if *id == resource_id => rows.push(row),
                _ => resources.push((resource_id, vec![row])),
            }
        }
        Ok(resources)
    }

    /// The latest run of each route that finished without error.
    pub async fn latest_reconciliations(&self) -> Result<Vec<Reconciliation>, StoreError> {
        let statement = "SELECT r.id FROM reconciliations r WHERE r.id = (SELECT MAX(l.id) FROM reconciliations l \
                         WHERE l.route = r.route AND l.finished_at IS NOT NULL AND l.error IS NULL)";
        let ids: Vec<(String,)> = self.rows(statement, Vec::new()).await?;
        let mut runs = Vec::new();
        for (id,) in ids {
            if let Some((run, _)) = self.reconciliation(&id, 0, 0).await? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// Begins a reconciliation run.
    pub async fn begin_reconciliation(&self, run: &Reconciliation) -> Result<(), StoreError> {
        let statement = "INSERT INTO reconciliations (id, route, resource_types, started_at, counts, actor, instance) \
                         VALUES (?, ?, ?, ?, '{}', ?, ?)";
        let params = vec![
            text(&run.id),
            text(&run.route),
            text(&serde_json::json!(run.resource_types).to_string()),
            Param::Int(Some(run.started_at_ms)),
            text(&run.actor),
            text(&run.instance),
        ];
        self.execute(statement, params).await.map(drop)
    }

    /// Keeps drifts a run found, numbered from `first`, and the application's resources it saw.
    pub async fn add_reconciliation_page(
        &self,
        run: &str,
        first: i64,
        drifts: &[Drift],
        seen: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut statements = Vec::new();
        for (n, drift) in (first..).zip(drifts) {
            statements.push((
                "INSERT INTO reconciliation_drifts (reconciliation_id, n, kind, resource_type, resource_id, name, part, \
                 intended, actual, established_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    .to_owned(),
                vec![
                    text(run),
                    Param::Int(Some(n)),
                    text(drift.kind.as_str()),
                    text(&drift.resource_type),
                    text(&drift.resource_id),
                    Param::Text(drift.name.clone()),
                    Param::Text(drift.part.clone()),
                    text(&drift.intended.to_string()),
                    text(&drift.actual.to_string()),
                    Param::Text(drift.established_by.clone()),
                ],
            ));
        }
        for (resource_type, id) in seen {
            statements.push((
                "INSERT INTO reconciliation_seen (reconciliation_id, resource_type, resource_id) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING"
                    .to_owned(),
                vec![text(run), text(resource_type), text(id)],
            ));
        }
        if statements.is_empty() {
            return Ok(());
        }
        self.execute_in_one_transaction(statements).await
    }

    /// The intent's resources of one type on `route` the run has not seen in the
    /// application, with an id after `after`: at most `limit`, in id order.
    pub async fn unseen_intended_page(
        &self,
        run: &str,
        route: &str,
        resource_type: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, Vec<IntentWrite>)>, StoreError> {
        let statement = format!(
            "SELECT resource_id, write_key, order_key, exchange_id, written FROM intended_writes \
             WHERE route = ? AND resource_type = ? AND resource_id IN ( \
               SELECT DISTINCT w.resource_id FROM intended_writes w WHERE w.route = ? AND w.resource_type = ? \
               AND w.resource_id > ? AND NOT EXISTS (SELECT 1 FROM reconciliation_seen s \
                 WHERE s.reconciliation_id = ? AND s.resource_type = w.resource_type AND s.resource_id = w.resource_id) \
               ORDER BY w.resource_id LIMIT {limit}) \
             ORDER BY resource_id"
        );
        let params = vec![
            text(route),
            text(resource_type),
            text(route),
            text(resource_type),
            text(after),
            text(run),
        ];
        self.intent_rows(resource_type, &statement, params).await
    }

    /// Ends a run: its counts (or why it failed), and what it saw forgotten.
    pub async fn finish_reconciliation(
        &self,
        run: &str,
        finished_at_ms: i64,
        counts: &BTreeMap<String, u64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let statements = vec![
            (
                "UPDATE reconciliations SET finished_at = ?, counts = ?, error = ? WHERE id = ?".to_owned(),
                vec![
                    Param::Int(Some(finished_at_ms)),
                    text(&serde_json::json!(counts).to_string()),
                    Param::Text(error.map(str::to_owned)),
                    text(run),
                ],
            ),
            (
                "DELETE FROM reconciliation_seen WHERE reconciliation_id = ?".to_owned(),
                vec![text(run)],
            ),
        ];
        self.execute_in_one_transaction(statements).await
    }

    /// A run, and its drifts in report order from the `from`th (at most `limit`).
    pub async fn reconciliation(
        &self,
        run: &str,
        from: i64,
        limit: i64,
    ) -> Result<Option<(Reconciliation, Vec<Drift>)>, StoreError> {
        let statement = "SELECT id, route, resource_types, started_at, finished_at, counts, error, actor, instance, \
                         repair FROM reconciliations WHERE id = ?";
        type RunRow = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            String,
            Option<String>,
            String,
            String,
            Option<String>,
        );
        let runs: Vec<RunRow> = self.rows(statement, vec![text(run)]).await?;
        let Some((id, route, types, started, finished, counts, error, actor, instance, repair)) =
            runs.into_iter().next()
        else {
            return Ok(None);
        };
        let reconciliation = Reconciliation {
            id,
            route,
            resource_types: serde_json::from_str(&types).unwrap_or_default(),
            started_at_ms: started,
            finished_at_ms: finished,
            counts: serde_json::from_str(&counts).unwrap_or_default(),
            error,
            actor,
            instance,
            repair: repair.and_then(|r| serde_json::from_str(&r).ok()),
        };
        // In report order: by kind (a leaver with access first), then as found.
        let rank: String = scimtrail_intent::DriftKind::ALL
            .iter()
            .enumerate()
            .map(|(rank, kind)| format!(" WHEN '{}' THEN {rank}", kind.as_str()))
            .collect();
        let statement = format!(
            "SELECT kind, resource_type, resource_id, name, part, intended, actual, established_by \
             FROM reconciliation_drifts WHERE reconciliation_id = ? \
             ORDER BY CASE kind{rank} ELSE 99 END, n LIMIT {limit} OFFSET {from}"
        );
        type DriftRow = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<DriftRow> = self.rows(&statement, vec![text(run)]).await?;
        let drifts = rows
            .into_iter()
            .filter_map(
                |(kind, resource_type, resource_id, name, part, intended, actual, established_by)| {
                    Some(Drift {
                        kind: scimtrail_intent::DriftKind::parse(&kind)?,
                        resource_type,
                        resource_id,
                        name,
                        part,
                        intended: serde_json::from_str(&intended).unwrap_or(Value::Null),
                        actual: serde_json::from_str(&actual).unwrap_or(Value::Null),
                        established_by,
                    })
                },
            )
            .collect();
        Ok(Some((reconciliation, drifts)))
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
