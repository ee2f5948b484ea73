//! The operations clients ask of the state machine, their replies, and the limits that
//! make an operation valid. They live here, with the state machine that executes them;
//! `raft-wire` carries them in its requests and re-exports them.

use serde::{Deserialize, Serialize};

/// Writes, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    Set {
        key: String,
        #[serde(with = "raft_core::bytes")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Set `key` to `new` if its current value is `expected` (`None`: the key is absent).
    Cas {
        key: String,
        #[serde(with = "raft_core::bytes::option")]
        expected: Option<Vec<u8>>,
        #[serde(with = "raft_core::bytes")]
        new: Vec<u8>,
    },
    // Redis's string commands (the RESP front end). Appended after the first three so
    // their bincode tags stay the same in logs and snapshots already written.
    /// `SET key value [NX|XX] [GET]`, `SETNX`, `GETSET`: set `key` if `cond` holds;
    /// answered [`Reply::SetIf`] with the old value when `get`.
    SetIf {
        key: String,
        #[serde(with = "raft_core::bytes")]
        value: Vec<u8>,
        cond: SetCond,
        get: bool,
    },
    /// `GETDEL`: remove `key`, answered with the value it had ([`Reply::Value`]).
    GetDel {
        key: String,
    },
    /// `DEL k1 k2 ...`: answered with how many existed ([`Reply::Count`]).
    DeleteMany {
        keys: Vec<String>,
    },
    /// `MSET`: every pair in one entry, so all or none are applied ([`Reply::Done`]).
    SetMany {
        pairs: Vec<(String, Vec<u8>)>,
    },
    /// `INCRBY` (and `INCR`, `DECR`, `DECRBY`): the value read as a Redis integer (a
    /// missing key is 0), plus `by`; answered [`Reply::Int`] or, on a value that is not
    /// an integer or a sum that overflows i64, [`Reply::Failed`] with nothing changed.
    IncrBy {
        key: String,
        by: i64,
    },
    /// `APPEND`: answered with the new length ([`Reply::Count`]), or [`Reply::Failed`]
    /// when the result would pass [`MAX_VALUE_BYTES`] (nothing changed).
    Append {
        key: String,
        #[serde(with = "raft_core::bytes")]
        value: Vec<u8>,
    },
}

/// The condition of a [`WriteOp::SetIf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    Always,
    /// `NX`: only if the key is absent.
    IfAbsent,
    /// `XX`: only if the key is present.
    IfPresent,
}

/// Why a write was applied as a no-op: decided by the state machine, so the same on
/// every node. The `Display` is Redis's wording (after `-ERR `).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpError {
    NotAnInteger,
    Overflow,
    TooLarge,
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::NotAnInteger => f.write_str("value is not an integer or out of range"),
            OpError::Overflow => f.write_str("increment or decrement would overflow"),
            OpError::TooLarge => write!(f, "string exceeds maximum allowed size ({MAX_VALUE_BYTES} bytes)"),
        }
    }
}

/// Reads, served by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOp {
    Get {
        key: String,
    },
    /// Keys starting with `prefix`, sorted, at most `limit`.
    Keys {
        prefix: String,
        limit: u32,
    },
    // Appended for the RESP front end (tags of the first two unchanged).
    /// `MGET`: each key's value or nothing, in order ([`Reply::Values`]).
    GetMany {
        keys: Vec<String>,
    },
    /// `EXISTS k1 k2 ...`: how many of `keys` exist, a repeated key counted each time.
    Exists {
        keys: Vec<String>,
    },
    /// `STRLEN`: the value's length, 0 when absent ([`Reply::Count`]).
    Strlen {
        key: String,
    },
    /// `DBSIZE`: the number of keys ([`Reply::Count`]).
    Count,
    /// `SCAN` and `KEYS`: keys after `after` (all keys when `None`) in key order that
    /// match the Redis glob `pattern`, up to `count` of them, examining at most
    /// `max_examined` keys ([`MAX_SCAN_EXAMINED`] at most) so one read's work is bounded
    /// whatever the state's size. [`Reply::Scan`] says where to go on from.
    Scan {
        after: Option<String>,
        pattern: Option<String>,
        count: u32,
        max_examined: u32,
    },
}

/// What the state machine answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A set succeeded.
    Done,
    /// A delete; `existed` says whether the key was there.
    Deleted { existed: bool },
    /// A cas: `ok` if it swapped; `current` is the value it found.
    Cas {
        ok: bool,
        #[serde(with = "raft_core::bytes::option")]
        current: Option<Vec<u8>>,
    },
    /// A get.
    Value(#[serde(with = "raft_core::bytes::option")] Option<Vec<u8>>),
    /// A keys listing.
    Keys(Vec<String>),
    // Appended for the RESP front end (tags of the first five unchanged).
    /// A count: keys deleted or existing, a length, the number of keys.
    Count(u64),
    /// The value after an `IncrBy`.
    Int(i64),
    /// The write was refused by the state machine and changed nothing.
    Failed(OpError),
    /// `GetMany`'s values, in the order of its keys.
    Values(Vec<Option<Vec<u8>>>),
    /// A `SetIf`: whether it set, and the old value (only when it asked with `get`).
    SetIf {
        applied: bool,
        #[serde(with = "raft_core::bytes::option")]
        old: Option<Vec<u8>>,
    },
    /// A `Scan`: the matching keys, and the last key examined when keys may remain
    /// after it (`None`: the scan is complete).
    Scan { keys: Vec<String>, next: Option<String> },
}

/// Maximum key length in bytes: keeps entries and listings bounded.
pub const MAX_KEY_BYTES: usize = 4096;
/// Maximum value length in bytes: one value must fit comfortably in one append.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Maximum keys in one listing: one reply must fit in one frame.
pub const MAX_KEYS_PER_LISTING: u32 = 10_000;
/// Keys one write or multi-key read names at most (`MSET`, `DEL`, `MGET`, `EXISTS`):
/// with the byte bound below, one entry and one reply stay well inside a frame.
pub const MAX_KEYS_PER_OP: usize = 10_000;
/// Bytes of keys and values in one multi-key write (`MSET`), and of values in one
/// `MGET` answer: half a frame (`raft_wire::MAX_FRAME_BYTES`, 8 MiB).
pub const MAX_MULTI_BYTES: usize = 4 << 20;
/// Keys one `Scan` read examines at most: a few milliseconds of the event loop, so a
/// pattern that matches nothing in a large state cannot stall a node.
pub const MAX_SCAN_EXAMINED: u32 = 100_000;

impl WriteOp {
    /// The key this write touches.
    /// (The first key, for a write of several; "" for an empty list, which
    /// [`WriteOp::validate`] refuses.)
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Set { key, .. }
            | WriteOp::Delete { key }
            | WriteOp::Cas { key, .. }
            | WriteOp::SetIf { key, .. }
            | WriteOp::GetDel { key }
            | WriteOp::IncrBy { key, .. }
            | WriteOp::Append { key, .. } => key,
            WriteOp::DeleteMany { keys } => keys.first().map_or("", |k| k.as_str()),
            WriteOp::SetMany { pairs } => pairs.first().map_or("", |(k, _)| k.as_str()),
        }
    }

    /// Every key this write touches.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            WriteOp::DeleteMany { keys } => keys.iter().map(|k| k.as_str()).collect(),
            WriteOp::SetMany { pairs } => pairs.iter().map(|(k, _)| k.as_str()).collect(),
            other => vec![other.key()],
        }
    }

    /// Checks the key and value limits; the error says what is wrong in one line. Every
    /// node checks a write here before it proposes it, so nothing over a limit reaches
    /// the log.
    pub fn validate(&self) -> Result<(), String> {
        let values: Vec<usize> = match self {
            WriteOp::Set { value, .. } | WriteOp::SetIf { value, .. } | WriteOp::Append { value, .. } => {
                vec![value.len()]
            }
            WriteOp::Delete { .. } | WriteOp::GetDel { .. } | WriteOp::DeleteMany { .. } | WriteOp::IncrBy { .. } => {
                vec![]
            }
            WriteOp::Cas { expected, new, .. } => vec![expected.as_ref().map_or(0, Vec::len), new.len()],
            WriteOp::SetMany { pairs } => pairs.iter().map(|(_, v)| v.len()).collect(),
        };
        let keys = self.keys();
        if keys.is_empty() || keys.len() > MAX_KEYS_PER_OP {
            return Err(format!("a write names 1 to {MAX_KEYS_PER_OP} keys, got {}", keys.len()));
        }
        if let Some(key) = keys.iter().find(|k| k.is_empty() || k.len() > MAX_KEY_BYTES) {
            return Err(format!("key must be 1 to {MAX_KEY_BYTES} bytes, got {}", key.len()));
        }
        let total: usize = keys.iter().map(|k| k.len()).sum::<usize>() + values.iter().sum::<usize>();
        if keys.len() > 1 && total > MAX_MULTI_BYTES {
            return Err(format!("a write of {total} bytes is over the limit of {MAX_MULTI_BYTES}"));
        }
        if let Some(v) = values.iter().copied().find(|&v| v > MAX_VALUE_BYTES) {
            return Err(format!("value of {v} bytes is over the limit of {MAX_VALUE_BYTES}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_over_the_limits_are_refused_with_a_reason() {
        let ok = WriteOp::Set { key: "k".into(), value: vec![0; MAX_VALUE_BYTES] };
        assert!(WriteOp::validate(&ok).is_ok());
        let empty_key = WriteOp::Delete { key: String::new() };
        assert!(WriteOp::validate(&empty_key).unwrap_err().contains("key must be"));
        let long_key = WriteOp::Delete { key: "k".repeat(MAX_KEY_BYTES + 1) };
        assert!(WriteOp::validate(&long_key).is_err());
        let big = WriteOp::Cas { key: "k".into(), expected: None, new: vec![0; MAX_VALUE_BYTES + 1] };
        assert!(WriteOp::validate(&big).unwrap_err().contains("over the limit"));
        let big_expected = WriteOp::Cas { key: "k".into(), expected: Some(vec![0; MAX_VALUE_BYTES + 1]), new: vec![] };
        assert!(WriteOp::validate(&big_expected).is_err());
    }

    /// Values are written as byte strings (one copy, not one serde call per byte), and
    /// bincode writes a byte string exactly as the sequence of `u8` it replaced: entries
    /// in logs and snapshots written before still decode, and the other way round.
    #[test]
    fn values_keep_the_bincode_format_of_a_byte_sequence() {
        let cfg = bincode::config::standard();
        fn enc<T: Serialize>(v: &T) -> Vec<u8> {
            bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
        }
        for value in [vec![], vec![1, 2, 3], (0..=255).collect::<Vec<u8>>(), vec![7; 70_000]] {
            let some = Some(value.clone());
            let cases: [(Vec<u8>, Vec<u8>); 6] = [
                (enc(&WriteOp::Set { key: "k".into(), value: value.clone() }), enc(&(0u32, "k", &value))),
                (
                    enc(&WriteOp::Cas { key: "k".into(), expected: some.clone(), new: value.clone() }),
                    enc(&(2u32, "k", &some, &value)),
                ),
                (
                    enc(&WriteOp::Cas { key: "k".into(), expected: None, new: vec![] }),
                    enc(&(2u32, "k", None::<Vec<u8>>, Vec::<u8>::new())),
                ),
                (enc(&Reply::Value(some.clone())), enc(&(3u32, &some))),
                (enc(&Reply::Value(None)), enc(&(3u32, None::<Vec<u8>>))),
                (enc(&Reply::SetIf { applied: true, old: some.clone() }), enc(&(9u32, true, &some))),
            ];
            for (new, plain) in cases {
                assert_eq!(new, plain);
            }
            let op = WriteOp::Append { key: "k".into(), value: value.clone() };
            let (back, _): (WriteOp, usize) =
                bincode::serde::decode_from_slice(&bincode::serde::encode_to_vec(&op, cfg).unwrap(), cfg).unwrap();
            assert_eq!(back, op);
            let reply = Reply::Cas { ok: false, current: some };
            let (back, _): (Reply, usize) =
                bincode::serde::decode_from_slice(&bincode::serde::encode_to_vec(&reply, cfg).unwrap(), cfg).unwrap();
            assert_eq!(back, reply);
        }
    }
}
