//! What a learner sees of the log, end to end (issue 19): a restarted follower's
//! catch-up lines, a deposed leader's truncated entries and "stepped down" line after a
//! partition, the shutdown line on SIGTERM, `raft-cli log N` and `raft-cli status --peers`.

use raft_e2e::*;
use raft_wire::WriteOp;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn set(key: &str, value: &str) -> WriteOp {
    WriteOp::Set { key: key.into(), value: value.as_bytes().to_vec() }
}

/// Waits until node `id`'s log has a line containing every one of `parts`; returns it.
fn wait_line(c: &Cluster, id: NodeId, parts: &[&str]) -> String {
    c.wait(&format!("n{id} logs a line with {parts:?}"), WAIT, || {
        c.read_log(id).lines().find(|l| parts.iter().all(|p| l.contains(p))).map(str::to_string)
    })
}

#[test]
fn a_restarted_follower_says_it_appends_and_catches_up() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), WAIT);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.kill(follower);
    let mut client = c.client(Duration::from_secs(10));
    for k in 0..60 {
        client.write(set(&format!("k{k}"), "v")).expect("a majority is up");
    }
    let commit = c.node_status(leader).expect("the leader answers").commit;
    c.start_node(follower);
    let line = wait_line(&c, follower, &["caught up with n", "at index="]);
    let at: u64 = line.rsplit("index=").next().unwrap().trim().parse().unwrap();
    assert!(at >= commit, "caught up at {at}, the leader had committed {commit} before the restart: {line}");
    let log = c.read_log(follower);
    let appended: Vec<&str> = log.lines().filter(|l| l.contains(" appended entr")).collect();
    assert!(!appended.is_empty(), "no appended line:\n{log}");
    assert!(appended.iter().any(|l| l.contains(&format!("from n{leader}"))), "{appended:?}");
    // Aggregated: 60 writes in a burst are a handful of lines, not one per entry.
    assert!(appended.len() <= 10, "{} appended lines for 60 writes:\n{log}", appended.len());
    // The line format: timestamp, node, term.
    let re_ok = line.split(' ').collect::<Vec<_>>();
    assert!(re_ok[0].ends_with('Z') && re_ok[1] == format!("n{follower}") && re_ok[2].starts_with('t'), "{line}");
}

#[test]
fn a_partitioned_leader_truncates_its_uncommitted_writes_after_heal() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (old, _) = c.wait_leader(&c.ids(), WAIT);
    let rest: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != old).collect();
    c.partition(&[&[old]]);
    // Writes to the cut-off leader are appended to its log but can never commit.
    let mut lonely = c.client_only(&[old], Duration::from_millis(300));
    for k in 0..3 {
        assert!(lonely.write(set(&format!("lost{k}"), "x")).is_err(), "a minority cannot commit");
    }
    let (new, _) = c.wait_leader(&rest, WAIT);
    c.client_only(&rest, Duration::from_secs(10)).write(set("kept", "y")).expect("the majority commits");
    c.heal();
    let line = wait_line(&c, old, &["truncated uncommitted entries", &format!("leader n{new} has others there")]);
    assert!(line.contains(" from term "), "{line}");
    c.wait_converged(&c.ids(), WAIT);
    let data = c.node_data(old);
    assert!(data.contains_key("kept") && !data.keys().any(|k| k.starts_with("lost")), "{data:?}");
}

#[test]
fn a_paused_leader_says_it_saw_the_higher_term() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (old, term) = c.wait_leader(&c.ids(), WAIT);
    c.pause(old);
    let rest: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != old).collect();
    let (_, new_term) = c.wait_leader(&rest, WAIT);
    c.resume(old);
    let line = wait_line(&c, old, &["stepped down: saw term", &format!("(was leader of term {term})")]);
    assert!(new_term > term);
    assert!(line.contains(" from n"), "the sender of the higher term is named: {line}");
}

#[test]
fn sigterm_logs_what_is_on_disk() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    c.client(Duration::from_secs(10)).write(set("a", "1")).unwrap();
    let (leader, _) = c.wait_leader(&c.ids(), WAIT);
    let id = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.wait_converged(&c.ids(), WAIT);
    c.sup_ok(&["restart", &id.to_string()]);
    let line = wait_line(&c, id, &["shutting down: last index", "fsynced, commit"]);
    assert!(line.contains("applied"), "{line}");
}

#[test]
fn raft_cli_log_shows_entries_with_markers_and_the_snapshot_boundary() {
    let c = Cluster::start(Opts { nodes: 3, snapshot_entries: 20, ..Opts::default() });
    let mut client = c.client(Duration::from_secs(10));
    for k in 0..30 {
        client.write(set(&format!("key{k:02}"), &format!("value {k}\nline two"))).unwrap();
    }
    client.write(WriteOp::Delete { key: "key00".into() }).unwrap();
    let last = c.wait_converged(&c.ids(), WAIT);
    let snap = c.wait("a snapshot on n1", WAIT, || c.node_status(1).filter(|s| s.snapshot_index > 0));
    let out = c.cli(&["log", "1", "--limit", "5"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("node 1: log {}..{last}, commit={last}", snap.snapshot_index + 1)),
        "{}",
        out.stdout
    );
    assert!(lines[1].starts_with("index  term  state"), "{}", out.stdout);
    assert_eq!(lines.len(), 2 + 5, "a header and five entries:\n{}", out.stdout);
    assert!(
        lines[6].starts_with(&last.to_string()) && lines[6].contains("applied") && lines[6].contains("del \"key00\""),
        "{}",
        out.stdout
    );
    assert!(lines[5].contains("set \"key29\" = \"value 29\\nline two\""), "newline escaped: {}", out.stdout);
    // From index 1: the compacted part is said, not shown.
    let out = c.cli(&["log", "1", "--from", "1", "--limit", "3"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.contains(&format!("entries 1..{} are in the snapshot", snap.snapshot_index)), "{}", out.stdout);
    assert!(out.stdout.contains("-- more: raft-cli log 1 --from"), "{}", out.stdout);
    // JSON for scripts.
    let out = c.cli(&["log", "2", "--json", "--limit", "2"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert_eq!(v["entries"][1]["op"], "del");
    assert_eq!(v["entries"][0]["value"]["text"], "value 29\nline two");
    // Bad input: a clear line and exit 2.
    for args in [&["log", "9"][..], &["log", "1", "--limit", "0"], &["log", "1", "--limit", "1001"], &["log", "x"]] {
        let out = c.cli(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.describe());
        assert!(!out.stderr.is_empty());
    }
    // A node that is down: exit 3, and the message says what to do.
    c.kill(3);
    let out = c.cli(&["log", "3"]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains("node 3 does not answer") && out.stderr.contains("raft-supervisor status"),
        "{}",
        out.stderr
    );
}

#[test]
fn status_peers_shows_each_followers_progress() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    c.client(Duration::from_secs(10)).write(set("a", "1")).unwrap();
    let last = c.wait_converged(&c.ids(), WAIT);
    let (leader, term) = c.wait_leader(&c.ids(), WAIT);
    let out = c.cli(&["status", "--peers"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("leader n{leader} term={term}")), "{}", out.stdout);
    assert!(lines[1].starts_with("peer  match  next  behind  state"), "{}", out.stdout);
    let rows: Vec<Vec<&str>> = lines[2..].iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    for r in &rows {
        assert_ne!(r[0], leader.to_string());
        assert_eq!(r[1], last.to_string(), "match = the converged last index: {}", out.stdout);
        assert_eq!(r[2], (last + 1).to_string());
        assert_eq!(r[4], "replicate");
    }
    // A follower that is down falls behind in the table.
    let down = rows[0][0].parse::<NodeId>().unwrap();
    c.kill(down);
    c.client(Duration::from_secs(10)).write(set("b", "2")).unwrap();
    let out = c.cli(&["status", "--peers"]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{down} ")))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .to_string();
    let behind: u64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(behind >= 1, "{}", out.stdout);
}
