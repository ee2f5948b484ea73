//! The simulated network: one queue of messages in flight, each with the tick it
//! arrives at. Loss, duplication, delay (and so reordering) are decided when a message
//! is sent; partitions are decided when it arrives, like a cut cable that also loses
//! what was on the wire.

use crate::rng::Rng;
use raft_core::{Message, NodeId};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

/// How unreliable the network is. All probabilities are per mille, per message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConditions {
    pub drop_per_mille: u32,
    pub dup_per_mille: u32,
    /// A message normally arrives 0..=max_delay_ticks after it is sent.
    pub max_delay_ticks: u64,
    /// Some messages are held back much longer, so stale ones arrive late.
    pub long_delay_per_mille: u32,
    pub long_delay_max_ticks: u64,
}

impl NetConditions {
    /// What the network looks like once faults stop: nothing lost, little delay.
    pub fn reliable() -> NetConditions {
        NetConditions { max_delay_ticks: 1, ..NetConditions::default() }
    }
}

struct InFlight {
    at_tick: u64,
    /// Random tie-breaker: messages due in the same tick arrive in random order.
    order: u64,
    msg: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so the `BinaryHeap` pops the earliest message first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_tick, other.order).cmp(&(self.at_tick, self.order))
    }
}

/// What happened to a message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Lost,
    Queued { at_tick: u64 },
    Duplicated { at_tick: u64, copy_at_tick: u64 },
}

/// Messages in flight and the links currently cut.
pub struct Network {
    nodes: usize,
    queue: BinaryHeap<InFlight>,
    /// `blocked[from * nodes + to]`: messages on that directed link are lost on arrival.
    blocked: Vec<bool>,
    pub conditions: NetConditions,
}

impl Network {
    pub fn new(nodes: usize, conditions: NetConditions) -> Network {
        Network { nodes, queue: BinaryHeap::new(), blocked: vec![false; nodes * nodes], conditions }
    }

    fn delay(&self, rng: &mut Rng) -> u64 {
        let c = &self.conditions;
        let mut d = rng.below(c.max_delay_ticks + 1);
        if rng.per_mille(c.long_delay_per_mille) {
            d += rng.range(1, c.long_delay_max_ticks.max(1) + 1);
        }
        d
    }

    /// Hands `msg` to the network at tick `now`.
    pub fn send(&mut self, rng: &mut Rng, now: u64, msg: Message) -> Fate {
        if rng.per_mille(self.conditions.drop_per_mille) {
            return Fate::Lost;
        }
        let at_tick = now + self.delay(rng);
        if rng.per_mille(self.conditions.dup_per_mille) {
            let copy_at_tick = now + self.delay(rng);
            let order = rng.next_u64();
            self.queue.push(InFlight { at_tick: copy_at_tick, order, msg: msg.clone() });
            let order = rng.next_u64();
            self.queue.push(InFlight { at_tick, order, msg });
            return Fate::Duplicated { at_tick, copy_at_tick };
        }
        let order = rng.next_u64();
        self.queue.push(InFlight { at_tick, order, msg });
        Fate::Queued { at_tick }
    }

    /// The next message due at or before `now`, if any.
    pub fn pop_due(&mut self, now: u64) -> Option<Message> {
        if self.queue.peek()?.at_tick > now {
            return None;
        }
        self.queue.pop().map(|f| f.msg)
    }

    /// Puts a message back on the wire to arrive at `at_tick`: a paused process does
    /// not read its socket, so what arrives waits for it.
    pub fn hold(&mut self, rng: &mut Rng, at_tick: u64, msg: Message) {
        let order = rng.next_u64();
        self.queue.push(InFlight { at_tick, order, msg });
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn slot(&self, from: NodeId, to: NodeId) -> usize {
        (from as usize - 1) * self.nodes + (to as usize - 1)
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked[self.slot(from, to)]
    }

    pub fn block(&mut self, from: NodeId, to: NodeId) {
        let s = self.slot(from, to);
        self.blocked[s] = true;
    }

    pub fn any_blocked(&self) -> bool {
        self.blocked.iter().any(|&b| b)
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
    }

    /// Cuts a new random partition (replacing the current one) and describes it for the
    /// trace: a symmetric split, a one-way split, an isolated node or a few cut links.
    pub fn partition(&mut self, rng: &mut Rng) -> String {
        self.heal();
        let n = self.nodes as u64;
        if n < 2 {
            return "partition: nothing to cut in a one-node cluster".to_string();
        }
        let mut ids: Vec<NodeId> = (1..=n).collect();
        rng.shuffle(&mut ids);
        let fmt_set = |set: &[NodeId]| {
            let mut s: Vec<NodeId> = set.to_vec();
            s.sort_unstable();
            let names: Vec<String> = s.iter().map(|i| format!("n{i}")).collect();
            format!("{{{}}}", names.join(","))
        };
        match rng.below(4) {
            0 | 1 => {
                // A split into two groups; group A is a minority or a majority at random.
                let cut = rng.range(1, n) as usize;
                let (a, b) = ids.split_at(cut);
                let one_way = rng.below(2) == 0;
                for &x in a {
                    for &y in b {
                        self.block(x, y);
                        if !one_way {
                            self.block(y, x);
                        }
                    }
                }
                if one_way {
                    format!("partition one-way {} -/-> {}", fmt_set(a), fmt_set(b))
                } else {
                    format!("partition {} | {}", fmt_set(a), fmt_set(b))
                }
            }
            2 => {
                let x = ids[0];
                for &y in &ids[1..] {
                    self.block(x, y);
                    self.block(y, x);
                }
                format!("partition isolate n{x}")
            }
            _ => {
                let mut out = String::from("partition cut links");
                for _ in 0..rng.range(1, n + 1) {
                    let from = rng.range(1, n + 1);
                    // Any other node: `from + 1..from + n - 1`, wrapped round.
                    let to = (from - 1 + rng.range(1, n)) % n + 1;
                    self.block(from, to);
                    let _ = write!(out, " n{from}->n{to}");
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::MessageBody;

    fn msg(from: NodeId, to: NodeId, term: u64) -> Message {
        Message { from, to, term, body: MessageBody::TimeoutNow }
    }

    #[test]
    fn delivers_in_time_order() {
        let mut rng = Rng::new(1);
        let mut net = Network::new(3, NetConditions { max_delay_ticks: 5, ..NetConditions::default() });
        for t in 0..50 {
            net.send(&mut rng, 0, msg(1, 2, t));
        }
        let mut got = 0;
        for now in 0..=5 {
            while let Some(_m) = net.pop_due(now) {
                got += 1;
            }
        }
        assert_eq!(got, 50);
        assert_eq!(net.in_flight(), 0);
    }

    #[test]
    fn partitions_block_links() {
        let mut rng = Rng::new(3);
        let mut net = Network::new(5, NetConditions::reliable());
        let what = net.partition(&mut rng);
        assert!(what.starts_with("partition"), "{what}");
        assert!(net.any_blocked());
        net.heal();
        assert!(!net.any_blocked());
    }
}
