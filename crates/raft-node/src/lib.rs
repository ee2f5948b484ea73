//! # raft-node: one Raft server process
//!
//! A node is one thread running one [`mio::Poll`]. Everything that can happen to it is
//! an event on that poll: a connection on its listening socket `<dir>/node-<id>/node.sock`
//! (or, with `transport = "tcp"`, its `addrs` entry: see `tcp` and raft-transport),
//! bytes from a peer or a client, room to write, SIGTERM/SIGINT (through
//! signal-hook-mio), a stop request from an in-process test (a [`mio::Waker`]), or the
//! next tick deadline, which is the poll timeout. There is no thread per connection
//! (over TCP with names in `addrs`, raft-transport looks them up on one thread of its own,
//! so a slow resolver never stalls the loop).
//!
//! ## One turn of the loop
//!
//! 1. Wait for events or the tick deadline; read every readable socket until it would
//!    block; decode whole frames; step peer messages into [`raft_core::RawNode`]; turn
//!    client requests into proposals and ReadIndex requests.
//! 2. Tick the core if the deadline passed.
//! 3. Let the [`raft_replica::Replica`] carry out the core's `Ready` batches: it is the
//!    one driver, shared with the simulator (see its crate docs for the order). The
//!    node is its [`raft_replica::Effects`]: messages go to peer connections, answers to
//!    client connections, event lines to stdout; [`raft_replica::Effects::flush`] puts
//!    them on the sockets before the turn's fsync.
//! 4. Compact when the log since the last snapshot passes the configured thresholds.
//! 5. Flush output buffers.
//!
//! ## Connections
//!
//! The first frame on an accepted connection says who speaks ([`raft_wire::Hello`]).
//! Who may speak is decided by what the other end has, not by what it says: its uid from
//! the kernel (`SO_PEERCRED`: a client must be our uid, root or in `allowed_uids`, a
//! peer our uid or root) and, for a peer, proof that it holds the cluster key (the
//! challenge-response of [`raft_wire::auth`], both ways: we check a dialling peer's
//! proof, and check the challenge of every peer we dial before sending it anything).
//! A peer's inbound stream only carries messages to us; we send to each peer over our
//! own outbound stream, reconnected with backoff.
//!
//! Over TCP with TLS (module `tcp`), certificates of the cluster's CA replace the uid: a
//! client needs one, a peer's must name `node-<id>` of the id in its hello (and a dialled
//! peer's the id we dialled); the cluster key is still proved. Over plain TCP
//! (`insecure = true`) anyone who reaches the port is a client, said loudly at start.
//!
//! Garbage, an oversize length, a wrong cluster id, an unknown node id, a refused uid,
//! certificate or key, or a message that claims another sender closes that connection
//! with one log line; the node keeps serving everyone else. Output queues are
//! bounded: a slow client is disconnected, a stuck peer stream is dropped and
//! reconnected (Raft retransmits).
//!
//! ## The Redis protocol
//!
//! With `redis_port` set (the default), the node also listens on TCP and speaks RESP
//! (module `resp`): Redis clients use any node; a follower forwards to the leader as a
//! client of its `node.sock`. Its tokens live far above the transport's, its answers come
//! back through [`raft_replica::Effects::respond`] like any client's, and the server hands
//! its requests to the replica in the turn they were read. TCP has no uid check: see
//! docs/architecture.md, "Who may connect".
//!
//! ## Traffic
//!
//! For `raft-supervisor web`'s animation the node keeps a summary of each of the last few
//! hundred Raft messages it sent (module `traffic`: O(1) per message, a fixed ring) and
//! answers `Request::Traffic` with those after a sequence number.
//!
//! ## Event log
//!
//! Every meaningful event is one line on stdout: `<time> n<id> t<term> <what>`, e.g.
//! `2026-12-01T07:41:02.117302Z n3 t4 became leader term=4`. The supervisor sends stdout to `node.log`.
//!
//! ## Run by anything
//!
//! The binary runs in the foreground under whatever starts it (the supervisor, systemd,
//! Kubernetes, a shell): SIGTERM or SIGINT ends the loop between turns, so the stop is
//! clean, and it exits 0. A failure exits with a code from [`exit`] that tells a process
//! manager whether restarting can help (bad config 2, data directory held 3, corrupt
//! storage 4, anything else 1), after one stderr line saying what and what to do.

mod conn;
mod eventlog;
pub mod exit;
pub mod levers;
mod logpage;
mod observe;
mod resp;
mod server;
mod tcp;
mod traffic;
#[cfg(test)]
mod unit_tests;

pub use eventlog::{format_timestamp, parse_timestamp, LogTarget};
pub use resp::{
    INPUT_BUFFER_BYTES, MAX_ARGS, MAX_OUTPUT_BYTES, MAX_PIPELINE, MAX_RESP_CONNECTIONS, MAX_SCAN_CURSORS, MAX_WAIT,
    PARTIAL_FRAME_TIMEOUT, PAUSE_OUTPUT_BYTES, REQUEST_TIMEOUT,
};
pub use server::{NodeError, NodeSettings, Server, StopHandle};
pub use tcp::TcpSettings;

/// Client connections accepted at once; more are refused with a log line. Bounds memory
/// and file descriptors.
pub const MAX_CLIENT_CONNECTIONS: usize = 1024;
/// Accepted connections that have not said who they are yet. Counted apart from clients
/// and peers, so a flood of clients can never take the slots a restarting peer needs.
pub const MAX_UNIDENTIFIED_CONNECTIONS: usize = 64;
/// How long a new connection may take to send its hello before it is closed: a silent
/// connection must not hold one of those slots forever.
pub const HELLO_TIMEOUT_MS: u64 = 2_000;
/// Bytes queued for one client before it is considered too slow and disconnected.
pub const MAX_CLIENT_OUT_BYTES: usize = 32 << 20;
/// Bytes queued on one peer stream before it is dropped and reconnected (Raft resends).
pub const MAX_PEER_OUT_BYTES: usize = 64 << 20;
/// Ticks replayed at most after the loop was late: raft-config's, so that a config whose
/// heartbeat or election timeout is not above it is refused at load.
pub use raft_config::MAX_CATCH_UP_TICKS;
pub use raft_replica::MAX_PENDING_REQUESTS;
const _: () = assert!(MAX_CATCH_UP_TICKS < raft_core::HEARTBEAT_TICKS);
const _: () = assert!(MAX_CATCH_UP_TICKS < raft_core::ELECTION_TICKS_MIN);
/// Reconnect backoff to a peer: start, doubling up to the cap.
pub const PEER_RECONNECT_MIN_MS: u64 = 20;
pub const PEER_RECONNECT_MAX_MS: u64 = 500;
/// Bytes read from one connection per loop turn: a sender that never pauses gets its
/// share, then the loop ticks, persists and answers before reading on.
pub const MAX_READ_BYTES_PER_TURN: usize = 4 << 20;
/// Events handled per poll call.
pub const EVENTS_PER_POLL: usize = 1024;

/// A seed for the election timer from the OS (falls back to time and pid). Determinism is
/// the simulator's business; a real node wants its timeouts to differ from its peers'.
pub fn random_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok() {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}
