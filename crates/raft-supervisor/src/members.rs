//! Which nodes the supervisor runs, kept in `<dir>/members` so that nodes added at run
//! time (`raft-supervisor add`) and removed ones (`remove N`) survive a supervisor
//! restart, and so that every command (and `raft-cli`) knows the ids.
//!
//! The file holds one line per node whose fate differs from the bootstrap: `6 added`,
//! `3 removed`. Without the file, the supervisor runs the bootstrap nodes `1..=nodes`.
//! Who votes is not kept here: the cluster's configuration lives in its Raft log; this is
//! only what the supervisor starts.

use crate::core::NodeId;
use raft_config::{ClusterConfig, MAX_NODE_ID};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

/// Largest `members` file read: 64 nodes at a dozen bytes a line, with room to spare.
const MAX_MEMBERS_FILE_BYTES: u64 = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Added,
    Removed,
}

/// The supervisor's node set: bootstrap nodes plus added ones, minus removed ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    bootstrap: u64,
    fates: BTreeMap<NodeId, Fate>,
}

pub fn path(cfg: &ClusterConfig) -> PathBuf {
    cfg.dir.join("members")
}

impl Members {
    /// The set recorded in `<dir>/members` (the bootstrap nodes when there is none). A
    /// file that cannot be read or parsed is an error naming the file and line.
    pub fn load(cfg: &ClusterConfig) -> Result<Members, String> {
        let p = path(cfg);
        let text = match std::fs::metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
            Ok(m) if m.len() > MAX_MEMBERS_FILE_BYTES => {
                return Err(format!("{} is over {MAX_MEMBERS_FILE_BYTES} bytes: not ours", p.display()))
            }
            Ok(_) => std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        };
        Members::parse(cfg.nodes, &text).map_err(|e| format!("{}: {e}", p.display()))
    }

    pub fn parse(bootstrap: u64, text: &str) -> Result<Members, String> {
        let mut fates = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = || format!("line {}: `{line}` is not `<id> added` or `<id> removed`", n + 1);
            let (id, fate) = line.split_once(' ').ok_or_else(bad)?;
            let id: NodeId = id.parse().map_err(|_| bad())?;
            if !ClusterConfig::is_node_id(id) {
                return Err(format!("line {}: node id {id} is not in 1..={MAX_NODE_ID}", n + 1));
            }
            let fate = match fate.trim() {
                "added" => Fate::Added,
                "removed" => Fate::Removed,
                _ => return Err(bad()),
            };
            fates.insert(id, fate);
        }
        Ok(Members { bootstrap, fates })
    }

    fn render(&self) -> String {
        self.fates
            .iter()
            .map(|(id, f)| format!("{id} {}\n", if *f == Fate::Added { "added" } else { "removed" }))
            .collect()
    }

    /// Writes the file durably (temporary name, fsync, rename, directory fsync): a crash
    /// leaves the old set or the new one.
    pub fn save(&self, cfg: &ClusterConfig) -> io::Result<()> {
        use std::io::Write;
        let p = path(cfg);
        let tmp = cfg.dir.join(".members.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(self.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)?;
        std::fs::File::open(&cfg.dir)?.sync_all()
    }

    /// The nodes the supervisor runs, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        let boot = (1..=self.bootstrap).filter(|id| self.fates.get(id) != Some(&Fate::Removed));
        let added = self.fates.iter().filter(|(_, f)| **f == Fate::Added).map(|(id, _)| *id);
        let mut ids: Vec<NodeId> = boot.chain(added).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn is_removed(&self, id: NodeId) -> bool {
        self.fates.get(&id) == Some(&Fate::Removed)
    }

    /// The id for a new node: one past every id ever used (removed ones included, so a
    /// node's directory and log are never mistaken for another's), if any is left.
    pub fn next_id(&self) -> Option<NodeId> {
        let used = self.fates.keys().copied().chain([self.bootstrap]).max().unwrap_or(0);
        Some(used + 1).filter(|&id| ClusterConfig::is_node_id(id))
    }

    pub fn add(&mut self, id: NodeId) {
        self.fates.insert(id, Fate::Added);
    }

    pub fn remove(&mut self, id: NodeId) {
        self.fates.insert(id, Fate::Removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_is_bootstrap_plus_added_minus_removed_and_round_trips() {
        let mut m = Members::parse(5, "").unwrap();
        assert_eq!(m.ids(), [1, 2, 3, 4, 5]);
        assert_eq!(m.next_id(), Some(6));
        m.add(6);
        m.remove(3);
        assert_eq!(m.ids(), [1, 2, 4, 5, 6]);
        assert!(m.is_removed(3));
        assert_eq!(m.next_id(), Some(7));
        m.remove(6);
        assert_eq!(m.next_id(), Some(7), "a removed id is never reused");
        assert_eq!(Members::parse(5, &m.render()).unwrap(), m);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert!(Members::parse(3, "4 added\n5 maybe\n").unwrap_err().starts_with("line 2:"));
        assert!(Members::parse(3, "x added").unwrap_err().contains("line 1"));
        assert!(Members::parse(3, "65 added").unwrap_err().contains("not in 1..=64"));
        let mut m = Members::parse(3, "").unwrap();
        for id in 4..=MAX_NODE_ID {
            m.add(id);
        }
        assert_eq!(m.next_id(), None, "no id left past MAX_NODE_ID");
    }

    #[test]
    fn saved_sets_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: dir.path().to_path_buf(), nodes: 3, ..ClusterConfig::default() };
        assert_eq!(Members::load(&cfg).unwrap().ids(), [1, 2, 3]);
        let mut m = Members::load(&cfg).unwrap();
        m.add(4);
        m.remove(1);
        m.save(&cfg).unwrap();
        assert_eq!(Members::load(&cfg).unwrap().ids(), [2, 3, 4]);
        std::fs::write(path(&cfg), "4 gone\n").unwrap();
        assert!(Members::load(&cfg).unwrap_err().contains("members: line 1"));
    }
}
