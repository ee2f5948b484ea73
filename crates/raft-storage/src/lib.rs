//! # raft-storage: what a node keeps on disk, and how it comes back after a crash
//!
//! A node's durable state is its hard state (term, vote, commit index), its log, and its
//! newest snapshot. [`Storage`] keeps all three under one node directory, holds that
//! directory locked (`flock`) so that two processes never share it, and on
//! [`Storage::open`] rebuilds a [`raft_core::Restored`] from whatever a crash left behind.
//!
//! ## Driving it
//!
//! ```text
//!   let (mut storage, recovery) = Storage::open(dir, StorageOptions::default())?;
//!   log every line of recovery.notes; start raft-core from recovery.restored
//!   each turn:  storage.receive_chunk(..) for each received snapshot chunk
//!               storage.finish_received(&meta)? -> a reader to verify it with
//!               if let Some(m) = rd.snapshot { storage.install_snapshot(&m, &hard_state)? }
//!               storage.persist(rd.hard_state.as_ref(), &rd.entries)?   // one write, one fdatasync
//!               ... only now send the messages that promise durable state
//!               a snapshot chunk to send: storage.snapshot_chunk(&meta, offset, len)?
//!   compaction: storage.begin_compaction(&meta, &|w| state.write_to(w))?  // a forked writer
//!               each turn: storage.poll_compaction(false)? -> Some(Compaction::Done ..)
//!   restart:    storage.snapshot_reader()? streams the snapshot, checksum checked
//! ```
//!
//! Any error from a method that writes leaves the storage *poisoned*: after a failed
//! write or fsync nobody knows what is on disk (the kernel may have dropped the dirty
//! pages), so every later call returns [`StorageError::Poisoned`] and the node must
//! restart, which re-reads the disk.
//!
//! ## Files
//!
//! ```text
//!   node-<id>/                                   flock'ed while open
//!     wal/00000000000000000001.log               segment: records, named by its first index
//!     wal/00000000000000004097.log               ... the last one is appended to
//!     wal/hardstate                              hard state, written before log records are cut away
//!     snap/00000000000000004000-00000000000000000003.snap   newest snapshot: <index>-<term>
//! ```
//!
//! A segment is named by the index of its first entry, zero padded, so `ls` shows the
//! log's order and any gap. A new segment starts when the next batch would take the
//! active one past [`StorageOptions::segment_bytes`]; it is preallocated with `fallocate`
//! so that appends inside it change no file size and `fdatasync` has only data to flush.
//! The end of the log inside a segment is therefore found by reading: the records stop
//! at a zero header followed only by zeros (or at the end of the file).
//!
//! ## Records
//!
//! `u32 len | u32 crc | payload | kind`, little endian, where `len` counts payload and
//! kind byte and `crc` is the CRC32 of those bytes. The payload is a bincode 2 (serde)
//! [`raft_core::Entry`] or [`raft_core::HardState`]. The kind byte comes *last* and is
//! never zero: a complete record never ends in a zero byte, a torn one in a preallocated
//! segment always does. Lengths are checked against [`MAX_RECORD_BYTES`] before anything
//! is allocated.
//!
//! The hard state travels in the WAL as a record, so one `fdatasync` covers a turn's hard
//! state and entries together. Every new segment begins with a hard-state record, so
//! deleting old segments never loses it. On recovery the newest hard state wins (terms
//! only grow, a vote once cast stays, the commit index only grows).
//!
//! ## Writes and their cost
//!
//! * [`Storage::persist`]: one `pwrite` of a reused buffer and one `fdatasync`.
//! * A conflict (`entries[0].index <= last_index`): the newest hard state goes to
//!   `wal/hardstate` (temp, fsync, rename, fsync dir) because the records cut away may
//!   hold it; later segments are deleted, newest first; the segment holding the conflict
//!   is truncated at that entry's record and fsynced; only then is the batch written. A
//!   few fsyncs more, on a rare path, so that a crash anywhere in between leaves a prefix
//!   of the old log or the new one, never old records behind new ones.
//! * [`Storage::begin_compaction`]: a forked child streams the snapshot into a temporary
//!   file, syncing every few MiB, fsyncs it, renames it into place, fsyncs the directory,
//!   then deletes the whole segments below it (oldest first) and the snapshots retired
//!   earlier; [`Storage::poll_compaction`] only updates the bookkeeping. Nothing is
//!   rewritten, and the caller's thread waits for no write, fsync or unlink.
//!   [`Storage::compact`] does the same in the caller's thread (tests, tools).
//! * [`Storage::install_snapshot`]: the received snapshot, already written and sealed
//!   under a temporary name, is renamed into place after the hard state is saved; every
//!   segment is deleted (newest first) and a fresh one started at `snapshot index + 1`.
//! * Snapshots are never held in memory whole: [`SnapshotReader`] streams one (checking
//!   the CRC as its last byte is read), [`Storage::snapshot_chunk`] reads one chunk.
//!
//! ## Recovery rules
//!
//! 1. The newest snapshot file is checked (magic, lengths, name against contents, and the
//!    CRC by streaming it once); older ones and temporaries are removed. A damaged snapshot is
//!    [`StorageError::Corrupt`]: it was fsynced before its rename, so no crash explains it.
//! 2. Segments wholly covered by the snapshot are removed. The oldest remaining one must
//!    start at or below `snapshot index + 1`, else [`StorageError::Gap`].
//! 3. Segments are read in order. A segment's first entry must be the index in its name
//!    (`Corrupt` for a copied or renamed file); each must start right after the previous
//!    one ends ([`StorageError::MissingSegment`] for a hole, `Corrupt` for an overlap);
//!    within a segment entries must be consecutive, with terms that never fall.
//! 4. A damaged record in the *last* segment with nothing valid after it, that is visibly
//!    incomplete (the file ends inside it, or its last byte is zero) and whose checksum
//!    fits no other length, is a torn write: it is cut away and reported in
//!    [`Recovery::notes`]. Any other damage anywhere is `Corrupt`, naming file and offset:
//!    a flipped bit, even in the final record, stops the node rather than silently
//!    dropping an entry whose `persist` returned.
//! 5. Entries at or below the snapshot index are skipped. If the log holds the snapshot's
//!    index with another term, a snapshot install was interrupted before it discarded the
//!    log: the entries after it are discarded, with a note.
//! 6. The commit index is clamped to the last index (a torn batch can keep its hard state
//!    and lose its entries) and raised to the snapshot index.
//!
//! What recovery cannot see: a deleted *last* segment leaves a shorter log that looks
//! whole (no manifest records how long the log was). And after a power loss that writes
//! one batch's pages out of order, a valid record may follow a hole: recovery then
//! refuses to start, which is safe but needs an operator. Otherwise, acknowledged data is
//! never served wrong and never dropped silently: every damaged byte that could hold it
//! stops the node with the file and offset.
//!
//! ## Invariants (asserted where established and where relied on)
//!
//! * Segments are contiguous: each starts at the previous one's last index + 1.
//! * The log after the snapshot is contiguous and its terms never fall.
//! * `persist` gets entries that follow the log (or conflict above the snapshot); a
//!   compaction never passes the log's end; snapshots never go backwards.

mod background;
mod error;
pub mod fuzz;
mod record;
mod snapshot;
mod storage;
mod wal;

pub use background::Compaction;
pub use error::StorageError;
pub use record::MAX_RECORD_BYTES;
pub use snapshot::SnapshotReader;
pub use storage::{Storage, StorageStats, MIN_SEGMENT_BYTES};

use error::IoContext;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Default size of a WAL segment: large enough that starting segments is rare, small
/// enough that compaction frees space in useful steps.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// How a [`Storage`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// `fdatasync` each [`Storage::persist`] batch. Off only for demos and fast tests: a
    /// crash of the machine (not just the process) can then lose acknowledged writes.
    /// Snapshots, truncations and new segments are always synced.
    pub fsync: bool,
    /// Start a new segment when the next batch would take the active one past this size.
    pub segment_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { fsync: true, segment_bytes: DEFAULT_SEGMENT_BYTES }
    }
}

/// What [`Storage::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The state to start raft-core from.
    pub restored: raft_core::Restored,
    /// One human-readable line per thing recovery did or found, for the node log: e.g.
    /// "truncated torn record at wal/00000000000000000001.log offset 4096 (37 bytes)",
    /// "recovered 1234 entries, snapshot at 1000".
    pub notes: Vec<String>,
}

/// Creates `path` and every missing parent (mode 0700), fsyncing each new directory's
/// parent right after the `mkdir`, so the new entry survives a power cut: a node that
/// voted and acknowledged entries must not come back to a missing `node-N/` or `wal/`.
/// Returns the parents that were fsynced, outermost first (empty when `path` existed).
/// raft-supervisor uses it for `<dir>` and `node-N/`; [`Storage::open`] for the node's
/// directories.
pub fn create_dir_durable(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut synced = Vec::new();
    create_dir_durable_into(path, &mut synced)?;
    Ok(synced)
}

fn create_dir_durable_into(path: &Path, synced: &mut Vec<PathBuf>) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(Error::new(ErrorKind::AlreadyExists, format!("{} is not a directory", path.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_durable_into(parent, synced)?;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        // Made by someone else meanwhile; its creator syncs it.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    File::open(parent)?.sync_all()?;
    synced.push(parent.to_path_buf());
    Ok(())
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &File, path: &Path) -> Result<(), StorageError> {
    dir.sync_all().at(path)
}
