//! `raft-cli chaos`: concurrent clients while the supervisor kills, pauses and partitions
//! nodes; the recorded history must be linearizable and every node must catch up.
//!
//! Runs 20 s by default to keep `cargo test` quick; `E2E_FULL=1` runs the full 60 s.

use raft_e2e::*;
use std::time::Duration;

#[test]
fn chaos_history_is_linearizable_and_all_nodes_recover() {
    let secs: u64 = if std::env::var_os("E2E_FULL").is_some_and(|v| v == "1") { 60 } else { 20 };
    let c = Cluster::start(Opts::default());
    let duration = format!("{secs}s");
    let history = c.dir.join("chaos-history.json");
    let mut cmd = std::process::Command::new(&bins().cli);
    cmd.arg("--config").arg(&c.config).args(["chaos", "--duration", &duration, "--history"]).arg(&history);
    // Duration, then up to 30 s to settle, then the check.
    let out = run_limited(&mut cmd, Duration::from_secs(secs + 180));
    println!("{}", out.stdout); // the report, shown with --nocapture
    assert_eq!(out.code, Some(0), "chaos failed:\n{}\n{}", out.describe(), c.dump());
    assert!(out.stdout.contains("verdict: linearizable"), "{}", out.describe());
    assert!(out.stdout.contains("caught up: yes"), "{}", out.describe());
    let faults: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("faults: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fault count: {}", out.describe()));
    assert!(faults > 0, "chaos injected faults: {}", out.describe());
    assert!(history.is_file(), "the history was written");
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    c.assert_one_leader_per_term();
}
