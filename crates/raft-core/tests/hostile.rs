//! The trust boundary: one well-formed message from a peer must never panic a node, push
//! its term where `term + 1` overflows, or make it believe what the sender cannot know.
//! Each test sends one hostile message to a node in the role it targets and checks that
//! `step` refuses it with [`StepError::Invalid`] naming the field, that nothing changed
//! (status, hard state, and nothing queued to send or persist), and that the cluster
//! still elects and commits afterwards. The last tests check that the ordinary oddities
//! of a real network (stale, duplicate and late messages) are still accepted.

mod common;
use common::*;
use raft_core::*;

fn msg(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message { from, to, term, body }
}

fn heartbeat() -> MessageBody {
    MessageBody::Heartbeat { commit: 0, read_seq: 0 }
}

fn empty_append(base_index: Index, base_term: Term) -> MessageBody {
    MessageBody::Append { base_index, base_term, entries: vec![], commit: 0 }
}

fn ack(match_index: Index) -> MessageBody {
    MessageBody::AppendResponse { success: true, match_index, reject_hint_index: 0, reject_hint_term: 0 }
}

/// Three nodes, n1 leader of term 1 with one put committed everywhere.
fn cluster() -> Cluster {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    c.put(1, "a", "1").unwrap();
    c.stabilize();
    c
}

/// `m` is refused with `Invalid` naming `field`, and node `m.to` is exactly as before:
/// same status and hard state, and its next Ready has nothing to send, persist or say.
#[track_caller]
fn refused(c: &mut Cluster, m: Message, field: &str) {
    let to = m.to;
    c.process_all();
    assert!(c.network.is_empty() || c.network.iter().all(|q| q.to != to), "test setup: deliver first");
    let before = (c.node(to).status(), c.node(to).hard_state());
    let shown = m.to_string();
    match c.node_mut(to).step(m) {
        Err(StepError::Invalid { field: f, reason, .. }) => {
            assert_eq!(f, field, "{shown} refused for {f} ({reason}), expected {field}")
        }
        other => panic!("{shown}: expected Invalid {{ field: {field} }}, got {other:?}"),
    }
    assert_eq!((c.node(to).status(), c.node(to).hard_state()), before, "{shown} changed the node");
    let rd = c.node_mut(to).ready();
    assert!(
        rd.messages.is_empty() && rd.persisted_messages.is_empty() && rd.events.is_empty(),
        "{shown} made the node act: {rd:?}"
    );
    assert!(rd.hard_state.is_none() && rd.entries.is_empty() && rd.soft_state.is_none(), "{shown}: {rd:?}");
}

/// The cluster still elects a new leader (the old one cut off until another wins) and
/// commits a put on every node.
#[track_caller]
fn still_works(c: &mut Cluster) {
    c.stabilize();
    let old = c.leader();
    if let Some(old) = old {
        c.partition(&[old]);
    }
    let mut new = None;
    for _ in 0..300 {
        c.tick_all_stabilize(1);
        new = c.ids.iter().copied().find(|&id| Some(id) != old && c.node(id).role() == RoleKind::Leader);
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("a new leader is elected");
    c.heal();
    c.tick_all_stabilize(40);
    let leader = c.leader().unwrap_or(new);
    let index = c.put(leader, "still", "works").expect("the leader takes a put");
    c.tick_all_stabilize(5);
    for id in c.ids.clone() {
        assert!(c.node(id).commit_index() >= index, "n{id} committed the put at {index}");
    }
    c.assert_logs_match();
}

// ------------------------------------------------------------------ terms

/// A heartbeat or append with term u64::MAX used to be adopted and persisted; the next
/// `term + 1` (PreVote and Election) then overflowed on every node, at every restart.
#[test]
fn heartbeat_or_append_with_term_u64_max_is_refused() {
    let mut c = cluster();
    refused(&mut c, msg(1, 2, u64::MAX, heartbeat()), "term");
    refused(&mut c, msg(1, 2, u64::MAX, empty_append(0, 0)), "term");
    refused(&mut c, msg(3, 2, u64::MAX - 1, heartbeat()), "term");
    // Below the cap, but far beyond any real jump.
    refused(&mut c, msg(1, 2, MAX_TERM, heartbeat()), "term");
    refused(&mut c, msg(3, 1, 2 + MAX_TERM_JUMP, ack(0)), "term");
    still_works(&mut c);
}

/// The jump limit itself: exactly MAX_TERM_JUMP ahead is still a term a node adopts (a
/// long-partitioned node without PreVote gets there by itself), one more is refused.
#[test]
fn a_term_jump_up_to_the_limit_is_adopted() {
    let mut c = cluster();
    refused(&mut c, msg(3, 2, 1 + MAX_TERM_JUMP + 1, heartbeat()), "term");
    let far = 1 + MAX_TERM_JUMP;
    c.node_mut(2).step(msg(3, 2, far, MessageBody::VoteResponse { granted: false })).unwrap();
    assert_eq!(c.node(2).term(), far);
    // A node that adopted a big (allowed) jump brings the others along when it rejoins:
    // they learn its term from its answers, each within the limit.
    let mut d = cluster();
    let near = MAX_TERM_JUMP - 100;
    d.node_mut(2).step(msg(3, 2, near, MessageBody::VoteResponse { granted: false })).unwrap();
    still_works(&mut d);
    assert!(d.node(1).term() >= near);
}

/// `term + 1` at a campaign is checked: a node cannot be restored above MAX_TERM (a
/// term a hostile peer got persisted before the fix is a clear error, not a crash loop),
/// and a node at MAX_TERM still campaigns, in both arms, without overflow.
#[test]
fn campaigns_cannot_overflow_the_term() {
    let restored = |term| Restored { hard_state: HardState { term, vote: None, commit: 0 }, ..Default::default() };
    let err = RawNode::new(Config::new(1, vec![1, 2, 3], 7), restored(u64::MAX)).err().expect("refused");
    assert!(err.0.contains("MAX_TERM"), "{err:?}");
    for pre_vote in [true, false] {
        let mut cfg = Config::new(1, vec![1, 2, 3], 7);
        cfg.pre_vote = pre_vote;
        let mut n = RawNode::new(cfg, restored(MAX_TERM)).unwrap();
        n.campaign();
        let rd = n.ready();
        let asked: Vec<Term> = rd.messages.iter().chain(&rd.persisted_messages).map(|m| m.term).collect();
        assert_eq!(asked, vec![MAX_TERM + 1; 2], "pre_vote={pre_vote}");
        for _ in 0..200 {
            n.tick();
        }
        let _ = n.ready();
    }
}

// ------------------------------------------------------------------ indexes

/// An AppendResponse with match_index u64::MAX overflowed in `on_ack`
/// (`match_index + 1`) and, as a rejection, in the probe path (`rejected_base + 1`);
/// any match above the leader's last index would let it count entries that do not exist.
#[test]
fn append_response_beyond_the_leaders_log_is_refused() {
    let mut c = cluster();
    let last = c.node(1).last_index();
    refused(&mut c, msg(2, 1, 1, ack(u64::MAX)), "match_index");
    refused(&mut c, msg(2, 1, 1, ack(last + 1)), "match_index");
    let reject = |base, hint_index, hint_term| MessageBody::AppendResponse {
        success: false,
        match_index: base,
        reject_hint_index: hint_index,
        reject_hint_term: hint_term,
    };
    refused(&mut c, msg(3, 1, 1, reject(u64::MAX, 0, 0)), "match_index");
    refused(&mut c, msg(3, 1, 1, reject(last + 1, 0, 0)), "match_index");
    refused(&mut c, msg(3, 1, 1, reject(last, u64::MAX, 0)), "reject_hint_index");
    refused(&mut c, msg(3, 1, 1, reject(last, last, 2)), "reject_hint_term");
    still_works(&mut c);
}

/// An Append with base_index u64::MAX overflowed in the append path (`base_index + 1 +
/// k`, `base_index + entries.len()`); a base plus entries past MAX_INDEX is refused too.
#[test]
fn append_with_base_index_u64_max_is_refused() {
    let mut c = cluster();
    let entry = |index| Entry { index, term: 1, data: EntryData::Noop };
    let append = |base_index, entries| MessageBody::Append { base_index, base_term: 1, entries, commit: 0 };
    refused(&mut c, msg(1, 2, 1, append(u64::MAX, vec![])), "base_index");
    refused(&mut c, msg(1, 2, 1, append(u64::MAX, vec![entry(0)])), "base_index");
    refused(&mut c, msg(1, 2, 1, append(MAX_INDEX, vec![entry(MAX_INDEX + 1)])), "entries");
    let commit_max = MessageBody::Append { base_index: 2, base_term: 1, entries: vec![], commit: u64::MAX };
    refused(&mut c, msg(1, 2, 1, commit_max), "commit");
    still_works(&mut c);
}

/// InstallSnapshotResponse with installed = Some(u64::MAX) overflowed in `on_ack`; any
/// installed index above what the leader has would let it commit what nobody stores.
#[test]
fn install_snapshot_response_beyond_the_leaders_log_is_refused() {
    let mut c = cluster();
    let last = c.node(1).last_index();
    let installed = |i| MessageBody::InstallSnapshotResponse { next_offset: 0, installed: Some(i) };
    refused(&mut c, msg(2, 1, 1, installed(u64::MAX)), "installed");
    refused(&mut c, msg(2, 1, 1, installed(last + 1)), "installed");
    still_works(&mut c);
}

// ------------------------------------------------------------------ who may say what

/// An Append (or heartbeat, or snapshot) in the leader's own term from another node hit
/// the "two leaders in one term" assert; a follower that knows its term's leader used to
/// switch to any other claimant silently.
#[test]
fn a_second_leader_in_a_term_is_refused() {
    let mut c = cluster();
    refused(&mut c, msg(2, 1, 1, empty_append(0, 0)), "term");
    refused(&mut c, msg(3, 1, 1, heartbeat()), "term");
    let meta = SnapshotMeta { index: 5, term: 1, voters: vec![1, 2, 3], learners: vec![] };
    let snap = MessageBody::InstallSnapshot { meta, offset: 0, data: vec![], done: true };
    refused(&mut c, msg(2, 1, 1, snap.clone()), "term");
    refused(&mut c, msg(2, 3, 1, empty_append(0, 0)), "term");
    refused(&mut c, msg(2, 3, 1, snap), "term");
    // Even from the leader, a voter list no cluster has (its metadata would not fit a
    // snapshot file's header: the store asserted on it).
    let meta = SnapshotMeta { index: 5, term: 1, voters: (1..=5000).collect(), learners: vec![] };
    let huge = MessageBody::InstallSnapshot { meta, offset: 0, data: vec![1], done: false };
    refused(&mut c, msg(1, 2, 1, huge), "meta.voters");
    // Term 0 has no leader and no candidate at all.
    let mut fresh = Cluster::new(3, |_| {});
    refused(&mut fresh, msg(2, 1, 0, heartbeat()), "term");
    let vote = MessageBody::Vote { last_index: 0, last_term: 0, transfer: false };
    refused(&mut fresh, msg(2, 1, 0, vote), "term");
    still_works(&mut c);
}

/// A VoteResponse for a term in which the node never asked for votes (it did not
/// campaign: its vote went to another node, or to nobody) is forged.
#[test]
fn a_vote_response_nobody_asked_for_is_refused() {
    let mut c = cluster();
    // n2 voted for n1 in term 1.
    assert_eq!(c.node(2).hard_state().vote, Some(1));
    refused(&mut c, msg(3, 2, 1, MessageBody::VoteResponse { granted: true }), "term");
    // n3 follows n1 in term 1 too; a forged grant from n2 changes nothing there either.
    refused(&mut c, msg(2, 3, 1, MessageBody::VoteResponse { granted: true }), "term");
    // A pre-candidate has not voted for itself in its term: no vote was asked yet.
    let mut p = Cluster::new(3, |_| {});
    p.node_mut(2).campaign();
    p.process_all();
    p.network.clear();
    assert_eq!(p.node(2).role(), RoleKind::PreCandidate);
    refused(&mut p, msg(3, 2, 0, MessageBody::VoteResponse { granted: true }), "term");
    assert_eq!(p.node(2).role(), RoleKind::PreCandidate);
    still_works(&mut c);
}

/// A HeartbeatResponse with read_seq u64::MAX would confirm every future ReadIndex round
/// at once: a read could then be served by a deposed leader (§6.4).
#[test]
fn heartbeat_response_for_a_round_never_sent_is_refused() {
    let mut c = cluster();
    refused(&mut c, msg(2, 1, 1, MessageBody::HeartbeatResponse { read_seq: u64::MAX }), "read_seq");
    refused(&mut c, msg(3, 1, 1, MessageBody::HeartbeatResponse { read_seq: 1 }), "read_seq");
    // The refused answers confirmed nothing: a read on a leader cut off from everyone
    // stays unconfirmed, and is served once the round really reaches a majority.
    c.partition(&[1]);
    c.node_mut(1).read_index(7).unwrap();
    c.stabilize();
    assert!(c.nodes[&1].reads.is_empty(), "a cut-off leader confirmed a read");
    c.heal();
    c.tick_all_stabilize(5);
    assert_eq!(c.nodes[&1].reads.iter().map(|r| r.id).collect::<Vec<_>>(), vec![7]);
    still_works(&mut c);
}

/// A message for another node, from node 0, or claiming to be from the node itself. A
/// node it does not know is not refused for that alone (it may be a member of a
/// configuration not received yet), but claiming to lead a term whose leader is known is.
#[test]
fn wrong_addresses_are_refused() {
    let mut c = cluster();
    let before = c.node(2).status();
    match c.node_mut(2).step(msg(1, 3, 1, heartbeat())) {
        Err(StepError::Invalid { field: "to", from: 1, .. }) => {}
        other => panic!("expected Invalid {{ field: to }}, got {other:?}"),
    }
    match c.node_mut(2).step(msg(9, 2, 1, heartbeat())) {
        Err(StepError::Invalid { field: "term", from: 9, .. }) => {}
        other => panic!("a stranger claiming n1's term: expected Invalid {{ field: term }}, got {other:?}"),
    }
    assert_eq!(c.node_mut(2).step(msg(2, 2, 1, heartbeat())), Err(StepError::UnknownPeer(2)));
    assert_eq!(c.node_mut(2).step(msg(0, 2, 1, heartbeat())), Err(StepError::UnknownPeer(0)));
    assert_eq!(c.node(2).status(), before);
    still_works(&mut c);
}

// ------------------------------------------------------------------ what stays accepted

/// Ordinary network oddities are not hostile: a stale response from an older term, a
/// duplicate AppendResponse, a heartbeat answer for an old round, late votes at the new
/// leader, a follower far behind.
#[test]
fn stale_duplicate_and_late_messages_are_still_accepted() {
    let mut c = cluster();
    let last = c.node(1).last_index();
    // Duplicates of what n2 already said, and an answer to round 0.
    c.node_mut(1).step(msg(2, 1, 1, ack(last))).unwrap();
    c.node_mut(1).step(msg(2, 1, 1, ack(last))).unwrap();
    c.node_mut(1).step(msg(2, 1, 1, ack(1))).unwrap();
    c.node_mut(1).step(msg(2, 1, 1, MessageBody::HeartbeatResponse { read_seq: 0 })).unwrap();
    // A late vote for the leader's own election.
    c.node_mut(1).step(msg(3, 1, 1, MessageBody::VoteResponse { granted: true })).unwrap();
    c.stabilize();
    // A new leader in term 2 gets answers from term 1, with indexes it may not have.
    c.partition(&[1]);
    c.tick_all_stabilize(80);
    c.heal();
    c.stabilize();
    let leader = c.leader().expect("a leader");
    let term = c.node(leader).term();
    assert!(term > 1);
    let other = if leader == 2 { 3 } else { 2 };
    c.node_mut(leader).step(msg(other, leader, 1, ack(u64::MAX / 8))).unwrap();
    let installed = MessageBody::InstallSnapshotResponse { next_offset: 99, installed: Some(u64::MAX / 8) };
    c.node_mut(leader).step(msg(other, leader, 1, installed)).unwrap();
    c.node_mut(leader).step(msg(other, leader, 1, MessageBody::HeartbeatResponse { read_seq: u64::MAX })).unwrap();
    c.node_mut(leader).step(msg(other, leader, 1, MessageBody::VoteResponse { granted: true })).unwrap();
    // A stale leader's heartbeat is answered with our term, not refused.
    c.node_mut(other).step(msg(1, other, 1, heartbeat())).unwrap();
    c.stabilize();
    // A follower far behind catches up from the leader's log.
    c.crash(other);
    for i in 0..50 {
        c.put(leader, "k", &i.to_string()).unwrap();
        c.stabilize();
    }
    c.restart(other);
    c.tick_all_stabilize(10);
    assert_eq!(c.node(other).commit_index(), c.node(leader).commit_index());
    still_works(&mut c);
}

// ------------------------------------------------------------------ snapshots and bounds

fn chunk(index: Index, term: Term, offset: u64, data: &[u8], done: bool) -> MessageBody {
    let meta = SnapshotMeta { index, term, voters: vec![1, 2, 3], learners: vec![] };
    MessageBody::InstallSnapshot { meta, offset, data: data.to_vec(), done }
}

/// The one message a follower sends after dropping a snapshot: "start over from 0".
#[track_caller]
fn asked_to_start_over(rd: &Ready, to: NodeId) {
    let want = MessageBody::InstallSnapshotResponse { next_offset: 0, installed: None };
    assert!(rd.persisted_messages.is_empty(), "{rd:?}");
    assert_eq!(rd.messages.len(), 1, "{rd:?}");
    assert_eq!((rd.messages[0].to, &rd.messages[0].body), (to, &want), "{rd:?}");
}

/// What a node holds, on its disk and in memory: a refused snapshot changes none of it.
fn held(c: &Cluster, id: NodeId) -> impl PartialEq + std::fmt::Debug {
    let n = &c.nodes[&id];
    let d = n.disk();
    let log: Vec<Entry> = c.node(id).log_entries().cloned().collect();
    (
        c.node(id).status(),
        c.node(id).hard_state(),
        log,
        (d.hard_state, d.snapshot.clone(), d.entries.clone()),
        n.kv.clone(),
    )
}

/// Steps `body` (from the leader n1, in term 1) into `to` and runs `to`'s driver: the
/// replica stores the chunk and, for a complete snapshot, verifies it. Returns the
/// events and the messages of that turn.
fn step_and_process(c: &mut Cluster, to: NodeId, body: MessageBody) -> (Vec<Event>, Vec<Message>) {
    c.network.retain(|m| m.from != to);
    let seen = c.nodes[&to].events.len();
    c.node_mut(to).step(msg(1, to, 1, body)).expect("a well-formed chunk is stepped");
    c.process(to);
    let events = c.nodes[&to].events[seen..].to_vec();
    let sent = c.network.iter().filter(|m| m.from == to).cloned().collect();
    (events, sent)
}

/// The node refused snapshot `index@1` from n1 because it does not verify, and asked
/// n1 to start over.
#[track_caller]
fn refused_as_unverified(events: &[Event], sent: &[Message], index: Index) {
    match events {
        [Event::SnapshotRefused { from: 1, index: i, term: 1, reason }] if *i == index => {
            assert!(reason.contains("does not verify"), "{reason}");
            let line = events[0].to_string();
            let want = format!("snapshot from n1 index={index} term=1 refused: does not verify");
            assert!(line.starts_with(&want), "{line}");
        }
        other => panic!("expected one SnapshotRefused event, got {other:?}"),
    }
    let want = MessageBody::InstallSnapshotResponse { next_offset: 0, installed: None };
    let sent: Vec<(NodeId, &MessageBody)> = sent.iter().map(|m| (m.to, &m.body)).collect();
    assert_eq!(sent, vec![(1, &want)], "exactly one answer: start over");
}

/// An InstallSnapshot chunk with `done = true` and garbage data used to be adopted: the
/// core replaced its log and handed it out for the driver to persist, which could not
/// load it. Now the driver (the shipped replica) decodes it as raft-kv before anything
/// changes: the snapshot is dropped with an event naming the leader, the leader is asked
/// to start over, and the node still works.
#[test]
fn a_snapshot_that_does_not_verify_is_refused_and_changes_nothing() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    c.put(1, "a", "1").unwrap();
    c.stabilize();
    let before = held(&c, 2);
    let garbage = chunk(50, 1, 0, b"\xff\x00 not a k=v snapshot", true);
    let (events, sent) = step_and_process(&mut c, 2, garbage);
    refused_as_unverified(&events, &sent, 50);
    assert_eq!(held(&c, 2), before, "the garbage snapshot changed the node");
    assert!(c.nodes[&2].disk().incoming.is_none(), "the refused snapshot is discarded");
    still_works(&mut c);
}

/// A genuine raft-kv image damaged in transit (a byte flipped in the middle so that it
/// does not decode, or cut short) and delivered complete is refused by the replica's
/// verification: an event says why, the follower's log entries, commit index and state
/// machine stay as they were, and the leader is asked to start over. The genuine
/// snapshot, sent by the leader afterwards, installs.
#[test]
fn a_corrupted_snapshot_is_refused_and_a_genuine_one_installs_after() {
    let mut c = Cluster::new(3, |cfg| cfg.snapshot_chunk_bytes = 16);
    c.campaign(1);
    for i in 0..3 {
        c.put(1, &format!("early{i}"), "v").unwrap();
        c.stabilize();
    }
    // n3 holds a log and a commit index, then falls behind a compacted leader.
    c.partition(&[3]);
    for i in 0..10 {
        c.put(1, &format!("k{i}"), &i.to_string()).unwrap();
        c.stabilize();
    }
    let index = c.compact(1);
    let genuine = c.nodes[&1].disk().snapshot.clone().expect("n1 compacted");
    assert_eq!(genuine.meta.index, index);
    assert!(raft_kv::KvStore::restore(&genuine.data, index).is_ok(), "test setup: the image loads");
    let mid = genuine.data.len() / 2;
    let flipped = (mid..genuine.data.len())
        .chain(0..mid)
        .map(|i| {
            let mut d = genuine.data.clone();
            d[i] ^= 0xff;
            d
        })
        .find(|d| raft_kv::KvStore::restore(d, index).is_err())
        .expect("some flipped byte breaks the image");
    let cut = genuine.data[..genuine.data.len() - 3].to_vec();
    assert!(raft_kv::KvStore::restore(&cut, index).is_err(), "test setup: a cut image does not load");
    assert!(c.node(3).commit_index() >= 4 && c.node(3).last_index() < index, "test setup: n3 lags");
    for damaged in [flipped, cut] {
        let before = held(&c, 3);
        let commit = c.node(3).commit_index();
        let entries: Vec<Entry> = c.node(3).log_entries().cloned().collect();
        let mut events = Vec::new();
        let mut sent = Vec::new();
        let pieces: Vec<&[u8]> = damaged.chunks(16).collect();
        for (k, piece) in pieces.iter().enumerate() {
            let done = k + 1 == pieces.len();
            let body = MessageBody::InstallSnapshot {
                meta: genuine.meta.clone(),
                offset: 16 * k as u64,
                data: piece.to_vec(),
                done,
            };
            (events, sent) = step_and_process(&mut c, 3, body);
            if !done {
                assert!(events.is_empty(), "{events:?}");
            }
        }
        refused_as_unverified(&events, &sent, index);
        assert_eq!(c.node(3).commit_index(), commit, "the commit index is unchanged");
        assert_eq!(c.node(3).log_entries().cloned().collect::<Vec<_>>(), entries, "the log is unchanged");
        assert_eq!(held(&c, 3), before, "the damaged snapshot changed the node");
        assert!(c.nodes[&3].disk().snapshot.is_none());
    }
    // The leader's own transfer, of the genuine bytes, goes through.
    c.network.retain(|m| m.from != 3);
    c.heal();
    c.tick_all_stabilize(20);
    assert_eq!(c.node(3).status().snapshot_index, index, "n3 installed the genuine snapshot");
    assert_eq!(c.nodes[&3].disk().snapshot.as_ref(), Some(&genuine));
    assert_eq!(c.node(3).commit_index(), c.node(1).commit_index());
    assert_eq!(c.nodes[&3].kv, c.nodes[&1].kv);
}

/// Verification does not get in the way of a genuine snapshot: a follower far behind a
/// compacted leader still catches up through InstallSnapshot. (The harness runs the
/// shipped driver, whose replica decodes every received snapshot as raft-kv: the real
/// check.)
#[test]
fn a_snapshot_that_verifies_is_installed() {
    let mut c = Cluster::new(3, |cfg| {
        cfg.snapshot_chunk_bytes = 16;
    });
    c.campaign(1);
    c.crash(3);
    for i in 0..20 {
        c.put(1, &format!("k{i}"), &i.to_string()).unwrap();
        c.stabilize();
    }
    let index = c.compact(1);
    c.restart(3);
    c.tick_all_stabilize(20);
    assert_eq!(c.node(3).status().snapshot_index, index, "n3 installed the leader's snapshot");
    assert_eq!(c.node(3).commit_index(), c.node(1).commit_index());
    assert_eq!(c.nodes[&3].kv, c.nodes[&1].kv);
}

/// A half-received snapshot is bounded in bytes: the chunk that would take it past
/// `max_incoming_snapshot_bytes` drops it (an event says so) and the leader is asked to
/// start over; a chunk that continues the dropped snapshot is not accepted.
#[test]
fn a_half_received_snapshot_past_the_byte_bound_is_dropped() {
    let mut c = Cluster::new(3, |cfg| cfg.max_incoming_snapshot_bytes = 10);
    c.campaign(1);
    c.stabilize();
    let before = (c.node(2).status(), c.node(2).hard_state());
    c.node_mut(2).step(msg(1, 2, 1, chunk(50, 1, 0, b"a=1\nb=2\n", false))).unwrap();
    let rd = c.node_mut(2).ready();
    assert!(rd.events.is_empty(), "{rd:?}");
    let meta = SnapshotMeta { index: 50, term: 1, voters: vec![1, 2, 3], learners: vec![] };
    assert_eq!(rd.snapshot_chunks, vec![SnapshotChunk { meta, offset: 0, data: b"a=1\nb=2\n".to_vec() }]);
    let want = MessageBody::InstallSnapshotResponse { next_offset: 8, installed: None };
    assert_eq!(rd.messages.iter().map(|m| &m.body).collect::<Vec<_>>(), vec![&want]);
    c.node_mut(2).step(msg(1, 2, 1, chunk(50, 1, 8, b"c=3\n", true))).unwrap();
    let rd = c.node_mut(2).ready();
    assert!(rd.snapshot.is_none() && rd.received_snapshot.is_none() && rd.snapshot_chunks.is_empty(), "{rd:?}");
    match rd.events.as_slice() {
        [Event::SnapshotRefused { from: 1, index: 50, reason, .. }] => {
            assert!(reason.contains("max_incoming_snapshot_bytes=10"), "{reason}")
        }
        other => panic!("expected one SnapshotRefused event, got {other:?}"),
    }
    asked_to_start_over(&rd, 1);
    // The dropped snapshot is gone: its next chunk is answered with "from 0".
    c.node_mut(2).step(msg(1, 2, 1, chunk(50, 1, 12, b"d", true))).unwrap();
    let rd = c.node_mut(2).ready();
    assert!(rd.snapshot.is_none() && rd.events.is_empty(), "{rd:?}");
    assert!(rd.received_snapshot.is_none() && rd.snapshot_chunks.is_empty(), "{rd:?}");
    asked_to_start_over(&rd, 1);
    assert_eq!((c.node(2).status(), c.node(2).hard_state()), before);
    still_works(&mut c);
}

/// A snapshot exactly at the byte bound still installs. (The test is the driver here: it
/// takes the core's Ready itself and accepts any content, since the bound is what is
/// tested.)
#[test]
fn a_snapshot_at_the_byte_bound_is_installed() {
    let mut c = Cluster::new(3, |cfg| cfg.max_incoming_snapshot_bytes = 8);
    c.campaign(1);
    c.stabilize();
    c.node_mut(2).step(msg(1, 2, 1, chunk(50, 1, 0, b"a=1\n", false))).unwrap();
    c.node_mut(2).step(msg(1, 2, 1, chunk(50, 1, 4, b"b=2\n", true))).unwrap();
    let rd = c.node_mut(2).ready();
    let meta = SnapshotMeta { index: 50, term: 1, voters: vec![1, 2, 3], learners: vec![] };
    let received: Vec<u8> = rd.snapshot_chunks.iter().flat_map(|ch| ch.data.iter().copied()).collect();
    assert_eq!(received, b"a=1\nb=2\n".to_vec(), "{rd:?}");
    assert!(rd.snapshot_chunks.iter().all(|ch| ch.meta == meta), "{rd:?}");
    assert_eq!(rd.received_snapshot.as_ref(), Some(&meta), "{rd:?}");
    assert!(rd.snapshot.is_none() && rd.events.is_empty(), "not installed before it is verified: {rd:?}");
    c.node_mut(2).snapshot_verified(&meta, Ok(()));
    let rd = c.node_mut(2).ready();
    assert_eq!(rd.snapshot, Some(meta), "{rd:?}");
}

/// The uncommitted log is bounded in bytes, not only in entries: a leader that cannot
/// commit refuses proposals past `max_uncommitted_bytes` with `Busy`, and takes them
/// again once its entries commit. A single command bigger than the bound passes when
/// nothing else is uncommitted, so no command is refused for ever.
#[test]
fn uncommitted_bytes_are_bounded() {
    let mut c = Cluster::new(3, |cfg| cfg.max_uncommitted_bytes = 200);
    c.campaign(1);
    c.stabilize();
    let value = "v".repeat(48); // "k=" + 48 bytes + 24 bytes of overhead = 74 bytes an entry
    c.partition(&[1]);
    assert!(c.put(1, "k", &value).is_ok());
    assert!(c.put(1, "k", &value).is_ok());
    assert_eq!(c.put(1, "k", &value), Err(ProposeError::Busy), "222 bytes > 200");
    assert_eq!(c.put(1, "k", "v"), Ok(4), "a smaller one still fits");
    assert_eq!(c.put(1, "k", "v"), Err(ProposeError::Busy), "26 more bytes would pass 200");
    c.heal();
    c.tick_all_stabilize(10);
    assert_eq!(c.node(1).commit_index(), c.node(1).last_index(), "the backlog committed");
    assert!(c.put(1, "k", &value).is_ok(), "room again after the commit");
    c.stabilize();
    let big = "x".repeat(1000);
    assert!(c.put(1, "big", &big).is_ok(), "nothing uncommitted: one big command passes");
    assert_eq!(c.put(1, "k", "v"), Err(ProposeError::Busy));
    c.stabilize();
    assert!(c.put(1, "k", "v").is_ok());
}

/// A follower that refuses the leader's snapshot (here: every snapshot, as its store
/// damages what it receives) is asked for again and again, never installs it, and holds
/// nobody up: the leader starts over from offset 0 after each refusal and the other
/// follower keeps committing. Once its store is sound, the same leader's snapshot goes
/// through.
#[test]
fn a_refused_snapshot_is_sent_again_and_holds_nobody_up() {
    let mut c = Cluster::new(3, |cfg| cfg.snapshot_chunk_bytes = 8);
    c.campaign(1);
    c.crash(3);
    for i in 0..10 {
        c.put(1, &format!("k{i}"), "v").unwrap();
        c.stabilize();
    }
    let index = c.compact(1);
    c.restart_with(3, |d| d.damage_received = true);
    c.verbose = true;
    c.tick_all_stabilize(60);
    let out = c.take_output();
    let refusals = out.matches("n3: snapshot from n1").count();
    assert!(refusals >= 2, "the leader sent the snapshot again after a refusal:\n{out}");
    assert_eq!(
        out.matches("refused: does not verify").count(),
        refusals,
        "every refusal is the verification's:\n{out}"
    );
    assert_eq!(c.node(3).status().snapshot_index, 0, "n3 never installed it");
    assert_eq!(c.leader(), Some(1));
    let put = c.put(1, "after", "refusals").unwrap();
    c.tick_all_stabilize(5);
    assert!(c.node(2).commit_index() >= put, "n2 still commits");
    // n3 restarts with a sound store: the leader's snapshot installs.
    c.verbose = false;
    c.restart_with(3, |d| d.damage_received = false);
    c.tick_all_stabilize(40);
    assert_eq!(c.node(3).status().snapshot_index, index);
    assert_eq!(c.node(3).commit_index(), c.node(1).commit_index());
}
