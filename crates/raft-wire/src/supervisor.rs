//! The supervisor's control protocol on `<dir>/supervisor.sock`: same frames as a node
//! socket, no hello. One [`SupervisorRequest`] in, one [`SupervisorResponse`] out.

use raft_core::{Index, NodeId, PeerProgress, RoleKind, Term};
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
    /// Network levers for `nodes` (empty: every node): a new delay and jitter, a new loss
    /// in parts per million, or both; what is not given stays. `Heal` clears them all.
    Levers {
        nodes: Vec<NodeId>,
        delay: Option<(u64, u64)>,
        loss_ppm: Option<u32>,
    },
    /// Start a node with the next free id and have the leader add it as a learner (it is
    /// promoted once caught up). Answered once the change commits.
    Add,
    /// Have the leader remove the node from the configuration, then stop it.
    Remove(NodeId),
    /// Ask the leader to hand leadership to the node (§3.10).
    Transfer(NodeId),
    /// Slow motion: every running node (and every node started later) ticks at this
    /// speed, in thousandths (see [`crate::SetSpeed`](crate::Request::SetSpeed)).
    Speed(u32),
    /// `watch`'s refresh: the latest status of every node at once, without waiting for
    /// fresh answers (as `Status` does), and a new status round started for the next one.
    Watch,
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
    /// The speed set by `raft-supervisor speed`, in thousandths (1000: as configured).
    pub speed_milli: u32,
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
    /// The network levers the node reports in force (None: not answering).
    pub levers: Option<crate::levers::NetLevers>,
    /// In the leader's configuration: voter, learner, or removed (None: no leader known).
    pub member: Option<String>,
    /// What `watch` draws beyond the table; None when the node did not answer.
    pub live: Option<NodeLive>,
    /// The TCP port the node serves the Redis protocol on (`redis_port + id`); `None`
    /// when the front end is off (`redis_port = 0`).
    #[serde(default)]
    pub redis_port: Option<u16>,
}

/// A running node's counters for `watch` (from its [`crate::NodeStatus`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLive {
    /// The exact role (`role` above folds a pre-candidate into candidate).
    pub role: RoleKind,
    pub election_elapsed_ticks: u32,
    pub election_timeout_ticks: u32,
    pub tick_us: u64,
    pub speed_milli: u32,
    /// On the leader: each follower's replication progress.
    pub progress: Vec<PeerProgress>,
    pub connected: Vec<NodeId>,
    pub isolated: Vec<NodeId>,
    /// Cumulative Raft messages sent to / received from each peer.
    pub messages_sent: Vec<(NodeId, u64)>,
    pub messages_received: Vec<(NodeId, u64)>,
}
