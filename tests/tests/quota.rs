//! The state-size quota, end to end (issue 12): a cluster with `quota_bytes = 4096` is
//! filled with `raft-cli set` until a write is refused. The refusal is exit 3 with one
//! line naming the quota and the key that raises it; nothing acknowledged is lost, the
//! refused write is not applied, a delete still works and makes room again, and the
//! cluster stays available throughout (reads, bench).

use raft_e2e::*;
use std::time::Duration;

const QUOTA_BYTES: u64 = 4096;
/// Value per key: 200 bytes, plus a 4-byte key, so about 20 keys fit.
const VALUE_BYTES: usize = 200;

#[test]
fn a_write_past_the_quota_is_refused_with_exit_3_and_nothing_is_lost() {
    let c = Cluster::start(Opts { nodes: 3, quota_bytes: QUOTA_BYTES, ..Opts::default() });
    let value = "v".repeat(VALUE_BYTES);
    let mut acked = Vec::new();
    let (refused_key, refused) = (0..100)
        .find_map(|i| {
            let key = format!("k{i:03}");
            // A long timeout: a refusal must come at once, not when the retries run out.
            let out = c.cli(&["--timeout", "30s", "set", &key, &value]);
            if out.code == Some(0) {
                acked.push(key);
                None
            } else {
                Some((key, out))
            }
        })
        .expect("the quota is reached within 100 writes");
    let fit = QUOTA_BYTES as usize / (4 + VALUE_BYTES);
    assert_eq!(acked.len(), fit, "every write within the quota succeeds, the first past it is refused");

    // Exit 3, at once, one line on stderr with the figures and the way out.
    assert_eq!(refused.code, Some(3), "{}", refused.describe());
    assert!(refused.elapsed < Duration::from_secs(10), "refused at once, not retried: {}", refused.describe());
    assert_eq!(refused.stdout, "", "{}", refused.describe());
    let line = refused.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {}", refused.describe());
    for needle in ["write refused", "quota of 4.0 KiB", "4096 bytes", "quota_bytes", "delete keys"] {
        assert!(line.contains(needle), "`{needle}` missing from: {line}");
    }
    let held = acked.len() * (4 + VALUE_BYTES);
    assert!(line.contains(&format!("it holds {held} bytes")), "the state's size is named: {line}");

    // Not applied, and nothing acknowledged is lost.
    let missing = c.cli(&["get", &refused_key]);
    assert_eq!(missing.code, Some(1), "the refused write was not applied: {}", missing.describe());
    let check_acked = |keys: &[String]| {
        for key in keys {
            let got = c.cli(&["get", key]);
            assert_eq!(got.code, Some(0), "{}", got.describe());
            assert_eq!(got.stdout.trim_end(), value, "{key}");
        }
    };
    check_acked(&acked);

    // Still available: reads and a bench run (its writes of new keys are refused and
    // counted as failed, not retried for ever).
    let bench = c.cli(&["bench", "--requests", "200", "--clients", "2", "--read-ratio", "0.5", "--json"]);
    assert_eq!(bench.code, Some(0), "{}", bench.describe());
    let report: serde_json::Value = serde_json::from_str(&bench.stdout).expect("bench --json prints one object");
    let refused_n = report["errors"]["refused"].as_u64().expect("errors.refused");
    assert!(refused_n > 0, "bench writes of new keys are refused: {report}");
    assert!(report["failed"].as_u64().unwrap() >= refused_n, "refusals count as failed: {report}");
    assert!(report["ok"].as_u64().unwrap() > 0, "reads go on: {report}");

    // A delete passes a full quota, and makes room for a small write again.
    let del = c.cli(&["del", &acked[0]]);
    assert_eq!(del.code, Some(0), "{}", del.describe());
    let small = c.cli(&["set", "small", "x"]);
    assert_eq!(small.code, Some(0), "{}", small.describe());
    check_acked(&acked[1..]);
    let gone = c.cli(&["get", &acked[0]]);
    assert_eq!(gone.code, Some(1), "{}", gone.describe());

    // Every node holds the same data: the quota never touched what was applied.
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let data = c.node_data(c.ids()[0]);
    assert_eq!(data.len(), acked.len(), "{:?}", data.keys());
    for id in c.ids() {
        assert_eq!(c.node_data(id), data, "node {id}");
    }
    let st = c.sup_status().expect("status");
    assert!(st.nodes.iter().all(|n| n.process == "running"), "no node restarted or crashed: {st:?}");
}
