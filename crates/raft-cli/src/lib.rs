//! # raft-cli: the client of a raft key-value cluster
//!
//! `raft-cli [--config PATH] [--timeout DURATION] <command>`. The binary only parses
//! arguments and calls [`run`]; everything lives in these modules so tests call it:
//!
//! * [`client`]: leader discovery (cached leader, `NotLeader` hints, every node in turn),
//!   retries with backoff until the timeout, exactly-once writes (one random session id
//!   per client, a sequence number per write, both kept on retry), and the difference
//!   between "surely not applied" (exit 3) and "may have been applied" (exit 4).
//! * [`conn`]: one blocking connection to a node (hello, request, response by id).
//! * [`commands`]: set, get, del, cas, keys, status. Values are bytes: `set KEY --file
//!   PATH` and `set KEY -` (standard input) read them byte for byte up to
//!   `MAX_VALUE_BYTES`; `get --raw` writes them back exactly; `get --json` prints
//!   `{"key", "value"}` or, for a value that is not UTF-8, `{"key", "value_base64"}`;
//!   `keys --json` one JSON array of strings.
//! * `completions bash|zsh|fish`: a shell completion script from the same clap definitions.
//! * [`bench`]: many pipelined connections on one mio `Poll`, latency percentiles.
//! * [`chaos`]: concurrent clients plus supervisor-driven faults, then the
//!   linearizability check of the recorded history (raft-lincheck).
//!
//! ## Exit codes (DESIGN.md)
//!
//! 0 success; 1 key not found or cas mismatch (for `chaos`: the check failed);
//! 2 usage error (including a bad config file, or a request the cluster calls invalid);
//! 3 cluster unavailable, or the write refused for the state's size quota: surely not
//! applied; 4 outcome unknown.
//! Every failure prints one line on stderr saying what happened and what to do.
//!
//! ## Expressing "expected absent" in cas
//!
//! `raft-cli cas KEY EXPECTED NEW` swaps if KEY holds EXPECTED;
//! `raft-cli cas --expect-absent KEY NEW` swaps only if KEY does not exist. (An empty
//! string is a value like any other, so it cannot mean "absent".)

pub mod args;
pub mod bench;
pub mod chaos;
pub mod client;
pub mod commands;
pub mod conn;
pub mod log;
pub mod rng;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};
use client::{Client, Cluster};
use commands::Output;
use raft_config::ClusterConfig;
use std::ffi::OsString;
use std::io::Write;

pub const EXIT_OK: i32 = 0;
/// Key not found (get), cas mismatch; for chaos: violation, inconclusive, or not caught up.
pub const EXIT_MISMATCH: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
/// Cluster unavailable; a write was surely not applied.
pub const EXIT_UNAVAILABLE: i32 = 3;
/// A write may or may not have been applied.
pub const EXIT_UNKNOWN: i32 = 4;

/// Parses `args` (clap exits with 2 on a usage error, 0 for --help) and runs the command,
/// printing its output. Returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let out = run(cli);
    print_output(&out);
    out.code
}

/// Writes an output to the process's stdout and stderr.
pub fn print_output(out: &Output) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out.stdout);
    let _ = stdout.flush();
    if let Some(line) = &out.stderr {
        eprintln!("raft-cli: {line}");
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Output {
    if let Command::Cas { values, expect_absent, .. } = &cli.command {
        let want = if *expect_absent { 1 } else { 2 };
        if values.len() != want {
            let msg = if *expect_absent {
                "with --expect-absent give KEY NEW only: raft-cli cas --expect-absent KEY NEW"
            } else {
                "give KEY EXPECTED NEW, or use --expect-absent KEY NEW to swap only if KEY is absent"
            };
            Cli::command().error(clap::error::ErrorKind::WrongNumberOfValues, msg).exit();
        }
    }
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "raft-cli", &mut script);
        return Output::ok(script);
    }
    // The value is read before the config, so a missing file or an oversize value is the
    // first thing said.
    let set_value = match &cli.command {
        Command::Set { value, file, .. } => {
            match commands::read_value(&commands::ValueSource::from_args(value.as_deref(), file.as_deref())) {
                Ok(v) => Some(v),
                Err(out) => return out,
            }
        }
        _ => None,
    };
    let cfg = match ClusterConfig::load(cli.config.as_deref()) {
        Ok((cfg, _source)) => cfg,
        Err(e) => return Output::fail(EXIT_USAGE, format!("{e}; fix the config file or pass --config PATH")),
    };
    let cluster = Cluster::from_config(&cfg);
    if let Some(e) = cluster.config_error() {
        return Output::fail(EXIT_USAGE, format!("raft-cli: cannot use TLS: {e}"));
    }
    let timeout = cli.timeout;
    match cli.command {
        Command::Set { key, .. } => {
            let value = set_value.expect("read above");
            commands::set(&mut Client::new(cluster, timeout), &key, &value)
        }
        Command::Get { key, stale, raw, json } => {
            let format = match (raw, json) {
                (true, _) => commands::GetFormat::Raw,
                (_, true) => commands::GetFormat::Json,
                _ => commands::GetFormat::Line,
            };
            commands::get(&mut Client::new(cluster, timeout), &key, stale, format)
        }
        Command::Del { key } => commands::del(&mut Client::new(cluster, timeout), &key),
        Command::Cas { key, values, expect_absent } => {
            let mut client = Client::new(cluster, timeout);
            if expect_absent {
                commands::cas(&mut client, &key, None, &values[0])
            } else {
                commands::cas(&mut client, &key, Some(&values[0]), &values[1])
            }
        }
        Command::Keys { prefix, stale, json } => {
            commands::keys(&mut Client::new(cluster, timeout), prefix.as_deref().unwrap_or(""), stale, json)
        }
        Command::Status { peers: false } => commands::status(&cluster, timeout),
        Command::Status { peers: true } => log::peers(&cluster, timeout),
        Command::Log { node, from, limit, json } => log::log(&cluster, node, from, limit, json, timeout),
        Command::Bench(a) => bench::run(&cluster, &a, timeout),
        Command::Chaos(a) => chaos::run(&cluster, &a, timeout),
        Command::Completions { .. } => unreachable!("answered above"),
    }
}
