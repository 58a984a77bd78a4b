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
//! - [`Exchange`]: one exchange in full, as read back: the [`NewExchange`] it began as and,
//!   once it ended, its [`Completion`] (`exchange.rs`).
//!
//! [`Store`]'s methods live beside what they do: `connect.rs` (connecting, migrating, the
//! journal or spool, closing), `write.rs` (batches), `read.rs` (exchanges and what replay
//! reads), `lease.rs` (what one process at a time may do); the other modules name theirs.
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
mod connect;
mod erasure;
mod exchange;
mod instances;
mod intent;
mod isolation;
mod journal;
mod lease;
mod overview;
#[cfg(feature = "fuzzing")]
pub use journal::fuzz_decode as fuzz_journal_decode;
mod model;
pub mod private;
mod query;
mod read;
mod repairs;
mod retention;
mod spool;
mod sql;
mod sqlite_writer;
mod stored_json;
mod summary;
mod write;

pub use audit::{AuditEntry, AuditQuery, AUDIT_KEEP_MS};
pub use backup::Backup;
pub use erasure::{ErasedResource, Erasure, ErasureReport, ERASED};
pub use exchange::{rfc3339, End, Exchange, Page, OUTCOME_INTERRUPTED};
pub use instances::{InstanceRecord, InstanceState};
pub use intent::{Reconciliation, UnfoldedWrite};
pub use isolation::Written;
pub use lease::Lease;
pub use model::{
    Completion, ExchangeQuery, NewExchange, ResourceName, ResourceWrite, Snapshot, Write, OUTCOME_IN_FLIGHT,
};
pub use overview::{Bucket, RouteCounts};
pub use query::REPLAYABLE_OUTCOMES;
pub use repairs::{IntentAlias, RepairRecord};
pub use retention::{PruneReport, Retention, StoreSize, OUTCOMES};

use journal::Journal;
use sqlite_writer::SqliteWriter;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::path::PathBuf;
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
    /// A stored exchange's columns contradict each other (a completed outcome without a
    /// status, a status no HTTP status can be).
    #[error("exchange {id} is stored inconsistently: {detail}")]
    Inconsistent {
        /// The exchange.
        id: String,
        /// What contradicts what.
        detail: String,
    },
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

// What the tests (`tests.rs`, `use super::*`) reach in the store's parts.
#[cfg(test)]
use {read::NAMED_RESOURCES_READ_APART, sqlx::postgres::PgPoolOptions, write::begin_statement};

#[cfg(test)]
mod tests;
