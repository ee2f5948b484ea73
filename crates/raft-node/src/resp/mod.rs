//! # The RESP front end: the cluster as a Redis server
//!
//! Each node listens on TCP (`redis_bind`:`redis_port + id`) and speaks the Redis
//! protocol ([`raft_resp`]), so redis-cli, redis-benchmark and Redis client libraries
//! work against any node. It lives on the node's one mio loop, beside the Unix-socket
//! transport, and touches the replica only through the requests it hands the server
//! ([`Resp::take_outbox`]) and the answers that come back ([`Resp::on_response`]).
//!
//! ## A command's way
//!
//! A connection's bytes are parsed into commands; each is either answered at once
//! (`PING`, `HELLO`, `INFO`, ...) or becomes one cluster request (a write with the
//! connection's own session id and the next sequence number, or a read), a *pending*
//! entry with a deadline. A pending request goes
//!
//! * to the local replica when this node leads (or the read is stale, after `READONLY`):
//!   the server proposes it in this turn, so everything a connection pipelined in one
//!   read, and everything all connections sent in one turn, is one append and one fsync;
//! * to the leader when another node leads: over one Unix-socket *link* to the leader's
//!   `node.sock`, as an ordinary client (`Hello::Client`, `ClientRequest`), non-blocking
//!   on this loop; the answer is relayed;
//! * nowhere yet when no leader is known: it is *parked* and tried again every
//!   [`RETRY_DELAY`].
//!
//! `NotLeader`, `Unavailable`, `Unknown` answers and a link that breaks park the request
//! for another try, with the same session id and sequence number, so the node's own
//! retries apply a write exactly once. At the deadline ([`REQUEST_TIMEOUT`]) the client
//! gets `-CLUSTERDOWN` when the write surely was not applied (it never reached a leader,
//! or was refused as unavailable) and `-TIMEOUT` when it may have been. A plain Redis
//! client has no session of its own: if it retries after `-TIMEOUT` (or a dropped
//! connection), its write can apply twice; raft-cli's cannot.
//!
//! ## Order on a connection
//!
//! Replies leave in command order (a queue of slots per connection). Reads and writes
//! of one connection are not in flight together: a read waits until the connection's
//! writes before it are answered (so it sees them), a write until its reads are answered
//! (so they do not see it); `WAIT` waits for everything before it. Writes pipelined
//! together go out together and are applied in order (one leader appends them in order).
//!
//! ## Limits
//!
//! Each connection holds at most one command's bytes beyond what it already parsed
//! ([`INPUT_BUFFER_BYTES`]), at most [`MAX_PIPELINE`] commands awaiting replies, and stops
//! reading while [`PAUSE_OUTPUT_BYTES`] of replies wait for the client to read them (TCP
//! pushes back); [`MAX_OUTPUT_BYTES`] queued closes it. A frame not finished within
//! [`PARTIAL_FRAME_TIMEOUT`], malformed RESP, a bulk string over the value limit or too
//! many arguments get `-ERR Protocol error: ...` and the connection is closed.

mod commands;

use crate::conn::Writability;
use crate::event;
use crate::eventlog::EventLog;
use commands::{ConnState, Plan, Req, Want};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use raft_core::{Index, NodeId, RoleKind, Term};
use raft_kv::{ReadOp, Reply, MAX_KEYS_PER_LISTING, MAX_KEYS_PER_OP, MAX_MULTI_BYTES, MAX_VALUE_BYTES};
use raft_resp::{parse_command, Limits, Protocol, Value};
use raft_wire::conn::{FramedConn, ReadOutcome};
use raft_wire::{ClientRequest, ClientResponse, Hello, Request, Response};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The front end's listening socket.
pub(crate) const LISTENER: Token = Token(3);
/// The `Waiter::conn` of requests the front end hands the local replica: answers to it
/// come back to [`Resp::on_response`].
pub(crate) const WAITER_CONN: u64 = 4;
/// RESP connections and the link get tokens from here up, far above the transport's.
const FIRST_TOKEN: usize = 1 << 40;

/// RESP connections at once (as `MAX_CLIENT_CONNECTIONS` for the Unix socket); one more
/// gets Redis's `-ERR max number of clients reached` and is closed.
pub const MAX_RESP_CONNECTIONS: usize = 1024;
/// Commands of one connection awaiting their replies: the session's reply window
/// (`raft_kv::MAX_REPLIES_PER_SESSION`), so any write in flight can be retried exactly once.
pub const MAX_PIPELINE: usize = raft_kv::MAX_REPLIES_PER_SESSION;
/// Arguments in one command: an `MSET` of the most pairs one write may hold, and its name.
pub const MAX_ARGS: usize = 2 * MAX_KEYS_PER_OP + 1;
/// Bytes of all bulk strings of one command: a multi-key write at its limit plus a value.
pub const MAX_COMMAND_BYTES: usize = MAX_MULTI_BYTES + MAX_VALUE_BYTES;
/// Unparsed input a connection may hold: one command at its limit plus its length lines.
pub const INPUT_BUFFER_BYTES: usize = MAX_COMMAND_BYTES + MAX_ARGS * 16 + 64 * 1024;
/// Replies waiting for the client to read them before the connection stops reading
/// commands (back-pressure through TCP instead of memory).
pub const PAUSE_OUTPUT_BYTES: usize = 4 << 20;
/// Replies waiting beyond this close the connection (as `MAX_CLIENT_OUT_BYTES`): replies
/// already in flight when reading paused can overshoot the pause, this far at most.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// A RESP array that is not complete this long after its first byte arrived closes the
/// connection: a client that never finishes a frame must not hold its buffer forever.
/// (Inline commands, typed by a person, have no such limit; their line is short.)
pub const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a command may wait for a leader and its answer before the client is told
/// `-CLUSTERDOWN` or `-TIMEOUT`: several elections' worth.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Delay before a parked request is tried again (no leader known, or one that refused).
pub const RETRY_DELAY: Duration = Duration::from_millis(20);
/// Longest `WAIT` (Redis's 0, "forever", included): a connection cannot be held forever.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// `SCAN` cursors remembered by one node (the oldest is forgotten first); each names the
/// last key a scan returned.
pub const MAX_SCAN_CURSORS: usize = 10_000;
/// Bytes read from one socket per read call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

pub(crate) const LIMITS: Limits = Limits {
    max_bulk_bytes: MAX_VALUE_BYTES,
    max_args: MAX_ARGS,
    max_inline_bytes: raft_resp::DEFAULT_MAX_INLINE_BYTES,
    max_command_bytes: MAX_COMMAND_BYTES,
};
const _: () = assert!(MAX_PIPELINE <= raft_kv::MAX_REPLIES_PER_SESSION);
const _: () = assert!(PAUSE_OUTPUT_BYTES < MAX_OUTPUT_BYTES);
const _: () = assert!(MAX_KEYS_PER_LISTING as usize <= MAX_KEYS_PER_OP);

/// What the front end knows of its node: the facts the node hands in every turn, and its
/// own settings and counts.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub id: NodeId,
    pub node: NodeFacts,
    pub clients: usize,
    pub fsync: bool,
    pub quota_bytes: u64,
    pub port: u16,
}

impl View {
    pub fn is_leader(&self) -> bool {
        self.node.role == RoleKind::Leader
    }
}

/// The part of the node's state a view is made of, handed in by the server.
#[derive(Clone, Debug)]
pub(crate) struct NodeFacts {
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub last_index: Index,
    pub keys: usize,
}

/// Whether a command reads, writes, waits for everything before it, or is local.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Local,
    Read,
    Write,
    Barrier,
}

fn class_of(args: &[Vec<u8>]) -> Class {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    if name == "wait" {
        return Class::Barrier;
    }
    match commands::find(&name) {
        Some(spec) if spec.flags.contains(&"write") => Class::Write,
        Some(spec) if spec.flags.contains(&"readonly") => Class::Read,
        _ => Class::Local,
    }
}

struct Slot {
    id: u64,
    /// The protocol when the command was read (a later `HELLO` does not change it).
    proto: Protocol,
    reply: Option<Vec<u8>>,
}

struct RespConn {
    stream: TcpStream,
    state: ConnState,
    input: Vec<u8>,
    input_pos: usize,
    /// When the unfinished RESP array at the head of the input began.
    partial_since: Option<Instant>,
    out: Vec<u8>,
    slots: VecDeque<Slot>,
    next_slot: u64,
    /// Bytes of answered slots not yet moved to `out`.
    slot_bytes: usize,
    reads: usize,
    writes: usize,
    barrier: bool,
    session: u64,
    seq: u64,
    /// `QUIT`, or the client closed its side: close once every reply is out.
    finishing: bool,
    /// The last read returned fewer bytes than asked, so the socket was empty then, and
    /// no readable event came since: a read now would only return `WouldBlock`. Sound
    /// because the poll is edge-triggered and Linux raises an edge for every arrival
    /// after the last report (issue 16: one `recvfrom` less per command).
    drained: bool,
    /// The poll reported the client's side closed: read to the end (`Ok(0)`) whatever
    /// the size of a read, since that report may have come with the data already read.
    read_closed: bool,
}

impl RespConn {
    fn output_bytes(&self) -> usize {
        self.out.len() + self.slot_bytes
    }
}

/// What a pending request is for.
enum Job {
    Cmd { want: Want },
    Scan,
    Wait { replicas: i64, until: Instant, target: Option<Index>, best: Option<i64> },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum At {
    Outbox,
    Local,
    Link(u64),
    Parked,
}

struct Pending {
    conn: Token,
    slot: u64,
    job: Job,
    request: Request,
    deadline: Instant,
    /// The request is a write that may have been applied (it reached a leader, or an
    /// answer said `Unknown`): at the deadline the client hears `-TIMEOUT`, not
    /// `-CLUSTERDOWN`.
    maybe_applied: bool,
    at: At,
}

/// This node's client stream to the leader's `node.sock`.
struct Link {
    to: NodeId,
    token: Token,
    conn: FramedConn<raft_transport::Stream>,
    gen: u64,
    /// Writable interest only while output waits (the hello until the connect completes,
    /// or what the socket did not take) or over TLS, as the node's own streams.
    writability: Writability,
}

impl Link {
    fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let pending = self.conn.queued_bytes() > 0;
        self.writability.update(registry, &mut self.conn.stream, self.token, pending)
    }
}

pub(crate) struct Resp {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Registry,
    sockets: BTreeMap<NodeId, raft_config::Endpoint>,
    /// The node's own identity for the link over TLS (`None`: Unix sockets or plain TCP).
    tls: Option<raft_transport::ClientTls>,
    conns: HashMap<Token, RespConn>,
    next_token: usize,
    next_client_id: u64,
    seed: u64,
    view: View,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    deadlines: BTreeSet<(Instant, u64)>,
    retries: VecDeque<(Instant, u64)>,
    outbox: Vec<u64>,
    link: Option<Link>,
    link_gen: u64,
    partial: HashSet<Token>,
    cursors: HashMap<u64, String>,
    cursor_order: VecDeque<u64>,
    next_cursor: u64,
    scratch: Vec<u8>,
}

impl Resp {
    /// Binds the listener; the error is the node's to report (it keeps running without
    /// the front end).
    pub fn open(
        addr: SocketAddr,
        registry: &Registry,
        id: NodeId,
        nodes: crate::tcp::NodeAddrs,
        fsync: bool,
        quota_bytes: u64,
        seed: u64,
    ) -> io::Result<Resp> {
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        let node = NodeFacts {
            role: RoleKind::Follower,
            term: 0,
            leader: None,
            commit: 0,
            applied: 0,
            last_index: 0,
            keys: 0,
        };
        let view = View { id, node, clients: 0, fsync, quota_bytes, port: local_addr.port() };
        Ok(Resp {
            listener,
            local_addr,
            registry: registry.try_clone()?,
            sockets: nodes.endpoints,
            tls: nodes.tls,
            conns: HashMap::new(),
            next_token: FIRST_TOKEN,
            next_client_id: 1,
            seed,
            view,
            pending: HashMap::new(),
            next_request: 1,
            deadlines: BTreeSet::new(),
            retries: VecDeque::new(),
            outbox: Vec::new(),
            link: None,
            link_gen: 0,
            partial: HashSet::new(),
            cursors: HashMap::new(),
            cursor_order: VecDeque::new(),
            // Cursors of an earlier incarnation of this node must not name ours.
            next_cursor: (seed << 32) | 1,
            scratch: vec![0; READ_CHUNK_BYTES],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether `token` is one of the front end's.
    pub fn owns(token: Token) -> bool {
        token == LISTENER || token.0 >= FIRST_TOKEN
    }

    fn new_token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    // ----- the node's side ----------------------------------------------------------------

    /// The node's state this turn. A new leader closes a link to the old one (its
    /// requests are tried again at the new one).
    pub fn set_view(&mut self, facts: NodeFacts, log: &mut EventLog) {
        let stale_link =
            self.link.as_ref().is_some_and(|l| Some(l.to) != facts.leader || facts.leader == Some(self.view.id));
        self.view.node = facts;
        self.view.clients = self.conns.len();
        if stale_link {
            self.close_link(None, log);
        }
    }

    /// Requests for the local replica, each with the waiter its answer comes back to.
    pub fn take_outbox(&mut self) -> Vec<(u64, Request)> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.outbox) {
            if let Some(p) = self.pending.get_mut(&id) {
                if p.at == At::Outbox {
                    p.at = At::Local;
                    out.push((id, p.request.clone()));
                }
            }
        }
        out
    }

    /// Timers: deadlines, retries, unfinished frames.
    pub fn on_turn(&mut self, now: Instant, log: &mut EventLog) {
        while let Some(&(when, id)) = self.deadlines.first() {
            if when > now {
                break;
            }
            self.deadlines.pop_first();
            self.expire(id, now, log);
        }
        while let Some(&(when, id)) = self.retries.front() {
            if when > now {
                break;
            }
            self.retries.pop_front();
            if self.pending.get(&id).is_some_and(|p| p.at == At::Parked) {
                self.dispatch(id, log);
            }
        }
        let stalled: Vec<Token> = self
            .partial
            .iter()
            .copied()
            .filter(|t| {
                self.conns.get(t).and_then(|c| c.partial_since).is_some_and(|s| now - s > PARTIAL_FRAME_TIMEOUT)
            })
            .collect();
        self.partial.retain(|t| self.conns.get(t).is_some_and(|c| c.partial_since.is_some()));
        for token in stalled {
            let why = format!("a frame was not finished within {} ms", PARTIAL_FRAME_TIMEOUT.as_millis());
            self.protocol_error(token, &why, log);
        }
    }

    /// The poll reported that the client of `token` closed its side (call before
    /// [`Resp::on_event`] for the same event): reads go on to the end of the stream.
    pub fn on_read_closed(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.read_closed = true;
            conn.drained = false;
        }
    }

    /// Readiness of one of the front end's sockets.
    pub fn on_event(&mut self, token: Token, readable: bool, writable: bool, log: &mut EventLog) {
        if token == LISTENER {
            return self.accept(log);
        }
        if self.link.as_ref().is_some_and(|l| l.token == token) {
            return self.on_link_event(readable, writable, log);
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if readable {
            conn.drained = false;
        }
        if writable {
            self.flush(token, log);
        }
        // Also after a write: reading paused while replies waited for the client.
        if readable || writable {
            self.serve(token, log);
        }
    }

    /// The answer to a request of ours, from the local replica or the link.
    pub fn on_response(&mut self, id: u64, response: Response, log: &mut EventLog) {
        let Some(p) = self.pending.get_mut(&id) else { return };
        match response {
            Response::Ok(reply) => {
                let (job, conn, slot) = (std::mem::replace(&mut p.job, Job::Scan), p.conn, p.slot);
                let value = match job {
                    Job::Cmd { want } => commands::translate(want, reply),
                    Job::Scan => self.scan_reply(reply),
                    Job::Wait { .. } => Value::err("internal: WAIT got a value"),
                };
                self.finish(id, conn, slot, value, log);
            }
            Response::Status(st) => {
                let Job::Wait { replicas, until, target, best } = &mut p.job else {
                    let (conn, slot) = (p.conn, p.slot);
                    return self.finish(id, conn, slot, Value::err("internal: a status answer"), log);
                };
                if st.role != RoleKind::Leader {
                    return self.park(id);
                }
                let target = *target.get_or_insert(st.commit);
                let count = st.progress.iter().filter(|pr| pr.id != st.id && pr.match_index >= target).count() as i64;
                *best = Some(best.map_or(count, |b| b.max(count)));
                if count >= *replicas || Instant::now() >= *until {
                    let (conn, slot) = (p.conn, p.slot);
                    self.finish(id, conn, slot, Value::Int(count), log);
                } else {
                    self.park(id);
                }
            }
            Response::NotLeader { .. } | Response::Unavailable { .. } => self.park(id),
            Response::Unknown { .. } => {
                p.maybe_applied = true;
                self.park(id);
            }
            Response::Invalid { reason } => {
                let (conn, slot) = (p.conn, p.slot);
                self.finish(id, conn, slot, Value::err(reason), log);
            }
            Response::Refused { reason } => {
                let (conn, slot) = (p.conn, p.slot);
                self.finish(id, conn, slot, Value::Error(format!("OOM {reason}")), log);
            }
            Response::Accepted | Response::Log(_) | Response::Traffic(_) => {
                let (conn, slot) = (p.conn, p.slot);
                self.finish(id, conn, slot, Value::err("internal: an admin answer"), log);
            }
        }
    }

    // ----- pending requests ---------------------------------------------------------------

    /// Sends pending request `id` where it can be answered now, or parks it.
    fn dispatch(&mut self, id: u64, log: &mut EventLog) {
        let Some(p) = self.pending.get(&id) else { return };
        let stale = matches!(p.request, Request::Read { stale: true, .. });
        if stale || self.view.is_leader() {
            self.pending.get_mut(&id).expect("present").at = At::Outbox;
            self.outbox.push(id);
            return;
        }
        let Some(leader) = self.view.node.leader.filter(|&l| l != self.view.id) else { return self.park(id) };
        if !matches!(&self.link, Some(l) if l.to == leader) {
            self.close_link(None, log);
            if let Err(e) = self.open_link(leader, log) {
                event!(log, self.view.node.term, "resp: cannot reach leader n{leader} to forward: {e}");
                return self.park(id);
            }
        }
        let link = self.link.as_mut().expect("opened above");
        let p = self.pending.get_mut(&id).expect("present");
        if link.conn.queue(&ClientRequest { id, body: p.request.clone() }).is_err() {
            return self.park(id);
        }
        p.at = At::Link(link.gen);
        if let Err(e) = link.conn.flush().and_then(|()| link.update_interest(&self.registry)) {
            self.close_link(Some(format!("write failed: {e}")), log);
        }
    }

    fn park(&mut self, id: u64) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.at = At::Parked;
            self.retries.push_back((Instant::now() + RETRY_DELAY, id));
        }
    }

    /// The deadline passed: answer with what is known.
    fn expire(&mut self, id: u64, now: Instant, log: &mut EventLog) {
        let Some(p) = self.pending.get(&id) else { return };
        if p.deadline > now {
            return;
        }
        let write = matches!(p.request, Request::Write { .. });
        let secs = REQUEST_TIMEOUT.as_secs();
        let value = match &p.job {
            Job::Wait { best: Some(n), .. } => Value::Int(*n),
            Job::Wait { best: None, .. } => Value::Error("CLUSTERDOWN no leader answered WAIT".into()),
            _ if write && (p.maybe_applied || p.at != At::Parked) => Value::Error(format!(
                "TIMEOUT no answer within {secs} s: the write may or may not have been applied \
                 (read the key to find out; a blind retry may apply it twice)"
            )),
            _ if write => {
                Value::Error(format!("CLUSTERDOWN no leader within {secs} s: the write was not applied; retry later"))
            }
            _ if p.at == At::Parked => Value::Error(format!("CLUSTERDOWN no leader within {secs} s; retry later")),
            _ => Value::Error(format!("TIMEOUT no answer within {secs} s (a read: safe to retry)")),
        };
        let (conn, slot) = (p.conn, p.slot);
        self.finish(id, conn, slot, value, log);
    }

    /// Answers pending `id` in its slot and lets its connection go on.
    fn finish(&mut self, id: u64, token: Token, slot: u64, value: Value, log: &mut EventLog) {
        let Some(p) = self.pending.remove(&id) else { return };
        self.deadlines.remove(&(p.deadline, id));
        let Some(conn) = self.conns.get_mut(&token) else { return };
        match p.request {
            Request::Write { .. } => conn.writes -= 1,
            Request::Status => conn.barrier = false,
            _ => conn.reads -= 1,
        }
        if let Some(s) = conn.slots.iter_mut().find(|s| s.id == slot) {
            let bytes = value.to_bytes(s.proto);
            conn.slot_bytes += bytes.len();
            s.reply = Some(bytes);
        }
        self.flush(token, log);
        self.serve(token, log);
    }

    fn scan_reply(&mut self, reply: Reply) -> Value {
        let Reply::Scan { keys, next } = reply else { return commands::translate(Want::Int, reply) };
        let cursor = match next {
            None => 0,
            Some(last) => {
                let c = self.next_cursor;
                self.next_cursor = self.next_cursor.wrapping_add(1).max(1);
                self.cursors.insert(c, last);
                self.cursor_order.push_back(c);
                while self.cursor_order.len() > MAX_SCAN_CURSORS {
                    let old = self.cursor_order.pop_front().expect("non-empty");
                    self.cursors.remove(&old);
                }
                c
            }
        };
        Value::Array(vec![
            Value::bulk(cursor.to_string()),
            Value::Array(keys.into_iter().map(|k| Value::bulk(k.into_bytes())).collect()),
        ])
    }

    // ----- the link to the leader ---------------------------------------------------------

    fn open_link(&mut self, to: NodeId, log: &mut EventLog) -> io::Result<()> {
        let at = self.sockets.get(&to).ok_or_else(|| io::Error::other(format!("unknown node {to}")))?;
        let mut stream = raft_transport::connect(at, to, self.tls.as_ref())?;
        let token = self.new_token();
        self.registry.register(&mut stream, token, Writability::FIRST_INTEREST)?;
        let mut conn = FramedConn::new(stream, usize::MAX);
        conn.queue(&Hello::Client).expect("a hello encodes");
        self.link_gen += 1;
        self.link = Some(Link { to, token, conn, gen: self.link_gen, writability: Writability::new() });
        event!(log, self.view.node.term, "resp: forwarding to leader n{to}");
        Ok(())
    }

    /// Drops the link; what was sent on it is tried again (a write with its own session
    /// and sequence number, so it still applies once).
    fn close_link(&mut self, why: Option<String>, log: &mut EventLog) {
        let Some(mut link) = self.link.take() else { return };
        let _ = self.registry.deregister(&mut link.conn.stream);
        if let Some(why) = why {
            event!(log, self.view.node.term, "resp: link to leader n{} closed: {why}", link.to);
        }
        let sent: Vec<u64> =
            self.pending.iter().filter(|(_, p)| p.at == At::Link(link.gen)).map(|(&id, _)| id).collect();
        for id in sent {
            let p = self.pending.get_mut(&id).expect("listed above");
            if matches!(p.request, Request::Write { .. }) {
                p.maybe_applied = true;
            }
            self.park(id);
        }
    }

    fn on_link_event(&mut self, readable: bool, writable: bool, log: &mut EventLog) {
        let link = self.link.as_mut().expect("checked by the caller");
        if writable {
            if let Err(e) = link.conn.flush().and_then(|()| link.update_interest(&self.registry)) {
                return self.close_link(Some(format!("write failed: {e}")), log);
            }
        }
        if !readable {
            return;
        }
        let gen = link.gen;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut closed = false;
        loop {
            let link = self.link.as_mut().expect("present");
            match link.conn.read_available(&mut scratch, usize::MAX) {
                Ok(ReadOutcome::Open) => {}
                Ok(ReadOutcome::More) => continue,
                Ok(ReadOutcome::Closed) => closed = true,
                Err(e) => {
                    self.scratch = scratch;
                    return self.close_link(Some(format!("read failed: {e}")), log);
                }
            }
            break;
        }
        self.scratch = scratch;
        loop {
            let Some(link) = self.link.as_mut().filter(|l| l.gen == gen) else { return };
            match link.conn.next_frame::<ClientResponse>() {
                Ok(Some(r)) => {
                    if self.pending.get(&r.id).is_some_and(|p| p.at == At::Link(gen)) {
                        self.on_response(r.id, r.body, log);
                    }
                }
                Ok(None) => break,
                Err(e) => return self.close_link(Some(format!("bad frame from the leader: {e}")), log),
            }
        }
        if closed {
            self.close_link(Some("the leader closed it".into()), log);
        }
    }

    // ----- connections --------------------------------------------------------------------

    fn accept(&mut self, log: &mut EventLog) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.conns.len() >= MAX_RESP_CONNECTIONS {
                        let _ = stream.write(b"-ERR max number of clients reached\r\n");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let token = self.new_token();
                    if self.registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                        continue;
                    }
                    let id = self.next_client_id;
                    self.next_client_id += 1;
                    let state = ConnState {
                        id,
                        proto: Protocol::Resp2,
                        name: None,
                        readonly: false,
                        addr: addr.to_string(),
                        local_addr: self.local_addr.to_string(),
                    };
                    // A session id of its own per connection: random per node
                    // incarnation, spread by the connection number.
                    let session = self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    self.conns.insert(
                        token,
                        RespConn {
                            stream,
                            state,
                            input: Vec::new(),
                            input_pos: 0,
                            partial_since: None,
                            out: Vec::new(),
                            slots: VecDeque::new(),
                            next_slot: 0,
                            slot_bytes: 0,
                            reads: 0,
                            writes: 0,
                            barrier: false,
                            session,
                            seq: 0,
                            finishing: false,
                            drained: false,
                            read_closed: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    event!(log, self.view.node.term, "resp: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what fits and handles every command that can go now.
    fn serve(&mut self, token: Token, log: &mut EventLog) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else { return };
            if conn.finishing {
                break;
            }
            if conn.slots.len() >= MAX_PIPELINE {
                // Answered slots at the head make room once they move to the output.
                Self::drain_slots(conn);
                if conn.slots.len() >= MAX_PIPELINE {
                    break;
                }
            }
            if conn.output_bytes() > PAUSE_OUTPUT_BYTES {
                break;
            }
            match parse_command(&conn.input[conn.input_pos..], &LIMITS) {
                Err(e) => return self.protocol_error(token, &e.0, log),
                Ok(None) => {
                    let has_partial = conn.input.len() > conn.input_pos;
                    if has_partial && conn.input[conn.input_pos] == b'*' && conn.partial_since.is_none() {
                        conn.partial_since = Some(Instant::now());
                        self.partial.insert(token);
                    }
                    match self.read(token) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(why) => {
                            let conn = self.conns.get_mut(&token).expect("present");
                            if why.is_empty() {
                                // The client closed its side: answer what it sent, then close.
                                conn.finishing = true;
                                break;
                            }
                            return self.close(token, Some(why), log);
                        }
                    }
                }
                Ok(Some(frame)) => {
                    if frame.args.is_empty() {
                        conn.input_pos += frame.used;
                        conn.partial_since = None;
                        continue;
                    }
                    let class = class_of(&frame.args);
                    let blocked = match class {
                        Class::Local => false,
                        Class::Read => conn.writes > 0 || conn.barrier,
                        Class::Write => conn.reads > 0 || conn.barrier,
                        Class::Barrier => conn.reads + conn.writes > 0 || conn.barrier,
                    };
                    if blocked {
                        break;
                    }
                    conn.input_pos += frame.used;
                    conn.partial_since = None;
                    self.command(token, frame.args, log);
                }
            }
        }
        self.flush(token, log);
        self.maybe_close(token, log);
    }

    /// Reads more input: `Ok(true)` when bytes came, `Ok(false)` at `WouldBlock` (or a
    /// full buffer), `Err("")` at end of stream, `Err(why)` on an error.
    fn read(&mut self, token: Token) -> Result<bool, String> {
        let conn = self.conns.get_mut(&token).expect("present");
        if conn.input_pos > 0 {
            conn.input.drain(..conn.input_pos);
            conn.input_pos = 0;
        }
        // Never full here: a buffer holding a whole command at its limit parses (or
        // fails) before this is called.
        let room = INPUT_BUFFER_BYTES.saturating_sub(conn.input.len());
        if room == 0 {
            return Ok(false);
        }
        if conn.drained {
            return Ok(false);
        }
        let want = room.min(self.scratch.len());
        loop {
            match conn.stream.read(&mut self.scratch[..want]) {
                Ok(0) => return Err(String::new()),
                Ok(n) => {
                    conn.input.extend_from_slice(&self.scratch[..n]);
                    conn.drained = n < want && !conn.read_closed;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.drained = !conn.read_closed;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }

    /// One parsed command: answered now, or a pending request.
    fn command(&mut self, token: Token, args: Vec<Vec<u8>>, log: &mut EventLog) {
        let conn = self.conns.get_mut(&token).expect("present");
        let slot = conn.next_slot;
        conn.next_slot += 1;
        conn.slots.push_back(Slot { id: slot, proto: conn.state.proto, reply: None });
        let plan = commands::plan(&args, &mut conn.state, &self.view);
        // A reply is in the protocol the connection speaks once its command ran (so
        // `HELLO 3` answers in RESP3), whatever comes after it.
        conn.slots.back_mut().expect("pushed above").proto = conn.state.proto;
        let now = Instant::now();
        let (request, job, deadline) = match plan {
            Plan::Reply(v) => return self.answer(token, slot, v),
            Plan::Close(v) => {
                self.answer(token, slot, v);
                self.conns.get_mut(&token).expect("present").finishing = true;
                return;
            }
            Plan::Cluster { req, want } => {
                let request = match req {
                    Req::Write(op) => {
                        conn.seq += 1;
                        Request::Write { session: conn.session, seq: conn.seq, op }
                    }
                    Req::Read(op) => Request::Read { op, stale: conn.state.readonly },
                };
                (request, Job::Cmd { want }, now + REQUEST_TIMEOUT)
            }
            Plan::Scan { pattern, count } => {
                let after = match std::str::from_utf8(&args[1]).ok().and_then(|c| c.parse::<u64>().ok()) {
                    Some(0) => None,
                    Some(c) => match self.cursors.get(&c) {
                        Some(k) => Some(k.clone()),
                        None => return self.answer(token, slot, Value::err("invalid cursor")),
                    },
                    None => return self.answer(token, slot, Value::err("invalid cursor")),
                };
                let op = ReadOp::Scan { after, pattern, count: MAX_KEYS_PER_LISTING, max_examined: count };
                (Request::Read { op, stale: conn.state.readonly }, Job::Scan, now + REQUEST_TIMEOUT)
            }
            Plan::Wait { replicas, timeout } => {
                let timeout = if timeout.is_zero() { MAX_WAIT } else { timeout.min(MAX_WAIT) };
                let until = now + timeout;
                let job = Job::Wait { replicas, until, target: None, best: None };
                (Request::Status, job, until + REQUEST_TIMEOUT)
            }
        };
        match request {
            Request::Write { .. } => conn.writes += 1,
            Request::Status => conn.barrier = true,
            _ => conn.reads += 1,
        }
        let id = self.next_request;
        self.next_request += 1;
        self.pending
            .insert(id, Pending { conn: token, slot, job, request, deadline, maybe_applied: false, at: At::Parked });
        self.deadlines.insert((deadline, id));
        self.dispatch(id, log);
    }

    /// Fills `slot` with a reply that is ready now.
    fn answer(&mut self, token: Token, slot: u64, value: Value) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if let Some(s) = conn.slots.iter_mut().rev().find(|s| s.id == slot) {
            let bytes = value.to_bytes(s.proto);
            conn.slot_bytes += bytes.len();
            s.reply = Some(bytes);
        }
    }

    /// Moves answered slots at the head to the output and writes what the socket takes.
    fn flush(&mut self, token: Token, log: &mut EventLog) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        Self::drain_slots(conn);
        let mut written = 0;
        let result = loop {
            if written == conn.out.len() {
                break Ok(());
            }
            match conn.stream.write(&conn.out[written..]) {
                Ok(0) => break Err("socket took no bytes".to_string()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("write failed: {e}")),
            }
        };
        conn.out.drain(..written);
        if result.is_err() {
            // The client went away; nothing to tell it, nothing worth a log line.
            return self.close(token, None, log);
        }
        if conn.out.len() > MAX_OUTPUT_BYTES {
            let why = format!("client too slow: over {MAX_OUTPUT_BYTES} bytes of replies unread");
            self.close(token, Some(why), log);
        }
    }

    /// Moves the answered slots at the head of the queue to the output buffer.
    fn drain_slots(conn: &mut RespConn) {
        while conn.slots.front().is_some_and(|s| s.reply.is_some()) {
            let bytes = conn.slots.pop_front().expect("non-empty").reply.expect("answered");
            conn.slot_bytes -= bytes.len();
            conn.out.extend_from_slice(&bytes);
        }
    }

    fn maybe_close(&mut self, token: Token, log: &mut EventLog) {
        let Some(conn) = self.conns.get(&token) else { return };
        if conn.finishing && conn.slots.is_empty() && conn.out.is_empty() {
            self.close(token, None, log);
        }
    }

    /// Tells the client what it broke and closes the connection (Redis does the same).
    fn protocol_error(&mut self, token: Token, why: &str, log: &mut EventLog) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let mut bytes = Value::err(format!("Protocol error: {why}")).to_bytes(Protocol::Resp2);
        // Replies already due go first; the error is the last thing the client reads.
        while conn.slots.front().is_some_and(|s| s.reply.is_some()) {
            let b = conn.slots.pop_front().expect("non-empty").reply.expect("answered");
            conn.out.extend_from_slice(&b);
        }
        conn.out.append(&mut bytes);
        let _ = conn.stream.write_all(&conn.out);
        let addr = conn.state.addr.clone();
        self.close(token, Some(format!("client {addr}: Protocol error: {why}")), log);
    }

    fn close(&mut self, token: Token, why: Option<String>, log: &mut EventLog) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        let _ = self.registry.deregister(&mut conn.stream);
        self.partial.remove(&token);
        if let Some(why) = why {
            event!(log, self.view.node.term, "resp: connection closed: {why}");
        }
        // Its pending requests stay until answered or expired (a write in flight still
        // applies); their answers find no connection and are dropped.
    }
}

#[cfg(test)]
mod tests;
