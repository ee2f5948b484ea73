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
//!       0. append rd.snapshot_chunks to the store's incoming snapshot; if
//!          rd.received_snapshot: verify it loads, node.snapshot_verified(meta, verdict)
//!       1. send rd.messages            (safe before persisting: leader appends, heartbeats;
//!          an InstallSnapshot's data and done are filled from the store's snapshot)
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
//! ## The trust boundary
//!
//! [`RawNode::step`] checks every field of a peer's message before anything changes, and
//! refuses what no correct peer can send with a [`StepError`] (the node is then exactly
//! as before; the driver logs it and may drop the connection): a message for another
//! node or from a node that is not a voter; a term above [`MAX_TERM`] or more than
//! [`MAX_TERM_JUMP`] ahead of the node's own; an index above [`MAX_INDEX`] or an append
//! whose entries would pass it; a second leader in a term; a vote for a term in which
//! the node did not campaign; an acknowledgement (match, installed snapshot) beyond the
//! leader's log; an answer to a heartbeat round never sent. A snapshot from the leader
//! is verified by the driver once its last chunk arrived ([`Ready::received_snapshot`],
//! answered with [`RawNode::snapshot_verified`]) and before it replaces the log; one
//! that fails, or grows past
//! [`Config::max_incoming_snapshot_bytes`] while arriving, is dropped without effect
//! ([`Event::SnapshotRefused`]) and the leader is asked to start over from offset 0.
//! Messages from older terms
//! are not looked into, so stale, duplicated and reordered traffic stays accepted. What
//! the checks cannot catch is a voter lying within the rules (a forged grant, a forged
//! leader in a term whose leader is not yet known): that needs authenticated peers,
//! which is the transport's job.
//!
//! ## Restarting
//!
//! A node restarts from what it persisted: [`Restored`] carries the hard state, the
//! newest snapshot and the log after it. Everything else (role, leader, progress) is
//! volatile and rebuilt by the protocol. [`RawNode::new`] checks that the restored log
//! is contiguous after the snapshot, never goes back in term, and that the commit index
//! is within it ([`ConfigError`] otherwise). The applied index starts at the snapshot:
//! the first [`Ready::committed`] hands out again every entry up to the persisted commit
//! index, so the driver rebuilds its state machine as snapshot + replay.
//!
//! ## What the driver must know
//!
//! * **Entries.** [`Ready::entries`] are handed out once. If a leader's entries replaced a
//!   conflicting suffix, the batch starts at the first replaced index: the driver drops
//!   its stored entries from there on before appending. After persisting, it reports the
//!   batch's last entry with [`RawNode::persisted`]; a report for entries replaced
//!   meanwhile is ignored, so an asynchronous driver may report late.
//! * **Fsync.** A batch needs an fsync before `persisted_messages` go out when it has
//!   entries, a snapshot, or a hard state whose term or vote changed. A hard state that
//!   only moved `commit` may be written without its own fsync: losing it on a crash only
//!   makes the restarted node re-learn the commit index from the leader (etcd's
//!   `MustSync`). Write entries before the hard state that commits them.
//! * **Snapshots.** A [`Ready::snapshot`] from the leader replaces the whole log: persist
//!   it, discard every stored entry (entries after it arrive in later batches), restore
//!   the state machine from it, then apply [`Ready::committed`] (which starts after it).
//!   Local compaction goes the other way: the driver snapshots its state machine at an
//!   applied index, persists that, drops its stored log prefix, then calls
//!   [`RawNode::compact`]. The core never holds snapshot bytes: it sends laggards
//!   InstallSnapshot messages with empty `data`, which the driver fills from its store
//!   (one chunk at a time), and it hands received chunks to the driver in
//!   [`Ready::snapshot_chunks`].
//! * **Commit.** [`Ready::committed`] hands out each committed entry exactly once, in
//!   order. A proposal (index `i` returned by [`RawNode::propose`] in term `t`) took
//!   effect iff the entry handed out at `i` has term `t`; otherwise another leader
//!   replaced it. A leader that steps down cannot know yet whether its pending entries
//!   will commit.
//! * **Reads** ([`RawNode::read_index`], §6.4). Only the leader takes them (followers
//!   answer [`ProposeError::NotLeader`]). The leader waits until an entry of its term is
//!   committed, records the commit index, starts one heartbeat round for all reads of
//!   the turn, and once a majority answered that round hands the read out in
//!   [`Ready::reads`] in the first batch whose applied index covers it: serve it right
//!   after applying that batch. Reads not yet confirmed when leadership is lost come back
//!   in [`Ready::dropped_reads`]; a confirmed read is still handed out (it was
//!   linearizable when confirmed).
//! * **Leadership transfer** ([`RawNode::transfer_leadership`], §3.10). The leader
//!   brings the target's log up to date, then sends it `TimeoutNow`; the target starts an
//!   election at once, flagged so that voters ignore their leader lease. Proposals are
//!   refused with [`ProposeError::Busy`] meanwhile; after an election timeout without
//!   success the transfer is abandoned ([`Event::TransferAborted`]).
//! * **Elections.** Timeouts are drawn from `[election_ticks_min, election_ticks_max)`
//!   with a generator seeded by [`Config::seed`] and the node id. With PreVote a node
//!   asks first and raises its term only when a majority would vote for it. With
//!   CheckQuorum a leader that heard from no majority during an election timeout steps
//!   down (it checks once per timeout, so it notices within two), and a node that heard
//!   from a leader within `election_ticks_min` ignores vote requests (the leader lease).
//!   [`RawNode::campaign`] starts an election at once (tests, demos).
//! * **Events.** [`Ready::events`] say what happened in words (role changes, votes and
//!   why they were refused, snapshots, transfers): log one line each.

//! ## Numbering
//!
//! [`NodeId`] 0 means "no node"; [`Term`] 0 is the term before any election; [`Index`] 0
//! is the position before the first entry (entry indexes start at 1).

mod types;
pub use types::*;
mod config;
mod log;
mod membership;
pub use membership::{MemberKind, Membership, MembershipChange, MAX_MEMBERS};
mod message;
mod progress;
mod raft;
mod ready;
pub use config::*;
pub use message::*;
pub use raft::*;
pub use ready::*;
