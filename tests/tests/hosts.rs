//! The cluster on a real network (issue 18): five `raft-node`s in five network namespaces
//! joined by veth pairs and a bridge (`raft_e2e::netns`), each started as systemd starts it
//! (`deploy/raft-node@.service`'s command line), talking TCP with TLS. Faults are made on
//! the network: links down, a split onto two bridges, processes killed by pid.
//!
//! Skipped with one line where namespaces cannot be made; `.ci/run` requires them.

use raft_e2e::netns::*;
use std::time::Duration;

/// The network itself: every host reaches every other; a link down cuts exactly that
/// node off; a split leaves the minority talking among itself only; heal restores all.
#[test]
fn test_network_links_split_and_heal() {
    let Some(net) = net_or_skip("test_network_links_split_and_heal", 3) else { return };
    // Port 9 (discard) has no listener anywhere: a refusal proves the path carries packets.
    let port = 9;
    let c = net.client_ns();
    for id in 1..=3 {
        assert!(net.reachable(&c, net.addr(id), port), "client reaches node {id}");
    }
    assert!(net.reachable(&net.node_ns(1), net.addr(2), port), "node 1 reaches node 2");

    net.link_down(2);
    assert!(!net.reachable(&c, net.addr(2), port), "node 2's link is down");
    assert!(!net.reachable(&net.node_ns(1), net.addr(2), port), "node 1 cannot reach node 2");
    assert!(net.reachable(&net.node_ns(1), net.addr(3), port), "the others still talk");
    net.heal();
    assert!(net.reachable(&c, net.addr(2), port), "node 2 is back");

    net.split(&[1, 2]);
    assert!(net.reachable(&net.node_ns(1), net.addr(2), port), "the minority talks among itself");
    assert!(!net.reachable(&net.node_ns(1), net.addr(3), port), "but not to the majority");
    assert!(!net.reachable(&c, net.addr(1), port), "nor to the client");
    assert!(net.reachable(&c, net.addr(3), port), "the majority side still serves the client");
    net.heal();
    assert!(net.reachable(&net.node_ns(3), net.addr(1), port), "healed");

    // A process left inside a namespace is killed on drop, and the namespaces go.
    let mut sleeper = net.command(&net.node_ns(1), "sleep");
    sleeper.arg("600").stdin(std::process::Stdio::null());
    let mut child = sleeper.spawn().expect("spawn sleep in node 1's namespace");
    let names = [net.node_ns(1), net.client_ns()];
    drop(net);
    let status = raft_e2e::poll_until(Duration::from_secs(10), || child.try_wait().ok().flatten());
    assert!(status.is_some(), "the process in the namespace was killed on drop");
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    for ns in names {
        assert!(!list.lines().any(|l| l.split_whitespace().next() == Some(ns.as_str())), "{ns} deleted: {list}");
    }
}
