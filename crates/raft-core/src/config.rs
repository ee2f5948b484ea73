//! Configuration of one Raft node. Every limit is named and says why it exists.

use crate::NodeId;

/// Default ticks between heartbeats (DESIGN.md: heartbeat every 5 ticks).
pub const HEARTBEAT_TICKS: u32 = 5;
/// Default lower bound (inclusive) of the randomized election timeout, in ticks.
pub const ELECTION_TICKS_MIN: u32 = 15;
/// Default upper bound (exclusive) of the randomized election timeout, in ticks.
pub const ELECTION_TICKS_MAX: u32 = 30;
/// Entries per append message: bounds message size and the work of one follower turn.
pub const MAX_ENTRIES_PER_APPEND: usize = 1024;
/// Payload bytes per append message: keeps frames far below the wire's frame limit.
pub const MAX_APPEND_BYTES: usize = 1 << 20;
/// Unacknowledged append messages per follower (pipelining window): bounds memory
/// and retransmission work for a slow follower.
pub const MAX_INFLIGHT_APPENDS: usize = 64;
/// Unacknowledged append payload bytes per follower: a slow follower pins at most this
/// much in send buffers (the count limit alone would allow 64 full 1 MiB appends).
pub const MAX_INFLIGHT_BYTES: usize = 8 << 20;
/// Snapshot bytes per InstallSnapshot chunk: bounds frame size and memory per message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 512 * 1024;
/// Proposals the leader accepts beyond its commit index before it refuses new ones:
/// back-pressure instead of an unbounded log in memory.
pub const MAX_UNCOMMITTED_ENTRIES: usize = 100_000;
/// ReadIndex requests waiting for confirmation: bounds memory under a read storm.
pub const MAX_PENDING_READS: usize = 100_000;
/// Bytes of uncommitted entries (as [`crate::Entry::size_bytes`] counts them) the leader
/// holds before it refuses proposals: the count limit alone allows 100,000 commands of
/// up to a frame each; 64 MiB is eight frames, ample for batching, small for memory.
pub const MAX_UNCOMMITTED_BYTES: usize = 64 << 20;
/// Bytes of a snapshot a follower accepts from the leader before it gives up on it. The
/// bytes go to the driver's store (disk), not memory, so this bounds only the disk a
/// runaway stream can fill: far above any state a node's memory (and the state quota)
/// allows.
pub const MAX_INCOMING_SNAPSHOT_BYTES: usize = 256 << 30;

/// A learner within this many entries of the leader's log is promoted to voter (§4.2.1):
/// close enough that the remaining gap is one or two appends, so adding its vote does
/// not stall commits while it catches up.
pub const PROMOTE_LAG_ENTRIES: u64 = 1024;

const _: () = assert!(HEARTBEAT_TICKS < ELECTION_TICKS_MIN);
const _: () = assert!(ELECTION_TICKS_MIN < ELECTION_TICKS_MAX);
const _: () = assert!(MAX_APPEND_BYTES <= MAX_INFLIGHT_BYTES);
const _: () = assert!(MAX_APPEND_BYTES <= MAX_UNCOMMITTED_BYTES);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES <= MAX_INCOMING_SNAPSHOT_BYTES);

/// Everything a [`crate::RawNode`] needs to know that is not persisted state.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node. Never 0.
    pub id: NodeId,
    /// The voters of the bootstrap configuration: the cluster's configuration until its
    /// log or a snapshot holds a newer one. Every node, including one added later, starts
    /// from the same bootstrap voters; a node not among them is joining the cluster: it
    /// learns the configuration from the leader and never campaigns before.
    pub voters: Vec<NodeId>,
    /// Promote learners automatically once within `promote_lag` entries (§4.2.1).
    pub auto_promote: bool,
    pub promote_lag: u64,
    pub heartbeat_ticks: u32,
    /// The election timeout is drawn uniformly from `[election_ticks_min, election_ticks_max)`.
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// Seeds the generator for election timeouts. Same seed, same timeouts.
    pub seed: u64,
    /// §9.6: probe with PreVote before disrupting the cluster with a new term.
    pub pre_vote: bool,
    /// §6.2: a leader that hears from no majority for an election timeout steps down.
    pub check_quorum: bool,
    pub max_entries_per_append: usize,
    pub max_append_bytes: usize,
    pub max_inflight_appends: usize,
    pub max_inflight_bytes: usize,
    pub snapshot_chunk_bytes: usize,
    pub max_uncommitted_entries: usize,
    /// A proposal that would take the uncommitted entries past this many bytes is
    /// refused with `Busy` (unless nothing is uncommitted: one big command still passes).
    pub max_uncommitted_bytes: usize,
    pub max_pending_reads: usize,
    /// A half-received snapshot that grows past this is dropped and the leader told to
    /// start over.
    pub max_incoming_snapshot_bytes: usize,
    /// A commit index that moved with no new entries to carry it reaches the followers
    /// at the leader's next tick (in an empty append), not at once: it rides on the next
    /// append with entries if one comes first. Saves each follower a wake-up, a receive
    /// and an acknowledgement per write (issue 16). Followers learn a commit up to a tick
    /// later; nothing a client sees waits on that (the leader answers writes and
    /// linearizable reads). Off, an empty append goes out in the turn the commit moved.
    pub commit_notice_on_tick: bool,
    /// Deliberate bugs, so tests can prove the simulator's checkers bite.
    #[cfg(feature = "bugs")]
    pub bugs: Bugs,
}

/// Known-wrong behaviours that the `bugs` feature can switch on (tests only).
#[cfg(feature = "bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Grant a vote even after voting for someone else in the same term.
    pub double_vote: bool,
    /// Commit an old-term entry by counting replicas (what Figure 8 forbids).
    pub commit_old_term: bool,
    /// On a conflicting append, overwrite entries without truncating the suffix after them.
    pub no_truncate: bool,
    /// Let a leader append a membership change while another is uncommitted, or before it
    /// committed an entry of its own term (the single-server change bug, §4.1).
    pub overlapping_changes: bool,
}

impl Config {
    /// A config with every default from DESIGN.md for node `id` of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            voters,
            auto_promote: true,
            promote_lag: PROMOTE_LAG_ENTRIES,
            heartbeat_ticks: HEARTBEAT_TICKS,
            election_ticks_min: ELECTION_TICKS_MIN,
            election_ticks_max: ELECTION_TICKS_MAX,
            seed,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_append: MAX_ENTRIES_PER_APPEND,
            max_append_bytes: MAX_APPEND_BYTES,
            max_inflight_appends: MAX_INFLIGHT_APPENDS,
            max_inflight_bytes: MAX_INFLIGHT_BYTES,
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES,
            max_uncommitted_entries: MAX_UNCOMMITTED_ENTRIES,
            max_uncommitted_bytes: MAX_UNCOMMITTED_BYTES,
            max_pending_reads: MAX_PENDING_READS,
            max_incoming_snapshot_bytes: MAX_INCOMING_SNAPSHOT_BYTES,
            commit_notice_on_tick: true,
            #[cfg(feature = "bugs")]
            bugs: Bugs::default(),
        }
    }

    /// Checks the relationships the algorithm relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError("node id 0 is reserved for \"no node\"".into()));
        }
        if self.voters.is_empty() {
            return Err(ConfigError("the bootstrap configuration has no voters".into()));
        }
        let mut v = self.voters.clone();
        v.sort_unstable();
        v.dedup();
        if v.len() != self.voters.len() || v.contains(&0) {
            return Err(ConfigError(format!("voters {:?} must be distinct and non-zero", self.voters)));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks_min {
            return Err(ConfigError("heartbeat_ticks must be at least 1 and below election_ticks_min".into()));
        }
        if self.election_ticks_min >= self.election_ticks_max {
            return Err(ConfigError("election_ticks_min must be below election_ticks_max".into()));
        }
        if self.max_entries_per_append == 0
            || self.max_append_bytes == 0
            || self.max_inflight_appends == 0
            || self.max_inflight_bytes == 0
            || self.snapshot_chunk_bytes == 0
            || self.max_uncommitted_entries == 0
            || self.max_pending_reads == 0
            || self.max_uncommitted_bytes == 0
            || self.max_incoming_snapshot_bytes == 0
        {
            return Err(ConfigError("limits must be at least 1".into()));
        }
        Ok(())
    }
}

/// An invalid [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid raft config: {}", self.0)
    }
}
impl std::error::Error for ConfigError {}
