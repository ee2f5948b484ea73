//! A state larger than 1 GiB (the old whole-image decode limit, which left such a node
//! unable to restart) is snapshotted by the forked writer and restored by a restart,
//! streaming, through the node's own storage: the restart path of `raft-node` without the
//! sockets.

use raft_core::{Config, Message, Term};
use raft_kv::{ReadOp, Reply, WriteOp, MAX_VALUE_BYTES};
use raft_replica::{Effects, Replica, ReplicaOptions, Waiter};
use raft_storage::{Storage, StorageOptions};
use raft_wire::Response;

/// Values of the largest size, enough of them for an image past 1 GiB.
const VALUES: u64 = 4200;
const OLD_LIMIT: u64 = 1 << 30;

#[derive(Default)]
struct Fx {
    ok: u64,
    lines: Vec<String>,
}

impl Effects for Fx {
    fn send(&mut self, _msg: Message) {}
    fn respond(&mut self, _to: Waiter, response: Response) {
        assert!(matches!(response, Response::Ok(_)), "{response:?}");
        self.ok += 1;
    }
    fn log(&mut self, _term: Term, line: std::fmt::Arguments<'_>) {
        self.lines.push(line.to_string());
    }
}

fn value(i: u64) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; MAX_VALUE_BYTES];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn open(dir: &std::path::Path, fx: &mut Fx) -> Replica<Storage> {
    let opts = StorageOptions { fsync: false, ..StorageOptions::default() };
    let (storage, recovery) = Storage::open(dir, opts).expect("open");
    let config = Config::new(1, vec![1], 7);
    // No automatic compaction: the test takes the one snapshot itself.
    let opts = ReplicaOptions::new(u64::MAX, u64::MAX);
    Replica::recover(config, storage, recovery.restored, opts, fx).expect("recover")
}

#[test]
fn a_state_over_one_gib_snapshots_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fx::default();
    let mut r = open(tmp.path(), &mut fx);
    r.raft_mut().campaign();
    r.process_ready(&mut fx).unwrap();
    assert!(r.is_leader());
    for batch in (0..VALUES).collect::<Vec<_>>().chunks(64) {
        for &i in batch {
            let op = WriteOp::Set { key: format!("big-{i:05}"), value: value(i) };
            r.write(Waiter { conn: 1, request_id: i }, 1, i + 1, op, &mut fx);
        }
        r.process_ready(&mut fx).unwrap();
    }
    assert_eq!(fx.ok, VALUES, "every write acknowledged");
    let applied = r.kv().applied();
    r.compact(&mut fx).unwrap();
    assert_eq!(r.snapshot_index(), applied);
    let bytes = r.store().snapshot_bytes();
    assert!(bytes > OLD_LIMIT, "the image is {bytes} bytes, not past 1 GiB");
    assert!(
        fx.lines.iter().any(|l| l.starts_with(&format!("snapshot at index={applied}: {bytes} bytes"))),
        "{:?}",
        fx.lines
    );
    drop(r);

    let mut fx = Fx::default();
    let r = open(tmp.path(), &mut fx);
    assert_eq!(r.kv().applied(), applied);
    assert_eq!(r.kv().len() as u64, VALUES);
    for i in [0, 1, VALUES / 2, VALUES - 1] {
        let got = r.kv().read(&ReadOp::Get { key: format!("big-{i:05}") });
        assert!(got == Reply::Value(Some(value(i))), "value {i} did not come back");
    }
    let line = fx.lines.iter().find(|l| l.starts_with(&format!("state restored from the snapshot at index={applied}")));
    assert!(line.is_some_and(|l| l.contains(&format!("{bytes} bytes"))), "{:?}", fx.lines);
}
