//! `raft-supervisor delay` and `loss`: which nodes get which network levers. The
//! supervisor remembers the levers it was asked for ([`Desired`]) and keeps each running
//! node's in step, as it does for partitions: a node that restarts (with none) gets
//! them again, and `heal` clears them all.

use crate::core::NodeId;
use raft_wire::levers::NetLevers;
use std::collections::BTreeMap;

/// The nodes a lever command names: `1,2`, `leader`, `all` (the default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSet {
    All,
    Leader,
    Ids(Vec<NodeId>),
}

impl std::str::FromStr for NodeSet {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeSet, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(NodeSet::All);
        }
        if s.eq_ignore_ascii_case("leader") {
            return Ok(NodeSet::Leader);
        }
        let mut ids = Vec::new();
        for part in s.split(',') {
            let id = part
                .trim()
                .parse::<NodeId>()
                .map_err(|_| format!("`{s}` is not a list of nodes: write 1,2 or leader or all"))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(NodeSet::Ids(ids))
    }
}

/// `1,2,3`.
pub fn show_ids(ids: &[NodeId]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// The levers the supervisor keeps each node at (absent: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    per_node: BTreeMap<NodeId, NetLevers>,
}

impl Desired {
    pub fn get(&self, id: NodeId) -> NetLevers {
        self.per_node.get(&id).copied().unwrap_or_default()
    }

    /// Sets a delay (and jitter) and/or a loss on `ids` (empty: every node of `all`),
    /// leaving the lever not given as it was. Checked as a whole before anything changes.
    /// Returns the line to print.
    pub fn apply(
        &mut self,
        ids: &[NodeId],
        all: &[NodeId],
        delay: Option<(u64, u64)>,
        loss_ppm: Option<u32>,
    ) -> Result<String, String> {
        if let Some(bad) = ids.iter().find(|id| !all.contains(id)) {
            return Err(format!("no node {bad}: node ids are {}", show_ids(all)));
        }
        let ids = if ids.is_empty() { all } else { ids };
        let mut next = self.per_node.clone();
        for &id in ids {
            let mut l = self.get(id);
            if let Some((delay_us, jitter_us)) = delay {
                (l.delay_us, l.jitter_us) = (delay_us, jitter_us);
            }
            if let Some(ppm) = loss_ppm {
                l.loss_ppm = ppm;
            }
            l.check()?;
            if l.is_off() {
                next.remove(&id);
            } else {
                next.insert(id, l);
            }
        }
        self.per_node = next;
        Ok(format!("network levers: {}", self.summary(all)))
    }

    /// Forgets every lever; whether there were any.
    pub fn clear(&mut self) -> bool {
        let any = !self.per_node.is_empty();
        self.per_node.clear();
        any
    }

    /// `delay 200ms on nodes 1,2; loss 10% on node 3; none on nodes 4,5`: nodes with the
    /// same levers grouped, those without last.
    pub fn summary(&self, all: &[NodeId]) -> String {
        let mut groups: Vec<(NetLevers, Vec<NodeId>)> = Vec::new();
        for &id in all {
            let l = self.get(id);
            match groups.iter_mut().find(|(g, _)| *g == l) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((l, vec![id])),
            }
        }
        groups.sort_by_key(|(l, _)| l.is_off());
        if groups.len() == 1 {
            return format!("{} on every node", groups[0].0);
        }
        let on = |ids: &[NodeId]| {
            if ids.len() == 1 {
                format!("node {}", ids[0])
            } else {
                format!("nodes {}", show_ids(ids))
            }
        };
        groups.iter().map(|(l, ids)| format!("{l} on {}", on(ids))).collect::<Vec<_>>().join("; ")
    }

    pub fn is_empty(&self) -> bool {
        self.per_node.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_sets_parse() {
        assert_eq!("all".parse(), Ok(NodeSet::All));
        assert_eq!("Leader".parse(), Ok(NodeSet::Leader));
        assert_eq!("2,1,2".parse(), Ok(NodeSet::Ids(vec![1, 2])));
        assert!("1,,2".parse::<NodeSet>().unwrap_err().contains("write 1,2 or leader"));
        assert!("x".parse::<NodeSet>().is_err());
    }

    #[test]
    fn levers_combine_per_node_and_clear() {
        let all = [1, 2, 3];
        let mut d = Desired::default();
        assert_eq!(d.apply(&[], &all, Some((200_000, 0)), None).unwrap(), "network levers: delay 200ms on every node");
        let line = d.apply(&[2], &all, None, Some(100_000)).unwrap();
        assert_eq!(line, "network levers: delay 200ms on nodes 1,3; delay 200ms, loss 10% on node 2");
        let mut d2 = Desired::default();
        let line = d2.apply(&[3], &all, Some((1_000_000, 0)), None).unwrap();
        assert_eq!(line, "network levers: delay 1s on node 3; none on nodes 1,2", "levers first, the rest last");
        assert_eq!(d.get(2), NetLevers { delay_us: 200_000, jitter_us: 0, loss_ppm: 100_000 });
        // `delay off` keeps the loss.
        d.apply(&[], &all, Some((0, 0)), None).unwrap();
        assert_eq!(d.get(2), NetLevers { loss_ppm: 100_000, ..Default::default() });
        assert_eq!(d.get(1), NetLevers::default());
        assert!(d.clear());
        assert!(d.is_empty() && !d.clear());
    }

    #[test]
    fn bad_levers_change_nothing() {
        let all = [1, 2, 3];
        let mut d = Desired::default();
        d.apply(&[1], &all, Some((100, 0)), None).unwrap();
        let before = d.clone();
        assert!(d.apply(&[1], &all, Some((100, 200)), None).unwrap_err().contains("jitter"));
        assert!(d.apply(&[4], &all, None, Some(1)).unwrap_err().contains("no node 4"));
        assert_eq!(d, before);
    }
}
