//! Recovery at open: what a journal left behind (its process died, or stopped with records
//! unapplied) applied to SQLite before anything else is journaled.

use super::apply::{commit_journaled, merge, APPLY_CHUNK};
use super::frame::{check_format, read_segment, Stop};
use super::io_error;
use super::segments::{directory, segment_files, sync_dir, take_lock};
use crate::sqlite_writer::SqliteWriter;
use crate::StoreError;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Applies what a journal left behind (its process died, or stopped with records unapplied),
/// if no live process holds it; returns how many records were applied.
pub(crate) fn recover_if_free(database: &Path, writer: &SqliteWriter) -> Result<usize, StoreError> {
    let dir = directory(database);
    if !dir.is_dir() {
        return Ok(0);
    }
    match take_lock(&dir)? {
        Some(_lock) => Ok(recover(&dir, writer)?.0),
        None => Ok(0),
    }
}

/// Applies every segment in `dir` to SQLite, then deletes them; returns the records applied
/// and the next sequence number.
pub(super) fn recover(dir: &Path, writer: &SqliteWriter) -> Result<(usize, u64), StoreError> {
    check_format(dir)?;
    let mut next_seq = 1;
    let mut applied = 0;
    let segments = segment_files(dir)?;
    // Segments kept aside, not deleted: the evidence of records that could not be read.
    let mut damaged = Vec::new();
    let mut expected: Option<u64> = None;
    for (index, (first_seq, path)) in segments.iter().enumerate() {
        let first_seq = *first_seq;
        let (writes, stop) = read_segment(path, first_seq)?;
        if let Some(expected) = expected.filter(|expected| *expected != first_seq) {
            tracing::error!(segment = %path.display(), expected, found = first_seq, "Journaled records are missing between two segments; what is there is applied.");
        }
        match stop {
            // Only the newest segment may end in a torn frame: a crash mid-append.
            Some(Stop::Torn(reason)) if index + 1 == segments.len() => {
                tracing::warn!(segment = %path.display(), reason, "The journal ends in a torn record (a crash mid-append); what precedes it is applied.");
            }
            Some(Stop::Torn(reason) | Stop::Undecodable(reason)) => {
                tracing::error!(segment = %path.display(), reason, "A journal segment is damaged: what precedes the damage is applied, and the segment is kept as *.damaged-TIME.");
                damaged.push(path.clone());
            }
            None => {}
        }
        expected = Some(first_seq + writes.len() as u64);
        applied += writes.len();
        next_seq = next_seq.max(first_seq + writes.len() as u64);
        let mut chunk = Vec::with_capacity(APPLY_CHUNK);
        for record in (first_seq..).zip(writes) {
            chunk.push(record);
            if chunk.len() == APPLY_CHUNK {
                let (writes, _) = merge(Vec::new(), std::mem::take(&mut chunk), false);
                commit_journaled(writer, dir, &writes)?;
            }
        }
        let (writes, _) = merge(Vec::new(), chunk, false);
        commit_journaled(writer, dir, &writes)?;
    }
    // Everything readable is in SQLite (committed and synced), and copied into its database
    // file for good: the segments can go, oldest first.
    if !segments.is_empty() {
        writer.checkpoint_durably()?;
    }
    for (_, path) in segments {
        if damaged.contains(&path) {
            // Numbers start again after a clean stop: the time keeps an earlier one's evidence.
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let aside = path.with_extension(format!("log.damaged-{}", since_epoch.as_millis()));
            fs::rename(&path, &aside).map_err(|e| io_error("cannot keep aside", &path, &e))?;
        } else {
            fs::remove_file(&path).map_err(|e| io_error("cannot delete", &path, &e))?;
        }
    }
    sync_dir(dir).map_err(|e| io_error("cannot sync", dir, &e))?;
    if applied > 0 {
        tracing::info!(
            records = applied,
            "Records a previous run journaled are now in the store."
        );
    }
    Ok((applied, next_seq))
}
