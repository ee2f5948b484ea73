//! A real network on this machine: one Linux network namespace per node, joined by veth
//! pairs to a bridge, so nodes talk over TCP through real interfaces and a partition is a
//! link taken down, not the node's own isolate switch.
//!
//! ```text
//!   ns <tag>-n1 (eth0 10.99.0.1/24) ─┐
//!   ns <tag>-n2 (eth0 10.99.0.2/24) ─┤  ns <tag>-sw: bridge br0 (and br1 for a split)
//!   ...                              │  veth ends named n1..nN and c
//!   ns <tag>-c  (eth0 10.99.0.100/24) ┘  (the client: raft-cli runs here)
//! ```
//!
//! Each namespace has its own interfaces, so the interface names inside (`eth0`, `n1`,
//! `br0`) never clash with the host's or another test's; only the namespace names carry
//! the test's unique tag (pid and a counter). A process runs in a namespace through
//! `ip netns exec <ns> <program> ...` ([`TestNet::command`]).
//!
//! Faults: [`TestNet::link_down`] takes a node's switch-side veth down (it reaches no one);
//! [`TestNet::split`] moves some nodes' veths to a second bridge, so they reach each other
//! but not the rest (a minority that still talks among itself); [`TestNet::heal`] undoes
//! both. No `tc netem` is needed (it is not available here), nor iptables.
//!
//! Cleanup: drop SIGKILLs every process still inside the namespaces (by pid, from `ip
//! netns pids`: they are in namespaces only this test made) and deletes the namespaces,
//! which removes the veths and bridges with them. It runs when a test panics too; what a
//! test killed outright leaves is removed by the next [`TestNet::create`].
//!
//! Where namespaces cannot be made (not root, no `ip`), [`TestNet::create`] returns why:
//! tests print one line and return, unless `RAFT_E2E_REQUIRE=1` (set by `.ci/run`), where
//! they fail.

use crate::run_limited;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The subnet inside every test network (namespaces are isolated, so tests can share it).
pub const SUBNET: [u8; 3] = [10, 99, 0];
/// The client namespace's host number in [`SUBNET`].
pub const CLIENT_HOST: u8 = 100;
/// The most nodes a test network holds (host numbers 1..=MAX_NODES stay below the client's).
pub const MAX_NODES: u64 = 16;
const _: () = assert!(MAX_NODES < CLIENT_HOST as u64);
/// Limit on one `ip` command (it answers in milliseconds; a hung one must not hang a test).
const IP_LIMIT: Duration = Duration::from_secs(20);
/// How long a reachability probe waits for a TCP answer.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// A network of namespaces, torn down on drop.
pub struct TestNet {
    tag: String,
    nodes: u64,
    namespaces: Vec<String>,
}

impl TestNet {
    /// Switch, `nodes` node namespaces and a client namespace, all links up. `Err` says why
    /// namespaces cannot be made here (the caller skips or fails, see [`skip_or_fail`]).
    pub fn create(nodes: u64) -> Result<TestNet, String> {
        assert!((1..=MAX_NODES).contains(&nodes), "1..={MAX_NODES} nodes, not {nodes}");
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Short, unique per test: pid and counter (namespace names are file names under
        // /run/netns; kept short for readable `ip netns` listings).
        let tag = format!("rt{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".to_string());
        }
        if let Err(e) = Command::new("ip").arg("-V").output() {
            return Err(format!("no `ip` command ({e}); install iproute2"));
        }
        sweep_dead();
        let mut net = TestNet { tag, nodes, namespaces: Vec::new() };
        net.add_namespace(&net.switch())?;
        let sw = net.switch();
        net.ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        for br in ["br0", "br1"] {
            net.ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            net.ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        for host in (1..=nodes).map(|n| n as u8).chain([CLIENT_HOST]) {
            let ns = net.host_ns(host);
            net.add_namespace(&ns)?;
            let port = Self::port_name(host);
            net.ip(&["link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &sw])?;
            net.ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            net.ip(&["-n", &sw, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", Self::host_addr(host));
            net.ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            net.ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            net.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    /// The namespace of node `id`.
    pub fn node_ns(&self, id: u64) -> String {
        assert!((1..=self.nodes).contains(&id), "node {id} is not in this network");
        self.host_ns(id as u8)
    }

    /// The client's namespace (raft-cli runs here).
    pub fn client_ns(&self) -> String {
        self.host_ns(CLIENT_HOST)
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> Ipv4Addr {
        assert!((1..=self.nodes).contains(&id), "node {id} is not in this network");
        Self::host_addr(id as u8)
    }

    /// `ip netns exec <ns> <program>`: add the program's arguments to it.
    pub fn command(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Node `id` reaches no one: its switch-side veth goes down.
    pub fn link_down(&self, id: u64) {
        self.must(&["-n", &self.switch(), "link", "set", &Self::port_name(id as u8), "down"]);
    }

    /// Node `id`'s link comes back up.
    pub fn link_up(&self, id: u64) {
        self.must(&["-n", &self.switch(), "link", "set", &Self::port_name(id as u8), "up"]);
    }

    /// `minority` reach each other but no other node, nor the client: their veths move to
    /// the second bridge.
    pub fn split(&self, minority: &[u64]) {
        for &id in minority {
            self.must(&["-n", &self.switch(), "link", "set", &Self::port_name(id as u8), "master", "br1"]);
        }
    }

    /// Every link up and on the main bridge again.
    pub fn heal(&self) {
        for id in 1..=self.nodes {
            self.must(&["-n", &self.switch(), "link", "set", &Self::port_name(id as u8), "master", "br0"]);
            self.link_up(id);
        }
    }

    /// Whether a TCP connection from namespace `from` to `to:port` gets an answer (an
    /// accept or a refusal) within [`PROBE_LIMIT`]: whether the network carries packets
    /// between them, listener or not. Uses bash's `/dev/tcp`, no other tool.
    pub fn reachable(&self, from: &str, to: Ipv4Addr, port: u16) -> bool {
        let mut cmd = self.command(from, "timeout");
        cmd.arg(format!("{}", PROBE_LIMIT.as_secs())).args(["bash", "-c", &format!(": </dev/tcp/{to}/{port}")]);
        let out = run_limited(&mut cmd, PROBE_LIMIT + Duration::from_secs(5));
        out.code == Some(0) || out.stderr.contains("Connection refused")
    }

    /// Pids of the processes in namespace `ns`.
    pub fn pids(&self, ns: &str) -> Vec<u32> {
        let out = run_limited(Command::new("ip").args(["netns", "pids", ns]), IP_LIMIT);
        out.stdout.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.tag)
    }

    fn host_ns(&self, host: u8) -> String {
        if host == CLIENT_HOST {
            format!("{}-c", self.tag)
        } else {
            format!("{}-n{host}", self.tag)
        }
    }

    fn host_addr(host: u8) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host)
    }

    /// The switch-side veth of a host (inside the switch namespace; at most 4 chars, far
    /// under the kernel's 15).
    fn port_name(host: u8) -> String {
        if host == CLIENT_HOST {
            "c".to_string()
        } else {
            format!("n{host}")
        }
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), String> {
        self.ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new("ip");
        cmd.args(args);
        let out = run_limited(&mut cmd, IP_LIMIT);
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(format!("`ip {}` failed: {}", args.join(" "), out.stderr.trim()))
        }
    }

    fn must(&self, args: &[&str]) {
        if let Err(e) = self.ip(args) {
            panic!("{e}");
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // Only processes inside a namespace this test made, so only ours.
            for pid in self.pids(ns) {
                if pid != std::process::id() {
                    // SAFETY: plain kill(2) of a process in our own namespace.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                }
            }
            let _ = self.ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes namespaces a test process killed outright left behind (`rt<pid>x<n>-*` whose
/// pid is gone; their nodes died with it by `PR_SET_PDEATHSIG`). Only our naming, only
/// dead owners, so a test running in parallel keeps its own.
fn sweep_dead() {
    let out = run_limited(Command::new("ip").args(["netns", "list"]), IP_LIMIT);
    for name in out.stdout.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix("rt").and_then(|r| r.split('x').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run_limited(Command::new("ip").args(["netns", "del", name]), IP_LIMIT);
        }
    }
}

/// For a test that needs a network: `Some(net)`, or `None` after one line saying why it
/// is skipped; under `RAFT_E2E_REQUIRE=1` a missing network fails the test instead.
pub fn net_or_skip(test: &str, nodes: u64) -> Option<TestNet> {
    match TestNet::create(nodes) {
        Ok(net) => Some(net),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// Prints why `test` is skipped, or panics when `RAFT_E2E_REQUIRE=1` says it must run.
pub fn skip_or_fail(test: &str, why: &str) {
    if std::env::var("RAFT_E2E_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("{test}: network namespaces are required here (RAFT_E2E_REQUIRE=1) but cannot be made: {why}");
    }
    eprintln!("SKIPPED {test}: network namespaces cannot be made here ({why}); run as root with iproute2");
}
