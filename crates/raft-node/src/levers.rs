//! The network levers (`raft-supervisor delay` / `loss`): this node's outgoing peer
//! messages are dropped with a probability, or held back and released when due, as a
//! slow or lossy network would. Only the transport is involved: Raft sees a network
//! that loses and reorders messages, which it is built to survive.
//!
//! The held messages sit in a heap by release time, bounded by [`MAX_DELAYED_MESSAGES`]
//! and [`MAX_DELAYED_BYTES`]; past either, a message is dropped (and counted), as a full
//! router queue would. The event loop asks [`DelayLine::next_release`] for its poll
//! timeout and sends [`DelayLine::due`] messages every turn.

use raft_core::{Message, MessageBody};
use raft_wire::levers::{NetLevers, LOSS_PPM_ALL};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Messages held back at once: at 10 s of delay a busy leader sends a few thousand.
pub const MAX_DELAYED_MESSAGES: usize = 100_000;
/// Bytes of messages held back at once (appends carry entries): bounds the memory the
/// lever can take, like the per-peer output limit does.
pub const MAX_DELAYED_BYTES: usize = 64 << 20;

/// A message's approximate size, for [`MAX_DELAYED_BYTES`].
fn size_bytes(m: &Message) -> usize {
    64 + match &m.body {
        MessageBody::Append { entries, .. } => entries.iter().map(|e| e.size_bytes()).sum(),
        MessageBody::InstallSnapshot { data, .. } => data.len(),
        _ => 0,
    }
}

struct Held {
    release: Instant,
    /// Sending order, so equal release times keep it.
    seq: u64,
    bytes: usize,
    msg: Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Held) -> bool {
        (self.release, self.seq) == (o.release, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Held) -> std::cmp::Ordering {
        (self.release, self.seq).cmp(&(o.release, o.seq))
    }
}

/// xorshift64*: enough randomness for loss and jitter, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub struct DelayLine {
    levers: NetLevers,
    rng: Rng,
    held: BinaryHeap<Reverse<Held>>,
    held_bytes: usize,
    seq: u64,
    /// Dropped by the loss lever / because the queue was full, since start.
    pub lost: u64,
    pub overflowed: u64,
}

/// What happened to a message handed to [`DelayLine::outgoing`].
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Send(Message),
    Held,
    Lost,
    Overflow,
}

impl DelayLine {
    pub fn new(seed: u64) -> DelayLine {
        DelayLine {
            levers: NetLevers::default(),
            rng: Rng(seed | 1),
            held: BinaryHeap::new(),
            held_bytes: 0,
            seq: 0,
            lost: 0,
            overflowed: 0,
        }
    }

    pub fn levers(&self) -> NetLevers {
        self.levers
    }

    /// No lever set and nothing held: every message goes straight out (the common case,
    /// which then costs no clock read).
    pub fn is_idle(&self) -> bool {
        self.levers.is_off() && self.held.is_empty()
    }

    /// Sets new levers (checked by the caller). A delay turned off releases what is held
    /// at once; a shorter one keeps the release times already given.
    pub fn set(&mut self, levers: NetLevers, now: Instant) {
        self.levers = levers;
        if levers.delay_us == 0 {
            let all: Vec<Reverse<Held>> = self.held.drain().collect();
            for Reverse(mut h) in all {
                h.release = now;
                self.held.push(Reverse(h));
            }
        }
    }

    /// A message about to leave: sent now, held back, or dropped.
    pub fn outgoing(&mut self, msg: Message, now: Instant) -> Fate {
        let l = self.levers;
        if l.loss_ppm > 0 && self.rng.below(LOSS_PPM_ALL as u64) < l.loss_ppm as u64 {
            self.lost += 1;
            return Fate::Lost;
        }
        if l.delay_us == 0 && self.held.is_empty() {
            return Fate::Send(msg);
        }
        let bytes = size_bytes(&msg);
        if self.held.len() >= MAX_DELAYED_MESSAGES || self.held_bytes + bytes > MAX_DELAYED_BYTES {
            self.overflowed += 1;
            return Fate::Overflow;
        }
        let jitter = if l.jitter_us > 0 { self.rng.below(2 * l.jitter_us + 1) as i64 - l.jitter_us as i64 } else { 0 };
        let us = (l.delay_us as i64 + jitter).max(0) as u64;
        self.seq += 1;
        self.held_bytes += bytes;
        self.held.push(Reverse(Held { release: now + Duration::from_micros(us), seq: self.seq, bytes, msg }));
        Fate::Held
    }

    /// When the next held message is due.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.release)
    }

    /// The held messages due by `now`, in release order.
    pub fn due(&mut self, now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        while self.held.peek().is_some_and(|Reverse(h)| h.release <= now) {
            let Reverse(h) = self.held.pop().expect("peeked");
            self.held_bytes -= h.bytes;
            out.push(h.msg);
        }
        assert!(!self.held.is_empty() || self.held_bytes == 0, "held bytes out of step with the queue");
        out
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(k: u64) -> Message {
        Message { from: 1, to: 2, term: k, body: MessageBody::Heartbeat { commit: 0, read_seq: k } }
    }

    #[test]
    fn delayed_messages_leave_when_due_in_order() {
        let t0 = Instant::now();
        let mut d = DelayLine::new(7);
        assert_eq!(d.outgoing(msg(0), t0), Fate::Send(msg(0)), "no levers: straight out");
        d.set(NetLevers { delay_us: 100_000, ..Default::default() }, t0);
        for k in 1..=3 {
            assert_eq!(d.outgoing(msg(k), t0 + Duration::from_millis(k)), Fate::Held);
        }
        assert_eq!(d.next_release(), Some(t0 + Duration::from_millis(101)));
        assert!(d.due(t0 + Duration::from_millis(100)).is_empty());
        assert_eq!(d.due(t0 + Duration::from_millis(102)), vec![msg(1), msg(2)]);
        // Turning the delay off releases the rest now, and later messages queue behind them.
        d.set(NetLevers::default(), t0 + Duration::from_millis(50));
        assert_eq!(d.outgoing(msg(4), t0 + Duration::from_millis(50)), Fate::Held, "not ahead of what is held");
        assert_eq!(d.due(t0 + Duration::from_millis(50)), vec![msg(3), msg(4)]);
        assert_eq!((d.held(), d.held_bytes), (0, 0));
        assert_eq!(d.outgoing(msg(5), t0), Fate::Send(msg(5)));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let t0 = Instant::now();
        let mut d = DelayLine::new(1);
        d.set(NetLevers { delay_us: 1000, jitter_us: 500, loss_ppm: 0 }, t0);
        for k in 0..1000 {
            d.outgoing(msg(k), t0);
        }
        assert!(d.due(t0 + Duration::from_micros(499)).is_empty());
        let early = d.due(t0 + Duration::from_micros(1000)).len();
        assert!(early > 100 && early < 900, "about half before the mean: {early}");
        assert_eq!(d.due(t0 + Duration::from_micros(1500)).len(), 1000 - early);
    }

    #[test]
    fn loss_drops_about_its_share_and_all_at_100_percent() {
        let t0 = Instant::now();
        let mut d = DelayLine::new(3);
        d.set(NetLevers { loss_ppm: 250_000, ..Default::default() }, t0);
        let sent = (0..10_000).filter(|&k| matches!(d.outgoing(msg(k), t0), Fate::Send(_))).count();
        assert!((7000..8000).contains(&sent), "{sent} of 10000 with 25% loss");
        assert_eq!(d.lost as usize, 10_000 - sent);
        d.set(NetLevers { loss_ppm: LOSS_PPM_ALL, ..Default::default() }, t0);
        assert!((0..1000).all(|k| d.outgoing(msg(k), t0) == Fate::Lost));
    }

    #[test]
    fn the_queue_is_bounded() {
        let t0 = Instant::now();
        let mut d = DelayLine::new(5);
        d.set(NetLevers { delay_us: 1_000_000, ..Default::default() }, t0);
        for k in 0..MAX_DELAYED_MESSAGES as u64 {
            assert_eq!(d.outgoing(msg(k), t0), Fate::Held);
        }
        assert_eq!(d.outgoing(msg(0), t0), Fate::Overflow);
        assert_eq!(d.overflowed, 1);
    }
}
