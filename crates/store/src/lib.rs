//! The exchange store: the only crate that knows SQL.
//!
//! # Brief overview
//! - [`Store`]: a pool over SQLite (the embedded default, one file, WAL) or PostgreSQL (shared
//!   by several proxy instances), chosen by the URL scheme.
//! - [`Write`]: what the recorder sends — an exchange begun ([`NewExchange`]), completed
//!   ([`Completion`]), or both at once; [`Store::write_batch`] applies many in one transaction.
//! - [`Durability`]: whether a batch is synced before the writer is answered (`Power`) or
//!   within a sync interval (`Process`); chosen at connect, and per batch.
//! - [`ExchangeQuery`] and [`Page`]: listing with the filters of the contract, newest first,
//!   paged by a keyset cursor.
//! - [`Exchange`]: one exchange in full, as read back.
//!
//! # Invariants
//! - Nothing here redacts: callers hand over content that is already redacted, and a test
//!   in the proxy scans every stored row for the secrets it sent.
//! - Exchange ids are UUIDv7 strings, so id order is time order: listings, cursors and the
//!   `since`/`until` bounds all use the primary key.
//! - The SQLite and PostgreSQL migrations carry the same versions (a test checks it).

mod audit;
mod backup;
mod column;
mod erasure;
mod instances;
mod intent;
mod isolation;
mod journal;
mod overview;
#[cfg(feature = "fuzzing")]
pub use journal::fuzz_decode as fuzz_journal_decode;
mod model;
pub mod private;
mod query;
mod repairs;
mod retention;
mod spool;
mod sql;
mod sqlite_writer;
mod stored_json;
mod summary;

pub use audit::{AuditEntry, AuditQuery, AUDIT_KEEP_MS};
pub use backup::Backup;
pub use erasure::{ErasedResource, Erasure, ErasureReport, ERASED};
pub use instances::{InstanceRecord, InstanceState};
pub use intent::{Reconciliation, UnfoldedWrite};
pub use isolation::Written;
pub use model::{
    rfc3339, Completion, Exchange, ExchangeQuery, NewExchange, Page, ResourceName, ResourceWrite, Snapshot, Write,
    OUTCOME_IN_FLIGHT,
};
pub use overview::{Bucket, RouteCounts};
pub use query::REPLAYABLE_OUTCOMES;
pub use repairs::{IntentAlias, RepairRecord};
pub use retention::{PruneReport, Retention, StoreSize, OUTCOMES};

use isolation::{commit_isolated, Lessen};
use journal::Journal;
use sqlite_writer::SqliteWriter;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported store URL \"{0}\": use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// No exchange has this id.
    #[error("no exchange with id {0}")]
    NotFound(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite write connection refused or failed.
    #[error("database error: {0}")]
    SqliteWrite(#[from] rusqlite::Error),
    /// The journal (SQLite's durable record, ahead of the database) failed.
    #[error("journal: {0}")]
    Journal(String),
    /// What was asked cannot be done as asked (an erasure whose name fits several people).
    #[error("{0}")]
    Refused(String),
    /// A blocking write task failed.
    #[error("the write task failed: {0}")]
    Thread(String),
    /// A stored JSON column does not parse.
    #[error("stored JSON in column {column} of exchange {id} does not parse: {source}")]
    Corrupt {
        /// The exchange.
        id: String,
        /// The column.
        column: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// What one process at a time may do over a store, under a lease in it (`replay_lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// A replay run.
    Replay,
    /// Pruning by the retention policy.
    Prune,
    /// Folding recorded writes into the intent (`Store::fold_pending_intent`).
    Intent,
    /// The scheduled reconciliations (`[route.reconcile] every`).
    Reconcile,
}

impl Lease {
    fn name(self) -> &'static str {
        match self {
            Lease::Replay => "replay",
            Lease::Prune => "prune",
            Lease::Intent => "intent",
            Lease::Reconcile => "reconcile",
        }
    }
}

/// When a recorded write is durable: what `[record] durability` chooses for every write, and
/// what a write that must be durable whatever was chosen (a replay's) asks for on its own.
///
/// Both levels record a write before it is forwarded and before its response is released; they
/// differ in whether it is also synced to disk by then. A batch holding any `Power` write is
/// committed as `Power`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Durability {
    /// Synced before the writer is answered: a recorded write survives a power loss or an OS
    /// crash. SQLite: the journal's append is `fdatasync`ed (`synchronous = FULL` without a
    /// journal); PostgreSQL: the commit waits for its WAL flush (`synchronous_commit = on`).
    Power,
    /// Written, not synced, before the writer is answered: it survives the process being
    /// killed (it is in the OS's page cache, or in PostgreSQL's memory), and is synced within
    /// the sync interval, so a power loss (or a crash of the PostgreSQL server) may lose the
    /// last interval. SQLite: the journal's syncer (see the `journal` module); without a
    /// journal (another process holds it), `synchronous = NORMAL`, synced at SQLite's next
    /// checkpoint. PostgreSQL: `synchronous_commit = off` for the batch.
    Process,
}

impl Durability {
    /// The level a batch of writes asking for these levels is committed at: the strongest.
    pub fn of_batch(levels: impl IntoIterator<Item = Durability>) -> Durability {
        // `Power` sorts first.
        levels.into_iter().min().unwrap_or(Durability::Process)
    }

    /// `power` or `process`, as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Power => "power",
            Durability::Process => "process",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long a journal leaves `Process` writes unsynced, by default (`[record] sync_interval_ms`).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(10);

/// What a SQLite store knows beyond its connections.
#[derive(Debug, Clone)]
struct Sqlite {
    file: PathBuf,
    /// How long the journal, once opened, leaves `Process` writes unsynced.
    sync_interval: Duration,
    /// Writes go through it when this store holds the database's journal.
    journal: Option<Arc<Journal>>,
}

/// A connection pool to SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// The level [`Store::write_batch`] commits at (`[record] durability`).
    durability: Durability,
    /// PostgreSQL: where records go while it cannot take them (see the `spool` module).
    spool: Option<Arc<spool::Spool>>,
}

#[derive(Debug, Clone)]
enum Pool {
    /// Reads and migrations through sqlx; batches through a write connection of our own.
    Sqlite(SqlitePool, SqliteWriter, Sqlite),
    /// The runtime drives the pool's connections, also for [`Store::write_batch_blocking`].
    Postgres(PgPool, tokio::runtime::Handle),
}

impl Store {
    /// Connects to `sqlite://FILE` (created if missing, WAL, `synchronous=FULL`) or
    /// `postgres://…`, writing at [`Durability::Power`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, Durability::Power).await
    }

    /// Connects, choosing the level writes are committed at unless one asks for more (see
    /// [`Store::write_batch_blocking`]).
    pub async fn connect_with(url: &str, durability: Durability) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match durability {
                    Durability::Power => SqliteSynchronous::Full,
                    Durability::Process => SqliteSynchronous::Normal,
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // So that pruning can give space back (see `retention`); a store made before
                // it is converted once by `migrate`.
                .pragma("auto_vacuum", "incremental")
                // No copy of a rewritten row left in its page's free space (see `erasure`).
                .pragma("secure_delete", "FAST");
            let file = options.get_filename().to_owned();
            // Created private before SQLite makes it (and its WAL and shared memory, which
            // take its mode): see `private`.
            if file != Path::new(":memory:") && !file.exists() {
                private::create_if_missing(&file)
                    .map_err(|e| StoreError::Journal(format!("cannot create {}: {e}", file.display())))?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                // A local file does not go stale: skip the ping on every acquire.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            // The pool has created the file and switched it to WAL.
            let writer = SqliteWriter::open(&file, durability)?;
            // What a process that died left in the journal is applied, unless it lives on. An
            // older schema may not take it yet (an upgrade after a crash): `migrate` then
            // applies it, after the migrations.
            if let Err(error) = journal::recover_if_free(&file, &writer) {
                tracing::warn!(%error, "Records a previous run journaled cannot be applied yet; they are applied after the store's migrations.");
            }
            let sqlite = Sqlite {
                file,
                sync_interval: DEFAULT_SYNC_INTERVAL,
                journal: None,
            };
            Pool::Sqlite(pool, writer, sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    // A server that is away fails a write in seconds, not the default 30: with
                    // a spool, that is how long the first batch of an outage waits.
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?,
                tokio::runtime::Handle::try_current().map_err(|error| {
                    StoreError::Thread(format!("the PostgreSQL store needs a tokio runtime: {error}"))
                })?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Store {
            pool,
            durability,
            spool: None,
        })
    }

    /// The level [`Store::write_batch`] commits at, chosen at connect.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// How long a journal leaves [`Durability::Process`] writes unsynced (10 ms unless said):
    /// for the journal [`Store::with_journal`] opens, or has opened. Other stores ignore it.
    pub fn with_sync_interval(self, interval: Duration) -> Store {
        match self.pool {
            Pool::Sqlite(pool, writer, sqlite) => {
                if let Some(journal) = &sqlite.journal {
                    journal.set_sync_interval(interval);
                }
                Store {
                    pool: Pool::Sqlite(
                        pool,
                        writer,
                        Sqlite {
                            sync_interval: interval,
                            ..sqlite
                        },
                    ),
                    ..self
                }
            }
            Pool::Postgres(..) => self,
        }
    }

    /// This store, writing through SQLite's journal (see the `journal` module): writes are
    /// made durable by an append to a file and applied to the database behind, in large
    /// batches; this store's reads wait for them. Only one process holds a journal: when
    /// another one does, writes go straight to the database, as for PostgreSQL (whose server
    /// is the durable record, and may be shared by several instances).
    pub fn with_journal(self) -> Result<Store, StoreError> {
        let Pool::Sqlite(pool, writer, sqlite) = self.pool else {
            return Ok(self);
        };
        if sqlite.journal.is_some() {
            return Ok(Store {
                pool: Pool::Sqlite(pool, writer, sqlite),
                ..self
            });
        }
        let journal = Journal::open(&sqlite.file, sqlite.sync_interval, writer.clone())?;
        if journal.is_none() {
            tracing::warn!(
                journal = %journal::directory(&sqlite.file).display(),
                "Another process writes through this store's journal: writing to the database directly."
            );
        }
        Ok(Store {
            pool: Pool::Sqlite(pool, writer, Sqlite { journal, ..sqlite }),
            ..self
        })
    }

    /// This PostgreSQL store, spooling its records into `dir` while PostgreSQL cannot take
    /// them, and draining them into it once it can (see the `spool` module). A SQLite store
    /// is returned as it is: its journal is local already.
    ///
    /// What a previous run left in the spool is drained before this returns, when PostgreSQL
    /// takes it, so that marking that run's exchanges interrupted comes after.
    pub async fn with_spool(self, dir: &std::path::Path) -> Result<Store, StoreError> {
        let Pool::Postgres(pool, runtime) = &self.pool else {
            return Ok(self);
        };
        let (pool, runtime) = (pool.clone(), runtime.clone());
        let commit: spool::Commit = Box::new(move |writes, durability| {
            runtime.block_on(async {
                write_postgres(&pool, writes, durability).await?;
                // Spooled records reach PostgreSQL after younger ones: the intent folds them.
                let oldest = writes
                    .iter()
                    .filter_map(|write| match write {
                        Write::Begin(new) | Write::Whole(new, _) => Some(new.id.as_str()),
                        _ => None,
                    })
                    .min();
                if let Some(oldest) = oldest {
                    let (statement, params) = Store::unfold_from_statement(oldest);
                    let statement = sql::numbered_placeholders(&statement);
                    sql::bind_postgres(sqlx::query(&statement), params)
                        .execute(&pool)
                        .await?;
                }
                Ok(())
            })
        });
        let dir = dir.to_owned();
        let spool = tokio::task::spawn_blocking(move || spool::Spool::open(&dir, commit))
            .await
            .map_err(|error| StoreError::Thread(error.to_string()))??;
        Ok(Store {
            spool: Some(spool),
            ..self
        })
    }

    /// While records are spooled for PostgreSQL: how many wait.
    pub fn spooling(&self) -> Option<u64> {
        self.spool.as_ref().and_then(|spool| spool.spooling())
    }

    /// While a spool cannot be drained: why (PostgreSQL's error).
    pub fn spool_failing(&self) -> Option<String> {
        self.spool.as_ref().and_then(|spool| spool.failing())
    }

    /// How many records this store has journaled and not yet synced: those a power cut now
    /// could lose (0 unless writes at [`Durability::Process`] wait for the journal's syncer).
    pub fn unsynced_records(&self) -> u64 {
        self.journal().map_or(0, |journal| journal.unsynced())
    }

    /// Whether writes go through a journal.
    pub fn journaled(&self) -> bool {
        self.journal().is_some()
    }

    /// Applies what is journaled and releases the journal (when nothing is left unapplied,
    /// its files are deleted). For the end of a process; later writes fail.
    pub async fn close(&self) {
        if let Some(spool) = &self.spool {
            let spool = Arc::clone(spool);
            if let Err(error) = tokio::task::spawn_blocking(move || spool.close()).await {
                tracing::error!(%error, "Closing the spool failed; the next start drains it.");
            }
        }
        if let Some(journal) = self.journal() {
            let journal = Arc::clone(journal);
            if let Err(error) = tokio::task::spawn_blocking(move || journal.close()).await {
                tracing::error!(%error, "Closing the journal failed; the next start applies what it left.");
            }
        }
    }

    /// Waits until this store's journaled writes are applied, so that a read sees them.
    async fn caught_up(&self) {
        self.caught_up_fully().await;
    }

    /// Waits for the journal as [`Store::caught_up`] does; returns whether everything it
    /// held is now in the database (always, without a journal), and nothing waits in a
    /// PostgreSQL store's spool.
    async fn caught_up_fully(&self) -> bool {
        let journaled = match self.journal() {
            Some(journal) => journal.caught_up().await,
            None => true,
        };
        journaled && self.spooling().is_none_or(|waiting| waiting == 0)
    }

    /// The journal this store writes through, when it holds one.
    fn journal(&self) -> Option<&Arc<Journal>> {
        match &self.pool {
            Pool::Sqlite(_, _, sqlite) => sqlite.journal.as_ref(),
            Pool::Postgres(..) => None,
        }
    }

    /// Which backend this is (`sqlite` or `postgres`).
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(..) => "sqlite",
            Pool::Postgres(..) => "postgres",
        }
    }

    /// Applies pending migrations (forward only), then what a dead process journaled and
    /// the older schema could not take.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool, writer, sqlite) => {
                rolling(sqlx::migrate!("../../migrations/sqlite")).run(pool).await?;
                // 2 is INCREMENTAL. A store made before retention keeps its free pages inside
                // the file; one VACUUM (a copy of the file) lets pruning return them.
                let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(pool).await?;
                if auto_vacuum != 2 {
                    tracing::info!(file = %sqlite.file.display(), "Converting the store so that pruning can give space back (one VACUUM).");
                    let mut connection = pool.acquire().await?;
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query("VACUUM").execute(&mut *connection).await?;
                }
                if sqlite.journal.is_none() {
                    journal::recover_if_free(&sqlite.file, writer)?;
                }
            }
            Pool::Postgres(pool, _) => rolling(sqlx::migrate!("../../migrations/postgres")).run(pool).await?,
        };
        Ok(())
    }

    /// Whether the database answers (and takes what the journal holds).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if let Some(reason) = self.journal().and_then(|journal| journal.failing()) {
            return Err(StoreError::Journal(format!(
                "the store fails to take what is journaled: {reason}"
            )));
        }
        match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Pool::Postgres(pool, _) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Applies the writes in order, in one transaction, at this store's [`Durability`]
    /// (through the journal, if this store holds it: then recorded on return, and in the
    /// database soon after). A record the database refuses fails alone (see [`Written`]); the
    /// error is the store's, when the batch failed on the store itself and nothing was written.
    pub async fn write_batch(&self, writes: Vec<Write>) -> Result<Vec<Written>, StoreError> {
        let store = self.clone();
        let durability = self.durability;
        tokio::task::spawn_blocking(move || store.write_batch_blocking(writes, durability))
            .await
            .map_err(|error| StoreError::Thread(error.to_string()))?
    }

    /// [`Store::write_batch`], blocking the calling thread until the commit: for a dedicated
    /// writer thread (the recorder's), so that a batch costs no hand-off to another thread.
    /// Must not be called from an async task (PostgreSQL's write would panic on `block_on`
    /// inside the runtime).
    ///
    /// `durability` is the batch's, whatever the store's: at [`Durability::Power`] the batch
    /// is synced before this returns (a journal's append is `fdatasync`ed, and with it every
    /// `Process` append before it); at [`Durability::Process`] it is written, and synced
    /// within the sync interval (PostgreSQL: by its server, `synchronous_commit = off`).
    ///
    /// A record the database refuses on its own does not fail the others: the batch is then
    /// committed record by record, and a completion the database refuses whole is kept in a
    /// lesser form (the application has applied what it records). An in-flight record is
    /// refused: its exchange is not forwarded.
    pub fn write_batch_blocking(&self, writes: Vec<Write>, durability: Durability) -> Result<Vec<Written>, StoreError> {
        if let Some(journal) = self.journal() {
            let count = writes.len();
            // Appending frames fails for the journal as a whole, never for one record; what
            // SQLite later refuses is the applier's to isolate.
            journal.append(writes, durability)?;
            return Ok(vec![Written::Committed; count]);
        }
        let results = match &self.pool {
            Pool::Postgres(..) if self.spool.is_some() => match &self.spool {
                Some(spool) => spool.write(&writes, durability),
                None => Ok(Vec::new()),
            },
            Pool::Sqlite(_, writer, _) => commit_isolated(&writes, Lessen::Completions, |writes| {
                writer.write_blocking(&writes.iter().flat_map(sql::statements).collect(), durability)
            }),
            Pool::Postgres(pool, runtime) => commit_isolated(&writes, Lessen::Completions, |writes| {
                runtime.block_on(write_postgres(pool, writes, durability))
            }),
        }?;
        for (write, written) in writes.iter().zip(&results) {
            let id = write.exchange_id().unwrap_or("-");
            match written {
                Written::Committed => {}
                Written::Degraded(reason) => {
                    tracing::warn!(
                        id,
                        reason,
                        "The store refused a record whole; it is kept without what the peers sent."
                    );
                }
                Written::Refused(reason) => {
                    tracing::error!(
                        id,
                        reason,
                        "The store refused a record on its own; the rest of its batch was committed."
                    );
                }
                Written::Failed(reason) => {
                    tracing::error!(
                        id,
                        reason,
                        "The store failed while committing a batch record by record."
                    );
                }
            }
        }
        Ok(results)
    }

    /// The records SQLite refused in every form and the journal moved aside so that they
    /// block nothing behind them: the file and how many it holds (a journaled SQLite store).
    pub fn moved_aside(&self) -> Option<(PathBuf, u64)> {
        let spooled = self.spool.as_ref().and_then(|spool| spool.moved_aside());
        self.journal().and_then(|journal| journal.moved_aside()).or(spooled)
    }

    /// Marks the exchanges `instance` left in flight (it stopped without completing them) as
    /// `interrupted`; returns how many.
    pub async fn mark_interrupted(&self, instance: &str) -> Result<u64, StoreError> {
        self.caught_up().await;
        let statement = "UPDATE exchanges SET outcome = 'interrupted', \
                         error = 'the proxy stopped while the exchange was in flight' \
                         WHERE outcome = 'in_flight' AND instance = ?";
        let affected = match &self.pool {
            Pool::Sqlite(pool, ..) => sqlx::query(statement)
                .bind(instance)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sqlx::query(&statement)
                    .bind(instance)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(affected)
    }

    /// Takes the replay lease for `holder` until `until_ms`, unless another holder has it
    /// past `now_ms`; then returns that holder and when its lease ends.
    pub async fn take_replay_lease(
        &self,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Result<(), (String, i64)>, StoreError> {
        // A prune deletes what a run decides from: a run waits for it (and a prune stops
        // between batches once a run holds its lease).
        if let Some((pruner, until)) = self.lease_holder(Lease::Prune, now_ms).await? {
            return Ok(Err((format!("{pruner} (pruning)"), until)));
        }
        self.take_lease(Lease::Replay, holder, now_ms, until_ms).await
    }

    /// The value every instance sharing the store must agree on for `name`: `value`, written
    /// now if none is, or the one written first.
    pub async fn agree_on(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let insert = "INSERT INTO store_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
        let params = vec![
            sql::Param::Text(Some(name.to_owned())),
            sql::Param::Text(Some(value.to_owned())),
        ];
        self.execute(insert, params).await?;
        let select = "SELECT value FROM store_settings WHERE name = ?";
        let params = vec![sql::Param::Text(Some(name.to_owned()))];
        Ok(self
            .scalars(select, params)
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| value.to_owned()))
    }

    /// Gives the replay lease up, if `holder` has it.
    pub async fn release_replay_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.release_lease(Lease::Replay, holder).await
    }

    /// Takes `lease` for `holder` until `until_ms` (or renews it), unless another holder has
    /// it past `now_ms`; then returns that holder and when its lease ends.
    pub async fn take_lease(
        &self,
        lease: Lease,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Result<(), (String, i64)>, StoreError> {
        let statement = "INSERT INTO replay_lease (name, holder, expires_at) VALUES (?, ?, ?) \
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                         WHERE replay_lease.expires_at < ? OR replay_lease.holder = excluded.holder";
        let params = vec![
            sql::Param::Text(Some(lease.name().to_owned())),
            sql::Param::Text(Some(holder.to_owned())),
            sql::Param::Int(Some(until_ms)),
            sql::Param::Int(Some(now_ms)),
        ];
        let taken = self.execute(statement, params).await?;
        if taken > 0 {
            return Ok(Ok(()));
        }
        match self.lease_holder(lease, i64::MIN).await? {
            Some(held) => Ok(Err(held)),
            // Given up between the two statements: try again once.
            None => Ok(Err((String::new(), now_ms))),
        }
    }

    /// Who holds `lease` past `now_ms`, and until when.
    pub async fn lease_holder(&self, lease: Lease, now_ms: i64) -> Result<Option<(String, i64)>, StoreError> {
        let statement = "SELECT holder, expires_at FROM replay_lease WHERE name = ? AND expires_at >= ?";
        let held: Option<(String, i64)> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_as(statement)
                    .bind(lease.name())
                    .bind(now_ms)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                sqlx::query_as(&sql::numbered_placeholders(statement))
                    .bind(lease.name())
                    .bind(now_ms)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(held)
    }

    /// Gives `lease` up, if `holder` has it.
    pub async fn release_lease(&self, lease: Lease, holder: &str) -> Result<(), StoreError> {
        let statement = "DELETE FROM replay_lease WHERE name = ? AND holder = ?";
        let params = vec![
            sql::Param::Text(Some(lease.name().to_owned())),
            sql::Param::Text(Some(holder.to_owned())),
        ];
        self.execute(statement, params).await?;
        Ok(())
    }

    /// The deactivations and deprovisions `instance` left in flight (at most 1000): what to
    /// alert on before they are marked interrupted.
    pub async fn in_flight_deprovisions(&self, instance: &str) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::in_flight_deprovisions(instance)).await
    }

    /// One exchange in full, with the ids of its replays.
    pub async fn get(&self, id: &str) -> Result<Exchange, StoreError> {
        let mut found = self.select(&query::by_id(id)).await?;
        let mut exchange = found.pop().ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        exchange.replays = self.ids_where("replay_of", id).await?;
        exchange.children = self.ids_where("parent_id", id).await?;
        Ok(exchange)
    }

    /// A page of exchanges matching `filter`, newest first.
    pub async fn list(&self, filter: &ExchangeQuery) -> Result<Page, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let select = match &filter.user {
            Some(user) => self.plan_for_person(filter, user, limit + 1).await?,
            None => query::list(filter, limit + 1),
        };
        let mut items = self.select(&select).await?;
        // The person's plan reads each name and resource apart: merge them, newest first.
        items.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        items.dedup_by(|a, b| a.id == b.id);
        let next_cursor = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// How to read a page of one person's exchanges. Through the names index when the text
    /// names at most [`NAMED_RESOURCES_READ_APART`] resources: their writes and everything
    /// carrying their userNames (or the text itself as a userName: a failed create of someone
    /// never provisioned), each read from an index — under a hundred milliseconds on a store of
    /// a million exchanges. A text that names more is common enough that walking the
    /// exchanges from the newest finds a page quickly.
    async fn plan_for_person(
        &self,
        filter: &ExchangeQuery,
        user: &str,
        limit: u64,
    ) -> Result<query::Select, StoreError> {
        self.caught_up().await;
        let named = query::resources_named(user, filter.route.as_deref(), NAMED_RESOURCES_READ_APART + 1);
        let rows = self.text_rows(&named.sql, named.params).await?;
        if rows.len() as u64 > NAMED_RESOURCES_READ_APART {
            return Ok(query::list(filter, limit));
        }
        let mut user_names = vec![user.to_lowercase()];
        let mut resources = Vec::new();
        for row in rows {
            let [Some(route), Some(resource_type), Some(resource_id), user_name] =
                <[Option<String>; 4]>::try_from(row).unwrap_or_default()
            else {
                continue;
            };
            if let Some(name) = user_name.map(|n| n.to_lowercase()) {
                if !user_names.contains(&name) {
                    user_names.push(name);
                }
            }
            resources.push(query::ResourceKey {
                route,
                resource_type,
                resource_id,
            });
        }
        Ok(query::list_named(filter, &user_names, &resources, limit))
    }

    /// What the resources at `keys` (route, resource type, id) are called, where the names
    /// index knows (at most 200 keys are looked up).
    pub async fn names_of(&self, keys: &[(String, String, String)]) -> Result<Vec<ResourceName>, StoreError> {
        let keys = &keys[..keys.len().min(200)];
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = vec!["(route = ? AND resource_type = ? AND resource_id = ?)"; keys.len()].join(" OR ");
        let params = keys
            .iter()
            .flat_map(|(route, resource_type, id)| [route, resource_type, id].map(|v| sql::key_param(v)))
            .collect();
        let rows = self
            .text_rows(
                &format!(
                    "SELECT route, resource_type, resource_id, user_name, external_id, display_name, \
                     CAST(learned_at AS TEXT) FROM resource_names WHERE {wanted}"
                ),
                params,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let [Some(route), Some(resource_type), Some(resource_id), user_name, external_id, display_name, learned] =
                    <[Option<String>; 7]>::try_from(row).ok()?
                else {
                    return None;
                };
                Some(ResourceName {
                    route,
                    resource_type,
                    resource_id,
                    user_name,
                    external_id,
                    display_name,
                    learned_at_ms: learned.and_then(|l| l.parse().ok()).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// The writes (POST, PUT, PATCH, DELETE) `route` recorded on one resource, replays
    /// included, oldest first.
    pub async fn writes_to(
        &self,
        route: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::writes_to(route, resource_type, resource_id)).await
    }

    /// Creates on `route` of `resource_type` that succeeded after `after_id`, replays
    /// included, of `user_name` when given; oldest first, at most 1000.
    pub async fn later_creates(
        &self,
        route: &str,
        resource_type: &str,
        after_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::later_creates(route, resource_type, after_id, user_name))
            .await
    }

    /// The replays of one exchange, in full, oldest first.
    pub async fn replays(&self, id: &str) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::replays_of(id)).await
    }

    /// The application's last representation of a resource as `route` saw it, if kept.
    pub async fn snapshot(
        &self,
        route: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.caught_up().await;
        // Bound as they were written (see `column`).
        let [route, resource_type, resource_id] = [route, resource_type, resource_id].map(column::key);
        let body: Option<String> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_scalar(sql::GET_SNAPSHOT)
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(sql::GET_SNAPSHOT);
                sqlx::query_scalar(&statement)
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        body.map(|body| {
            stored_json::from_slice(body.as_bytes()).map_err(|source| StoreError::Corrupt {
                id: format!("{route}/{resource_type}/{resource_id}"),
                column: "resource_snapshots.body",
                source,
            })
        })
        .transpose()
    }

    /// The request shapes `route` has seen.
    pub async fn route_shapes(&self, route: &str) -> Result<Vec<String>, StoreError> {
        self.caught_up().await;
        let route = column::key(route);
        let shapes = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_scalar(sql::ROUTE_SHAPES)
                    .bind(&route)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(sql::ROUTE_SHAPES);
                sqlx::query_scalar(&statement).bind(&route).fetch_all(pool).await?
            }
        };
        Ok(shapes)
    }

    /// Adds `shape` to what `route` has seen, at `at_ms`; true when this call added it,
    /// false when it was there (another instance, or a restart, saw it first). Written
    /// directly, not behind: a new shape is rare, and whether it is new decides a finding
    /// that only one instance may make.
    pub async fn add_route_shape(&self, route: &str, shape: &str, at_ms: i64) -> Result<bool, StoreError> {
        let params = vec![
            sql::Param::Text(Some(column::key(route))),
            sql::Param::Text(Some(column::bounded(shape, column::SHAPE_MAX_BYTES))),
            sql::Param::Int(Some(at_ms)),
        ];
        Ok(self.execute(sql::KEEP_SHAPE, params).await? > 0)
    }

    /// The ids of the exchanges linked to `id` by `column` (`replay_of`, `parent_id`).
    async fn ids_where(&self, column: &'static str, id: &str) -> Result<Vec<String>, StoreError> {
        self.caught_up().await;
        let statement = format!("SELECT id FROM exchanges WHERE {column} = ? ORDER BY id");
        let statement = statement.as_str();
        let ids = match &self.pool {
            Pool::Sqlite(pool, ..) => sqlx::query_scalar(statement).bind(id).fetch_all(pool).await?,
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sqlx::query_scalar(&statement).bind(id).fetch_all(pool).await?
            }
        };
        Ok(ids)
    }

    /// Runs one statement (`?` placeholders) through the read pool; returns the rows affected.
    async fn execute(&self, statement: &str, params: Vec<sql::Param>) -> Result<u64, StoreError> {
        let affected = match &self.pool {
            Pool::Sqlite(pool, ..) => sql::bind_sqlite(sqlx::query(statement), params)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres(sqlx::query(&statement), params)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(affected)
    }

    async fn select(&self, query: &query::Select) -> Result<Vec<Exchange>, StoreError> {
        self.caught_up().await;
        match &self.pool {
            Pool::Sqlite(pool, ..) => {
                let rows = sql::bind_sqlite(sqlx::query(&query.sql), query.params.clone())
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(model::exchange_from_row).collect()
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(&query.sql);
                let rows = sql::bind_postgres(sqlx::query(&statement), query.params.clone())
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(model::exchange_from_row).collect()
            }
        }
    }
}

/// How many resources a person's filter may name and still be read resource by resource.
const NAMED_RESOURCES_READ_APART: u64 = 100;

/// Migrations for a rolling upgrade: a store a newer version has migrated further is served
/// as it is. Migrations are expand-only (tables, nullable or defaulted columns, indexes; a test
/// holds every file to it), so the statements of an older version still fit the newer schema;
/// whatever a later version contracts waits until no older version serves.
fn rolling(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// How long a batch may take PostgreSQL: a connection that went silent in a failover (no
/// reset) would otherwise hold the writer for as long as TCP retries. Past it the batch counts
/// as failed by the store; applying it again later is idempotent.
const POSTGRES_BATCH_TIMEOUT: Duration = Duration::from_secs(15);

async fn write_postgres(pool: &PgPool, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
    match tokio::time::timeout(POSTGRES_BATCH_TIMEOUT, write_postgres_retried(pool, writes, durability)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Journal(format!(
            "PostgreSQL did not take a batch within {} s",
            POSTGRES_BATCH_TIMEOUT.as_secs()
        ))),
    }
}

/// Tries a batch again when PostgreSQL aborted it for a deadlock or a serialization failure:
/// nothing of it was written, and another try usually passes. Instances sharing a store lock
/// the same rows (the snapshots of the resources their batches write) when the IdP writes
/// through several of them at once, in whatever order their batches hold.
async fn write_postgres_retried(pool: &PgPool, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
    const TRIES: u32 = 5;
    let mut tries = 1;
    loop {
        match write_postgres_now(pool, writes, durability).await {
            Err(StoreError::Database(sqlx::Error::Database(error)))
                if tries < TRIES && matches!(error.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tracing::info!(%error, tries, "PostgreSQL aborted a batch to break a lock cycle; trying it again.");
                tries += 1;
            }
            result => return result,
        }
    }
}

/// How a PostgreSQL batch at `durability` begins: `synchronous_commit` set for its own
/// transaction, whatever the server's default, in the same round trip as the `BEGIN` (one
/// simple query; no connection option either, which a pooler such as PgBouncer may refuse).
/// `on`: the commit returns once its WAL is flushed. `off`: once the server has it; the server
/// flushes it within moments (`wal_writer_delay`), so it survives the proxy being killed, not
/// a crash of the server.
pub(crate) fn begin_statement(durability: Durability) -> &'static str {
    match durability {
        Durability::Power => "BEGIN; SET LOCAL synchronous_commit = on",
        Durability::Process => "BEGIN; SET LOCAL synchronous_commit = off",
    }
}

async fn write_postgres_now(pool: &PgPool, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
    let mut tx = pool.begin_with(begin_statement(durability)).await?;
    for write in writes {
        for (statement, params) in sql::statements(write) {
            let statement = sql::numbered_placeholders(statement);
            sql::bind_postgres(sqlx::query(&statement), params)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
