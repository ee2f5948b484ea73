//! Starting, crashing and restarting nodes, and the fault schedule.

use super::*;

impl Sim {
    // ---------------------------------------------------------------- faults

    pub(super) fn config(&mut self, id: NodeId) -> Config {
        let p = &self.profile;
        // Every slot starts from the bootstrap voters; a spare one is outside them and
        // joins when a leader adds it.
        let mut c = Config::new(id, (1..=p.nodes as NodeId).collect(), self.rng.next_u64());
        c.heartbeat_ticks = p.heartbeat_ticks;
        c.election_ticks_min = p.election_ticks_min;
        c.election_ticks_max = p.election_ticks_max;
        c.pre_vote = p.pre_vote;
        c.check_quorum = p.check_quorum;
        c.max_entries_per_append = p.max_entries_per_append;
        c.max_inflight_appends = p.max_inflight_appends;
        c.snapshot_chunk_bytes = p.snapshot_chunk_bytes;
        c.max_uncommitted_entries = p.max_uncommitted_entries;
        #[cfg(feature = "bugs")]
        if let Some(bug) = self.bug {
            c.bugs = bug.core_bugs();
        }
        c
    }

    pub(super) fn replica_options(&self) -> ReplicaOptions {
        #[allow(unused_mut)]
        let mut opts = ReplicaOptions::new(self.profile.compact_entries, u64::MAX);
        #[cfg(feature = "bugs")]
        if let Some(bug) = self.bug {
            opts.bugs = bug.driver_bugs();
        }
        opts
    }

    /// Starts (or restarts) node `i` from its disk, as `raft-node` does: recovery, then
    /// the replica, then a first turn that replays the log up to the commit index.
    pub(super) fn start(&mut self, i: usize) -> Result<(), Violation> {
        let id = i as NodeId + 1;
        let config = self.config(id);
        let opts = self.replica_options();
        let disk = self.nodes[i].disk.clone();
        disk.borrow_mut().reboot();
        let restored = match disk.borrow_mut().image.recover() {
            Ok(r) => r,
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{id} cannot recover its disk: {e}")),
        };
        trace!(
            self,
            "start n{id}: term={} vote={} commit={} snapshot={} last={}",
            restored.hard_state.term,
            restored.hard_state.vote.map_or("-".to_string(), |v| format!("n{v}")),
            restored.hard_state.commit,
            restored.snapshot.as_ref().map_or(0, |s| s.index),
            restored.entries.last().map_or(0, |e| e.index)
        );
        let commit = restored.hard_state.commit;
        let term = restored.hard_state.term;
        let mut fx = SimFx::new(disk.clone(), self.trace.is_some());
        let replica = Replica::recover(config, SimDisk(disk), restored, opts, &mut fx);
        let outputs = fx.take();
        self.drain(i, outputs)?;
        let replica = match replica {
            Ok(r) => r,
            Err(e) => return self.checker.fail(Kind::Contract, format!("n{id} refused to start: {e}")),
        };
        let node = &mut self.nodes[i];
        node.replica = Some(replica);
        node.role = RoleKind::Follower;
        node.term = term;
        node.leader = None;
        // The commit index on disk must not be forgotten (checked on the first status).
        node.commit = commit;
        self.turn(i, |_, _| Ok(()))
    }

    pub(super) fn crash(&mut self, i: usize, why: &str) {
        let node = &mut self.nodes[i];
        node.replica = None;
        node.paused_until = 0;
        node.role = RoleKind::Follower;
        node.leader = None;
        self.stats.crashes += 1;
        trace!(self, "crash n{} ({why})", i + 1);
        let n = self.nodes.len() as u64;
        for c in &mut self.clients {
            if let Some(p) = &mut c.pending {
                if p.attempt.is_some_and(|a| a.node == i) {
                    // The connection broke: the client knows only that it must retry.
                    p.attempt = None;
                    p.next_try_tick = self.tick + 1;
                    c.target = self.rng.below(n) as usize;
                }
            }
        }
    }

    pub(super) fn inject_faults(&mut self) -> Result<(), Violation> {
        let p = self.profile.clone();
        if self.rng.per_mille(p.crash_per_mille) {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].replica.is_some()).collect();
            if !up.is_empty() {
                let i = self.rng.pick(&up);
                self.crash(i, "crash");
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].joined && self.nodes[i].replica.is_none() && self.rng.per_mille(p.restart_per_mille) {
                self.start(i)?;
            }
        }
        if p.membership_per_mille > 0 && self.rng.per_mille(p.membership_per_mille) {
            self.change_membership()?;
        }
        if self.rng.per_mille(p.partition_per_mille) {
            let what = self.net.partition(&mut self.rng);
            trace!(self, "{what}");
        } else if self.net.any_blocked() && self.rng.per_mille(p.heal_per_mille) {
            self.net.heal();
            trace!(self, "heal partition");
        }
        if self.rng.per_mille(p.pause_per_mille) {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.runs(i)).collect();
            if !up.is_empty() {
                let i = self.rng.pick(&up);
                let ticks = self.rng.range(5, p.pause_max_ticks + 1);
                self.nodes[i].paused_until = self.tick + ticks;
                trace!(self, "pause n{} for {ticks} ticks", i + 1);
            }
        }
        if self.nodes.len() > 1 && self.rng.per_mille(p.transfer_per_mille) {
            let leaders: Vec<usize> =
                (0..self.nodes.len()).filter(|&i| self.runs(i) && self.nodes[i].role == RoleKind::Leader).collect();
            if !leaders.is_empty() {
                let i = self.rng.pick(&leaders);
                let n = self.nodes.len() as u64;
                let to = (i as u64 + self.rng.range(1, n)) % n + 1;
                let replica = self.nodes[i].replica.as_mut().expect("running");
                let r = replica.raft_mut().transfer_leadership(to);
                trace!(self, "n{}: transfer leadership to n{to}: {r:?}", i + 1);
                self.stats.transfers += 1;
                self.turn(i, |_, _| Ok(()))?;
            }
        }
        Ok(())
    }

    /// Faults stop: links heal, the network turns reliable, every node restarts.
    pub(super) fn begin_settling(&mut self) -> Result<(), Violation> {
        self.settling = true;
        trace!(self, "faults stop: heal, reliable network, restart every crashed node");
        #[cfg(feature = "bugs")]
        let heal = self.bug != Some(crate::profile::Bug::NoHeal);
        #[cfg(not(feature = "bugs"))]
        let heal = true;
        if heal {
            self.net.heal();
        } else {
            trace!(self, "planted bug: the partition stays");
        }
        self.net.conditions = NetConditions::reliable();
        for i in 0..self.nodes.len() {
            self.nodes[i].paused_until = self.nodes[i].paused_until.min(self.tick + 1);
            if self.nodes[i].joined && self.nodes[i].replica.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// A leader is asked for one membership change: add a slot that is not a member as
    /// a learner (starting its node if it is not running: a re-added node keeps its
    /// disk), or remove a member, the leader included. The leader refuses what it must
    /// (a change in progress, no entry of its term committed yet, the last voter).
    pub(super) fn change_membership(&mut self) -> Result<(), Violation> {
        let leaders: Vec<usize> =
            (0..self.nodes.len()).filter(|&i| self.runs(i) && self.nodes[i].role == RoleKind::Leader).collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let i = self.rng.pick(&leaders);
        let members = self.nodes[i].replica.as_ref().expect("running").raft().membership().clone();
        let outside: Vec<NodeId> = (1..=self.nodes.len() as NodeId).filter(|&id| !members.contains(id)).collect();
        let change = if !outside.is_empty() && self.rng.per_mille(500) {
            MembershipChange::AddLearner(self.rng.pick(&outside))
        } else {
            let all: Vec<NodeId> = members.members().collect();
            MembershipChange::Remove(self.rng.pick(&all))
        };
        let replica = self.nodes[i].replica.as_mut().expect("running");
        let r = replica.raft_mut().propose_membership(change);
        trace!(self, "n{}: {change}: {r:?}", i + 1);
        if r.is_ok() {
            self.stats.membership_changes += 1;
            if let MembershipChange::AddLearner(id) = change {
                let slot = id as usize - 1;
                self.nodes[slot].joined = true;
                if self.nodes[slot].replica.is_none() {
                    self.start(slot)?;
                }
            }
        }
        self.turn(i, |_, _| Ok(()))
    }

    /// The supervisor's side of membership: once the configuration of the leader of
    /// the highest term is committed, a node it leaves out is stopped, as `raft-supervisor
    /// remove` does (unless the profile keeps removed nodes running, to show they cannot
    /// disrupt the cluster), and a member that is not running is started. The latter
    /// happens when an addition the supervisor saw stopped by a removal (a deposed
    /// leader's, appended on a minority) commits after all under a later leader.
    pub(super) fn follow_membership(&mut self) -> Result<(), Violation> {
        if self.profile.membership_per_mille == 0 {
            return Ok(());
        }
        // A deposed leader may still hold an older configuration.
        let leaders = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].replica.is_some() && self.nodes[i].role == RoleKind::Leader);
        let Some(l) = leaders.max_by_key(|&i| self.nodes[i].term) else {
            return Ok(());
        };
        let raft = self.nodes[l].replica.as_ref().expect("running").raft();
        if raft.membership_index() > raft.commit_index() {
            return Ok(());
        }
        let members = raft.membership().clone();
        for i in 0..self.nodes.len() {
            let id = i as NodeId + 1;
            let member = members.contains(id);
            if member && !self.nodes[i].joined {
                self.nodes[i].joined = true;
                trace!(self, "n{id} is a member after all: started");
                if self.nodes[i].replica.is_none() {
                    self.start(i)?;
                }
            } else if !member && self.nodes[i].joined && !self.profile.keep_removed {
                self.nodes[i].joined = false;
                if self.nodes[i].replica.is_some() {
                    self.crash(i, "removed from the configuration: stopped");
                    self.stats.crashes -= 1;
                }
            }
        }
        Ok(())
    }
}
