//! The frame format: how a record is laid out in a segment, and the journal's format file.
//!
//! Frame: `length: u32 LE | crc32(seq, payload): u32 LE | seq: u64 LE | payload` (the
//! [`Write`] as JSON). A crash mid-append leaves a torn frame at the end of the last segment;
//! reading stops there, as it does at zeros or at a frame numbered before the segment's own.
//! Stopping anywhere else (an earlier segment, a frame that does not decode) is damage: what
//! is readable is applied and the segment is kept aside as `N.log.damaged-TIME` (see
//! `recover.rs`).

use super::io_error;
use super::segments::sync_dir;
use crate::model::Write;
use crate::{private, stored_json, StoreError};
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

pub(super) const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

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
pub(super) const FRAME_HEADER: usize = 16;

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
pub(super) fn decode_frames(bytes: &[u8], first_seq: u64) -> (Vec<Write>, Option<Stop>) {
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
