//! The fault mix of one run, drawn from its seed: cluster size, how lossy and slow the
//! network is, how often nodes crash, partitions form, leadership moves and logs are
//! compacted, how busy the clients are, and the core's tunable limits. Drawing the mix
//! from the seed (instead of fixing it) is what lets 10,000 seeds cover calm clusters,
//! storms of crashes, and everything between.

use crate::net::NetConditions;
use crate::rng::Rng;
use std::fmt;

/// Ticks the cluster gets to settle after faults stop (a leader, every pending
/// proposal committed and applied everywhere, every client answered). Elections take
/// 15..30 ticks each and a lagging follower may need a snapshot in tiny chunks, so a
/// healthy core settles in well under 200; 1000 leaves room for split votes.
pub const LIVENESS_BOUND_TICKS: u64 = 1000;
/// The narrowest span of election timeouts a run with membership changes draws from.
const MIN_ELECTION_SPAN_TICKS: u32 = 5;

/// A deliberate bug, to show the checkers bite: the first three and the last are planted
/// in raft-core (its `bugs` feature), three in the shipped driver (raft-replica's `bugs`
/// feature) or its disk order, two in the simulator itself.
#[cfg(feature = "bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bug {
    /// A node grants a second vote in a term it already voted in.
    DoubleVote,
    /// An old-term entry is committed by counting replicas (Figure 8).
    CommitOldTerm,
    /// A conflicting suffix is overwritten in place instead of truncated.
    NoTruncate,
    /// The driver answers a write when it is appended to the leader's log, not when it
    /// commits.
    AnswerOnAppend,
    /// The driver sends votes and acknowledgements before persisting what they promise.
    AckBeforePersist,
    /// The snapshot install writes the batch's whole hard state, commit index included,
    /// before the snapshot file (the first order tried when the install learnt to store
    /// the batch's term): a crash in between leaves a commit index past the old log.
    CommitBeforeSnapshot,
    /// The driver answers reads from whatever node the client asked, at once, without
    /// ReadIndex: nothing in Raft breaks, only linearizability (so its checker bites).
    StaleRead,
    /// The simulator "forgets" to heal the partition when faults stop: nothing unsafe
    /// happens, the cluster just cannot settle (so the liveness checker bites).
    NoHeal,
    /// A leader appends a membership change while another is uncommitted, or before it
    /// committed an entry of its term: two single-server changes overlap (§4.1).
    OverlappingChanges,
}

#[cfg(feature = "bugs")]
impl Bug {
    pub fn flag(self) -> &'static str {
        match self {
            Bug::DoubleVote => "double-vote",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::NoTruncate => "no-truncate",
            Bug::AnswerOnAppend => "answer-on-append",
            Bug::AckBeforePersist => "ack-before-persist",
            Bug::CommitBeforeSnapshot => "commit-before-snapshot",
            Bug::StaleRead => "stale-read",
            Bug::NoHeal => "no-heal",
            Bug::OverlappingChanges => "overlapping-changes",
        }
    }

    pub fn core_bugs(self) -> raft_core::Bugs {
        let mut b = raft_core::Bugs::default();
        match self {
            Bug::DoubleVote => b.double_vote = true,
            Bug::CommitOldTerm => b.commit_old_term = true,
            Bug::NoTruncate => b.no_truncate = true,
            Bug::OverlappingChanges => b.overlapping_changes = true,
            _ => {}
        }
        b
    }

    pub fn driver_bugs(self) -> raft_replica::Bugs {
        let mut b = raft_replica::Bugs::default();
        match self {
            Bug::AnswerOnAppend => b.answer_on_append = true,
            Bug::AckBeforePersist => b.ack_before_persist = true,
            _ => {}
        }
        b
    }
}

/// What a run may override; everything else comes from the seed.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Cluster size (3, 5 or 7 unless you insist); drawn from the seed if `None`.
    pub nodes: Option<usize>,
    /// Ticks of the fault phase; drawn from the seed if `None`.
    pub ticks: Option<u64>,
    /// The deliberate bug every node runs with.
    #[cfg(feature = "bugs")]
    pub bug: Option<Bug>,
    /// Tilt the fault mix toward the schedules this bug needs (`--bug` implies it;
    /// set it alone to run the same schedules against the correct core).
    #[cfg(feature = "bugs")]
    pub bias: Option<Bug>,
}

/// The fault mix and limits of one run. Probabilities are per mille.
#[derive(Clone, Debug)]
pub struct Profile {
    pub nodes: usize,
    /// Ticks during which faults are injected and clients start operations.
    pub fault_ticks: u64,
    pub net: NetConditions,
    /// Per tick: crash one running node (it loses everything it had not persisted).
    pub crash_per_mille: u32,
    /// Per tick, per crashed node: restart it from its disk.
    pub restart_per_mille: u32,
    /// Per output batch that writes to disk: crash in the middle of the turn, before
    /// the fsync finished (the batch is lost, or a torn prefix of its entries survives)
    /// or after it but before the acknowledgements went out.
    pub torn_per_mille: u32,
    /// Per tick: cut a new partition.
    pub partition_per_mille: u32,
    /// Per tick while partitioned: heal.
    pub heal_per_mille: u32,
    /// Per tick: pause a running node (SIGSTOP): no ticks, no messages read, for
    /// 5..=`pause_max_ticks`; what arrives meanwhile waits for it.
    pub pause_per_mille: u32,
    pub pause_max_ticks: u64,
    /// Clock drift: each node skips up to this share of its ticks (its own share drawn
    /// at start), so election and heartbeat timers run at different speeds.
    pub drift_per_mille: u32,
    /// Per tick: ask a leader to hand over to a random peer.
    pub transfer_per_mille: u32,
    /// Per tick: ask a leader for a membership change (add a learner, remove a member,
    /// the leader included); learners are promoted by the leader itself.
    pub membership_per_mille: u32,
    /// Node slots beyond the bootstrap voters, for members added at run time.
    pub spare_nodes: usize,
    /// A removed node keeps running (with PreVote and CheckQuorum only: they are what
    /// keeps a removed node that missed its removal from disrupting the cluster, §4.2.3);
    /// otherwise it is stopped once its removal commits, as `raft-supervisor remove` does.
    pub keep_removed: bool,
    /// Compact a node's log once it has applied this many entries past its snapshot.
    pub compact_entries: u64,
    pub clients: usize,
    pub keys: usize,
    /// Per tick, per idle client: start an operation.
    pub op_per_mille: u32,
    /// A client abandons an attempt at one node after this many ticks and tries another.
    pub attempt_timeout_ticks: u64,
    /// A client gives up on an operation after this many ticks (outcome unknown).
    pub give_up_ticks: u64,
    pub max_entries_per_append: usize,
    pub max_inflight_appends: usize,
    pub snapshot_chunk_bytes: usize,
    pub max_uncommitted_entries: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Timers: mostly the defaults (5; 15..30), sometimes much tighter, so elections
    /// race heartbeats and each other.
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
}

impl Profile {
    /// The mix for `seed`. Drawn from its own stream so the mix of a seed does not
    /// change when the simulation's use of randomness does.
    pub fn from_seed(seed: u64, opts: &Options) -> Profile {
        let mut r = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed_5eed);
        let nodes = opts.nodes.unwrap_or_else(|| r.pick(&[3, 3, 5, 5, 7]));
        let fault_ticks = opts.ticks.unwrap_or_else(|| r.range(400, 900));
        let drop_per_mille = match r.below(3) {
            0 => 0,
            1 => r.range(5, 60) as u32,
            _ => r.range(60, 250) as u32,
        };
        let net = NetConditions {
            drop_per_mille,
            dup_per_mille: if r.per_mille(500) { r.range(5, 100) as u32 } else { 0 },
            max_delay_ticks: r.pick(&[0, 1, 1, 2, 3, 5, 10]),
            long_delay_per_mille: r.pick(&[0, 0, 5, 20, 50]),
            long_delay_max_ticks: r.range(10, 100),
        };
        let mut p = Profile {
            nodes,
            fault_ticks,
            net,
            crash_per_mille: r.pick(&[0, 2, 5, 10, 20]),
            restart_per_mille: r.range(10, 100) as u32,
            torn_per_mille: r.pick(&[0, 1, 5, 20]),
            partition_per_mille: r.pick(&[0, 3, 10, 20]),
            heal_per_mille: r.range(10, 60) as u32,
            pause_per_mille: r.pick(&[0, 0, 3, 10]),
            pause_max_ticks: r.range(10, 80),
            drift_per_mille: r.pick(&[0, 0, 50, 300]),
            transfer_per_mille: r.pick(&[0, 2, 10]),
            compact_entries: r.pick(&[3, 5, 10, 20, 50, 1000]),
            clients: r.range(1, 6) as usize,
            keys: r.range(1, 4) as usize,
            op_per_mille: r.pick(&[20, 50, 100, 300]),
            attempt_timeout_ticks: r.range(20, 80),
            give_up_ticks: r.range(100, 400),
            max_entries_per_append: r.pick(&[1, 2, 3, 8, 64]),
            max_inflight_appends: r.pick(&[1, 2, 4, 64]),
            snapshot_chunk_bytes: r.pick(&[64, 128, 256, 4096]),
            max_uncommitted_entries: r.pick(&[4, 16, 1000]),
            pre_vote: r.per_mille(800),
            check_quorum: r.per_mille(800),
            heartbeat_ticks: raft_core::HEARTBEAT_TICKS,
            election_ticks_min: raft_core::ELECTION_TICKS_MIN,
            election_ticks_max: raft_core::ELECTION_TICKS_MAX,
            membership_per_mille: 0,
            spare_nodes: 0,
            keep_removed: false,
        };
        if r.per_mille(300) {
            p.heartbeat_ticks = r.range(1, 4) as u32;
            p.election_ticks_min = p.heartbeat_ticks + r.range(1, 8) as u32;
            p.election_ticks_max = p.election_ticks_min + r.range(1, 10) as u32;
        }
        #[cfg(feature = "bugs")]
        if let Some(bug) = opts.bias {
            // A biased mix draws no membership changes unless its bug needs them, so the
            // schedules of the older planted bugs stay what they were.
            p.bias_for(bug, opts, &mut r);
            return p;
        }
        // Drawn last, so that the rest of a seed's mix is what it was before membership
        // changes existed; a seed without them runs exactly as it did.
        if r.per_mille(400) {
            p.membership_per_mille = r.pick(&[2, 5, 10, 20]);
            p.spare_nodes = r.range(0, 3) as usize;
            p.keep_removed = p.pre_vote && p.check_quorum && r.per_mille(500);
            p.widen_election_span();
        }
        p
    }

    /// Removals can leave two voters, and two voters whose timeouts are drawn from a
    /// span of one or two ticks time out together again and again (split votes with no
    /// third node to break them; randomization is what makes Raft live, §5.2). Real
    /// configurations span 15 ticks; keep at least 5.
    fn widen_election_span(&mut self) {
        self.election_ticks_max = self.election_ticks_max.max(self.election_ticks_min + MIN_ELECTION_SPAN_TICKS);
    }

    /// Tilts the mix toward the schedules a planted bug needs (see the crate docs).
    ///
    /// Double votes and untruncated suffixes show up under the ordinary mix within a
    /// few seeds. Committing an old-term entry by counting replicas (Figure 8) needs a
    /// rarer dance: a leader re-elected with an old entry pushes it to a majority and
    /// commits it, then is cut off before its own no-op reaches that majority, and a
    /// node holding a conflicting entry of a later term wins the next election. Small
    /// clusters, one entry per append and no pipelining (so the old entry and the
    /// no-op travel separately), and heavy crashes, loss and partitions make it common.
    #[cfg(feature = "bugs")]
    fn bias_for(&mut self, bug: Bug, opts: &Options, r: &mut Rng) {
        match bug {
            Bug::DoubleVote | Bug::NoTruncate | Bug::AnswerOnAppend | Bug::AckBeforePersist => {}
            Bug::OverlappingChanges => {
                // Changes in quick succession, while partitions split the cluster, so that
                // two configurations without a common majority both get to elect.
                self.nodes = opts.nodes.unwrap_or(5);
                self.membership_per_mille = 100;
                self.spare_nodes = 2;
                self.keep_removed = false;
                self.partition_per_mille = 20;
                self.heal_per_mille = r.range(10, 30) as u32;
                self.pre_vote = false;
                self.check_quorum = false;
                self.op_per_mille = 300;
                self.widen_election_span();
            }
            Bug::CommitBeforeSnapshot => {
                // Installs interrupted by crashes: followers that fall behind a compacted
                // leader (crashes, partitions) and storage steps cut short often.
                self.compact_entries = 5;
                self.crash_per_mille = r.range(5, 20) as u32;
                self.torn_per_mille = 50;
                self.partition_per_mille = 20;
            }
            Bug::NoHeal => {
                // Partitions that tend to last until the end.
                self.partition_per_mille = r.range(20, 60) as u32;
                self.heal_per_mille = 2;
            }
            Bug::StaleRead => {
                // Deposed leaders and lagging followers that clients still talk to.
                self.partition_per_mille = r.range(20, 60) as u32;
                self.keys = 1;
                self.clients = 4;
                self.op_per_mille = 300;
            }
            Bug::CommitOldTerm => {
                self.nodes = opts.nodes.unwrap_or(3);
                self.fault_ticks = opts.ticks.unwrap_or(3000);
                self.max_entries_per_append = 1;
                self.max_inflight_appends = 1;
                // Elections as often as possible: no PreVote or CheckQuorum to calm them.
                self.pre_vote = false;
                self.check_quorum = false;
                self.net.drop_per_mille = 300;
                self.crash_per_mille = r.range(20, 60) as u32;
                self.restart_per_mille = r.range(50, 150) as u32;
                self.partition_per_mille = 10;
                self.op_per_mille = 300;
            }
        }
    }

    pub fn conditions(&self) -> NetConditions {
        self.net
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.net;
        write!(
            f,
            "nodes={} fault_ticks={} drop={}‰ dup={}‰ delay=0..{} long_delay={}‰(<={}) crash={}‰ restart={}‰ \
             torn={}‰ partition={}‰ heal={}‰ pause={}‰(<={}) drift<={}‰ transfer={}‰ compact_entries={} clients={} keys={} op={}‰ \
             attempt_timeout={} give_up={} max_entries_per_append={} max_inflight={} chunk_bytes={} \
             max_uncommitted={} pre_vote={} check_quorum={} heartbeat={} election={}..{} membership={}‰ spare={} \
             keep_removed={}",
            self.nodes,
            self.fault_ticks,
            n.drop_per_mille,
            n.dup_per_mille,
            n.max_delay_ticks,
            n.long_delay_per_mille,
            n.long_delay_max_ticks,
            self.crash_per_mille,
            self.restart_per_mille,
            self.torn_per_mille,
            self.partition_per_mille,
            self.heal_per_mille,
            self.pause_per_mille,
            self.pause_max_ticks,
            self.drift_per_mille,
            self.transfer_per_mille,
            self.compact_entries,
            self.clients,
            self.keys,
            self.op_per_mille,
            self.attempt_timeout_ticks,
            self.give_up_ticks,
            self.max_entries_per_append,
            self.max_inflight_appends,
            self.snapshot_chunk_bytes,
            self.max_uncommitted_entries,
            self.pre_vote,
            self.check_quorum,
            self.heartbeat_ticks,
            self.election_ticks_min,
            self.election_ticks_max,
            self.membership_per_mille,
            self.spare_nodes,
            self.keep_removed,
        )
    }
}
