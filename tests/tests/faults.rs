//! The real cluster under process faults: kills, pauses, partitions, and a crash of
//! every node at once. Each test checks what Raft promises: a majority elects a leader
//! and takes writes (§5.2), a minority never commits (§5.3, §5.4), at most one leader per
//! term (Election Safety, Figure 3), and no acknowledged write is ever lost.

use raft_e2e::*;
use raft_wire::{ReadOp, Reply, WriteOp};
use std::time::Duration;

fn process_of(c: &Cluster, id: NodeId) -> String {
    c.sup_status().expect("supervisor status").nodes.into_iter().find(|n| n.id == id).expect("node row").process
}

/// Waits until every node holds the same data, and returns it.
fn converged_data(c: &Cluster) -> std::collections::BTreeMap<String, Vec<u8>> {
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let first = c.node_data(1);
    for id in c.ids().into_iter().skip(1) {
        assert_eq!(c.node_data(id), first, "node {id} differs from node 1 after converging");
    }
    first
}

/// Merged with the supervisor's former `kill_stays_down_and_start_brings_it_back` and
/// raft-cli's former `survives_a_leader_kill`: one leader kill, seen from all three.
#[test]
fn kill_the_leader_a_new_leader_takes_writes() {
    let c = Cluster::start(Opts::default());
    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    // Through the leader, which the client now remembers in <dir>/cli-leader.
    assert_eq!(c.cli_ok(&["set", "before", "1"]), "OK\n");

    let _ = c.sup_status(); // remember the pids before they change
    let out = c.sup_ok(&["kill", &old.to_string()]).stdout;
    assert!(out.contains("stays down"), "{out}");
    c.wait(&format!("node {old} stopped"), START_TIMEOUT, || (process_of(&c, old) == "stopped").then_some(()));
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != old).collect();
    let (new, new_term) = c.wait_leader(&others, LEADER_TIMEOUT);
    assert!(new_term > old_term, "the new leader {new} is in a later term ({new_term} > {old_term})");
    // `status --json` shows the dead node as stopped, with nothing to say about Raft.
    c.wait("the killed node's pid to be reaped", LEADER_TIMEOUT, || {
        let st: serde_json::Value = serde_json::from_str(&c.sup_ok(&["status", "--json"]).stdout).ok()?;
        let dead = st["nodes"].as_array()?.iter().find(|n| n["id"] == old)?.clone();
        assert_eq!(dead["process"], "stopped", "{dead}");
        assert_eq!(dead["role"], "unknown", "{dead}");
        assert!(dead["term"].is_null(), "{dead}");
        dead["pid"].is_null().then_some(())
    });
    let out = c.supervisor_output();
    assert!(out.contains(&format!("node {old} (pid")), "{out}");

    // The cached leader is dead: the client finds the new one within its timeout.
    assert_eq!(c.cli_ok(&["set", "after", "2"]), "OK\n");
    assert_eq!(c.cli_ok(&["get", "before"]), "1\n");
    assert_eq!(c.cli_ok(&["get", "after"]), "2\n");
    let status = c.cli_ok(&["status"]);
    assert!(status.contains("unreachable"), "{status}");
    // The killed node stays down until `start` (DESIGN.md), then catches up.
    assert_eq!(process_of(&c, old), "stopped");
    let out = c.sup_ok(&["start", &old.to_string()]).stdout;
    assert!(out.contains("started (pid"), "{out}");
    c.wait(&format!("node {old} running"), START_TIMEOUT, || (process_of(&c, old) == "running").then_some(()));
    let data = converged_data(&c);
    assert_eq!(data.get("after").map(Vec::as_slice), Some(&b"2"[..]));
    c.assert_one_leader_per_term();
}

#[test]
fn kill_two_followers_writes_go_on() {
    let c = Cluster::start(Opts::default());
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let followers: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != leader).take(2).collect();
    for &f in &followers {
        c.kill(f);
    }
    for &f in &followers {
        assert_eq!(process_of(&c, f), "stopped");
    }
    for i in 0..20 {
        assert_eq!(c.cli_ok(&["set", &format!("k{i}"), &format!("v{i}")]), "OK\n");
    }
    assert_eq!(c.cli_ok(&["get", "k19"]), "v19\n");
    assert_eq!(c.cli_ok(&["keys", "k1"]).lines().count(), 11);
    let up: Vec<NodeId> = c.ids().into_iter().filter(|i| !followers.contains(i)).collect();
    c.wait_converged(&up, CONVERGE_TIMEOUT);
    c.assert_one_leader_per_term();
}

#[test]
fn kill_three_writes_fail_then_succeed_after_start() {
    let c = Cluster::start(Opts::default());
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    assert_eq!(c.cli_ok(&["set", "before", "1"]), "OK\n");
    // The leader and two followers: two nodes are left, no majority.
    let mut victims = vec![leader];
    victims.extend(c.ids().into_iter().filter(|&i| i != leader).take(2));
    for &v in &victims {
        c.kill(v);
    }

    for i in 0..3 {
        let out = c.cli(&["--timeout", "2s", "set", &format!("during{i}"), "x"]);
        assert!(
            matches!(out.code, Some(3) | Some(4)),
            "a write without a majority must fail with exit 3 or 4: {}",
            out.describe()
        );
        assert_eq!(out.stderr.lines().count(), 1, "one line on stderr: {}", out.describe());
    }
    // A linearizable read cannot be served without a majority either.
    let read = c.cli(&["--timeout", "2s", "get", "before"]);
    assert!(matches!(read.code, Some(3) | Some(4)), "{}", read.describe());

    for &v in &victims {
        c.start_node(v);
    }
    c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    assert_eq!(c.cli_ok(&["set", "after", "2"]), "OK\n");
    assert_eq!(c.cli_ok(&["get", "before"]), "1\n");
    assert_eq!(c.cli_ok(&["get", "after"]), "2\n");
    converged_data(&c);
    c.assert_one_leader_per_term();
}

#[test]
fn pause_the_leader_new_leader_then_old_one_steps_down() {
    let c = Cluster::start(Opts::default());
    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let load = Load::start(c.client_cluster(), "p", 3, Duration::from_secs(3));
    c.wait("writes before the pause", LEADER_TIMEOUT, || (load.acked() >= 30).then_some(()));

    c.pause(old);
    assert_eq!(process_of(&c, old), "paused");
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != old).collect();
    let (new, new_term) = c.wait_leader(&others, LEADER_TIMEOUT);
    assert!(new_term > old_term, "new leader {new} in term {new_term} after {old_term}");
    let at_new_leader = load.acked();
    c.wait("writes to go on under the new leader", LEADER_TIMEOUT, || {
        (load.acked() >= at_new_leader + 30).then_some(())
    });

    c.resume(old);
    // The old leader hears of the higher term and steps down.
    c.wait("the old leader to step down", LEADER_TIMEOUT, || {
        let s = c.node_status(old)?;
        (s.role == RoleKind::Follower && s.term >= new_term && s.leader.is_some()).then_some(())
    });
    let at_resume = load.acked();
    c.wait("writes after the resume", LEADER_TIMEOUT, || (load.acked() >= at_resume + 30).then_some(()));
    let report = load.stop();
    assert!(report.acked.len() >= 90, "writes went on: {} acknowledged", report.acked.len());

    let data = converged_data(&c);
    report.check(&data, "after pause/resume");
    c.assert_one_leader_per_term();
}

/// Merged with the supervisor's former `partition_isolates_the_leader_and_heal_reunites`
/// (its `partition` output, the groups in status, CheckQuorum, the heal).
#[test]
fn partition_the_leader_into_the_minority() {
    let c = Cluster::start(Opts::default());
    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let buddy = c.ids().into_iter().find(|&i| i != old).expect("a follower");
    let minority = vec![old, buddy];
    let majority: Vec<NodeId> = c.ids().into_iter().filter(|i| !minority.contains(i)).collect();
    assert_eq!(c.cli_ok(&["set", "before", "1"]), "OK\n");

    let group = |ids: &[NodeId]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let out = c.sup_ok(&["partition", &group(&minority), &group(&majority)]).stdout;
    assert!(out.starts_with("partitioned: {"), "{out}");
    let st = c.sup_status().expect("status");
    let mut got = st.partitions.clone();
    got.iter_mut().for_each(|g| g.sort());
    got.sort();
    let mut want = vec![minority.clone(), majority.clone()];
    want.iter_mut().for_each(|g| g.sort());
    want.sort();
    assert_eq!(got, want, "status shows the partition");

    // A write sent to the minority at once, while the old leader may still believe it leads.
    let mut minority_client = c.client_only(&minority, Duration::from_secs(2));
    let mut minority_writes = Vec::new();
    let mut write_to_minority = |client: &mut Client, n: usize| {
        let key = format!("minority{n}");
        let r = client.write(WriteOp::Set { key: key.clone(), value: b"lost".to_vec() });
        assert!(r.is_err(), "a write sent to the minority succeeded: {key}: {r:?}");
        minority_writes.push(key);
    };
    write_to_minority(&mut minority_client, 0);

    let (new, new_term) = c.wait_leader(&majority, LEADER_TIMEOUT);
    assert!(new_term > old_term, "majority leader {new} in term {new_term} after {old_term}");
    for i in 0..10 {
        assert_eq!(c.cli_ok(&["set", &format!("majority{i}"), "kept"]), "OK\n");
    }
    for n in 1..4 {
        write_to_minority(&mut minority_client, n);
    }
    // The minority nodes cannot serve a linearizable read either.
    minority_client.set_timeout(Duration::from_secs(1));
    let read = minority_client.read(ReadOp::Get { key: "before".into() }, false);
    assert!(read.is_err(), "the minority served a linearizable read: {read:?}");
    // CheckQuorum: the cut-off leader steps down on its own.
    c.wait("the old leader to step down", LEADER_TIMEOUT, || {
        c.node_status(old).filter(|s| s.role != RoleKind::Leader).map(|_| ())
    });

    c.heal();
    assert!(c.sup_status().expect("status").partitions.is_empty());
    let (_, healed_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    assert!(healed_term >= new_term, "no term goes back after the heal");
    let data = converged_data(&c);
    for i in 0..10 {
        assert_eq!(data.get(&format!("majority{i}")).map(Vec::as_slice), Some(&b"kept"[..]));
    }
    for key in &minority_writes {
        assert!(!data.contains_key(key), "{key}, sent only to the minority, was applied after the heal");
    }
    assert_eq!(c.cli_ok(&["get", "before"]), "1\n");
    c.assert_one_leader_per_term();
}

#[test]
fn kill_all_five_with_writes_in_flight_then_start() {
    let c = Cluster::start(Opts::default());
    c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let load = Load::start(c.client_cluster(), "crash", 4, Duration::from_secs(2));
    c.wait("writes under way", LEADER_TIMEOUT, || (load.acked() >= 100).then_some(()));

    // As close to "at once" as the control socket allows: five requests back to back.
    for id in c.ids() {
        c.kill(id);
    }
    let report = load.stop();
    let st = c.sup_status().expect("status");
    assert!(st.nodes.iter().all(|n| n.process == "stopped"), "all five are down: {st:?}");

    for id in c.ids() {
        c.start_node(id);
    }
    c.wait_leader(&c.ids(), START_TIMEOUT);
    let data = converged_data(&c);
    assert!(report.acked.len() >= 100);
    report.check(&data, "after the restart of all five");
    // And through the client, linearizably, a sample of them.
    let mut client = c.client(Duration::from_secs(10));
    for (k, v) in report.acked.iter().step_by(10) {
        let got = client.read(ReadOp::Get { key: k.clone() }, false);
        assert_eq!(got, Ok(Reply::Value(Some(v.clone()))), "acknowledged {k:?}");
    }
    c.assert_one_leader_per_term();
}
