//! SQLite writes through a connection of their own, on the caller's thread.
//!
//! Why not sqlx here: sqlx-sqlite runs every statement on its worker thread and hands each
//! one over and back through channels, so a batch of n writes costs about 2n thread wake-ups.
//! On a busy machine each wake-up waits for the scheduler, and the commit of a batch of eight
//! took over a millisecond although SQLite itself needed a fifth of that. Here the whole batch
//! — BEGIN, the statements (prepared once and cached), COMMIT — runs synchronously on the
//! thread that asks: the recorder's own thread. Reads and migrations stay on sqlx.
//!
//! Each batch is committed at its own [`Durability`]: `PRAGMA synchronous` (FULL for `Power`,
//! NORMAL for `Process`) is set before the batch when it differs from the last one's, which
//! costs no I/O. Under NORMAL a commit is in the WAL, in the OS's page cache, and synced at
//! the next checkpoint (every 100 ms, below).

use crate::sql::Param;
use crate::{Durability, StoreError};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ToSql, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The statements of one batch, in order.
pub(crate) type Statements = Vec<(&'static str, Vec<Param>)>;

/// The write connection; one writer at a time, as SQLite allows.
#[derive(Debug, Clone)]
pub(crate) struct SqliteWriter {
    connection: Arc<Mutex<Writer>>,
}

#[derive(Debug)]
struct Writer {
    connection: Connection,
    /// The level `PRAGMA synchronous` is set for.
    synchronous: Durability,
}

/// `PRAGMA synchronous` for `durability`.
fn synchronous_pragma(durability: Durability) -> &'static str {
    match durability {
        Durability::Power => "PRAGMA synchronous = FULL",
        Durability::Process => "PRAGMA synchronous = NORMAL",
    }
}

impl SqliteWriter {
    /// Opens a connection to `file`, which the caller has created in WAL mode.
    pub(crate) fn open(file: &Path, durability: Durability) -> Result<SqliteWriter, StoreError> {
        let connection = Connection::open(file)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // `secure_delete = FAST`: a row rewritten (an exchange's begin completed, an erasure)
        // leaves no copy of what it held in its page's free space, at no extra I/O.
        connection.execute_batch(&format!(
            "{}; PRAGMA foreign_keys = ON; PRAGMA secure_delete = FAST;",
            synchronous_pragma(durability)
        ))?;
        // Checkpoints copy the WAL back into the database file, with an fsync. A commit that
        // crosses SQLite's threshold (1000 pages) checkpoints everything not yet copied, which
        // stalled every exchange waiting on it for tens of milliseconds. So a thread of its
        // own copies the WAL as it grows, and the writer's own checkpoint only has the last
        // few pages to copy before the WAL restarts from its beginning.
        let checkpoints = Connection::open(file)?;
        checkpoints.busy_timeout(Duration::from_secs(10))?;
        let connection = Arc::new(Mutex::new(Writer {
            connection,
            synchronous: durability,
        }));
        let writer_alive = Arc::downgrade(&connection);
        std::thread::Builder::new()
            .name("scimtrail-sqlite-checkpoint".into())
            .spawn(move || {
                // Until the store is dropped.
                while writer_alive.strong_count() > 0 {
                    std::thread::sleep(CHECKPOINT_INTERVAL);
                    // PASSIVE never blocks the writer; what it cannot copy now waits for the next.
                    // (Without the writer's own checkpoint the WAL would never restart: under
                    // steady writes this one is always a few pages behind.)
                    if let Err(error) = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(%error, "A WAL checkpoint failed; the next one will retry.");
                    }
                }
            })
            .map_err(|error| StoreError::Thread(format!("cannot start the checkpoint thread: {error}")))?;
        Ok(SqliteWriter { connection })
    }

    /// Runs the statements in one transaction, blocking this thread until the commit, which
    /// is synced before this returns at [`Durability::Power`].
    pub(crate) fn write_blocking(&self, statements: &Statements, durability: Durability) -> Result<(), StoreError> {
        // A writer that panicked mid-batch left no open transaction (it rolled back on drop),
        // so the connection is still good.
        let mut writer = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if writer.synchronous != durability {
            writer.connection.execute_batch(synchronous_pragma(durability))?;
            writer.synchronous = durability;
        }
        Ok(write(&mut writer.connection, statements)?)
    }

    /// Copies the whole WAL into the database file and syncs both, whatever `synchronous` says.
    ///
    /// Under `synchronous = normal` a commit survives a crash of the process but not a power
    /// cut, until a checkpoint. Before journaled records, acknowledged as synced, lose their
    /// only other copy, they must be in the database file for good.
    pub(crate) fn checkpoint_durably(&self) -> Result<(), StoreError> {
        let writer = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let connection = &writer.connection;
        // (busy, WAL frames, frames copied). TRUNCATE waits out readers for the busy timeout,
        // but not another checkpoint (the checkpoint thread's, every 100 ms): that is retried.
        let mut attempts = 0;
        loop {
            let (busy, frames, copied): (i64, i64, i64) =
                connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            if busy == 0 && copied >= frames {
                return Ok(());
            }
            attempts += 1;
            if attempts == 100 {
                return Err(StoreError::Journal(format!(
                    "the database stayed busy: {copied} of {frames} WAL pages could be copied into it"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write(connection: &mut Connection, statements: &Statements) -> Result<(), rusqlite::Error> {
    // IMMEDIATE takes the write lock up front, so a concurrent writer (a migration, another
    // process) makes this wait out the busy timeout instead of failing on lock upgrade.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (sql, params) in statements {
        transaction
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params.iter()))?;
    }
    transaction.commit()
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Param::Int(Some(int)) => ToSqlOutput::Owned(Value::Integer(*int)),
            Param::Text(None) | Param::Int(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}
