//! WAL records: framing, encoding, and the scan that tells a torn tail from damage.
//!
//! ```text
//!   0        4        8                         8+len-1   8+len
//!   | len    | crc    | payload (bincode)  ...   | kind |
//!   u32 LE   u32 LE                              u8
//!   len = payload bytes + 1 (the kind byte); crc = CRC32 of the len bytes after the header
//! ```
//!
//! The kind byte is the *last* byte of a record, and both kinds are non-zero. So a
//! complete record never ends in a zero byte, while a record cut short by a crash in a
//! preallocated (zero-filled) segment always does. That is what lets recovery tell a torn
//! write (truncate it) from a flipped bit in the final record (refuse to start).

use crate::error::StorageError;
use raft_core::{Entry, HardState};
use std::path::Path;

/// Bytes of `len` + `crc` in front of every record.
pub(crate) const HEADER_BYTES: usize = 8;

/// Largest record body (payload + kind byte), checked before allocating or hashing. An
/// entry arrives in one wire frame (8 MiB at most) and client values are far smaller;
/// the bound also keeps the recovery scan over a damaged tail fast.
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// Kind byte of an entry record. Non-zero with many bits set, so no flipped bit makes it zero.
pub(crate) const KIND_ENTRY: u8 = 0xE7;
/// Kind byte of a hard-state record.
pub(crate) const KIND_HARD_STATE: u8 = 0xA5;

const _: () = assert!(KIND_ENTRY != 0 && KIND_HARD_STATE != 0 && KIND_ENTRY != KIND_HARD_STATE);
const _: () = assert!(MAX_RECORD_BYTES <= u32::MAX as usize);

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    HardState(HardState),
    Entry(Entry),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Appends one framed record to `buf`; returns the record's length in bytes.
fn encode_with(buf: &mut Vec<u8>, kind: u8, payload: &impl serde::Serialize) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    bincode::serde::encode_into_std_write(payload, buf, config())
        .expect("bincode encodes raft-core types into a Vec without error");
    buf.push(kind);
    let body_len = buf.len() - start - HEADER_BYTES;
    let crc = crc32fast::hash(&buf[start + HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf.len() - start
}

pub(crate) fn encode_hard_state(buf: &mut Vec<u8>, hs: &HardState) -> usize {
    encode_with(buf, KIND_HARD_STATE, hs)
}

/// Appends an entry record, or returns the oversized body length (nothing appended).
pub(crate) fn encode_entry(buf: &mut Vec<u8>, entry: &Entry) -> Result<usize, usize> {
    let start = buf.len();
    let n = encode_with(buf, KIND_ENTRY, entry);
    if n - HEADER_BYTES > MAX_RECORD_BYTES {
        buf.truncate(start);
        return Err(n - HEADER_BYTES);
    }
    Ok(n)
}

/// Why the bytes at some offset are not a record.
#[derive(Debug, PartialEq, Eq)]
enum Defect {
    /// Zero header and nothing but zeros after it: the unused, preallocated end of a segment.
    Padding,
    /// The file ends inside the record (header or body).
    Incomplete(String),
    /// The length field cannot be right.
    BadLength(String),
    /// Length plausible, checksum wrong.
    Checksum { len: usize },
    /// Checksum right, contents wrong: written that way, never a crash artefact.
    Undecodable(String),
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn decode(body: &[u8]) -> Result<Record, String> {
    let (payload, kind) = body.split_at(body.len() - 1);
    match kind[0] {
        KIND_ENTRY => decode_exact::<Entry>(payload).map(Record::Entry),
        KIND_HARD_STATE => decode_exact::<HardState>(payload).map(Record::HardState),
        k => Err(format!("unknown record kind 0x{k:02x}")),
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (v, used): (T, usize) =
        bincode::serde::decode_from_slice(payload, config()).map_err(|e| format!("undecodable payload: {e}"))?;
    if used != payload.len() {
        return Err(format!("{} stray bytes after the payload", payload.len() - used));
    }
    Ok(v)
}

/// Parses the record at the start of `rest`: the record and its total length, or why not.
fn parse(rest: &[u8]) -> Result<(Record, usize), Defect> {
    if rest.len() < HEADER_BYTES {
        if rest.iter().all(|&b| b == 0) {
            return Err(Defect::Padding);
        }
        return Err(Defect::Incomplete(format!("header cut short ({} of {HEADER_BYTES} bytes)", rest.len())));
    }
    let len = read_u32(rest, 0) as usize;
    let crc = read_u32(rest, 4);
    if len == 0 && crc == 0 {
        if rest.iter().all(|&b| b == 0) {
            return Err(Defect::Padding);
        }
        return Err(Defect::BadLength("zero header followed by non-zero bytes".into()));
    }
    if !(2..=MAX_RECORD_BYTES).contains(&len) {
        return Err(Defect::BadLength(format!("length {len} out of range 2..={MAX_RECORD_BYTES}")));
    }
    if rest.len() < HEADER_BYTES + len {
        return Err(Defect::Incomplete(format!(
            "record of {len} bytes cut short ({} bytes present)",
            rest.len() - HEADER_BYTES
        )));
    }
    let body = &rest[HEADER_BYTES..HEADER_BYTES + len];
    if crc32fast::hash(body) != crc {
        return Err(Defect::Checksum { len });
    }
    let rec = decode(body).map_err(Defect::Undecodable)?;
    Ok((rec, HEADER_BYTES + len))
}

/// What a segment holds, as far as it is valid.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Valid records with their byte offsets.
    pub records: Vec<(u64, Record)>,
    /// Offset just past the last valid record: where the next write goes.
    pub end: u64,
    /// A torn final record that was found (only in the last segment).
    pub torn: Option<Torn>,
}

/// A record cut short by a crash: `bytes` of garbage starting at `offset`.
#[derive(Debug)]
pub(crate) struct Torn {
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

/// Parses a whole segment. In the last segment (`is_last`) a damaged final record with
/// the marks of an interrupted write is reported as [`Torn`]; any other damage, and any
/// damage at all in an earlier segment, is [`StorageError::Corrupt`].
pub(crate) fn scan(bytes: &[u8], file: &Path, is_last: bool) -> Result<Scanned, StorageError> {
    let mut records = Vec::new();
    let mut off = 0usize;
    loop {
        if off == bytes.len() {
            return Ok(Scanned { records, end: off as u64, torn: None });
        }
        match parse(&bytes[off..]) {
            Ok((rec, n)) => {
                records.push((off as u64, rec));
                off += n;
            }
            Err(Defect::Padding) => return Ok(Scanned { records, end: off as u64, torn: None }),
            Err(bad) => {
                let reason = describe(&bad);
                if !is_last {
                    return Err(StorageError::corrupt(file, off as u64, format!("{reason} (not the last segment)")));
                }
                let torn =
                    classify_tail(bytes, off, bad).map_err(|why| StorageError::corrupt(file, off as u64, why))?;
                return Ok(Scanned { records, end: off as u64, torn: Some(torn) });
            }
        }
    }
}

fn describe(bad: &Defect) -> String {
    match bad {
        Defect::Padding => "padding".into(),
        Defect::Incomplete(s) | Defect::BadLength(s) | Defect::Undecodable(s) => s.clone(),
        Defect::Checksum { len } => format!("checksum mismatch in a record of {len} bytes"),
    }
}

/// Decides whether the damage at `off`, in the last segment, is a torn write. `Ok` with
/// the torn extent if it is; `Err` with the reason to refuse if it is not.
///
/// A torn write is the final write of the log cut short: nothing valid follows it, and
/// the record is visibly incomplete (the file ends inside it, or its last byte, which in
/// a complete record is the non-zero kind byte, is zero). A record whose checksum
/// matches a *different* length had its length field damaged: that is corruption.
fn classify_tail(bytes: &[u8], off: usize, bad: Defect) -> Result<Torn, String> {
    let reason = describe(&bad);
    if let Defect::Undecodable(_) = bad {
        return Err(format!("{reason} (the checksum matches, so it was written that way)"));
    }
    if let Some(next) = find_valid_record(bytes, off + 1) {
        return Err(format!("{reason}; a valid record follows at offset {next}, so this is not a torn tail"));
    }
    let rest = &bytes[off..];
    if rest.len() >= HEADER_BYTES {
        let stored_len = read_u32(rest, 0) as usize;
        let crc = read_u32(rest, 4);
        if let Some(len) = crc_matching_length(&rest[HEADER_BYTES..], crc) {
            if len != stored_len {
                return Err(format!(
                    "{reason}; the checksum matches a record of {len} bytes, so the length field is damaged"
                ));
            }
        }
    }
    let incomplete = match &bad {
        Defect::Incomplete(_) => true,
        // Garbage after a zero header with no record in it: the unused end of a
        // segment, partly written by a write that never completed.
        Defect::BadLength(_) => read_u32(rest, 0) == 0 && read_u32(rest, 4) == 0,
        Defect::Checksum { len } => rest[HEADER_BYTES + len - 1] == 0,
        Defect::Padding | Defect::Undecodable(_) => unreachable!("handled above"),
    };
    if !incomplete {
        return Err(format!(
            "{reason}; the record is complete (it ends in its kind byte), so this is damage, not a torn write"
        ));
    }
    let garbage = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    Ok(Torn { offset: off as u64, bytes: garbage as u64, reason })
}

/// Offset of the first valid record starting at or after `from`, if any. Cheap checks
/// (length range, kind byte) come before the checksum, so a zero-filled or random tail
/// costs little per byte.
pub(crate) fn find_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    let mut p = from;
    while p + HEADER_BYTES < bytes.len() {
        let len = read_u32(bytes, p) as usize;
        if (2..=MAX_RECORD_BYTES).contains(&len) && p + HEADER_BYTES + len <= bytes.len() {
            let kind = bytes[p + HEADER_BYTES + len - 1];
            if (kind == KIND_ENTRY || kind == KIND_HARD_STATE) && parse(&bytes[p..]).is_ok() {
                return Some(p);
            }
        }
        p += 1;
    }
    None
}

/// The body length (ending in a kind byte) whose CRC32 equals `crc`, if any.
fn crc_matching_length(body: &[u8], crc: u32) -> Option<usize> {
    let max = body.len().min(MAX_RECORD_BYTES);
    let mut hasher = crc32fast::Hasher::new();
    for (i, &b) in body[..max].iter().enumerate() {
        hasher.update(&[b]);
        if i >= 1 && (b == KIND_ENTRY || b == KIND_HARD_STATE) && hasher.clone().finalize() == crc {
            return Some(i + 1);
        }
    }
    None
}

/// Decodes a buffer that must hold exactly one hard-state record (the `hardstate` file).
pub(crate) fn decode_single_hard_state(bytes: &[u8]) -> Result<HardState, String> {
    match parse(bytes) {
        Ok((Record::HardState(hs), n)) if n == bytes.len() => Ok(hs),
        Ok((Record::HardState(_), n)) => Err(format!("{} stray bytes after the hard state", bytes.len() - n)),
        Ok((Record::Entry(_), _)) => Err("holds an entry instead of a hard state".into()),
        Err(bad) => Err(describe(&bad)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::EntryData;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: EntryData::Command(data.to_vec()) }
    }

    fn log_bytes(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        encode_hard_state(&mut buf, &HardState { term: 3, vote: Some(2), commit: 0 });
        for i in 1..=n {
            offsets.push(buf.len());
            encode_entry(&mut buf, &entry(i, 3, &[i as u8; 40])).unwrap();
        }
        (buf, offsets)
    }

    #[test]
    fn round_trip() {
        let (buf, offsets) = log_bytes(5);
        let s = scan(&buf, Path::new("x"), true).unwrap();
        assert_eq!(s.records.len(), 6);
        assert_eq!(s.end as usize, buf.len());
        assert!(s.torn.is_none());
        assert_eq!(s.records[3].0 as usize, offsets[2]);
        assert_eq!(s.records[3].1, Record::Entry(entry(3, 3, &[3; 40])));
    }

    #[test]
    fn zero_padding_is_the_end() {
        let (mut buf, _) = log_bytes(3);
        let end = buf.len();
        buf.resize(end + 4096, 0);
        let s = scan(&buf, Path::new("x"), false).unwrap();
        assert_eq!(s.end as usize, end);
        assert!(s.torn.is_none());
    }

    #[test]
    fn every_cut_of_the_last_record_is_torn() {
        let (buf, offsets) = log_bytes(3);
        let last = offsets[2];
        for cut in last + 1..buf.len() {
            // The file ends at the cut, or the rest is zeros (preallocated segment).
            let mut zeroed = buf.clone();
            zeroed[cut..].fill(0);
            zeroed.resize(buf.len() + 100, 0);
            for bytes in [&buf[..cut], &zeroed[..]] {
                let s = scan(bytes, Path::new("x"), true).unwrap();
                assert_eq!(s.records.len(), 3, "cut at {cut}");
                assert_eq!(s.end as usize, last);
                assert_eq!(s.torn.unwrap().offset as usize, last);
            }
            assert!(scan(&buf[..cut], Path::new("x"), false).is_err());
        }
    }

    #[test]
    fn flipped_bit_in_last_record_is_corrupt() {
        let (buf, offsets) = log_bytes(3);
        for pos in offsets[2]..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[pos] ^= 1 << bit;
                b.resize(buf.len() + 200, 0);
                match scan(&b, Path::new("x"), true) {
                    Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset as usize, offsets[2]),
                    other => panic!("flip at {pos} bit {bit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn damage_before_the_tail_is_corrupt() {
        let (mut buf, offsets) = log_bytes(3);
        buf[offsets[1] + 10] ^= 0x10;
        match scan(&buf, Path::new("x"), true) {
            Err(StorageError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset as usize, offsets[1]);
                assert!(reason.contains("valid record follows"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_in_padding_is_torn() {
        let (mut buf, _) = log_bytes(2);
        let end = buf.len();
        buf.resize(end + 1000, 0);
        buf[end + 500] = 0x40;
        let s = scan(&buf, Path::new("x"), true).unwrap();
        assert_eq!(s.end as usize, end);
        assert_eq!(s.torn.unwrap().bytes, 501);
    }
}
