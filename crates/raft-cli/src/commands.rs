//! The one-shot commands: set, get, del, cas, keys, status. Each returns what to print
//! and the exit code, so tests can call them without a process.

use crate::client::{Client, ClientError, Cluster};
use crate::{EXIT_MISMATCH, EXIT_OK, EXIT_UNAVAILABLE};
use raft_core::RoleKind;
use raft_wire::{ReadOp, Reply, WriteOp, MAX_KEYS_PER_LISTING};
use std::time::Duration;

/// What a command produced: bytes for stdout, at most one line for stderr, an exit code.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Option<String>,
    pub code: i32,
}

impl Output {
    pub fn ok(text: impl Into<Vec<u8>>) -> Output {
        Output { stdout: text.into(), stderr: None, code: EXIT_OK }
    }

    pub fn fail(code: i32, message: impl Into<String>) -> Output {
        Output { stdout: Vec::new(), stderr: Some(message.into()), code }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl From<ClientError> for Output {
    fn from(e: ClientError) -> Output {
        Output::fail(e.exit_code(), e.to_string())
    }
}

fn unexpected(reply: Reply) -> Output {
    Output::fail(EXIT_UNAVAILABLE, format!("the cluster sent an unexpected reply {reply:?}; check the node versions"))
}

fn show_value(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "absent".into(),
    }
}

pub fn set(client: &mut Client, key: &str, value: &str) -> Output {
    match client.write(WriteOp::Set { key: key.into(), value: value.as_bytes().to_vec() }) {
        Ok(Reply::Done) => Output::ok("OK\n"),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Prints the value alone (its bytes, then a newline); exit 1 if not found.
pub fn get(client: &mut Client, key: &str, stale: bool) -> Output {
    match client.read(ReadOp::Get { key: key.into() }, stale) {
        Ok(Reply::Value(Some(mut v))) => {
            v.push(b'\n');
            Output::ok(v)
        }
        Ok(Reply::Value(None)) => {
            Output::fail(EXIT_MISMATCH, format!("key {key:?} not found; set it with `raft-cli set`"))
        }
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Deleting a missing key succeeds (exit 0) and says so.
pub fn del(client: &mut Client, key: &str) -> Output {
    match client.write(WriteOp::Delete { key: key.into() }) {
        Ok(Reply::Deleted { existed: true }) => Output::ok("OK\n"),
        Ok(Reply::Deleted { existed: false }) => Output::ok("OK (key was not there)\n"),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// `expected` None: swap only if the key is absent. Exit 1 on mismatch, naming the value found.
pub fn cas(client: &mut Client, key: &str, expected: Option<&str>, new: &str) -> Output {
    let op = WriteOp::Cas {
        key: key.into(),
        expected: expected.map(|e| e.as_bytes().to_vec()),
        new: new.as_bytes().to_vec(),
    };
    match client.write(op) {
        Ok(Reply::Cas { ok: true, .. }) => Output::ok("OK\n"),
        Ok(Reply::Cas { ok: false, current }) => Output::fail(
            EXIT_MISMATCH,
            format!(
                "cas mismatch: {key:?} is {} (expected {}); read it and retry with the current value",
                show_value(&current),
                show_value(&expected.map(|e| e.as_bytes().to_vec()))
            ),
        ),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// One key a line, sorted. A listing is capped at `MAX_KEYS_PER_LISTING`; hitting the cap
/// is said on stderr (exit 0 still: the keys printed are right).
pub fn keys(client: &mut Client, prefix: &str, stale: bool) -> Output {
    match client.read(ReadOp::Keys { prefix: prefix.into(), limit: MAX_KEYS_PER_LISTING }, stale) {
        Ok(Reply::Keys(mut keys)) => {
            keys.sort();
            let mut out = Output::ok(keys.iter().flat_map(|k| format!("{k}\n").into_bytes()).collect::<Vec<u8>>());
            if keys.len() as u64 >= MAX_KEYS_PER_LISTING as u64 {
                out.stderr = Some(format!(
                    "listing stopped at {MAX_KEYS_PER_LISTING} keys; use a longer prefix to see the rest"
                ));
            }
            out
        }
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Each node's status as a table. Exit 3 if no node answers.
pub fn status(cluster: &Cluster, timeout: Duration) -> Output {
    // Status is a quick local answer: a node that takes longer than a second is stuck.
    let per_node = timeout.min(Duration::from_secs(1));
    let mut rows = vec![[
        "node",
        "pid",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "last",
        "snapshot",
        "connected",
        "isolated",
    ]
    .map(String::from)
    .to_vec()];
    let mut answered = 0;
    let list = |ids: &[u64]| {
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        }
    };
    for (id, _) in &cluster.nodes {
        match cluster.node_status(*id, per_node) {
            Ok(s) => {
                answered += 1;
                let role = match s.role {
                    RoleKind::Leader => "leader",
                    RoleKind::Follower => "follower",
                    RoleKind::Candidate => "candidate",
                    // As in `raft-supervisor status` (DESIGN.md lists four roles): a pre-candidate
                    // is a candidate that has not bumped its term yet.
                    RoleKind::PreCandidate => "candidate",
                };
                rows.push(vec![
                    id.to_string(),
                    s.pid.to_string(),
                    role.into(),
                    s.term.to_string(),
                    s.leader.map_or("-".into(), |l| l.to_string()),
                    s.commit.to_string(),
                    s.applied.to_string(),
                    s.last_index.to_string(),
                    s.snapshot_index.to_string(),
                    list(&s.connected),
                    list(&s.isolated),
                ]);
            }
            Err(e) => {
                let mut row = vec![id.to_string(), "-".into(), "unreachable".into()];
                row.extend(std::iter::repeat_n("-".to_string(), 8));
                rows.push(row);
                let _ = e;
            }
        }
    }
    let mut out = Output::ok(render_table(&rows));
    if answered == 0 {
        out.code = EXIT_UNAVAILABLE;
        out.stderr = Some(if cluster.supervisor_reachable() {
            "no node answered; the supervisor is up: see `raft-supervisor status` and `raft-supervisor logs N`".into()
        } else {
            format!("no node answered at {}; start the cluster with `raft-supervisor up`", cluster.socket_pattern())
        });
    }
    out
}

/// Left-aligned columns separated by two spaces.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().enumerate().map(|(c, s)| format!("{s:<w$}", w = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
