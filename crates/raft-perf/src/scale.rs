//! The measuring hands of `scripts/bench-scale.sh` (issue 12): a fill of N keys in
//! tenths, restart and catch-up times with the rates they imply, and the check that every
//! acknowledged write survives a kill -9 of every node.
//!
//! * `scale-fill`: runs tenths `A..=B` of a sequential fill of `--keys N` (tenth `k`
//!   writes keys `k*N/10 .. (k+1)*N/10`, one `raft_cli::bench` run each, in this process,
//!   or the same generator against etcd) and prints one JSON object a line per tenth: the
//!   bench report, the leader and term before and after, every node's RSS, and what the
//!   node logs said during the tenth (`became leader` lines, snapshot lines). Tenths run
//!   back to back; each ends when its last write is answered, so the window drains at
//!   every tenth boundary (a dip of one round trip, not of a snapshot).
//! * `restart-time`: `raft-supervisor restart N`, then the time until the new process's
//!   applied index reaches the leader's commit; the node's own `storage recovered` line
//!   against the process start time gives the recovery time, and the snapshot file plus
//!   the used part of the WAL segments over it the recovery rate.
//! * `scale-catchup`: the time until a restarted node's applied index reaches the
//!   leader's, and from the node logs the snapshot transfer that brought it there, if any.
//! * `scale-verify`: after a kill -9 of every node: the time until all answer with one
//!   leader and the same applied index, then every `bench-` key counted through prefix
//!   listings and a sample of values read back (linearizable reads).
//! * `disk-rate`: sequential write (then fdatasync) and O_DIRECT read of a scratch file:
//!   the disk's own rate, to hold the recovery and transfer rates against.
//!
//! ## What the node-log parsing expects
//!
//! A node's log line is `YYYY-MM-DDTHH:MM:SS.uuuuuuZ n<id> t<term> <text>` (UTC, see raft-node). Of the
//! texts, only these shapes are read; anything else is ignored:
//!
//! * a text starting with `snapshot at index=I` is one snapshot taken: `I` is its index,
//!   a number followed by the word `bytes` its size, and every number followed by `ms`
//!   one duration, labelled with the words before it back to the previous `,` `:` `;`
//!   or `(` (`encoded in 31 ms` is `encoded in` = 31). So the line may gain, lose or
//!   rename durations (a background snapshot) without breaking the parser.
//! * a text starting with `became leader` is one leader change.
//! * `snapshot send started to n<F> index=I`, `snapshot sent to n<F> index=I` and
//!   `snapshot installed index=I` time a snapshot transfer to node F.
//! * `storage recovered ...` ends a node's recovery from its disk.

use crate::{deadline, elapsed_ms, raft_cluster, rss_of, since, Flags, ATTEMPT_TIMEOUT};
use raft_cli::args::BenchArgs;
use raft_cli::bench::bench_key;
use raft_cli::client::{Client, Cluster};
use raft_config::ClusterConfig;
use raft_core::{NodeId, RoleKind};
use raft_wire::{NodeStatus, ReadOp, Reply, MAX_KEYS_PER_LISTING};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Poll period while waiting for a node to come back or catch up.
const POLL: Duration = Duration::from_millis(5);
/// Digits of a bench key's number after which a prefix holds exactly
/// `MAX_KEYS_PER_LISTING` keys: `bench-` + 6 digits leaves 4 free digits, 10,000 keys.
const LISTING_PREFIX_DIGITS: usize = 6;
const _: () = assert!(MAX_KEYS_PER_LISTING == 10_000, "one listing must cover one 6-digit prefix");
/// Bytes read at a time when looking for the end of the data in a preallocated segment.
const SCAN_CHUNK_BYTES: usize = 1 << 20;
const MS_PER_DAY: u64 = 86_400_000;

// ----- node logs -----------------------------------------------------------------------

/// One line of a node's log: time of day (UTC) in ms, node, term, and the event text.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    pub tod_ms: u64,
    pub node: NodeId,
    pub text: &'a str,
}

/// Splits `YYYY-MM-DDTHH:MM:SS.uuuuuuZ n<id> t<term> <text>`; `None` for other lines (the
/// supervisor's). Only the time of day is kept: a fill does not cross midnight.
pub fn parse_log_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let tod = parts.next()?;
    let node = parts.next()?.strip_prefix('n')?.parse().ok()?;
    parts.next()?.strip_prefix('t')?.parse::<u64>().ok()?;
    let text = parts.next()?;
    let (_date, tod) = tod.split_once('T')?;
    let (hms, frac) = tod.strip_suffix('Z')?.split_once('.')?;
    let mut hms = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let ms: u64 = frac.get(..3)?.parse().ok()?;
    Some(LogLine { tod_ms: ((h * 60 + m) * 60 + s) * 1000 + ms, node, text })
}

/// A `snapshot at index=` line.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotLine {
    pub index: u64,
    pub bytes: Option<u64>,
    /// Every `N ms` figure with the words before it.
    pub ms: Vec<(String, f64)>,
}

pub fn parse_snapshot_text(text: &str) -> Option<SnapshotLine> {
    let rest = text.strip_prefix("snapshot at index=")?;
    let index = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let mut bytes = None;
    let mut ms = Vec::new();
    let mut label: Vec<&str> = Vec::new();
    let words: Vec<(&str, bool, bool)> = rest
        .split_whitespace()
        .map(|t| {
            let word = t.trim_start_matches('(').trim_end_matches([',', ':', ';', ')', '.']);
            (word, t.starts_with('('), t.ends_with([',', ':', ';', ')']))
        })
        .collect();
    for (i, &(word, opens, closes)) in words.iter().enumerate() {
        if opens {
            label.clear();
        }
        let next = words.get(i + 1).map(|w| w.0);
        match word.parse::<f64>() {
            Ok(n) => {
                match next {
                    Some("bytes") if bytes.is_none() => bytes = Some(n as u64),
                    Some("ms") => ms.push((label.join(" "), n)),
                    _ => {}
                }
                label.clear();
            }
            Err(_) if word == "ms" || word == "bytes" => {}
            Err(_) => label.push(word),
        }
        if closes {
            label.clear();
        }
    }
    Some(SnapshotLine { index, bytes, ms })
}

/// The text of `path` from byte `offset` on (all of it if the file is shorter now: it
/// was replaced), and the file's length.
fn read_from(path: &Path, offset: u64) -> (String, u64) {
    let Ok(mut f) = std::fs::File::open(path) else { return (String::new(), 0) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if offset <= len { offset } else { 0 };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    (String::from_utf8_lossy(&buf).into_owned(), len)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Time of day in ms (UTC) of a Unix time.
fn tod_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64 % MS_PER_DAY
}

/// Milliseconds from time of day `from` to `to`, both within the last or next 12 hours.
fn tod_diff(from: u64, to: u64) -> i64 {
    let d = (to + MS_PER_DAY - from) % MS_PER_DAY;
    if d < MS_PER_DAY / 2 {
        d as i64
    } else {
        d as i64 - MS_PER_DAY as i64
    }
}

// ----- cluster state -------------------------------------------------------------------

fn load_config(flags: &Flags) -> Result<ClusterConfig, String> {
    let path = PathBuf::from(flags.need("raft-config")?);
    Ok(ClusterConfig::load(Some(&path)).map_err(|e| e.to_string())?.0)
}

fn statuses(cluster: &Cluster) -> Vec<(NodeId, Option<NodeStatus>)> {
    cluster.nodes.iter().map(|(id, _)| (*id, cluster.node_status(*id, ATTEMPT_TIMEOUT).ok())).collect()
}

fn leader_of(st: &[(NodeId, Option<NodeStatus>)]) -> Option<&NodeStatus> {
    st.iter().filter_map(|(_, s)| s.as_ref()).find(|s| s.role == RoleKind::Leader)
}

fn leader_json(id: Option<u64>, term: Option<u64>) -> Value {
    match id {
        Some(id) => json!({ "id": id, "term": term }),
        None => Value::Null,
    }
}

// ----- scale-fill ----------------------------------------------------------------------

struct Fill {
    keys: u64,
    tenths: u64,
    clients: u32,
    window: u32,
    value_size: u32,
    timeout: Duration,
}

impl Fill {
    fn range(&self, k: u64) -> (u64, u64) {
        let from = self.keys * k / self.tenths;
        (from, self.keys * (k + 1) / self.tenths - from)
    }
    fn args(&self, first: u64, count: u64) -> BenchArgs {
        BenchArgs {
            clients: self.clients,
            requests: count,
            keys: self.keys,
            sequential_keys: true,
            first_key: first,
            value_size: self.value_size,
            read_ratio: 0.0,
            stale_reads: false,
            window: self.window,
            json: true,
        }
    }
}

pub fn fill(flags: &Flags) -> Result<(), String> {
    let keys = flags.num("keys", 0)?;
    let tenths = flags.num("tenth-count", 10)?;
    if keys == 0 || tenths == 0 || keys < tenths {
        return Err("--keys N (at least --tenth-count) is required".into());
    }
    let (a, b) = match flags.get("tenths") {
        None => (0, tenths - 1),
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let p = |s: &str| s.parse::<u64>().map_err(|_| format!("--tenths wants A-B, got {r:?}"));
            (p(a)?, p(b)?)
        }
    };
    if a > b || b >= tenths {
        return Err(format!("--tenths {a}-{b} is outside 0-{}", tenths - 1));
    }
    let f = Fill {
        keys,
        tenths,
        clients: flags.num("clients", 64)? as u32,
        window: flags.num("window", 8)? as u32,
        value_size: flags.num("value-size", 100)? as u32,
        timeout: Duration::from_millis(flags.num("timeout-ms", 10_000)?),
    };
    if let Some(eps) = flags.get("etcd") {
        let pids: Vec<u32> = flags
            .need("pids")?
            .split(',')
            .map(|p| p.trim().parse().map_err(|_| format!("bad pid {p:?}")))
            .collect::<Result<_, _>>()?;
        for k in a..=b {
            let line = fill_tenth_etcd(eps, &pids, &f, k)?;
            println!("{line}");
        }
    } else {
        let cfg = load_config(flags)?;
        let cluster = Cluster::from_config(&cfg);
        for k in a..=b {
            let line = fill_tenth_raft(&cfg, &cluster, &f, k)?;
            println!("{line}");
        }
    }
    Ok(())
}

fn fill_tenth_raft(cfg: &ClusterConfig, cluster: &Cluster, f: &Fill, k: u64) -> Result<Value, String> {
    let (first, count) = f.range(k);
    let before = statuses(cluster);
    let lb = leader_of(&before).map(|s| (s.id, s.term));
    let offsets: Vec<(NodeId, u64)> = cluster.nodes.iter().map(|(id, _)| (*id, file_len(&cfg.node_log(*id)))).collect();
    let t0 = Instant::now();
    let report = raft_cli::bench::run_report(cluster, &f.args(first, count), f.timeout)
        .map_err(|o| format!("tenth {k}: {}", o.stderr.unwrap_or_default()))?;
    let bench_s = t0.elapsed().as_secs_f64();
    let after = statuses(cluster);
    let la = leader_of(&after).map(|s| (s.id, s.term));
    let rss: Vec<Option<u64>> = after.iter().map(|(_, s)| s.as_ref().and_then(|s| rss_of(s.pid))).collect();
    let mut became = Vec::new();
    let mut snaps = Vec::new();
    for (id, off) in offsets {
        let (text, _) = read_from(&cfg.node_log(id), off);
        for l in text.lines().filter_map(parse_log_line) {
            if l.text.starts_with("became leader") {
                became.push(format!("n{} {}", l.node, l.text));
            } else if let Some(s) = parse_snapshot_text(l.text) {
                snaps.push(json!({
                    "node": l.node, "index": s.index, "bytes": s.bytes,
                    "ms": s.ms.iter().map(|(label, v)| json!([label, v])).collect::<Vec<_>>(),
                }));
            }
        }
    }
    Ok(json!({
        "system": "raft", "tenth": k, "tenths": f.tenths, "first_key": first, "count": count, "keys_total": f.keys,
        "bench": report, "bench_s": bench_s,
        "leader_before": leader_json(lb.map(|l| l.0), lb.map(|l| l.1)),
        "leader_after": leader_json(la.map(|l| l.0), la.map(|l| l.1)),
        "nodes_up": after.iter().filter(|(_, s)| s.is_some()).count(),
        "rss_kib": rss, "became_leader": became, "snapshots": snaps,
    }))
}

fn etcd_leader(eps: &[std::net::SocketAddr]) -> (Option<u64>, Option<u64>) {
    let Some(l) = crate::etcd::find_leader(eps, ATTEMPT_TIMEOUT) else { return (None, None) };
    let term = crate::etcd::BlockingConn::connect(eps[l], ATTEMPT_TIMEOUT)
        .and_then(|mut c| c.status())
        .ok()
        .map(|s| s.raft_term);
    (Some(l as u64 + 1), term)
}

fn fill_tenth_etcd(eps: &str, pids: &[u32], f: &Fill, k: u64) -> Result<Value, String> {
    let (first, count) = f.range(k);
    let addrs = crate::etcd::parse_endpoints(eps)?;
    let lb = etcd_leader(&addrs);
    let t0 = Instant::now();
    let report = crate::etcd::run_report(eps, &f.args(first, count), f.timeout)
        .map_err(|o| format!("tenth {k}: {}", o.stderr.unwrap_or_default()))?;
    let bench_s = t0.elapsed().as_secs_f64();
    let la = etcd_leader(&addrs);
    let rss: Vec<Option<u64>> = pids.iter().map(|&p| rss_of(p)).collect();
    Ok(json!({
        "system": "etcd", "tenth": k, "tenths": f.tenths, "first_key": first, "count": count, "keys_total": f.keys,
        "bench": report, "bench_s": bench_s,
        "leader_before": leader_json(lb.0, lb.1), "leader_after": leader_json(la.0, la.1),
        "nodes_up": rss.iter().filter(|r| r.is_some()).count(),
        "rss_kib": rss, "became_leader": Vec::<String>::new(), "snapshots": Vec::<Value>::new(),
    }))
}

// ----- state on disk -------------------------------------------------------------------

/// Size of the newest snapshot file (names sort by index) and its path.
fn newest_snapshot(node_dir: &Path) -> Option<(PathBuf, u64)> {
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(node_dir.join("snap"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    snaps.sort();
    let p = snaps.pop()?;
    let len = file_len(&p);
    Some((p, len))
}

/// Bytes in use in a preallocated segment: up to its last non-zero byte (the tail a
/// segment is preallocated with reads as zeros).
fn used_bytes(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let mut end = f.metadata()?.len();
    let mut buf = vec![0u8; SCAN_CHUNK_BYTES];
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK_BYTES as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// What recovery reads: the newest snapshot and the used part of every WAL file.
fn state_bytes(node_dir: &Path) -> (u64, u64) {
    let snap = newest_snapshot(node_dir).map_or(0, |(_, n)| n);
    let wal = std::fs::read_dir(node_dir.join("wal"))
        .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| used_bytes(&e.path()).ok()).sum())
        .unwrap_or(0);
    (snap, wal)
}

/// When process `pid` started, as a Unix time, from `/proc` (10 ms resolution).
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks since boot); fields after the `)` of the name.
    let after = &stat[stat.rfind(')')? + 2..];
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let boot = SystemTime::now().checked_sub(Duration::from_secs_f64(uptime))?;
    boot.checked_add(Duration::from_secs_f64(start_ticks / hz.max(1.0)))
}

fn mb_s(bytes: u64, ms: f64) -> Option<f64> {
    (ms > 0.0 && bytes > 0).then(|| bytes as f64 / 1e6 / (ms / 1e3))
}

// ----- restart-time --------------------------------------------------------------------

pub fn restart_time(flags: &Flags) -> Result<(), String> {
    let cfg = load_config(flags)?;
    let cluster = Cluster::from_config(&cfg);
    let supervisor = flags.need("supervisor")?;
    let node = flags.num("node", 0)?;
    if !cfg.is_node(node) {
        return Err("--node N must be a node of the cluster".into());
    }
    let deadline = deadline(flags)?;
    let st = statuses(&cluster);
    let target = leader_of(&st).ok_or("no leader before the restart")?.commit;
    let old_pid = st.iter().find(|(id, _)| *id == node).and_then(|(_, s)| s.as_ref()).map(|s| s.pid);
    let (snap, wal) = state_bytes(&cfg.node_dir(node));
    let log_off = file_len(&cfg.node_log(node));
    let t0 = SystemTime::now();
    let started = Instant::now();
    let status = std::process::Command::new(supervisor)
        .args(["--config", flags.need("raft-config")?, "restart", &node.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {supervisor}: {e}"))?;
    if !status.success() {
        return Err(format!("raft-supervisor restart {node} failed: {status}"));
    }
    let mut new_pid = None;
    let mut pid_start = None;
    let (ms, applied) = loop {
        if Instant::now() > deadline {
            return Err(format!("node {node} did not catch up to commit {target} after its restart in time"));
        }
        if let Ok(s) = cluster.node_status(node, ATTEMPT_TIMEOUT) {
            if Some(s.pid) != old_pid {
                if new_pid != Some(s.pid) {
                    new_pid = Some(s.pid);
                    pid_start = process_start(s.pid);
                }
                if s.applied >= target {
                    break (started.elapsed().as_secs_f64() * 1e3, s.applied);
                }
            }
        }
        std::thread::sleep(POLL);
    };
    let (text, _) = read_from(&cfg.node_log(node), log_off);
    let recovered = text.lines().filter_map(parse_log_line).rfind(|l| l.text.starts_with("storage recovered"));
    let recovery_ms =
        recovered.as_ref().zip(pid_start).map(|(l, p)| tod_diff(tod_of(p), l.tod_ms) as f64).filter(|&ms| ms >= 0.0);
    let from_command_ms = recovered.as_ref().map(|l| tod_diff(tod_of(t0), l.tod_ms) as f64);
    println!(
        "{}",
        json!({
            "node": node, "restart_ms": ms, "target_commit": target, "applied": applied,
            "recovery_ms": recovery_ms, "recovered_line_after_command_ms": from_command_ms,
            "recovered_line": recovered.map(|l| l.text.to_string()),
            "snapshot_bytes": snap, "wal_bytes": wal,
            "recovery_mb_s": recovery_ms.and_then(|r| mb_s(snap + wal, r)),
        })
    );
    Ok(())
}

// ----- scale-catchup -------------------------------------------------------------------

pub fn catchup(flags: &Flags) -> Result<(), String> {
    let cfg = load_config(flags)?;
    let cluster = Cluster::from_config(&cfg);
    let since = since(flags)?;
    let deadline = deadline(flags)?;
    let node = flags.num("node", 0)?;
    if !cfg.is_node(node) {
        return Err("--node N must be a node of the cluster".into());
    }
    let target = loop {
        if let Some(l) = leader_of(&statuses(&cluster)) {
            break l.applied;
        }
        if Instant::now() > deadline {
            return Err("no leader".into());
        }
        std::thread::sleep(POLL);
    };
    let (ms, applied) = loop {
        if let Ok(s) = cluster.node_status(node, ATTEMPT_TIMEOUT) {
            if s.applied >= target {
                break (elapsed_ms(since), s.applied);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("node {node} did not catch up to applied index {target} in time"));
        }
        std::thread::sleep(POLL);
    };
    let since_tod = tod_of(since);
    let started = format!("snapshot send started to n{node} ");
    let sent = format!("snapshot sent to n{node} ");
    // The last transfer to `node` after `since`: its start and end on the sender.
    let mut transfer: Option<(NodeId, u64, u64, Option<u64>)> = None; // sender, index, start, end
    let mut sender_logs = Vec::new();
    for (id, _) in &cluster.nodes {
        let (text, _) = read_from(&cfg.node_log(*id), 0);
        for l in text.lines().filter_map(parse_log_line).filter(|l| tod_diff(since_tod, l.tod_ms) >= 0) {
            if let Some(rest) = l.text.strip_prefix(&started) {
                if let Some(i) = field(rest, "index=") {
                    transfer = Some((l.node, i, l.tod_ms, None));
                }
            } else if let Some(rest) = l.text.strip_prefix(&sent) {
                if let (Some(i), Some(t)) = (field(rest, "index="), transfer.as_mut()) {
                    if t.0 == l.node && t.1 == i {
                        t.3 = Some(l.tod_ms);
                    }
                }
            }
        }
        sender_logs.push((*id, text));
    }
    let snapshot = transfer.map(|(from, index, start, end)| {
        // Its size: the sender's own `snapshot at index=I` line, else the file the
        // receiver installed.
        let bytes = sender_logs
            .iter()
            .filter(|(id, _)| *id == from)
            .flat_map(|(_, t)| t.lines().filter_map(parse_log_line).filter_map(|l| parse_snapshot_text(l.text)))
            .filter(|s| s.index == index)
            .find_map(|s| s.bytes)
            .or_else(|| newest_snapshot(&cfg.node_dir(node)).map(|(_, n)| n));
        let installed = sender_logs
            .iter()
            .filter(|(id, _)| *id == node)
            .flat_map(|(_, t)| t.lines().filter_map(parse_log_line).collect::<Vec<_>>())
            .filter(|l| tod_diff(since_tod, l.tod_ms) >= 0)
            .find(|l| l.text.starts_with(&format!("snapshot installed index={index}")))
            .map(|l| tod_diff(start, l.tod_ms) as f64);
        let send_ms = end.map(|e| tod_diff(start, e) as f64);
        json!({
            "from": from, "index": index, "bytes": bytes, "send_ms": send_ms,
            "installed_after_start_ms": installed,
            "mb_s": send_ms.zip(bytes).and_then(|(ms, b)| mb_s(b, ms.max(1.0))),
        })
    });
    println!(
        "{}",
        json!({ "node": node, "catchup_ms": ms, "applied": applied, "target": target, "snapshot": snapshot })
    );
    Ok(())
}

/// The number after `name` in `text` (`index=42 term=3`, `index=` gives 42).
fn field(text: &str, name: &str) -> Option<u64> {
    let at = text.find(name)? + name.len();
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

// ----- scale-verify --------------------------------------------------------------------

/// The value `raft_cli::bench` writes with `--value-size n`.
pub fn bench_value(n: u32) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

pub fn verify(flags: &Flags) -> Result<(), String> {
    let cluster = raft_cluster(flags)?;
    let since = since(flags)?;
    let deadline = deadline(flags)?;
    let keys = flags.num("keys", 0)?;
    let samples = flags.num("samples", 1000)?.max(1);
    let value = bench_value(flags.num("value-size", 100)? as u32);
    if keys == 0 {
        return Err("--keys N is required".into());
    }
    // All nodes answer, one leader, every node applied what the leader committed.
    let (up_ms, leader, term) = loop {
        let st = statuses(&cluster);
        if let Some(l) = leader_of(&st) {
            if st.iter().all(|(_, s)| s.as_ref().is_some_and(|s| s.applied >= l.commit && s.term == l.term)) {
                break (elapsed_ms(since), l.id, l.term);
            }
        }
        if Instant::now() > deadline {
            let summary: Vec<String> = st
                .iter()
                .map(|(id, s)| match s {
                    Some(s) => format!("n{id} {:?} t{} applied {} commit {}", s.role, s.term, s.applied, s.commit),
                    None => format!("n{id} down"),
                })
                .collect();
            return Err(format!("the cluster did not come back in time: {}", summary.join("; ")));
        }
        std::thread::sleep(POLL);
    };
    let t0 = Instant::now();
    let mut client = Client::new(cluster.clone(), Duration::from_secs(10));
    // Every key of the fill, one 6-digit prefix (10,000 keys) per listing.
    let width = 10 - LISTING_PREFIX_DIGITS as u32;
    let per = 10u64.pow(width);
    let mut found = 0u64;
    let mut listings = 0u64;
    for p in 0..keys.div_ceil(per) {
        let prefix = bench_key(p * per)[..6 + LISTING_PREFIX_DIGITS].to_string();
        match client.read(ReadOp::Keys { prefix: prefix.clone(), limit: MAX_KEYS_PER_LISTING }, false) {
            Ok(Reply::Keys(ks)) => {
                listings += 1;
                found += ks
                    .iter()
                    .filter_map(|k| k.strip_prefix("bench-")?.parse::<u64>().ok())
                    .filter(|&n| n < keys)
                    .count() as u64;
            }
            Ok(other) => return Err(format!("listing {prefix}: unexpected answer {other:?}")),
            Err(e) => return Err(format!("listing {prefix}: {e}")),
        }
    }
    let list_ms = t0.elapsed().as_secs_f64() * 1e3;
    // Values: `samples` keys spread over the key space, and the last key.
    let mut picks: Vec<u64> = (0..samples).map(|i| i * keys / samples).collect();
    picks.push(keys - 1);
    picks.dedup();
    let (mut ok, mut missing, mut wrong) = (0u64, Vec::new(), Vec::new());
    for &n in &picks {
        match client.read(ReadOp::Get { key: bench_key(n) }, false) {
            Ok(Reply::Value(Some(v))) if v == value => ok += 1,
            Ok(Reply::Value(Some(_))) => wrong.push(n),
            Ok(Reply::Value(None)) => missing.push(n),
            Ok(other) => return Err(format!("get {}: unexpected answer {other:?}", bench_key(n))),
            Err(e) => return Err(format!("get {}: {e}", bench_key(n))),
        }
    }
    let last_ok = !missing.contains(&(keys - 1)) && !wrong.contains(&(keys - 1));
    println!(
        "{}",
        json!({
            "all_up_ms": up_ms, "leader": leader, "term": term,
            "keys_expected": keys, "keys_found": found, "listings": listings, "list_ms": list_ms,
            "samples": picks.len(), "samples_ok": ok,
            "samples_missing": missing.iter().take(20).map(|&n| bench_key(n)).collect::<Vec<_>>(),
            "samples_wrong": wrong.iter().take(20).map(|&n| bench_key(n)).collect::<Vec<_>>(),
            "last_key": bench_key(keys - 1), "last_key_ok": last_ok,
        })
    );
    Ok(())
}

// ----- disk-rate -----------------------------------------------------------------------

/// Sequential write rate (1 MiB writes, then one fdatasync) and O_DIRECT read rate of a
/// scratch file of `--mib` MiB in `--dir`, in MB/s.
pub fn disk_rate(flags: &Flags) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = PathBuf::from(flags.need("dir")?);
    let mib = flags.num("mib", 256)?.max(1) as usize;
    let path = dir.join("raft-perf-disk-rate.dat");
    let block = vec![0x5au8; 1 << 20];
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&path).map_err(io)?;
        for _ in 0..mib {
            f.write_all(&block).map_err(io)?;
        }
        f.sync_data().map_err(io)?;
    }
    let write = mb_s((mib << 20) as u64, t.elapsed().as_secs_f64() * 1e3);
    // O_DIRECT needs an aligned buffer: take a 4 KiB-aligned 1 MiB window of a larger one.
    let read = (|| -> std::io::Result<Option<f64>> {
        let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path)?;
        let mut raw = vec![0u8; (1 << 20) + 4096];
        let off = raw.as_ptr().align_offset(4096);
        let buf = &mut raw[off..off + (1 << 20)];
        let t = Instant::now();
        let mut total = 0u64;
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok(mb_s(total, t.elapsed().as_secs_f64() * 1e3))
    })();
    let _ = std::fs::remove_file(&path);
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    println!("seq_write_fdatasync_mb_s {}", f(write));
    match read {
        Ok(r) => println!("seq_read_direct_mb_s {}", f(r)),
        Err(e) => println!("seq_read_direct_mb_s n/a ({e})"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_split() {
        let l = parse_log_line("2026-11-30T20:01:09.054321Z n2 t1 snapshot at index=10009: 1198167 bytes").unwrap();
        assert_eq!(l.tod_ms, ((20 * 60 + 1) * 60 + 9) * 1000 + 54);
        assert_eq!((l.node, l.text), (2, "snapshot at index=10009: 1198167 bytes"));
        assert_eq!(parse_log_line("--- raft-supervisor: starting node 2 ---"), None);
    }

    #[test]
    fn snapshot_lines_of_today_and_of_other_wordings() {
        let s =
            parse_snapshot_text("snapshot at index=10009: 1198167 bytes, encoded in 31 ms, written in 7 ms").unwrap();
        assert_eq!(s.index, 10009);
        assert_eq!(s.bytes, Some(1198167));
        assert_eq!(s.ms, vec![("encoded in".to_string(), 31.0), ("written in".to_string(), 7.0)]);
        let s = parse_snapshot_text("snapshot at index=5: 10 bytes").unwrap();
        assert_eq!((s.index, s.bytes, s.ms.len()), (5, Some(10), 0));
        let s = parse_snapshot_text(
            "snapshot at index=77 (background): 2048 bytes; loop paused 1 ms, encoded in 12.5 ms (thread), fsync 3 ms",
        )
        .unwrap();
        assert_eq!(s.index, 77);
        assert_eq!(s.bytes, Some(2048));
        assert_eq!(
            s.ms,
            vec![("loop paused".to_string(), 1.0), ("encoded in".to_string(), 12.5), ("fsync".to_string(), 3.0)]
        );
        assert_eq!(parse_snapshot_text("snapshot sent to n2 index=3 term=1"), None);
    }

    #[test]
    fn time_of_day_differences_wrap_at_midnight() {
        assert_eq!(tod_diff(1000, 1500), 500);
        assert_eq!(tod_diff(1500, 1000), -500);
        assert_eq!(tod_diff(MS_PER_DAY - 100, 50), 150);
        assert_eq!(field("index=42 term=3", "index="), Some(42));
        assert_eq!(field("term=3", "index="), None);
    }

    #[test]
    fn used_bytes_stop_at_the_zero_tail() {
        let dir = std::env::temp_dir().join(format!("raft-perf-used-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("seg");
        let mut data = vec![0u8; 3 * SCAN_CHUNK_BYTES];
        data[SCAN_CHUNK_BYTES + 10] = 1;
        std::fs::write(&p, &data).unwrap();
        assert_eq!(used_bytes(&p).unwrap(), SCAN_CHUNK_BYTES as u64 + 11);
        std::fs::write(&p, vec![0u8; 100]).unwrap();
        assert_eq!(used_bytes(&p).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tenths_cover_the_key_space_once() {
        let f = Fill { keys: 1_000_003, tenths: 10, clients: 1, window: 1, value_size: 1, timeout: Duration::ZERO };
        let mut next = 0;
        for k in 0..10 {
            let (first, count) = f.range(k);
            assert_eq!(first, next);
            next += count;
        }
        assert_eq!(next, 1_000_003);
        assert_eq!(bench_value(3), b"abc");
    }
}
