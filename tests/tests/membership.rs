//! Membership changes end to end (issue 17): `raft-supervisor add`, `remove`, `transfer`,
//! the `member` column, and the node set surviving a supervisor restart; grown from five
//! to seven nodes and shrunk to three under `raft-cli chaos`, the leader removed under
//! load, a node added while another is cut off.

use raft_e2e::*;
use raft_wire::supervisor::ClusterStatus;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long one membership command may keep being refused (no leader during a fault, a
/// change still in progress) before the test gives up.
const CHANGE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `raft-supervisor ARGS` until it exits 0 (retrying refusals that a fault in
/// progress explains), returns its stdout.
fn until_ok(c: &Cluster, args: &[&str]) -> String {
    let mut last = String::new();
    let ok = poll_until(CHANGE_DEADLINE, || {
        let out = c.sup(args);
        if out.code == Some(0) {
            return Some(out.stdout);
        }
        last = out.describe();
        None
    });
    ok.unwrap_or_else(|| panic!("{args:?} kept failing: {last}\n{}", c.dump()))
}

fn member_of(st: &ClusterStatus, id: u64) -> Option<String> {
    st.nodes.iter().find(|n| n.id == id).and_then(|n| n.member.clone())
}

/// Waits until the leader's configuration has exactly these voters and no learners.
fn wait_voters(c: &Cluster, voters: &[u64]) {
    c.wait(&format!("voters {voters:?}"), CONVERGE_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        let v: Vec<u64> = st.nodes.iter().filter(|n| n.member.as_deref() == Some("voter")).map(|n| n.id).collect();
        let learners = st.nodes.iter().any(|n| n.member.as_deref() == Some("learner"));
        (v == voters && !learners).then_some(())
    });
}

/// The ids of the new node `add` printed: "added node 6 as a learner; ...".
fn added_id(out: &str) -> u64 {
    out.split_whitespace()
        .skip_while(|w| *w != "node")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no node id in `{out}`"))
}

/// A child process killed when dropped (the chaos run, a load), so a failing test
/// leaves nothing behind.
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn grow_to_seven_and_shrink_to_three_under_chaos() {
    let c = Cluster::start(Opts::default());
    let history = c.dir.join("chaos-history.json");
    let report = c.dir.join("chaos.out");
    let mut cmd = Command::new(&bins().cli);
    cmd.arg("--config")
        .arg(&c.config)
        .args(["chaos", "--duration", "25s", "--history"])
        .arg(&history)
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(Stdio::null());
    let mut chaos = Bg(cmd.spawn().expect("spawn raft-cli chaos"));

    let six = added_id(&until_ok(&c, &["add"]));
    let seven = added_id(&until_ok(&c, &["add"]));
    assert_eq!((six, seven), (6, 7));
    wait_voters(&c, &[1, 2, 3, 4, 5, 6, 7]);
    for id in [7, 6, 5, 4] {
        let out = until_ok(&c, &["remove", &id.to_string()]);
        assert!(out.contains(&format!("removed node {id}")), "{out}");
    }
    wait_voters(&c, &[1, 2, 3]);

    // The chaos run ends by itself; its verdict covers the whole history.
    let status = c.wait("the chaos run to finish", Duration::from_secs(240), || chaos.0.try_wait().unwrap());
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(status.success(), "chaos failed:\n{text}\n{}", c.dump());
    assert!(text.contains("verdict: linearizable"), "{text}");
    assert!(text.contains("caught up: yes"), "{text}");

    let st = c.sup_status().unwrap();
    for id in 4..=7 {
        assert_eq!(member_of(&st, id).as_deref(), Some("removed"), "{st:?}");
        let row = st.nodes.iter().find(|n| n.id == id).unwrap();
        assert_eq!(row.process, "stopped", "a removed node is stopped: {row:?}");
    }
    // Removed nodes are out of reach of the other commands.
    let out = c.sup(&["start", "5"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("node 5 was removed"), "{}", out.describe());
    c.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    c.assert_one_leader_per_term();
}

#[test]
fn the_leader_is_removed_under_load_and_writes_go_on() {
    let c = Cluster::start(Opts::default());
    let mut cmd = Command::new(&bins().cli);
    cmd.arg("--config")
        .arg(&c.config)
        .args(["bench", "--clients", "4", "--requests", "3000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _load = Bg(cmd.spawn().expect("spawn raft-cli bench"));
    let (leader, term) = c.wait_leader(&c.ids(), START_TIMEOUT);
    // By id: a retry must not remove whoever leads next.
    let out = until_ok(&c, &["remove", &leader.to_string()]);
    assert!(out.contains(&format!("removed node {leader}")), "{out}");
    let rest: Vec<u64> = c.ids().into_iter().filter(|&id| id != leader).collect();
    let (new_leader, new_term) = c.wait_leader(&rest, CONVERGE_TIMEOUT);
    assert!(new_term > term, "a new term after the leader left");
    assert_ne!(new_leader, leader);
    let set = c.cli(&["set", "after", "removal"]);
    assert_eq!(set.code, Some(0), "{}", set.describe());
    assert!(
        c.read_log(leader).contains("removed from the configuration"),
        "the removed leader says so:\n{}",
        c.read_log(leader)
    );
    let st = c.sup_status().unwrap();
    assert_eq!(member_of(&st, leader).as_deref(), Some("removed"));
    c.wait_converged(&rest, CONVERGE_TIMEOUT);
}

#[test]
fn a_node_added_while_another_is_cut_off_catches_up_and_the_set_survives_a_restart() {
    let mut c = Cluster::start(Opts::default());
    c.sup_ok(&["isolate", "2"]);
    for i in 0..20 {
        let out = c.cli(&["set", &format!("k{i}"), "v"]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
    }
    let six = added_id(&until_ok(&c, &["add"]));
    wait_voters(&c, &[1, 2, 3, 4, 5, six]);
    // The new node has the data, read from it alone.
    c.wait("node 6 has k19", CONVERGE_TIMEOUT, || c.node_data(six).contains_key("k19").then_some(()));
    c.sup_ok(&["heal"]);
    c.wait_converged(&[1, 2, 3, 4, 5, six], CONVERGE_TIMEOUT);
    // The table shows the member column; a transfer to the new node works.
    let table = c.sup_ok(&["status"]).stdout;
    assert!(table.lines().next().unwrap().contains("member"), "{table}");
    let out = until_ok(&c, &["transfer", "6"]);
    assert!(out.contains("to node 6"), "{out}");
    c.wait("node 6 to lead", CONVERGE_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        st.nodes.iter().any(|n| n.id == six && n.role == "leader").then_some(())
    });

    // A second supervisor run starts the same six nodes (kept in <dir>/members).
    c.sup_ok(&["down"]);
    let _ = c.wait_supervisor_exit(Duration::from_secs(30));
    let c = c.up();
    let st = c.sup_status().unwrap();
    assert_eq!(st.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert!(st.nodes.iter().all(|n| n.process == "running"), "{st:?}");
    let add_again = c.sup(&["remove", "9"]);
    assert_eq!(add_again.code, Some(2), "no node 9: {}", add_again.describe());
}
