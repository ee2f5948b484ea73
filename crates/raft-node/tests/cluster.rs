//! Five real nodes in one process, over real Unix sockets in a temp dir: elect, replicate,
//! survive the leader's loop being stopped, and catch a restarted node up by snapshot.

use raft_core::RoleKind;
use raft_node::{LogTarget, NodeSettings, Server};
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::*;
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{Node, Nodes, TestClient};

/// The cluster; stops every node loop on drop, also when a test fails.
struct Cluster {
    /// First, so the node loops stop before the temp dir goes.
    nodes: Nodes,
    dir: tempfile::TempDir,
    settings: BTreeMap<u64, NodeSettings>,
}

impl Cluster {
    fn new(n: u64, snapshot_entries: u64) -> Cluster {
        Cluster::new_with(n, snapshot_entries, |_| {})
    }

    /// A cluster whose settings `tweak` may change before any node starts.
    fn new_with(n: u64, snapshot_entries: u64, tweak: impl Fn(&mut NodeSettings)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let sockets: BTreeMap<u64, PathBuf> =
            (1..=n).map(|id| (id, dir.path().join(format!("node-{id}")).join("node.sock"))).collect();
        let key = raft_wire::auth::ClusterKey::generate().unwrap();
        let settings = (1..=n)
            .map(|id| {
                let node_dir = dir.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&node_dir).unwrap();
                let s = NodeSettings {
                    id,
                    sockets: sockets.clone(),
                    bootstrap: sockets.keys().copied().collect(),
                    cluster_dir: Some(dir.path().to_path_buf()),
                    log: LogTarget::File(node_dir.join("node.log")),
                    redis: None,
                    tcp: None,
                    node_dir,
                    cluster_id: 0xC0FFEE,
                    cluster_key: key.clone(),
                    allowed_uids: Vec::new(),
                    tick: Duration::from_millis(10),
                    heartbeat_ticks: 5,
                    election_ticks_min: 15,
                    election_ticks_max: 30,
                    pre_vote: true,
                    check_quorum: true,
                    fsync: false,
                    snapshot_entries,
                    snapshot_ratio: 0.0,
                    promote_lag: raft_core::PROMOTE_LAG_ENTRIES,
                    snapshot_bytes: u64::MAX,
                    quota_bytes: 0,
                    seed: id * 7919,
                    handle_signals: false,
                };
                let mut s = s;
                tweak(&mut s);
                (id, s)
            })
            .collect();
        let mut c = Cluster { nodes: Nodes::default(), dir, settings };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: u64) {
        let server = Server::open(self.settings[&id].clone()).expect("node opens");
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().expect("node runs"));
        self.nodes.insert(id, Node { stop, thread: Some(thread) });
    }

    /// Starts node `id`, outside the bootstrap configuration (its own socket added).
    fn add(&mut self, id: u64) {
        let mut s = self.settings.values().next().expect("a node").clone();
        let node_dir = self.dir.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        s.id = id;
        s.sockets.insert(id, node_dir.join("node.sock"));
        s.log = LogTarget::File(node_dir.join("node.log"));
        s.node_dir = node_dir;
        s.seed = id * 7919;
        self.settings.insert(id, s);
        self.start(id);
    }

    /// Asks the leader (following hints) for a membership change until it is answered.
    fn change(&self, change: raft_core::MembershipChange) -> Response {
        self.to_leader(
            &change.to_string(),
            || Request::Membership { change },
            |r| !matches!(r, Response::NotLeader { .. } | Response::Unavailable { .. }),
        )
    }

    fn stop(&mut self, id: u64) {
        let mut node = self.nodes.remove(&id).expect("running");
        node.stop.stop();
        node.thread.take().unwrap().join().expect("node thread ends cleanly");
    }

    fn socket(&self, id: u64) -> &Path {
        &self.settings[&id].sockets[&id]
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}/node.log"))).unwrap_or_default()
    }
}

impl TestClient for Cluster {
    fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn request(&self, id: u64, body: Request) -> Option<Response> {
        let mut s = UnixStream::connect(self.socket(id)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write_frame(&mut s, &Hello::Client).ok()?;
        write_frame(&mut s, &ClientRequest { id: 1, body }).ok()?;
        let resp: ClientResponse = read_frame(&mut s).ok()?;
        assert_eq!(resp.id, 1);
        Some(resp.body)
    }
}

#[test]
fn five_nodes_elect_replicate_survive_leader_loss_and_catch_up_by_snapshot() {
    let mut c = Cluster::new(5, 50);
    let leader = c.wait_leader();
    for i in 0..20 {
        c.set(1, i + 1, &format!("k{i}"), &format!("v{i}"));
    }
    // A linearizable read on the leader sees the last write; a follower redirects.
    assert_eq!(c.get(leader, "k19", false), Some(Response::Ok(Reply::Value(Some(b"v19".to_vec())))));
    let follower = c.nodes.keys().copied().find(|&id| id != leader).unwrap();
    assert_eq!(c.get(follower, "k19", false), Some(Response::NotLeader { leader: Some(leader) }));

    // Stop the leader's loop: the other four elect a new leader and keep taking writes.
    c.stop(leader);
    let new_leader = c.wait_leader();
    assert_ne!(new_leader, leader);
    for i in 20..200 {
        c.set(1, i + 1, &format!("k{i}"), &format!("v{i}"));
    }
    // The leader compacts past everything the stopped node had (the snapshot is written
    // by a forked child: it lands a moment later).
    c.wait_until("the leader compacts past index 25", || c.status(new_leader).is_some_and(|s| s.snapshot_index > 25));

    // Restart the old leader: it rejoins and is caught up by a snapshot.
    c.start(leader);
    let target = c.status(new_leader).unwrap().commit;
    c.wait_until("restarted node applies everything", || c.status(leader).is_some_and(|s| s.applied >= target));
    assert!(c.log(leader).contains("snapshot installed"), "log of n{leader}:\n{}", c.log(leader));
    assert_eq!(c.get(leader, "k199", true), Some(Response::Ok(Reply::Value(Some(b"v199".to_vec())))));
    assert_eq!(c.get(leader, "k0", true), Some(Response::Ok(Reply::Value(Some(b"v0".to_vec())))));
    assert!(c.log(new_leader).contains("became leader"));
}

/// Thesis chapter 4 over real sockets: a node started outside the configuration joins as
/// a learner once added, is promoted once caught up, and counts; the leader removing
/// itself steps down once that commits, and the others carry on.
#[test]
fn members_are_added_and_removed_at_run_time() {
    use raft_core::MembershipChange::*;
    let mut c = Cluster::new(3, 1000);
    let leader = c.wait_leader();
    for i in 0..30 {
        c.set(1, i + 1, &format!("k{i}"), "v");
    }
    c.add(4);
    assert_eq!(c.change(AddLearner(4)), Response::Ok(Reply::Done));
    c.wait_until("n4 promoted to voter", || {
        c.status(leader).is_some_and(|s| s.membership.voters == [1, 2, 3, 4] && s.membership.learners.is_empty())
    });
    c.wait_until("n4 has every entry", || {
        let target = c.status(leader).map_or(u64::MAX, |s| s.commit);
        c.status(4).is_some_and(|s| s.applied >= target)
    });
    assert_eq!(c.get(4, "k29", true), Some(Response::Ok(Reply::Value(Some(b"v".to_vec())))));
    // One change at a time is enforced by the leader; an invalid one is refused.
    assert!(matches!(c.change(Promote(2)), Response::Invalid { .. }));

    // The leader removes itself: it steps down once that commits, and the rest (with n4
    // now a voter) elect a new leader and take writes.
    assert_eq!(c.change(Remove(leader)), Response::Ok(Reply::Done));
    c.wait_until("the removed leader steps down", || c.status(leader).is_some_and(|s| s.role != RoleKind::Leader));
    c.stop(leader);
    let new_leader = c.wait_leader();
    assert_ne!(new_leader, leader);
    let voters = c.status(new_leader).unwrap().membership.voters;
    assert_eq!(voters, [1, 2, 3, 4].into_iter().filter(|&v| v != leader).collect::<Vec<_>>());
    c.set(2, 1, "after", "removal");
    assert!(c.log(leader).contains("removed from the configuration"), "{}", c.log(leader));
    assert!(c.log(new_leader).contains("configuration voters"), "{}", c.log(new_leader));
}

#[test]
fn a_retried_write_applies_once() {
    let c = Cluster::new(3, 1000);
    let leader = c.wait_leader();
    let cas = |expected: Option<&str>, new: &str| Request::Write {
        session: 99,
        seq: 1,
        op: WriteOp::Cas {
            key: "x".into(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            new: new.as_bytes().to_vec(),
        },
    };
    let first = c.request(leader, cas(None, "a")).unwrap();
    assert_eq!(first, Response::Ok(Reply::Cas { ok: true, current: None }));
    c.set(5, 1, "x", "b");
    // The retry of (99, 1) gets the first answer and does not swap again.
    let retry = c.request(leader, cas(None, "a")).unwrap();
    assert_eq!(retry, first);
    assert_eq!(c.get(leader, "x", false), Some(Response::Ok(Reply::Value(Some(b"b".to_vec())))));
}

#[test]
fn garbage_and_oversize_frames_close_only_that_connection() {
    use std::io::{Read, Write};
    let c = Cluster::new(3, 1000);
    let leader = c.wait_leader();
    // An oversize length prefix.
    let mut s = UnixStream::connect(c.socket(leader)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "the node must close the connection");
    // Garbage after a valid length.
    let mut s = UnixStream::connect(c.socket(leader)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]).unwrap();
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // A well-framed request whose key claims 64 TiB: refused, not allocated.
    let mut s = UnixStream::connect(c.socket(leader)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_frame(&mut s, &Hello::Client).unwrap();
    let mut body = vec![1, 0, 1, 1, 0, 253];
    body.extend_from_slice(&(1u64 << 46).to_le_bytes());
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // A peer hello with an unknown node id, and one from another cluster.
    for hello in [
        Hello::Peer { cluster_id: 0xC0FFEE, node: raft_config::MAX_NODE_ID + 1, nonce: [0; 32] },
        Hello::Peer { cluster_id: 1, node: 2, nonce: [0; 32] },
    ] {
        let mut s = UnixStream::connect(c.socket(leader)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write_frame(&mut s, &hello).unwrap();
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    }
    // Everyone else is still served.
    c.set(1, 1, "still", "here");
    assert_eq!(c.get(leader, "still", false), Some(Response::Ok(Reply::Value(Some(b"here".to_vec())))));
    let log = c.log(leader);
    assert!(log.contains("bad frame"), "{log}");
    assert!(log.contains(&format!("unknown node id {}", raft_config::MAX_NODE_ID + 1)), "{log}");
}

/// A peer hello is a challenge-response over the cluster key (raft_wire::auth): the
/// right key makes the stream a peer's, a guessed MAC or a replayed exchange is refused
/// with one log line naming the peer, and the cluster keeps serving.
#[test]
fn a_peer_must_prove_it_holds_the_cluster_key() {
    use raft_wire::auth::{random_nonce, ClusterKey, DialerHandshake, Transcript};
    use std::io::Read;
    let c = Cluster::new(3, 1000);
    let leader = c.wait_leader();
    let claim = if leader == 1 { 2 } else { 1 };
    let key = c.settings[&1].cluster_key.clone();
    // Says hello as `claim`, reads the node's challenge.
    let dial = |nonce| {
        let mut s = UnixStream::connect(c.socket(leader)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let d = DialerHandshake::new(0xC0FFEE, claim, leader, nonce);
        write_frame(&mut s, &d.hello()).unwrap();
        let challenge: PeerChallenge = read_frame(&mut s).unwrap();
        assert_eq!(challenge.node, leader);
        (s, d, challenge)
    };
    let closed = |s: &mut UnixStream| s.read(&mut [0u8; 64]).unwrap_or(0) == 0;

    // The right key: the node's challenge checks out and our proof is taken; the stream
    // stays open (a refused one is closed at once).
    let (mut good, d, challenge) = dial(random_nonce().unwrap());
    let proof = d.on_challenge(&key, &challenge).expect("the node proves the key");
    write_frame(&mut good, &proof).unwrap();
    good.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let err = good.read(&mut [0u8; 64]).expect_err("an accepted peer stream stays open and silent");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");

    // A process with another key: the node's challenge does not check out for it, and
    // the MAC it can make is refused.
    let other = ClusterKey::generate().unwrap();
    let nonce = random_nonce().unwrap();
    let (mut s, d, challenge) = dial(nonce);
    assert!(d.on_challenge(&other, &challenge).is_err(), "a wrong key cannot check the node's challenge");
    let t = Transcript {
        cluster_id: 0xC0FFEE,
        dialer: claim,
        acceptor: leader,
        dialer_nonce: nonce,
        acceptor_nonce: challenge.nonce,
    };
    write_frame(&mut s, &PeerProof { mac: other.dialer_mac(&t) }).unwrap();
    assert!(closed(&mut s), "a proof made with the wrong key is refused");

    // Replaying the good exchange (same hello, same proof) on a new connection: the
    // node's nonce is new, so the old proof is refused.
    let (mut s, _, challenge2) = dial(d_nonce(&d));
    assert_ne!(challenge2.nonce, challenge.nonce);
    write_frame(&mut s, &proof).unwrap();
    assert!(closed(&mut s), "a replayed proof is refused");

    // No proof at all: the hello is abandoned.
    let (mut s, _, _) = dial(random_nonce().unwrap());
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed(&mut s));

    c.set(1, 1, "after", "refusals");
    assert_eq!(c.get(leader, "after", false), Some(Response::Ok(Reply::Value(Some(b"refusals".to_vec())))));
    let log = c.log(leader);
    let refusals = log.lines().filter(|l| l.contains(&format!("refused peer n{claim}:"))).count();
    assert_eq!(refusals, 3, "one line per refused hello, naming the peer:\n{log}");
    assert!(log.contains("does not match the cluster key"), "{log}");
    drop(good);
}

/// A node with another key takes part in nothing: the two with the cluster's key refuse
/// the challenges it sends and it refuses theirs, so it never gets a peer stream either
/// way; they elect a leader between them and take writes.
#[test]
fn a_node_with_another_key_is_kept_out_both_ways() {
    let c = Cluster::new_with(3, 1000, |s| {
        if s.id == 3 {
            s.cluster_key = raft_wire::auth::ClusterKey::generate().unwrap();
        }
    });
    c.wait_until("nodes 1 and 2 agree on a leader", || {
        let (Some(a), Some(b)) = (c.status(1), c.status(2)) else { return false };
        a.leader.is_some() && a.leader == b.leader && a.term == b.term
    });
    c.set(1, 1, "k", "v");
    for (node, peer) in [(3, 1), (3, 2), (1, 3), (2, 3)] {
        let line = format!("refused peer n{peer}: its challenge does not match the cluster key");
        c.wait_until(&format!("n{node} to refuse n{peer}'s challenge"), || c.log(node).contains(&line));
    }
    let s3 = c.status(3).expect("node 3 still answers clients");
    assert!(s3.connected.is_empty(), "no authenticated stream from node 3: {s3:?}");
    assert_eq!(s3.leader, None, "node 3 never heard a leader: {s3:?}");
    for id in [1, 2] {
        assert!(!c.status(id).unwrap().connected.contains(&3), "n{id} has no stream to n3");
    }
}

/// The nonce a dialer handshake sent (what a replay would send again).
fn d_nonce(d: &raft_wire::auth::DialerHandshake) -> raft_wire::auth::Nonce {
    match d.hello() {
        Hello::Peer { nonce, .. } => nonce,
        Hello::Client => unreachable!("a dialer says hello as a peer"),
    }
}

#[test]
fn silent_connections_are_timed_out_and_cannot_lock_others_out() {
    use std::io::Read;
    let c = Cluster::new(3, 1000);
    let leader = c.wait_leader();
    // Fill every slot for connections that have not said hello yet, and one more.
    let mut silent: Vec<UnixStream> = (0..raft_node::MAX_UNIDENTIFIED_CONNECTIONS + 1)
        .map(|_| UnixStream::connect(c.socket(leader)).unwrap())
        .collect();
    // The node closes each of them after the hello timeout (reads see EOF).
    for s in silent.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(s.read(&mut [0u8; 8]).unwrap_or(0), 0);
    }
    // Then everyone else is served as before.
    c.set(1, 1, "after", "silence");
    assert_eq!(c.get(leader, "after", false), Some(Response::Ok(Reply::Value(Some(b"silence".to_vec())))));
    let log = c.log(leader);
    assert!(log.contains("no hello within"), "{log}");
    assert!(log.contains("have not said hello yet"), "{log}");
}
