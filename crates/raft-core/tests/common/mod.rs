//! A small deterministic in-memory cluster for the tests: nodes with in-memory
//! "disks", a message queue as the network, partitions, crashes and restarts, and a tiny
//! key-value state machine (`K=V` commands). Every batch is handled in the documented
//! order, and safety is checked after every delivery: one leader per term, applied
//! entries agree across nodes, commit and applied never move back.

#![allow(dead_code)]

use raft_core::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

/// What one node keeps on its "disk".
#[derive(Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot.
    pub entries: Vec<Entry>,
}

impl Disk {
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
        Restored { hard_state: self.hard_state, snapshot: self.snapshot.clone(), entries: self.entries.clone() }
    }
}

pub struct TestNode {
    pub raw: RawNode,
    pub config: Config,
    pub disk: Disk,
    pub up: bool,
    /// The state machine.
    pub kv: BTreeMap<String, String>,
    pub applied: Index,
    /// Every entry this node applied since it started, by index (for the safety check).
    pub applied_log: BTreeMap<Index, Entry>,
    pub reads: Vec<ReadState>,
    pub dropped_reads: Vec<u64>,
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

pub fn encode_put(k: &str, v: &str) -> Vec<u8> {
    format!("{k}={v}").into_bytes()
}

fn snapshot_bytes(kv: &BTreeMap<String, String>) -> Vec<u8> {
    kv.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()
}

fn parse_snapshot(data: &[u8]) -> BTreeMap<String, String> {
    let s = String::from_utf8(data.to_vec()).expect("utf8 snapshot");
    s.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("k=v");
            (k.to_string(), v.to_string())
        })
        .collect()
}

impl Cluster {
    /// `n` nodes with ids 1..=n; `tweak` adjusts each node's config.
    pub fn new(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let mut config = Config::new(id, ids.clone(), 42);
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
        &self.nodes[&id].raw
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut RawNode {
        &mut self.nodes.get_mut(&id).expect("node exists").raw
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

    /// Handles one node's Ready in the documented order.
    pub fn process(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.up {
            return;
        }
        let rd = node.raw.ready();
        for e in &rd.events {
            if self.verbose {
                writeln!(self.out, "n{id}: {e}").unwrap();
            }
        }
        // 1. Messages that promise nothing durable.
        self.network.extend(rd.messages);
        // 2. Persist snapshot, hard state, entries.
        let node = self.nodes.get_mut(&id).expect("node exists");
        if let Some(s) = &rd.snapshot {
            node.disk.snapshot = Some(s.clone());
            node.disk.entries.clear();
        }
        if let Some(hs) = rd.hard_state {
            node.disk.hard_state = hs;
        }
        node.disk.write_entries(&rd.entries);
        // 3. Report durability.
        if let Some(last) = rd.entries.last() {
            node.raw.persisted(last.index, last.term);
        }
        // 4. Messages that promise durable state.
        self.network.extend(rd.persisted_messages);
        // 5. Install the snapshot, apply committed entries.
        let node = self.nodes.get_mut(&id).expect("node exists");
        if let Some(s) = rd.snapshot {
            node.kv = parse_snapshot(&s.data);
            assert!(s.meta.index >= node.applied, "snapshot moves applied back");
            node.applied = s.meta.index;
        }
        for e in rd.committed {
            assert_eq!(e.index, node.applied + 1, "n{id}: committed entries out of order");
            node.applied = e.index;
            if let EntryData::Command(c) = &e.data {
                let s = String::from_utf8(c.clone()).expect("utf8");
                let (k, v) = s.split_once('=').expect("k=v");
                node.kv.insert(k.to_string(), v.to_string());
            }
            if let Some(prev) = self.applied.get(&e.index) {
                assert_eq!(prev, &e, "State Machine Safety: n{id} applied a different entry at {}", e.index);
            } else {
                self.applied.insert(e.index, e.clone());
            }
            node.applied_log.insert(e.index, e);
        }
        // 6. Reads.
        for r in &rd.reads {
            assert!(r.index <= node.applied, "read {} served before applied reached {}", r.id, r.index);
            if self.verbose {
                writeln!(self.out, "n{id}: read id={} ready at index={} (applied={})", r.id, r.index, node.applied)
                    .unwrap();
            }
        }
        for r in &rd.dropped_reads {
            if self.verbose {
                writeln!(self.out, "n{id}: read id={r} dropped").unwrap();
            }
        }
        node.reads.extend(rd.reads);
        node.dropped_reads.extend(rd.dropped_reads);
    }

    fn check_safety(&mut self) {
        for (&id, n) in &self.nodes {
            if n.up && n.raw.role() == RoleKind::Leader {
                let prev = self.leaders.insert(n.raw.term(), id);
                assert!(prev.is_none() || prev == Some(id), "two leaders in term {}", n.raw.term());
            }
        }
    }

    fn blocked(&self, m: &Message) -> bool {
        self.cut.contains(&(m.from, m.to)) || !self.nodes[&m.to].up || !self.nodes[&m.from].up
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
        self.nodes.iter().find(|(_, n)| n.up && n.raw.role() == RoleKind::Leader).map(|(&id, _)| id)
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
        let n = self.nodes.remove(&id).expect("node exists");
        let restarted = TestNode::start(n.config.clone(), n.disk.clone());
        self.nodes.insert(id, restarted);
    }

    /// The node snapshots its state machine at its applied index and compacts.
    pub fn compact(&mut self, id: NodeId) -> Index {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let index = n.applied;
        let data = snapshot_bytes(&n.kv);
        let term = n.disk.entries.iter().find(|e| e.index == index).map(|e| e.term).expect("applied entry on disk");
        n.raw.compact(index, data.clone());
        // The driver writes its snapshot file and drops the covered WAL prefix.
        let first = n.disk.snap_index() + 1;
        n.disk.entries.drain(..(index + 1 - first) as usize);
        let voters = self.ids.clone();
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.disk.snapshot = Some(Snapshot { meta: SnapshotMeta { index, term, voters }, data });
        self.process_all();
        index
    }

    pub fn status_line(&self, id: NodeId) -> String {
        let n = &self.nodes[&id];
        if !n.up {
            return format!("n{id}: down");
        }
        let s = n.raw.status();
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
        if n.raw.status().snapshot_index > 0 {
            write!(line, " snap={}", n.raw.status().snapshot_index).unwrap();
        }
        for e in n.raw.log_entries() {
            match &e.data {
                EntryData::Noop => write!(line, " {e}").unwrap(),
                EntryData::Command(c) => write!(line, " {e}:{}", String::from_utf8_lossy(c)).unwrap(),
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
                for e in a.raw.log_entries() {
                    if let Some(f) = b.raw.entry(e.index) {
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
        let raw = RawNode::new(config.clone(), disk.restored()).expect("valid node");
        let kv = disk.snapshot.as_ref().map(|s| parse_snapshot(&s.data)).unwrap_or_default();
        let applied = disk.snapshot.as_ref().map_or(0, |s| s.meta.index);
        TestNode {
            raw,
            config,
            disk,
            up: true,
            kv,
            applied,
            applied_log: BTreeMap::new(),
            reads: Vec::new(),
            dropped_reads: Vec::new(),
        }
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
