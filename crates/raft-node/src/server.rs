//! The event loop: sockets in, the replica (core, storage, state machine) in the middle,
//! answers and messages out.

use crate::conn::{Conn, Handshake, Kind, ReadOutcome, Writability};
use crate::event;
use crate::eventlog::{EventLog, LogTarget};
use crate::*;
use mio::{Events, Interest, Poll, Token, Waker};
use raft_core::{Config, Message, NodeId, Term};
use raft_replica::{Effects, Replica, ReplicaError, ReplicaOptions, Waiter};
use raft_storage::{Storage, StorageOptions};
use raft_wire::auth::{AcceptorHandshake, ClusterKey, DialerHandshake};
use raft_wire::{ClientRequest, ClientResponse, Hello, NodeStatus, PeerChallenge, PeerProof, Request, Response};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A turn of the event loop that takes this long gets a line in the node's log (half the
/// shortest election timeout at the default tick): heartbeats wait that long.
const SLOW_TURN: Duration = Duration::from_millis(75);

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST_CONN: usize = 16;
/// Read buffer per read call.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Everything a node needs to run, independent of where it came from (the binary builds it
/// from `cluster.toml`; in-process tests build it directly).
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub id: NodeId,
    /// The sockets of the nodes it knows at start, this node's included.
    pub sockets: BTreeMap<NodeId, PathBuf>,
    /// The voters of the cluster's bootstrap configuration (raft-core's
    /// `Config::voters`): a node outside them was added at run time and joins as learner.
    pub bootstrap: Vec<NodeId>,
    /// Where nodes not in `sockets` live, for members added at run time:
    /// `<cluster_dir>/node-<id>/node.sock`. `None`: only `sockets` are reachable.
    pub cluster_dir: Option<PathBuf>,
    /// `<dir>/node-<id>`: holds `wal/` and `snap/`.
    pub node_dir: PathBuf,
    pub cluster_id: u64,
    /// The cluster's peer secret (`<dir>/cluster.key`): peers prove they hold it.
    pub cluster_key: ClusterKey,
    /// Uids besides ours and root that may connect as clients (`allowed_uids`).
    pub allowed_uids: Vec<u32>,
    pub tick: Duration,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub fsync: bool,
    /// Compact once this many entries were applied since the last snapshot.
    pub snapshot_entries: u64,
    pub snapshot_ratio: f64,
    /// A learner within this many entries of the leader's log is promoted (§4.2.1).
    pub promote_lag: u64,
    /// ... or once this many bytes of entries were.
    pub snapshot_bytes: u64,
    /// Quota on the state's size (`quota_bytes`; 0: none), checked by the leader.
    pub quota_bytes: u64,
    /// Seeds the election timer.
    pub seed: u64,
    /// Handle SIGTERM/SIGINT (the binary does; in-process tests use [`StopHandle`]).
    pub handle_signals: bool,
    /// Where event lines go.
    pub log: LogTarget,
    /// Where the RESP front end listens (`redis_bind`:`redis_port + id`); `None`: off.
    pub redis: Option<std::net::SocketAddr>,
    /// TCP (and TLS) instead of Unix sockets (`crate::tcp`); the keys of `sockets` still
    /// list the nodes known at start. `None`: Unix sockets.
    pub tcp: Option<crate::tcp::TcpSettings>,
}

impl NodeSettings {
    /// The socket of node `id`: known at start, or derived for a member added at run time.
    pub(crate) fn peer_path(&self, id: NodeId) -> Option<PathBuf> {
        if id == 0 || id > raft_config::MAX_NODE_ID {
            return None;
        }
        match (self.sockets.get(&id), &self.cluster_dir) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(dir)) => Some(dir.join(format!("node-{id}")).join("node.sock")),
            (None, None) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] raft_storage::StorageError),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Replica(#[from] ReplicaError),
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
}

/// Stops a running [`Server`] from another thread (in-process tests).
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// Our outbound link to one peer.
struct PeerLink {
    token: Option<Token>,
    retry_at: Instant,
    backoff: Duration,
    connected: bool,
    /// Raft messages queued to this peer, and received from it and stepped, since start
    /// (for `raft-supervisor watch`'s messages per second).
    sent: u64,
    received: u64,
    /// The last TLS refusal logged for this peer, so a redial refused the same way adds
    /// no line; cleared once the peer connects.
    last_refusal: Option<String>,
}

impl PeerLink {
    fn new(now: Instant) -> PeerLink {
        PeerLink {
            token: None,
            retry_at: now,
            backoff: Duration::from_millis(PEER_RECONNECT_MIN_MS),
            connected: false,
            sent: 0,
            received: 0,
            last_refusal: None,
        }
    }
}

/// A running node: the transport around one [`Replica`], which does everything Raft.
pub struct Server {
    net: Net,
    replica: Replica<Storage>,
    /// Follower catch-up and step-down lines (see [`crate::observe`]).
    observer: crate::observe::Observer,
}

/// The transport: sockets, connections, peers, the partition lever, the event log. It is
/// the replica's [`Effects`]: messages and answers leave through it.
struct Net {
    s: NodeSettings,
    log: EventLog,
    poll: Poll,
    listener: raft_transport::Listener,
    stop: StopHandle,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    clients: usize,
    peers: BTreeMap<NodeId, PeerLink>,
    isolated: BTreeSet<NodeId>,
    next_tick: Instant,
    /// accept() failed with something other than WouldBlock: try again next turn.
    accept_retry: bool,
    /// Accepted connections still waiting for their hello.
    unidentified: usize,
    /// Connections whose read budget ran out last turn (see `MAX_READ_BYTES_PER_TURN`).
    unread: Vec<Token>,
    /// The replica's term, for the transport's own log lines.
    term: Term,
    scratch: Vec<u8>,
    /// The uid this node runs as: peers must have it (or be root); clients too, unless
    /// `allowed_uids` names theirs.
    uid: u32,
    /// The delay and loss levers on outgoing peer messages (see [`crate::levers`]).
    levers: crate::levers::DelayLine,
    /// The lowest index a conflict truncated from this turn, for the observer.
    truncated_from: Option<raft_core::Index>,
    /// A snapshot from the leader installed this turn, at this index, for the observer.
    snapshot_installed: Option<raft_core::Index>,
    /// The configured tick (`s.tick` is the running one, scaled by the speed).
    base_tick: Duration,
    /// The speed set by `raft-supervisor speed`, in thousandths.
    speed_milli: u32,
    /// The RESP front end (`crate::resp`), when configured and its port could be bound.
    resp: Option<crate::resp::Resp>,
    /// Recent sent messages for `raft-supervisor web` (`Request::Traffic`).
    traffic: crate::traffic::TrafficRing,
}

impl Effects for Net {
    fn send(&mut self, msg: Message) {
        Net::send(self, msg);
    }
    fn flush(&mut self) {
        self.flush_all();
    }
    fn respond(&mut self, to: Waiter, response: Response) {
        Net::respond(self, Token(to.conn as usize), to.request_id, response);
    }
    fn log(&mut self, term: Term, line: std::fmt::Arguments<'_>) {
        self.term = term;
        self.log.line(term, line);
    }
    fn event(&mut self, term: Term, event: &raft_core::Event) {
        match event {
            raft_core::Event::LogTruncated { from, .. } => {
                self.truncated_from = Some(self.truncated_from.map_or(*from, |f| f.min(*from)));
            }
            raft_core::Event::SnapshotInstalled { index, .. } => self.snapshot_installed = Some(*index),
            _ => {}
        }
        self.log(term, format_args!("{event}"));
    }
    fn now(&self) -> Option<Instant> {
        Some(Instant::now())
    }
}

impl Server {
    /// Recovers storage, binds the socket and builds the replica. Fails with a clear error
    /// on a locked directory, a corrupt log or a socket that cannot be bound.
    pub fn open(s: NodeSettings) -> Result<Server, NodeError> {
        let id = s.id;
        // raft-config refuses such timings; settings built in code are checked here too.
        if s.heartbeat_ticks <= MAX_CATCH_UP_TICKS || s.election_ticks_min <= s.heartbeat_ticks {
            return Err(NodeError::Config(format!(
                "heartbeat_ticks ({}) must be greater than MAX_CATCH_UP_TICKS ({MAX_CATCH_UP_TICKS}) and \
                 election_ticks_min ({}) greater than heartbeat_ticks",
                s.heartbeat_ticks, s.election_ticks_min
            )));
        }
        let mut log = EventLog::open(id, &s.log)?;
        let opts = StorageOptions { fsync: s.fsync, ..StorageOptions::default() };
        let (storage, recovery) = Storage::open(&s.node_dir, opts)?;
        // The summary line comes from the replica; the notes say what was repaired.
        for note in recovery.notes.iter().filter(|n| !n.starts_with("recovered ")) {
            event!(log, recovery.restored.hard_state.term, "storage: {note}");
        }
        let term = recovery.restored.hard_state.term;
        let mut config = Config::new(id, s.bootstrap.clone(), s.seed);
        config.heartbeat_ticks = s.heartbeat_ticks;
        config.election_ticks_min = s.election_ticks_min;
        config.election_ticks_max = s.election_ticks_max;
        config.pre_vote = s.pre_vote;
        config.check_quorum = s.check_quorum;
        config.promote_lag = s.promote_lag;
        let replica_opts = ReplicaOptions::new(s.snapshot_entries, s.snapshot_bytes)
            .with_snapshot_ratio(s.snapshot_ratio)
            .with_quota(s.quota_bytes);

        let at = s.listen_endpoint()?;
        // A socket file left by a dead incarnation would make bind fail; the storage lock
        // we hold proves no live node owns it.
        if let raft_config::Endpoint::Unix(path) = &at {
            let _ = std::fs::remove_file(path);
        }
        let mut listener = raft_transport::Listener::bind(&at, s.node_tls())
            .map_err(|source| NodeError::Listen { path: at.to_string().into(), source })?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = StopHandle { flag: Arc::new(AtomicBool::new(false)), waker };
        let signals = if s.handle_signals {
            let mut sig = signal_hook_mio::v1_0::Signals::new([libc::SIGTERM, libc::SIGINT])?;
            poll.registry().register(&mut sig, SIGNALS, Interest::READABLE)?;
            Some(sig)
        } else {
            None
        };
        let now = Instant::now();
        let peers = s.sockets.keys().filter(|&&p| p != id).map(|&p| (p, PeerLink::new(now))).collect();
        let s_seed = s.seed;
        let mut net = Net {
            next_tick: now + s.tick,
            base_tick: s.tick,
            speed_milli: raft_wire::SPEED_MILLI_NORMAL,
            s,
            log,
            poll,
            listener,
            stop,
            signals,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            clients: 0,
            peers,
            isolated: BTreeSet::new(),
            accept_retry: false,
            unidentified: 0,
            unread: Vec::new(),
            term,
            scratch: vec![0; READ_CHUNK_BYTES],
            uid: nix::unistd::geteuid().as_raw(),
            levers: crate::levers::DelayLine::new(s_seed ^ 0x9e37_79b9_7f4a_7c15),
            truncated_from: None,
            snapshot_installed: None,
            resp: None,
            traffic: crate::traffic::TrafficRing::new(),
        };
        if let Some(addr) = net.s.redis {
            // Every node's socket, added members' included: a follower forwards to whoever leads.
            let nodes = crate::tcp::NodeAddrs {
                endpoints: (1..=raft_config::MAX_NODE_ID)
                    .filter_map(|p| net.s.peer_endpoint(p).map(|e| (p, e)))
                    .collect(),
                tls: net.s.client_tls().cloned(),
            };
            let (fsync, quota) = (net.s.fsync, net.s.quota_bytes);
            match crate::resp::Resp::open(addr, net.poll.registry(), id, nodes, fsync, quota, net.s.seed) {
                Ok(r) => {
                    event!(net.log, term, "resp: serving the Redis protocol on {}", r.local_addr());
                    net.resp = Some(r);
                }
                // The node still serves Raft and raft-cli; only the front end is off.
                Err(e) => event!(net.log, term, "resp: front end off: cannot listen on {addr}: {e}"),
            }
        }
        let replica = Replica::recover(config, storage, recovery.restored, replica_opts, &mut net)?;
        if let Some(line) = net.s.transport_line() {
            event!(net.log, term, "{line}");
        }
        event!(net.log, term, "listening on {at}");
        let observer = crate::observe::Observer::new(seen(&replica));
        Ok(Server { net, replica, observer })
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.net.stop.clone()
    }

    /// Runs until SIGTERM/SIGINT or [`StopHandle::stop`]. Every turn's writes are durable
    /// when a turn ends, so stopping between turns loses nothing acknowledged.
    pub fn run(mut self) -> Result<(), NodeError> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        // Bring the state machine up to the persisted commit index before serving.
        self.process_ready()?;
        loop {
            let now = Instant::now();
            self.net.connect_peers(now);
            // Connections with bytes left unread this turn are served again at once.
            let timeout = if self.net.unread.is_empty() {
                self.net.next_deadline().saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.net.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let turn_start = Instant::now();
            for token in std::mem::take(&mut self.net.unread) {
                // Read to the end: the event that left these bytes may also have reported the
                // close, and no later event would come for it.
                self.on_conn_event(token, Readiness { readable: true, read_to_end: true, writable: false });
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.net.accept(),
                    SIGNALS => {
                        if let Some(sig) = self.net.signals.as_mut() {
                            if sig.pending().next().is_some() {
                                self.net.stop.flag.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    WAKER => {}
                    token if crate::resp::Resp::owns(token) => self.net.on_resp_event(token, ev),
                    token => self.on_conn_event(
                        token,
                        Readiness {
                            readable: ev.is_readable() || ev.is_read_closed(),
                            read_to_end: ev.is_read_closed(),
                            writable: ev.is_writable() || ev.is_write_closed(),
                        },
                    ),
                }
            }
            if self.net.accept_retry {
                self.net.accept();
            }
            if self.net.unidentified > 0 || self.net.peers.values().any(|l| l.token.is_some() && !l.connected) {
                self.net.close_silent_connections();
            }
            self.tick_if_due();
            self.drive_resp();
            self.process_ready()?;
            // Answers of this turn let pipelined commands go on: propose them now.
            if self.drive_resp() {
                self.process_ready()?;
            }
            // A snapshot is written by a forked child; its end is noticed here, within a
            // turn (at most a tick) of happening.
            self.replica.poll_compaction(false, &mut self.net)?;
            self.replica.maybe_compact(&mut self.net)?;
            for msg in self.net.levers.due(Instant::now()) {
                self.net.send_now(msg);
            }
            self.net.flush_all();
            let took = turn_start.elapsed();
            if took >= SLOW_TURN {
                event!(self.net.log, self.replica.term(), "slow turn: {} ms without polling", took.as_millis());
            }
            if self.net.stop.flag.load(Ordering::SeqCst) {
                self.shutdown_line();
                return Ok(());
            }
        }
    }

    fn process_ready(&mut self) -> Result<(), NodeError> {
        let _any = self.replica.process_ready(&mut self.net)?;
        self.net.term = self.replica.term();
        if let Some(from) = self.net.truncated_from.take() {
            self.observer.on_truncated(from);
        }
        if let Some(index) = self.net.snapshot_installed.take() {
            self.observer.on_snapshot(index);
        }
        for line in self.observer.after_turn(Instant::now(), seen(&self.replica)) {
            event!(self.net.log, self.net.term, "{line}");
        }
        Ok(())
    }

    /// The last line of a clean stop: what is on disk. Every turn's entries are written
    /// (and fsynced, unless `fsync = false`) before the turn ends, so the whole log is.
    fn shutdown_line(&mut self) {
        let mut lines = Vec::new();
        self.observer.flush(&mut lines, Instant::now());
        let term = self.replica.term();
        for line in lines {
            event!(self.net.log, term, "{line}");
        }
        let raft = self.replica.raft();
        let last = raft.last_index();
        let last_term = raft.entry(last).map_or_else(|| raft.snapshot().map_or(0, |s| s.term), |e| e.term);
        let synced = if self.net.s.fsync { "fsynced" } else { "written (fsync = false: not synced)" };
        event!(
            self.net.log,
            term,
            "shutting down: last index {last} term {last_term} {synced}, commit {}, applied {}",
            raft.commit_index(),
            self.replica.kv().applied()
        );
    }

    /// The RESP front end's turn: the node's state, its timers, then the requests it has
    /// for the local replica (proposed in this turn, so one fsync covers them all).
    /// Returns whether it handed any.
    fn drive_resp(&mut self) -> bool {
        let Some(resp) = self.net.resp.as_mut() else { return false };
        let raft = self.replica.raft();
        let facts = crate::resp::NodeFacts {
            role: raft.role(),
            term: raft.term(),
            leader: raft.leader(),
            commit: raft.commit_index(),
            applied: self.replica.kv().applied(),
            last_index: raft.last_index(),
            keys: self.replica.kv().len(),
        };
        resp.set_view(facts, &mut self.net.log);
        resp.on_turn(Instant::now(), &mut self.net.log);
        let mut any = false;
        // Each round's answers (a status) can release more commands; a few rounds suffice.
        for _ in 0..4 {
            let batch = self.net.resp.as_mut().map(|r| r.take_outbox()).unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            any = true;
            for (id, request) in batch {
                let from = Waiter { conn: crate::resp::WAITER_CONN, request_id: id };
                match request {
                    Request::Write { session, seq, op } => self.replica.write(from, session, seq, op, &mut self.net),
                    Request::Read { op, stale } => self.replica.read(from, op, stale, &mut self.net),
                    Request::Status => {
                        let status = self.status();
                        self.net.respond(Token(from.conn as usize), id, Response::Status(status));
                    }
                    other => unreachable!("the RESP front end never asks {other:?}"),
                }
            }
        }
        any
    }

    fn tick_if_due(&mut self) {
        let now = Instant::now();
        let mut n = 0;
        while self.net.next_tick <= now && n < MAX_CATCH_UP_TICKS {
            self.replica.raft_mut().tick();
            self.net.next_tick += self.net.s.tick;
            n += 1;
        }
        if self.net.next_tick <= now {
            // Far behind (the process was stopped): resume the normal cadence from now.
            self.net.next_tick = now + self.net.s.tick;
        }
    }

    fn on_conn_event(&mut self, token: Token, ready: Readiness) {
        if let Some(closed) = self.net.service(token, ready) {
            self.dispatch_frames(token);
            if closed {
                self.net.close(token, None);
            }
        }
    }

    /// Decodes and handles every complete frame buffered on `token`.
    fn dispatch_frames(&mut self, token: Token) {
        loop {
            let Some(conn) = self.net.conns.get_mut(&token) else { return };
            let kind = conn.kind;
            let res = match kind {
                Kind::Unidentified => conn.reader.next_frame::<Hello>().map(|h| h.map(Frame::Hello)),
                Kind::PeerInAuth(_) => conn.reader.next_frame::<PeerProof>().map(|p| p.map(Frame::Proof)),
                Kind::PeerIn(_) => conn.reader.next_frame::<Message>().map(|m| m.map(Frame::Message)),
                Kind::Client => conn.reader.next_frame::<ClientRequest>().map(|r| r.map(Frame::Request)),
                Kind::PeerOutAuth(_) => conn.reader.next_frame::<PeerChallenge>().map(|c| c.map(Frame::Challenge)),
                // We never expect frames on our outbound peer streams after the handshake.
                Kind::PeerOut(_) => conn.reader.next_frame::<Message>().map(|m| m.map(Frame::Message)),
            };
            let frame = match res {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.net.close(token, Some(format!("bad frame: {e}"))),
            };
            match (kind, frame) {
                (Kind::Unidentified, Frame::Hello(hello)) => {
                    if let Err(why) = self.net.identify(token, hello) {
                        return self.net.close(token, Some(why));
                    }
                }
                (Kind::PeerInAuth(peer), Frame::Proof(proof)) => {
                    if let Err(why) = self.net.on_proof(token, peer, &proof) {
                        return self.net.close(token, Some(format!("refused peer n{peer}: {why}")));
                    }
                }
                (Kind::PeerOutAuth(peer), Frame::Challenge(challenge)) => {
                    if let Err(why) = self.net.on_challenge(token, peer, &challenge) {
                        // Said here: closing a stream that never connected logs nothing.
                        event!(self.net.log, self.net.term, "refused peer n{peer}: {why}");
                        return self.net.close(token, Some(format!("refused: {why}")));
                    }
                }
                (Kind::PeerIn(peer), Frame::Message(msg)) => {
                    if msg.from != peer || msg.to != self.net.s.id {
                        let why = format!("message claims n{} -> n{} on the stream of n{peer}", msg.from, msg.to);
                        return self.net.close(token, Some(why));
                    }
                    if self.net.isolated.contains(&peer) {
                        continue;
                    }
                    self.observer.on_message(&msg);
                    if let Some(link) = self.net.peers.get_mut(&peer) {
                        link.received += 1;
                    }
                    if let Err(e) = self.replica.raft_mut().step(msg) {
                        return self.net.close(token, Some(e.to_string()));
                    }
                }
                (Kind::Client, Frame::Request(req)) => self.on_request(token, req),
                (_, _) => return self.net.close(token, Some("unexpected frame".into())),
            }
        }
    }

    fn on_request(&mut self, token: Token, req: ClientRequest) {
        let from = Waiter { conn: token.0 as u64, request_id: req.id };
        match req.body {
            Request::Write { session, seq, op } => self.replica.write(from, session, seq, op, &mut self.net),
            Request::Read { op, stale } => self.replica.read(from, op, stale, &mut self.net),
            Request::Status => {
                let status = self.status();
                self.net.respond(token, req.id, Response::Status(status));
            }
            Request::Isolate { peers } => {
                let body = self.net.isolate(peers);
                self.net.respond(token, req.id, body);
            }
            Request::Membership { change: raft_core::MembershipChange::AddLearner(id) }
                if self.net.s.peer_endpoint(id).is_none() =>
            {
                let reason = format!(
                    "node id {id} has no address this node can reach (ids are 1..={}; over tcp, an addrs entry)",
                    raft_config::MAX_NODE_ID
                );
                self.net.respond(token, req.id, Response::Invalid { reason });
            }
            Request::Membership { change } => self.replica.change_membership(from, change, &mut self.net),
            Request::TransferLeader { to } => {
                let body = match self.replica.raft_mut().transfer_leadership(to) {
                    Ok(()) => Response::Accepted,
                    Err(raft_core::TransferError::NotLeader(nl)) => Response::NotLeader { leader: nl.leader },
                    Err(raft_core::TransferError::UnknownPeer(p)) => {
                        Response::Invalid { reason: format!("unknown node id {p}") }
                    }
                };
                self.net.respond(token, req.id, body);
            }
            Request::NetLevers(levers) => {
                let body = self.net.set_levers(levers);
                self.net.respond(token, req.id, body);
            }
            Request::Log { from, limit } => {
                let body = crate::logpage::page(self.replica.raft(), self.replica.kv().applied(), from, limit);
                self.net.respond(token, req.id, body);
            }
            Request::SetSpeed { factor_milli } => {
                let body = self.net.set_speed(factor_milli, self.replica.term());
                self.net.respond(token, req.id, body);
            }
            Request::Traffic { after_seq } => {
                let body = Response::Traffic(self.net.traffic.page(after_seq, &self.replica.raft().hard_state()));
                self.net.respond(token, req.id, body);
            }
        }
    }

    fn status(&self) -> NodeStatus {
        let st = self.replica.raft().status();
        NodeStatus {
            id: st.id,
            pid: std::process::id(),
            role: st.role,
            term: st.term,
            leader: st.leader,
            commit: st.commit,
            applied: self.replica.kv().applied(),
            last_index: st.last_index,
            snapshot_index: self.replica.snapshot_index(),
            progress: st.progress,
            connected: self.net.peers.iter().filter(|(_, l)| l.connected).map(|(&p, _)| p).collect(),
            isolated: self.net.isolated.iter().copied().collect(),
            membership: st.membership,
            levers: self.net.levers.levers(),
            messages_sent: self.net.peers.iter().map(|(&p, l)| (p, l.sent)).collect(),
            messages_received: self.net.peers.iter().map(|(&p, l)| (p, l.received)).collect(),
            election_elapsed_ticks: self.replica.raft().election_elapsed_ticks(),
            election_timeout_ticks: self.replica.raft().election_timeout_ticks(),
            tick_us: self.net.s.tick.as_micros() as u64,
            speed_milli: self.net.speed_milli,
        }
    }
}

impl Net {
    fn next_deadline(&self) -> Instant {
        let mut d = self.next_tick;
        for link in self.peers.values() {
            if link.token.is_none() && link.retry_at < d {
                d = link.retry_at;
            }
        }
        if let Some(release) = self.levers.next_release() {
            d = d.min(release);
        }
        d
    }

    /// Where node `id` is dialled (`None`: not reachable).
    fn peer_endpoint(&self, id: NodeId) -> Option<raft_config::Endpoint> {
        self.s.peer_endpoint(id)
    }

    /// The delay and loss levers: bounds checked, one line when they change.
    fn set_levers(&mut self, levers: raft_wire::levers::NetLevers) -> Response {
        if let Err(reason) = levers.check() {
            return Response::Invalid { reason };
        }
        let was = self.levers.levers();
        if levers != was {
            event!(
                self.log,
                self.term,
                "network levers on messages to peers: {levers} (was {was}; {} lost, {} dropped on a full queue so far)",
                self.levers.lost,
                self.levers.overflowed
            );
        }
        self.levers.set(levers, Instant::now());
        Response::Accepted
    }

    /// The partition lever: drop all traffic with `peers` (empty heals).
    fn isolate(&mut self, peers: Vec<NodeId>) -> Response {
        let peers: BTreeSet<NodeId> = peers.into_iter().filter(|p| *p != self.s.id).collect();
        if let Some(bad) = peers.iter().find(|&&p| self.peer_endpoint(p).is_none()) {
            return Response::Invalid { reason: format!("unknown node id {bad}") };
        }
        if peers != self.isolated {
            if peers.is_empty() {
                event!(self.log, self.term, "partition healed: talking to every peer");
            } else {
                event!(self.log, self.term, "partitioned: dropping traffic with {:?}", peers);
            }
        }
        self.isolated = peers;
        Response::Accepted
    }

    /// The slow-motion lever: the tick lasts `base_tick * 1000 / factor_milli` from now
    /// on (the next tick is rescheduled at once, so slowing down never waits out an old
    /// long tick). Raft still counts ticks, so every timeout scales together.
    fn set_speed(&mut self, factor_milli: u32, term: Term) -> Response {
        use raft_wire::{show_speed, show_tick_us, SPEED_MILLI_MAX, SPEED_MILLI_MIN};
        if !(SPEED_MILLI_MIN..=SPEED_MILLI_MAX).contains(&factor_milli) {
            return Response::Invalid {
                reason: format!(
                    "speed {} is not in {}..={}",
                    show_speed(factor_milli),
                    show_speed(SPEED_MILLI_MIN),
                    show_speed(SPEED_MILLI_MAX)
                ),
            };
        }
        let tick = self.base_tick * 1000 / factor_milli;
        assert!(!tick.is_zero(), "tick_ms >= 1 and speed <= 10x keep the tick >= 100 us");
        if factor_milli != self.speed_milli || tick != self.s.tick {
            self.speed_milli = factor_milli;
            self.s.tick = tick;
            self.next_tick = Instant::now() + tick;
            let tick_us = tick.as_micros() as u64;
            event!(self.log, term, "speed {}x: tick {}", show_speed(factor_milli), show_tick_us(tick_us));
        }
        Response::Accepted
    }

    // ----- connections -------------------------------------------------------------------

    fn new_token(&mut self) -> Token {
        // Tokens are never reused, so a reply for a closed connection cannot reach a new one.
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn accept(&mut self) {
        self.accept_retry = false;
        loop {
            match self.listener.accept() {
                // One connection that could not be set up: it is closed, the listener is
                // fine, so the others queued behind it are still taken.
                Ok(raft_transport::Accepted::Dropped(e)) => {
                    event!(self.log, self.term, "dropped an accepted connection {e}");
                    continue;
                }
                Ok(raft_transport::Accepted::Stream(mut stream)) => {
                    if self.unidentified >= MAX_UNIDENTIFIED_CONNECTIONS {
                        event!(
                            self.log,
                            self.term,
                            "refused a connection: {} have not said hello yet",
                            self.unidentified
                        );
                        continue;
                    }
                    self.unidentified += 1;
                    let token = self.new_token();
                    if self.poll.registry().register(&mut stream, token, Writability::FIRST_INTEREST).is_ok() {
                        self.conns.insert(token, Conn::new(stream, Kind::Unidentified));
                    } else {
                        self.unidentified -= 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // E.g. EMFILE. The listener is edge-triggered: connections still queued
                    // would never be reported again, so retry on the next tick.
                    if !self.accept_retry {
                        event!(self.log, self.term, "accept failed: {e}; retrying every tick");
                    }
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    /// Closes connections that did not say hello, or did not finish the peer handshake,
    /// within [`HELLO_TIMEOUT_MS`] (a dialled peer that never answers included).
    fn close_silent_connections(&mut self) {
        let limit = Duration::from_millis(HELLO_TIMEOUT_MS);
        let silent: Vec<(Token, Kind)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.kind, Kind::Unidentified | Kind::PeerInAuth(_) | Kind::PeerOutAuth(_))
                    && c.opened.elapsed() > limit
            })
            .map(|(&t, c)| (t, c.kind))
            .collect();
        for (token, kind) in silent {
            let why = match kind {
                Kind::Unidentified => format!("no hello within {HELLO_TIMEOUT_MS} ms"),
                _ => format!("peer handshake not finished within {HELLO_TIMEOUT_MS} ms"),
            };
            self.close(token, Some(why));
        }
    }

    fn connect_peers(&mut self, now: Instant) {
        let due: Vec<NodeId> =
            self.peers.iter().filter(|(_, l)| l.token.is_none() && l.retry_at <= now).map(|(&p, _)| p).collect();
        for peer in due {
            let at = self.peer_endpoint(peer).expect("a peer link has an address");
            match raft_transport::connect(&at, peer, self.s.client_tls()) {
                Ok(mut stream) => {
                    let token = self.new_token();
                    if let Err(e) = self.poll.registry().register(&mut stream, token, Writability::FIRST_INTEREST) {
                        self.peer_failed(peer, now, &e.to_string());
                        continue;
                    }
                    let nonce = match raft_wire::auth::random_nonce() {
                        Ok(n) => n,
                        Err(e) => {
                            self.peer_failed(peer, now, &format!("no random nonce: {e}"));
                            continue;
                        }
                    };
                    let mut conn = Conn::new(stream, Kind::PeerOutAuth(peer));
                    conn.connecting = true;
                    let handshake = DialerHandshake::new(self.s.cluster_id, self.s.id, peer, nonce);
                    conn.queue(&handshake.hello()).expect("hello encodes");
                    conn.handshake = Some(Handshake::Dialer(handshake));
                    self.conns.insert(token, conn);
                    let link = self.peers.get_mut(&peer).expect("known peer");
                    link.token = Some(token);
                }
                Err(e) => self.peer_failed(peer, now, &e.to_string()),
            }
        }
    }

    fn peer_failed(&mut self, peer: NodeId, now: Instant, why: &str) {
        let link = self.peers.get_mut(&peer).expect("known peer");
        if link.connected {
            event!(self.log, self.term, "peer n{peer} lost: {why}");
        }
        link.connected = false;
        link.token = None;
        link.retry_at = now + link.backoff;
        link.backoff = (link.backoff * 2).min(Duration::from_millis(PEER_RECONNECT_MAX_MS));
    }

    fn close(&mut self, token: Token, why: Option<String>) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let from = conn.remote_suffix();
        match conn.kind {
            Kind::PeerOut(peer) => self.peer_failed(peer, Instant::now(), why.as_deref().unwrap_or("closed")),
            // A TLS refusal (another CA, another node's certificate) is one line; the same
            // refusal again on each redial is not repeated (see `crate::tcp`).
            Kind::PeerOutAuth(peer) if conn.tls_refused => {
                let why = why.unwrap_or_else(|| "TLS session refused".into());
                if self.peers.get_mut(&peer).is_some_and(|l| l.last_refusal.as_deref() != Some(&why)) {
                    let at = self.peer_endpoint(peer).map_or(String::new(), |a| format!(" at {a}"));
                    event!(self.log, self.term, "refused peer n{peer}{at}: {why}");
                    self.peers.get_mut(&peer).expect("checked").last_refusal = Some(why.clone());
                }
                self.peer_failed(peer, Instant::now(), &why);
            }
            // Not connected yet, so quiet like a failed connect (a peer that is down is
            // redialled every PEER_RECONNECT_MAX_MS); a refused challenge was logged.
            Kind::PeerOutAuth(peer) => self.peer_failed(peer, Instant::now(), why.as_deref().unwrap_or("closed")),
            Kind::PeerInAuth(peer) => {
                self.unidentified -= 1;
                let why =
                    why.unwrap_or_else(|| format!("refused peer n{peer}: closed before proving it holds the key"));
                event!(self.log, self.term, "connection from n{peer}{from} closed: {why}");
            }
            Kind::Client => {
                self.clients -= 1;
                if let Some(why) = why {
                    event!(self.log, self.term, "client connection{from} closed: {why}");
                }
            }
            Kind::PeerIn(peer) => {
                if let Some(why) = why {
                    event!(self.log, self.term, "connection from n{peer}{from} closed: {why}");
                }
            }
            Kind::Unidentified => {
                self.unidentified -= 1;
                if let Some(why) = why {
                    event!(self.log, self.term, "connection{from} closed: {why}");
                }
            }
        }
    }

    /// Gives the connection its kind (a peer's is `PeerInAuth` until its proof). On error
    /// it stays unidentified and is closed.
    fn identify(&mut self, token: Token, hello: Hello) -> Result<(), String> {
        let conn = self.conns.get_mut(&token).expect("live connection");
        assert_eq!(conn.kind, Kind::Unidentified, "a connection says hello once");
        match hello {
            Hello::Client => {
                conn.admit_client(self.uid, &self.s.allowed_uids)?;
                if self.clients >= MAX_CLIENT_CONNECTIONS {
                    return Err(format!("too many clients ({MAX_CLIENT_CONNECTIONS})"));
                }
                conn.kind = Kind::Client;
                self.clients += 1;
                self.unidentified -= 1;
            }
            Hello::Peer { cluster_id, node, nonce } => {
                if cluster_id != self.s.cluster_id {
                    return Err(format!(
                        "refused peer n{node}: from cluster {cluster_id:#x}, we are {:#x}",
                        self.s.cluster_id
                    ));
                }
                if node == self.s.id || self.s.peer_endpoint(node).is_none() {
                    return Err(format!("refused peer: unknown node id {node}"));
                }
                conn.admit_peer(node, self.uid).map_err(|why| format!("refused peer n{node}: {why}"))?;
                let ours = raft_wire::auth::random_nonce().map_err(|e| format!("no random nonce: {e}"))?;
                let (handshake, challenge) =
                    AcceptorHandshake::new(&self.s.cluster_key, cluster_id, self.s.id, node, nonce, ours);
                conn.queue(&challenge).expect("a challenge encodes");
                conn.handshake = Some(Handshake::Acceptor(handshake));
                conn.kind = Kind::PeerInAuth(node);
            }
        }
        Ok(())
    }

    /// The dialer's proof on an inbound peer stream: only a valid one makes it `PeerIn`.
    fn on_proof(&mut self, token: Token, peer: NodeId, proof: &PeerProof) -> Result<(), String> {
        let conn = self.conns.get_mut(&token).expect("live connection");
        let Some(Handshake::Acceptor(handshake)) = conn.handshake.take() else {
            panic!("a PeerInAuth connection holds an acceptor handshake (bug)");
        };
        assert_eq!(handshake.dialer(), peer, "the handshake is with the peer of the hello");
        handshake.on_proof(&self.s.cluster_key, proof).map_err(|e| e.to_string())?;
        conn.kind = Kind::PeerIn(peer);
        self.unidentified -= 1;
        // The peer is back (it just connected to us): stop waiting out the reconnect
        // backoff to it, or a restarted node would hear nothing from us for up to
        // PEER_RECONNECT_MAX_MS and start its catch-up that much later.
        let link = self.peers.entry(peer).or_insert_with(|| PeerLink::new(Instant::now()));
        if link.token.is_none() {
            link.retry_at = Instant::now();
            link.backoff = Duration::from_millis(PEER_RECONNECT_MIN_MS);
        }
        Ok(())
    }

    /// The acceptor's challenge on our outbound stream: if it proves the key (and the
    /// listener runs as our uid or root), answer with our proof; the stream is then ours
    /// to send Raft messages on.
    fn on_challenge(&mut self, token: Token, peer: NodeId, challenge: &PeerChallenge) -> Result<(), String> {
        let conn = self.conns.get_mut(&token).expect("live connection");
        let Some(Handshake::Dialer(handshake)) = conn.handshake.take() else {
            panic!("a PeerOutAuth connection holds a dialer handshake (bug)");
        };
        conn.admit_peer(peer, self.uid).map_err(|why| format!("its socket is served by {why}"))?;
        let proof = handshake.on_challenge(&self.s.cluster_key, challenge).map_err(|e| e.to_string())?;
        conn.queue(&proof).expect("a proof encodes");
        conn.kind = Kind::PeerOut(peer);
        let link = self.peers.get_mut(&peer).expect("known peer");
        link.connected = true;
        link.last_refusal = None;
        link.backoff = Duration::from_millis(PEER_RECONNECT_MIN_MS);
        event!(self.log, self.term, "peer n{peer} connected");
        Ok(())
    }

    fn on_resp_event(&mut self, token: Token, ev: &mio::event::Event) {
        if let Some(resp) = self.resp.as_mut() {
            if ev.is_read_closed() {
                resp.on_read_closed(token);
            }
            resp.on_event(token, ev.is_readable(), ev.is_writable() || ev.is_write_closed(), &mut self.log);
        }
    }

    fn respond(&mut self, token: Token, id: u64, body: Response) {
        if token.0 as u64 == crate::resp::WAITER_CONN {
            if let Some(resp) = self.resp.as_mut() {
                resp.on_response(id, body, &mut self.log);
            }
            return;
        }
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if let Err(e) = conn.queue(&ClientResponse { id, body }) {
            // Never leave a request unanswered: say why instead (this one always fits).
            event!(self.log, self.term, "response to client does not encode: {e}");
            let reason = format!("the reply does not fit in a frame: {e}");
            conn.queue(&ClientResponse { id, body: Response::Invalid { reason } }).expect("a short reply encodes");
        }
        if conn.queued_bytes() > MAX_CLIENT_OUT_BYTES {
            self.close(token, Some("client too slow: output queue over its limit".into()));
        }
    }

    fn send(&mut self, msg: Message) {
        if self.isolated.contains(&msg.to) {
            return;
        }
        if self.levers.is_idle() {
            return self.send_now(msg);
        }
        match self.levers.outgoing(msg, Instant::now()) {
            crate::levers::Fate::Send(msg) => self.send_now(msg),
            crate::levers::Fate::Held | crate::levers::Fate::Lost | crate::levers::Fate::Overflow => {}
        }
    }

    /// Puts a message on its peer's stream (past the levers; a partition still applies).
    fn send_now(&mut self, msg: Message) {
        if self.isolated.contains(&msg.to) {
            return;
        }
        let Some(link) = self.peers.get(&msg.to) else {
            // A member added at run time: dial it; Raft resends what this drops.
            if self.peer_endpoint(msg.to).is_some() {
                event!(self.log, self.term, "new peer n{}: connecting", msg.to);
                self.peers.insert(msg.to, PeerLink::new(Instant::now()));
            }
            return;
        };
        let Some(token) = link.token else { return };
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if conn.kind != Kind::PeerOut(msg.to) {
            return; // Not authenticated yet: dropped, Raft resends.
        }
        let to = msg.to;
        if let Err(e) = conn.queue(&msg) {
            event!(self.log, self.term, "message to n{to} does not encode: {e}");
            return;
        }
        if let Some(link) = self.peers.get_mut(&to) {
            link.sent += 1;
        }
        self.traffic.record(&msg, crate::eventlog::now_us());
        if conn.queued_bytes() > MAX_PEER_OUT_BYTES {
            self.close(token, Some("peer stream stuck: output queue over its limit".into()));
        }
    }

    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (&token, conn) in self.conns.iter_mut() {
            if conn.queued_bytes() > 0 {
                if let Err(e) = conn.flush() {
                    failed.push((token, format!("write failed: {e}")));
                    continue;
                }
            }
            if let Err(e) = conn.update_interest(self.poll.registry(), token) {
                failed.push((token, format!("poll registration failed: {e}")));
            }
        }
        for (token, why) in failed {
            self.close(token, Some(why));
        }
    }

    /// Serves one connection's readiness: finishes a connect, flushes, reads. Returns
    /// `Some(closed)` when bytes were read (frames may wait in its buffer), `None` when
    /// there is nothing to decode (or the connection is gone).
    fn service(&mut self, token: Token, ready: Readiness) -> Option<bool> {
        let Readiness { readable, read_to_end, writable } = ready;
        let conn = self.conns.get_mut(&token)?;
        if writable && conn.connecting {
            // A non-blocking connect finished: success unless the socket holds an error.
            match conn.stream.take_error() {
                Ok(None) => {
                    // Connected; the peer counts as connected once it proved the key.
                    conn.connecting = false;
                }
                Ok(Some(e)) | Err(e) => {
                    self.close(token, Some(format!("connect failed: {e}")));
                    return None;
                }
            }
        }
        if writable {
            if let Err(e) = conn.flush() {
                self.close(token, Some(format!("write failed: {e}")));
                return None;
            }
            if let Err(e) = conn.update_interest(self.poll.registry(), token) {
                self.close(token, Some(format!("poll registration failed: {e}")));
                return None;
            }
        }
        if !readable {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        // A short read ends the pass on a kernel socket (one `recv` less per message: the
        // one that would say `WouldBlock`); TLS, and a close that may have come with the
        // bytes, read on.
        let outcome = if read_to_end || conn.stream.is_tls() {
            conn.read_available(&mut scratch, MAX_READ_BYTES_PER_TURN)
        } else {
            conn.read_until_short(&mut scratch, MAX_READ_BYTES_PER_TURN)
        };
        self.scratch = scratch;
        let closed = match outcome {
            Ok(ReadOutcome::Open) => false,
            Ok(ReadOutcome::More) => {
                self.unread.push(token);
                false
            }
            Ok(ReadOutcome::Closed) => true,
            Err(e) => {
                conn.tls_refused = raft_transport::is_tls_refusal(&e);
                self.close(token, Some(format!("read failed: {e}")));
                return None;
            }
        };
        Some(closed)
    }
}

/// What one readiness event reports for a connection.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    readable: bool,
    /// Read until `WouldBlock` (or the end), not just to the first short read: the other
    /// end's close was reported with the bytes, or, when bytes left over from an earlier
    /// turn are served (the read budget ran out), may have been.
    read_to_end: bool,
    writable: bool,
}

/// What the [`crate::observe::Observer`] compares turn to turn.
fn seen(replica: &Replica<Storage>) -> crate::observe::Seen {
    let ss = replica.soft_state();
    let raft = replica.raft();
    crate::observe::Seen {
        role: ss.role,
        term: ss.term,
        leader: ss.leader,
        last_index: raft.last_index(),
        commit: raft.commit_index(),
    }
}

enum Frame {
    Hello(Hello),
    Proof(PeerProof),
    Challenge(PeerChallenge),
    Message(Message),
    Request(ClientRequest),
}
