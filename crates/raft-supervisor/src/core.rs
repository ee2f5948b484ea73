//! The supervisor's decisions as a pure state machine: [`Supervisor::on_event`] takes an
//! [`Event`] and the current time and returns the [`Action`]s to carry out. It never forks,
//! signals, reads a clock or sleeps; the shell (`shell.rs`) does that and feeds back what
//! happened ([`Event::Spawned`], [`Event::Exited`], [`Event::Tick`] when
//! [`Supervisor::next_deadline`] has passed).
//!
//! Policy, after Erlang/OTP supervisors and s6:
//!
//! * a node that exits on its own is restarted after a delay that starts at
//!   `restart_backoff_min_ms` and doubles per crash up to `restart_backoff_max_ms`
//!   (s6's minimum delay between respawns, so a crash loop cannot spin the CPU); a node
//!   that ran for a whole `restart_period_ms` before crashing starts again from the minimum;
//! * more than `restart_intensity` crashes within `restart_period_ms` (OTP's MaxR in MaxT)
//!   and the node is given up on: it shows as failed until `start`;
//! * a node stopped with `kill` stays down until `start`;
//! * stopping is SIGTERM, then SIGKILL after `shutdown_grace_ms`.

use raft_config::ClusterConfig;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub type NodeId = u64;

/// After SIGKILL the kernel reaps a process promptly; one that is still not reaped after
/// this long is stuck (uninterruptible sleep) and the supervisor stops waiting for it.
pub const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// The restart and stop policy, from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// More crashes than this within `period` and the node is given up on. 0: never restart.
    pub intensity: u32,
    pub period: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// SIGTERM, then SIGKILL after this long.
    pub grace: Duration,
}

impl Policy {
    pub fn from_config(c: &ClusterConfig) -> Policy {
        Policy {
            intensity: c.restart_intensity,
            period: Duration::from_millis(c.restart_period_ms),
            backoff_min: Duration::from_millis(c.restart_backoff_min_ms),
            backoff_max: Duration::from_millis(c.restart_backoff_max_ms),
            grace: Duration::from_millis(c.shutdown_grace_ms),
        }
    }
}

/// Signals the supervisor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
    Stop,
    Cont,
}

/// How a process ended, as `waitpid` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitHow {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for ExitHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitHow::Code(c) => write!(f, "exited with code {c}"),
            ExitHow::Signal(s) => match nix::sys::signal::Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// Commands from the control socket (and the supervisor's own signals, as `Shutdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Start(NodeId),
    Kill(NodeId),
    Restart(NodeId),
    Pause(NodeId),
    Resume(NodeId),
    /// Stop every node, then exit. A second `Shutdown` SIGKILLs what is still running.
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start every node (the beginning of `up`).
    Up,
    /// The shell forked the node asked for by [`Action::Spawn`].
    Spawned {
        id: NodeId,
        pid: u32,
    },
    /// The shell could not fork it.
    SpawnFailed {
        id: NodeId,
        error: String,
    },
    /// `waitpid` reaped `pid`.
    Exited {
        pid: u32,
        how: ExitHow,
    },
    /// Time passed (at or after [`Supervisor::next_deadline`]).
    Tick,
    Command(Command),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fork and exec this node, then report [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn(NodeId),
    Signal {
        id: NodeId,
        pid: u32,
        sig: Sig,
    },
    /// Print this event line.
    Report(Report),
    /// The answer to the command being handled: `Ok` and `Err` are one line each.
    Reply(Result<String, String>),
    /// Shutdown is complete: no node process is left.
    Exit,
}

/// The event lines `up` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Started {
        id: NodeId,
        pid: u32,
    },
    SpawnFailed {
        id: NodeId,
        error: String,
    },
    /// `expected`: it was asked to stop (kill, restart, shutdown).
    Exited {
        id: NodeId,
        pid: u32,
        how: ExitHow,
        expected: bool,
    },
    Restarting {
        id: NodeId,
        delay: Duration,
        crashes: usize,
        intensity: u32,
        period: Duration,
    },
    GaveUp {
        id: NodeId,
        crashes: usize,
        period: Duration,
    },
    /// restart_intensity is 0.
    NotRestarting {
        id: NodeId,
    },
    GraceExpired {
        id: NodeId,
        pid: u32,
    },
    Unreaped {
        id: NodeId,
        pid: u32,
    },
    ShuttingDown {
        running: usize,
        grace: Duration,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Started { id, pid } => write!(f, "node {id} started (pid {pid})"),
            Report::SpawnFailed { id, error } => write!(f, "node {id} could not be started: {error}"),
            Report::Exited { id, pid, how, expected } => {
                write!(f, "node {id} (pid {pid}) {how}")?;
                if !expected {
                    f.write_str(" unexpectedly")?;
                }
                Ok(())
            }
            Report::Restarting { id, delay, crashes, intensity, period } => write!(
                f,
                "node {id} restarting in {} ms (crash {crashes} of at most {intensity} in {} ms)",
                delay.as_millis(),
                period.as_millis()
            ),
            Report::GaveUp { id, crashes, period } => write!(
                f,
                "node {id} failed: {crashes} crashes within {} ms, not restarting it (run `raft-supervisor start {id}`)",
                period.as_millis()
            ),
            Report::NotRestarting { id } => {
                write!(f, "node {id} crashed; restart_intensity is 0, so it stays down (run `raft-supervisor start {id}`)")
            }
            Report::GraceExpired { id, pid } => write!(f, "node {id} (pid {pid}) did not exit in time; sending SIGKILL"),
            Report::Unreaped { id, pid } => {
                write!(f, "node {id} (pid {pid}) was not reaped {} s after SIGKILL; no longer waiting", REAP_TIMEOUT.as_secs())
            }
            Report::ShuttingDown { running, grace } => write!(
                f,
                "stopping {running} node(s): SIGTERM, then SIGKILL after {} ms",
                grace.as_millis()
            ),
        }
    }
}

/// What to do once a stopping process has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    StayDown,
    Start,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proc {
    /// Not running, by request (`kill`) or never started.
    Stopped,
    /// [`Action::Spawn`] issued; waiting for the shell's answer.
    Spawning,
    Running {
        pid: u32,
    },
    Paused {
        pid: u32,
    },
    /// Signalled; waiting to reap it. At `deadline`: SIGKILL if not yet sent, else give up.
    Stopping {
        pid: u32,
        deadline: Instant,
        killed: bool,
        then: Then,
    },
    /// Crashed; restart at `until`.
    Backoff {
        until: Instant,
    },
    /// Crashed and not restarted: the supervisor is shutting down, or intensity is 0.
    Crashed,
    /// Crashed too often; given up on.
    Failed,
}

struct NodeState {
    proc: Proc,
    /// Times of crashes within the last period, oldest first; at most intensity + 1 long.
    crashes: VecDeque<Instant>,
    /// The delay before the next automatic restart.
    backoff: Duration,
    started_at: Option<Instant>,
}

/// The process state of one node as `status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessView {
    /// running, stopped, paused, crashed, backoff or failed.
    pub state: &'static str,
    pub pid: Option<u32>,
}

/// The supervisor's decision state. See the module docs.
pub struct Supervisor {
    policy: Policy,
    nodes: BTreeMap<NodeId, NodeState>,
    shutting_down: bool,
    exited: bool,
    /// The node whose `start`/`restart` command waits for its spawn to be answered.
    reply_on_spawn: Option<NodeId>,
}

impl Supervisor {
    pub fn new(policy: Policy, ids: impl IntoIterator<Item = NodeId>) -> Supervisor {
        assert!(policy.backoff_min <= policy.backoff_max, "backoff_min must not exceed backoff_max");
        let nodes = ids
            .into_iter()
            .map(|id| {
                assert!(id != 0, "node id 0 means no node");
                let st = NodeState {
                    proc: Proc::Stopped,
                    crashes: VecDeque::new(),
                    backoff: policy.backoff_min,
                    started_at: None,
                };
                (id, st)
            })
            .collect();
        Supervisor { policy, nodes, shutting_down: false, exited: false, reply_on_spawn: None }
    }

    /// Takes node `id` under supervision, stopped (a node added at run time); `Start`
    /// starts it. Already supervised: nothing changes.
    pub fn supervise(&mut self, id: NodeId) {
        assert!(id != 0, "node id 0 means no node");
        let backoff = self.policy.backoff_min;
        self.nodes.entry(id).or_insert(NodeState {
            proc: Proc::Stopped,
            crashes: VecDeque::new(),
            backoff,
            started_at: None,
        });
    }

    /// Whether node `id` is supervised.
    pub fn supervises(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The earliest time at which [`Event::Tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.nodes
            .values()
            .filter_map(|n| match n.proc {
                Proc::Backoff { until } => Some(until),
                Proc::Stopping { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    pub fn process(&self, id: NodeId) -> ProcessView {
        let n = &self.nodes[&id];
        let (state, pid) = match n.proc {
            Proc::Stopped => ("stopped", None),
            // Spawning lasts only within one turn of the shell.
            Proc::Spawning => ("running", None),
            // A node on its way down for good (`kill`, `down`) reads as stopped at once, so
            // `kill N; status` agrees with what was asked; its pid shows until it is reaped.
            // One being restarted stays "running": it comes straight back.
            Proc::Stopping { pid, then: Then::StayDown, .. } => ("stopped", Some(pid)),
            Proc::Running { pid } | Proc::Stopping { pid, then: Then::Start, .. } => ("running", Some(pid)),
            Proc::Paused { pid } => ("paused", Some(pid)),
            Proc::Backoff { .. } => ("backoff", None),
            Proc::Crashed => ("crashed", None),
            Proc::Failed => ("failed", None),
        };
        ProcessView { state, pid }
    }

    /// The pid of a node whose process is answering requests (running, not paused or stopping).
    pub fn serving_pid(&self, id: NodeId) -> Option<u32> {
        match self.nodes[&id].proc {
            Proc::Running { pid } => Some(pid),
            _ => None,
        }
    }

    /// Every pid the supervisor is responsible for.
    pub fn pids(&self) -> Vec<(NodeId, u32)> {
        self.nodes.iter().filter_map(|(id, n)| pid_of(n.proc).map(|p| (*id, p))).collect()
    }

    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Up => {
                assert!(!self.shutting_down, "Up after shutdown");
                let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                for id in ids {
                    if self.nodes[&id].proc == Proc::Stopped {
                        self.spawn(id, &mut out);
                    }
                }
            }
            Event::Spawned { id, pid } => {
                let n = self.node_mut(id);
                assert_eq!(n.proc, Proc::Spawning, "node {id} spawned without being asked to");
                n.proc = Proc::Running { pid };
                n.started_at = Some(now);
                out.push(Action::Report(Report::Started { id, pid }));
                if self.reply_on_spawn == Some(id) {
                    self.reply_on_spawn = None;
                    out.push(Action::Reply(Ok(format!("node {id} started (pid {pid})"))));
                }
            }
            Event::SpawnFailed { id, error } => {
                let n = self.node_mut(id);
                assert_eq!(n.proc, Proc::Spawning, "node {id} failed to spawn without being asked to");
                out.push(Action::Report(Report::SpawnFailed { id, error: error.clone() }));
                if self.reply_on_spawn == Some(id) {
                    self.reply_on_spawn = None;
                    out.push(Action::Reply(Err(format!("node {id} could not be started: {error}"))));
                }
                self.crashed(id, now, &mut out);
            }
            Event::Exited { pid, how } => self.exited(pid, how, now, &mut out),
            Event::Tick => self.tick(now, &mut out),
            Event::Command(cmd) => self.command(cmd, now, &mut out),
        }
        self.check_done(&mut out);
        out
    }

    fn node_mut(&mut self, id: NodeId) -> &mut NodeState {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("node {id} is not supervised"))
    }

    fn spawn(&mut self, id: NodeId, out: &mut Vec<Action>) {
        assert!(!self.shutting_down, "spawn while shutting down");
        let n = self.node_mut(id);
        assert!(pid_of(n.proc).is_none(), "node {id} spawned while its process lives");
        n.proc = Proc::Spawning;
        out.push(Action::Spawn(id));
    }

    fn exited(&mut self, pid: u32, how: ExitHow, now: Instant, out: &mut Vec<Action>) {
        let Some(id) = self.nodes.iter().find(|(_, n)| pid_of(n.proc) == Some(pid)).map(|(id, _)| *id) else {
            return; // Not ours (or one we stopped waiting for).
        };
        let n = self.node_mut(id);
        match n.proc {
            Proc::Stopping { then, .. } => {
                n.proc = Proc::Stopped;
                out.push(Action::Report(Report::Exited { id, pid, how, expected: true }));
                if then == Then::Start && !self.shutting_down {
                    self.spawn(id, out);
                }
            }
            Proc::Running { .. } | Proc::Paused { .. } => {
                out.push(Action::Report(Report::Exited { id, pid, how, expected: false }));
                self.crashed(id, now, out);
            }
            other => unreachable!("pid_of matched a pid in {other:?}"),
        }
    }

    /// A node's process ended (or never started) on its own.
    fn crashed(&mut self, id: NodeId, now: Instant, out: &mut Vec<Action>) {
        let policy = self.policy;
        let shutting_down = self.shutting_down;
        let n = self.node_mut(id);
        if shutting_down {
            n.proc = Proc::Crashed;
            return;
        }
        if n.started_at.is_some_and(|t| now.saturating_duration_since(t) >= policy.period) {
            n.backoff = policy.backoff_min; // It was stable; this is a fresh failure.
        }
        n.crashes.push_back(now);
        while n.crashes.front().is_some_and(|t| now.saturating_duration_since(*t) >= policy.period) {
            n.crashes.pop_front();
        }
        let crashes = n.crashes.len();
        if policy.intensity == 0 {
            n.proc = Proc::Crashed;
            out.push(Action::Report(Report::NotRestarting { id }));
        } else if crashes > policy.intensity as usize {
            n.proc = Proc::Failed;
            out.push(Action::Report(Report::GaveUp { id, crashes, period: policy.period }));
        } else {
            let delay = n.backoff;
            n.proc = Proc::Backoff { until: now + delay };
            n.backoff = (n.backoff * 2).min(policy.backoff_max);
            let (intensity, period) = (policy.intensity, policy.period);
            out.push(Action::Report(Report::Restarting { id, delay, crashes, intensity, period }));
        }
        assert!(n.crashes.len() <= policy.intensity as usize + 1, "crash history is bounded by the intensity");
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let n = self.node_mut(id);
            match n.proc {
                Proc::Backoff { until } if until <= now => {
                    assert!(!self.shutting_down, "shutdown clears pending restarts");
                    self.spawn(id, out);
                }
                Proc::Stopping { pid, deadline, killed: false, then } if deadline <= now => {
                    n.proc = Proc::Stopping { pid, deadline: now + REAP_TIMEOUT, killed: true, then };
                    out.push(Action::Report(Report::GraceExpired { id, pid }));
                    out.push(Action::Signal { id, pid, sig: Sig::Kill });
                }
                Proc::Stopping { pid, deadline, killed: true, then } if deadline <= now => {
                    n.proc = Proc::Stopped;
                    out.push(Action::Report(Report::Unreaped { id, pid }));
                    if then == Then::Start && !self.shutting_down {
                        self.spawn(id, out);
                    }
                }
                _ => {}
            }
        }
    }

    /// SIGTERM (and SIGCONT, so a paused process can act on it), SIGKILL after the grace
    /// period. A zero grace period is SIGKILL at once.
    fn stop(&mut self, id: NodeId, then: Then, now: Instant, out: &mut Vec<Action>) {
        let grace = self.policy.grace;
        let n = self.node_mut(id);
        let (pid, paused) = match n.proc {
            Proc::Running { pid } => (pid, false),
            Proc::Paused { pid } => (pid, true),
            other => unreachable!("stop of a node in {other:?}"),
        };
        if grace.is_zero() {
            n.proc = Proc::Stopping { pid, deadline: now + REAP_TIMEOUT, killed: true, then };
            out.push(Action::Signal { id, pid, sig: Sig::Kill });
            return;
        }
        n.proc = Proc::Stopping { pid, deadline: now + grace, killed: false, then };
        out.push(Action::Signal { id, pid, sig: Sig::Term });
        if paused {
            out.push(Action::Signal { id, pid, sig: Sig::Cont });
        }
    }

    fn command(&mut self, cmd: Command, now: Instant, out: &mut Vec<Action>) {
        let id = match cmd {
            Command::Shutdown => return self.shutdown(now, out),
            Command::Start(id)
            | Command::Kill(id)
            | Command::Restart(id)
            | Command::Pause(id)
            | Command::Resume(id) => id,
        };
        if !self.nodes.contains_key(&id) {
            let max = self.nodes.keys().last().copied().unwrap_or(0);
            return out.push(Action::Reply(Err(format!("no node {id}: node ids are 1..={max}"))));
        }
        if self.shutting_down {
            return out.push(Action::Reply(Err("the supervisor is shutting down".into())));
        }
        let grace_ms = self.policy.grace.as_millis();
        let backoff_min = self.policy.backoff_min;
        let state = self.process(id).state;
        let n = self.node_mut(id);
        let reply = match (cmd, n.proc) {
            (
                Command::Start(_) | Command::Restart(_),
                Proc::Stopped | Proc::Backoff { .. } | Proc::Crashed | Proc::Failed,
            ) => {
                // A manual start forgives past crashes.
                n.crashes.clear();
                n.backoff = backoff_min;
                self.reply_on_spawn = Some(id);
                self.spawn(id, out);
                return;
            }
            (Command::Start(_), Proc::Running { pid } | Proc::Paused { pid }) => {
                Err(format!("node {id} is already running (pid {pid})"))
            }
            (Command::Start(_) | Command::Restart(_), Proc::Stopping { pid, deadline, killed, .. }) => {
                n.proc = Proc::Stopping { pid, deadline, killed, then: Then::Start };
                Ok(format!("node {id} (pid {pid}) is stopping; it will start again once it has exited"))
            }
            (Command::Restart(_), Proc::Running { .. } | Proc::Paused { .. }) => {
                self.stop(id, Then::Start, now, out);
                Ok(format!("node {id} restarting (SIGTERM, SIGKILL after {grace_ms} ms)"))
            }
            (Command::Kill(_), Proc::Running { pid } | Proc::Paused { pid }) => {
                n.proc = Proc::Stopping { pid, deadline: now + REAP_TIMEOUT, killed: true, then: Then::StayDown };
                out.push(Action::Signal { id, pid, sig: Sig::Kill });
                Ok(format!(
                    "node {id} (pid {pid}) killed with SIGKILL; it stays down until `raft-supervisor start {id}`"
                ))
            }
            (Command::Kill(_), Proc::Stopping { pid, killed, .. }) => {
                n.proc = Proc::Stopping { pid, deadline: now + REAP_TIMEOUT, killed: true, then: Then::StayDown };
                if !killed {
                    out.push(Action::Signal { id, pid, sig: Sig::Kill });
                }
                Ok(format!(
                    "node {id} (pid {pid}) killed with SIGKILL; it stays down until `raft-supervisor start {id}`"
                ))
            }
            (Command::Kill(_), Proc::Backoff { .. }) => {
                n.proc = Proc::Stopped;
                Ok(format!("node {id} was waiting to restart; it now stays down until `raft-supervisor start {id}`"))
            }
            (Command::Kill(_), Proc::Stopped | Proc::Crashed | Proc::Failed) => {
                Err(format!("node {id} is not running ({state})"))
            }
            (Command::Pause(_), Proc::Running { pid }) => {
                n.proc = Proc::Paused { pid };
                out.push(Action::Signal { id, pid, sig: Sig::Stop });
                Ok(format!("node {id} (pid {pid}) paused with SIGSTOP; `raft-supervisor resume {id}` continues it"))
            }
            (Command::Pause(_), Proc::Paused { .. }) => Err(format!("node {id} is already paused")),
            (Command::Resume(_), Proc::Paused { pid }) => {
                n.proc = Proc::Running { pid };
                out.push(Action::Signal { id, pid, sig: Sig::Cont });
                Ok(format!("node {id} (pid {pid}) resumed with SIGCONT"))
            }
            (Command::Resume(_), Proc::Running { .. }) => Err(format!("node {id} is not paused")),
            (Command::Pause(_) | Command::Resume(_), Proc::Stopping { .. }) => Err(format!("node {id} is stopping")),
            (Command::Pause(_) | Command::Resume(_), _) => Err(format!("node {id} is not running ({state})")),
            (_, Proc::Spawning) => unreachable!("commands are handled between turns, never mid-spawn"),
            (Command::Shutdown, _) => unreachable!("handled above"),
        };
        out.push(Action::Reply(reply));
    }

    fn shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutting_down {
            // Asked twice (a second Ctrl-C): no more patience.
            for (id, n) in self.nodes.iter_mut() {
                if let Proc::Stopping { pid, killed: false, then, .. } = n.proc {
                    n.proc = Proc::Stopping { pid, deadline: now + REAP_TIMEOUT, killed: true, then };
                    out.push(Action::Signal { id: *id, pid, sig: Sig::Kill });
                }
            }
            out.push(Action::Reply(Ok("already stopping; sent SIGKILL to the nodes still running".into())));
            return;
        }
        self.shutting_down = true;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut running = 0;
        for id in ids {
            let n = self.node_mut(id);
            match n.proc {
                Proc::Running { .. } | Proc::Paused { .. } => {
                    running += 1;
                    self.stop(id, Then::StayDown, now, out);
                }
                Proc::Stopping { pid, deadline, killed, .. } => {
                    running += 1;
                    n.proc = Proc::Stopping { pid, deadline, killed, then: Then::StayDown };
                }
                Proc::Backoff { .. } => n.proc = Proc::Stopped,
                Proc::Stopped | Proc::Crashed | Proc::Failed => {}
                Proc::Spawning => unreachable!("commands are handled between turns, never mid-spawn"),
            }
        }
        out.push(Action::Report(Report::ShuttingDown { running, grace: self.policy.grace }));
        out.push(Action::Reply(Ok(format!("stopping {running} node(s)"))));
    }

    fn check_done(&mut self, out: &mut Vec<Action>) {
        if self.shutting_down && !self.exited && self.nodes.values().all(|n| pid_of(n.proc).is_none()) {
            assert!(self.nodes.values().all(|n| n.proc != Proc::Spawning), "no spawn during shutdown");
            self.exited = true;
            out.push(Action::Exit);
        }
    }
}

fn pid_of(p: Proc) -> Option<u32> {
    match p {
        Proc::Running { pid } | Proc::Paused { pid } | Proc::Stopping { pid, .. } => Some(pid),
        _ => None,
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
