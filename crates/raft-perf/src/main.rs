//! `raft-perf`: the measuring hands of `scripts/bench-vs-etcd.sh`.
//!
//! The script starts and stops the two clusters; this binary measures what a shell
//! cannot measure precisely, and writes the report:
//!
//! * `floor`: the hardware floor of one replicated write here, one 4 KiB
//!   `pwrite` + `fdatasync` into a preallocated file (what a WAL append costs) and one
//!   Unix-socket round trip (what a hop between processes costs), medians of many.
//! * `replica-floor`: five 4 KiB appends + `fdatasync` started together on this disk,
//!   the time until three have finished (a 5-replica write's disk floor; see
//!   [`replica_floor`]), median of many rounds, and the two hops a write crosses besides
//!   the disk (a loopback TCP and a Unix-socket round trip); `scripts/bench-vs-redis.sh`
//!   prints them beside the 1-client p50s.
//! * `failover`: SIGKILL the leader (ours through `raft-supervisor kill`, etcd by pid),
//!   then write until one write succeeds, trying every live member in turn with the same
//!   short pause for both systems; prints milliseconds from the kill.
//! * `catchup`: polls a restarted member until its applied index reaches the leader's;
//!   prints milliseconds since the `--since` instant (when the script started it).
//! * `bench-etcd`: `raft-cli bench`'s load generator pointed at etcd's v3 JSON gateway
//!   (same flags plus `--etcd host:port,...` and `--timeout`, same text or JSON report):
//!   see [`etcd`]. It lives here, not in the client a learner uses.
//! * `rss`: resident set size of processes, from `/proc/<pid>/status`.
//! * `report`: reads the result directory and rewrites the generated part of
//!   `docs/performance.md` (between the BEGIN/END GENERATED markers).
//!
//! For `scripts/bench-scale.sh` (issue 12, see [`scale`] and [`scale_report`]):
//! `scale-fill`, `restart-time`, `scale-catchup`, `scale-verify`, `disk-rate` and
//! `scale-report` (its own generated section of `docs/performance.md`).
//!
//! For `TCP=1 scripts/bench-vs-etcd.sh` (issue 18): `tcp-report`, ours over Unix sockets
//! and over TCP with TLS next to etcd over TCP (see [`tcp_report`]).
//!
//! Every wait is bounded; a measurement that cannot finish prints an error and exits 1.

mod etcd;
mod replica_floor;
mod report;
mod scale;
mod scale_report;
mod tcp_report;

use clap::Parser;
use etcd::BlockingConn;
use raft_cli::args::BenchArgs;
use raft_cli::client::Cluster;
use raft_cli::conn::NodeConn;
use raft_config::ClusterConfig;
use raft_core::{NodeId, RoleKind};
use raft_wire::{Request, Response, WriteOp};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pause between two rounds of write attempts while no member accepts writes: the time
/// resolution of the failover figure, the same for both systems.
const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(2);
/// One write attempt waits at most this long for an answer before trying the next member.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Poll period of `catchup`.
const CATCHUP_POLL: Duration = Duration::from_millis(2);
/// Writes of `floor disk` and round trips of `floor rtt` (medians are reported).
const DISK_SAMPLES: usize = 400;
const RTT_SAMPLES: usize = 20_000;

fn usage() -> ExitCode {
    eprintln!(
        "usage: raft-perf floor --dir DIR\n\
         \x20      raft-perf replica-floor --dir DIR [--rounds N]\n\
         \x20      raft-perf failover --raft-config PATH --supervisor BIN [--deadline-ms N]\n\
         \x20      raft-perf failover --etcd EP,EP,... --pids PID,PID,... [--deadline-ms N]\n\
         \x20      raft-perf catchup --raft-config PATH --node N --since UNIX_NS [--deadline-ms N]\n\
         \x20      raft-perf catchup --etcd EP,EP,... --node N --since UNIX_NS [--deadline-ms N]\n\
         \x20      raft-perf raft-pids --raft-config PATH\n\
         \x20      raft-perf leader (--raft-config PATH | --etcd EP,EP,...) [--deadline-ms N]\n\
         \x20      raft-perf bench-etcd --etcd EP,EP,... [--timeout DURATION] [raft-cli bench flags]\n\
         \x20      raft-perf rss PID,PID,...\n\
         \x20      raft-perf report --results DIR --out FILE\n\
         \x20      raft-perf scale-fill (--raft-config PATH | --etcd EP,... --pids PID,...) --keys N [--tenths A-B]\n\
         \x20                 [--tenth-count 10] [--clients 64] [--window 8] [--value-size 100] [--timeout-ms 10000]\n\
         \x20      raft-perf restart-time --raft-config PATH --supervisor BIN --node N [--deadline-ms N]\n\
         \x20      raft-perf scale-catchup --raft-config PATH --node N --since UNIX_NS [--deadline-ms N]\n\
         \x20      raft-perf scale-verify --raft-config PATH --keys N --since UNIX_NS [--samples 1000] [--value-size 100]\n\
         \x20      raft-perf disk-rate --dir DIR [--mib 256]\n\
         \x20      raft-perf scale-report --results DIR --out FILE\n\
         \x20      raft-perf tcp-report --results DIR --out FILE"
    );
    ExitCode::from(2)
}

/// `raft-perf bench-etcd`: `raft-cli bench`'s flags, plus where etcd is.
#[derive(Debug, Parser)]
#[command(
    name = "raft-perf bench-etcd",
    about = "Load an etcd cluster through its v3 JSON gateway, as raft-cli bench loads ours"
)]
struct BenchEtcdCli {
    /// etcd's v3 JSON gateway endpoints: host:port,host:port,...
    #[arg(long, value_name = "ENDPOINTS")]
    etcd: String,
    /// How long to keep trying before giving up, like 500ms, 2s or 1m.
    #[arg(long, value_name = "DURATION", value_parser = raft_cli::args::parse_duration, default_value = "5s")]
    timeout: Duration,
    #[command(flatten)]
    bench: BenchArgs,
}

/// Runs `bench-etcd` with the arguments after the subcommand; clap exits 2 on a usage error.
fn bench_etcd(args: &[String]) -> ExitCode {
    let cli = BenchEtcdCli::parse_from(std::iter::once("raft-perf bench-etcd".to_string()).chain(args.iter().cloned()));
    let out = etcd::run(&cli.etcd, &cli.bench, cli.timeout);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out.stdout);
    let _ = stdout.flush();
    if let Some(line) = &out.stderr {
        eprintln!("raft-perf: {line}");
    }
    ExitCode::from(u8::try_from(out.code).unwrap_or(1))
}

/// `--name value` pairs after the subcommand.
pub(crate) struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a.strip_prefix("--").ok_or_else(|| format!("unexpected argument {a:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_string(), value.clone()));
        }
        Ok(Flags(out))
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn need(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("--{name} is required"))
    }
    fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name} wants a number, got {v:?}")),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage() };
    if cmd == "bench-etcd" {
        return bench_etcd(&args[1..]);
    }
    if cmd == "rss" {
        return match args.get(1).map(|p| rss_kib(p)) {
            Some(Ok(v)) => {
                println!("{}", v.iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
                ExitCode::SUCCESS
            }
            Some(Err(e)) => fail(&e),
            None => usage(),
        };
    }
    let flags = match Flags::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("raft-perf: {e}");
            return usage();
        }
    };
    let res = match cmd.as_str() {
        "floor" => floor(&flags),
        "replica-floor" => replica_floor(&flags),
        "failover" => failover(&flags),
        "catchup" => catchup(&flags),
        "raft-pids" => raft_pids(&flags),
        "leader" => leader(&flags),
        "report" => report::run(&flags),
        "scale-fill" => scale::fill(&flags),
        "restart-time" => scale::restart_time(&flags),
        "scale-catchup" => scale::catchup(&flags),
        "scale-verify" => scale::verify(&flags),
        "disk-rate" => scale::disk_rate(&flags),
        "scale-report" => scale_report::run(&flags),
        "tcp-report" => tcp_report::run(&flags),
        _ => return usage(),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("raft-perf: {e}");
    ExitCode::from(1)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

// ----- floor ---------------------------------------------------------------------------

fn floor(flags: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(flags.need("dir")?);
    let fsync_us = disk_floor_us(&dir).map_err(|e| format!("disk floor in {}: {e}", dir.display()))?;
    let rtt_us = rtt_floor_us().map_err(|e| format!("socket round trip: {e}"))?;
    println!("fdatasync_4k_us {fsync_us:.1}");
    println!("unix_rtt_us {rtt_us:.1}");
    Ok(())
}

fn replica_floor(flags: &Flags) -> Result<(), String> {
    let dir = PathBuf::from(flags.need("dir")?);
    let rounds = flags.num("rounds", replica_floor::DEFAULT_ROUNDS as u64)?;
    if rounds == 0 || rounds > replica_floor::MAX_ROUNDS as u64 {
        return Err(format!("--rounds must be 1 to {}, got {rounds}", replica_floor::MAX_ROUNDS));
    }
    let f = replica_floor::measure(&dir, rounds as usize)
        .map_err(|e| format!("replica floor in {}: {e}", dir.display()))?;
    println!("replica_floor_3of5_us {:.1}", f.quorum_p50_us);
    println!("fdatasync_4k_concurrent5_us {:.1}", f.each_p50_us);
    // The hops a write crosses besides the disk: client <-> leader over TCP, leader <->
    // followers over Unix sockets (the default transport).
    println!("tcp_rtt_us {:.1}", tcp_rtt_us().map_err(|e| format!("TCP round trip: {e}"))?);
    println!("unix_rtt_us {:.1}", rtt_floor_us().map_err(|e| format!("Unix-socket round trip: {e}"))?);
    Ok(())
}

/// Median of 4 KiB `pwrite` + `fdatasync` into a file whose blocks are already written
/// (as the WAL's are after its first pass over a preallocated segment): the cost of
/// flushing data, without the metadata commit of converting an unwritten extent.
fn disk_floor_us(dir: &Path) -> std::io::Result<f64> {
    let path = dir.join("raft-perf-floor.dat");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    file.write_all_at(&vec![0u8; DISK_SAMPLES * 4096], 0)?;
    file.sync_all()?;
    let block = vec![0x5au8; 4096];
    let mut samples = Vec::with_capacity(DISK_SAMPLES);
    for i in 0..DISK_SAMPLES {
        let t = Instant::now();
        file.write_all_at(&block, (i * 4096) as u64)?;
        file.sync_data()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(median(samples))
}

/// Median round trip of a 64-byte message between two threads over a Unix socket pair.
fn rtt_floor_us() -> std::io::Result<f64> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    rtt_us(a, b)
}

/// Median loopback TCP round trip (`TCP_NODELAY`, as the RESP front end's sockets): the
/// hop between a client and the leader.
fn tcp_rtt_us() -> std::io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    rtt_us(a, b)
}

/// Median round trip of 64 bytes from `a` to an echo on `b` and back, the echo a thread
/// blocked in its read as a node is in `epoll_wait` (a thread's wake-up costs what a
/// process's does).
fn rtt_us<S: Read + Write + Send + 'static>(mut a: S, mut b: S) -> std::io::Result<f64> {
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 64];
        for _ in 0..RTT_SAMPLES {
            b.read_exact(&mut buf)?;
            b.write_all(&buf)?;
        }
        Ok(())
    });
    let mut buf = [7u8; 64];
    let mut samples = Vec::with_capacity(RTT_SAMPLES);
    for _ in 0..RTT_SAMPLES {
        let t = Instant::now();
        a.write_all(&buf)?;
        a.read_exact(&mut buf)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    echo.join().expect("echo thread")?;
    Ok(median(samples))
}

// ----- failover ------------------------------------------------------------------------

pub(crate) fn deadline(flags: &Flags) -> Result<Instant, String> {
    Ok(Instant::now() + Duration::from_millis(flags.num("deadline-ms", 20_000)?))
}

fn failover(flags: &Flags) -> Result<(), String> {
    let deadline = deadline(flags)?;
    if let Some(eps) = flags.get("etcd") {
        let eps = etcd::parse_endpoints(eps)?;
        let pids: Vec<i32> = flags
            .need("pids")?
            .split(',')
            .map(|p| p.trim().parse().map_err(|_| format!("bad pid {p:?}")))
            .collect::<Result<_, _>>()?;
        if pids.len() != eps.len() {
            return Err("--pids must list one pid per endpoint, in the same order".into());
        }
        failover_etcd(&eps, &pids, deadline)
    } else {
        let cluster = raft_cluster(flags)?;
        failover_raft(&cluster, flags.need("raft-config")?, flags.need("supervisor")?, deadline)
    }
}

pub(crate) fn raft_cluster(flags: &Flags) -> Result<Cluster, String> {
    let path = PathBuf::from(flags.need("raft-config")?);
    let (cfg, _) = ClusterConfig::load(Some(&path)).map_err(|e| e.to_string())?;
    Ok(Cluster::from_config(&cfg))
}

fn raft_leader(cluster: &Cluster) -> Option<(NodeId, u32)> {
    cluster.nodes.iter().find_map(|(id, _)| {
        let s = cluster.node_status(*id, Duration::from_millis(300)).ok()?;
        (s.role == RoleKind::Leader).then_some((s.id, s.pid))
    })
}

fn failover_raft(cluster: &Cluster, config: &str, supervisor: &str, deadline: Instant) -> Result<(), String> {
    let (leader, _pid) = raft_leader(cluster).ok_or("no leader before the kill")?;
    let live: Vec<(NodeId, PathBuf)> = cluster.nodes.iter().filter(|(id, _)| *id != leader).cloned().collect();
    let session = raft_cli::client::random_u64();
    let op = || WriteOp::Set { key: "failover-probe-key".into(), value: b"x".to_vec() };
    let start = Instant::now();
    let status = std::process::Command::new(supervisor)
        .args(["--config", config, "kill", &leader.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {supervisor}: {e}"))?;
    if !status.success() {
        return Err(format!("raft-supervisor kill {leader} failed: {status}"));
    }
    let mut conns: Vec<Option<NodeConn>> = live.iter().map(|_| None).collect();
    let mut first_hint: Option<Duration> = None;
    while Instant::now() < deadline {
        for (i, (id, path)) in live.iter().enumerate() {
            if conns[i].is_none() {
                conns[i] = NodeConn::connect(*id, path, ATTEMPT_TIMEOUT).ok();
            }
            let Some(conn) = conns[i].as_mut() else { continue };
            // The same session and seq on every attempt: the probe applies at most once.
            let req = Request::Write { session, seq: 1, op: op() };
            match conn.call(req, Instant::now() + ATTEMPT_TIMEOUT) {
                Ok(Response::Ok(_)) => {
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    let hint = first_hint.map_or(ms, |d| d.as_secs_f64() * 1e3);
                    println!("{ms:.1} leader_known_ms={hint:.1} killed=n{leader} new=n{id}");
                    return Ok(());
                }
                Ok(Response::NotLeader { leader: Some(l) }) if l != leader => {
                    first_hint.get_or_insert(start.elapsed());
                }
                Ok(_) => {}
                Err(_) => conns[i] = None,
            }
        }
        std::thread::sleep(FAILOVER_RETRY_PAUSE);
    }
    Err("no write succeeded before the deadline".into())
}

fn failover_etcd(eps: &[SocketAddr], pids: &[i32], deadline: Instant) -> Result<(), String> {
    let leader = etcd::find_leader(eps, ATTEMPT_TIMEOUT).ok_or("no etcd leader before the kill")?;
    let live: Vec<SocketAddr> = eps.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, &a)| a).collect();
    // Connections are opened before the kill, so the figure does not include connecting.
    let mut conns: Vec<Option<BlockingConn>> =
        live.iter().map(|&a| BlockingConn::connect(a, ATTEMPT_TIMEOUT).ok()).collect();
    let start = Instant::now();
    // SAFETY: kill(2) with a pid the script started and a constant signal.
    if unsafe { libc::kill(pids[leader], libc::SIGKILL) } != 0 {
        return Err(format!("kill {}: {}", pids[leader], std::io::Error::last_os_error()));
    }
    let mut first_leader: Option<Duration> = None;
    while Instant::now() < deadline {
        for (i, &addr) in live.iter().enumerate() {
            if conns[i].is_none() {
                conns[i] = BlockingConn::connect(addr, ATTEMPT_TIMEOUT).ok();
            }
            let Some(conn) = conns[i].as_mut() else { continue };
            match conn.put("failover-probe-key", b"x") {
                Ok(()) => {
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    let known = first_leader.map_or(ms, |d| d.as_secs_f64() * 1e3);
                    println!("{ms:.1} leader_known_ms={known:.1} killed=ep{} via={addr}", leader + 1);
                    return Ok(());
                }
                Err(_) => {
                    conns[i] = None;
                    if first_leader.is_none()
                        && BlockingConn::connect(addr, ATTEMPT_TIMEOUT)
                            .and_then(|mut c| c.status())
                            .is_ok_and(|s| s.leader != 0 && s.raft_term > 0 && live_leader(eps, leader, s.leader))
                    {
                        first_leader = Some(start.elapsed());
                    }
                }
            }
        }
        std::thread::sleep(FAILOVER_RETRY_PAUSE);
    }
    Err("no etcd write succeeded before the deadline".into())
}

/// Whether `leader` (a member id) is not the member at position `killed`: checked lazily,
/// only while no write succeeded, by asking the live endpoints for their member ids.
fn live_leader(eps: &[SocketAddr], killed: usize, leader: u64) -> bool {
    eps.iter().enumerate().filter(|(i, _)| *i != killed).any(|(_, &a)| {
        BlockingConn::connect(a, Duration::from_millis(100))
            .and_then(|mut c| c.status())
            .is_ok_and(|s| s.member_id == leader)
    })
}

// ----- catch-up ------------------------------------------------------------------------

pub(crate) fn since(flags: &Flags) -> Result<SystemTime, String> {
    let ns = flags.num("since", 0)?;
    if ns == 0 {
        return Err("--since UNIX_NS is required (date +%s%N when the member was started)".into());
    }
    Ok(UNIX_EPOCH + Duration::from_nanos(ns))
}

pub(crate) fn elapsed_ms(since: SystemTime) -> f64 {
    SystemTime::now().duration_since(since).unwrap_or_default().as_secs_f64() * 1e3
}

fn catchup(flags: &Flags) -> Result<(), String> {
    let since = since(flags)?;
    let deadline = deadline(flags)?;
    let node = flags.num("node", 0)?;
    if let Some(eps) = flags.get("etcd") {
        let eps = etcd::parse_endpoints(eps)?;
        let member = *eps.get((node as usize).wrapping_sub(1)).ok_or("--node must be 1..=number of endpoints")?;
        let leader = etcd::find_leader(&eps, ATTEMPT_TIMEOUT).ok_or("no etcd leader")?;
        let target = BlockingConn::connect(eps[leader], ATTEMPT_TIMEOUT)
            .and_then(|mut c| c.status())
            .map_err(|e| format!("leader status: {e}"))?
            .raft_applied_index;
        let mut conn: Option<BlockingConn> = None;
        while Instant::now() < deadline {
            if conn.is_none() {
                conn = BlockingConn::connect(member, ATTEMPT_TIMEOUT).ok();
            }
            if let Some(c) = conn.as_mut() {
                match c.status() {
                    Ok(s) if s.raft_applied_index >= target => {
                        println!("{:.1} applied={} target={target}", elapsed_ms(since), s.raft_applied_index);
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(_) => conn = None,
                }
            }
            std::thread::sleep(CATCHUP_POLL);
        }
        Err(format!("etcd member {node} did not catch up to applied index {target} in time"))
    } else {
        let cluster = raft_cluster(flags)?;
        let (leader, _) = raft_leader(&cluster).ok_or("no leader")?;
        let target = cluster.node_status(leader, ATTEMPT_TIMEOUT)?.applied;
        while Instant::now() < deadline {
            if let Ok(s) = cluster.node_status(node, ATTEMPT_TIMEOUT) {
                if s.applied >= target {
                    println!("{:.1} applied={} target={target}", elapsed_ms(since), s.applied);
                    return Ok(());
                }
            }
            std::thread::sleep(CATCHUP_POLL);
        }
        Err(format!("node {node} did not catch up to applied index {target} in time"))
    }
}

/// Waits for a leader; prints its node id (ours) or endpoint number from 1 (etcd).
fn leader(flags: &Flags) -> Result<(), String> {
    let deadline = deadline(flags)?;
    let etcd_eps = flags.get("etcd").map(etcd::parse_endpoints).transpose()?;
    let cluster = if etcd_eps.is_none() { Some(raft_cluster(flags)?) } else { None };
    while Instant::now() < deadline {
        let found = match (&etcd_eps, &cluster) {
            (Some(eps), _) => etcd::find_leader(eps, ATTEMPT_TIMEOUT).map(|i| i as u64 + 1),
            (None, Some(c)) => raft_leader(c).map(|(id, _)| id),
            (None, None) => unreachable!("one of the two is set"),
        };
        if let Some(l) = found {
            println!("{l}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("no leader before the deadline".into())
}

// ----- processes -----------------------------------------------------------------------

fn raft_pids(flags: &Flags) -> Result<(), String> {
    let cluster = raft_cluster(flags)?;
    let mut pids = Vec::new();
    for (id, _) in &cluster.nodes {
        pids.push(cluster.node_status(*id, ATTEMPT_TIMEOUT)?.pid.to_string());
    }
    println!("{}", pids.join(","));
    Ok(())
}

/// VmRSS of each pid, in KiB.
fn rss_kib(pids: &str) -> Result<Vec<u64>, String> {
    pids.split(',')
        .map(|p| {
            let p = p.trim();
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).map_err(|e| format!("pid {p}: {e}"))?;
            vm_rss(&status).ok_or_else(|| format!("pid {p}: no VmRSS"))
        })
        .collect()
}

/// VmRSS of one process in KiB; `None` when it is gone.
pub(crate) fn rss_of(pid: u32) -> Option<u64> {
    vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn vm_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both hop probes finish with a round trip that is a round trip: more than nothing,
    /// less than a second (a probe that hung, or timed nothing, fails here).
    #[test]
    fn hop_probes_time_real_round_trips() {
        for (what, rtt) in [("tcp", tcp_rtt_us().unwrap()), ("unix", rtt_floor_us().unwrap())] {
            assert!(rtt > 0.5 && rtt < 1e6, "{what} round trip {rtt} us");
        }
    }

    #[test]
    fn bench_etcd_takes_raft_cli_bench_flags() {
        let cli = BenchEtcdCli::try_parse_from([
            "raft-perf bench-etcd",
            "--timeout",
            "10s",
            "--etcd",
            "127.0.0.1:2379",
            "--json",
            "--value-size",
            "100",
            "--clients",
            "16",
            "--window",
            "1",
            "--requests",
            "2000",
            "--read-ratio",
            "0",
            "--keys",
            "1000",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(cli.etcd, "127.0.0.1:2379");
        assert_eq!(cli.timeout, Duration::from_secs(10));
        let b = &cli.bench;
        assert_eq!((b.clients, b.window, b.requests, b.keys, b.value_size), (16, 1, 2000, 1000, 100));
        assert!(b.json && b.sequential_keys && !b.stale_reads);
        assert_eq!(b.read_ratio, 0.0);
        let err = BenchEtcdCli::try_parse_from(["raft-perf bench-etcd", "--clients", "4"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "--etcd is required");
    }
}
