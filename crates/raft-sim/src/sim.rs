//! One simulated cluster: nodes with disks, the network, clients and the checkers,
//! driven tick by tick from one seed.

use crate::check::{Checker, Kind, Violation};
use crate::kv::{Applied, Kv, KvCommand, KvOp, KvResult};
use crate::net::{Fate, NetConditions, Network};
use crate::profile::{Options, Profile, LIVENESS_BOUND_TICKS};
use crate::rng::FxHashMap;
use crate::rng::{digest, Rng};
use raft_core::{
    Config, Entry, EntryData, HardState, Index, Message, MessageBody, NodeId, ProposeError, RawNode, ReadState, Ready,
    Restored, RoleKind, Snapshot, SnapshotMeta, Term,
};
use raft_lincheck::{Op, Operation, Outcome, Verdict};
use std::io::Write;

/// Output batches one input may produce before the simulator calls it a livelock: a
/// turn is "feed one input, then take `ready()` until it is empty".
const MAX_READY_ROUNDS: usize = 64;

/// Search steps per key the linearizability checker may spend on a history with
/// unknown outcomes (each may or may not have happened, at any time after it was
/// invoked: exponential in the worst case). Past it, the simulator checks the history
/// again with those outcomes resolved from the log, which is cheap.
const LINCHECK_STEPS_PER_KEY: u64 = 200_000;

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

/// What a node has on disk: exactly what survives a crash.
#[derive(Clone, Debug, Default)]
struct Disk {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// The log after the snapshot, contiguous.
    log: Vec<Entry>,
}

impl Disk {
    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }
    fn snapshot_term(&self) -> Term {
        self.snapshot.as_ref().map_or(0, |s| s.meta.term)
    }
    fn last_index(&self) -> Index {
        self.snapshot_index() + self.log.len() as Index
    }
    fn entry(&self, index: Index) -> Option<&Entry> {
        let snap = self.snapshot_index();
        if index <= snap {
            return None;
        }
        self.log.get((index - snap - 1) as usize)
    }
    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        self.entry(index).map(|e| e.term)
    }
}

fn entry_digest(e: &Entry) -> u64 {
    match &e.data {
        EntryData::Noop => 0x6e6f_6f70,
        EntryData::Command(c) => digest(c),
    }
}

/// A node: the core while it runs, its disk always, its state machine while it runs.
struct SimNode {
    id: NodeId,
    raw: Option<RawNode>,
    disk: Disk,
    kv: Kv,
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

#[derive(Clone, Copy, Debug)]
enum AttemptKind {
    Write { index: Index },
    Read { id: u64 },
}

/// One try of an operation at one node.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    node: usize,
    kind: AttemptKind,
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
    next_read_id: u64,
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
        let nodes = (1..=n as NodeId)
            .map(|id| SimNode {
                id,
                raw: None,
                disk: Disk::default(),
                kv: Kv::default(),
                role: RoleKind::Follower,
                term: 0,
                leader: None,
                commit: 0,
                paused_until: 0,
                drift_per_mille: 0,
            })
            .collect::<Vec<_>>();
        let mut rng = Rng::new(seed);
        let mut nodes = nodes;
        for n in &mut nodes {
            n.drift_per_mille = rng.below(u64::from(profile.drift_per_mille) + 1) as u32;
        }
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
            next_read_id: 1,
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
                if let Some(raw) = self.nodes[i].raw.as_mut() {
                    raw.tick();
                    self.turn(i)?;
                }
            }
        }
        self.deliver()
    }

    /// Running and not paused: takes ticks, messages and client requests.
    fn runs(&self, i: usize) -> bool {
        self.nodes[i].raw.is_some() && self.nodes[i].paused_until == 0
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        while let Some(m) = self.net.pop_due(self.tick) {
            let to = m.to as usize - 1;
            if self.net.is_blocked(m.from, m.to) {
                trace!(self, "drop {m} (partitioned)");
                continue;
            }
            if self.nodes[to].raw.is_none() {
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
            if let Err(e) = self.nodes[to].raw.as_mut().expect("running").step(m) {
                return self.checker.fail(Kind::Contract, format!("n{} refused a message: {e}", to + 1));
            }
            self.turn(to)?;
        }
        Ok(())
    }

    /// Processes everything the node has to do after one input, then checks it.
    fn turn(&mut self, i: usize) -> Result<(), Violation> {
        self.now += 1;
        self.stats.steps += 1;
        let mut rounds = 0;
        loop {
            let Some(raw) = self.nodes[i].raw.as_mut() else {
                // It crashed in the middle of the turn.
                return Ok(());
            };
            let rd = raw.ready();
            if rd.is_empty() {
                break;
            }
            rounds += 1;
            if rounds > MAX_READY_ROUNDS {
                return self.checker.fail(
                    Kind::Contract,
                    format!("n{} still has output after {MAX_READY_ROUNDS} ready() rounds", i + 1),
                );
            }
            self.handle_ready(i, rd)?;
        }
        if rounds == 0 {
            // No output: nothing a checker can see changed (a change of term, vote,
            // commit, role or log always comes with output), so skip the status round
            // trip. Most ticks of most nodes end here.
            return Ok(());
        }
        self.check_node(i)?;
        self.maybe_compact(i)
    }

    /// Carries out one output batch in the documented order, with a chance of crashing
    /// between its steps.
    fn handle_ready(&mut self, i: usize, rd: Ready) -> Result<(), Violation> {
        let Ready {
            soft_state: _,
            hard_state,
            entries,
            snapshot,
            messages,
            persisted_messages,
            committed,
            reads,
            dropped_reads,
            events,
        } = rd;
        let id = i as NodeId + 1;
        for ev in &events {
            trace!(self, "n{id}: {ev}");
        }
        // 1. Messages that promise nothing durable.
        for m in messages {
            self.send(i, m)?;
        }
        // A crash before the fsync finished.
        let writes = hard_state.is_some() || !entries.is_empty() || snapshot.is_some();
        if writes && !self.settling && self.rng.per_mille(self.profile.torn_per_mille) {
            // The batch is one fsync: lost whole, or (when it only appends) a torn
            // prefix of its entries survives, as from a WAL whose tail was cut.
            let keep = if hard_state.is_none() && snapshot.is_none() && entries.len() > 1 {
                self.rng.below(entries.len() as u64) as usize
            } else {
                0
            };
            if keep > 0 {
                self.persist_entries(i, &entries[..keep])?;
            }
            self.crash(i, &format!("mid-turn before fsync; {keep} of {} new entries survive", entries.len()));
            return Ok(());
        }
        // 2. Persist: snapshot, entries, hard state (the hard state's commit may name
        // entries of this very batch).
        if let Some(s) = &snapshot {
            self.persist_snapshot(i, s)?;
        }
        if !entries.is_empty() {
            self.persist_entries(i, &entries)?;
        }
        if let Some(hs) = hard_state {
            self.persist_hard_state(i, hs)?;
        }
        // 3. Tell the core.
        if let (Some(last), Some(raw)) = (entries.last(), self.nodes[i].raw.as_mut()) {
            raw.persisted(last.index, last.term);
        }
        // A crash after the fsync but before the acknowledgements left.
        if !persisted_messages.is_empty() && !self.settling && self.rng.per_mille(self.profile.torn_per_mille) {
            self.crash(i, "mid-turn after fsync, before acknowledgements were sent");
            return Ok(());
        }
        // 4. Messages that promise durable state.
        for m in persisted_messages {
            self.send(i, m)?;
        }
        // 5. The state machine.
        if let Some(s) = snapshot {
            self.install_snapshot(i, s)?;
        }
        for e in committed {
            self.apply(i, e)?;
        }
        // 6. Reads.
        for r in reads {
            self.serve_read(i, r)?;
        }
        for read_id in dropped_reads {
            self.read_dropped(i, read_id);
        }
        Ok(())
    }

    fn send(&mut self, i: usize, m: Message) -> Result<(), Violation> {
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
                let hs = self.nodes[i].disk.hard_state;
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
            MessageBody::AppendResponse { success: true, match_index, .. } => {
                let disk = &self.nodes[i].disk;
                if disk.hard_state.term < m.term || disk.last_index() < *match_index {
                    return self.checker.fail(
                        Kind::Contract,
                        format!(
                            "n{from} acknowledged entries before persisting them (disk: term {} last {}): {m}",
                            disk.hard_state.term,
                            disk.last_index()
                        ),
                    );
                }
            }
            MessageBody::InstallSnapshotResponse { installed: Some(index), .. } => {
                let disk = &self.nodes[i].disk;
                // Covered by a snapshot on disk, or by a log that already reaches it.
                if disk.last_index() < *index {
                    return self.checker.fail(
                        Kind::Contract,
                        format!(
                            "n{from} acknowledged a snapshot before persisting it (disk: snapshot {} last {}): {m}",
                            disk.snapshot_index(),
                            disk.last_index()
                        ),
                    );
                }
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

    fn persist_snapshot(&mut self, i: usize, s: &Snapshot) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let id = node.id;
        let disk = &mut node.disk;
        if s.meta.index <= disk.snapshot_index() {
            return self.checker.fail(
                Kind::Contract,
                format!(
                    "n{id} was handed snapshot {}@{} but already has snapshot {}",
                    s.meta.index,
                    s.meta.term,
                    disk.snapshot_index()
                ),
            );
        }
        // §7: keep the log after the snapshot if it has the snapshot's last entry.
        if disk.term_at(s.meta.index) == Some(s.meta.term) {
            let drop = (s.meta.index - disk.snapshot_index()) as usize;
            disk.log.drain(..drop);
        } else {
            disk.log.clear();
        }
        disk.snapshot = Some(s.clone());
        self.checker.snapshot_covers(id, s.meta.index, s.meta.term)
    }

    fn persist_entries(&mut self, i: usize, entries: &[Entry]) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let id = node.id;
        let disk = &mut node.disk;
        let first = entries[0].index;
        if first <= disk.snapshot_index() || first > disk.last_index() + 1 {
            return self.checker.fail(
                Kind::Contract,
                format!(
                    "n{id} was handed entries from {first}, but its log holds {}..={}",
                    disk.snapshot_index() + 1,
                    disk.last_index()
                ),
            );
        }
        disk.log.truncate((first - disk.snapshot_index() - 1) as usize);
        for (k, e) in entries.iter().enumerate() {
            if e.index != first + k as Index {
                return self.checker.fail(Kind::Contract, format!("n{id} was handed non-contiguous entries at {e}"));
            }
            let prev_term = disk.term_at(e.index - 1).expect("the log is contiguous");
            self.checker.appended(id, e.index, e.term, prev_term, entry_digest(e))?;
            disk.log.push(e.clone());
        }
        Ok(())
    }

    fn persist_hard_state(&mut self, i: usize, hs: HardState) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let id = node.id;
        let old = node.disk.hard_state;
        if hs.term < old.term {
            return self
                .checker
                .fail(Kind::Regression, format!("n{id} term on disk moved back {} -> {}", old.term, hs.term));
        }
        if hs.term == old.term && old.vote.is_some() && hs.vote != old.vote {
            return self.checker.fail(
                Kind::VoteSafety,
                format!("n{id} changed its vote in term {} from {:?} to {:?} on disk", hs.term, old.vote, hs.vote),
            );
        }
        if hs.commit < old.commit {
            return self
                .checker
                .fail(Kind::Regression, format!("n{id} commit on disk moved back {} -> {}", old.commit, hs.commit));
        }
        if hs.commit > node.disk.last_index() {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} persisted commit {} beyond its last index {}", hs.commit, node.disk.last_index()),
            );
        }
        node.disk.hard_state = hs;
        Ok(())
    }

    // ---------------------------------------------------------------- the state machine

    fn install_snapshot(&mut self, i: usize, s: Snapshot) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let Some(kv) = Kv::restore(&s.data) else {
            return self.checker.fail(Kind::Contract, format!("n{id} was handed snapshot bytes that do not decode"));
        };
        if kv.applied() != s.meta.index {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} got snapshot {}@{} holding state at {}", s.meta.index, s.meta.term, kv.applied()),
            );
        }
        let applied = self.nodes[i].kv.applied();
        if s.meta.index < applied {
            return self.checker.fail(
                Kind::Regression,
                format!("n{id} installs snapshot {} below its applied index {applied}", s.meta.index),
            );
        }
        self.checker.snapshot(id, s.meta.index, digest(&s.data))?;
        trace!(self, "n{id}: installs snapshot {}@{} ({} bytes)", s.meta.index, s.meta.term, s.data.len());
        self.nodes[i].kv = kv;
        self.stats.snapshots += 1;
        // A write this node was to answer may now be inside the snapshot: let the
        // client retry; the session answers the retry with the original result.
        for c in &mut self.clients {
            if let Some(p) = &mut c.pending {
                if let Some(Attempt { node, kind: AttemptKind::Write { index }, .. }) = p.attempt {
                    if node == i && index <= s.meta.index {
                        p.attempt = None;
                        p.next_try_tick = self.tick;
                    }
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, i: usize, e: Entry) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let id = node.id;
        if e.index != node.kv.applied() + 1 {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} applies {e} right after {}: committed entries must be contiguous", node.kv.applied()),
            );
        }
        match node.disk.entry(e.index) {
            Some(d) if *d == e => {}
            Some(d) => {
                return self.checker.fail(Kind::Contract, format!("n{id} applies {e} but its log has {d} there"));
            }
            None => {
                return self.checker.fail(Kind::Contract, format!("n{id} applies {e} which is not in its log"));
            }
        }
        self.checker.applied(id, e.index, e.term, entry_digest(&e), node.term)?;
        match &e.data {
            EntryData::Noop => node.kv.apply_noop(e.index),
            EntryData::Command(bytes) => match node.kv.apply(e.index, bytes) {
                Some(a) => self.write_applied(i, e.index, a),
                None => {
                    return self.checker.fail(Kind::Contract, format!("n{id} applies {e}, which is no sim command"));
                }
            },
        }
        Ok(())
    }

    /// A node applied a client's write: answer the client if it was waiting on this
    /// node; tell a client whose proposal slot was taken by another entry to retry.
    fn write_applied(&mut self, i: usize, index: Index, a: Applied) {
        if let Some(result) = a.result {
            self.effects.entry((a.client, a.seq)).or_insert((self.now, result));
        }
        for c in 0..self.clients.len() {
            let client = &self.clients[c];
            let Some(p) = &client.pending else { continue };
            let Some(Attempt { node, kind: AttemptKind::Write { index: at }, .. }) = p.attempt else { continue };
            if node != i {
                continue;
            }
            if client.id == a.client && p.seq == a.seq {
                let result = a.result.expect("the latest seq of a session always has a result");
                let outcome = match result {
                    KvResult::Done => Outcome::Done,
                    KvResult::Cas(ok) => Outcome::Cas(ok),
                };
                self.complete(c, outcome);
            } else if at == index {
                let p = self.clients[c].pending.as_mut().expect("checked above");
                p.attempt = None;
                p.next_try_tick = self.tick;
            }
        }
    }

    fn serve_read(&mut self, i: usize, r: ReadState) -> Result<(), Violation> {
        let node = &self.nodes[i];
        if r.index > node.kv.applied() {
            return self.checker.fail(
                Kind::ReadSafety,
                format!(
                    "n{} released read {} at index {} with only {} applied",
                    node.id,
                    r.id,
                    r.index,
                    node.kv.applied()
                ),
            );
        }
        let waiting = self.clients.iter().position(|c| {
            c.pending
                .as_ref()
                .and_then(|p| p.attempt)
                .is_some_and(|a| a.node == i && matches!(a.kind, AttemptKind::Read { id } if id == r.id))
        });
        if let Some(c) = waiting {
            let key = self.clients[c].pending.as_ref().expect("waiting").op.key().to_string();
            let value = self.nodes[i].kv.get(&key).cloned();
            self.complete(c, Outcome::Value(value));
        }
        Ok(())
    }

    fn read_dropped(&mut self, i: usize, read_id: u64) {
        let n = self.nodes.len() as u64;
        for c in &mut self.clients {
            if let Some(p) = &mut c.pending {
                if let Some(Attempt { node, kind: AttemptKind::Read { id }, .. }) = p.attempt {
                    if node == i && id == read_id {
                        p.attempt = None;
                        p.next_try_tick = self.tick + 1;
                        c.target = self.rng.below(n) as usize;
                    }
                }
            }
        }
    }

    /// Compacts a node's log once it has applied enough past its snapshot.
    fn maybe_compact(&mut self, i: usize) -> Result<(), Violation> {
        let node = &self.nodes[i];
        let applied = node.kv.applied();
        let snap = node.disk.snapshot_index();
        if node.raw.is_none() || applied <= snap || applied - snap < self.profile.compact_entries {
            return Ok(());
        }
        let voters: Vec<NodeId> = (1..=self.nodes.len() as NodeId).collect();
        let node = &mut self.nodes[i];
        let term = node.disk.term_at(applied).expect("applied entries are in the log");
        let data = node.kv.snapshot();
        let id = node.id;
        // The application persists its snapshot, then tells the core (compact's contract).
        node.disk.log.drain(..(applied - snap) as usize);
        node.disk.snapshot = Some(Snapshot { meta: SnapshotMeta { index: applied, term, voters }, data: data.clone() });
        self.checker.snapshot(id, applied, digest(&data))?;
        self.stats.compactions += 1;
        trace!(self, "n{id}: compacts its log up to {applied}@{term}");
        self.nodes[i].raw.as_mut().expect("running").compact(applied, data);
        self.turn(i)
    }

    // ---------------------------------------------------------------- checks

    /// The per-step checks that need the node's own report of its state.
    fn check_node(&mut self, i: usize) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let Some(raw) = node.raw.as_ref() else { return Ok(()) };
        let st = raw.status();
        let id = node.id;
        if st.id != id {
            return self.checker.fail(Kind::Contract, format!("n{id} reports id {}", st.id));
        }
        if st.last_index != node.disk.last_index() {
            return self.checker.fail(
                Kind::Contract,
                format!(
                    "n{id} reports last index {} but the entries it handed out for its disk end at {}",
                    st.last_index,
                    node.disk.last_index()
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
        if st.applied != node.kv.applied() {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} reports applied {} but handed out entries up to {}", st.applied, node.kv.applied()),
            );
        }
        if node.kv.applied() > st.commit {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} applied {} beyond its commit index {}", node.kv.applied(), st.commit),
            );
        }
        for index in node.commit + 1..=st.commit {
            if let Some(e) = node.disk.entry(index) {
                self.checker.committed(id, index, e.term, entry_digest(e), st.term)?;
            }
        }
        if st.role == RoleKind::Leader {
            self.checker.leader(st.term, id, "status")?;
            if !(node.role == RoleKind::Leader && node.term == st.term) {
                let disk = &node.disk;
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

    /// True once the cluster has settled: everyone up, one leader everyone follows,
    /// every entry committed and applied everywhere, every client answered.
    fn settled(&self) -> bool {
        if self.clients.iter().any(|c| c.pending.is_some()) {
            return false;
        }
        let Some(l) = self.nodes.iter().find(|n| n.raw.is_some() && n.role == RoleKind::Leader) else {
            return false;
        };
        let last = l.disk.last_index();
        self.nodes.iter().all(|n| {
            n.raw.is_some()
                && n.term == l.term
                && n.leader == Some(l.id)
                && n.disk.last_index() == last
                && n.commit == last
                && n.kv.applied() == last
        })
    }

    fn describe_state(&self) -> String {
        let mut parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                if n.raw.is_none() {
                    return format!("n{} down", n.id);
                }
                format!(
                    "n{} {} term={} leader={} last={} commit={} applied={}",
                    n.id,
                    n.role,
                    n.term,
                    n.leader.map_or("-".to_string(), |l| format!("n{l}")),
                    n.disk.last_index(),
                    n.commit,
                    n.kv.applied()
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

    /// Starts (or restarts) node `i` from its disk.
    fn start(&mut self, i: usize) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let config = self.config(id);
        let node = &mut self.nodes[i];
        let disk = &node.disk;
        let restored =
            Restored { hard_state: disk.hard_state, snapshot: disk.snapshot.clone(), entries: disk.log.clone() };
        let kv = match &disk.snapshot {
            Some(s) => Kv::restore(&s.data).expect("the sim wrote this snapshot"),
            None => Kv::default(),
        };
        let raw = match RawNode::new(config, restored) {
            Ok(raw) => raw,
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{id} refused to start: {e}")),
        };
        node.raw = Some(raw);
        node.kv = kv;
        node.role = RoleKind::Follower;
        node.term = disk.hard_state.term;
        node.leader = None;
        // The commit index on disk must not be forgotten (checked on the first status).
        node.commit = disk.hard_state.commit;
        trace!(
            self,
            "start n{id}: term={} vote={} commit={} snapshot={} last={}",
            self.nodes[i].disk.hard_state.term,
            self.nodes[i].disk.hard_state.vote.map_or("-".to_string(), |v| format!("n{v}")),
            self.nodes[i].disk.hard_state.commit,
            self.nodes[i].disk.snapshot_index(),
            self.nodes[i].disk.last_index()
        );
        self.turn(i)
    }

    fn crash(&mut self, i: usize, why: &str) {
        let node = &mut self.nodes[i];
        node.raw = None;
        node.paused_until = 0;
        node.kv = Kv::default();
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
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].raw.is_some()).collect();
            if !up.is_empty() {
                let i = self.rng.pick(&up);
                self.crash(i, "crash");
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].raw.is_none() && self.rng.per_mille(p.restart_per_mille) {
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
                let raw = self.nodes[i].raw.as_mut().expect("running");
                let r = raw.transfer_leadership(to);
                trace!(self, "n{}: transfer leadership to n{to}: {r:?}", i + 1);
                self.stats.transfers += 1;
                self.turn(i)?;
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
            if self.nodes[i].raw.is_none() {
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
        #[cfg(feature = "bugs")]
        if self.bug == Some(crate::profile::Bug::StaleRead) {
            if let ClientOp::Read { key } = &self.clients[c].pending.as_ref().expect("pending").op {
                let value = self.nodes[node].kv.get(key).cloned();
                trace!(self, "client {} reads locally at n{} (planted bug: no ReadIndex)", c + 1, node + 1);
                self.complete(c, Outcome::Value(value));
                return Ok(());
            }
        }
        let client = &self.clients[c];
        let p = client.pending.as_ref().expect("pending");
        let raw = self.nodes[node].raw.as_mut().expect("running");
        let (result, kind) = match &p.op {
            ClientOp::Write(op) => {
                let cmd = KvCommand { client: client.id, seq: p.seq, op: op.clone() }.encode();
                match raw.propose(cmd) {
                    Ok(index) => (Ok(()), AttemptKind::Write { index }),
                    Err(e) => (Err(e), AttemptKind::Write { index: 0 }),
                }
            }
            ClientOp::Read { .. } => {
                let id = self.next_read_id;
                self.next_read_id += 1;
                (raw.read_index(id), AttemptKind::Read { id })
            }
        };
        let deadline_tick = tick + self.profile.attempt_timeout_ticks;
        let client = &mut self.clients[c];
        let p = client.pending.as_mut().expect("pending");
        match result {
            Ok(()) => {
                p.attempt = Some(Attempt { node, kind, deadline_tick });
                trace!(self, "client {} seq {} submitted to n{}: {:?}", c + 1, self.clients[c].seq, node + 1, kind);
            }
            Err(ProposeError::NotLeader(nl)) => {
                let hint = nl.leader.filter(|&l| l != node as NodeId + 1 && l >= 1 && l <= n);
                // Follow a hint on the next tick (one hop per tick, so no ping-pong
                // within a tick); without one, wait a little for an election.
                p.next_try_tick = tick + if hint.is_some() { 1 } else { 3 };
                client.target = match hint {
                    Some(l) => l as usize - 1,
                    None => self.rng.below(n) as usize,
                };
            }
            Err(ProposeError::Busy) => {
                p.next_try_tick = tick + 2;
            }
        }
        self.turn(node)
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
