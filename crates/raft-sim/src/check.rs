//! The invariant checkers. The simulator feeds them facts as they happen (an entry
//! written to a node's disk, a vote sent, an entry committed or applied, a node seen as
//! leader) and they keep just enough global history to check each fact in O(1) or, on
//! an election, in O(log length). They never read a node's internals: only what the
//! node persisted, sent, applied, or reported in its status.

use crate::rng::FxHashMap;
use raft_core::{Index, NodeId, Term};
use std::fmt;

/// Which property broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Figure 3, Election Safety: at most one leader per term.
    ElectionSafety,
    /// §5.2: a node grants at most one vote per term (and never takes it back on disk).
    VoteSafety,
    /// Figure 3, Log Matching: same index and term means identical logs up to there.
    LogMatching,
    /// Figure 3, Leader Completeness: a committed entry is in every later leader's log.
    LeaderCompleteness,
    /// Figure 3, State Machine Safety: no two nodes apply different entries at one index.
    StateMachineSafety,
    /// Commit index moved back (in one incarnation, or on disk across restarts), or a
    /// term on disk moved back.
    Regression,
    /// A ReadIndex read was released before the state machine caught up to its index.
    ReadSafety,
    /// A client history has no linearization (raft-lincheck).
    Linearizability,
    /// After faults stopped, the cluster did not settle within the bound.
    Liveness,
    /// The core broke its driving contract (Ready shape, status disagrees with its log,
    /// a message to an unknown node, a command the state machine cannot decode...).
    Contract,
    /// The core panicked (one of its own assertions fired).
    Panic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ElectionSafety => "election safety",
            Kind::VoteSafety => "vote safety",
            Kind::LogMatching => "log matching",
            Kind::LeaderCompleteness => "leader completeness",
            Kind::StateMachineSafety => "state machine safety",
            Kind::Regression => "monotonicity",
            Kind::ReadSafety => "read safety",
            Kind::Linearizability => "linearizability",
            Kind::Liveness => "liveness",
            Kind::Contract => "driver contract",
            Kind::Panic => "panic",
        }
    }
}

/// A broken invariant, with the tick it was found at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: Kind,
    pub tick: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated at tick {}: {}", self.kind.name(), self.tick, self.detail)
    }
}

/// One distinct `(index, term)` ever written to any log: its predecessor's term and the
/// digest of its data. Log Matching holds iff every write agrees with the first fact.
#[derive(Clone, Copy, Debug)]
struct LogFact {
    term: Term,
    prev_term: Term,
    digest: u64,
    first_node: NodeId,
}

/// A committed (or applied) entry: what it is, and the lowest term in which some node
/// was seen to know it committed. An entry committed in term T must be in the log of
/// every leader of a term above T; `known_in_term` >= the true commit term, so checking
/// leaders above it only is sound (never a false alarm for a stale, late leader).
#[derive(Clone, Copy, Debug)]
struct CommitFact {
    term: Term,
    digest: u64,
    known_in_term: Term,
    first_node: NodeId,
}

/// The global memory of the checkers, for one simulated run.
#[derive(Default)]
pub struct Checker {
    /// The tick violations are stamped with (the simulator keeps it current).
    pub tick: u64,
    leaders: FxHashMap<Term, NodeId>,
    votes: FxHashMap<(NodeId, Term), NodeId>,
    log_facts: Vec<Vec<LogFact>>,
    committed: Vec<Option<CommitFact>>,
    snapshots: FxHashMap<Index, (u64, NodeId)>,
    /// Distinct (term, leader) pairs seen.
    pub elections: u64,
}

impl Checker {
    pub fn fail<T>(&self, kind: Kind, detail: String) -> Result<T, Violation> {
        Err(Violation { kind, tick: self.tick, detail })
    }

    /// `id` acts as leader of `term` (its status says so, or it sent a leader-only
    /// message). Returns true the first time this pair is seen.
    pub fn leader(&mut self, term: Term, id: NodeId, evidence: &str) -> Result<bool, Violation> {
        match self.leaders.get(&term) {
            Some(&other) if other != id => self
                .fail(Kind::ElectionSafety, format!("n{other} and n{id} are both leaders of term {term} ({evidence})")),
            Some(_) => Ok(false),
            None => {
                self.leaders.insert(term, id);
                self.elections += 1;
                Ok(true)
            }
        }
    }

    /// `voter` sent a granted VoteResponse to `candidate` in `term`.
    pub fn vote_granted(&mut self, voter: NodeId, term: Term, candidate: NodeId) -> Result<(), Violation> {
        match self.votes.get(&(voter, term)) {
            Some(&other) if other != candidate => self.fail(
                Kind::VoteSafety,
                format!("n{voter} granted its term-{term} vote to n{other} and then to n{candidate}"),
            ),
            Some(_) => Ok(()),
            None => {
                self.votes.insert((voter, term), candidate);
                Ok(())
            }
        }
    }

    /// `node` wrote entry `index`@`term` (data `digest`) after an entry of `prev_term`.
    pub fn appended(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        prev_term: Term,
        digest: u64,
    ) -> Result<(), Violation> {
        if term < prev_term {
            return self.fail(
                Kind::LogMatching,
                format!(
                    "n{node} wrote {index}@{term} after an entry of term {prev_term}: terms in a log never decrease"
                ),
            );
        }
        let i = index as usize;
        if self.log_facts.len() <= i {
            self.log_facts.resize(i + 1, Vec::new());
        }
        match self.log_facts[i].iter().find(|f| f.term == term) {
            Some(f) if f.prev_term != prev_term => self.fail(
                Kind::LogMatching,
                format!(
                    "entry {index}@{term} follows term {} on n{} but term {prev_term} on n{node}",
                    f.prev_term, f.first_node
                ),
            ),
            Some(f) if f.digest != digest => self.fail(
                Kind::LogMatching,
                format!("entry {index}@{term} carries different data on n{} and n{node}", f.first_node),
            ),
            Some(_) => Ok(()),
            None => {
                self.log_facts[i].push(LogFact { term, prev_term, digest, first_node: node });
                Ok(())
            }
        }
    }

    fn record_commit(
        &mut self,
        kind_word: &str,
        node: NodeId,
        index: Index,
        term: Term,
        digest: u64,
        known_in_term: Term,
    ) -> Result<(), Violation> {
        let i = index as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        match &mut self.committed[i] {
            Some(f) if f.term != term || f.digest != digest => {
                let (t, n) = (f.term, f.first_node);
                self.fail(
                    Kind::StateMachineSafety,
                    format!(
                        "index {index}: n{n} committed/applied {index}@{t}, but n{node} {kind_word} {index}@{term}"
                    ),
                )
            }
            Some(f) => {
                f.known_in_term = f.known_in_term.min(known_in_term);
                Ok(())
            }
            slot @ None => {
                *slot = Some(CommitFact { term, digest, known_in_term, first_node: node });
                Ok(())
            }
        }
    }

    /// `node`, in `node_term`, reports entry `index`@`term` as committed.
    pub fn committed(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        digest: u64,
        node_term: Term,
    ) -> Result<(), Violation> {
        self.record_commit("committed", node, index, term, digest, node_term)
    }

    /// `node`, in `node_term`, applied entry `index`@`term` to its state machine.
    pub fn applied(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        digest: u64,
        node_term: Term,
    ) -> Result<(), Violation> {
        self.record_commit("applied", node, index, term, digest, node_term)
    }

    /// `node` made (or installed) a snapshot of its state machine at `index`: all nodes
    /// that applied the same prefix must produce the same bytes.
    pub fn snapshot(&mut self, node: NodeId, index: Index, digest: u64) -> Result<(), Violation> {
        match self.snapshots.get(&index) {
            Some(&(d, n)) if d != digest => self.fail(
                Kind::StateMachineSafety,
                format!("state machine snapshots at index {index} differ between n{n} and n{node}"),
            ),
            Some(_) => Ok(()),
            None => {
                self.snapshots.insert(index, (digest, node));
                Ok(())
            }
        }
    }

    /// `node` took on a snapshot ending at `index`@`term`: if that index is known
    /// committed, it must be the same entry.
    pub fn snapshot_covers(&self, node: NodeId, index: Index, term: Term) -> Result<(), Violation> {
        match self.committed.get(index as usize) {
            Some(Some(f)) if f.term != term => self.fail(
                Kind::StateMachineSafety,
                format!("n{node} installs a snapshot ending at {index}@{term}, but {index}@{} was committed", f.term),
            ),
            _ => Ok(()),
        }
    }

    /// `id` just became leader of `term`. Its log (entries after `snapshot_index` up to
    /// `last_index`, with terms from `term_at`) must hold every entry known committed
    /// in an earlier term.
    pub fn leader_completeness(
        &self,
        id: NodeId,
        term: Term,
        snapshot_index: Index,
        last_index: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) -> Result<(), Violation> {
        for i in (snapshot_index as usize + 1)..self.committed.len() {
            let Some(f) = self.committed[i] else { continue };
            if f.known_in_term >= term {
                continue;
            }
            let index = i as Index;
            if index > last_index {
                return self.fail(
                    Kind::LeaderCompleteness,
                    format!(
                        "n{id} leads term {term} with last index {last_index}, but {index}@{} was committed in term <= {}",
                        f.term, f.known_in_term
                    ),
                );
            }
            let have = term_at(index);
            if have != Some(f.term) {
                return self.fail(
                    Kind::LeaderCompleteness,
                    format!(
                        "n{id} leads term {term} with {index}@{} in its log, but {index}@{} was committed in term <= {}",
                        have.map_or("?".to_string(), |t| t.to_string()),
                        f.term,
                        f.known_in_term
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let mut c = Checker::default();
        assert_eq!(c.leader(3, 1, "status"), Ok(true));
        assert_eq!(c.leader(3, 1, "status"), Ok(false));
        assert_eq!(c.leader(4, 2, "status"), Ok(true));
        assert_eq!(c.leader(3, 2, "status").unwrap_err().kind, Kind::ElectionSafety);
    }

    #[test]
    fn double_votes_are_caught() {
        let mut c = Checker::default();
        c.vote_granted(1, 2, 3).unwrap();
        c.vote_granted(1, 2, 3).unwrap();
        c.vote_granted(1, 3, 2).unwrap();
        assert_eq!(c.vote_granted(1, 2, 2).unwrap_err().kind, Kind::VoteSafety);
    }

    #[test]
    fn log_matching_catches_a_different_predecessor() {
        let mut c = Checker::default();
        c.appended(1, 1, 1, 0, 10).unwrap();
        c.appended(1, 2, 2, 1, 11).unwrap();
        c.appended(2, 2, 2, 1, 11).unwrap();
        assert_eq!(c.appended(3, 2, 2, 2, 11).unwrap_err().kind, Kind::LogMatching);
        assert_eq!(c.appended(3, 2, 2, 1, 12).unwrap_err().kind, Kind::LogMatching);
        assert_eq!(c.appended(3, 3, 1, 2, 12).unwrap_err().kind, Kind::LogMatching);
    }

    #[test]
    fn state_machine_safety_and_leader_completeness() {
        let mut c = Checker::default();
        c.committed(1, 1, 1, 5, 1).unwrap();
        c.applied(2, 1, 1, 5, 2).unwrap();
        assert_eq!(c.applied(3, 1, 2, 6, 2).unwrap_err().kind, Kind::StateMachineSafety);
        // A leader of term 2 must have 1@1.
        c.leader_completeness(2, 2, 0, 1, |_| Some(1)).unwrap();
        assert_eq!(c.leader_completeness(2, 2, 0, 1, |_| Some(2)).unwrap_err().kind, Kind::LeaderCompleteness);
        assert_eq!(c.leader_completeness(2, 2, 0, 0, |_| None).unwrap_err().kind, Kind::LeaderCompleteness);
        // A late leader of term 1 itself is not bound by it.
        c.leader_completeness(3, 1, 0, 0, |_| None).unwrap();
        // Nor is a leader whose snapshot covers it.
        c.leader_completeness(3, 5, 1, 1, |_| None).unwrap();
    }
}
