//! Golden interaction scripts (tests/scripts/*): a small language over the in-memory test
//! cluster. Regenerate the expected output with `UPDATE_GOLDENFILES=1 cargo test -p
//! raft-core --test golden` and review the diff like code.
//!
//! Commands:
//!
//! ```text
//! cluster nodes=N [prevote=BOOL] [checkquorum=BOOL] [chunk=BYTES] [max_entries=N] [inflight=N] [seed=N]
//! campaign ID                 start an election at ID now (its timer fired)
//! tick [n=N] [ID...] [nodeliver]
//!                             tick the nodes (default: all) N times, delivering messages
//!                             until the network is quiet after each tick (unless nodeliver)
//! deliver [from=ID] [to=ID]   deliver the queued messages (optionally only some) once
//! stabilize                   deliver until the network is quiet
//! drop [from=ID] [to=ID]      lose queued messages
//! partition ID...             cut the given nodes off from the others; heal undoes it
//! crash ID / restart ID       lose everything not persisted / start from the disk
//! put [ID] K V                propose K=V at ID (default: the leader)
//! read ID RID                 ReadIndex request RID at ID
//! transfer ID TO              leadership transfer from ID to TO
//! compact ID                  snapshot ID's state machine at its applied index
//! add-node ID                 start node ID with an empty disk, outside the configuration
//! change ID add|promote|remove N
//!                             propose one membership change at ID
//! status [ID...] / log [ID...] / kv [ID...] / members [ID...]
//! ```
//!
//! After every command the harness checks Election Safety, State Machine Safety and Log
//! Matching; a violation fails the script.

mod common;
use common::*;
use goldenscript::{Command, Runner};
use raft_core::{MembershipChange, Message, NodeId};
use std::error::Error;
use std::fmt::Write as _;

#[derive(Default)]
struct ClusterRunner {
    cluster: Option<Cluster>,
}

fn ids(cmd: &Command, skip: usize) -> Result<Vec<NodeId>, Box<dyn Error>> {
    let positional = cmd.args.iter().skip(skip).filter(|a| a.key.is_none() && a.value != "nodeliver");
    positional.map(|a| Ok(a.value.parse::<NodeId>()?)).collect()
}

fn key_u64(cmd: &Command, key: &str) -> Result<Option<u64>, Box<dyn Error>> {
    match cmd.args.iter().find(|a| a.key.as_deref() == Some(key)) {
        Some(a) => Ok(Some(a.value.parse()?)),
        None => Ok(None),
    }
}

fn key_bool(cmd: &Command, key: &str) -> Result<Option<bool>, Box<dyn Error>> {
    match cmd.args.iter().find(|a| a.key.as_deref() == Some(key)) {
        Some(a) => Ok(Some(a.value.parse()?)),
        None => Ok(None),
    }
}

impl Runner for ClusterRunner {
    fn run(&mut self, cmd: &Command) -> Result<String, Box<dyn Error>> {
        if cmd.name == "cluster" {
            let n = key_u64(cmd, "nodes")?.ok_or("nodes= missing")?;
            let prevote = key_bool(cmd, "prevote")?;
            let checkquorum = key_bool(cmd, "checkquorum")?;
            let chunk = key_u64(cmd, "chunk")?;
            let max_entries = key_u64(cmd, "max_entries")?;
            let inflight = key_u64(cmd, "inflight")?;
            let seed = key_u64(cmd, "seed")?;
            let mut c = Cluster::new(n, |cfg| {
                if let Some(v) = prevote {
                    cfg.pre_vote = v;
                }
                if let Some(v) = checkquorum {
                    cfg.check_quorum = v;
                }
                if let Some(v) = chunk {
                    cfg.snapshot_chunk_bytes = v as usize;
                }
                if let Some(v) = max_entries {
                    cfg.max_entries_per_append = v as usize;
                }
                if let Some(v) = inflight {
                    cfg.max_inflight_appends = v as usize;
                }
                if let Some(v) = seed {
                    cfg.seed = v;
                }
            });
            c.verbose = true;
            let mut out = String::new();
            for id in 1..=n {
                writeln!(out, "{}", c.status_line(id))?;
            }
            self.cluster = Some(c);
            return Ok(out);
        }
        let c = self.cluster.as_mut().ok_or("no cluster: start with `cluster nodes=N`")?;
        let all = c.ids.clone();
        let mut out = String::new();
        match cmd.name.as_str() {
            "campaign" => {
                for id in ids(cmd, 0)? {
                    c.node_mut(id).campaign();
                }
                c.process_all();
            }
            "tick" => {
                let n = key_u64(cmd, "n")?.unwrap_or(1);
                let mut who = ids(cmd, 0)?;
                if who.is_empty() {
                    who = all.clone();
                }
                let deliver = !cmd.args.iter().any(|a| a.key.is_none() && a.value == "nodeliver");
                for _ in 0..n {
                    for &id in &who {
                        c.tick(id);
                    }
                    if deliver {
                        c.stabilize();
                    } else {
                        c.process_all();
                    }
                }
            }
            "deliver" | "drop" => {
                let from = key_u64(cmd, "from")?;
                let to = key_u64(cmd, "to")?;
                let pick = |m: &Message| from.is_none_or(|f| m.from == f) && to.is_none_or(|t| m.to == t);
                let (picked, rest): (Vec<Message>, Vec<Message>) = c.network.drain(..).partition(|m| pick(m));
                if cmd.name == "drop" {
                    for m in &picked {
                        writeln!(c.out, "{m}  [dropped]")?;
                    }
                    c.network.extend(rest);
                } else {
                    c.network.extend(picked);
                    c.deliver_round(None);
                    // Messages not picked stay queued, ahead of the new ones.
                    let new: Vec<Message> = c.network.drain(..).collect();
                    c.network.extend(rest);
                    c.network.extend(new);
                }
            }
            "stabilize" => c.stabilize(),
            "partition" => {
                let group = ids(cmd, 0)?;
                c.partition(&group);
                writeln!(out, "cut {:?} from the rest", group)?;
            }
            "heal" => c.heal(),
            "crash" => {
                for id in ids(cmd, 0)? {
                    c.crash(id);
                    writeln!(out, "n{id} crashed")?;
                }
            }
            "restart" => {
                for id in ids(cmd, 0)? {
                    c.restart(id);
                    writeln!(out, "{}", c.status_line(id))?;
                }
                c.process_all();
            }
            "put" => {
                let args: Vec<&str> = cmd.args.iter().map(|a| a.value.as_str()).collect();
                let (id, k, v) = match args.as_slice() {
                    [id, k, v] => (id.parse::<NodeId>()?, *k, *v),
                    [k, v] => (c.leader().ok_or("no leader")?, *k, *v),
                    _ => return Err("put [ID] K V".into()),
                };
                match c.put(id, k, v) {
                    Ok(i) => writeln!(out, "n{id}: proposed {k}={v} at index {i}")?,
                    Err(e) => writeln!(out, "n{id}: put refused: {e}")?,
                }
                c.process_all();
            }
            "read" => {
                let a = ids(cmd, 0)?;
                let [id, rid] = a[..] else { return Err("read ID RID".into()) };
                match c.node_mut(id).read_index(rid) {
                    Ok(()) => writeln!(out, "n{id}: read id={rid} started")?,
                    Err(e) => writeln!(out, "n{id}: read refused: {e}")?,
                }
                c.process_all();
            }
            "transfer" => {
                let a = ids(cmd, 0)?;
                let [id, to] = a[..] else { return Err("transfer ID TO".into()) };
                if let Err(e) = c.node_mut(id).transfer_leadership(to) {
                    writeln!(out, "n{id}: transfer refused: {e}")?;
                }
                c.process_all();
            }
            "compact" => {
                for id in ids(cmd, 0)? {
                    c.compact(id);
                }
            }
            "add-node" => {
                for id in ids(cmd, 0)? {
                    c.add_node(id);
                    writeln!(out, "{}", c.status_line(id))?;
                }
            }
            "change" => {
                let args: Vec<&str> = cmd.args.iter().map(|a| a.value.as_str()).collect();
                let [id, kind, n] = args[..] else { return Err("change ID add|promote|remove N".into()) };
                let (id, n) = (id.parse::<NodeId>()?, n.parse::<NodeId>()?);
                let change = match kind {
                    "add" => MembershipChange::AddLearner(n),
                    "promote" => MembershipChange::Promote(n),
                    "remove" => MembershipChange::Remove(n),
                    other => return Err(format!("unknown change {other}").into()),
                };
                match c.change(id, change) {
                    Ok(i) => writeln!(out, "n{id}: proposed {change} at index {i}")?,
                    Err(e) => writeln!(out, "n{id}: change refused: {e}")?,
                }
            }
            "status" | "log" | "kv" | "members" => {
                let mut who = ids(cmd, 0)?;
                if who.is_empty() {
                    who = all.clone();
                }
                for id in who {
                    let line = match cmd.name.as_str() {
                        "status" => c.status_line(id),
                        "log" => c.log_line(id),
                        "members" => c.members_line(id),
                        _ => format!(
                            "n{id}: {}",
                            c.nodes[&id].kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
                        ),
                    };
                    writeln!(out, "{line}")?;
                }
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        c.assert_logs_match();
        let mut s = c.take_output();
        s.push_str(&out);
        Ok(s)
    }
}

/// One test per script; `every_script_has_a_test` keeps the list complete.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/", stringify!($name));
                goldenscript::run(&mut ClusterRunner::default(), path).expect("goldenscript failed");
            }
        )*
    };
}

scripts!(
    election,
    election_split_vote,
    leader_partitioned_minority,
    lagging_follower_snapshot,
    leadership_transfer,
    prevote_rejoin,
    check_quorum_step_down,
    read_index,
    crash_restart,
    fast_backtracking,
    membership_add_promote,
    membership_remove_leader,
    membership_truncated_change,
);

#[test]
fn every_script_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts");
    for entry in std::fs::read_dir(dir).expect("scripts dir") {
        let name = entry.expect("entry").file_name().into_string().expect("utf8 name");
        assert!(SCRIPTS.contains(&name.as_str()), "tests/scripts/{name} is not listed in scripts!()");
    }
}
