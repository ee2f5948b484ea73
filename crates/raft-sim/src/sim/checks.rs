//! The checks that need a node's own report or its disk: what it wrote, what it applied,
//! its status after every turn; settling, and the linearizability of the histories.

use super::*;

impl Sim {
    // ---------------------------------------------------------------- the disk

    /// Feeds what the node wrote to its disk this turn to the checkers.
    pub(super) fn check_writes(&mut self, i: usize, journal: Vec<DiskWrite>) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        for w in journal {
            match w {
                DiskWrite::HardState { old, new } => {
                    if new.term < old.term {
                        return self.checker.fail(
                            Kind::Regression,
                            format!("n{id} term on disk moved back {} -> {}", old.term, new.term),
                        );
                    }
                    if new.commit < old.commit {
                        return self.checker.fail(
                            Kind::Regression,
                            format!("n{id} commit on disk moved back {} -> {}", old.commit, new.commit),
                        );
                    }
                    if new.term == old.term && old.vote.is_some() && new.vote != old.vote {
                        return self.checker.fail(
                            Kind::VoteSafety,
                            format!(
                                "n{id} changed its vote in term {} from {:?} to {:?} on disk",
                                new.term, old.vote, new.vote
                            ),
                        );
                    }
                }
                DiskWrite::Entry { index, term, prev_term, digest } => {
                    let Some(prev_term) = prev_term else {
                        return self.checker.fail(
                            Kind::Contract,
                            format!("n{id} wrote entry {index}@{term} that does not attach to its log"),
                        );
                    };
                    self.checker.appended(id, index, term, prev_term, digest)?;
                }
                DiskWrite::Snapshot { index, term, digest, installed } => {
                    if installed {
                        self.checker.snapshot_covers(id, index, term)?;
                    } else {
                        self.stats.compactions += 1;
                        trace!(self, "n{id}: compacts its log up to {index}@{term}");
                    }
                    self.checker.snapshot(id, index, digest)?;
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- the state machine

    pub(super) fn applied(&mut self, i: usize, e: &Entry, result: Applied) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let digest = entry_digest(e);
        let term = self.nodes[i].term;
        self.checker.applied(id, e.index, e.term, digest, term)?;
        if let Applied::Write { session, seq, reply, duplicate: false } = &result {
            if let Some(r) = kv_result(reply) {
                self.effects.entry((*session, *seq)).or_insert((self.now, r));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- checks

    /// The per-step checks that need the node's own report of its state.
    pub(super) fn check_node(&mut self, i: usize) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let Some(replica) = node.replica.as_ref() else { return Ok(()) };
        let st = replica.raft().status();
        let applied = replica.kv().applied();
        let id = node.id;
        let disk = node.disk.borrow();
        let disk = &disk.image;
        if st.id != id {
            return self.checker.fail(Kind::Contract, format!("n{id} reports id {}", st.id));
        }
        if st.last_index != disk.last_index() {
            return self.checker.fail(
                Kind::Contract,
                format!(
                    "n{id} reports last index {} but the entries it handed out for its disk end at {}",
                    st.last_index,
                    disk.last_index()
                ),
            );
        }
        if st.commit > st.last_index {
            return self
                .checker
                .fail(Kind::Contract, format!("n{id} commit {} beyond its last index {}", st.commit, st.last_index));
        }
        if st.commit < node.commit {
            return self
                .checker
                .fail(Kind::Regression, format!("n{id} commit moved back {} -> {}", node.commit, st.commit));
        }
        if st.term < node.term {
            return self.checker.fail(Kind::Regression, format!("n{id} term moved back {} -> {}", node.term, st.term));
        }
        if st.applied != applied {
            return self.checker.fail(
                Kind::Contract,
                format!("n{id} reports applied {} but its state machine is at {applied}", st.applied),
            );
        }
        if applied > st.commit {
            return self
                .checker
                .fail(Kind::Contract, format!("n{id} applied {applied} beyond its commit index {}", st.commit));
        }
        for index in node.commit + 1..=st.commit {
            if let Some(e) = disk.entry(index) {
                self.checker.committed(id, index, e.term, entry_digest(e), st.term)?;
            }
        }
        if st.role == RoleKind::Leader {
            self.checker.leader(st.term, id, "status")?;
            if !(node.role == RoleKind::Leader && node.term == st.term) {
                self.checker
                    .leader_completeness(id, st.term, disk.snapshot_index(), disk.last_index(), |x| disk.term_at(x))?;
            }
        }
        node.role = st.role;
        node.term = st.term;
        node.leader = st.leader;
        node.commit = st.commit;
        Ok(())
    }

    pub(super) fn settled(&self) -> bool {
        if self.clients.iter().any(|c| c.pending.is_some()) {
            return false;
        }
        let Some(l) = self.nodes.iter().find(|n| n.replica.is_some() && n.role == RoleKind::Leader) else {
            return false;
        };
        let last = l.last_index();
        // Only the members of the leader's configuration must have caught up: a removed
        // node (kept running) or one whose addition never committed gets nothing more.
        let members = l.replica.as_ref().expect("running").raft().membership().clone();
        self.nodes.iter().filter(|n| members.contains(n.id)).all(|n| {
            n.replica.is_some()
                && n.term == l.term
                && n.leader == Some(l.id)
                && n.last_index() == last
                && n.commit == last
                && n.applied() == last
        })
    }

    pub(super) fn describe_state(&self) -> String {
        let mut parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                if n.replica.is_none() {
                    return format!("n{} down", n.id);
                }
                format!(
                    "n{} {} term={} leader={} last={} commit={} applied={}",
                    n.id,
                    n.role,
                    n.term,
                    n.leader.map_or("-".to_string(), |l| format!("n{l}")),
                    n.last_index(),
                    n.commit,
                    n.applied()
                )
            })
            .collect();
        for c in &self.clients {
            if let Some(p) = &c.pending {
                parts.push(format!("client {} waits on seq {} ({:?})", c.id, p.seq, p.op));
            }
        }
        parts.join("; ")
    }

    pub(super) fn check_history(&mut self) -> Result<(), Violation> {
        if self.history.is_empty() {
            return Ok(());
        }
        let mut verdict = raft_lincheck::check_with_budget(&self.history, LINCHECK_STEPS_PER_KEY);
        let mut note = "";
        if let Verdict::Inconclusive { key } = &verdict {
            self.stats.inconclusive += 1;
            trace!(self, "linearizability of key {key} inconclusive within the search budget; resolving unknowns");
            verdict = raft_lincheck::check_with_budget(&self.resolved_history(), LINCHECK_STEPS_PER_KEY);
            note = " (unknown outcomes resolved from the log)";
        }
        match verdict {
            Verdict::Linearizable | Verdict::Inconclusive { .. } => Ok(()),
            Verdict::Violation { key, ops } => {
                let ops: Vec<String> = ops
                    .iter()
                    .map(|o| {
                        format!("client {} {:?} [{}, {}] -> {:?}", o.client, o.op, o.invoke, o.complete, o.outcome)
                    })
                    .collect();
                self.checker.fail(
                    Kind::Linearizability,
                    format!("key {key}{note}, [invoke, complete] in turns: {}", ops.join("; ")),
                )
            }
        }
    }

    /// The history with every unknown write replaced by what really happened: it took
    /// effect somewhere between its invocation and the first time a node applied it
    /// (its commit came before that apply), with the result the state machine computed;
    /// or, if no node ever applied it with effect, it never happened. Sound because the
    /// cluster has settled: every entry that will ever commit has been applied.
    pub(super) fn resolved_history(&self) -> Vec<Operation> {
        let mut out = Vec::with_capacity(self.history.len());
        for (op, id) in self.history.iter().zip(&self.history_ids) {
            if op.outcome != Outcome::Unknown {
                out.push(op.clone());
                continue;
            }
            if let Some(&(at, result)) = self.effects.get(id) {
                let outcome = match result {
                    KvResult::Done => Outcome::Done,
                    KvResult::Cas(ok) => Outcome::Cas(ok),
                };
                out.push(Operation { complete: at.max(op.invoke), outcome, ..op.clone() });
            }
        }
        out
    }
}
