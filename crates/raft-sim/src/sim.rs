//! One simulated cluster: nodes (each a real [`raft_replica::Replica`] over a simulated
//! disk), the network, clients and the checkers, driven tick by tick from one seed.

use crate::check::{Checker, Kind, Violation};
use crate::disk::{entry_digest, DiskState, DiskWrite, SimDisk};
use crate::effects::{Output, SimFx};
use crate::net::{Fate, NetConditions, Network};
use crate::profile::{Options, Profile, LIVENESS_BOUND_TICKS};
use crate::rng::FxHashMap;
use crate::rng::Rng;
use raft_core::{Config, Entry, Index, Message, MessageBody, NodeId, RoleKind, Term};
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
/// Most durable steps one turn takes (an install: hard state, snapshot, log reset, plus
/// the entries' write): an armed crash lands between any two of them, or after all.
const MAX_CRASH_STEPS: u64 = 5;

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
}

impl SimNode {
    fn last_index(&self) -> Index {
        self.disk.borrow().image.last_index()
    }

    fn applied(&self) -> Index {
        self.replica.as_ref().map_or(0, |r| r.kv().applied())
    }
}

#[derive(Clone, Debug)]
enum ClientOp {
    Write(KvOp),
    Read { key: String },
}

impl ClientOp {
    fn key(&self) -> &str {
        match self {
            ClientOp::Write(op) => op.key(),
            ClientOp::Read { key } => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttemptKind {
    Write,
    Read,
}

/// One try of an operation at one node.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    node: usize,
    kind: AttemptKind,
    /// The request id the node answers to (unique per simulation).
    request: u64,
    deadline_tick: u64,
}

struct Pending {
    seq: u64,
    op: ClientOp,
    invoke: u64,
    give_up_tick: u64,
    attempt: Option<Attempt>,
    next_try_tick: u64,
}

/// A client with one session: one operation at a time, retried with the same sequence
/// number until answered or given up.
struct Client {
    id: u64,
    seq: u64,
    /// Index of the node it will try next (its guess of the leader).
    target: usize,
    pending: Option<Pending>,
    /// The last value it saw per key, for plausible cas expectations.
    seen: Vec<Option<String>>,
}

macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        if $sim.trace.is_some() {
            let line = format!($($arg)*);
            $sim.emit(&line);
        }
    };
}

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
        let n = profile.nodes;
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
            self.start(i)?;
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
            let steps = self.rng.below(MAX_CRASH_STEPS) as u32;
            let seed = self.rng.next_u64();
            self.nodes[i].disk.borrow_mut().arm_crash(steps, seed);
        }
        let mut fx = SimFx::new(self.nodes[i].disk.clone(), self.trace.is_some());
        let voters: Vec<NodeId> = (1..=self.nodes.len() as NodeId).collect();
        let replica = self.nodes[i].replica.as_mut().expect("a turn of a running node");
        let result = input(replica, &mut fx)
            .and_then(|()| replica.process_ready(&mut fx))
            .and_then(|()| replica.maybe_compact(&voters, &mut fx));
        self.nodes[i].disk.borrow_mut().disarm();
        let outputs = fx.take();
        let applied: Vec<(Index, Term, u64)> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Applied { entry, .. } => Some((entry.index, entry.term, entry_digest(entry))),
                _ => None,
            })
            .collect();
        self.drain(i, outputs)?;
        match result {
            Ok(()) => {}
            Err(ReplicaError::Storage(_)) if self.nodes[i].disk.borrow().crashed() => {
                self.crash(i, "mid-turn, between two storage steps");
                return Ok(());
            }
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{}: {e}", i + 1)),
        }
        // A committed entry may be applied before this turn's fsync, even over a stale
        // conflicting entry still on disk; once the turn is done the disk must agree.
        for (index, term, d) in applied {
            let on_disk = self.nodes[i].disk.borrow().image.entry(index).map(|e| (e.term, entry_digest(e)));
            if let Some((t, dd)) = on_disk {
                if (t, dd) != (term, d) {
                    let why =
                        format!("n{} applied {index}@{term} but its disk ends the turn with term {t} there", i + 1);
                    return self.checker.fail(Kind::Contract, why);
                }
            }
        }
        self.check_node(i)
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

    // ---------------------------------------------------------------- the disk

    /// Feeds what the node wrote to its disk this turn to the checkers.
    fn check_writes(&mut self, i: usize, journal: Vec<DiskWrite>) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        for w in journal {
            match w {
                DiskWrite::HardState { old, new } => {
                    if new.term < old.term {
                        return self.checker.fail(
                            Kind::Regression,
                            format!("n{id} term on disk moved back {} -> {}", old.term, new.term),
                        );
                    }
                    if new.term == old.term && old.vote.is_some() && new.vote != old.vote {
                        return self.checker.fail(
                            Kind::VoteSafety,
                            format!(
                                "n{id} changed its vote in term {} from {:?} to {:?} on disk",
                                new.term, old.vote, new.vote
                            ),
                        );
                    }
                }
                DiskWrite::Entry { index, term, prev_term, digest } => {
                    let Some(prev_term) = prev_term else {
                        return self.checker.fail(
                            Kind::Contract,
                            format!("n{id} wrote entry {index}@{term} that does not attach to its log"),
                        );
                    };
                    self.checker.appended(id, index, term, prev_term, digest)?;
                }
                DiskWrite::Snapshot { index, term, digest, installed } => {
                    if installed {
                        self.checker.snapshot_covers(id, index, term)?;
                    } else {
                        self.stats.compactions += 1;
                        trace!(self, "n{id}: compacts its log up to {index}@{term}");
                    }
                    self.checker.snapshot(id, index, digest)?;
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- the state machine

    fn applied(&mut self, i: usize, e: &Entry, result: Applied) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let digest = entry_digest(e);
        let term = self.nodes[i].term;
        self.checker.applied(id, e.index, e.term, digest, term)?;
        if let Applied::Write { session, seq, reply, duplicate: false } = &result {
            if let Some(r) = kv_result(reply) {
                self.effects.entry((*session, *seq)).or_insert((self.now, r));
            }
        }
        Ok(())
    }

    /// A node answered a client.
    fn on_response(&mut self, i: usize, to: Waiter, response: Response) -> Result<(), Violation> {
        let c = to.conn as usize;
        let Some(p) = self.clients.get(c).and_then(|cl| cl.pending.as_ref()) else { return Ok(()) };
        let Some(a) = p.attempt.filter(|a| a.request == to.request_id && a.node == i) else {
            // An answer to an attempt the client already gave up on.
            return Ok(());
        };
        let n = self.nodes.len() as u64;
        let tick = self.tick;
        match response {
            Response::Ok(reply) => {
                let outcome = match (a.kind, &reply) {
                    (AttemptKind::Read, Reply::Value(v)) => {
                        Outcome::Value(v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                    }
                    (AttemptKind::Write, r) => match kv_result(r) {
                        Some(KvResult::Done) => Outcome::Done,
                        Some(KvResult::Cas(ok)) => Outcome::Cas(ok),
                        None => {
                            return self.checker.fail(Kind::Contract, format!("n{} answered a write with {r:?}", i + 1))
                        }
                    },
                    (AttemptKind::Read, r) => {
                        return self.checker.fail(Kind::Contract, format!("n{} answered a read with {r:?}", i + 1))
                    }
                };
                self.complete(c, outcome);
            }
            Response::NotLeader { leader } => {
                let hint = leader.filter(|&l| l != i as NodeId + 1 && l >= 1 && l <= n);
                let client = &mut self.clients[c];
                let p = client.pending.as_mut().expect("checked above");
                p.attempt = None;
                // Follow a hint on the next tick (one hop per tick, so no ping-pong
                // within a tick); without one, wait a little for an election.
                p.next_try_tick = tick + if hint.is_some() { 1 } else { 3 };
                client.target = match hint {
                    Some(l) => l as usize - 1,
                    None => self.rng.below(n) as usize,
                };
            }
            Response::Unavailable { .. } | Response::Unknown { .. } => {
                // Surely not applied, or maybe: either way the same (session, seq) is safe
                // to retry, and the session answers a retry with the first outcome.
                let p = self.clients[c].pending.as_mut().expect("checked above");
                p.attempt = None;
                p.next_try_tick = tick + 2;
            }
            other => {
                return self.checker.fail(Kind::Contract, format!("n{} answered a client with {other:?}", i + 1));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- checks

    /// The per-step checks that need the node's own report of its state.
    fn check_node(&mut self, i: usize) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let Some(replica) = node.replica.as_ref() else { return Ok(()) };
        let st = replica.raft().status();
        let applied = replica.kv().applied();
        let id = node.id;
        let disk = node.disk.borrow();
        let disk = &disk.image;
        if st.id != id {
            return self.checker.fail(Kind::Contract, format!("n{id} reports id {}", st.id));
        }
        if st.last_index != disk.last_index() {
            return self.checker.fail(
                Kind::Contract,
                format!(
                    "n{id} reports last index {} but the entries it handed out for its disk end at {}",
                    st.last_index,
                    disk.last_index()
                ),
            );
        }
        if st.commit > st.last_index {
            return self
                .checker
                .fail(Kind::Contract, format!("n{id} commit {} beyond its last index {}", st.commit, st.last_index));
        }
        if st.commit < node.commit {
            return self
                .checker
                .fail(Kind::Regression, format!("n{id} commit moved back {} -> {}", node.commit, st.commit));
        }
        if st.term < node.term {
            return self.checker.fail(Kind::Regression, format!("n{id} term moved back {} -> {}", node.term, st.term));
        }
        if st.applied != applied {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} reports applied {} but its state machine is at {applied}", st.applied),
            );
        }
        if applied > st.commit {
            return self
                .checker
                .fail(Kind::Contract, format!("n{id} applied {applied} beyond its commit index {}", st.commit));
        }
        for index in node.commit + 1..=st.commit {
            if let Some(e) = disk.entry(index) {
                self.checker.committed(id, index, e.term, entry_digest(e), st.term)?;
            }
        }
        if st.role == RoleKind::Leader {
            self.checker.leader(st.term, id, "status")?;
            if !(node.role == RoleKind::Leader && node.term == st.term) {
                self.checker
                    .leader_completeness(id, st.term, disk.snapshot_index(), disk.last_index(), |x| disk.term_at(x))?;
            }
        }
        node.role = st.role;
        node.term = st.term;
        node.leader = st.leader;
        node.commit = st.commit;
        Ok(())
    }

    fn settled(&self) -> bool {
        if self.clients.iter().any(|c| c.pending.is_some()) {
            return false;
        }
        let Some(l) = self.nodes.iter().find(|n| n.replica.is_some() && n.role == RoleKind::Leader) else {
            return false;
        };
        let last = l.last_index();
        self.nodes.iter().all(|n| {
            n.replica.is_some()
                && n.term == l.term
                && n.leader == Some(l.id)
                && n.last_index() == last
                && n.commit == last
                && n.applied() == last
        })
    }

    fn describe_state(&self) -> String {
        let mut parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                if n.replica.is_none() {
                    return format!("n{} down", n.id);
                }
                format!(
                    "n{} {} term={} leader={} last={} commit={} applied={}",
                    n.id,
                    n.role,
                    n.term,
                    n.leader.map_or("-".to_string(), |l| format!("n{l}")),
                    n.last_index(),
                    n.commit,
                    n.applied()
                )
            })
            .collect();
        for c in &self.clients {
            if let Some(p) = &c.pending {
                parts.push(format!("client {} waits on seq {} ({:?})", c.id, p.seq, p.op));
            }
        }
        parts.join("; ")
    }

    fn check_history(&mut self) -> Result<(), Violation> {
        if self.history.is_empty() {
            return Ok(());
        }
        let mut verdict = raft_lincheck::check_with_budget(&self.history, LINCHECK_STEPS_PER_KEY);
        let mut note = "";
        if let Verdict::Inconclusive { key } = &verdict {
            self.stats.inconclusive += 1;
            trace!(self, "linearizability of key {key} inconclusive within the search budget; resolving unknowns");
            verdict = raft_lincheck::check_with_budget(&self.resolved_history(), LINCHECK_STEPS_PER_KEY);
            note = " (unknown outcomes resolved from the log)";
        }
        match verdict {
            Verdict::Linearizable | Verdict::Inconclusive { .. } => Ok(()),
            Verdict::Violation { key, ops } => {
                let ops: Vec<String> = ops
                    .iter()
                    .map(|o| {
                        format!("client {} {:?} [{}, {}] -> {:?}", o.client, o.op, o.invoke, o.complete, o.outcome)
                    })
                    .collect();
                self.checker.fail(
                    Kind::Linearizability,
                    format!("key {key}{note}, [invoke, complete] in turns: {}", ops.join("; ")),
                )
            }
        }
    }

    /// The history with every unknown write replaced by what really happened: it took
    /// effect somewhere between its invocation and the first time a node applied it
    /// (its commit came before that apply), with the result the state machine computed;
    /// or, if no node ever applied it with effect, it never happened. Sound because the
    /// cluster has settled: every entry that will ever commit has been applied.
    fn resolved_history(&self) -> Vec<Operation> {
        let mut out = Vec::with_capacity(self.history.len());
        for (op, id) in self.history.iter().zip(&self.history_ids) {
            if op.outcome != Outcome::Unknown {
                out.push(op.clone());
                continue;
            }
            if let Some(&(at, result)) = self.effects.get(id) {
                let outcome = match result {
                    KvResult::Done => Outcome::Done,
                    KvResult::Cas(ok) => Outcome::Cas(ok),
                };
                out.push(Operation { complete: at.max(op.invoke), outcome, ..op.clone() });
            }
        }
        out
    }

    // ---------------------------------------------------------------- faults

    fn config(&mut self, id: NodeId) -> Config {
        let p = &self.profile;
        let mut c = Config::new(id, (1..=p.nodes as NodeId).collect(), self.rng.next_u64());
        c.heartbeat_ticks = p.heartbeat_ticks;
        c.election_ticks_min = p.election_ticks_min;
        c.election_ticks_max = p.election_ticks_max;
        c.pre_vote = p.pre_vote;
        c.check_quorum = p.check_quorum;
        c.max_entries_per_append = p.max_entries_per_append;
        c.max_inflight_appends = p.max_inflight_appends;
        c.snapshot_chunk_bytes = p.snapshot_chunk_bytes;
        c.max_uncommitted_entries = p.max_uncommitted_entries;
        #[cfg(feature = "bugs")]
        if let Some(bug) = self.bug {
            c.bugs = bug.core_bugs();
        }
        c
    }

    fn replica_options(&self) -> ReplicaOptions {
        #[allow(unused_mut, clippy::needless_update)] // `bugs` exists only with the feature
        let mut opts = ReplicaOptions {
            snapshot_entries: self.profile.compact_entries,
            snapshot_bytes: u64::MAX,
            ..ReplicaOptions::default()
        };
        #[cfg(feature = "bugs")]
        if let Some(bug) = self.bug {
            opts.bugs = bug.driver_bugs();
        }
        opts
    }

    /// Starts (or restarts) node `i` from its disk, as `raft-node` does: recovery, then
    /// the replica, then a first turn that replays the log up to the commit index.
    fn start(&mut self, i: usize) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let config = self.config(id);
        let opts = self.replica_options();
        let disk = self.nodes[i].disk.clone();
        disk.borrow_mut().reboot();
        let restored = match disk.borrow_mut().image.recover() {
            Ok(r) => r,
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{id} cannot recover its disk: {e}")),
        };
        trace!(
            self,
            "start n{id}: term={} vote={} commit={} snapshot={} last={}",
            restored.hard_state.term,
            restored.hard_state.vote.map_or("-".to_string(), |v| format!("n{v}")),
            restored.hard_state.commit,
            restored.snapshot.as_ref().map_or(0, |s| s.meta.index),
            restored.entries.last().map_or(0, |e| e.index)
        );
        let commit = restored.hard_state.commit;
        let term = restored.hard_state.term;
        let mut fx = SimFx::new(disk.clone(), self.trace.is_some());
        let replica = Replica::recover(config, SimDisk(disk), restored, opts, &mut fx);
        let outputs = fx.take();
        self.drain(i, outputs)?;
        let replica = match replica {
            Ok(r) => r,
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{id} refused to start: {e}")),
        };
        let node = &mut self.nodes[i];
        node.replica = Some(replica);
        node.role = RoleKind::Follower;
        node.term = term;
        node.leader = None;
        // The commit index on disk must not be forgotten (checked on the first status).
        node.commit = commit;
        self.turn(i, |_, _| Ok(()))
    }

    fn crash(&mut self, i: usize, why: &str) {
        let node = &mut self.nodes[i];
        node.replica = None;
        node.paused_until = 0;
        node.role = RoleKind::Follower;
        node.leader = None;
        self.stats.crashes += 1;
        trace!(self, "crash n{} ({why})", i + 1);
        let n = self.nodes.len() as u64;
        for c in &mut self.clients {
            if let Some(p) = &mut c.pending {
                if p.attempt.is_some_and(|a| a.node == i) {
                    // The connection broke: the client knows only that it must retry.
                    p.attempt = None;
                    p.next_try_tick = self.tick + 1;
                    c.target = self.rng.below(n) as usize;
                }
            }
        }
    }

    fn inject_faults(&mut self) -> Result<(), Violation> {
        let p = self.profile.clone();
        if self.rng.per_mille(p.crash_per_mille) {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].replica.is_some()).collect();
            if !up.is_empty() {
                let i = self.rng.pick(&up);
                self.crash(i, "crash");
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_none() && self.rng.per_mille(p.restart_per_mille) {
                self.start(i)?;
            }
        }
        if self.rng.per_mille(p.partition_per_mille) {
            let what = self.net.partition(&mut self.rng);
            trace!(self, "{what}");
        } else if self.net.any_blocked() && self.rng.per_mille(p.heal_per_mille) {
            self.net.heal();
            trace!(self, "heal partition");
        }
        if self.rng.per_mille(p.pause_per_mille) {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.runs(i)).collect();
            if !up.is_empty() {
                let i = self.rng.pick(&up);
                let ticks = self.rng.range(5, p.pause_max_ticks + 1);
                self.nodes[i].paused_until = self.tick + ticks;
                trace!(self, "pause n{} for {ticks} ticks", i + 1);
            }
        }
        if self.nodes.len() > 1 && self.rng.per_mille(p.transfer_per_mille) {
            let leaders: Vec<usize> =
                (0..self.nodes.len()).filter(|&i| self.runs(i) && self.nodes[i].role == RoleKind::Leader).collect();
            if !leaders.is_empty() {
                let i = self.rng.pick(&leaders);
                let n = self.nodes.len() as u64;
                let to = (i as u64 + self.rng.range(1, n)) % n + 1;
                let replica = self.nodes[i].replica.as_mut().expect("running");
                let r = replica.raft_mut().transfer_leadership(to);
                trace!(self, "n{}: transfer leadership to n{to}: {r:?}", i + 1);
                self.stats.transfers += 1;
                self.turn(i, |_, _| Ok(()))?;
            }
        }
        Ok(())
    }

    /// Faults stop: links heal, the network turns reliable, every node restarts.
    fn begin_settling(&mut self) -> Result<(), Violation> {
        self.settling = true;
        trace!(self, "faults stop: heal, reliable network, restart every crashed node");
        #[cfg(feature = "bugs")]
        let heal = self.bug != Some(crate::profile::Bug::NoHeal);
        #[cfg(not(feature = "bugs"))]
        let heal = true;
        if heal {
            self.net.heal();
        } else {
            trace!(self, "planted bug: the partition stays");
        }
        self.net.conditions = NetConditions::reliable();
        for i in 0..self.nodes.len() {
            self.nodes[i].paused_until = self.nodes[i].paused_until.min(self.tick + 1);
            if self.nodes[i].replica.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- clients

    fn clients_act(&mut self) -> Result<(), Violation> {
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_none() {
                if self.settling || !self.rng.per_mille(self.profile.op_per_mille) {
                    continue;
                }
                self.new_op(c);
            }
            let tick = self.tick;
            let p = self.clients[c].pending.as_mut().expect("pending");
            if !self.settling && tick >= p.give_up_tick {
                self.give_up(c);
                continue;
            }
            if p.attempt.is_some_and(|a| tick >= a.deadline_tick) {
                p.attempt = None;
                trace!(self, "client {} times out, will retry", c + 1);
                self.clients[c].target = self.rng.below(self.nodes.len() as u64) as usize;
            }
            let p = self.clients[c].pending.as_ref().expect("pending");
            if p.attempt.is_none() && tick >= p.next_try_tick {
                self.submit(c)?;
            }
        }
        Ok(())
    }

    fn new_op(&mut self, c: usize) {
        let keys = self.profile.keys as u64;
        let k = self.rng.below(keys) as usize;
        let key = format!("k{k}");
        let client = &mut self.clients[c];
        client.seq += 1;
        let value = format!("{}.{}", client.id, client.seq);
        let op = match self.rng.below(10) {
            0..=2 => ClientOp::Read { key },
            3..=5 => ClientOp::Write(KvOp::Set { key, value }),
            6 => ClientOp::Write(KvOp::Delete { key }),
            _ => {
                let expected = if self.rng.per_mille(200) { None } else { client.seen[k].clone() };
                ClientOp::Write(KvOp::Cas { key, expected, new: value })
            }
        };
        trace!(self, "client {} invokes seq {}: {:?}", self.clients[c].id, self.clients[c].seq, op);
        let client = &mut self.clients[c];
        client.pending = Some(Pending {
            seq: client.seq,
            op,
            invoke: self.now,
            give_up_tick: self.tick + self.profile.give_up_ticks,
            attempt: None,
            next_try_tick: self.tick,
        });
    }

    fn lincheck_op(op: &ClientOp) -> Op {
        match op {
            ClientOp::Read { .. } => Op::Get,
            ClientOp::Write(KvOp::Set { value, .. }) => Op::Set(value.clone()),
            ClientOp::Write(KvOp::Delete { .. }) => Op::Delete,
            ClientOp::Write(KvOp::Cas { expected, new, .. }) => {
                Op::Cas { expected: expected.clone(), new: new.clone() }
            }
        }
    }

    fn complete(&mut self, c: usize, outcome: Outcome) {
        let client = &mut self.clients[c];
        let p = client.pending.take().expect("completing a pending op");
        let key = p.op.key().to_string();
        let k: usize = key[1..].parse().expect("keys are k<N>");
        match (&p.op, &outcome) {
            (ClientOp::Read { .. }, Outcome::Value(v)) => client.seen[k] = v.clone(),
            (ClientOp::Write(KvOp::Set { value, .. }), _) => client.seen[k] = Some(value.clone()),
            (ClientOp::Write(KvOp::Delete { .. }), _) => client.seen[k] = None,
            (ClientOp::Write(KvOp::Cas { new, .. }), Outcome::Cas(true)) => client.seen[k] = Some(new.clone()),
            _ => {}
        }
        if let Some(a) = p.attempt {
            client.target = a.node;
        }
        let id = client.id;
        self.stats.ops += 1;
        trace!(self, "client {id} seq {} -> {:?}", p.seq, outcome);
        self.history_ids.push((id, p.seq));
        self.history.push(Operation {
            client: id,
            key,
            op: Self::lincheck_op(&p.op),
            invoke: p.invoke,
            complete: self.now,
            outcome,
        });
    }

    fn give_up(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let p = client.pending.take().expect("giving up a pending op");
        let id = client.id;
        trace!(self, "client {id} gives up on seq {} (outcome unknown)", p.seq);
        if let ClientOp::Write(_) = p.op {
            // A read that never answered had no effect: it is simply not in the history.
            self.stats.unknown += 1;
            self.history_ids.push((id, p.seq));
            self.history.push(Operation {
                client: id,
                key: p.op.key().to_string(),
                op: Self::lincheck_op(&p.op),
                invoke: p.invoke,
                complete: p.invoke,
                outcome: Outcome::Unknown,
            });
        }
    }

    fn submit(&mut self, c: usize) -> Result<(), Violation> {
        let n = self.nodes.len() as u64;
        let node = self.clients[c].target;
        let tick = self.tick;
        if !self.runs(node) {
            self.clients[c].target = self.rng.below(n) as usize;
            self.clients[c].pending.as_mut().expect("pending").next_try_tick = tick + 1;
            return Ok(());
        }
        let request = self.next_request;
        self.next_request += 1;
        let client = &mut self.clients[c];
        let session = client.id;
        let p = client.pending.as_mut().expect("pending");
        let kind = match p.op {
            ClientOp::Write(_) => AttemptKind::Write,
            ClientOp::Read { .. } => AttemptKind::Read,
        };
        p.attempt = Some(Attempt { node, kind, request, deadline_tick: tick + self.profile.attempt_timeout_ticks });
        let (seq, op) = (p.seq, p.op.clone());
        trace!(self, "client {} seq {seq} submitted to n{}: {:?}", c + 1, node + 1, op);
        #[cfg(feature = "bugs")]
        let stale = self.bug == Some(crate::profile::Bug::StaleRead);
        #[cfg(not(feature = "bugs"))]
        let stale = false;
        let from = Waiter { conn: c as u64, request_id: request };
        self.turn(node, move |replica, fx| {
            match op {
                ClientOp::Write(op) => replica.write(from, session, seq, op.to_write(), fx),
                // Planted bug (simulator-side): reads served locally, without ReadIndex.
                ClientOp::Read { key } => replica.read(from, ReadOp::Get { key }, stale, fx),
            }
            Ok(())
        })
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
