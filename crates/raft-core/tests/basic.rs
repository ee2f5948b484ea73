//! Basic behaviour of the driving API: elections, replication, the Ready contract.

mod common;
use common::*;
use raft_core::*;

#[test]
fn three_nodes_elect_and_replicate() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    let idx = c.put(1, "a", "1").unwrap();
    assert_eq!(idx, 2, "the no-op of the term takes index 1");
    c.stabilize();
    for id in 1..=3 {
        assert_eq!(c.nodes[&id].kv.get("a").map(String::as_str), Some("1"), "n{id} applied the put");
        assert_eq!(c.node(id).commit_index(), 2);
    }
    assert_eq!(c.put(2, "b", "2"), Err(ProposeError::NotLeader(NotLeader { leader: Some(1) })));
    c.assert_logs_match();
}

/// What ships (`commit_notice_on_tick`, issue 16): a commit with no new entries to carry
/// it costs no message at once; it rides on the next append, or goes out at the next tick.
#[test]
fn a_commit_reaches_followers_on_the_next_append_or_tick_not_in_an_empty_append_of_its_own() {
    let mut c = Cluster::new(3, |cfg| cfg.commit_notice_on_tick = true);
    c.campaign(1);
    c.tick(1);
    c.stabilize();
    let first = c.put(1, "a", "1").unwrap();
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), first, "the leader commits once a majority has it");
    for id in [2, 3] {
        assert_eq!(c.node(id).commit_index(), first - 1, "n{id} is not told in an empty append of its own");
    }
    // The next write's append carries the commit index.
    let second = c.put(1, "b", "2").unwrap();
    c.process(1);
    assert!(c.network.iter().all(
        |m| matches!(&m.body, MessageBody::Append { entries, commit, .. } if entries.len() == 1 && *commit == first)
    ));
    c.deliver_round(Some(&[2, 3]));
    for id in [2, 3] {
        assert_eq!(c.node(id).commit_index(), first, "n{id} learnt the commit from the next append");
        assert_eq!(c.nodes[&id].kv.get("a").map(String::as_str), Some("1"));
    }
    c.stabilize();
    assert_eq!(c.node(2).commit_index(), first, "still no empty append");
    // One tick later the followers know, without a heartbeat being due.
    c.tick(1);
    c.process(1);
    let notices = c.network.iter().filter(|m| matches!(&m.body, MessageBody::Append { entries, commit, .. } if entries.is_empty() && *commit == second)).count();
    assert_eq!(notices, 2, "one empty append per follower at the tick");
    c.stabilize();
    for id in [2, 3] {
        assert_eq!(c.node(id).commit_index(), second);
        assert_eq!(c.nodes[&id].kv.get("b").map(String::as_str), Some("2"));
    }
}

#[test]
fn elections_happen_by_ticking() {
    let mut c = Cluster::new(5, |_| {});
    c.tick_all_stabilize(40);
    let leader = c.leader().expect("a leader within 40 ticks");
    for id in 1..=5 {
        assert_eq!(c.node(id).leader(), Some(leader));
    }
    // Heartbeats keep it in place for a long time.
    c.tick_all_stabilize(300);
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(c.node(leader).term(), c.node(1).term());
}

#[test]
fn single_node_commits_after_its_own_persist() {
    let mut c = Cluster::new(1, |_| {});
    c.node_mut(1).campaign();
    assert_eq!(c.node(1).role(), RoleKind::Leader);
    let rd = c.node_mut(1).ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd.committed.is_empty(), "nothing commits before the leader's own fsync");
    c.node_mut(1).persisted(1, 1);
    let rd = c.node_mut(1).ready();
    assert_eq!(rd.committed.len(), 1);
    assert_eq!(rd.hard_state.unwrap().commit, 1);
    let i = c.node_mut(1).propose(b"k=v".to_vec()).unwrap();
    let rd = c.node_mut(1).ready();
    assert!(rd.committed.is_empty());
    c.node_mut(1).persisted(i, 1);
    let rd = c.node_mut(1).ready();
    assert_eq!(rd.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2]);
    assert!(c.node_mut(1).ready().is_empty(), "each committed entry is handed out once");
}

#[test]
fn leader_does_not_count_itself_before_persisting() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    // Propose and let only the followers persist: a 3-node quorum is still reached by 2 followers.
    let i = c.put(1, "a", "1").unwrap();
    let rd = c.node_mut(1).ready();
    assert_eq!(rd.entries.len(), 1);
    // The leader does not persist; deliver appends to node 2 only, and cut node 3.
    c.network.extend(rd.messages);
    c.cut.insert((1, 3));
    c.deliver_round(Some(&[2]));
    // Node 2's ack arrives: match 2 on one follower, leader has not persisted => no commit.
    c.deliver_round(Some(&[1]));
    assert_eq!(c.node(1).commit_index(), 1, "leader alone + one follower is a quorum only once the leader persisted");
    let t = c.node(1).term();
    c.node_mut(1).persisted(i, t);
    c.process_all();
    assert_eq!(c.node(1).commit_index(), i);
}

#[test]
fn vote_requests_are_persisted_messages() {
    let mut c = Cluster::new(3, |cfg| cfg.pre_vote = false);
    c.node_mut(1).campaign();
    let rd = c.node_mut(1).ready();
    assert_eq!(rd.hard_state, Some(HardState { term: 1, vote: Some(1), commit: 0 }));
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 2);
    assert!(rd.persisted_messages.iter().all(|m| matches!(m.body, MessageBody::Vote { .. })));
    // Voters answer from persisted_messages too.
    let m = rd.persisted_messages[0].clone();
    c.node_mut(m.to).step(m).unwrap();
    let rd = c.node_mut(2).ready();
    assert_eq!(rd.hard_state.unwrap().vote, Some(1));
    assert!(matches!(rd.persisted_messages[0].body, MessageBody::VoteResponse { granted: true }));
}

#[test]
fn restart_rehands_committed_entries() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    for k in 0..5 {
        c.put(1, &format!("k{k}"), "v").unwrap();
    }
    c.stabilize();
    assert_eq!(c.node(2).commit_index(), 6);
    // The driver syncs a commit-only hard state only with later entries (MustSync), so
    // the disk's commit index may trail the node's: the restart re-hands what it says.
    let before = c.nodes[&2].disk().hard_state.commit;
    assert!(before >= 1, "the disk holds a commit index: {before}");
    c.crash(2);
    c.restart(2);
    let rd = c.node_mut(2).ready();
    assert_eq!(rd.committed.len() as u64, before, "restart re-hands entries up to the persisted commit");
    assert!(rd.hard_state.is_none(), "nothing changed");
    assert!(rd.entries.is_empty(), "restored entries are already durable");
}

#[test]
fn restored_is_validated() {
    let cfg = Config::new(1, vec![1, 2, 3], 1);
    let gap = Restored { entries: vec![Entry { index: 2, term: 1, data: EntryData::Noop }], ..Default::default() };
    assert!(RawNode::new(cfg.clone(), gap).is_err());
    let commit_ahead = Restored {
        hard_state: HardState { term: 1, vote: None, commit: 3 },
        entries: vec![Entry { index: 1, term: 1, data: EntryData::Noop }],
        ..Default::default()
    };
    assert!(RawNode::new(cfg, commit_ahead).is_err());
}

#[test]
fn message_display_is_compact() {
    let m = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::Append {
            base_index: 4,
            base_term: 2,
            entries: vec![Entry { index: 5, term: 3, data: EntryData::Command(vec![1]) }],
            commit: 4,
        },
    };
    assert_eq!(m.to_string(), "n1@3 -> n2 Append base=4@2 [5@3] commit=4");
}

fn appends_to(msgs: &[Message], to: NodeId) -> Vec<(Index, usize)> {
    msgs.iter()
        .filter(|m| m.to == to)
        .filter_map(|m| match &m.body {
            MessageBody::Append { base_index, entries, .. } => Some((*base_index, entries.len())),
            _ => None,
        })
        .collect()
}

/// Proposals of one turn go out as one append per follower, cut at max_entries_per_append,
/// and at most max_inflight_appends unacknowledged appends per follower.
#[test]
fn appends_are_batched_and_windowed() {
    let mut c = Cluster::new(3, |cfg| {
        cfg.max_entries_per_append = 4;
        cfg.max_inflight_appends = 2;
    });
    c.campaign(1);
    for k in 0..20 {
        c.put(1, &format!("k{k}"), "v").unwrap();
    }
    let rd = c.node_mut(1).ready();
    assert_eq!(appends_to(&rd.messages, 2), vec![(1, 4), (5, 4)], "two batches of four, then the window is full");
    // One ack frees one slot: exactly one more batch.
    let ack = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendResponse { success: true, match_index: 5, reject_hint_index: 0, reject_hint_term: 0 },
    };
    c.node_mut(1).step(ack).unwrap();
    let rd = c.node_mut(1).ready();
    assert_eq!(appends_to(&rd.messages, 2), vec![(9, 4)]);
    assert_eq!(appends_to(&rd.messages, 3), vec![], "n3's window is still full");
}

#[test]
fn inflight_bytes_are_bounded() {
    let mut c = Cluster::new(3, |cfg| {
        cfg.max_entries_per_append = 1;
        cfg.max_inflight_bytes = 3 * (24 + 100);
    });
    c.campaign(1);
    for _ in 0..10 {
        c.node_mut(1).propose(vec![7; 100]).unwrap();
    }
    let rd = c.node_mut(1).ready();
    assert_eq!(appends_to(&rd.messages, 2).len(), 3, "three 124-byte appends fill the byte window");
}

#[test]
fn uncommitted_entries_are_bounded() {
    let mut c = Cluster::new(3, |cfg| cfg.max_uncommitted_entries = 5);
    c.campaign(1);
    c.partition(&[1]);
    let mut accepted = 0;
    while c.put(1, "k", "v").is_ok() {
        accepted += 1;
        assert!(accepted < 100);
    }
    assert_eq!(accepted, 5);
    assert_eq!(c.put(1, "k", "v"), Err(ProposeError::Busy));
    c.heal();
    c.tick_all_stabilize(5);
    assert!(c.put(1, "k", "v").is_ok(), "room again once they commit");
}

/// A follower that lost an append (and every later one) is found by the next heartbeat.
#[test]
fn lost_tail_of_pipeline_is_recovered_by_heartbeat() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    c.put(1, "a", "1").unwrap();
    c.cut.insert((1, 3));
    c.stabilize();
    c.cut.clear();
    assert_eq!(c.node(3).last_index(), 1);
    c.tick_all_stabilize(5);
    assert_eq!(c.node(3).last_index(), 2);
    assert_eq!(c.nodes[&3].kv.get("a").map(String::as_str), Some("1"));
}

#[test]
fn events_explain_an_election() {
    let mut c = Cluster::new(3, |_| {});
    c.node_mut(2).campaign();
    let rd = c.node_mut(2).ready();
    assert_eq!(rd.events, vec![Event::RoleChanged { role: RoleKind::PreCandidate, term: 0, leader: None }]);
    assert_eq!(rd.events[0].to_string(), "became pre-candidate term=0");
}

/// Bad input from the network is an error value, not a panic, and changes nothing.
#[test]
fn malformed_messages_are_refused() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    let before = c.node(2).status();
    let gap = Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append {
            base_index: 1,
            base_term: 1,
            entries: vec![Entry { index: 3, term: 1, data: EntryData::Noop }],
            commit: 1,
        },
    };
    assert!(matches!(c.node_mut(2).step(gap), Err(StepError::Malformed(_))));
    let future = Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append {
            base_index: 1,
            base_term: 1,
            entries: vec![Entry { index: 2, term: 9, data: EntryData::Noop }],
            commit: 1,
        },
    };
    assert!(matches!(c.node_mut(2).step(future), Err(StepError::Malformed(_))));
    let nobody = Message { from: 0, to: 2, term: 5, body: MessageBody::TimeoutNow };
    assert_eq!(c.node_mut(2).step(nobody), Err(StepError::UnknownPeer(0)));
    assert_eq!(c.node(2).status(), before);
}

/// §5.2 with a crash: the vote is persisted, so a restarted node still refuses a second
/// candidate in the same term.
#[test]
fn vote_survives_restart() {
    let mut c = Cluster::new(3, |cfg| cfg.pre_vote = false);
    c.node_mut(1).campaign();
    c.process_all();
    c.network.retain(|m| m.to == 3);
    c.deliver_round(None);
    assert_eq!(c.node(3).hard_state().vote, Some(1));
    c.network.clear();
    c.crash(3);
    c.restart(3);
    assert_eq!(c.node(3).hard_state(), HardState { term: 1, vote: Some(1), commit: 0 });
    // n2 asks for the same term 1.
    let ask =
        Message { from: 2, to: 3, term: 1, body: MessageBody::Vote { last_index: 0, last_term: 0, transfer: false } };
    c.node_mut(3).step(ask).unwrap();
    let rd = c.node_mut(3).ready();
    assert!(matches!(rd.persisted_messages[0].body, MessageBody::VoteResponse { granted: false }));
}

/// §5.3 step 3: a deposed leader's uncommitted entries are replaced by the new leader's,
/// and the follower says which it dropped (the learner's "where did my write go?").
#[test]
fn a_conflict_truncation_is_an_event() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    c.put(1, "a", "1").unwrap();
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), 2);
    c.partition(&[1]);
    c.put(1, "x", "lost").unwrap();
    c.put(1, "y", "lost").unwrap();
    c.stabilize();
    assert_eq!((c.node(1).last_index(), c.node(1).commit_index()), (4, 2), "3 and 4 stay uncommitted");
    c.tick_all_stabilize(40);
    let new = [2, 3].into_iter().find(|&id| c.node(id).role() == RoleKind::Leader).expect("the majority elects");
    c.put(new, "b", "2").unwrap();
    c.stabilize();
    let seen = c.nodes[&1].events.len();
    c.heal();
    c.tick_all_stabilize(10);
    let events = &c.nodes[&1].events[seen..];
    let truncated: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::LogTruncated { .. })).collect();
    assert_eq!(truncated, vec![&Event::LogTruncated { from: 3, to: 4, term: 1, leader: new }], "{events:?}");
    assert_eq!(
        truncated[0].to_string(),
        format!("truncated uncommitted entries 3..4 (2 from term 1): leader n{new} has others there")
    );
    c.assert_logs_match();
    assert!(c.nodes[&new].events.iter().all(|e| !matches!(e, Event::LogTruncated { .. })), "the leader drops nothing");
}
