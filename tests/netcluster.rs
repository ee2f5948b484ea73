//! A cluster on the namespace network ([`crate::netns::TestNet`]), every node a pretend
//! host: its own directory (`<tmp>/hN`: config, `cluster.key`, `certs/` copied there, its
//! data), started with the systemd unit's command line ([`crate::deploy::unit_argv`])
//! inside its namespace, over TCP at `10.99.0.N:7001` with TLS (or `insecure = true`).
//! The client (`raft-cli`) runs in the client namespace with its own directory and the
//! client certificate.
//!
//! Faults are the network's (`net.link_down`, `net.split`) and processes killed by pid;
//! no supervisor runs. Drop kills every node (by pid) before the network goes.

use crate::deploy::unit_argv;
use crate::netns::TestNet;
use crate::{bins, poll_until, run_limited, short_tempdir, NodeProc, Out, COMMAND_LIMIT};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The port every node listens on, each on its own address.
pub const PORT: u16 = 7001;

/// One node's row of `raft-cli status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub last: u64,
}

pub struct NetCluster<'n> {
    pub net: &'n TestNet,
    pub tmp: tempfile::TempDir,
    pub tls: bool,
    nodes: BTreeMap<u64, NodeProc>,
    /// How many times each node was started (names its output files).
    starts: BTreeMap<u64, u32>,
    /// One cluster at a time, namespace or not: two cores run one five-node cluster well.
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl<'n> NetCluster<'n> {
    /// Writes every host's directory (certificates made by `raft-supervisor certs` when
    /// `tls`) and starts every node.
    pub fn start(net: &'n TestNet, tls: bool) -> NetCluster<'n> {
        let serial = crate::serial();
        let tmp = short_tempdir();
        let gen = tmp.path().join("gen");
        std::fs::create_dir(&gen).expect("mkdir gen");
        std::fs::write(gen.join("cluster.toml"), config_text(net, &gen, tls)).expect("write config");
        raft_wire::auth::ClusterKey::create_if_missing(&gen.join("cluster.key")).expect("cluster key");
        if tls {
            let mut cmd = Command::new(&bins().supervisor);
            cmd.arg("--config").arg(gen.join("cluster.toml")).arg("certs");
            let out = run_limited(&mut cmd, COMMAND_LIMIT);
            assert_eq!(out.code, Some(0), "raft-supervisor certs: {}", out.describe());
        }
        // Each host gets what an operator would copy to it, and no more.
        for id in 1..=net.nodes() {
            let host = tmp.path().join(format!("h{id}"));
            std::fs::create_dir(&host).expect("mkdir host");
            std::fs::write(host.join("cluster.toml"), config_text(net, &host, tls)).expect("write config");
            std::fs::copy(gen.join("cluster.key"), host.join("cluster.key")).expect("copy key");
            if tls {
                copy_certs(&gen, &host, &["ca.crt".into(), format!("node-{id}.crt"), format!("node-{id}.key")]);
            }
        }
        let client = tmp.path().join("cl");
        std::fs::create_dir(&client).expect("mkdir client");
        std::fs::write(client.join("cluster.toml"), config_text(net, &client, tls)).expect("write config");
        if tls {
            copy_certs(&gen, &client, &["ca.crt".into(), "client.crt".into(), "client.key".into()]);
        }
        let mut c = NetCluster { net, tmp, tls, nodes: BTreeMap::new(), starts: BTreeMap::new(), _serial: serial };
        for id in 1..=net.nodes() {
            c.start_node(id);
        }
        c
    }

    pub fn host_dir(&self, id: u64) -> PathBuf {
        self.tmp.path().join(format!("h{id}"))
    }

    /// Starts node `id` in its namespace with the unit's command line.
    pub fn start_node(&mut self, id: u64) {
        if let Some(p) = self.nodes.get_mut(&id) {
            assert!(p.exited().is_some(), "node {id} already runs");
        }
        let config = self.host_dir(id).join("cluster.toml");
        let argv = unit_argv(&bins().node, &config, id);
        let mut cmd = self.net.command(&self.net.node_ns(id), &argv[0]);
        cmd.args(&argv[1..]);
        let n = {
            let n = self.starts.entry(id).or_default();
            *n += 1;
            *n
        };
        let out = self.host_dir(id).join(format!("node-{id}-run{n}"));
        self.nodes.insert(id, NodeProc::spawn(cmd, &out));
    }

    /// SIGKILL node `id` (by pid) and reap it.
    pub fn kill(&mut self, id: u64) {
        if let Some(p) = self.nodes.get_mut(&id) {
            p.kill();
        }
    }

    pub fn node(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.get_mut(&id).expect("a started node")
    }

    /// Everything node `id` printed, over all its runs.
    pub fn log(&self, id: u64) -> String {
        let runs = self.starts.get(&id).copied().unwrap_or(0);
        (1..=runs)
            .map(|n| {
                std::fs::read_to_string(self.host_dir(id).join(format!("node-{id}-run{n}.out"))).unwrap_or_default()
            })
            .collect()
    }

    /// `raft-cli --config <client dir> ARGS` in the client namespace.
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_in(&self.net.client_ns(), args)
    }

    /// `raft-cli` in namespace `ns` (e.g. a node's, to be on its side of a split).
    pub fn cli_in(&self, ns: &str, args: &[&str]) -> Out {
        let mut cmd = self.net.command(ns, &bins().cli);
        cmd.arg("--config").arg(self.tmp.path().join("cl").join("cluster.toml")).args(args);
        run_limited(&mut cmd, COMMAND_LIMIT)
    }

    /// The rows of `raft-cli status` seen from the client namespace (nodes that answered).
    pub fn status(&self) -> Vec<Row> {
        let out = self.cli(&["--timeout", "2s", "status"]);
        out.stdout.lines().skip(1).filter_map(parse_row).collect()
    }

    /// The leader in the highest term the client sees, if any.
    pub fn leader(&self) -> Option<Row> {
        self.status().into_iter().filter(|r| r.role == "leader").max_by_key(|r| r.term)
    }

    /// Waits for a leader among the nodes the client reaches, in a term above `above`.
    pub fn wait_leader(&self, above: u64, timeout: Duration) -> Row {
        poll_until(timeout, || self.leader().filter(|l| l.term > above)).unwrap_or_else(|| {
            panic!(
                "no leader above term {above} within {timeout:?}\nstatus:\n{}\n{}",
                self.cli(&["status"]).stdout,
                self.dump()
            )
        })
    }

    /// Waits until every node in `ids` has applied the leader's whole log; returns it.
    pub fn wait_converged(&self, ids: &[u64], timeout: Duration) -> u64 {
        let want: BTreeSet<u64> = ids.iter().copied().collect();
        poll_until(timeout, || {
            let rows = self.status();
            let leader = rows.iter().filter(|r| r.role == "leader").max_by_key(|r| r.term)?;
            let done = rows.iter().filter(|r| want.contains(&r.id) && r.applied == leader.commit).count();
            (leader.commit == leader.last && done == want.len()).then_some(leader.commit)
        })
        .unwrap_or_else(|| {
            panic!("{ids:?} did not converge within {timeout:?}\n{}\n{}", self.cli(&["status"]).stdout, self.dump())
        })
    }

    /// Terms in which each node logged `became leader`: at most one node per term.
    pub fn assert_one_leader_per_term(&self) {
        let mut by_term: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for id in 1..=self.net.nodes() {
            for t in crate::parse_became_leader(&self.log(id)) {
                by_term.entry(t).or_default().insert(id);
            }
        }
        assert!(!by_term.is_empty(), "no node logged `became leader`: are the logs read?\n{}", self.dump());
        for (t, ids) in &by_term {
            assert!(ids.len() == 1, "term {t} had leaders {ids:?}");
        }
    }

    /// The nodes' output tails, for failure messages.
    pub fn dump(&self) -> String {
        self.nodes.values().map(NodeProc::describe).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for NetCluster<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== kept {}", self.tmp.path().display());
            let _ = std::mem::replace(&mut self.tmp, short_tempdir()).keep();
        }
        for p in self.nodes.values_mut() {
            p.kill();
        }
    }
}

/// A host's (or the client's) config: the same cluster, `dir` its own.
fn config_text(net: &TestNet, dir: &Path, tls: bool) -> String {
    let addrs: Vec<String> = (1..=net.nodes()).map(|id| format!("\"{}:{PORT}\"", net.addr(id))).collect();
    format!(
        "# written by the raft-e2e namespace harness\n\
         dir = {:?}\n\
         nodes = {}\n\
         transport = \"tcp\"\n\
         addrs = [{}]\n\
         insecure = {}\n\
         redis_port = 0\n",
        dir.display().to_string(),
        net.nodes(),
        addrs.join(", "),
        !tls
    )
}

fn copy_certs(from: &Path, to: &Path, names: &[String]) {
    std::fs::create_dir(to.join("certs")).expect("mkdir certs");
    for name in names {
        std::fs::copy(from.join("certs").join(name), to.join("certs").join(name))
            .unwrap_or_else(|e| panic!("copy certs/{name}: {e}"));
    }
}

fn parse_row(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 || f[2] == "unreachable" {
        return None;
    }
    Some(Row {
        id: f[0].parse().ok()?,
        role: f[2].to_string(),
        term: f[3].parse().ok()?,
        commit: f[5].parse().ok()?,
        applied: f[6].parse().ok()?,
        last: f[7].parse().ok()?,
    })
}
