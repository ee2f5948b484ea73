//! One simulated cluster: nodes (each a real [`raft_replica::Replica`] over a simulated
//! disk), the network, clients and the checkers, driven tick by tick from one seed.
//! The loop and a node's turn are here; `checks`, `clients` and `faults` hold the rest.

use crate::check::{Checker, Kind, Violation};
use crate::disk::{entry_digest, DiskState, DiskWrite, SimDisk};
use crate::effects::{Output, SimFx};
use crate::net::{Fate, NetConditions, Network};
use crate::profile::{Options, Profile, LIVENESS_BOUND_TICKS};
use crate::rng::FxHashMap;
use crate::rng::Rng;
use raft_core::{Config, Entry, Index, MembershipChange, Message, MessageBody, NodeId, RoleKind, Term};
use raft_kv::{Applied, ReadOp, Reply, WriteOp};
use raft_lincheck::{Op, Operation, Outcome, Verdict};
use raft_replica::{Replica, ReplicaError, ReplicaOptions, Waiter};
use raft_wire::Response;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// Search steps per key the linearizability checker may spend on a history with
/// unknown outcomes (each may or may not have happened, at any time after it was
/// invoked: exponential in the worst case). Past it, the simulator checks the history
/// again with those outcomes resolved from the log, which is cheap.
const LINCHECK_STEPS_PER_KEY: u64 = 200_000;
/// An armed crash lands after this many durable steps of a turn at most. A turn's
/// batches take a few steps each (an install: term and vote, snapshot file, log
/// removal, fresh segment; a conflict: hard-state file, cut; then the write; a
/// compaction: two), so this reaches the steps of several batches and a compaction,
/// and a draw past a short turn's end is a turn without a crash.
const MAX_CRASH_STEPS: u64 = 12;

/// Counters of one run (or, added up, of many).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Turns: one input (tick, message, proposal, read, transfer, compaction, restart)
    /// plus the output batches it produced. Invariants are checked after each.
    pub steps: u64,
    pub ticks: u64,
    /// Messages delivered to a running node.
    pub messages: u64,
    /// Distinct (term, leader) pairs.
    pub elections: u64,
    /// Snapshots installed from a leader (InstallSnapshot completed).
    pub snapshots: u64,
    pub compactions: u64,
    pub crashes: u64,
    pub transfers: u64,
    /// Membership changes a leader accepted (promotions by the leader not counted).
    pub membership_changes: u64,
    /// Client operations with a known outcome.
    pub ops: u64,
    /// Client writes given up on (outcome unknown).
    pub unknown: u64,
    /// Runs whose history the linearizability checker could not decide in its budget.
    pub inconclusive: u64,
    /// The longest time, in ticks, a cluster took to settle after faults stopped.
    pub max_settle_ticks: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.ticks += o.ticks;
        self.messages += o.messages;
        self.elections += o.elections;
        self.snapshots += o.snapshots;
        self.compactions += o.compactions;
        self.crashes += o.crashes;
        self.transfers += o.transfers;
        self.membership_changes += o.membership_changes;
        self.ops += o.ops;
        self.unknown += o.unknown;
        self.inconclusive += o.inconclusive;
        self.max_settle_ticks = self.max_settle_ticks.max(o.max_settle_ticks);
    }
}

/// A write's effect, as the simulator's client model and the checker see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Set { key: String, value: String },
    Delete { key: String },
    Cas { key: String, expected: Option<String>, new: String },
}

impl KvOp {
    pub fn key(&self) -> &str {
        match self {
            KvOp::Set { key, .. } | KvOp::Delete { key } | KvOp::Cas { key, .. } => key,
        }
    }

    fn to_write(&self) -> WriteOp {
        match self.clone() {
            KvOp::Set { key, value } => WriteOp::Set { key, value: value.into_bytes() },
            KvOp::Delete { key } => WriteOp::Delete { key },
            KvOp::Cas { key, expected, new } => {
                WriteOp::Cas { key, expected: expected.map(String::into_bytes), new: new.into_bytes() }
            }
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvResult {
    Done,
    Cas(bool),
}

fn kv_result(reply: &Reply) -> Option<KvResult> {
    match reply {
        Reply::Done | Reply::Deleted { .. } => Some(KvResult::Done),
        Reply::Cas { ok, .. } => Some(KvResult::Cas(*ok)),
        Reply::Value(_) | Reply::Keys(_) => None,
        // The RESP front end's replies: the simulator's clients never ask for them.
        _ => None,
    }
}

/// A node: its replica while it runs, its disk always.
struct SimNode {
    id: NodeId,
    replica: Option<Replica<SimDisk>>,
    disk: Rc<RefCell<DiskState>>,
    /// What the last status of this incarnation said.
    role: RoleKind,
    term: Term,
    leader: Option<NodeId>,
    commit: Index,
    /// Paused (SIGSTOP) until this tick; 0 when not paused.
    paused_until: u64,
    /// Share of ticks this node's clock skips (clock drift).
    drift_per_mille: u32,
    /// The supervisor runs this node: a bootstrap voter, or a slot added as a member
    /// (and not yet stopped after its removal). Only these are restarted.
    joined: bool,
}

impl SimNode {
    fn last_index(&self) -> Index {
        self.disk.borrow().image.last_index()
    }

    fn applied(&self) -> Index {
        self.replica.as_ref().map_or(0, |r| r.kv().applied())
    }
}

macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        if $sim.trace.is_some() {
            let line = format!($($arg)*);
            $sim.emit(&line);
        }
    };
}

mod checks;
mod clients;
mod faults;

use clients::Client;

/// One simulated cluster, from one seed. See the crate docs for the loop it runs.
pub struct Sim {
    pub seed: u64,
    pub profile: Profile,
    rng: Rng,
    nodes: Vec<SimNode>,
    net: Network,
    clients: Vec<Client>,
    checker: Checker,
    history: Vec<Operation>,
    /// `(client, seq)` of each history entry, to resolve unknown outcomes.
    history_ids: Vec<(u64, u64)>,
    /// The first time any node applied `(client, seq)` with effect, and what it did:
    /// the ground truth behind an outcome the client never learned.
    effects: FxHashMap<(u64, u64), (u64, KvResult)>,
    tick: u64,
    /// The history clock: advances once per turn, so client operations get a total
    /// order of invocation and completion instants.
    now: u64,
    stats: Stats,
    trace: Option<Box<dyn Write>>,
    next_request: u64,
    settling: bool,
    #[cfg(feature = "bugs")]
    bug: Option<crate::profile::Bug>,
}

impl Sim {
    /// A cluster for `seed`; with `trace`, every tick, message, crash, partition, client
    /// operation and core event is written to it, one line each.
    pub fn new(seed: u64, opts: &Options, trace: Option<Box<dyn Write>>) -> Sim {
        let profile = Profile::from_seed(seed, opts);
        let n = profile.nodes + profile.spare_nodes;
        let mut rng = Rng::new(seed);
        let nodes = (1..=n as NodeId)
            .map(|id| {
                #[allow(unused_mut)]
                let mut disk = DiskState::default();
                #[cfg(feature = "bugs")]
                {
                    disk.commit_before_snapshot = opts.bug == Some(crate::profile::Bug::CommitBeforeSnapshot);
                }
                SimNode {
                    id,
                    replica: None,
                    disk: Rc::new(RefCell::new(disk)),
                    role: RoleKind::Follower,
                    term: 0,
                    leader: None,
                    commit: 0,
                    paused_until: 0,
                    drift_per_mille: rng.below(u64::from(profile.drift_per_mille) + 1) as u32,
                    joined: id as usize <= profile.nodes,
                }
            })
            .collect::<Vec<_>>();
        let clients = (1..=profile.clients as u64)
            .map(|id| Client {
                id,
                seq: 0,
                target: rng.below(n as u64) as usize,
                pending: None,
                seen: vec![None; profile.keys],
            })
            .collect();
        Sim {
            seed,
            net: Network::new(n, profile.conditions()),
            profile,
            rng,
            nodes,
            clients,
            checker: Checker::default(),
            history: Vec::new(),
            history_ids: Vec::new(),
            effects: FxHashMap::default(),
            tick: 0,
            now: 0,
            stats: Stats::default(),
            trace,
            next_request: 1,
            settling: false,
            #[cfg(feature = "bugs")]
            bug: opts.bug,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn tick(&self) -> u64 {
        self.tick
    }

    fn emit(&mut self, line: &str) {
        if let Some(w) = self.trace.as_mut() {
            let _ = writeln!(w, "t={} {}", self.tick, line);
        }
    }

    /// Runs the whole schedule: the fault phase, then the settle phase, then the
    /// linearizability check. Stops at the first violation.
    pub fn run(&mut self) -> Result<(), Violation> {
        let result = self.run_inner();
        self.stats.elections = self.checker.elections;
        if let (Err(v), true) = (&result, self.trace.is_some()) {
            let line = format!("state: {}", self.describe_state());
            self.emit(&line);
            let line = format!("VIOLATION {v}");
            self.emit(&line);
        }
        if let Some(w) = self.trace.as_mut() {
            let _ = w.flush();
        }
        result
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        trace!(self, "seed {} profile {}", self.seed, self.profile);
        for i in 0..self.nodes.len() {
            if self.nodes[i].joined {
                self.start(i)?;
            }
        }
        while self.tick < self.profile.fault_ticks {
            self.step_tick()?;
        }
        self.begin_settling()?;
        let start = self.tick;
        loop {
            self.step_tick()?;
            if self.settled() {
                break;
            }
            if self.tick - start >= LIVENESS_BOUND_TICKS {
                let state = self.describe_state();
                return self.checker.fail(
                    Kind::Liveness,
                    format!("not settled {LIVENESS_BOUND_TICKS} ticks after faults stopped: {state}"),
                );
            }
        }
        self.stats.max_settle_ticks = self.tick - start;
        trace!(self, "settled after {} ticks", self.tick - start);
        self.check_history()
    }

    // ---------------------------------------------------------------- the loop

    fn step_tick(&mut self) -> Result<(), Violation> {
        self.tick += 1;
        self.stats.ticks += 1;
        self.checker.tick = self.tick;
        trace!(self, "tick");
        if !self.settling {
            self.inject_faults()?;
        }
        self.follow_membership()?;
        self.clients_act()?;
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if node.paused_until != 0 && node.paused_until <= self.tick {
                node.paused_until = 0;
                trace!(self, "resume n{}", i + 1);
            }
        }
        let mut order: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.runs(i)).collect();
        self.rng.shuffle(&mut order);
        for i in order {
            if self.settling || !self.rng.per_mille(self.nodes[i].drift_per_mille) {
                if let Some(r) = self.nodes[i].replica.as_mut() {
                    r.raft_mut().tick();
                    self.turn(i, |_, _| Ok(()))?;
                }
            }
        }
        self.deliver()
    }

    /// Running and not paused: takes ticks, messages and client requests.
    fn runs(&self, i: usize) -> bool {
        self.nodes[i].replica.is_some() && self.nodes[i].paused_until == 0
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        while let Some(m) = self.net.pop_due(self.tick) {
            let to = m.to as usize - 1;
            if self.net.is_blocked(m.from, m.to) {
                trace!(self, "drop {m} (partitioned)");
                continue;
            }
            if self.nodes[to].replica.is_none() {
                trace!(self, "drop {m} (n{} is down)", m.to);
                continue;
            }
            let paused_until = self.nodes[to].paused_until;
            if paused_until != 0 {
                self.net.hold(&mut self.rng, paused_until, m);
                continue;
            }
            if self.trace.is_some() {
                let line = m.to_string();
                self.emit(&line);
            }
            self.stats.messages += 1;
            let step = self.nodes[to].replica.as_mut().expect("running").raft_mut().step(m);
            if let Err(e) = step {
                return self.checker.fail(Kind::Contract, format!("n{} refused a message: {e}", to + 1));
            }
            self.turn(to, |_, _| Ok(()))?;
        }
        Ok(())
    }

    /// One turn of node `i`, as its node process would take it: `input` feeds the
    /// replica (a client request), then the replica carries out every `Ready` and maybe
    /// compacts. A crash may be armed to strike between any two durable steps. Then the
    /// effects are checked and delivered, and the node's status is checked.
    fn turn(
        &mut self,
        i: usize,
        input: impl FnOnce(&mut Replica<SimDisk>, &mut SimFx) -> Result<(), ReplicaError>,
    ) -> Result<(), Violation> {
        self.now += 1;
        self.stats.steps += 1;
        let crash = !self.settling && self.rng.per_mille(self.profile.torn_per_mille);
        if crash {
            // Skewed toward the first steps (most turns take one or two), reaching the
            // last ones too.
            let reach = self.rng.below(MAX_CRASH_STEPS) + 1;
            let steps = self.rng.below(reach) as u32;
            let seed = self.rng.next_u64();
            self.nodes[i].disk.borrow_mut().arm_crash(steps, seed);
        }
        let mut fx = SimFx::new(self.nodes[i].disk.clone(), self.trace.is_some());
        let replica = self.nodes[i].replica.as_mut().expect("a turn of a running node");
        let mut busy = false;
        let mut result = input(replica, &mut fx).and_then(|()| replica.process_ready(&mut fx)).map(|any| busy = any);
        let outputs = fx.take();
        // Checked before compacting: after it, the applied entries are in the snapshot.
        let on_disk = if result.is_ok() { self.applied_entries_on_disk(i, &outputs) } else { Ok(()) };
        if result.is_ok() {
            let replica = self.nodes[i].replica.as_mut().expect("still running");
            result = replica.poll_compaction(false, &mut fx).and_then(|()| replica.maybe_compact(&mut fx));
        }
        let compaction = fx.take();
        self.nodes[i].disk.borrow_mut().disarm();
        self.drain(i, outputs)?;
        self.drain(i, compaction)?;
        on_disk?;
        match result {
            Ok(()) => {}
            Err(ReplicaError::Storage(_)) if self.nodes[i].disk.borrow().crashed() => {
                self.crash(i, "mid-turn, between two storage steps");
                return Ok(());
            }
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{}: {e}", i + 1)),
        }
        if !busy {
            // No batch: nothing a checker can see changed (a change of term, vote,
            // commit, role or log always comes in a batch), so skip the status round
            // trip. Most ticks of most nodes end here.
            return Ok(());
        }
        self.check_node(i)
    }

    /// A committed entry may be applied before this turn's fsync, even over a stale
    /// conflicting entry still on disk; once the batches are done, every entry applied
    /// must be on the node's disk as it was applied.
    fn applied_entries_on_disk(&mut self, i: usize, outputs: &[Output]) -> Result<(), Violation> {
        for o in outputs {
            let Output::Applied { entry: e, .. } = o else { continue };
            let disk = self.nodes[i].disk.borrow();
            let on_disk = disk.image.entry(e.index).map(|d| (d.term, entry_digest(d)));
            let snapshot = disk.image.snapshot_index();
            drop(disk);
            let why = match on_disk {
                Some((t, d)) if (t, d) == (e.term, entry_digest(e)) => continue,
                Some((t, _)) => format!("n{} applied {e} but its disk ends the turn with term {t} there", i + 1),
                None if e.index <= snapshot => continue,
                None => format!("n{} applied {e}, which is not on its disk", i + 1),
            };
            return self.checker.fail(Kind::Contract, why);
        }
        Ok(())
    }

    /// Delivers one turn's effects in the order the replica produced them, checking each.
    fn drain(&mut self, i: usize, outputs: Vec<Output>) -> Result<(), Violation> {
        let journal = std::mem::take(&mut self.nodes[i].disk.borrow_mut().journal);
        self.check_writes(i, journal)?;
        for out in outputs {
            match out {
                Output::Send { msg, disk } => self.send(i, msg, disk)?,
                Output::Respond { to, response } => self.on_response(i, to, response)?,
                Output::Applied { entry, result } => self.applied(i, &entry, result)?,
                Output::Restored { index, term, digest } => {
                    self.stats.snapshots += 1;
                    trace!(self, "n{}: installs snapshot {index}@{term}", i + 1);
                    self.checker.snapshot(i as NodeId + 1, index, digest)?;
                }
                Output::Log(line) => trace!(self, "n{}: {line}", i + 1),
            }
        }
        Ok(())
    }

    fn send(&mut self, i: usize, m: Message, disk: crate::effects::DiskFacts) -> Result<(), Violation> {
        let from = i as NodeId + 1;
        let n = self.nodes.len() as NodeId;
        if m.from != from || m.to == 0 || m.to > n || m.to == from {
            return self.checker.fail(Kind::Contract, format!("n{from} emitted a misaddressed message: {m}"));
        }
        match &m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::TimeoutNow => {
                self.checker.leader(m.term, from, "sent a leader-only message")?;
            }
            MessageBody::VoteResponse { granted: true } => {
                self.checker.vote_granted(from, m.term, m.to)?;
                // Persist before you speak (§5.1, Figure 2): the vote is on disk.
                let hs = disk.hard_state;
                if hs.term != m.term || hs.vote != Some(m.to) {
                    return self.checker.fail(
                        Kind::Contract,
                        format!(
                            "n{from} sent a vote before persisting it (disk: term {} vote {:?}): {m}",
                            hs.term, hs.vote
                        ),
                    );
                }
            }
            MessageBody::AppendResponse { success: true, match_index, .. }
                if disk.hard_state.term < m.term || disk.last_index < *match_index =>
            {
                return self.checker.fail(
                    Kind::Contract,
                    format!(
                        "n{from} acknowledged entries before persisting them (disk: term {} last {}): {m}",
                        disk.hard_state.term, disk.last_index
                    ),
                );
            }
            // Covered by a snapshot on disk, or by a log that already reaches it.
            MessageBody::InstallSnapshotResponse { installed: Some(index), .. } if disk.last_index < *index => {
                return self.checker.fail(
                    Kind::Contract,
                    format!(
                        "n{from} acknowledged a snapshot before persisting it (disk: snapshot {} last {}): {m}",
                        disk.snapshot_index, disk.last_index
                    ),
                );
            }
            _ => {}
        }
        let line = self.trace.is_some().then(|| m.to_string());
        let fate = self.net.send(&mut self.rng, self.tick, m);
        if let Some(line) = line {
            match fate {
                Fate::Lost => self.emit(&format!("lost {line}")),
                Fate::Duplicated { .. } => self.emit(&format!("duplicated {line}")),
                Fate::Queued { .. } => {}
            }
        }
        Ok(())
    }
}

/// Runs `seed` and returns what it found, with a core panic turned into a violation.
pub(crate) fn run_one(sim: &mut Sim) -> Result<(), Violation> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run())) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_string());
            sim.stats.elections = sim.checker.elections;
            if sim.trace.is_some() {
                sim.emit(&format!("PANIC {msg}"));
                if let Some(w) = sim.trace.as_mut() {
                    let _ = w.flush();
                }
            }
            Err(Violation { kind: Kind::Panic, tick: sim.tick, detail: msg })
        }
    }
}
