//! # raft-replica: the one place where a `Ready` is carried out
//!
//! raft-core decides; something has to *do* what it decided: write the log and the hard
//! state, send messages, apply committed entries to the state machine, answer the
//! clients that were waiting, compact the log. That something is [`Replica`], and there
//! is exactly one of it. `raft-node` wraps it in sockets (mio, frames, peers, signals);
//! `raft-sim` wraps it in a simulated network and a simulated disk that loses what was
//! not synced when a node crashes. Because both run this code, what the simulator proves
//! is what ships.
//!
//! A replica owns:
//!
//! * the [`RawNode`] (consensus),
//! * a [`Store`] (durable log, hard state, snapshots): `raft-storage`'s [`Storage`] in a
//!   node, a simulated disk in `raft-sim`,
//! * the [`KvStore`] (the replicated state machine, with exactly-once sessions),
//! * the client requests waiting for a commit or a ReadIndex confirmation.
//!
//! What it cannot do itself (put bytes on a socket, write a log line) it asks of an
//! [`Effects`] passed to every call.
//!
//! ## One batch, in order
//!
//! [`Replica::process_ready`] takes `Ready` batches until the core is quiet, and carries
//! out each one like this:
//!
//! 1. note the soft state (role, term, leader); a leader that stopped leading answers
//!    every pending write `Unknown` and every pending read `NotLeader`;
//! 2. log the core's events;
//! 3. send `messages` (they promise nothing durable: the leader's appends overlap its
//!    own fsync; an InstallSnapshot chunk gets its bytes from [`Store::snapshot_chunk`]
//!    as it leaves, so no snapshot is ever held in memory), then, when the batch holds no snapshot, apply `committed` and serve
//!    `reads`: committed entries are durable on a majority already, so their answers
//!    need not wait for this node's fsync; then [`Effects::flush`], so all of that
//!    leaves before the fsync below;
//! 0. snapshot chunks received from the leader go to the store's incoming snapshot
//!    ([`Store::receive_chunk`]); when the last one arrived, the store seals it and the
//!    replica decodes it into a state machine, streaming, checksum checked
//!    ([`Store::finish_received`]), and tells the core whether it loads
//!    ([`RawNode::snapshot_verified`]): only a verified snapshot ever replaces the log,
//!    and the decoded state machine is kept for step 7;
//! 4. persist: a verified snapshot is made current *with the batch's hard state*
//!    ([`Store::install_snapshot`]); then the hard state and entries in ONE write and ONE
//!    fsync ([`Store::persist`]). A hard state whose only change is the commit index is
//!    not synced on its own: it rides with the next entries (a restarted node relearns
//!    its commit index);
//! 5. `persisted(last)`: only now does a leader count itself toward a commit;
//! 6. send `persisted_messages` (votes, acks: they promise what step 4 made durable);
//! 7. with a snapshot: restore the state machine from it, answer writes it swallowed as
//!    `Unknown`, then apply `committed` and serve `reads`.
//!
//! A storage error stops the batch where it happened and is returned: the caller must
//! stop the node (a process exits and is restarted from its disk; the simulator crashes
//! the node). Nothing after the failed step runs, so nothing that promises durability
//! leaves.
//!
//! ## Compaction, off the event loop
//!
//! [`Replica::maybe_compact`] starts a snapshot once the log since the last one passes
//! the configured entry or byte threshold *and* [`ReplicaOptions::snapshot_ratio`] times
//! the last snapshot's size: snapshots then come at intervals proportional to the
//! state, so the snapshot work per write stays constant however large the state grows.
//! The store writes it in the background ([`Store::begin_compaction`]: a node forks a
//! child that streams the state machine as it was at the fork; the simulator writes
//! at once and finishes later); [`Replica::poll_compaction`], called every turn, sees
//! it done, and only then tells the core ([`RawNode::compact`]) that the log up to
//! there is gone. Heartbeats, elections and client answers go on meanwhile.

use raft_core::{
    Config, Entry, Event, HardState, Index, MembershipChange, MembershipError, Message, MessageBody, ProposeError,
    RawNode, ReadState, Ready, Restored, RoleKind, SnapshotChunk, SnapshotMeta, SoftState, Term,
};
use raft_kv::{Applied, Command, KvStore, ReadOp, WriteOp};
pub mod memory;
pub use raft_storage::Compaction;
use raft_storage::{SnapshotReader, Storage, StorageError};
use raft_wire::{Reply, Response};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::time::Instant;

/// Client requests waiting on one node for a commit or a ReadIndex confirmation:
/// back-pressure, so a flood of clients cannot grow the node's memory without bound.
pub const MAX_PENDING_REQUESTS: usize = 100_000;
/// A log write (write + fsync) that takes this long gets a line in the node's log: the
/// disk is the usual suspect when heartbeats stop (half the shortest election timeout).
pub const SLOW_PERSIST: std::time::Duration = std::time::Duration::from_millis(75);
/// Log entries dropped by a compaction that are freed per turn: freeing 300,000 entries
/// at once took 60-120 ms on a node's loop; this many take about 2 ms.
pub const FREED_ENTRIES_PER_TURN: usize = 20_000;
/// `Ready` batches taken in one [`Replica::process_ready`]: each one can only make
/// progress (persisted -> commit -> apply), so a few suffice; the bound keeps a bug from
/// spinning the event loop.
pub const MAX_READY_ROUNDS: usize = 16;

/// The durable half of a node: log, hard state and snapshots. Every call that writes is
/// durable when it returns `Ok` (when the store syncs at all). An `Err` leaves the store
/// unusable: the caller stops and recovers from what is on disk.
///
/// Snapshots never pass through memory whole: they are written by streaming the state
/// machine into the store, sent chunk by chunk from it, received chunk by chunk into it
/// and read back through [`Store::Reader`].
pub trait Store {
    /// Streams a snapshot's data; an error on the last read means it is damaged.
    type Reader: Read;
    /// One turn's durable write: an optional hard state and entries, as ONE write and
    /// ONE sync. `entries[0].index <= last index` replaces the stored suffix from there.
    fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError>;
    /// The current snapshot's data (`None` without one): recovery restores from it.
    fn snapshot_reader(&mut self) -> Result<Option<Self::Reader>, StorageError>;
    /// Up to `len` bytes of the current snapshot `meta` from `offset`, and whether they
    /// reach its end.
    fn snapshot_chunk(&mut self, meta: &SnapshotMeta, offset: u64, len: usize)
        -> Result<(Vec<u8>, bool), StorageError>;
    /// Bytes of the current snapshot's data (0 without one).
    fn snapshot_bytes(&self) -> u64;
    /// Appends a received chunk to the incoming snapshot (offset 0 starts a new one).
    fn receive_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError>;
    /// Seals the incoming snapshot `meta` (durably, not yet current) and reads it back.
    fn finish_received(&mut self, meta: &SnapshotMeta) -> Result<Self::Reader, StorageError>;
    /// Drops the incoming snapshot (it did not verify).
    fn discard_received(&mut self);
    /// Makes the sealed incoming snapshot current, with the hard state of the batch that
    /// carried it: after this call the store holds the snapshot, that hard state's term
    /// and vote with the snapshot's index as commit index, and an empty log after the
    /// snapshot. A crash part-way must leave a store that recovery accepts, whose term is
    /// at least the snapshot's and whose commit index never covers entries of the old
    /// log that the snapshot replaces (see `Storage::install_snapshot` for the order).
    fn install_snapshot(&mut self, meta: &SnapshotMeta, hard_state: &HardState) -> Result<(), StorageError>;
    /// Starts writing a local snapshot `meta` of the state machine, streamed by `write`
    /// as the state is *now*, without blocking the caller for the write.
    fn begin_compaction(
        &mut self,
        meta: &SnapshotMeta,
        write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError>;
    /// The outcome of the compaction started, once it is finished (`block`: wait for
    /// it). A `Done` snapshot is current and the log up to it dropped.
    fn poll_compaction(&mut self, block: bool) -> Result<Option<Compaction>, StorageError>;
}

impl Store for Storage {
    type Reader = SnapshotReader;
    fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        Storage::persist(self, hard_state, entries)
    }
    fn snapshot_reader(&mut self) -> Result<Option<SnapshotReader>, StorageError> {
        Storage::snapshot_reader(self)
    }
    fn snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<(Vec<u8>, bool), StorageError> {
        Storage::snapshot_chunk(self, meta, offset, len)
    }
    fn snapshot_bytes(&self) -> u64 {
        Storage::snapshot_bytes(self)
    }
    fn receive_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        Storage::receive_chunk(self, &chunk.meta, chunk.offset, &chunk.data)
    }
    fn finish_received(&mut self, meta: &SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        Storage::finish_received(self, meta)
    }
    fn discard_received(&mut self) {
        Storage::discard_incoming(self)
    }
    fn install_snapshot(&mut self, meta: &SnapshotMeta, hard_state: &HardState) -> Result<(), StorageError> {
        Storage::install_snapshot(self, meta, hard_state)
    }
    fn begin_compaction(
        &mut self,
        meta: &SnapshotMeta,
        write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        Storage::begin_compaction(self, meta, write)
    }
    fn poll_compaction(&mut self, block: bool) -> Result<Option<Compaction>, StorageError> {
        Storage::poll_compaction(self, block)
    }
}

/// Who is waiting for an answer: the transport's connection and the client's request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Waiter {
    pub conn: u64,
    pub request_id: u64,
}

/// What a replica asks of its surroundings. A node writes to sockets and its log file;
/// the simulator hands messages to its network and runs its checkers.
pub trait Effects {
    /// Queue `msg` for its peer.
    fn send(&mut self, msg: Message);
    /// Push queued output out now: called before the batch's fsync, so the leader's
    /// appends and the answers to committed writes do not wait for it.
    fn flush(&mut self) {}
    /// Answer a client.
    fn respond(&mut self, to: Waiter, response: Response);
    /// One line for the node's event log.
    fn log(&mut self, term: Term, line: std::fmt::Arguments<'_>);
    /// One of the core's events; by default a log line.
    fn event(&mut self, term: Term, event: &Event) {
        self.log(term, format_args!("{event}"));
    }
    /// A ReadIndex read is safe to serve now (observers; the replica answers its own).
    fn read_served(&mut self, _read: &ReadState) {}
    /// A ReadIndex read can no longer be confirmed (observers).
    fn read_dropped(&mut self, _id: u64) {}
    /// An entry was applied (observers: the simulator's checkers).
    fn applied(&mut self, _entry: &Entry, _result: &Applied) {}
    /// The state machine was replaced by snapshot `meta`'s image (observers).
    fn restored(&mut self, _meta: &SnapshotMeta, _kv: &KvStore) {}
    /// The time, for durations in log lines only (never for decisions). `None` (the
    /// simulator, which must replay exactly) leaves durations out.
    fn now(&self) -> Option<Instant> {
        None
    }
}

/// How a replica is set up, apart from the core's own [`Config`].
#[derive(Clone, Debug, Default)]
pub struct ReplicaOptions {
    /// Compact once this many entries were applied since the last snapshot ...
    pub snapshot_entries: u64,
    /// ... or once this many bytes of entries were; ...
    pub snapshot_bytes: u64,
    /// ... and, either way, only once the entries since the last snapshot are at least
    /// this many times its size: snapshot intervals then grow with the state, so the
    /// snapshot work per write stays constant (0 turns the rule off).
    pub snapshot_ratio: f64,
    /// Quota on the state's size ([`KvStore::state_bytes`]: keys plus values); 0 is no
    /// quota. The leader refuses a write that would take the state past it (see
    /// [`Replica::write`]); applying never looks at it.
    pub quota_bytes: u64,
    #[cfg(feature = "bugs")]
    pub bugs: Bugs,
}

#[allow(clippy::needless_update)] // `bugs` exists only with the feature
impl ReplicaOptions {
    pub fn new(snapshot_entries: u64, snapshot_bytes: u64) -> ReplicaOptions {
        ReplicaOptions { snapshot_entries, snapshot_bytes, snapshot_ratio: 0.0, ..ReplicaOptions::default() }
    }

    /// With [`ReplicaOptions::snapshot_ratio`] set.
    pub fn with_snapshot_ratio(self, snapshot_ratio: f64) -> ReplicaOptions {
        ReplicaOptions { snapshot_ratio, ..self }
    }

    /// The same options with a quota on the state's size (0: none).
    pub fn with_quota(self, quota_bytes: u64) -> ReplicaOptions {
        ReplicaOptions { quota_bytes, ..self }
    }
}

/// Bugs that can be planted in the driver, to prove the simulator catches them.
#[cfg(feature = "bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Answer a write as done as soon as it is appended to the leader's log, not when it
    /// commits.
    pub answer_on_append: bool,
    /// Send a batch's `persisted_messages` (votes, acks) before persisting it.
    pub ack_before_persist: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Start(String),
    #[error("snapshot on disk does not load: {0}")]
    DiskSnapshot(String),
}

enum EntryKind {
    Config,
    Other,
}

struct PendingWrite {
    waiter: Waiter,
    term: Term,
}

struct PendingRead {
    waiter: Waiter,
    op: ReadOp,
}

/// One Raft replica: consensus, storage, state machine and the clients waiting on them.
pub struct Replica<S: Store> {
    raft: RawNode,
    store: S,
    kv: KvStore,
    opts: ReplicaOptions,
    soft: SoftState,
    /// Term of the last applied entry (the snapshot's term when compacting).
    applied_term: Term,
    snapshot_index: Index,
    /// Bytes of the current snapshot's data, for the proportional trigger.
    snapshot_bytes: u64,
    /// Entry bytes applied since the last snapshot was started.
    bytes_since_snapshot: u64,
    /// The index of the local snapshot being written in the background, if any.
    compacting: Option<Index>,
    /// A snapshot received from the leader, verified and decoded, waiting for the core
    /// to hand it out in `Ready::snapshot` (the next batch).
    received: Option<(SnapshotMeta, KvStore)>,
    /// Entries a compaction dropped from the core's log, freed a few per turn.
    garbage: std::collections::VecDeque<Entry>,
    pending_writes: BTreeMap<Index, PendingWrite>,
    /// By read id; ordered, so answers on step-down go out in a deterministic order (the
    /// simulator replays seeds exactly).
    pending_reads: BTreeMap<u64, PendingRead>,
    next_read_id: u64,
    /// The hard state last made durable, and a newer one that only moved the commit index.
    synced_hard_state: HardState,
    unsynced_hard_state: Option<HardState>,
}

impl<S: Store> Replica<S> {
    /// Builds a replica from what its store recovered. The state machine is restored
    /// from the snapshot; the entries up to the persisted commit index are applied again
    /// by the first [`Replica::process_ready`].
    pub fn recover(
        config: Config,
        mut store: S,
        mut restored: Restored,
        opts: ReplicaOptions,
        fx: &mut impl Effects,
    ) -> Result<Replica<S>, ReplicaError> {
        let term = restored.hard_state.term;
        // The hard state is written ahead of the entries of its batch; a write torn by a
        // power cut can keep it and lose entries its commit index covers. Those entries
        // are committed on a majority anyway: forget the local claim, relearn it.
        let snap_index = restored.snapshot.as_ref().map_or(0, |s| s.index);
        let last = restored.entries.last().map_or(snap_index, |e| e.index);
        if restored.hard_state.commit > last {
            let commit = restored.hard_state.commit;
            fx.log(term, format_args!("storage: commit index {commit} is past the log's end {last}; using {last}"));
            restored.hard_state.commit = last;
        }
        let (kv, applied_term) = match &restored.snapshot {
            Some(meta) => (Self::load_snapshot(&mut store, meta, term, fx)?, meta.term),
            None => (KvStore::new(), 0),
        };
        fx.log(
            term,
            format_args!(
                "storage recovered {} entries, snapshot index={snap_index}, commit={}",
                restored.entries.len(),
                restored.hard_state.commit
            ),
        );
        let synced_hard_state = restored.hard_state;
        let snapshot_bytes = store.snapshot_bytes();
        let raft = RawNode::new(config, restored).map_err(|e| ReplicaError::Start(e.to_string()))?;
        Ok(Replica {
            soft: SoftState { role: RoleKind::Follower, term, leader: None },
            raft,
            store,
            kv,
            opts,
            applied_term,
            snapshot_index: snap_index,
            snapshot_bytes,
            bytes_since_snapshot: 0,
            compacting: None,
            received: None,
            garbage: std::collections::VecDeque::new(),
            pending_writes: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            next_read_id: 1,
            synced_hard_state,
            unsynced_hard_state: None,
        })
    }

    /// Restores the state machine from the store's current snapshot `meta`, streaming.
    fn load_snapshot(
        store: &mut S,
        meta: &SnapshotMeta,
        term: Term,
        fx: &mut impl Effects,
    ) -> Result<KvStore, ReplicaError> {
        let t0 = fx.now();
        let bytes = store.snapshot_bytes();
        let mut reader = store.snapshot_reader()?.expect("the store recovered a snapshot, so it has one");
        let kv =
            KvStore::read_snapshot(&mut reader, meta.index).map_err(|e| ReplicaError::DiskSnapshot(e.to_string()))?;
        let index = meta.index;
        match (t0, fx.now()) {
            (Some(t0), Some(t1)) => {
                let secs = (t1 - t0).as_secs_f64();
                let rate = bytes as f64 / 1e6 / secs.max(1e-6);
                fx.log(
                    term,
                    format_args!(
                        "state restored from the snapshot at index={index}: {} keys, {bytes} bytes in {} ms ({rate:.0} MB/s)",
                        kv.len(),
                        (t1 - t0).as_millis()
                    ),
                )
            }
            _ => fx.log(term, format_args!("state restored from the snapshot at index={index}: {bytes} bytes")),
        }
        Ok(kv)
    }

    pub fn raft(&self) -> &RawNode {
        &self.raft
    }

    /// The core, for inputs the replica does not wrap: `tick`, `step`,
    /// `transfer_leadership`, `campaign`. Call [`Replica::process_ready`] after.
    pub fn raft_mut(&mut self) -> &mut RawNode {
        &mut self.raft
    }

    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back (the simulator keeps a crashed node's disk).
    pub fn into_store(self) -> S {
        self.store
    }

    pub fn soft_state(&self) -> SoftState {
        self.soft
    }

    pub fn term(&self) -> Term {
        self.soft.term
    }

    pub fn is_leader(&self) -> bool {
        self.soft.role == RoleKind::Leader
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// Requests waiting for a commit or a read confirmation.
    pub fn pending(&self) -> usize {
        self.pending_writes.len() + self.pending_reads.len()
    }

    fn not_leader(&self) -> Response {
        Response::NotLeader { leader: self.raft.leader() }
    }

    // ----- client requests ---------------------------------------------------------------

    /// A write from a client: proposed if this node leads, else answered at once.
    pub fn write(&mut self, from: Waiter, session: u64, seq: u64, op: WriteOp, fx: &mut impl Effects) {
        if let Err(reason) = op.validate() {
            return fx.respond(from, Response::Invalid { reason });
        }
        if !self.is_leader() {
            return fx.respond(from, self.not_leader());
        }
        if let Some(reply) = self.kv.cached_reply(session, seq) {
            // Already applied: answer the retry without a new entry.
            return fx.respond(from, Response::Ok(reply.clone()));
        }
        // The quota is checked here, by the leader, at propose time only: applying must
        // stay deterministic whatever each node's config says. A write that does not grow
        // the state (a delete, a shrinking overwrite, a cas that would fail) always passes,
        // so a full cluster can always be emptied. The check sees the applied state, not
        // the writes still in flight, so those can overshoot the quota together by at most
        // the leader's uncommitted window (`Config::max_uncommitted_bytes`, 64 MiB by
        // default: `raft_core::MAX_UNCOMMITTED_BYTES`) plus entries a new leader inherits
        // uncommitted from its predecessor's window.
        // The exact growth searches the map; its bound does not, and far below the quota
        // the bound settles the check alone.
        let quota = self.opts.quota_bytes;
        if quota > 0 && self.kv.state_bytes().saturating_add(KvStore::growth_bound(&op)) > quota {
            let growth = self.kv.growth(&op);
            if growth > 0 && self.kv.state_bytes().saturating_add(growth) > quota {
                let reason = quota_reason(self.kv.state_bytes(), growth, quota);
                return fx.respond(from, Response::Refused { reason });
            }
        }
        if self.pending() >= MAX_PENDING_REQUESTS {
            let reason = "node busy: too many requests in flight; retry".into();
            return fx.respond(from, Response::Unavailable { reason });
        }
        #[cfg(feature = "bugs")]
        let early = self.opts.bugs.answer_on_append.then(|| match &op {
            WriteOp::Set { .. } => Reply::Done,
            WriteOp::Delete { .. } => Reply::Deleted { existed: true },
            WriteOp::Cas { expected, .. } => Reply::Cas { ok: true, current: expected.clone() },
            _ => Reply::Done,
        });
        let data = Command { session, seq, op }.encode();
        match self.raft.propose(data) {
            Ok(index) => {
                #[cfg(feature = "bugs")]
                if let Some(reply) = early {
                    return fx.respond(from, Response::Ok(reply));
                }
                let prev = self.pending_writes.insert(index, PendingWrite { waiter: from, term: self.soft.term });
                assert!(prev.is_none(), "two proposals got index {index}");
            }
            Err(e) => fx.respond(from, propose_error(e)),
        }
    }

    /// A membership change (thesis §4.2) proposed on the leader; answered once its
    /// configuration entry commits, like a write. A change refused on purpose (another one
    /// in progress) is `Refused` with the reason; one that may pass in a moment (a new
    /// leader's first commit, a transfer) is `Unavailable`; one that does not apply to the
    /// configuration is `Invalid`.
    pub fn change_membership(&mut self, from: Waiter, change: MembershipChange, fx: &mut impl Effects) {
        if !self.is_leader() {
            return fx.respond(from, self.not_leader());
        }
        if self.pending() >= MAX_PENDING_REQUESTS {
            let reason = "node busy: too many requests in flight; retry".into();
            return fx.respond(from, Response::Unavailable { reason });
        }
        match self.raft.propose_membership(change) {
            Ok(index) => {
                fx.log(self.soft.term, format_args!("proposed {change} at index {index}"));
                let prev = self.pending_writes.insert(index, PendingWrite { waiter: from, term: self.soft.term });
                assert!(prev.is_none(), "two proposals got index {index}");
            }
            Err(MembershipError::NotLeader(_)) => fx.respond(from, self.not_leader()),
            Err(e @ MembershipError::InProgress { .. }) => {
                fx.respond(from, Response::Refused { reason: e.to_string() })
            }
            Err(e @ (MembershipError::NotReady | MembershipError::Busy)) => {
                fx.respond(from, Response::Unavailable { reason: e.to_string() })
            }
            Err(MembershipError::Invalid(reason)) => fx.respond(from, Response::Invalid { reason }),
        }
    }

    /// A read: `stale` reads are served from this node's state machine at once; others
    /// go through ReadIndex on the leader (§6.4).
    pub fn read(&mut self, from: Waiter, op: ReadOp, stale: bool, fx: &mut impl Effects) {
        if stale {
            return fx.respond(from, Response::Ok(self.kv.read(&op)));
        }
        if !self.is_leader() {
            return fx.respond(from, self.not_leader());
        }
        if self.pending() >= MAX_PENDING_REQUESTS {
            let reason = "node busy: too many requests in flight; retry".into();
            return fx.respond(from, Response::Unavailable { reason });
        }
        let read_id = self.next_read_id;
        self.next_read_id += 1;
        match self.raft.read_index(read_id) {
            Ok(()) => {
                self.pending_reads.insert(read_id, PendingRead { waiter: from, op });
            }
            Err(e) => fx.respond(from, propose_error(e)),
        }
    }

    // ----- the core's output -------------------------------------------------------------

    /// Carries out `Ready` batches until the core has nothing more to say. Returns
    /// whether there was anything (no batch: no term, vote, commit, role or log changed).
    pub fn process_ready(&mut self, fx: &mut impl Effects) -> Result<bool, ReplicaError> {
        let mut any = false;
        for _ in 0..MAX_READY_ROUNDS {
            if !self.advance(fx)? {
                break;
            }
            any = true;
        }
        Ok(any)
    }

    /// Carries out one `Ready` batch, if the core has one; returns whether it had.
    /// (Step-by-step drivers, like raft-core's golden-script harness, use this.)
    pub fn advance(&mut self, fx: &mut impl Effects) -> Result<bool, ReplicaError> {
        let rd = self.raft.ready();
        if rd.is_empty() {
            return Ok(false);
        }
        self.handle_ready(rd, fx)?;
        Ok(true)
    }

    fn handle_ready(&mut self, rd: Ready, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let Ready {
            soft_state,
            hard_state,
            entries,
            snapshot_chunks,
            received_snapshot,
            snapshot,
            messages,
            persisted_messages,
            committed,
            reads,
            dropped_reads,
            events,
        } = rd;
        // 1. Who we are now.
        if let Some(ss) = soft_state {
            self.on_soft_state(ss, fx);
        }
        // 2. What happened.
        for ev in &events {
            self.log_event(ev, fx);
        }
        // 0. Snapshot bytes arriving: into the store; a complete one is verified now.
        for chunk in &snapshot_chunks {
            self.store.receive_chunk(chunk)?;
        }
        if let Some(meta) = received_snapshot {
            self.verify_received(meta, fx)?;
        }
        // 3. What promises nothing goes first: the leader's appends overlap its own fsync.
        for m in messages {
            self.send(m, fx)?;
        }
        // Committed entries are durable on a majority already, so they may be applied and
        // answered before this batch's fsync (etcd applies in parallel with its WAL too):
        // otherwise every answer would also wait for the fsync of the *next* entries. Not
        // with a snapshot: the state machine must be restored from it first.
        let (committed, reads, dropped_reads) = if snapshot.is_none() {
            self.apply_and_answer(committed, reads, dropped_reads, fx);
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (committed, reads, dropped_reads)
        };
        #[cfg(feature = "bugs")]
        let persisted_messages = if self.opts.bugs.ack_before_persist {
            for m in persisted_messages {
                self.send(m, fx)?;
            }
            Vec::new()
        } else {
            persisted_messages
        };
        fx.flush();
        // 4. Persist.
        if let Some(hs) = hard_state {
            self.unsynced_hard_state = Some(hs);
        }
        let restored = match &snapshot {
            Some(snap) => Some(self.persist_snapshot(snap)?),
            None => None,
        };
        self.persist(&entries, fx)?;
        // 5. Only now may the leader count itself.
        if let Some(last) = entries.last() {
            self.raft.persisted(last.index, last.term);
        }
        // 6. What promises durable state.
        for m in persisted_messages {
            self.send(m, fx)?;
        }
        // 7. Install, apply, answer (when a snapshot came; else done above).
        if let (Some(snap), Some(kv)) = (snapshot, restored) {
            self.install(snap, kv, fx);
        }
        self.apply_and_answer(committed, reads, dropped_reads, fx);
        Ok(())
    }

    /// Sends a message; a snapshot chunk gets its bytes from the store first.
    fn send(&mut self, mut m: Message, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        if let MessageBody::InstallSnapshot { meta, offset, data, done } = &mut m.body {
            let len = self.raft.config().snapshot_chunk_bytes;
            (*data, *done) = self.store.snapshot_chunk(meta, *offset, len)?;
        }
        fx.send(m);
        Ok(())
    }

    /// The last chunk of a snapshot from the leader arrived: seal it in the store, decode
    /// it (streaming, checksum checked) and tell the core whether it loads. A snapshot
    /// that does not is dropped; the core then changes nothing and asks for it again.
    fn verify_received(&mut self, meta: SnapshotMeta, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let t0 = fx.now();
        let mut reader = self.store.finish_received(&meta)?;
        let verdict = KvStore::read_snapshot(&mut reader, meta.index).map_err(|e| e.to_string());
        drop(reader);
        if let (Some(t0), Some(t1), Ok(kv)) = (t0, fx.now(), &verdict) {
            fx.log(
                self.soft.term,
                format_args!(
                    "snapshot received at index={}: {} keys, decoded in {} ms",
                    meta.index,
                    kv.len(),
                    (t1 - t0).as_millis()
                ),
            );
        }
        let (verdict, kv) = match verdict {
            Ok(kv) => (Ok(()), Some(kv)),
            Err(reason) => (Err(reason), None),
        };
        if self.raft.snapshot_verified(&meta, verdict) {
            self.received = Some((meta, kv.expect("only a verified snapshot is adopted")));
        } else {
            // Refused, or no longer wanted: neither the state nor the file is kept.
            self.received = None;
            self.store.discard_received();
        }
        Ok(())
    }

    fn on_soft_state(&mut self, ss: SoftState, fx: &mut impl Effects) {
        let was_leader = self.is_leader();
        self.soft = ss;
        if was_leader && ss.role != RoleKind::Leader {
            self.fail_pending_on_step_down(fx);
        }
    }

    fn log_event(&self, ev: &Event, fx: &mut impl Effects) {
        fx.event(self.soft.term, ev);
    }

    /// Makes a received, verified snapshot current with the batch's hard state. Returns
    /// the state machine decoded when it was verified, installed after the batch's
    /// acknowledgements left.
    fn persist_snapshot(&mut self, meta: &SnapshotMeta) -> Result<KvStore, ReplicaError> {
        let kv = match self.received.take() {
            Some((m, kv)) if m == *meta => kv,
            _ => panic!("the core handed out snapshot {}@{} that was never verified", meta.index, meta.term),
        };
        let hs = self.unsynced_hard_state.take().unwrap_or(self.synced_hard_state);
        self.store.install_snapshot(meta, &hs)?;
        // The store keeps the snapshot's commit index; a higher one goes with the entries.
        self.synced_hard_state = HardState { commit: meta.index, ..hs };
        if hs.commit > meta.index {
            self.unsynced_hard_state = Some(hs);
        }
        Ok(kv)
    }

    /// Writes the batch's entries and the hard state if it must be synced: a hard state
    /// whose only change is the commit index needs no fsync of its own (a restarted node
    /// relearns the commit index from the leader; etcd's MustSync makes the same call):
    /// it rides along with the next batch of entries instead. Term and vote changes are
    /// always made durable before anything is sent.
    fn persist(&mut self, entries: &[Entry], fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let must_sync = match self.unsynced_hard_state {
            Some(hs) => hs.term != self.synced_hard_state.term || hs.vote != self.synced_hard_state.vote,
            None => false,
        };
        if must_sync || !entries.is_empty() {
            let hs = self.unsynced_hard_state.take();
            let t0 = fx.now();
            self.store.persist(hs.as_ref(), entries)?;
            if let (Some(t0), Some(t1)) = (t0, fx.now()) {
                let took = t1 - t0;
                if took >= SLOW_PERSIST {
                    let n = entries.len();
                    fx.log(self.soft.term, format_args!("slow log write: {n} entries took {} ms", took.as_millis()));
                }
            }
            if let Some(hs) = hs {
                self.synced_hard_state = hs;
            }
        }
        Ok(())
    }

    /// Applies committed entries in order, answering their clients, then serves the reads
    /// the core confirmed and turns away the ones it dropped.
    fn apply_and_answer(
        &mut self,
        committed: Vec<Entry>,
        reads: Vec<ReadState>,
        dropped_reads: Vec<u64>,
        fx: &mut impl Effects,
    ) {
        for entry in committed {
            self.apply(entry, fx);
        }
        for read in reads {
            fx.read_served(&read);
            if let Some(p) = self.pending_reads.remove(&read.id) {
                assert!(self.kv.applied() >= read.index, "read {} served before its index was applied", read.id);
                fx.respond(p.waiter, Response::Ok(self.kv.read(&p.op)));
            }
        }
        for id in dropped_reads {
            fx.read_dropped(id);
            if let Some(p) = self.pending_reads.remove(&id) {
                fx.respond(p.waiter, self.not_leader());
            }
        }
    }

    /// A deposed leader cannot tell whether its uncommitted entries will commit under the
    /// next leader: every pending write is "unknown"; reads can simply be retried.
    fn fail_pending_on_step_down(&mut self, fx: &mut impl Effects) {
        // Writes at committed indexes are answered when applied, later in this batch: a
        // leader that steps down because its own removal committed (§4.2.2) knows the
        // outcome of everything up to that entry.
        let writes = self.pending_writes.split_off(&(self.raft.commit_index() + 1));
        let n = writes.len();
        for (_, p) in writes {
            let reason = "leader stepped down before the write committed; it may or may not apply".into();
            fx.respond(p.waiter, Response::Unknown { reason });
        }
        let reads = std::mem::take(&mut self.pending_reads);
        for (_, p) in reads {
            fx.respond(p.waiter, self.not_leader());
        }
        if n > 0 {
            fx.log(self.soft.term, format_args!("answered {n} pending writes as unknown after stepping down"));
        }
    }

    fn install(&mut self, meta: SnapshotMeta, kv: KvStore, fx: &mut impl Effects) {
        assert!(
            meta.index >= self.kv.applied(),
            "snapshot {} would rewind the state machine from {}",
            meta.index,
            self.kv.applied()
        );
        self.kv = kv;
        self.snapshot_index = meta.index;
        self.snapshot_bytes = self.store.snapshot_bytes();
        self.applied_term = meta.term;
        self.bytes_since_snapshot = 0;
        fx.restored(&meta, &self.kv);
        // Writes waiting at indexes the snapshot covers cannot be matched to their outcome.
        let covered: Vec<Index> = self.pending_writes.range(..=meta.index).map(|(&i, _)| i).collect();
        for i in covered {
            let p = self.pending_writes.remove(&i).expect("listed above");
            let reason = "replaced by a snapshot before the outcome was known".into();
            fx.respond(p.waiter, Response::Unknown { reason });
        }
    }

    fn apply(&mut self, entry: Entry, fx: &mut impl Effects) {
        self.bytes_since_snapshot += entry.size_bytes() as u64;
        self.applied_term = entry.term;
        let (index, term) = (entry.index, entry.term);
        let entry_kind =
            if matches!(entry.data, raft_core::EntryData::Config(_)) { EntryKind::Config } else { EntryKind::Other };
        let applied = self.kv.apply(&entry);
        fx.applied(&entry, &applied);
        let Some(p) = self.pending_writes.remove(&index) else { return };
        let body = if p.term != term {
            // Our entry at this index was replaced by another leader's: it never committed.
            Response::Unavailable { reason: "leadership changed before the write committed; retry".into() }
        } else {
            match applied {
                Applied::Write { reply, .. } => Response::Ok(reply),
                // Only a membership change is proposed as an entry the state machine skips.
                Applied::Noop => {
                    assert!(matches!(entry_kind, EntryKind::Config), "a proposal at {index} applied as a no-op");
                    Response::Ok(Reply::Done)
                }
                Applied::Invalid(reason) => Response::Invalid { reason },
                // The first attempt's outcome is no longer remembered: it may have applied.
                Applied::TooOld { seq, .. } => Response::Unknown {
                    reason: format!("sequence number {seq} is older than the session's reply window"),
                },
            }
        };
        fx.respond(p.waiter, body);
    }

    /// Starts a snapshot of the state machine in the background once the log since the
    /// last one passes the configured entry or byte threshold and
    /// [`ReplicaOptions::snapshot_ratio`] times the last snapshot's size (see the crate
    /// docs). Nothing happens while one is being written.
    pub fn maybe_compact(&mut self, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let applied = self.kv.applied();
        if self.compacting.is_some() || applied <= self.snapshot_index {
            return Ok(());
        }
        let threshold = applied - self.snapshot_index >= self.opts.snapshot_entries
            || self.bytes_since_snapshot >= self.opts.snapshot_bytes;
        // Nodes stagger their snapshots (the ratio grows by a tenth per node id, up to
        // four tenths): every node applies the same log, so without it all of them
        // would write a snapshot of the same size at the same moment, on one disk.
        let stagger = 1.0 + 0.1 * (self.raft.id().saturating_sub(1) % 5) as f64;
        let proportional =
            self.bytes_since_snapshot as f64 >= self.opts.snapshot_ratio * stagger * self.snapshot_bytes as f64;
        if threshold && proportional {
            self.begin_compaction(fx)?;
        }
        Ok(())
    }

    /// Starts a snapshot of the state machine at the applied index, written in the
    /// background by the store, if anything was applied since the last one and none is
    /// being written. [`Replica::poll_compaction`] finishes it.
    pub fn begin_compaction(&mut self, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let applied = self.kv.applied();
        if self.compacting.is_some() || applied <= self.snapshot_index {
            return Ok(());
        }
        // A snapshot from the leader was adopted by the core but not installed into the
        // state machine yet (it is, in the next batch): nothing to compact until then.
        if self.raft.snapshot().is_some_and(|s| s.index > applied) {
            return Ok(());
        }
        // The configuration at the snapshot's index, which the snapshot carries (§4.1).
        let members = self.raft.membership_at(applied);
        let meta = SnapshotMeta {
            index: applied,
            term: self.applied_term,
            voters: members.voters.clone(),
            learners: members.learners.clone(),
        };
        let log_bytes = self.bytes_since_snapshot;
        let kv = &self.kv;
        self.store.begin_compaction(&meta, &|w| {
            // Many small items: buffer them, so the store sees large writes.
            let mut w = io::BufWriter::with_capacity(1 << 16, w);
            kv.write_snapshot(&mut w)?;
            w.flush()
        })?;
        self.compacting = Some(applied);
        self.bytes_since_snapshot = 0;
        fx.log(
            self.soft.term,
            format_args!(
                "snapshot started at index={applied} in the background ({} keys; {log_bytes} bytes of log since the last one)",
                self.kv.len()
            ),
        );
        Ok(())
    }

    /// Finishes a background snapshot if its writer is done (`block`: waits for it):
    /// the core drops its log up to there, and laggards get this snapshot from now on.
    /// Call it every turn.
    pub fn poll_compaction(&mut self, block: bool, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        let free = self.garbage.len().min(FREED_ENTRIES_PER_TURN);
        self.garbage.drain(..free);
        if self.compacting.is_none() {
            return Ok(());
        }
        let t0 = fx.now();
        let Some(outcome) = self.store.poll_compaction(block)? else { return Ok(()) };
        let t1 = fx.now();
        self.compacting = None;
        let term = self.soft.term;
        match outcome {
            Compaction::Done { meta, bytes, took } => {
                let dropped = self.raft.compact(meta.index);
                if self.garbage.is_empty() {
                    self.garbage = dropped;
                } else {
                    self.garbage.extend(dropped);
                }
                self.snapshot_index = meta.index;
                self.snapshot_bytes = bytes;
                let index = meta.index;
                match (t0, t1, fx.now()) {
                    (Some(t0), Some(t1), Some(t2)) => fx.log(
                        term,
                        format_args!(
                            "snapshot at index={index}: {bytes} bytes, written in {} ms in the background; \
                             put in place in {} ms, log dropped in {} ms",
                            took.as_millis(),
                            (t1 - t0).as_millis(),
                            (t2 - t1).as_millis()
                        ),
                    ),
                    _ => fx.log(term, format_args!("snapshot at index={index}: {bytes} bytes")),
                }
                self.process_ready(fx).map(|_| ())
            }
            Compaction::Stale { meta } => {
                let index = meta.index;
                fx.log(
                    term,
                    format_args!("snapshot at index={index} dropped: a newer snapshot was installed meanwhile"),
                );
                Ok(())
            }
            Compaction::Failed { meta, reason } => {
                let index = meta.index;
                fx.log(
                    term,
                    format_args!(
                        "snapshot at index={index} failed: {reason}; the log is kept, the next one is tried later"
                    ),
                );
                Ok(())
            }
        }
    }

    /// Snapshots the state machine at the applied index and compacts the log up to
    /// there, now: begins a background snapshot and waits for it.
    pub fn compact(&mut self, fx: &mut impl Effects) -> Result<(), ReplicaError> {
        self.begin_compaction(fx)?;
        self.poll_compaction(true, fx)
    }
}

/// The one line a client shows when a write is refused for the quota: the figures, the
/// key to change and what to do.
fn quota_reason(state_bytes: u64, growth: u64, quota: u64) -> String {
    format!(
        "the state would pass the quota of {} ({quota} bytes, quota_bytes in cluster.toml): it holds {state_bytes} \
         bytes and this write adds {growth}; delete keys, or raise quota_bytes and restart the cluster \
         (raft-supervisor down, then up)",
        human_bytes(quota)
    )
}

/// `2.0 GiB`, `4.0 KiB`, `512 B`: one decimal in the largest binary unit that fits.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >= 1 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    format!("{:.1} {}", n as f64 / (1u64 << (10 * unit)) as f64, UNITS[unit])
}

fn propose_error(e: ProposeError) -> Response {
    match e {
        ProposeError::NotLeader(nl) => Response::NotLeader { leader: nl.leader },
        ProposeError::Busy => Response::Unavailable { reason: "leader busy (transfer or backlog); retry".into() },
    }
}

#[cfg(test)]
mod quota_tests {
    #[test]
    fn human_bytes_uses_the_largest_binary_unit() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(4096), "4.0 KiB");
        assert_eq!(super::human_bytes(1536 << 10), "1.5 MiB");
        assert_eq!(super::human_bytes(2 << 30), "2.0 GiB");
        assert_eq!(super::human_bytes(u64::MAX), "16.0 EiB");
    }
}
