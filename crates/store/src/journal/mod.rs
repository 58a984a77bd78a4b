//! The journal: SQLite's writes, made durable by appending them to a file, and applied to the
//! database behind, in large batches.
//!
//! Why: a durable exchange costs two commits (in flight, then complete). Committed straight
//! into SQLite, each batch rewrote a page of every index it touched, in the WAL, and fsynced
//! it: about a hundred microseconds of CPU per exchange, more than the rest of the proxy. An
//! append to this file costs one `write` and one `fdatasync` per batch. The applier then
//! writes what was journaled into SQLite, hundreds of records per transaction, and turns each
//! exchange's begin and end, when they arrive close together, into one row inserted once.
//!
//! # Durability: who syncs, and when
//! Each append says its [`Durability`] (the batch's: `Power` if any of its writes asks for it).
//! - `Power`: the append `fdatasync`s the segment before it returns. That sync also covers
//!   every `Process` append before it (they are in the same file: see the rotation, `segments.rs`).
//! - `Process`: the append returns once its frames are written (in the OS's page cache: they
//!   survive the process being killed). It notes, under the journal's `unsynced` lock, the file
//!   and the time of the oldest append not yet synced. A syncer thread of the journal's own
//!   waits for that, sleeps until that time plus the sync interval, takes the note (the file
//!   and the last sequence number written) and syncs that file outside any lock the appends
//!   take, so appends go on meanwhile; an append after it took the note makes a new one, for
//!   the next round. So every `Process` frame is synced within the interval of its append,
//!   however busy or quiet the journal (a sync at "the next append past the interval" alone
//!   would leave the last appends of a quiet moment unsynced), and without an fsync per batch.
//!   A rotation syncs the segment it leaves when a note is open, so the note always names the
//!   current segment. Closing syncs what is left. A sync that fails breaks the journal: every
//!   later append fails (the proxy fails closed), since what it held may never reach the disk.
//!
//! The applier's commits into SQLite are always synced (`synchronous = FULL`, off the
//! exchanges' path): a segment is retired only once what it holds is durable in the database,
//! so a power loss under `Process` loses at most the last interval's appends, never records
//! journaled and synced long before.
//!
//! # Invariants
//! - A write is acknowledged (the call returns `Ok`) only once its frame is in the file, and
//!   fsynced if its batch is `Power`; a `Process` frame is fsynced within the sync interval.
//! - One process at a time appends: the journal's directory is locked (`flock`) by the store
//!   that writes through it. Another process that opens the store writes to SQLite directly.
//! - A segment file is deleted (or recycled as the spare) only once every record in it is
//!   committed to SQLite, so a crash at any point loses nothing: the next open applies what
//!   the files still hold.
//!   Applying is idempotent (a begin is inserted if absent, a completion overwrites), so a
//!   record applied twice is harmless. Segments are retired oldest first: no older one
//!   outlives a newer one, whose state it would overwrite when applied again.
//! - Reads through the store that owns the journal wait until what it has journaled is
//!   applied (see [`Journal::caught_up`]): that process reads its own writes.
//!
//! # Where each part lives
//! - `frame.rs`: the frame format (see there), and the journal's format file.
//! - `segments.rs`: the segment files, the journal's lock, the spare, rotation and retirement.
//! - `sync.rs`: the syncer (`Process` appends synced within the interval).
//! - `recover.rs`: recovery at open (what an earlier run left, applied first).
//! - `apply.rs`: the applier, and the back-pressure that bounds what waits for it.
//! - here: [`Journal`] itself, with `open`, `append`, `scrub` and `close`.
//!
//! # Locks
//! Each part's state sits with the lock that guards it, its invariant written where it is
//! declared: the [`Appender`] (here), the syncer's note (`Syncer::unsynced`), the segments
//! (`Segments::on_disk`, then `Segments::spare`) and the applier's queue (`Applier::queue`).
//! The appender's lock is taken first: while it is held, an append, a rotation, an erasure's
//! scrub or the close takes the others, one at a time. Retiring a segment takes `on_disk`,
//! then `spare`; nothing takes them the other way round. The syncer's note and the
//! applier's queue are leaves: nothing is taken while either is held (the condvars wait on
//! them alone). So no two threads can wait for each other.

mod apply;
mod frame;
mod recover;
mod segments;
mod sync;

pub(crate) use apply::{merge, move_aside, rejected_path};
#[cfg(feature = "fuzzing")]
pub use frame::fuzz_decode;
pub(crate) use frame::{check_format, encode_frame, read_segment, write_format, FORMAT};
pub(crate) use recover::recover_if_free;
pub(crate) use segments::{create_segment, directory, segment_files, segment_path, sync_dir, take_lock, SEGMENT_BYTES};

use crate::model::Write;
use crate::sqlite_writer::SqliteWriter;
use crate::{Durability, StoreError};
use apply::{Applier, APPLY_CHUNK};
use segments::{remove_leftover_spare, spare_path, Segments};
use std::fs;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use sync::Syncer;

// What the tests (`tests.rs`, `use super::*`) reach inside the journal's parts.
#[cfg(test)]
use {
    crate::model::{Completion, NewExchange},
    frame::{decode_frames, Stop, CRC},
    std::time::Instant,
};

/// A journal held by this process: appends, and the syncer and applier threads behind them.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    /// The current segment and its end. Invariant: one batch is appended at a time, its
    /// frames written at `size` and numbered from `next_seq`, and both move past them only
    /// once the write succeeded; taken before any other lock of the journal.
    appender: Mutex<Appender>,
    /// The last sequence number journaled (stored under the appender's lock).
    written: AtomicU64,
    /// What syncs `Process` appends, and how far they are synced.
    syncer: Syncer,
    /// The segment files on disk, and the spare.
    segments: Segments,
    /// What waits to be applied to SQLite, and how far it is.
    applier: Applier,
    /// Held for the journal's life: the `flock` on `dir/lock`.
    _lock: File,
}

/// The current segment, and the frames of the batch being appended.
#[derive(Debug)]
struct Appender {
    /// Shared with the syncer, which syncs it outside the appender's lock.
    file: Arc<File>,
    size: u64,
    /// The segment was created empty: each append grows it, which makes its fsync costlier.
    growing: bool,
    next_seq: u64,
    frames: Vec<u8>,
    /// An append failed in a way that left the file in doubt: every later one fails too.
    broken: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks leaves its data half-changed on a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` with `guard`, as [`lock`] does on its mutex.
fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` with `guard` for `timeout` at most, as [`lock`] does on its mutex.
fn wait_timeout<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

pub(crate) fn io_error(what: &str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Journal(format!("{what} {}: {error}", path.display()))
}

impl Journal {
    /// Takes the journal of `database` for this process: applies what a previous run left,
    /// then starts the applier. `None` when another process holds it.
    pub(crate) fn open(
        database: &Path,
        sync_interval: Duration,
        writer: SqliteWriter,
    ) -> Result<Option<Arc<Journal>>, StoreError> {
        let dir = directory(database);
        let Some(lock_file) = take_lock(&dir)? else {
            return Ok(None);
        };
        let (_, next_seq) = recover::recover(&dir, &writer)?;
        write_format(&dir)?;
        remove_leftover_spare(&dir)?;
        let path = segment_path(&dir, next_seq);
        let file = create_segment(&dir, &path)?;
        let applier = Applier::new(next_seq - 1, &dir);
        let journal = Arc::new(Journal {
            dir,
            syncer: Syncer::new(next_seq - 1, sync_interval),
            appender: Mutex::new(Appender {
                file: Arc::new(file),
                size: 0,
                growing: true,
                next_seq,
                frames: Vec::with_capacity(64 * 1024),
                broken: None,
            }),
            applier,
            written: AtomicU64::new(next_seq - 1),
            segments: Segments::new(next_seq),
            _lock: lock_file,
        });
        let applier_journal = Arc::clone(&journal);
        let handle = std::thread::Builder::new()
            .name("scimtrail-journal-applier".into())
            .spawn(move || applier_journal.apply_loop(&writer))
            .map_err(|error| StoreError::Thread(format!("cannot start the journal's applier: {error}")))?;
        *lock(&journal.applier.thread) = Some(handle);
        let syncer_journal = Arc::clone(&journal);
        let handle = std::thread::Builder::new()
            .name("scimtrail-journal-syncer".into())
            .spawn(move || syncer_journal.sync_loop())
            .map_err(|error| StoreError::Thread(format!("cannot start the journal's syncer: {error}")))?;
        *lock(&journal.syncer.thread) = Some(handle);
        Ok(Some(journal))
    }

    /// Journals `writes` and queues them for SQLite: synced before this returns at
    /// [`Durability::Power`], within the sync interval at [`Durability::Process`].
    pub(crate) fn append(&self, writes: Vec<Write>, durability: Durability) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut appender = lock(&self.appender);
        if let Some(reason) = &appender.broken {
            return Err(StoreError::Journal(reason.clone()));
        }
        let appender = &mut *appender;
        appender.frames.clear();
        let mut sizes = Vec::with_capacity(writes.len());
        for (seq, write) in (appender.next_seq..).zip(&writes) {
            let start = appender.frames.len();
            encode_frame(&mut appender.frames, seq, write)?;
            sizes.push(appender.frames.len() - start);
        }
        self.wait_for_room(writes.len(), appender.frames.len())?;
        // At the tracked end, not O_APPEND: after a failed write the next one overwrites the
        // partial frame instead of following it (reading stops at the first bad frame).
        let last_seq = appender.next_seq + writes.len() as u64 - 1;
        let written = appender
            .file
            .write_all_at(&appender.frames, appender.size)
            .and_then(|()| match durability {
                Durability::Power => self.synced_now(&appender.file, last_seq),
                Durability::Process => {
                    self.note_unsynced(&appender.file, last_seq);
                    Ok(())
                }
            });
        if let Err(error) = written {
            let path = segment_path(&self.dir, lock(&self.segments.on_disk).back().copied().unwrap_or(0));
            // Unless the partial frame is cut off, a later frame would hide behind it. The cut
            // is synced at any level: else a power cut could bring back frames whose writers
            // were told they failed.
            let cut = appender
                .file
                .set_len(appender.size)
                .and_then(|()| appender.file.sync_data());
            if let Err(cut) = cut {
                appender.broken = Some(format!("the journal {} cannot be repaired: {cut}", path.display()));
            }
            return Err(io_error("cannot append to", &path, &error));
        }
        appender.size += appender.frames.len() as u64;
        let first_seq = appender.next_seq;
        appender.next_seq += writes.len() as u64;
        let mut queue = lock(&self.applier.queue);
        // The applier needs waking when it idles (the queue was empty) or a round is full.
        let wake = queue.records.is_empty() || queue.records.len() + writes.len() >= APPLY_CHUNK;
        queue.records.extend((first_seq..).zip(writes));
        queue.unapplied.extend((first_seq..).zip(sizes));
        queue.bytes += appender.frames.len();
        drop(queue);
        if wake {
            self.applier.work.notify_one();
        }
        self.written.store(appender.next_seq - 1, Ordering::Release);
        if appender.size >= SEGMENT_BYTES || (appender.growing && *lock(&self.segments.spare)) {
            self.rotate(appender);
        }
        Ok(())
    }

    /// Leaves in the journal's files no record journaled before now (an erasure's last step,
    /// once the records are rewritten in SQLite): the spare — an applied segment recycled,
    /// its old frames still in it — deleted, a new segment begun, and once everything before
    /// it is applied, every older segment deleted rather than recycled.
    pub(crate) async fn scrub(&self) -> Result<(), StoreError> {
        {
            let mut spare = lock(&self.segments.spare);
            let path = spare_path(&self.dir);
            if *spare {
                fs::remove_file(&path).map_err(|e| io_error("cannot delete", &path, &e))?;
                *spare = false;
            }
        }
        let fresh = {
            let mut appender = lock(&self.appender);
            if appender.size == 0 {
                // Nothing journaled in it yet: what it holds is a recycled segment's frames.
                let path = segment_path(&self.dir, appender.next_seq);
                appender
                    .file
                    .set_len(0)
                    .map_err(|e| io_error("cannot empty", &path, &e))?;
                appender.growing = true;
                true
            } else {
                let first_seq = appender.next_seq;
                // Whatever began before the new segment is deleted once applied, now or later.
                self.segments.scrub_below.fetch_max(first_seq, Ordering::AcqRel);
                self.rotate(&mut appender);
                lock(&self.segments.on_disk).back() == Some(&first_seq)
            }
        };
        if !fresh {
            return Err(StoreError::Journal(
                "a new journal segment could not be begun: the records before the erasure stay in the current one until it is".to_owned(),
            ));
        }
        self.caught_up().await;
        self.retire_applied_segments(*self.applier.applied.borrow());
        let left = lock(&self.segments.on_disk).len();
        if left > 1 {
            return Err(StoreError::Journal(format!(
                "{} journal segments older than the erasure could not be deleted yet; they go as the journal is applied",
                left - 1
            )));
        }
        Ok(())
    }

    /// Applies everything, stops the applier and, when nothing is left unapplied, deletes
    /// the segments. Later appends fail.
    pub(crate) fn close(&self) {
        lock(&self.applier.queue).closed = true;
        self.applier.work.notify_one();
        self.applier.room.notify_all();
        // Appends are refused now: the syncer syncs what they left, and ends.
        lock(&self.syncer.unsynced).closed = true;
        self.syncer.work.notify_one();
        if let Some(handle) = lock(&self.syncer.thread).take() {
            if handle.join().is_err() {
                tracing::error!("The journal's syncer panicked.");
            }
        }
        if let Some(handle) = lock(&self.applier.thread).take() {
            if handle.join().is_err() {
                tracing::error!("The journal's applier panicked; the next start applies what it left.");
            }
        }
        let appender = lock(&self.appender);
        // An append that was past its checks when the syncer ended left a note: synced here.
        if lock(&self.syncer.unsynced).since.is_some() {
            if let Err(error) = self.synced_now(&appender.file, appender.next_seq - 1) {
                tracing::error!(%error, "Syncing the journal at its close failed.");
            }
        }
        if *self.applier.applied.borrow() >= appender.next_seq - 1 {
            let segments: Vec<u64> = lock(&self.segments.on_disk).drain(..).collect();
            let spare = std::mem::take(&mut *lock(&self.segments.spare)).then(|| spare_path(&self.dir));
            let paths = segments.into_iter().map(|first_seq| segment_path(&self.dir, first_seq));
            // Oldest first, stopping at the first that stays: what is left is a suffix of
            // the journal, which the next start applies again in order, harmlessly.
            for path in paths.chain(spare) {
                if let Err(error) = fs::remove_file(&path) {
                    tracing::warn!(%error, segment = %path.display(), "A journal segment could not be deleted; the next start applies it and those after it again.");
                    break;
                }
            }
            if let Err(error) = sync_dir(&self.dir) {
                tracing::warn!(%error, dir = %self.dir.display(), "Deleting the journal's segments could not be made durable.");
            }
        }
    }
}

#[cfg(test)]
mod tests;
