//! Proptest runs of the fuzz targets in `raft_kv::fuzz` (the cargo-fuzz targets in the
//! workspace's `fuzz/` call the same functions): snapshot images that are arbitrary
//! bytes, damaged genuine images, and well-formed images with arbitrary field values
//! (what a hostile leader or a damaged disk can hand `KvStore::restore`); commands that
//! are arbitrary bytes. None may panic. `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use raft_core::{Entry, EntryData};
use raft_kv::{fuzz, Command, KvStore, Reply, WriteOp};
use serde::Serialize;
use std::collections::BTreeMap;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// raft-kv's snapshot layout, with every field free.
#[derive(Clone, Debug, Serialize)]
struct Image {
    applied: u64,
    map: Vec<(String, Vec<u8>)>,
    sessions: Vec<(u64, Session)>,
}

#[derive(Clone, Debug, Serialize)]
struct Session {
    last_index: u64,
    replies: BTreeMap<u64, Reply>,
}

fn edge() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), Just(u64::MAX - 1), Just(1 << 62), 0..100u64, any::<u64>()]
}

fn image() -> impl Strategy<Value = Image> {
    let session = (edge(), prop::collection::btree_map(edge(), Just(Reply::Done), 0..4))
        .prop_map(|(last_index, replies)| Session { last_index, replies });
    (
        edge(),
        prop::collection::vec(("[a-c]{0,2}", prop::collection::vec(any::<u8>(), 0..4)), 0..4),
        prop::collection::vec((prop_oneof![0..3u64, edge()], session), 0..4),
    )
        .prop_map(|(applied, map, sessions)| Image { applied, map, sessions })
}

fn genuine() -> Vec<u8> {
    let mut kv = KvStore::new();
    for (i, session) in [1u64, 2, 1, 3].into_iter().enumerate() {
        let op = WriteOp::Set { key: format!("key{i}"), value: vec![i as u8; 3] };
        let data = EntryData::Command(Command { session, seq: i as u64, op }.encode());
        kv.apply(&Entry { index: i as u64 + 1, term: 1, data });
    }
    kv.snapshot()
}

fn snapshot_bytes() -> impl Strategy<Value = Vec<u8>> {
    let g = genuine();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        image().prop_map(|i| bincode::serde::encode_to_vec(&i, bincode::config::standard()).unwrap()),
        (any::<usize>(), any::<u8>(), any::<usize>()).prop_map(move |(at, b, cut)| {
            let mut g = g.clone();
            let n = g.len();
            g[at % n] = b;
            g.truncate(n - cut % 3);
            g
        }),
    ]
}

#[test]
fn snapshot_restore_never_panics() {
    runner(cases(5000))
        .run(&snapshot_bytes(), |b| {
            fuzz::snapshot(&b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn command_decode_never_panics() {
    let cmd = Command { session: 1, seq: 2, op: WriteOp::Cas { key: "k".into(), expected: None, new: vec![1] } };
    let valid = cmd.encode();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (any::<usize>(), any::<u8>()).prop_map(move |(at, b)| {
            let mut v = valid.clone();
            let n = v.len();
            v[at % n] = b;
            v
        }),
    ];
    runner(cases(5000))
        .run(&bytes, |b| {
            fuzz::command(&b);
            Ok(())
        })
        .unwrap();
}

/// Found by `snapshot_restore_never_panics`: an image whose one session was last used at
/// index u64::MAX restored fine, and the next applied entry overflowed the expiry sum
/// (`last + SESSION_EXPIRY_ENTRIES`), panicking the node on every restart. Now refused.
#[test]
fn regression_session_last_used_at_u64_max_is_refused() {
    // applied 0, no keys, one session (id 0, last_index u64::MAX, no replies).
    let bytes = [0, 0, 1, 0, 253, 255, 255, 255, 255, 255, 255, 255, 255, 0];
    let err = KvStore::restore(&bytes, 0).expect_err("refused");
    assert!(err.to_string().contains("session 0 last used at 18446744073709551615"), "{err}");
    fuzz::snapshot(&bytes);
}

/// Images no `snapshot` writes: each is refused with a reason instead of restoring a
/// store whose session bookkeeping is broken.
#[test]
fn regression_inconsistent_images_are_refused() {
    let s = |last_index| Session { last_index, replies: BTreeMap::new() };
    let enc = |i: &Image| bincode::serde::encode_to_vec(i, bincode::config::standard()).unwrap();
    let cases = [
        (Image { applied: 5, map: vec![], sessions: vec![(1, s(3)), (1, s(4))] }, "appears twice"),
        (Image { applied: 5, map: vec![], sessions: vec![(1, s(0))] }, "outside 1..=5"),
        (Image { applied: 5, map: vec![], sessions: vec![(1, s(6))] }, "outside 1..=5"),
        (Image { applied: u64::MAX, map: vec![], sessions: vec![] }, "beyond any log"),
        (Image { applied: 5, map: vec![("k".into(), vec![]), ("k".into(), vec![1])], sessions: vec![] }, "twice"),
    ];
    for (image, why) in cases {
        let err = KvStore::restore(&enc(&image), image.applied).expect_err("refused");
        assert!(err.to_string().contains(why), "{image:?}: {err}");
    }
    let replies = (0..200).map(|q| (q, Reply::Done)).collect();
    let image = Image { applied: 5, map: vec![], sessions: vec![(1, Session { last_index: 2, replies })] };
    assert!(KvStore::restore(&enc(&image), 5).is_err(), "more replies than the window");
}

/// With `FUZZ_SEED_DIR` set, writes a genuine snapshot and a command as seed inputs for
/// the cargo-fuzz targets `kv_snapshot` and `kv_command`.
#[test]
fn seed_corpus() {
    let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    let cmd = Command { session: 1, seq: 2, op: WriteOp::Cas { key: "k".into(), expected: None, new: vec![1] } };
    for (target, bytes) in [("kv_snapshot", genuine()), ("kv_command", cmd.encode())] {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        std::fs::write(dir.join(target).join("seed-0"), bytes).unwrap();
    }
}
