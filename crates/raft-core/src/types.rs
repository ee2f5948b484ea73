//! The vocabulary shared by the core, the simulator, storage and the node.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity in the cluster. 0 is never a valid id: it means "no node".
pub type NodeId = u64;
/// A Raft term (§5.1). 0 is the term before any election.
pub type Term = u64;
/// A log position. Entries start at 1; 0 is the position before the first entry.
pub type Index = u64;

/// One log entry (§5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub data: EntryData,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryData {
    /// Appended by every new leader at the start of its term (§5.4.2, §8): lets it
    /// commit entries of earlier terms and serve ReadIndex reads.
    Noop,
    /// An opaque application command (raft-kv decodes it).
    Command(#[serde(with = "crate::types::bytes")] Vec<u8>),
    /// A new configuration (§4.1): in effect on every node from the moment it is
    /// appended. Added last, so the tags of the kinds above stay what old logs hold.
    Config(crate::Membership),
}

impl Entry {
    /// Approximate size in bytes, for the byte limits on appends and compaction.
    pub fn size_bytes(&self) -> usize {
        24 + match &self.data {
            EntryData::Noop => 0,
            EntryData::Command(c) => c.len(),
            EntryData::Config(m) => 8 * (m.voters.len() + m.learners.len()),
        }
    }
}

impl fmt::Display for Entry {
    /// `5@3` for a command, `5@3:noop` for a no-op, `5@3:config` for a configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.data {
            EntryData::Noop => write!(f, "{}@{}:noop", self.index, self.term),
            EntryData::Command(_) => write!(f, "{}@{}", self.index, self.term),
            EntryData::Config(_) => write!(f, "{}@{}:config", self.index, self.term),
        }
    }
}

/// The state that must survive a crash (Figure 2, "Persistent state on all servers"),
/// plus the commit index so a restarted node can re-apply without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    /// Who this node voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// Describes a snapshot: the log it replaces ends at `index`, whose term was `term`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    /// The voting members at `index`.
    pub voters: Vec<NodeId>,
    /// The learners at `index` (added after `voters`: a store reads metadata written
    /// before learners existed as having none).
    pub learners: Vec<NodeId>,
}

impl SnapshotMeta {
    /// The configuration in effect at the snapshot's index.
    pub fn membership(&self) -> crate::Membership {
        let mut m = crate::Membership::voters(self.voters.iter().copied());
        m.learners = self.learners.clone();
        m.learners.sort_unstable();
        m
    }
}

/// A complete snapshot held in memory: metadata and the state machine's serialized
/// bytes. The core never holds one (its snapshots live in the driver's store, see
/// [`SnapshotChunk`]); small stores (tests, the simulator's disk) use it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    #[serde(with = "crate::types::bytes")]
    pub data: Vec<u8>,
}

/// A chunk of a snapshot received from the leader and accepted in order: the driver
/// appends `data` at `offset` of the incoming snapshot `meta` in its store. The core
/// keeps only the count of bytes received, never the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// What a node found on disk at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub hard_state: HardState,
    /// The newest valid snapshot's metadata, if any (its bytes stay in the store).
    pub snapshot: Option<SnapshotMeta>,
    /// The log after the snapshot, contiguous, starting at `snapshot.index + 1` (or 1).
    pub entries: Vec<Entry>,
}

/// The answer to a client request sent to a node that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotLeader {
    /// The leader this node believes in for its current term, if it knows one.
    pub leader: Option<NodeId>,
}

impl fmt::Display for NotLeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.leader {
            Some(l) => write!(f, "not the leader; leader is n{l}"),
            None => write!(f, "not the leader; no leader known"),
        }
    }
}

/// A role, for status and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleKind {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleKind::Follower => "follower",
            RoleKind::PreCandidate => "pre-candidate",
            RoleKind::Candidate => "candidate",
            RoleKind::Leader => "leader",
        })
    }
}

/// The volatile state a driver shows (status, logs, who to redirect clients to): handed
/// out in [`crate::Ready::soft_state`] whenever any of it changes, so a driver never has
/// to reconstruct it from events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    pub role: RoleKind,
    pub term: Term,
    /// The leader this node follows (itself when leading); `None` while unknown.
    pub leader: Option<NodeId>,
}

/// A read confirmed by ReadIndex (§6.4): safe to serve now, because the state machine
/// has applied at least `index` and leadership was confirmed after the read arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The id the driver passed to [`crate::RawNode::read_index`].
    pub id: u64,
    pub index: Index,
}

/// Replication progress of one peer, as seen by the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerProgress {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
    /// "probe", "replicate" or "snapshot".
    pub state: String,
    /// Heard from within the last election timeout.
    pub recently_active: bool,
}

/// A snapshot of a node's Raft state, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    /// Filled on the leader only.
    pub progress: Vec<PeerProgress>,
    /// The configuration in effect (the newest in this node's log).
    pub membership: crate::Membership,
}

/// Byte vectors as serde byte strings: encoders that know byte strings (bincode) write
/// and read them in one copy instead of one call per byte, which is most of the cost of
/// a 512 KiB snapshot chunk. bincode writes a byte string exactly like a sequence of
/// `u8` (length, then the bytes), so logs and messages keep their format. Public for the
/// crates above (raft-kv's values): `#[serde(with = "raft_core::bytes")]`, and
/// `raft_core::bytes::option` for an `Option<Vec<u8>>`.
pub mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                // Bounded preallocation: the length came from the network.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }

    /// An optional byte vector, written as serde's `Option` of a byte string (bincode:
    /// a tag byte, then the bytes as above).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize)]
        struct Ref<'a>(#[serde(with = "super")] &'a Vec<u8>);
        #[derive(Deserialize)]
        struct Own(#[serde(with = "super")] Vec<u8>);

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            v.as_ref().map(Ref).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Ok(Option::<Own>::deserialize(d)?.map(|o| o.0))
        }
    }
}

#[cfg(test)]
mod bytes_format_tests {
    use super::*;
    use serde::Serialize;

    /// The byte-string encoding is byte for byte the sequence-of-u8 one: WAL records and
    /// messages written before it still decode, and the other way round.
    #[test]
    fn byte_strings_keep_the_bincode_format() {
        #[derive(Serialize)]
        enum PlainData {
            #[allow(dead_code)]
            Noop,
            Command(Vec<u8>),
        }
        #[derive(Serialize)]
        struct PlainEntry {
            index: Index,
            term: Term,
            data: PlainData,
        }
        let cfg = bincode::config::standard();
        for data in [vec![], vec![1, 2, 3], (0..=255).collect::<Vec<u8>>(), vec![9; 70_000]] {
            let e = Entry { index: 7, term: 3, data: EntryData::Command(data.clone()) };
            let plain = PlainEntry { index: 7, term: 3, data: PlainData::Command(data) };
            let bytes = bincode::serde::encode_to_vec(&e, cfg).unwrap();
            assert_eq!(bytes, bincode::serde::encode_to_vec(&plain, cfg).unwrap());
            let (back, _): (Entry, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
            assert_eq!(back, e);
        }
    }
}
