//! Issue 14 on the real cluster: `watch` in a real terminal (tmux), `timeline`'s order
//! against events whose order is known, and `speed` reaching every node, restarted ones
//! included.

use raft_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the screen may take to show what a test waits for (refreshes are 100 ms; an
/// election after a kill takes a few hundred).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Limit on one tmux command.
const TMUX_LIMIT: Duration = Duration::from_secs(10);

/// A private tmux server (its own socket in the cluster's directory) running one command in
/// a 160x80 window (tall, so the event stream keeps a kill and the election after it). Dropping it kills the server, then the command's process by pid.
struct Tmux {
    socket: PathBuf,
    pid: Option<u32>,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let have = Command::new("sh").args(["-c", "command -v tmux"]).output().is_ok_and(|o| o.status.success());
        assert!(have, "tmux is needed for watch's end-to-end test (.ci/run installs it with apt-get)");
        let mut t = Tmux { socket: dir.join("tmux.sock"), pid: None };
        let out = t.run(&["new-session", "-d", "-x", "160", "-y", "80", "-s", "w", command]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        let out = t.run(&["display-message", "-p", "-t", "w", "#{pane_pid}"]);
        t.pid = out.stdout.trim().parse().ok();
        assert!(t.pid.is_some(), "{}", out.describe());
        t
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        run_limited(&mut cmd, TMUX_LIMIT)
    }

    /// The screen as text, one string per row.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "w"]).stdout
    }

    fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "w", keys]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "w"]).code == Some(0)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(pid) = self.pid {
            // SAFETY: kill(2) on the pid of the pane's process, which this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// The leader and term in `watch`'s title line ("... leader n3 term 7").
fn title_leader(screen: &str) -> Option<(NodeId, Term)> {
    let title = screen.lines().find(|l| l.starts_with("raft watch"))?;
    let rest = &title[title.find(" leader n")? + " leader n".len()..];
    let mut words = rest.split_whitespace();
    let id = words.next()?.parse().ok()?;
    (words.next()? == "term").then_some(())?;
    Some((id, words.next()?.parse().ok()?))
}

/// Every node's panel is on screen (its symbol, id and a role), and one says LEADER.
fn five_nodes_one_leader(screen: &str) -> bool {
    let panels = (1..=5).all(|id| {
        screen.lines().any(|l| {
            ["★", "●", "◎", "○"].iter().any(|sym| l.contains(&format!("{sym} n{id} ")))
                && ["LEADER", "follower", "CANDIDATE", "pre-candidate"].iter().any(|r| l.contains(r))
        })
    });
    panels && screen.lines().filter(|l| l.contains(" LEADER ")).count() == 1
}

#[test]
fn watch_shows_the_cluster_and_kill_leader_elects_a_new_one() {
    let c = Cluster::start(Opts::default());
    let cmd = format!("{} --config {} watch", bins().supervisor.display(), c.config.display());
    let tmux = Tmux::start(&c.dir, &cmd);
    let (old, old_term) = c.wait("watch to show five nodes and one leader", SCREEN_TIMEOUT, || {
        let s = tmux.screen();
        five_nodes_one_leader(&s).then(|| title_leader(&s)).flatten()
    });
    tmux.keys("L");
    let (new, new_term) = c.wait("watch to show a new leader in a higher term", SCREEN_TIMEOUT, || {
        let s = tmux.screen();
        title_leader(&s).filter(|&(id, term)| id != old && term > old_term)
    });
    assert!(new_term > old_term && new != old);
    // The kill went through the supervisor: its event line is in the stream, and the old
    // leader's panel says it is down.
    let mut last = String::new();
    let seen = poll_until(SCREEN_TIMEOUT, || {
        last = tmux.screen();
        // The event stream's line: time, source, no term, the action.
        let killed = last.lines().any(|l| l.trim_end().ends_with(&format!(" supervisor -    kill n{old}")));
        let down = last.lines().any(|l| l.contains(&format!("✕ n{old} down")));
        (killed && down).then_some(())
    });
    assert!(seen.is_some(), "the kill of n{old} in the event stream and its panel down; the screen:\n{last}");
    // The slow-motion key: one step down from 1x, confirmed by the nodes' own tick.
    tmux.keys("-");
    c.wait("watch to show speed 0.50x and the nodes' 20 ms tick", SCREEN_TIMEOUT, || {
        let s = tmux.screen();
        s.lines().next().is_some_and(|t| t.contains("speed 0.50x (tick 20 ms)")).then_some(())
    });
    tmux.keys("q");
    c.wait("watch to quit on q", SCREEN_TIMEOUT, || (!tmux.alive()).then_some(()));
}

#[test]
fn timeline_puts_the_kill_before_the_election_it_causes() {
    let c = Cluster::start(Opts::default());
    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    c.sup_ok(&["kill", &old.to_string()]);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != old).collect();
    let (new, new_term) = c.wait_leader(&others, LEADER_TIMEOUT);
    assert!(new_term > old_term);

    let text = c.sup_ok(&["timeline"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    let kill = lines.iter().position(|l| l.ends_with(&format!(" supervisor - kill n{old}"))).expect("the kill line");
    let elected = lines
        .iter()
        .position(|l| l.contains(&format!(" n{new} t{new_term} became leader")))
        .unwrap_or_else(|| panic!("n{new}'s became-leader line in\n{text}"));
    assert!(kill < elected, "kill at line {kill}, the election it caused at line {elected}:\n{text}");
    // The old leader's own election came before both.
    let first = lines.iter().position(|l| l.contains(&format!(" n{old} t{old_term} became leader"))).expect("old");
    assert!(first < kill);

    let json = c.sup_ok(&["timeline", "--json"]).stdout;
    let events: Vec<serde_json::Value> =
        json.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(events.len(), lines.len(), "one JSON object per text line");
    let ts: Vec<u64> = events.iter().map(|e| e["ts_us"].as_u64().expect("ts_us")).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "sorted by ts_us");
    let kill_ev = events.iter().find(|e| e["event"] == "kill").expect("a kill event");
    assert_eq!((kill_ev["source"].as_str(), kill_ev["term"].is_null()), (Some("supervisor"), true), "{kill_ev}");
    let won = events
        .iter()
        .find(|e| e["event"] == "became-leader" && e["source"] == format!("n{new}") && e["term"] == new_term)
        .expect("the new leader's event");
    assert!(won["ts_us"].as_u64() > kill_ev["ts_us"].as_u64());
    assert!(events.iter().any(|e| e["event"] == "vote-granted"), "votes are events too");

    // --node keeps that node's lines and the supervisor's lines about it.
    let only = c.sup_ok(&["timeline", "--node", &old.to_string()]).stdout;
    assert!(only.lines().all(|l| l.contains(&format!(" n{old} ")) || l.contains(" supervisor ")), "{only}");
    assert!(only.contains(&format!("kill n{old}")));
    // --since: a long window holds everything, and a bad one is a usage error.
    assert_eq!(c.sup_ok(&["timeline", "--since", "1h"]).stdout.lines().count(), lines.len());
    assert_eq!(c.sup(&["timeline", "--since", "yesterday"]).code, Some(2));
    assert_eq!(c.sup(&["timeline", "--node", "9"]).code, Some(2));

    // --follow prints what happens next: starting the killed node again.
    let mut child = Command::new(&bins().supervisor)
        .arg("--config")
        .arg(&c.config)
        .args(["timeline", "--follow", "--since", "1s"])
        .env_remove("RAFT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn timeline --follow");
    let stdout = child.stdout.take().expect("piped");
    let _reaper = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    c.sup_ok(&["start", &old.to_string()]);
    let want = format!(" supervisor - start n{old}");
    let mut seen = Vec::new();
    let found = poll_until(LEADER_TIMEOUT, || {
        seen.extend(rx.try_iter());
        seen.iter().any(|l| l.ends_with(&want)).then_some(())
    });
    assert!(found.is_some(), "timeline --follow did not print {want:?}; it printed:\n{}", seen.join("\n"));
    // The command is stamped when it arrived, so it comes before the start it caused.
    let text = c.sup_ok(&["timeline", "--node", &old.to_string()]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    let asked = lines.iter().position(|l| l.ends_with(&want)).expect("the start line");
    let started = lines.iter().rposition(|l| l.contains(&format!(" supervisor - node {old} started (pid ")));
    assert!(started.is_some_and(|s| s > asked), "start n{old} before node {old} started:\n{text}");
}

/// Kills (by pid) and reaps a child this test started, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn speed_reaches_every_node_and_nodes_that_restart() {
    let c = Cluster::start(Opts::default());
    assert_eq!(c.sup(&["speed", "20"]).code, Some(2), "out of range is a usage error");
    let out = c.sup_ok(&["speed", "0.1"]).stdout;
    assert!(out.contains("tick 100 ms"), "{out}");
    let tick_is = |want: u64| c.ids().into_iter().all(|id| c.node_status(id).is_some_and(|s| s.tick_us == want));
    c.wait("every node at a 100 ms tick", LEADER_TIMEOUT, || tick_is(100_000).then_some(()));
    for id in c.ids() {
        assert!(c.read_log(id).contains("speed 0.10x: tick 100 ms"), "n{id}'s log:\n{}", c.read_log(id));
    }
    let st = c.sup_ok(&["status"]).stdout;
    assert!(st.contains("speed: 0.10x"), "{st}");
    let json: serde_json::Value = serde_json::from_str(&c.sup_ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["speed_milli"], 100);

    // A node that restarts is told the speed again.
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();
    c.sup_ok(&["restart", &follower.to_string()]);
    c.wait("the restarted node at a 100 ms tick", START_TIMEOUT, || {
        let log = c.read_log(follower);
        let restarted = log.matches("speed 0.10x: tick 100 ms").count() == 2;
        (restarted && c.node_status(follower).is_some_and(|s| s.tick_us == 100_000)).then_some(())
    });
    // Out-of-range speeds are refused with the range, by the supervisor and by a node,
    // and change nothing.
    match c.sup_request(&raft_wire::supervisor::SupervisorRequest::Speed(20_000)) {
        Ok(raft_wire::supervisor::SupervisorResponse::Error(e)) => assert!(e.contains("0.01..=10.00"), "{e}"),
        other => panic!("speed 20x over the control socket: {other:?}"),
    }
    let mut conn = raft_cli::conn::NodeConn::connect(leader, &c.node_socket(leader), STATUS_TIMEOUT).expect("connect");
    let deadline = std::time::Instant::now() + STATUS_TIMEOUT;
    match conn.call(raft_wire::Request::SetSpeed { factor_milli: 5 }, deadline) {
        Ok(raft_wire::Response::Invalid { reason }) => assert!(reason.contains("0.01..=10.00"), "{reason}"),
        other => panic!("SetSpeed 0.005 on a node: {other:?}"),
    }
    assert!(tick_is(100_000), "a refused speed changes no node");
    // The slowed cluster still elects and commits, in ticks.
    assert_eq!(c.cli(&["--timeout", "30s", "set", "slow", "1"]).code, Some(0));

    c.sup_ok(&["speed", "1"]);
    c.wait("every node back at 10 ms", LEADER_TIMEOUT, || tick_is(10_000).then_some(()));
    // The supervisor's speed line comes before each node's in the timeline.
    let tl = c.sup_ok(&["timeline"]).stdout;
    let sup = tl.lines().position(|l| l.ends_with("supervisor - speed 1.00x")).expect("supervisor speed line");
    for id in c.ids() {
        let node = tl.lines().position(|l| l.contains(&format!(" n{id} ")) && l.ends_with("speed 1.00x: tick 10 ms"));
        assert!(node.is_some_and(|n| n > sup), "n{id}'s speed line after the supervisor's:\n{tl}");
    }
}
