//! The segment files: their names, the journal's lock, the spare segment prepared ahead, the
//! rotation from one segment to the next, and the retirement of segments wholly applied.
//!
//! A segment is named for the sequence number of its first frame (`N.log`, 20 digits), so the
//! files sort oldest first. Once the journal is busy, a spare segment of zeros is prepared
//! (`spare`) and applied segments are recycled through it: a write over existing blocks has no
//! file size or allocation for its fsync to persist. A recycled segment's old frames carry
//! older sequence numbers, so reading stops where the new ones end (see `frame.rs`).

use super::{io_error, lock, Appender, Journal};
use crate::{private, StoreError};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A segment is closed, and a new one begun, once it is this large.
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;
/// Records journaled before a spare segment is prepared.
pub(super) const SPARE_AFTER_RECORDS: u64 = 2000;
/// The size of a spare segment prepared ahead: a segment's last batch may pass its size.
const SPARE_BYTES: u64 = SEGMENT_BYTES + (1 << 20);

/// The segments on disk, and the spare. Lock order: `on_disk` before `spare`, both after the
/// appender's lock (see the module `journal`).
#[derive(Debug)]
pub(super) struct Segments {
    /// The first sequence number of each segment on disk, oldest first; the last is the one
    /// appended to. Invariant: a segment leaves the front only once every record in it is
    /// committed to SQLite, and only after every older one has (no older segment outlives a
    /// newer one); one begun is pushed at the back, under the appender's lock.
    pub(super) on_disk: Mutex<VecDeque<u64>>,
    /// Whether `dir/spare` holds a segment ready to be written over (see [`Journal::rotate`]).
    /// Invariant: `true` only while that file exists whole (prepared and renamed, or an
    /// applied segment renamed to it); whoever takes or deletes the file sets it `false`
    /// under this lock.
    pub(super) spare: Mutex<bool>,
    /// Segments that begin below this sequence number held records from before an erasure:
    /// once applied they are deleted, never recycled as the spare (whose old frames stay).
    pub(super) scrub_below: AtomicU64,
}

impl Segments {
    /// The segments of a journal whose first (and only) segment begins at `first_seq`.
    pub(super) fn new(first_seq: u64) -> Segments {
        Segments {
            on_disk: Mutex::new(VecDeque::from([first_seq])),
            spare: Mutex::new(false),
            scrub_below: AtomicU64::new(0),
        }
    }
}

/// The journal's directory beside the database file: `scimtrail.db` → `scimtrail.db.journal`.
pub(crate) fn directory(database: &Path) -> PathBuf {
    private::with_suffix(database, ".journal")
}

/// Takes the journal's lock, if no other process holds it.
pub(crate) fn take_lock(dir: &Path) -> Result<Option<File>, StoreError> {
    private::create_dir(dir).map_err(|e| io_error("cannot create the journal directory", dir, &e))?;
    let path = dir.join("lock");
    let file = private::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("cannot open", &path, &e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => Err(io_error("cannot lock", &path, &error)),
    }
}

/// The segment files of `dir`, oldest first, with their first sequence numbers.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, &e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error("cannot read", dir, &e))?.path();
        let first_seq = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".log"))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(first_seq) = first_seq {
            segments.push((first_seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

pub(super) fn spare_path(dir: &Path) -> PathBuf {
    dir.join("spare")
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// Deletes a spare an earlier run left (it holds frames numbered like this run's: never
/// reused), and its temporary file.
pub(super) fn remove_leftover_spare(dir: &Path) -> Result<(), StoreError> {
    for leftover in [spare_path(dir), spare_path(dir).with_extension("tmp")] {
        if leftover.exists() {
            fs::remove_file(&leftover).map_err(|e| io_error("cannot delete", &leftover, &e))?;
        }
    }
    Ok(())
}

/// Makes the names in `dir` (created, renamed, deleted) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates an empty segment, and makes its name durable in the directory.
pub(crate) fn create_segment(dir: &Path, path: &Path) -> Result<File, StoreError> {
    let file = private::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("cannot create", path, &e))?;
    sync_dir(dir).map_err(|e| io_error("cannot sync", dir, &e))?;
    Ok(file)
}

impl Journal {
    /// Begins a new segment at the next sequence number: the spare if one is ready (written
    /// over, so that each append's fsync has no file size or block allocation to persist,
    /// which made it about 40% slower here), else an empty file.
    pub(super) fn rotate(&self, appender: &mut Appender) {
        // The syncer's note must name the current segment: what this one holds unsynced is
        // synced now (once a segment: 8 MiB).
        let noted = lock(&self.syncer.unsynced).since.is_some();
        if noted {
            if let Err(error) = self.synced_now(&appender.file, appender.next_seq - 1) {
                appender.broken = Some(self.failed_sync(&error));
                return;
            }
        }
        let path = segment_path(&self.dir, appender.next_seq);
        let (file, growing) = match self.take_spare(&path) {
            Some(file) => (Ok(file), false),
            None => (create_segment(&self.dir, &path), true),
        };
        match file {
            Ok(file) => {
                appender.file = Arc::new(file);
                appender.size = 0;
                appender.growing = growing;
                lock(&self.segments.on_disk).push_back(appender.next_seq);
            }
            // The current segment goes on growing; the next append tries again.
            Err(error) => tracing::warn!(%error, "A new journal segment could not be begun."),
        }
    }

    /// The spare, renamed to `path` (durably: acknowledged frames go into it).
    fn take_spare(&self, path: &Path) -> Option<File> {
        let mut ready = lock(&self.segments.spare);
        if !*ready {
            return None;
        }
        *ready = false;
        let taken = fs::rename(spare_path(&self.dir), path)
            .and_then(|()| sync_dir(&self.dir))
            .and_then(|()| OpenOptions::new().write(true).open(path));
        match taken {
            Ok(file) => Some(file),
            Err(error) => {
                tracing::warn!(%error, "The journal's spare segment could not be taken; beginning an empty one.");
                None
            }
        }
    }

    /// Writes a spare segment of zeros ahead of its use (on the applier's thread, once: then
    /// applied segments are recycled).
    pub(super) fn prepare_spare(&self) {
        if *lock(&self.segments.spare) {
            return;
        }
        let spare = spare_path(&self.dir);
        let temporary = spare.with_extension("tmp");
        let written = private::create(&temporary).and_then(|file| {
            let zeros = vec![0; 1 << 20];
            for megabyte in 0..SPARE_BYTES >> 20 {
                file.write_all_at(&zeros, megabyte << 20)?;
            }
            file.sync_all()
        });
        // Under the lock: a segment retired meanwhile may have become the spare already.
        let mut ready = lock(&self.segments.spare);
        let prepared = written.and_then(|()| {
            if *ready {
                fs::remove_file(&temporary)
            } else {
                fs::rename(&temporary, &spare)
            }
        });
        match prepared {
            Ok(()) => *ready = true,
            Err(error) => {
                tracing::warn!(%error, "A spare journal segment could not be prepared; segments grow as they are written.")
            }
        }
    }

    /// Retires the segments whose records are all applied (every one but the newest): one is
    /// kept as the spare, the others deleted.
    pub(super) fn retire_applied_segments(&self, applied: u64) {
        let mut segments = lock(&self.segments.on_disk);
        while segments.len() > 1 && segments[1] <= applied + 1 {
            let Some(first_seq) = segments.pop_front() else { break };
            let path = segment_path(&self.dir, first_seq);
            let mut spare = lock(&self.segments.spare);
            let retired = if *spare || first_seq < self.segments.scrub_below.load(Ordering::Acquire) {
                fs::remove_file(&path)
            } else {
                fs::rename(&path, spare_path(&self.dir)).map(|()| *spare = true)
            };
            // Oldest first, one at a time, durably: no older segment may outlive a newer one
            // (applied again at the next start, its snapshots would overwrite newer ones). So
            // a segment that stays is kept in line and retried after the next round.
            if let Err(error) = retired {
                segments.push_front(first_seq);
                tracing::warn!(%error, segment = %path.display(), "An applied journal segment could not be retired; retrying after the next round.");
                break;
            }
            if let Err(error) = sync_dir(&self.dir) {
                tracing::warn!(%error, dir = %self.dir.display(), "Retiring a journal segment could not be made durable; retrying after the next round.");
                break;
            }
        }
    }
}
