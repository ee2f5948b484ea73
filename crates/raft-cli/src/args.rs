//! Command-line arguments (clap derive). Parsing errors exit with code 2, clap's default.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// The default `--timeout`: long enough for an election or two, short enough for a person.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "raft-cli",
    version,
    about = "Client of a raft key-value cluster: finds the leader, retries safely, benchmarks, checks linearizability",
    after_help = "Exit codes: 0 ok; 1 key not found or cas mismatch (chaos: check failed); 2 usage error; \
                  3 cluster unavailable, the write was surely not applied; 4 outcome unknown, the write may or \
                  may not have been applied."
)]
pub struct Cli {
    /// Cluster config file (default: $RAFT_CONFIG, then ./cluster.toml, then built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// How long to keep trying before giving up, like 500ms, 2s or 1m.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set KEY to VALUE (prints OK once a majority has it).
    ///
    /// The value is VALUE, or the bytes of a file with `--file PATH`, or standard input with
    /// `-` (so binary data and large values need no shell quoting). At most 256 KiB.
    Set {
        key: String,
        /// The value; `-` reads it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file", allow_hyphen_values = true)]
        value: Option<String>,
        /// Take the value byte for byte from this file.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Print the value of KEY alone on stdout, then a newline (exit 1 if not found).
    Get {
        key: String,
        /// Read from any node's own state at once (may be stale) instead of a linearizable read.
        #[arg(long)]
        stale: bool,
        /// Write the value's exact bytes and nothing else (no newline).
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Print {"key": K, "value": V} (V a JSON string), or {"key": K, "value_base64": B}
        /// when the value is not UTF-8.
        #[arg(long)]
        json: bool,
    },
    /// Delete KEY.
    Del { key: String },
    /// Set KEY to NEW only if its value is EXPECTED (exit 1 on mismatch).
    ///
    /// `cas KEY EXPECTED NEW`, or `cas --expect-absent KEY NEW` to swap only if KEY does not exist.
    Cas {
        key: String,
        /// EXPECTED NEW, or just NEW with --expect-absent.
        #[arg(num_args = 1..=2, required = true, value_names = ["EXPECTED", "NEW"])]
        values: Vec<String>,
        /// Swap only if KEY is absent (then give NEW alone).
        #[arg(long)]
        expect_absent: bool,
    },
    /// List keys starting with PREFIX, one per line, sorted.
    Keys {
        prefix: Option<String>,
        /// Read from any node's own state (may be stale).
        #[arg(long)]
        stale: bool,
        /// Print one JSON array of the keys as strings (a key may hold a newline).
        #[arg(long)]
        json: bool,
    },
    /// Show every node's status as a table (unreachable nodes included).
    Status {
        /// Show the leader's view of each follower instead: match index, next index,
        /// replication state (probe, replicate, snapshot).
        #[arg(long)]
        peers: bool,
    },
    /// Show node N's own log entries: index, term, applied/committed/uncommitted, and
    /// what each entry is (a leader's no-op or a client's write). Asks node N itself.
    Log {
        node: u64,
        /// First index to show (default: the last --limit entries).
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
        /// How many entries to show.
        #[arg(long, value_name = "K", default_value_t = crate::log::DEFAULT_LOG_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..=raft_wire::logview::MAX_LOG_ENTRIES_PER_REQUEST as i64))]
        limit: u32,
        /// Print one JSON object (keys and values as text, or base64 when not UTF-8).
        #[arg(long)]
        json: bool,
    },
    /// Load the cluster and report throughput and latency percentiles.
    Bench(BenchArgs),
    /// Run clients against the cluster while injecting faults, then check linearizability.
    Chaos(ChaosArgs),
    /// Print a shell completion script: `source <(raft-cli completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=crate::bench::MAX_CLIENTS as i64))]
    pub clients: u32,
    /// Total requests across all clients.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=crate::bench::MAX_REQUESTS))]
    pub requests: u64,
    /// Distinct keys (bench-0000000000 .. : 16 bytes each).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub keys: u64,
    /// Take keys in order (0, 1, 2, ... wrapping at --keys) instead of at random: fills the key space.
    #[arg(long)]
    pub sequential_keys: bool,
    /// With --sequential-keys, the number of the first key (then first+1, ... wrapping at
    /// --keys): consecutive runs fill consecutive ranges (raft-perf scale-fill runs a fill in tenths).
    #[arg(long, default_value_t = 0)]
    pub first_key: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=raft_wire::MAX_VALUE_BYTES as i64))]
    pub value_size: u32,
    /// Fraction of requests that are reads, 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = parse_ratio)]
    pub read_ratio: f64,
    /// Reads skip the ReadIndex round: the leader answers from its own state (may be stale).
    #[arg(long)]
    pub stale_reads: bool,
    /// Requests in flight per connection (pipelining window).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=crate::bench::MAX_WINDOW as i64))]
    pub window: u32,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// How long clients run and faults are injected.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: u32,
    /// Faults to inject, comma separated: kill (also kills the leader), pause, partition. Empty: none.
    #[arg(long, default_value = "kill,pause,partition,net", value_parser = parse_faults)]
    pub faults: FaultSet,
    /// Write the recorded history as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Seed of the fault schedule and the clients' choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keys the clients share (a small space makes conflicts likely).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keys: u32,
    /// Per-operation timeout of the chaos clients (an expired write is recorded as unknown).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// How long to wait, after the faults, for every node to catch up.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// The nodes are not run by raft-supervisor (systemd, containers, a test's network):
    /// inject no faults (whoever runs the nodes makes them and undoes them before
    /// --duration ends); only drive the clients, wait for the catch-up and check.
    #[arg(long, conflicts_with = "faults")]
    pub no_supervisor: bool,
}

/// Which faults `chaos` may inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet {
    pub kill: bool,
    pub pause: bool,
    pub partition: bool,
    /// Network levers: delay (with jitter) and loss on some nodes' outgoing messages.
    pub net: bool,
}

impl FaultSet {
    pub fn is_empty(&self) -> bool {
        !(self.kill || self.pause || self.partition || self.net)
    }
}

/// Parses `kill,pause,partition,net` (any subset; empty or `none` for no faults).
pub fn parse_faults(s: &str) -> Result<FaultSet, String> {
    let mut set = FaultSet::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "kill" => set.kill = true,
            "pause" => set.pause = true,
            "partition" => set.partition = true,
            "net" => set.net = true,
            "none" => {}
            other => return Err(format!("unknown fault `{other}`: use kill, pause, partition, net (comma separated)")),
        }
    }
    Ok(set)
}

/// Longest accepted duration: a day is beyond any use of a client timeout or a chaos run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `100us`. A unit is required; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let hint = || format!("invalid duration `{s}`: use a number with a unit, like 500ms, 2s or 1m");
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(hint());
    }
    let value: f64 = number.parse().map_err(|_| hint())?;
    let scale_ns = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(hint()),
    };
    let nanos = value * scale_ns;
    if nanos < 1.0 {
        return Err(format!("invalid duration `{s}`: must be more than zero"));
    }
    if nanos > MAX_DURATION.as_nanos() as f64 {
        return Err(format!("invalid duration `{s}`: at most 24h"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses a fraction in [0, 1].
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("invalid ratio `{s}`: use a number from 0 to 1, like 0.9")),
    }
}

/// Formats a duration the way the parser reads it back: `500ms`, `2s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{}us", d.as_micros())
    } else if ms < 1000.0 {
        format!("{}ms", (ms * 10.0).round() / 10.0)
    } else {
        format!("{}s", (d.as_secs_f64() * 100.0).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration(" 3s "), Ok(Duration::from_secs(3)));
        for bad in ["", "5", "s", "ms", "-1s", "1.s", ".5s", "1sec", "0s", "0ms", "1e3ms", "25h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_duration("5").unwrap_err().contains("500ms"), "the message shows the form");
    }

    #[test]
    fn durations_print_back() {
        for d in ["500ms", "2s", "1.5s", "250us"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn faults() {
        assert_eq!(
            parse_faults("kill,pause,partition"),
            Ok(FaultSet { kill: true, pause: true, partition: true, net: false })
        );
        assert_eq!(parse_faults("net"), Ok(FaultSet { net: true, ..FaultSet::default() }));
        assert_eq!(parse_faults("pause"), Ok(FaultSet { pause: true, ..FaultSet::default() }));
        assert!(parse_faults("").unwrap().is_empty());
        assert!(parse_faults("none").unwrap().is_empty());
        assert!(parse_faults("kill,fire").is_err());
    }

    #[test]
    fn ratio() {
        assert_eq!(parse_ratio("0.9"), Ok(0.9));
        assert_eq!(parse_ratio("0"), Ok(0.0));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        assert!(parse_ratio("1.1").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("half").is_err());
    }

    #[test]
    fn global_flags_and_defaults() {
        let cli = Cli::try_parse_from(["raft-cli", "get", "k", "--timeout", "200ms", "--stale"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_millis(200));
        assert!(matches!(cli.command, Command::Get { ref key, stale: true, raw: false, json: false } if key == "k"));
        let cli = Cli::try_parse_from(["raft-cli", "--config", "/x.toml", "set", "k", "v"]).unwrap();
        assert_eq!(cli.timeout, DEFAULT_TIMEOUT);
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        let cli = Cli::try_parse_from(["raft-cli", "cas", "--expect-absent", "k", "new"]).unwrap();
        assert!(matches!(cli.command, Command::Cas { expect_absent: true, ref values, .. } if values == &["new"]));
        let cli = Cli::try_parse_from(["raft-cli", "bench", "--clients", "4", "--json", "--stale-reads"]).unwrap();
        match cli.command {
            Command::Bench(b) => {
                assert_eq!((b.clients, b.requests, b.window), (4, 10_000, 8));
                assert!(b.json && b.stale_reads);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["raft-cli", "chaos", "--duration", "10s", "--faults", "pause", "--seed", "7"])
            .unwrap();
        match cli.command {
            Command::Chaos(c) => {
                assert_eq!(c.duration, Duration::from_secs(10));
                assert_eq!(c.seed, Some(7));
                assert!(c.faults.pause && !c.faults.kill);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn value_sources_and_output_forms() {
        let set = |args: &[&str]| Cli::try_parse_from(["raft-cli", "set"].iter().chain(args)).map(|c| c.command);
        assert!(matches!(set(&["k", "v"]).unwrap(), Command::Set { value: Some(v), file: None, .. } if v == "v"));
        assert!(matches!(set(&["k", "-"]).unwrap(), Command::Set { value: Some(v), .. } if v == "-"));
        assert!(matches!(set(&["k", "-x"]).unwrap(), Command::Set { value: Some(v), .. } if v == "-x"));
        assert!(
            matches!(set(&["k", "--file", "/f"]).unwrap(), Command::Set { value: None, file: Some(f), .. } if f == std::path::Path::new("/f"))
        );
        assert_eq!(set(&["k"]).unwrap_err().exit_code(), 2, "a value or --file is needed");
        assert_eq!(set(&["k", "v", "--file", "/f"]).unwrap_err().exit_code(), 2, "not both");
        let get = |args: &[&str]| Cli::try_parse_from(["raft-cli", "get"].iter().chain(args)).map(|c| c.command);
        assert!(matches!(get(&["k", "--raw"]).unwrap(), Command::Get { raw: true, json: false, .. }));
        assert!(matches!(get(&["k", "--json"]).unwrap(), Command::Get { raw: false, json: true, .. }));
        assert_eq!(get(&["k", "--raw", "--json"]).unwrap_err().exit_code(), 2);
        let cli = Cli::try_parse_from(["raft-cli", "keys", "p", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Keys { json: true, prefix: Some(ref p), .. } if p == "p"));
        let cli = Cli::try_parse_from(["raft-cli", "completions", "zsh"]).unwrap();
        assert!(matches!(cli.command, Command::Completions { shell: clap_complete::Shell::Zsh }));
        assert!(Cli::try_parse_from(["raft-cli", "completions", "tcsh-ish"]).is_err());
    }

    #[test]
    fn usage_errors_are_exit_2() {
        for args in [&["raft-cli"][..], &["raft-cli", "get"], &["raft-cli", "--timeout", "7", "get", "k"]] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
