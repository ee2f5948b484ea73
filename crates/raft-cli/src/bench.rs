//! `raft-cli bench`: load the cluster from many pipelined connections on one mio `Poll`.
//!
//! Each connection is one client with its own session, a share of the requests and a
//! window of requests in flight. All connections start at the leader found by a probe;
//! a `NotLeader` answer moves the connection to the hinted node (or the next one) and
//! sends everything it had in flight again, writes with the same session and seq, so a
//! leader change during the run applies nothing twice. `Unavailable` and `Unknown`
//! answers are retried after a short pause; a request older than `--timeout` is given up
//! and counted as a timeout. The run stops by itself when every request is answered or
//! given up, or when nothing succeeds for twice the timeout.
//!
//! Latency is measured from the first send of a request to its successful answer, so a
//! retry after a leader change shows in the tail.

use crate::args::BenchArgs;
use crate::client::{random_u64, Client, Cluster};
use crate::commands::Output;
use crate::rng::Rng;
use crate::{EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE};
use mio::{Events, Interest, Poll, Token};
use raft_core::NodeId;
use raft_transport::ClientTls;
use raft_wire::conn::{FramedConn, ReadOutcome};
use raft_wire::{ClientRequest, ClientResponse, Hello, ReadOp, Request, Response, WriteOp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

/// Most connections: each is one file descriptor, well under the usual limit of 1024+.
pub const MAX_CLIENTS: u32 = 1000;
/// Most requests in one run: latencies are kept (8 bytes each) for exact percentiles.
pub const MAX_REQUESTS: u64 = 50_000_000;
/// Largest window: below the state machine's per-session reply cache (128), so any
/// request in flight can still be retried safely after a leader change.
pub const MAX_WINDOW: u32 = 64;
/// Pause before reconnecting or resending after a refusal: about an election's worth of
/// ticks spread over a few tries.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest poll wait: timeouts and resends are checked at least this often.
const POLL_MAX: Duration = Duration::from_millis(20);
/// Bytes read per read call.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Output bound of one connection: the hello and a whole window of the largest frames,
/// all sent again after a reconnect, so the bench never has a request refused.
const MAX_OUT_BYTES: usize = (MAX_WINDOW as usize + 1) * raft_wire::MAX_FRAME_BYTES;

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ErrorCounts {
    /// NotLeader answers followed to another node.
    pub redirects: u64,
    /// Unavailable answers (retried).
    pub unavailable: u64,
    /// Unknown answers (retried with the same session and seq).
    pub unknown: u64,
    /// Invalid answers (given up).
    pub invalid: u64,
    /// Writes refused for the state's size quota (given up: a retry gets the same answer).
    pub refused: u64,
    /// Requests given up after --timeout.
    pub timeouts: u64,
    /// Connections lost or refused, then reopened.
    pub reconnects: u64,
    /// Requests never sent because the run stopped making progress.
    pub aborted: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What `bench --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub clients: u32,
    pub window: u32,
    pub requests: u64,
    pub keys: u64,
    pub value_size: u32,
    pub read_ratio: f64,
    pub stale_reads: bool,
    /// Requests answered with success.
    pub ok: u64,
    pub reads: u64,
    pub writes: u64,
    /// Requests that did not succeed (invalid, refused, timed out, aborted).
    pub failed: u64,
    pub errors: ErrorCounts,
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of successful requests, in milliseconds.
    pub latency_ms: Percentiles,
    /// The node the run started on.
    pub leader: Option<NodeId>,
}

impl BenchReport {
    pub fn render_text(&self) -> String {
        let l = &self.latency_ms;
        let e = &self.errors;
        let reads = if self.stale_reads { "stale" } else { "linearizable" };
        format!(
            "bench: {} requests from {} clients (window {}), {} keys, {} B values, {:.0}% reads ({reads})\n\
             ok {} (reads {}, writes {}), failed {} in {:.2} s: {:.0} req/s\n\
             latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3})\n\
             errors: redirects {}, unavailable {}, unknown {}, invalid {}, refused {}, timeouts {}, reconnects {}, \
             aborted {}\n",
            self.requests,
            self.clients,
            self.window,
            self.keys,
            self.value_size,
            self.read_ratio * 100.0,
            self.ok,
            self.reads,
            self.writes,
            self.failed,
            self.elapsed_s,
            self.throughput,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            e.redirects,
            e.unavailable,
            e.unknown,
            e.invalid,
            e.refused,
            e.timeouts,
            e.reconnects,
            e.aborted,
        )
    }
}

/// Nearest-rank percentiles of latencies in microseconds, reported in milliseconds.
pub fn percentiles(mut us: Vec<u64>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1] as f64 / 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: *us.last().expect("not empty") as f64 / 1000.0,
        mean: us.iter().sum::<u64>() as f64 / us.len() as f64 / 1000.0,
    }
}

struct InFlight {
    body: Request,
    first_sent: Instant,
    /// Waiting to be sent again at this time (after a refusal), not on the wire.
    resend_at: Option<Instant>,
}

struct Conn {
    node: NodeId,
    /// The connection to `node`, while there is one.
    framed: Option<FramedConn<raft_transport::Stream>>,
    reconnect_at: Option<Instant>,
    inflight: BTreeMap<u64, InFlight>,
    remaining: u64,
    session: u64,
    next_seq: u64,
    next_id: u64,
    rng: Rng,
}

/// What a run counted, for either load generator (ours or raft-perf's `bench-etcd`).
pub struct Tally {
    pub latencies_us: Vec<u64>,
    pub errors: ErrorCounts,
    pub reads: u64,
    pub writes: u64,
}

impl Tally {
    pub fn new(args: &BenchArgs) -> Tally {
        Tally {
            latencies_us: Vec::with_capacity(args.requests.min(10_000_000) as usize),
            errors: ErrorCounts::default(),
            reads: 0,
            writes: 0,
        }
    }

    /// The report of a run that took `elapsed`.
    pub fn report(&mut self, args: &BenchArgs, elapsed: Duration, leader: Option<u64>) -> BenchReport {
        let ok = self.latencies_us.len() as u64;
        let e = &self.errors;
        BenchReport {
            clients: args.clients,
            window: args.window,
            requests: args.requests,
            keys: args.keys,
            value_size: args.value_size,
            read_ratio: args.read_ratio,
            stale_reads: args.stale_reads,
            ok,
            reads: self.reads,
            writes: self.writes,
            failed: e.invalid + e.refused + e.timeouts + e.aborted,
            errors: self.errors.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: percentiles(std::mem::take(&mut self.latencies_us)),
            leader,
        }
    }
}

struct Bench<'a> {
    cluster: &'a Cluster,
    args: &'a BenchArgs,
    timeout: Duration,
    poll: Poll,
    conns: Vec<Conn>,
    tally: Tally,
    value: Vec<u8>,
    last_success: Instant,
    /// The next key with --sequential-keys.
    next_key: u64,
    /// The client's TLS identity, checked once before anything is dialled.
    tls: Option<ClientTls>,
}

/// The key of number `n`: 16 bytes for every `n` below 10^10 (the workload is defined
/// with 16-byte keys, for this cluster and for etcd alike).
pub fn bench_key(n: u64) -> String {
    format!("bench-{n:010}")
}

pub fn run(cluster: &Cluster, args: &BenchArgs, timeout: Duration) -> Output {
    output(run_report(cluster, args, timeout), args.json)
}

/// The output of a run (also raft-perf's `bench-etcd`): the report as text or one JSON
/// object; exit 3 when no request succeeded.
pub fn output(report: Result<BenchReport, Output>, json: bool) -> Output {
    match report {
        Ok(report) => {
            let mut out = if json {
                Output::ok(format!("{}\n", serde_json::to_string(&report).expect("report serialises")))
            } else {
                Output::ok(report.render_text())
            };
            if report.ok == 0 {
                out.code = EXIT_UNAVAILABLE;
                out.stderr = Some("no request succeeded; check `raft-supervisor status` and retry".into());
            } else {
                out.code = EXIT_OK;
            }
            out
        }
        Err(out) => out,
    }
}

/// Runs the benchmark; `Err` is the output for a cluster that could not be found.
pub fn run_report(cluster: &Cluster, args: &BenchArgs, timeout: Duration) -> Result<BenchReport, Output> {
    // Unusable TLS files are the config's fault: said at once, never plain TCP instead.
    let tls = cluster.tls().map_err(|e| Output::fail(EXIT_USAGE, format!("raft-cli bench: cannot use TLS: {e}")))?;
    let tls = tls.cloned();
    // Find the leader once with a plain client; every connection starts there.
    let mut probe = Client::new(cluster.clone(), timeout);
    probe.read(ReadOp::Get { key: "bench-0".into() }, false).map_err(Output::from)?;
    let leader = probe.known_leader().unwrap_or(cluster.nodes[0].0);

    let mut bench = Bench {
        cluster,
        args,
        timeout,
        poll: Poll::new().map_err(|e| Output::fail(EXIT_UNAVAILABLE, format!("cannot create a poll: {e}")))?,
        conns: Vec::new(),
        tally: Tally::new(args),
        value: (0..args.value_size).map(|i| b'a' + (i % 26) as u8).collect(),
        last_success: Instant::now(),
        next_key: args.first_key % args.keys,
        tls,
    };
    let seed = random_u64();
    for i in 0..args.clients as u64 {
        let share = args.requests / args.clients as u64 + u64::from(i < args.requests % args.clients as u64);
        bench.conns.push(Conn {
            node: leader,
            framed: None,
            reconnect_at: Some(Instant::now()),
            inflight: BTreeMap::new(),
            remaining: share,
            session: random_u64(),
            next_seq: 1,
            next_id: 1,
            rng: Rng::new(seed ^ (i + 1).wrapping_mul(0x9e37_79b9)),
        });
    }
    let start = Instant::now();
    bench.last_success = start;
    bench.run_loop();
    Ok(bench.tally.report(args, start.elapsed(), Some(leader)))
}

impl Bench<'_> {
    fn run_loop(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let now = Instant::now();
            if self.conns.iter().all(|c| c.remaining == 0 && c.inflight.is_empty()) {
                return;
            }
            if now.duration_since(self.last_success) > self.timeout * 2 {
                for c in &mut self.conns {
                    self.tally.errors.aborted += c.remaining + c.inflight.len() as u64;
                    c.remaining = 0;
                    c.inflight.clear();
                }
                return;
            }
            for i in 0..self.conns.len() {
                self.service(i, now);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(POLL_MAX)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    panic!("poll failed: {e}");
                }
            }
            for event in events.iter() {
                let i = event.token().0;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_from(i, &mut buf);
                }
                if event.is_writable() {
                    self.flush(i);
                }
            }
        }
    }

    /// Reconnects, gives up old requests, resends refused ones, tops up the window, flushes.
    fn service(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        // Give up requests older than the timeout.
        let before = c.inflight.len();
        c.inflight.retain(|_, f| now.duration_since(f.first_sent) <= self.timeout);
        self.tally.errors.timeouts += (before - c.inflight.len()) as u64;
        let Some(framed) = c.framed.as_mut() else {
            if c.reconnect_at.is_some_and(|t| t <= now) {
                self.connect(i, now);
            }
            return;
        };
        // Resend what is due.
        for (&id, f) in c.inflight.iter_mut() {
            if f.resend_at.is_some_and(|t| t <= now) {
                f.resend_at = None;
                framed.queue(&ClientRequest { id, body: f.body.clone() }).expect("requests fit the bound");
            }
        }
        // Top up the window.
        while c.inflight.len() < self.args.window as usize && c.remaining > 0 {
            c.remaining -= 1;
            let n = if self.args.sequential_keys { self.next_key } else { c.rng.below(self.args.keys) };
            self.next_key = (self.next_key + 1) % self.args.keys;
            let key = bench_key(n);
            let body = if c.rng.unit() < self.args.read_ratio {
                Request::Read { op: ReadOp::Get { key }, stale: self.args.stale_reads }
            } else {
                let seq = c.next_seq;
                c.next_seq += 1;
                Request::Write { session: c.session, seq, op: WriteOp::Set { key, value: self.value.clone() } }
            };
            let id = c.next_id;
            c.next_id += 1;
            framed.queue(&ClientRequest { id, body: body.clone() }).expect("requests fit the bound");
            c.inflight.insert(id, InFlight { body, first_sent: now, resend_at: None });
        }
        self.flush(i);
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let at = self.cluster.endpoint(c.node).expect("configured node");
        match raft_transport::connect(&at, c.node, self.tls.as_ref()) {
            Ok(mut stream) => {
                if let Err(e) =
                    self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                {
                    panic!("cannot register a connection with the poll: {e}");
                }
                let mut framed = FramedConn::new(stream, MAX_OUT_BYTES);
                c.reconnect_at = None;
                framed.queue(&Hello::Client).expect("hello encodes");
                // Everything in flight goes again on the new connection.
                for (&id, f) in c.inflight.iter_mut() {
                    f.resend_at = None;
                    framed.queue(&ClientRequest { id, body: f.body.clone() }).expect("requests fit the bound");
                }
                c.framed = Some(framed);
            }
            Err(_) => {
                self.tally.errors.reconnects += 1;
                c.node = next_node(self.cluster, c.node);
                c.reconnect_at = Some(now + RETRY_PAUSE);
            }
        }
    }

    /// Drops the connection; reconnects to `to` (or the next node) after `pause`.
    fn disconnect(&mut self, i: usize, to: Option<NodeId>, pause: Duration) {
        let c = &mut self.conns[i];
        if let Some(mut framed) = c.framed.take() {
            let _ = self.poll.registry().deregister(&mut framed.stream);
        }
        c.node = to.unwrap_or_else(|| next_node(self.cluster, c.node));
        c.reconnect_at = Some(Instant::now() + pause);
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(framed) = c.framed.as_mut() else { return };
        if framed.flush().is_err() {
            self.tally.errors.reconnects += 1;
            self.disconnect(i, None, RETRY_PAUSE);
        }
    }

    fn read_from(&mut self, i: usize, buf: &mut [u8]) {
        let Some(framed) = self.conns[i].framed.as_mut() else { return };
        // mio is edge-triggered: everything available is read (no budget).
        let mut closed = !matches!(framed.read_available(buf, usize::MAX), Ok(ReadOutcome::Open));
        loop {
            // A response may have moved the connection (NotLeader): then stop.
            let Some(framed) = self.conns[i].framed.as_mut() else { return };
            match framed.next_frame::<ClientResponse>() {
                Ok(Some(resp)) => self.on_response(i, resp),
                Ok(None) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed && self.conns[i].framed.is_some() {
            self.tally.errors.reconnects += 1;
            self.disconnect(i, None, RETRY_PAUSE);
        }
    }

    fn on_response(&mut self, i: usize, resp: ClientResponse) {
        let now = Instant::now();
        let c = &mut self.conns[i];
        let Some(f) = c.inflight.get_mut(&resp.id) else {
            return; // given up already, or answered twice after a resend
        };
        match resp.body {
            Response::Ok(_) => {
                let f = c.inflight.remove(&resp.id).expect("present");
                self.tally.latencies_us.push(now.duration_since(f.first_sent).as_micros() as u64);
                match f.body {
                    Request::Read { .. } => self.tally.reads += 1,
                    _ => self.tally.writes += 1,
                }
                self.last_success = now;
            }
            Response::NotLeader { leader } => {
                self.tally.errors.redirects += 1;
                let to = leader.filter(|&l| l != c.node && self.cluster.socket(l).is_some());
                let pause = if to.is_some() { Duration::ZERO } else { RETRY_PAUSE };
                self.disconnect(i, to, pause);
            }
            Response::Unavailable { .. } => {
                self.tally.errors.unavailable += 1;
                f.resend_at = Some(now + RETRY_PAUSE);
            }
            Response::Unknown { .. } => {
                self.tally.errors.unknown += 1;
                f.resend_at = Some(now + RETRY_PAUSE);
            }
            Response::Invalid { .. }
            | Response::Status(_)
            | Response::Accepted
            | Response::Log(_)
            | Response::Traffic(_) => {
                self.tally.errors.invalid += 1;
                c.inflight.remove(&resp.id);
            }
            Response::Refused { .. } => {
                self.tally.errors.refused += 1;
                c.inflight.remove(&resp.id);
            }
        }
    }
}

fn next_node(cluster: &Cluster, node: NodeId) -> NodeId {
    let ids: Vec<NodeId> = cluster.nodes.iter().map(|(id, _)| *id).collect();
    let pos = ids.iter().position(|&n| n == node).unwrap_or(0);
    ids[(pos + 1) % ids.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let p = percentiles((1..=1000).map(|v| v * 1000).collect());
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p90, 900.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
        assert_eq!(percentiles(vec![]), Percentiles::default());
        assert_eq!(percentiles(vec![7000]).p50, 7.0);
    }

    /// With TLS files missing the benchmark refuses at once with a usage error naming the
    /// file (it used to dial plain TCP and count every request as an error).
    #[test]
    fn unusable_tls_files_are_a_usage_error_before_anything_is_dialled() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("dir = {:?}\nnodes = 1\ntransport = \"tcp\"\naddrs = [\"127.0.0.1:1\"]\n", dir.path());
        let cluster = Cluster::from_config(&raft_config::ClusterConfig::from_toml(&text).unwrap());
        use clap::Parser;
        let cli = crate::args::Cli::try_parse_from(["raft-cli", "bench", "--requests", "10"]).unwrap();
        let crate::args::Command::Bench(args) = cli.command else { panic!("bench parses as bench") };
        let Err(out) = run_report(&cluster, &args, Duration::from_millis(200)) else { panic!("refused") };
        assert_eq!(out.code, EXIT_USAGE);
        let said = out.stderr.unwrap_or_default();
        assert!(said.contains("ca.crt"), "names the file: {said}");
    }
}
