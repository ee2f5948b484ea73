//! Command-line parsing and dispatch. `main.rs` calls [`main`].

use crate::client;
use crate::core::NodeId;
use clap::{Parser, Subcommand};
use raft_config::ClusterConfig;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Success.
pub const EXIT_OK: i32 = 0;
/// The command was refused or failed (the message says why).
pub const EXIT_FAILED: i32 = 1;
/// Bad arguments or config.
pub const EXIT_USAGE: i32 = 2;
/// No supervisor is running for the cluster directory.
pub const EXIT_UNAVAILABLE: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "raft-supervisor",
    version,
    about = "Starts, watches and breaks a local Raft cluster of raft-node processes",
    after_help = "Config lookup: --config PATH, then $RAFT_CONFIG, then ./cluster.toml, then built-in defaults \
                  (cluster dir ${TMPDIR:-/tmp}/raft-cluster-<uid>)."
)]
pub struct Cli {
    /// Cluster config file (flat TOML; see cluster.example.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Cmd {
    /// Start every node and watch them; prints node events and the elected leader.
    Up {
        /// Run in the background (output to <dir>/supervisor.log); return once a leader is elected.
        #[arg(long)]
        detach: bool,
    },
    /// Stop every node (SIGTERM, then SIGKILL after the grace period) and the supervisor.
    Down,
    /// One row per node: pid, process state, role, term, leader, commit, applied, last index, snapshot.
    Status {
        /// Print one JSON object for scripts.
        #[arg(long)]
        json: bool,
    },
    /// SIGKILL a node; it stays down until `start`.
    Kill { node: NodeId },
    /// Start a stopped, crashed or failed node.
    Start { node: NodeId },
    /// Stop a node (SIGTERM, SIGKILL after the grace period) and start it again.
    Restart { node: NodeId },
    /// Freeze a node with SIGSTOP.
    Pause { node: NodeId },
    /// Thaw a paused node with SIGCONT.
    Resume { node: NodeId },
    /// Split the network: `partition 1,2 3,4,5`. Nodes in different groups cannot exchange
    /// messages; a node in no group is cut off from all.
    Partition {
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Undo `partition`: every node can reach every other again.
    Heal,
    /// Print a node's log (<dir>/node-N/node.log).
    Logs {
        node: NodeId,
        /// Keep printing what is appended, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
    },
    /// Delete the nodes' data (WALs, snapshots, logs). Refuses while the cluster runs.
    Wipe,
}

/// A failure to report: one line on stderr and an exit code.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { code: EXIT_USAGE, message: message.into() }
    }
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError { code: EXIT_FAILED, message: message.into() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses `args` (program name first), runs the command, and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("raft-supervisor: {}", e.message);
            e.code
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let (cfg, source) = ClusterConfig::load(cli.config.as_deref()).map_err(|e| CliError::usage(e.to_string()))?;
    match cli.command {
        Cmd::Up { detach } => crate::shell::up(cfg, source, detach),
        Cmd::Logs { node, follow } => {
            check_node(&client::effective_config(&cfg), node)?;
            client::logs(&cfg, node, follow)
        }
        Cmd::Wipe => client::wipe(&cfg),
        cmd => client::command(&cfg, cmd),
    }
}

/// Refuses node ids outside the cluster (exit 2).
pub fn check_node(cfg: &ClusterConfig, id: NodeId) -> Result<(), CliError> {
    if cfg.is_node(id) {
        Ok(())
    } else {
        Err(CliError::usage(format!("no node {id}: node ids are 1..={}", cfg.nodes)))
    }
}

/// Parses partition groups like `1,2 3,4,5` for a cluster of `nodes`; see [`normalize_groups`].
pub fn parse_groups<S: AsRef<str>>(args: &[S], nodes: u64) -> Result<Vec<Vec<NodeId>>, String> {
    let mut groups = Vec::new();
    for arg in args {
        let arg = arg.as_ref();
        let mut group = Vec::new();
        for part in arg.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("group `{arg}` has an empty node id; write groups like `1,2 3,4,5`"));
            }
            let id: NodeId = part
                .parse()
                .map_err(|_| format!("`{part}` in group `{arg}` is not a node id; write groups like `1,2 3,4,5`"))?;
            if !(1..=nodes).contains(&id) {
                return Err(format!("no node {id} (in group `{arg}`): node ids are 1..={nodes}"));
            }
            group.push(id);
        }
        groups.push(group);
    }
    normalize_groups(&groups, nodes)
}

/// Checks partition groups and puts them in canonical form: nodes named in no group become
/// groups of their own (cut off from all), so the result covers every node exactly once;
/// each group is sorted. One group holding everyone is no partition.
pub fn normalize_groups(groups: &[Vec<NodeId>], nodes: u64) -> Result<Vec<Vec<NodeId>>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for g in groups {
        if g.is_empty() {
            return Err("a partition group is empty".into());
        }
        for &id in g {
            if !(1..=nodes).contains(&id) {
                return Err(format!("no node {id}: node ids are 1..={nodes}"));
            }
            if !seen.insert(id) {
                return Err(format!("node {id} is named more than once; each node belongs to at most one group"));
            }
        }
        let mut g = g.clone();
        g.sort_unstable();
        out.push(g);
    }
    for id in 1..=nodes {
        if !seen.contains(&id) {
            out.push(vec![id]);
        }
    }
    if out.len() < 2 {
        return Err(
            "one group holding every node is no partition; to reconnect everything use `raft-supervisor heal`".into()
        );
    }
    Ok(out)
}

/// `{1,2} {3,4,5}`.
pub fn show_groups(groups: &[Vec<NodeId>]) -> String {
    groups
        .iter()
        .map(|g| format!("{{{}}}", g.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raft-supervisor").chain(args.iter().copied()))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&["up"]).unwrap().command, Cmd::Up { detach: false });
        assert_eq!(parse(&["up", "--detach"]).unwrap().command, Cmd::Up { detach: true });
        assert_eq!(parse(&["status", "--json"]).unwrap().command, Cmd::Status { json: true });
        assert_eq!(parse(&["kill", "3"]).unwrap().command, Cmd::Kill { node: 3 });
        assert_eq!(parse(&["logs", "2", "-f"]).unwrap().command, Cmd::Logs { node: 2, follow: true });
        assert_eq!(
            parse(&["partition", "1,2", "3,4,5"]).unwrap().command,
            Cmd::Partition { groups: vec!["1,2".into(), "3,4,5".into()] }
        );
        for c in ["down", "heal", "wipe"] {
            parse(&[c]).unwrap();
        }
    }

    #[test]
    fn config_is_global() {
        let cli = parse(&["status", "--config", "/x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        let cli = parse(&["--config", "/y.toml", "kill", "1"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/y.toml")));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [&["kill"][..], &["kill", "x"], &["kill", "-1"], &["partition"], &["frobnicate"], &["up", "--nope"]]
        {
            let e = parse(args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
            assert_eq!(main(["raft-supervisor"].iter().chain(args).map(OsString::from)), EXIT_USAGE, "{args:?}");
        }
    }

    #[test]
    fn node_out_of_range_is_a_usage_error() {
        let cfg = ClusterConfig::from_toml("dir = \"/x\"\nnodes = 5").unwrap();
        assert_eq!(check_node(&cfg, 5), Ok(()));
        let e = check_node(&cfg, 6).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
        assert_eq!(e.message, "no node 6: node ids are 1..=5");
        assert_eq!(check_node(&cfg, 0).unwrap_err().code, EXIT_USAGE);
    }

    #[test]
    fn groups_parse_and_cover_every_node() {
        assert_eq!(parse_groups(&["1,2", "3,4,5"], 5), Ok(vec![vec![1, 2], vec![3, 4, 5]]));
        assert_eq!(parse_groups(&["2,1"], 5), Ok(vec![vec![1, 2], vec![3], vec![4], vec![5]]));
        assert_eq!(parse_groups(&["3"], 3), Ok(vec![vec![3], vec![1], vec![2]]));
        assert_eq!(parse_groups(&[" 1 , 2", "3"], 3), Ok(vec![vec![1, 2], vec![3]]));
        assert_eq!(show_groups(&[vec![1, 2], vec![3, 4, 5]]), "{1,2} {3,4,5}");
    }

    #[test]
    fn group_syntax_errors_are_clear() {
        let err = |args: &[&str]| parse_groups(args, 5).unwrap_err();
        assert!(err(&["1,,2"]).contains("empty node id"));
        assert!(err(&["1,2,"]).contains("empty node id"));
        assert!(err(&[""]).contains("empty node id"));
        assert!(err(&["1,x"]).contains("`x` in group `1,x` is not a node id"));
        assert!(err(&["1-3"]).contains("is not a node id"));
        assert_eq!(err(&["1,6"]), "no node 6 (in group `1,6`): node ids are 1..=5");
        assert_eq!(err(&["0"]), "no node 0 (in group `0`): node ids are 1..=5");
        assert!(err(&["1,2", "2,3"]).contains("node 2 is named more than once"));
        assert!(err(&["1,1"]).contains("more than once"));
        assert!(err(&["1,2,3,4,5"]).contains("heal"));
    }

    #[test]
    fn normalize_checks_what_arrives_over_the_socket() {
        assert_eq!(normalize_groups(&[vec![2, 1]], 3), Ok(vec![vec![1, 2], vec![3]]));
        assert!(normalize_groups(&[vec![]], 3).is_err());
        assert!(normalize_groups(&[vec![4]], 3).is_err());
        assert!(normalize_groups(&[vec![1], vec![1]], 3).is_err());
        assert!(normalize_groups(&[], 1).is_err());
    }
}
