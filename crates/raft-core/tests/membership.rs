//! Membership changes (thesis chapter 4): single-server changes in the log, learners,
//! removal of followers and of the leader, and the rules that keep overlapping changes
//! from electing two leaders.

mod common;
use common::*;
use raft_core::*;

/// Three voters, n1 leading with one write committed.
fn cluster(tweak: impl Fn(&mut Config)) -> Cluster {
    let mut c = Cluster::new(3, tweak);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    c.put(1, "a", "1").unwrap();
    c.stabilize();
    c
}

fn no_auto_promote(cfg: &mut Config) {
    cfg.auto_promote = false;
}

fn voters(c: &Cluster, id: NodeId) -> Vec<NodeId> {
    c.node(id).membership().voters.clone()
}

/// §4.2.1: a learner receives the log but never votes, never counts toward a commit,
/// and never campaigns, however long it hears nothing.
#[test]
fn a_learner_replicates_but_neither_counts_nor_campaigns() {
    let mut c = cluster(no_auto_promote);
    c.add_node(4);
    c.change(1, MembershipChange::AddLearner(4)).unwrap();
    c.stabilize();
    assert_eq!(c.node(4).membership().learners, [4]);
    assert_eq!(c.node(4).commit_index(), c.node(1).commit_index(), "the learner got the log");
    assert_eq!(c.nodes[&4].kv.get("a").map(String::as_str), Some("1"));

    // Two voters down: the leader and the learner are not a majority of {1,2,3}.
    c.crash(2);
    c.crash(3);
    let commit = c.node(1).commit_index();
    c.put(1, "b", "2").unwrap();
    c.stabilize();
    assert_eq!(c.node(4).last_index(), c.node(1).last_index(), "the learner has the entry");
    assert_eq!(c.node(1).commit_index(), commit, "a learner's copy does not commit it");

    // Alone, the learner never starts an election.
    c.partition(&[4]);
    let term = c.node(4).term();
    for _ in 0..200 {
        c.tick(4);
        c.stabilize();
        assert_eq!(c.node(4).role(), RoleKind::Follower);
    }
    assert_eq!(c.node(4).term(), term);
}

/// §4.2.1: the leader promotes a learner only once it has caught up, and then on its own.
#[test]
fn a_learner_is_promoted_once_caught_up_never_before() {
    let mut c = cluster(|cfg| cfg.promote_lag = 5);
    for i in 0..20 {
        c.put(1, &format!("k{i}"), "v").unwrap();
    }
    c.stabilize();
    c.add_node(4);
    c.partition(&[4]);
    c.change(1, MembershipChange::AddLearner(4)).unwrap();
    c.tick_all_stabilize(60);
    assert_eq!(c.node(1).membership().learners, [4], "cut off, it cannot catch up: still a learner");
    assert_eq!(voters(&c, 1), [1, 2, 3]);
    c.heal();
    c.tick_all_stabilize(20);
    assert_eq!(voters(&c, 1), [1, 2, 3, 4], "caught up, it was promoted");
    assert!(c.node(1).membership().learners.is_empty());
    assert!(c.node(1).membership_index() <= c.node(1).commit_index(), "the promotion committed");
    // A voter now: with n2 and n3 down, n1 and n4 are not a majority of four.
    c.crash(2);
    c.crash(3);
    let commit = c.node(1).commit_index();
    c.put(1, "x", "1").unwrap();
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), commit);
}

/// §4.1: one change at a time, refused with a reason, and nothing appended.
#[test]
fn a_second_change_is_refused_while_one_is_uncommitted() {
    let mut c = cluster(no_auto_promote);
    c.add_node(4);
    c.partition(&[2, 3, 4]);
    let first = c.change(1, MembershipChange::AddLearner(4)).unwrap();
    let last = c.node(1).last_index();
    assert_eq!(c.change(1, MembershipChange::Remove(3)), Err(MembershipError::InProgress { index: first }));
    assert_eq!(c.node(1).last_index(), last, "nothing appended");
    c.heal();
    c.tick_all_stabilize(5);
    assert!(c.change(1, MembershipChange::Remove(3)).is_ok(), "once the first commits, the next is taken");
}

/// The single-server change bug (Ongaro, raft-dev, 2015): a new leader must commit an
/// entry of its own term before it changes the configuration.
#[test]
fn a_new_leader_changes_nothing_before_committing_in_its_term() {
    // No leader lease, so n3 votes for n2 at once.
    let mut c = cluster(|cfg| {
        cfg.auto_promote = false;
        cfg.check_quorum = false;
    });
    c.partition(&[1]);
    c.node_mut(2).campaign();
    c.process_all();
    for _ in 0..10 {
        if c.node(2).role() == RoleKind::Leader {
            break;
        }
        c.deliver_round(None);
    }
    assert_eq!(c.node(2).role(), RoleKind::Leader);
    // Its no-op is on its way to n3, not acknowledged: nothing of its term is committed.
    assert_eq!(c.change(2, MembershipChange::Remove(1)), Err(MembershipError::NotReady));
    c.stabilize();
    assert!(c.change(2, MembershipChange::Remove(1)).is_ok());
}

/// Changes that do not apply are refused with the reason, nothing appended.
#[test]
fn invalid_changes_are_refused() {
    let mut c = cluster(no_auto_promote);
    let refused = |r: Result<Index, MembershipError>| match r {
        Err(MembershipError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(refused(c.change(1, MembershipChange::Remove(9))).contains("not a member"));
    assert!(refused(c.change(1, MembershipChange::AddLearner(2))).contains("already a member"));
    assert!(refused(c.change(1, MembershipChange::Promote(3))).contains("not a learner"));
    assert!(matches!(c.change(2, MembershipChange::Remove(3)), Err(MembershipError::NotLeader(_))));
    let last = c.node(1).last_index();
    c.stabilize();
    assert_eq!(c.node(1).last_index(), last);
}

/// §4.2.2 and §4.2.3: a removed follower that learnt of its removal never campaigns
/// again, and one that missed it (cut off meanwhile) cannot disrupt the cluster when it
/// comes back: PreVote and the leader lease refuse it, the leader and term stay.
#[test]
fn removed_nodes_do_not_disrupt_the_cluster() {
    let mut c = cluster(no_auto_promote);
    c.partition(&[3]);
    c.change(1, MembershipChange::Remove(3)).unwrap();
    c.stabilize();
    assert!(c.node(1).membership_index() <= c.node(1).commit_index(), "committed by n1 and n2");
    assert_eq!(voters(&c, 3), [1, 2, 3], "n3 missed its removal");
    let term = c.node(1).term();
    // n3 comes back able to reach n2 but not the leader, which would otherwise bring it
    // the change (it replicates to a removed node until the node has it).
    c.heal();
    c.cut.insert((1, 3));
    c.cut.insert((3, 1));
    for _ in 0..300 {
        c.tick_all_stabilize(1);
        assert_eq!(c.leader(), Some(1), "a removed node unseated the leader");
    }
    assert_eq!(c.node(1).term(), term);
    assert_eq!(c.node(2).term(), term);
    assert!(c.nodes[&3].events.iter().any(|e| matches!(e, Event::RoleChanged { role: RoleKind::PreCandidate, .. })));
    // Its pre-votes are refused (n2 hears from the leader): it never becomes a candidate.
    assert!(c.nodes[&3].events.iter().all(|e| !matches!(e, Event::RoleChanged { role: RoleKind::Candidate, .. })));
}

/// A removed follower that has the committed change never campaigns again.
#[test]
fn a_follower_that_saw_its_removal_commit_stops_campaigning() {
    let mut c = cluster(no_auto_promote);
    c.change(1, MembershipChange::Remove(3)).unwrap();
    c.stabilize();
    // The leader's last word to n3 carried the commit index of its removal.
    assert!(c.node(3).commit_index() >= c.node(3).membership_index());
    assert!(c.nodes[&3].events.iter().any(|e| matches!(e, Event::Removed { .. })));
    c.partition(&[3]);
    let term = c.node(3).term();
    for _ in 0..200 {
        c.tick(3);
        c.stabilize();
    }
    assert_eq!((c.node(3).role(), c.node(3).term()), (RoleKind::Follower, term));
}

/// §4.2.2: the leader removing itself leads until the change commits, without counting
/// itself, then steps down; the rest elect a leader and keep committing.
#[test]
fn a_removed_leader_steps_down_once_its_removal_commits() {
    let mut c = cluster(no_auto_promote);
    c.partition(&[1, 2]);
    let index = c.change(1, MembershipChange::Remove(1)).unwrap();
    c.stabilize();
    assert_eq!(c.node(1).role(), RoleKind::Leader, "n2 alone is not a majority of {{2,3}}");
    assert!(c.node(1).commit_index() < index, "n1 does not count itself any more");
    c.heal();
    for _ in 0..20 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.node(1).role(), RoleKind::Follower);
    assert!(c.nodes[&1].events.iter().any(|e| matches!(e, Event::Removed { .. })));
    c.tick_all_stabilize(60);
    let new = c.leader().expect("a new leader");
    assert_ne!(new, 1);
    c.put(new, "b", "2").unwrap();
    c.stabilize();
    assert_eq!(c.nodes[&2].kv.get("b").map(String::as_str), Some("2"));
    assert_eq!(c.nodes[&3].kv.get("b").map(String::as_str), Some("2"));
    assert_eq!(c.node(1).role(), RoleKind::Follower, "n1 never campaigned again");
}

/// §4.1: a configuration travels in snapshots and survives restarts; a new node that
/// catches up by snapshot learns the configuration from it.
#[test]
fn configurations_survive_snapshots_and_restarts() {
    let mut c = cluster(no_auto_promote);
    c.add_node(4);
    c.change(1, MembershipChange::AddLearner(4)).unwrap();
    c.stabilize();
    c.change(1, MembershipChange::Promote(4)).unwrap();
    c.stabilize();
    c.tick_all_stabilize(2);
    for i in 0..5 {
        c.put(1, &format!("k{i}"), "v").unwrap();
    }
    c.stabilize();
    c.compact(1);
    assert!(c.node(1).snapshot().is_some_and(|s| s.voters == [1, 2, 3, 4]));
    c.change(1, MembershipChange::AddLearner(5)).unwrap();
    c.add_node(5);
    c.tick_all_stabilize(3);
    assert!(c.nodes[&5].events.iter().any(|e| matches!(e, Event::SnapshotInstalled { .. })), "caught up by snapshot");
    assert_eq!(c.node(5).membership(), c.node(1).membership());
    assert_eq!(voters(&c, 5), [1, 2, 3, 4]);
    for id in [1, 2, 5] {
        let before = c.node(id).membership().clone();
        c.crash(id);
        c.restart(id);
        assert_eq!(c.node(id).membership(), &before, "n{id} after a restart");
    }
}

/// A configuration entry that breaks the rules (unsorted, overlapping, no voters) is
/// refused at the trust boundary like any malformed message, and changes nothing.
#[test]
fn malformed_configuration_entries_are_refused() {
    let mut c = cluster(no_auto_promote);
    let (last, term) = (c.node(2).last_index(), c.node(1).term());
    for bad in [
        Membership { voters: vec![3, 1], learners: vec![] },
        Membership { voters: vec![1, 2], learners: vec![2] },
        Membership { voters: vec![], learners: vec![4] },
    ] {
        let entry = Entry { index: last + 1, term, data: EntryData::Config(bad) };
        let body = MessageBody::Append { base_index: last, base_term: term, entries: vec![entry], commit: 0 };
        let m = Message { from: 1, to: 2, term, body };
        assert!(matches!(c.node_mut(2).step(m), Err(StepError::Invalid { field: "entries", .. })));
        assert_eq!(c.node(2).last_index(), last);
    }
}
