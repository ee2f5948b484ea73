//! `raft-supervisor certs` and the supervisor's side of issue 18's transport: certificates
//! for a test or a first deployment, and the check `up` makes before starting nodes over
//! TLS (every member's files there, the client identity loadable), so a missing file is
//! one clear line instead of nodes that crash at start.

use crate::cli::CliError;
use raft_config::ClusterConfig;
use raft_core::NodeId;
use raft_transport::certs::{generate, CertPlan, SPARE_NODE_CERTS};

/// `raft-supervisor certs [--nodes N] [--force]`.
pub fn run(cfg: &ClusterConfig, nodes: Option<u64>, force: bool) -> Result<(), CliError> {
    let n = nodes.unwrap_or((cfg.nodes + SPARE_NODE_CERTS).min(raft_config::MAX_NODE_ID));
    if !(1..=raft_config::MAX_NODE_ID).contains(&n) {
        return Err(CliError::usage(format!("--nodes {n} is not in 1..={}", raft_config::MAX_NODE_ID)));
    }
    let plan =
        CertPlan { dir: cfg.dir.join("certs"), nodes: (1..=n).map(|id| (id, cfg.node_host(id))).collect(), force };
    raft_storage::create_dir_durable(&cfg.dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", cfg.dir.display())))?;
    let written = generate(&plan).map_err(|e| match e {
        raft_transport::certs::CertError::Exists(_) | raft_transport::certs::CertError::ReservedHost(_) => {
            CliError::usage(e.to_string())
        }
        _ => CliError::failed(e.to_string()),
    })?;
    println!(
        "wrote {} files to {}: ca.crt/ca.key, node-1..node-{n} (DNS name node-<id>{}), client; keys mode 0600",
        written.len(),
        plan.dir.display(),
        if cfg.addrs.is_empty() { "" } else { " plus the host of its addrs entry" }
    );
    if cfg.transport != "tcp" {
        println!("the config's transport is {:?}: set transport = \"tcp\" and addrs to use them", cfg.transport);
    }
    Ok(())
}

/// Before `up` starts nodes over TLS: every member's files exist, and the supervisor's
/// client identity loads. Returns that identity (`None`: Unix sockets or plain TCP).
pub fn check_transport(cfg: &ClusterConfig, ids: &[NodeId]) -> Result<Option<raft_transport::ClientTls>, CliError> {
    for &id in ids {
        cfg.node_endpoint(id).map_err(|e| CliError::usage(e.to_string()))?;
        if cfg.transport_kind() == raft_config::Transport::Tls {
            cfg.check_tls_files(&cfg.node_tls_paths(id)).map_err(|e| CliError::usage(format!("node {id}: {e}")))?;
        }
    }
    raft_transport::client_tls(cfg).map_err(CliError::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, extra: &str) -> ClusterConfig {
        ClusterConfig::from_toml(&format!("dir = {dir:?}\nnodes = 3\n{extra}")).unwrap()
    }

    #[test]
    fn certs_covers_the_nodes_plus_spares_and_a_node_count_out_of_range_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "");
        for bad in [0, raft_config::MAX_NODE_ID + 1] {
            let e = run(&cfg, Some(bad), false).unwrap_err();
            assert_eq!(e.code, crate::cli::EXIT_USAGE, "{}", e.message);
        }
        assert!(!dir.path().join("certs").exists(), "nothing written for a bad count");
        run(&cfg, None, false).unwrap();
        let last = 3 + SPARE_NODE_CERTS;
        assert!(dir.path().join(format!("certs/node-{last}.crt")).is_file());
        assert!(!dir.path().join(format!("certs/node-{}.crt", last + 1)).exists());
        let e = run(&cfg, None, false).unwrap_err();
        assert_eq!(e.code, crate::cli::EXIT_USAGE, "existing files: {}", e.message);
        run(&cfg, Some(2), true).unwrap();
    }

    #[test]
    fn up_checks_every_members_address_and_files_before_starting() {
        let dir = tempfile::tempdir().unwrap();
        let tcp = "transport = \"tcp\"\naddrs = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n";
        let cfg = config(dir.path(), tcp);
        let e = check_transport(&cfg, &[1, 2, 3]).unwrap_err();
        assert!(e.message.contains("node 1") && e.message.contains("raft-supervisor certs"), "{}", e.message);
        run(&cfg, None, false).unwrap();
        assert!(check_transport(&cfg, &[1, 2, 3]).unwrap().is_some(), "the supervisor's client identity");
        let e = check_transport(&cfg, &[1, 2, 3, 4]).unwrap_err();
        assert!(e.message.contains("node 4 has no entry"), "an added node past addrs: {}", e.message);
        // Unix sockets need nothing.
        assert!(check_transport(&config(dir.path(), ""), &[1, 2, 3]).unwrap().is_none());
    }
}
