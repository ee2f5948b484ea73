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
    /// [`Response::Log`]. Added after the variants above, so they keep their tags.
    Log { from: Option<Index>, limit: u32 },
    /// The supervisor's network levers: delay or drop this node's outgoing peer messages
    /// (all zero: none). Answered `Accepted`, or `Invalid` past the bounds.
    NetLevers(crate::levers::NetLevers),
    /// The supervisor's slow-motion lever (`raft-supervisor speed`): run the tick at
    /// `factor_milli / 1000` times the configured speed, from now on (the tick lasts
    /// `tick_ms * 1000 / factor_milli`). Raft still counts ticks; only their length
    /// changes. Accepted in `SPEED_MILLI_MIN..=SPEED_MILLI_MAX`. Appended last: bincode
    /// numbers variants in order.
    SetSpeed { factor_milli: u32 },
    /// `raft-supervisor web`'s animation: summaries of the Raft messages this node sent
    /// after `after_seq` (0: all it still holds), answered with [`Response::Traffic`].
    /// Bounded by the node's ring. Appended last: bincode numbers variants in order.
    Traffic { after_seq: u64 },
}

/// Slowest speed a node accepts: 0.01x (a 10 ms tick becomes 1 s; slower than that an
/// election takes minutes, which teaches nothing).
pub const SPEED_MILLI_MIN: u32 = 10;
/// Fastest speed a node accepts: 10x (a 10 ms tick becomes 1 ms, about the finest a
/// poll timeout resolves).
pub const SPEED_MILLI_MAX: u32 = 10_000;
/// The configured speed.
pub const SPEED_MILLI_NORMAL: u32 = 1000;

/// `0.10`, `1.00`, `10.00`: a speed in thousandths as the factor people type (the one
/// rendering for the node's log line, `status` and `watch`).
pub fn show_speed(factor_milli: u32) -> String {
    format!("{}.{:02}", factor_milli / 1000, (factor_milli % 1000) / 10)
}

/// `100 ms`, `250 us`: a tick length for people.
pub fn show_tick_us(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} us")
    }
}

/// Parses a speed factor as people type it (`0.1`, `1`, `2.5`) into thousandths, within
/// [`SPEED_MILLI_MIN`]`..=`[`SPEED_MILLI_MAX`]; the error says the accepted range.
pub fn parse_speed(text: &str) -> Result<u32, String> {
    let range = format!("{}..={}", show_speed(SPEED_MILLI_MIN), show_speed(SPEED_MILLI_MAX));
    let f: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a speed factor: give a number in {range}, like 0.1 or 1"))?;
    if !f.is_finite() || !(0.0..=f64::from(SPEED_MILLI_MAX) / 1000.0).contains(&f) {
        return Err(format!("speed {text} is out of range: give a factor in {range}"));
    }
    let milli = (f * 1000.0).round() as u32;
    if !(SPEED_MILLI_MIN..=SPEED_MILLI_MAX).contains(&milli) {
        return Err(format!("speed {text} is out of range: give a factor in {range}"));
    }
    Ok(milli)
}

/// One response, matching the request with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    pub id: u64,
    pub body: Response,
}

// A status is the largest answer (about 300 bytes with the watch counters and the
// configuration); responses live one per request and briefly, so boxing it would buy
// nothing but an allocation per status poll.
#[allow(clippy::large_enum_variant)]
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
    /// The answer to [`Request::Traffic`]. Appended last.
    Traffic(crate::traffic::TrafficPage),
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
    // --- `raft-supervisor watch` (issue 14): cheap counters, appended last. ---
    /// Raft messages queued to each peer since this process started (cumulative; a
    /// watcher takes differences for rates).
    pub messages_sent: Vec<(NodeId, u64)>,
    /// Raft messages received from each peer and stepped, since this process started.
    pub messages_received: Vec<(NodeId, u64)>,
    /// Ticks since the election timer was reset (for a follower: since it last heard
    /// from the leader or granted a vote).
    pub election_elapsed_ticks: u32,
    /// This round's election timeout in ticks.
    pub election_timeout_ticks: u32,
    /// The tick's current length in microseconds (`tick_ms` scaled by the speed).
    pub tick_us: u64,
    /// The speed set by [`Request::SetSpeed`], in thousandths (1000: as configured).
    pub speed_milli: u32,
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
        assert_eq!(req(Request::Membership { change: raft_core::MembershipChange::Remove(1) }), 5);
        assert_eq!(req(Request::Log { from: None, limit: 1 }), 6);
        assert_eq!(req(Request::NetLevers(Default::default())), 7);
        assert_eq!(req(Request::SetSpeed { factor_milli: 1000 }), 8);
        assert_eq!(req(Request::Traffic { after_seq: 0 }), 9);
        assert_eq!(tag(Response::Traffic(Default::default())), 9);
    }

    #[test]
    fn speeds_parse_within_bounds_with_clear_errors() {
        assert_eq!(parse_speed("1"), Ok(1000));
        assert_eq!(parse_speed("0.1"), Ok(100));
        assert_eq!(parse_speed(" 0.01"), Ok(SPEED_MILLI_MIN));
        assert_eq!(parse_speed("10"), Ok(SPEED_MILLI_MAX));
        assert_eq!(show_speed(100), "0.10");
        assert_eq!(show_speed(1000), "1.00");
        assert_eq!(show_speed(10_000), "10.00");
        for bad in ["0", "0.001", "10.5", "-1", "NaN", "inf", "1e9"] {
            assert!(parse_speed(bad).unwrap_err().contains("0.01..=10.00"), "{bad}");
        }
        assert!(parse_speed("fast").unwrap_err().contains("not a speed factor"));
    }
}
