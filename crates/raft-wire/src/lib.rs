//! # raft-wire: what travels over a node's Unix socket
//!
//! Every connection carries frames: a 4-byte big-endian length, then that many bytes of
//! bincode 2 (serde, standard config). The length is checked against
//! [`MAX_FRAME_BYTES`] *before* anything is allocated, so a garbage or hostile length
//! cannot make a node allocate gigabytes.
//!
//! The first frame on a connection is a [`Hello`] that says who is speaking:
//! a peer (its node id, the cluster id, so a node of another cluster sharing the
//! directory by mistake is refused, and a nonce) or a client. A peer's hello starts a
//! mutual challenge-response over the cluster key (HMAC-SHA256, fresh nonces from both
//! sides, no secret on the wire; the exchange is drawn in [`auth`]): the acceptor answers
//! with a [`PeerChallenge`], the dialer with a [`PeerProof`], and only then is the
//! stream a peer's. A wrong key, a replayed hello or a tampered MAC closes the
//! connection. After that, a peer sends
//! [`raft_core::Message`]s and a client sends [`ClientRequest`]s, each answered by one
//! [`ClientResponse`] with the same `id`. Clients may pipeline; responses can come
//! out of order (a read may overtake a write), so match them by `id`.
//!
//! Decoding never panics: every malformed input is a [`WireError`].
//!
//! [`conn::FramedConn`] is the one non-blocking framed connection of the workspace (the
//! node, the supervisor and `raft-cli bench` drive their sockets with it).

pub mod auth;
mod codec;
pub mod conn;
pub mod fuzz;
pub mod levers;
pub mod logview;
mod proto;
pub mod supervisor;
pub mod traffic;
pub use codec::*;
pub use proto::*;
/// The key-value operations are raft-kv's (with their limits and validation); they
/// travel inside [`Request`], so they are part of this vocabulary too.
pub use raft_kv::{ReadOp, Reply, WriteOp, MAX_KEYS_PER_LISTING, MAX_KEY_BYTES, MAX_VALUE_BYTES};
