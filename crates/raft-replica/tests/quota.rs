//! The state-size quota (`ReplicaOptions::quota_bytes`): the leader refuses, at propose
//! time, a write that would take the state (keys plus values) past the quota, with
//! `Response::Refused` and nothing proposed. Writes that do not grow the state always
//! pass, so a full cluster can be emptied; a retry of an applied write still gets its
//! answer.

use raft_core::{Config, Message, Term};
use raft_kv::{Reply, WriteOp};
use raft_replica::{Effects, Replica, ReplicaOptions, Waiter};
use raft_storage::{Storage, StorageOptions};
use raft_wire::Response;

#[derive(Default)]
struct Fx {
    responses: Vec<(u64, Response)>,
    /// The node's directory, kept as long as the test's effects.
    _dir: Option<tempfile::TempDir>,
}

impl Effects for Fx {
    fn send(&mut self, _msg: Message) {}
    fn respond(&mut self, to: Waiter, response: Response) {
        self.responses.push((to.request_id, response));
    }
    fn log(&mut self, _term: Term, _line: std::fmt::Arguments<'_>) {}
}

/// A one-node cluster with the quota, led by its node.
fn leader(quota_bytes: u64) -> (Replica<Storage>, Fx) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, recovery) =
        Storage::open(dir.path(), StorageOptions { fsync: false, ..StorageOptions::default() }).expect("open");
    let mut fx = Fx { _dir: Some(dir), ..Fx::default() };
    let opts = ReplicaOptions::new(u64::MAX, u64::MAX).with_quota(quota_bytes);
    assert_eq!(opts.quota_bytes, quota_bytes);
    let config = Config::new(1, vec![1], 7);
    let mut r = Replica::recover(config, store, recovery.restored, opts, &mut fx).expect("recover");
    r.raft_mut().campaign();
    r.process_ready(&mut fx).expect("ready");
    assert!(r.is_leader(), "a one-node cluster elects itself");
    (r, fx)
}

fn set(key: &str, len: usize) -> WriteOp {
    WriteOp::Set { key: key.into(), value: vec![b'v'; len] }
}

/// Sends one write (session 1, seq = id) without processing the core's output.
fn propose(r: &mut Replica<Storage>, fx: &mut Fx, id: u64, op: WriteOp) {
    r.write(Waiter { conn: 1, request_id: id }, 1, id, op, fx);
}

/// Sends one write, lets it commit and apply, and returns its answer.
fn write(r: &mut Replica<Storage>, fx: &mut Fx, id: u64, op: WriteOp) -> Response {
    propose(r, fx, id, op);
    r.process_ready(fx).expect("ready");
    answer(fx, id)
}

fn answer(fx: &Fx, id: u64) -> Response {
    let mut answers = fx.responses.iter().filter(|(i, _)| *i == id).map(|(_, r)| r.clone());
    let first = answers.next().unwrap_or_else(|| panic!("request {id} got no answer"));
    assert!(answers.next().is_none(), "request {id} answered twice");
    first
}

#[test]
fn a_write_past_the_quota_is_refused_and_nothing_is_proposed() {
    let (mut r, mut fx) = leader(100);
    // "k1" + 60 bytes: 62 of 100.
    assert_eq!(write(&mut r, &mut fx, 1, set("k1", 60)), Response::Ok(Reply::Done));
    assert_eq!(r.kv().state_bytes(), 62);
    let last = r.raft().last_index();
    // Another 62 would make 124.
    let refused = write(&mut r, &mut fx, 2, set("k2", 60));
    let Response::Refused { reason } = &refused else { panic!("expected Refused, got {refused:?}") };
    assert_eq!(
        reason,
        "the state would pass the quota of 100 B (100 bytes, quota_bytes in cluster.toml): it holds 62 bytes \
         and this write adds 62; delete keys, or raise quota_bytes and restart the cluster \
         (raft-supervisor down, then up)"
    );
    assert_eq!(r.raft().last_index(), last, "a refused write never reaches the log");
    assert_eq!(r.pending(), 0, "and nobody waits for it");
    assert_eq!(r.kv().state_bytes(), 62);
    // Up to the quota exactly is fine: 62 + "k2" + 36 = 100.
    assert_eq!(write(&mut r, &mut fx, 3, set("k2", 36)), Response::Ok(Reply::Done));
    assert_eq!(r.kv().state_bytes(), 100);
    // One byte more is not, however small the write.
    assert!(matches!(write(&mut r, &mut fx, 4, set("k1", 61)), Response::Refused { .. }));
    let cas = WriteOp::Cas { key: "k3".into(), expected: None, new: vec![] };
    assert!(matches!(write(&mut r, &mut fx, 5, cas), Response::Refused { .. }), "a new key adds its own bytes");
}

#[test]
fn deletes_and_shrinking_writes_pass_a_full_quota() {
    let (mut r, mut fx) = leader(100);
    assert_eq!(write(&mut r, &mut fx, 1, set("k1", 60)), Response::Ok(Reply::Done));
    assert!(matches!(write(&mut r, &mut fx, 2, set("k2", 60)), Response::Refused { .. }));
    // A delete frees room, and the refused write then passes.
    let del = WriteOp::Delete { key: "k1".into() };
    assert_eq!(write(&mut r, &mut fx, 3, del), Response::Ok(Reply::Deleted { existed: true }));
    assert_eq!(r.kv().state_bytes(), 0);
    assert_eq!(write(&mut r, &mut fx, 4, set("k2", 60)), Response::Ok(Reply::Done));
    // A cas that would fail adds nothing, so it is answered (a mismatch), not refused.
    assert_eq!(r.kv().state_bytes(), 62);
    let cas = WriteOp::Cas { key: "k2".into(), expected: Some(b"x".to_vec()), new: vec![0; 90] };
    assert!(matches!(write(&mut r, &mut fx, 5, cas), Response::Ok(Reply::Cas { ok: false, .. })));
}

/// The check sees the applied state, not the writes in flight: two writes proposed before
/// either applies can pass the quota together (the documented overshoot). Once over it,
/// writes that shrink the state still pass, and retries of applied writes still get
/// their answers; only growth is refused.
#[test]
fn over_the_quota_only_growth_is_refused() {
    let (mut r, mut fx) = leader(100);
    propose(&mut r, &mut fx, 1, set("k1", 60));
    propose(&mut r, &mut fx, 2, set("k2", 60));
    r.process_ready(&mut fx).expect("ready");
    assert_eq!((answer(&fx, 1), answer(&fx, 2)), (Response::Ok(Reply::Done), Response::Ok(Reply::Done)));
    assert_eq!(r.kv().state_bytes(), 124, "in-flight writes overshoot the quota");
    // A retry of an applied write (same session and seq) is answered from the session.
    fx.responses.clear();
    assert_eq!(write(&mut r, &mut fx, 2, set("k2", 60)), Response::Ok(Reply::Done));
    // Growing is refused, even by one byte.
    assert!(matches!(write(&mut r, &mut fx, 3, set("k1", 61)), Response::Refused { .. }));
    // Same size, and smaller, pass.
    assert_eq!(write(&mut r, &mut fx, 4, set("k1", 60)), Response::Ok(Reply::Done));
    assert_eq!(write(&mut r, &mut fx, 5, set("k1", 10)), Response::Ok(Reply::Done));
    assert_eq!(r.kv().state_bytes(), 74);
}

#[test]
fn quota_zero_is_no_quota() {
    let (mut r, mut fx) = leader(0);
    for id in 1..=20 {
        let key = format!("k{id}");
        assert_eq!(write(&mut r, &mut fx, id, set(&key, 100_000)), Response::Ok(Reply::Done));
    }
    assert!(r.kv().state_bytes() > 2_000_000);
    assert_eq!(ReplicaOptions::new(1, 2).quota_bytes, 0, "`new` keeps the quota off");
}
