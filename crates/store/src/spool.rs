//! The spool: where a PostgreSQL store's records go while PostgreSQL cannot take them
//! (`[record] on_store_failure = "spool"`), so that the proxy keeps serving through an
//! outage, a restart or a failover, and loses nothing.
//!
//! When a batch fails on the store itself (not on one record: `isolation`), it is appended to
//! the spool — the journal's frames and format, in segments under the spool's directory,
//! synced before the writer is answered — and so is every batch after it, in order, until the
//! spool is drained: a completion never reaches PostgreSQL before the in-flight record it
//! completes. A drainer thread applies the spool to PostgreSQL oldest first, in chunks, a
//! begin joined with its completion where both are there, retrying with backoff while
//! PostgreSQL is away; a record PostgreSQL refuses in every form is moved aside (as the
//! journal does). Applying is idempotent (an in-flight record is inserted if absent, a
//! completion overwrites, a snapshot never replaces a newer one), so a segment applied again
//! after a crash duplicates nothing. Once all is applied, under the spool's lock, writes go to
//! PostgreSQL directly again. A spool a previous run left is drained first. One process holds
//! a spool directory (a `flock`).
//!
//! A batch goes to PostgreSQL at its own [`Durability`]; the spool itself is synced at every
//! append whatever the level (it is PostgreSQL's stand-in while it is away, rarely used), and
//! drained records are committed at `Power` before their segment is deleted.

use crate::isolation::{commit_isolated, Lessen, Written};
use crate::journal::{
    self, create_segment, encode_frame, io_error, merge, move_aside, read_segment, segment_files, segment_path,
    sync_dir, take_lock, SEGMENT_BYTES,
};
use crate::model::Write;
use crate::{Durability, StoreError};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Records applied to PostgreSQL per transaction while draining.
const DRAIN_CHUNK: usize = 500;

/// How long the drainer waits before trying PostgreSQL again, at most.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Commits writes to PostgreSQL (one transaction per call), at the durability given.
pub(crate) type Commit = Box<dyn Fn(&[Write], Durability) -> Result<(), StoreError> + Send + Sync>;

#[derive(Debug)]
struct Inner {
    /// Writes go to the spool, not to PostgreSQL.
    spooling: bool,
    /// The segment being appended to: its first sequence number, file and size.
    current: Option<(u64, File, u64)>,
    next_seq: u64,
    /// Every record up to this one is in PostgreSQL.
    applied_seq: u64,
    /// The segment being drained, decoded once: its first sequence number, its length when
    /// read, its records (a backlog is drained in many chunks from the same segment).
    decoded: Option<(u64, u64, Vec<Write>)>,
    /// PostgreSQL took the last chunk drained: each write drains a chunk before it is
    /// appended, so that the spool shrinks under load and writing goes back to PostgreSQL.
    back: bool,
    closed: bool,
}

/// A spool held by this process.
pub(crate) struct Spool {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// The drainer waits on it for records, or the close.
    work: Condvar,
    /// Records spooled and not yet in PostgreSQL.
    pending: AtomicU64,
    /// `inner.spooling`, and why the last drain failed, for readers on the async runtime:
    /// `inner` is held across PostgreSQL round trips, which need the runtime's workers, so a
    /// worker must never wait for it.
    spooling: AtomicBool,
    failing: Mutex<Option<String>>,
    /// Records PostgreSQL refused in every form, moved aside.
    moved_aside: AtomicU64,
    drainer: Mutex<Option<std::thread::JoinHandle<()>>>,
    commit: Commit,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spool {
    /// Takes the spool at `dir` for this process (refused when another holds it) and starts
    /// its drainer, which first drains what a previous run left.
    pub(crate) fn open(dir: &Path, commit: Commit) -> Result<Arc<Spool>, StoreError> {
        let Some(lock_file) = take_lock(dir)? else {
            return Err(StoreError::Journal(format!(
                "another process holds the spool {}: give each instance a spool_dir of its own",
                dir.display()
            )));
        };
        journal::check_format(dir)?;
        journal::write_format(dir)?;
        let mut pending = 0;
        let mut next_seq = 1;
        let segments = segment_files(dir)?;
        let applied_seq = segments.first().map_or(0, |(first, _)| first - 1);
        for (first_seq, path) in &segments {
            let (writes, _) = read_segment(path, *first_seq)?;
            pending += writes.len() as u64;
            next_seq = next_seq.max(first_seq + writes.len() as u64);
        }
        if pending > 0 {
            tracing::warn!(records = pending, spool = %dir.display(), "A previous run left records in the spool; they go to PostgreSQL before anything new.");
        }
        let spool = Arc::new(Spool {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                spooling: !segments.is_empty(),
                current: None,
                next_seq,
                applied_seq,
                decoded: None,
                back: false,
                closed: false,
            }),
            work: Condvar::new(),
            pending: AtomicU64::new(pending),
            spooling: AtomicBool::new(!segments.is_empty()),
            failing: Mutex::new(None),
            moved_aside: AtomicU64::new(0),
            drainer: Mutex::new(None),
            commit,
            _lock: lock_file,
        });
        // What a previous run left goes first, before this run's start marks what it left in
        // flight as interrupted: else a begin drained after that would stay in flight.
        {
            let mut inner = lock(&spool.inner);
            while inner.spooling {
                if let Err(error) = spool.drain_step(&mut inner) {
                    tracing::warn!(%error, "The spool a previous run left cannot be drained yet; it drains in the background.");
                    break;
                }
            }
        }
        let drainer = Arc::clone(&spool);
        let handle = std::thread::Builder::new()
            .name("scimtrail-spool-drainer".into())
            .spawn(move || drainer.drain_loop())
            .map_err(|error| StoreError::Thread(format!("cannot start the spool's drainer: {error}")))?;
        *self::lock_handle(&spool.drainer) = Some(handle);
        Ok(spool)
    }

    /// Writes a batch: to PostgreSQL through `commit` while it takes them; to the spool once
    /// it fails as a whole, and every batch after that until the spool is drained.
    pub(crate) fn write(&self, writes: &[Write], durability: Durability) -> Result<Vec<Written>, StoreError> {
        let mut inner = lock(&self.inner);
        if inner.spooling && inner.back {
            // PostgreSQL is back: a chunk of the spool goes before this batch is appended,
            // so that the spool shrinks faster than the load fills it.
            if let Err(error) = self.drain_step(&mut inner) {
                inner.back = false;
                self.set_failing(Some(error.to_string()));
            }
        }
        if !inner.spooling {
            match commit_isolated(writes, Lessen::Completions, |writes| (self.commit)(writes, durability)) {
                Ok(results) if !results.iter().any(|r| matches!(r, Written::Failed(_))) => return Ok(results),
                Ok(results) => {
                    // The store failed partway: what it did not take goes to the spool.
                    let rest: Vec<Write> = writes
                        .iter()
                        .zip(&results)
                        .filter(|(_, r)| matches!(r, Written::Failed(_)))
                        .map(|(w, _)| w.clone())
                        .collect();
                    self.start_spooling(&mut inner, "PostgreSQL failed partway through a batch");
                    // What PostgreSQL took stays taken, whether or not the spool takes the rest.
                    let spooled = self.append(&mut inner, &rest).map_err(|error| error.to_string());
                    return Ok(results
                        .into_iter()
                        .map(|r| match (r, &spooled) {
                            (Written::Failed(_), Ok(())) => Written::Committed,
                            (Written::Failed(_), Err(error)) => Written::Failed(error.clone()),
                            (r, _) => r,
                        })
                        .collect());
                }
                Err(error) => self.start_spooling(&mut inner, &error.to_string()),
            }
        }
        self.append(&mut inner, writes)?;
        Ok(vec![Written::Committed; writes.len()])
    }

    fn start_spooling(&self, inner: &mut Inner, reason: &str) {
        inner.spooling = true;
        inner.back = false;
        self.spooling.store(true, Ordering::Release);
        // Wakes the drainer (only here: while it waits out a backoff, writes leave it be).
        self.work.notify_one();
        tracing::error!(reason, spool = %self.dir.display(), "PostgreSQL cannot take records: spooling them locally until it can; the proxy keeps serving.");
    }

    /// Appends `writes` to the current segment and syncs it; a failed append is cut off.
    fn append(&self, inner: &mut Inner, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::new();
        for (seq, write) in (inner.next_seq..).zip(writes) {
            encode_frame(&mut frames, seq, write)?;
        }
        if inner.current.is_none() {
            let path = segment_path(&self.dir, inner.next_seq);
            inner.current = Some((inner.next_seq, create_segment(&self.dir, &path)?, 0));
        }
        let Some((first_seq, file, size)) = inner.current.as_mut() else {
            return Err(StoreError::Journal("the spool has no segment to append to".into()));
        };
        let path = segment_path(&self.dir, *first_seq);
        let written = file.write_all_at(&frames, *size).and_then(|()| file.sync_data());
        if let Err(error) = written {
            // Cut off, so that the next append is not hidden behind a partial frame.
            let _ = file.set_len(*size).and_then(|()| file.sync_data());
            return Err(io_error("cannot append to the spool", &path, &error));
        }
        *size += frames.len() as u64;
        if *size >= SEGMENT_BYTES {
            inner.current = None;
        }
        inner.next_seq += writes.len() as u64;
        // What was decoded of this segment no longer is all of it.
        inner.decoded = None;
        self.pending.fetch_add(writes.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    /// Records spooled and not yet in PostgreSQL, while spooling.
    pub(crate) fn spooling(&self) -> Option<u64> {
        self.spooling
            .load(Ordering::Acquire)
            .then(|| self.pending.load(Ordering::Acquire))
    }

    /// Why the last attempt to drain failed, while it fails.
    pub(crate) fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_failing(&self, reason: Option<String>) {
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// Records moved aside into the spool's `.rejected` file by this run.
    pub(crate) fn moved_aside(&self) -> Option<(PathBuf, u64)> {
        let count = self.moved_aside.load(Ordering::Acquire);
        (count > 0).then(|| (journal::rejected_path(&self.dir), count))
    }

    /// Stops the drainer; what is spooled stays for the next run.
    pub(crate) fn close(&self) {
        lock(&self.inner).closed = true;
        self.work.notify_all();
        if let Some(handle) = lock_handle(&self.drainer).take() {
            if handle.join().is_err() {
                tracing::error!("The spool's drainer panicked; the next start drains the spool.");
            }
        }
    }

    /// Drains while spooling: a chunk at a time, each under the lock (so that writes and
    /// this thread take turns), retrying with backoff while PostgreSQL is away.
    fn drain_loop(&self) {
        let mut pause = Duration::from_millis(100);
        loop {
            {
                let mut inner = lock(&self.inner);
                while !inner.closed && !inner.spooling {
                    inner = self.work.wait(inner).unwrap_or_else(PoisonError::into_inner);
                }
                if inner.closed {
                    return;
                }
            }
            // Whether PostgreSQL answers, asked without the lock: while it is away, a try can
            // take seconds, and the writes meanwhile go on into the spool.
            let answered = (self.commit)(&[], Durability::Power);
            let mut inner = lock(&self.inner);
            let step = answered.and_then(|()| self.drain_step(&mut inner));
            match step {
                Ok(_) => {
                    inner.back = true;
                    pause = Duration::from_millis(100);
                }
                Err(error) => {
                    inner.back = false;
                    self.set_failing(Some(error.to_string()));
                    tracing::warn!(%error, pending = self.pending.load(Ordering::Acquire), "The spool cannot be drained yet; retrying.");
                    drop(
                        self.work
                            .wait_timeout(inner, pause)
                            .unwrap_or_else(PoisonError::into_inner),
                    );
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Applies the next chunk of what is spooled, oldest first, deleting the segments wholly
    /// applied; once nothing is left, writing goes to PostgreSQL again. Under the lock, so
    /// no append runs meanwhile.
    fn drain_step(&self, inner: &mut Inner) -> Result<(), StoreError> {
        for (first_seq, path) in segment_files(&self.dir)? {
            let length = fs::metadata(&path)
                .map_err(|e| io_error("cannot read", &path, &e))?
                .len();
            let cached = matches!(&inner.decoded, Some((first, len, _)) if *first == first_seq && *len == length);
            if !cached {
                let (writes, _) = read_segment(&path, first_seq)?;
                inner.decoded = Some((first_seq, length, writes));
            }
            let writes: &[Write] = inner.decoded.as_ref().map_or(&[], |(_, _, writes)| writes);
            let end = first_seq + writes.len() as u64;
            if end > inner.applied_seq + 1 {
                let skip = usize::try_from(inner.applied_seq.saturating_sub(first_seq - 1)).unwrap_or(usize::MAX);
                let chunk: Vec<(u64, Write)> = (first_seq..)
                    .zip(writes.iter().cloned())
                    .skip(skip)
                    .take(DRAIN_CHUNK)
                    .collect();
                let last = chunk.last().map_or(inner.applied_seq, |(seq, _)| *seq);
                let count = chunk.len() as u64;
                let (merged, _) = merge(Vec::new(), chunk, false);
                // Durable before the segment holding them goes.
                let results = commit_isolated(&merged, Lessen::Everything, |writes| {
                    (self.commit)(writes, Durability::Power)
                })?;
                if let Some(Written::Failed(reason)) = results.iter().find(|r| matches!(r, Written::Failed(_))) {
                    return Err(StoreError::Journal(reason.clone()));
                }
                for (write, written) in merged.iter().zip(&results) {
                    if let Written::Refused(reason) = written {
                        move_aside(&self.dir, write, reason)?;
                        self.moved_aside.fetch_add(1, Ordering::AcqRel);
                        tracing::error!(
                            id = write.exchange_id().unwrap_or("-"),
                            reason,
                            "PostgreSQL refuses a spooled record in every form; it was moved aside."
                        );
                    }
                }
                inner.applied_seq = last;
                self.set_failing(None);
                self.pending.fetch_sub(count, Ordering::AcqRel);
                return Ok(());
            }
            // Wholly applied: it goes (the one being appended to as well: the next append
            // starts another).
            fs::remove_file(&path).map_err(|e| io_error("cannot delete", &path, &e))?;
            sync_dir(&self.dir).map_err(|e| io_error("cannot sync", &self.dir, &e))?;
            inner.decoded = None;
            if inner.current.as_ref().is_some_and(|(first, ..)| *first == first_seq) {
                inner.current = None;
            }
        }
        if inner.applied_seq + 1 >= inner.next_seq {
            inner.spooling = false;
            inner.back = false;
            self.spooling.store(false, Ordering::Release);
            tracing::info!(spool = %self.dir.display(), "The spool is drained: writing to PostgreSQL again.");
        }
        Ok(())
    }
}

fn lock_handle(
    handle: &Mutex<Option<std::thread::JoinHandle<()>>>,
) -> MutexGuard<'_, Option<std::thread::JoinHandle<()>>> {
    handle.lock().unwrap_or_else(PoisonError::into_inner)
}
