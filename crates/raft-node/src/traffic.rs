//! The ring of recent sent messages behind [`Request::Traffic`](raft_wire::Request::Traffic):
//! `raft-supervisor web` asks for it to animate messages between nodes. Recording a
//! message is O(1) (a summary of fixed size, the oldest dropped when full) and an answer
//! is O(what it returns), bounded by the ring, so neither grows with the log or the load.
//! Under heavy load the ring holds only the newest messages; the asker learns how many
//! it missed (`TrafficPage::missed`) and draws those as a count: a sample, by design.

use raft_core::{HardState, Message};
use raft_wire::traffic::{MessageSummary, TrafficPage, MAX_TRAFFIC_PER_REQUEST};
use std::collections::VecDeque;

/// Summaries kept: one answer's worth, about a second of a busy leader's heartbeats and
/// appends to four peers (the web view asks ten times a second). About 30 KiB.
pub const TRAFFIC_RING: usize = MAX_TRAFFIC_PER_REQUEST;

#[derive(Debug, Default)]
pub struct TrafficRing {
    ring: VecDeque<MessageSummary>,
    /// Sequence number of the newest summary (0: none yet).
    last_seq: u64,
}

impl TrafficRing {
    pub fn new() -> TrafficRing {
        TrafficRing { ring: VecDeque::with_capacity(TRAFFIC_RING), last_seq: 0 }
    }

    /// Records one message as it leaves.
    pub fn record(&mut self, msg: &Message, ts_us: u64) {
        self.last_seq += 1;
        if self.ring.len() == TRAFFIC_RING {
            self.ring.pop_front();
        }
        self.ring.push_back(MessageSummary::of(msg, self.last_seq, ts_us));
    }

    /// The summaries after `after_seq`, oldest first, with the node's term and vote.
    pub fn page(&self, after_seq: u64, hs: &HardState) -> TrafficPage {
        // A number from the future (the node restarted and counts from 0 again): all of it.
        let after = if after_seq > self.last_seq { 0 } else { after_seq };
        let first_held = self.ring.front().map_or(self.last_seq + 1, |s| s.seq);
        let start = (after + 1).max(first_held);
        let skip = (start - first_held) as usize;
        let messages: Vec<MessageSummary> = self.ring.iter().skip(skip).copied().collect();
        assert!(messages.len() <= MAX_TRAFFIC_PER_REQUEST, "the ring holds one answer at most");
        assert!(messages.first().is_none_or(|m| m.seq == start), "sequence numbers are contiguous in the ring");
        TrafficPage { messages, last_seq: self.last_seq, missed: start - (after + 1), term: hs.term, vote: hs.vote }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::MessageBody;
    use raft_wire::traffic::MessageKind;

    fn msg(to: u64) -> Message {
        Message { from: 1, to, term: 3, body: MessageBody::Heartbeat { commit: 0, read_seq: 0 } }
    }

    #[test]
    fn answers_what_came_after_and_counts_what_it_dropped() {
        let mut r = TrafficRing::new();
        let hs = HardState { term: 3, vote: Some(2), commit: 0 };
        assert_eq!(r.page(0, &hs), TrafficPage { messages: vec![], last_seq: 0, missed: 0, term: 3, vote: Some(2) });
        for i in 0..10 {
            r.record(&msg(2 + i % 4), 1000 + i);
        }
        let p = r.page(0, &hs);
        assert_eq!((p.messages.len(), p.last_seq, p.missed), (10, 10, 0));
        assert_eq!(p.messages[0].kind, MessageKind::Heartbeat);
        assert_eq!((p.messages[0].seq, p.messages[0].to, p.messages[0].ts_us), (1, 2, 1000));
        let p = r.page(7, &hs);
        assert_eq!(p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert!(r.page(10, &hs).messages.is_empty());
        // Past the ring: the newest ring's worth, and how many were missed.
        for i in 0..(TRAFFIC_RING as u64 + 90) {
            r.record(&msg(2), 2000 + i);
        }
        let p = r.page(5, &hs);
        assert_eq!(p.messages.len(), TRAFFIC_RING);
        assert_eq!(p.last_seq, 10 + TRAFFIC_RING as u64 + 90);
        assert_eq!(p.missed, p.last_seq - 5 - TRAFFIC_RING as u64);
        assert_eq!(p.messages.last().unwrap().seq, p.last_seq);
        // A number the node never reached (it restarted): everything it holds.
        assert_eq!(r.page(u64::MAX, &hs).messages.len(), TRAFFIC_RING);
    }

    #[test]
    fn every_kind_is_summarised() {
        let append = Message {
            from: 1,
            to: 2,
            term: 4,
            body: MessageBody::Append { base_index: 3, base_term: 2, entries: vec![], commit: 2 },
        };
        let s = MessageSummary::of(&append, 1, 5);
        assert_eq!((s.kind, s.count, s.term, s.ok), (MessageKind::Append, 0, 4, None));
        let reply = Message { from: 2, to: 1, term: 4, body: MessageBody::VoteResponse { granted: false } };
        let s = MessageSummary::of(&reply, 2, 6);
        assert_eq!((s.kind, s.ok), (MessageKind::VoteReply, Some(false)));
    }
}
