//! Fuzz targets for what raft-kv decodes from outside: a snapshot image (from a leader or
//! from disk) and a command (from a log entry). Whatever the bytes, each returns an error
//! or a state machine that keeps working, never a panic. The proptests in
//! `tests/fuzz.rs` and the cargo-fuzz targets in the workspace's `fuzz/` call these.

use crate::*;

/// `data` as a snapshot image: restored at the index the image claims (and at another);
/// a store that restores must snapshot to bytes that restore again to the same store,
/// and must go on applying entries (a new and an old session, a duplicate) without
/// panicking.
pub fn snapshot(data: &[u8]) {
    let claimed = read_item::<(Index,), MAX_SCALAR_BYTES>(&mut &data[..]).map_or(0, |t| t.0);
    let _ = KvStore::restore(data, claimed.wrapping_add(1));
    let Ok(mut kv) = KvStore::restore(data, claimed) else { return };
    let bytes = kv.snapshot();
    let again = KvStore::restore(&bytes, claimed).expect("a snapshot we took restores");
    assert_eq!(again, kv, "snapshot -> restore changed the store");
    let sessions: Vec<u64> = kv.sessions.keys().copied().take(3).chain([u64::MAX, 0]).collect();
    for (k, session) in sessions.into_iter().enumerate() {
        let op = WriteOp::Set { key: "k".into(), value: vec![k as u8] };
        let data = EntryData::Command(Command { session, seq: k as u64, op }.encode());
        let entry = Entry { index: kv.applied() + 1, term: 1, data };
        kv.apply(&entry);
        let dup = Entry { index: kv.applied() + 1, ..entry };
        kv.apply(&dup);
    }
}

/// `data` as a log entry's command, decoded and applied to a store.
pub fn command(data: &[u8]) {
    let _ = Command::decode(data);
    let mut kv = KvStore::new();
    kv.apply(&Entry { index: 1, term: 1, data: EntryData::Command(data.to_vec()) });
}
