//! What reconcile's repair keeps: the writes a run planned or sent (`reconciliation_repairs`),
//! its summary on the run, and the aliases a resource created again leaves
//! (`intent_aliases`: the IdP knows it by one id, the application by another).

use crate::intent::WRITE_OPERATIONS;
use crate::sql::{text, Param};
use crate::{Store, StoreError};
use scimtrail_intent::Repair;
use serde_json::Value;

const SELECT_REPAIRS: &str = "SELECT n, resource_type, resource_id, app_id, name, kinds, method, path, body, notes, \
    outcome, status, exchange_id, reason FROM reconciliation_repairs";

/// A row of `reconciliation_repairs`, as [`SELECT_REPAIRS`] reads it.
#[derive(sqlx::FromRow)]
struct RepairRow {
    n: i64,
    resource_type: String,
    resource_id: String,
    app_id: Option<String>,
    name: Option<String>,
    kinds: String,
    method: String,
    path: String,
    body: String,
    notes: String,
    outcome: String,
    status: Option<i64>,
    exchange_id: Option<String>,
    reason: Option<String>,
}

impl RepairRow {
    fn into_record(self) -> (i64, RepairRecord) {
        let repair = Repair {
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            name: self.name,
            method: self.method,
            path: self.path,
            body: serde_json::from_str(&self.body).unwrap_or(Value::Null),
            kinds: serde_json::from_str(&self.kinds).unwrap_or_default(),
            notes: serde_json::from_str(&self.notes).unwrap_or_default(),
        };
        let record = RepairRecord {
            repair,
            app_id: self.app_id,
            outcome: self.outcome,
            status: self.status,
            exchange_id: self.exchange_id,
            reason: self.reason,
        };
        (self.n, record)
    }
}

/// One repair as a run keeps it: the write, and what became of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RepairRecord {
    #[serde(flatten)]
    pub repair: Repair,
    /// The application's id of the resource, when it has it.
    pub app_id: Option<String>,
    /// `planned` (not sent yet, or a dry run), `ok`, `failed` or `skipped`.
    pub outcome: String,
    /// The application's answer.
    pub status: Option<i64>,
    /// The exchange that sent it.
    pub exchange_id: Option<String>,
    pub reason: Option<String>,
}

/// The application's id of a resource the IdP knows by another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentAlias {
    pub resource_type: String,
    /// The IdP's id (the intent's).
    pub resource_id: String,
    pub app_id: String,
}

impl Store {
    /// Keeps the `n`th repair of a run.
    pub async fn add_reconciliation_repair(&self, run: &str, n: i64, record: &RepairRecord) -> Result<(), StoreError> {
        let repair = &record.repair;
        let statement =
            "INSERT INTO reconciliation_repairs (reconciliation_id, n, resource_type, resource_id, app_id, \
                         name, kinds, method, path, body, notes, outcome, status, exchange_id, reason) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let params = vec![
            text(run),
            Param::Int(Some(n)),
            text(&repair.resource_type),
            text(&repair.resource_id),
            Param::Text(record.app_id.clone()),
            Param::Text(repair.name.clone()),
            text(&serde_json::json!(repair.kinds).to_string()),
            text(&repair.method),
            text(&repair.path),
            text(&repair.body.to_string()),
            text(&serde_json::json!(repair.notes).to_string()),
            text(&record.outcome),
            Param::Int(record.status),
            Param::Text(record.exchange_id.clone()),
            Param::Text(record.reason.clone()),
        ];
        self.execute(statement, params).await.map(drop)
    }

    /// A run's repairs in order, from the `from`th (at most `limit`).
    pub async fn reconciliation_repairs(
        &self,
        run: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<RepairRecord>, StoreError> {
        let statement = format!("{SELECT_REPAIRS} WHERE reconciliation_id = ? ORDER BY n LIMIT {limit} OFFSET {from}");
        let rows = self.repair_rows(&statement, vec![text(run)]).await?;
        Ok(rows.into_iter().map(|(_, record)| record).collect())
    }

    /// A run's repairs still planned, numbered `from` and on, each with its number: at most
    /// `limit`, in order.
    pub async fn planned_repairs(
        &self,
        run: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<(i64, RepairRecord)>, StoreError> {
        let statement = format!(
            "{SELECT_REPAIRS} WHERE reconciliation_id = ? AND n >= ? AND outcome = 'planned' ORDER BY n LIMIT {limit}"
        );
        self.repair_rows(&statement, vec![text(run), Param::Int(Some(from))])
            .await
    }

    /// Keeps what became of the `n`th repair of a run.
    pub async fn update_reconciliation_repair(
        &self,
        run: &str,
        n: i64,
        record: &RepairRecord,
    ) -> Result<(), StoreError> {
        let statement = "UPDATE reconciliation_repairs SET outcome = ?, status = ?, exchange_id = ?, reason = ? \
                         WHERE reconciliation_id = ? AND n = ?";
        let params = vec![
            text(&record.outcome),
            Param::Int(record.status),
            Param::Text(record.exchange_id.clone()),
            Param::Text(record.reason.clone()),
            text(run),
            Param::Int(Some(n)),
        ];
        self.execute(statement, params).await.map(drop)
    }

    async fn repair_rows(&self, statement: &str, params: Vec<Param>) -> Result<Vec<(i64, RepairRecord)>, StoreError> {
        let rows: Vec<RepairRow> = self.rows(statement, params).await?;
        Ok(rows.into_iter().map(RepairRow::into_record).collect())
    }

    /// Sets what a run's repair did, as a whole.
    pub async fn set_reconciliation_repair(&self, run: &str, summary: &Value) -> Result<(), StoreError> {
        let statement = "UPDATE reconciliations SET repair = ? WHERE id = ?";
        self.execute(statement, vec![text(&summary.to_string()), text(run)])
            .await
            .map(drop)
    }

    /// Keeps that the application knows `resource_id` (the IdP's id) as `app_id` now: the
    /// repair `exchange_id` created it again.
    pub async fn add_intent_alias(
        &self,
        route: &str,
        alias: &IntentAlias,
        exchange_id: &str,
    ) -> Result<(), StoreError> {
        let statement = "INSERT INTO intent_aliases (route, resource_type, resource_id, app_id, exchange_id) \
                         VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, resource_type, resource_id) \
                         DO UPDATE SET app_id = excluded.app_id, exchange_id = excluded.exchange_id";
        let params = vec![
            text(route),
            text(&alias.resource_type),
            text(&alias.resource_id),
            text(&alias.app_id),
            text(exchange_id),
        ];
        self.execute(statement, params).await.map(drop)
    }

    /// Every alias of a route (one per resource a repair created again: few).
    pub async fn intent_aliases(&self, route: &str) -> Result<Vec<IntentAlias>, StoreError> {
        let statement = "SELECT resource_type, resource_id, app_id FROM intent_aliases WHERE route = ? \
                         ORDER BY resource_type, resource_id";
        let rows: Vec<(String, String, String)> = self.rows(statement, vec![text(route)]).await?;
        Ok(rows
            .into_iter()
            .map(|(resource_type, resource_id, app_id)| IntentAlias {
                resource_type,
                resource_id,
                app_id,
            })
            .collect())
    }

    /// Whether the IdP is writing a resource now, or wrote it moments ago: a write of it in
    /// flight, or not yet folded into the intent for good. A repair leaves such a resource
    /// alone — the intent it would restore may be the one the IdP is changing.
    pub async fn writes_pending_for(&self, route: &str, resource_type: &str, ids: &[&str]) -> Result<bool, StoreError> {
        let folded = self.intent_cursor().await?;
        let statement = format!(
            // The terms of the partial index of migration 0006, spelt as there, so that it
            // serves the lookup (without them each check scanned the route's writes).
            "SELECT id FROM exchanges WHERE route = ? AND resource_type = ? AND resource_id IN ({}) \
             AND resource_id IS NOT NULL AND method IN ('POST', 'PUT', 'PATCH', 'DELETE') \
             AND operation IN {WRITE_OPERATIONS} AND reconcile_of IS NULL AND synthetic IS NULL \
             AND (outcome = 'in_flight' OR id > ?) LIMIT 1",
            vec!["?"; ids.len().max(1)].join(", ")
        );
        let mut params = vec![text(route), text(resource_type)];
        params.extend(ids.iter().map(|id| text(id)));
        if ids.is_empty() {
            params.push(text(""));
        }
        params.push(text(&folded));
        Ok(!self.scalars(&statement, params).await?.is_empty())
    }
}

impl Store {
    /// When the latest run of `route` started (epoch milliseconds), whoever started it and
    /// however it ended.
    pub async fn last_reconciliation_started(&self, route: &str) -> Result<Option<i64>, StoreError> {
        let statement = "SELECT MAX(started_at) FROM reconciliations WHERE route = ?";
        self.scalar_int_with(statement, vec![text(route)]).await
    }

    /// Deletes (or, dry, counts) the finished reconciliation runs started before the audit
    /// log's horizon (a year, or the longest retention when that is longer) — an operator's
    /// record, kept as the audit entries that name them are — with their drifts and repairs.
    pub(crate) async fn prune_reconciliations(
        &self,
        now_ms: i64,
        keep_ms: Option<i64>,
        dry_run: bool,
    ) -> Result<u64, StoreError> {
        let Some(before) = crate::audit::audit_horizon(now_ms, keep_ms) else {
            return Ok(0);
        };
        let before = Param::Int(Some(before));
        let old = "SELECT id FROM reconciliations WHERE started_at < ? AND finished_at IS NOT NULL";
        let count = self
            .scalar_int_with(&format!("SELECT COUNT(*) FROM ({old}) o"), vec![before.clone()])
            .await?
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if dry_run || count == 0 {
            return Ok(count);
        }
        let statements = ["reconciliation_drifts", "reconciliation_repairs", "reconciliation_seen"]
            .iter()
            .map(|table| {
                (
                    format!("DELETE FROM {table} WHERE reconciliation_id IN ({old})"),
                    vec![before.clone()],
                )
            })
            .chain(std::iter::once((
                "DELETE FROM reconciliations WHERE started_at < ? AND finished_at IS NOT NULL".to_owned(),
                vec![before.clone()],
            )))
            .collect();
        self.execute_in_one_transaction(statements).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{completion, fresh_stores, id_at, new_exchange};
    use crate::{Erasure, Reconciliation, Retention, Write};
    use scimtrail_intent::{Drift, DriftKind};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn now() -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_millis()).unwrap()
    }

    /// A completed write to `Users/{resource}` at `ms`, by `user`.
    fn write_to(resource: &str, ms: i64, seq: u16, user: &str) -> (String, Write) {
        let id = id_at(ms, seq);
        let mut new = new_exchange(&id, ms, user);
        new.resource_id = Some(resource.to_owned());
        let mut done = completion(&id, 201, "ok");
        done.resource_id = Some(resource.to_owned());
        (id.clone(), Write::Whole(Box::new(new), Box::new(done)))
    }

    #[tokio::test]
    async fn a_repair_leaves_alone_what_the_idp_is_writing_or_wrote_moments_ago() {
        for store in fresh_stores().await {
            let backend = store.backend();
            let now = now();
            let (_, old) = write_to("old", now - 60_000, 1, "old");
            let (_, recent) = write_to("recent", now - 1_000, 2, "recent");
            let flying = id_at(now - 30_000, 3);
            let mut in_flight = new_exchange(&flying, now - 30_000, "flying");
            in_flight.resource_id = Some("flying".into());
            let repairing = id_at(now - 40_000, 4);
            let mut repair = new_exchange(&repairing, now - 40_000, "repaired");
            repair.resource_id = Some("repaired".into());
            repair.reconcile_of = Some("run".into());
            let writes = vec![
                old,
                recent,
                Write::Begin(Box::new(in_flight)),
                Write::Begin(Box::new(repair)),
            ];
            store.write_batch(writes).await.unwrap();
            store.fold_pending_intent(500).await.unwrap();
            for (resource, pending) in [
                ("old", false),
                ("recent", true),
                ("flying", true),
                ("repaired", false),
                ("none", false),
            ] {
                assert_eq!(
                    store.writes_pending_for("okta", "Users", &[resource]).await.unwrap(),
                    pending,
                    "{backend}: {resource}"
                );
            }
            assert!(
                !store.writes_pending_for("other", "Users", &["recent"]).await.unwrap(),
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn what_reconcile_keeps_of_a_person_is_erased_with_them_and_a_run_goes_after_a_year() {
        for store in fresh_stores().await {
            let backend = store.backend();
            let now = now();
            let (_, ann) = write_to("u1", now - 60_000, 1, "ann@example.com");
            let (_, bob) = write_to("u2", now - 60_000, 2, "bob@example.com");
            let names = ["u1", "u2"]
                .iter()
                .zip(["ann@example.com", "bob@example.com"])
                .map(|(id, name)| crate::ResourceName {
                    route: "okta".into(),
                    resource_type: "Users".into(),
                    resource_id: (*id).into(),
                    user_name: Some(name.into()),
                    external_id: None,
                    display_name: None,
                    learned_at_ms: now,
                })
                .collect();
            store.write_batch(vec![ann, bob, Write::Names(names)]).await.unwrap();
            let mut run = Reconciliation {
                id: id_at(now - 2 * 366 * 86_400_000, 1),
                route: "okta".into(),
                resource_types: vec!["Users".into()],
                started_at_ms: now - 2 * 366 * 86_400_000,
                finished_at_ms: None,
                counts: BTreeMap::new(),
                error: None,
                actor: "cli:test".into(),
                instance: "test".into(),
                repair: None,
            };
            let old_run = run.id.clone();
            store.begin_reconciliation(&run).await.unwrap();
            store
                .finish_reconciliation(&old_run, run.started_at_ms + 1, &BTreeMap::new(), None)
                .await
                .unwrap();
            run.id = id_at(now, 2);
            run.started_at_ms = now;
            store.begin_reconciliation(&run).await.unwrap();
            let drift = |id: &str, name: &str| Drift {
                kind: DriftKind::ActiveMismatch,
                resource_type: "Users".into(),
                resource_id: id.into(),
                name: Some(name.into()),
                part: Some("active".into()),
                intended: json!(false),
                actual: json!(true),
                established_by: None,
            };
            // Ann's drift under the id the application gave her when a repair created her again.
            let drifts = [drift("n1", "ann@example.com"), drift("u2", "bob@example.com")];
            store.add_reconciliation_page(&run.id, 0, &drifts, &[]).await.unwrap();
            for (n, (id, name)) in [("u1", "ann@example.com"), ("u2", "bob@example.com")]
                .iter()
                .enumerate()
            {
                let record = RepairRecord {
                    repair: Repair {
                        resource_type: "Users".into(),
                        resource_id: (*id).into(),
                        name: Some((*name).into()),
                        method: "POST".into(),
                        path: "/Users".into(),
                        body: json!({"userName": name}),
                        kinds: vec![DriftKind::MissingInApp],
                        notes: Vec::new(),
                    },
                    app_id: None,
                    outcome: "ok".into(),
                    status: Some(201),
                    exchange_id: Some("x".into()),
                    reason: None,
                };
                store
                    .add_reconciliation_repair(&run.id, n as i64, &record)
                    .await
                    .unwrap();
            }
            let alias = IntentAlias {
                resource_type: "Users".into(),
                resource_id: "u1".into(),
                app_id: "n1".into(),
            };
            store.add_intent_alias("okta", &alias, "x").await.unwrap();
            store
                .finish_reconciliation(&run.id, now + 1, &BTreeMap::new(), None)
                .await
                .unwrap();

            let erasure = Erasure {
                user: Some("ann@example.com".into()),
                ..Erasure::default()
            };
            store.erase(&erasure, false).await.unwrap();
            let (_, left) = store.reconciliation(&run.id, 0, 10).await.unwrap().unwrap();
            let left: Vec<&str> = left.iter().map(|d| d.resource_id.as_str()).collect();
            assert_eq!(left, ["u2"], "{backend}: her drift went, by her name");
            let repairs = store.reconciliation_repairs(&run.id, 0, 10).await.unwrap();
            let repairs: Vec<&str> = repairs.iter().map(|r| r.repair.resource_id.as_str()).collect();
            assert_eq!(repairs, ["u2"], "{backend}");
            assert_eq!(store.intent_aliases("okta").await.unwrap(), [], "{backend}");

            // Runs are kept as the audit log is: a year, or the longest retention.
            let report = store
                .prune(&Retention::default(), now, false, None, |_| {})
                .await
                .unwrap();
            assert_eq!(report.reconciliations, 1, "{backend}");
            assert!(
                store.reconciliation(&old_run, 0, 1).await.unwrap().is_none(),
                "{backend}"
            );
            assert!(
                store.reconciliation(&run.id, 0, 1).await.unwrap().is_some(),
                "{backend}"
            );
        }
    }
}
