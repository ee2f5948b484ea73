//! # raft-core: the Raft consensus algorithm as a pure state machine
//!
//! This crate is the whole of Raft (leader election with PreVote and CheckQuorum,
//! log replication, log compaction with chunked InstallSnapshot, ReadIndex reads and
//! leadership transfer) and nothing else. It performs no I/O, reads no clock, starts no
//! thread and draws no global randomness:
//!
//! * **time** is [`RawNode::tick`]: the driver calls it every `tick_ms`;
//! * **randomness** (election timeouts) comes from [`Config::seed`];
//! * **input** is [`RawNode::step`] (a message from a peer), [`RawNode::propose`],
//!   [`RawNode::read_index`], [`RawNode::transfer_leadership`] and [`RawNode::compact`];
//! * **output** is one [`Ready`] batch, taken with [`RawNode::ready`].
//!
//! Same inputs, same outputs, every time: that is what lets `raft-sim` run thousands of
//! fault schedules in seconds and replay any of them from its seed.
//!
//! ## Driving it: the order of a turn
//!
//! ```text
//!   loop {
//!       feed inputs: tick / step / propose / read_index ...
//!       let rd = node.ready();
//!       1. send rd.messages            (safe before persisting: leader appends, heartbeats)
//!       2. persist rd.snapshot, then rd.hard_state and rd.entries, with ONE fsync
//!       3. node.persisted(last index, last term of rd.entries)   (leader counts itself now)
//!       4. send rd.persisted_messages  (votes, append acks: they promise durable state)
//!       5. install rd.snapshot into the state machine, then apply rd.committed in order
//!       6. serve rd.reads (each is safe now: applied >= its index)
//!       7. log rd.events
//!   }
//! ```
//!
//! ## Persistence contract (Raft §5.1, "persist before you speak")
//!
//! Term, vote and log entries must be durable before any message that depends on them
//! leaves the node. The API enforces the split by shape: everything that promises
//! durable state (a vote, an append acknowledgement, a snapshot acknowledgement) is in
//! [`Ready::persisted_messages`]; only messages that promise nothing are in
//! [`Ready::messages`]. A leader may ship appends before its own fsync completes, but it
//! counts itself toward a commit quorum only up to what [`RawNode::persisted`] reported.
//!
//! ## Restarting
//!
//! A node restarts from what it persisted: [`Restored`] carries the hard state, the
//! newest snapshot and the log after it. Everything else (role, leader, progress) is
//! volatile and rebuilt by the protocol.
//!
//! ## Numbering
//!
//! [`NodeId`] 0 means "no node"; [`Term`] 0 is the term before any election; [`Index`] 0
//! is the position before the first entry (entry indexes start at 1).

mod types;
pub use types::*;
mod config;
mod log;
mod message;
mod progress;
mod raft;
mod ready;
pub use config::*;
pub use message::*;
pub use raft::*;
pub use ready::*;
