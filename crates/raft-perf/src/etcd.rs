//! `raft-perf bench-etcd --etcd host:port,...`: `raft-cli bench`'s workload against etcd,
//! for side-by-side numbers (scripts/bench-vs-etcd.sh). The flags, the counting ([`Tally`])
//! and the report are raft-cli's, so both systems are measured and reported alike.
//!
//! etcd is reached through its v3 JSON gateway (grpc-gateway) over HTTP/1.1 on loopback
//! TCP: `POST /v3/kv/put {"key","value"}` and `POST /v3/kv/range {"key"}` (linearizable
//! by default), keys and values in base64. Each bench client is one keep-alive connection
//! on one mio `Poll`, as in `raft_cli::bench`, with the same window of pipelined requests
//! (HTTP/1.1 answers in order, so the oldest request in flight is the one answered).
//! Every request goes to the leader, found once through `POST /v3/maintenance/status`
//! (`leader` against `header.member_id`); a connection that fails moves to the next
//! endpoint (any member forwards to the leader) and sends what it had in flight again.
//! A non-2xx answer is retried after a pause; a request older than `--timeout` is given up.
//!
//! The HTTP client is minimal on purpose: it writes requests with `Content-Length` and
//! reads responses framed by `Content-Length`, which is what the gateway sends for unary
//! calls. Anything else (chunked bodies, oversize heads or bodies) closes the connection.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use raft_cli::args::BenchArgs;
use raft_cli::bench::{bench_key, BenchReport, Tally};
use raft_cli::commands::Output;
use raft_cli::rng::Rng;
use raft_cli::{EXIT_UNAVAILABLE, EXIT_USAGE};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Largest response head (status line and headers): the gateway's are a few hundred bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest response body: a range answer for one key with a value of at most 1 MiB in base64.
const MAX_BODY_BYTES: usize = 4 << 20;
/// Pause before reconnecting or resending after a failure (as in `raft_cli::bench`).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest poll wait: timeouts and resends are checked at least this often.
const POLL_MAX: Duration = Duration::from_millis(20);
/// Bytes read per read call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Parses `host:port,host:port,...` (hosts as IP addresses: this is a loopback benchmark).
pub fn parse_endpoints(s: &str) -> Result<Vec<SocketAddr>, String> {
    let eps: Result<Vec<SocketAddr>, String> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse().map_err(|e| format!("bad etcd endpoint {p:?}: {e} (want IP:PORT)")))
        .collect();
    let eps = eps?;
    if eps.is_empty() {
        return Err("--etcd needs at least one endpoint, like 127.0.0.1:2379".into());
    }
    Ok(eps)
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One HTTP/1.1 POST with a JSON body, ready to write.
pub fn post_request(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON body of a put.
pub fn put_body(key: &str, value: &[u8]) -> String {
    format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", base64(key.as_bytes()), base64(value))
}

/// The JSON body of a linearizable single-key range.
pub fn range_body(key: &str) -> String {
    format!("{{\"key\":\"{}\"}}", base64(key.as_bytes()))
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Takes one complete response off the front of `buf`, if there is one.
pub fn parse_response(buf: &mut Vec<u8>) -> Result<Option<HttpResponse>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err(format!("response head over {MAX_HEAD_BYTES} bytes"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err(format!("unsupported Transfer-Encoding {value:?}"));
        }
    }
    let length = length.ok_or("response without Content-Length")?;
    if length > MAX_BODY_BYTES {
        return Err(format!("response body of {length} bytes is over {MAX_BODY_BYTES}"));
    }
    let total = head_end + 4 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let body = buf[head_end + 4..total].to_vec();
    buf.drain(..total);
    Ok(Some(HttpResponse { status, body }))
}

/// A blocking keep-alive connection for single calls (status, one put): used to find the
/// leader here, and by measurement tools (failover, catch-up).
pub struct BlockingConn {
    pub addr: SocketAddr,
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl BlockingConn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<BlockingConn> {
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(BlockingConn { addr, stream, buf: Vec::new() })
    }

    /// POSTs `body` to `path` and waits for the answer.
    pub fn post(&mut self, path: &str, body: &str) -> io::Result<HttpResponse> {
        self.stream.write_all(&post_request(self.addr, path, body))?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match parse_response(&mut self.buf) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "etcd closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One put; `Ok` only for a 2xx answer.
    pub fn put(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        let r = self.post("/v3/kv/put", &put_body(key, value))?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(io::Error::other(format!("put answered {}: {}", r.status, String::from_utf8_lossy(&r.body))))
        }
    }

    pub fn status(&mut self) -> io::Result<EtcdStatus> {
        let r = self.post("/v3/maintenance/status", "{}")?;
        if !(200..300).contains(&r.status) {
            return Err(io::Error::other(format!("status answered {}", r.status)));
        }
        EtcdStatus::parse(&r.body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// What `/v3/maintenance/status` says about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdStatus {
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub raft_term: u64,
}

impl EtcdStatus {
    /// The gateway writes 64-bit numbers as strings and names fields in camelCase or
    /// snake_case depending on the version: accept both.
    pub fn parse(body: &[u8]) -> Result<EtcdStatus, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("status is not JSON: {e}"))?;
        let num = |v: &serde_json::Value, names: &[&str]| -> u64 {
            names
                .iter()
                .find_map(|n| v.get(*n))
                .and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
                .unwrap_or(0)
        };
        let header = v.get("header").ok_or("status without header")?;
        Ok(EtcdStatus {
            member_id: num(header, &["member_id", "memberId"]),
            leader: num(&v, &["leader"]),
            raft_index: num(&v, &["raftIndex", "raft_index"]),
            raft_applied_index: num(&v, &["raftAppliedIndex", "raft_applied_index"]),
            raft_term: num(&v, &["raftTerm", "raft_term"]),
        })
    }
}

/// Asks every endpoint for its status; returns the position of the one that is leader.
pub fn find_leader(endpoints: &[SocketAddr], timeout: Duration) -> Option<usize> {
    let statuses: Vec<Option<EtcdStatus>> =
        endpoints.iter().map(|&a| BlockingConn::connect(a, timeout).and_then(|mut c| c.status()).ok()).collect();
    statuses.iter().position(|s| s.is_some_and(|s| s.leader != 0 && s.leader == s.member_id))
}

/// Writes queued bytes until the socket would block, dropping what was written. False
/// when the connection failed. (HTTP is not framed, so raft-wire's `FramedConn`, which
/// the other load generator uses, does not fit here.)
fn write_some(stream: &mut impl Write, out: &mut Vec<u8>) -> bool {
    let mut written = 0;
    let mut ok = true;
    while written < out.len() {
        match stream.write(&out[written..]) {
            Ok(0) => {
                ok = false;
                break;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    out.drain(..written);
    ok
}

/// Reads until the socket would block, handing each chunk to `sink`. True when the
/// connection closed or failed (mio is edge-triggered: everything available is read).
fn read_some(stream: &mut impl Read, buf: &mut [u8], mut sink: impl FnMut(&[u8])) -> bool {
    loop {
        match stream.read(buf) {
            Ok(0) => return true,
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

struct InFlight {
    is_read: bool,
    request: Vec<u8>,
    first_sent: Instant,
}

struct Conn {
    endpoint: usize,
    stream: Option<TcpStream>,
    /// Connected (the first writable event came).
    ready: bool,
    input: Vec<u8>,
    out: Vec<u8>,
    reconnect_at: Option<Instant>,
    /// Sent, answered in this order.
    inflight: VecDeque<InFlight>,
    /// Refused, waiting to be sent again at `resend_at`.
    resend: Vec<InFlight>,
    resend_at: Option<Instant>,
    remaining: u64,
    rng: Rng,
}

struct Bench<'a> {
    endpoints: Vec<SocketAddr>,
    args: &'a BenchArgs,
    timeout: Duration,
    poll: Poll,
    conns: Vec<Conn>,
    tally: Tally,
    value: Vec<u8>,
    last_success: Instant,
    next_key: u64,
}

/// `raft-perf bench-etcd`: runs the bench against etcd and renders it as `raft-cli bench` does.
pub fn run(endpoints: &str, args: &BenchArgs, timeout: Duration) -> Output {
    raft_cli::bench::output(run_report(endpoints, args, timeout), args.json)
}

/// Runs the bench against etcd; `Err` is the output for endpoints that could not be used.
pub fn run_report(endpoints: &str, args: &BenchArgs, timeout: Duration) -> Result<BenchReport, Output> {
    let endpoints = parse_endpoints(endpoints).map_err(|e| Output::fail(EXIT_USAGE, e))?;
    let deadline = Instant::now() + timeout;
    let leader = loop {
        if let Some(l) = find_leader(&endpoints, Duration::from_millis(500)) {
            break l;
        }
        if Instant::now() >= deadline {
            return Err(Output::fail(EXIT_UNAVAILABLE, "no etcd endpoint reports itself leader; is etcd running?"));
        }
        std::thread::sleep(RETRY_PAUSE);
    };
    let mut bench = Bench {
        endpoints,
        args,
        timeout,
        poll: Poll::new().map_err(|e| Output::fail(EXIT_UNAVAILABLE, format!("cannot create a poll: {e}")))?,
        conns: Vec::new(),
        tally: Tally::new(args),
        value: (0..args.value_size).map(|i| b'a' + (i % 26) as u8).collect(),
        last_success: Instant::now(),
        next_key: args.first_key % args.keys,
    };
    let seed = raft_cli::client::random_u64();
    for i in 0..args.clients as u64 {
        let share = args.requests / args.clients as u64 + u64::from(i < args.requests % args.clients as u64);
        bench.conns.push(Conn {
            endpoint: leader,
            stream: None,
            ready: false,
            input: Vec::new(),
            out: Vec::new(),
            reconnect_at: Some(Instant::now()),
            inflight: VecDeque::new(),
            resend: Vec::new(),
            resend_at: None,
            remaining: share,
            rng: Rng::new(seed ^ (i + 1).wrapping_mul(0x9e37_79b9)),
        });
    }
    let start = Instant::now();
    bench.last_success = start;
    bench.run_loop();
    // Endpoints are numbered from 1 in the order given.
    Ok(bench.tally.report(args, start.elapsed(), Some(leader as u64 + 1)))
}

impl Bench<'_> {
    fn run_loop(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let now = Instant::now();
            if self.conns.iter().all(|c| c.remaining == 0 && c.inflight.is_empty() && c.resend.is_empty()) {
                return;
            }
            if now.duration_since(self.last_success) > self.timeout * 2 {
                for c in &mut self.conns {
                    self.tally.errors.aborted += c.remaining + (c.inflight.len() + c.resend.len()) as u64;
                    c.remaining = 0;
                    c.inflight.clear();
                    c.resend.clear();
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
                if event.is_writable() && !self.conns[i].ready && self.conns[i].stream.is_some() {
                    self.connected(i);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_from(i, &mut buf);
                }
                if event.is_writable() {
                    self.flush(i);
                }
            }
        }
    }

    fn request(&mut self, i: usize) -> InFlight {
        let c = &mut self.conns[i];
        let n = if self.args.sequential_keys { self.next_key } else { c.rng.below(self.args.keys) };
        self.next_key = (self.next_key + 1) % self.args.keys;
        let key = bench_key(n);
        let addr = self.endpoints[c.endpoint];
        let is_read = c.rng.unit() < self.args.read_ratio;
        let request = if is_read {
            // A stale read is etcd's "serializable" range.
            let body = if self.args.stale_reads {
                format!("{{\"key\":\"{}\",\"serializable\":true}}", base64(key.as_bytes()))
            } else {
                range_body(&key)
            };
            post_request(addr, "/v3/kv/range", &body)
        } else {
            post_request(addr, "/v3/kv/put", &put_body(&key, &self.value))
        };
        InFlight { is_read, request, first_sent: Instant::now() }
    }

    fn service(&mut self, i: usize, now: Instant) {
        let timeout = self.timeout;
        let c = &mut self.conns[i];
        let before = c.inflight.len() + c.resend.len();
        c.resend.retain(|f| now.duration_since(f.first_sent) <= timeout);
        // Requests on the wire are answered in order; only the oldest can be given up
        // without losing track of which answer is whose, and giving it up means the
        // connection is abandoned (its answer may still come).
        let expired = c.inflight.front().is_some_and(|f| now.duration_since(f.first_sent) > timeout);
        if expired {
            c.inflight.retain(|f| now.duration_since(f.first_sent) <= timeout);
        }
        self.tally.errors.timeouts += (before - c.inflight.len() - c.resend.len()) as u64;
        if expired {
            self.tally.errors.reconnects += 1;
            return self.disconnect(i, RETRY_PAUSE);
        }
        let c = &mut self.conns[i];
        if c.stream.is_none() {
            if c.reconnect_at.is_some_and(|t| t <= now) {
                self.connect(i);
            }
            return;
        }
        if !c.ready {
            return;
        }
        if c.resend_at.is_some_and(|t| t <= now) {
            c.resend_at = None;
            for f in std::mem::take(&mut c.resend) {
                c.out.extend_from_slice(&f.request);
                c.inflight.push_back(f);
            }
        }
        while self.conns[i].inflight.len() + self.conns[i].resend.len() < self.args.window as usize
            && self.conns[i].remaining > 0
        {
            self.conns[i].remaining -= 1;
            let f = self.request(i);
            let c = &mut self.conns[i];
            c.out.extend_from_slice(&f.request);
            c.inflight.push_back(f);
        }
        self.flush(i);
    }

    fn connect(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let addr = self.endpoints[c.endpoint];
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                if let Err(e) =
                    self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
                {
                    panic!("cannot register a connection with the poll: {e}");
                }
                c.stream = Some(stream);
                c.ready = false;
                c.input.clear();
                c.out.clear();
                c.reconnect_at = None;
            }
            Err(_) => {
                self.tally.errors.reconnects += 1;
                c.endpoint = (c.endpoint + 1) % self.endpoints.len();
                c.reconnect_at = Some(Instant::now() + RETRY_PAUSE);
            }
        }
    }

    /// The non-blocking connect completed (or failed): everything in flight goes again.
    fn connected(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_ref() else { return };
        match stream.take_error() {
            Ok(None) => {}
            _ => {
                self.tally.errors.reconnects += 1;
                return self.disconnect(i, RETRY_PAUSE);
            }
        }
        if stream.peer_addr().is_err() {
            return; // not connected yet: a spurious wake-up
        }
        let _ = stream.set_nodelay(true);
        c.ready = true;
        // Requests keep the Host header of the endpoint they were built for; the gateway
        // does not look at it, so they can go anywhere as they are.
        let mut again: Vec<InFlight> = c.inflight.drain(..).collect();
        again.append(&mut c.resend);
        c.resend_at = None;
        for f in again {
            c.out.extend_from_slice(&f.request);
            c.inflight.push_back(f);
        }
    }

    /// Drops the connection and reconnects to the next endpoint after `pause`; whatever
    /// was in flight waits to be resent there.
    fn disconnect(&mut self, i: usize, pause: Duration) {
        let n = self.endpoints.len();
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.ready = false;
        c.out.clear();
        c.input.clear();
        c.endpoint = (c.endpoint + 1) % n;
        c.reconnect_at = Some(Instant::now() + pause);
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.ready {
            return;
        }
        let Some(stream) = c.stream.as_mut() else { return };
        if !write_some(stream, &mut c.out) {
            self.tally.errors.reconnects += 1;
            self.disconnect(i, RETRY_PAUSE);
        }
    }

    fn read_from(&mut self, i: usize, buf: &mut [u8]) {
        let mut closed = {
            let c = &mut self.conns[i];
            if !c.ready {
                return;
            }
            let Some(stream) = c.stream.as_mut() else { return };
            read_some(stream, buf, |bytes| c.input.extend_from_slice(bytes))
        };
        loop {
            let c = &mut self.conns[i];
            match parse_response(&mut c.input) {
                Ok(Some(resp)) => {
                    let Some(f) = c.inflight.pop_front() else {
                        closed = true;
                        break;
                    };
                    self.on_response(i, f, resp.status);
                }
                Ok(None) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed && self.conns[i].stream.is_some() {
            self.tally.errors.reconnects += 1;
            self.disconnect(i, RETRY_PAUSE);
        }
    }

    fn on_response(&mut self, i: usize, f: InFlight, status: u16) {
        let now = Instant::now();
        if (200..300).contains(&status) {
            self.tally.latencies_us.push(now.duration_since(f.first_sent).as_micros() as u64);
            if f.is_read {
                self.tally.reads += 1;
            } else {
                self.tally.writes += 1;
            }
            self.last_success = now;
        } else if status == 400 || status == 413 {
            // The request itself is wrong: retrying cannot help.
            self.tally.errors.invalid += 1;
        } else {
            // 503 (no leader) and friends: try again after a pause.
            self.tally.errors.unavailable += 1;
            let c = &mut self.conns[i];
            c.resend.push(f);
            c.resend_at.get_or_insert(now + RETRY_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (plain, want) in cases {
            assert_eq!(base64(plain.as_bytes()), want, "{plain:?}");
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn responses_are_framed_by_content_length() {
        let mut buf =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 503 Ser"
                .to_vec();
        let r = parse_response(&mut buf).unwrap().unwrap();
        assert_eq!(r, HttpResponse { status: 200, body: b"{}".to_vec() });
        assert_eq!(parse_response(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"vice Unavailable\r\nContent-Length: 3\r\n\r\nab");
        assert_eq!(parse_response(&mut buf).unwrap(), None);
        buf.push(b'c');
        assert_eq!(parse_response(&mut buf).unwrap().unwrap().status, 503);
        assert!(buf.is_empty());
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        assert!(parse_response(&mut chunked).is_err());
    }

    #[test]
    fn status_parses_strings_and_both_spellings() {
        let body = br#"{"header":{"cluster_id":"1","member_id":"42","revision":"3","raft_term":"2"},
            "version":"3.4.23","leader":"42","raftIndex":"17","raftTerm":"2","raftAppliedIndex":"16"}"#;
        let s = EtcdStatus::parse(body).unwrap();
        assert_eq!(s, EtcdStatus { member_id: 42, leader: 42, raft_index: 17, raft_applied_index: 16, raft_term: 2 });
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(parse_endpoints("127.0.0.1:2379, 127.0.0.1:2389").unwrap().len(), 2);
        assert!(parse_endpoints("localhost").is_err());
        assert!(parse_endpoints("").is_err());
    }
}
