//! Lines a learner wants that no single core event carries: a follower appending the
//! leader's entries (aggregated, at most one line per [`APPENDED_LINE_EVERY`]), catching
//! up with the leader's commit index, and a deposed leader noticing the higher term.
//!
//! The [`Observer`] sees each peer message before it is stepped and the node's state
//! after each turn, and answers with the lines to log. It does O(1) work per call and
//! reads no clock: the caller passes `now`, so the tests drive it by hand.

use raft_core::{Index, Message, MessageBody, NodeId, RoleKind, Term};
use std::time::{Duration, Instant};

/// At most one "appended entries" line this often: a follower under load appends
/// hundreds of batches a second, and one line a second says the same thing readably.
pub const APPENDED_LINE_EVERY: Duration = Duration::from_secs(1);
/// A follower this many entries behind the leader's commit index is catching up (and
/// says so when it has): a follower in the slower half of the cluster trails by a few
/// batches in normal operation, which is not worth a line.
pub const CATCH_UP_LAG_ENTRIES: Index = 16;

/// Entries appended from a leader and not yet reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Appended {
    first: Index,
    last: Index,
    count: u64,
    from: NodeId,
}

/// What the node looked like at the end of the previous turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub last_index: Index,
    pub commit: Index,
}

#[derive(Debug)]
pub struct Observer {
    prev: Seen,
    pending: Option<Appended>,
    last_appended_line: Option<Instant>,
    /// Catching up: the leader's commit index to reach (raised by every later message).
    behind: Option<Index>,
    /// As leader: the first peer seen with a higher term, and that term.
    higher_term: Option<(NodeId, Term)>,
}

impl Observer {
    pub fn new(start: Seen) -> Observer {
        Observer { prev: start, pending: None, last_appended_line: None, behind: None, higher_term: None }
    }

    /// A peer message about to be stepped into the core.
    pub fn on_message(&mut self, msg: &Message) {
        let prev = self.prev;
        if prev.role == RoleKind::Leader && msg.term > prev.term && self.higher_term.is_none() {
            self.higher_term = Some((msg.from, msg.term));
        }
        if msg.term < prev.term {
            return;
        }
        let (commit, gap) = match &msg.body {
            MessageBody::Append { base_index, commit, .. } => (*commit, *base_index > prev.last_index),
            MessageBody::Heartbeat { commit, .. } => (*commit, false),
            _ => return,
        };
        let lagging = gap || commit > prev.last_index + CATCH_UP_LAG_ENTRIES;
        match &mut self.behind {
            Some(target) => *target = (*target).max(commit),
            None if lagging => self.behind = Some(commit),
            None => {}
        }
    }

    /// The log dropped its entries from `from` on (a conflict, [`raft_core::Event::LogTruncated`])
    /// this turn: what is appended after them is counted from there, and what was
    /// counted of them is not.
    pub fn on_truncated(&mut self, from: Index) {
        self.prev.last_index = self.prev.last_index.min(from - 1);
        if let Some(p) = &mut self.pending {
            if p.last >= from {
                let dropped = p.last - (from - 1).max(p.first - 1);
                p.last = from - 1;
                p.count = p.count.saturating_sub(dropped);
                if p.count == 0 || p.last < p.first {
                    self.pending = None;
                }
            }
        }
    }

    /// A snapshot from the leader replaced the log up to `index` this turn: that jump of
    /// the last index is not entries appended.
    pub fn on_snapshot(&mut self, index: Index) {
        self.prev.last_index = self.prev.last_index.max(index);
    }

    /// The node's state after a turn; returns the lines to log, in order.
    pub fn after_turn(&mut self, now: Instant, seen: Seen) -> Vec<String> {
        let prev = std::mem::replace(&mut self.prev, seen);
        let mut lines = Vec::new();
        if prev.role == RoleKind::Leader && seen.role != RoleKind::Leader && seen.term > prev.term {
            let from = match self.higher_term {
                Some((from, term)) if term <= seen.term => format!(" from n{from}"),
                _ => String::new(),
            };
            lines.push(format!("stepped down: saw term {}{from} (was leader of term {})", seen.term, prev.term));
        }
        if seen.role != RoleKind::Leader || seen.term != prev.term {
            self.higher_term = None;
        }
        if seen.role != RoleKind::Follower || seen.leader != prev.leader {
            // A new leader (or none): what was pending came from the old one.
            self.flush(&mut lines, now);
            self.behind = None;
        }
        if seen.role == RoleKind::Follower && seen.last_index > prev.last_index {
            let from = seen.leader.unwrap_or(0);
            let n = seen.last_index - prev.last_index;
            match &mut self.pending {
                Some(p) if p.from == from && p.last == prev.last_index => {
                    p.last = seen.last_index;
                    p.count += n;
                }
                _ => {
                    self.flush(&mut lines, now);
                    self.pending = Some(Appended { first: prev.last_index + 1, last: seen.last_index, count: n, from });
                }
            }
        }
        let due = self.last_appended_line.is_none_or(|t| now.duration_since(t) >= APPENDED_LINE_EVERY);
        if due {
            self.flush(&mut lines, now);
        }
        if let Some(target) = self.behind {
            if seen.role == RoleKind::Follower && seen.commit >= target {
                self.flush(&mut lines, now);
                let leader = seen.leader.map_or("the leader".to_string(), |l| format!("n{l}"));
                lines.push(format!("caught up with {leader} at index={}", seen.commit));
                self.behind = None;
            }
        }
        lines
    }

    /// The pending "appended entries" line, if any (also on shutdown).
    pub fn flush(&mut self, lines: &mut Vec<String>, now: Instant) {
        if let Some(p) = self.pending.take() {
            let from = if p.from == 0 { String::new() } else { format!(" from n{}", p.from) };
            lines.push(if p.count == 1 {
                format!("appended entry {}{from}", p.last)
            } else {
                format!("appended entries {}..{}{from} ({} entries)", p.first, p.last, p.count)
            });
            self.last_appended_line = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(role: RoleKind, term: Term, leader: Option<NodeId>, last_index: Index, commit: Index) -> Seen {
        Seen { role, term, leader, last_index, commit }
    }

    fn append(from: NodeId, term: Term, base_index: Index, n: u64, commit: Index) -> Message {
        let entries = (base_index + 1..=base_index + n)
            .map(|index| raft_core::Entry { index, term, data: raft_core::EntryData::Noop })
            .collect();
        Message { from, to: 2, term, body: MessageBody::Append { base_index, base_term: term, entries, commit } }
    }

    #[test]
    fn appends_are_aggregated_to_one_line_a_second_and_catching_up_is_reported() {
        let t0 = Instant::now();
        let f = |last, commit| seen(RoleKind::Follower, 3, Some(1), last, commit);
        let mut o = Observer::new(f(100, 100));
        // The leader's commit is far ahead: this follower is catching up.
        o.on_message(&append(1, 3, 100, 100, 2100));
        assert_eq!(o.after_turn(t0, f(200, 200)), ["appended entries 101..200 from n1 (100 entries)"]);
        for k in 1..10u64 {
            o.on_message(&append(1, 3, 100 + 100 * k, 100, 2100));
            let lines = o.after_turn(t0 + Duration::from_millis(50 * k), f(200 + 100 * k, 200 + 100 * k));
            assert!(lines.is_empty(), "aggregated within the second: {lines:?}");
        }
        let lines = o.after_turn(t0 + Duration::from_millis(1000), f(1100, 1100));
        assert_eq!(lines, ["appended entries 201..1100 from n1 (900 entries)"]);
        o.on_message(&append(1, 3, 1100, 1000, 2100));
        let lines = o.after_turn(t0 + Duration::from_millis(1100), f(2100, 2100));
        assert_eq!(
            lines,
            ["appended entries 1101..2100 from n1 (1000 entries)", "caught up with n1 at index=2100"],
            "the rest is flushed before the caught-up line"
        );
        // In step with the leader: appends are still reported (once a second), no catch-up.
        o.on_message(&append(1, 3, 2100, 1, 2100));
        let lines = o.after_turn(t0 + Duration::from_millis(3000), f(2101, 2100));
        assert_eq!(lines, ["appended entry 2101 from n1"]);
    }

    #[test]
    fn a_small_lag_is_not_catching_up_but_a_gap_is() {
        let t0 = Instant::now();
        let f = |last, commit| seen(RoleKind::Follower, 3, Some(1), last, commit);
        let mut o = Observer::new(f(100, 100));
        o.on_message(&append(1, 3, 100, 5, 103));
        let lines = o.after_turn(t0, f(105, 103));
        assert!(lines.iter().all(|l| !l.contains("caught up")), "{lines:?}");
        // An append that starts past our log's end: we missed entries.
        o.on_message(&append(1, 3, 150, 5, 154));
        let lines = o.after_turn(t0, f(105, 103));
        assert!(lines.is_empty(), "rejected: nothing appended yet: {lines:?}");
        o.on_message(&append(1, 3, 105, 50, 154));
        let lines = o.after_turn(t0 + APPENDED_LINE_EVERY, f(155, 154));
        assert_eq!(lines, ["appended entries 106..155 from n1 (50 entries)", "caught up with n1 at index=154"]);
    }

    #[test]
    fn entries_replaced_after_a_truncation_count_as_appended() {
        let t0 = Instant::now();
        let f = |last, commit| seen(RoleKind::Follower, 3, Some(5), last, commit);
        let mut o = Observer::new(f(131, 130));
        // 131 (of an old term) dropped, 131 and 132 of the new leader appended, one turn.
        o.on_truncated(131);
        assert_eq!(o.after_turn(t0, f(132, 132)), ["appended entries 131..132 from n5 (2 entries)"]);
        // A pending count loses what a truncation took back.
        let t1 = t0 + Duration::from_millis(10);
        let _ = o.after_turn(t1, f(140, 132));
        o.on_truncated(138);
        let lines = o.after_turn(t0 + APPENDED_LINE_EVERY, f(137, 132));
        assert_eq!(lines, ["appended entries 133..137 from n5 (5 entries)"]);
    }

    #[test]
    fn a_snapshot_is_not_counted_as_appended_entries() {
        let t0 = Instant::now();
        let f = |last, commit| seen(RoleKind::Follower, 1, Some(1), last, commit);
        let mut o = Observer::new(f(1, 1));
        o.on_message(&append(1, 1, 1777, 224, 2001));
        o.on_snapshot(1777);
        let lines = o.after_turn(t0, f(2001, 2001));
        assert_eq!(lines, ["appended entries 1778..2001 from n1 (224 entries)", "caught up with n1 at index=2001"]);
    }

    #[test]
    fn a_deposed_leader_says_who_had_the_higher_term() {
        let t0 = Instant::now();
        let mut o = Observer::new(seen(RoleKind::Leader, 7, Some(2), 50, 48));
        o.on_message(&append(3, 9, 60, 0, 60));
        let lines = o.after_turn(t0, seen(RoleKind::Follower, 9, Some(3), 50, 48));
        assert_eq!(lines, ["stepped down: saw term 9 from n3 (was leader of term 7)"]);
        // Leader again later, then deposed by a vote request we cannot attribute: no sender.
        let _ = o.after_turn(t0, seen(RoleKind::Leader, 10, Some(2), 60, 60));
        let lines = o.after_turn(t0, seen(RoleKind::Follower, 11, None, 60, 60));
        assert_eq!(lines, ["stepped down: saw term 11 (was leader of term 10)"]);
    }
}
