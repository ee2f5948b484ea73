//! The checkers bite: with one of raft-core's planted bugs on every node, one in the
//! shipped driver (raft-replica) or its disk order, or one of the simulator's own (stale
//! reads, a partition never healed), the simulator finds a
//! violation within a bounded number of seeds, and the very same schedules against the
//! correct core find none. Run with `cargo test -p raft-sim --features bugs`.
#![cfg(feature = "bugs")]

mod common;

use common::{jobs, SharedBuf};
use raft_sim::{run_seed, run_seeds, Bug, Kind, Options};

/// Seeds the simulator may use to find each bug.
const MAX_SEEDS: u64 = 2000;

/// Finds the first failing seed with `bug` planted, checks the same seeds pass
/// without it, checks the failure replays, and returns (seed, kind).
fn finds(bug: Bug, kinds: &[Kind]) -> (u64, Kind) {
    let with_bug = Options { bug: Some(bug), bias: Some(bug), ..Options::default() };
    let report = run_seeds(0, MAX_SEEDS, &with_bug, jobs(), true);
    let first = report.failures.first().unwrap_or_else(|| panic!("{bug:?} not found in {MAX_SEEDS} seeds"));
    let v = first.violation.clone().expect("failures have one");
    eprintln!("{bug:?}: found at seed {} ({} seeds run): {v}", first.seed, report.seeds);
    assert!(kinds.contains(&v.kind), "{bug:?} found as {:?}, expected one of {kinds:?}: {v}", v.kind);

    // The same schedules, the same fault mix, the correct core: nothing to report.
    let without = Options { bug: None, bias: Some(bug), ..Options::default() };
    let control = run_seeds(0, first.seed + 1, &without, jobs(), false);
    for f in &control.failures {
        eprintln!("without the bug, seed {}: {}", f.seed, f.violation.as_ref().expect("has one"));
    }
    assert!(control.failures.is_empty(), "the correct core fails the {bug:?} schedules");

    // The failing seed replays to the same violation, and the trace ends with it.
    let buf = SharedBuf::default();
    let again = run_seed(first.seed, &with_bug, Some(Box::new(buf.clone())));
    assert_eq!(again.violation.as_ref(), Some(&v));
    let text = buf.text();
    assert!(text.lines().any(|l| l.contains(" -> n")), "trace has no messages");
    assert!(text.trim_end().lines().last().expect("non-empty").contains("VIOLATION"), "trace does not end with it");
    (first.seed, v.kind)
}

#[test]
fn double_vote_is_found() {
    finds(Bug::DoubleVote, &[Kind::VoteSafety, Kind::ElectionSafety]);
}

#[test]
fn commit_old_term_is_found() {
    finds(Bug::CommitOldTerm, &[Kind::LeaderCompleteness, Kind::StateMachineSafety, Kind::Linearizability]);
}

/// Not a raft-core bug: the driver skips ReadIndex. Only linearizability can tell.
#[test]
fn stale_reads_are_found() {
    finds(Bug::StaleRead, &[Kind::Linearizability]);
}

/// Not a raft-core bug: the partition is never healed. Only liveness can tell.
#[test]
fn a_partition_left_in_place_is_found() {
    finds(Bug::NoHeal, &[Kind::Liveness]);
}

/// The single-server membership change bug (§4.1): changes that overlap (a second one
/// before the first committed) let two configurations without a common majority elect.
#[test]
fn overlapping_membership_changes_are_found() {
    finds(
        Bug::OverlappingChanges,
        &[
            Kind::ElectionSafety,
            Kind::LeaderCompleteness,
            Kind::StateMachineSafety,
            Kind::Linearizability,
            Kind::LogMatching,
        ],
    );
}

#[test]
fn no_truncate_is_found() {
    finds(Bug::NoTruncate, &[Kind::LogMatching, Kind::StateMachineSafety, Kind::Contract]);
}

/// A driver bug (raft-replica): a write is answered when appended, not when committed.
/// A leader that loses its uncommitted tail has then confirmed writes that never happen.
#[test]
fn answering_on_append_is_found() {
    finds(Bug::AnswerOnAppend, &[Kind::Linearizability]);
}

/// A driver bug (raft-replica): votes and acks leave before the batch is persisted.
#[test]
fn acking_before_persisting_is_found() {
    finds(Bug::AckBeforePersist, &[Kind::Contract, Kind::VoteSafety, Kind::ElectionSafety]);
}

/// A storage-order bug the new crash points found: an install that writes the snapshot's
/// commit index before the snapshot file. A crash in between, and the restarted node
/// counts its old log's uncommitted tail as committed.
#[test]
fn a_commit_index_written_before_its_snapshot_is_found() {
    finds(Bug::CommitBeforeSnapshot, &[Kind::StateMachineSafety, Kind::LogMatching, Kind::Linearizability]);
}
