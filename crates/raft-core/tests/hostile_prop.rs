//! Property: no sequence of well-formed messages from the network (any variant, any
//! field values including 0 and u64::MAX, from known and unknown ids, for this node or
//! another), interleaved with ticks, proposals, reads, campaigns, transfers, compactions
//! and the driver's Ready processing, panics a node or corrupts what it persists:
//!
//! * the term in `Ready::hard_state` never decreases;
//! * the vote never changes within a term (none -> some is a vote cast);
//! * the commit index never decreases and never passes the last index on disk;
//! * committed entries come out contiguous, and what was persisted restores;
//! * received snapshot chunks are handed to the driver in order, within the byte bound;
//! * a snapshot handed out in `Ready::snapshot` is one the driver verified (its check,
//!   answered with `RawNode::snapshot_verified`) and within the byte bound;
//! * every InstallSnapshot the core sends is of the snapshot the driver holds (the
//!   driver fills its bytes).
//!
//! Proptest draws the schedule (an action kind and a seed per step); the message of a
//! step is built from its seed and the node's current state, so that its fields are
//! often just around the node's term and indexes (where the interesting checks are)
//! and sometimes at the edges (0, MAX_INDEX, MAX_TERM, u64::MAX, anything). A failure
//! prints the shrunk schedule, which replays exactly.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};
use raft_core::*;
use std::collections::VecDeque;

const VOTERS: [NodeId; 3] = [1, 2, 3];

/// What the snapshot path saw on this thread (a test's cases run on its thread), so a
/// test can show its properties were not checked on nothing.
#[derive(Clone, Copy, Debug, Default)]
struct SnapshotCoverage {
    refused: u64,
    adopted: u64,
    chunks_filled: u64,
}

thread_local! {
    static COVERAGE: std::cell::Cell<SnapshotCoverage> = const {
        std::cell::Cell::new(SnapshotCoverage { refused: 0, adopted: 0, chunks_filled: 0 })
    };
}

fn covered(note: impl FnOnce(&mut SnapshotCoverage)) {
    COVERAGE.with(|c| {
        let mut v = c.get();
        note(&mut v);
        c.set(v);
    });
}

/// splitmix64, for building a message from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A term around `cur`, or at an edge.
fn gen_term(r: &mut Rng, cur: Term) -> Term {
    match r.below(16) {
        0..=4 => cur,
        5 | 6 => cur.saturating_add(1),
        7 => cur.saturating_add(2),
        8 => cur.saturating_sub(1),
        9 => 0,
        10 => r.below(8),
        11 => r.pick(&[MAX_TERM, MAX_TERM + 1, u64::MAX, u64::MAX - 1]),
        12 => cur.saturating_add(r.pick(&[MAX_TERM_JUMP - 1, MAX_TERM_JUMP, MAX_TERM_JUMP + 1])),
        13 => r.next(),
        _ => cur.saturating_add(r.below(5)),
    }
}

/// An index around the node's log, or at an edge.
fn gen_index(r: &mut Rng, n: &RawNode) -> Index {
    let (last, commit) = (n.last_index(), n.commit_index());
    match r.below(16) {
        0..=2 => last,
        3 => last.saturating_sub(1),
        4 => last + 1,
        5 | 6 => commit,
        7 => r.below(last + 3),
        8 => 0,
        9 => r.pick(&[MAX_INDEX, MAX_INDEX + 1, u64::MAX, u64::MAX - 1]),
        10 => r.next(),
        11 => last + r.below(40),
        _ => r.below(12),
    }
}

fn gen_from(r: &mut Rng, to: NodeId) -> NodeId {
    if r.chance(88) {
        let peers: Vec<NodeId> = VOTERS.iter().copied().filter(|&v| v != to).collect();
        r.pick(&peers)
    } else {
        r.pick(&[0, to, 4, 9, u64::MAX])
    }
}

/// One well-formed message for node `n`, built from `seed` and `n`'s state.
fn gen_message(seed: u64, n: &RawNode) -> Message {
    let r = &mut Rng(seed);
    let (any, small) = (r.next(), r.below(50));
    let to = if r.chance(96) { n.id() } else { r.pick(&[0, 1, 2, 3, 7, u64::MAX]) };
    let from = gen_from(r, n.id());
    // Half the time, what the node's role waits for (so that cases reach every role and
    // a leader hears answers), mostly in the term it waits for them in.
    let (kind, wanted) = match n.role() {
        RoleKind::PreCandidate if r.chance(50) => (1, n.term().saturating_add(1)),
        RoleKind::Candidate if r.chance(50) => (3, n.term()),
        RoleKind::Leader if r.chance(60) => (r.pick(&[6, 6, 6, 8, 10]), n.term()),
        _ => (r.below(11), n.term()),
    };
    let term = if r.chance(80) && wanted != n.term() || r.chance(40) { wanted } else { gen_term(r, n.term()) };
    let body = match kind {
        0 => MessageBody::PreVote { last_index: gen_index(r, n), last_term: gen_term(r, term.min(n.term())) },
        1 => MessageBody::PreVoteResponse { granted: r.chance(60) },
        2 => MessageBody::Vote {
            last_index: gen_index(r, n),
            last_term: gen_term(r, term.min(n.term())),
            transfer: r.chance(20),
        },
        3 => MessageBody::VoteResponse { granted: r.chance(70) },
        4 | 5 => {
            let base_index = gen_index(r, n);
            let base_term = match n.entry(base_index) {
                Some(e) if r.chance(70) => e.term,
                _ => gen_term(r, term),
            };
            let count = r.below(4);
            let contiguous = r.chance(90);
            let mut t = base_term;
            let entries = (0..count)
                .map(|k| {
                    if r.chance(30) {
                        t = t.saturating_add(1).min(term);
                    }
                    let index = if contiguous { base_index.wrapping_add(1 + k) } else { r.next() };
                    let data = if r.chance(50) {
                        EntryData::Noop
                    } else {
                        EntryData::Command(r.next().to_le_bytes()[..r.below(9) as usize].to_vec())
                    };
                    Entry { index, term: if r.chance(95) { t } else { r.next() }, data }
                })
                .collect();
            MessageBody::Append { base_index, base_term, entries, commit: gen_index(r, n) }
        }
        6 => {
            let success = r.chance(70);
            let match_index = gen_index(r, n);
            let (reject_hint_index, reject_hint_term) =
                if success { (0, 0) } else { (gen_index(r, n).min(match_index), gen_term(r, term)) };
            MessageBody::AppendResponse { success, match_index, reject_hint_index, reject_hint_term }
        }
        7 => MessageBody::Heartbeat { commit: gen_index(r, n), read_seq: r.pick(&[0, 1, 2, 3, small, u64::MAX]) },
        8 => MessageBody::HeartbeatResponse { read_seq: r.pick(&[0, 1, 2, 3, small, u64::MAX, any]) },
        9 => {
            let meta = SnapshotMeta {
                index: gen_index(r, n),
                term: gen_term(r, term),
                voters: VOTERS.to_vec(),
                learners: vec![],
            };
            let offset = r.pick(&[0, 0, 0, 3, 8, u64::MAX - 2, any]);
            let data = r.next().to_le_bytes()[..r.below(9) as usize].to_vec();
            MessageBody::InstallSnapshot { meta, offset, data, done: r.chance(60) }
        }
        _ => match r.below(3) {
            0 => MessageBody::TimeoutNow,
            _ => MessageBody::InstallSnapshotResponse {
                next_offset: r.pick(&[0, 3, 8, u64::MAX, any]),
                installed: if r.chance(60) { Some(gen_index(r, n)) } else { None },
            },
        },
    };
    Message { from, to, term, body }
}

/// One node as its driver sees it: the core, its "disk", and what it handed out.
struct Driven {
    config: Config,
    raw: RawNode,
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    applied: Index,
    /// A snapshot arriving from the leader, assembled from `Ready::snapshot_chunks`
    /// (volatile: a restart loses it).
    incoming: Option<Snapshot>,
    /// A received snapshot this driver verified, waiting for `Ready::snapshot`.
    verified: Option<Snapshot>,
    /// Snapshots replaced by a compaction since the last Ready: the core may still hold
    /// a chunk of one queued (its transfer restarts with the new one), which the driver,
    /// holding only the newest, cannot fill and drops.
    replaced: Vec<SnapshotMeta>,
}

/// The byte bound on a half-received snapshot in these runs.
const MAX_SNAPSHOT_BYTES: usize = 12;

/// The driver's snapshot check in these runs: a snapshot verifies when its first byte
/// is odd.
fn odd_first_byte(s: &Snapshot) -> Result<(), String> {
    match s.data.first() {
        Some(b) if b % 2 == 1 => Ok(()),
        _ => Err("first byte is not odd".into()),
    }
}

impl Driven {
    fn new(id: NodeId, seed: u64) -> Driven {
        let mut config = Config::new(id, VOTERS.to_vec(), seed);
        config.max_entries_per_append = 4;
        config.snapshot_chunk_bytes = 4;
        // Chunks carry up to 8 bytes: snapshots past 12 are dropped half-way, and about
        // half of the others do not verify.
        config.max_incoming_snapshot_bytes = MAX_SNAPSHOT_BYTES;
        let raw = RawNode::new(config.clone(), Restored::default()).expect("valid config");
        Driven {
            config,
            raw,
            hard_state: HardState::default(),
            snapshot: None,
            entries: Vec::new(),
            applied: 0,
            incoming: None,
            verified: None,
            replaced: Vec::new(),
        }
    }

    fn snap_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn disk_last_index(&self) -> Index {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
    }

    /// Fills an InstallSnapshot's bytes from the snapshot this driver holds, as a store
    /// does; `None`: a chunk of a snapshot replaced since, dropped.
    fn fill(&self, mut m: Message) -> Result<Option<Message>, TestCaseError> {
        let id = self.raw.id();
        if let MessageBody::InstallSnapshot { meta, offset, data, done } = &mut m.body {
            prop_assert!(data.is_empty() && !*done, "n{id}: the core filled a chunk itself");
            match &self.snapshot {
                Some(s) if s.meta == *meta => {
                    let start = usize::try_from(*offset).unwrap_or(usize::MAX).min(s.data.len());
                    let end = start.saturating_add(self.config.snapshot_chunk_bytes).min(s.data.len());
                    *data = s.data[start..end].to_vec();
                    *done = end == s.data.len();
                    covered(|c| c.chunks_filled += 1);
                }
                _ if self.replaced.contains(meta) => return Ok(None),
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "n{id}: sends snapshot {}@{}, the driver holds {:?}",
                        meta.index,
                        meta.term,
                        self.snapshot.as_ref().map(|s| &s.meta)
                    )))
                }
            }
        }
        Ok(Some(m))
    }

    /// Carries out one Ready in the documented order, checking the persisted state.
    /// Returns what the node sends. A Ready that completed a received snapshot is
    /// followed at once by the one carrying the verdict, as the shipped driver does.
    fn process(&mut self) -> Result<Vec<Message>, TestCaseError> {
        let id = self.raw.id();
        let rd = self.raw.ready();
        // 0. Received chunks into the incoming snapshot; a complete one is verified.
        for ch in &rd.snapshot_chunks {
            if ch.offset == 0 {
                self.incoming = Some(Snapshot { meta: ch.meta.clone(), data: Vec::new() });
            }
            let Some(inc) = &mut self.incoming else {
                return Err(TestCaseError::fail(format!("n{id}: a chunk at {} of no snapshot", ch.offset)));
            };
            prop_assert!(
                inc.meta == ch.meta && inc.data.len() as u64 == ch.offset,
                "n{id}: chunk {}@{} offset {} out of order (have {}@{} with {} bytes)",
                ch.meta.index,
                ch.meta.term,
                ch.offset,
                inc.meta.index,
                inc.meta.term,
                inc.data.len()
            );
            inc.data.extend_from_slice(&ch.data);
            prop_assert!(inc.data.len() <= MAX_SNAPSHOT_BYTES, "n{id}: accepted chunks past the bound");
        }
        let verdict = match &rd.received_snapshot {
            Some(meta) => {
                let inc = self.incoming.take();
                let Some(inc) = inc.filter(|s| s.meta == *meta) else {
                    return Err(TestCaseError::fail(format!(
                        "n{id}: received {}@{}, never assembled",
                        meta.index, meta.term
                    )));
                };
                let verdict = odd_first_byte(&inc);
                if verdict.is_err() {
                    covered(|c| c.refused += 1);
                }
                self.verified = verdict.is_ok().then_some(inc);
                self.raw.snapshot_verified(meta, verdict);
                true
            }
            None => false,
        };
        let mut out = Vec::new();
        for m in rd.messages {
            out.extend(self.fill(m)?);
        }
        if let Some(meta) = &rd.snapshot {
            let s = self.verified.take();
            let Some(s) = s.filter(|s| s.meta == *meta) else {
                return Err(TestCaseError::fail(format!(
                    "n{id}: adopted snapshot {}@{} it never verified",
                    meta.index, meta.term
                )));
            };
            prop_assert!(odd_first_byte(&s).is_ok(), "n{id}: adopted a snapshot that does not verify");
            prop_assert!(s.data.len() <= MAX_SNAPSHOT_BYTES, "n{id}: assembled a snapshot past the bound");
            prop_assert!(s.meta.index > self.snap_index() || self.snapshot.is_none(), "n{id}: snapshot goes back");
            self.snapshot = Some(s);
            self.entries.clear();
            covered(|c| c.adopted += 1);
        }
        if let Some(first) = rd.entries.first() {
            let keep = first.index.checked_sub(self.snap_index() + 1);
            prop_assert!(
                keep.is_some_and(|k| k as usize <= self.entries.len()),
                "n{id}: entries batch from {} leaves a gap after {}",
                first.index,
                self.disk_last_index()
            );
            self.entries.truncate(keep.unwrap_or(0) as usize);
            self.entries.extend_from_slice(&rd.entries);
        }
        if let Some(hs) = rd.hard_state {
            let prev = self.hard_state;
            prop_assert!(hs.term >= prev.term, "n{id}: term went back {} -> {}", prev.term, hs.term);
            if hs.term == prev.term && prev.vote.is_some() {
                prop_assert_eq!(hs.vote, prev.vote, "n{} changed its vote within term {}", id, hs.term);
            }
            prop_assert!(hs.commit >= prev.commit, "n{id}: commit went back {} -> {}", prev.commit, hs.commit);
            prop_assert!(
                hs.commit <= self.disk_last_index(),
                "n{id}: commit {} passes the last index on disk {}",
                hs.commit,
                self.disk_last_index()
            );
            self.hard_state = hs;
        }
        if let Some(last) = rd.entries.last() {
            self.raw.persisted(last.index, last.term);
        }
        for m in rd.persisted_messages {
            out.extend(self.fill(m)?);
        }
        if let Some(meta) = &rd.snapshot {
            self.applied = meta.index;
        }
        for e in &rd.committed {
            prop_assert_eq!(e.index, self.applied + 1, "n{}: committed entries out of order", id);
            self.applied = e.index;
        }
        for r in &rd.reads {
            prop_assert!(r.index <= self.applied, "n{id}: read served before applying its index");
        }
        self.replaced.clear();
        if verdict {
            out.extend(self.process()?);
        }
        Ok(out)
    }

    /// The application snapshots at its applied index.
    fn compact(&mut self) {
        let index = self.applied;
        if index <= self.snap_index() || index > self.disk_last_index() {
            return;
        }
        let Some(term) = self.entries.iter().find(|e| e.index == index).map(|e| e.term) else { return };
        self.raw.compact(index);
        let first = self.snap_index() + 1;
        self.entries.drain(..(index + 1 - first) as usize);
        self.replaced.extend(self.snapshot.take().map(|s| s.meta));
        self.snapshot = Some(Snapshot {
            meta: SnapshotMeta { index, term, voters: VOTERS.to_vec(), learners: vec![] },
            data: index.to_le_bytes().to_vec(),
        });
    }

    /// A crash and restart from what was persisted (everything handed out was).
    fn restart(&mut self) -> Result<(), TestCaseError> {
        let snapshot = self.snapshot.as_ref().map(|s| s.meta.clone());
        let restored = Restored { hard_state: self.hard_state, snapshot, entries: self.entries.clone() };
        self.raw = RawNode::new(self.config.clone(), restored)
            .map_err(|e| TestCaseError::fail(format!("n{}: persisted state does not restore: {e}", self.config.id)))?;
        self.applied = self.snap_index();
        // What was in flight died with the process.
        self.incoming = None;
        self.verified = None;
        self.replaced.clear();
        Ok(())
    }

    /// One driver input that is not a message.
    fn input(&mut self, kind: u64, seed: u64) -> Result<(), TestCaseError> {
        match kind {
            0 => self.raw.tick(),
            1 => {
                let _ = self.raw.propose(seed.to_le_bytes().to_vec());
            }
            2 => {
                let _ = self.raw.read_index(seed);
            }
            3 => self.raw.campaign(),
            4 => {
                let _ = self.raw.transfer_leadership(seed % 5);
            }
            5 => self.compact(),
            _ => self.restart()?,
        }
        Ok(())
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig { cases, failure_persistence: None, max_shrink_iters: 4000, ..PtConfig::default() })
}

/// One node fed hostile messages and driver inputs.
#[test]
fn a_node_survives_arbitrary_messages() {
    const CASES: u32 = 400;
    const STEPS: usize = 1000;
    let stepped = std::cell::Cell::new(0u64);
    let schedule = prop::collection::vec((0u64..100, any::<u64>()), STEPS);
    runner(CASES)
        .run(&(any::<u64>(), schedule), |(seed, schedule)| {
            let mut n = Driven::new(1, seed);
            for (kind, seed) in schedule {
                match kind {
                    // Mostly messages, so that every case drives the node through roles.
                    0..=71 => {
                        let m = gen_message(seed, &n.raw);
                        stepped.set(stepped.get() + 1);
                        let _ = n.raw.step(m);
                    }
                    72..=85 => n.input(0, seed)?,
                    86..=89 => n.input(1, seed)?,
                    90..=91 => n.input(2, seed)?,
                    92..=93 => n.input(3, seed)?,
                    94 => n.input(4, seed)?,
                    95..=97 => n.input(5, seed)?,
                    _ => n.input(6, seed)?,
                }
                // Most turns end with the driver's processing; some batch several inputs.
                if seed % 4 != 0 {
                    n.process()?;
                }
            }
            n.process()?;
            Ok(())
        })
        .unwrap();
    assert!(stepped.get() >= 250_000, "only {} messages stepped", stepped.get());
    // Snapshots arrive, are refused and adopted, and a leader sends its own.
    let cov = COVERAGE.with(|c| c.get());
    assert!(cov.refused >= 25 && cov.adopted >= 25 && cov.chunks_filled >= 25, "{cov:?}");
}

/// A 3-node cluster whose network reorders, drops and duplicates, with hostile messages
/// mixed in. Until the first hostile message, every real message must be accepted (the
/// validation refuses nothing a correct peer sends, even late or twice).
#[test]
fn a_cluster_survives_arbitrary_messages() {
    const CASES: u32 = 300;
    const STEPS: usize = 1500;
    let stepped = std::cell::Cell::new(0u64);
    let committed = std::cell::Cell::new(0u64);
    let schedule = prop::collection::vec((0u64..100, any::<u64>()), STEPS);
    runner(CASES)
        .run(&(any::<u64>(), schedule), |(seed, schedule)| {
            let mut nodes: Vec<Driven> = VOTERS.iter().map(|&id| Driven::new(id, seed)).collect();
            let mut net: VecDeque<Message> = VecDeque::new();
            let mut hostile_seen = false;
            for (kind, seed) in schedule {
                let i = (seed % 3) as usize;
                match kind {
                    0..=54 if !net.is_empty() => {
                        let k = (seed >> 8) as usize % net.len().min(4);
                        let m = net.remove(k).expect("in range");
                        if !VOTERS.contains(&m.to) {
                            // An answer to a hostile stranger: no such node receives it.
                            continue;
                        }
                        let to = (m.to - 1) as usize;
                        stepped.set(stepped.get() + 1);
                        let shown = m.to_string();
                        if let Err(e) = nodes[to].raw.step(m) {
                            prop_assert!(hostile_seen, "a real message was refused: {shown}: {e}");
                        }
                        let out = nodes[to].process()?;
                        net.extend(out);
                    }
                    55..=57 if !net.is_empty() => {
                        let k = (seed >> 8) as usize % net.len();
                        net.remove(k);
                    }
                    58..=59 if !net.is_empty() => {
                        let k = (seed >> 8) as usize % net.len();
                        let m = net[k].clone();
                        net.push_back(m);
                    }
                    60..=69 => {
                        hostile_seen = true;
                        let m = gen_message(seed >> 2, &nodes[i].raw);
                        stepped.set(stepped.get() + 1);
                        let _ = nodes[i].raw.step(m);
                        let out = nodes[i].process()?;
                        net.extend(out);
                    }
                    _ => {
                        let input = match kind {
                            0..=87 => 0,
                            88..=92 => 1,
                            93..=94 => 2,
                            95 => 3,
                            96 => 4,
                            97..=98 => 5,
                            _ => 6,
                        };
                        nodes[i].input(input, seed)?;
                        let out = nodes[i].process()?;
                        net.extend(out);
                    }
                }
                // Keep the queue bounded: a real network loses what it cannot hold.
                while net.len() > 200 {
                    net.pop_front();
                }
            }
            if nodes.iter().any(|n| n.hard_state.commit >= 2) {
                committed.set(committed.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    assert!(stepped.get() >= 60_000, "only {} messages stepped", stepped.get());
    // The harness is not idle: clusters elect leaders and commit between the attacks.
    assert!(committed.get() >= u64::from(CASES / 4), "only {} cases committed anything", committed.get());
    let cov = COVERAGE.with(|c| c.get());
    assert!(cov.refused >= 20 && cov.adopted >= 20 && cov.chunks_filled >= 100, "{cov:?}");
}
