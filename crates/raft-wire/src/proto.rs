//! Protocol types: hello, client requests and responses, status and admin.

use crate::auth::{MacBytes, Nonce};
use raft_core::{Index, NodeId, PeerProgress, RoleKind, Term};
use raft_kv::{ReadOp, Reply, WriteOp};
use serde::{Deserialize, Serialize};

/// The first frame on every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hello {
    /// A cluster member opening its outbound stream to us. `cluster_id` must match ours;
    /// `nonce` is the dialer's fresh challenge (see [`crate::auth`]): we answer with a
    /// [`PeerChallenge`] and accept the stream only after its [`PeerProof`].
    Peer { cluster_id: u64, node: NodeId, nonce: Nonce },
    /// A client (raft-cli, the supervisor, tests).
    Client,
}

/// The acceptor's answer to [`Hello::Peer`]: who it is, its own fresh nonce, and its MAC
/// over both nonces, which proves to the dialer that it holds the cluster key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerChallenge {
    pub node: NodeId,
    pub nonce: Nonce,
    pub mac: MacBytes,
}

/// The dialer's MAC over both nonces: proves it holds the cluster key. Raft messages
/// follow it on the same stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerProof {
    pub mac: MacBytes,
}

/// One request from a client. `id` is chosen by the client and echoed in the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub id: u64,
    pub body: Request,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A write, applied exactly once per (`session`, `seq`) (thesis §6.3): a client keeps
    /// the same pair when it retries, and the state machine answers a duplicate with the
    /// reply it gave the first time.
    Write { session: u64, seq: u64, op: WriteOp },
    /// A read. Linearizable (ReadIndex on the leader) unless `stale`, which any node
    /// serves from its own state machine at once.
    Read { op: ReadOp, stale: bool },
    /// This node's status.
    Status,
    /// The supervisor's partition lever: drop all traffic to and from these peers, in
    /// both directions, at the transport. An empty list heals.
    Isolate { peers: Vec<NodeId> },
    /// Ask the leader to hand leadership to `to` (§3.10).
    TransferLeader { to: NodeId },
    /// Ask the leader for one membership change (thesis §4.2); answered once its
    /// configuration entry commits.
    Membership { change: raft_core::MembershipChange },
    /// Up to `limit` (at most [`crate::logview::MAX_LOG_ENTRIES_PER_REQUEST`]) of this
    /// node's log entries from `from` (`None`: the last `limit`), answered with
    /// [`Response::Log`]. Last in the enum, so the earlier variants keep their tags.
    Log { from: Option<Index>, limit: u32 },
    /// The supervisor's network levers: delay or drop this node's outgoing peer messages
    /// (all zero: none). Answered `Accepted`, or `Invalid` past the bounds.
    NetLevers(crate::levers::NetLevers),
}

/// One response, matching the request with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    pub id: u64,
    pub body: Response,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Ok(Reply),
    /// This node is not the leader; try `leader` if known, else any other node.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The request was surely not applied (no leader, busy, leadership lost before the
    /// entry was appended): safe to retry anywhere.
    Unavailable {
        reason: String,
    },
    /// The write may or may not have been applied (the leader lost leadership after
    /// appending it). Retrying with the same session and seq is safe.
    Unknown {
        reason: String,
    },
    /// The request itself is invalid (too large, bad key): retrying will not help.
    Invalid {
        reason: String,
    },
    Status(NodeStatus),
    /// An admin request (Isolate, TransferLeader) was accepted.
    Accepted,
    /// The cluster refused the write on purpose (its state would pass `quota_bytes`): it
    /// was surely not applied, and retrying will not help until something changes (keys
    /// deleted, the quota raised). `reason` is one line saying the figures and what to do.
    /// Last in the enum: bincode numbers variants in order, so the others keep their tags.
    Refused {
        reason: String,
    },
    /// The answer to [`Request::Log`].
    Log(crate::logview::LogPage),
}

/// Status of one node, answered to [`Request::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub pid: u32,
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    /// On the leader: each peer's replication progress.
    pub progress: Vec<PeerProgress>,
    /// Peers with an established outbound connection whose handshake proved the key.
    pub connected: Vec<NodeId>,
    /// Peers cut off by [`Request::Isolate`].
    pub isolated: Vec<NodeId>,
    /// The configuration in effect on this node (the newest in its log).
    pub membership: raft_core::Membership,
    /// The network levers in force ([`Request::NetLevers`]).
    pub levers: crate::levers::NetLevers,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variants are numbered in declaration order on the wire; `Refused` came last, so
    /// every earlier variant keeps the tag an older peer or client knows.
    #[test]
    fn response_variant_tags_are_stable() {
        let tag = |r: Response| bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap()[0];
        assert_eq!(tag(Response::Unknown { reason: String::new() }), 3);
        assert_eq!(tag(Response::Accepted), 6);
        assert_eq!(tag(Response::Refused { reason: String::new() }), 7);
        let req = |r: Request| bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap()[0];
        assert_eq!(req(Request::TransferLeader { to: 1 }), 4);
        assert_eq!(req(Request::Log { from: None, limit: 1 }), 5);
        assert_eq!(req(Request::NetLevers(Default::default())), 6);
    }
}
