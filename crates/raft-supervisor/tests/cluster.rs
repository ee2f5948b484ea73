//! End-to-end: the real `raft-supervisor`, `raft-node` and `raft-cli` binaries in a
//! temporary directory, through the one harness of the workspace (raft-e2e): it builds the
//! binaries of this profile, waits for conditions with deadlines (nothing sleeps hoping
//! the cluster is ready), and on Drop stops the supervisor and SIGKILLs every process of
//! the cluster, also when a test fails.
//!
//! What is particular to the supervisor (its output lines, `status --json` as a learner
//! reads it, restarts, signals) is checked here, through its command line.

use raft_e2e::*;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Anything else we wait for (a restart, a status change).
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the supervisor may take to stop (grace is 1 s in these tests).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A cluster of `nodes` with the harness's defaults, up and with a leader.
fn up(nodes: u64) -> Cluster {
    Cluster::start(Opts { nodes, ..Opts::default() })
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// `raft-supervisor status --json`, which must succeed.
fn status(c: &Cluster) -> Value {
    try_status(c).unwrap_or_else(|| panic!("status failed: {}", c.sup(&["status", "--json"]).describe()))
}

/// Status, or None while the supervisor is not answering.
fn try_status(c: &Cluster) -> Option<Value> {
    let out = c.sup(&["status", "--json"]);
    (out.code == Some(0)).then(|| serde_json::from_str(&out.stdout).expect("status --json is JSON"))
}

fn node(status: &Value, id: u64) -> &Value {
    &status["nodes"][(id - 1) as usize]
}

/// The leader every answering node agrees on, with its term (as `status --json` says).
fn agreed_leader(status: &Value, expect_answering: usize) -> Option<(u64, u64)> {
    let nodes = status["nodes"].as_array().unwrap();
    let answering: Vec<&Value> = nodes.iter().filter(|n| n["role"] != "unknown").collect();
    if answering.len() < expect_answering {
        return None;
    }
    let leader = answering.iter().find(|n| n["role"] == "leader")?;
    let (id, term) = (leader["id"].as_u64()?, leader["term"].as_u64()?);
    answering.iter().all(|n| n["leader"].as_u64() == Some(id) && n["term"].as_u64() == Some(term)).then_some((id, term))
}

/// Waits until `answering` nodes agree on a leader in `status --json`.
fn status_leader(c: &Cluster, answering: usize, timeout: Duration) -> (u64, u64) {
    wait_for("an agreed leader", timeout, || agreed_leader(&try_status(c)?, answering))
}

fn node_pids(st: &Value) -> Vec<u32> {
    st["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect()
}

/// The pid of a detached supervisor, from its lock file (checked through its command line).
fn detached_supervisor_pid(c: &Cluster) -> Option<u32> {
    let pid = std::fs::read_to_string(c.dir.join("supervisor.lock")).ok()?.trim().parse().ok()?;
    cmdline(pid).contains("raft-supervisor").then_some(pid)
}

/// Merged with raft-e2e's former `status_shows_every_node_and_one_leader`: the same
/// fresh cluster, its `status --json`, both binaries' tables and the supervisor's lines.
#[test]
fn up_elects_a_leader_and_status_reports_it() {
    let c = up(5);
    let (leader, term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    assert!(term >= 1);
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    // `status --json`: the object DESIGN.md describes.
    let st = status(&c);
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], i as u64 + 1);
        assert_eq!(n["process"], "running", "{n}");
        assert!(n["pid"].as_u64().is_some(), "{n}");
        for key in ["role", "leader"] {
            assert!(n.get(key).is_some(), "node row {i} lacks `{key}`: {n}");
        }
        for key in ["term", "commit", "applied", "last_index", "snapshot_index"] {
            assert!(n[key].as_u64().is_some(), "{key} in {n}");
        }
    }
    assert_eq!(st["partitions"], serde_json::json!([]));
    // The supervisor polls the nodes, so its view of the leader may lag a little.
    c.wait("the supervisor to show the leader", LEADER_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        let leaders: Vec<_> = st.nodes.iter().filter(|n| n.role == "leader").collect();
        (leaders.len() == 1 && leaders[0].id == leader && leaders[0].term == Some(term)).then_some(())
    });
    // The event stream names the pids and the leader.
    let out = wait_for("the leader line", WAIT_TIMEOUT, || {
        let out = c.supervisor_output();
        out.contains("leader elected: node").then_some(out)
    });
    for n in nodes {
        assert!(out.contains(&format!("node {} started (pid {})", n["id"], n["pid"])), "{out}");
    }
    assert!(out.contains("leader elected: node"), "{out}");
    // The human tables of both binaries: a row per node, the partitions and speed lines.
    let table = c.sup_ok(&["status"]).stdout;
    assert!(table.starts_with("node  pid"), "{table}");
    assert_eq!(table.lines().count(), 1 + 5 + 2, "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("running")).count(), 5, "{table}");
    assert!(table.contains("leader") && table.ends_with("partitions: none\nspeed: 1.00x\n"), "{table}");
    let cli = c.cli(&["status"]);
    assert_eq!(cli.code, Some(0), "{}", cli.describe());
    assert!(cli.stdout.contains("leader"), "{}", cli.describe());
    // The effective config was written, and the directories the supervisor created are private.
    use std::os::unix::fs::PermissionsExt;
    for id in c.ids() {
        assert_eq!(std::fs::metadata(c.node_dir(id)).unwrap().permissions().mode() & 0o777, 0o700);
    }
    assert!(std::fs::read_to_string(c.dir.join("cluster.toml")).unwrap().contains("nodes = 5"));
}

#[test]
fn second_up_on_a_running_dir_is_refused() {
    let c = up(1);
    let out = c.sup(&["up"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("already running"), "{}", out.describe());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
}

#[test]
fn a_node_that_dies_on_its_own_is_restarted() {
    let c = Cluster::start(Opts { nodes: 3, restart_backoff_min_ms: 50, ..Opts::default() });
    let st = status(&c);
    let old_pid = node(&st, 2)["pid"].as_u64().unwrap() as u32;
    assert!(cmdline(old_pid).contains("raft-node"));
    // SAFETY: a raft-node of this cluster (checked through its command line).
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };
    let new_pid = wait_for("node 2 to be restarted", WAIT_TIMEOUT, || {
        let st = status(&c);
        let n = node(&st, 2);
        n["pid"].as_u64().filter(|p| *p as u32 != old_pid && n["process"] == "running")
    });
    assert!(new_pid > 0);
    let out = c.supervisor_output();
    assert!(out.contains(&format!("node 2 (pid {old_pid}) killed by SIGKILL unexpectedly")), "{out}");
    assert!(out.contains("node 2 restarting in 50 ms (crash 1 of at most"), "{out}");
    status_leader(&c, 3, LEADER_TIMEOUT);
}

#[test]
fn pause_freezes_a_node_and_resume_thaws_it() {
    let c = up(3);
    let (leader, _) = status_leader(&c, 3, LEADER_TIMEOUT);
    let victim = if leader == 1 { 2 } else { 1 };
    c.sup_ok(&["pause", &victim.to_string()]);
    let st = status(&c);
    let n = node(&st, victim);
    assert_eq!(n["process"], "paused");
    assert_eq!(n["role"], "unknown");
    let pid = n["pid"].as_u64().expect("a paused node keeps its pid");
    // Stopped by SIGSTOP (once any system call in progress, an fsync say, returns).
    wait_for("the node to be stopped", WAIT_TIMEOUT, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().contains(") T ").then_some(())
    });
    let out = c.sup(&["pause", &victim.to_string()]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    c.sup_ok(&["resume", &victim.to_string()]);
    status_leader(&c, 3, LEADER_TIMEOUT);
    assert_eq!(node(&status(&c), victim)["pid"].as_u64(), Some(pid), "same process, thawed");
}

#[test]
fn a_restarted_node_gets_its_isolation_again() {
    let c = up(3);
    c.sup_ok(&["partition", "1,2", "3"]);
    let old = node(&status(&c), 3)["pid"].as_u64().unwrap();
    c.sup_ok(&["restart", "3"]);
    wait_for("node 3 to come back", WAIT_TIMEOUT, || {
        let st = status(&c);
        let n = node(&st, 3);
        (n["pid"].as_u64().is_some_and(|p| p != old) && n["role"] != "unknown").then_some(())
    });
    // Node 3 alone cannot win an election: it keeps trying and never leads.
    let st = status(&c);
    assert_ne!(node(&st, 3)["role"], "leader");
    let leader_1_2 = wait_for("a leader among 1 and 2", LEADER_TIMEOUT, || {
        let st = status(&c);
        [1, 2].into_iter().find(|&i| node(&st, i)["role"] == "leader")
    });
    assert!(leader_1_2 == 1 || leader_1_2 == 2);
    assert_ne!(node(&status(&c), 3)["leader"].as_u64(), Some(leader_1_2), "node 3 is cut off");
}

#[test]
fn down_stops_everything_and_wipe_then_works() {
    let mut c = up(3);
    let pids = node_pids(&status(&c));
    // wipe refuses while the cluster runs.
    let out = c.sup(&["wipe"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("raft-supervisor down"), "{}", out.describe());
    let out = c.sup_ok(&["down"]).stdout;
    assert!(out.contains("stopped"), "{out}");
    let st = c.wait_supervisor_exit(STOP_TIMEOUT).expect("the supervisor exits after down");
    assert_eq!(st.code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} outlived down");
    }
    assert!(!c.supervisor_socket().exists());
    // No supervisor now: exit 3 with a hint.
    let out = c.sup(&["status"]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stderr.contains("raft-supervisor up"), "{}", out.describe());
    // logs still reads the files; wipe removes them.
    let log = c.sup_ok(&["logs", "1"]).stdout;
    assert!(log.contains("raft-supervisor: starting node 1"), "{log}");
    let out = c.sup_ok(&["wipe"]).stdout;
    assert!(out.contains("3 node directories"), "{out}");
    assert!(!c.node_dir(1).exists());
}

#[test]
fn sigint_stops_the_cluster_like_ctrl_c() {
    let mut c = up(3);
    let pids = node_pids(&status(&c));
    // SAFETY: our child.
    unsafe { libc::kill(c.supervisor_pid() as i32, libc::SIGINT) };
    let st = c.wait_supervisor_exit(STOP_TIMEOUT).expect("exits on SIGINT");
    assert_eq!(st.code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} outlived the supervisor");
    }
    let out = c.supervisor_output();
    assert!(out.contains("received SIGINT") && out.contains("all nodes stopped"), "{out}");
}

/// Merged with raft-e2e's former `nodes_die_with_the_supervisor` (the same SIGKILL of
/// the supervisor of five nodes), plus the takeover of the stale socket and lock.
#[test]
fn nodes_die_with_a_killed_supervisor() {
    let mut c = up(5);
    let pids = c.node_pids();
    assert_eq!(pids.len(), 5);
    // SIGKILL gives the supervisor no chance to stop its nodes: PR_SET_PDEATHSIG must.
    c.kill_supervisor();
    wait_for("every node to die with the supervisor", WAIT_TIMEOUT, || pids.iter().all(|&p| !alive(p)).then_some(()));
    // The next `up` takes over the stale socket and lock.
    let c = c.up();
    status_leader(&c, 5, LEADER_TIMEOUT);
}

#[test]
fn detach_returns_once_a_leader_is_elected() {
    let c = Cluster::prepare(Opts { nodes: 3, ..Opts::default() });
    let mut child = Command::new(&bins().supervisor)
        .arg("--config")
        .arg(&c.config)
        .args(["up", "--detach"])
        .env_remove("RAFT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_for("up --detach to return", START_TIMEOUT + Duration::from_secs(5), || child.try_wait().unwrap());
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("leader elected: node"), "{out}");
    assert!(out.contains("background"), "{out}");
    // The background supervisor answers, and logs to supervisor.log.
    status_leader(&c, 3, LEADER_TIMEOUT);
    let log = std::fs::read_to_string(c.dir.join("supervisor.log")).unwrap();
    assert!(log.contains("node 1 started"), "{log}");
    let pid = detached_supervisor_pid(&c).expect("the detached supervisor's pid");
    c.sup_ok(&["down"]);
    wait_for("the detached supervisor to exit", STOP_TIMEOUT, || (!alive(pid)).then_some(()));
}

#[test]
fn usage_errors_exit_2_and_no_supervisor_exits_3() {
    let c = Cluster::prepare(Opts { nodes: 3, ..Opts::default() });
    for args in
        [&["kill", "4"][..], &["start", "0"], &["partition", "1,,2"], &["partition", "1,9"], &["partition", "1,x"]]
    {
        let out = c.sup(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.describe());
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.describe());
    }
    for args in [&["status"][..], &["kill", "1"], &["down"], &["heal"]] {
        let out = c.sup(args);
        assert_eq!(out.code, Some(3), "{args:?}: {}", out.describe());
        assert!(out.stderr.contains("raft-supervisor up"), "{}", out.describe());
    }
    let out = run_limited(
        Command::new(&bins().supervisor).args(["--config", "/nonexistent/cluster.toml", "status"]),
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("/nonexistent/cluster.toml"), "{}", out.describe());
}

#[test]
fn logs_follow_prints_what_is_appended() {
    let c = Cluster::prepare(Opts { nodes: 3, ..Opts::default() });
    let log = c.node_log(2);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "first line\n").unwrap();
    assert_eq!(c.sup_ok(&["logs", "2"]).stdout, "first line\n");
    let out_path = c.dir.join("follow.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(&bins().supervisor)
        .arg("--config")
        .arg(&c.config)
        .args(["logs", "2", "--follow"])
        .env_remove("RAFT_CONFIG")
        .stdout(out)
        .spawn()
        .unwrap();
    wait_for("the existing log", WAIT_TIMEOUT, || {
        (std::fs::read_to_string(&out_path).unwrap() == "first line\n").then_some(())
    });
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"second line\n").unwrap();
    wait_for("the appended line", WAIT_TIMEOUT, || {
        (std::fs::read_to_string(&out_path).unwrap() == "first line\nsecond line\n").then_some(())
    });
    assert!(child.try_wait().unwrap().is_none(), "still following");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn too_many_crashes_and_the_node_is_given_up_until_start() {
    let c = Cluster::start(Opts { nodes: 3, restart_intensity: 1, restart_backoff_min_ms: 20, ..Opts::default() });
    let pid_of = |c: &Cluster| node(&status(c), 3)["pid"].as_u64().map(|p| p as u32);
    let first = pid_of(&c).unwrap();
    assert!(cmdline(first).contains("raft-node"));
    // SAFETY: a raft-node of this cluster (checked above).
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let second = wait_for("the first restart", WAIT_TIMEOUT, || pid_of(&c).filter(|p| *p != first));
    assert!(cmdline(second).contains("raft-node"));
    // SAFETY: as above.
    unsafe { libc::kill(second as i32, libc::SIGKILL) };
    wait_for("node 3 to be given up on", WAIT_TIMEOUT, || (node(&status(&c), 3)["process"] == "failed").then_some(()));
    assert!(c.supervisor_output().contains("node 3 failed: 2 crashes within"), "{}", c.supervisor_output());
    c.sup_ok(&["start", "3"]);
    wait_for("node 3 to rejoin", LEADER_TIMEOUT, || {
        let st = status(&c);
        (node(&st, 3)["process"] == "running" && agreed_leader(&st, 3).is_some()).then_some(())
    });
}
