//! `raft-node --config PATH --id N`: one member of the cluster. The supervisor starts it,
//! or systemd, Kubernetes or a shell does: it runs in the foreground, logs to stdout, stops
//! cleanly on SIGTERM/SIGINT, and exits with a code from `raft_node::exit` (one stderr
//! line says what and what to do). Everything it does is in the library.

use clap::Parser;
use raft_config::ClusterConfig;
use raft_node::exit::ExitKind;
use raft_node::{NodeError, NodeSettings, Server};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// One Raft node: serves peers and clients on <dir>/node-<id>/node.sock, or over TCP at
/// its `addrs` entry (transport = "tcp").
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Cluster config (the supervisor passes <dir>/cluster.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id, 1..=nodes.
    #[arg(long)]
    id: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (cfg, _) = match ClusterConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail("raft-node", "bad config", NodeError::Config(e.to_string())),
    };
    // Ids past `nodes` are nodes added at run time: they join as learners.
    if !raft_config::ClusterConfig::is_node_id(args.id) {
        let e = format!(
            "--id {} is not a node id (1..={}; the first {} start the cluster)",
            args.id,
            raft_config::MAX_NODE_ID,
            cfg.nodes
        );
        return fail("raft-node", "bad usage", NodeError::Config(e));
    }
    let me = format!("raft-node {}", args.id);
    // Over tcp: the node's addrs entry and, with TLS, its certificate files.
    let tcp = match raft_node::TcpSettings::from_config(&cfg, args.id) {
        Ok(t) => t,
        Err(e) => return fail(&me, "bad config", e),
    };
    let own_socket = cfg.node_socket(args.id);
    if tcp.is_none() && own_socket.as_os_str().len() > raft_config::MAX_SOCKET_PATH_BYTES {
        let e = format!(
            "socket path {} is over the {}-byte Unix limit; choose a shorter dir",
            own_socket.display(),
            raft_config::MAX_SOCKET_PATH_BYTES
        );
        return fail(&me, "bad config", NodeError::Config(e));
    }
    // Peers prove they hold the cluster key; a node without it cannot take part.
    // A missing or unsafe key is set-up, like the config: a restart cannot fix it.
    let cluster_key = match raft_wire::auth::ClusterKey::load(&cfg.cluster_key_path()) {
        Ok(k) => k,
        Err(e) => return fail(&me, "cannot start", NodeError::Config(e.to_string())),
    };
    let settings = NodeSettings {
        id: args.id,
        sockets: cfg.node_ids().into_iter().chain([args.id]).map(|id| (id, cfg.node_socket(id))).collect(),
        bootstrap: cfg.node_ids(),
        cluster_dir: Some(cfg.dir.clone()),
        node_dir: cfg.node_dir(args.id),
        cluster_id: cfg.cluster_id(),
        cluster_key,
        allowed_uids: cfg.allowed_uids.clone(),
        tick: Duration::from_millis(cfg.tick_ms),
        heartbeat_ticks: cfg.heartbeat_ticks,
        election_ticks_min: cfg.election_ticks_min,
        election_ticks_max: cfg.election_ticks_max,
        pre_vote: cfg.pre_vote,
        check_quorum: cfg.check_quorum,
        fsync: cfg.fsync,
        snapshot_entries: cfg.snapshot_entries,
        snapshot_ratio: cfg.snapshot_ratio,
        promote_lag: cfg.promote_lag,
        snapshot_bytes: cfg.snapshot_bytes,
        quota_bytes: cfg.quota_bytes,
        seed: raft_node::random_seed(),
        handle_signals: true,
        log: raft_node::LogTarget::Stdout,
        redis: cfg.redis_addr(args.id),
        tcp,
    };
    let server = match Server::open(settings) {
        Ok(s) => s,
        Err(e) => return fail(&me, "cannot start", e),
    };
    match server.run() {
        Ok(()) => ExitCode::from(ExitKind::Clean.code()),
        Err(e) => fail(&me, "stopped", e),
    }
}

/// The one stderr line of a failed node (what, then what to do) and its exit code.
fn fail(me: &str, what: &str, e: NodeError) -> ExitCode {
    let kind = ExitKind::of(&e);
    eprintln!("{me}: {what}: {e}; {}", kind.advice());
    ExitCode::from(kind.code())
}
