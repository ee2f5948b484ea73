//! A node killed while 20,000 writes happen comes back and catches up by snapshot
//! (§7: the leader has compacted the entries it missed, so only InstallSnapshot can
//! bring it up to date), ending with the leader's applied index and the leader's data.

use raft_e2e::*;
use std::time::Duration;

const WRITES: u64 = 20_000;
/// Distinct keys, and bytes per value: the snapshot holds about 4 MiB, so it travels in
/// several InstallSnapshot chunks (512 KiB each), not one.
const KEYS: u64 = 4_000;
const VALUE_BYTES: u64 = 1_024;

#[test]
fn killed_node_catches_up_by_snapshot_after_20000_writes() {
    // Compaction every 1,000 entries, so the leader's log no longer holds what the killed
    // node missed. No fsync: the test kills processes, not the machine, and is faster.
    let c = Cluster::start(Opts { fsync: false, snapshot_entries: 1_000, ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let victim = c.ids().into_iter().find(|&i| i != leader).expect("a follower");

    // 20,000 writes from raft-cli bench (pipelined, many connections), in the background.
    let bench = {
        let cli = bins().cli.clone();
        let config = c.config.clone();
        std::thread::spawn(move || {
            let mut cmd = std::process::Command::new(cli);
            cmd.arg("--config").arg(config).args([
                "--timeout",
                "10s",
                "bench",
                "--requests",
                &WRITES.to_string(),
                "--read-ratio",
                "0",
                "--clients",
                "8",
                "--keys",
                &KEYS.to_string(),
                "--value-size",
                &VALUE_BYTES.to_string(),
                "--json",
            ]);
            run_limited(&mut cmd, Duration::from_secs(300))
        })
    };
    // Kill the victim once the writes are well under way.
    c.wait("the first writes of the bench", Duration::from_secs(60), || {
        (c.node_status(leader)?.commit >= 2_000).then_some(())
    });
    let before = c.node_status(victim).expect("victim answers");
    c.kill(victim);
    let out = bench.join().expect("bench thread");
    assert_eq!(out.code, Some(0), "bench: {}", out.describe());
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("bench --json: {e}: {}", out.describe()));

    let ok = report["ok"].as_u64().unwrap_or(0);
    assert!(ok >= WRITES * 95 / 100, "most of the {WRITES} writes succeeded: {report}");

    // The leader compacted past everything the victim has.
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != victim).collect();
    c.wait_converged(&others, CONVERGE_TIMEOUT);
    let (leader, _) = c.wait_leader(&others, LEADER_TIMEOUT);
    let lead = c.node_status(leader).expect("leader answers");
    assert!(
        lead.snapshot_index > before.last_index,
        "the leader's snapshot ({}) covers the victim's log ({}), so catch-up needs a snapshot",
        lead.snapshot_index,
        before.last_index
    );
    assert!(lead.commit >= before.commit + WRITES / 2, "the writes were committed: {lead:?} bench: {report}");

    c.start_node(victim);
    let applied = c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let caught = c.node_status(victim).expect("victim answers");
    let lead = c.node_status(leader).expect("leader answers");
    assert_eq!(caught.applied, lead.applied, "same applied index as the leader");
    assert_eq!(caught.applied, applied);
    assert!(caught.snapshot_index > before.last_index, "the victim holds a snapshot: {caught:?}");
    c.wait("`snapshot installed` in the victim's log", LEADER_TIMEOUT, || {
        c.read_log(victim).contains("snapshot installed").then_some(())
    });

    let want = c.node_data(leader);
    assert!(want.len() as u64 > KEYS * 9 / 10, "the bench wrote its keys: {} keys", want.len());
    let bytes: usize = want.values().map(Vec::len).sum();
    assert!(bytes as u64 > 3 * (1 << 20), "the snapshot spans several chunks: {bytes} bytes of values");
    assert_eq!(c.node_data(victim), want, "the victim holds the leader's data");
    c.assert_one_leader_per_term();
}
