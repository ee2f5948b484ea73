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
        /// Also serve the web page (as `raft-supervisor web`) on this port of 127.0.0.1
        /// (8080 when no port is given; 0: any free one); its URL is printed.
        #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8080", conflicts_with = "detach")]
        web: Option<u16>,
    },
    /// Stop every node (SIGTERM, then SIGKILL after the grace period) and the supervisor.
    Down,
    /// One row per node: pid, process state, role, term, leader, commit, applied, last index, snapshot.
    Status {
        /// Print one JSON object for scripts.
        #[arg(long)]
        json: bool,
    },
    /// SIGKILL a node; it stays down until `start`. NODE is an id or `leader`.
    Kill { node: NodeTarget },
    /// Start a stopped, crashed or failed node. NODE is an id or `leader`.
    Start { node: NodeTarget },
    /// Stop a node (SIGTERM, SIGKILL after the grace period) and start it again. NODE is an id or `leader`.
    Restart { node: NodeTarget },
    /// Freeze a node with SIGSTOP. NODE is an id or `leader`.
    Pause { node: NodeTarget },
    /// Thaw a paused node with SIGCONT. NODE is an id or `leader`.
    Resume { node: NodeTarget },
    /// Split the network: `partition 1,2 3,4,5`. Nodes in different groups cannot exchange
    /// messages; the nodes named in no group form one more group together (so `partition
    /// 1,2` is {1,2} against the rest).
    Partition {
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Cut one node (an id or `leader`) off from all others: `partition N` with the rest together.
    Isolate { node: NodeTarget },
    /// Start a new node with the next free id and have the leader add it: it joins as a
    /// learner and is promoted to voter once it has caught up. Prints its id.
    Add,
    /// Remove a node (an id or `leader`) from the configuration, then stop it. One change
    /// at a time: a second one while the first is in progress is refused.
    Remove { node: NodeTarget },
    /// Hand leadership to a node (an id): the leader catches it up, then it takes over.
    Transfer { node: NodeTarget },
    /// Undo `partition`: every node can reach every other again.
    Heal,
    /// Print a node's log (<dir>/node-N/node.log). NODE is an id or `leader`.
    Logs {
        node: NodeTarget,
        /// Keep printing what is appended, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
    },
    /// Delete the nodes' data (WALs, snapshots, logs). Refuses while the cluster runs.
    Wipe,
    /// Print a shell completion script: `source <(raft-supervisor completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Slow the network: NODES (default all; `1,2` or `leader`) hold each outgoing peer
    /// message back DURATION (like 200ms, at most 10s), ± the jitter. `delay off` ends it.
    Delay {
        #[arg(value_name = "DURATION")]
        delay: String,
        /// Vary each message's delay by up to this much either way.
        #[arg(long, value_name = "DURATION")]
        jitter: Option<String>,
        #[arg(value_name = "NODES")]
        nodes: Option<crate::levers::NodeSet>,
    },
    /// Lose messages: NODES (default all; `1,2` or `leader`) drop PERCENT of their outgoing
    /// peer messages (`loss 0` or `loss off` ends it). `heal` clears delay and loss.
    Loss {
        #[arg(value_name = "PERCENT")]
        percent: String,
        #[arg(value_name = "NODES")]
        nodes: Option<crate::levers::NodeSet>,
    },
    /// Slow motion: every running node (and every node started later) ticks FACTOR times
    /// as fast as configured, live: `speed 0.1` slows the cluster tenfold, `speed 1`
    /// returns. FACTOR is in 0.01..=10.
    Speed {
        #[arg(value_parser = parse_speed_arg)]
        factor: u32,
    },
    /// Every node's events and the supervisor's actions merged in the order they happened,
    /// one line each.
    Timeline {
        /// Keep printing new events as they are written, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Only events of the last DURATION (500ms, 90s, 5m, 2h, 1d).
        #[arg(long, value_name = "DURATION", value_parser = parse_since_arg)]
        since: Option<std::time::Duration>,
        /// Only this node's events (and the supervisor's actions that name it).
        #[arg(long, value_name = "N")]
        node: Option<NodeId>,
        /// One JSON object per line: ts_us, source, term, event, text.
        #[arg(long)]
        json: bool,
    },
    /// A live full-screen picture of the cluster: nodes, logs, network, events; keys act on
    /// the cluster (see the help line). `q` leaves.
    Watch,
    /// Serve the live picture as a web page (RaftScope on the real cluster) and print its
    /// URL with an access token; actions on the page need that token.
    Web {
        /// TCP port (0: any free one; the printed URL says which).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on. Keep the default unless others must see the page. On
        /// loopback only requests for this address (or localhost) are answered; on any other
        /// address (0.0.0.0: all) any Host is, and the printed token guards everything but
        /// the page.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
    },
    /// Write <dir>/certs/: a CA, a certificate per node id (1..=N, default `nodes` plus
    /// a few spare ids for `add`) and a client certificate, for transport = "tcp".
    Certs {
        /// Node certificates for ids 1..=N.
        #[arg(long, value_name = "N")]
        nodes: Option<u64>,
        /// Replace existing certificates and keys.
        #[arg(long)]
        force: bool,
    },
}

fn parse_speed_arg(s: &str) -> Result<u32, String> {
    raft_wire::parse_speed(s)
}

fn parse_since_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::timeline::parse_duration(s)
}

/// A node named on the command line: its id, or `leader`, resolved through the
/// supervisor's status (see [`leader_of`]) when the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeTarget {
    Id(NodeId),
    Leader,
}

impl std::str::FromStr for NodeTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeTarget, String> {
        if s.eq_ignore_ascii_case("leader") {
            return Ok(NodeTarget::Leader);
        }
        s.parse().map(NodeTarget::Id).map_err(|_| format!("`{s}` is not a node: give a node id like 3, or `leader`"))
    }
}

impl fmt::Display for NodeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeTarget::Id(id) => write!(f, "{id}"),
            NodeTarget::Leader => f.write_str("leader"),
        }
    }
}

/// The node that reports role leader with the highest term (a deposed leader that has not
/// heard of the new term yet may still say leader, of an older term).
pub fn leader_of(st: &raft_wire::supervisor::ClusterStatus) -> Option<NodeId> {
    st.nodes.iter().filter(|r| r.role == "leader").max_by_key(|r| r.term.unwrap_or(0)).map(|r| r.id)
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
    if let Cmd::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "raft-supervisor", &mut std::io::stdout());
        return Ok(());
    }
    let (cfg, source) = ClusterConfig::load(cli.config.as_deref()).map_err(|e| CliError::usage(e.to_string()))?;
    match cli.command {
        Cmd::Up { detach, web } => crate::shell::up(cfg, source, detach, web),
        Cmd::Logs { node, follow } => {
            let node = client::resolve(&cfg, node)?;
            check_node(&client::effective_config(&cfg), node)?;
            client::logs(&cfg, node, follow)
        }
        Cmd::Wipe => client::wipe(&cfg),
        Cmd::Timeline { follow, since, node, json } => {
            if let Some(n) = node {
                check_node(&client::effective_config(&cfg), n)?;
            }
            crate::timeline_cmd::run(&client::effective_config(&cfg), follow, since, node, json)
        }
        Cmd::Watch => crate::watch::run(&cfg),
        Cmd::Web { port, bind } => crate::web::run(&cfg, &bind, port),
        Cmd::Certs { nodes, force } => crate::certs::run(&cfg, nodes, force),
        Cmd::Completions { .. } => unreachable!("answered before the config is read"),
        cmd => client::command(&cfg, cmd),
    }
}

/// The nodes the supervisor runs (`<dir>/members`: the bootstrap nodes plus those added,
/// minus those removed); the bootstrap nodes if that file cannot be read.
pub fn node_ids(cfg: &ClusterConfig) -> Vec<NodeId> {
    crate::members::Members::load(cfg).map(|m| m.ids()).unwrap_or_else(|_| cfg.node_ids())
}

/// Refuses node ids outside the cluster (exit 2).
pub fn check_node(cfg: &ClusterConfig, id: NodeId) -> Result<(), CliError> {
    let ids = node_ids(cfg);
    if ids.contains(&id) {
        return Ok(());
    }
    if crate::members::Members::load(cfg).is_ok_and(|m| m.is_removed(id)) {
        return Err(CliError::usage(format!(
            "node {id} was removed from the cluster (the nodes are {}); `raft-supervisor add` starts a new one",
            list(&ids)
        )));
    }
    Err(CliError::usage(format!("no node {id}: the nodes are {}", list(&ids))))
}

/// `1, 2, 3`.
fn list(ids: &[NodeId]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Parses partition groups like `1,2 3,4,5` among the nodes `ids`; see [`normalize_groups`].
pub fn parse_groups<S: AsRef<str>>(args: &[S], ids: &[NodeId]) -> Result<Vec<Vec<NodeId>>, String> {
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
            if !ids.contains(&id) {
                return Err(format!("no node {id} (in group `{arg}`): the nodes are {}", list(ids)));
            }
            group.push(id);
        }
        groups.push(group);
    }
    normalize_groups(&groups, ids)
}

/// Checks partition groups and puts them in canonical form: the nodes named in no group
/// form one more group together (last), so the result covers every node exactly once;
/// each group is sorted. One group holding everyone is no partition.
pub fn normalize_groups(groups: &[Vec<NodeId>], ids: &[NodeId]) -> Result<Vec<Vec<NodeId>>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for g in groups {
        if g.is_empty() {
            return Err("a partition group is empty".into());
        }
        for &id in g {
            if !ids.contains(&id) {
                return Err(format!("no node {id}: the nodes are {}", list(ids)));
            }
            if !seen.insert(id) {
                return Err(format!("node {id} is named more than once; each node belongs to at most one group"));
            }
        }
        let mut g = g.clone();
        g.sort_unstable();
        out.push(g);
    }
    let rest: Vec<NodeId> = ids.iter().copied().filter(|id| !seen.contains(id)).collect();
    if !rest.is_empty() {
        out.push(rest);
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

    fn ids(n: u64) -> Vec<NodeId> {
        (1..=n).collect()
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raft-supervisor").chain(args.iter().copied()))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&["up"]).unwrap().command, Cmd::Up { detach: false, web: None });
        assert_eq!(parse(&["up", "--detach"]).unwrap().command, Cmd::Up { detach: true, web: None });
        assert_eq!(parse(&["up", "--web"]).unwrap().command, Cmd::Up { detach: false, web: Some(8080) });
        assert_eq!(parse(&["up", "--web", "0"]).unwrap().command, Cmd::Up { detach: false, web: Some(0) });
        assert!(parse(&["up", "--web", "--detach"]).is_err(), "a detached up has no terminal to print the URL on");
        assert!(parse(&["up", "--web", "http"]).is_err());
        assert_eq!(parse(&["web"]).unwrap().command, Cmd::Web { port: 8080, bind: "127.0.0.1".into() });
        assert_eq!(
            parse(&["web", "--port", "0", "--bind", "0.0.0.0"]).unwrap().command,
            Cmd::Web { port: 0, bind: "0.0.0.0".into() }
        );
        assert_eq!(parse(&["status", "--json"]).unwrap().command, Cmd::Status { json: true });
        assert_eq!(parse(&["kill", "3"]).unwrap().command, Cmd::Kill { node: NodeTarget::Id(3) });
        assert_eq!(parse(&["logs", "2", "-f"]).unwrap().command, Cmd::Logs { node: NodeTarget::Id(2), follow: true });
        assert_eq!(parse(&["kill", "leader"]).unwrap().command, Cmd::Kill { node: NodeTarget::Leader });
        assert_eq!(parse(&["start", "leader"]).unwrap().command, Cmd::Start { node: NodeTarget::Leader });
        assert_eq!(parse(&["restart", "leader"]).unwrap().command, Cmd::Restart { node: NodeTarget::Leader });
        assert_eq!(parse(&["pause", "leader"]).unwrap().command, Cmd::Pause { node: NodeTarget::Leader });
        assert_eq!(parse(&["resume", "2"]).unwrap().command, Cmd::Resume { node: NodeTarget::Id(2) });
        assert_eq!(parse(&["logs", "leader"]).unwrap().command, Cmd::Logs { node: NodeTarget::Leader, follow: false });
        assert_eq!(parse(&["isolate", "4"]).unwrap().command, Cmd::Isolate { node: NodeTarget::Id(4) });
        assert_eq!(parse(&["isolate", "leader"]).unwrap().command, Cmd::Isolate { node: NodeTarget::Leader });
        assert_eq!(
            parse(&["completions", "fish"]).unwrap().command,
            Cmd::Completions { shell: clap_complete::Shell::Fish }
        );
        assert_eq!(
            parse(&["partition", "1,2", "3,4,5"]).unwrap().command,
            Cmd::Partition { groups: vec!["1,2".into(), "3,4,5".into()] }
        );
        assert_eq!(parse(&["speed", "0.1"]).unwrap().command, Cmd::Speed { factor: 100 });
        assert_eq!(
            parse(&["timeline", "--follow", "--since", "5m", "--node", "3", "--json"]).unwrap().command,
            Cmd::Timeline { follow: true, since: Some(std::time::Duration::from_secs(300)), node: Some(3), json: true }
        );
        assert_eq!(
            parse(&["timeline"]).unwrap().command,
            Cmd::Timeline { follow: false, since: None, node: None, json: false }
        );
        for c in ["down", "heal", "wipe", "watch"] {
            parse(&[c]).unwrap();
        }
        use crate::levers::NodeSet;
        assert_eq!(
            parse(&["delay", "200ms", "--jitter", "50ms", "1,2"]).unwrap().command,
            Cmd::Delay { delay: "200ms".into(), jitter: Some("50ms".into()), nodes: Some(NodeSet::Ids(vec![1, 2])) }
        );
        assert_eq!(
            parse(&["delay", "off"]).unwrap().command,
            Cmd::Delay { delay: "off".into(), jitter: None, nodes: None }
        );
        assert_eq!(
            parse(&["loss", "10", "leader"]).unwrap().command,
            Cmd::Loss { percent: "10".into(), nodes: Some(NodeSet::Leader) }
        );
        assert!(parse(&["loss", "10", "1,x"]).is_err());
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
        for args in [
            &["kill"][..],
            &["kill", "x"],
            &["kill", "-1"],
            &["partition"],
            &["frobnicate"],
            &["up", "--nope"],
            &["speed"],
            &["speed", "0"],
            &["speed", "11"],
            &["speed", "slow"],
            &["timeline", "--since", "5"],
            &["timeline", "--since", "soon"],
            &["timeline", "--node", "x"],
        ] {
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
        assert_eq!(e.message, "no node 6: the nodes are 1, 2, 3, 4, 5");
        assert_eq!(check_node(&cfg, 0).unwrap_err().code, EXIT_USAGE);
    }

    #[test]
    fn groups_parse_and_cover_every_node() {
        assert_eq!(parse_groups(&["1,2", "3,4,5"], &ids(5)), Ok(vec![vec![1, 2], vec![3, 4, 5]]));
        // The nodes not named form one more group together.
        assert_eq!(parse_groups(&["2,1"], &ids(5)), Ok(vec![vec![1, 2], vec![3, 4, 5]]));
        assert_eq!(parse_groups(&["3"], &ids(3)), Ok(vec![vec![3], vec![1, 2]]));
        assert_eq!(parse_groups(&["1", "2"], &ids(5)), Ok(vec![vec![1], vec![2], vec![3, 4, 5]]));
        assert_eq!(parse_groups(&[" 1 , 2", "3"], &ids(3)), Ok(vec![vec![1, 2], vec![3]]));
        assert_eq!(show_groups(&[vec![1, 2], vec![3, 4, 5]]), "{1,2} {3,4,5}");
    }

    #[test]
    fn leader_is_the_highest_term_leader() {
        use raft_wire::supervisor::{ClusterStatus, NodeRow};
        let row = |id, role: &str, term| NodeRow {
            id,
            pid: Some(100 + id as u32),
            process: "running".into(),
            role: role.into(),
            term,
            leader: None,
            commit: None,
            applied: None,
            last_index: None,
            snapshot_index: None,
            levers: None,
            member: None,
            live: None,
            redis_port: None,
        };
        let mut st = ClusterStatus {
            nodes: vec![row(1, "leader", Some(2)), row(2, "leader", Some(5)), row(3, "follower", Some(5))],
            partitions: vec![],
            speed_milli: 1000,
        };
        assert_eq!(leader_of(&st), Some(2), "the deposed leader of term 2 is not the leader");
        st.nodes = vec![row(1, "follower", Some(3)), row(2, "unknown", None), row(3, "candidate", Some(4))];
        assert_eq!(leader_of(&st), None);
        assert_eq!("leader".parse::<NodeTarget>(), Ok(NodeTarget::Leader));
        assert_eq!("3".parse::<NodeTarget>(), Ok(NodeTarget::Id(3)));
        assert!("x".parse::<NodeTarget>().unwrap_err().contains("`leader`"));
    }

    #[test]
    fn group_syntax_errors_are_clear() {
        let err = |args: &[&str]| parse_groups(args, &ids(5)).unwrap_err();
        assert!(err(&["1,,2"]).contains("empty node id"));
        assert!(err(&["1,2,"]).contains("empty node id"));
        assert!(err(&[""]).contains("empty node id"));
        assert!(err(&["1,x"]).contains("`x` in group `1,x` is not a node id"));
        assert!(err(&["1-3"]).contains("is not a node id"));
        assert_eq!(err(&["1,6"]), "no node 6 (in group `1,6`): the nodes are 1, 2, 3, 4, 5");
        assert_eq!(err(&["0"]), "no node 0 (in group `0`): the nodes are 1, 2, 3, 4, 5");
        assert!(err(&["1,2", "2,3"]).contains("node 2 is named more than once"));
        assert!(err(&["1,1"]).contains("more than once"));
        assert!(err(&["1,2,3,4,5"]).contains("heal"));
    }

    #[test]
    fn normalize_checks_what_arrives_over_the_socket() {
        assert_eq!(normalize_groups(&[vec![2, 1]], &ids(3)), Ok(vec![vec![1, 2], vec![3]]));
        assert_eq!(normalize_groups(&[vec![2]], &ids(5)), Ok(vec![vec![2], vec![1, 3, 4, 5]]), "isolate 2");
        assert!(normalize_groups(&[vec![]], &ids(3)).is_err());
        assert!(normalize_groups(&[vec![4]], &ids(3)).is_err());
        assert!(normalize_groups(&[vec![1], vec![1]], &ids(3)).is_err());
        assert!(normalize_groups(&[], &ids(1)).is_err());
    }
}
