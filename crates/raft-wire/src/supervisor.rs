//! The supervisor's control protocol on `<dir>/supervisor.sock`: same frames as a node
//! socket, no hello. One [`SupervisorRequest`] in, one [`SupervisorResponse`] out.

use raft_core::{Index, NodeId, Term};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorRequest {
    Status,
    /// SIGKILL the node; it stays down until `Start`.
    Kill(NodeId),
    Start(NodeId),
    /// Stop (SIGTERM, then SIGKILL after the grace period) and start again.
    Restart(NodeId),
    /// SIGSTOP.
    Pause(NodeId),
    /// SIGCONT.
    Resume(NodeId),
    /// Nodes in different groups stop exchanging messages. The supervisor normalizes the
    /// groups: the nodes named in no group form one more group together.
    Partition(Vec<Vec<NodeId>>),
    Heal,
    /// Stop every node and the supervisor.
    Down,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorResponse {
    /// Done; the text is the one line to print.
    Ok(String),
    /// Refused or failed; the text says what happened and what to do.
    Error(String),
    Status(ClusterStatus),
}

/// `raft-supervisor status --json` prints this object with serde_json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeRow>,
    /// Empty when the network is whole.
    pub partitions: Vec<Vec<NodeId>>,
}

/// One row of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: NodeId,
    pub pid: Option<u32>,
    /// running, stopped, paused, crashed, backoff or failed.
    pub process: String,
    /// leader, follower, candidate, or unknown (not answering).
    pub role: String,
    pub term: Option<Term>,
    pub leader: Option<NodeId>,
    pub commit: Option<Index>,
    pub applied: Option<Index>,
    pub last_index: Option<Index>,
    pub snapshot_index: Option<Index>,
    /// The TCP port the node serves the Redis protocol on (`redis_port + id`); `None`
    /// when the front end is off (`redis_port = 0`).
    #[serde(default)]
    pub redis_port: Option<u16>,
}
