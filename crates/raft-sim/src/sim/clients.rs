//! The clients: one operation at a time per session, sent to a node as the node's own
//! request types, retried with the same sequence number until answered or given up.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum ClientOp {
    Write(KvOp),
    Read { key: String },
}

impl ClientOp {
    pub(super) fn key(&self) -> &str {
        match self {
            ClientOp::Write(op) => op.key(),
            ClientOp::Read { key } => key,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AttemptKind {
    Write,
    Read,
}

/// One try of an operation at one node.
#[derive(Clone, Copy, Debug)]
pub(super) struct Attempt {
    pub(super) node: usize,
    pub(super) kind: AttemptKind,
    /// The request id the node answers to (unique per simulation).
    pub(super) request: u64,
    pub(super) deadline_tick: u64,
}

pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) op: ClientOp,
    pub(super) invoke: u64,
    pub(super) give_up_tick: u64,
    pub(super) attempt: Option<Attempt>,
    pub(super) next_try_tick: u64,
}

/// A client with one session: one operation at a time, retried with the same sequence
/// number until answered or given up.
pub(super) struct Client {
    pub(super) id: u64,
    pub(super) seq: u64,
    /// Index of the node it will try next (its guess of the leader).
    pub(super) target: usize,
    pub(super) pending: Option<Pending>,
    /// The last value it saw per key, for plausible cas expectations.
    pub(super) seen: Vec<Option<String>>,
}

impl Sim {
    /// A node answered a client.
    pub(super) fn on_response(&mut self, i: usize, to: Waiter, response: Response) -> Result<(), Violation> {
        let c = to.conn as usize;
        let Some(p) = self.clients.get(c).and_then(|cl| cl.pending.as_ref()) else { return Ok(()) };
        let Some(a) = p.attempt.filter(|a| a.request == to.request_id && a.node == i) else {
            // An answer to an attempt the client already gave up on.
            return Ok(());
        };
        let n = self.nodes.len() as u64;
        let tick = self.tick;
        match response {
            Response::Ok(reply) => {
                let outcome = match (a.kind, &reply) {
                    (AttemptKind::Read, Reply::Value(v)) => {
                        Outcome::Value(v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                    }
                    (AttemptKind::Write, r) => match kv_result(r) {
                        Some(KvResult::Done) => Outcome::Done,
                        Some(KvResult::Cas(ok)) => Outcome::Cas(ok),
                        None => {
                            return self.checker.fail(Kind::Contract, format!("n{} answered a write with {r:?}", i + 1))
                        }
                    },
                    (AttemptKind::Read, r) => {
                        return self.checker.fail(Kind::Contract, format!("n{} answered a read with {r:?}", i + 1))
                    }
                };
                self.complete(c, outcome);
            }
            Response::NotLeader { leader } => {
                let hint = leader.filter(|&l| l != i as NodeId + 1 && l >= 1 && l <= n);
                let client = &mut self.clients[c];
                let p = client.pending.as_mut().expect("checked above");
                p.attempt = None;
                // Follow a hint on the next tick (one hop per tick, so no ping-pong
                // within a tick); without one, wait a little for an election.
                p.next_try_tick = tick + if hint.is_some() { 1 } else { 3 };
                client.target = match hint {
                    Some(l) => l as usize - 1,
                    None => self.rng.below(n) as usize,
                };
            }
            Response::Unavailable { .. } | Response::Unknown { .. } => {
                // Surely not applied, or maybe: either way the same (session, seq) is safe
                // to retry, and the session answers a retry with the first outcome.
                let p = self.clients[c].pending.as_mut().expect("checked above");
                p.attempt = None;
                p.next_try_tick = tick + 2;
            }
            other => {
                return self.checker.fail(Kind::Contract, format!("n{} answered a client with {other:?}", i + 1));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- clients

    pub(super) fn clients_act(&mut self) -> Result<(), Violation> {
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_none() {
                if self.settling || !self.rng.per_mille(self.profile.op_per_mille) {
                    continue;
                }
                self.new_op(c);
            }
            let tick = self.tick;
            let p = self.clients[c].pending.as_mut().expect("pending");
            if !self.settling && tick >= p.give_up_tick {
                self.give_up(c);
                continue;
            }
            if p.attempt.is_some_and(|a| tick >= a.deadline_tick) {
                p.attempt = None;
                trace!(self, "client {} times out, will retry", c + 1);
                self.clients[c].target = self.rng.below(self.nodes.len() as u64) as usize;
            }
            let p = self.clients[c].pending.as_ref().expect("pending");
            if p.attempt.is_none() && tick >= p.next_try_tick {
                self.submit(c)?;
            }
        }
        Ok(())
    }

    pub(super) fn new_op(&mut self, c: usize) {
        let keys = self.profile.keys as u64;
        let k = self.rng.below(keys) as usize;
        let key = format!("k{k}");
        let client = &mut self.clients[c];
        client.seq += 1;
        let value = format!("{}.{}", client.id, client.seq);
        let op = match self.rng.below(10) {
            0..=2 => ClientOp::Read { key },
            3..=5 => ClientOp::Write(KvOp::Set { key, value }),
            6 => ClientOp::Write(KvOp::Delete { key }),
            _ => {
                let expected = if self.rng.per_mille(200) { None } else { client.seen[k].clone() };
                ClientOp::Write(KvOp::Cas { key, expected, new: value })
            }
        };
        trace!(self, "client {} invokes seq {}: {:?}", self.clients[c].id, self.clients[c].seq, op);
        let client = &mut self.clients[c];
        client.pending = Some(Pending {
            seq: client.seq,
            op,
            invoke: self.now,
            give_up_tick: self.tick + self.profile.give_up_ticks,
            attempt: None,
            next_try_tick: self.tick,
        });
    }

    pub(super) fn lincheck_op(op: &ClientOp) -> Op {
        match op {
            ClientOp::Read { .. } => Op::Get,
            ClientOp::Write(KvOp::Set { value, .. }) => Op::Set(value.clone()),
            ClientOp::Write(KvOp::Delete { .. }) => Op::Delete,
            ClientOp::Write(KvOp::Cas { expected, new, .. }) => {
                Op::Cas { expected: expected.clone(), new: new.clone() }
            }
        }
    }

    pub(super) fn complete(&mut self, c: usize, outcome: Outcome) {
        let client = &mut self.clients[c];
        let p = client.pending.take().expect("completing a pending op");
        let key = p.op.key().to_string();
        let k: usize = key[1..].parse().expect("keys are k<N>");
        match (&p.op, &outcome) {
            (ClientOp::Read { .. }, Outcome::Value(v)) => client.seen[k] = v.clone(),
            (ClientOp::Write(KvOp::Set { value, .. }), _) => client.seen[k] = Some(value.clone()),
            (ClientOp::Write(KvOp::Delete { .. }), _) => client.seen[k] = None,
            (ClientOp::Write(KvOp::Cas { new, .. }), Outcome::Cas(true)) => client.seen[k] = Some(new.clone()),
            _ => {}
        }
        if let Some(a) = p.attempt {
            client.target = a.node;
        }
        let id = client.id;
        self.stats.ops += 1;
        trace!(self, "client {id} seq {} -> {:?}", p.seq, outcome);
        self.history_ids.push((id, p.seq));
        self.history.push(Operation {
            client: id,
            key,
            op: Self::lincheck_op(&p.op),
            invoke: p.invoke,
            complete: self.now,
            outcome,
        });
    }

    pub(super) fn give_up(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let p = client.pending.take().expect("giving up a pending op");
        let id = client.id;
        trace!(self, "client {id} gives up on seq {} (outcome unknown)", p.seq);
        if let ClientOp::Write(_) = p.op {
            // A read that never answered had no effect: it is simply not in the history.
            self.stats.unknown += 1;
            self.history_ids.push((id, p.seq));
            self.history.push(Operation {
                client: id,
                key: p.op.key().to_string(),
                op: Self::lincheck_op(&p.op),
                invoke: p.invoke,
                complete: p.invoke,
                outcome: Outcome::Unknown,
            });
        }
    }

    pub(super) fn submit(&mut self, c: usize) -> Result<(), Violation> {
        let n = self.nodes.len() as u64;
        let node = self.clients[c].target;
        let tick = self.tick;
        if !self.runs(node) {
            self.clients[c].target = self.rng.below(n) as usize;
            self.clients[c].pending.as_mut().expect("pending").next_try_tick = tick + 1;
            return Ok(());
        }
        let request = self.next_request;
        self.next_request += 1;
        let client = &mut self.clients[c];
        let session = client.id;
        let p = client.pending.as_mut().expect("pending");
        let kind = match p.op {
            ClientOp::Write(_) => AttemptKind::Write,
            ClientOp::Read { .. } => AttemptKind::Read,
        };
        p.attempt = Some(Attempt { node, kind, request, deadline_tick: tick + self.profile.attempt_timeout_ticks });
        let (seq, op) = (p.seq, p.op.clone());
        trace!(self, "client {} seq {seq} submitted to n{}: {:?}", c + 1, node + 1, op);
        #[cfg(feature = "bugs")]
        let stale = self.bug == Some(crate::profile::Bug::StaleRead);
        #[cfg(not(feature = "bugs"))]
        let stale = false;
        let from = Waiter { conn: c as u64, request_id: request };
        self.turn(node, move |replica, fx| {
            match op {
                ClientOp::Write(op) => replica.write(from, session, seq, op.to_write(), fx),
                // Planted bug (simulator-side): reads served locally, without ReadIndex.
                ClientOp::Read { key } => replica.read(from, ReadOp::Get { key }, stale, fx),
            }
            Ok(())
        })
    }
}
