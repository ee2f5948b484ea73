//! What the in-process cluster tests (`cluster.rs` over Unix sockets, `tls.rs` over TCP
//! with mutual TLS) share: the running node loops, stopped and joined on drop also when a
//! test fails, and the client side of a test (status, one agreed leader, writes that
//! follow leader hints, waits with a deadline) over whatever stream the test dials.

use raft_core::RoleKind;
use raft_node::StopHandle;
use raft_wire::*;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any wait of these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two passes of a wait with a deadline: each pass dials every node (with
/// TLS, a handshake each), so spinning would take a core from the nodes it waits for. A
/// poll interval, not a wait for something to happen.
pub const POLL_PAUSE: Duration = Duration::from_millis(20);

/// One node's event loop, run on a thread of the test.
pub struct Node {
    pub stop: StopHandle,
    pub thread: Option<JoinHandle<()>>,
}

/// The running nodes by id. Dropping stops every loop first, then joins them, so a
/// failed test leaves no thread behind (declare it before the temp dir it uses).
#[derive(Default)]
pub struct Nodes(BTreeMap<u64, Node>);

impl Deref for Nodes {
    type Target = BTreeMap<u64, Node>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Nodes {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in self.0.values_mut() {
            node.stop.stop();
        }
        for node in self.0.values_mut() {
            if let Some(t) = node.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A test's client of its cluster: `running` and `request` are the transport's; the rest
/// is the same over every transport.
pub trait TestClient {
    /// Ids of the nodes running now, ascending.
    fn running(&self) -> Vec<u64>;
    /// One request to node `id` on a fresh connection; `None` if it cannot be reached.
    fn request(&self, id: u64, body: Request) -> Option<Response>;

    fn status(&self, id: u64) -> Option<NodeStatus> {
        match self.request(id, Request::Status)? {
            Response::Status(s) => Some(s),
            other => panic!("status answered {other:?}"),
        }
    }

    /// Waits until the running nodes agree on one leader; returns it.
    fn wait_leader(&self) -> u64 {
        poll("the running nodes to agree on one leader", || {
            let running = self.running();
            let statuses: Vec<NodeStatus> = running.iter().filter_map(|&id| self.status(id)).collect();
            let leaders: Vec<&NodeStatus> = statuses.iter().filter(|s| s.role == RoleKind::Leader).collect();
            let [l] = leaders[..] else { return None };
            let agreed =
                statuses.len() == running.len() && statuses.iter().all(|s| s.leader == Some(l.id) && s.term == l.term);
            agreed.then_some(l.id)
        })
    }

    /// Sends `body` to whichever node leads, following hints, until `done` accepts an
    /// answer; a retried write keeps its (session, seq), so it applies once.
    fn to_leader(&self, what: &str, body: impl Fn() -> Request, done: impl Fn(&Response) -> bool) -> Response {
        let mut target = self.running()[0];
        poll(what, || {
            match self.request(target, body()) {
                Some(r) if done(&r) => return Some(r),
                Some(Response::NotLeader { leader: Some(l) }) if self.running().contains(&l) => target = l,
                _ => target = self.next_node(target),
            }
            None
        })
    }

    /// Writes through whichever node leads.
    fn set(&self, session: u64, seq: u64, key: &str, value: &str) {
        let op = || WriteOp::Set { key: key.into(), value: value.as_bytes().to_vec() };
        self.to_leader(
            &format!("write {key}"),
            || Request::Write { session, seq, op: op() },
            |r| *r == Response::Ok(Reply::Done),
        );
    }

    /// The running node after `after`, wrapping around.
    fn next_node(&self, after: u64) -> u64 {
        let running = self.running();
        running.iter().copied().find(|&id| id > after).unwrap_or(running[0])
    }

    fn get(&self, id: u64, key: &str, stale: bool) -> Option<Response> {
        self.request(id, Request::Read { op: ReadOp::Get { key: key.into() }, stale })
    }

    fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        poll(what, || cond().then_some(()))
    }
}

/// Calls `f` until it returns `Some`, at most [`DEADLINE`] long, and returns that; a
/// failure names `what`. The one wait of these tests: a condition with a deadline, paced
/// by [`POLL_PAUSE`] so the polling does not take a core from the nodes it waits for.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for: {what}");
        std::thread::sleep(POLL_PAUSE);
    }
}
