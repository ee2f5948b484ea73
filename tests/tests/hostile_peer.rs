//! No peer message can crash or brick a node, end to end. A test that holds the cluster
//! key speaks as a peer (the handshake of `raft_wire::auth`) and sends, one connection
//! each, the messages a review found would panic a node or corrupt its state (issue 13).
//! After every one: the node logged one line naming the peer and the field, closed that
//! connection (a snapshot that does not verify is refused with an event and a request to
//! start over instead: it is well formed, only its content is bad), and is the same
//! process; at the end every node runs, the leader kept its
//! term, and every acknowledged write reads back.

use raft_core::{Entry, EntryData, Message, MessageBody, SnapshotMeta};
use raft_e2e::*;
use raft_wire::auth::{random_nonce, ClusterKey, DialerHandshake};
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::PeerChallenge;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Long enough for a node to answer or close, with two busy cores.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream to `node` on which the test is authenticated as peer `claim`.
fn as_peer(c: &Cluster, key: &ClusterKey, node: NodeId, claim: NodeId) -> UnixStream {
    let cluster_id = raft_config::load_file(&c.config).expect("the test's config loads").cluster_id();
    let mut s = UnixStream::connect(c.node_socket(node)).expect("connect");
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    let d = DialerHandshake::new(cluster_id, claim, node, random_nonce().expect("nonce"));
    write_frame(&mut s, &d.hello()).expect("send hello");
    let challenge: PeerChallenge = read_frame(&mut s).expect("the node's challenge");
    let proof = d.on_challenge(key, &challenge).expect("the node holds the same key");
    write_frame(&mut s, &proof).expect("send proof");
    s
}

/// Node `id`'s term and its vote in that term (its hard state, as `Request::Traffic`
/// answers for the web view).
fn term_and_vote(c: &Cluster, id: NodeId) -> (u64, Option<NodeId>) {
    let mut conn = raft_cli::conn::NodeConn::connect(id, &c.node_socket(id), ANSWER_TIMEOUT).expect("connect");
    match conn.call(raft_wire::Request::Traffic { after_seq: u64::MAX }, Instant::now() + ANSWER_TIMEOUT) {
        Ok(raft_wire::Response::Traffic(page)) => (page.term, page.vote),
        other => panic!("n{id} answered the traffic request with {other:?}"),
    }
}

fn closed(s: &mut UnixStream) -> bool {
    closed_within(s, ANSWER_TIMEOUT)
}

#[test]
fn hostile_peer_messages_are_refused_and_nothing_is_lost() {
    let c = Cluster::start(Opts::default());
    let ids = c.ids();
    let (leader, term) = c.wait_leader(&ids, LEADER_TIMEOUT);
    let follower = ids.iter().copied().find(|&i| i != leader).expect("a follower");
    let key = ClusterKey::load(&c.dir.join("cluster.key")).expect("the key loads");

    // Acknowledged writes before the attack.
    for k in 0..20 {
        let out = c.cli(&["set", &format!("before-{k}"), &format!("v{k}")]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
    }
    let commit = c.wait_converged(&ids, CONVERGE_TIMEOUT);
    let pids: Vec<u32> = c.node_pids();

    // A vote in `term` is unasked for only at a node that did not campaign in it: a node
    // that also stood in `term` and lost voted for itself, and a late vote to it is
    // legitimate (ignored, not refused). At least two followers voted for the leader.
    let (unasked, voter) = ids
        .iter()
        .copied()
        .filter(|&i| i != leader)
        .find_map(|i| {
            let (t, vote) = term_and_vote(&c, i);
            assert_eq!(t, term, "n{i} is in the leader's term");
            let sender = ids.iter().copied().find(|&j| j != i && j != leader)?;
            (vote != Some(i)).then_some((i, sender))
        })
        .expect("a follower that did not campaign in the leader's term");
    let msg = |from: NodeId, to: NodeId, term: u64, body: MessageBody| Message { from, to, term, body };
    let entry = |index: u64| Entry { index, term, data: EntryData::Noop };
    // (what, target, claimed sender, message, the field the node must name)
    let cases: Vec<(&str, NodeId, NodeId, Message, &str)> = vec![
        (
            "a heartbeat with term u64::MAX",
            follower,
            leader,
            msg(leader, follower, u64::MAX, MessageBody::Heartbeat { commit, read_seq: 0 }),
            "term",
        ),
        (
            "an append with term u64::MAX",
            follower,
            leader,
            msg(
                leader,
                follower,
                u64::MAX,
                MessageBody::Append { base_index: commit, base_term: term, entries: vec![], commit },
            ),
            "term",
        ),
        (
            "an append with base_index u64::MAX",
            follower,
            leader,
            msg(
                leader,
                follower,
                term,
                MessageBody::Append { base_index: u64::MAX, base_term: term, entries: vec![entry(0)], commit },
            ),
            "base_index",
        ),
        (
            "an append in the leader's own term from another node",
            leader,
            follower,
            msg(
                follower,
                leader,
                term,
                MessageBody::Append { base_index: commit, base_term: term, entries: vec![], commit },
            ),
            "",
        ),
        (
            "an append response with match_index u64::MAX",
            leader,
            follower,
            msg(
                follower,
                leader,
                term,
                MessageBody::AppendResponse {
                    success: true,
                    match_index: u64::MAX,
                    reject_hint_index: 0,
                    reject_hint_term: 0,
                },
            ),
            "match_index",
        ),
        (
            "a snapshot response claiming installed = u64::MAX",
            leader,
            follower,
            msg(
                follower,
                leader,
                term,
                MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(u64::MAX) },
            ),
            "installed",
        ),
        (
            "a heartbeat response confirming read round u64::MAX",
            leader,
            follower,
            msg(follower, leader, term, MessageBody::HeartbeatResponse { read_seq: u64::MAX }),
            "read_seq",
        ),
        (
            "a vote nobody asked for",
            unasked,
            voter,
            msg(voter, unasked, term, MessageBody::VoteResponse { granted: true }),
            "",
        ),
        (
            "a complete snapshot whose bytes are garbage",
            follower,
            leader,
            msg(
                leader,
                follower,
                term,
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta { index: commit + 1_000, term, voters: ids.clone(), learners: vec![] },
                    offset: 0,
                    data: b"not a state machine image".to_vec(),
                    done: true,
                },
            ),
            "",
        ),
    ];

    for (what, target, claim, m, field) in cases {
        let before = c.read_log(target).lines().count();
        let mut s = as_peer(&c, &key, target, claim);
        let snapshot = matches!(m.body, MessageBody::InstallSnapshot { .. });
        write_frame(&mut s, &m).expect("send the message");
        if !snapshot {
            assert!(closed(&mut s), "{what}: the node closes the connection");
        }
        let line = c.wait(&format!("n{target} to log the refusal of {what}"), LEADER_TIMEOUT, || {
            c.read_log(target)
                .lines()
                .skip(before)
                .find(|l| {
                    (l.contains(&format!("n{claim}")) && l.contains(field) && l.contains("invalid"))
                        || l.contains("refused")
                })
                .map(str::to_string)
        });
        eprintln!("{what}: {line}");
        assert_eq!(c.node_pids(), pids, "{what}: every node is the same process");
    }

    // Nothing was adopted: the leader leads in the same term; everything acknowledged
    // reads back; the cluster still takes writes.
    let (now_leader, now_term) = c.wait_leader(&ids, LEADER_TIMEOUT);
    assert_eq!((now_leader, now_term), (leader, term), "no hostile term or leader was adopted");
    for k in 0..20 {
        let out = c.cli(&["get", &format!("before-{k}")]);
        assert_eq!(out.stdout, format!("v{k}\n"), "{}", out.describe());
    }
    let out = c.cli(&["set", "after", "yes"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    c.wait_converged(&ids, CONVERGE_TIMEOUT);
    assert_eq!(c.node_pids(), pids, "no node restarted");
}
