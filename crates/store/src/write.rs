//! Writing: batches through the journal, the spool or the database, and what marks
//! exchanges interrupted.

use crate::isolation::{commit_isolated, Lessen};
use crate::model::Write;
use crate::{sql, Durability, Pool, Store, StoreError, Written};
use sqlx::postgres::PgPool;
use std::path::PathBuf;
use std::time::Duration;

impl Store {
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

    /// Runs one statement (`?` placeholders) through the read pool; returns the rows affected.
    pub(crate) async fn execute(&self, statement: &str, params: Vec<sql::Param>) -> Result<u64, StoreError> {
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
}

/// How long a batch may take PostgreSQL: a connection that went silent in a failover (no
/// reset) would otherwise hold the writer for as long as TCP retries. Past it the batch counts
/// as failed by the store; applying it again later is idempotent.
const POSTGRES_BATCH_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) async fn write_postgres(pool: &PgPool, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
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
