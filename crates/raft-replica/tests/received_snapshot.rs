//! A snapshot from the leader that does not load into the state machine never replaces
//! anything: its chunks go to a temporary file in the real `raft-storage`, the replica
//! decodes it back from there (checksummed, streaming) before the core adopts it, and a
//! snapshot that fails is dropped with its file, while the follower keeps its log, its
//! state and its commit index. The leader is asked to start over.

use raft_core::{Config, Entry, EntryData, Message, MessageBody, SnapshotMeta, Term};
use raft_kv::KvStore;
use raft_replica::{Effects, Replica, ReplicaOptions, Waiter};
use raft_storage::{Storage, StorageOptions};
use raft_wire::Response;

#[derive(Default)]
struct Fx {
    sent: Vec<Message>,
    lines: Vec<String>,
}

impl Effects for Fx {
    fn send(&mut self, msg: Message) {
        self.sent.push(msg);
    }
    fn respond(&mut self, _to: Waiter, _response: Response) {}
    fn log(&mut self, _term: Term, line: std::fmt::Arguments<'_>) {
        self.lines.push(line.to_string());
    }
}

/// The chunks of `data` as the leader (n1, term 1) sends them, `size` bytes each.
fn chunks(index: u64, data: &[u8], size: usize) -> Vec<Message> {
    let meta = SnapshotMeta { index, term: 1, voters: vec![1, 2, 3], learners: vec![] };
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let end = (offset + size).min(data.len());
        let body = MessageBody::InstallSnapshot {
            meta: meta.clone(),
            offset: offset as u64,
            data: data[offset..end].to_vec(),
            done: end == data.len(),
        };
        out.push(Message { from: 1, to: 2, term: 1, body });
        if end == data.len() {
            return out;
        }
        offset = end;
    }
}

/// A genuine state machine image at `index`, with some keys.
fn image(index: u64) -> Vec<u8> {
    let mut kv = KvStore::new();
    for i in 1..=index {
        let op = raft_kv::WriteOp::Set { key: format!("key-{i:03}"), value: vec![i as u8; 40] };
        let data = EntryData::Command(raft_kv::Command { session: 9, seq: i, op }.encode());
        kv.apply(&Entry { index: i, term: 1, data });
    }
    kv.snapshot()
}

fn open(dir: &std::path::Path, config: Config, fx: &mut Fx) -> Replica<Storage> {
    let (storage, recovery) = Storage::open(dir, StorageOptions::default()).expect("open");
    Replica::recover(config, storage, recovery.restored, ReplicaOptions::default(), fx).expect("recover")
}

fn follower(dir: &std::path::Path, fx: &mut Fx) -> Replica<Storage> {
    let mut r = open(dir, Config::new(2, vec![1, 2, 3], 7), fx);
    // Three entries from the leader, two of them committed.
    let entries = (1..=3).map(|index| Entry { index, term: 1, data: EntryData::Noop }).collect();
    let append = MessageBody::Append { base_index: 0, base_term: 0, entries, commit: 2 };
    r.raft_mut().step(Message { from: 1, to: 2, term: 1, body: append }).expect("append");
    r.process_ready(fx).expect("persist");
    r
}

#[test]
fn a_snapshot_that_does_not_load_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::default();
    let mut r = follower(tmp.path(), &mut fx);
    assert_eq!((r.raft().last_index(), r.raft().commit_index(), r.kv().applied()), (3, 2, 2));
    let good = image(5);
    let mut cut = good.clone();
    cut.pop();
    let mut trailing = good.clone();
    trailing.push(0);
    // The key count claims one key more than the image holds: decoding runs off the end.
    let mut miscounted = good.clone();
    miscounted[1] += 1;
    // A key changed so that the keys are out of order: no encoder writes that.
    let mut disordered = good.clone();
    let at = disordered.windows(7).position(|w| w == b"key-002").expect("key-002 is in the image");
    disordered[at + 6] = b'9';
    let bad: [(&str, Vec<u8>, u64); 7] = [
        ("garbage", b"\xffgarbage, not a snapshot".to_vec(), 5),
        ("empty", Vec::new(), 5),
        ("cut short", cut, 5),
        ("trailing bytes", trailing, 5),
        ("a key count that lies", miscounted, 5),
        ("keys out of order", disordered, 5),
        ("image at another index", good.clone(), 6),
    ];
    for (what, data, index) in bad {
        fx.sent.clear();
        fx.lines.clear();
        for m in chunks(index, &data, 64) {
            r.raft_mut().step(m).expect("well-formed chunk");
            r.process_ready(&mut fx).unwrap_or_else(|e| panic!("{what}: the replica failed: {e}"));
        }
        assert_eq!(r.kv().applied(), 2, "{what}: the state machine changed");
        assert_eq!(r.snapshot_index(), 0, "{what}");
        assert_eq!((r.raft().last_index(), r.raft().commit_index()), (3, 2), "{what}: the log changed");
        assert_eq!(r.store().last_index(), 3, "{what}: the stored log changed");
        assert_eq!(r.store().snapshot_bytes(), 0, "{what}: a snapshot became current");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("snap")).unwrap().collect();
        assert!(leftovers.is_empty(), "{what}: files left behind: {leftovers:?}");
        let line = fx.lines.iter().find(|l| l.contains("refused")).unwrap_or_else(|| panic!("{what}: {:?}", fx.lines));
        assert!(line.starts_with(&format!("snapshot from n1 index={index} term=1 refused: does not verify")), "{line}");
        let want = MessageBody::InstallSnapshotResponse { next_offset: 0, installed: None };
        assert!(fx.sent.iter().any(|m| m.to == 1 && m.body == want), "{what}: leader not told: {:?}", fx.sent);
    }
    // The node still takes the genuine snapshot, and a restart finds it.
    for m in chunks(5, &good, 64) {
        r.raft_mut().step(m).expect("well-formed chunk");
        r.process_ready(&mut fx).expect("install");
    }
    assert_eq!(r.kv().applied(), 5);
    assert_eq!(r.snapshot_index(), 5);
    assert_eq!(r.store().load_snapshot().unwrap().unwrap().data, good);
    drop(r);
    let mut fx = Fx::default();
    let r = open(tmp.path(), Config::new(2, vec![1, 2, 3], 7), &mut fx);
    let value = r.kv().read(&raft_kv::ReadOp::Get { key: "key-005".into() });
    assert_eq!(value, raft_kv::Reply::Value(Some(vec![5; 40])));
    assert!(fx.lines.iter().any(|l| l.starts_with("state restored from the snapshot at index=5")), "{:?}", fx.lines);
}

/// The snapshot a leader sends is read from its file chunk by chunk as it leaves: the
/// bytes a follower gets are exactly the file's, and the last chunk says so.
#[test]
fn a_leader_fills_chunks_from_its_snapshot_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::default();
    let mut config = Config::new(1, vec![1, 2, 3], 7);
    config.snapshot_chunk_bytes = 100;
    config.pre_vote = false;
    let mut r = open(tmp.path(), config, &mut fx);
    r.raft_mut().campaign();
    r.process_ready(&mut fx).unwrap();
    let vote = MessageBody::VoteResponse { granted: true };
    r.raft_mut().step(Message { from: 2, to: 1, term: 1, body: vote }).unwrap();
    r.process_ready(&mut fx).unwrap();
    assert!(r.is_leader(), "{:?}", fx.lines);
    for i in 0..20u64 {
        let op = raft_kv::WriteOp::Set { key: format!("k{i}"), value: vec![7; 30] };
        r.write(Waiter { conn: 1, request_id: i }, 3, i + 1, op, &mut fx);
    }
    r.process_ready(&mut fx).unwrap();
    let last = r.raft().last_index();
    let ack =
        MessageBody::AppendResponse { success: true, match_index: last, reject_hint_index: 0, reject_hint_term: 0 };
    r.raft_mut().step(Message { from: 2, to: 1, term: 1, body: ack }).unwrap();
    r.process_ready(&mut fx).unwrap();
    assert_eq!(r.kv().applied(), last);
    r.compact(&mut fx).unwrap();
    let want = r.store().load_snapshot().unwrap().unwrap();
    assert_eq!(want.meta.index, last);
    assert!(want.data.len() > 500, "several chunks' worth");
    // n3 never answered; now it rejects the probe at base 0: the entries it needs are
    // compacted away, so it gets the snapshot.
    fx.sent.clear();
    let reject =
        MessageBody::AppendResponse { success: false, match_index: 0, reject_hint_index: 0, reject_hint_term: 0 };
    r.raft_mut().step(Message { from: 3, to: 1, term: 1, body: reject }).unwrap();
    r.process_ready(&mut fx).unwrap();
    let mut got = Vec::new();
    for _ in 0..1000 {
        let Some(m) = fx.sent.iter().find(|m| matches!(m.body, MessageBody::InstallSnapshot { .. })).cloned() else {
            panic!("no snapshot chunk sent: {:?} {:?}", fx.sent, fx.lines)
        };
        fx.sent.clear();
        let MessageBody::InstallSnapshot { offset, data, done, .. } = m.body else { unreachable!() };
        assert_eq!(offset, got.len() as u64);
        assert!(data.len() <= 100);
        got.extend_from_slice(&data);
        if done {
            break;
        }
        let next = MessageBody::InstallSnapshotResponse { next_offset: got.len() as u64, installed: None };
        r.raft_mut().step(Message { from: 3, to: 1, term: 1, body: next }).unwrap();
        r.process_ready(&mut fx).unwrap();
    }
    assert_eq!(got, want.data, "the follower gets the file's bytes");
}

/// The last chunk of one snapshot, then, in the same turn, a new leader of a higher term
/// starting another: the first is no longer wanted (the role change forgot it), its
/// bytes are never installed, and the second one goes through.
#[test]
fn a_new_leader_in_the_same_turn_as_the_last_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::default();
    let mut r = follower(tmp.path(), &mut fx);
    let a = chunks(5, &image(5), 64);
    let (last, rest) = a.split_last().unwrap();
    for m in rest {
        r.raft_mut().step(m.clone()).unwrap();
        r.process_ready(&mut fx).unwrap();
    }
    let b: Vec<Message> = chunks(6, &image(6), 64)
        .into_iter()
        .map(|mut m| {
            m.from = 3;
            m.term = 2;
            if let MessageBody::InstallSnapshot { meta, .. } = &mut m.body {
                meta.term = 2;
            }
            m
        })
        .collect();
    r.raft_mut().step(last.clone()).unwrap();
    r.raft_mut().step(b[0].clone()).unwrap();
    r.process_ready(&mut fx).expect("no panic, no storage error");
    assert_eq!(r.snapshot_index(), 0, "the first snapshot is not installed");
    for m in &b[1..] {
        r.raft_mut().step(m.clone()).unwrap();
        r.process_ready(&mut fx).unwrap();
    }
    assert_eq!(r.snapshot_index(), 6, "{:?}", fx.lines);
    assert_eq!(r.kv().applied(), 6);
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("snap")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 1, "only the installed snapshot is left: {files:?}");
}
