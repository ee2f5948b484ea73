//! `raft-node --config PATH --id N` run by itself, as systemd or Kubernetes run it (no
//! supervisor): it logs to stdout, stops cleanly on SIGTERM with exit 0, and each failure a
//! restart cannot fix exits with its own code and one stderr line (README, "Run it across
//! hosts"; `raft_node::exit`): 2 bad config or usage, 3 data directory held, 4 corrupt
//! storage.

use raft_e2e::*;
use raft_node::exit::{EXIT_CLEAN, EXIT_CONFIG, EXIT_CORRUPT, EXIT_HELD};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A one-node cluster elects itself; generous for two busy cores.
const READY: Duration = Duration::from_secs(20);
/// A clean stop finishes its turn and writes one line.
const STOP: Duration = Duration::from_secs(10);

/// A one-node cluster's config in `dir` with its cluster key, as a deployment would have
/// them (no `raft-supervisor up` made them).
fn one_node_config(dir: &Path) -> PathBuf {
    let config = dir.join("cluster.toml");
    std::fs::write(&config, format!("dir = {:?}\nnodes = 1\nredis_port = 0\n", dir.display().to_string()))
        .expect("write the config");
    raft_wire::auth::ClusterKey::create_if_missing(&dir.join("cluster.key")).expect("create the cluster key");
    config
}

fn node_cmd(config: &Path, id: &str) -> Command {
    let mut cmd = Command::new(&bins().node);
    cmd.arg("--config").arg(config).arg("--id").arg(id);
    cmd
}

/// Runs the node to its exit; it must fail at once with `code` and one stderr line.
fn refused(config: &Path, id: &str, code: u8) -> Out {
    let out = run_limited(&mut node_cmd(config, id), COMMAND_LIMIT);
    assert_eq!(out.code, Some(i32::from(code)), "{}", out.describe());
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "one stderr line: {}", out.describe());
    out
}

#[test]
fn sigterm_stops_it_cleanly_with_exit_0_and_a_second_node_on_its_dir_exits_3() {
    let _bins = bins();
    let tmp = short_tempdir();
    let config = one_node_config(tmp.path());
    let mut node = NodeProc::spawn(node_cmd(&config, "1"), &tmp.path().join("n1"));
    node.wait_output("became leader", READY);
    // Its log is stdout, in the documented line format.
    let first = node.output().lines().next().unwrap_or_default().to_string();
    let fields: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(fields.len() == 4 && fields[1] == "n1" && fields[2].starts_with('t'), "event line format: {first:?}");

    // A second node on the same data directory: the flock says no.
    let out = refused(&config, "1", EXIT_HELD);
    assert!(out.stderr.contains("locked by another process"), "{}", out.describe());
    assert!(out.stderr.contains("stop the other node"), "says what to do: {}", out.describe());
    assert!(node.exited().is_none(), "the first node is untouched\n{}", node.describe());

    // A write, then SIGTERM: exit 0 with the last line saying what is on disk.
    let cli =
        run_limited(Command::new(&bins().cli).arg("--config").arg(&config).args(["set", "k", "v"]), COMMAND_LIMIT);
    assert_eq!(cli.code, Some(0), "{}", cli.describe());
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(STOP);
    assert_eq!(status.code(), Some(i32::from(EXIT_CLEAN)), "SIGTERM is a clean stop\n{}", node.describe());
    let last = node.output().lines().last().unwrap_or_default().to_string();
    assert!(last.contains("shutting down") && last.contains("fsynced"), "last line: {last:?}");
    assert_eq!(node.errors(), "", "a clean stop writes nothing to stderr");

    // Started again on the same directory, it has the write (nothing lost by the stop).
    let mut again = NodeProc::spawn(node_cmd(&config, "1"), &tmp.path().join("n1b"));
    again.wait_output("became leader", READY);
    let get = run_limited(Command::new(&bins().cli).arg("--config").arg(&config).args(["get", "k"]), COMMAND_LIMIT);
    assert_eq!(get.stdout, "v\n", "{}", get.describe());
    again.signal(libc::SIGINT);
    assert_eq!(again.wait_exit(STOP).code(), Some(i32::from(EXIT_CLEAN)), "SIGINT too\n{}", again.describe());
}

#[test]
fn bad_config_bad_id_and_missing_key_exit_2() {
    let _bins = bins();
    let tmp = short_tempdir();
    let dir = tmp.path().display().to_string();
    // Unknown key, wrong type, impossible timing: the message names the key.
    for (i, (body, key)) in
        [("tickms = 10\n", "tickms"), ("fsync = 3\n", "fsync"), ("nodes = 0\n", "nodes")].iter().enumerate()
    {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("dir = {dir:?}\n{body}")).expect("write config");
        let out = refused(&path, "1", EXIT_CONFIG);
        assert!(out.stderr.contains(&format!("`{key}`")), "names `{key}`: {}", out.describe());
        assert!(out.stderr.contains("fix the config"), "says what to do: {}", out.describe());
    }
    // Over TCP: no addrs, and TLS without its certificate files.
    let tcp = [
        ("transport = \"tcp\"\n", "addrs"),
        ("nodes = 1\ntransport = \"tcp\"\naddrs = [\"127.0.0.1:1\"]\n", "certs/ca.crt"),
    ];
    for (i, (body, names)) in tcp.iter().enumerate() {
        let path = tmp.path().join(format!("tcp{i}.toml"));
        std::fs::write(&path, format!("dir = {dir:?}\n{body}")).expect("write config");
        raft_wire::auth::ClusterKey::create_if_missing(&tmp.path().join("cluster.key")).expect("cluster key");
        let out = refused(&path, "1", EXIT_CONFIG);
        assert!(out.stderr.contains(names), "names {names}: {}", out.describe());
    }
    // A config file that does not exist.
    let out = refused(&tmp.path().join("missing.toml"), "1", EXIT_CONFIG);
    assert!(out.stderr.contains("missing.toml"), "{}", out.describe());
    // An id that is no node id, and one that is not a number (clap's usage error).
    let config = one_node_config(tmp.path());
    let out = refused(&config, "0", EXIT_CONFIG);
    assert!(out.stderr.contains("--id 0"), "{}", out.describe());
    let out = run_limited(&mut node_cmd(&config, "one"), COMMAND_LIMIT);
    assert_eq!(out.code, Some(i32::from(EXIT_CONFIG)), "{}", out.describe());
    // No cluster key (a host the key was not copied to): set-up, not worth a restart.
    std::fs::remove_file(tmp.path().join("cluster.key")).expect("remove the key");
    let out = refused(&config, "1", EXIT_CONFIG);
    assert!(out.stderr.contains("cluster.key"), "names the key file: {}", out.describe());
    assert!(!tmp.path().join("node-1").join("wal").exists(), "nothing was created for a refused start");
}

#[test]
fn corrupt_wal_exits_4_naming_the_file() {
    let _bins = bins();
    let tmp = short_tempdir();
    let config = one_node_config(tmp.path());
    let mut node = NodeProc::spawn(node_cmd(&config, "1"), &tmp.path().join("n1"));
    node.wait_output("became leader", READY);
    // A few dozen records in the WAL.
    let bench = run_limited(
        Command::new(&bins().cli).arg("--config").arg(&config).args([
            "bench",
            "--requests",
            "60",
            "--read-ratio",
            "0",
            "--clients",
            "1",
            "--keys",
            "60",
        ]),
        COMMAND_LIMIT,
    );
    assert_eq!(bench.code, Some(0), "{}", bench.describe());
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(STOP).code(), Some(i32::from(EXIT_CLEAN)), "{}", node.describe());

    let segment = wal_segments(&tmp.path().join("node-1").join("wal")).pop().expect("a WAL segment");
    let (rec, at) = damage_middle_record(&segment, 20);
    let out = refused(&config, "1", EXIT_CORRUPT);
    let name = segment.file_name().expect("file name").to_string_lossy().into_owned();
    assert!(out.stderr.contains(&name), "names the file {name}: {}", out.describe());
    assert!(
        out.stderr.contains(&format!("offset {rec}")) || out.stderr.contains(&format!("offset {at}")),
        "names the offset ({rec} or {at}): {}",
        out.describe()
    );
}

/// `raft-cli chaos --no-supervisor` checks a cluster nobody supervises (here one
/// foreground node): it needs no supervisor socket, injects nothing, and still checks the
/// history; asking it for faults too is a usage error.
#[test]
fn chaos_without_a_supervisor_drives_clients_and_checks_the_history() {
    let _bins = bins();
    let tmp = short_tempdir();
    let config = one_node_config(tmp.path());
    let mut node = NodeProc::spawn(node_cmd(&config, "1"), &tmp.path().join("n1"));
    node.wait_output("became leader", READY);
    let chaos = |extra: &[&str]| {
        let mut cmd = Command::new(&bins().cli);
        cmd.arg("--config").arg(&config).args(["chaos", "--duration", "2s", "--clients", "3", "--no-supervisor"]);
        run_limited(cmd.args(extra), COMMAND_LIMIT)
    };
    let out = chaos(&[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("verdict: linearizable") && out.stdout.contains("caught up: yes"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("faults: 0 "), "{}", out.describe());
    let out = chaos(&["--faults", "kill"]);
    assert_eq!(out.code, Some(2), "faults need the supervisor: {}", out.describe());
    assert!(node.exited().is_none(), "the node still serves\n{}", node.describe());
}
