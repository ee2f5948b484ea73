//! The learner's levers of issue 19, end to end: values byte for byte (`set --file`,
//! `set -`, `get --raw`, `get --json`, `keys --json`), faults aimed at a role (`kill
//! leader`), `isolate N`, `partition` with the unnamed nodes together, and `up` saying
//! that it resumes existing data.

use raft_e2e::*;
use raft_wire::supervisor::ClusterStatus;
use std::io::Write;
use std::process::{Command, Stdio};

/// Client timeout for a command that should succeed (an election may be under way).
const OK_TIMEOUT: &str = "10s";

/// What a raft-cli run left, stdout as bytes.
struct RawOut {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// `raft-cli --config <cfg> --timeout 10s ARGS` with `stdin` fed in; stdout kept as bytes.
/// Bounded by raft-cli's own `--timeout`.
fn cli_raw(c: &Cluster, args: &[&str], stdin: Option<&[u8]>) -> RawOut {
    let mut cmd = Command::new(&bins().cli);
    cmd.arg("--config").arg(&c.config).arg("--timeout").arg(OK_TIMEOUT).args(args).env_remove("RAFT_CONFIG");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn raft-cli");
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("piped");
        let bytes = bytes.to_vec();
        // A thread, so a client that stops reading early cannot block us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = child.wait_with_output().expect("wait for raft-cli");
    if let Some(w) = writer {
        let _ = w.join();
    }
    RawOut { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn ok(c: &Cluster, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = cli_raw(c, args, stdin);
    assert_eq!(out.code, Some(0), "raft-cli {args:?}: {}\n{}", out.stderr, c.dump());
    out.stdout
}

/// The peers node `id` says it is cut off from, sorted; None if it does not answer.
fn isolated(c: &Cluster, id: NodeId) -> Option<Vec<NodeId>> {
    let mut v = c.node_status(id)?.isolated;
    v.sort_unstable();
    Some(v)
}

fn leader_in(st: &ClusterStatus) -> Option<NodeId> {
    st.nodes.iter().filter(|n| n.role == "leader").max_by_key(|n| n.term).map(|n| n.id)
}

#[test]
fn binary_and_large_values_round_trip_byte_for_byte() {
    let c = Cluster::start(Opts::default());
    let all: Vec<u8> = (0..=255u8).collect();
    // ~200 KiB that is not UTF-8 and not periodic in a way a bug could hide behind.
    let big: Vec<u8> = (0..200 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file_all = c.dir.join("all.bin");
    let file_big = c.dir.join("big.bin");
    std::fs::write(&file_all, &all).unwrap();
    std::fs::write(&file_big, &big).unwrap();

    for (key, value, file) in [("all-file", &all, &file_all), ("big-file", &big, &file_big)] {
        assert_eq!(ok(&c, &["set", key, "--file", file.to_str().unwrap()], None), b"OK\n");
        assert_eq!(&ok(&c, &["get", key, "--raw"], None), value, "{key} via --file, read with --raw");
    }
    for (key, value) in [("all-stdin", &all), ("big-stdin", &big)] {
        assert_eq!(ok(&c, &["set", key, "-"], Some(value)), b"OK\n");
        assert_eq!(&ok(&c, &["get", key, "--raw"], None), value, "{key} via stdin, read with --raw");
    }
    // The plain get adds exactly one newline; --json carries the bytes as base64.
    let mut with_newline = all.clone();
    with_newline.push(b'\n');
    assert_eq!(ok(&c, &["get", "all-stdin"], None), with_newline);
    let json: serde_json::Value = serde_json::from_slice(&ok(&c, &["get", "all-file", "--json"], None)).unwrap();
    assert_eq!(json["key"], "all-file");
    assert!(json.get("value").is_none(), "not UTF-8: {json}");
    assert_eq!(raft_cli::commands::value_from_json(&json).unwrap(), all);

    // Over the limit: refused before any request, exit 2, naming the limit.
    let file_huge = c.dir.join("huge.bin");
    std::fs::write(&file_huge, vec![1u8; raft_wire::MAX_VALUE_BYTES + 1]).unwrap();
    let out = cli_raw(&c, &["set", "huge", "--file", file_huge.to_str().unwrap()], None);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("262144 bytes (256 KiB)"), "{}", out.stderr);
    let out = cli_raw(&c, &["set", "huge", "-"], Some(&vec![1u8; raft_wire::MAX_VALUE_BYTES + 1]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(cli_raw(&c, &["get", "huge"], None).code, Some(1), "nothing was written");
    // `get ""` is an invalid key, as `set ""` is.
    for args in [&["get", ""][..], &["set", "", "v"]] {
        let out = cli_raw(&c, args, None);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("key must be 1 to"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn json_round_trips_keys_and_values_with_newlines() {
    let c = Cluster::start(Opts::default());
    let key = "multi\nline key";
    let value = "first line\nsecond \"quoted\"\ttab\n";
    assert_eq!(ok(&c, &["set", key, value], None), b"OK\n");
    assert_eq!(ok(&c, &["set", "multi-other", "x"], None), b"OK\n");
    let out = ok(&c, &["get", key, "--json"], None);
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line of JSON: {}", String::from_utf8_lossy(&out));
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json, serde_json::json!({"key": key, "value": value}));
    let out = ok(&c, &["keys", "multi", "--json"], None);
    let keys: Vec<String> = serde_json::from_slice(&out).unwrap();
    assert_eq!(keys, vec![key.to_string(), "multi-other".to_string()]);
    // And the exact bytes with --raw.
    assert_eq!(ok(&c, &["get", key, "--raw"], None), value.as_bytes());
}

#[test]
fn kill_leader_kills_the_leader_and_a_new_one_is_elected() {
    let c = Cluster::start(Opts::default());
    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let out = c.sup_ok(&["kill", "leader"]);
    assert!(out.stdout.contains(&format!("node {old} ")), "kill leader named node {old}: {}", out.describe());
    c.wait(&format!("node {old} stopped"), START_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        st.nodes.iter().any(|n| n.id == old && n.process == "stopped").then_some(())
    });
    let rest: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != old).collect();
    let (new, new_term) = c.wait_leader(&rest, LEADER_TIMEOUT);
    assert!(new != old && new_term > old_term);
    assert_eq!(ok(&c, &["set", "after", "kill"], None), b"OK\n");
    // `logs leader` is the new leader's log.
    let logs = c.sup_ok(&["logs", "leader"]).stdout;
    assert!(logs.contains(&format!("n{new} ")), "{logs}");
    c.sup_ok(&["start", &old.to_string()]);
    c.assert_one_leader_per_term();
}

#[test]
fn no_leader_is_a_clear_error() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    // Two of three down: the last one cannot lead.
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();
    c.kill(follower);
    c.kill(leader);
    c.wait("no node reporting leader", LEADER_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        leader_in(&st).is_none().then_some(())
    });
    let out = c.sup(&["kill", "leader"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("no node is leader right now"), "{}", out.describe());
}

#[test]
fn isolate_cuts_one_node_off_and_the_majority_writes_on() {
    let c = Cluster::start(Opts::default());
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let out = c.sup_ok(&["isolate", "leader"]);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != leader).collect();
    let rest = others.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    assert!(out.stdout.contains(&format!("{{{leader}}} {{{rest}}}")), "{}", out.describe());
    c.wait(&format!("node {leader} cut off from {others:?} and they from it"), START_TIMEOUT, || {
        let theirs_ok = others.iter().all(|&o| isolated(&c, o).is_some_and(|s| s == vec![leader]));
        (isolated(&c, leader)? == others && theirs_ok).then_some(())
    });
    let (new, _) = c.wait_leader(&others, LEADER_TIMEOUT);
    assert_ne!(new, leader);
    assert_eq!(ok(&c, &["set", "while-isolated", "yes"], None), b"OK\n");
    let st = c.sup_status().unwrap();
    assert_eq!(st.partitions, vec![vec![leader], others.clone()]);
    c.sup_ok(&["heal"]);
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    c.assert_one_leader_per_term();
}

#[test]
fn partition_keeps_the_unnamed_nodes_together() {
    let c = Cluster::start(Opts::default());
    let out = c.sup_ok(&["partition", "1,2"]);
    assert!(out.stdout.contains("{1,2} {3,4,5}"), "{}", out.describe());
    c.wait("{1,2} and {3,4,5} cut apart, 3, 4, 5 together", START_TIMEOUT, || {
        let a = [1, 2].iter().all(|&i| isolated(&c, i).is_some_and(|s| s == vec![3, 4, 5]));
        let b = [3, 4, 5].iter().all(|&i| isolated(&c, i).is_some_and(|s| s == vec![1, 2]));
        (a && b).then_some(())
    });
    c.wait_leader(&[3, 4, 5], LEADER_TIMEOUT);
    assert_eq!(ok(&c, &["set", "majority", "345"], None), b"OK\n");
    assert_eq!(c.sup_status().unwrap().partitions, vec![vec![1, 2], vec![3, 4, 5]]);
    c.sup_ok(&["heal"]);
}

#[test]
fn up_on_existing_data_says_so() {
    let mut c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    assert!(!c.supervisor_output().contains("resuming existing data"), "a fresh directory has none");
    assert_eq!(ok(&c, &["set", "old", "data"], None), b"OK\n");
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    c.sup_ok(&["down"]);
    assert!(c.wait_supervisor_exit(START_TIMEOUT).is_some(), "down stops the supervisor");
    let c = c.up();
    let out = c.supervisor_output();
    let line = out.lines().find(|l| l.starts_with("resuming existing data in ")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&format!("in {}: term ", c.dir.display())), "{line}");
    assert!(line.contains("log up to index ") && line.contains("`raft-supervisor wipe`"), "{line}");
    assert_eq!(ok(&c, &["get", "old", "--raw"], None), b"data");
}

#[test]
fn completions_are_scripts_for_each_shell() {
    for (bin, name) in [(&bins().cli, "raft-cli"), (&bins().supervisor, "raft-supervisor")] {
        for shell in ["bash", "zsh", "fish"] {
            let out = run_limited(Command::new(bin).args(["completions", shell]), COMMAND_LIMIT);
            assert_eq!(out.code, Some(0), "{}", out.describe());
            assert!(out.stdout.contains(name) && out.stdout.len() > 200, "{}", out.describe());
        }
    }
}
