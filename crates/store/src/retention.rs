//! Retention: what goes from the store, and when, so that it stays within its policy for as
//! long as it runs.
//!
//! A prune runs in small batches, each its own short transaction (a few milliseconds of the
//! database's write lock), oldest first by id, per outcome past its age. It never deletes:
//! - an exchange still in flight (no policy names `in_flight`);
//! - an exchange made for another (a read-back, a fanned-out operation): it goes with its
//!   parent, as do its own children;
//! - an exchange a replay links to (`replay_of`): it goes after its replays;
//! - a successful write to a resource that an older, unreplayed failure on the same route
//!   also writes: replay decides from it whether that failure is superseded, so it stays
//!   while the failure does.
//!
//! Over `max_store_bytes`, the oldest successes (`ok`, `rejected`) go first whatever their
//! age, under the same exclusions; only when none is left do the oldest failures go, and the
//! caller is told first (a warning and a metric). Snapshots of resources no exchange writes
//! any longer go too. SQLite gives the space back with `incremental_vacuum` in steps.

use crate::model::OUTCOME_IN_FLIGHT;
use crate::query::{id_floor, REPLAYABLE_OUTCOMES};
use crate::sql::{self, Param};
use crate::{Lease, Pool, Store, StoreError};
use std::collections::BTreeMap;

/// The outcomes a policy may name, in the order a size budget deletes them.
pub const OUTCOMES: [&str; 6] = ["ok", "rejected", "failed", "unreachable", "partial", "interrupted"];

/// Exchanges deleted per transaction.
const BATCH: i64 = 200;

/// Pages SQLite gives back to the file system per step.
const VACUUM_STEP_PAGES: i64 = 512;

/// How long each outcome is kept, and how large the store may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Milliseconds each outcome is kept; `None` keeps it forever. An outcome not named is
    /// kept forever.
    pub keep_ms: BTreeMap<String, Option<i64>>,
    /// The bytes the store's records may take before the oldest go.
    pub max_store_bytes: Option<u64>,
}

impl Default for Retention {
    /// `ok` 30 days, `rejected` 7 days, the failures 180 days; no size bound.
    fn default() -> Retention {
        const DAY: i64 = 24 * 3600 * 1000;
        let keep = |outcome: &str, days: i64| (outcome.to_owned(), Some(days * DAY));
        Retention {
            keep_ms: BTreeMap::from([
                keep("ok", 30),
                keep("rejected", 7),
                keep("failed", 180),
                keep("unreachable", 180),
                keep("partial", 180),
                keep("interrupted", 180),
            ]),
            max_store_bytes: None,
        }
    }
}

/// What a prune deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Exchanges by outcome (their children not counted here).
    pub exchanges: BTreeMap<String, u64>,
    /// Exchanges made for those (read-backs, fanned-out operations).
    pub children: u64,
    /// Snapshots of resources no exchange writes any longer.
    pub snapshots: u64,
    /// Whether failures were deleted to stay within `max_store_bytes`.
    pub failures_for_size: bool,
}

impl PruneReport {
    /// Exchanges deleted, children included.
    pub fn total(&self) -> u64 {
        self.exchanges.values().sum::<u64>() + self.children
    }
}

/// How large the store is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// Bytes its records take (SQLite: pages in use; PostgreSQL: an estimate from the
    /// tables' sizes and their live rows).
    pub bytes: u64,
    /// Exchanges.
    pub rows: u64,
    /// When the oldest exchange was received, epoch milliseconds.
    pub oldest_ms: Option<i64>,
}

/// Which exchanges a batch may take.
enum Select<'a> {
    /// Of this outcome, received before this id.
    Aged(&'a str, String),
    /// Of this outcome, the oldest, whatever their age (over the size budget).
    Oldest(&'a str),
}

const WRITES: &str = "('POST', 'PUT', 'PATCH', 'DELETE')";

/// The exclusions every batch obeys (see the module's documentation), for `e`.
fn protected() -> String {
    let failures = REPLAYABLE_OUTCOMES
        .iter()
        .map(|o| format!("'{o}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "e.parent_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM exchanges r WHERE r.replay_of = e.id) \
         AND NOT (e.outcome = 'ok' AND e.resource_id IS NOT NULL AND e.method IN {WRITES} AND EXISTS ( \
             SELECT 1 FROM exchanges f WHERE f.route = e.route AND f.resource_type = e.resource_type \
             AND f.resource_id = e.resource_id AND f.method IN {WRITES} AND f.id < e.id \
             AND f.outcome IN ({failures}) AND f.replay_of IS NULL AND f.parent_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM exchanges fr WHERE fr.replay_of = f.id AND fr.outcome = 'ok')))"
    )
}

/// How long a prune may hold its lease without renewing it: a prune that died holding it is
/// given up after this.
const PRUNE_LEASE_MS: i64 = 10 * 60 * 1000;

impl Store {
    /// One prune by `policy` at `now_ms`, as `holder`, when no other instance is pruning and
    /// no replay run is unfinished (a run decides from what it finds: nothing it may read
    /// goes while it runs). `None` when it did not run, and why.
    pub async fn prune_once(
        &self,
        holder: &str,
        policy: &Retention,
        now_ms: i64,
        dry_run: bool,
        on_failures_for_size: impl FnMut(&StoreSize),
    ) -> Result<Result<PruneReport, String>, StoreError> {
        if let Some((replayer, _)) = self.lease_holder(Lease::Replay, now_ms).await? {
            return Ok(Err(format!("a replay run ({replayer}) is unfinished")));
        }
        if !dry_run {
            if let Err((other, _)) = self
                .take_lease(Lease::Prune, holder, now_ms, now_ms + PRUNE_LEASE_MS)
                .await?
            {
                return Ok(Err(format!("{other} is pruning")));
            }
        }
        let report = self.prune(policy, now_ms, dry_run, on_failures_for_size).await;
        if !dry_run {
            self.release_lease(Lease::Prune, holder).await?;
        }
        report.map(Ok)
    }

    /// Deletes what `policy` says may go at `now_ms` (see the module's documentation), in
    /// batches; `on_failures_for_size` is called once before failures are deleted to stay
    /// within the size budget. A dry run deletes nothing and counts what would go by age
    /// (not what a size budget would take: that depends on what is deleted first).
    pub async fn prune(
        &self,
        policy: &Retention,
        now_ms: i64,
        dry_run: bool,
        mut on_failures_for_size: impl FnMut(&StoreSize),
    ) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        for outcome in OUTCOMES {
            let Some(Some(keep)) = policy.keep_ms.get(outcome) else {
                continue;
            };
            let before = id_floor(now_ms.saturating_sub(*keep));
            if dry_run {
                let count = self.count(&Select::Aged(outcome, before)).await?;
                if count > 0 {
                    report.exchanges.insert(outcome.to_owned(), count);
                }
                continue;
            }
            while self
                .delete_batch(&Select::Aged(outcome, before.clone()), BATCH, &mut report)
                .await?
                > 0
            {}
        }
        if let (Some(max), false) = (policy.max_store_bytes, dry_run) {
            for outcome in OUTCOMES {
                let mut warned = false;
                loop {
                    let size = self.size().await?;
                    if size.bytes <= max {
                        break;
                    }
                    let failure = REPLAYABLE_OUTCOMES.contains(&outcome);
                    if failure && !warned && !report.failures_for_size {
                        on_failures_for_size(&size);
                        report.failures_for_size = true;
                    }
                    warned = true;
                    // About as many as the excess takes, so that a budget is not overshot by
                    // a whole batch.
                    let per_row = (size.bytes / size.rows.max(1)).max(1);
                    let needed = (size.bytes - max).div_ceil(per_row);
                    let limit = i64::try_from(needed).unwrap_or(BATCH).clamp(1, BATCH);
                    if self.delete_batch(&Select::Oldest(outcome), limit, &mut report).await? == 0 {
                        break;
                    }
                }
            }
        }
        report.snapshots = self.prune_snapshots(dry_run).await?;
        if !dry_run {
            self.give_space_back().await?;
        }
        Ok(report)
    }

    /// How large the store is now.
    pub async fn size(&self) -> Result<StoreSize, StoreError> {
        self.caught_up().await;
        // Ids are time-ordered: the first by id is the oldest.
        let oldest_ms = self
            .scalar_int("SELECT received_at FROM exchanges ORDER BY id LIMIT 1")
            .await?;
        let (bytes, rows) = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                let (pages, free, page_size): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT page_count FROM pragma_page_count()), \
                     (SELECT freelist_count FROM pragma_freelist_count()), \
                     (SELECT page_size FROM pragma_page_size())",
                )
                .fetch_one(pool)
                .await?;
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM exchanges")
                    .fetch_one(pool)
                    .await?;
                ((pages - free).max(0) * page_size, rows)
            }
            Pool::Postgres(pool, _) => {
                // Deleted rows leave the files as large until VACUUM reuses their space, and
                // the statistics lag by a second or more: the size is the exchanges counted
                // now times the bytes a row takes in the tables' files.
                let (total, live, dead): (i64, i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0)::BIGINT, \
                     COALESCE(SUM(n_live_tup), 0)::BIGINT, COALESCE(SUM(n_dead_tup), 0)::BIGINT \
                     FROM pg_stat_user_tables WHERE relname IN ('exchanges', 'resource_snapshots', 'route_shapes')",
                )
                .fetch_one(pool)
                .await?;
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM exchanges")
                    .fetch_one(pool)
                    .await?;
                let tuples = i128::from((live + dead).max(1));
                let bytes = i128::from(total) * i128::from(rows) / tuples;
                let bytes = if live + dead == 0 { i128::from(total) } else { bytes };
                let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                (bytes, rows)
            }
        };
        Ok(StoreSize {
            bytes: u64::try_from(bytes).unwrap_or(0),
            rows: u64::try_from(rows).unwrap_or(0),
            oldest_ms,
        })
    }

    fn batch_sql(select: &Select<'_>, what: &str) -> (String, Vec<Param>) {
        let protected = protected();
        match select {
            Select::Aged(outcome, before) => (
                format!("SELECT {what} FROM exchanges e WHERE e.outcome = ? AND e.id < ? AND {protected}"),
                vec![
                    Param::Text(Some((*outcome).to_owned())),
                    Param::Text(Some(before.clone())),
                ],
            ),
            Select::Oldest(outcome) => (
                format!("SELECT {what} FROM exchanges e WHERE e.outcome = ? AND {protected}"),
                vec![Param::Text(Some((*outcome).to_owned()))],
            ),
        }
    }

    async fn count(&self, select: &Select<'_>) -> Result<u64, StoreError> {
        let (statement, params) = Store::batch_sql(select, "COUNT(*)");
        let count: i64 = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sql::bind_sqlite_scalar(sqlx::query_scalar(&statement), params)
                    .fetch_one(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(&statement);
                sql::bind_postgres_scalar(sqlx::query_scalar(&statement), params)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes one batch of at most `limit` and what hangs off it; returns how many
    /// exchanges of the batch went (0: nothing is left to take).
    async fn delete_batch(&self, select: &Select<'_>, limit: i64, report: &mut PruneReport) -> Result<u64, StoreError> {
        debug_assert!(!OUTCOMES.contains(&OUTCOME_IN_FLIGHT));
        let outcome = match select {
            Select::Aged(outcome, _) | Select::Oldest(outcome) => *outcome,
        };
        let (statement, params) = Store::batch_sql(select, "e.id");
        let statement = format!("{statement} ORDER BY e.id LIMIT {limit}");
        let ids: Vec<String> = self.scalars(&statement, params).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // The exchanges made for these, and those made for them (a fanned-out operation's
        // read-back), go with them.
        let mut children = Vec::new();
        let mut parents = ids.clone();
        for _ in 0..4 {
            if parents.is_empty() {
                break;
            }
            let statement = format!(
                "SELECT id FROM exchanges WHERE parent_id IN ({})",
                placeholders(parents.len())
            );
            let found: Vec<String> = self.scalars(&statement, texts(&parents)).await?;
            children.extend(found.iter().cloned());
            parents = found;
        }
        let mut doomed = ids.clone();
        doomed.extend(children.iter().cloned());
        let statement = format!("DELETE FROM exchanges WHERE id IN ({})", placeholders(doomed.len()));
        self.execute(&statement, texts(&doomed)).await?;
        *report.exchanges.entry(outcome.to_owned()).or_default() += ids.len() as u64;
        report.children += children.len() as u64;
        Ok(ids.len() as u64)
    }

    /// Deletes (or counts) the snapshots of resources no exchange writes any longer.
    async fn prune_snapshots(&self, dry_run: bool) -> Result<u64, StoreError> {
        let orphan = format!(
            "NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.route = s.route AND e.resource_type = s.resource_type \
             AND e.resource_id = s.resource_id AND e.method IN {WRITES})"
        );
        if dry_run {
            let statement = format!("SELECT COUNT(*) FROM resource_snapshots s WHERE {orphan}");
            return Ok(self
                .scalar_int(&statement)
                .await?
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)));
        }
        let mut deleted = 0;
        loop {
            let statement = format!(
                "DELETE FROM resource_snapshots WHERE (route, resource_type, resource_id) IN \
                 (SELECT s.route, s.resource_type, s.resource_id FROM resource_snapshots s WHERE {orphan} LIMIT {BATCH})"
            );
            let gone = self.execute(&statement, Vec::new()).await?;
            deleted += gone;
            if gone == 0 {
                return Ok(deleted);
            }
        }
    }

    /// SQLite: returns the free pages to the file system, a step at a time, so the file
    /// shrinks without holding the write lock for long. PostgreSQL's autovacuum makes the
    /// space reusable on its own.
    async fn give_space_back(&self) -> Result<(), StoreError> {
        let Pool::Sqlite(pool, ..) = &self.pool else {
            return Ok(());
        };
        loop {
            let free: i64 = sqlx::query_scalar("SELECT freelist_count FROM pragma_freelist_count()")
                .fetch_one(pool)
                .await?;
            if free == 0 {
                return Ok(());
            }
            let before = free;
            sqlx::query(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))
                .execute(pool)
                .await?;
            let after: i64 = sqlx::query_scalar("SELECT freelist_count FROM pragma_freelist_count()")
                .fetch_one(pool)
                .await?;
            // A store not (yet) in incremental mode keeps its free pages for reuse.
            if after >= before {
                return Ok(());
            }
        }
    }

    async fn scalars(&self, statement: &str, params: Vec<Param>) -> Result<Vec<String>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sql::bind_sqlite_scalar(sqlx::query_scalar(statement), params)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres_scalar(sqlx::query_scalar(&statement), params)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    async fn scalar_int(&self, statement: &str) -> Result<Option<i64>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool, ..) => sqlx::query_scalar(statement).fetch_optional(pool).await?,
            Pool::Postgres(pool, _) => sqlx::query_scalar(statement).fetch_optional(pool).await?,
        })
    }
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn texts(values: &[String]) -> Vec<Param> {
    values.iter().map(|v| Param::Text(Some(v.clone()))).collect()
}
