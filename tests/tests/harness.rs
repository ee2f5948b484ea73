//! The harness keeps its promise: nothing a test started outlives it, also when the test
//! fails. (That nodes die with a SIGKILLed supervisor, DESIGN.md's "no orphans", is
//! checked with the supervisor's tests: `nodes_die_with_a_killed_supervisor`.)

use raft_e2e::*;
use std::time::Duration;

fn all_gone(pids: &[u32]) -> bool {
    pids.iter().all(|&p| !alive(p))
}

#[test]
fn drop_stops_every_process() {
    let c = Cluster::start(Opts::default());
    let mut pids = c.node_pids();
    assert_eq!(pids.len(), 5);
    pids.push(c.supervisor_pid());
    drop(c);
    wait_for("every process of the cluster to be gone", Duration::from_secs(10), || all_gone(&pids).then_some(()));
}

#[test]
fn a_failing_test_leaves_nothing_behind() {
    let seen = std::sync::Mutex::new((Vec::new(), std::path::PathBuf::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = Cluster::start(Opts::default());
        let mut pids = c.node_pids();
        pids.push(c.supervisor_pid());
        *seen.lock().unwrap() = (pids, c.dir.clone());
        panic!("a test fails with the cluster running");
    }));
    assert!(result.is_err());
    let (pids, dir) = seen.into_inner().unwrap();
    assert_eq!(pids.len(), 6);
    wait_for("every process of the failed test to be gone", Duration::from_secs(10), || all_gone(&pids).then_some(()));
    // A failing test keeps its directory for a post-mortem; this one was on purpose.
    assert!(dir.join("supervisor.out").is_file(), "the directory is kept for reading");
    std::fs::remove_dir_all(&dir).expect("remove the kept directory");
}
