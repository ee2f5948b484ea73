//! The one message vocabulary of the protocol, with a compact `Display` used in logs,
//! simulator traces and golden files alike: `n1@3 -> n2 Append base=4@2 [5@3] commit=4`.

use crate::{Entry, Index, NodeId, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A message between two nodes. `term` is the sender's current term (§5.1: a node that
/// sees a higher term adopts it; a lower one marks a stale sender).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

/// What a message says. Each variant names the paper section it implements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// §9.6 (thesis): "would you vote for me in `term`?" without anyone adopting `term`.
    PreVote { last_index: Index, last_term: Term },
    /// §9.6: the answer to a PreVote. A grant carries the term the pre-candidate asked
    /// about; a refusal carries the voter's own term (a pre-candidate behind it adopts it).
    PreVoteResponse { granted: bool },
    /// §5.2 RequestVote, with the §5.4.1 up-to-date check on `last_index`/`last_term`.
    /// `transfer` marks an election started by TimeoutNow (§3.10): voters then grant it
    /// even though they heard from the leader recently (the leader asked for it).
    Vote { last_index: Index, last_term: Term, transfer: bool },
    /// §5.2: the answer to a RequestVote.
    VoteResponse { granted: bool },
    /// §5.3 AppendEntries: entries follow `base_index`@`base_term`. Empty `entries` is
    /// a probe. `commit` is the leader's commit index.
    Append { base_index: Index, base_term: Term, entries: Vec<Entry>, commit: Index },
    /// §5.3: the answer to an AppendEntries. On success `match_index` is the last index
    /// known to match the leader. On rejection `match_index` is the rejected `base_index`
    /// (so the leader can tell a stale rejection from a fresh one) and the hints implement
    /// fast backtracking (§5.3, "the follower can include the term of the conflicting
    /// entry"): `reject_hint_index`@`reject_hint_term` is the follower's last entry at or
    /// below the base whose term is at most `base_term`; the leader retries from the
    /// last index of its own log that can match it, instead of one entry per round trip.
    AppendResponse { success: bool, match_index: Index, reject_hint_index: Index, reject_hint_term: Term },
    /// §5.2/§6.4: heartbeat; carries `read_seq` so ReadIndex can confirm leadership.
    Heartbeat { commit: Index, read_seq: u64 },
    /// The answer to a heartbeat, echoing its `read_seq`.
    HeartbeatResponse { read_seq: u64 },
    /// §7 InstallSnapshot, one chunk: `data` goes at `offset`; `done` marks the last chunk.
    InstallSnapshot {
        meta: SnapshotMeta,
        offset: u64,
        #[serde(with = "crate::types::bytes")]
        data: Vec<u8>,
        done: bool,
    },
    /// The answer to an InstallSnapshot chunk: the offset the follower expects next
    /// (or the snapshot's index in `installed` once complete).
    InstallSnapshotResponse { next_offset: u64, installed: Option<Index> },
    /// §3.10 (thesis) leadership transfer: "start an election now, skipping PreVote".
    TimeoutNow,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}@{} -> n{} ", self.from, self.term, self.to)?;
        match &self.body {
            MessageBody::PreVote { last_index, last_term } => write!(f, "PreVote last={last_index}@{last_term}"),
            MessageBody::PreVoteResponse { granted } => write!(f, "PreVoteResponse granted={granted}"),
            MessageBody::Vote { last_index, last_term, transfer } => {
                write!(f, "Vote last={last_index}@{last_term}")?;
                if *transfer {
                    f.write_str(" transfer")?;
                }
                Ok(())
            }
            MessageBody::VoteResponse { granted } => write!(f, "VoteResponse granted={granted}"),
            MessageBody::Append { base_index, base_term, entries, commit } => {
                write!(f, "Append base={base_index}@{base_term} [")?;
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, "] commit={commit}")
            }
            MessageBody::AppendResponse { success: true, match_index, .. } => {
                write!(f, "AppendResponse match={match_index}")
            }
            MessageBody::AppendResponse { success: false, match_index, reject_hint_index, reject_hint_term } => {
                write!(f, "AppendResponse reject base={match_index} hint={reject_hint_index}@{reject_hint_term}")
            }
            MessageBody::Heartbeat { commit, read_seq } => write!(f, "Heartbeat commit={commit} read_seq={read_seq}"),
            MessageBody::HeartbeatResponse { read_seq } => write!(f, "HeartbeatResponse read_seq={read_seq}"),
            MessageBody::InstallSnapshot { meta, offset, data, done } => {
                write!(f, "InstallSnapshot {}@{} offset={offset} len={} done={done}", meta.index, meta.term, data.len())
            }
            MessageBody::InstallSnapshotResponse { next_offset, installed } => match installed {
                Some(i) => write!(f, "InstallSnapshotResponse installed={i}"),
                None => write!(f, "InstallSnapshotResponse next_offset={next_offset}"),
            },
            MessageBody::TimeoutNow => write!(f, "TimeoutNow"),
        }
    }
}
