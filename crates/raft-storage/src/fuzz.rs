//! Fuzz targets: what recovery reads from disk, fed arbitrary bytes. Each target must
//! return (an `Ok` or a clean error), never panic, whatever the bytes; the proptests in
//! `tests/fuzz.rs` and the cargo-fuzz targets in the workspace's `fuzz/` both call these.
//!
//! * [`wal_segment`]: one segment's bytes through the record scanner, as the last
//!   segment (a torn tail is allowed) and as an earlier one (any damage is corrupt).
//! * [`hard_state_file`]: the `wal/hardstate` file's bytes.
//! * [`snapshot_file`]: a snapshot file's bytes through the checked reader.
//! * [`open_with_segment`] and [`open_with_snapshot`]: the same bytes written into a node
//!   directory, then [`Storage::open`]: the whole recovery path, files and all.

use crate::record;
use crate::{snapshot, Storage, StorageOptions};
use raft_core::{Entry, EntryData, HardState};
use std::path::Path;

/// Scans `data` as a WAL segment. Whatever it returns is checked for shape: records
/// lie within the bytes, in increasing offsets, and the end is not past the data.
pub fn wal_segment(data: &[u8]) {
    for is_last in [true, false] {
        if let Ok(scanned) = record::scan(data, Path::new("fuzz.log"), is_last) {
            assert!(scanned.end as usize <= data.len(), "end {} past {} bytes", scanned.end, data.len());
            let mut prev = None;
            for (off, _) in &scanned.records {
                assert!(*off < scanned.end && prev.is_none_or(|p| p < *off), "record offsets out of order");
                prev = Some(*off);
            }
            if let Some(t) = &scanned.torn {
                assert!(is_last && t.offset == scanned.end && t.offset + t.bytes <= data.len() as u64);
            }
        }
    }
}

/// Decodes `data` as the `wal/hardstate` file.
pub fn hard_state_file(data: &[u8]) {
    let _ = record::decode_single_hard_state(data);
}

/// Reads `data` as the snapshot file `<1>-<1>.snap` (written to a temporary file, since
/// snapshots are streamed from files); a snapshot that reads has that index and term,
/// and its data fits in the file.
pub fn snapshot_file(data: &[u8]) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("raft-storage-fuzz-{}-{n}.snap", std::process::id()));
    std::fs::write(&path, data).expect("the temp dir is writable");
    let result = snapshot::read(&path, 1, 1);
    let _ = std::fs::remove_file(&path);
    if let Ok(s) = result {
        assert_eq!((s.meta.index, s.meta.term), (1, 1));
        assert!(s.data.len() <= data.len());
    }
}

/// A valid segment starting at index 1 with a hard state and `n` entries of term 1, for
/// seeding mutations (what a real disk holds is mostly valid records).
pub fn valid_segment(n: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    record::encode_hard_state(&mut buf, &HardState { term: 1, vote: Some(1), commit: 0 });
    for index in 1..=n {
        let data = EntryData::Command(vec![index as u8; (index % 7) as usize]);
        record::encode_entry(&mut buf, &Entry { index, term: 1, data }).expect("small entry encodes");
    }
    buf
}

/// A valid snapshot file `<1>-<1>.snap` holding `data`, for seeding mutations.
pub fn valid_snapshot_file(dir: &Path, data: &[u8]) -> std::path::PathBuf {
    let meta = raft_core::SnapshotMeta { index: 1, term: 1, voters: vec![1, 2, 3], learners: vec![] };
    let snap = raft_core::Snapshot { meta, data: data.to_vec() };
    let dir_file = std::fs::File::open(dir).expect("open snapshot dir");
    snapshot::write(&dir_file, dir, &snap).expect("write snapshot");
    dir.join(snapshot::file_name(1, 1))
}

/// Writes `data` as the only WAL segment (first index 1) of a fresh node directory
/// under `dir`, then opens it. A recovered log is checked for shape.
pub fn open_with_segment(dir: &Path, data: &[u8]) {
    let wal = dir.join("wal");
    std::fs::create_dir_all(&wal).expect("create wal dir");
    std::fs::write(wal.join(crate::wal::segment_name(1)), data).expect("write segment");
    open_and_check(dir);
}

/// Writes `data` as the snapshot file `<1>-<1>.snap` of a fresh node directory under
/// `dir`, then opens it.
pub fn open_with_snapshot(dir: &Path, data: &[u8]) {
    let snap = dir.join("snap");
    std::fs::create_dir_all(&snap).expect("create snap dir");
    std::fs::write(snap.join(snapshot::file_name(1, 1)), data).expect("write snapshot");
    open_and_check(dir);
}

fn open_and_check(dir: &Path) {
    let opts = StorageOptions::default();
    if let Ok((storage, recovery)) = Storage::open(dir, opts) {
        let r = &recovery.restored;
        let snap = r.snapshot.as_ref().map_or(0, |s| s.index);
        for (k, e) in r.entries.iter().enumerate() {
            assert_eq!(e.index, snap + 1 + k as u64, "recovered log is not contiguous");
        }
        assert_eq!(storage.last_index(), r.entries.last().map_or(snap, |e| e.index));
    }
}
