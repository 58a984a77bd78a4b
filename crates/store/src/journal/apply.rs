//! The applier: what is journaled, committed to SQLite in large batches behind the appends,
//! and the back-pressure that bounds what waits for it.
//!
//! An applier thread gathers what was journaled for [`APPLY_INTERVAL`] (or until a reader
//! waits) and commits it in one transaction, where an exchange's begin and its completion,
//! when both are there, become one row inserted once ([`merge`]); a begin whose completion has
//! not come is held one round for it. Appends wait for room past [`MAX_PENDING`] records or
//! [`MAX_PENDING_BYTES`]; while SQLite fails as a whole, the applier retries and appends are
//! refused.

use super::segments::SPARE_AFTER_RECORDS;
use super::{io_error, lock, wait, wait_timeout, Journal, FORMAT};
use crate::isolation::{commit_isolated, Lessen, Written};
use crate::model::{Completion, NewExchange, Write};
use crate::sqlite_writer::SqliteWriter;
use crate::{private, sql, Durability, StoreError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records journaled but not yet applied, at most: past it, appends wait for the applier
/// (memory stays bounded, and a store that cannot keep up slows the proxy down).
const MAX_PENDING: usize = 8192;
/// Bytes (of frames, about what the records hold in memory) journaled but not yet applied, at
/// most, counting the applier's round too: a record carries up to three bodies of up to
/// `max_body_bytes`, so a count alone would allow gigabytes.
pub(super) const MAX_PENDING_BYTES: usize = 64 << 20;
/// How long an append waits for the applier to make room before it fails.
const ROOM_WAIT: Duration = Duration::from_secs(10);
/// How long a read waits for the applier before reading what is applied.
const READ_WAIT: Duration = Duration::from_secs(5);
/// How long the applier gathers records before it applies them: under load, one transaction
/// carries hundreds of records, and an in-flight record held back one round is usually joined
/// by its completion.
const APPLY_INTERVAL: Duration = Duration::from_millis(10);
/// Records per transaction when applying.
pub(super) const APPLY_CHUNK: usize = 2000;

/// The applier's side of the journal: what waits to be applied, and how far it is.
#[derive(Debug)]
pub(super) struct Applier {
    /// What is journaled and not yet applied. Invariant: `unapplied` holds, in order, every
    /// sequence number journaled and not yet in SQLite (queued, in the applier's round, or held
    /// back by it), and `bytes` their frames' sum; `records` the ones not yet taken by the
    /// applier. Taken after the appender's lock, never before; nothing else is taken while it
    /// is held.
    pub(super) queue: Mutex<Queue>,
    /// The applier waits on it (with `queue`) for records, a flush, or the close.
    pub(super) work: Condvar,
    /// Appends wait on it (with `queue`) for room; signalled whenever room is freed, applying
    /// starts failing, or the journal closes.
    pub(super) room: Condvar,
    /// Every record up to this sequence number is in SQLite; readers wait on it.
    pub(super) applied: tokio::sync::watch::Sender<u64>,
    /// Records moved aside into [`rejected_path`], this run's and earlier ones'.
    pub(super) moved_aside: AtomicU64,
    /// The applier's thread, joined at the close.
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
}

impl Applier {
    /// An applier with everything up to `applied` in SQLite, and the records that `dir`'s
    /// earlier runs moved aside counted.
    pub(super) fn new(applied: u64, dir: &Path) -> Applier {
        Applier {
            queue: Mutex::new(Queue {
                records: VecDeque::new(),
                unapplied: VecDeque::new(),
                bytes: 0,
                max_bytes: MAX_PENDING_BYTES,
                flush: false,
                closed: false,
                failing: None,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            applied: tokio::sync::watch::Sender::new(applied),
            moved_aside: AtomicU64::new(moved_aside_count(dir)),
            thread: Mutex::new(None),
        }
    }
}

#[derive(Debug)]
pub(super) struct Queue {
    pub(super) records: VecDeque<(u64, Write)>,
    /// The frame size of each record journaled and not yet applied (queued, in the applier's
    /// round, or held back by it), by sequence number, and their sum.
    pub(super) unapplied: VecDeque<(u64, usize)>,
    pub(super) bytes: usize,
    /// [`MAX_PENDING_BYTES`], smaller in tests.
    pub(super) max_bytes: usize,
    /// A reader waits: apply everything, hold nothing back.
    pub(super) flush: bool,
    pub(super) closed: bool,
    /// Why the last attempt to apply failed, until one succeeds. Meanwhile appends are
    /// refused, so that the proxy fails closed as if it wrote to SQLite directly.
    pub(super) failing: Option<String>,
}

/// Where records SQLite refuses on their own, even in a lesser form, are moved aside, one JSON
/// line each (`{"reason": …, "record": …}`), so that they never block the records behind them:
/// `scimtrail.db.journal` → `scimtrail.db.journal.rejected`.
pub(crate) fn rejected_path(dir: &Path) -> PathBuf {
    private::with_suffix(dir, ".rejected")
}

/// Commits journaled `writes` to SQLite, one bad record failing alone (see `isolation`):
/// a record refused even in its lesser forms is moved aside into [`rejected_path`]. Returns
/// how many were moved aside; an error when SQLite itself fails (then nothing is moved).
pub(super) fn commit_journaled(writer: &SqliteWriter, dir: &Path, writes: &[Write]) -> Result<u64, StoreError> {
    // Synced whatever the journal's level: the segments holding them are retired after.
    let results = commit_isolated(writes, Lessen::Everything, |writes| {
        writer.write_blocking(&statements(writes), Durability::Power)
    })?;
    if let Some(Written::Failed(reason)) = results.iter().find(|r| matches!(r, Written::Failed(_))) {
        return Err(StoreError::Journal(reason.clone()));
    }
    let mut moved = 0;
    for (write, written) in writes.iter().zip(&results) {
        let id = write.exchange_id().unwrap_or("-");
        match written {
            Written::Committed | Written::Failed(_) => {}
            Written::Degraded(reason) => {
                tracing::warn!(
                    id,
                    reason,
                    "SQLite refused a journaled record whole; it is kept without what the peers sent."
                );
            }
            Written::Refused(reason) => {
                move_aside(dir, write, reason)?;
                moved += 1;
                tracing::error!(id, reason, file = %rejected_path(dir).display(), "SQLite refuses a journaled record in every form; it was moved aside so the records behind it are applied.");
            }
        }
    }
    Ok(moved)
}

/// Appends `write` to the file of records moved aside, durably.
pub(crate) fn move_aside(dir: &Path, write: &Write, reason: &str) -> Result<(), StoreError> {
    let path = rejected_path(dir);
    let mut line = serde_json::to_vec(&serde_json::json!({"format": FORMAT, "reason": reason, "record": write}))
        .map_err(|error| StoreError::Journal(format!("a record does not encode: {error}")))?;
    line.push(b'\n');
    let mut file = private::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("cannot open", &path, &e))?;
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error("cannot append to", &path, &e))
}

/// How many records were moved aside into [`rejected_path`] (its lines).
fn moved_aside_count(dir: &Path) -> u64 {
    match fs::read(rejected_path(dir)) {
        Ok(bytes) => bytes.iter().filter(|b| **b == b'\n').count() as u64,
        Err(_) => 0,
    }
}

/// The statements that apply `writes`, in order.
fn statements(writes: &[Write]) -> crate::sqlite_writer::Statements {
    writes.iter().flat_map(sql::statements).collect()
}

/// Joins each begin with its completion, where both are here, into one whole record at the
/// begin's place. Begins carried from the last round are applied now, joined or not; a new
/// begin whose completion has not come yet is carried to the next round when `hold` allows.
pub(crate) fn merge(
    carried: Vec<(u64, NewExchange)>,
    records: Vec<(u64, Write)>,
    hold: bool,
) -> (Vec<Write>, Vec<(u64, NewExchange)>) {
    let mut begun: HashSet<String> = carried.iter().map(|(_, new)| new.id.clone()).collect();
    for (_, write) in &records {
        if let Write::Begin(new) = write {
            begun.insert(new.id.clone());
        }
    }
    // Completions whose begin is here are taken out, to be joined with it.
    let mut completions: HashMap<String, Box<Completion>> = HashMap::new();
    let mut rest = Vec::with_capacity(records.len());
    for (seq, write) in records {
        match write {
            Write::Finish(done) if begun.contains(&done.id) => {
                completions.insert(done.id.clone(), done);
            }
            other => rest.push((seq, other)),
        }
    }
    let mut out = Vec::with_capacity(rest.len() + carried.len());
    for (_, new) in carried {
        match completions.remove(&new.id) {
            Some(done) => out.push(Write::Whole(Box::new(new), done)),
            None => out.push(Write::Begin(Box::new(new))),
        }
    }
    let mut held = Vec::new();
    for (seq, write) in rest {
        match write {
            Write::Begin(new) => match completions.remove(&new.id) {
                Some(done) => out.push(Write::Whole(new, done)),
                None if hold => held.push((seq, *new)),
                None => out.push(Write::Begin(new)),
            },
            other => out.push(other),
        }
    }
    (out, held)
}

impl Journal {
    /// Frees the room of the records applied, up to `applied`.
    fn release_room(&self, applied: u64) {
        let mut queue = lock(&self.applier.queue);
        while let Some(&(seq, size)) = queue.unapplied.front() {
            if seq > applied {
                break;
            }
            queue.bytes -= size;
            queue.unapplied.pop_front();
        }
        drop(queue);
        self.applier.room.notify_all();
    }

    /// Waits until `count` more records of `bytes` fit among those waiting to be applied (any
    /// batch fits when none waits).
    pub(super) fn wait_for_room(&self, count: usize, bytes: usize) -> Result<(), StoreError> {
        let deadline = Instant::now() + ROOM_WAIT;
        let mut queue = lock(&self.applier.queue);
        loop {
            if queue.closed {
                return Err(StoreError::Journal("the journal is closed".to_owned()));
            }
            if let Some(reason) = &queue.failing {
                return Err(StoreError::Journal(format!(
                    "the store fails to take what is journaled: {reason}"
                )));
            }
            if queue.unapplied.is_empty()
                || (queue.records.len() + count <= MAX_PENDING && queue.bytes + bytes <= queue.max_bytes)
            {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Journal(format!(
                    "the store has not applied the last {} records ({} bytes) in {} s: it is failing or too slow",
                    queue.records.len(),
                    queue.bytes,
                    ROOM_WAIT.as_secs()
                )));
            }
            queue = wait_timeout(&self.applier.room, queue, deadline - now);
        }
    }

    /// Waits until everything journaled so far is in SQLite (for [`READ_WAIT`] at most; then
    /// the read goes on with what is there, and says so in the log).
    /// Returns whether it did.
    pub(crate) async fn caught_up(&self) -> bool {
        let target = self.written.load(Ordering::Acquire);
        let mut applied = self.applier.applied.subscribe();
        if *applied.borrow() >= target {
            return true;
        }
        lock(&self.applier.queue).flush = true;
        self.applier.work.notify_one();
        let caught_up = applied.wait_for(|applied| *applied >= target);
        if tokio::time::timeout(READ_WAIT, caught_up).await.is_err() {
            tracing::warn!(
                behind = target.saturating_sub(*self.applier.applied.borrow()),
                "Reading the store before the journal's last records are applied to it."
            );
            return false;
        }
        true
    }

    /// Why the store fails to take what is journaled, while it does.
    pub(crate) fn failing(&self) -> Option<String> {
        lock(&self.applier.queue).failing.clone()
    }

    /// The records SQLite refused in every form, moved aside so that they block nothing: the
    /// file, and how many it holds.
    pub(crate) fn moved_aside(&self) -> Option<(PathBuf, u64)> {
        let count = self.applier.moved_aside.load(Ordering::Acquire);
        (count > 0).then(|| (rejected_path(&self.dir), count))
    }

    /// The applier: takes what is queued, joins begins with their completions, commits it to
    /// SQLite, then retires the segments wholly applied.
    pub(super) fn apply_loop(&self, writer: &SqliteWriter) {
        let mut carried: Vec<(u64, NewExchange)> = Vec::new();
        let mut last_seq = *self.applier.applied.borrow();
        // A spare is prepared once the journal is busy: a quiet one never needs it.
        let mut spare_after = Some(last_seq + SPARE_AFTER_RECORDS);
        loop {
            let (records, flush, closed) = {
                let mut queue = lock(&self.applier.queue);
                // A round gathers for APPLY_INTERVAL from its first record, unless a reader
                // waits, enough has come, or the journal closes.
                let mut gathering_since: Option<Instant> = None;
                loop {
                    let has_work = !queue.records.is_empty() || !carried.is_empty();
                    if queue.flush && !has_work {
                        queue.flush = false;
                    }
                    if queue.closed || (has_work && (queue.flush || queue.records.len() >= APPLY_CHUNK)) {
                        break;
                    }
                    if !has_work {
                        queue = wait(&self.applier.work, queue);
                        continue;
                    }
                    let due = *gathering_since.get_or_insert_with(Instant::now) + APPLY_INTERVAL;
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    queue = wait_timeout(&self.applier.work, queue, due - now);
                }
                let take = queue.records.len().min(APPLY_CHUNK);
                let records: Vec<(u64, Write)> = queue.records.drain(..take).collect();
                self.applier.room.notify_all();
                let flush = std::mem::take(&mut queue.flush) || !queue.records.is_empty();
                (records, flush, queue.closed)
            };
            if records.is_empty() && carried.is_empty() {
                if closed {
                    return;
                }
                continue;
            }
            if let Some((seq, _)) = records.last() {
                last_seq = *seq;
            }
            // Hold new begins one round, unless someone waits or nothing else is coming.
            let hold = !flush && !closed && !records.is_empty();
            let (writes, held) = merge(std::mem::take(&mut carried), records, hold);
            if !self.apply(writer, &writes) {
                return;
            }
            carried = held;
            let applied = carried.iter().map(|(seq, _)| seq - 1).min().unwrap_or(last_seq);
            self.applier.applied.send_replace(applied);
            self.release_room(applied);
            self.retire_applied_segments(applied);
            if spare_after.is_some_and(|after| applied >= after) {
                spare_after = None;
                self.prepare_spare();
            }
        }
    }

    /// Commits `writes`, retrying while SQLite fails (the records stay in the journal, and
    /// appends are refused meanwhile). Gives up only when closing: the next start applies
    /// what is left.
    fn apply(&self, writer: &SqliteWriter, writes: &[Write]) -> bool {
        let mut pause = Duration::from_millis(50);
        for attempt in 1.. {
            let result = commit_journaled(writer, &self.dir, writes)
                .map(|moved| self.applier.moved_aside.fetch_add(moved, Ordering::AcqRel))
                .map(drop);
            let failing = result.as_ref().err().map(ToString::to_string);
            let was_failing = std::mem::replace(&mut lock(&self.applier.queue).failing, failing).is_some();
            // Appends waiting for room fail at once.
            self.applier.room.notify_all();
            match result {
                Ok(()) => {
                    if was_failing {
                        tracing::info!("The store takes journaled records again.");
                    }
                    return true;
                }
                Err(error) if attempt >= 3 && lock(&self.applier.queue).closed => {
                    tracing::error!(%error, "Journaled records could not be applied to the store; the next start applies them.");
                    return false;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "Applying journaled records to the store failed; retrying.");
                    // A close cuts the pause short.
                    let queue = lock(&self.applier.queue);
                    if !queue.closed {
                        drop(wait_timeout(&self.applier.work, queue, pause));
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        false
    }
}
