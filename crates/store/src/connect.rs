//! A store opened: connecting and migrating, the journal or the spool it writes through,
//! and its close.

use crate::journal::{self, Journal};
use crate::model::Write;
use crate::sqlite_writer::SqliteWriter;
use crate::write::write_postgres;
use crate::{private, spool, sql, Durability, Pool, Sqlite, Store, StoreError, DEFAULT_SYNC_INTERVAL};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
    pub(crate) async fn caught_up(&self) {
        self.caught_up_fully().await;
    }

    /// Waits for the journal as [`Store::caught_up`] does; returns whether everything it
    /// held is now in the database (always, without a journal), and nothing waits in a
    /// PostgreSQL store's spool.
    pub(crate) async fn caught_up_fully(&self) -> bool {
        let journaled = match self.journal() {
            Some(journal) => journal.caught_up().await,
            None => true,
        };
        journaled && self.spooling().is_none_or(|waiting| waiting == 0)
    }

    /// The journal this store writes through, when it holds one.
    pub(crate) fn journal(&self) -> Option<&Arc<Journal>> {
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
}

/// Migrations for a rolling upgrade: a store a newer version has migrated further is served
/// as it is. Migrations are expand-only (tables, nullable or defaulted columns, indexes; a test
/// holds every file to it), so the statements of an older version still fit the newer schema;
/// whatever a later version contracts waits until no older version serves.
fn rolling(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}
