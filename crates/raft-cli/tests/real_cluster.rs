//! raft-cli against a real cluster: `raft-supervisor up` with real `raft-node`s, through
//! the one end-to-end harness of the workspace (raft-e2e: a temp dir, the binaries of this
//! build, waits on conditions with deadlines, every process killed on Drop). Every command
//! and exit code, a write whose outcome is unknown, and the bench.
//!
//! The leader kill that the client must survive is checked with the other faults
//! (raft-e2e `kill_the_leader_a_new_leader_takes_writes`), the chaos run with raft-e2e's
//! chaos tests.

use raft_e2e::*;

fn three() -> Cluster {
    Cluster::start(Opts { nodes: 3, ..Opts::default() })
}

fn stdout_of(out: &Out) -> &str {
    assert_eq!(out.code, Some(0), "{}", out.describe());
    &out.stdout
}

/// Merged with raft-e2e's former `leader_elected_and_set_get_del_cas_keys_work`: every
/// command on a fresh cluster, then exit codes 0 to 4.
#[test]
fn every_exit_code_against_a_real_cluster() {
    let c = three();
    let (leader, term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    // The election is in the leader's log, and nobody else claims that term.
    c.wait("the leader's log line", LEADER_TIMEOUT, || {
        c.leaders_by_term().get(&term).is_some_and(|s| s.contains(&leader)).then_some(())
    });
    c.assert_one_leader_per_term();

    // 0: set, get prints the value alone.
    assert_eq!(stdout_of(&c.cli(&["set", "chelsea", "rules"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rules\n");
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea", "--stale"])), "rules\n");
    assert!(c.dir.join("cli-leader").is_file(), "the leader is remembered");

    // 1: not found: nothing on stdout, one line on stderr.
    let missing = c.cli(&["get", "arsenal"]);
    assert_eq!(missing.code, Some(1), "{}", missing.describe());
    assert_eq!(missing.stdout, "", "nothing on stdout for a missing key");
    assert_eq!(missing.stderr.lines().count(), 1, "one line on stderr: {}", missing.describe());

    // cas: swap, mismatch (exit 1, names the current value, changes nothing), expect-absent.
    assert_eq!(stdout_of(&c.cli(&["cas", "chelsea", "rules", "rocks"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rocks\n");
    let mismatch = c.cli(&["cas", "chelsea", "rules", "again"]);
    assert_eq!(mismatch.code, Some(1), "cas on a stale value is a mismatch: {}", mismatch.describe());
    assert!(mismatch.stderr.contains("\"rocks\""), "{}", mismatch.describe());
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rocks\n", "a failed cas changes nothing");
    assert_eq!(stdout_of(&c.cli(&["cas", "--expect-absent", "spurs", "lilywhites"])), "OK\n");
    let taken = c.cli(&["cas", "--expect-absent", "spurs", "other"]);
    assert_eq!(taken.code, Some(1), "{}", taken.describe());

    // keys and del.
    assert_eq!(stdout_of(&c.cli(&["set", "chester", "city"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["keys"])), "chelsea\nchester\nspurs\n");
    assert_eq!(stdout_of(&c.cli(&["keys", "che"])), "chelsea\nchester\n");
    assert_eq!(stdout_of(&c.cli(&["keys", "zzz"])), "");
    assert_eq!(c.cli(&["del", "chester"]).code, Some(0));
    let gone = c.cli(&["get", "chester"]);
    assert_eq!(gone.code, Some(1), "{}", gone.describe());
    assert_eq!(c.cli(&["del", "chester"]).code, Some(0), "deleting a missing key succeeds");
    assert_eq!(stdout_of(&c.cli(&["keys"])), "chelsea\nspurs\n");

    // 2: usage.
    assert_eq!(c.cli(&["set", "only-key"]).code, Some(2));

    // Every node applies the same writes.
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let want = c.node_data(leader);
    assert_eq!(want.len(), 2);
    for id in c.ids() {
        assert_eq!(c.node_data(id), want, "node {id} holds the leader's data");
    }

    // status lists every node.
    let out = c.cli(&["status"]);
    let roles: Vec<String> =
        stdout_of(&out).lines().skip(1).map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string()).collect();
    assert_eq!(roles.iter().filter(|r| *r == "leader").count(), 1, "{roles:?}");
    assert_eq!(roles.iter().filter(|r| *r == "follower").count(), 2, "{roles:?}");

    // 4: every node paused: the write reaches the (frozen) leader and no answer comes.
    for n in ["1", "2", "3"] {
        c.sup_ok(&["pause", n]);
    }
    let out = c.cli(&["--timeout", "700ms", "set", "chelsea", "maybe"]);
    assert_eq!(out.code, Some(4), "{}", out.describe());
    assert!(out.stderr.contains("may or may not"), "{}", out.describe());
    // A read in the same state is simply unavailable.
    assert_eq!(c.cli(&["--timeout", "700ms", "get", "chelsea"]).code, Some(3));
    for n in ["1", "2", "3"] {
        c.sup_ok(&["resume", n]);
    }
    c.wait("a leader after resume", LEADER_TIMEOUT, || {
        (c.cli(&["--timeout", "1s", "get", "chelsea"]).code == Some(0)).then_some(())
    });
    let v = c.cli(&["get", "chelsea"]).stdout;
    assert!(v == "rocks\n" || v == "maybe\n", "either outcome, nothing else: {v:?}");

    // 3: every node killed, supervisor up: nothing reached, surely not applied.
    for id in c.ids() {
        c.kill(id);
    }
    let out = c.cli(&["--timeout", "700ms", "set", "chelsea", "never"]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stderr.contains("not applied"), "{}", out.describe());
    for id in c.ids() {
        c.start_node(id);
    }
    c.wait("a leader after restart", LEADER_TIMEOUT, || {
        (c.cli(&["--timeout", "1s", "get", "chelsea"]).code == Some(0)).then_some(())
    });
    assert_ne!(c.cli(&["get", "chelsea"]).stdout, "never\n");
}

#[test]
fn pausing_the_majority_during_a_write_gives_4() {
    let c = three();
    assert_eq!(c.cli(&["set", "k", "v1"]).code, Some(0));
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let followers: Vec<String> = c.ids().into_iter().filter(|&n| n != leader).map(|n| n.to_string()).collect();
    for f in &followers {
        c.sup_ok(&["pause", f]);
    }
    // The leader appends but cannot commit: outcome unknown.
    let out = c.cli(&["--timeout", "400ms", "set", "k", "v2"]);
    assert_eq!(out.code, Some(4), "the leader took the write: {}", out.describe());
    for f in &followers {
        c.sup_ok(&["resume", f]);
    }
    c.wait("a leader after resume", LEADER_TIMEOUT, || {
        (c.cli(&["--timeout", "1s", "get", "k"]).code == Some(0)).then_some(())
    });
}

#[test]
fn bench_runs_and_reports_json() {
    let c = three();
    let out = c.cli(&["bench", "--clients", "4", "--requests", "400", "--keys", "20", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ok"], 400, "{v}");
    assert!(v["latency_ms"]["max"].as_f64().unwrap() > 0.0);
}
