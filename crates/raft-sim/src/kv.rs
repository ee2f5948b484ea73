//! The simulator's own replicated state machine: a tiny key-value map with client
//! sessions, so a retried write applies exactly once (Raft thesis §6.3).
//!
//! It is deliberately separate from `raft-kv`: the simulator needs something small,
//! deterministic and fully under its control, whose snapshots are byte-for-byte equal
//! on every node that applied the same prefix (the checkers compare them).
//!
//! Command encoding (little endian): `client u64, seq u64, tag u8`, then the operation's
//! strings, each as `len u16` + UTF-8 bytes. Tags: 1 set(key, value), 2 delete(key),
//! 3 cas(key, expected, new) where expected is `0` (key must be absent) or `1` + string.

use raft_core::Index;
use std::collections::BTreeMap;

/// A write a client sends through the log. Reads go through ReadIndex instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Set { key: String, value: String },
    Delete { key: String },
    Cas { key: String, expected: Option<String>, new: String },
}

impl KvOp {
    pub fn key(&self) -> &str {
        match self {
            KvOp::Set { key, .. } | KvOp::Delete { key } | KvOp::Cas { key, .. } => key,
        }
    }
}

/// A write tagged with its client session: `(client, seq)` identifies it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvCommand {
    pub client: u64,
    pub seq: u64,
    pub op: KvOp,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvResult {
    Done,
    Cas(bool),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("sim strings are short");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
        String::from_utf8(self.take(usize::from(len))?.to_vec()).ok()
    }
}

impl KvCommand {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        match &self.op {
            KvOp::Set { key, value } => {
                out.push(1);
                put_str(&mut out, key);
                put_str(&mut out, value);
            }
            KvOp::Delete { key } => {
                out.push(2);
                put_str(&mut out, key);
            }
            KvOp::Cas { key, expected, new } => {
                out.push(3);
                put_str(&mut out, key);
                match expected {
                    None => out.push(0),
                    Some(e) => {
                        out.push(1);
                        put_str(&mut out, e);
                    }
                }
                put_str(&mut out, new);
            }
        }
        out
    }

    /// `None` for bytes this module did not produce.
    pub fn decode(bytes: &[u8]) -> Option<KvCommand> {
        let mut r = Reader { bytes };
        let client = r.u64()?;
        let seq = r.u64()?;
        let op = match r.u8()? {
            1 => KvOp::Set { key: r.string()?, value: r.string()? },
            2 => KvOp::Delete { key: r.string()? },
            3 => {
                let key = r.string()?;
                let expected = match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return None,
                };
                KvOp::Cas { key, expected, new: r.string()? }
            }
            _ => return None,
        };
        if !r.bytes.is_empty() {
            return None;
        }
        Some(KvCommand { client, seq, op })
    }
}

/// What applying one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub client: u64,
    pub seq: u64,
    /// The answer for the client: freshly computed, or the cached one for a retry.
    /// `None` for a command older than the session's latest (its client moved on).
    pub result: Option<KvResult>,
}

/// The map, the sessions and the index of the last applied entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<String, String>,
    /// client -> (highest seq applied, its result).
    sessions: BTreeMap<u64, (u64, KvResult)>,
    applied: Index,
}

impl Kv {
    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    /// Advances `applied` past a no-op entry.
    pub fn apply_noop(&mut self, index: Index) {
        assert_eq!(index, self.applied + 1, "kv: applying out of order");
        self.applied = index;
    }

    /// Applies a command entry at `index`, exactly once per `(client, seq)`.
    /// `None` when the bytes are not a command of this module.
    pub fn apply(&mut self, index: Index, bytes: &[u8]) -> Option<Applied> {
        assert_eq!(index, self.applied + 1, "kv: applying out of order");
        let cmd = KvCommand::decode(bytes)?;
        self.applied = index;
        let (client, seq) = (cmd.client, cmd.seq);
        if let Some(&(last_seq, last_result)) = self.sessions.get(&client) {
            if seq == last_seq {
                return Some(Applied { client, seq, result: Some(last_result) });
            }
            if seq < last_seq {
                return Some(Applied { client, seq, result: None });
            }
        }
        let result = match cmd.op {
            KvOp::Set { key, value } => {
                self.map.insert(key, value);
                KvResult::Done
            }
            KvOp::Delete { key } => {
                self.map.remove(&key);
                KvResult::Done
            }
            KvOp::Cas { key, expected, new } => {
                if self.map.get(&key) == expected.as_ref() {
                    self.map.insert(key, new);
                    KvResult::Cas(true)
                } else {
                    KvResult::Cas(false)
                }
            }
        };
        self.sessions.insert(client, (seq, result));
        Some(Applied { client, seq, result: Some(result) })
    }

    /// Deterministic bytes: two nodes that applied the same prefix produce equal snapshots.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 24 * self.map.len());
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, v) in &self.map {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out.extend_from_slice(&(self.sessions.len() as u64).to_le_bytes());
        for (client, (seq, result)) in &self.sessions {
            out.extend_from_slice(&client.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.push(match result {
                KvResult::Done => 0,
                KvResult::Cas(false) => 1,
                KvResult::Cas(true) => 2,
            });
        }
        out
    }

    /// The inverse of [`Kv::snapshot`]; `None` for bytes it did not produce.
    pub fn restore(bytes: &[u8]) -> Option<Kv> {
        let mut r = Reader { bytes };
        let applied = r.u64()?;
        let mut map = BTreeMap::new();
        for _ in 0..r.u64()? {
            let k = r.string()?;
            map.insert(k, r.string()?);
        }
        let mut sessions = BTreeMap::new();
        for _ in 0..r.u64()? {
            let client = r.u64()?;
            let seq = r.u64()?;
            let result = match r.u8()? {
                0 => KvResult::Done,
                1 => KvResult::Cas(false),
                2 => KvResult::Cas(true),
                _ => return None,
            };
            sessions.insert(client, (seq, result));
        }
        if !r.bytes.is_empty() {
            return None;
        }
        Some(Kv { map, sessions, applied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: u64, seq: u64, op: KvOp) -> Vec<u8> {
        KvCommand { client, seq, op }.encode()
    }

    #[test]
    fn commands_round_trip() {
        for op in [
            KvOp::Set { key: "k".into(), value: "v".into() },
            KvOp::Delete { key: "k".into() },
            KvOp::Cas { key: "k".into(), expected: None, new: "n".into() },
            KvOp::Cas { key: "k".into(), expected: Some("e".into()), new: "n".into() },
        ] {
            let c = KvCommand { client: 3, seq: 9, op };
            assert_eq!(KvCommand::decode(&c.encode()), Some(c));
        }
        assert_eq!(KvCommand::decode(b"junk"), None);
    }

    #[test]
    fn retried_write_applies_once() {
        let mut kv = Kv::default();
        let set = cmd(1, 1, KvOp::Set { key: "k".into(), value: "a".into() });
        assert_eq!(kv.apply(1, &set).unwrap().result, Some(KvResult::Done));
        let cas = cmd(2, 1, KvOp::Cas { key: "k".into(), expected: Some("a".into()), new: "b".into() });
        assert_eq!(kv.apply(2, &cas).unwrap().result, Some(KvResult::Cas(true)));
        // The retry of client 1's set must not overwrite "b".
        assert_eq!(kv.apply(3, &set).unwrap().result, Some(KvResult::Done));
        assert_eq!(kv.get("k").map(String::as_str), Some("b"));
        // The retry of the cas answers from the session, not by re-evaluating.
        assert_eq!(kv.apply(4, &cas).unwrap().result, Some(KvResult::Cas(true)));
    }

    #[test]
    fn snapshot_round_trips() {
        let mut kv = Kv::default();
        kv.apply_noop(1);
        kv.apply(2, &cmd(1, 1, KvOp::Set { key: "a".into(), value: "1".into() })).unwrap();
        kv.apply(3, &cmd(2, 5, KvOp::Cas { key: "b".into(), expected: None, new: "2".into() })).unwrap();
        let restored = Kv::restore(&kv.snapshot()).unwrap();
        assert_eq!(restored, kv);
        assert_eq!(restored.snapshot(), kv.snapshot());
    }
}
