//! Recent Raft messages, summarised, for `raft-supervisor web`'s animation: who sent what
//! to whom, in which term, with how many entries. A node keeps the last few hundred of
//! the messages it sent in a ring (raft-node's `traffic` module) and answers
//! [`crate::Request::Traffic`] with those after a sequence number, as a [`TrafficPage`].

use raft_core::{Message, MessageBody, NodeId, Term};
use serde::{Deserialize, Serialize};

/// Most summaries in one answer: the whole ring a node keeps, so one poll catches up
/// whenever it comes within the ring.
pub const MAX_TRAFFIC_PER_REQUEST: usize = 512;

/// What kind of message, for colour and label (one per [`MessageBody`] variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    PreVote,
    PreVoteReply,
    Vote,
    VoteReply,
    Append,
    AppendReply,
    Heartbeat,
    HeartbeatReply,
    Snapshot,
    SnapshotReply,
    TimeoutNow,
}

/// One sent message, summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The sender's count of messages it recorded before this one (1 is the first).
    pub seq: u64,
    /// When it left, in microseconds since the Unix epoch.
    pub ts_us: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub kind: MessageKind,
    /// Entries carried (appends), or bytes of snapshot data (snapshot chunks).
    pub count: u64,
    /// For replies: granted or succeeded. None for requests.
    pub ok: Option<bool>,
}

impl MessageSummary {
    /// The summary of `msg`: O(1), whatever the message carries.
    pub fn of(msg: &Message, seq: u64, ts_us: u64) -> MessageSummary {
        let (kind, count, ok) = match &msg.body {
            MessageBody::PreVote { .. } => (MessageKind::PreVote, 0, None),
            MessageBody::PreVoteResponse { granted } => (MessageKind::PreVoteReply, 0, Some(*granted)),
            MessageBody::Vote { .. } => (MessageKind::Vote, 0, None),
            MessageBody::VoteResponse { granted } => (MessageKind::VoteReply, 0, Some(*granted)),
            MessageBody::Append { entries, .. } => (MessageKind::Append, entries.len() as u64, None),
            MessageBody::AppendResponse { success, .. } => (MessageKind::AppendReply, 0, Some(*success)),
            MessageBody::Heartbeat { .. } => (MessageKind::Heartbeat, 0, None),
            MessageBody::HeartbeatResponse { .. } => (MessageKind::HeartbeatReply, 0, None),
            MessageBody::InstallSnapshot { data, .. } => (MessageKind::Snapshot, data.len() as u64, None),
            MessageBody::InstallSnapshotResponse { .. } => (MessageKind::SnapshotReply, 0, None),
            MessageBody::TimeoutNow => (MessageKind::TimeoutNow, 0, None),
        };
        MessageSummary { seq, ts_us, from: msg.from, to: msg.to, term: msg.term, kind, count, ok }
    }
}

/// The answer to [`crate::Request::Traffic`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficPage {
    /// The summaries after the asked-for sequence number, oldest first, at most
    /// [`MAX_TRAFFIC_PER_REQUEST`].
    pub messages: Vec<MessageSummary>,
    /// The sequence number of the newest message recorded: ask after it next time.
    pub last_seq: u64,
    /// Messages after the asked-for number that the ring no longer holds (the asker came
    /// too late for them): drawn as a count, not one by one.
    pub missed: u64,
    /// The node's term and its vote in that term (§5.2) as it answers, for the page.
    pub term: Term,
    pub vote: Option<NodeId>,
}
