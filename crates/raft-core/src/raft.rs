//! The node: roles, transitions and the driving API. (Skeleton: the contract only.)

use crate::*;

/// Why a message was not stepped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The sender is not a member of this cluster.
    UnknownPeer(NodeId),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::UnknownPeer(id) => write!(f, "message from unknown node {id}"),
        }
    }
}
impl std::error::Error for StepError {}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader takes proposals; the hint says where to go.
    NotLeader(NotLeader),
    /// Too many uncommitted entries, or a leadership transfer is in progress: retry soon.
    Busy,
}

/// Why a leadership transfer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    NotLeader(NotLeader),
    UnknownPeer(NodeId),
}

/// One Raft node.
pub struct RawNode {
    _private: (),
}

impl RawNode {
    /// Starts (or restarts) a node from its config and what it persisted.
    pub fn new(_config: Config, _restored: Restored) -> Result<RawNode, ConfigError> {
        unimplemented!("issue 2")
    }
    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        unimplemented!("issue 2")
    }
    /// Handles a message from a peer. Asserts `msg.to == self.id`.
    pub fn step(&mut self, _msg: Message) -> Result<(), StepError> {
        unimplemented!("issue 2")
    }
    /// Appends a command on the leader; returns its index. It is applied when it shows
    /// up in [`Ready::committed`] at that index with this node's current term.
    pub fn propose(&mut self, _command: Vec<u8>) -> Result<Index, ProposeError> {
        unimplemented!("issue 2")
    }
    /// Starts a linearizable read (§6.4). `id` comes back in [`Ready::reads`] once safe,
    /// or in [`Ready::dropped_reads`] if leadership is lost first.
    pub fn read_index(&mut self, _id: u64) -> Result<(), ProposeError> {
        unimplemented!("issue 2")
    }
    /// Hands leadership to `to` (§3.10): catch it up, then send TimeoutNow.
    pub fn transfer_leadership(&mut self, _to: NodeId) -> Result<(), TransferError> {
        unimplemented!("issue 2")
    }
    /// The application took a snapshot of its state at `index` (<= applied) and has
    /// persisted it: drop the log up to `index` and keep `data` to send to laggards.
    pub fn compact(&mut self, _index: Index, _data: Vec<u8>) {
        unimplemented!("issue 2")
    }
    /// The driver made everything up to `index`@`term` durable.
    pub fn persisted(&mut self, _index: Index, _term: Term) {
        unimplemented!("issue 2")
    }
    /// Takes the output batch of this turn.
    pub fn ready(&mut self) -> Ready {
        unimplemented!("issue 2")
    }
    /// Current state, for status and tests.
    pub fn status(&self) -> Status {
        unimplemented!("issue 2")
    }
    pub fn id(&self) -> NodeId {
        unimplemented!("issue 2")
    }
}
