//! What the web view asks the nodes themselves, beside the supervisor's status: the
//! messages each sent since the last look (`Request::Traffic`) and the terms of its last
//! [`LOG_CELLS`] entries (`Request::Log`), over one client connection per node kept open
//! between looks. Both answers are bounded (a ring, a page), so a look costs each node the
//! same whatever its log or load; nodes the supervisor does not report running are not
//! asked, and a node that does not answer within [`NODE_CALL_TIMEOUT`] is skipped this time.
//! Nodes are dialled through the configured transport (Unix socket, TCP or TLS) by the
//! client library's [`Cluster`], the one place that knows where node N listens.

use crate::core::NodeId;
use raft_cli::client::Cluster;
use raft_cli::conn::NodeConn;
use raft_config::ClusterConfig;
use raft_wire::logview::{EntryKind, LogEntryView, ShownOp};
use raft_wire::supervisor::ClusterStatus;
use raft_wire::traffic::MessageSummary;
use raft_wire::{Request, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Log cells drawn per node: the newest entries, as many as fit the page's width.
pub const LOG_CELLS: u32 = 28;
/// How long one node may take to answer one look (it answers at once unless frozen).
pub const NODE_CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// Messages sent to the page per look at most: beyond this they are sampled evenly and
/// the rest counted, so a benchmark's thousands a second do not flood the browser.
pub const MAX_TRAFFIC_PER_FRAME: usize = 300;

/// One log cell: index, term, and a short label (`set chelsea`, `no-op`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell(pub u64, pub u64, pub String);

/// What one look at the nodes found.
#[derive(Debug, Default, Serialize)]
pub struct NodesLook {
    /// Messages sent since the last look, by time, at most [`MAX_TRAFFIC_PER_FRAME`].
    pub traffic: Vec<MessageSummary>,
    /// Messages sent since the last look that are not in `traffic` (sampled away, or gone
    /// from a node's ring before it was asked).
    pub traffic_missed: u64,
    /// Each answering node's newest log cells, oldest first.
    pub logs: BTreeMap<NodeId, Vec<Cell>>,
    /// Each answering node's term and its vote in it.
    pub votes: BTreeMap<NodeId, (u64, Option<NodeId>)>,
}

/// The connections and, per node, the last message number seen.
#[derive(Default)]
pub struct NodeProbe {
    /// How to reach the nodes, made from the config at the first look.
    cluster: Option<Cluster>,
    conns: BTreeMap<NodeId, NodeConn>,
    /// None until the first answer: the backlog a node holds when first seen is not news.
    last_seq: BTreeMap<NodeId, u64>,
    /// Each node's cells and the (last index, term) they were read at: the log is only
    /// asked for again when one of them moved, so an idle cluster costs no log reads.
    cells: BTreeMap<NodeId, ((u64, u64), Vec<Cell>)>,
}

impl NodeProbe {
    pub fn look(&mut self, cfg: &ClusterConfig, status: &ClusterStatus) -> NodesLook {
        let mut look = NodesLook::default();
        for row in &status.nodes {
            if row.process != "running" {
                self.conns.remove(&row.id);
                self.cells.remove(&row.id);
                continue;
            }
            let deadline = Instant::now() + NODE_CALL_TIMEOUT;
            let conn = match self.conns.entry(row.id) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let cluster = self.cluster.get_or_insert_with(|| Cluster::from_config(cfg));
                    if cluster.endpoint(row.id).is_none() {
                        // A node added since the last look: its directory names it.
                        cluster.rescan();
                    }
                    match cluster.dial(row.id, NODE_CALL_TIMEOUT) {
                        Ok(c) => v.insert(c),
                        Err(_) => continue,
                    }
                }
            };
            let after = self.last_seq.get(&row.id).copied();
            let traffic = conn.call(Request::Traffic { after_seq: after.unwrap_or(u64::MAX) }, deadline);
            let at = (row.last_index.unwrap_or(0), row.term.unwrap_or(0));
            let log = match self.cells.get(&row.id) {
                Some((read_at, cells)) if *read_at == at => Ok(cells.clone()),
                _ => match conn.call(Request::Log { from: None, limit: LOG_CELLS }, deadline) {
                    Ok(Response::Log(page)) => Ok(page.entries.iter().map(cell).collect()),
                    _ => Err(()),
                },
            };
            match (traffic, log) {
                (Ok(Response::Traffic(page)), Ok(cells)) => {
                    look.votes.insert(row.id, (page.term, page.vote));
                    if after.is_some() {
                        look.traffic_missed += page.missed;
                        look.traffic.extend(page.messages);
                    }
                    self.last_seq.insert(row.id, page.last_seq);
                    self.cells.insert(row.id, (at, cells.clone()));
                    look.logs.insert(row.id, cells);
                }
                // An old node that knows no Traffic, a timeout, a closed connection:
                // reconnect next time.
                _ => {
                    self.conns.remove(&row.id);
                    self.cells.remove(&row.id);
                }
            }
        }
        look.traffic.sort_by_key(|m| (m.ts_us, m.from, m.seq));
        let (kept, dropped) = sample(std::mem::take(&mut look.traffic), MAX_TRAFFIC_PER_FRAME);
        look.traffic = kept;
        look.traffic_missed += dropped;
        look
    }
}

/// At most `max` of `items`, evenly spread; and how many were left out.
pub fn sample<T>(items: Vec<T>, max: usize) -> (Vec<T>, u64) {
    let n = items.len();
    if n <= max {
        return (items, 0);
    }
    let kept: Vec<T> =
        items.into_iter().enumerate().filter(|(i, _)| i * max / n != (i + 1) * max / n).map(|(_, x)| x).collect();
    assert!(kept.len() <= max, "sampling keeps at most {max}");
    let dropped = (n - kept.len()) as u64;
    (kept, dropped)
}

fn cell(e: &LogEntryView) -> Cell {
    let text = |b: &[u8]| String::from_utf8_lossy(b).chars().take(16).collect::<String>();
    let label = match &e.kind {
        EntryKind::Noop => "no-op".to_string(),
        EntryKind::Write { op: ShownOp::Set { key, value }, .. } => {
            format!("set {} {}", text(&key.bytes), text(&value.bytes))
        }
        EntryKind::Write { op: ShownOp::Delete { key }, .. } => format!("del {}", text(&key.bytes)),
        EntryKind::Write { op: ShownOp::Cas { key, .. }, .. } => format!("cas {}", text(&key.bytes)),
        EntryKind::Write { op: ShownOp::Redis { name, keys, .. }, .. } => {
            format!("{name} {}", keys.first().map(|k| text(&k.bytes)).unwrap_or_default())
        }
        EntryKind::Config(_) => "configuration".to_string(),
        EntryKind::Undecodable { .. } => "(undecodable)".to_string(),
    };
    Cell(e.index, e.term, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_at_most_max_spread_out() {
        assert_eq!(sample((0..5).collect(), 10), ((0..5).collect(), 0));
        let (kept, dropped) = sample((0..1000).collect::<Vec<u32>>(), 300);
        assert_eq!((kept.len(), dropped), (300, 700));
        assert!(kept.windows(2).all(|w| w[1] - w[0] <= 4), "evenly spread: {kept:?}");
        assert!(*kept.last().unwrap() >= 996, "reaches the newest");
        let (kept, dropped) = sample((0..301).collect::<Vec<u32>>(), 300);
        assert_eq!((kept.len(), dropped), (300, 1));
    }
}
