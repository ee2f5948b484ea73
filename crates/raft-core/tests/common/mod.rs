//! A small deterministic in-memory cluster for the tests: nodes with in-memory
//! "disks", a message queue as the network, partitions, crashes and restarts. Each node
//! is the shipped driver, a [`raft_replica::Replica`] with the real `raft-kv` state
//! machine, over an in-memory [`Store`]: the batches are carried out by the same code
//! the node runs, one `Ready` per `process` call so golden scripts see every round.
//! Safety is checked after every delivery: one leader per term, applied entries agree
//! across nodes, commit and applied never move back.

#![allow(dead_code)]

use raft_core::*;
use raft_kv::{Applied, Command, WriteOp};
use raft_replica::{Compaction, Effects, Replica, ReplicaOptions, Store, Waiter};
use raft_storage::StorageError;
use raft_wire::Response;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Cursor, Write};
use std::time::Duration;

/// What one node keeps on its "disk".
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot.
    pub entries: Vec<Entry>,
    /// A snapshot arriving from the leader, and whether it was sealed (volatile: a
    /// restart loses it, as a real store's temporary file).
    pub incoming: raft_replica::memory::Incoming,
    /// How many received snapshots were sealed for verification: the harness runs the
    /// verdict's batch in the same `process` call.
    pub sealed: u64,
    /// Test hook: the store damages every snapshot it receives (one trailing byte when
    /// read back, which no raft-kv image has), so the replica's verification refuses it.
    pub damage_received: bool,
    /// A compaction begun and not yet polled (written at once, done at the next poll).
    writing: Option<Snapshot>,
}

impl Disk {
    /// A disk holding `entries` (from index 1) and `hard_state`, no snapshot.
    pub fn with_log(hard_state: HardState, entries: Vec<Entry>) -> Disk {
        Disk { hard_state, entries, ..Disk::default() }
    }

    fn snap_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn write_entries(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let keep = (first.index - self.snap_index() - 1) as usize;
        assert!(keep <= self.entries.len(), "entries batch leaves a gap on disk");
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    pub fn restored(&self) -> Restored {
        Restored {
            hard_state: self.hard_state,
            snapshot: self.snapshot.as_ref().map(|s| s.meta.clone()),
            entries: self.entries.clone(),
        }
    }

    /// What a restart finds: the durable part; what was in flight is gone.
    pub fn rebooted(&self) -> Disk {
        Disk { incoming: Default::default(), writing: None, ..self.clone() }
    }
}

/// Every call is durable at once: these tests are about the protocol; the crash windows
/// of a real disk are raft-sim's.
impl Store for Disk {
    type Reader = Cursor<Vec<u8>>;

    fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        if let Some(hs) = hard_state {
            self.hard_state = *hs;
        }
        self.write_entries(entries);
        Ok(())
    }

    fn snapshot_reader(&mut self) -> Result<Option<Self::Reader>, StorageError> {
        Ok(self.snapshot.as_ref().map(|s| Cursor::new(s.data.clone())))
    }

    fn snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<(Vec<u8>, bool), StorageError> {
        let snap = self.snapshot.as_ref().expect("snapshot_chunk without a snapshot");
        Ok(raft_replica::memory::chunk(snap, meta, offset, len))
    }

    fn snapshot_bytes(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.data.len() as u64)
    }

    fn receive_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        self.incoming.receive(chunk);
        Ok(())
    }

    fn finish_received(&mut self, meta: &SnapshotMeta) -> Result<Self::Reader, StorageError> {
        let mut data = self.incoming.seal(meta).to_vec();
        if self.damage_received {
            data.push(0);
        }
        self.sealed += 1;
        Ok(Cursor::new(data))
    }

    fn discard_received(&mut self) {
        self.incoming.discard();
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta, hard_state: &HardState) -> Result<(), StorageError> {
        let snap = self.incoming.take_sealed(meta);
        self.hard_state = HardState { commit: hard_state.commit.max(meta.index), ..*hard_state };
        self.snapshot = Some(snap);
        self.entries.clear();
        Ok(())
    }

    fn begin_compaction(
        &mut self,
        meta: &SnapshotMeta,
        write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        assert!(self.writing.is_none(), "a second background snapshot");
        let mut data = Vec::new();
        write(&mut data).expect("writing into memory cannot fail");
        self.writing = Some(Snapshot { meta: meta.clone(), data });
        Ok(())
    }

    fn poll_compaction(&mut self, _block: bool) -> Result<Option<Compaction>, StorageError> {
        let Some(snap) = self.writing.take() else { return Ok(None) };
        let meta = snap.meta.clone();
        if meta.index <= self.snap_index() {
            return Ok(Some(Compaction::Stale { meta }));
        }
        let first = self.snap_index() + 1;
        self.entries.drain(..(meta.index + 1 - first) as usize);
        let bytes = snap.data.len() as u64;
        self.snapshot = Some(snap);
        Ok(Some(Compaction::Done { meta, bytes, took: Duration::ZERO }))
    }
}

/// What one node's replica did in one `process` call.
#[derive(Default)]
struct Fx {
    id: NodeId,
    verbose: bool,
    out: String,
    sent: Vec<Message>,
    applied: Vec<Entry>,
    reads: Vec<ReadState>,
    dropped_reads: Vec<u64>,
    events: Vec<Event>,
}

impl Effects for Fx {
    fn send(&mut self, msg: Message) {
        self.sent.push(msg);
    }
    fn respond(&mut self, _to: Waiter, _response: Response) {}
    fn log(&mut self, _term: Term, _line: std::fmt::Arguments<'_>) {}
    fn event(&mut self, _term: Term, event: &Event) {
        self.events.push(event.clone());
        if self.verbose {
            writeln!(self.out, "n{}: {event}", self.id).unwrap();
        }
    }
    fn applied(&mut self, entry: &Entry, _result: &Applied) {
        self.applied.push(entry.clone());
    }
    fn read_served(&mut self, read: &ReadState) {
        self.reads.push(*read);
    }
    fn read_dropped(&mut self, id: u64) {
        self.dropped_reads.push(id);
    }
}

pub struct TestNode {
    pub replica: Replica<Disk>,
    pub config: Config,
    pub up: bool,
    /// A view of the state machine (raft-kv), refreshed after every batch.
    pub kv: BTreeMap<String, String>,
    pub applied: Index,
    /// Every entry this node applied since it started, by index (for the safety check).
    pub applied_log: BTreeMap<Index, Entry>,
    pub reads: Vec<ReadState>,
    pub dropped_reads: Vec<u64>,
    /// Every event of the core since the node started, in order.
    pub events: Vec<Event>,
}

pub struct Cluster {
    pub ids: Vec<NodeId>,
    pub nodes: BTreeMap<NodeId, TestNode>,
    /// Messages sent and not yet delivered, in send order.
    pub network: VecDeque<Message>,
    /// Directed links that drop messages.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Print every event and message (golden files) or stay quiet (unit tests).
    pub verbose: bool,
    pub out: String,
    /// term -> leader, over the whole history (Election Safety).
    leaders: HashMap<Term, NodeId>,
    /// index -> entry applied by anyone (State Machine Safety).
    applied: HashMap<Index, Entry>,
}

thread_local! {
    /// Each test runs on its own thread, so sessions count from 1 in every test and
    /// the commands (and their sizes) are the same on every run.
    static NEXT_SESSION: Cell<u64> = const { Cell::new(1) };
}

/// A raft-kv write `k = v`, on a session of its own.
pub fn encode_put(k: &str, v: &str) -> Vec<u8> {
    let session = NEXT_SESSION.with(|n| n.replace(n.get() + 1));
    let op = WriteOp::Set { key: k.into(), value: v.as_bytes().to_vec() };
    Command { session, seq: 1, op }.encode()
}

/// `k=v` for a raft-kv write, the raw bytes (lossy) for anything else.
fn show_command(bytes: &[u8]) -> String {
    match Command::decode(bytes) {
        Ok(Command { op: WriteOp::Set { key, value }, .. }) => format!("{key}={}", String::from_utf8_lossy(&value)),
        Ok(Command { op, .. }) => format!("{op:?}"),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

impl Cluster {
    /// `n` nodes with ids 1..=n; `tweak` adjusts each node's config.
    pub fn new(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let mut config = Config::new(id, ids.clone(), 42);
            // The scripts and tests here were written with a commit notice in the turn the
            // commit moves; `commit_notice_on_tick` has its own tests in basic.rs.
            config.commit_notice_on_tick = false;
            tweak(&mut config);
            nodes.insert(id, TestNode::start(config, Disk::default()));
        }
        Cluster::from_nodes(ids, nodes)
    }

    /// A cluster whose nodes start from the given disks (Figure 7 and 8 setups).
    pub fn with_disks(disks: Vec<Disk>, tweak: impl Fn(&mut Config)) -> Cluster {
        let ids: Vec<NodeId> = (1..=disks.len() as u64).collect();
        let mut nodes = BTreeMap::new();
        for (&id, disk) in ids.iter().zip(disks) {
            let mut config = Config::new(id, ids.clone(), 42);
            // The scripts and tests here were written with a commit notice in the turn the
            // commit moves; `commit_notice_on_tick` has its own tests in basic.rs.
            config.commit_notice_on_tick = false;
            tweak(&mut config);
            nodes.insert(id, TestNode::start(config, disk));
        }
        Cluster::from_nodes(ids, nodes)
    }

    fn from_nodes(ids: Vec<NodeId>, nodes: BTreeMap<NodeId, TestNode>) -> Cluster {
        Cluster {
            ids,
            nodes,
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            verbose: false,
            out: String::new(),
            leaders: HashMap::new(),
            applied: HashMap::new(),
        }
    }

    pub fn node(&self, id: NodeId) -> &RawNode {
        self.nodes[&id].replica.raft()
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut RawNode {
        self.nodes.get_mut(&id).expect("node exists").replica.raft_mut()
    }

    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// Handles every node's Ready batch, queueing what they send.
    pub fn process_all(&mut self) {
        for id in self.ids.clone() {
            self.process(id);
        }
        self.check_safety();
    }

    /// Handles one node's Ready, through the replica (one batch: golden scripts show
    /// every round). A batch that completed a received snapshot is followed by the one
    /// carrying the replica's verdict (installed or refused), as the shipped
    /// `process_ready` does: both answer the same delivered chunk.
    pub fn process(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.up {
            return;
        }
        let mut fx = Fx { id, verbose: self.verbose, ..Fx::default() };
        let sealed = node.disk().sealed;
        node.replica.advance(&mut fx).expect("in-memory storage never fails");
        if node.disk().sealed != sealed {
            node.replica.advance(&mut fx).expect("in-memory storage never fails");
        }
        node.refresh();
        node.events.extend(fx.events);
        self.out.push_str(&fx.out);
        self.network.extend(fx.sent);
        for e in fx.applied {
            if let Some(prev) = self.applied.get(&e.index) {
                assert_eq!(prev, &e, "State Machine Safety: n{id} applied a different entry at {}", e.index);
            } else {
                self.applied.insert(e.index, e.clone());
            }
            node.applied_log.insert(e.index, e);
        }
        for r in &fx.reads {
            assert!(r.index <= node.applied, "read {} served before applied reached {}", r.id, r.index);
            if self.verbose {
                writeln!(self.out, "n{id}: read id={} ready at index={} (applied={})", r.id, r.index, node.applied)
                    .unwrap();
            }
        }
        for r in &fx.dropped_reads {
            if self.verbose {
                writeln!(self.out, "n{id}: read id={r} dropped").unwrap();
            }
        }
        node.reads.extend(fx.reads);
        node.dropped_reads.extend(fx.dropped_reads);
    }

    fn check_safety(&mut self) {
        for (&id, n) in &self.nodes {
            if n.up && n.replica.raft().role() == RoleKind::Leader {
                let prev = self.leaders.insert(n.replica.raft().term(), id);
                assert!(prev.is_none() || prev == Some(id), "two leaders in term {}", n.replica.raft().term());
            }
        }
    }

    fn blocked(&self, m: &Message) -> bool {
        // A node that was never started (a member added before its process) gets nothing.
        let down = |id: &NodeId| self.nodes.get(id).is_none_or(|n| !n.up);
        self.cut.contains(&(m.from, m.to)) || down(&m.to) || down(&m.from)
    }

    /// Delivers every message queued now (not those sent in reaction), then handles the
    /// resulting Ready batches. Returns how many were delivered.
    pub fn deliver_round(&mut self, only: Option<&[NodeId]>) -> usize {
        let queued: Vec<Message> = self.network.drain(..).collect();
        let mut n = 0;
        for m in queued {
            if let Some(only) = only {
                if !only.contains(&m.to) {
                    self.network.push_back(m);
                    continue;
                }
            }
            if self.blocked(&m) {
                if self.verbose {
                    writeln!(self.out, "{m}  [dropped]").unwrap();
                }
                continue;
            }
            if self.verbose {
                writeln!(self.out, "{m}").unwrap();
            }
            let to = m.to;
            self.node_mut(to).step(m).expect("step");
            n += 1;
        }
        self.process_all();
        n
    }

    /// Delivers until the network is quiet.
    pub fn stabilize(&mut self) {
        self.process_all();
        for _ in 0..1000 {
            if self.network.is_empty() {
                return;
            }
            self.deliver_round(None);
        }
        panic!("cluster did not stabilize in 1000 rounds");
    }

    pub fn tick(&mut self, id: NodeId) {
        if self.nodes[&id].up {
            self.node_mut(id).tick();
        }
    }

    /// Ticks every node `n` times, delivering messages after each tick.
    pub fn tick_all_stabilize(&mut self, n: usize) {
        for _ in 0..n {
            for id in self.ids.clone() {
                self.tick(id);
            }
            self.stabilize();
        }
    }

    pub fn campaign(&mut self, id: NodeId) {
        self.node_mut(id).campaign();
        self.stabilize();
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes.iter().find(|(_, n)| n.up && n.replica.raft().role() == RoleKind::Leader).map(|(&id, _)| id)
    }

    pub fn put(&mut self, id: NodeId, k: &str, v: &str) -> Result<Index, ProposeError> {
        self.node_mut(id).propose(encode_put(k, v))
    }

    /// Cuts every link between `group` and the rest.
    pub fn partition(&mut self, group: &[NodeId]) {
        for &a in &self.ids {
            for &b in &self.ids {
                if group.contains(&a) != group.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The node loses everything it did not persist.
    pub fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.up = false;
        self.network.retain(|m| m.from != id && m.to != id);
    }

    pub fn restart(&mut self, id: NodeId) {
        self.restart_with(id, |_| {});
    }

    /// Restarts the node from its disk, changed by `change` first (test hooks).
    pub fn restart_with(&mut self, id: NodeId, change: impl FnOnce(&mut Disk)) {
        let n = self.nodes.remove(&id).expect("node exists");
        let mut disk = n.replica.store().rebooted();
        change(&mut disk);
        let restarted = TestNode::start(n.config.clone(), disk);
        self.nodes.insert(id, restarted);
    }

    /// Starts node `id` with an empty disk, outside the bootstrap configuration: it joins
    /// once a leader adds it (as learner) and never campaigns before.
    pub fn add_node(&mut self, id: NodeId) {
        assert!(!self.nodes.contains_key(&id), "n{id} exists");
        let template = self.nodes.values().next().expect("a cluster has nodes");
        let mut config = template.config.clone();
        config.id = id;
        self.nodes.insert(id, TestNode::start(config, Disk::default()));
        self.ids.push(id);
        // The new node is connected to everyone, whatever partition is in force.
    }

    /// One membership change proposed at `id`.
    pub fn change(&mut self, id: NodeId, change: MembershipChange) -> Result<Index, MembershipError> {
        let r = self.node_mut(id).propose_membership(change);
        self.process_all();
        r
    }

    /// `n1: voters n1,n2,n3 learners n4 (index 5)`.
    pub fn members_line(&self, id: NodeId) -> String {
        let raft = self.node(id);
        format!("n{id}: {} (index {})", raft.membership(), raft.membership_index())
    }

    /// The node snapshots its state machine at its applied index and compacts.
    pub fn compact(&mut self, id: NodeId) -> Index {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let index = n.applied;
        let mut fx = Fx { id, verbose: self.verbose, ..Fx::default() };
        n.replica.compact(&mut fx).expect("in-memory storage never fails");
        n.refresh();
        n.events.extend(fx.events);
        self.out.push_str(&fx.out);
        self.network.extend(fx.sent);
        self.process_all();
        index
    }

    pub fn status_line(&self, id: NodeId) -> String {
        let n = &self.nodes[&id];
        if !n.up {
            return format!("n{id}: down");
        }
        let s = n.replica.raft().status();
        let mut line = format!(
            "n{id}: {} term={} leader={} last={} commit={} applied={} snap={}",
            s.role,
            s.term,
            s.leader.map_or("none".into(), |l| format!("n{l}")),
            s.last_index,
            s.commit,
            s.applied,
            s.snapshot_index
        );
        for p in &s.progress {
            write!(line, " [n{} {} match={} next={}]", p.id, p.state, p.match_index, p.next_index).unwrap();
        }
        line
    }

    pub fn log_line(&self, id: NodeId) -> String {
        let n = &self.nodes[&id];
        let mut line = format!("n{id}:");
        let raft = n.replica.raft();
        if raft.status().snapshot_index > 0 {
            write!(line, " snap={}", raft.status().snapshot_index).unwrap();
        }
        for e in raft.log_entries() {
            match &e.data {
                EntryData::Noop => write!(line, " {e}").unwrap(),
                EntryData::Command(c) => write!(line, " {e}:{}", show_command(c)).unwrap(),
                EntryData::Config(m) => write!(line, " {e}({m})").unwrap(),
            }
        }
        line
    }

    /// Every up node applied the same entries up to its applied index, and the logs of
    /// all up nodes agree on every index two of them have with the same term (Log Matching).
    pub fn assert_logs_match(&self) {
        let up: Vec<&TestNode> = self.nodes.values().filter(|n| n.up).collect();
        for a in &up {
            for b in &up {
                for e in a.replica.raft().log_entries() {
                    if let Some(f) = b.replica.raft().entry(e.index) {
                        if f.term == e.term {
                            assert_eq!(e, f, "Log Matching broken at {}", e.index);
                        }
                    }
                }
            }
        }
    }
}

impl TestNode {
    pub fn start(config: Config, disk: Disk) -> TestNode {
        let restored = disk.restored();
        let opts = ReplicaOptions::new(u64::MAX, u64::MAX);
        let mut fx = Fx::default();
        let replica = Replica::recover(config.clone(), disk, restored, opts, &mut fx).expect("valid node");
        let mut node = TestNode {
            replica,
            config,
            up: true,
            kv: BTreeMap::new(),
            applied: 0,
            applied_log: BTreeMap::new(),
            reads: Vec::new(),
            dropped_reads: Vec::new(),
            events: Vec::new(),
        };
        node.refresh();
        node
    }

    /// What this node has on its "disk".
    pub fn disk(&self) -> &Disk {
        self.replica.store()
    }

    fn refresh(&mut self) {
        let kv = self.replica.kv();
        self.applied = kv.applied();
        self.kv = kv.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect();
    }
}

/// A log of `terms[k]` at index k+1 (no-ops; the content does not matter for matching).
pub fn log_of_terms(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(k, &t)| Entry {
            index: k as Index + 1,
            term: t,
            data: EntryData::Command(format!("x{}={t}", k + 1).into_bytes()),
        })
        .collect()
}
