//! End-to-end: the real `raft-supervisor` and `raft-node` binaries in a temporary
//! directory. Every wait polls a condition against a deadline (nothing sleeps hoping the
//! cluster is ready), and every process is stopped on Drop: SIGTERM to the supervisor,
//! SIGKILL after a deadline, and SIGKILL to any node of ours still alive after that.
//!
//! `raft-node` must sit next to `raft-supervisor`; the harness builds it with cargo
//! (same profile) once per test run, since cargo builds only this package's binaries.

use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// First leader of a fresh cluster on a loaded 2-core machine, fsync on.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Anything else we wait for (a restart, a status change).
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the supervisor may take to stop (grace is 1 s in these tests).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between polls of a condition: short, it only bounds the polling rate.
const POLL_EVERY: Duration = Duration::from_millis(25);

fn supervisor_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raft-supervisor"))
}

/// Builds raft-node next to the supervisor, once. False (the test is skipped, loudly) if
/// raft-node is still the skeleton that answers nothing, unless `RAFT_E2E_REQUIRE=1`.
fn ensure_node_binary() -> bool {
    static BUILD: OnceLock<bool> = OnceLock::new();
    *BUILD.get_or_init(|| {
        let dir = supervisor_bin().parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "raft-node", "--bin", "raft-node"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build");
        assert!(out.status.success(), "cargo build -p raft-node failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let node = dir.join("raft-node");
        let real = Command::new(&node).arg("--version").output().is_ok_and(|o| o.status.success());
        if !real {
            assert!(
                std::env::var("RAFT_E2E_REQUIRE").as_deref() != Ok("1"),
                "{} does not run (`--version` fails)",
                node.display()
            );
            eprintln!("SKIPPED: {} is not a working raft-node yet", node.display());
        }
        real
    })
}

/// Polls `f` until it returns Some, or panics naming `what` after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(POLL_EVERY);
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; a zombie counts as gone (it runs no code).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // SAFETY: kill with signal 0 only checks.
    !stat.is_empty() && !stat.contains(") Z ") && unsafe { libc::kill(pid as i32, 0) } == 0
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

struct Cluster {
    tmp: tempfile::TempDir,
    config: PathBuf,
    dir: PathBuf,
    /// The foreground `up`, if started that way.
    up: Option<Child>,
    /// Every node pid seen, for the Drop sweep.
    pids: std::cell::RefCell<Vec<u32>>,
}

impl Cluster {
    fn new(nodes: u64, extra: &str) -> Option<Cluster> {
        if !ensure_node_binary() {
            return None;
        }
        Some(Cluster::without_nodes(nodes, extra))
    }

    /// A config and directory only (for commands that need no running cluster).
    fn without_nodes(nodes: u64, extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cluster.toml");
        std::fs::write(&config, format!("dir = \"c\"\nnodes = {nodes}\nshutdown_grace_ms = 1000\n{extra}")).unwrap();
        let dir = tmp.path().join("c");
        Cluster { tmp, config, dir, up: None, pids: Default::default() }
    }

    /// `up` in the foreground (as a child of the test), output to `up.out`.
    fn up(nodes: u64, extra: &str) -> Option<Cluster> {
        let mut c = Cluster::new(nodes, extra)?;
        let out = std::fs::File::create(c.up_out()).unwrap();
        let child = Command::new(supervisor_bin())
            .arg("--config")
            .arg(&c.config)
            .arg("up")
            .env_remove("RAFT_CONFIG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        c.up = Some(child);
        Some(c)
    }

    fn up_out(&self) -> PathBuf {
        self.tmp.path().join("up.out")
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.up_out()).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(supervisor_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RAFT_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed with {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn status(&self) -> Value {
        self.try_status().unwrap_or_else(|| panic!("status failed: {:?}", self.run(&["status", "--json"])))
    }

    /// Status, or None while the supervisor is not answering yet.
    fn try_status(&self) -> Option<Value> {
        let out = self.run(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for n in v["nodes"].as_array().unwrap() {
            if let Some(pid) = n["pid"].as_u64() {
                let mut pids = self.pids.borrow_mut();
                if !pids.contains(&(pid as u32)) {
                    pids.push(pid as u32);
                }
            }
        }
        Some(v)
    }

    fn node(status: &Value, id: u64) -> &Value {
        &status["nodes"][(id - 1) as usize]
    }

    /// The leader every answering node agrees on, with its term.
    fn agreed_leader(status: &Value, expect_answering: usize) -> Option<(u64, u64)> {
        let nodes = status["nodes"].as_array().unwrap();
        let answering: Vec<&Value> = nodes.iter().filter(|n| n["role"] != "unknown").collect();
        if answering.len() < expect_answering {
            return None;
        }
        let leader = answering.iter().find(|n| n["role"] == "leader")?;
        let (id, term) = (leader["id"].as_u64()?, leader["term"].as_u64()?);
        answering
            .iter()
            .all(|n| n["leader"].as_u64() == Some(id) && n["term"].as_u64() == Some(term))
            .then_some((id, term))
    }

    fn wait_leader(&self, answering: usize, timeout: Duration) -> (u64, u64) {
        wait_for("an agreed leader", timeout, || Cluster::agreed_leader(&self.try_status()?, answering))
    }

    fn supervisor_pid(&self) -> Option<u32> {
        if let Some(c) = &self.up {
            return Some(c.id());
        }
        let pid = std::fs::read_to_string(self.dir.join("supervisor.lock")).ok()?.trim().parse().ok()?;
        cmdline(pid).contains("raft-supervisor").then_some(pid)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(pid) = self.supervisor_pid() {
            if alive(pid) {
                // SAFETY: our supervisor's pid (our child, or read from its lock and checked).
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        if let Some(child) = self.up.as_mut() {
            if wait_exit(child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        } else if let Some(pid) = self.supervisor_pid() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(POLL_EVERY);
            }
            if alive(pid) {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        // Nodes die with their supervisor; sweep any that did not (ours only).
        let marker = self.dir.join("cluster.toml").display().to_string();
        for &pid in self.pids.borrow().iter() {
            if alive(pid) && cmdline(pid).contains(&marker) {
                // SAFETY: a raft-node started for this test's cluster directory.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        if std::thread::panicking() {
            eprintln!("--- supervisor output ---\n{}", self.output());
        }
    }
}

#[test]
fn up_elects_a_leader_and_status_reports_it() {
    let Some(c) = Cluster::up(3, "") else { return };
    let (leader, term) = c.wait_leader(3, LEADER_TIMEOUT);
    assert!(term >= 1);
    let st = c.status();
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], i as u64 + 1);
        assert_eq!(n["process"], "running");
        assert!(n["pid"].as_u64().is_some());
        for key in ["term", "commit", "applied", "last_index", "snapshot_index"] {
            assert!(n[key].as_u64().is_some(), "{key} in {n}");
        }
    }
    assert_eq!(st["partitions"], serde_json::json!([]));
    // The event stream names the pids and the leader.
    let out = wait_for("the leader line", WAIT_TIMEOUT, || {
        let out = c.output();
        out.contains("leader elected: node").then_some(out)
    });
    for n in nodes {
        assert!(out.contains(&format!("node {} started (pid {})", n["id"], n["pid"])), "{out}");
    }
    assert!(out.contains(&format!("leader elected: node {leader} (term")), "{out}");
    // The human table has a row per node and the partitions line.
    let table = c.ok(&["status"]);
    assert!(table.starts_with("node  pid"), "{table}");
    assert_eq!(table.lines().count(), 1 + 3 + 1, "{table}");
    assert!(table.contains("leader") && table.ends_with("partitions: none\n"), "{table}");
    // The effective config was written and the directory is private.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&c.dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(std::fs::read_to_string(c.dir.join("cluster.toml")).unwrap().contains("nodes = 3"));
}

#[test]
fn second_up_on_a_running_dir_is_refused() {
    let Some(c) = Cluster::up(1, "") else { return };
    c.wait_leader(1, LEADER_TIMEOUT);
    let out = c.run(&["up"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn kill_stays_down_and_start_brings_it_back() {
    let Some(c) = Cluster::up(3, "") else { return };
    let (leader, term) = c.wait_leader(3, LEADER_TIMEOUT);
    let out = c.ok(&["kill", &leader.to_string()]);
    assert!(out.contains("stays down"), "{out}");
    // The other two elect a new leader; the killed node stays stopped meanwhile.
    let (new_leader, new_term) = c.wait_leader(2, LEADER_TIMEOUT);
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let st = c.status();
    let dead = Cluster::node(&st, leader);
    assert_eq!(dead["process"], "stopped");
    assert_eq!(dead["role"], "unknown");
    assert!(dead["pid"].is_null() && dead["term"].is_null());
    assert!(c.output().contains(&format!("node {leader} (pid")), "{}", c.output());
    // start: running again, and it joins the current leader.
    let out = c.ok(&["start", &leader.to_string()]);
    assert!(out.contains("started (pid"), "{out}");
    let (l, _) = c.wait_leader(3, LEADER_TIMEOUT);
    let st = c.status();
    assert_eq!(Cluster::node(&st, leader)["process"], "running");
    assert!(l >= 1);
}

#[test]
fn a_node_that_dies_on_its_own_is_restarted() {
    let Some(c) = Cluster::up(3, "restart_backoff_min_ms = 50\n") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    let st = c.status();
    let old_pid = Cluster::node(&st, 2)["pid"].as_u64().unwrap() as u32;
    assert!(cmdline(old_pid).contains("raft-node"));
    // SAFETY: a raft-node of this cluster (checked through its command line).
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };
    let new_pid = wait_for("node 2 to be restarted", WAIT_TIMEOUT, || {
        let st = c.status();
        let n = Cluster::node(&st, 2);
        n["pid"].as_u64().filter(|p| *p as u32 != old_pid && n["process"] == "running")
    });
    assert!(new_pid > 0);
    let out = c.output();
    assert!(out.contains(&format!("node 2 (pid {old_pid}) killed by SIGKILL unexpectedly")), "{out}");
    assert!(out.contains("node 2 restarting in 50 ms (crash 1 of at most"), "{out}");
    c.wait_leader(3, LEADER_TIMEOUT);
}

#[test]
fn pause_freezes_a_node_and_resume_thaws_it() {
    let Some(c) = Cluster::up(3, "") else { return };
    let (leader, _) = c.wait_leader(3, LEADER_TIMEOUT);
    let victim = if leader == 1 { 2 } else { 1 };
    c.ok(&["pause", &victim.to_string()]);
    let st = c.status();
    let n = Cluster::node(&st, victim);
    assert_eq!(n["process"], "paused");
    assert_eq!(n["role"], "unknown");
    assert!(n["pid"].as_u64().is_some());
    let pid = n["pid"].as_u64().unwrap();
    // Stopped by SIGSTOP (once any system call in progress, an fsync say, returns).
    wait_for("the node to be stopped", WAIT_TIMEOUT, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().contains(") T ").then_some(())
    });
    let out = c.run(&["pause", &victim.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    c.ok(&["resume", &victim.to_string()]);
    c.wait_leader(3, LEADER_TIMEOUT);
    assert_eq!(Cluster::node(&c.status(), victim)["pid"].as_u64(), Some(pid), "same process, thawed");
}

#[test]
fn partition_isolates_the_leader_and_heal_reunites() {
    let Some(c) = Cluster::up(5, "") else { return };
    let (leader, term) = c.wait_leader(5, LEADER_TIMEOUT);
    let others: Vec<String> = (1..=5).filter(|&i| i != leader).map(|i| i.to_string()).collect();
    let out = c.ok(&["partition", &others.join(",")]);
    assert!(out.starts_with("partitioned: {"), "{out}");
    // The majority elects a new leader in a higher term; the old one is cut off.
    let (new_leader, new_term) = wait_for("a majority leader", LEADER_TIMEOUT, || {
        let st = c.status();
        let nodes = st["nodes"].as_array().unwrap();
        nodes
            .iter()
            .find(|n| n["role"] == "leader" && n["id"].as_u64() != Some(leader) && n["term"].as_u64() > Some(term))
            .map(|n| (n["id"].as_u64().unwrap(), n["term"].as_u64().unwrap()))
    });
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let st = c.status();
    let mut expected: Vec<Vec<u64>> = vec![(1..=5).filter(|&i| i != leader).collect(), vec![leader]];
    expected.sort();
    let mut got: Vec<Vec<u64>> = serde_json::from_value(st["partitions"].clone()).unwrap();
    got.sort();
    assert_eq!(got, expected);
    // CheckQuorum: the cut-off leader steps down on its own.
    wait_for("the old leader to step down", LEADER_TIMEOUT, || {
        (Cluster::node(&c.status(), leader)["role"] != "leader").then_some(())
    });
    c.ok(&["heal"]);
    let (l, t) = c.wait_leader(5, LEADER_TIMEOUT);
    assert!(t >= new_term);
    assert!(l >= 1);
    assert_eq!(c.status()["partitions"], serde_json::json!([]));
}

#[test]
fn a_restarted_node_gets_its_isolation_again() {
    let Some(c) = Cluster::up(3, "") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    c.ok(&["partition", "1,2", "3"]);
    let old = Cluster::node(&c.status(), 3)["pid"].as_u64().unwrap();
    c.ok(&["restart", "3"]);
    wait_for("node 3 to come back", WAIT_TIMEOUT, || {
        let st = c.status();
        let n = Cluster::node(&st, 3);
        (n["pid"].as_u64().is_some_and(|p| p != old) && n["role"] != "unknown").then_some(())
    });
    // Node 3 alone cannot win an election: it keeps trying and never leads.
    let st = c.status();
    assert_ne!(Cluster::node(&st, 3)["role"], "leader");
    let leader_1_2 = wait_for("a leader among 1 and 2", LEADER_TIMEOUT, || {
        let st = c.status();
        [1, 2].into_iter().find(|&i| Cluster::node(&st, i)["role"] == "leader")
    });
    assert!(leader_1_2 == 1 || leader_1_2 == 2);
    assert_ne!(Cluster::node(&c.status(), 3)["leader"].as_u64(), Some(leader_1_2), "node 3 is cut off");
}

#[test]
fn down_stops_everything_and_wipe_then_works() {
    let Some(mut c) = Cluster::up(3, "") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    let pids: Vec<u32> =
        c.status()["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect();
    // wipe refuses while the cluster runs.
    let out = c.run(&["wipe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("raft-supervisor down"));
    let out = c.ok(&["down"]);
    assert!(out.contains("stopped"), "{out}");
    let st = wait_exit(c.up.as_mut().unwrap(), STOP_TIMEOUT).expect("the supervisor exits after down");
    assert_eq!(st.code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} outlived down");
    }
    assert!(!c.dir.join("supervisor.sock").exists());
    // No supervisor now: exit 3 with a hint.
    let out = c.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("raft-supervisor up"));
    // logs still reads the files; wipe removes them.
    let log = c.ok(&["logs", "1"]);
    assert!(log.contains("raft-supervisor: starting node 1"), "{log}");
    let out = c.ok(&["wipe"]);
    assert!(out.contains("3 node directories"), "{out}");
    assert!(!c.dir.join("node-1").exists());
}

#[test]
fn sigint_stops_the_cluster_like_ctrl_c() {
    let Some(mut c) = Cluster::up(3, "") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    let pids: Vec<u32> =
        c.status()["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect();
    let sup = c.up.as_ref().unwrap().id();
    // SAFETY: our child.
    unsafe { libc::kill(sup as i32, libc::SIGINT) };
    let st = wait_exit(c.up.as_mut().unwrap(), STOP_TIMEOUT).expect("exits on SIGINT");
    assert_eq!(st.code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} outlived the supervisor");
    }
    let out = c.output();
    assert!(out.contains("received SIGINT") && out.contains("all nodes stopped"), "{out}");
}

#[test]
fn nodes_die_with_a_killed_supervisor() {
    let Some(mut c) = Cluster::up(3, "") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    let pids: Vec<u32> =
        c.status()["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect();
    let child = c.up.as_mut().unwrap();
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();
    wait_for("every node to die with the supervisor", WAIT_TIMEOUT, || pids.iter().all(|&p| !alive(p)).then_some(()));
    // The next `up` takes over the stale socket and lock.
    c.up = None;
    let out = std::fs::File::create(c.up_out()).unwrap();
    c.up = Some(
        Command::new(supervisor_bin())
            .arg("--config")
            .arg(&c.config)
            .arg("up")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    c.wait_leader(3, LEADER_TIMEOUT);
}

#[test]
fn detach_returns_once_a_leader_is_elected() {
    let Some(c) = Cluster::new(3, "") else { return };
    let mut child = Command::new(supervisor_bin())
        .arg("--config")
        .arg(&c.config)
        .args(["up", "--detach"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_exit(&mut child, LEADER_TIMEOUT + Duration::from_secs(5)).expect("up --detach returns");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("leader elected: node"), "{out}");
    assert!(out.contains("background"), "{out}");
    // The background supervisor answers, and logs to supervisor.log.
    c.wait_leader(3, LEADER_TIMEOUT);
    let log = std::fs::read_to_string(c.dir.join("supervisor.log")).unwrap();
    assert!(log.contains("node 1 started"), "{log}");
    let pid = c.supervisor_pid().expect("the detached supervisor's pid");
    c.ok(&["down"]);
    wait_for("the detached supervisor to exit", STOP_TIMEOUT, || (!alive(pid)).then_some(()));
}

#[test]
fn usage_errors_exit_2_and_no_supervisor_exits_3() {
    let c = Cluster::without_nodes(3, "");
    for args in
        [&["kill", "4"][..], &["start", "0"], &["partition", "1,,2"], &["partition", "1,9"], &["partition", "1,x"]]
    {
        let out = c.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    for args in [&["status"][..], &["kill", "1"], &["down"], &["heal"]] {
        let out = c.run(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("raft-supervisor up"));
    }
    let out =
        Command::new(supervisor_bin()).args(["--config", "/nonexistent/cluster.toml", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cluster.toml"));
}

#[test]
fn logs_follow_prints_what_is_appended() {
    let c = Cluster::without_nodes(3, "");
    let log = c.dir.join("node-2/node.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "first line\n").unwrap();
    let once = c.ok(&["logs", "2"]);
    assert_eq!(once, "first line\n");
    let out_path = c.tmp.path().join("follow.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(supervisor_bin())
        .arg("--config")
        .arg(&c.config)
        .args(["logs", "2", "--follow"])
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
    let Some(c) = Cluster::up(3, "restart_intensity = 1\nrestart_backoff_min_ms = 20\n") else { return };
    c.wait_leader(3, LEADER_TIMEOUT);
    let pid_of = |c: &Cluster| Cluster::node(&c.status(), 3)["pid"].as_u64().map(|p| p as u32);
    let first = pid_of(&c).unwrap();
    assert!(cmdline(first).contains("raft-node"));
    // SAFETY: a raft-node of this cluster (checked above).
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let second = wait_for("the first restart", WAIT_TIMEOUT, || pid_of(&c).filter(|p| *p != first));
    assert!(cmdline(second).contains("raft-node"));
    // SAFETY: as above.
    unsafe { libc::kill(second as i32, libc::SIGKILL) };
    wait_for("node 3 to be given up on", WAIT_TIMEOUT, || {
        (Cluster::node(&c.status(), 3)["process"] == "failed").then_some(())
    });
    assert!(c.output().contains("node 3 failed: 2 crashes within"), "{}", c.output());
    c.ok(&["start", "3"]);
    wait_for("node 3 to rejoin", LEADER_TIMEOUT, || {
        let st = c.status();
        (Cluster::node(&st, 3)["process"] == "running" && Cluster::agreed_leader(&st, 3).is_some()).then_some(())
    });
}
