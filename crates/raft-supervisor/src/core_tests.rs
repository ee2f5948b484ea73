//! The decision core, driven by hand: no fork, no clock, no sleep.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy() -> Policy {
    Policy {
        intensity: 3,
        period: Duration::from_secs(10),
        backoff_min: ms(100),
        backoff_max: ms(800),
        grace: ms(2000),
    }
}

/// A supervisor plus a fake process table: `pid` of node `id` at its `gen`-th start is
/// `id * 1000 + gen`.
struct Harness {
    sup: Supervisor,
    t0: Instant,
    now: Instant,
    spawns: BTreeMap<NodeId, u32>,
    log: Vec<Report>,
}

impl Harness {
    fn new(policy: Policy, nodes: u64) -> Harness {
        let t0 = Instant::now();
        Harness { sup: Supervisor::new(policy, 1..=nodes), t0, now: t0, spawns: BTreeMap::new(), log: vec![] }
    }

    fn at(&mut self, t_ms: u64) -> &mut Self {
        let t = self.t0 + ms(t_ms);
        assert!(t >= self.now, "time goes forward");
        self.now = t;
        self
    }

    /// Feeds `event`, carries out spawns like the shell would, and returns every other action.
    fn feed(&mut self, event: Event) -> Vec<Action> {
        let mut queue = VecDeque::from([event]);
        let mut out = vec![];
        while let Some(ev) = queue.pop_front() {
            for a in self.sup.on_event(ev, self.now) {
                match a {
                    Action::Spawn(id) => {
                        let gen = self.spawns.entry(id).or_insert(0);
                        *gen += 1;
                        queue.push_back(Event::Spawned { id, pid: (id * 1000) as u32 + *gen });
                    }
                    Action::Report(r) => self.log.push(r),
                    other => out.push(other),
                }
            }
        }
        out
    }

    fn pid(&self, id: NodeId) -> u32 {
        self.sup.process(id).pid.unwrap_or_else(|| panic!("node {id} has no pid"))
    }

    fn state(&self, id: NodeId) -> &'static str {
        self.sup.process(id).state
    }

    fn crash(&mut self, id: NodeId) -> Vec<Action> {
        let pid = self.pid(id);
        self.feed(Event::Exited { pid, how: ExitHow::Code(1) })
    }

    fn cmd(&mut self, c: Command) -> Vec<Action> {
        self.feed(Event::Command(c))
    }

    fn last_report(&self) -> &Report {
        self.log.last().expect("a report")
    }

    fn up(policy: Policy, nodes: u64) -> Harness {
        let mut h = Harness::new(policy, nodes);
        assert_eq!(h.feed(Event::Up), vec![]);
        h
    }
}

fn reply(actions: &[Action]) -> Result<String, String> {
    let replies: Vec<_> =
        actions.iter().filter_map(|a| if let Action::Reply(r) = a { Some(r.clone()) } else { None }).collect();
    assert_eq!(replies.len(), 1, "exactly one reply in {actions:?}");
    replies.into_iter().next().unwrap()
}

fn signals(actions: &[Action]) -> Vec<(NodeId, Sig)> {
    actions
        .iter()
        .filter_map(|a| if let Action::Signal { id, sig, .. } = a { Some((*id, *sig)) } else { None })
        .collect()
}

#[test]
fn up_starts_every_node() {
    let h = Harness::up(policy(), 5);
    for id in 1..=5 {
        assert_eq!(h.state(id), "running");
        assert_eq!(h.pid(id), id as u32 * 1000 + 1);
    }
    assert_eq!(h.log.len(), 5);
    assert_eq!(h.log[0].to_string(), "node 1 started (pid 1001)");
    assert_eq!(h.sup.next_deadline(), None, "nothing to wait for");
}

#[test]
fn crash_restarts_after_backoff_that_doubles_up_to_the_cap() {
    let p = Policy { intensity: 100, ..policy() };
    let mut h = Harness::up(p, 1);
    let mut t = 0;
    for expected in [100, 200, 400, 800, 800, 800] {
        h.at(t);
        h.crash(1);
        assert_eq!(h.state(1), "backoff");
        match h.last_report() {
            Report::Restarting { delay, .. } => assert_eq!(*delay, ms(expected)),
            r => panic!("expected restarting, got {r}"),
        }
        assert_eq!(h.sup.next_deadline(), Some(h.t0 + ms(t + expected)));
        // Not a moment early.
        h.at(t + expected - 1);
        assert_eq!(h.feed(Event::Tick), vec![]);
        assert_eq!(h.state(1), "backoff");
        h.at(t + expected);
        h.feed(Event::Tick);
        assert_eq!(h.state(1), "running");
        assert!(matches!(h.last_report(), Report::Started { id: 1, .. }));
        t += expected + 1;
    }
}

#[test]
fn more_than_intensity_crashes_in_period_gives_up() {
    // Intensity 3: three crashes within 10 s are restarted, the fourth is one too many.
    let mut h = Harness::up(policy(), 2);
    let mut t = 0;
    for n in 1..=3 {
        h.at(t);
        h.crash(1);
        assert_eq!(h.state(1), "backoff", "crash {n}");
        t += 1000;
        h.at(t);
        h.feed(Event::Tick);
        assert_eq!(h.state(1), "running");
    }
    h.at(t + 1);
    h.crash(1);
    assert_eq!(h.state(1), "failed");
    assert_eq!(h.last_report(), &Report::GaveUp { id: 1, crashes: 4, period: Duration::from_secs(10) });
    assert!(h.last_report().to_string().contains("raft-supervisor start 1"));
    assert_eq!(h.sup.next_deadline(), None, "a failed node is not restarted");
    assert_eq!(h.state(2), "running", "other nodes are untouched");
}

#[test]
fn crashes_older_than_the_period_are_forgotten() {
    let mut h = Harness::up(policy(), 1);
    // Crash every 4 s: at most 3 within any 10 s window, so never more than intensity 3.
    for i in 0..10u64 {
        let t = i * 4000;
        h.at(t);
        h.crash(1);
        assert_eq!(h.state(1), "backoff", "crash at {t} ms");
        h.at(t + 1000);
        h.feed(Event::Tick);
        assert_eq!(h.state(1), "running");
    }
}

#[test]
fn a_stable_run_resets_the_backoff() {
    let p = Policy { intensity: 100, ..policy() };
    let mut h = Harness::up(p, 1);
    h.crash(1);
    h.at(100).feed(Event::Tick);
    h.at(101).crash(1);
    assert!(matches!(h.last_report(), Report::Restarting { delay, .. } if *delay == ms(200)));
    h.at(301).feed(Event::Tick);
    // Ran for a whole period before the next crash: back to the minimum.
    h.at(301 + 10_000).crash(1);
    assert!(matches!(h.last_report(), Report::Restarting { delay, .. } if *delay == ms(100)));
}

#[test]
fn intensity_zero_never_restarts() {
    let mut h = Harness::up(Policy { intensity: 0, ..policy() }, 1);
    h.crash(1);
    assert_eq!(h.state(1), "crashed");
    assert_eq!(h.last_report(), &Report::NotRestarting { id: 1 });
    assert_eq!(h.sup.next_deadline(), None);
}

#[test]
fn kill_stays_down_until_start() {
    let mut h = Harness::up(policy(), 3);
    let pid = h.pid(2);
    let a = h.cmd(Command::Kill(2));
    assert_eq!(signals(&a), vec![(2, Sig::Kill)]);
    assert!(reply(&a).unwrap().contains("stays down"));
    assert_eq!(h.state(2), "stopped", "a killed node reads as stopped before it is reaped");
    assert_eq!(h.pid(2), pid, "its pid shows until it is reaped");
    h.at(5).feed(Event::Exited { pid, how: ExitHow::Signal(9) });
    assert_eq!(h.state(2), "stopped");
    assert_eq!(h.last_report().to_string(), "node 2 (pid 2001) killed by SIGKILL");
    // No restart, however long we wait.
    assert_eq!(h.sup.next_deadline(), None);
    h.at(60_000).feed(Event::Tick);
    assert_eq!(h.state(2), "stopped");
    // Killing it again is refused; start brings it back with a new pid.
    assert_eq!(reply(&h.cmd(Command::Kill(2))), Err("node 2 is not running (stopped)".into()));
    let a = h.cmd(Command::Start(2));
    assert_eq!(reply(&a), Ok("node 2 started (pid 2002)".into()));
    assert_eq!(h.state(2), "running");
    assert_eq!(h.pid(2), 2002);
}

#[test]
fn kill_during_backoff_cancels_the_restart() {
    let mut h = Harness::up(policy(), 1);
    h.crash(1);
    assert_eq!(h.state(1), "backoff");
    let a = h.cmd(Command::Kill(1));
    assert!(signals(&a).is_empty());
    assert!(reply(&a).is_ok());
    assert_eq!(h.state(1), "stopped");
    assert_eq!(h.sup.next_deadline(), None);
}

#[test]
fn start_of_a_failed_node_forgives_its_crashes() {
    let mut h = Harness::up(Policy { intensity: 1, ..policy() }, 1);
    h.crash(1);
    h.at(100).feed(Event::Tick);
    h.at(101).crash(1);
    assert_eq!(h.state(1), "failed");
    assert!(reply(&h.cmd(Command::Start(1))).is_ok());
    assert_eq!(h.state(1), "running");
    // One crash is within intensity again, and the backoff starts from the minimum.
    h.at(102).crash(1);
    assert_eq!(h.state(1), "backoff");
    assert!(matches!(h.last_report(), Report::Restarting { delay, .. } if *delay == ms(100)));
}

#[test]
fn start_of_a_running_node_is_refused() {
    let mut h = Harness::up(policy(), 1);
    assert_eq!(reply(&h.cmd(Command::Start(1))), Err("node 1 is already running (pid 1001)".into()));
    assert_eq!(reply(&h.cmd(Command::Start(9))), Err("no node 9: node ids are 1..=1".into()));
}

#[test]
fn restart_is_sigterm_then_start_and_not_a_crash() {
    let mut h = Harness::up(Policy { intensity: 0, ..policy() }, 1);
    let a = h.cmd(Command::Restart(1));
    assert_eq!(signals(&a), vec![(1, Sig::Term)]);
    assert!(reply(&a).unwrap().contains("restarting"));
    assert_eq!(h.state(1), "running", "still running until it exits");
    h.at(50).feed(Event::Exited { pid: 1001, how: ExitHow::Code(0) });
    assert_eq!(h.state(1), "running");
    assert_eq!(h.pid(1), 1002, "started again at once, no backoff");
    assert!(matches!(h.log[h.log.len() - 2], Report::Exited { expected: true, .. }));
}

#[test]
fn grace_period_then_sigkill() {
    let mut h = Harness::up(policy(), 1);
    h.cmd(Command::Restart(1));
    assert_eq!(h.sup.next_deadline(), Some(h.t0 + ms(2000)));
    h.at(1999);
    assert_eq!(h.feed(Event::Tick), vec![]);
    h.at(2000);
    let a = h.feed(Event::Tick);
    assert_eq!(signals(&a), vec![(1, Sig::Kill)]);
    assert_eq!(h.last_report(), &Report::GraceExpired { id: 1, pid: 1001 });
    h.at(2001).feed(Event::Exited { pid: 1001, how: ExitHow::Signal(9) });
    assert_eq!(h.pid(1), 1002);
}

#[test]
fn a_process_that_is_never_reaped_is_given_up_on() {
    let mut h = Harness::up(policy(), 1);
    let a = h.cmd(Command::Kill(1));
    assert_eq!(signals(&a), vec![(1, Sig::Kill)]);
    h.at(REAP_TIMEOUT.as_millis() as u64).feed(Event::Tick);
    assert_eq!(h.state(1), "stopped");
    assert_eq!(h.last_report(), &Report::Unreaped { id: 1, pid: 1001 });
    // Its late exit is ignored.
    assert_eq!(h.feed(Event::Exited { pid: 1001, how: ExitHow::Signal(9) }), vec![]);
    assert_eq!(h.state(1), "stopped");
}

#[test]
fn pause_and_resume() {
    let mut h = Harness::up(policy(), 1);
    let a = h.cmd(Command::Pause(1));
    assert_eq!(signals(&a), vec![(1, Sig::Stop)]);
    assert_eq!(h.state(1), "paused");
    assert_eq!(h.sup.serving_pid(1), None);
    assert_eq!(reply(&h.cmd(Command::Pause(1))), Err("node 1 is already paused".into()));
    let a = h.cmd(Command::Resume(1));
    assert_eq!(signals(&a), vec![(1, Sig::Cont)]);
    assert_eq!(h.state(1), "running");
    assert_eq!(reply(&h.cmd(Command::Resume(1))), Err("node 1 is not paused".into()));
}

#[test]
fn a_paused_node_gets_sigcont_with_its_sigterm() {
    let mut h = Harness::up(policy(), 1);
    h.cmd(Command::Pause(1));
    let a = h.cmd(Command::Restart(1));
    assert_eq!(signals(&a), vec![(1, Sig::Term), (1, Sig::Cont)]);
}

#[test]
fn a_paused_node_that_dies_is_a_crash() {
    let mut h = Harness::up(policy(), 1);
    h.cmd(Command::Pause(1));
    h.crash(1);
    assert_eq!(h.state(1), "backoff");
}

#[test]
fn pause_of_a_stopped_node_is_refused() {
    let mut h = Harness::up(policy(), 1);
    h.cmd(Command::Kill(1));
    assert_eq!(reply(&h.cmd(Command::Pause(1))), Err("node 1 is stopping".into()));
    h.feed(Event::Exited { pid: 1001, how: ExitHow::Signal(9) });
    assert_eq!(reply(&h.cmd(Command::Pause(1))), Err("node 1 is not running (stopped)".into()));
}

#[test]
fn shutdown_terms_everyone_kills_after_grace_and_exits_when_all_are_reaped() {
    let mut h = Harness::up(policy(), 3);
    h.cmd(Command::Pause(3));
    h.crash(2); // In backoff: must not be restarted.
    let a = h.cmd(Command::Shutdown);
    assert_eq!(signals(&a), vec![(1, Sig::Term), (3, Sig::Term), (3, Sig::Cont)]);
    assert_eq!(reply(&a), Ok("stopping 2 node(s)".into()));
    assert_eq!(h.state(2), "stopped");
    assert!(h.sup.is_shutting_down());
    // Commands are refused now.
    assert_eq!(reply(&h.cmd(Command::Start(2))), Err("the supervisor is shutting down".into()));
    h.at(10);
    assert_eq!(h.feed(Event::Exited { pid: 1001, how: ExitHow::Code(0) }), vec![]);
    h.at(2000);
    let a = h.feed(Event::Tick);
    assert_eq!(signals(&a), vec![(3, Sig::Kill)]);
    let a = h.feed(Event::Exited { pid: 3001, how: ExitHow::Signal(9) });
    assert_eq!(a, vec![Action::Exit]);
    // Exit is announced once.
    assert_eq!(h.feed(Event::Tick), vec![]);
}

#[test]
fn second_shutdown_kills_at_once() {
    let mut h = Harness::up(policy(), 2);
    h.cmd(Command::Shutdown);
    let a = h.cmd(Command::Shutdown);
    assert_eq!(signals(&a), vec![(1, Sig::Kill), (2, Sig::Kill)]);
}

#[test]
fn a_crash_during_shutdown_is_not_restarted() {
    let mut h = Harness::up(policy(), 2);
    h.cmd(Command::Restart(1));
    h.cmd(Command::Shutdown);
    // Node 1 was restarting: now it stays down.
    assert_eq!(h.feed(Event::Exited { pid: 1001, how: ExitHow::Code(0) }), vec![]);
    assert_eq!(h.state(1), "stopped");
    assert_eq!(h.feed(Event::Exited { pid: 2001, how: ExitHow::Code(0) }), vec![Action::Exit]);
}

#[test]
fn shutdown_with_nothing_running_exits_at_once() {
    let mut h = Harness::up(Policy { intensity: 0, ..policy() }, 1);
    h.crash(1);
    let a = h.cmd(Command::Shutdown);
    assert!(a.contains(&Action::Exit));
    assert_eq!(h.state(1), "crashed");
}

#[test]
fn zero_grace_is_sigkill_at_once() {
    let mut h = Harness::up(Policy { grace: Duration::ZERO, ..policy() }, 1);
    let a = h.cmd(Command::Shutdown);
    assert_eq!(signals(&a), vec![(1, Sig::Kill)]);
}

#[test]
fn spawn_failure_is_a_crash_and_answers_the_start() {
    let mut h = Harness::up(policy(), 1);
    h.cmd(Command::Kill(1));
    h.feed(Event::Exited { pid: 1001, how: ExitHow::Signal(9) });
    let a = h.sup.on_event(Event::Command(Command::Start(1)), h.now);
    assert_eq!(a, vec![Action::Spawn(1)]);
    let a = h.sup.on_event(Event::SpawnFailed { id: 1, error: "EAGAIN".into() }, h.now);
    assert_eq!(reply(&a), Err("node 1 could not be started: EAGAIN".into()));
    assert_eq!(h.state(1), "backoff");
}

#[test]
fn exits_of_unknown_pids_are_ignored() {
    let mut h = Harness::up(policy(), 1);
    assert_eq!(h.feed(Event::Exited { pid: 4242, how: ExitHow::Code(0) }), vec![]);
    assert_eq!(h.state(1), "running");
}

#[test]
fn exit_how_is_readable() {
    assert_eq!(ExitHow::Code(3).to_string(), "exited with code 3");
    assert_eq!(ExitHow::Signal(15).to_string(), "killed by SIGTERM");
    assert_eq!(ExitHow::Signal(99).to_string(), "killed by signal 99");
}
