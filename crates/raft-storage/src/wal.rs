//! Files of the `wal/` directory: segment names, creation, preallocation, the hard-state file.

use crate::error::{IoContext, StorageError};
use crate::fsync_dir;
use crate::record;
use raft_core::{HardState, Index};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const SEGMENT_SUFFIX: &str = ".log";
pub(crate) const HARD_STATE_FILE: &str = "hardstate";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `<first index, 20 digits>.log`: names sort like the log, and a gap shows.
pub(crate) fn segment_name(first: Index) -> String {
    format!("{first:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<Index> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Reserves `len` bytes of disk for `file` (and extends it with zeros to `len`). Writes
/// into reserved space change no file size, so `fdatasync` has no size to commit.
/// Best effort: on file systems without `fallocate` the segment simply grows.
pub(crate) fn preallocate(file: &File, len: u64) {
    use nix::fcntl::{fallocate, FallocateFlags};
    let Ok(len) = i64::try_from(len) else { return };
    let _ = fallocate(file.as_raw_fd(), FallocateFlags::empty(), 0, len);
}

/// The `wal/` directory, open for fsyncs.
pub(crate) struct WalDir {
    pub path: PathBuf,
    pub file: File,
    /// fsyncs made on the directory and the hard-state file, for [`crate::StorageStats`].
    pub syncs: std::cell::Cell<u64>,
}

impl WalDir {
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.syncs.set(self.syncs.get() + 1);
        fsync_dir(&self.file, &self.path)
    }

    /// Creates segment `first` (it must not exist), preallocates it and makes its
    /// directory entry durable. The caller writes its first record.
    pub(crate) fn create_segment(&self, first: Index, prealloc: u64) -> Result<(PathBuf, File), StorageError> {
        let path = self.path.join(segment_name(first));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).at(&path)?;
        preallocate(&file, prealloc);
        self.sync()?;
        Ok((path, file))
    }

    /// Replaces the hard-state file atomically (temp name, fsync, rename, fsync dir).
    /// Used before the WAL records that hold the newest hard state are cut away.
    pub(crate) fn write_hard_state_file(&self, hs: &HardState) -> Result<(), StorageError> {
        let path = self.path.join(HARD_STATE_FILE);
        let tmp = self.path.join(format!("{HARD_STATE_FILE}{TMP_SUFFIX}"));
        let mut buf = Vec::new();
        record::encode_hard_state(&mut buf, hs);
        let file = File::create(&tmp).at(&tmp)?;
        file.write_all_at(&buf, 0).at(&tmp)?;
        self.syncs.set(self.syncs.get() + 1);
        file.sync_all().at(&tmp)?;
        drop(file);
        fs::rename(&tmp, &path).at(&path)?;
        self.sync()
    }

    /// Reads the hard-state file, if there is one.
    pub(crate) fn read_hard_state_file(&self) -> Result<Option<HardState>, StorageError> {
        let path = self.path.join(HARD_STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                record::decode_single_hard_state(&bytes).map(Some).map_err(|why| StorageError::corrupt(&path, 0, why))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    /// Removes files, in the order given, then fsyncs the directory once.
    pub(crate) fn remove_files<'a>(&self, paths: impl IntoIterator<Item = &'a Path>) -> Result<(), StorageError> {
        let mut any = false;
        for p in paths {
            match fs::remove_file(p) {
                // Already gone: a background snapshot writer removed the segments its
                // snapshot covers (see `background`), and recovery accepts either way.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.at(p)?,
            }
            any = true;
        }
        if any {
            self.sync()?;
        }
        Ok(())
    }
}

/// A directory listing of `wal/`.
pub(crate) struct Listing {
    /// Segments sorted by first index.
    pub segments: Vec<(Index, PathBuf)>,
    /// Temporary files left by a crash (to remove).
    pub temps: Vec<PathBuf>,
    /// Files that are none of ours (left alone).
    pub unknown: Vec<PathBuf>,
}

pub(crate) fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut l = Listing { segments: Vec::new(), temps: Vec::new(), unknown: Vec::new() };
    for ent in fs::read_dir(dir).at(dir)? {
        let ent = ent.at(dir)?;
        let name = ent.file_name();
        let path = ent.path();
        let Some(name) = name.to_str() else {
            l.unknown.push(path);
            continue;
        };
        if let Some(first) = parse_segment_name(name) {
            l.segments.push((first, path));
        } else if name.ends_with(TMP_SUFFIX) {
            l.temps.push(path);
        } else if name != HARD_STATE_FILE {
            l.unknown.push(path);
        }
    }
    l.segments.sort();
    Ok(l)
}
