//! What a leader knows about one follower's log (Figure 2 `nextIndex`/`matchIndex`), and
//! how it ships entries to it: probing one append at a time after a rejection, a window
//! of pipelined appends once the logs agree, or a snapshot in chunks when the entries it
//! needs were compacted away (the etcd-io/raft progress state machine).

use crate::{Index, NodeId, PeerProgress, SnapshotMeta};
use std::collections::VecDeque;

pub(crate) enum ReplState {
    /// Where the logs agree is unknown: one append in flight at a time.
    Probe { paused: bool },
    /// The logs agree up to `match_index`: appends are pipelined within a window.
    Replicate { inflight: Inflights },
    /// The follower needs entries this leader compacted: send `snapshot` chunk by chunk,
    /// one chunk in flight (stop-and-wait keeps the memory per follower to one chunk).
    /// `rewind`: the lowest offset a follower asked for below `offset`; a stale
    /// duplicate answer looks the same as a real rewind (a restarted follower), so it is
    /// only acted on at the next heartbeat, never at once: otherwise every duplicated
    /// answer would release one more chunk, and the copies multiply.
    Snapshot { snapshot: SnapshotMeta, offset: u64, chunk_in_flight: bool, rewind: Option<u64> },
}

/// The unacknowledged appends to one follower: the last index and payload bytes of each,
/// oldest first. Bounded in count (`max_inflight_appends`) and bytes (`max_inflight_bytes`).
#[derive(Default)]
pub(crate) struct Inflights {
    queue: VecDeque<(Index, usize)>,
    bytes: usize,
}

impl Inflights {
    pub fn add(&mut self, last_index: Index, bytes: usize) {
        self.queue.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Everything up to `index` was acknowledged.
    pub fn free_to(&mut self, index: Index) {
        while let Some(&(i, b)) = self.queue.front() {
            if i > index {
                break;
            }
            self.bytes -= b;
            self.queue.pop_front();
        }
    }

    /// Frees the oldest slot (its answer may be lost; a probe will find out).
    pub fn free_first(&mut self) {
        if let Some((_, b)) = self.queue.pop_front() {
            self.bytes -= b;
        }
    }

    pub fn full(&self, max_count: usize, max_bytes: usize) -> bool {
        self.queue.len() >= max_count || self.bytes >= max_bytes
    }
}

pub(crate) struct Progress {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
    pub state: ReplState,
    /// Heard from within the current CheckQuorum window.
    pub recent_active: bool,
    /// The highest heartbeat round (`read_seq`) this follower answered.
    pub read_ack: u64,
    /// The commit index last sent to this follower.
    pub sent_commit: Index,
    /// Send an append even if it carries nothing new (it detects a lost append).
    pub force_send: bool,
    /// TimeoutNow was sent to this follower in the current transfer.
    pub timeout_now_sent: bool,
}

impl Progress {
    pub fn new(id: NodeId, next_index: Index) -> Progress {
        Progress {
            id,
            match_index: 0,
            next_index,
            state: ReplState::Probe { paused: false },
            recent_active: false,
            read_ack: 0,
            sent_commit: 0,
            force_send: false,
            timeout_now_sent: false,
        }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            ReplState::Probe { .. } => "probe",
            ReplState::Replicate { .. } => "replicate",
            ReplState::Snapshot { .. } => "snapshot",
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ReplState::Probe { paused: false };
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    pub fn become_replicate(&mut self) {
        self.state = ReplState::Replicate { inflight: Inflights::default() };
        self.next_index = self.match_index + 1;
    }

    /// A successful append response: returns true when `match_index` advanced.
    pub fn on_ack(&mut self, match_index: Index) -> bool {
        let advanced = match_index > self.match_index;
        if advanced {
            self.match_index = match_index;
        }
        self.next_index = self.next_index.max(match_index + 1);
        match &mut self.state {
            ReplState::Probe { .. } => self.become_replicate(),
            ReplState::Replicate { inflight } => inflight.free_to(match_index),
            ReplState::Snapshot { snapshot, .. } => {
                if self.match_index >= snapshot.index {
                    self.become_probe();
                }
            }
        }
        advanced
    }

    /// A rejected append of `rejected_base`; `retry_from` is where the leader's log may
    /// agree again. Returns false for a stale rejection (already superseded).
    pub fn on_reject(&mut self, rejected_base: Index, retry_from: Index) -> bool {
        match &mut self.state {
            ReplState::Replicate { .. } => {
                if rejected_base <= self.match_index {
                    return false;
                }
                self.next_index = retry_from.min(rejected_base).max(self.match_index + 1);
                self.become_probe();
                true
            }
            ReplState::Probe { paused } => {
                if rejected_base + 1 != self.next_index {
                    return false;
                }
                self.next_index = retry_from.min(rejected_base).max(self.match_index + 1);
                *paused = false;
                true
            }
            ReplState::Snapshot { .. } => false,
        }
    }

    pub fn report(&self) -> PeerProgress {
        PeerProgress {
            id: self.id,
            match_index: self.match_index,
            next_index: self.next_index,
            state: self.state_name().to_string(),
            recently_active: self.recent_active,
        }
    }
}
