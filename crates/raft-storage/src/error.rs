//! Operating errors of the storage layer: bad disk contents, I/O failures, a busy directory.
//! Broken invariants (a caller handing over non-contiguous entries, say) are `assert!`s instead.

use raft_core::Index;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a node's files. Every variant names the file it is
/// about; the ones about damaged contents name the byte offset as well, so an operator can
/// look at the spot with `xxd -s OFFSET FILE`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A system call on `path` failed (disk full, permissions, I/O error...).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The bytes at `offset` of `file` are damaged in a way a crash cannot explain (a
    /// checksum failure before the tail, an entry out of sequence, an unreadable snapshot).
    /// The node must not start on this log.
    #[error(
        "{} is corrupt at offset {offset}: {reason}; refusing to start on damaged data \
         (wiping the node makes it rejoin empty, which forgets its vote: do it only with a healthy majority)",
        file.display()
    )]
    Corrupt { file: PathBuf, offset: u64, reason: String },

    /// A segment is missing from the middle of the log: `file` starts at index `found`,
    /// but the segment before it, `previous`, ends at `expected - 1`.
    #[error(
        "WAL segment missing before {} (offset 0): it starts at index {found}, but {} ends at index {}; \
         entries {expected}..={} are gone, refusing to start",
        file.display(), previous.display(), expected - 1, found - 1
    )]
    MissingSegment { file: PathBuf, previous: PathBuf, expected: Index, found: Index },

    /// The log does not continue the snapshot: the snapshot ends at `snapshot_index`, but
    /// the oldest segment, `file`, starts at `first_index > snapshot_index + 1`.
    #[error(
        "the log does not continue the snapshot: the snapshot ends at index {snapshot_index}, \
         but the oldest WAL segment {} (offset 0) starts at index {first_index}; refusing to start",
        file.display()
    )]
    Gap { file: PathBuf, snapshot_index: Index, first_index: Index },

    /// Another process (or another `Storage` in this one) holds the node directory.
    #[error("{} is locked by another process: is a node already running on this directory?", path.display())]
    Locked { path: PathBuf },

    /// An entry too large to be stored as one WAL record. Nothing was written.
    #[error("entry {index} encodes to {bytes} bytes, over the WAL record limit of {limit} bytes")]
    EntryTooLarge { index: Index, bytes: usize, limit: usize },

    /// An earlier write or fsync failed, so what is on disk is unknown (after a failed
    /// fsync the kernel may have dropped the dirty pages). Only a restart, which re-reads
    /// the disk, can continue safely.
    #[error("storage unusable after an earlier failure ({reason}); restart the node to recover from disk")]
    Poisoned { reason: String },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt { file: file.into(), offset, reason: reason.into() }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
