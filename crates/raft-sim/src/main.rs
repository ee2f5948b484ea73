//! `raft-sim`: run random fault schedules against raft-core, or replay one seed.

use clap::Parser;
use raft_sim::{replay_command, run_seed, run_seeds, Options};
use std::process::ExitCode;

/// Deterministic cluster simulator for raft-core: every seed is a reproducible schedule
/// of crashes, partitions, message loss and client traffic, checked after every step.
#[derive(Parser, Debug)]
#[command(name = "raft-sim", version)]
struct Args {
    /// Run this many seeds (starting at --first-seed) and print one summary line.
    #[arg(long, default_value_t = 1000, conflicts_with = "seed")]
    seeds: u64,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run this one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print every tick, message, fault, client operation and core event.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Cluster size (default: 3, 5 or 7, drawn from the seed).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: Option<u64>,
    /// Ticks of the fault phase (default: drawn from the seed, 400..900).
    #[arg(long)]
    ticks: Option<u64>,
    /// Worker threads for --seeds (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run every node with one of raft-core's planted bugs.
    #[cfg(feature = "bugs")]
    #[arg(long, value_enum)]
    bug: Option<raft_sim::Bug>,
    /// Use the fault mix tilted toward a bug's schedules (implied by --bug); alone, it
    /// runs those schedules against the correct core.
    #[cfg(feature = "bugs")]
    #[arg(long, value_enum)]
    bias: Option<raft_sim::Bug>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        nodes: args.nodes.map(|n| n as usize),
        ticks: args.ticks,
        #[cfg(feature = "bugs")]
        bug: args.bug,
        #[cfg(feature = "bugs")]
        bias: args.bias.or(args.bug),
    };
    if let Some(seed) = args.seed {
        let trace: Option<Box<dyn std::io::Write>> =
            args.trace.then(|| Box::new(std::io::BufWriter::new(std::io::stdout())) as Box<dyn std::io::Write>);
        let r = run_seed(seed, &opts, trace);
        let s = &r.stats;
        match r.violation {
            None => {
                println!(
                    "seed {seed}: ok (steps: {}, messages: {}, elections: {}, snapshots: {}, ops: {})",
                    s.steps, s.messages, s.elections, s.snapshots, s.ops
                );
                ExitCode::SUCCESS
            }
            Some(v) => {
                println!("seed {seed}: {v}");
                if !args.trace {
                    println!("replay: {}", replay_command(seed, &opts));
                }
                ExitCode::FAILURE
            }
        }
    } else {
        // Core panics become violations with their message; keep stderr quiet.
        std::panic::set_hook(Box::new(|_| {}));
        let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let report = run_seeds(args.first_seed, args.seeds, &opts, jobs, false);
        for f in report.failures.iter().take(20) {
            let v = f.violation.as_ref().expect("failures have violations").to_string();
            // One line per seed here; `--seed N` prints the whole of it.
            let short: String = v.chars().take(400).collect();
            let more = if short.len() < v.len() { " ..." } else { "" };
            println!("seed {}: {short}{more}", f.seed);
            println!("  replay: {}", replay_command(f.seed, &opts));
        }
        if report.failures.len() > 20 {
            println!("... and {} more failing seeds", report.failures.len() - 20);
        }
        println!("{}", report.summary_line());
        if report.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
