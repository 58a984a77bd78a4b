//! Retention: what goes from the store, and when, so that it stays within its policy for as
//! long as it runs.
//!
//! A prune runs in small batches, each its own short transaction (a few milliseconds of the
//! database's write lock), oldest first by id, per outcome past its age. It never deletes:
//! - an exchange still in flight (no policy names `in_flight`);
//! - an exchange made for another (a read-back, a fanned-out operation): it goes with its
//!   parent, as do its own children;
//! - an exchange a replay links to (`replay_of`): it goes after its replays;
//! - a successful create whose userName an older, unreplayed failed create on the same route
//!   also has: replay decides from it that the failure was retried (`later_creates`).
//!
//! Any other success may go: the batch that deletes a successful write keeps it in the
//! resources' summary first (`summary.rs`), in the same transaction, and replay decides from
//! the summary for what was pruned. The summary's removals (a member removed, a resource
//! deleted) go once no older failure they supersede remains.
//!
//! Over `max_store_bytes`, the oldest successes (`ok`, `rejected`) go first whatever their
//! age, under the same exclusions; only when none is left do the oldest failures go, and the
//! caller is told first (a warning and a metric). Snapshots of resources no exchange writes
//! any longer go too. SQLite gives the space back with `incremental_vacuum` in steps.

use crate::model::OUTCOME_IN_FLIGHT;
use crate::query::{id_floor, REPLAYABLE_OUTCOMES};
use crate::sql::{self, Param};
use crate::{summary, Lease, Pool, Store, StoreError};
use std::collections::BTreeMap;

/// The outcomes a policy may name, in the order a size budget deletes them.
pub const OUTCOMES: [&str; 6] = ["ok", "rejected", "failed", "unreachable", "partial", "interrupted"];

/// Exchanges deleted per transaction.
const BATCH: i64 = 200;

/// The pause between two batches of a prune while serving.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

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

impl Retention {
    /// How long the longest-kept outcome is kept; `None` when one is kept forever.
    pub fn longest(&self) -> Option<i64> {
        let mut longest = 0;
        for outcome in OUTCOMES {
            longest = longest.max(self.keep_ms.get(outcome).copied().flatten()?);
        }
        Some(longest)
    }
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
    /// Removals the resources' summary no longer needs.
    pub summary_rows: u64,
    /// Audit entries past their year (or the longest retention, if longer).
    pub audit_rows: u64,
    /// Reconciliation runs past the same horizon, with their drifts and repairs.
    pub reconciliations: u64,
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

/// The exclusions every batch obeys (see the module's documentation), for `e`: only an
/// original (a replay, and what was made for an exchange, go with it), and not a success that
/// replay still decides from, nor one with such a child, nor a write (or a replay of it) not
/// yet folded into the intent.
fn protected(folded_through: Option<&str>) -> String {
    let kept = format!(
        "e.parent_id IS NULL AND e.replay_of IS NULL AND NOT ({}) \
         AND NOT EXISTS (SELECT 1 FROM exchanges c WHERE c.parent_id = e.id AND {})",
        needed("e"),
        needed("c")
    );
    // A dry run folds nothing: it counts the writes a run would fold first, and then delete.
    match folded_through {
        None => kept,
        Some(through) => format!(
            "{kept} AND NOT ({}) AND NOT EXISTS (SELECT 1 FROM exchanges r WHERE r.replay_of = e.id AND {})",
            intent_pending("e", through),
            intent_pending("r", through)
        ),
    }
}

/// A write, as `x`, past `through` (every write up to which is folded into the intent,
/// `intended_writes`): kept until it is folded, so that retention never loses what the IdP
/// intended. `through` is an id the store made (a UUID, or its first characters).
fn intent_pending(x: &str, through: &str) -> String {
    let through: String = through.chars().filter(|c| c.is_ascii_hexdigit() || *c == '-').collect();
    format!(
        "{x}.operation IN {} AND {x}.id > '{through}'",
        crate::intent::WRITE_OPERATIONS
    )
}

/// Failures not yet replayed successfully, as `f`, on `x`'s route and older than `x`.
fn unreplayed_before(x: &str) -> String {
    format!(
        "f.outcome IN ({}) AND f.replay_of IS NULL AND f.parent_id IS NULL AND f.route = {x}.route \
         AND f.id < {x}.id AND NOT EXISTS (SELECT 1 FROM exchanges fr WHERE fr.replay_of = f.id AND fr.outcome = 'ok')",
        failure_list()
    )
}

fn failure_list() -> String {
    REPLAYABLE_OUTCOMES
        .iter()
        .map(|o| format!("'{o}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the exchange `x` is a successful create whose userName an older failed create on
/// its route, not yet replayed successfully, also has: replay decides from it that the
/// failure was retried (`later_creates`), by userName, not by resource. (Whether a failure is
/// superseded by later writes to its resource, replay decides from the writes still recorded
/// and, for those pruned, the resources' summary: a write is summarized as it is deleted.)
fn needed(x: &str) -> String {
    let unreplayed = unreplayed_before(x);
    format!(
        "{x}.outcome = 'ok' AND {x}.operation = 'create' AND {x}.user_name IS NOT NULL AND EXISTS (SELECT 1 \
         FROM exchanges f WHERE f.user_name = {x}.user_name AND {unreplayed} AND f.operation = 'create' \
         AND f.resource_type = {x}.resource_type)"
    )
}

/// Whether what is on `route` at `position` comes after the oldest failed bulk request, not
/// yet replayed successfully, on its route.
fn after_failed_bulk(route: &str, position: &str, failed_bulk: &[(String, String)]) -> String {
    let after: Vec<String> = failed_bulk
        .iter()
        .map(|(bulk_route, id)| {
            format!(
                "({route} = '{}' AND {position} > '{}')",
                bulk_route.replace('\'', "''"),
                id.replace('\'', "''")
            )
        })
        .collect();
    if after.is_empty() {
        "FALSE".to_owned()
    } else {
        after.join(" OR ")
    }
}

/// How long a prune may hold its lease without renewing it: a prune that died holding it is
/// given up after this.
const PRUNE_LEASE_MS: i64 = 10 * 60 * 1000;

/// Writes folded into the intent per transaction.
pub(crate) const INTENT_BATCH: i64 = 500;

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
        let report = self
            .prune(
                policy,
                now_ms,
                dry_run,
                (!dry_run).then_some(holder),
                on_failures_for_size,
            )
            .await;
        if !dry_run {
            self.release_lease(Lease::Prune, holder).await?;
        }
        report.map(Ok)
    }

    /// Deletes what `policy` says may go at `now_ms` (see the module's documentation), in
    /// batches; `on_failures_for_size` is called once before failures are deleted to stay
    /// within the size budget. A dry run deletes nothing and counts what would go by age
    /// (not what a size budget would take: that depends on what is deleted first).
    ///
    /// With a `holder`, it renews the prune lease between batches and stops early when a
    /// replay run has started meanwhile.
    pub async fn prune(
        &self,
        policy: &Retention,
        now_ms: i64,
        dry_run: bool,
        holder: Option<&str>,
        mut on_failures_for_size: impl FnMut(&StoreSize),
    ) -> Result<PruneReport, StoreError> {
        // What is journaled and not yet applied is pruned with the rest.
        self.caught_up().await;
        // What the IdP intended is folded out of the writes before any of them can go; a
        // write past what was folded stays.
        let folded_through = match dry_run {
            true => None,
            false => Some(self.fold_intent_through(INTENT_BATCH).await?.1),
        };
        let mut report = PruneReport::default();
        let failed_bulk: Vec<(String, String)> = self
            .pairs(&format!(
                "SELECT f.route, MIN(f.id) FROM exchanges f WHERE f.operation = 'bulk' AND f.route IS NOT NULL \
                 AND f.outcome IN ({}) AND f.replay_of IS NULL AND f.parent_id IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM exchanges fr WHERE fr.replay_of = f.id AND fr.outcome = 'ok') \
                 GROUP BY f.route",
                failure_list()
            ))
            .await?;
        let protected = protected(folded_through.as_deref());
        for outcome in OUTCOMES {
            let Some(Some(keep)) = policy.keep_ms.get(outcome) else {
                continue;
            };
            let before = id_floor(now_ms.saturating_sub(*keep));
            if dry_run {
                let count = self.count(&Select::Aged(outcome, before), &protected).await?;
                if count > 0 {
                    report.exchanges.insert(outcome.to_owned(), count);
                }
                continue;
            }
            while self.keep_going(holder).await?
                && self
                    .delete_batch(&Select::Aged(outcome, before.clone()), BATCH, &protected, &mut report)
                    .await?
                    > 0
            {}
        }
        if let (Some(max), false) = (policy.max_store_bytes, dry_run) {
            for outcome in OUTCOMES {
                let mut warned = false;
                while self.keep_going(holder).await? {
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
                    if self
                        .delete_batch(&Select::Oldest(outcome), limit, &protected, &mut report)
                        .await?
                        == 0
                    {
                        break;
                    }
                }
            }
        }
        report.snapshots = self.prune_snapshots(dry_run).await?;
        report.audit_rows = self.prune_audit(now_ms, policy.longest(), dry_run).await?;
        report.reconciliations = self.prune_reconciliations(now_ms, policy.longest(), dry_run).await?;
        let after_bulk = after_failed_bulk("x.route", "x.stands_at", &failed_bulk);
        let needless = summary::needless_removals(&failure_list(), &after_bulk);
        report.summary_rows = self
            .delete_in_batches("resource_writes", &summary::KEY, &needless, dry_run)
            .await?;
        if !dry_run {
            self.give_space_back().await?;
        }
        Ok(report)
    }

    /// Between batches: renews `holder`'s prune lease, and says to stop when a replay run has
    /// started (it decides from what is here). Always on without a holder (a test, a dry run).
    async fn keep_going(&self, holder: Option<&str>) -> Result<bool, StoreError> {
        let Some(holder) = holder else { return Ok(true) };
        // Room between batches for the writers that share the database's write lock (the
        // journal's applier): back-to-back deletes kept it from applying, its queue filled,
        // and exchanges waited for room.
        tokio::time::sleep(BATCH_PAUSE).await;
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        if self.lease_holder(Lease::Replay, now).await?.is_some() {
            tracing::info!("A replay run started: pruning stops until the next round.");
            return Ok(false);
        }
        Ok(self
            .take_lease(Lease::Prune, holder, now, now + PRUNE_LEASE_MS)
            .await?
            .is_ok())
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
                let (total, live, dead, others): (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT pg_total_relation_size('exchanges'::regclass)::BIGINT, \
                     COALESCE((SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'exchanges'::regclass), 0)::BIGINT, \
                     COALESCE((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'exchanges'::regclass), 0)::BIGINT, \
                     (pg_total_relation_size('resource_snapshots'::regclass) + pg_total_relation_size('route_shapes'::regclass) \
                     + pg_total_relation_size('resource_writes'::regclass))::BIGINT",
                )
                .fetch_one(pool)
                .await?;
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM exchanges")
                    .fetch_one(pool)
                    .await?;
                let exchanges = match live + dead {
                    0 => i128::from(total),
                    tuples => i128::from(total) * i128::from(rows) / i128::from(tuples),
                };
                let bytes = i64::try_from(exchanges + i128::from(others)).unwrap_or(i64::MAX);
                (bytes, rows)
            }
        };
        Ok(StoreSize {
            bytes: u64::try_from(bytes).unwrap_or(0),
            rows: u64::try_from(rows).unwrap_or(0),
            oldest_ms,
        })
    }

    fn batch_sql(select: &Select<'_>, what: &str, protected: &str) -> (String, Vec<Param>) {
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

    async fn count(&self, select: &Select<'_>, protected: &str) -> Result<u64, StoreError> {
        let (statement, params) = Store::batch_sql(select, "COUNT(*)", protected);
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
    async fn delete_batch(
        &self,
        select: &Select<'_>,
        limit: i64,
        protected: &str,
        report: &mut PruneReport,
    ) -> Result<u64, StoreError> {
        debug_assert!(!OUTCOMES.contains(&OUTCOME_IN_FLIGHT));
        let outcome = match select {
            Select::Aged(outcome, _) | Select::Oldest(outcome) => *outcome,
        };
        let (statement, params) = Store::batch_sql(select, "e.id", protected);
        let statement = format!("{statement} ORDER BY e.id LIMIT {limit}");
        let ids: Vec<String> = self.scalars(&statement, params).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        // What hangs off them goes with them, deepest first, in one transaction: the
        // exchanges made for their replays, their replays, what was made for what was made for
        // them (a fanned-out operation's read-back), what was made for them. Each statement
        // binds the batch's ids only, however many hang off them.
        let list = placeholders(ids.len());
        let hanging = hanging_off(&list);
        // What succeeded among them goes to the resources' summary first, while their records
        // are there to say where each stands.
        let everything = format!("id IN ({list}) OR {}", hanging.join(" OR "));
        let mut statements = self
            .summary_of(
                &everything,
                texts(&ids)
                    .into_iter()
                    .cycle()
                    .take(ids.len() * (hanging.len() + 1))
                    .collect(),
            )
            .await?;
        let mut counted = 0;
        for condition in &hanging {
            let count = format!("SELECT COUNT(*) FROM exchanges WHERE {condition}");
            counted += self.scalar_int_with(&count, texts(&ids)).await?.unwrap_or(0);
            statements.push((format!("DELETE FROM exchanges WHERE {condition}"), texts(&ids)));
        }
        statements.push((format!("DELETE FROM exchanges WHERE id IN ({list})"), texts(&ids)));
        self.execute_in_one_transaction(statements).await?;
        report.children += u64::try_from(counted).unwrap_or(0);
        *report.exchanges.entry(outcome.to_owned()).or_default() += ids.len() as u64;
        Ok(ids.len() as u64)
    }

    /// Deletes (or counts) the snapshots of resources no exchange writes any longer.
    async fn prune_snapshots(&self, dry_run: bool) -> Result<u64, StoreError> {
        let orphan = format!(
            "NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.route = x.route AND e.resource_type = x.resource_type \
             AND e.resource_id = x.resource_id AND e.method IN {WRITES})"
        );
        self.delete_in_batches(
            "resource_snapshots",
            &["route", "resource_type", "resource_id"],
            &orphan,
            dry_run,
        )
        .await
    }

    /// Deletes (or, dry, counts) the rows of `table` that `condition` selects (naming the table
    /// `x`), by their `key`, at most [`BATCH`] in each statement.
    async fn delete_in_batches(
        &self,
        table: &str,
        key: &[&str],
        condition: &str,
        dry_run: bool,
    ) -> Result<u64, StoreError> {
        if dry_run {
            let statement = format!("SELECT COUNT(*) FROM {table} x WHERE {condition}");
            return Ok(self
                .scalar_int(&statement)
                .await?
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)));
        }
        let columns = key.join(", ");
        let selected = key.iter().map(|c| format!("x.{c}")).collect::<Vec<_>>().join(", ");
        let statement = format!(
            "DELETE FROM {table} WHERE ({columns}) IN (SELECT {selected} FROM {table} x WHERE {condition} LIMIT {BATCH})"
        );
        let mut deleted = 0;
        loop {
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
            tokio::time::sleep(BATCH_PAUSE).await;
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

    pub(crate) async fn scalars(&self, statement: &str, params: Vec<Param>) -> Result<Vec<String>, StoreError> {
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

    async fn pairs(&self, statement: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool, ..) => sqlx::query_as(statement).fetch_all(pool).await?,
            Pool::Postgres(pool, _) => sqlx::query_as(statement).fetch_all(pool).await?,
        })
    }

    pub(crate) async fn scalar_int_with(&self, statement: &str, params: Vec<Param>) -> Result<Option<i64>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sql::bind_sqlite_scalar(sqlx::query_scalar(statement), params)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres_scalar(sqlx::query_scalar(&statement), params)
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    /// Runs the statements (`?` placeholders) in order, in one transaction.
    pub(crate) async fn execute_in_one_transaction(
        &self,
        statements: Vec<(String, Vec<Param>)>,
    ) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool, ..) => {
                let mut tx = pool.begin().await?;
                for (statement, params) in statements {
                    sql::bind_sqlite(sqlx::query(&statement), params)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Pool::Postgres(pool, _) => {
                let mut tx = pool.begin().await?;
                for (statement, params) in statements {
                    let statement = sql::numbered_placeholders(&statement);
                    sql::bind_postgres(sqlx::query(&statement), params)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn scalar_int(&self, statement: &str) -> Result<Option<i64>, StoreError> {
        self.scalar_int_with(statement, Vec::new()).await
    }
}

/// What hangs off the exchanges whose ids `list` binds, deepest first: the exchanges made for
/// their replays, their replays, what was made for what was made for them (a fanned-out
/// operation's read-back), what was made for them. Each condition binds the list once.
pub(crate) fn hanging_off(list: &str) -> [String; 5] {
    let replays = format!("SELECT id FROM exchanges WHERE replay_of IN ({list})");
    let children = format!("SELECT id FROM exchanges WHERE parent_id IN ({list})");
    let made_for_replays = format!("SELECT id FROM exchanges WHERE parent_id IN ({replays})");
    [
        format!("parent_id IN ({made_for_replays})"),
        format!("parent_id IN ({replays})"),
        format!("replay_of IN ({list})"),
        format!("parent_id IN ({children})"),
        format!("parent_id IN ({list})"),
    ]
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn texts(values: &[String]) -> Vec<Param> {
    values.iter().map(|v| Param::Text(Some(v.clone()))).collect()
}
