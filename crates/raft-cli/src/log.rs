//! `raft-cli log N` and `raft-cli status --peers`: what a learner cannot see from the
//! outside. `log` asks node N itself (its own socket, not the leader) for a page of its
//! log and marks each entry applied, committed or uncommitted, and where the snapshot
//! cut the log; `status --peers` prints the leader's view of each follower's replication.

use crate::client::Cluster;
use crate::commands::{render_table, Output};
use crate::{EXIT_UNAVAILABLE, EXIT_USAGE};
use base64::Engine as _;
use raft_core::{NodeId, RoleKind};
use raft_wire::logview::{EntryKind, LogPage, Shown, ShownOp};
use raft_wire::{Request, Response};
use std::time::{Duration, Instant};

/// Entries shown when `--limit` is not given: one screen.
pub const DEFAULT_LOG_LIMIT: u32 = 20;

/// `raft-cli log N [--from I] [--limit K] [--json]`.
pub fn log(cluster: &Cluster, node: NodeId, from: Option<u64>, limit: u32, json: bool, timeout: Duration) -> Output {
    let Some(path) = cluster.endpoint(node).filter(|_| cluster.socket(node).is_some()) else {
        let ids: Vec<String> = cluster.nodes.iter().map(|(id, _)| id.to_string()).collect();
        return Output::fail(EXIT_USAGE, format!("no node {node}: the nodes are {}", ids.join(", ")));
    };
    let unreachable = |why: String| {
        Output::fail(
            EXIT_UNAVAILABLE,
            format!("node {node} does not answer at {} ({why}); is it running? see `raft-supervisor status`", path),
        )
    };
    let deadline = Instant::now() + timeout;
    let mut conn = match cluster.dial(node, timeout) {
        Ok(c) => c,
        Err(e) => return unreachable(e.to_string()),
    };
    let page = match conn.call(Request::Log { from, limit }, deadline) {
        Ok(Response::Log(page)) => page,
        Ok(Response::Invalid { reason }) => return Output::fail(EXIT_USAGE, reason),
        Ok(other) => {
            return Output::fail(
                EXIT_UNAVAILABLE,
                format!("node {node} sent {other:?} instead of its log; is it an older raft-node?"),
            )
        }
        Err(e) => return unreachable(e.to_string()),
    };
    if json {
        Output::ok(format!("{}\n", page_json(node, &page)))
    } else {
        Output::ok(render_page(node, from, &page))
    }
}

/// applied, committed or uncommitted.
fn state(page: &LogPage, index: u64) -> &'static str {
    if index <= page.applied {
        "applied"
    } else if index <= page.commit {
        "committed"
    } else {
        "uncommitted"
    }
}

/// The table `raft-cli log` prints.
pub fn render_page(node: NodeId, from: Option<u64>, page: &LogPage) -> String {
    let mut out = format!(
        "node {node}: log {}..{}, commit={} applied={} snapshot={}\n",
        page.first_index, page.last_index, page.commit, page.applied, page.snapshot_index
    );
    let asked_below = from.is_some_and(|f| f <= page.snapshot_index);
    let shows_first = page.entries.first().is_some_and(|e| e.index == page.first_index);
    if page.snapshot_index > 0 && (asked_below || shows_first) {
        out.push_str(&format!(
            "-- entries 1..{} are in the snapshot at index={} term={}: compacted, no longer in the log\n",
            page.snapshot_index, page.snapshot_index, page.snapshot_term
        ));
    }
    if page.entries.is_empty() {
        out.push_str("(no entries here)\n");
        return out;
    }
    let mut rows = vec![["index", "term", "state", "entry"].map(String::from).to_vec()];
    for e in &page.entries {
        rows.push(vec![e.index.to_string(), e.term.to_string(), state(page, e.index).into(), describe(&e.kind)]);
    }
    out.push_str(&render_table(&rows));
    if page.more {
        let next = page.entries.last().map_or(page.first_index, |e| e.index + 1);
        out.push_str(&format!("-- more: raft-cli log {node} --from {next}\n"));
    }
    out
}

/// `set "k" = "v"`, `del "k"`, `cas "k" "old" -> "new"`, `no-op`, `configuration: voters
/// n1,n2,n3 learners n4`; with the session.
pub fn describe(kind: &EntryKind) -> String {
    match kind {
        EntryKind::Noop => "no-op (new leader's first entry)".into(),
        EntryKind::Write { session, seq, op } => {
            let op = match op {
                ShownOp::Set { key, value } => format!("set {} = {}", show(key), show(value)),
                ShownOp::Delete { key } => format!("del {}", show(key)),
                ShownOp::Cas { key, expected: Some(old), new } => {
                    format!("cas {} {} -> {}", show(key), show(old), show(new))
                }
                ShownOp::Cas { key, expected: None, new } => format!("cas {} absent -> {}", show(key), show(new)),
                ShownOp::Redis { name, keys, value } => {
                    let keys: Vec<String> = keys.iter().map(show).collect();
                    match value {
                        Some(v) => format!("{name} {} = {}", keys.join(" "), show(v)),
                        None => format!("{name} {}", keys.join(" ")),
                    }
                }
            };
            format!("{op}  (session {session:x} seq {seq})")
        }
        EntryKind::Undecodable { bytes, reason } => format!("undecodable command of {bytes} bytes: {reason}"),
        EntryKind::Config(m) => format!("configuration: {m}"),
    }
}

/// The valid UTF-8 prefix of a cut value (a cut may split a character), if the bytes
/// are text.
fn text(s: &Shown) -> Option<&str> {
    match std::str::from_utf8(&s.bytes) {
        Ok(t) => Some(t),
        Err(e) if s.is_cut() && e.error_len().is_none() => std::str::from_utf8(&s.bytes[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

/// A key or value on one line: quoted and escaped (`"a\nb"`), bytes as `b"\xff"`, and a
/// cut one says its length.
pub fn show(s: &Shown) -> String {
    let body = match text(s) {
        Some(t) => format!("{t:?}"),
        None => format!("b\"{}\"", s.bytes.escape_ascii()),
    };
    if s.is_cut() {
        format!("{body}... ({} bytes)", s.len)
    } else {
        body
    }
}

fn shown_json(s: &Shown) -> serde_json::Value {
    let mut v = serde_json::json!({ "len": s.len, "cut": s.is_cut() });
    match text(s) {
        Some(t) => v["text"] = t.into(),
        None => v["base64"] = base64::engine::general_purpose::STANDARD.encode(&s.bytes).into(),
    }
    v
}

/// One object: the cursors, and the entries with their state.
pub fn page_json(node: NodeId, page: &LogPage) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = page
        .entries
        .iter()
        .map(|e| {
            let mut v = serde_json::json!({ "index": e.index, "term": e.term, "state": state(page, e.index) });
            match &e.kind {
                EntryKind::Noop => v["kind"] = "noop".into(),
                EntryKind::Write { session, seq, op } => {
                    v["kind"] = "write".into();
                    v["session"] = (*session).into();
                    v["seq"] = (*seq).into();
                    match op {
                        ShownOp::Set { key, value } => {
                            v["op"] = "set".into();
                            v["key"] = shown_json(key);
                            v["value"] = shown_json(value);
                        }
                        ShownOp::Delete { key } => {
                            v["op"] = "del".into();
                            v["key"] = shown_json(key);
                        }
                        ShownOp::Cas { key, expected, new } => {
                            v["op"] = "cas".into();
                            v["key"] = shown_json(key);
                            v["expected"] = expected.as_ref().map_or(serde_json::Value::Null, shown_json);
                            v["new"] = shown_json(new);
                        }
                        ShownOp::Redis { name, keys, value } => {
                            v["op"] = name.as_str().into();
                            v["keys"] = keys.iter().map(shown_json).collect::<Vec<_>>().into();
                            v["value"] = value.as_ref().map_or(serde_json::Value::Null, shown_json);
                        }
                    }
                }
                EntryKind::Undecodable { bytes, reason } => {
                    v["kind"] = "undecodable".into();
                    v["bytes"] = (*bytes).into();
                    v["reason"] = reason.as_str().into();
                }
                EntryKind::Config(m) => {
                    v["kind"] = "config".into();
                    v["voters"] = m.voters.clone().into();
                    v["learners"] = m.learners.clone().into();
                }
            }
            v
        })
        .collect();
    serde_json::json!({
        "node": node,
        "first_index": page.first_index,
        "last_index": page.last_index,
        "commit": page.commit,
        "applied": page.applied,
        "snapshot_index": page.snapshot_index,
        "snapshot_term": page.snapshot_term,
        "more": page.more,
        "entries": entries,
    })
}

/// `raft-cli status --peers`: the leader's replication progress for each follower.
pub fn peers(cluster: &Cluster, timeout: Duration) -> Output {
    let per_node = timeout.min(Duration::from_secs(1));
    let leader = cluster
        .nodes
        .iter()
        .filter_map(|(id, _)| cluster.node_status(*id, per_node).ok())
        .filter(|s| s.role == RoleKind::Leader)
        .max_by_key(|s| s.term);
    let Some(st) = leader else {
        return Output::fail(
            EXIT_UNAVAILABLE,
            "no leader answered (an election may be under way); try again, or see `raft-cli status`",
        );
    };
    let mut out = format!(
        "leader n{} term={} commit={} last={}: each follower's replication\n",
        st.id, st.term, st.commit, st.last_index
    );
    let mut rows = vec![["peer", "match", "next", "behind", "state", "active"].map(String::from).to_vec()];
    for p in &st.progress {
        rows.push(vec![
            p.id.to_string(),
            p.match_index.to_string(),
            p.next_index.to_string(),
            st.last_index.saturating_sub(p.match_index).to_string(),
            p.state.clone(),
            if p.recently_active { "yes" } else { "no" }.into(),
        ]);
    }
    out.push_str(&render_table(&rows));
    Output::ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_wire::logview::LogEntryView;

    #[test]
    fn values_are_escaped_and_cut_ones_say_their_length() {
        assert_eq!(show(&Shown::of(b"rules")), "\"rules\"");
        assert_eq!(show(&Shown::of(b"a\nb\"c")), "\"a\\nb\\\"c\"");
        assert_eq!(show(&Shown::of(&[0xff, 0, b'x'])), "b\"\\xff\\x00x\"");
        let long = "é".repeat(100); // 200 bytes: the cut at 64 falls between characters or not
        let s = show(&Shown::of(long.as_bytes()));
        assert!(s.starts_with("\"éé") && s.ends_with("... (200 bytes)"), "{s}");
    }

    #[test]
    fn a_page_marks_applied_committed_uncommitted_and_the_snapshot() {
        let e = |index, kind| LogEntryView { index, term: 2, kind };
        let set = EntryKind::Write {
            session: 0xab,
            seq: 1,
            op: ShownOp::Set { key: Shown::of(b"chelsea"), value: Shown::of(b"rules") },
        };
        let page = LogPage {
            first_index: 6,
            last_index: 8,
            commit: 7,
            applied: 6,
            snapshot_index: 5,
            snapshot_term: 1,
            entries: vec![e(6, EntryKind::Noop), e(7, set.clone()), e(8, set)],
            more: false,
        };
        let text = render_page(3, None, &page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "node 3: log 6..8, commit=7 applied=6 snapshot=5");
        assert!(lines[1].contains("entries 1..5 are in the snapshot at index=5 term=1"), "{text}");
        assert!(lines[3].starts_with("6      2     applied      no-op"), "{text}");
        assert!(lines[4].contains("committed    set \"chelsea\" = \"rules\"  (session ab seq 1)"), "{text}");
        assert!(lines[5].contains("uncommitted"), "{text}");
        let v = page_json(3, &page);
        assert_eq!(v["entries"][1]["state"], "committed");
        assert_eq!(v["entries"][1]["key"]["text"], "chelsea");
        assert_eq!(v["entries"][0]["kind"], "noop");
        // Binary values travel as base64, cut ones say so.
        let bin = EntryKind::Write {
            session: 1,
            seq: 2,
            op: ShownOp::Set { key: Shown::of(b"k"), value: Shown::of(&[0xff; 100]) },
        };
        let page = LogPage { entries: vec![e(6, bin)], ..page };
        let v = page_json(3, &page);
        let value = &v["entries"][0]["value"];
        assert_eq!((value["len"].as_u64(), value["cut"].as_bool()), (Some(100), Some(true)));
        assert_eq!(value["base64"].as_str().map(str::len), Some(88), "64 bytes of base64: {value}");
        assert!(value.get("text").is_none());
    }
}
