//! Helpers shared by the storage tests.
#![allow(dead_code)]

use raft_core::{Entry, EntryData, HardState, Snapshot, SnapshotMeta};
use raft_storage::{Recovery, Storage, StorageError, StorageOptions};
use std::path::{Path, PathBuf};

/// Small segments, so a few dozen entries cross several segment boundaries.
pub const SMALL_SEGMENTS: StorageOptions = StorageOptions { fsync: false, segment_bytes: 1024 };

pub fn entry(index: u64, term: u64) -> Entry {
    // 100 bytes of data that never end a record in zero and vary per entry.
    let data = (0..100u64).map(|i| (index.wrapping_mul(31).wrapping_add(i * 7) % 251 + 1) as u8).collect();
    Entry { index, term, data: EntryData::Command(data) }
}

pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

pub fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

pub fn snap(index: u64, term: u64, data: &[u8]) -> Snapshot {
    Snapshot { meta: SnapshotMeta { index, term, voters: vec![1, 2, 3], learners: vec![] }, data: data.to_vec() }
}

pub fn open(dir: &Path, opts: StorageOptions) -> (Storage, Recovery) {
    match Storage::open(dir, opts) {
        Ok(x) => x,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

pub fn reopen(dir: &Path, opts: StorageOptions) -> Result<Recovery, StorageError> {
    Storage::open(dir, opts).map(|(_, r)| r)
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("snap")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Copies a node directory (to run several recoveries from one written state).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
