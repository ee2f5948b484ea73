//! The output batch of one turn, and the events a learner reads in the node log.

use crate::{
    Entry, HardState, Index, Message, NodeId, ReadState, RoleKind, SnapshotChunk, SnapshotMeta, SoftState, Term,
};
use std::fmt;

/// Everything the driver must do after a turn, in the order documented in the crate
/// docs: send `messages`; persist `snapshot`, `hard_state`, `entries` (one fsync); call
/// `persisted`; send `persisted_messages`; install `snapshot`; apply `committed`; serve
/// `reads`; log `events`.
#[derive(Debug, Default)]
pub struct Ready {
    /// Role, term or leader changed since the last batch: the new values. Volatile, never
    /// persisted; a driver uses it to route clients and to fail pending requests when it
    /// stops leading.
    pub soft_state: Option<SoftState>,
    /// Changed term, vote or commit index to persist, if any changed.
    pub hard_state: Option<HardState>,
    /// Entries to append to the log. If `entries[0].index` is at or below the stored last
    /// index, the stored suffix from there on is replaced (a conflict was resolved).
    pub entries: Vec<Entry>,
    /// Chunks of a snapshot arriving from the leader, in order: append each to the
    /// store's incoming snapshot (a chunk at offset 0 starts a new one). Nothing durable
    /// is promised for them: a crash simply makes the leader start over.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// The incoming snapshot is complete: finish it in the store, verify that it loads
    /// (checksum, decodes into the state machine at `index`), and report with
    /// [`crate::RawNode::snapshot_verified`] before anything else is stepped. Only a
    /// verified snapshot ever replaces the log.
    pub received_snapshot: Option<SnapshotMeta>,
    /// A verified snapshot received from the leader: persist it, discard the whole
    /// stored log (entries after the snapshot come in `entries`, now or later), and
    /// restore the state machine from it before applying `committed`.
    pub snapshot: Option<SnapshotMeta>,
    /// Messages that promise nothing durable: send at once, even before persisting.
    pub messages: Vec<Message>,
    /// Messages that promise durable state: send only after persisting this batch.
    pub persisted_messages: Vec<Message>,
    /// Newly committed entries, in index order, to apply to the state machine.
    pub committed: Vec<Entry>,
    /// Reads confirmed by ReadIndex and covered by the applied index after `committed`.
    pub reads: Vec<ReadState>,
    /// Reads that can no longer be confirmed (leadership lost): answer "retry elsewhere".
    pub dropped_reads: Vec<u64>,
    /// What happened, one line each in the node's log.
    pub events: Vec<Event>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.snapshot_chunks.is_empty()
            && self.received_snapshot.is_none()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.dropped_reads.is_empty()
            && self.events.is_empty()
    }
}

/// A meaningful event, for the log of a node (one line each, with node id and term).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Role or term changed. `leader` is the known leader after the change.
    RoleChanged { role: RoleKind, term: Term, leader: Option<NodeId> },
    /// This node granted its (pre-)vote.
    VoteGranted { to: NodeId, term: Term, pre_vote: bool },
    /// This node refused a (pre-)vote; `reason` says why in a few words.
    VoteDenied { to: NodeId, term: Term, pre_vote: bool, reason: &'static str },
    /// A leader became known for `term` (this node or another).
    LeaderElected { leader: NodeId, term: Term },
    /// The leader stepped down: it heard from no majority for an election timeout (§6.2).
    CheckQuorumFailed { term: Term },
    /// The leader started shipping a snapshot to a lagging follower.
    SnapshotSendStarted { to: NodeId, index: Index, term: Term },
    /// A follower acknowledged a complete snapshot.
    SnapshotSent { to: NodeId, index: Index, term: Term },
    /// This node installed a snapshot received from the leader.
    SnapshotInstalled { index: Index, term: Term },
    /// This node dropped a snapshot `from` the leader without changing anything: it did
    /// not verify (the driver's [`crate::RawNode::snapshot_verified`]) or grew past
    /// [`crate::Config::max_incoming_snapshot_bytes`]. The leader is told to start over.
    SnapshotRefused { from: NodeId, index: Index, term: Term, reason: String },
    /// The log up to `index` was compacted into a local snapshot.
    Compacted { index: Index, term: Term },
    /// A leadership transfer to `to` began (§3.10).
    TransferStarted { to: NodeId, term: Term },
    /// A leadership transfer was abandoned (target too slow or gone).
    TransferAborted { to: NodeId, term: Term },
    /// A new configuration took effect: its entry at `index` was appended (or a snapshot
    /// carrying it installed, or an uncommitted one truncated away).
    MembershipChanged { membership: crate::Membership, index: Index, term: Term },
    /// This node is no longer a member: it stops campaigning once the change commits (a
    /// leader steps down then). `committed`: said when that happened, else on append.
    Removed { term: Term, committed: bool },
    /// A follower dropped the uncommitted entries `from..=to` of its log (the first of
    /// them of `term`): the `leader`'s log holds other entries there (§5.3 step 3).
    LogTruncated { from: Index, to: Index, term: Term, leader: NodeId },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::RoleChanged { role, term, leader } => match leader {
                Some(l) => write!(f, "became {role} term={term} leader=n{l}"),
                None => write!(f, "became {role} term={term}"),
            },
            Event::VoteGranted { to, term, pre_vote } => {
                let kind = if *pre_vote { "pre-vote" } else { "vote" };
                write!(f, "{kind} granted to n{to} term={term}")
            }
            Event::VoteDenied { to, term, pre_vote, reason } => {
                let kind = if *pre_vote { "pre-vote" } else { "vote" };
                write!(f, "{kind} denied to n{to} term={term}: {reason}")
            }
            Event::LeaderElected { leader, term } => write!(f, "leader elected n{leader} term={term}"),
            Event::CheckQuorumFailed { term } => {
                write!(f, "stepping down term={term}: no majority heard within an election timeout")
            }
            Event::SnapshotSendStarted { to, index, term } => {
                write!(f, "snapshot send started to n{to} index={index} term={term}")
            }
            Event::SnapshotSent { to, index, term } => write!(f, "snapshot sent to n{to} index={index} term={term}"),
            Event::SnapshotInstalled { index, term } => write!(f, "snapshot installed index={index} term={term}"),
            Event::SnapshotRefused { from, index, term, reason } => {
                write!(f, "snapshot from n{from} index={index} term={term} refused: {reason}")
            }
            Event::Compacted { index, term } => write!(f, "log compacted up to index={index} term={term}"),
            Event::TransferStarted { to, term } => write!(f, "leadership transfer to n{to} started term={term}"),
            Event::TransferAborted { to, term } => write!(f, "leadership transfer to n{to} aborted term={term}"),
            Event::MembershipChanged { membership, index, term } => {
                write!(f, "configuration {membership} in effect index={index} term={term}")
            }
            Event::Removed { term, committed: false } => {
                write!(f, "removed from the configuration: no more campaigns once that commits term={term}")
            }
            Event::Removed { term, committed: true } => {
                write!(f, "removed from the configuration, committed: no more campaigns term={term}")
            }
            Event::LogTruncated { from, to, term, leader } => {
                let n = to - from + 1;
                write!(
                    f,
                    "truncated uncommitted entries {from}..{to} ({n} from term {term}): leader n{leader} has others there"
                )
            }
        }
    }
}
