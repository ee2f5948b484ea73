//! `raft-cli chaos`: concurrent clients plus random faults, then a linearizability check.
//!
//! Client threads run gets, sets, cas and deletes on a few fresh keys (named after a
//! random run id, so every key starts absent, as the checker's model assumes) and record
//! each operation as a [`raft_lincheck::Operation`] with monotonic times (nanoseconds
//! since the run began). Every written value is unique, so a read says which write it saw.
//! Meanwhile the main thread asks the supervisor for one fault at a time (kill and start
//! a node, kill the leader, pause and resume, partition and heal, a delay and loss on
//! some nodes' outgoing messages and off again) and always undoes it.
//!
//! With `--no-supervisor` (nodes run by systemd, containers or a test's own network) no
//! faults are injected here and nothing is restored: whoever runs the nodes makes the
//! faults and undoes them before `--duration` ends; the rest is the same.
//!
//! After `--duration`, the clients stop, the network is healed and every node started and
//! resumed; then the run waits (up to `--settle-timeout`) until one leader has committed
//! its whole log and every node has applied all of it, and checks the history key by key.
//!
//! How outcomes are recorded: a success as what it returned; exit-3 style failures
//! (`Unavailable`, only `NotLeader`) as `Failed`, which the checker drops; timeouts and
//! `Unknown` as `Unknown`, which may have taken effect at any time after the invocation,
//! or never. A cas that did not swap is recorded as the read it also is: the node reports
//! the value it found (`Reply::Cas { current }`), which says more than "mismatch" and
//! lets the checker prune unknown writes nobody observed.
//!
//! Exit 0 only if the history is linearizable and every node caught up; 1 otherwise;
//! 3 if no supervisor or no leader could be found at the start.

use crate::args::{format_duration, ChaosArgs};
use crate::client::{random_u64, supervisor_call, Client, ClientError, Cluster};
use crate::commands::Output;
use crate::rng::Rng;
use crate::{EXIT_MISMATCH, EXIT_OK, EXIT_UNAVAILABLE};
use raft_core::{NodeId, RoleKind};
use raft_lincheck::{Op, Operation, Outcome, Verdict};
use raft_wire::supervisor::{ClusterStatus, SupervisorRequest, SupervisorResponse};
use raft_wire::{ReadOp, Reply, WriteOp};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most operations recorded in one run: bounds memory and the checker's work. The
/// clients stop early when it is reached.
pub const MAX_HISTORY_OPS: u64 = 500_000;
/// Pause between faults: long enough for an election to finish in between, so the
/// history has both calm and turbulent stretches.
const FAULT_GAP: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(1500));
/// How long a fault stays in place before it is undone.
const FAULT_HOLD: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(3000));
/// How long to wait for a leader before the run starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the catch-up condition is polled.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// One injected fault, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Kill,
    LeaderKill,
    Pause,
    Partition,
    /// Network levers: a delay with jitter and a loss on one node or all of them.
    Net,
}

/// A network fault's delay, its jitter (a fraction of it), and loss: slow and lossy
/// enough to reorder, drop and retransmit, short of the election timeout at the default
/// tick so the cluster keeps making progress through most of them.
const NET_DELAY_US: (u64, u64) = (2_000, 80_000);
const NET_LOSS_PPM: (u64, u64) = (0, 300_000);

/// Counts of what happened.
#[derive(Debug, Default, Clone)]
pub struct ChaosReport {
    pub seed: u64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub kills: u64,
    pub leader_kills: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub nets: u64,
    /// Supervisor requests refused or failed during the run.
    pub fault_errors: u64,
    pub caught_up: bool,
    pub settle_detail: String,
    pub verdict: Option<Verdict>,
    pub check_time: Duration,
    pub history_len: usize,
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

pub fn run(cluster: &Cluster, args: &ChaosArgs, timeout: Duration) -> Output {
    let report = match run_report(cluster, args, timeout) {
        Ok(r) => r,
        Err(out) => return out,
    };
    let mut text = String::new();
    let faults = report.kills + report.leader_kills + report.pauses + report.partitions + report.nets;
    text.push_str(&format!(
        "operations: {} ({} ok, {} failed, {} unknown)\n",
        report.history_len, report.ops_ok, report.ops_failed, report.ops_unknown
    ));
    text.push_str(&format!(
        "faults: {faults} (kill {}, leader kill {}, pause {}, partition {}, net {}; {} refused)\n",
        report.kills, report.leader_kills, report.pauses, report.partitions, report.nets, report.fault_errors
    ));
    text.push_str(&format!("caught up: {} ({})\n", if report.caught_up { "yes" } else { "NO" }, report.settle_detail));
    let linearizable = matches!(report.verdict, Some(Verdict::Linearizable));
    match &report.verdict {
        Some(Verdict::Linearizable) => {
            text.push_str(&format!("verdict: linearizable (checked in {})\n", format_duration(report.check_time)))
        }
        Some(Verdict::Inconclusive { key }) => {
            text.push_str(&format!("verdict: INCONCLUSIVE on key {key:?} (search budget exhausted)\n"))
        }
        Some(Verdict::Violation { key, ops }) => {
            text.push_str(&format!("verdict: NOT LINEARIZABLE on key {key:?}; smallest failing sub-history:\n"));
            text.push_str(&render_ops(ops));
        }
        None => text.push_str("verdict: not checked\n"),
    }
    text.push_str(&format!("seed: {} (replay the choices with --seed {})\n", report.seed, report.seed));
    let mut out = Output::ok(text);
    if !(linearizable && report.caught_up) {
        out.code = EXIT_MISMATCH;
        out.stderr = Some(if !linearizable {
            "the history is not linearizable (see above); keep the history with --history FILE and the node logs".into()
        } else {
            format!(
                "the nodes did not catch up ({}); see `raft-supervisor status` and the node logs",
                report.settle_detail
            )
        });
    } else {
        out.code = EXIT_OK;
    }
    out
}

/// Operations as a table with times in milliseconds since the run began.
pub fn render_ops(ops: &[Operation]) -> String {
    let mut s = String::new();
    for o in ops {
        let end = if o.outcome == Outcome::Unknown {
            "       ?".to_string()
        } else {
            format!("{:>8.3}", o.complete as f64 / 1e6)
        };
        s.push_str(&format!(
            "  client {:>2}  {:>8.3} .. {} ms  {}  => {}\n",
            o.client,
            o.invoke as f64 / 1e6,
            end,
            o.op,
            o.outcome
        ));
    }
    s
}

pub fn run_report(cluster: &Cluster, args: &ChaosArgs, timeout: Duration) -> Result<ChaosReport, Output> {
    let sup = |req: &SupervisorRequest| supervisor_call(&cluster.supervisor_socket, req, timeout);
    let no_supervisor = |e: std::io::Error| {
        Output::fail(
            EXIT_UNAVAILABLE,
            format!(
                "no supervisor answered at {} ({e}); start the cluster with `raft-supervisor up`",
                cluster.supervisor_socket.display()
            ),
        )
    };
    if !args.no_supervisor {
        sup(&SupervisorRequest::Status).map_err(no_supervisor)?;
    }
    let mut probe = Client::new(cluster.clone(), START_TIMEOUT).without_leader_file();
    probe
        .read(ReadOp::Get { key: "chaos-probe".into() }, false)
        .map_err(|e| Output::fail(EXIT_UNAVAILABLE, format!("no leader before the run: {e}")))?;

    let seed = args.seed.unwrap_or_else(random_u64);
    let mut rng = Rng::new(seed);
    let run_id = format!("{:08x}", random_u64() as u32);
    let keys: Vec<String> = (0..args.keys).map(|i| format!("chaos-{run_id}-{i}")).collect();
    say(format!(
        "chaos: {} clients on {} keys for {}, faults [{}], seed {seed}",
        args.clients,
        args.keys,
        format_duration(args.duration),
        fault_names(args)
    ));

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for c in 0..args.clients as u64 {
        let mut client = Client::new(cluster.clone(), args.op_timeout).without_leader_file();
        let keys = keys.clone();
        let stop = stop.clone();
        let recorded = recorded.clone();
        let mut crng = Rng::new(seed ^ (c + 1).wrapping_mul(0xa076_1d64_78bd_642f));
        handles.push(thread::spawn(move || client_loop(c, &mut client, &keys, &mut crng, epoch, &stop, &recorded)));
    }

    let mut report = ChaosReport { seed, ..ChaosReport::default() };
    let end = epoch + args.duration;
    let faults = fault_menu(args);
    let stamp = || format!("{:>7.2}s", epoch.elapsed().as_secs_f64());
    while !faults.is_empty() && Instant::now() < end {
        sleep_until_before(rng.duration(FAULT_GAP.0, FAULT_GAP.1), end);
        if Instant::now() >= end || recorded.load(Ordering::Relaxed) >= MAX_HISTORY_OPS {
            break;
        }
        let kind = faults[rng.below(faults.len() as u64) as usize];
        let status = match sup(&SupervisorRequest::Status) {
            Ok(SupervisorResponse::Status(s)) => s,
            _ => {
                report.fault_errors += 1;
                continue;
            }
        };
        // Removed nodes are out of the game (the supervisor refuses commands for them).
        let ids: Vec<NodeId> =
            status.nodes.iter().filter(|n| n.member.as_deref() != Some("removed")).map(|n| n.id).collect();
        if ids.is_empty() {
            continue;
        }
        let random_node = ids[rng.below(ids.len() as u64) as usize];
        let (apply, undo, what) = match kind {
            FaultKind::Kill => (
                SupervisorRequest::Kill(random_node),
                SupervisorRequest::Start(random_node),
                format!("kill node {random_node}"),
            ),
            FaultKind::LeaderKill => {
                let leader = leader_of(&status).unwrap_or(random_node);
                (SupervisorRequest::Kill(leader), SupervisorRequest::Start(leader), format!("kill leader {leader}"))
            }
            FaultKind::Pause => (
                SupervisorRequest::Pause(random_node),
                SupervisorRequest::Resume(random_node),
                format!("pause node {random_node}"),
            ),
            FaultKind::Partition => {
                let mut shuffled = ids.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let cut = 1 + rng.below((ids.len() as u64 / 2).max(1)) as usize;
                let (a, b) = shuffled.split_at(cut.min(shuffled.len() - 1));
                let (mut a, mut b) = (a.to_vec(), b.to_vec());
                a.sort();
                b.sort();
                let what = format!("partition {a:?} | {b:?}");
                (SupervisorRequest::Partition(vec![a, b]), SupervisorRequest::Heal, what)
            }
            FaultKind::Net => {
                let nodes = if rng.below(2) == 0 { Vec::new() } else { vec![random_node] };
                let delay_us = NET_DELAY_US.0 + rng.below(NET_DELAY_US.1 - NET_DELAY_US.0);
                let jitter_us = delay_us / 2;
                let loss_ppm = (NET_LOSS_PPM.0 + rng.below(NET_LOSS_PPM.1 - NET_LOSS_PPM.0)) as u32;
                let levers = raft_wire::levers::NetLevers { delay_us, jitter_us, loss_ppm };
                let on = if nodes.is_empty() { "every node".to_string() } else { format!("node {random_node}") };
                let what = format!("network {levers} on {on}");
                let apply = SupervisorRequest::Levers {
                    nodes: nodes.clone(),
                    delay: Some((delay_us, jitter_us)),
                    loss_ppm: Some(loss_ppm),
                };
                let undo = SupervisorRequest::Levers { nodes, delay: Some((0, 0)), loss_ppm: Some(0) };
                (apply, undo, what)
            }
        };
        match sup(&apply) {
            Ok(SupervisorResponse::Ok(_)) => {}
            other => {
                report.fault_errors += 1;
                say(format!("{}  {what}: refused ({})", stamp(), describe(&other)));
                continue;
            }
        }
        match kind {
            FaultKind::Kill => report.kills += 1,
            FaultKind::LeaderKill => report.leader_kills += 1,
            FaultKind::Pause => report.pauses += 1,
            FaultKind::Partition => report.partitions += 1,
            FaultKind::Net => report.nets += 1,
        }
        say(format!("{}  {what}", stamp()));
        sleep_until_before(rng.duration(FAULT_HOLD.0, FAULT_HOLD.1), end);
        let undo_ok = matches!(sup(&undo), Ok(SupervisorResponse::Ok(_)));
        if !undo_ok {
            report.fault_errors += 1;
        }
        say(format!("{}  undo: {}{}", stamp(), undo_name(&undo), if undo_ok { "" } else { " (refused)" }));
    }
    sleep_until_before(end.saturating_duration_since(Instant::now()), end);
    stop.store(true, Ordering::Relaxed);
    let mut history: Vec<Operation> = Vec::new();
    for h in handles {
        history.extend(h.join().expect("a chaos client thread panicked"));
    }
    if args.no_supervisor {
        say(format!("{}  clients stopped; waiting for every node to catch up", stamp()));
    } else {
        say(format!("{}  clients stopped; healing and restarting every node", stamp()));
        restore_everything(cluster, timeout);
    }

    let (caught_up, detail) = wait_caught_up(cluster, args.settle_timeout);
    report.caught_up = caught_up;
    report.settle_detail = detail;
    for o in &history {
        match o.outcome {
            Outcome::Failed => report.ops_failed += 1,
            Outcome::Unknown => report.ops_unknown += 1,
            _ => report.ops_ok += 1,
        }
    }
    report.history_len = history.len();
    history.sort_by_key(|o| (o.invoke, o.client));
    if let Some(path) = &args.history {
        if let Err(e) = std::fs::write(path, raft_lincheck::history_to_json(&history)) {
            return Err(Output::fail(
                crate::EXIT_USAGE,
                format!("cannot write the history to {}: {e}; choose a writable path", path.display()),
            ));
        }
        say(format!("history: {} operations written to {}", history.len(), path.display()));
    }
    let started = Instant::now();
    report.verdict = Some(raft_lincheck::check(&history));
    report.check_time = started.elapsed();
    Ok(report)
}

fn fault_names(args: &ChaosArgs) -> String {
    if args.no_supervisor {
        return "none here (--no-supervisor: made by whoever runs the nodes)".into();
    }
    let f = args.faults;
    let mut names = Vec::new();
    if f.kill {
        names.push("kill");
    }
    if f.pause {
        names.push("pause");
    }
    if f.partition {
        names.push("partition");
    }
    if f.net {
        names.push("net");
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

fn fault_menu(args: &ChaosArgs) -> Vec<FaultKind> {
    let mut menu = Vec::new();
    if args.no_supervisor {
        return menu;
    }
    if args.faults.kill {
        menu.push(FaultKind::Kill);
        menu.push(FaultKind::LeaderKill);
    }
    if args.faults.pause {
        menu.push(FaultKind::Pause);
    }
    if args.faults.partition {
        menu.push(FaultKind::Partition);
    }
    if args.faults.net {
        menu.push(FaultKind::Net);
    }
    menu
}

fn describe(r: &std::io::Result<SupervisorResponse>) -> String {
    match r {
        Ok(SupervisorResponse::Ok(t)) | Ok(SupervisorResponse::Error(t)) => t.clone(),
        Ok(SupervisorResponse::Status(_)) => "unexpected status".into(),
        Err(e) => e.to_string(),
    }
}

fn undo_name(r: &SupervisorRequest) -> String {
    match r {
        SupervisorRequest::Start(n) => format!("start node {n}"),
        SupervisorRequest::Resume(n) => format!("resume node {n}"),
        SupervisorRequest::Heal => "heal".into(),
        SupervisorRequest::Levers { .. } => "network levers off".into(),
        other => format!("{other:?}"),
    }
}

fn leader_of(status: &ClusterStatus) -> Option<NodeId> {
    status.nodes.iter().find(|n| n.role == "leader").map(|n| n.id)
}

/// Sleeps for `d`, but not past `end`.
fn sleep_until_before(d: Duration, end: Instant) {
    let d = d.min(end.saturating_duration_since(Instant::now()));
    if !d.is_zero() {
        thread::sleep(d);
    }
}

/// Heal, then start or resume every node the supervisor reports down or paused.
fn restore_everything(cluster: &Cluster, timeout: Duration) {
    let sup = |req: &SupervisorRequest| supervisor_call(&cluster.supervisor_socket, req, timeout);
    let _ = sup(&SupervisorRequest::Heal);
    if let Ok(SupervisorResponse::Status(status)) = sup(&SupervisorRequest::Status) {
        for n in &status.nodes {
            match n.process.as_str() {
                "paused" => {
                    let _ = sup(&SupervisorRequest::Resume(n.id));
                }
                "stopped" | "failed" | "crashed" => {
                    let _ = sup(&SupervisorRequest::Start(n.id));
                }
                _ => {}
            }
        }
    }
}

/// Waits until one leader has committed its whole log and every node applied all of it.
fn wait_caught_up(cluster: &Cluster, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    // Nodes added while chaos ran have a directory now.
    let mut cluster = cluster.clone();
    cluster.rescan();
    let cluster = &cluster;
    loop {
        let statuses: Vec<(NodeId, Result<raft_wire::NodeStatus, String>)> =
            cluster.nodes.iter().map(|(id, _)| (*id, cluster.node_status(*id, Duration::from_millis(500)))).collect();
        let leader = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .filter(|s| s.role == RoleKind::Leader)
            .max_by_key(|s| s.term);
        if let Some(l) = leader {
            // Only the members of the leader's configuration must have caught up: a
            // removed node is stopped and gets nothing more.
            let lagging: Vec<String> = statuses
                .iter()
                .filter(|(id, _)| l.membership.contains(*id))
                .filter_map(|(id, s)| match s {
                    Ok(s) if s.applied == l.commit => None,
                    Ok(s) => Some(format!("node {id} applied {}", s.applied)),
                    Err(_) => Some(format!("node {id} unreachable")),
                })
                .collect();
            if lagging.is_empty() && l.commit == l.last_index {
                return (true, format!("every node applied index {} of leader {} in term {}", l.commit, l.id, l.term));
            }
            let detail = format!("leader {} commit {} last {}; {}", l.id, l.commit, l.last_index, lagging.join(", "));
            if Instant::now() >= deadline {
                return (false, detail);
            }
        } else if Instant::now() >= deadline {
            return (false, "no leader".into());
        }
        thread::sleep(SETTLE_POLL);
    }
}

fn client_loop(
    client_id: u64,
    client: &mut Client,
    keys: &[String],
    rng: &mut Rng,
    epoch: Instant,
    stop: &AtomicBool,
    recorded: &AtomicU64,
) -> Vec<Operation> {
    let mut history = Vec::new();
    // The value this client last saw or wrote per key: cas expects it, so cas often swaps.
    let mut seen: Vec<Option<String>> = vec![None; keys.len()];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && recorded.fetch_add(1, Ordering::Relaxed) < MAX_HISTORY_OPS {
        n += 1;
        let k = rng.below(keys.len() as u64) as usize;
        let key = &keys[k];
        let value = format!("c{client_id}-{n}");
        let roll = rng.below(100);
        let op = match roll {
            0..=39 => Op::Get,
            40..=74 => Op::Set(value.clone()),
            75..=94 => Op::Cas { expected: seen[k].clone(), new: value.clone() },
            _ => Op::Delete,
        };
        let invoke = epoch.elapsed().as_nanos() as u64;
        let (op, outcome) = perform(client, key, op);
        let complete = epoch.elapsed().as_nanos() as u64;
        match (&op, &outcome) {
            (Op::Get, Outcome::Value(v)) => seen[k] = v.clone(),
            (Op::Set(v), Outcome::Done) => seen[k] = Some(v.clone()),
            (Op::Cas { new, .. }, Outcome::Cas(true)) => seen[k] = Some(new.clone()),
            (Op::Delete, Outcome::Done) => seen[k] = None,
            _ => {}
        }
        history.push(Operation { client: client_id, key: key.clone(), op, invoke, complete, outcome });
    }
    history
}

fn text(v: Option<Vec<u8>>) -> Option<String> {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Runs one op; returns it as recorded (a failed cas becomes the read it is) and its outcome.
fn perform(client: &mut Client, key: &str, op: Op) -> (Op, Outcome) {
    let failed = |e: ClientError| match e {
        ClientError::Unknown(_) => Outcome::Unknown,
        // Refused (the quota) is a definite "not applied", like unavailable.
        ClientError::Unavailable(_) | ClientError::Invalid(_) | ClientError::Refused(_) => Outcome::Failed,
    };
    match op {
        Op::Get => {
            let outcome = match client.read(ReadOp::Get { key: key.into() }, false) {
                Ok(Reply::Value(v)) => Outcome::Value(text(v)),
                Ok(_) => Outcome::Failed,
                Err(e) => failed(e),
            };
            (Op::Get, outcome)
        }
        Op::Set(v) => {
            let outcome = match client.write(WriteOp::Set { key: key.into(), value: v.as_bytes().to_vec() }) {
                Ok(Reply::Done) => Outcome::Done,
                Ok(_) => Outcome::Unknown,
                Err(e) => failed(e),
            };
            (Op::Set(v), outcome)
        }
        Op::Delete => {
            let outcome = match client.write(WriteOp::Delete { key: key.into() }) {
                Ok(Reply::Deleted { .. }) => Outcome::Done,
                Ok(_) => Outcome::Unknown,
                Err(e) => failed(e),
            };
            (Op::Delete, outcome)
        }
        Op::Cas { expected, new } => {
            let wire = WriteOp::Cas {
                key: key.into(),
                expected: expected.as_ref().map(|e| e.as_bytes().to_vec()),
                new: new.as_bytes().to_vec(),
            };
            match client.write(wire) {
                Ok(Reply::Cas { ok: true, .. }) => (Op::Cas { expected, new }, Outcome::Cas(true)),
                Ok(Reply::Cas { ok: false, current }) => (Op::Get, Outcome::Value(text(current))),
                Ok(_) => (Op::Cas { expected, new }, Outcome::Unknown),
                Err(e) => (Op::Cas { expected, new }, failed(e)),
            }
        }
    }
}
