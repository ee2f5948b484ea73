//! The node: roles, transitions and the driving API.
//!
//! State common to every role (term, vote, log, timers, output buffers) lives in
//! [`RawNode`]; state that only one role has lives in that role's struct inside [`Role`]
//! (a leader's per-peer progress, pending reads and transfer; a candidate's tally; a
//! follower's half-received snapshot), so it disappears with the role.

use crate::log::RaftLog;
use crate::membership::MembershipLog;
use crate::progress::{Progress, ReplState};
use crate::*;
use std::collections::VecDeque;

/// Why a message was not stepped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The sender is not a member of this cluster.
    UnknownPeer(NodeId),
    /// The message breaks the protocol's shape (e.g. an append whose entries do not
    /// follow its base): bad input from the network, refused without effect.
    Malformed(&'static str),
    /// A field holds a value no correct peer can send at this point (a term far ahead,
    /// an index beyond what the sender can know, an answer to a question never asked):
    /// refused before it changes anything. `reason` names the value.
    Invalid { from: NodeId, field: &'static str, reason: String },
}

/// The furthest ahead of its own term a node follows a message. A partitioned node
/// without PreVote raises its term once per election timeout (at least 15 ticks of
/// 10 ms), so 2^24 terms is a month of failed elections: a bigger jump is forged or
/// corrupt, and refusing it keeps a hostile term from being adopted and persisted.
pub const MAX_TERM_JUMP: Term = 1 << 24;

/// The highest term a message may carry. It leaves 2^63 terms of headroom for a node's
/// own elections (one per election timeout), so `term + 1` never overflows.
pub const MAX_TERM: Term = u64::MAX >> 1;

/// The highest index a message may carry (a log position, a match, a snapshot): 2^62
/// entries take 146,000 years at a million entries a second, and it leaves room for
/// `index + entry count + 1` without overflow.
pub const MAX_INDEX: Index = u64::MAX >> 2;
/// The most voters a snapshot's metadata may list: more than any cluster has, and small
/// enough that the metadata always fits a snapshot file's header (raft-storage bounds it
/// at 64 KiB; 1024 voters take at most 10 KiB).
pub const MAX_SNAPSHOT_VOTERS: usize = 1024;

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::UnknownPeer(id) => write!(f, "message from unknown node {id}"),
            StepError::Malformed(why) => write!(f, "malformed message: {why}"),
            StepError::Invalid { from, field, reason } => write!(f, "invalid message from n{from}: {field}: {reason}"),
        }
    }
}
impl std::error::Error for StepError {}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader takes proposals; the hint says where to go.
    NotLeader(NotLeader),
    /// Too many uncommitted entries or pending reads, or a leadership transfer is in
    /// progress: retry soon.
    Busy,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(nl) => nl.fmt(f),
            ProposeError::Busy => f.write_str("leader busy (too much uncommitted work or a transfer in progress)"),
        }
    }
}
impl std::error::Error for ProposeError {}

/// Why a leadership transfer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    NotLeader(NotLeader),
    UnknownPeer(NodeId),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::NotLeader(nl) => nl.fmt(f),
            TransferError::UnknownPeer(id) => write!(f, "cannot transfer leadership to unknown node {id}"),
        }
    }
}
impl std::error::Error for TransferError {}

/// Why a membership change was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipError {
    NotLeader(NotLeader),
    /// One change at a time (§4.1): the change at `index` is not committed yet.
    InProgress {
        index: Index,
    },
    /// The leader has not yet committed an entry of its own term: until it has, a change
    /// could overlap one a deposed leader left behind (see the `membership` module).
    NotReady,
    /// A leadership transfer is in progress.
    Busy,
    /// The change does not apply to the current configuration.
    Invalid(String),
}

impl std::fmt::Display for MembershipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MembershipError::NotLeader(nl) => nl.fmt(f),
            MembershipError::InProgress { index } => {
                write!(f, "another membership change (log index {index}) is still in progress; retry once it commits")
            }
            MembershipError::NotReady => {
                f.write_str("the new leader has not committed an entry of its term yet; retry in a moment")
            }
            MembershipError::Busy => f.write_str("a leadership transfer is in progress; retry in a moment"),
            MembershipError::Invalid(why) => f.write_str(why),
        }
    }
}
impl std::error::Error for MembershipError {}

/// splitmix64: a tiny, good-enough generator for election timeouts. Seeded from
/// `Config::seed` mixed with the node id, so nodes sharing a seed still differ.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Role-only state. Transitions replace the whole value, so nothing of a former role
/// (a leader's progress, a candidate's votes) can be used by mistake.
enum Role {
    Follower(Follower),
    PreCandidate(Candidate),
    Candidate(Candidate),
    Leader(Box<Leader>),
}

#[derive(Default)]
struct Follower {
    /// A snapshot being received from the leader, chunk by chunk (§7): which one and how
    /// many bytes arrived. The bytes themselves went to the driver's store.
    incoming: Option<(SnapshotMeta, u64)>,
    /// A complete snapshot handed to the driver to verify (`Ready::received_snapshot`),
    /// and the leader that sent it; answered by [`RawNode::snapshot_verified`].
    verifying: Option<(NodeId, SnapshotMeta)>,
}

#[derive(Default)]
struct Candidate {
    /// (voter, granted) for every answer received, own vote included.
    votes: Vec<(NodeId, bool)>,
}

struct Leader {
    /// One per member other than this node (voters and learners), plus members removed
    /// by a change not yet committed: they still get the entry that removes them.
    progress: Vec<Progress>,
    heartbeat_elapsed: u32,
    /// The last heartbeat round sent; ReadIndex confirms a read once a majority echoed a
    /// round sent after the read arrived (§6.4).
    read_seq: u64,
    /// Reads arrived since the last round: start a new round in the next `ready`.
    read_round_needed: bool,
    /// A tick passed since the last `ready`: a follower whose only news is a higher
    /// commit index gets it now, in an empty append. Between ticks the commit index rides
    /// on the next append with entries (or the next heartbeat): under load every turn has
    /// entries, and with one client the next write follows within a round trip, so an
    /// empty append per commit would cost each follower a wake-up, a receive and an
    /// acknowledgement per write for news that changes nothing a client sees (issue 16).
    commit_notice_due: bool,
    /// Reads waiting for a quorum to confirm round `seq`.
    pending_reads: VecDeque<PendingRead>,
    /// Reads that arrived before this leader committed an entry of its term (§6.4 step 1).
    reads_awaiting_commit: Vec<u64>,
    transfer: Option<Transfer>,
    /// Bytes ([`Entry::size_bytes`]) of the entries after the commit index: the byte
    /// bound on proposals. Counted on election, grown by proposals, shrunk by commits.
    uncommitted_bytes: usize,
    /// Scratch space for the commit quorum computation (no allocation per message).
    scratch: Vec<Index>,
}

struct PendingRead {
    id: u64,
    index: Index,
    seq: u64,
}

struct Transfer {
    to: NodeId,
    elapsed_ticks: u32,
}

enum CampaignKind {
    /// §9.6: ask first without bumping the term.
    PreVote,
    /// A real election with a new term.
    Election,
    /// §3.10: the leader asked us to take over; voters ignore their leader lease.
    Transfer,
}

/// One Raft node.
pub struct RawNode {
    id: NodeId,
    config: Config,
    /// The configurations in the log (§4.1): the newest is in effect.
    members: MembershipLog,
    /// The newest configuration index this leader has finished with (dropped the
    /// progress of removed members, stepped down if it was removed itself).
    settled_config: Index,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    role: Role,
    rng: SplitMix64,
    /// Ticks since the leader was last heard from (follower), since the election started
    /// (candidate), or since the last CheckQuorum (leader).
    election_elapsed: u32,
    /// This round's randomized election timeout, in `[election_ticks_min, election_ticks_max)`.
    election_timeout: u32,
    /// The newest snapshot this node has (compacted or installed), for laggards: its
    /// bytes are in the driver's store, which fills the chunks this node sends.
    snapshot: Option<SnapshotMeta>,
    /// A snapshot installed from the leader, to hand out in `Ready::snapshot`.
    pending_install: Option<SnapshotMeta>,
    /// Confirmed reads waiting for the applied index to reach them.
    confirmed_reads: VecDeque<ReadState>,
    prev_hard_state: HardState,
    prev_soft_state: SoftState,
    out: Out,
}

/// Output buffers drained by `ready`.
#[derive(Default)]
struct Out {
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    events: Vec<Event>,
    dropped_reads: Vec<u64>,
    snapshot_chunks: Vec<SnapshotChunk>,
    received_snapshot: Option<SnapshotMeta>,
}

impl RawNode {
    /// Starts (or restarts) a node from its config and what it persisted.
    pub fn new(config: Config, restored: Restored) -> Result<RawNode, ConfigError> {
        config.validate()?;
        let Restored { hard_state, snapshot, entries } = restored;
        let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
        let mut expect = snap_index + 1;
        let mut prev_term = snap_term;
        for e in &entries {
            if e.index != expect {
                return Err(ConfigError(format!("restored log is not contiguous: expected index {expect}, found {e}")));
            }
            if e.term < prev_term && !bugs_on(&config) {
                return Err(ConfigError(format!("restored log goes back in term at {e}")));
            }
            expect += 1;
            prev_term = e.term;
        }
        let last_index = expect - 1;
        if hard_state.commit > last_index {
            return Err(ConfigError(format!(
                "restored commit index {} is beyond the last restored index {last_index}",
                hard_state.commit
            )));
        }
        if prev_term > hard_state.term {
            return Err(ConfigError(format!(
                "restored log has term {prev_term}, above the restored current term {}",
                hard_state.term
            )));
        }
        if hard_state.term > MAX_TERM {
            return Err(ConfigError(format!(
                "restored term {} is above MAX_TERM {MAX_TERM}: a hostile or corrupt term was persisted",
                hard_state.term
            )));
        }
        // A snapshot only ever holds committed state.
        let commit = hard_state.commit.max(snap_index);
        let log = RaftLog::restore_from(snap_index, snap_term, entries, commit);
        let id = config.id;
        // The snapshot's configuration, else the bootstrap one; then every change after it.
        let base = match &snapshot {
            Some(meta) if !meta.voters.is_empty() => meta.membership(),
            _ => Membership::voters(config.voters.iter().copied()),
        };
        let mut members = MembershipLog::new(base);
        members.appended(log.entries());
        let mut node = RawNode {
            id,
            members,
            settled_config: 0,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            log,
            role: Role::Follower(Follower::default()),
            rng: SplitMix64(config.seed ^ id.wrapping_mul(0xA24B_AED4_963E_E407)),
            election_elapsed: 0,
            election_timeout: config.election_ticks_min,
            snapshot,
            pending_install: None,
            confirmed_reads: VecDeque::new(),
            prev_hard_state: HardState { term: hard_state.term, vote: hard_state.vote, commit },
            prev_soft_state: SoftState { role: RoleKind::Follower, term: hard_state.term, leader: None },
            out: Out::default(),
            config,
        };
        node.reset_election_timeout();
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn term(&self) -> Term {
        self.term
    }

    /// Ticks since the election timer was last reset (a message from the leader of our
    /// term, a vote granted, an election started). On a leader, ticks since its last
    /// check-quorum round. For `raft-supervisor watch`'s gauge.
    pub fn election_elapsed_ticks(&self) -> u32 {
        self.election_elapsed
    }

    /// This round's randomized election timeout in ticks: a follower campaigns when
    /// [`RawNode::election_elapsed_ticks`] reaches it.
    pub fn election_timeout_ticks(&self) -> u32 {
        self.election_timeout
    }

    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Follower(_) => RoleKind::Follower,
            Role::PreCandidate(_) => RoleKind::PreCandidate,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// The leader this node believes in for its current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.committed }
    }

    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// The entry at `index`, if it is in the in-memory log (after the snapshot).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The in-memory log (the entries after the snapshot), oldest first.
    pub fn log_entries(&self) -> impl Iterator<Item = &Entry> {
        self.log.entries()
    }

    /// The newest snapshot this node holds, if any (its bytes are in the store).
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    fn quorum(&self) -> usize {
        self.members.current().quorum()
    }

    /// The configuration in effect (the newest in the log, committed or not).
    pub fn membership(&self) -> &Membership {
        self.members.current()
    }

    /// The configuration in effect at `index` (at or after the snapshot's index): what a
    /// snapshot taken there carries.
    pub fn membership_at(&self, index: Index) -> &Membership {
        assert!(index >= self.log.snap_index(), "membership_at({index}) before the snapshot");
        self.members.at(index)
    }

    /// The log index of the configuration in effect (0: the bootstrap or snapshot one).
    pub fn membership_index(&self) -> Index {
        self.members.current_index()
    }

    /// A voter of the configuration in effect, or of the newest committed one: a node
    /// whose removal is appended but not committed still campaigns, or a cluster could
    /// be left with no one able to finish the change (the removed node holding the entry
    /// alone, the others needing its vote under the old configuration). It wins with
    /// the votes of the new configuration's majority, its own not counted, and steps down
    /// once the change commits, as a removed leader does (§4.2.2).
    fn may_campaign(&self) -> bool {
        self.members.current().is_voter(self.id) || self.members.at(self.log.committed).is_voter(self.id)
    }

    /// The voters other than this node.
    fn other_voters(&self) -> Vec<NodeId> {
        self.members.current().voters.iter().copied().filter(|&v| v != self.id).collect()
    }

    fn bugs_on(&self) -> bool {
        bugs_on(&self.config)
    }

    fn bug_double_vote(&self) -> bool {
        #[cfg(feature = "bugs")]
        return self.config.bugs.double_vote;
        #[cfg(not(feature = "bugs"))]
        false
    }

    fn bug_commit_old_term(&self) -> bool {
        #[cfg(feature = "bugs")]
        return self.config.bugs.commit_old_term;
        #[cfg(not(feature = "bugs"))]
        false
    }

    fn bug_overlapping_changes(&self) -> bool {
        #[cfg(feature = "bugs")]
        return self.config.bugs.overlapping_changes;
        #[cfg(not(feature = "bugs"))]
        false
    }

    fn bug_no_truncate(&self) -> bool {
        #[cfg(feature = "bugs")]
        return self.config.bugs.no_truncate;
        #[cfg(not(feature = "bugs"))]
        false
    }

    fn reset_election_timeout(&mut self) {
        let span = u64::from(self.config.election_ticks_max - self.config.election_ticks_min);
        self.election_timeout = self.config.election_ticks_min + (self.rng.next() % span) as u32;
        self.election_elapsed = 0;
    }

    /// Leader lease (etcd's check_quorum rule, thesis §4.2.3): a node that heard from a
    /// leader within the minimum election timeout refuses to help unseat it.
    fn in_lease(&self) -> bool {
        self.config.check_quorum && self.leader.is_some() && self.election_elapsed < self.config.election_ticks_min
    }

    /// The term after ours, for an election or a pre-vote.
    fn next_term(&self) -> Term {
        // Cannot overflow: a term is adopted only from a message, which `step` refuses
        // above MAX_TERM (and `new` refuses to restore), and a node's own elections add
        // one each, once per election timeout: 2^63 of them is beyond any run.
        self.term.checked_add(1).expect("term below u64::MAX: messages are capped at MAX_TERM")
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.out.messages.push(Message { from: self.id, to, term: self.term, body });
    }

    fn send_persisted(&mut self, to: NodeId, body: MessageBody) {
        self.out.persisted_messages.push(Message { from: self.id, to, term: self.term, body });
    }

    fn event(&mut self, e: Event) {
        self.out.events.push(e);
    }

    // ---------------------------------------------------------------- transitions

    /// Becomes a follower in `term` (adopting it and clearing the vote if it is newer).
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "term never goes back: {} -> {term}", self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.drop_leader_state();
        self.role = Role::Follower(Follower::default());
        self.leader = leader;
        self.reset_election_timeout();
        self.event(Event::RoleChanged { role: RoleKind::Follower, term: self.term, leader });
    }

    /// Reads that were not yet confirmed cannot be any more: hand them back.
    fn drop_leader_state(&mut self) {
        if let Role::Leader(l) = &mut self.role {
            let l = &mut **l;
            self.out.dropped_reads.append(&mut l.reads_awaiting_commit);
            self.out.dropped_reads.extend(l.pending_reads.drain(..).map(|r| r.id));
            if let Some(t) = l.transfer.take() {
                if self.leader != Some(t.to) {
                    self.out.events.push(Event::TransferAborted { to: t.to, term: self.term });
                }
            }
        }
    }

    fn campaign_kind(&mut self, kind: CampaignKind) {
        if matches!(self.role, Role::Leader(_)) {
            return;
        }
        if !self.may_campaign() {
            // Learners and removed nodes never campaign (§4.2.1, §4.2.3).
            self.reset_election_timeout();
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let voters = self.other_voters();
        match kind {
            CampaignKind::PreVote => {
                self.role = Role::PreCandidate(Candidate { votes: vec![(self.id, true)] });
                self.leader = None;
                self.reset_election_timeout();
                self.event(Event::RoleChanged { role: RoleKind::PreCandidate, term: self.term, leader: None });
                let asked = self.next_term();
                for &to in &voters {
                    self.out.messages.push(Message {
                        from: self.id,
                        to,
                        term: asked,
                        body: MessageBody::PreVote { last_index, last_term },
                    });
                }
                self.check_tally();
            }
            CampaignKind::Election | CampaignKind::Transfer => {
                self.term = self.next_term();
                self.vote = Some(self.id);
                self.leader = None;
                self.role = Role::Candidate(Candidate { votes: vec![(self.id, true)] });
                self.reset_election_timeout();
                self.event(Event::RoleChanged { role: RoleKind::Candidate, term: self.term, leader: None });
                let transfer = matches!(kind, CampaignKind::Transfer);
                // The vote for ourselves must be durable before anyone can count on it.
                for &to in &voters {
                    self.send_persisted(to, MessageBody::Vote { last_index, last_term, transfer });
                }
                self.check_tally();
            }
        }
    }

    fn record_vote(&mut self, from: NodeId, granted: bool, pre: bool) {
        let votes = match &mut self.role {
            Role::PreCandidate(c) if pre => &mut c.votes,
            Role::Candidate(c) if !pre => &mut c.votes,
            _ => return,
        };
        if !votes.iter().any(|v| v.0 == from) {
            votes.push((from, granted));
        }
        self.check_tally();
    }

    /// Wins or loses the (pre-)election once a quorum answered.
    fn check_tally(&mut self) {
        let quorum = self.quorum();
        let (pre, votes) = match &self.role {
            Role::PreCandidate(c) => (true, &c.votes),
            Role::Candidate(c) => (false, &c.votes),
            _ => return,
        };
        // Only the voters of the configuration in effect elect (§4.1), this node's own
        // vote included only if it is one of them.
        let members = self.members.current();
        let granted = votes.iter().filter(|v| v.1 && members.is_voter(v.0)).count();
        let denied = votes.iter().filter(|v| !v.1 && members.is_voter(v.0)).count();
        if granted >= quorum {
            if pre {
                self.campaign_kind(CampaignKind::Election);
            } else {
                self.become_leader();
            }
        } else if denied >= quorum {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        assert!(matches!(self.role, Role::Candidate(_)), "only a candidate becomes leader");
        assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
        let next = self.log.last_index() + 1;
        // Members of the configuration in effect, and those an inherited, uncommitted change
        // removes: they are replicated to until they hold the change (release_removed).
        let mut ids: Vec<NodeId> = self.members.current().members().collect();
        ids.extend(self.members.at(self.log.committed).members());
        ids.sort_unstable();
        ids.dedup();
        let progress = ids.into_iter().filter(|&p| p != self.id).map(|p| Progress::new(p, next)).collect();
        self.role = Role::Leader(Box::new(Leader {
            progress,
            heartbeat_elapsed: 0,
            read_seq: 0,
            read_round_needed: false,
            commit_notice_due: false,
            pending_reads: VecDeque::new(),
            reads_awaiting_commit: Vec::new(),
            transfer: None,
            uncommitted_bytes: 0,
            scratch: Vec::new(),
        }));
        self.leader = Some(self.id);
        self.election_elapsed = 0;
        // A configuration inherited uncommitted is settled once it commits in this term.
        self.settled_config = self.members.current_index().min(self.log.committed);
        self.event(Event::RoleChanged { role: RoleKind::Leader, term: self.term, leader: Some(self.id) });
        self.event(Event::LeaderElected { leader: self.id, term: self.term });
        // §5.4.2/§8: a no-op of the new term lets the leader commit what earlier terms left.
        let e = Entry { index: next, term: self.term, data: EntryData::Noop };
        self.log.append(e);
        let uncommitted: usize =
            self.log.entries().filter(|e| e.index > self.log.committed).map(Entry::size_bytes).sum();
        if let Role::Leader(l) = &mut self.role {
            l.uncommitted_bytes = uncommitted;
        }
        // A single voter commits as soon as its own disk has the entry.
        self.maybe_commit();
    }

    // ---------------------------------------------------------------- driving API

    /// Starts an election now, as if the election timeout had passed (with PreVote first
    /// when configured). A leader ignores it. For tests, demos and operators.
    pub fn campaign(&mut self) {
        let kind = if self.config.pre_vote { CampaignKind::PreVote } else { CampaignKind::Election };
        self.campaign_kind(kind);
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if !matches!(self.role, Role::Leader(_)) {
            if self.election_elapsed >= self.election_timeout {
                self.campaign();
            }
            return;
        }
        let heartbeat_ticks = self.config.heartbeat_ticks;
        let election_ticks = self.config.election_ticks_min;
        let Role::Leader(l) = &mut self.role else { unreachable!() };
        l.commit_notice_due = true;
        l.heartbeat_elapsed += 1;
        let heartbeat_due = l.heartbeat_elapsed >= heartbeat_ticks;
        if heartbeat_due {
            l.heartbeat_elapsed = 0;
        }
        let mut aborted = None;
        if let Some(t) = &mut l.transfer {
            t.elapsed_ticks += 1;
            if t.elapsed_ticks >= election_ticks {
                aborted = Some(t.to);
                l.transfer = None;
            }
        }
        if let Some(to) = aborted {
            self.event(Event::TransferAborted { to, term: self.term });
        }
        if self.election_elapsed >= election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.check_quorum_active() {
                self.event(Event::CheckQuorumFailed { term: self.term });
                self.become_follower(self.term, None);
                return;
            }
        }
        if heartbeat_due {
            self.broadcast_heartbeat();
            self.maybe_promote();
        }
    }

    /// §4.2.1: a learner that has caught up (within `promote_lag` entries of the leader's
    /// log, and replicating normally) is promoted to voter, one at a time; never before,
    /// so a new node cannot make the cluster wait for it to catch up.
    fn maybe_promote(&mut self) {
        if !self.config.auto_promote {
            return;
        }
        let last_index = self.log.last_index();
        let lag = self.config.promote_lag;
        let Role::Leader(l) = &self.role else { return };
        let members = self.members.current();
        let ready = l.progress.iter().find(|p| {
            members.kind(p.id) == MemberKind::Learner
                && matches!(p.state, ReplState::Replicate { .. })
                && p.match_index.saturating_add(lag) >= last_index
        });
        if let Some(id) = ready.map(|p| p.id) {
            // Refused while another change or a transfer is in progress: tried again at
            // the next heartbeat.
            let _ = self.propose_membership(MembershipChange::Promote(id));
        }
    }

    /// §6.2: did a majority (self included) talk to us in this window? Resets the window.
    fn check_quorum_active(&mut self) -> bool {
        let quorum = self.quorum();
        let members = self.members.current();
        let Role::Leader(l) = &mut self.role else { return false };
        let mut active = usize::from(members.is_voter(self.id));
        for pr in &mut l.progress {
            if pr.recent_active && members.is_voter(pr.id) {
                active += 1;
            }
            pr.recent_active = false;
        }
        active >= quorum
    }

    fn broadcast_heartbeat(&mut self) {
        let commit = self.log.committed;
        let Role::Leader(l) = &mut self.role else { return };
        for pr in &l.progress {
            // Never tell a follower to commit beyond what it is known to have.
            let body = MessageBody::Heartbeat { commit: commit.min(pr.match_index), read_seq: l.read_seq };
            self.out.messages.push(Message { from: self.id, to: pr.id, term: self.term, body });
        }
    }

    /// Handles a message from a peer.
    ///
    /// Three steps: check every field of the message (this is the trust boundary: a
    /// refused message changes nothing and returns a [`StepError`] naming what is
    /// wrong), apply the term rules every role shares (`step_term`), then
    /// hand what is left to the step function of the current role.
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        if msg.to != self.id {
            let reason = format!("addressed to n{}, but this is n{}", msg.to, self.id);
            return Err(StepError::Invalid { from: msg.from, field: "to", reason });
        }
        // Any other node may write: a node this one does not know yet may be a member of
        // a configuration it has not received (a leader elected after changes it missed
        // must be able to catch it up). Only the voters of the configuration in effect
        // are counted (record_vote, the quorum functions).
        if msg.from == self.id || msg.from == 0 {
            return Err(StepError::UnknownPeer(msg.from));
        }
        check_bounds(&msg)?;
        validate(&msg, !self.bugs_on())?;
        self.check_against_state(&msg)?;
        if !self.step_term(&msg) {
            return Ok(());
        }
        match self.role {
            Role::Follower(_) => self.step_follower(msg),
            Role::PreCandidate(_) | Role::Candidate(_) => self.step_candidate(msg),
            Role::Leader(_) => self.step_leader(msg),
        }
        Ok(())
    }

    /// The checks of a message against this node's state (the message's shape and
    /// bounds passed already). Nothing here changes state. A message from an older term
    /// is only ever answered with our term, so its fields are not looked at: a stale
    /// answer stays a legitimate, ignored message.
    fn check_against_state(&self, msg: &Message) -> Result<(), StepError> {
        let invalid = |field: &'static str, reason: String| Err(StepError::Invalid { from: msg.from, field, reason });
        if msg.term > self.term {
            let jump = msg.term - self.term;
            if jump > MAX_TERM_JUMP {
                return invalid(
                    "term",
                    format!(
                        "term {} is {jump} ahead of ours ({}), beyond MAX_TERM_JUMP {MAX_TERM_JUMP}",
                        msg.term, self.term
                    ),
                );
            }
            return Ok(());
        }
        if msg.term < self.term {
            return Ok(());
        }
        let strict = !self.bugs_on();
        let term = msg.term;
        match &msg.body {
            // §5.2: one leader per term. A leader hears no other leader in its term, and a
            // follower that knows the leader of its term hears no second one.
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. }
                if strict =>
            {
                if matches!(self.role, Role::Leader(_)) {
                    return invalid(
                        "term",
                        format!("n{} claims term {term}, in which this node is the leader", msg.from),
                    );
                }
                if let Some(l) = self.leader.filter(|&l| l != msg.from) {
                    return invalid("term", format!("n{} claims term {term}, whose leader is n{l}", msg.from));
                }
            }
            // A vote answers a request made in its term: only a node that voted for itself
            // in this term (it campaigned) asked anyone.
            MessageBody::VoteResponse { .. } if self.vote != Some(self.id) => {
                return invalid("term", format!("a vote for term {term}, in which this node never asked for votes"));
            }
            _ => {}
        }
        let Role::Leader(l) = &self.role else { return Ok(()) };
        let last_index = self.log.last_index();
        match &msg.body {
            MessageBody::AppendResponse { success, match_index, reject_hint_index, reject_hint_term } => {
                // A follower acknowledges or rejects only what this leader sent it.
                if *match_index > last_index {
                    return invalid(
                        "match_index",
                        format!("{match_index} is beyond this leader's last index {last_index}"),
                    );
                }
                if !success && reject_hint_index > match_index {
                    return invalid(
                        "reject_hint_index",
                        format!("{reject_hint_index} is beyond the rejected base {match_index}"),
                    );
                }
                if !success && *reject_hint_term > term {
                    return invalid(
                        "reject_hint_term",
                        format!("{reject_hint_term} is beyond the follower's term {term}"),
                    );
                }
            }
            MessageBody::HeartbeatResponse { read_seq } if *read_seq > l.read_seq => {
                return invalid("read_seq", format!("{read_seq} was never sent: the last round is {}", l.read_seq));
            }
            // A follower reports its commit index or the snapshot it installed: both are
            // in this leader's log (Leader Completeness).
            MessageBody::InstallSnapshotResponse { installed: Some(i), .. } if *i > last_index => {
                return invalid("installed", format!("{i} is beyond this leader's last index {last_index}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The term prelude (Figure 2 "Rules for Servers: all servers", §5.1; PreVote §9.6;
    /// the leader lease §4.2.3). A newer term is adopted (or, for pre-votes, only looked
    /// at); a stale sender is answered where that helps it catch up and otherwise
    /// ignored. Returns true when the message still has to be handled in the (possibly
    /// new) role at `self.term`, or at `msg.term` for a pre-vote.
    fn step_term(&mut self, msg: &Message) -> bool {
        if msg.term > self.term {
            self.step_higher_term(msg)
        } else if msg.term < self.term {
            self.step_lower_term(msg);
            false
        } else {
            true
        }
    }

    /// A message from a newer term (§5.1: adopt it and become a follower), except for
    /// pre-votes, which ask about a future term without anyone adopting it, and vote
    /// requests within the leader lease, which are ignored.
    fn step_higher_term(&mut self, msg: &Message) -> bool {
        match &msg.body {
            MessageBody::PreVote { .. } => {}
            MessageBody::PreVoteResponse { granted } => {
                if *granted {
                    // A grant echoes the term we asked about: nobody adopted it.
                    if msg.term == self.next_term() {
                        self.record_vote(msg.from, true, true);
                    }
                } else {
                    // A refusal carries the voter's own term: it is ahead of us, so
                    // catch up (and ask for the term after it next time).
                    self.become_follower(msg.term, None);
                }
                return false;
            }
            MessageBody::Vote { transfer, .. } => {
                if *transfer {
                    // Our own transfer succeeding: not an abort.
                    if let Role::Leader(l) = &mut self.role {
                        l.transfer.take_if(|t| t.to == msg.from);
                    }
                } else if self.in_lease() {
                    self.event(Event::VoteDenied {
                        to: msg.from,
                        term: msg.term,
                        pre_vote: false,
                        reason: "heard from the leader within the election timeout (lease)",
                    });
                    return false;
                }
                self.become_follower(msg.term, None);
            }
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(msg.term, Some(msg.from));
            }
            _ => self.become_follower(msg.term, None),
        }
        true
    }

    /// A message from an older term: its sender is stale. Most such messages are
    /// dropped; a stale leader and a stale pre-candidate are told our term.
    fn step_lower_term(&mut self, msg: &Message) {
        match msg.body {
            // A stale leader (e.g. back from a partition) learns our term and steps
            // down (Figure 2: the reply carries currentTerm). etcd answers only with
            // PreVote or CheckQuorum, counting on our vote requests to reach the leader
            // otherwise; with membership changes they may not (our configuration can be
            // older than the leader's and leave it out), and both sides would wait.
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } => {
                self.send_persisted(
                    msg.from,
                    MessageBody::AppendResponse {
                        success: false,
                        match_index: 0,
                        reject_hint_index: 0,
                        reject_hint_term: 0,
                    },
                );
            }
            MessageBody::PreVote { .. } => {
                self.event(Event::VoteDenied {
                    to: msg.from,
                    term: msg.term,
                    pre_vote: true,
                    reason: "its term is behind ours",
                });
                self.send(msg.from, MessageBody::PreVoteResponse { granted: false });
            }
            _ => {}
        }
    }

    /// A vote or pre-vote request that passed the term prelude: every role answers it
    /// the same way (a leader or candidate has voted for itself and refuses).
    fn step_vote_request(&mut self, msg: Message) {
        match msg.body {
            MessageBody::PreVote { last_index, last_term } => {
                self.handle_vote_request(msg.from, msg.term, last_index, last_term, true)
            }
            MessageBody::Vote { last_index, last_term, .. } => {
                self.handle_vote_request(msg.from, msg.term, last_index, last_term, false)
            }
            _ => unreachable!("not a vote request: {msg}"),
        }
    }

    /// A follower in `self.term`: answers vote requests, follows the leader's appends,
    /// heartbeats and snapshot chunks, and campaigns at once on the leader's TimeoutNow.
    /// Vote and replication responses are late answers to a former role: ignored.
    fn step_follower(&mut self, msg: Message) {
        let from = msg.from;
        match msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.step_vote_request(msg),
            MessageBody::Append { base_index, base_term, entries, commit } => {
                self.follow(from);
                self.handle_append(from, base_index, base_term, entries, commit);
            }
            MessageBody::Heartbeat { commit, read_seq } => {
                self.follow(from);
                let commit = commit.min(self.log.last_index());
                self.log.commit_to(commit);
                self.send(from, MessageBody::HeartbeatResponse { read_seq });
            }
            MessageBody::InstallSnapshot { meta, offset, data, done } => {
                self.follow(from);
                self.handle_snapshot_chunk(from, meta, offset, data, done);
            }
            MessageBody::TimeoutNow => {
                if self.leader == Some(from) {
                    self.campaign_kind(CampaignKind::Transfer);
                }
            }
            MessageBody::PreVoteResponse { .. }
            | MessageBody::VoteResponse { .. }
            | MessageBody::AppendResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. } => {}
        }
    }

    /// A pre-candidate or candidate in `self.term`: counts answers to its own
    /// (pre-)election and steps down for the leader of its term (§5.2: "if
    /// AppendEntries RPC received from new leader: convert to follower").
    fn step_candidate(&mut self, msg: Message) {
        match msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.step_vote_request(msg),
            // A refusal from a voter in our term; a grant in our term is stale (grants
            // carry the asked term, one above ours).
            MessageBody::PreVoteResponse { granted } => {
                if !granted {
                    self.record_vote(msg.from, false, true);
                }
            }
            MessageBody::VoteResponse { granted } => self.record_vote(msg.from, granted, false),
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(self.term, Some(msg.from));
                self.step_follower(msg);
            }
            MessageBody::TimeoutNow
            | MessageBody::AppendResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. } => {}
        }
    }

    /// The leader of `self.term`: answers vote requests (refusing them: it voted for
    /// itself) and takes its followers' replication and heartbeat answers.
    fn step_leader(&mut self, msg: Message) {
        let from = msg.from;
        match msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.step_vote_request(msg),
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                // Two leaders in one term: refused in check_against_state, so only
                // reachable with a planted bug (then ignored, for the checkers to find).
                assert!(self.bugs_on(), "n{}: two leaders in term {}: n{from} and us", self.id, self.term);
            }
            MessageBody::AppendResponse { success, match_index, reject_hint_index, reject_hint_term } => {
                self.handle_append_response(from, success, match_index, reject_hint_index, reject_hint_term)
            }
            MessageBody::HeartbeatResponse { read_seq } => self.handle_heartbeat_response(from, read_seq),
            MessageBody::InstallSnapshotResponse { next_offset, installed } => {
                self.handle_snapshot_response(from, next_offset, installed)
            }
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } | MessageBody::TimeoutNow => {}
        }
    }

    /// A message from the leader of our term, received as a follower: note the leader
    /// and restart the election timer.
    fn follow(&mut self, from: NodeId) {
        assert!(matches!(self.role, Role::Follower(_)), "only a follower follows");
        if self.leader != Some(from) {
            self.leader = Some(from);
            self.event(Event::LeaderElected { leader: from, term: self.term });
        }
        self.election_elapsed = 0;
    }

    fn handle_vote_request(&mut self, from: NodeId, term: Term, last_index: Index, last_term: Term, pre: bool) {
        let up_to_date = self.log.is_up_to_date(last_index, last_term);
        let denial: Option<&'static str> = if pre {
            if term <= self.term {
                Some("the pre-vote term is not above ours")
            } else if self.in_lease() {
                Some("heard from the leader within the election timeout (lease)")
            } else if !up_to_date {
                Some("candidate's log is not up to date (§5.4.1)")
            } else {
                None
            }
        } else {
            debug_assert_eq!(term, self.term);
            let free = self.vote == Some(from)
                || (self.vote.is_none() && self.leader.is_none())
                || (self.bug_double_vote() && self.leader.is_none());
            if !free {
                Some(if self.leader.is_some() {
                    "a leader is known in this term"
                } else {
                    "already voted in this term"
                })
            } else if !up_to_date {
                Some("candidate's log is not up to date (§5.4.1)")
            } else {
                None
            }
        };
        match denial {
            None => {
                self.event(Event::VoteGranted { to: from, term, pre_vote: pre });
                if pre {
                    self.out.messages.push(Message {
                        from: self.id,
                        to: from,
                        term,
                        body: MessageBody::PreVoteResponse { granted: true },
                    });
                } else {
                    self.vote = Some(from);
                    self.election_elapsed = 0;
                    self.send_persisted(from, MessageBody::VoteResponse { granted: true });
                }
            }
            Some(reason) => {
                self.event(Event::VoteDenied { to: from, term, pre_vote: pre, reason });
                if pre {
                    // At our own term: a pre-candidate behind us catches up with it.
                    self.send(from, MessageBody::PreVoteResponse { granted: false });
                } else {
                    self.send_persisted(from, MessageBody::VoteResponse { granted: false });
                }
            }
        }
    }

    /// §5.3 AppendEntries receiver implementation, with fast backtracking hints.
    fn handle_append(&mut self, from: NodeId, base_index: Index, base_term: Term, entries: Vec<Entry>, commit: Index) {
        let (mut base_index, mut base_term, mut entries) = (base_index, base_term, entries);
        let committed = self.log.committed;
        if base_index < committed {
            // Everything up to our commit index matches any leader's log (Leader
            // Completeness): skip it rather than compare against compacted entries.
            let end = base_index + entries.len() as Index;
            if end <= committed {
                self.ack_append(from, committed);
                return;
            }
            let skip = (committed - base_index) as usize;
            base_term = entries[skip - 1].term;
            base_index = committed;
            entries.drain(..skip);
        }
        let matches = self.log.term(base_index) == Some(base_term);
        if !matches {
            let (hint_index, hint_term) = if base_index > self.log.last_index() {
                (self.log.last_index(), self.log.last_term())
            } else {
                let i = self.log.find_conflict_by_term(base_index, base_term).max(committed);
                (i, self.log.term(i).unwrap_or(0))
            };
            self.send_persisted(
                from,
                MessageBody::AppendResponse {
                    success: false,
                    match_index: base_index,
                    reject_hint_index: hint_index,
                    reject_hint_term: hint_term,
                },
            );
            return;
        }
        let no_truncate = self.bug_no_truncate();
        let out = self.log.append_from_leader(base_index, entries, no_truncate, self.bugs_on());
        if let Some((from_index, to_index, dropped_term)) = out.truncated {
            self.event(Event::LogTruncated { from: from_index, to: to_index, term: dropped_term, leader: from });
        }
        if let Some(first) = out.first_new {
            self.note_appended_config(first);
        }
        self.log.commit_to(commit.min(out.last_new));
        self.ack_append(from, out.last_new);
    }

    fn ack_append(&mut self, to: NodeId, match_index: Index) {
        self.send_persisted(
            to,
            MessageBody::AppendResponse { success: true, match_index, reject_hint_index: 0, reject_hint_term: 0 },
        );
    }

    fn handle_snapshot_chunk(&mut self, from: NodeId, meta: SnapshotMeta, offset: u64, data: Vec<u8>, done: bool) {
        if meta.index <= self.log.committed {
            // We already have everything it holds.
            let committed = self.log.committed;
            self.send_persisted(
                from,
                MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(committed) },
            );
            return;
        }
        let max_bytes = self.config.max_incoming_snapshot_bytes as u64;
        let Role::Follower(f) = &mut self.role else { unreachable!("follow() made us a follower") };
        if f.verifying.is_some() {
            // The driver has not answered yet (a step-by-step driver stepped in between):
            // the leader resends whatever this chunk was at its next heartbeat.
            return;
        }
        if offset == 0 {
            f.incoming = Some((meta.clone(), 0));
        }
        let expected = match &mut f.incoming {
            Some((m, received)) if *m == meta && *received == offset => {
                if received.saturating_add(data.len() as u64) > max_bytes {
                    f.incoming = None;
                    let reason = format!("larger than max_incoming_snapshot_bytes={max_bytes}");
                    return self.refuse_snapshot(from, &meta, reason);
                }
                *received += data.len() as u64;
                None
            }
            Some((m, received)) if *m == meta => Some(*received),
            _ => Some(0),
        };
        if let Some(next_offset) = expected {
            // Out of order or a different snapshot: tell the leader where we are.
            self.send(from, MessageBody::InstallSnapshotResponse { next_offset, installed: None });
            return;
        }
        let next_offset = offset + data.len() as u64;
        self.out.snapshot_chunks.push(SnapshotChunk { meta: meta.clone(), offset, data });
        if !done {
            self.send(from, MessageBody::InstallSnapshotResponse { next_offset, installed: None });
            return;
        }
        f.incoming = None;
        let (index, term) = (meta.index, meta.term);
        if self.log.term(index) == Some(term) {
            // Our log already holds the snapshot's last entry: keep the log, just commit.
            self.log.commit_to(index);
            self.send_persisted(from, MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(index) });
            return;
        }
        // The snapshot is about to replace the log and be persisted as current: it must
        // load, or the node would be left with a state it cannot restart from. Only the
        // driver can read it back from its store.
        f.verifying = Some((from, meta.clone()));
        self.out.received_snapshot = Some(meta);
    }

    /// The driver's verdict on `Ready::received_snapshot`: `Ok` when the complete
    /// snapshot in its store loads into the state machine at `meta.index` (checksum and
    /// decode), else why not. A verified snapshot replaces the log and is handed out in
    /// the next `Ready::snapshot`; a refused one changes nothing (an
    /// [`Event::SnapshotRefused`] says why) and the leader is asked to start over. A
    /// verdict for a snapshot this node no longer waits for (its role changed) is ignored.
    /// Returns whether the snapshot was adopted (it will come in `Ready::snapshot`).
    pub fn snapshot_verified(&mut self, meta: &SnapshotMeta, result: Result<(), String>) -> bool {
        let Role::Follower(f) = &mut self.role else { return false };
        if !matches!(&f.verifying, Some((_, m)) if m == meta) {
            return false;
        }
        let (from, meta) = f.verifying.take().expect("checked above");
        if let Err(reason) = result {
            self.refuse_snapshot(from, &meta, format!("does not verify: {reason}"));
            return false;
        }
        let (index, term) = (meta.index, meta.term);
        if index <= self.log.committed {
            let committed = self.log.committed;
            let body = MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(committed) };
            self.send_persisted(from, body);
            return false;
        }
        self.log.restore(index, term);
        let was = self.members.current().clone();
        self.members.reset(meta.membership());
        if *self.members.current() != was {
            let membership = self.members.current().clone();
            self.event(Event::MembershipChanged { membership, index, term: self.term });
            if was.contains(self.id) && !self.members.current().contains(self.id) {
                self.event(Event::Removed { term: self.term, committed: false });
            }
        }
        // Confirmed reads below the snapshot are covered by it too.
        self.pending_install = Some(meta.clone());
        self.snapshot = Some(meta);
        self.event(Event::SnapshotInstalled { index, term });
        self.send_persisted(from, MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(index) });
        true
    }

    /// Drops an incoming snapshot (already taken out of the follower's state) without
    /// changing anything else, says why, and asks the leader to start over from offset 0.
    fn refuse_snapshot(&mut self, from: NodeId, meta: &SnapshotMeta, reason: String) {
        self.event(Event::SnapshotRefused { from, index: meta.index, term: meta.term, reason });
        self.send(from, MessageBody::InstallSnapshotResponse { next_offset: 0, installed: None });
    }

    fn progress_mut(&mut self, from: NodeId) -> Option<&mut Progress> {
        match &mut self.role {
            Role::Leader(l) => l.progress.iter_mut().find(|p| p.id == from),
            _ => None,
        }
    }

    fn handle_append_response(&mut self, from: NodeId, success: bool, index: Index, hint_i: Index, hint_t: Term) {
        let retry_from = if success { 0 } else { self.log.find_conflict_by_term(hint_i, hint_t) + 1 };
        let last_index = self.log.last_index();
        let Some(pr) = self.progress_mut(from) else { return };
        pr.recent_active = true;
        if success {
            if pr.on_ack(index) {
                self.maybe_commit();
            }
            // A removed member's ack usually comes after the change committed.
            self.release_removed();
            self.maybe_send_timeout_now(from, last_index);
        } else {
            pr.on_reject(index, retry_from);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        let last_index = self.log.last_index();
        let (max_inflight, max_bytes) = (self.config.max_inflight_appends, self.config.max_inflight_bytes);
        let Some(pr) = self.progress_mut(from) else { return };
        pr.recent_active = true;
        pr.read_ack = pr.read_ack.max(read_seq);
        match &mut pr.state {
            ReplState::Probe { paused } => {
                *paused = false;
                pr.force_send = pr.match_index < last_index;
            }
            ReplState::Replicate { inflight } => {
                // An append may have been lost: free a slot and send one to find out.
                if pr.match_index < last_index {
                    if inflight.full(max_inflight, max_bytes) {
                        inflight.free_first();
                    }
                    pr.force_send = true;
                }
            }
            // The chunk or its answer may have been lost: send it again, from where the
            // follower last asked if it asked for less than we thought it had.
            ReplState::Snapshot { chunk_in_flight, offset, rewind, .. } => {
                *chunk_in_flight = false;
                if let Some(r) = rewind.take() {
                    *offset = r;
                }
            }
        }
        self.confirm_reads();
    }

    fn handle_snapshot_response(&mut self, from: NodeId, next_offset: u64, installed: Option<Index>) {
        let Some(pr) = self.progress_mut(from) else { return };
        pr.recent_active = true;
        let mut event = None;
        match (&mut pr.state, installed) {
            (ReplState::Snapshot { snapshot, .. }, Some(index)) => {
                event = Some(Event::SnapshotSent { to: from, index, term: snapshot.term });
                pr.match_index = pr.match_index.max(index);
                pr.next_index = pr.match_index + 1;
                pr.become_probe();
            }
            (ReplState::Snapshot { offset, chunk_in_flight, rewind, .. }, None) => {
                if next_offset > *offset {
                    // The chunk in flight arrived: on to the next one.
                    *offset = next_offset;
                    *chunk_in_flight = false;
                    *rewind = None;
                } else if next_offset < *offset {
                    *rewind = Some(rewind.map_or(next_offset, |r| r.min(next_offset)));
                }
            }
            (_, Some(index)) if index > pr.match_index => {
                pr.on_ack(index);
            }
            _ => {}
        }
        if let Some(e) = event {
            self.event(e);
        }
        self.maybe_commit();
    }

    fn maybe_send_timeout_now(&mut self, from: NodeId, last_index: Index) {
        let Role::Leader(l) = &mut self.role else { return };
        let Some(t) = &l.transfer else { return };
        if t.to != from {
            return;
        }
        let pr = l.progress.iter_mut().find(|p| p.id == from).expect("transfer target is a peer");
        if pr.match_index == last_index && !pr.timeout_now_sent {
            pr.timeout_now_sent = true;
            self.out.messages.push(Message { from: self.id, to: from, term: self.term, body: MessageBody::TimeoutNow });
        }
    }

    /// §5.3/§5.4.2: commit the highest index a quorum has, if it is of the current term.
    fn maybe_commit(&mut self) {
        let quorum = self.quorum();
        let allow_old = self.bug_commit_old_term();
        let members = self.members.current();
        let Role::Leader(l) = &mut self.role else { return };
        l.scratch.clear();
        if members.is_voter(self.id) {
            // A leader being removed manages the cluster but is not part of its
            // majorities any more (§4.2.2).
            l.scratch.push(self.log.stable);
        }
        l.scratch.extend(l.progress.iter().filter(|p| members.is_voter(p.id)).map(|p| p.match_index));
        assert_eq!(l.scratch.len(), members.voters.len(), "the leader tracks every voter: {members}");
        l.scratch.sort_unstable_by(|a, b| b.cmp(a));
        let index = l.scratch[quorum - 1];
        if index <= self.log.committed {
            return;
        }
        // Figure 8: an entry of an earlier term is never committed by counting replicas.
        if self.log.term(index) != Some(self.term) && !allow_old {
            return;
        }
        let newly: usize =
            (self.log.committed + 1..=index).filter_map(|i| self.log.entry(i)).map(Entry::size_bytes).sum();
        l.uncommitted_bytes = l.uncommitted_bytes.saturating_sub(newly);
        self.log.commit_to(index);
        if self.log.term(index) == Some(self.term) && !l.reads_awaiting_commit.is_empty() {
            let seq = l.read_seq + 1;
            for id in std::mem::take(&mut l.reads_awaiting_commit) {
                l.pending_reads.push_back(PendingRead { id, index, seq });
            }
            l.read_round_needed = true;
            self.confirm_reads();
        }
        self.settle_membership();
        self.release_removed();
    }

    /// Members removed by the settled configuration are replicated to until they hold
    /// the change; then they are told it committed (one last heartbeat, best effort), so
    /// they know to stop campaigning, and get nothing more.
    fn release_removed(&mut self) {
        let index = self.settled_config;
        // Nothing settled yet, or a newer change is in flight (it may add them back): wait.
        // After a compaction the settled entry may be in the snapshot (current index 0).
        if index == 0 || self.members.current_index() > index {
            return;
        }
        let members = self.members.current();
        let commit = self.log.committed;
        let Role::Leader(l) = &mut self.role else { return };
        let done = |p: &Progress| !members.contains(p.id) && p.match_index >= index;
        for pr in l.progress.iter().filter(|p| done(p)) {
            let body = MessageBody::Heartbeat { commit: commit.min(pr.match_index), read_seq: l.read_seq };
            self.out.messages.push(Message { from: self.id, to: pr.id, term: self.term, body });
        }
        l.progress.retain(|p| !done(p));
    }

    /// Once the configuration in effect is committed, the leader lets go of members it
    /// removed, and steps down if the change removed the leader itself (§4.2.2).
    fn settle_membership(&mut self) {
        let index = self.members.current_index();
        if index <= self.settled_config || index > self.log.committed {
            return;
        }
        self.settled_config = index;
        self.release_removed();
        if !self.members.current().is_voter(self.id) {
            self.event(Event::Removed { term: self.term, committed: true });
            self.become_follower(self.term, None);
        }
    }

    /// Moves reads a quorum confirmed to `confirmed_reads` (§6.4 step 3).
    fn confirm_reads(&mut self) {
        let quorum = self.quorum();
        let members = self.members.current();
        let Role::Leader(l) = &mut self.role else { return };
        let own = usize::from(members.is_voter(self.id));
        while let Some(r) = l.pending_reads.front() {
            // A single voter is its own quorum: no round trip needed.
            let acks = own + l.progress.iter().filter(|p| p.read_ack >= r.seq && members.is_voter(p.id)).count();
            if acks < quorum {
                break;
            }
            let r = l.pending_reads.pop_front().expect("front exists");
            self.confirmed_reads.push_back(ReadState { id: r.id, index: r.index });
        }
    }

    /// Appends a command on the leader; returns its index. It is applied when it shows
    /// up in [`Ready::committed`] at that index with this node's current term.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<Index, ProposeError> {
        let Role::Leader(l) = &self.role else {
            return Err(ProposeError::NotLeader(NotLeader { leader: self.leader }));
        };
        if l.transfer.is_some() {
            return Err(ProposeError::Busy);
        }
        if (self.log.last_index() - self.log.committed) as usize >= self.config.max_uncommitted_entries {
            return Err(ProposeError::Busy);
        }
        let index = self.log.last_index() + 1;
        let entry = Entry { index, term: self.term, data: EntryData::Command(command) };
        let size = entry.size_bytes();
        // One command bigger than the bound still passes when nothing is waiting, so the
        // bound never refuses a command for ever.
        if l.uncommitted_bytes > 0 && l.uncommitted_bytes.saturating_add(size) > self.config.max_uncommitted_bytes {
            return Err(ProposeError::Busy);
        }
        let Role::Leader(l) = &mut self.role else { unreachable!("checked above") };
        l.uncommitted_bytes += size;
        self.log.append(entry);
        if self.members.current().voters == [self.id] {
            self.maybe_commit();
        }
        Ok(index)
    }

    /// Proposes one membership change (§4.2) on the leader; returns the index of its
    /// configuration entry. The new configuration is in effect at once, on the leader as
    /// on every node that appends the entry; [`Event::MembershipChanged`] says so.
    pub fn propose_membership(&mut self, change: MembershipChange) -> Result<Index, MembershipError> {
        let Role::Leader(l) = &self.role else {
            return Err(MembershipError::NotLeader(NotLeader { leader: self.leader }));
        };
        if l.transfer.is_some() {
            return Err(MembershipError::Busy);
        }
        let pending = self.members.current_index();
        if pending > self.log.committed && !self.bug_overlapping_changes() {
            return Err(MembershipError::InProgress { index: pending });
        }
        if self.log.term(self.log.committed) != Some(self.term) && !self.bug_overlapping_changes() {
            return Err(MembershipError::NotReady);
        }
        let next = self.members.current().apply(change).map_err(MembershipError::Invalid)?;
        let index = self.log.last_index() + 1;
        let entry = Entry { index, term: self.term, data: EntryData::Config(next) };
        let Role::Leader(l) = &mut self.role else { unreachable!("checked above") };
        l.uncommitted_bytes += entry.size_bytes();
        self.log.append(entry);
        self.note_appended_config(index);
        self.maybe_commit();
        Ok(index)
    }

    /// Entries from `from` on were appended (and any after them replaced): takes their
    /// configurations into effect, says so, and on the leader starts replicating to new
    /// members.
    fn note_appended_config(&mut self, from: Index) {
        let was = self.members.current().clone();
        let truncated = self.members.truncated_from(from);
        let appended = self.members.appended(self.log.entries_from(from));
        if !truncated && !appended {
            return;
        }
        let now = self.members.current().clone();
        if now == was {
            return;
        }
        self.event(Event::MembershipChanged {
            membership: now.clone(),
            index: self.members.current_index(),
            term: self.term,
        });
        if was.contains(self.id) && !now.contains(self.id) && !matches!(self.role, Role::Leader(_)) {
            // A removed follower stops campaigning once the change commits (may_campaign).
            self.event(Event::Removed { term: self.term, committed: false });
        }
        let next = self.log.last_index() + 1;
        let id = self.id;
        if let Role::Leader(l) = &mut self.role {
            for m in now.members().filter(|&m| m != id) {
                if !l.progress.iter().any(|p| p.id == m) {
                    l.progress.push(Progress::new(m, next));
                }
            }
        }
    }

    /// Starts a linearizable read (§6.4). `id` comes back in [`Ready::reads`] once safe,
    /// or in [`Ready::dropped_reads`] if leadership is lost first.
    pub fn read_index(&mut self, id: u64) -> Result<(), ProposeError> {
        let committed_own_term = self.log.term(self.log.committed) == Some(self.term);
        let max_pending = self.config.max_pending_reads;
        let commit = self.log.committed;
        let Role::Leader(l) = &mut self.role else {
            return Err(ProposeError::NotLeader(NotLeader { leader: self.leader }));
        };
        if l.pending_reads.len() + l.reads_awaiting_commit.len() >= max_pending {
            return Err(ProposeError::Busy);
        }
        if !committed_own_term {
            l.reads_awaiting_commit.push(id);
            return Ok(());
        }
        l.pending_reads.push_back(PendingRead { id, index: commit, seq: l.read_seq + 1 });
        l.read_round_needed = true;
        self.confirm_reads();
        Ok(())
    }

    /// Hands leadership to `to` (§3.10): catch it up, then send TimeoutNow. Proposals
    /// are refused with [`ProposeError::Busy`] until the transfer ends; it is abandoned
    /// after an election timeout ([`Event::TransferAborted`]).
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if !matches!(self.role, Role::Leader(_)) {
            return Err(TransferError::NotLeader(NotLeader { leader: self.leader }));
        }
        if to == self.id {
            return Ok(());
        }
        if !self.members.current().is_voter(to) {
            return Err(TransferError::UnknownPeer(to));
        }
        let term = self.term;
        let last_index = self.log.last_index();
        let Role::Leader(l) = &mut self.role else { unreachable!() };
        if let Some(t) = &l.transfer {
            if t.to == to {
                return Ok(());
            }
            let old = t.to;
            self.out.events.push(Event::TransferAborted { to: old, term });
        }
        l.transfer = Some(Transfer { to, elapsed_ticks: 0 });
        for pr in &mut l.progress {
            pr.timeout_now_sent = false;
            // Find out at once how far behind the target is (an append may be lost).
            if pr.id == to && pr.match_index < last_index {
                pr.force_send = true;
            }
        }
        self.event(Event::TransferStarted { to, term });
        self.maybe_send_timeout_now(to, last_index);
        Ok(())
    }

    /// The application took a snapshot of its state at `index` (<= applied) and has
    /// persisted it: drop the log up to `index`; laggards get this snapshot from now on
    /// (the driver reads its chunks from the store, which keeps only the newest, so a
    /// transfer of an older one starts over with this one). A stale request (at or
    /// below the current snapshot) is ignored. Returns the entries dropped from memory,
    /// for the driver to free at its own pace (a burst of frees would stall its loop).
    pub fn compact(&mut self, index: Index) -> VecDeque<Entry> {
        if index <= self.log.snap_index() {
            return VecDeque::new();
        }
        assert!(index <= self.log.applied, "compact({index}) beyond the applied index {}", self.log.applied);
        assert!(index < self.log.unstable_from, "compact({index}) of entries never handed out for persisting");
        let term = self.log.term(index).expect("compaction index is in the log");
        let dropped = self.log.compact(index);
        let at = self.members.at(index);
        let meta = SnapshotMeta { index, term, voters: at.voters.clone(), learners: at.learners.clone() };
        self.members.compacted_to(index);
        // Chunks of the replaced snapshot not yet handed out would ask the driver for a
        // file it no longer has: the transfers start over with this one below.
        self.out
            .messages
            .retain(|m| !matches!(&m.body, MessageBody::InstallSnapshot { meta: old, .. } if old.index < index));
        if let Role::Leader(l) = &mut self.role {
            for pr in &mut l.progress {
                if let ReplState::Snapshot { snapshot, offset, chunk_in_flight, rewind } = &mut pr.state {
                    *snapshot = meta.clone();
                    *offset = 0;
                    *chunk_in_flight = false;
                    *rewind = None;
                }
            }
        }
        self.snapshot = Some(meta);
        self.event(Event::Compacted { index, term });
        dropped
    }

    /// The driver made everything up to `index`@`term` durable (the last entry of a
    /// `Ready::entries` batch). Stale reports, for entries replaced since, are ignored.
    pub fn persisted(&mut self, index: Index, term: Term) {
        if self.log.stable_to(index, term) {
            self.maybe_commit();
        }
    }

    /// Sends what each follower is owed: entries (pipelined within the window),
    /// snapshot chunks, or, once a tick has passed, an empty append carrying a new commit
    /// index (see `Leader::commit_notice_due`).
    fn flush_appends(&mut self) {
        let Role::Leader(l) = &mut self.role else { return };
        let log = &self.log;
        let cfg = &self.config;
        let commit_notice = std::mem::take(&mut l.commit_notice_due) || !cfg.commit_notice_on_tick;
        for pr in &mut l.progress {
            send_to_peer((self.id, self.term), pr, log, self.snapshot.as_ref(), cfg, commit_notice, &mut self.out);
        }
        if l.read_round_needed {
            l.read_round_needed = false;
            l.read_seq += 1;
            for pr in &l.progress {
                let body = MessageBody::Heartbeat { commit: log.committed.min(pr.match_index), read_seq: l.read_seq };
                self.out.messages.push(Message { from: self.id, to: pr.id, term: self.term, body });
            }
        }
    }

    /// Takes the output batch of this turn.
    pub fn ready(&mut self) -> Ready {
        self.flush_appends();
        let hs = self.hard_state();
        let hard_state = if hs != self.prev_hard_state {
            self.prev_hard_state = hs;
            Some(hs)
        } else {
            None
        };
        let ss = SoftState { role: self.role(), term: self.term, leader: self.leader };
        let soft_state = if ss != self.prev_soft_state {
            self.prev_soft_state = ss;
            Some(ss)
        } else {
            None
        };
        let entries = self.log.take_unstable();
        let snapshot = self.pending_install.take();
        let committed = self.log.take_committed();
        let applied = self.log.applied;
        let mut reads = Vec::new();
        while self.confirmed_reads.front().is_some_and(|r| r.index <= applied) {
            reads.push(self.confirmed_reads.pop_front().expect("front exists"));
        }
        let mut out = std::mem::take(&mut self.out);
        // A complete snapshot is handed out for verifying only while this node still waits
        // for it: a role change in the same turn (a higher term) forgot it, and chunks of
        // another snapshot may already follow it in `snapshot_chunks`.
        let waiting = |m: &SnapshotMeta| matches!(&self.role, Role::Follower(f) if f.verifying.as_ref().is_some_and(|(_, v)| v == m));
        out.received_snapshot = out.received_snapshot.filter(waiting);
        Ready {
            soft_state,
            hard_state,
            entries,
            snapshot_chunks: out.snapshot_chunks,
            received_snapshot: out.received_snapshot,
            snapshot,
            messages: out.messages,
            persisted_messages: out.persisted_messages,
            committed,
            reads,
            dropped_reads: out.dropped_reads,
            events: out.events,
        }
    }

    /// Current state, for status and tests.
    pub fn status(&self) -> Status {
        let progress = match &self.role {
            Role::Leader(l) => l.progress.iter().map(Progress::report).collect(),
            _ => Vec::new(),
        };
        Status {
            membership: self.members.current().clone(),
            id: self.id,
            role: self.role(),
            term: self.term,
            leader: self.leader,
            commit: self.log.committed,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snap_index(),
            progress,
        }
    }
}

/// Bounds every message obeys whatever the receiver's state: a term at most
/// [`MAX_TERM`], indexes at most [`MAX_INDEX`] (so that no arithmetic on them can
/// overflow), and no term 0 where only a candidate or a leader could have sent it.
fn check_bounds(msg: &Message) -> Result<(), StepError> {
    let invalid = |field: &'static str, reason: String| Err(StepError::Invalid { from: msg.from, field, reason });
    let index = |field: &'static str, i: Index| {
        if i > MAX_INDEX {
            invalid(field, format!("{i} is above MAX_INDEX {MAX_INDEX}"))
        } else {
            Ok(())
        }
    };
    if msg.term > MAX_TERM {
        return invalid("term", format!("{} is above MAX_TERM {MAX_TERM}", msg.term));
    }
    if let MessageBody::InstallSnapshot { meta, .. } = &msg.body {
        if meta.voters.len() > MAX_SNAPSHOT_VOTERS {
            let n = meta.voters.len();
            return invalid("meta.voters", format!("{n} voters, more than MAX_SNAPSHOT_VOTERS {MAX_SNAPSHOT_VOTERS}"));
        }
        if let Err(why) = meta.membership().check() {
            return invalid("meta.learners", why);
        }
        if meta.voters.is_empty() {
            return invalid("meta.voters", "a snapshot's configuration has no voters".into());
        }
    }
    let from_candidate_or_leader = matches!(
        msg.body,
        MessageBody::PreVote { .. }
            | MessageBody::Vote { .. }
            | MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::TimeoutNow
    );
    if msg.term == 0 && from_candidate_or_leader {
        return invalid("term", "0: no candidate or leader exists in term 0".to_string());
    }
    match &msg.body {
        MessageBody::PreVote { last_index, .. } | MessageBody::Vote { last_index, .. } => {
            index("last_index", *last_index)
        }
        MessageBody::Append { base_index, entries, commit, .. } => {
            index("base_index", *base_index)?;
            index("commit", *commit)?;
            let end = base_index.checked_add(entries.len() as Index).filter(|&end| end <= MAX_INDEX);
            if end.is_none() {
                return invalid(
                    "entries",
                    format!("base_index {base_index} + {} entries is above MAX_INDEX {MAX_INDEX}", entries.len()),
                );
            }
            if let Some(e) = entries.iter().find(|e| e.term == 0) {
                return invalid("entries", format!("entry {} has term 0, which has no leader", e.index));
            }
            for e in entries {
                if let EntryData::Config(m) = &e.data {
                    if let Err(why) = m.check() {
                        return invalid("entries", format!("configuration entry {}: {why}", e.index));
                    }
                    if m.voters.is_empty() {
                        return invalid("entries", format!("configuration entry {} has no voters", e.index));
                    }
                }
            }
            Ok(())
        }
        MessageBody::AppendResponse { match_index, reject_hint_index, .. } => {
            index("match_index", *match_index)?;
            index("reject_hint_index", *reject_hint_index)
        }
        MessageBody::Heartbeat { commit, .. } => index("commit", *commit),
        MessageBody::InstallSnapshot { meta, .. } => index("meta.index", meta.index),
        MessageBody::InstallSnapshotResponse { installed: Some(i), .. } => index("installed", *i),
        MessageBody::PreVoteResponse { .. }
        | MessageBody::VoteResponse { .. }
        | MessageBody::HeartbeatResponse { .. }
        | MessageBody::InstallSnapshotResponse { installed: None, .. }
        | MessageBody::TimeoutNow => Ok(()),
    }
}

/// Checks the shape of a message from the network before it touches any state.
/// `strict` also checks term order, which a planted bug may break on purpose.
fn validate(msg: &Message, strict: bool) -> Result<(), StepError> {
    match &msg.body {
        MessageBody::Append { base_index, base_term, entries, .. } => {
            let mut prev = *base_term;
            for (k, e) in entries.iter().enumerate() {
                if e.index != base_index + 1 + k as Index {
                    return Err(StepError::Malformed("append entries do not follow the base contiguously"));
                }
                if strict && (e.term < prev || e.term > msg.term) {
                    return Err(StepError::Malformed("append entry terms go back or beyond the leader's term"));
                }
                prev = e.term;
            }
            if *base_term > msg.term {
                return Err(StepError::Malformed("append base term beyond the leader's term"));
            }
        }
        MessageBody::InstallSnapshot { meta, offset, data, .. } => {
            if meta.index == 0 || meta.term > msg.term {
                return Err(StepError::Malformed("snapshot index 0 or term beyond the leader's term"));
            }
            if offset.checked_add(data.len() as u64).is_none() {
                return Err(StepError::Malformed("snapshot chunk offset overflows"));
            }
        }
        MessageBody::Vote { last_term, .. } | MessageBody::PreVote { last_term, .. } if *last_term > msg.term => {
            return Err(StepError::Malformed("candidate's last term beyond the term it asks for"));
        }
        _ => {}
    }
    Ok(())
}

/// Any planted bug is on: assertions that the bug would trip give way to the simulator's
/// checkers, which must find the damage themselves.
fn bugs_on(config: &Config) -> bool {
    #[cfg(feature = "bugs")]
    {
        let b = config.bugs;
        b.double_vote || b.commit_old_term || b.no_truncate || b.overlapping_changes
    }
    #[cfg(not(feature = "bugs"))]
    {
        let _ = config;
        false
    }
}

/// Ships what one follower is owed, within its progress state's limits, as leader
/// `from` in `term`. A bare commit notice goes only if `commit_notice`.
fn send_to_peer(
    (from, term): (NodeId, Term),
    pr: &mut Progress,
    log: &RaftLog,
    snapshot: Option<&SnapshotMeta>,
    cfg: &Config,
    commit_notice: bool,
    out: &mut Out,
) {
    loop {
        match &mut pr.state {
            ReplState::Snapshot { snapshot, offset, chunk_in_flight, .. } => {
                if !*chunk_in_flight {
                    // The bytes are in the driver's store: it fills `data` (up to
                    // `snapshot_chunk_bytes` from `offset`) and `done` before sending.
                    let body = MessageBody::InstallSnapshot {
                        meta: snapshot.clone(),
                        offset: *offset,
                        data: Vec::new(),
                        done: false,
                    };
                    out.messages.push(Message { from, to: pr.id, term, body });
                    *chunk_in_flight = true;
                }
                pr.force_send = false;
                return;
            }
            ReplState::Probe { paused: true } => return,
            ReplState::Replicate { inflight } if inflight.full(cfg.max_inflight_appends, cfg.max_inflight_bytes) => {
                return
            }
            _ => {}
        }
        if pr.next_index <= log.snap_index() {
            // The entries it needs are gone: send the snapshot instead (§7).
            let snap = snapshot.expect("a compacted log has a snapshot").clone();
            out.events.push(Event::SnapshotSendStarted { to: pr.id, index: snap.index, term: snap.term });
            pr.state = ReplState::Snapshot { snapshot: snap, offset: 0, chunk_in_flight: false, rewind: None };
            continue;
        }
        let entries = log.slice(pr.next_index, cfg.max_entries_per_append, cfg.max_append_bytes);
        if entries.is_empty() && !pr.force_send && (pr.sent_commit >= log.committed || !commit_notice) {
            return;
        }
        let base_index = pr.next_index - 1;
        let base_term = log.term(base_index).expect("base is at or after the snapshot");
        let last = entries.last().map(|e| e.index);
        let bytes: usize = entries.iter().map(Entry::size_bytes).sum();
        pr.sent_commit = log.committed;
        pr.force_send = false;
        out.messages.push(Message {
            from,
            to: pr.id,
            term,
            body: MessageBody::Append { base_index, base_term, entries, commit: log.committed },
        });
        match &mut pr.state {
            ReplState::Probe { paused } => {
                *paused = true;
                return;
            }
            ReplState::Replicate { inflight } => match last {
                Some(last) => {
                    inflight.add(last, bytes);
                    pr.next_index = last + 1;
                }
                None => return,
            },
            ReplState::Snapshot { .. } => unreachable!("handled above"),
        }
    }
}
