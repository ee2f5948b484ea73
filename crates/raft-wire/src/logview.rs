//! A page of one node's Raft log, as `raft-cli log N` shows it: each entry's index, term
//! and kind (a leader's no-op, a client's write with its operation decoded, or a
//! configuration), plus the
//! cursors that say how far the entries have travelled (committed, applied) and where
//! the snapshot cut the log. Values are cut to [`MAX_SHOWN_BYTES`], so a page of
//! [`MAX_LOG_ENTRIES_PER_REQUEST`] entries stays far below the frame limit.

use raft_core::{Entry, EntryData, Index, Term};
use raft_kv::{Command, WriteOp};
use serde::{Deserialize, Serialize};

/// Entries in one [`crate::Request::Log`] answer: a screenful or a script's page; more
/// would only make the node's turn longer for a reader who asks again with `--from`.
pub const MAX_LOG_ENTRIES_PER_REQUEST: u32 = 1000;
/// Shown bytes of a key or value in a log entry: enough to recognise it.
pub const MAX_SHOWN_BYTES: usize = 64;
/// A page stops growing at this many bytes of shown entries (a safety margin: with
/// [`MAX_SHOWN_BYTES`] cuts, 1000 entries take about 200 KiB).
pub const MAX_LOG_REPLY_BYTES: usize = 1 << 20;
const _: () = assert!(MAX_LOG_REPLY_BYTES * 4 <= crate::MAX_FRAME_BYTES);

/// Up to [`MAX_SHOWN_BYTES`] of a key or value, and its full length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub bytes: Vec<u8>,
    pub len: u64,
}

impl Shown {
    pub fn of(b: &[u8]) -> Shown {
        Shown { bytes: b[..b.len().min(MAX_SHOWN_BYTES)].to_vec(), len: b.len() as u64 }
    }

    pub fn is_cut(&self) -> bool {
        (self.bytes.len() as u64) < self.len
    }
}

/// A client's operation, with keys and values cut to [`MAX_SHOWN_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShownOp {
    Set {
        key: Shown,
        value: Shown,
    },
    Delete {
        key: Shown,
    },
    Cas {
        key: Shown,
        expected: Option<Shown>,
        new: Shown,
    },
    /// One of the Redis string operations (the RESP front end): its name as Redis says
    /// it (`setnx`, `getdel`, `del`, `mset`, `incrby 5`, `append` ...), its keys (at most
    /// [`MAX_SHOWN_KEYS`]) and its first value if it has one.
    Redis {
        name: String,
        keys: Vec<Shown>,
        value: Option<Shown>,
    },
}

/// Keys shown of one multi-key operation (`del`, `mset`): the rest are counted in `name`.
pub const MAX_SHOWN_KEYS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A new leader's first entry of its term (§5.4.2).
    Noop,
    /// A client's write: its session and sequence number (exactly-once) and operation.
    Write { session: u64, seq: u64, op: ShownOp },
    /// A command the state machine cannot decode (it applies as an invalid write).
    Undecodable { bytes: u64, reason: String },
    /// A new configuration (thesis §4.1), in effect from this entry on.
    Config(raft_core::Membership),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntryView {
    pub index: Index,
    pub term: Term,
    pub kind: EntryKind,
}

impl LogEntryView {
    pub fn of(e: &Entry) -> LogEntryView {
        let kind = match &e.data {
            EntryData::Noop => EntryKind::Noop,
            EntryData::Command(bytes) => match Command::decode(bytes) {
                Ok(Command { session, seq, op }) => {
                    let op = match &op {
                        WriteOp::Set { key, value } => {
                            ShownOp::Set { key: Shown::of(key.as_bytes()), value: Shown::of(value) }
                        }
                        WriteOp::Delete { key } => ShownOp::Delete { key: Shown::of(key.as_bytes()) },
                        WriteOp::Cas { key, expected, new } => ShownOp::Cas {
                            key: Shown::of(key.as_bytes()),
                            expected: expected.as_deref().map(Shown::of),
                            new: Shown::of(new),
                        },
                        other => redis_op(other),
                    };
                    EntryKind::Write { session, seq, op }
                }
                Err(e) => EntryKind::Undecodable { bytes: bytes.len() as u64, reason: e.to_string() },
            },
            EntryData::Config(m) => EntryKind::Config(m.clone()),
        };
        LogEntryView { index: e.index, term: e.term, kind }
    }

    /// Roughly what it takes in a frame, for [`MAX_LOG_REPLY_BYTES`].
    pub fn size_bytes(&self) -> usize {
        let shown = |s: &Shown| 10 + s.bytes.len();
        32 + match &self.kind {
            EntryKind::Noop => 0,
            EntryKind::Write { op, .. } => match op {
                ShownOp::Set { key, value } => shown(key) + shown(value),
                ShownOp::Delete { key } => shown(key),
                ShownOp::Cas { key, expected, new } => shown(key) + expected.as_ref().map_or(0, shown) + shown(new),
                ShownOp::Redis { name, keys, value } => {
                    name.len() + keys.iter().map(shown).sum::<usize>() + value.as_ref().map_or(0, shown)
                }
            },
            EntryKind::Undecodable { reason, .. } => reason.len(),
            EntryKind::Config(m) => 8 * (m.voters.len() + m.learners.len()),
        }
    }
}

/// A Redis string operation as [`ShownOp::Redis`].
fn redis_op(op: &WriteOp) -> ShownOp {
    let key = |k: &str| Shown::of(k.as_bytes());
    let many = |keys: &mut dyn Iterator<Item = &String>, n: usize, name: &str| {
        let shown: Vec<Shown> = keys.take(MAX_SHOWN_KEYS).map(|k| key(k)).collect();
        let name = if n > shown.len() { format!("{name} ({n} keys)") } else { name.to_string() };
        (name, shown)
    };
    let (name, keys, value) = match op {
        WriteOp::SetIf { key: k, value, cond, get } => {
            let cond = match cond {
                raft_kv::SetCond::Always => "",
                raft_kv::SetCond::IfAbsent => " nx",
                raft_kv::SetCond::IfPresent => " xx",
            };
            (format!("set{cond}{}", if *get { " get" } else { "" }), vec![key(k)], Some(Shown::of(value)))
        }
        WriteOp::GetDel { key: k } => ("getdel".into(), vec![key(k)], None),
        WriteOp::DeleteMany { keys } => {
            let (name, shown) = many(&mut keys.iter(), keys.len(), "del");
            (name, shown, None)
        }
        WriteOp::SetMany { pairs } => {
            let (name, shown) = many(&mut pairs.iter().map(|(k, _)| k), pairs.len(), "mset");
            (name, shown, pairs.first().map(|(_, v)| Shown::of(v)))
        }
        WriteOp::IncrBy { key: k, by } => (format!("incrby {by}"), vec![key(k)], None),
        WriteOp::Append { key: k, value } => ("append".into(), vec![key(k)], Some(Shown::of(value))),
        WriteOp::Set { .. } | WriteOp::Delete { .. } | WriteOp::Cas { .. } => unreachable!("shown as themselves"),
    };
    ShownOp::Redis { name, keys, value }
}

/// The answer to [`crate::Request::Log`]: the entries asked for that this node still has,
/// and its cursors. Entries at or below `snapshot_index` were compacted away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    /// The first index still in the log (`snapshot_index + 1`).
    pub first_index: Index,
    pub last_index: Index,
    pub commit: Index,
    pub applied: Index,
    pub snapshot_index: Index,
    pub snapshot_term: Term,
    pub entries: Vec<LogEntryView>,
    /// The page stopped at its entry or byte limit before `last_index`.
    pub more: bool,
}
