//! Tests that cite the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm", extended version) and the thesis (Ongaro 2014).

mod common;
use common::*;
use raft_core::*;

fn terms_of(node: &RawNode) -> Vec<Term> {
    node.log_entries().map(|e| e.term).collect()
}

fn disk(terms: &[Term], term: Term, commit: Index) -> Disk {
    Disk::with_log(HardState { term, vote: None, commit }, log_of_terms(terms))
}

/// How many append rejections `from` sent in the verbose output.
fn rejections(out: &str, from: NodeId) -> usize {
    out.lines().filter(|l| l.starts_with(&format!("n{from}@")) && l.contains("AppendResponse reject")).count()
}

/// Figure 7: the leader for term 8 and six possible follower logs (a)-(f). Whatever the
/// follower holds (missing entries, extra uncommitted entries, both), the leader brings
/// its log in line with its own, in a few round trips thanks to the conflict hints.
#[test]
fn figure_7_followers_are_brought_in_line() {
    let leader: &[Term] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let cases: [(&str, &[Term], usize); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6], 1),
        ("b", &[1, 1, 1, 4], 1),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 0),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 0),
        ("e", &[1, 1, 1, 4, 4, 4, 4], 1),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 1),
    ];
    for (name, follower, max_rejects) in cases {
        // n1 is the leader-to-be, n2 the follower of the figure, n3 a copy of the leader
        // (so n1 wins term 8 even where n2's log is more up to date, as in (d)).
        let mut c = Cluster::with_disks(vec![disk(leader, 7, 3), disk(follower, 7, 3), disk(leader, 7, 3)], |_| {});
        c.verbose = true;
        c.campaign(1);
        assert_eq!(c.leader(), Some(1), "case ({name}): n1 leads");
        assert_eq!(c.node(1).term(), 8, "case ({name})");
        let out = c.take_output();
        let mut expect = leader.to_vec();
        expect.push(8);
        assert_eq!(terms_of(c.node(2)), expect, "case ({name}): follower log equals the leader's\n{out}");
        assert_eq!(c.node(2).commit_index(), 11, "case ({name}): the term-8 no-op commits on the follower");
        assert!(
            rejections(&out, 2) <= max_rejects,
            "case ({name}): {} rejections, fast backtracking allows {max_rejects}\n{out}",
            rejections(&out, 2)
        );
        c.assert_logs_match();
    }
}

/// Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
/// In (c) S1, leader of term 4, has replicated 2@2 to a majority (S1, S2, S3); if it
/// committed it, S5 could still be elected in (d) and overwrite index 2 with 2@3.
fn figure_8(commit_old_term_bug: bool) -> Cluster {
    let disks = vec![
        disk(&[1, 2], 3, 1), // S1
        disk(&[1, 2], 3, 1), // S2
        disk(&[1], 3, 1),    // S3
        disk(&[1], 3, 1),    // S4
        disk(&[1, 3], 3, 1), // S5
    ];
    let mut c = Cluster::with_disks(disks, |cfg| {
        cfg.max_entries_per_append = 1;
        cfg.check_quorum = false;
        #[cfg(feature = "bugs")]
        {
            cfg.bugs.commit_old_term = commit_old_term_bug;
        }
    });
    let _ = commit_old_term_bug;
    c.crash(5);
    // (c): S1 is elected for term 4; its own entry 3@4 never reaches anyone (the network
    // strips it from every append), while 2@2 reaches S3 and S4.
    c.node_mut(1).campaign();
    for _ in 0..50 {
        c.process_all();
        for m in c.network.iter_mut() {
            if let MessageBody::Append { entries, .. } = &mut m.body {
                entries.retain(|e| e.term != 4);
            }
        }
        if c.network.is_empty() {
            break;
        }
        c.deliver_round(None);
    }
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.node(1).term(), 4);
    for id in [2, 3] {
        assert_eq!(c.node(id).entry(2).map(|e| e.term), Some(2), "S{id} holds 2@2: a majority has it");
    }
    c
}

#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting_replicas() {
    let mut c = figure_8(false);
    assert_eq!(c.node(1).commit_index(), 1, "2@2 is on a majority but of an old term: not committed");
    // (d): S1 crashes, S5 comes back and is elected with the votes of S2, S3, S4 (its
    // last term 3 beats their 2), and overwrites index 2 everywhere. Nothing applied 2@2,
    // which the harness's State Machine Safety check would catch.
    c.crash(1);
    c.restart(5);
    c.verbose = true;
    // S5 is still in term 3: its first pre-vote is refused with term 4, which it adopts;
    // the second asks for term 5 and wins.
    c.campaign(5);
    assert_eq!(c.node(5).term(), 4, "{}", c.take_output());
    c.campaign(5);
    assert_eq!(c.leader(), Some(5));
    for id in 2..=5 {
        assert_eq!(c.node(id).entry(2).map(|e| e.term), Some(3), "S{id}: index 2 overwritten by 2@3");
        assert!(c.node(id).commit_index() >= 3);
    }
    // (e): had S1 replicated an entry of its own term to a majority first, that would
    // have committed 2@2 with it; then S5 could not have won. Restart S1 and check it
    // follows S5's log.
    c.restart(1);
    c.tick_all_stabilize(5);
    assert_eq!(c.node(1).entry(2).map(|e| e.term), Some(3));
    c.assert_logs_match();
}

/// The same scenario with the planted bug: the leader commits 2@2 by counting replicas.
#[cfg(feature = "bugs")]
#[test]
fn figure_8_with_commit_old_term_bug_commits_by_counting() {
    let c = figure_8(true);
    assert_eq!(c.node(1).commit_index(), 2, "the bug commits an old-term entry (Figure 8 (c))");
}

/// §5.4.1 election restriction: a voter denies its vote to a candidate whose log is less
/// up to date (lower last term, or same last term and shorter).
#[test]
fn section_5_4_1_vote_restriction() {
    // n2's last term is lower; n3 has the same last term as n1 but a shorter log.
    let disks = || vec![disk(&[1, 1, 2], 2, 0), disk(&[1, 1, 1, 1], 2, 0), disk(&[1, 2], 2, 0)];
    let mut c = Cluster::with_disks(disks(), |cfg| cfg.pre_vote = false);
    c.verbose = true;
    c.campaign(2);
    assert_ne!(c.leader(), Some(2), "a lower last term cannot win, even with a longer log");
    let out = c.take_output();
    assert!(out.contains("n1: vote denied to n2 term=3: candidate's log is not up to date"), "{out}");
    assert!(out.contains("n3: vote denied to n2 term=3: candidate's log is not up to date"), "{out}");

    // Same last term but shorter: n1 refuses. (n2 would grant: its last term is lower.)
    let mut c = Cluster::with_disks(disks(), |cfg| cfg.pre_vote = false);
    c.verbose = true;
    c.node_mut(3).campaign();
    c.process_all();
    c.network.retain(|m| m.to == 1);
    c.stabilize();
    assert_ne!(c.leader(), Some(3));
    let out = c.take_output();
    assert!(out.contains("n1: vote denied to n3 term=3: candidate's log is not up to date"), "{out}");

    let mut c = Cluster::with_disks(disks(), |cfg| cfg.pre_vote = false);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1), "the most up-to-date log wins");
    assert_eq!(terms_of(c.node(2)), [1, 1, 2, 3], "n2's stale suffix was replaced");
}

/// §5.2 / Election Safety: a node votes at most once per term, even if asked again by
/// another candidate with a better log.
#[test]
fn section_5_2_one_vote_per_term() {
    let mut c = Cluster::new(3, |cfg| cfg.pre_vote = false);
    c.node_mut(1).campaign();
    c.node_mut(2).campaign();
    c.process_all();
    // Deliver n1's request to n3 first, then n2's.
    let (first, rest): (Vec<Message>, Vec<Message>) = c.network.drain(..).partition(|m| m.from == 1 && m.to == 3);
    c.network.extend(first);
    c.network.extend(rest);
    c.stabilize();
    assert_eq!(c.node(3).hard_state().vote, Some(1));
    assert_eq!(c.leader(), Some(1), "n2's vote went to itself, n3's to n1: n1 wins term 1");
}

/// Thesis §9.6 PreVote: a node partitioned away keeps asking for pre-votes but never
/// raises its term; when it rejoins, the leader stays in place.
#[test]
fn prevote_partitioned_node_rejoins_without_disruption() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    let term = c.node(1).term();
    c.partition(&[3]);
    c.tick_all_stabilize(300);
    assert_eq!(c.node(3).term(), term, "pre-vote kept n3's term");
    assert_ne!(c.node(3).role(), RoleKind::Leader);
    c.put(1, "k", "v").unwrap();
    c.heal();
    c.tick_all_stabilize(60);
    assert_eq!(c.leader(), Some(1), "the leader was not disrupted");
    assert_eq!(c.node(1).term(), term);
    assert_eq!(c.nodes[&3].kv.get("k").map(String::as_str), Some("v"), "n3 caught up");
}

/// Without PreVote and CheckQuorum the same rejoin forces an election: the behaviour
/// PreVote exists to prevent (the contrast shows the previous test measures something).
#[test]
fn without_prevote_rejoining_node_disrupts() {
    let mut c = Cluster::new(3, |cfg| {
        cfg.pre_vote = false;
        cfg.check_quorum = false;
    });
    c.campaign(1);
    let term = c.node(1).term();
    c.partition(&[3]);
    c.tick_all_stabilize(300);
    assert!(c.node(3).term() > term + 5, "n3 kept starting elections");
    c.heal();
    c.tick_all_stabilize(60);
    assert!(c.node(1).term() > term, "the cluster had to move to n3's term");
}

/// Thesis §4.2.3 (leader lease, etcd's check_quorum rule): with CheckQuorum a voter that
/// heard from the leader recently ignores a RequestVote with a higher term.
#[test]
fn vote_ignored_while_leader_lease_holds() {
    let mut c = Cluster::new(3, |cfg| cfg.pre_vote = false);
    c.verbose = true;
    c.campaign(1);
    let term = c.node(1).term();
    c.node_mut(3).campaign(); // as if n3's timer fired spuriously
    c.stabilize();
    let out = c.take_output();
    assert!(out.contains("n2: vote denied to n3") && out.contains("(lease)"), "{out}");
    assert_eq!(c.node(2).term(), term, "n2 did not adopt the candidate's term");
    assert_eq!(c.leader(), Some(1));
}

/// Thesis §6.2 CheckQuorum: a leader cut off from the majority steps down after an
/// election timeout; its unconfirmed reads are dropped.
#[test]
fn check_quorum_leader_steps_down() {
    let mut c = Cluster::new(3, |_| {});
    c.verbose = true;
    c.campaign(1);
    c.partition(&[1]);
    c.node_mut(1).read_index(7).unwrap();
    c.tick_all_stabilize(31);
    let out = c.take_output();
    assert!(out.contains("n1: stepping down"), "{out}");
    assert_ne!(c.node(1).role(), RoleKind::Leader);
    assert_eq!(c.nodes[&1].dropped_reads, vec![7], "the pending read was handed back");
    assert!(c.nodes[&1].reads.is_empty());
    // Without CheckQuorum the isolated leader would stay leader forever.
    let mut c = Cluster::new(3, |cfg| cfg.check_quorum = false);
    c.campaign(1);
    c.partition(&[1]);
    c.tick_all_stabilize(100);
    assert_eq!(c.node(1).role(), RoleKind::Leader);
}

/// §6.4 ReadIndex: the read waits for a heartbeat round confirmed by a majority, then
/// for the applied index; a follower refuses it with a leader hint.
#[test]
fn read_index_confirms_leadership_first() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    c.put(1, "k", "v").unwrap();
    c.stabilize();
    assert_eq!(c.node_mut(2).read_index(1), Err(ProposeError::NotLeader(NotLeader { leader: Some(1) })));
    c.node_mut(1).read_index(1).unwrap();
    c.process_all();
    assert!(c.nodes[&1].reads.is_empty(), "not served before the heartbeat round");
    let heartbeats = c.network.iter().filter(|m| matches!(m.body, MessageBody::Heartbeat { read_seq: 1, .. })).count();
    assert_eq!(heartbeats, 2, "one heartbeat round to confirm leadership");
    c.stabilize();
    assert_eq!(c.nodes[&1].reads, vec![ReadState { id: 1, index: 2 }]);
    // Reads in one turn share one round.
    c.node_mut(1).read_index(2).unwrap();
    c.node_mut(1).read_index(3).unwrap();
    c.process_all();
    assert_eq!(c.network.len(), 2);
    c.stabilize();
    assert_eq!(c.nodes[&1].reads.len(), 3);
}

/// §6.4 step 1: a new leader serves reads only once an entry of its term committed
/// (before that its commit index may be behind the previous leader's).
#[test]
fn read_index_waits_for_own_term_commit() {
    let mut c = Cluster::new(3, |_| {});
    let no_appends = |c: &mut Cluster| c.network.retain(|m| !matches!(m.body, MessageBody::Append { .. }));
    c.node_mut(1).campaign();
    for _ in 0..4 {
        c.process_all();
        no_appends(&mut c);
        c.deliver_round(None);
    }
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.node(1).commit_index(), 0, "the term's no-op has not committed");
    c.node_mut(1).read_index(9).unwrap();
    for _ in 0..3 {
        c.process_all();
        no_appends(&mut c);
        c.deliver_round(None);
    }
    assert!(c.nodes[&1].reads.is_empty(), "no read before the term's no-op commits");
    assert!(c.network.iter().all(|m| !matches!(m.body, MessageBody::Heartbeat { read_seq: 1.., .. })));
    // The next heartbeat finds the lost appends; the no-op commits; then the read round.
    c.tick_all_stabilize(5);
    assert_eq!(c.nodes[&1].reads, vec![ReadState { id: 9, index: 1 }]);
}

/// A single voter confirms reads at once.
#[test]
fn read_index_single_node() {
    let mut c = Cluster::new(1, |_| {});
    c.campaign(1);
    c.node_mut(1).read_index(5).unwrap();
    c.process_all();
    assert_eq!(c.nodes[&1].reads, vec![ReadState { id: 5, index: 1 }]);
}

/// Thesis §3.10 leadership transfer: the target is caught up, receives TimeoutNow and
/// wins the next term; proposals are refused meanwhile.
#[test]
fn leadership_transfer_to_lagging_follower() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    c.partition(&[3]);
    for k in 0..5 {
        c.put(1, &format!("k{k}"), "v").unwrap();
    }
    c.stabilize();
    c.heal();
    let term = c.node(1).term();
    c.node_mut(1).transfer_leadership(3).unwrap();
    assert_eq!(c.put(1, "x", "y"), Err(ProposeError::Busy), "no proposals during a transfer");
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(c.node(3).term(), term + 1);
    assert_eq!(c.nodes[&3].kv.len(), 5, "the target was caught up before taking over");
    assert_eq!(c.put(1, "x", "y"), Err(ProposeError::NotLeader(NotLeader { leader: Some(3) })));
    assert_eq!(c.node_mut(2).transfer_leadership(1), Err(TransferError::NotLeader(NotLeader { leader: Some(3) })));
    assert_eq!(c.node_mut(3).transfer_leadership(9), Err(TransferError::UnknownPeer(9)));
}

/// A transfer to an unreachable node is abandoned after an election timeout and the
/// leader takes proposals again.
#[test]
fn leadership_transfer_aborts() {
    let mut c = Cluster::new(3, |_| {});
    c.verbose = true;
    c.campaign(1);
    c.partition(&[3]);
    c.node_mut(1).transfer_leadership(3).unwrap();
    c.tick_all_stabilize(16);
    let out = c.take_output();
    assert!(out.contains("n1: leadership transfer to n3 aborted"), "{out}");
    assert_eq!(c.leader(), Some(1));
    assert!(c.put(1, "x", "y").is_ok());
}

/// §7: a follower behind the leader's first retained entry receives the snapshot in
/// chunks of `snapshot_chunk_bytes`, installs it, and resumes log replication after it.
#[test]
fn snapshot_catch_up_in_chunks() {
    let mut c = Cluster::new(3, |cfg| cfg.snapshot_chunk_bytes = 10);
    c.verbose = true;
    c.campaign(1);
    c.partition(&[3]);
    for k in 0..10 {
        c.put(1, &format!("key{k}"), "value").unwrap();
    }
    c.stabilize();
    let snap = c.compact(1);
    assert_eq!(snap, 11);
    c.put(1, "after", "snap").unwrap();
    c.stabilize();
    c.take_output();
    c.heal();
    c.tick_all_stabilize(6);
    let out = c.take_output();
    let chunks = out.lines().filter(|l| l.starts_with("n1@") && l.contains("InstallSnapshot ")).count();
    let size = c.nodes[&1].disk().snapshot.as_ref().unwrap().data.len();
    assert_eq!(c.node(1).snapshot(), c.nodes[&1].disk().snapshot.as_ref().map(|s| &s.meta));
    assert!(size > 100);
    assert_eq!(chunks, size.div_ceil(10), "one message per 10-byte chunk, no more\n{out}");
    assert!(out.contains("n1: snapshot send started to n3 index=11"), "{out}");
    assert!(out.contains("n3: snapshot installed index=11"), "{out}");
    assert!(out.contains("n1: snapshot sent to n3 index=11"), "{out}");
    assert_eq!(c.nodes[&3].kv, c.nodes[&1].kv, "state machine restored from the snapshot, then the log");
    assert_eq!(c.node(3).status().snapshot_index, 11);
    assert_eq!(c.node(3).commit_index(), 12);
    let p = c.node(1).status().progress.into_iter().find(|p| p.id == 3).unwrap();
    assert_eq!((p.match_index, p.state.as_str()), (12, "replicate"));
}

/// A node restarts from what it persisted (hard state, snapshot, log after it): applied
/// starts at the snapshot, and the entries up to the persisted commit are handed out again.
#[test]
fn restart_from_snapshot_and_log() {
    let mut c = Cluster::new(3, |_| {});
    c.campaign(1);
    for k in 0..4 {
        c.put(1, &format!("a{k}"), "1").unwrap();
    }
    c.stabilize();
    c.compact(2);
    for k in 0..3 {
        c.put(1, &format!("b{k}"), "2").unwrap();
    }
    c.stabilize();
    let kv = c.nodes[&2].kv.clone();
    // What the restart sees is the disk's hard state (a commit-only change may not be
    // synced yet: the replica syncs it with the next entries).
    let hs = c.nodes[&2].disk().hard_state;
    c.crash(2);
    c.restart(2);
    let s = c.node(2).status();
    assert_eq!((s.applied, s.snapshot_index, s.commit, s.term), (5, 5, hs.commit, hs.term));
    assert_eq!(s.role, RoleKind::Follower);
    c.process_all();
    // Replayed up to the disk's commit index; the leader's next heartbeat tells the rest.
    c.tick_all_stabilize(HEARTBEAT_TICKS as usize);
    assert_eq!(c.nodes[&2].kv, kv, "snapshot + re-applied entries rebuild the same state");
    c.put(1, "c", "3").unwrap();
    c.stabilize();
    assert_eq!(c.nodes[&2].kv.get("c").map(String::as_str), Some("3"));
}
