//! The binary without a running cluster: usage errors exit 2, everything that needs the
//! cluster exits 3 at once with a message that says how to start one.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raft-cli"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RAFT_CONFIG")
        .output()
        .expect("raft-cli runs")
}

fn empty_cluster() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cluster.toml");
    std::fs::write(&cfg, "dir = \"c\"\nnodes = 3\n").unwrap();
    (tmp, cfg)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_cluster_command_exits_3_fast_with_a_hint() {
    let (_tmp, cfg) = empty_cluster();
    for args in [
        &["set", "k", "v"][..],
        &["get", "k"],
        &["get", "k", "--stale"],
        &["del", "k"],
        &["cas", "k", "a", "b"],
        &["cas", "--expect-absent", "k", "b"],
        &["keys"],
        &["status"],
        &["bench", "--requests", "10"],
        &["chaos", "--duration", "1s"],
    ] {
        let start = Instant::now();
        let out = cli(&cfg, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line on stderr: {err}");
        assert!(err.contains("raft-supervisor up"), "{args:?}: says how to start: {err}");
        assert!(start.elapsed() < Duration::from_secs(3), "{args:?}: took {:?}", start.elapsed());
    }
}

#[test]
fn write_message_says_it_was_not_applied() {
    let (_tmp, cfg) = empty_cluster();
    let out = cli(&cfg, &["set", "k", "v"]);
    let err = stderr(&out);
    assert!(err.contains("not applied"), "{err}");
    assert!(err.contains("node-*/node.sock"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, cfg) = empty_cluster();
    for args in [
        &[][..],
        &["frobnicate"],
        &["set", "k"],
        &["get"],
        &["cas", "k", "only-one"],
        &["cas", "--expect-absent", "k", "a", "b"],
        &["--timeout", "5", "get", "k"],
        &["--timeout", "0s", "get", "k"],
        &["--timeout", "soon", "get", "k"],
        &["bench", "--read-ratio", "1.5"],
        &["bench", "--clients", "0"],
        &["bench", "--window", "1000"],
        &["chaos", "--faults", "meteor"],
        &["chaos", "--duration", "10"],
    ] {
        let out = cli(&cfg, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cluster.toml");
    std::fs::write(&cfg, "nodez = 3\n").unwrap();
    let out = cli(&cfg, &["get", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nodez"), "{}", stderr(&out));
}

#[test]
fn help_exits_0() {
    let (_tmp, cfg) = empty_cluster();
    let out = cli(&cfg, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit codes"));
}
