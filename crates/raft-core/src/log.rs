//! The in-memory log: the entries after the last snapshot, in a `VecDeque` addressed by
//! index minus an offset, plus the cursors that say how far each entry has travelled.
//!
//! ```text
//!   snap_index  <  applied  <=  committed  <=  last_index
//!   stable      <   unstable_from - 1      <=  last_index
//! ```
//!
//! * `committed`: known to be on a majority (§5.3); never moves back.
//! * `applied`: handed out in `Ready::committed` (or covered by an installed snapshot).
//! * `unstable_from`: the first entry not yet handed out in `Ready::entries`.
//! * `stable`: the last entry the driver reported durable through `RawNode::persisted`.
//!
//! Every lookup is O(1); the only scans (`find_conflict_by_term`) walk back over one
//! divergent term at most, and only on a rejected append.

use crate::{Entry, Index, Term};
use std::collections::VecDeque;

pub(crate) struct RaftLog {
    /// The last index covered by the snapshot (0 when there is none).
    snap_index: Index,
    snap_term: Term,
    /// `entries[k].index == snap_index + 1 + k`.
    entries: VecDeque<Entry>,
    pub committed: Index,
    pub applied: Index,
    pub stable: Index,
    pub unstable_from: Index,
}

/// What happened when a follower appended a leader's entries.
pub(crate) struct AppendOutcome {
    /// The index of the last entry of the message: known to match the leader.
    pub last_new: Index,
    /// The first entry this append wrote (everything after it was replaced), if any.
    pub first_new: Option<Index>,
    /// Uncommitted entries dropped for a conflict: first and last index, and the term of
    /// the first one dropped.
    pub truncated: Option<(Index, Index, Term)>,
}

impl RaftLog {
    /// A log restored from disk: everything in it is durable and was handed out before.
    pub fn restore_from(snap_index: Index, snap_term: Term, entries: Vec<Entry>, committed: Index) -> RaftLog {
        let log = RaftLog {
            snap_index,
            snap_term,
            entries: entries.into(),
            committed,
            applied: snap_index,
            stable: 0,
            unstable_from: 0,
        };
        let last = log.last_index();
        RaftLog { stable: last, unstable_from: last + 1, ..log }
    }

    pub fn snap_index(&self) -> Index {
        self.snap_index
    }

    pub fn first_index(&self) -> Index {
        self.snap_index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snap_index + self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snap_term, |e| e.term)
    }

    /// The term of the entry at `index`, if this node still knows it (the snapshot's
    /// last index counts; anything before it was compacted away).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snap_index {
            return None;
        }
        self.entries.get((index - self.snap_index - 1) as usize)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The entries from `index` on (all of them if `index` is at or before the first).
    pub fn entries_from(&self, index: Index) -> impl Iterator<Item = &Entry> {
        let skip = index.saturating_sub(self.snap_index + 1) as usize;
        self.entries.range(skip.min(self.entries.len())..)
    }

    /// §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends one entry made by this node as leader.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "log must stay contiguous: appending {entry}");
        assert!(entry.term >= self.last_term(), "terms never go back in a log: appending {entry}");
        self.entries.push_back(entry);
    }

    /// Up to `max_entries` entries from `from` on, at most `max_bytes` (but at least one
    /// entry when there is one, so a big entry still moves).
    pub fn slice(&self, from: Index, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        assert!(from > self.snap_index, "slice from {from} reaches into the snapshot at {}", self.snap_index);
        let start = (from - self.snap_index - 1) as usize;
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries.range(start.min(self.entries.len())..) {
            bytes += e.size_bytes();
            if out.len() >= max_entries || (!out.is_empty() && bytes > max_bytes) {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// The largest index at or below `index` whose term is at most `term`: where a leader's
    /// and a follower's logs may agree again (fast backtracking, §5.3). Returns an index
    /// below the snapshot when the search runs into compacted entries.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> Index {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term && i > 0 => i -= 1,
                Some(_) => return i,
                None => return i.min(self.snap_index.saturating_sub(1)),
            }
        }
    }

    /// A follower's side of AppendEntries once `base` matched (§5.3): skip entries it has,
    /// truncate at the first conflict, append the rest.
    ///
    /// `no_truncate` plants the bug of the same name; `relaxed` turns off the check that a
    /// committed entry is never replaced (with any planted bug on, the simulator's checkers
    /// should report the damage rather than this assertion).
    pub fn append_from_leader(
        &mut self,
        base: Index,
        entries: Vec<Entry>,
        no_truncate: bool,
        relaxed: bool,
    ) -> AppendOutcome {
        let last_new = base + entries.len() as Index;
        let mut new = entries.into_iter().peekable();
        // Entries this log already has with the same term match by the Log Matching property.
        while let Some(e) = new.peek() {
            if e.index <= self.snap_index || (e.index <= self.last_index() && self.term(e.index) == Some(e.term)) {
                new.next();
            } else {
                break;
            }
        }
        let Some(first) = new.peek() else { return AppendOutcome { last_new, first_new: None, truncated: None } };
        let first_index = first.index;
        let mut truncated = None;
        if first_index <= self.last_index() {
            // A conflict: an entry at this index with another term (§5.3 step 3).
            assert!(
                relaxed || first_index > self.committed,
                "conflicting entry {first} would truncate committed index {}",
                self.committed
            );
            let dropped_term = self.term(first_index).expect("a conflicting entry is in the log");
            truncated = Some((first_index, self.last_index(), dropped_term));
            self.unstable_from = self.unstable_from.min(first_index);
            self.stable = self.stable.min(first_index - 1);
            if no_truncate {
                // Deliberate bug: overwrite in place and leave the stale suffix behind.
                for e in new {
                    let k = (e.index - self.snap_index - 1) as usize;
                    if k < self.entries.len() {
                        self.entries[k] = e;
                    } else {
                        self.entries.push_back(e);
                    }
                }
                return AppendOutcome { last_new, first_new: Some(first_index), truncated };
            }
            self.entries.truncate((first_index - self.snap_index - 1) as usize);
        }
        for e in new {
            assert_eq!(e.index, self.last_index() + 1, "append from leader must be contiguous");
            self.entries.push_back(e);
        }
        AppendOutcome { last_new, first_new: Some(first_index), truncated }
    }

    /// Advances the commit index. It never moves back (§5.3, State Machine Safety).
    pub fn commit_to(&mut self, index: Index) {
        assert!(index <= self.last_index(), "commit {index} beyond last index {}", self.last_index());
        if index > self.committed {
            self.committed = index;
        }
    }

    /// The driver made everything up to `index`@`term` durable. Stale reports (the entry
    /// was replaced since) are ignored.
    pub fn stable_to(&mut self, index: Index, term: Term) -> bool {
        if index <= self.stable || self.term(index) != Some(term) || index >= self.unstable_from {
            return false;
        }
        self.stable = index;
        true
    }

    /// Entries not yet handed out for persisting, handed out once.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from.max(self.first_index());
        let out: Vec<Entry> = if from <= self.last_index() {
            self.entries.range((from - self.snap_index - 1) as usize..).cloned().collect()
        } else {
            Vec::new()
        };
        self.unstable_from = self.last_index() + 1;
        out
    }

    /// Committed entries not yet handed out for applying, handed out once, in order.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        assert!(self.applied >= self.snap_index, "applied {} behind snapshot {}", self.applied, self.snap_index);
        if self.committed <= self.applied {
            return Vec::new();
        }
        let lo = (self.applied - self.snap_index) as usize;
        let hi = (self.committed - self.snap_index) as usize;
        let out: Vec<Entry> = self.entries.range(lo..hi).cloned().collect();
        self.applied = self.committed;
        out
    }

    /// Drops the entries up to `index` (the application snapshotted them) and returns
    /// them, untouched: freeing hundreds of thousands of entries takes tens of
    /// milliseconds, which the driver can spread over its turns.
    pub fn compact(&mut self, index: Index) -> VecDeque<Entry> {
        assert!(index > self.snap_index && index <= self.applied, "compact to {index} outside the applied log");
        let term = self.term(index).expect("compaction index in the log");
        // Keep the (short) tail, hand back the (long) prefix without touching it.
        let keep = self.entries.split_off((index - self.snap_index) as usize);
        let dropped = std::mem::replace(&mut self.entries, keep);
        self.snap_index = index;
        self.snap_term = term;
        self.stable = self.stable.max(index);
        dropped
    }

    /// Replaces the whole log by a snapshot received from the leader (§7).
    pub fn restore(&mut self, index: Index, term: Term) {
        assert!(index > self.committed, "restoring snapshot {index} at or below commit {}", self.committed);
        self.entries.clear();
        self.snap_index = index;
        self.snap_term = term;
        self.committed = index;
        self.applied = index;
        self.stable = index;
        self.unstable_from = index + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryData;

    fn log(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, &term)| Entry { index: k as Index + 1, term, data: EntryData::Noop })
            .collect();
        RaftLog::restore_from(0, 0, entries, 0)
    }

    fn e(index: Index, term: Term) -> Entry {
        Entry { index, term, data: EntryData::Noop }
    }

    fn terms(l: &RaftLog) -> Vec<Term> {
        l.entries().map(|e| e.term).collect()
    }

    #[test]
    fn find_conflict_by_term_skips_a_whole_term() {
        let l = log(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
        assert_eq!(l.find_conflict_by_term(10, 3), 3, "the last index with term <= 3");
        assert_eq!(l.find_conflict_by_term(10, 6), 10);
        assert_eq!(l.find_conflict_by_term(7, 4), 5);
        assert_eq!(l.find_conflict_by_term(99, 5), 7, "clamped to the last index");
        assert_eq!(l.find_conflict_by_term(10, 0), 0);
    }

    #[test]
    fn append_skips_matching_truncates_conflicts_and_never_shortens() {
        let mut l = log(&[1, 1, 2, 2]);
        // A stale, shorter append of matching entries changes nothing.
        l.append_from_leader(1, vec![e(2, 1), e(3, 2)], false, false);
        assert_eq!(terms(&l), [1, 1, 2, 2]);
        assert_eq!(l.unstable_from, 5, "nothing to hand out again");
        // A conflict at 3 replaces the suffix from there and re-hands it out.
        let out = l.append_from_leader(2, vec![e(3, 3)], false, false);
        assert_eq!(out.truncated, Some((3, 4, 2)), "entries 3..4 of term 2 dropped");
        assert_eq!(terms(&l), [1, 1, 3]);
        assert_eq!((l.unstable_from, l.stable), (3, 2));
        assert_eq!(l.take_unstable(), vec![e(3, 3)]);
    }

    #[test]
    fn no_truncate_bug_leaves_the_stale_suffix() {
        let mut l = log(&[1, 1, 2, 2]);
        l.append_from_leader(2, vec![e(3, 3)], true, true);
        assert_eq!(terms(&l), [1, 1, 3, 2], "the planted bug keeps 4@2 after 3@3");
    }

    #[test]
    #[should_panic(expected = "would truncate committed index")]
    fn replacing_a_committed_entry_is_a_bug() {
        let mut l = log(&[1, 1, 2]);
        l.commit_to(3);
        l.append_from_leader(2, vec![e(3, 3)], false, false);
    }

    #[test]
    fn compaction_keeps_indexes_and_terms_after_the_snapshot() {
        let mut l = log(&[1, 1, 2, 2, 3]);
        l.commit_to(5);
        assert_eq!(l.take_committed().len(), 5);
        l.compact(3);
        assert_eq!((l.first_index(), l.last_index(), l.term(3), l.term(2)), (4, 5, Some(2), None));
        assert_eq!(l.slice(4, 10, 1 << 20), vec![e(4, 2), e(5, 3)]);
        assert!(l.find_conflict_by_term(5, 1) < 3, "below the snapshot: the caller must send it");
    }

    #[test]
    fn slice_respects_limits_but_moves_one_big_entry() {
        let l = log(&[1, 1, 1, 1]);
        assert_eq!(l.slice(1, 2, 1 << 20).len(), 2);
        assert_eq!(l.slice(1, 10, 1).len(), 1, "one entry even if it is over the byte limit");
        assert_eq!(l.slice(2, 10, 48).len(), 2);
    }

    #[test]
    fn stale_persist_reports_are_ignored() {
        let mut l = log(&[]);
        l.append(e(1, 1));
        l.append(e(2, 1));
        let _ = l.take_unstable();
        l.append_from_leader(1, vec![e(2, 2)], false, false);
        assert!(!l.stable_to(2, 1), "2@1 was replaced by 2@2 before the report came");
        assert!(l.stable_to(1, 1));
        assert!(!l.stable_to(2, 2), "2@2 was not handed out yet");
    }
}
