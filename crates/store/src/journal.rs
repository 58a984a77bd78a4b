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
//!   every `Process` append before it (they are in the same file: see rotation below).
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
//! Frame: `length: u32 LE | crc32(seq, payload): u32 LE | seq: u64 LE | payload` (the
//! [`Write`] as JSON). A crash mid-append leaves a torn frame at the end of the last segment;
//! reading stops there, as it does at zeros or at a frame numbered before the segment's own.
//! Stopping anywhere else (an earlier segment, a frame that does not decode) is damage: what
//! is readable is applied and the segment is kept aside as `N.log.damaged-TIME`.

use crate::isolation::{commit_isolated, Lessen, Written};
use crate::model::{Completion, NewExchange, Write};
use crate::sqlite_writer::SqliteWriter;
use crate::{private, sql, stored_json, Durability, StoreError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A segment is closed, and a new one begun, once it is this large.
pub(crate) const SEGMENT_BYTES: u64 = 8 << 20;
/// Records journaled before a spare segment is prepared.
const SPARE_AFTER_RECORDS: u64 = 2000;
/// The size of a spare segment prepared ahead: a segment's last batch may pass its size.
const SPARE_BYTES: u64 = SEGMENT_BYTES + (1 << 20);
/// Records journaled but not yet applied, at most: past it, appends wait for the applier
/// (memory stays bounded, and a store that cannot keep up slows the proxy down).
const MAX_PENDING: usize = 8192;
/// Bytes (of frames, about what the records hold in memory) journaled but not yet applied, at
/// most, counting the applier's round too: a record carries up to three bodies of up to
/// `max_body_bytes`, so a count alone would allow gigabytes.
const MAX_PENDING_BYTES: usize = 64 << 20;
/// How long an append waits for the applier to make room before it fails.
const ROOM_WAIT: Duration = Duration::from_secs(10);
/// How long a read waits for the applier before reading what is applied.
const READ_WAIT: Duration = Duration::from_secs(5);
/// How long the applier gathers records before it applies them: under load, one transaction
/// carries hundreds of records, and an in-flight record held back one round is usually joined
/// by its completion.
const APPLY_INTERVAL: Duration = Duration::from_millis(10);
/// Records per transaction when applying.
const APPLY_CHUNK: usize = 2000;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The journal's directory beside the database file: `scimtrail.db` → `scimtrail.db.journal`.
pub(crate) fn directory(database: &Path) -> PathBuf {
    private::with_suffix(database, ".journal")
}

/// The journal's format: what its frames' payloads may hold. Format 1 had no `client` on
/// records and no `Repeats`; format 2 reads format 1's frames as they are. It is kept in the
/// journal's directory (`format`, `scimtrail-journal 2`); a journal in a format this binary
/// does not know is refused by name rather than read as damage.
pub(crate) const FORMAT: u32 = 2;

/// Refuses a journal written in a newer format than [`FORMAT`] (none written: format 1).
pub(crate) fn check_format(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join("format");
    let text = match fs::read_to_string(&path) {
        // Written whole or not at all (see `write_format`); empty is format 1 too.
        Ok(text) if text.trim().is_empty() => return Ok(()),
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error("cannot read", &path, &error)),
    };
    let found = text
        .trim()
        .strip_prefix("scimtrail-journal ")
        .and_then(|number| number.parse::<u32>().ok())
        .ok_or_else(|| StoreError::Journal(format!("{} does not name a journal format: {text:?}", path.display())))?;
    if found > FORMAT {
        return Err(StoreError::Journal(format!(
            "the journal {} is in format {found}, written by a newer scimtrail; this one reads formats 1 to {FORMAT}: start the newer version, which applies it (its records stay where they are)",
            dir.display()
        )));
    }
    Ok(())
}

/// Says, durably, which format this process journals in.
pub(crate) fn write_format(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join("format");
    let text = format!("scimtrail-journal {FORMAT}\n");
    if fs::read_to_string(&path).is_ok_and(|found| found == text) {
        return Ok(());
    }
    // A new file synced, then renamed over the old: a crash leaves one or the other whole.
    let fresh = dir.join("format.tmp");
    let written = private::create(&fresh).and_then(|mut file| {
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| fs::rename(&fresh, &path))
        .and_then(|()| sync_dir(dir))
        .map_err(|e| io_error("cannot write", &path, &e))
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
fn commit_journaled(writer: &SqliteWriter, dir: &Path, writes: &[Write]) -> Result<u64, StoreError> {
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

/// A journal held by this process: appends, and the applier thread behind them.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    appender: Mutex<Appender>,
    /// `Process` appends not yet synced (see the module's doc); the lock is taken after the
    /// appender's, never before.
    unsynced: Mutex<Unsynced>,
    /// The syncer waits on it for an append to sync, or the close.
    sync_work: Condvar,
    /// How long a `Process` append may stay unsynced, in milliseconds.
    sync_interval_ms: AtomicU64,
    /// Every record up to this sequence number is synced.
    synced: AtomicU64,
    /// Syncs of journaled frames so far (by appends, the syncer and rotations).
    syncs: AtomicU64,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    queue: Mutex<Queue>,
    /// The applier waits on it for records (or a flush, or the close).
    work: Condvar,
    /// Appends wait on it for room in the queue.
    room: Condvar,
    /// The last sequence number journaled.
    written: AtomicU64,
    /// Every record up to this sequence number is in SQLite.
    applied: tokio::sync::watch::Sender<u64>,
    /// The first sequence number of each segment on disk, oldest first.
    segments: Mutex<VecDeque<u64>>,
    /// Whether `dir/spare` holds a segment ready to be written over (see [`Journal::rotate`]).
    spare: Mutex<bool>,
    /// Segments that begin below this sequence number held records from before an erasure:
    /// once applied they are deleted, never recycled as the spare (whose old frames stay).
    scrub_below: AtomicU64,
    applier: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Records moved aside into [`rejected_path`], this run's and earlier ones'.
    moved_aside: AtomicU64,
    /// Held for the journal's life: the `flock` on `dir/lock`.
    _lock: File,
}

/// What the syncer is to sync.
#[derive(Debug, Default)]
struct Unsynced {
    /// When the oldest append not yet synced was written; `None` when everything is synced.
    since: Option<Instant>,
    /// The segment it was written to (the current one) and the last sequence number written.
    file: Option<Arc<File>>,
    through: u64,
    closed: bool,
}

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

#[derive(Debug)]
struct Queue {
    records: VecDeque<(u64, Write)>,
    /// The frame size of each record journaled and not yet applied (queued, in the applier's
    /// round, or held back by it), by sequence number, and their sum.
    unapplied: VecDeque<(u64, usize)>,
    bytes: usize,
    /// [`MAX_PENDING_BYTES`], smaller in tests.
    max_bytes: usize,
    /// A reader waits: apply everything, hold nothing back.
    flush: bool,
    closed: bool,
    /// Why the last attempt to apply failed, until one succeeds. Meanwhile appends are
    /// refused, so that the proxy fails closed as if it wrote to SQLite directly.
    failing: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks leaves its data half-changed on a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn io_error(what: &str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Journal(format!("{what} {}: {error}", path.display()))
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
fn recover(dir: &Path, writer: &SqliteWriter) -> Result<(usize, u64), StoreError> {
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

fn spare_path(dir: &Path) -> PathBuf {
    dir.join("spare")
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// The writes of one segment, and why reading stopped early.
pub(crate) fn read_segment(path: &Path, first_seq: u64) -> Result<(Vec<Write>, Option<Stop>), StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| io_error("cannot read", path, &e))?;
    Ok(decode_frames(&bytes, first_seq))
}

/// Bytes before a frame's payload: length (u32 LE), CRC-32 of sequence number and payload
/// (u32 LE), sequence number (u64 LE).
const FRAME_HEADER: usize = 16;

/// Appends `write` as the frame of sequence number `seq`.
pub(crate) fn encode_frame(frames: &mut Vec<u8>, seq: u64, write: &Write) -> Result<(), StoreError> {
    let start = frames.len();
    frames.extend_from_slice(&[0; 8]);
    frames.extend_from_slice(&seq.to_le_bytes());
    serde_json::to_writer(&mut *frames, write)
        .map_err(|error| StoreError::Journal(format!("a record does not encode: {error}")))?;
    let payload = &frames[start + FRAME_HEADER..];
    let length = u32::try_from(payload.len())
        .map_err(|_| StoreError::Journal(format!("a record of {} bytes is too large", payload.len())))?;
    let checksum = CRC.checksum(&frames[start + 8..]);
    frames[start..start + 4].copy_from_slice(&length.to_le_bytes());
    frames[start + 4..start + 8].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// A frame cut short or failing its checksum: a crash mid-append at the journal's end,
    /// damage anywhere else.
    Torn(String),
    /// A whole frame, checksum and all, whose record does not decode: never a crash.
    Undecodable(String),
}

/// The writes framed in the segment `bytes` that begins at `first_seq`, up to its end, and
/// why reading stopped short if it did (a torn, damaged or undecodable frame). The end is
/// the end of the bytes, zeros (a segment prepared ahead), or a frame of an older sequence
/// (a recycled segment's previous content).
fn decode_frames(bytes: &[u8], first_seq: u64) -> (Vec<Write>, Option<Stop>) {
    let mut writes = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_first_chunk::<FRAME_HEADER>() else {
            let torn = rest.iter().any(|byte| *byte != 0);
            return (
                writes,
                torn.then(|| Stop::Torn(format!("{} bytes of a frame header", rest.len()))),
            );
        };
        let (length, header) = header.split_at(4);
        let (checksum, seq) = header.split_at(4);
        let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let checksum = u32::from_le_bytes([checksum[0], checksum[1], checksum[2], checksum[3]]);
        let seq = u64::from_le_bytes([seq[0], seq[1], seq[2], seq[3], seq[4], seq[5], seq[6], seq[7]]);
        // A segment's first number comes from its file's name: nothing past u64::MAX follows.
        let Some(expected) = first_seq.checked_add(writes.len() as u64) else {
            return (writes, Some(Stop::Torn("frame numbers past 2^64".to_owned())));
        };
        if length == 0 || seq < expected {
            return (writes, None);
        }
        let Some((payload, after)) = after.split_at_checked(length) else {
            return (
                writes,
                Some(Stop::Torn(format!(
                    "a frame of {length} bytes with {} written",
                    after.len()
                ))),
            );
        };
        let mut digest = CRC.digest();
        digest.update(&seq.to_le_bytes());
        digest.update(payload);
        if digest.finalize() != checksum || seq != expected {
            return (
                writes,
                Some(Stop::Torn(format!(
                    "frame {expected} is damaged (its checksum or number does not match)"
                ))),
            );
        }
        match stored_json::from_slice(payload) {
            Ok(write) => writes.push(write),
            Err(error) => {
                return (
                    writes,
                    Some(Stop::Undecodable(format!("frame {expected} does not decode: {error}"))),
                )
            }
        }
        rest = after;
    }
    (writes, None)
}

/// For `fuzz/` (feature `fuzzing`): `bytes` read as a segment (its first 8 bytes the first
/// frame number, the rest its content), then the same content cut at each 0xFF byte into
/// payloads framed as an append frames them, so that record decoding is reached past the
/// checksums. Returns how many records decoded.
#[cfg(feature = "fuzzing")]
pub fn fuzz_decode(bytes: &[u8]) -> usize {
    let Some((first, content)) = bytes.split_first_chunk::<8>() else {
        return 0;
    };
    let first_seq = u64::from_le_bytes(*first);
    let (read, _) = decode_frames(content, first_seq);
    let mut framed = Vec::new();
    for (index, payload) in content.split(|byte| *byte == 0xFF).enumerate() {
        let seq = first_seq.wrapping_add(index as u64);
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut digest = CRC.digest();
        digest.update(&seq.to_le_bytes());
        digest.update(payload);
        framed.extend_from_slice(&length.to_le_bytes());
        framed.extend_from_slice(&digest.finalize().to_le_bytes());
        framed.extend_from_slice(&seq.to_le_bytes());
        framed.extend_from_slice(payload);
    }
    let (decoded, _) = decode_frames(&framed, first_seq);
    read.len() + decoded.len()
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
        let (_, next_seq) = recover(&dir, &writer)?;
        write_format(&dir)?;
        // A spare left by an earlier run holds frames numbered like this run's: never reused.
        for leftover in [spare_path(&dir), spare_path(&dir).with_extension("tmp")] {
            if leftover.exists() {
                fs::remove_file(&leftover).map_err(|e| io_error("cannot delete", &leftover, &e))?;
            }
        }
        let path = segment_path(&dir, next_seq);
        let file = create_segment(&dir, &path)?;
        let moved_aside = AtomicU64::new(moved_aside_count(&dir));
        let journal = Arc::new(Journal {
            dir,
            unsynced: Mutex::new(Unsynced::default()),
            sync_work: Condvar::new(),
            sync_interval_ms: AtomicU64::new(millis(sync_interval)),
            synced: AtomicU64::new(next_seq - 1),
            syncs: AtomicU64::new(0),
            syncer: Mutex::new(None),
            appender: Mutex::new(Appender {
                file: Arc::new(file),
                size: 0,
                growing: true,
                next_seq,
                frames: Vec::with_capacity(64 * 1024),
                broken: None,
            }),
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
            written: AtomicU64::new(next_seq - 1),
            applied: tokio::sync::watch::Sender::new(next_seq - 1),
            segments: Mutex::new(VecDeque::from([next_seq])),
            spare: Mutex::new(false),
            scrub_below: AtomicU64::new(0),
            applier: Mutex::new(None),
            moved_aside,
            _lock: lock_file,
        });
        let applier_journal = Arc::clone(&journal);
        let handle = std::thread::Builder::new()
            .name("scimtrail-journal-applier".into())
            .spawn(move || applier_journal.apply_loop(&writer))
            .map_err(|error| StoreError::Thread(format!("cannot start the journal's applier: {error}")))?;
        *lock(&journal.applier) = Some(handle);
        let syncer_journal = Arc::clone(&journal);
        let handle = std::thread::Builder::new()
            .name("scimtrail-journal-syncer".into())
            .spawn(move || syncer_journal.sync_loop())
            .map_err(|error| StoreError::Thread(format!("cannot start the journal's syncer: {error}")))?;
        *lock(&journal.syncer) = Some(handle);
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
            let path = segment_path(&self.dir, lock(&self.segments).back().copied().unwrap_or(0));
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
        let mut queue = lock(&self.queue);
        // The applier needs waking when it idles (the queue was empty) or a round is full.
        let wake = queue.records.is_empty() || queue.records.len() + writes.len() >= APPLY_CHUNK;
        queue.records.extend((first_seq..).zip(writes));
        queue.unapplied.extend((first_seq..).zip(sizes));
        queue.bytes += appender.frames.len();
        drop(queue);
        if wake {
            self.work.notify_one();
        }
        self.written.store(appender.next_seq - 1, Ordering::Release);
        if appender.size >= SEGMENT_BYTES || (appender.growing && *lock(&self.spare)) {
            self.rotate(appender);
        }
        Ok(())
    }

    /// Syncs `file`, the current segment, written up to `through`, under the appender's lock:
    /// every record up to `through` is then synced (the segments before it were synced when
    /// it was begun), and the syncer has nothing left to do.
    fn synced_now(&self, file: &File, through: u64) -> std::io::Result<()> {
        file.sync_data()?;
        self.syncs.fetch_add(1, Ordering::AcqRel);
        let mut unsynced = lock(&self.unsynced);
        unsynced.since = None;
        unsynced.file = None;
        drop(unsynced);
        self.synced.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// Notes, under the appender's lock, that `file` holds records up to `through` that are
    /// not synced, for the syncer (woken when the note is new).
    fn note_unsynced(&self, file: &Arc<File>, through: u64) {
        let mut unsynced = lock(&self.unsynced);
        unsynced.through = through;
        if unsynced.since.is_none() {
            unsynced.since = Some(Instant::now());
            unsynced.file = Some(Arc::clone(file));
            drop(unsynced);
            self.sync_work.notify_one();
        }
    }

    /// The syncer: syncs `Process` appends within the sync interval of the oldest one not yet
    /// synced (see the module's doc); at the close, syncs what is left and ends.
    fn sync_loop(&self) {
        let mut unsynced = lock(&self.unsynced);
        loop {
            let Some(since) = unsynced.since else {
                if unsynced.closed {
                    return;
                }
                unsynced = self.sync_work.wait(unsynced).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            // Read again at every wake-up: the interval may have been changed meanwhile.
            let due = since.checked_add(Duration::from_millis(self.sync_interval_ms.load(Ordering::Acquire)));
            let now = Instant::now();
            if !unsynced.closed {
                match due {
                    Some(due) if now < due => {
                        unsynced = self
                            .sync_work
                            .wait_timeout(unsynced, due - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        continue;
                    }
                    // An interval past the clock's range: until the close, or a new interval.
                    None => {
                        unsynced = self.sync_work.wait(unsynced).unwrap_or_else(PoisonError::into_inner);
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
                        self.syncs.fetch_add(1, Ordering::AcqRel);
                        self.synced.fetch_max(through, Ordering::AcqRel);
                    }
                    Err(error) => {
                        let broken = self.failed_sync(&error);
                        lock(&self.appender).broken = Some(broken);
                    }
                }
            }
            unsynced = lock(&self.unsynced);
        }
    }

    /// Logs that a sync of appended frames failed, and returns why the journal is broken from
    /// now on (the appender's `broken`): the frames may never reach the disk, and a sync
    /// retried may report success without them, so every later append fails.
    fn failed_sync(&self, error: &std::io::Error) -> String {
        let path = segment_path(&self.dir, lock(&self.segments).back().copied().unwrap_or(0));
        tracing::error!(%error, segment = %path.display(), "Syncing the journal failed: records acknowledged at durability \"process\" may be lost on a power cut, and the journal takes no more appends.");
        format!("syncing the journal {} failed: {error}", path.display())
    }

    /// Changes how long a `Process` append may stay unsynced.
    pub(crate) fn set_sync_interval(&self, interval: Duration) {
        self.sync_interval_ms.store(millis(interval), Ordering::Release);
        // Under the lock, so that the syncer, if it is deciding how long to wait, sees it.
        drop(lock(&self.unsynced));
        self.sync_work.notify_one();
    }

    /// How many records are journaled and not yet synced (what a power cut now may lose).
    pub(crate) fn unsynced(&self) -> u64 {
        // Read in this order: `synced` never passes `written`.
        let synced = self.synced.load(Ordering::Acquire);
        self.written.load(Ordering::Acquire).saturating_sub(synced)
    }

    /// Begins a new segment at the next sequence number: the spare if one is ready (written
    /// over, so that each append's fsync has no file size or block allocation to persist,
    /// which made it about 40% slower here), else an empty file.
    fn rotate(&self, appender: &mut Appender) {
        // The syncer's note must name the current segment: what this one holds unsynced is
        // synced now (once a segment: 8 MiB).
        let noted = lock(&self.unsynced).since.is_some();
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
                lock(&self.segments).push_back(appender.next_seq);
            }
            // The current segment goes on growing; the next append tries again.
            Err(error) => tracing::warn!(%error, "A new journal segment could not be begun."),
        }
    }

    /// The spare, renamed to `path` (durably: acknowledged frames go into it).
    fn take_spare(&self, path: &Path) -> Option<File> {
        let mut ready = lock(&self.spare);
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
    fn prepare_spare(&self) {
        if *lock(&self.spare) {
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
        let mut ready = lock(&self.spare);
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

    /// Frees the room of the records applied, up to `applied`.
    fn release_room(&self, applied: u64) {
        let mut queue = lock(&self.queue);
        while let Some(&(seq, size)) = queue.unapplied.front() {
            if seq > applied {
                break;
            }
            queue.bytes -= size;
            queue.unapplied.pop_front();
        }
        drop(queue);
        self.room.notify_all();
    }

    /// Waits until `count` more records of `bytes` fit among those waiting to be applied (any
    /// batch fits when none waits).
    fn wait_for_room(&self, count: usize, bytes: usize) -> Result<(), StoreError> {
        let deadline = Instant::now() + ROOM_WAIT;
        let mut queue = lock(&self.queue);
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
            queue = self
                .room
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until everything journaled so far is in SQLite (for [`READ_WAIT`] at most; then
    /// the read goes on with what is there, and says so in the log).
    /// Returns whether it did.
    pub(crate) async fn caught_up(&self) -> bool {
        let target = self.written.load(Ordering::Acquire);
        let mut applied = self.applied.subscribe();
        if *applied.borrow() >= target {
            return true;
        }
        lock(&self.queue).flush = true;
        self.work.notify_one();
        let caught_up = applied.wait_for(|applied| *applied >= target);
        if tokio::time::timeout(READ_WAIT, caught_up).await.is_err() {
            tracing::warn!(
                behind = target.saturating_sub(*self.applied.borrow()),
                "Reading the store before the journal's last records are applied to it."
            );
            return false;
        }
        true
    }

    /// Leaves in the journal's files no record journaled before now (an erasure's last step,
    /// once the records are rewritten in SQLite): the spare — an applied segment recycled,
    /// its old frames still in it — deleted, a new segment begun, and once everything before
    /// it is applied, every older segment deleted rather than recycled.
    pub(crate) async fn scrub(&self) -> Result<(), StoreError> {
        {
            let mut spare = lock(&self.spare);
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
                self.scrub_below.fetch_max(first_seq, Ordering::AcqRel);
                self.rotate(&mut appender);
                lock(&self.segments).back() == Some(&first_seq)
            }
        };
        if !fresh {
            return Err(StoreError::Journal(
                "a new journal segment could not be begun: the records before the erasure stay in the current one until it is".to_owned(),
            ));
        }
        self.caught_up().await;
        self.retire_applied_segments(*self.applied.borrow());
        let left = lock(&self.segments).len();
        if left > 1 {
            return Err(StoreError::Journal(format!(
                "{} journal segments older than the erasure could not be deleted yet; they go as the journal is applied",
                left - 1
            )));
        }
        Ok(())
    }

    /// Why the store fails to take what is journaled, while it does.
    pub(crate) fn failing(&self) -> Option<String> {
        lock(&self.queue).failing.clone()
    }

    /// The records SQLite refused in every form, moved aside so that they block nothing: the
    /// file, and how many it holds.
    pub(crate) fn moved_aside(&self) -> Option<(PathBuf, u64)> {
        let count = self.moved_aside.load(Ordering::Acquire);
        (count > 0).then(|| (rejected_path(&self.dir), count))
    }

    /// Applies everything, stops the applier and, when nothing is left unapplied, deletes
    /// the segments. Later appends fail.
    pub(crate) fn close(&self) {
        lock(&self.queue).closed = true;
        self.work.notify_one();
        self.room.notify_all();
        // Appends are refused now: the syncer syncs what they left, and ends.
        lock(&self.unsynced).closed = true;
        self.sync_work.notify_one();
        if let Some(handle) = lock(&self.syncer).take() {
            if handle.join().is_err() {
                tracing::error!("The journal's syncer panicked.");
            }
        }
        if let Some(handle) = lock(&self.applier).take() {
            if handle.join().is_err() {
                tracing::error!("The journal's applier panicked; the next start applies what it left.");
            }
        }
        let appender = lock(&self.appender);
        // An append that was past its checks when the syncer ended left a note: synced here.
        if lock(&self.unsynced).since.is_some() {
            if let Err(error) = self.synced_now(&appender.file, appender.next_seq - 1) {
                tracing::error!(%error, "Syncing the journal at its close failed.");
            }
        }
        if *self.applied.borrow() >= appender.next_seq - 1 {
            let segments: Vec<u64> = lock(&self.segments).drain(..).collect();
            let spare = std::mem::take(&mut *lock(&self.spare)).then(|| spare_path(&self.dir));
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

    /// The applier: takes what is queued, joins begins with their completions, commits it to
    /// SQLite, then retires the segments wholly applied.
    fn apply_loop(&self, writer: &SqliteWriter) {
        let mut carried: Vec<(u64, NewExchange)> = Vec::new();
        let mut last_seq = *self.applied.borrow();
        // A spare is prepared once the journal is busy: a quiet one never needs it.
        let mut spare_after = Some(last_seq + SPARE_AFTER_RECORDS);
        loop {
            let (records, flush, closed) = {
                let mut queue = lock(&self.queue);
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
                        queue = self.work.wait(queue).unwrap_or_else(PoisonError::into_inner);
                        continue;
                    }
                    let due = *gathering_since.get_or_insert_with(Instant::now) + APPLY_INTERVAL;
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    queue = self
                        .work
                        .wait_timeout(queue, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                let take = queue.records.len().min(APPLY_CHUNK);
                let records: Vec<(u64, Write)> = queue.records.drain(..take).collect();
                self.room.notify_all();
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
            self.applied.send_replace(applied);
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
                .map(|moved| self.moved_aside.fetch_add(moved, Ordering::AcqRel))
                .map(drop);
            let failing = result.as_ref().err().map(ToString::to_string);
            let was_failing = std::mem::replace(&mut lock(&self.queue).failing, failing).is_some();
            // Appends waiting for room fail at once.
            self.room.notify_all();
            match result {
                Ok(()) => {
                    if was_failing {
                        tracing::info!("The store takes journaled records again.");
                    }
                    return true;
                }
                Err(error) if attempt >= 3 && lock(&self.queue).closed => {
                    tracing::error!(%error, "Journaled records could not be applied to the store; the next start applies them.");
                    return false;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "Applying journaled records to the store failed; retrying.");
                    // A close cuts the pause short.
                    let queue = lock(&self.queue);
                    if !queue.closed {
                        drop(
                            self.work
                                .wait_timeout(queue, pause)
                                .unwrap_or_else(PoisonError::into_inner),
                        );
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        false
    }

    /// Retires the segments whose records are all applied (every one but the newest): one is
    /// kept as the spare, the others deleted.
    fn retire_applied_segments(&self, applied: u64) {
        let mut segments = lock(&self.segments);
        while segments.len() > 1 && segments[1] <= applied + 1 {
            let Some(first_seq) = segments.pop_front() else { break };
            let path = segment_path(&self.dir, first_seq);
            let mut spare = lock(&self.spare);
            let retired = if *spare || first_seq < self.scrub_below.load(Ordering::Acquire) {
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

/// `interval` in whole milliseconds (at least 1).
fn millis(interval: Duration) -> u64 {
    u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1)
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

#[cfg(test)]
mod tests;
