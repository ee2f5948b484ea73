//! A fresh cluster elects a leader, and every client command works from the real
//! `raft-cli` binary, with the exit codes of DESIGN.md.

use raft_e2e::*;

fn stdout_of(out: &Out) -> &str {
    assert_eq!(out.code, Some(0), "{}", out.describe());
    &out.stdout
}

#[test]
fn leader_elected_and_set_get_del_cas_keys_work() {
    let c = Cluster::start(Opts::default());
    let (leader, term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    // The election is in the leader's log, and nobody else claims that term.
    c.wait("the leader's log line", LEADER_TIMEOUT, || {
        c.leaders_by_term().get(&term).is_some_and(|s| s.contains(&leader)).then_some(())
    });
    c.assert_one_leader_per_term();

    assert_eq!(stdout_of(&c.cli(&["set", "chelsea", "rules"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rules\n");

    let missing = c.cli(&["get", "arsenal"]);
    assert_eq!(missing.code, Some(1), "{}", missing.describe());
    assert_eq!(missing.stdout, "", "nothing on stdout for a missing key");
    assert_eq!(missing.stderr.lines().count(), 1, "one line on stderr: {}", missing.describe());

    assert_eq!(stdout_of(&c.cli(&["cas", "chelsea", "rules", "rocks"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rocks\n");
    let mismatch = c.cli(&["cas", "chelsea", "rules", "again"]);
    assert_eq!(mismatch.code, Some(1), "cas on a stale value is a mismatch: {}", mismatch.describe());
    assert_eq!(stdout_of(&c.cli(&["get", "chelsea"])), "rocks\n", "a failed cas changes nothing");
    assert_eq!(stdout_of(&c.cli(&["cas", "--expect-absent", "spurs", "lilywhites"])), "OK\n");
    let taken = c.cli(&["cas", "--expect-absent", "spurs", "other"]);
    assert_eq!(taken.code, Some(1), "{}", taken.describe());

    assert_eq!(stdout_of(&c.cli(&["set", "chester", "city"])), "OK\n");
    assert_eq!(stdout_of(&c.cli(&["keys"])), "chelsea\nchester\nspurs\n");
    assert_eq!(stdout_of(&c.cli(&["keys", "che"])), "chelsea\nchester\n");
    assert_eq!(stdout_of(&c.cli(&["keys", "zzz"])), "");

    assert_eq!(c.cli(&["del", "chelsea"]).code, Some(0));
    let gone = c.cli(&["get", "chelsea"]);
    assert_eq!(gone.code, Some(1), "{}", gone.describe());
    assert_eq!(c.cli(&["del", "chelsea"]).code, Some(0), "deleting a missing key succeeds");
    assert_eq!(stdout_of(&c.cli(&["keys"])), "chester\nspurs\n");

    // Every node applies the same writes.
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let want = c.node_data(leader);
    assert_eq!(want.len(), 2);
    for id in c.ids() {
        assert_eq!(c.node_data(id), want, "node {id} holds the leader's data");
    }
    assert_eq!(stdout_of(&c.cli(&["get", "--stale", "spurs"])), "lilywhites\n");
}

#[test]
fn status_shows_every_node_and_one_leader() {
    let c = Cluster::start(Opts::default());
    let (leader, term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);

    // `raft-supervisor status --json`: the object DESIGN.md describes.
    let out = c.sup_ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    let nodes = v["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), 5);
    assert!(v["partitions"].as_array().expect("partitions array").is_empty());
    for (i, n) in nodes.iter().enumerate() {
        for field in
            ["id", "pid", "process", "role", "term", "leader", "commit", "applied", "last_index", "snapshot_index"]
        {
            assert!(n.get(field).is_some(), "node row {i} lacks `{field}`: {n}");
        }
        assert_eq!(n["process"], "running", "{n}");
        assert!(n["pid"].as_u64().is_some(), "{n}");
    }
    // The supervisor polls the nodes, so its view of the leader may lag a little.
    c.wait("the supervisor to show the leader", LEADER_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        let leaders: Vec<_> = st.nodes.iter().filter(|n| n.role == "leader").collect();
        (leaders.len() == 1 && leaders[0].id == leader && leaders[0].term == Some(term)).then_some(())
    });

    // The human tables of both binaries.
    let table = c.sup_ok(&["status"]).stdout;
    assert!(table.contains("leader"), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("running")).count(), 5, "{table}");
    let cli = c.cli(&["status"]);
    assert_eq!(cli.code, Some(0), "{}", cli.describe());
    assert!(cli.stdout.contains("leader"), "{}", cli.describe());
}
