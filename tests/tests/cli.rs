//! A fresh cluster elects a leader, and every client command works from the real
//! `raft-cli` binary, with the exit codes of DESIGN.md. (`status` of both binaries on a
//! fresh cluster is checked with the supervisor's tests: `up_elects_a_leader_and_status_reports_it`.)

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
