//! A snapshot from the leader that does not load into the state machine never reaches
//! the store: raft-core runs the replica's [`raft_replica::snapshot_check`] before it
//! adopts the snapshot, so `Store::install_snapshot` is only ever called with bytes a
//! restarted node can load. Before, the core handed out any assembled snapshot and the
//! driver failed on it, which stopped the node.

use raft_core::{Config, Entry, EntryData, HardState, Message, MessageBody, Restored, Snapshot, SnapshotMeta, Term};
use raft_kv::KvStore;
use raft_replica::{Effects, Replica, ReplicaOptions, Store, Waiter};
use raft_storage::StorageError;
use raft_wire::Response;

/// A store in memory that remembers every snapshot it was asked to install.
#[derive(Default)]
struct MemStore {
    installed: Vec<Snapshot>,
    hard_state: HardState,
    entries: Vec<Entry>,
}

impl Store for MemStore {
    fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        if let Some(hs) = hard_state {
            self.hard_state = *hs;
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(entries);
        }
        Ok(())
    }
    fn install_snapshot(&mut self, snap: &Snapshot, hard_state: &HardState) -> Result<(), StorageError> {
        self.installed.push(snap.clone());
        self.hard_state = *hard_state;
        self.entries.clear();
        Ok(())
    }
    fn compact(&mut self, _snap: &Snapshot) -> Result<(), StorageError> {
        Ok(())
    }
}

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

fn chunk(index: u64, data: Vec<u8>) -> Message {
    let meta = SnapshotMeta { index, term: 1, voters: vec![1, 2, 3] };
    Message { from: 1, to: 2, term: 1, body: MessageBody::InstallSnapshot { meta, offset: 0, data, done: true } }
}

/// A genuine state machine image at `index`.
fn image(index: u64) -> Vec<u8> {
    let mut kv = KvStore::new();
    for i in 1..=index {
        kv.apply(&Entry { index: i, term: 1, data: EntryData::Noop });
    }
    kv.snapshot()
}

#[test]
fn a_snapshot_that_does_not_load_never_reaches_the_store() {
    let mut fx = Fx::default();
    // Config::new has no check: recover installs the replica's own.
    let config = Config::new(2, vec![1, 2, 3], 7);
    assert!(config.snapshot_check.is_none());
    let mut r = Replica::recover(config, MemStore::default(), Restored::default(), ReplicaOptions::default(), &mut fx)
        .expect("recover");
    let good = image(5);
    let mut cut = good.clone();
    cut.pop();
    let mut trailing = good.clone();
    trailing.push(0);
    let bad: [(&str, Vec<u8>, u64); 5] = [
        ("garbage", b"\xffgarbage, not a snapshot".to_vec(), 5),
        ("empty", Vec::new(), 5),
        ("cut short", cut, 5),
        ("trailing bytes", trailing, 5),
        ("image at another index", good.clone(), 6),
    ];
    for (what, data, index) in bad {
        fx.sent.clear();
        fx.lines.clear();
        r.raft_mut().step(chunk(index, data)).expect("well-formed chunk");
        r.process_ready(&mut fx).unwrap_or_else(|e| panic!("{what}: the replica failed: {e}"));
        assert!(r.store().installed.is_empty(), "{what}: reached the store");
        assert_eq!(r.kv().applied(), 0, "{what}: the state machine changed");
        assert_eq!(r.raft().status().snapshot_index, 0, "{what}");
        let line = fx.lines.iter().find(|l| l.contains("refused")).unwrap_or_else(|| panic!("{what}: {:?}", fx.lines));
        assert!(line.starts_with(&format!("snapshot from n1 index={index} term=1 refused: does not verify")), "{line}");
        let want = MessageBody::InstallSnapshotResponse { next_offset: 0, installed: None };
        assert!(fx.sent.iter().any(|m| m.to == 1 && m.body == want), "{what}: leader not told: {:?}", fx.sent);
    }
    // The node still takes the genuine snapshot.
    r.raft_mut().step(chunk(5, good.clone())).expect("well-formed chunk");
    r.process_ready(&mut fx).expect("install");
    assert_eq!(r.store().installed.len(), 1);
    assert_eq!(r.store().installed[0].data, good);
    assert_eq!(r.kv().applied(), 5);
    assert_eq!(r.snapshot_index(), 5);
}

/// A config that brings its own check keeps it.
#[test]
fn recover_keeps_a_check_the_config_brings() {
    fn refuse_all(_: &Snapshot) -> Result<(), String> {
        Err("refuse_all".into())
    }
    let mut fx = Fx::default();
    let mut config = Config::new(2, vec![1, 2, 3], 7);
    config.snapshot_check = Some(refuse_all);
    let mut r = Replica::recover(config, MemStore::default(), Restored::default(), ReplicaOptions::default(), &mut fx)
        .expect("recover");
    r.raft_mut().step(chunk(5, image(5))).expect("well-formed chunk");
    r.process_ready(&mut fx).expect("refused, not failed");
    assert!(r.store().installed.is_empty());
    assert!(fx.lines.iter().any(|l| l.contains("refuse_all")), "{:?}", fx.lines);
}
