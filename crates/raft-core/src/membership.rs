//! Who takes part in the cluster, and how that changes (thesis chapter 4).
//!
//! The configuration lives in the log: a change is an [`EntryData::Config`] entry holding
//! the whole new [`Membership`], and every node uses the newest configuration in its log
//! from the moment the entry is *appended*, committed or not (§4.1). A follower whose
//! uncommitted configuration entry is truncated by a new leader goes back to the one
//! before it, so this module keeps every configuration entry of the in-memory log, not
//! only the newest: [`MembershipLog`] is the configuration at the snapshot plus each
//! change after it.
//!
//! Changes are single-server (§4.2): each adds a learner, promotes one learner to voter,
//! or removes one member, so the majorities of the old and the new voter sets overlap
//! and no two leaders can be elected in one term by the two configurations. Two rules
//! make that argument hold across *sequences* of changes:
//!
//! * one change at a time: a leader appends a new configuration only once the previous
//!   one is committed (§4.1);
//! * the leader must first have committed an entry of its own term (Ongaro, raft-dev,
//!   "bug in single-server membership changes", 2015): otherwise a leader of a newer
//!   term could append a change overlapping one that a deposed leader of an older term
//!   appended on a minority, and the two configurations need not share a majority. The
//!   no-op every leader appends at the start of its term makes this cheap.
//!
//! Learners (§4.2.1) receive the log and snapshots but never vote, never count toward a
//! quorum, and never campaign; the leader promotes one once it has caught up.

use crate::{EntryData, Index, NodeId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most members (voters and learners) a configuration may list: far more than any
/// cluster has, and small enough that a configuration stays a small log entry.
pub const MAX_MEMBERS: usize = 1024;

/// A configuration: the voters, who elect leaders and make up quorums, and the learners,
/// who only receive the log. Both sorted, disjoint, no id 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// One single-server change (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A new node joins as a learner: it receives the log but does not vote yet.
    AddLearner(NodeId),
    /// A learner that caught up becomes a voter.
    Promote(NodeId),
    /// A voter or learner leaves. Removing the leader is allowed: it steps down once the
    /// change commits (§4.2.2).
    Remove(NodeId),
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::AddLearner(n) => write!(f, "add n{n} as learner"),
            MembershipChange::Promote(n) => write!(f, "promote n{n} to voter"),
            MembershipChange::Remove(n) => write!(f, "remove n{n}"),
        }
    }
}

/// Where a node stands in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberKind {
    Voter,
    Learner,
    /// Not in the configuration (removed, or not yet added).
    None,
}

impl Membership {
    /// A configuration of these voters and no learners.
    pub fn voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        let mut voters: Vec<NodeId> = voters.into_iter().collect();
        voters.sort_unstable();
        Membership { voters, learners: Vec::new() }
    }

    pub fn kind(&self, id: NodeId) -> MemberKind {
        if self.voters.binary_search(&id).is_ok() {
            MemberKind::Voter
        } else if self.learners.binary_search(&id).is_ok() {
            MemberKind::Learner
        } else {
            MemberKind::None
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.kind(id) != MemberKind::None
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// Votes (or acknowledgements) needed for a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Why this configuration cannot be used, if it cannot: ids sorted, distinct,
    /// non-zero, voters and learners disjoint, at most [`MAX_MEMBERS`].
    pub fn check(&self) -> Result<(), String> {
        if self.voters.len() + self.learners.len() > MAX_MEMBERS {
            return Err(format!("more than MAX_MEMBERS {MAX_MEMBERS} members"));
        }
        for list in [&self.voters, &self.learners] {
            if list.contains(&0) {
                return Err("node id 0 is reserved for \"no node\"".into());
            }
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("ids {list:?} are not sorted and distinct"));
            }
        }
        if let Some(n) = self.learners.iter().find(|l| self.is_voter(**l)) {
            return Err(format!("n{n} is both a voter and a learner"));
        }
        Ok(())
    }

    /// The configuration after `change`, or why the change does not apply to this one.
    /// A change never leaves the cluster without voters.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, String> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(n) => {
                if n == 0 {
                    return Err("node id 0 is reserved for \"no node\"".into());
                }
                if self.contains(n) {
                    return Err(format!("n{n} is already a member ({})", self.describe(n)));
                }
                next.learners.push(n);
                next.learners.sort_unstable();
            }
            MembershipChange::Promote(n) => {
                if self.kind(n) != MemberKind::Learner {
                    return Err(format!("n{n} is not a learner ({})", self.describe(n)));
                }
                next.learners.retain(|&l| l != n);
                next.voters.push(n);
                next.voters.sort_unstable();
            }
            MembershipChange::Remove(n) => {
                if !self.contains(n) {
                    return Err(format!("n{n} is not a member"));
                }
                if self.voters == [n] {
                    return Err(format!("n{n} is the last voter"));
                }
                next.voters.retain(|&v| v != n);
                next.learners.retain(|&l| l != n);
            }
        }
        next.check()?;
        Ok(next)
    }

    fn describe(&self, n: NodeId) -> &'static str {
        match self.kind(n) {
            MemberKind::Voter => "a voter",
            MemberKind::Learner => "a learner",
            MemberKind::None => "not a member",
        }
    }
}

impl fmt::Display for Membership {
    /// `voters n1,n2,n3 learners n4`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[NodeId]| ids.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(",");
        write!(f, "voters {}", list(&self.voters))?;
        if !self.learners.is_empty() {
            write!(f, " learners {}", list(&self.learners))?;
        }
        Ok(())
    }
}

/// The configurations of a node's log: the one at the snapshot (or the bootstrap
/// configuration) and every change after it, oldest first. The current configuration
/// is the newest; truncating the log drops the changes it removes.
#[derive(Clone, Debug)]
pub(crate) struct MembershipLog {
    /// In effect at the snapshot's index (or from the start).
    base: Membership,
    /// Configuration entries after the snapshot, by index, ascending.
    changes: Vec<(Index, Membership)>,
}

impl MembershipLog {
    pub fn new(base: Membership) -> MembershipLog {
        MembershipLog { base, changes: Vec::new() }
    }

    /// The configuration in effect now: the newest in the log.
    pub fn current(&self) -> &Membership {
        self.changes.last().map_or(&self.base, |c| &c.1)
    }

    /// The index of the newest configuration entry (0: the base is current).
    pub fn current_index(&self) -> Index {
        self.changes.last().map_or(0, |c| c.0)
    }

    /// The configuration in effect at `index` (the newest entry at or before it).
    pub fn at(&self, index: Index) -> &Membership {
        self.changes.iter().rev().find(|c| c.0 <= index).map_or(&self.base, |c| &c.1)
    }

    /// Notes the configuration entries among appended entries.
    pub fn appended<'a>(&mut self, entries: impl IntoIterator<Item = &'a crate::Entry>) -> bool {
        let mut any = false;
        for e in entries {
            if let EntryData::Config(m) = &e.data {
                assert!(self.changes.last().is_none_or(|c| c.0 < e.index), "configuration entries in index order");
                self.changes.push((e.index, m.clone()));
                any = true;
            }
        }
        any
    }

    /// The log lost every entry from `index` on: their configurations no longer apply.
    pub fn truncated_from(&mut self, index: Index) -> bool {
        let before = self.changes.len();
        self.changes.retain(|c| c.0 < index);
        self.changes.len() != before
    }

    /// The log up to `index` became a snapshot: the configuration at `index` is the new base.
    pub fn compacted_to(&mut self, index: Index) {
        self.base = self.at(index).clone();
        self.changes.retain(|c| c.0 > index);
    }

    /// The whole log was replaced by a snapshot carrying `base`.
    pub fn reset(&mut self, base: Membership) {
        self.base = base;
        self.changes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entry;

    fn cfg(index: Index, voters: &[NodeId], learners: &[NodeId]) -> Entry {
        let m = Membership { voters: voters.to_vec(), learners: learners.to_vec() };
        Entry { index, term: 1, data: EntryData::Config(m) }
    }

    #[test]
    fn changes_apply_one_server_at_a_time() {
        let m = Membership::voters([3, 1, 2]);
        assert_eq!(m.voters, [1, 2, 3]);
        let m = m.apply(MembershipChange::AddLearner(4)).unwrap();
        assert_eq!((m.kind(4), m.quorum()), (MemberKind::Learner, 2), "a learner does not change the quorum");
        assert!(m.apply(MembershipChange::AddLearner(4)).unwrap_err().contains("already a member"));
        assert!(m.apply(MembershipChange::Promote(3)).unwrap_err().contains("not a learner (a voter)"));
        let m = m.apply(MembershipChange::Promote(4)).unwrap();
        assert_eq!((m.voters.as_slice(), m.quorum()), ([1, 2, 3, 4].as_slice(), 3));
        let m = m.apply(MembershipChange::Remove(1)).unwrap();
        assert_eq!(m.to_string(), "voters n2,n3,n4");
        assert!(m.apply(MembershipChange::Remove(9)).unwrap_err().contains("not a member"));
        let one = Membership::voters([7]);
        assert!(one.apply(MembershipChange::Remove(7)).unwrap_err().contains("last voter"));
        assert!(one.apply(MembershipChange::AddLearner(0)).is_err());
    }

    #[test]
    fn check_refuses_malformed_configurations() {
        assert!(Membership { voters: vec![2, 1], learners: vec![] }.check().is_err());
        assert!(Membership { voters: vec![1, 1], learners: vec![] }.check().is_err());
        assert!(Membership { voters: vec![1], learners: vec![1] }.check().is_err());
        assert!(Membership { voters: vec![0, 1], learners: vec![] }.check().is_err());
        assert!(Membership { voters: (1..=MAX_MEMBERS as u64 + 1).collect(), learners: vec![] }.check().is_err());
        assert!(Membership { voters: vec![1, 2], learners: vec![3] }.check().is_ok());
    }

    #[test]
    fn the_newest_configuration_in_the_log_is_current_and_truncation_reverts_it() {
        let mut log = MembershipLog::new(Membership::voters([1, 2, 3]));
        assert!(log.appended(&[cfg(4, &[1, 2, 3], &[4]), cfg(9, &[1, 2, 3, 4], &[])]));
        assert_eq!(log.current().voters, [1, 2, 3, 4]);
        assert_eq!(log.current_index(), 9);
        assert_eq!(log.at(8).learners, [4]);
        assert_eq!(log.at(3).learners, Vec::<NodeId>::new());
        assert!(log.truncated_from(9), "the entry at 9 is gone");
        assert_eq!(log.current().learners, [4]);
        assert!(!log.truncated_from(5), "nothing at or after 5");
        log.compacted_to(6);
        assert_eq!((log.current().learners.as_slice(), log.current_index()), ([4].as_slice(), 0));
        log.reset(Membership::voters([5]));
        assert_eq!(log.current().voters, [5]);
    }
}
