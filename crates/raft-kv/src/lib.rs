//! # raft-kv: the replicated state machine
//!
//! A map from string keys to byte values, driven only by committed log entries, so every
//! node that applies the same log holds the same map. Writes arrive as [`Command`]s
//! (encoded into [`raft_core::EntryData::Command`]); reads are answered from the map.
//!
//! ## Exactly-once writes (Raft thesis §6.3)
//!
//! A client stamps each write with its session id and a sequence number and keeps both
//! when it retries. The store remembers, per session, the replies to its most recent
//! sequence numbers ([`MAX_REPLIES_PER_SESSION`]); a command whose (session, seq) was
//! already applied is not applied again, and gets the reply it got the first time. So a
//! write retried after a leader crash, a timeout or a lost response applies exactly once.
//!
//! Sessions expire **deterministically**, by log position, never by a local clock: a
//! session unused for [`SESSION_EXPIRY_ENTRIES`] log entries is dropped, and when more
//! than [`MAX_SESSIONS`] exist the least recently used goes. Every node applies the same
//! entries in the same order, so every node expires the same sessions at the same index.
//! Sessions are part of the snapshot.
//!
//! ## Determinism
//!
//! `apply` depends only on the entry and the prior state; a command that does not decode
//! is skipped identically on every node (it is answered as invalid).

use raft_core::{Entry, EntryData, Index};
pub mod fuzz;
mod glob;
mod ops;
pub use glob::{glob_match, literal_prefix, redis_int};
pub use ops::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};

/// Replies kept per session: a client may have this many writes in flight on one session
/// (bench pipelines up to this window) and still retry any of them safely.
pub const MAX_REPLIES_PER_SESSION: usize = 128;
/// A session unused for this many log entries is forgotten: long enough that no client
/// retries that late (a retry comes within seconds; this is minutes at full speed).
pub const SESSION_EXPIRY_ENTRIES: u64 = 5_000_000;
/// Sessions kept at most; each one-shot `raft-cli set` opens one, so this bounds memory.
pub const MAX_SESSIONS: usize = 200_000;
/// Key bytes in one listing: the reply must fit in one frame (`MAX_FRAME_BYTES`, 8 MiB)
/// with room to spare, whatever the key sizes. A listing that reaches it is cut short.
pub const MAX_LISTING_BYTES: usize = 4 << 20;
/// Largest encoded key-value pair in a state image: a key and a value at their limits,
/// with their length prefixes. An image is read one pair at a time, so this (not the
/// image's size) bounds what one damaged length claim can make the reader allocate.
const MAX_PAIR_BYTES: usize = MAX_KEY_BYTES + MAX_VALUE_BYTES + 32;
/// Largest encoded session in a state image: its reply window full of replies that
/// carry a value (a cas answers with the current value).
const MAX_SESSION_BYTES: usize = MAX_REPLIES_PER_SESSION * (MAX_VALUE_BYTES + 64) + 64;
/// Largest encoded count or index in a state image (a varint).
const MAX_SCALAR_BYTES: usize = 16;

/// Largest command `Command::decode` accepts: a command arrived in one client frame
/// (`raft_wire::MAX_FRAME_BYTES`, 8 MiB), so a larger claim is damage.
pub const MAX_COMMAND_BYTES: usize = 8 << 20;

fn command_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_COMMAND_BYTES>()
}

/// Reads one item of a state image, allowing it at most `LIMIT` bytes.
fn read_item<T: serde::de::DeserializeOwned, const LIMIT: usize>(r: &mut impl Read) -> Result<T, KvError> {
    bincode::serde::decode_from_std_read(r, bincode::config::standard().with_limit::<LIMIT>())
        .map_err(|e| KvError::BadSnapshot(e.to_string()))
}

/// Writes one item of a state image.
fn write_item<T: Serialize>(w: &mut impl Write, item: &T) -> io::Result<()> {
    bincode::serde::encode_into_std_write(item, w, bincode::config::standard()).map_err(|e| match e {
        bincode::error::EncodeError::Io { inner, .. } => inner,
        other => io::Error::other(other.to_string()),
    })?;
    Ok(())
}

/// A write as it travels in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub session: u64,
    pub seq: u64,
    pub op: WriteOp,
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("commands always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, KvError> {
        let (cmd, used) = bincode::serde::decode_from_slice(bytes, command_config())
            .map_err(|e| KvError::BadCommand(e.to_string()))?;
        if used != bytes.len() {
            return Err(KvError::BadCommand(format!("{} trailing bytes", bytes.len() - used)));
        }
        Ok(cmd)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("log entry holds no valid command: {0}")]
    BadCommand(String),
    #[error("snapshot does not decode: {0}")]
    BadSnapshot(String),
}

/// What applying one entry produced, for answering the client that proposed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A no-op (leader's first entry of a term): nothing to answer.
    Noop,
    /// A write was applied now, or was a duplicate answered from the session cache.
    Write { session: u64, seq: u64, reply: Reply, duplicate: bool },
    /// The entry did not decode; skipped on every node alike.
    Invalid(String),
    /// The sequence number is older than the session's reply window: the original outcome
    /// is no longer known, so nothing is applied and the client is told.
    TooOld { session: u64, seq: u64 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Index of the entry that last used this session (for expiry).
    last_index: Index,
    /// seq -> reply, the most recent [`MAX_REPLIES_PER_SESSION`] only.
    replies: BTreeMap<u64, Reply>,
}

/// The key-value state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    /// Boxed keys and values (16 bytes each in the map's nodes, not 24 with a capacity):
    /// about 30 MB less per million keys.
    map: BTreeMap<Box<str>, Box<[u8]>>,
    sessions: HashMap<u64, Session>,
    /// (last_index, session) in use order, for expiry and eviction.
    lru: BTreeSet<(Index, u64)>,
    applied: Index,
    /// Sum of `key.len() + value.len()` over `map`: what the state's size quota counts
    /// (sessions and their reply caches are bounded on their own). Kept up to date by
    /// `execute` in O(1), computed from the map by `restore`.
    state_bytes: u64,
}

/// A byte string written in one piece (bincode: length, then the bytes).
#[derive(Serialize)]
struct Bytes<'a>(#[serde(with = "raft_core::bytes")] &'a [u8]);

/// A byte string read in one piece; accepts a sequence of bytes too.
#[derive(Deserialize)]
struct ByteBuf(#[serde(with = "raft_core::bytes")] Vec<u8>);

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// The index of the last entry applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.map.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Bytes of keys and values held: the sum of `key.len() + value.len()` over the map.
    /// This is what a size quota counts (raft-replica refuses writes that would take it
    /// past `quota_bytes`).
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes
    }

    /// The most bytes `op` could add to [`KvStore::state_bytes`], whatever the state:
    /// its keys and new values as if every key were new. No lookup, so a quota check far
    /// from the quota settles without searching the map (issue 16: the exact
    /// [`KvStore::growth`] was a second map search per write on the leader).
    pub fn growth_bound(op: &WriteOp) -> u64 {
        /// Longest decimal form of an i64 (`-9223372036854775808`): what INCRBY may store.
        const MAX_INT_DIGITS: u64 = 20;
        let kv = |key: &str, value: &[u8]| (key.len() + value.len()) as u64;
        match op {
            WriteOp::Set { key, value } | WriteOp::SetIf { key, value, .. } | WriteOp::Append { key, value } => {
                kv(key, value)
            }
            WriteOp::Cas { key, new, .. } => kv(key, new),
            WriteOp::SetMany { pairs } => pairs.iter().map(|(k, v)| kv(k, v)).sum(),
            WriteOp::IncrBy { key, .. } => key.len() as u64 + MAX_INT_DIGITS,
            WriteOp::Delete { .. } | WriteOp::GetDel { .. } | WriteOp::DeleteMany { .. } => 0,
        }
    }

    /// Bytes `op` would add to [`KvStore::state_bytes`] if it were applied now: a new
    /// key counts its key and value, an overwrite (or a cas that would succeed) its new
    /// value minus the old one, never below 0. Deletes, shrinking overwrites and a cas
    /// that would fail add nothing. Pure: the store is not changed.
    pub fn growth(&self, op: &WriteOp) -> u64 {
        let grow = |key: &str, new_len: usize| match self.map.get(key) {
            Some(old) => (new_len as u64).saturating_sub(old.len() as u64),
            None => (key.len() + new_len) as u64,
        };
        let (key, new) = match op {
            WriteOp::SetIf { key, value, cond, .. } => {
                let present = self.map.contains_key(key.as_str());
                let applies = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => !present,
                    SetCond::IfPresent => present,
                };
                return if applies { grow(key, value.len()) } else { 0 };
            }
            WriteOp::SetMany { pairs } => return pairs.iter().map(|(k, v)| grow(k, v.len())).sum(),
            WriteOp::IncrBy { key, by } => {
                let current = match self.map.get(key.as_str()) {
                    None => Some(0),
                    Some(v) => redis_int(v),
                };
                return match current.and_then(|c| c.checked_add(*by)) {
                    Some(next) => grow(key, next.to_string().len()),
                    None => 0,
                };
            }
            WriteOp::Append { key, value } => {
                let old = self.map.get(key.as_str()).map_or(0, |v| v.len());
                if old + value.len() > MAX_VALUE_BYTES {
                    return 0;
                }
                return grow(key, old + value.len());
            }
            WriteOp::GetDel { .. } | WriteOp::DeleteMany { .. } => return 0,
            WriteOp::Set { key, value } => (key, value),
            WriteOp::Cas { key, expected, new } => {
                if self.map.get(key.as_str()).map(|v| &**v) != expected.as_deref() {
                    return 0;
                }
                (key, new)
            }
            WriteOp::Delete { .. } => return 0,
        };
        match self.map.get(key.as_str()) {
            Some(old) => (new.len() as u64).saturating_sub(old.len() as u64),
            None => (key.len() + new.len()) as u64,
        }
    }

    /// Number of live client sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The reply an already-applied write got, if it is still cached: lets a leader
    /// answer a retry at once without a new log entry.
    pub fn cached_reply(&self, session: u64, seq: u64) -> Option<&Reply> {
        self.sessions.get(&session)?.replies.get(&seq)
    }

    /// Applies one committed entry. Entries must come in index order, each exactly once.
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        assert_eq!(entry.index, self.applied + 1, "entries must be applied in order without gaps");
        self.applied = entry.index;
        self.expire(entry.index);
        let bytes = match &entry.data {
            // A configuration took effect in raft-core when it was appended; the state
            // machine only moves past its index.
            EntryData::Noop | EntryData::Config(_) => return Applied::Noop,
            EntryData::Command(bytes) => bytes,
        };
        let cmd = match Command::decode(bytes) {
            Ok(c) => c,
            Err(e) => return Applied::Invalid(e.to_string()),
        };
        let session = self.touch(cmd.session, entry.index);
        if let Some(reply) = session.replies.get(&cmd.seq) {
            return Applied::Write { session: cmd.session, seq: cmd.seq, reply: reply.clone(), duplicate: true };
        }
        if session.replies.len() >= MAX_REPLIES_PER_SESSION {
            let oldest = *session.replies.keys().next().expect("window is full");
            if cmd.seq < oldest {
                return Applied::TooOld { session: cmd.session, seq: cmd.seq };
            }
        }
        let reply = self.execute(cmd.op);
        let session = self.sessions.get_mut(&cmd.session).expect("touched above");
        session.replies.insert(cmd.seq, reply.clone());
        while session.replies.len() > MAX_REPLIES_PER_SESSION {
            session.replies.pop_first();
        }
        Applied::Write { session: cmd.session, seq: cmd.seq, reply, duplicate: false }
    }

    fn execute(&mut self, op: WriteOp) -> Reply {
        match op {
            WriteOp::Set { key, value } => {
                self.insert(key, value);
                Reply::Done
            }
            WriteOp::Delete { key } => Reply::Deleted { existed: self.remove(&key).is_some() },
            WriteOp::SetIf { key, value, cond, get } => {
                let current = self.map.get(key.as_str());
                let applies = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => current.is_none(),
                    SetCond::IfPresent => current.is_some(),
                };
                let old = if get { current.map(|v| v.to_vec()) } else { None };
                if applies {
                    self.insert(key, value);
                }
                Reply::SetIf { applied: applies, old }
            }
            WriteOp::GetDel { key } => Reply::Value(self.remove(&key).map(|v| v.into_vec())),
            WriteOp::DeleteMany { keys } => {
                Reply::Count(keys.iter().filter(|k| self.remove(k).is_some()).count() as u64)
            }
            WriteOp::SetMany { pairs } => {
                for (k, v) in pairs {
                    self.insert(k, v);
                }
                Reply::Done
            }
            WriteOp::IncrBy { key, by } => {
                let current = match self.map.get(key.as_str()) {
                    None => 0,
                    Some(v) => match redis_int(v) {
                        Some(n) => n,
                        None => return Reply::Failed(OpError::NotAnInteger),
                    },
                };
                let Some(next) = current.checked_add(by) else { return Reply::Failed(OpError::Overflow) };
                self.insert(key, next.to_string().into_bytes());
                Reply::Int(next)
            }
            WriteOp::Append { key, value } => {
                let mut next = self.map.get(key.as_str()).map(|v| v.to_vec()).unwrap_or_default();
                if next.len() + value.len() > MAX_VALUE_BYTES {
                    return Reply::Failed(OpError::TooLarge);
                }
                next.extend_from_slice(&value);
                let len = next.len() as u64;
                self.insert(key, next);
                Reply::Count(len)
            }
            WriteOp::Cas { key, expected, new } => {
                let current = self.map.get(key.as_str()).map(|v| v.to_vec());
                if current == expected {
                    self.insert(key, new);
                    Reply::Cas { ok: true, current }
                } else {
                    Reply::Cas { ok: false, current }
                }
            }
        }
    }

    /// Removes `key`, keeping `state_bytes` in step.
    fn remove(&mut self, key: &str) -> Option<Box<[u8]>> {
        let removed = self.map.remove(key);
        if let Some(old) = &removed {
            self.state_bytes -= (key.len() + old.len()) as u64;
        }
        removed
    }

    /// Sets `key` to `value`, keeping `state_bytes` in step.
    fn insert(&mut self, key: String, value: Vec<u8>) {
        let (key_len, value_len) = (key.len() as u64, value.len() as u64);
        match self.map.insert(key.into_boxed_str(), value.into_boxed_slice()) {
            Some(old) => self.state_bytes = self.state_bytes - old.len() as u64 + value_len,
            None => self.state_bytes += key_len + value_len,
        }
    }

    /// Marks `session` used at `index`, creating it if new.
    fn touch(&mut self, id: u64, index: Index) -> &mut Session {
        let session = self.sessions.entry(id).or_default();
        if session.last_index != 0 {
            self.lru.remove(&(session.last_index, id));
        }
        session.last_index = index;
        self.lru.insert((index, id));
        if self.sessions.len() > MAX_SESSIONS {
            let (_, victim) = self.lru.pop_first().expect("lru holds every session");
            assert_ne!(victim, id, "the session just touched is the newest, never the oldest");
            self.sessions.remove(&victim);
        }
        self.sessions.get_mut(&id).expect("inserted above")
    }

    /// Drops sessions unused for [`SESSION_EXPIRY_ENTRIES`] entries.
    fn expire(&mut self, index: Index) {
        while let Some(&(last, id)) = self.lru.first() {
            if last + SESSION_EXPIRY_ENTRIES > index {
                break;
            }
            self.lru.pop_first();
            self.sessions.remove(&id);
        }
    }

    /// Answers a read from the current state.
    pub fn read(&self, op: &ReadOp) -> Reply {
        match op {
            ReadOp::Get { key } => Reply::Value(self.map.get(key.as_str()).map(|v| v.to_vec())),
            ReadOp::Keys { prefix, limit } => {
                let limit = (*limit).min(MAX_KEYS_PER_LISTING) as usize;
                let mut bytes = 0;
                let keys = self
                    .map
                    .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .take(limit)
                    .take_while(|(k, _)| {
                        bytes += k.len() + 8;
                        bytes <= MAX_LISTING_BYTES
                    })
                    .map(|(k, _)| k.to_string())
                    .collect();
                Reply::Keys(keys)
            }
            ReadOp::GetMany { keys } => {
                let mut bytes = 0;
                let mut values = Vec::with_capacity(keys.len().min(MAX_KEYS_PER_OP));
                for k in keys.iter().take(MAX_KEYS_PER_OP) {
                    let v = self.map.get(k.as_str()).map(|v| v.to_vec());
                    bytes += v.as_ref().map_or(0, Vec::len);
                    if bytes > MAX_MULTI_BYTES {
                        return Reply::Failed(OpError::TooLarge);
                    }
                    values.push(v);
                }
                Reply::Values(values)
            }
            ReadOp::Exists { keys } => Reply::Count(
                keys.iter().take(MAX_KEYS_PER_OP).filter(|k| self.map.contains_key(k.as_str())).count() as u64,
            ),
            ReadOp::Strlen { key } => Reply::Count(self.map.get(key.as_str()).map_or(0, |v| v.len() as u64)),
            ReadOp::Count => Reply::Count(self.map.len() as u64),
            ReadOp::Scan { after, pattern, count, max_examined } => {
                self.scan(after.as_deref(), pattern.as_deref(), *count, *max_examined)
            }
        }
    }

    /// Keys after `after` matching `pattern`: at most `count` returned, at most
    /// `max_examined` (bounded by [`MAX_SCAN_EXAMINED`]) looked at. Only keys that start
    /// with the pattern's literal prefix are looked at. `next` is the last key examined
    /// when more may follow: resuming after it never returns a key twice, and returns
    /// every key that existed for the whole scan, whatever was written meanwhile.
    fn scan(&self, after: Option<&str>, pattern: Option<&str>, count: u32, max_examined: u32) -> Reply {
        use std::ops::Bound;
        let prefix = pattern.map_or("", literal_prefix);
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let count = count.clamp(1, MAX_KEYS_PER_LISTING) as usize;
        let budget = max_examined.clamp(1, MAX_SCAN_EXAMINED) as usize;
        let (mut keys, mut bytes, mut examined) = (Vec::new(), 0, 0);
        let mut next = None;
        for (k, _) in self.map.range::<str, _>((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                return Reply::Scan { keys, next: None };
            }
            if examined == budget || keys.len() == count || bytes + k.len() + 8 > MAX_LISTING_BYTES {
                return Reply::Scan { keys, next };
            }
            examined += 1;
            next = Some(k.to_string());
            let matches = match pattern {
                Some(p) => glob_match(p.as_bytes(), k.as_bytes()),
                None => true,
            };
            if matches {
                bytes += k.len() + 8;
                keys.push(k.to_string());
            }
        }
        Reply::Scan { keys, next: None }
    }

    /// Serialises the whole state (map and sessions) at the applied index into memory:
    /// for small states (tests, the simulator). Nodes stream with
    /// [`KvStore::write_snapshot`].
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_snapshot(&mut out).expect("writing into memory cannot fail");
        out
    }

    /// Streams the state image into `w`, one key-value pair at a time, so no second copy
    /// of the state is ever built in memory. The image is what bincode makes of
    /// `(applied, [(key, value)...], [(session id, session)...])`: the applied index, the
    /// pairs in key order, the sessions in id order, each sequence after its length.
    pub fn write_snapshot(&self, w: &mut impl Write) -> io::Result<()> {
        write_item(w, &self.applied)?;
        write_item(w, &(self.map.len() as u64))?;
        for (k, v) in &self.map {
            write_item(w, &(k, Bytes(v)))?;
        }
        let mut sessions: Vec<(u64, &Session)> = self.sessions.iter().map(|(id, s)| (*id, s)).collect();
        sessions.sort_unstable_by_key(|(id, _)| *id);
        write_item(w, &(sessions.len() as u64))?;
        for item in &sessions {
            write_item(w, item)?;
        }
        Ok(())
    }

    /// Rebuilds a store from [`KvStore::snapshot`] bytes taken at `index`.
    pub fn restore(bytes: &[u8], index: Index) -> Result<KvStore, KvError> {
        KvStore::read_snapshot(&mut &bytes[..], index)
    }

    /// Rebuilds a store from a state image streamed from `r` (see
    /// [`KvStore::write_snapshot`]), taken at `index`. The image is read one item at a
    /// time with a bound per item, never with a bound on the whole: a state of any size
    /// loads, while a damaged length claim cannot make the reader allocate more than one
    /// item's limit. Bytes that `write_snapshot` cannot have written (damaged, cut,
    /// trailing bytes, another index, keys out of order, session bookkeeping that does
    /// not add up) and errors of the reader itself (a checksum that does not match) are a
    /// [`KvError::BadSnapshot`].
    pub fn read_snapshot(r: &mut impl Read, index: Index) -> Result<KvStore, KvError> {
        let bad = |why: String| Err(KvError::BadSnapshot(why));
        let applied: Index = read_item::<_, MAX_SCALAR_BYTES>(r)?;
        if applied != index {
            return bad(format!("snapshot image is at index {applied} but its metadata says {index}"));
        }
        // What `write_snapshot` writes holds by construction; a damaged or hostile image
        // that breaks it would make later entries misbehave (an expiry sum overflowing, a
        // session in the use order twice): refuse it here instead.
        if applied > raft_core::MAX_INDEX {
            return bad(format!("applied index {applied} is beyond any log"));
        }
        let mut store = KvStore { applied, ..KvStore::default() };
        let keys: u64 = read_item::<_, MAX_SCALAR_BYTES>(r)?;
        for _ in 0..keys {
            let (k, v): (String, ByteBuf) = read_item::<_, MAX_PAIR_BYTES>(r)?;
            if store.map.last_key_value().is_some_and(|(last, _)| **last >= *k) {
                return bad(format!("key {k:?} is out of order or appears twice"));
            }
            store.state_bytes += (k.len() + v.0.len()) as u64;
            store.map.insert(k.into_boxed_str(), v.0.into_boxed_slice());
        }
        let sessions: u64 = read_item::<_, MAX_SCALAR_BYTES>(r)?;
        if sessions > MAX_SESSIONS as u64 {
            return bad(format!("{sessions} sessions, more than {MAX_SESSIONS}"));
        }
        for _ in 0..sessions {
            let (id, s): (u64, Session) = read_item::<_, MAX_SESSION_BYTES>(r)?;
            if s.last_index == 0 || s.last_index > applied {
                return bad(format!("session {id} last used at {}, outside 1..={applied}", s.last_index));
            }
            if s.replies.len() > MAX_REPLIES_PER_SESSION {
                return bad(format!("session {id} caches {} replies", s.replies.len()));
            }
            store.lru.insert((s.last_index, id));
            if store.sessions.insert(id, s).is_some() {
                return bad(format!("session {id} appears twice"));
            }
        }
        let mut probe = [0u8; 1];
        match r.read(&mut probe) {
            Ok(0) => Ok(store),
            Ok(_) => bad("trailing bytes after the image".into()),
            Err(e) => bad(e.to_string()),
        }
    }
}

#[cfg(test)]
mod redis_ops_tests;
#[cfg(test)]
mod tests {
    use super::*;

    /// The borrowed, byte-string encoding is the very format of the plain one (old
    /// snapshots on disk stay readable, and both directions agree).
    #[test]
    fn snapshot_bytes_match_the_plain_encoding() {
        #[derive(Serialize)]
        struct Plain {
            applied: Index,
            map: Vec<(String, Vec<u8>)>,
            sessions: Vec<(u64, Session)>,
        }
        let mut kv = KvStore::new();
        kv.map.insert("a".into(), vec![].into());
        kv.map.insert("b".into(), (0..=255).collect());
        kv.map.insert("c".into(), vec![7; 300].into());
        kv.sessions.insert(9, Session { last_index: 3, replies: BTreeMap::new() });
        kv.applied = 3;
        let plain = Plain {
            applied: 3,
            map: kv.map.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
            sessions: vec![(9, kv.sessions[&9].clone())],
        };
        let want = bincode::serde::encode_to_vec(&plain, bincode::config::standard()).unwrap();
        assert_eq!(kv.snapshot(), want);
        assert_eq!(KvStore::restore(&want, 3).unwrap().map, kv.map);
    }

    fn cmd(index: Index, session: u64, seq: u64, op: WriteOp) -> Entry {
        Entry { index, term: 1, data: EntryData::Command(Command { session, seq, op }.encode()) }
    }
    fn set(k: &str, v: &str) -> WriteOp {
        WriteOp::Set { key: k.into(), value: v.as_bytes().to_vec() }
    }
    fn get(s: &KvStore, k: &str) -> Reply {
        s.read(&ReadOp::Get { key: k.into() })
    }

    #[test]
    fn a_retried_write_applies_once_and_gets_the_first_reply() {
        let mut s = KvStore::new();
        let cas = WriteOp::Cas { key: "k".into(), expected: None, new: b"1".to_vec() };
        let first = s.apply(&cmd(1, 7, 1, cas.clone()));
        assert_eq!(
            first,
            Applied::Write { session: 7, seq: 1, reply: Reply::Cas { ok: true, current: None }, duplicate: false }
        );
        // Someone else changes the key; then the retry of the cas arrives.
        s.apply(&cmd(2, 8, 1, set("k", "2")));
        let retry = s.apply(&cmd(3, 7, 1, cas));
        assert_eq!(
            retry,
            Applied::Write { session: 7, seq: 1, reply: Reply::Cas { ok: true, current: None }, duplicate: true }
        );
        assert_eq!(get(&s, "k"), Reply::Value(Some(b"2".to_vec())), "the duplicate must not be applied again");
    }

    #[test]
    fn set_get_delete_cas_keys() {
        let mut s = KvStore::new();
        s.apply(&Entry { index: 1, term: 1, data: EntryData::Noop });
        s.apply(&cmd(2, 1, 1, set("b", "2")));
        s.apply(&cmd(3, 1, 2, set("a", "1")));
        s.apply(&cmd(4, 1, 3, set("c", "3")));
        assert_eq!(
            s.read(&ReadOp::Keys { prefix: "".into(), limit: 10 }),
            Reply::Keys(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(s.read(&ReadOp::Keys { prefix: "b".into(), limit: 10 }), Reply::Keys(vec!["b".into()]));
        let r =
            s.apply(&cmd(5, 1, 4, WriteOp::Cas { key: "a".into(), expected: Some(b"x".to_vec()), new: b"y".to_vec() }));
        assert!(matches!(r, Applied::Write { reply: Reply::Cas { ok: false, current: Some(ref c) }, .. } if c == b"1"));
        let r = s.apply(&cmd(6, 1, 5, WriteOp::Delete { key: "a".into() }));
        assert!(matches!(r, Applied::Write { reply: Reply::Deleted { existed: true }, .. }));
        assert_eq!(get(&s, "a"), Reply::Value(None));
    }

    #[test]
    fn snapshot_restores_map_and_sessions() {
        let mut s = KvStore::new();
        for i in 1..=50u64 {
            s.apply(&cmd(i, i % 3, i, set(&format!("k{i}"), "v")));
        }
        let bytes = s.snapshot();
        let mut r = KvStore::restore(&bytes, 50).unwrap();
        assert_eq!(r, s);
        // A retry of an applied write is still recognised after restore.
        let again = r.apply(&cmd(51, 50 % 3, 50, set("k50", "other")));
        assert!(matches!(again, Applied::Write { duplicate: true, .. }));
        assert!(KvStore::restore(&bytes, 49).is_err(), "index mismatch must be refused");
        assert!(KvStore::restore(&bytes[..bytes.len() / 2], 50).is_err(), "a cut snapshot must be refused");
    }

    #[test]
    fn a_listing_of_huge_keys_fits_in_one_frame() {
        let mut s = KvStore::new();
        let n = 2_200u64;
        for i in 1..=n {
            s.apply(&cmd(i, 1, i, set(&format!("{i:04}{}", "k".repeat(3_996)), "v")));
        }
        let reply = s.read(&ReadOp::Keys { prefix: String::new(), limit: MAX_KEYS_PER_LISTING });
        let Reply::Keys(keys) = &reply else { panic!("{reply:?}") };
        assert!(!keys.is_empty() && (keys.len() as u64) < n, "the listing must be cut short, got {}", keys.len());
        // A frame (raft-wire's 8 MiB, the same figure as MAX_COMMAND_BYTES) carries the
        // reply plus a few bytes of envelope.
        let bytes = bincode::serde::encode_to_vec(&reply, bincode::config::standard()).unwrap();
        assert!(bytes.len() + 64 < MAX_COMMAND_BYTES, "the reply must fit in one frame, got {} bytes", bytes.len());
    }

    #[test]
    fn a_snapshot_claiming_a_huge_length_is_refused() {
        // applied=1, then a map claiming 2^50 pairs.
        let mut bytes = vec![1, 253];
        bytes.extend_from_slice(&(1u64 << 50).to_le_bytes());
        assert!(KvStore::restore(&bytes, 1).is_err());
        let mut cmd = vec![1, 1, 0, 253]; // session, seq, Set, key length:
        cmd.extend_from_slice(&(1u64 << 46).to_le_bytes());
        assert!(Command::decode(&cmd).is_err());
    }

    #[test]
    fn garbage_command_is_skipped_identically() {
        let mut s = KvStore::new();
        let r = s.apply(&Entry { index: 1, term: 1, data: EntryData::Command(vec![0xff, 0xff, 0xff]) });
        assert!(matches!(r, Applied::Invalid(_)));
        assert_eq!(s.applied(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_expire_by_log_index_and_are_bounded() {
        let mut s = KvStore::new();
        s.apply(&cmd(1, 42, 1, set("a", "1")));
        assert_eq!(s.sessions(), 1);
        // Jump the applied index as if many entries had gone by (noops), then apply.
        s.applied = SESSION_EXPIRY_ENTRIES + 1;
        s.apply(&Entry { index: SESSION_EXPIRY_ENTRIES + 2, term: 1, data: EntryData::Noop });
        assert_eq!(s.sessions(), 0, "session unused for SESSION_EXPIRY_ENTRIES must be gone");
    }

    fn recomputed(s: &KvStore) -> u64 {
        s.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
    }

    #[test]
    fn state_bytes_counts_keys_and_values_and_growth_predicts_it() {
        let mut s = KvStore::new();
        assert_eq!(s.state_bytes(), 0);
        let new_key = set("key", "12345");
        assert_eq!(s.growth(&new_key), 8, "a new key counts its key and value");
        s.apply(&cmd(1, 1, 1, new_key));
        assert_eq!(s.state_bytes(), 8);
        assert_eq!(s.growth(&set("key", "1234567")), 2, "an overwrite counts new minus old");
        assert_eq!(s.growth(&set("key", "1")), 0, "a shrinking overwrite never grows");
        s.apply(&cmd(2, 1, 2, set("key", "1")));
        assert_eq!(s.state_bytes(), 4);
        let swap = |expected: Option<&str>, new: &str| WriteOp::Cas {
            key: "key".into(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            new: new.as_bytes().to_vec(),
        };
        assert_eq!(s.growth(&swap(Some("1"), "123")), 2, "a cas that would swap counts like a set");
        assert_eq!(s.growth(&swap(Some("x"), "123")), 0, "a cas that would fail adds nothing");
        assert_eq!(s.growth(&swap(None, "123")), 0, "the key exists: expecting it absent fails");
        s.apply(&cmd(3, 1, 3, swap(Some("1"), "123")));
        assert_eq!(s.state_bytes(), 6);
        assert_eq!(s.growth(&WriteOp::Delete { key: "key".into() }), 0, "deletes never grow");
        s.apply(&cmd(4, 1, 4, WriteOp::Delete { key: "key".into() }));
        assert_eq!(s.state_bytes(), 0);
        s.apply(&cmd(5, 1, 5, WriteOp::Delete { key: "gone".into() }));
        assert_eq!(s.state_bytes(), 0, "deleting an absent key changes nothing");
        // A duplicate is answered from the session, not applied: no double count.
        s.apply(&cmd(6, 1, 6, set("a", "b")));
        s.apply(&cmd(7, 1, 6, set("a", "b")));
        assert_eq!(s.state_bytes(), 2);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn op() -> impl Strategy<Value = WriteOp> {
            let key = (0u8..6).prop_map(|k| format!("k{k}"));
            let value = || proptest::collection::vec(any::<u8>(), 0..24);
            prop_oneof![
                (key.clone(), value()).prop_map(|(key, value)| WriteOp::Set { key, value }),
                key.clone().prop_map(|key| WriteOp::Delete { key }),
                (key, proptest::option::of(value()), value()).prop_map(|(key, expected, new)| WriteOp::Cas {
                    key,
                    expected,
                    new
                }),
            ]
        }

        proptest! {
            /// The running count always equals the sum over the map, after every op and
            /// after a snapshot and restore; `growth` is exactly how much an op adds.
            #[test]
            fn state_bytes_is_the_sum_over_the_map(ops in proptest::collection::vec(op(), 1..60)) {
                let mut s = KvStore::new();
                for (i, op) in ops.into_iter().enumerate() {
                    let before = s.state_bytes();
                    let growth = s.growth(&op);
                    prop_assert!(growth <= KvStore::growth_bound(&op), "{op:?}");
                    let index = i as u64 + 1;
                    s.apply(&cmd(index, 1 + index % 3, index, op));
                    prop_assert_eq!(s.state_bytes(), recomputed(&s));
                    prop_assert_eq!(s.state_bytes().saturating_sub(before), growth);
                }
                let restored = KvStore::restore(&s.snapshot(), s.applied()).unwrap();
                prop_assert_eq!(restored.state_bytes(), recomputed(&restored));
                prop_assert_eq!(restored.state_bytes(), s.state_bytes());
            }
        }
    }

    #[test]
    fn reply_window_refuses_too_old_sequence_numbers() {
        let mut s = KvStore::new();
        let n = MAX_REPLIES_PER_SESSION as u64 + 10;
        for seq in 1..=n {
            s.apply(&cmd(seq, 9, seq, set("k", "v")));
        }
        assert_eq!(s.apply(&cmd(n + 1, 9, 1, set("k", "old"))), Applied::TooOld { session: 9, seq: 1 });
        assert_eq!(get(&s, "k"), Reply::Value(Some(b"v".to_vec())));
    }
}
