//! A consistent copy of a live SQLite store, journal included.
//!
//! The process serving a store acknowledges a record once it is in the journal, and applies
//! it to the database a few milliseconds later. A copy of the database alone would miss what
//! is journaled and not yet applied. So the journal's segments are copied first, then the
//! database (SQLite's `VACUUM INTO`, one read transaction: a consistent snapshot while the
//! store is written): a record is in the copied journal, or was applied before the snapshot
//! (a segment is retired only once all of it is applied), or came after the backup began.
//! Opening the copy applies its journal, which is idempotent for what both hold.

use crate::journal::{self, rejected_path};
use crate::{private, Pool, Store, StoreError};
use std::fs;
use std::path::Path;

/// What a backup copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backup {
    /// Journal segments copied beside the database.
    pub segments: usize,
    /// Bytes of the database copy.
    pub database_bytes: u64,
}

impl Store {
    /// Copies this SQLite store, live, into `target` (which must not exist) and its journal
    /// into `target.journal/`: opening `target` gives every record acknowledged before the
    /// backup began. PostgreSQL has its own tools (`pg_dump`, base backups).
    pub async fn backup_to(&self, target: &Path) -> Result<Backup, StoreError> {
        let Pool::Sqlite(pool, _, sqlite) = &self.pool else {
            return Err(StoreError::Journal(
                "a PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump, pg_basebackup)".into(),
            ));
        };
        if target.exists() {
            return Err(StoreError::Journal(format!(
                "{} exists: back up into a new file",
                target.display()
            )));
        }
        let io = |what: &str, path: &Path, error: std::io::Error| {
            StoreError::Journal(format!("{what} {}: {error}", path.display()))
        };
        let source = journal::directory(&sqlite.file);
        let copy = journal::directory(target);
        let mut segments = 0;
        if source.is_dir() {
            private::create_dir(&copy).map_err(|e| io("cannot create", &copy, e))?;
            for entry in fs::read_dir(&source).map_err(|e| io("cannot read", &source, e))? {
                let path = entry.map_err(|e| io("cannot read", &source, e))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !(name.ends_with(".log") || name == "format") {
                    continue;
                }
                match private::copy(&path, &copy.join(name)) {
                    Ok(_) => segments += usize::from(name.ends_with(".log")),
                    // Retired since it was listed: all of it is applied, so in the snapshot.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io("cannot copy", &path, error)),
                }
            }
            let rejected = rejected_path(&source);
            if rejected.exists() {
                let to = rejected_path(&copy);
                private::copy(&rejected, &to).map_err(|e| io("cannot copy", &rejected, e))?;
            }
        }
        // Private from the start: SQLite fills an empty file.
        private::create_if_missing(target).map_err(|e| io("cannot create", target, e))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target.display().to_string())
            .execute(pool)
            .await?;
        let database_bytes = fs::metadata(target).map_err(|e| io("cannot read", target, e))?.len();
        Ok(Backup {
            segments,
            database_bytes,
        })
    }
}
