//! Issue 18 end to end on one machine: the real binaries over TCP on 127.0.0.1 ports.
//! `raft-supervisor certs` makes the CA and certificates, `up` starts five nodes with
//! mutual TLS, `raft-cli` writes and reads over TLS, and a killed leader is replaced.
//! Plain TCP works only with `insecure = true`, and the nodes say so loudly. (Across
//! network namespaces, see the netns tests.)

use raft_e2e::*;
use std::os::unix::fs::PermissionsExt;

/// `transport = "tcp"` with one free 127.0.0.1 port per node (below the ephemeral range).
fn tcp_opts(nodes: u64, insecure: bool) -> Opts {
    let base = free_redis_base(nodes);
    let addrs: Vec<String> = (1..=nodes).map(|n| format!("\"127.0.0.1:{}\"", base as u64 + n)).collect();
    let extra_toml = format!("transport = \"tcp\"\naddrs = [{}]\ninsecure = {insecure}\n", addrs.join(", "));
    Opts { nodes, extra_toml, ..Opts::default() }
}

#[test]
fn five_nodes_over_mutual_tls_from_certs_and_up_take_writes_and_survive_the_leader() {
    let c = Cluster::prepare(tcp_opts(5, false));
    // Without certificates `up` refuses at once, saying what to run.
    let out = c.sup(&["up"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("raft-supervisor certs"), "{}", out.describe());

    let out = c.sup_ok(&["certs"]);
    assert!(out.stdout.contains("node-1..node-9"), "5 nodes plus 4 spare ids: {}", out.describe());
    let certs = c.dir.join("certs");
    for name in ["ca.key", "node-1.key", "node-9.key", "client.key"] {
        let mode = std::fs::metadata(certs.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let again = c.sup(&["certs"]);
    assert_eq!(again.code, Some(2), "refuses to overwrite: {}", again.describe());
    assert!(again.stderr.contains("--force"), "{}", again.describe());

    let c = c.up();
    for id in c.ids() {
        let log = c.read_log(id);
        assert!(log.contains("transport: TCP with mutual TLS on 127.0.0.1:"), "n{id}:\n{log}");
        assert!(!log.contains("TLS: "), "no refusal among the cluster's own nodes, n{id}:\n{log}");
    }
    assert_eq!(c.cli_ok(&["set", "chelsea", "rules"]), "OK\n");
    assert_eq!(c.cli_ok(&["get", "chelsea"]), "rules\n");

    let (old, old_term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    c.kill(old);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != old).collect();
    let (new, new_term) = c.wait_leader(&others, LEADER_TIMEOUT);
    assert!(new != old && new_term > old_term);
    assert_eq!(c.cli_ok(&["set", "chelsea", "rocks"]), "OK\n");
    assert_eq!(c.cli_ok(&["get", "chelsea"]), "rocks\n");
    c.assert_one_leader_per_term();

    // A client without its key cannot dial: a clear usage error, nothing sent.
    std::fs::remove_file(certs.join("client.key")).unwrap();
    let out = c.cli(&["get", "chelsea"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("client.key") && out.stderr.contains("raft-supervisor certs"), "{}", out.describe());
    // The benchmark too: at once, never plain TCP instead.
    let out = c.cli(&["bench", "--requests", "10"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("client.key"), "{}", out.describe());
}

#[test]
fn plain_tcp_needs_insecure_and_every_node_says_so_loudly() {
    let c = Cluster::start(tcp_opts(3, true));
    for id in c.ids() {
        let log = c.read_log(id);
        assert!(log.contains("WARNING: INSECURE transport: plain TCP"), "n{id}:\n{log}");
    }
    assert_eq!(c.cli_ok(&["set", "k", "v"]), "OK\n");
    assert_eq!(c.cli_ok(&["get", "k"]), "v\n");
    // A node added past the addrs list has nowhere to listen: refused before it starts.
    let out = c.sup(&["add"]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("cannot add node 4") && out.stderr.contains("node 4 has no entry"),
        "{}",
        out.describe()
    );
    assert_eq!(c.sup_status().unwrap().nodes.len(), 3, "nothing started");
}
