//! [`Storage`]: open and recover, persist, truncate, compact, install snapshots.

use crate::background::{self, Compaction};
use crate::error::{IoContext, StorageError};
use crate::record::{self, Record};
use crate::snapshot::{self, Layout, SnapshotReader};
use crate::wal::{self, WalDir};
use crate::{fsync_dir, Recovery, StorageOptions};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use raft_core::{Entry, HardState, Index, Restored, Snapshot, SnapshotMeta, Term};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Smallest accepted `segment_bytes`: room for a hard state and a few entries. Tests use
/// tiny segments to cross segment boundaries often.
pub const MIN_SEGMENT_BYTES: u64 = 256;

/// Counts of system calls on the log since [`Storage::open`], for benchmarks and status:
/// in the steady state every batch costs one write and one sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Batches written by [`Storage::persist`] (and the hard-state record of a log reset).
    pub batches: u64,
    /// `pwrite` calls on segments.
    pub writes: u64,
    /// `fsync`/`fdatasync` calls on segments, the hard-state file and the WAL directory
    /// (snapshot files not included).
    pub syncs: u64,
}

/// Where an entry's record starts, and its term (to check appends and truncations).
#[derive(Clone, Copy, Debug)]
struct Pos {
    offset: u64,
    term: Term,
}

/// One segment file: its name's index and the entries it holds (from `first` on).
#[derive(Debug)]
struct Segment {
    first: Index,
    path: PathBuf,
    entries: Vec<Pos>,
}

impl Segment {
    /// Index of the last entry in this segment, or `first - 1` when it holds none.
    fn last(&self) -> Index {
        self.first + self.entries.len() as u64 - 1
    }
}

/// The node's durable state: WAL segments, hard state and snapshots under one locked
/// directory. See the crate docs for the layout and the recovery rules.
pub struct Storage {
    node_dir: PathBuf,
    snap_dir: PathBuf,
    snap_dir_file: File,
    wal: WalDir,
    opts: StorageOptions,
    /// Sorted by `first`, contiguous, never empty; the last one is being appended to.
    segments: Vec<Segment>,
    /// The last segment, open for writing.
    active: File,
    /// Offset in `active` just past the last record: where the next write goes.
    end: u64,
    /// The newest hard state written.
    hard_state: HardState,
    /// The current snapshot (index 0: none).
    snapshot: SnapshotMeta,
    snapshot_path: Option<PathBuf>,
    /// The current snapshot's file, open for reading chunks, and where its data lies.
    snapshot_file: Option<(File, Layout)>,
    /// A snapshot arriving from the leader: being written, or sealed and waiting to be
    /// verified and installed.
    incoming: Option<Incoming>,
    /// The forked writer of a local snapshot, while it runs.
    writer: Option<background::Writer>,
    /// A compaction whose writer could not be forked, to report at the next poll.
    fork_failed: Option<Compaction>,
    /// Snapshot files replaced by a background compaction and closed here since: the next
    /// writer removes them (see the `background` module for why not now).
    retired: Vec<PathBuf>,
    /// Reused for every batch, so appending allocates nothing in the steady state.
    buf: Vec<u8>,
    /// Set when a write or fsync failed: what is on disk is then unknown.
    poisoned: Option<String>,
    /// System calls on the log (the directory's fsyncs are counted in `wal`).
    stats: StorageStats,
    /// Held for the lifetime of the storage: one process per node directory.
    _lock: Flock<File>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("node_dir", &self.node_dir)
            .field("first_index", &self.first_index())
            .field("last_index", &self.last_index())
            .field("hard_state", &self.hard_state)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// A snapshot arriving from the leader.
enum Incoming {
    Writing(SnapshotMeta, snapshot::FileWriter),
    Sealed(SnapshotMeta, snapshot::Sealed),
}

/// Creates `path` (and missing parents), each fsynced into its parent; notes what it made.
fn create_dir(path: &Path, created: &mut Vec<PathBuf>) -> Result<(), StorageError> {
    let synced = crate::create_dir_durable(path).at(path)?;
    // Each fsynced parent had exactly one new child: the next one down the path.
    created.extend(
        synced.iter().map(|parent| {
            path.ancestors().find(|a| a.parent() == Some(parent.as_path())).unwrap_or(path).to_path_buf()
        }),
    );
    Ok(())
}

/// Orders hard states by recency: a node's term never falls, a vote once cast in a term
/// stays, and the commit index only grows. Two different votes in one term is damage.
fn newer_hard_state(a: HardState, b: HardState) -> Result<HardState, String> {
    if a.term == b.term && a.vote.is_some() && b.vote.is_some() && a.vote != b.vote {
        return Err(format!("two different votes in term {}: {:?} and {:?}", a.term, a.vote, b.vote));
    }
    let key = |h: &HardState| (h.term, h.vote.is_some(), h.commit);
    Ok(if key(&b) >= key(&a) { b } else { a })
}

impl Storage {
    /// Opens (creating if needed) `node_dir/wal` and `node_dir/snap`, takes an exclusive
    /// `flock` on `node_dir` (a second process gets [`StorageError::Locked`]), and
    /// recovers. See the crate docs for what recovery accepts and what it refuses.
    ///
    /// Recovery checks everything before it deletes anything (beyond crash leftovers that
    /// are never data: temporaries and older snapshots), so a damaged directory is
    /// refused intact. Each numbered step is one function below.
    pub fn open(node_dir: &Path, opts: StorageOptions) -> Result<(Storage, Recovery), StorageError> {
        assert!(
            opts.segment_bytes >= MIN_SEGMENT_BYTES,
            "segment_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
            opts.segment_bytes
        );
        let mut created = Vec::new();
        let Dirs { lock, wal, snap_dir, snap_dir_file } = lock_and_create_dirs(node_dir, &mut created)?;
        let rel = |p: &Path| p.strip_prefix(node_dir).unwrap_or(p).display().to_string();
        let mut notes = Vec::new();
        if !created.is_empty() {
            let names: Vec<String> = created.iter().map(|p| p.display().to_string()).collect();
            notes.push(format!("created {} (each fsynced into its parent)", names.join(", ")));
        }

        // 1. The newest snapshot; older ones and temporaries are leftovers of a crash.
        let (snapshot_file, snapshot_path) = recover_snapshot(&snap_dir, &snap_dir_file, &mut notes, &rel)?;
        let snapshot = snapshot_file.as_ref().map(|(_, layout)| layout.meta.clone());
        let snap_meta = snapshot.clone().unwrap_or_default();
        let s = snap_meta.index;

        // 2. The hard-state file and the segment list.
        let (hard_state, listed) = read_hard_state_and_list(&wal, &mut notes, &rel)?;

        // 3. Segments wholly covered by the snapshot are leftovers of a compaction.
        let (covered, segs) = split_covered_segments(listed, s)?;

        // 4. Parse the segments in order, checking every link of the chain.
        let Parsed { segments, mut entries, hard_state, term_at_snapshot, tail } =
            parse_segments(&segs, s, hard_state, &rel)?;

        // 5. Does the log continue the snapshot?
        let need_reset =
            check_log_continues_snapshot(&snap_meta, &segments, &mut entries, term_at_snapshot, &mut notes);

        // 6. A torn final record: note it and cut it away (unless the log is reset anyway).
        let (active_end, torn_tail) = note_torn_tail(tail, &segments, &mut notes, &rel);

        // 7. The commit index lies within the recovered log and at or after the snapshot.
        let (hard_state, last_index) = clamp_commit(hard_state, &entries, s, &mut notes);

        // 8. Only now that the rest checked out: remove the segments the snapshot covers.
        for p in &covered {
            notes.push(format!("removed {} (covered by the snapshot at {s})", rel(p)));
        }
        wal.remove_files(covered.iter().map(PathBuf::as_path))?;

        // 9. The segment to append to: a fresh one after a reset, else the last one.
        let mut segments = segments;
        let (active, end) = if need_reset {
            reset_segments(&wal, &mut segments, s, &hard_state, opts.segment_bytes)?
        } else {
            reopen_last_segment(&segments, active_end, torn_tail, opts.segment_bytes)?
        };

        let mut storage = Storage {
            node_dir: node_dir.to_path_buf(),
            snap_dir,
            snap_dir_file,
            wal,
            opts,
            segments,
            active,
            end,
            hard_state,
            snapshot: snap_meta,
            snapshot_path,
            snapshot_file,
            incoming: None,
            writer: None,
            fork_failed: None,
            retired: Vec::new(),
            buf: Vec::new(),
            poisoned: None,
            stats: StorageStats::default(),
            _lock: lock,
        };
        if need_reset {
            // Every segment starts with the hard state, so dropping older ones never loses it.
            storage.write_batch(Some(&hard_state), &[], None)?;
        }
        assert_eq!(storage.last_index(), last_index, "recovery bookkeeping disagrees with the entries found");
        if let Some(e) = entries.first() {
            assert_eq!(e.index, s + 1, "restored log must start right after the snapshot");
        }

        notes.push(format!(
            "recovered {} entries, snapshot at {s}, last index {last_index}, term {} vote {} commit {}",
            entries.len(),
            hard_state.term,
            hard_state.vote.map_or("none".to_string(), |v| format!("n{v}")),
            hard_state.commit
        ));
        let restored = Restored { hard_state, snapshot, entries };
        Ok((storage, Recovery { restored, notes }))
    }

    /// One turn's durable write: an optional hard state and entries, in ONE write and ONE
    /// `fdatasync` (when `fsync` is on). If `entries[0].index <= last_index()`, the stored
    /// suffix from there on is cut away first (a conflict; this costs extra fsyncs, see
    /// the crate docs). Entries must be contiguous, start at most at `last_index() + 1`
    /// and above the snapshot, and not lower the term: anything else is a caller bug and
    /// panics.
    pub fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        let conflict = self.check_append(entries);
        if let Some(hs) = hard_state {
            // Terms never fall and a vote never changes within its term (Figure 2). The
            // commit index is not checked: it is a hint that recovery clamps anyway.
            let cur = self.hard_state;
            assert!(
                hs.term > cur.term || (hs.term == cur.term && (cur.vote.is_none() || hs.vote == cur.vote)),
                "persist: hard state {hs:?} goes back from the stored {cur:?}"
            );
        }
        self.write_batch(hard_state, entries, conflict)
    }

    /// Appends a chunk of a snapshot arriving from the leader to its temporary file; a
    /// chunk at offset 0 starts a new one (dropping any other). Nothing is synced: until
    /// [`Storage::finish_received`], a crash just loses it. Chunks must come in order (the
    /// core accepts only those); anything else is a caller bug and panics.
    pub fn receive_chunk(&mut self, meta: &SnapshotMeta, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.check_poisoned()?;
        if offset == 0 {
            self.discard_incoming();
            let mut w = snapshot::FileWriter::create(&self.snap_dir, meta, snapshot::INCOMING_SUFFIX)?;
            // Sealing then flushes a few MiB, not the whole snapshot, on the event loop.
            w.sync_incrementally();
            self.incoming = Some(Incoming::Writing(meta.clone(), w));
        }
        let Some(Incoming::Writing(m, w)) = &mut self.incoming else {
            panic!("receive_chunk: chunk at offset {offset} of {}@{} without a snapshot started", meta.index, meta.term)
        };
        assert!(m == meta && w.data_len() == offset, "receive_chunk: chunk out of order at offset {offset}");
        w.write_data(data)
    }

    /// The last chunk of the incoming snapshot arrived: writes its trailer and fsyncs it
    /// (still under its temporary name), and returns a reader over its data, so the
    /// caller can verify that it loads before [`Storage::install_snapshot`] makes it
    /// current.
    pub fn finish_received(&mut self, meta: &SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        self.check_poisoned()?;
        let Some(Incoming::Writing(m, w)) = self.incoming.take() else {
            panic!("finish_received: no snapshot {}@{} arriving", meta.index, meta.term)
        };
        assert_eq!(&m, meta, "finish_received: another snapshot is arriving");
        let sealed = w.seal()?;
        let (file, layout) = snapshot::inspect(&sealed.tmp, meta.index, meta.term)?;
        let reader = SnapshotReader::new(file, &sealed.tmp, &layout);
        self.incoming = Some(Incoming::Sealed(m, sealed));
        Ok(reader)
    }

    /// Drops an incoming snapshot (one that did not verify, or was abandoned).
    pub fn discard_incoming(&mut self) {
        match self.incoming.take() {
            Some(Incoming::Sealed(_, sealed)) => {
                let _ = fs::remove_file(&sealed.tmp); // recovery removes leftovers anyway
            }
            Some(Incoming::Writing(..)) | None => {} // the writer's Drop removes its file
        }
    }

    /// Installs the snapshot received from the leader ([`Storage::finish_received`], then
    /// verified by the caller) together with the hard state of the batch that carried
    /// it: first its term and vote (one WAL record, synced), then the snapshot is renamed
    /// into place (and the directory fsynced), then the log is discarded: it continues at
    /// `meta.index + 1`, after a hard-state record whose commit index is the snapshot's.
    /// A higher commit index in `hard_state` (the batch also carried entries after the
    /// snapshot) is stored with those entries, by the caller's next [`Storage::persist`].
    /// The snapshot it replaces is removed (older retired ones go with the next writer or
    /// at the next open).
    ///
    /// The order matters for a crash part-way. The snapshot's term is at most the
    /// batch's term, so with the hard state durable first, every state a crash can leave
    /// has a current term at or above the snapshot's, which recovery (and raft-core's
    /// restart checks) accept. Written the other way round, a crash after the rename left
    /// a snapshot newer than the stored term, and the node could never start again (the
    /// simulator found this; see raft-sim's regression seeds).
    pub fn install_snapshot(&mut self, meta: &SnapshotMeta, hard_state: &HardState) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.check_snapshot_order(meta);
        let Some(Incoming::Sealed(m, sealed)) = self.incoming.take() else {
            panic!("install_snapshot: snapshot {}@{} was not received and finished", meta.index, meta.term)
        };
        assert_eq!(&m, meta, "install_snapshot: another snapshot was received");
        // The term and vote first, but not the snapshot's commit index: until the
        // snapshot is durable, that index would point past the old log, and recovery
        // (which clamps a commit index to the log's end) would count the old log's
        // uncommitted tail as committed. (The simulator found this crash window.)
        let first = HardState { commit: hard_state.commit.min(self.hard_state.commit), ..*hard_state };
        if first != self.hard_state {
            self.persist(Some(&first), &[])?;
        }
        self.guard(|st| {
            let path = sealed.commit(&st.snap_dir_file, &st.snap_dir)?;
            st.snapshot_written(meta, path)?;
            st.reset_log()
        })
    }

    /// [`Storage::install_snapshot`] of a snapshot held in memory (tests, tools): receives
    /// it in one chunk, then installs it.
    pub fn install_snapshot_bytes(&mut self, snap: &Snapshot, hard_state: &HardState) -> Result<(), StorageError> {
        self.receive_chunk(&snap.meta, 0, &snap.data)?;
        drop(self.finish_received(&snap.meta)?);
        self.install_snapshot(&snap.meta, hard_state)
    }

    /// Local compaction, in the calling thread: writes `snap` (temp name, fsync, rename,
    /// fsync the directory), then drops the log up to `snap.meta.index` by deleting whole
    /// segments, never rewriting one. The segment holding `snap.meta.index` stays (its
    /// older entries are skipped on load). A node compacts with
    /// [`Storage::begin_compaction`] instead, off its event loop.
    pub fn compact(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.check_compaction(&snap.meta);
        self.guard(|st| {
            let path = snapshot::write(&st.snap_dir_file, &st.snap_dir, snap)?;
            st.compacted(&snap.meta, path)
        })
    }

    /// Starts a local compaction off the caller's thread: a forked child writes the
    /// snapshot `meta` with `write` (which streams the state machine's image, as it was at
    /// the fork, into the file) and fsyncs it, while the caller goes on. See the
    /// `background` module for why a fork. [`Storage::poll_compaction`] finishes it. One
    /// at a time: starting a second while one runs is a caller bug and panics.
    pub fn begin_compaction(
        &mut self,
        meta: &SnapshotMeta,
        write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        self.check_poisoned()?;
        assert!(self.writer.is_none(), "begin_compaction: a snapshot is already being written");
        self.check_compaction(meta);
        let covered = self.covered_segments(meta.index);
        let plan = background::Plan {
            snap_dir: &self.snap_dir,
            wal_dir: &self.wal.path,
            meta,
            retired: std::mem::take(&mut self.retired),
            covered: self.segments[..covered].iter().map(|seg| seg.path.clone()).collect(),
            lock_fd: self._lock.as_raw_fd(),
        };
        let firsts = self.segments[..covered].iter().map(|seg| seg.first).collect();
        let retired = plan.retired.clone();
        match background::spawn(plan, firsts, write) {
            Ok(w) => self.writer = Some(w),
            // No fork (memory, process limits): nothing changed; say so at the next poll
            // and let a later compaction try again, instead of stopping the node.
            Err(e) => {
                self.retired = retired;
                self.fork_failed = Some(Compaction::Failed { meta: meta.clone(), reason: e.to_string() });
            }
        }
        Ok(())
    }

    /// Whether a compaction started with [`Storage::begin_compaction`] is running.
    pub fn compacting(&self) -> Option<&SnapshotMeta> {
        self.writer.as_ref().map(|w| &w.meta)
    }

    /// Finishes a background compaction whose writer exited: the writer already put the
    /// snapshot in place durably and removed what it replaces (see the `background`
    /// module), so this only opens the new snapshot and updates the bookkeeping: no fsync,
    /// no unlink here. `None` while the writer runs (or none was started); with `block`,
    /// waits for it. An error (the new file cannot be opened) poisons the storage like
    /// after any failed write.
    pub fn poll_compaction(&mut self, block: bool) -> Result<Option<Compaction>, StorageError> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        if let Some(failed) = self.fork_failed.take() {
            return Ok(Some(failed));
        }
        let Some(w) = &self.writer else { return Ok(None) };
        let flags = if block { None } else { Some(WaitPidFlag::WNOHANG) };
        let status = match waitpid(w.pid, flags) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(s) => s,
            Err(Errno::EINTR) => return Ok(None),
            Err(e) => return Err(StorageError::io(&self.snap_dir, io::Error::from(e))),
        };
        let w = self.writer.take().expect("checked above");
        let (meta, took, tmp, path, covered) =
            (w.meta.clone(), w.started.elapsed(), w.tmp.clone(), w.path.clone(), w.covered.clone());
        let retired = w.retired.clone();
        std::mem::forget(w); // reaped: its Drop must not signal a pid that may be reused
                             // The child renames only a complete, fsynced file, so a file in place means the
                             // snapshot is whole, whatever the exit status (a kill after the rename).
        if !path.exists() {
            // Not removed by a writer that did not get that far: the next one will.
            self.retired.extend(retired);
            let _ = fs::remove_file(&tmp);
            let reason = match status {
                WaitStatus::Exited(_, code) => format!("the snapshot writer exited with status {code}"),
                other => format!("the snapshot writer ended: {other:?}"),
            };
            return Ok(Some(Compaction::Failed { meta, reason }));
        }
        if meta.index <= self.snapshot.index {
            // A snapshot installed from the leader meanwhile is newer: drop this one, by
            // the next writer (unlinking a file of the state's size here would stall).
            self.retired.push(path);
            return Ok(Some(Compaction::Stale { meta }));
        }
        self.check_poisoned()?;
        self.guard(|st| {
            let (file, layout) = snapshot::inspect(&path, meta.index, meta.term)?;
            let bytes = layout.data_len;
            st.snapshot = meta.clone();
            // The replaced file is still linked, so closing it here is cheap; the next
            // writer removes it.
            st.snapshot_file = Some((file, layout));
            if let Some(old) = st.snapshot_path.replace(path) {
                st.retired.push(old);
            }
            // The child removed these (or recovery will): only the bookkeeping is left.
            st.segments.retain(|seg| !covered.contains(&seg.first));
            assert!(!st.segments.is_empty(), "the segment being appended to is never covered");
            Ok(Some(Compaction::Done { meta: meta.clone(), bytes, took }))
        })
    }

    /// A reader over the current snapshot's data, checking its checksum at the end
    /// (`None` without a snapshot).
    pub fn snapshot_reader(&self) -> Result<Option<SnapshotReader>, StorageError> {
        let (Some((file, layout)), Some(path)) = (&self.snapshot_file, &self.snapshot_path) else {
            return Ok(None);
        };
        Ok(Some(SnapshotReader::new(file.try_clone().at(path)?, path, layout)))
    }

    /// Up to `len` bytes of the current snapshot's data from `offset`, and whether they
    /// reach its end: one InstallSnapshot chunk, read from the file when it is sent.
    /// `meta` must be the current snapshot (the core sends no other).
    pub fn snapshot_chunk(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<(Vec<u8>, bool), StorageError> {
        let (Some((file, layout)), Some(path)) = (&self.snapshot_file, &self.snapshot_path) else {
            panic!("snapshot_chunk: no snapshot to send")
        };
        assert_eq!(&layout.meta, meta, "snapshot_chunk: the core sends only the current snapshot");
        let data = snapshot::read_chunk(file, path, layout, offset, len)?;
        let done = offset.saturating_add(data.len() as u64) >= layout.data_len;
        Ok((data, done))
    }

    /// Bytes of the current snapshot's data (0 without one).
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_file.as_ref().map_or(0, |(_, l)| l.data_len)
    }

    /// The current snapshot read whole into memory (small snapshots: tests, tools).
    pub fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        match &self.snapshot_path {
            Some(path) => Ok(Some(snapshot::read(path, self.snapshot.index, self.snapshot.term)?)),
            None => Ok(None),
        }
    }

    fn check_compaction(&self, meta: &SnapshotMeta) {
        self.check_snapshot_order(meta);
        let s = meta.index;
        assert!(s <= self.last_index(), "compact: snapshot at {s} is past the last index {}", self.last_index());
        if let Some(t) = self.term_at(s) {
            assert_eq!(t, meta.term, "compact: the log has term {t} at {s}, the snapshot says {}", meta.term);
        }
    }

    /// How many segments, from the first, a snapshot at `s` wholly covers: every one
    /// whose successor starts at or below `s + 1` (the last segment is never covered).
    fn covered_segments(&self, s: Index) -> usize {
        (0..self.segments.len())
            .take_while(|&k| k + 1 < self.segments.len() && self.segments[k + 1].first <= s + 1)
            .count()
    }

    /// A local snapshot is durable at `path`: make it current and drop the segments it
    /// covers, oldest first (a crash part-way leaves a log that still starts at or below
    /// `index + 1`).
    fn compacted(&mut self, meta: &SnapshotMeta, path: PathBuf) -> Result<(), StorageError> {
        self.snapshot_written(meta, path)?;
        let covered = self.covered_segments(meta.index);
        self.wal.remove_files(self.segments[..covered].iter().map(|seg| seg.path.as_path()))?;
        self.segments.drain(..covered);
        Ok(())
    }

    /// The first index the log can hold: `snapshot index + 1` (1 without a snapshot).
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// The last index: of the newest entry, or of the snapshot when the log is empty.
    pub fn last_index(&self) -> Index {
        let last = self.segments.last().expect("there is always an active segment");
        last.last().max(self.snapshot.index)
    }

    /// The newest hard state written.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The current snapshot's metadata (index 0 when there is none).
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The node directory this storage holds locked.
    pub fn node_dir(&self) -> &Path {
        &self.node_dir
    }

    /// The WAL segment files, oldest first (the last one is being appended to).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Offset in the last segment where the next record will be written.
    pub fn wal_end(&self) -> u64 {
        self.end
    }

    /// Counts of writes and syncs on the log since [`Storage::open`].
    pub fn stats(&self) -> StorageStats {
        StorageStats { syncs: self.stats.syncs + self.wal.syncs.get(), ..self.stats }
    }

    // ---- internals ----

    fn check_poisoned(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(reason) => Err(StorageError::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Runs a step that touches the disk; a failure poisons the storage.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let r = f(self);
        if let Err(e) = &r {
            if !matches!(e, StorageError::EntryTooLarge { .. }) {
                self.poisoned = Some(e.to_string());
            }
        }
        r
    }

    fn check_snapshot_order(&self, meta: &SnapshotMeta) {
        assert!(
            meta.index >= self.snapshot.index,
            "snapshot at {} is older than the current one at {}",
            meta.index,
            self.snapshot.index
        );
    }

    /// Term of the entry at `index`, if the log (or the snapshot) knows it.
    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index < self.snapshot.index {
            return None;
        }
        let k = self.segments.partition_point(|s| s.first <= index).checked_sub(1)?;
        let seg = &self.segments[k];
        seg.entries.get((index - seg.first) as usize).map(|p| p.term)
    }

    /// Checks a batch against the log; returns the index to truncate from on a conflict.
    fn check_append(&self, entries: &[Entry]) -> Option<Index> {
        let first = entries.first()?.index;
        for w in entries.windows(2) {
            assert!(w[1].index == w[0].index + 1, "persist: entries not contiguous ({} then {})", w[0], w[1]);
            assert!(w[1].term >= w[0].term, "persist: terms go backwards ({} then {})", w[0], w[1]);
        }
        let last = self.last_index();
        assert!(
            first > self.snapshot.index,
            "persist: entry {first} is at or below the snapshot at {}; committed entries never conflict",
            self.snapshot.index
        );
        assert!(first <= last + 1, "persist: entry {first} leaves a gap after the last index {last}");
        let prev = self.term_at(first - 1).expect("the entry before a batch is in the log or is the snapshot");
        assert!(entries[0].term >= prev, "persist: entry {} follows term {prev}", entries[0]);
        (first <= last).then_some(first)
    }

    /// Encodes and writes one batch, truncating first on a conflict and starting a new
    /// segment when the active one is full.
    fn write_batch(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
        conflict: Option<Index>,
    ) -> Result<(), StorageError> {
        let new_hs = hard_state.copied().unwrap_or(self.hard_state);
        // After a truncation the WAL may have lost its newest hard-state record: rewrite it.
        let write_hs = hard_state.is_some() || conflict.is_some();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if write_hs {
            record::encode_hard_state(&mut buf, &new_hs);
        }
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(buf.len() as u64);
            if let Err(bytes) = record::encode_entry(&mut buf, e) {
                self.buf = buf;
                let limit = crate::MAX_RECORD_BYTES;
                return Err(StorageError::EntryTooLarge { index: e.index, bytes, limit });
            }
        }
        let result = self.guard(|st| {
            if let Some(i) = conflict {
                st.truncate_suffix(i, &new_hs)?;
            }
            let full = st.end + buf.len() as u64 > st.opts.segment_bytes;
            let active_has_entries = !st.segments.last().expect("active segment").entries.is_empty();
            if !entries.is_empty() && full && active_has_entries {
                if !write_hs {
                    let mut hs_rec = Vec::new();
                    record::encode_hard_state(&mut hs_rec, &new_hs);
                    let shift = hs_rec.len() as u64;
                    buf.splice(0..0, hs_rec);
                    offsets.iter_mut().for_each(|o| *o += shift);
                }
                st.start_segment(entries[0].index)?;
            }
            st.stats.writes += 1;
            st.active.write_all_at(&buf, st.end).at(&st.segments.last().expect("active").path)?;
            if st.opts.fsync {
                st.stats.syncs += 1;
                st.active.sync_data().at(&st.segments.last().expect("active").path)?;
            }
            st.stats.batches += 1;
            Ok(())
        });
        if result.is_ok() {
            let base = self.end;
            let seg = self.segments.last_mut().expect("active segment");
            for (e, off) in entries.iter().zip(&offsets) {
                assert_eq!(e.index, seg.last() + 1, "appended entry {} does not follow the log", e);
                seg.entries.push(Pos { offset: base + off, term: e.term });
            }
            self.end += buf.len() as u64;
            self.hard_state = new_hs;
        }
        self.buf = buf;
        result
    }

    /// Cuts the log back to `index - 1`: later segments are deleted (newest first) and
    /// the segment holding `index` is truncated at its record, durably, before the new
    /// entries are written. The newest hard state goes to the hard-state file first, since
    /// the records cut away may hold it.
    fn truncate_suffix(&mut self, index: Index, hs: &HardState) -> Result<(), StorageError> {
        // Not the batch's commit index: it may cover the new entries at `index..`, and
        // until the cut below is durable the old, never committed ones are still there;
        // recovery would count them as committed. The batch's record carries the rest.
        let hs = HardState { commit: hs.commit.min(index - 1), ..*hs };
        self.wal.write_hard_state_file(&hs)?;
        let k = self.segments.partition_point(|s| s.first <= index) - 1;
        if k + 1 < self.segments.len() {
            self.wal.remove_files(self.segments[k + 1..].iter().rev().map(|s| s.path.as_path()))?;
            self.segments.truncate(k + 1);
            let path = &self.segments[k].path;
            self.active = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        }
        let seg = &mut self.segments[k];
        let at = seg.entries[(index - seg.first) as usize].offset;
        seg.entries.truncate((index - seg.first) as usize);
        self.active.set_len(at).at(&seg.path)?;
        wal::preallocate(&self.active, self.opts.segment_bytes);
        self.stats.syncs += 1;
        self.active.sync_all().at(&seg.path)?;
        self.end = at;
        Ok(())
    }

    /// Closes the active segment (giving back its unused preallocation) and starts
    /// segment `first`.
    fn start_segment(&mut self, first: Index) -> Result<(), StorageError> {
        let old = &self.segments.last().expect("active segment").path;
        // Not synced: if the shrink is lost in a crash, the zeros read as padding.
        self.active.set_len(self.end).at(old)?;
        let (path, file) = self.wal.create_segment(first, self.opts.segment_bytes)?;
        self.segments.push(Segment { first, path, entries: Vec::new() });
        self.active = file;
        self.end = 0;
        Ok(())
    }

    /// Records a snapshot file as the current one and removes the previous file.
    fn snapshot_written(&mut self, meta: &SnapshotMeta, path: PathBuf) -> Result<(), StorageError> {
        if let Some(old) = self.snapshot_path.take() {
            if old != path {
                fs::remove_file(&old).at(&old)?;
                fsync_dir(&self.snap_dir_file, &self.snap_dir)?;
            }
        }
        let (file, layout) = snapshot::inspect(&path, meta.index, meta.term)?;
        self.snapshot = meta.clone();
        self.snapshot_file = Some((file, layout));
        self.snapshot_path = Some(path);
        Ok(())
    }

    /// Discards the whole log after a snapshot install: the log continues at
    /// `snapshot index + 1` in a fresh segment that starts with the hard state.
    fn reset_log(&mut self) -> Result<(), StorageError> {
        let next = self.snapshot.index + 1;
        self.wal.write_hard_state_file(&self.hard_state)?;
        // Newest first: a crash part-way leaves a prefix of the old log, which recovery
        // either skips (at or below the snapshot) or checks against the snapshot's term.
        self.wal.remove_files(self.segments.iter().rev().map(|s| s.path.as_path()))?;
        self.segments.clear();
        let (path, file) = self.wal.create_segment(next, self.opts.segment_bytes)?;
        self.segments.push(Segment { first: next, path, entries: Vec::new() });
        self.active = file;
        self.end = 0;
        self.hard_state.commit = self.hard_state.commit.max(self.snapshot.index);
        let hs = self.hard_state;
        self.write_batch(Some(&hs), &[], None)
    }
}

/// The directories of one node, opened and locked by [`lock_and_create_dirs`].
struct Dirs {
    lock: Flock<File>,
    wal: WalDir,
    snap_dir: PathBuf,
    snap_dir_file: File,
}

/// Creates `node_dir`, `wal/` and `snap/` (mode 0700) if missing and takes the exclusive
/// `flock` on `node_dir` that keeps a second process out ([`StorageError::Locked`]).
fn lock_and_create_dirs(node_dir: &Path, created: &mut Vec<PathBuf>) -> Result<Dirs, StorageError> {
    create_dir(node_dir, created)?;
    let dir_file = File::open(node_dir).at(node_dir)?;
    // `wal/` and `snap/` may have been made by an incarnation that died between its
    // mkdir and the fsync: one sync at start-up makes them durable whatever happened.
    fsync_dir(&dir_file, node_dir)?;
    let lock = Flock::lock(dir_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            StorageError::Locked { path: node_dir.to_path_buf() }
        } else {
            StorageError::io(node_dir, errno.into())
        }
    })?;
    let wal_path = node_dir.join("wal");
    let snap_dir = node_dir.join("snap");
    create_dir(&wal_path, created)?;
    create_dir(&snap_dir, created)?;
    let wal = WalDir { file: File::open(&wal_path).at(&wal_path)?, path: wal_path, syncs: Default::default() };
    let snap_dir_file = File::open(&snap_dir).at(&snap_dir)?;
    Ok(Dirs { lock, wal, snap_dir, snap_dir_file })
}

/// Segment files as listed in `wal/`: `(first index, path)`, in index order.
type SegmentList = Vec<(Index, PathBuf)>;

/// Step 2: reads the hard-state file (default when absent) and lists `wal/`, removing
/// temporaries a crash left behind and noting files that do not belong there. Returns
/// the hard state and the segments, `(first index, path)` in index order.
fn read_hard_state_and_list(
    wal: &WalDir,
    notes: &mut Vec<String>,
    rel: &dyn Fn(&Path) -> String,
) -> Result<(HardState, SegmentList), StorageError> {
    let hard_state = wal.read_hard_state_file()?.unwrap_or_default();
    let listing = wal::list(&wal.path)?;
    for t in &listing.temps {
        notes.push(format!("removed temporary file {} left by a crash", rel(t)));
    }
    wal.remove_files(listing.temps.iter().map(PathBuf::as_path))?;
    for u in &listing.unknown {
        notes.push(format!("ignored unexpected file {}", rel(u)));
    }
    Ok((hard_state, listing.segments))
}

/// Step 3: splits off the segments wholly covered by the snapshot at `s` (every one
/// whose successor starts at or before `s + 1`; the last segment is always kept).
/// Returns `(covered paths, remaining segments)`. Nothing is removed here: that waits
/// until the rest has been checked, so a damaged directory is refused intact. The first
/// remaining segment must start at or before `s + 1`, else entries are missing
/// ([`StorageError::Gap`]).
fn split_covered_segments(mut segs: SegmentList, s: Index) -> Result<(Vec<PathBuf>, SegmentList), StorageError> {
    let covered = (0..segs.len()).take_while(|&k| k + 1 < segs.len() && segs[k + 1].0 <= s + 1).count();
    let covered: Vec<PathBuf> = segs.drain(..covered).map(|(_, p)| p).collect();
    if let Some((first, path)) = segs.first() {
        if *first > s + 1 {
            return Err(StorageError::Gap { file: path.clone(), snapshot_index: s, first_index: *first });
        }
    }
    Ok((covered, segs))
}

/// What [`parse_segments`] found.
struct Parsed {
    segments: Vec<Segment>,
    /// The entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// The newest hard state among the file's and the WAL's records.
    hard_state: HardState,
    /// The term of the entry at the snapshot's index, if the log still holds it.
    term_at_snapshot: Option<Term>,
    /// The last segment's end of valid records, and its torn final record if any.
    tail: Option<(u64, Option<record::Torn>)>,
}

/// Step 4: reads and scans every segment in order, checking each link of the chain: a
/// segment's name is its first entry, segments neither skip nor overlap, entries are
/// contiguous and never go back in term. Hard-state records are merged into
/// `hard_state` (two different votes in one term is damage). Only the last segment may
/// end in a torn record; a checksum failure anywhere else is an error naming file and
/// offset.
fn parse_segments(
    segs: &SegmentList,
    s: Index,
    mut hard_state: HardState,
    rel: &dyn Fn(&Path) -> String,
) -> Result<Parsed, StorageError> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut entries = Vec::new();
    let mut prev_term: Term = 0;
    let mut term_at_snapshot = None;
    let mut tail = None;
    for (k, (first, path)) in segs.iter().enumerate() {
        let is_last = k + 1 == segs.len();
        let bytes = fs::read(path).at(path)?;
        let scanned = record::scan(&bytes, path, is_last)?;
        // A segment's name must be its first entry: a copy under another name is caught
        // here, before it can pass for a missing or overlapping segment.
        let first_entry = scanned.records.iter().find_map(|(off, r)| match r {
            Record::Entry(e) => Some((*off, e.index)),
            Record::HardState(_) => None,
        });
        if let Some((offset, index)) = first_entry {
            if index != *first {
                return Err(StorageError::corrupt(
                    path,
                    offset,
                    format!("segment named for index {first} begins with entry {index}: a copied or renamed segment"),
                ));
            }
        }
        if let Some(prev) = segments.last() {
            let expected = prev.last() + 1;
            if *first > expected {
                return Err(StorageError::MissingSegment {
                    file: path.clone(),
                    previous: prev.path.clone(),
                    expected,
                    found: *first,
                });
            }
            if *first < expected {
                return Err(StorageError::corrupt(
                    path,
                    0,
                    format!(
                        "segment starts at index {first}, but {} already holds entries up to {}: \
                         a duplicated or overlapping segment",
                        rel(&prev.path),
                        expected - 1
                    ),
                ));
            }
        }
        let mut seg = Segment { first: *first, path: path.clone(), entries: Vec::new() };
        for (offset, rec) in scanned.records {
            match rec {
                Record::HardState(hs) => {
                    hard_state =
                        newer_hard_state(hard_state, hs).map_err(|why| StorageError::corrupt(path, offset, why))?;
                }
                Record::Entry(e) => {
                    let expected = seg.last() + 1;
                    if e.index != expected {
                        let why = if seg.entries.is_empty() {
                            format!("segment named for index {first} begins with entry {}", e.index)
                        } else {
                            format!("entry {} follows entry {}", e.index, expected - 1)
                        };
                        return Err(StorageError::corrupt(path, offset, why));
                    }
                    if e.term < prev_term {
                        return Err(StorageError::corrupt(
                            path,
                            offset,
                            format!("entry {} has term {} after term {prev_term}: terms go backwards", e.index, e.term),
                        ));
                    }
                    prev_term = e.term;
                    seg.entries.push(Pos { offset, term: e.term });
                    if e.index == s {
                        term_at_snapshot = Some(e.term);
                    }
                    if e.index > s {
                        entries.push(e);
                    }
                }
            }
        }
        if is_last {
            tail = Some((scanned.end, scanned.torn));
        }
        segments.push(seg);
    }
    Ok(Parsed { segments, entries, hard_state, term_at_snapshot, tail })
}

/// Step 5: does the log continue the snapshot `snap`? An entry at the snapshot's index
/// with another term means a snapshot install was interrupted before it discarded the
/// log: what follows belongs to another history (Raft Figure 13, step 7), so `entries`
/// is cleared. A log that ends before the snapshot, or no segment at all, also needs a
/// fresh segment. Returns whether the log must be reset to start after the snapshot.
fn check_log_continues_snapshot(
    snap: &SnapshotMeta,
    segments: &[Segment],
    entries: &mut Vec<Entry>,
    term_at_snapshot: Option<Term>,
    notes: &mut Vec<String>,
) -> bool {
    let s = snap.index;
    let mut need_reset = segments.is_empty();
    if s > 0 && !entries.is_empty() {
        let continues = match term_at_snapshot {
            Some(t) => t == snap.term,
            None => entries[0].term >= snap.term,
        };
        if !continues {
            notes.push(format!(
                "discarded {} entries after the snapshot at {s} (term {}): they continue a different \
                 history (an interrupted snapshot install)",
                entries.len(),
                snap.term
            ));
            entries.clear();
            need_reset = true;
        }
    }
    if let Some(last) = segments.last() {
        if last.last() < s {
            notes.push(format!(
                "the log ends at index {}, before the snapshot at {s} (an interrupted snapshot install): \
                 starting a fresh segment at {}",
                last.last(),
                s + 1
            ));
            need_reset = true;
        }
    }
    need_reset
}

/// Step 6: notes a torn final record in the last segment. Returns the offset just past
/// the last valid record (where appending resumes; 0 without segments) and whether a
/// torn record follows it (to be cut away when the segment is reopened).
fn note_torn_tail(
    tail: Option<(u64, Option<record::Torn>)>,
    segments: &[Segment],
    notes: &mut Vec<String>,
    rel: &dyn Fn(&Path) -> String,
) -> (u64, bool) {
    let mut active_end = 0;
    let mut torn_tail = false;
    if let Some((end, torn)) = tail {
        active_end = end;
        if let Some(t) = torn {
            torn_tail = true;
            let last = segments.last().expect("a tail comes from a segment");
            notes.push(format!(
                "truncated torn record at {} offset {} ({} bytes): {}",
                rel(&last.path),
                t.offset,
                t.bytes,
                t.reason
            ));
        }
    }
    (active_end, torn_tail)
}

/// Step 7: a commit index past the recovered log (its entries were torn away) is
/// clamped to the last index; one below the snapshot is raised to it (a snapshot holds
/// only committed state). Returns the hard state and the last index of the log.
fn clamp_commit(mut hard_state: HardState, entries: &[Entry], s: Index, notes: &mut Vec<String>) -> (HardState, Index) {
    let last_entry = entries.last().map(|e| e.index);
    let last_index = last_entry.unwrap_or(s).max(s);
    if hard_state.commit > last_index {
        notes.push(format!(
            "hard state commit {} is past the last index {last_index} (a torn write): clamped",
            hard_state.commit
        ));
        hard_state.commit = last_index;
    }
    hard_state.commit = hard_state.commit.max(s);
    (hard_state, last_index)
}

/// Step 9, after a reset: writes the hard-state file, removes every segment and creates
/// a fresh one starting after the snapshot at `s`. Returns it, open, with its end at 0.
fn reset_segments(
    wal: &WalDir,
    segments: &mut Vec<Segment>,
    s: Index,
    hard_state: &HardState,
    segment_bytes: u64,
) -> Result<(File, u64), StorageError> {
    wal.write_hard_state_file(hard_state)?;
    wal.remove_files(segments.iter().rev().map(|seg| seg.path.as_path()))?;
    segments.clear();
    let (path, file) = wal.create_segment(s + 1, segment_bytes)?;
    segments.push(Segment { first: s + 1, path, entries: Vec::new() });
    Ok((file, 0))
}

/// Step 9, otherwise: opens the last segment for appending at `active_end`. A torn tail
/// is cut off (zeros after the end, so the next write leaves no stale bytes behind it)
/// and synced; a short or cut file is preallocated to `segment_bytes` again.
fn reopen_last_segment(
    segments: &[Segment],
    active_end: u64,
    torn: bool,
    segment_bytes: u64,
) -> Result<(File, u64), StorageError> {
    let last = segments.last().expect("not reset, so there are segments");
    let file = OpenOptions::new().read(true).write(true).open(&last.path).at(&last.path)?;
    let len = file.metadata().at(&last.path)?.len();
    if torn {
        file.set_len(active_end).at(&last.path)?;
    }
    if torn || len < segment_bytes {
        wal::preallocate(&file, segment_bytes);
    }
    if torn {
        file.sync_all().at(&last.path)?;
    }
    Ok((file, active_end))
}

/// The newest snapshot's file, checked and open, and its path.
type RecoveredSnapshot = (Option<(File, Layout)>, Option<PathBuf>);

/// Step 1: loads the newest snapshot; removes older ones and temporaries (leftovers of a
/// crash). The newest is checked before anything is removed.
fn recover_snapshot(
    dir: &Path,
    dir_file: &File,
    notes: &mut Vec<String>,
    rel: &dyn Fn(&Path) -> String,
) -> Result<RecoveredSnapshot, StorageError> {
    let mut found = Vec::new();
    let mut remove = Vec::new();
    for ent in fs::read_dir(dir).at(dir)? {
        let ent = ent.at(dir)?;
        let path = ent.path();
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if let Some((i, t)) = snapshot::parse_name(&name) {
            found.push((i, t, path));
        } else if name.ends_with(snapshot::TMP_SUFFIX) {
            notes.push(format!("removed unfinished snapshot {} left by a crash", rel(&path)));
            remove.push(path);
        } else {
            notes.push(format!("ignored unexpected file {}", rel(&path)));
        }
    }
    found.sort();
    // Check the newest before removing anything: if it is damaged, the older files stay
    // for whoever inspects the directory.
    let newest = match found.pop() {
        Some((i, t, path)) => Some((snapshot::verify(&path, i, t)?, path)),
        None => None,
    };
    for (_, _, p) in found {
        notes.push(format!("removed older snapshot {}", rel(&p)));
        remove.push(p);
    }
    for p in &remove {
        fs::remove_file(p).at(p)?;
    }
    if !remove.is_empty() {
        fsync_dir(dir_file, dir)?;
    }
    Ok(match newest {
        Some((snap, path)) => (Some(snap), Some(path)),
        None => (None, None),
    })
}
