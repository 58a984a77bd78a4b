//! The syncer: `Process` appends synced within the sync interval, off the appenders' path
//! (see "Durability: who syncs, and when" in the module `journal`).

use super::segments::segment_path;
use super::{lock, wait, wait_timeout, Journal};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What syncs the journal's frames, and how far it has.
#[derive(Debug)]
pub(super) struct Syncer {
    /// `Process` appends not yet synced: the syncer's note. Invariant: while `since` is set,
    /// `file` is the current segment (a rotation syncs the one it leaves first) and holds
    /// every record up to `through` not yet counted in `synced`. Taken after the appender's
    /// lock, never before; nothing else is taken while it is held.
    pub(super) unsynced: Mutex<Unsynced>,
    /// The syncer waits on it (with `unsynced`) for a new note, a new interval, or the close.
    pub(super) work: Condvar,
    /// How long a `Process` append may stay unsynced, in milliseconds.
    pub(super) interval_ms: AtomicU64,
    /// Every record up to this sequence number is synced; it never passes the journal's
    /// `written`.
    pub(super) synced: AtomicU64,
    /// Syncs of journaled frames so far (by appends, the syncer and rotations).
    pub(super) syncs: AtomicU64,
    /// The syncer's thread, joined at the close.
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
}

impl Syncer {
    /// A syncer with everything up to `synced` synced.
    pub(super) fn new(synced: u64, interval: Duration) -> Syncer {
        Syncer {
            unsynced: Mutex::new(Unsynced::default()),
            work: Condvar::new(),
            interval_ms: AtomicU64::new(millis(interval)),
            synced: AtomicU64::new(synced),
            syncs: AtomicU64::new(0),
            thread: Mutex::new(None),
        }
    }
}

/// What the syncer is to sync.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    /// When the oldest append not yet synced was written; `None` when everything is synced.
    pub(super) since: Option<Instant>,
    /// The segment it was written to (the current one) and the last sequence number written.
    pub(super) file: Option<Arc<File>>,
    pub(super) through: u64,
    pub(super) closed: bool,
}

impl Journal {
    /// Syncs `file`, the current segment, written up to `through`, under the appender's lock:
    /// every record up to `through` is then synced (the segments before it were synced when
    /// it was begun), and the syncer has nothing left to do.
    pub(super) fn synced_now(&self, file: &File, through: u64) -> std::io::Result<()> {
        file.sync_data()?;
        self.syncer.syncs.fetch_add(1, Ordering::AcqRel);
        let mut unsynced = lock(&self.syncer.unsynced);
        unsynced.since = None;
        unsynced.file = None;
        drop(unsynced);
        self.syncer.synced.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// Notes, under the appender's lock, that `file` holds records up to `through` that are
    /// not synced, for the syncer (woken when the note is new).
    pub(super) fn note_unsynced(&self, file: &Arc<File>, through: u64) {
        let mut unsynced = lock(&self.syncer.unsynced);
        unsynced.through = through;
        if unsynced.since.is_none() {
            unsynced.since = Some(Instant::now());
            unsynced.file = Some(Arc::clone(file));
            drop(unsynced);
            self.syncer.work.notify_one();
        }
    }

    /// The syncer: syncs `Process` appends within the sync interval of the oldest one not yet
    /// synced (see the module's doc); at the close, syncs what is left and ends.
    pub(super) fn sync_loop(&self) {
        let mut unsynced = lock(&self.syncer.unsynced);
        loop {
            let Some(since) = unsynced.since else {
                if unsynced.closed {
                    return;
                }
                unsynced = wait(&self.syncer.work, unsynced);
                continue;
            };
            // Read again at every wake-up: the interval may have been changed meanwhile.
            let due = since.checked_add(Duration::from_millis(self.syncer.interval_ms.load(Ordering::Acquire)));
            let now = Instant::now();
            if !unsynced.closed {
                match due {
                    Some(due) if now < due => {
                        unsynced = wait_timeout(&self.syncer.work, unsynced, due - now);
                        continue;
                    }
                    // An interval past the clock's range: until the close, or a new interval.
                    None => {
                        unsynced = wait(&self.syncer.work, unsynced);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            unsynced.since = None;
            let (file, through) = (unsynced.file.take(), unsynced.through);
            drop(unsynced);
            // Appends go on meanwhile; one after the note was taken makes a new one.
            if let Some(file) = file {
                match file.sync_data() {
                    Ok(()) => {
                        self.syncer.syncs.fetch_add(1, Ordering::AcqRel);
                        self.syncer.synced.fetch_max(through, Ordering::AcqRel);
                    }
                    Err(error) => {
                        let broken = self.failed_sync(&error);
                        lock(&self.appender).broken = Some(broken);
                    }
                }
            }
            unsynced = lock(&self.syncer.unsynced);
        }
    }

    /// Logs that a sync of appended frames failed, and returns why the journal is broken from
    /// now on (the appender's `broken`): the frames may never reach the disk, and a sync
    /// retried may report success without them, so every later append fails.
    pub(super) fn failed_sync(&self, error: &std::io::Error) -> String {
        let path = segment_path(&self.dir, lock(&self.segments.on_disk).back().copied().unwrap_or(0));
        tracing::error!(%error, segment = %path.display(), "Syncing the journal failed: records acknowledged at durability \"process\" may be lost on a power cut, and the journal takes no more appends.");
        format!("syncing the journal {} failed: {error}", path.display())
    }

    /// Changes how long a `Process` append may stay unsynced.
    pub(crate) fn set_sync_interval(&self, interval: Duration) {
        self.syncer.interval_ms.store(millis(interval), Ordering::Release);
        // Under the lock, so that the syncer, if it is deciding how long to wait, sees it.
        drop(lock(&self.syncer.unsynced));
        self.syncer.work.notify_one();
    }

    /// How many records are journaled and not yet synced (what a power cut now may lose).
    pub(crate) fn unsynced(&self) -> u64 {
        // Read in this order: `synced` never passes `written`.
        let synced = self.syncer.synced.load(Ordering::Acquire);
        self.written.load(Ordering::Acquire).saturating_sub(synced)
    }
}

/// `interval` in whole milliseconds (at least 1).
fn millis(interval: Duration) -> u64 {
    u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1)
}
