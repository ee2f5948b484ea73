//! The event loop: sockets in, the core in the middle, storage and the state machine out.

use crate::conn::{Conn, Kind, ReadOutcome};
use crate::event;
use crate::eventlog::{EventLog, LogTarget};
use crate::*;
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use raft_core::{
    Config, Entry, Event, HardState, Index, Message, NodeId, ProposeError, RawNode, Ready, RoleKind, Snapshot,
    SnapshotMeta, Term,
};
use raft_kv::{Applied, Command, KvStore};
use raft_storage::{Storage, StorageOptions};
use raft_wire::{ClientRequest, ClientResponse, Hello, NodeStatus, ReadOp, Request, Response};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Every member's socket, this node's included.
    pub sockets: BTreeMap<NodeId, PathBuf>,
    /// `<dir>/node-<id>`: holds `wal/` and `snap/`.
    pub node_dir: PathBuf,
    pub cluster_id: u64,
    pub tick: Duration,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub fsync: bool,
    /// Compact once this many entries were applied since the last snapshot.
    pub snapshot_entries: u64,
    /// ... or once this many bytes of entries were.
    pub snapshot_bytes: u64,
    /// Seeds the election timer.
    pub seed: u64,
    /// Handle SIGTERM/SIGINT (the binary does; in-process tests use [`StopHandle`]).
    pub handle_signals: bool,
    /// Where event lines go.
    pub log: LogTarget,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] raft_storage::StorageError),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("snapshot on disk does not load: {0}")]
    Snapshot(String),
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

/// A client waiting for its write to commit or its read to be confirmed.
struct Waiting {
    token: Token,
    request_id: u64,
}

struct PendingWrite {
    waiting: Waiting,
    term: Term,
}

struct PendingRead {
    waiting: Waiting,
    op: ReadOp,
}

/// Our outbound link to one peer.
struct PeerLink {
    token: Option<Token>,
    retry_at: Instant,
    backoff: Duration,
    connected: bool,
}

pub struct Server {
    s: NodeSettings,
    log: EventLog,
    poll: Poll,
    listener: UnixListener,
    stop: StopHandle,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    clients: usize,
    peers: BTreeMap<NodeId, PeerLink>,
    isolated: BTreeSet<NodeId>,
    raft: RawNode,
    storage: Storage,
    kv: KvStore,
    /// Term of the last applied entry (the snapshot's term when compacting).
    applied_term: Term,
    snapshot_index: Index,
    bytes_since_snapshot: u64,
    pending_writes: BTreeMap<Index, PendingWrite>,
    pending_reads: HashMap<u64, PendingRead>,
    next_read_id: u64,
    next_tick: Instant,
    /// accept() failed with something other than WouldBlock: try again next turn.
    accept_retry: bool,
    /// Accepted connections still waiting for their hello.
    unidentified: usize,
    /// Connections whose read budget ran out last turn (see `MAX_READ_BYTES_PER_TURN`).
    unread: Vec<Token>,
    /// The hard state last made durable, and a newer one that only moved the commit index.
    synced_hard_state: HardState,
    unsynced_hard_state: Option<HardState>,
    term: Term,
    role: RoleKind,
    scratch: Vec<u8>,
}

impl Server {
    /// Recovers storage, binds the socket and builds the core. Fails with a clear error on
    /// a locked directory, a corrupt log or a socket that cannot be bound.
    pub fn open(s: NodeSettings) -> Result<Server, NodeError> {
        let id = s.id;
        let mut log = EventLog::open(id, &s.log)?;
        let opts = StorageOptions { fsync: s.fsync, ..StorageOptions::default() };
        let (storage, recovery) = Storage::open(&s.node_dir, opts)?;
        // The summary line below says what was recovered; the notes say what was repaired.
        for note in recovery.notes.iter().filter(|n| !n.starts_with("recovered ")) {
            event!(log, recovery.restored.hard_state.term, "storage: {note}");
        }
        let mut restored = recovery.restored;
        // The hard state is written ahead of the entries of its batch; a write torn by a
        // power cut can keep it and lose entries its commit index covers. Those entries
        // are committed on a majority anyway: forget the local claim, relearn it.
        let last = restored.entries.last().map_or(restored.snapshot.as_ref().map_or(0, |s| s.meta.index), |e| e.index);
        if restored.hard_state.commit > last {
            event!(
                log,
                restored.hard_state.term,
                "storage: commit index {} is past the log's end {last}; using {last}",
                restored.hard_state.commit
            );
            restored.hard_state.commit = last;
        }
        let (kv, snapshot_index, applied_term) = match &restored.snapshot {
            Some(snap) => (
                KvStore::restore(&snap.data, snap.meta.index).map_err(|e| NodeError::Snapshot(e.to_string()))?,
                snap.meta.index,
                snap.meta.term,
            ),
            None => (KvStore::new(), 0, 0),
        };
        event!(
            log,
            restored.hard_state.term,
            "storage recovered {} entries, snapshot index={}, commit={}",
            restored.entries.len(),
            snapshot_index,
            restored.hard_state.commit
        );
        let mut config = Config::new(id, s.sockets.keys().copied().collect(), s.seed);
        config.heartbeat_ticks = s.heartbeat_ticks;
        config.election_ticks_min = s.election_ticks_min;
        config.election_ticks_max = s.election_ticks_max;
        config.pre_vote = s.pre_vote;
        config.check_quorum = s.check_quorum;
        let term = restored.hard_state.term;
        let synced_hard_state = restored.hard_state;
        let raft = RawNode::new(config, restored).map_err(|e| NodeError::Config(e.to_string()))?;

        let path = s.sockets.get(&id).ok_or_else(|| NodeError::Config(format!("node {id} has no socket")))?.clone();
        // A socket file left by a dead incarnation would make bind fail; the storage lock
        // we hold proves no live node owns it.
        let _ = std::fs::remove_file(&path);
        let mut listener =
            UnixListener::bind(&path).map_err(|source| NodeError::Listen { path: path.clone(), source })?;
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
        let peers = s
            .sockets
            .keys()
            .filter(|&&p| p != id)
            .map(|&p| {
                let link = PeerLink {
                    token: None,
                    retry_at: now,
                    backoff: Duration::from_millis(PEER_RECONNECT_MIN_MS),
                    connected: false,
                };
                (p, link)
            })
            .collect();
        event!(log, term, "listening on {}", path.display());
        Ok(Server {
            next_tick: now + s.tick,
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
            raft,
            storage,
            kv,
            applied_term,
            snapshot_index,
            bytes_since_snapshot: 0,
            pending_writes: BTreeMap::new(),
            pending_reads: HashMap::new(),
            next_read_id: 1,
            accept_retry: false,
            unidentified: 0,
            unread: Vec::new(),
            synced_hard_state,
            unsynced_hard_state: None,
            term,
            role: RoleKind::Follower,
            scratch: vec![0; READ_CHUNK_BYTES],
        })
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    fn id(&self) -> NodeId {
        self.s.id
    }

    /// Runs until SIGTERM/SIGINT or [`StopHandle::stop`]. Every turn's writes are durable
    /// when a turn ends, so stopping between turns loses nothing acknowledged.
    pub fn run(mut self) -> Result<(), NodeError> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        // Bring the state machine up to the persisted commit index before serving.
        self.process_ready()?;
        loop {
            let now = Instant::now();
            self.connect_peers(now);
            // Connections with bytes left unread this turn are served again at once.
            let timeout = if self.unread.is_empty() {
                self.next_deadline().saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for token in std::mem::take(&mut self.unread) {
                self.on_conn_event(token, true, false);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    SIGNALS => {
                        if let Some(sig) = self.signals.as_mut() {
                            if sig.pending().next().is_some() {
                                self.stop.flag.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    WAKER => {}
                    token => self.on_conn_event(token, ev.is_readable(), ev.is_writable() || ev.is_write_closed()),
                }
            }
            if self.accept_retry {
                self.accept();
            }
            if self.unidentified > 0 {
                self.close_silent_connections();
            }
            self.tick_if_due();
            self.process_ready()?;
            self.maybe_compact()?;
            self.flush_all();
            if self.stop.flag.load(Ordering::SeqCst) {
                event!(self.log, self.term, "shutting down");
                return Ok(());
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self.next_tick;
        for link in self.peers.values() {
            if link.token.is_none() && link.retry_at < d {
                d = link.retry_at;
            }
        }
        d
    }

    fn tick_if_due(&mut self) {
        let now = Instant::now();
        let mut n = 0;
        while self.next_tick <= now && n < MAX_CATCH_UP_TICKS {
            self.raft.tick();
            self.next_tick += self.s.tick;
            n += 1;
        }
        if self.next_tick <= now {
            // Far behind (the process was stopped): resume the normal cadence from now.
            self.next_tick = now + self.s.tick;
        }
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
                Ok((mut stream, _)) => {
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
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
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

    /// Closes connections that did not say hello within [`HELLO_TIMEOUT_MS`].
    fn close_silent_connections(&mut self) {
        let limit = Duration::from_millis(HELLO_TIMEOUT_MS);
        let silent: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.kind == Kind::Unidentified && c.opened.elapsed() > limit)
            .map(|(&t, _)| t)
            .collect();
        for token in silent {
            self.close(token, Some(format!("no hello within {HELLO_TIMEOUT_MS} ms")));
        }
    }

    fn connect_peers(&mut self, now: Instant) {
        let due: Vec<NodeId> =
            self.peers.iter().filter(|(_, l)| l.token.is_none() && l.retry_at <= now).map(|(&p, _)| p).collect();
        for peer in due {
            let path = self.s.sockets[&peer].clone();
            match UnixStream::connect(&path) {
                Ok(mut stream) => {
                    let token = self.new_token();
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        self.peer_failed(peer, now, &e.to_string());
                        continue;
                    }
                    let mut conn = Conn::new(stream, Kind::PeerOut(peer));
                    conn.connecting = true;
                    let hello = Hello::Peer { cluster_id: self.s.cluster_id, node: self.id() };
                    conn.queue(&hello).expect("hello encodes");
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
        match conn.kind {
            Kind::PeerOut(peer) => self.peer_failed(peer, Instant::now(), why.as_deref().unwrap_or("closed")),
            Kind::Client => {
                self.clients -= 1;
                if let Some(why) = why {
                    event!(self.log, self.term, "client connection closed: {why}");
                }
            }
            Kind::PeerIn(peer) => {
                if let Some(why) = why {
                    event!(self.log, self.term, "connection from n{peer} closed: {why}");
                }
            }
            Kind::Unidentified => {
                self.unidentified -= 1;
                if let Some(why) = why {
                    event!(self.log, self.term, "connection closed: {why}");
                }
            }
        }
    }

    fn on_conn_event(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if writable && conn.connecting {
            // A non-blocking connect finished: success unless the socket holds an error.
            match conn.stream.take_error() {
                Ok(None) => {
                    conn.connecting = false;
                    if let Kind::PeerOut(peer) = conn.kind {
                        let link = self.peers.get_mut(&peer).expect("known peer");
                        link.connected = true;
                        link.backoff = Duration::from_millis(PEER_RECONNECT_MIN_MS);
                        event!(self.log, self.term, "peer n{peer} connected");
                    }
                }
                Ok(Some(e)) | Err(e) => return self.close(token, Some(format!("connect failed: {e}"))),
            }
        }
        if writable {
            if let Err(e) = conn.flush() {
                return self.close(token, Some(format!("write failed: {e}")));
            }
        }
        if !readable {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = conn.read_available(&mut scratch, MAX_READ_BYTES_PER_TURN);
        self.scratch = scratch;
        let closed = match outcome {
            Ok(ReadOutcome::Open) => false,
            Ok(ReadOutcome::More) => {
                self.unread.push(token);
                false
            }
            Ok(ReadOutcome::Closed) => true,
            Err(e) => return self.close(token, Some(format!("read failed: {e}"))),
        };
        self.dispatch_frames(token);
        if closed {
            self.close(token, None);
        }
    }

    /// Decodes and handles every complete frame buffered on `token`.
    fn dispatch_frames(&mut self, token: Token) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else { return };
            let kind = conn.kind;
            let res = match kind {
                Kind::Unidentified => conn.reader.next_frame::<Hello>().map(|h| h.map(Frame::Hello)),
                Kind::PeerIn(_) => conn.reader.next_frame::<Message>().map(|m| m.map(Frame::Message)),
                Kind::Client => conn.reader.next_frame::<ClientRequest>().map(|r| r.map(Frame::Request)),
                // We never expect frames on our outbound peer streams.
                Kind::PeerOut(_) => conn.reader.next_frame::<Message>().map(|m| m.map(Frame::Message)),
            };
            let frame = match res {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.close(token, Some(format!("bad frame: {e}"))),
            };
            match (kind, frame) {
                (Kind::Unidentified, Frame::Hello(hello)) => {
                    if let Err(why) = self.identify(token, hello) {
                        return self.close(token, Some(why));
                    }
                }
                (Kind::PeerIn(peer), Frame::Message(msg)) => {
                    if msg.from != peer || msg.to != self.id() {
                        let why = format!("message claims n{} -> n{} on the stream of n{peer}", msg.from, msg.to);
                        return self.close(token, Some(why));
                    }
                    if self.isolated.contains(&peer) {
                        continue;
                    }
                    if let Err(e) = self.raft.step(msg) {
                        return self.close(token, Some(e.to_string()));
                    }
                }
                (Kind::Client, Frame::Request(req)) => self.on_request(token, req),
                (_, _) => return self.close(token, Some("unexpected frame".into())),
            }
        }
    }

    /// Gives the connection its kind. On error it stays unidentified and is closed.
    fn identify(&mut self, token: Token, hello: Hello) -> Result<(), String> {
        let conn = self.conns.get_mut(&token).expect("live connection");
        assert_eq!(conn.kind, Kind::Unidentified, "a connection says hello once");
        match hello {
            Hello::Client => {
                if self.clients >= MAX_CLIENT_CONNECTIONS {
                    return Err(format!("too many clients ({MAX_CLIENT_CONNECTIONS})"));
                }
                conn.kind = Kind::Client;
                self.clients += 1;
                self.unidentified -= 1;
            }
            Hello::Peer { cluster_id, node } => {
                if cluster_id != self.s.cluster_id {
                    return Err(format!(
                        "peer n{node} is from cluster {cluster_id:#x}, we are {:#x}",
                        self.s.cluster_id
                    ));
                }
                if node == self.s.id || !self.s.sockets.contains_key(&node) {
                    return Err(format!("unknown node id {node}"));
                }
                conn.kind = Kind::PeerIn(node);
                self.unidentified -= 1;
                // The peer is back (it just connected to us): stop waiting out the
                // reconnect backoff to it, or a restarted node would hear nothing from us
                // for up to PEER_RECONNECT_MAX_MS and start its catch-up that much later.
                let link = self.peers.get_mut(&node).expect("checked above");
                if link.token.is_none() {
                    link.retry_at = Instant::now();
                    link.backoff = Duration::from_millis(PEER_RECONNECT_MIN_MS);
                }
            }
        }
        Ok(())
    }

    fn respond(&mut self, token: Token, id: u64, body: Response) {
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
        let Some(link) = self.peers.get(&msg.to) else {
            panic!("core addressed unknown node n{} (bug)", msg.to);
        };
        let Some(token) = link.token else { return };
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if let Err(e) = conn.queue(&msg) {
            event!(self.log, self.term, "message to n{} does not encode: {e}", msg.to);
            return;
        }
        if conn.queued_bytes() > MAX_PEER_OUT_BYTES {
            self.close(token, Some("peer stream stuck: output queue over its limit".into()));
        }
    }

    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (&token, conn) in self.conns.iter_mut() {
            if conn.queued_bytes() > 0 {
                if let Err(e) = conn.flush() {
                    failed.push((token, e.to_string()));
                }
            }
        }
        for (token, why) in failed {
            self.close(token, Some(format!("write failed: {why}")));
        }
    }

    // ----- client requests ---------------------------------------------------------------

    fn pending(&self) -> usize {
        self.pending_writes.len() + self.pending_reads.len()
    }

    fn not_leader(&self) -> Response {
        Response::NotLeader { leader: self.raft.status().leader }
    }

    fn on_request(&mut self, token: Token, req: ClientRequest) {
        let id = req.id;
        match req.body {
            Request::Write { session, seq, op } => {
                if let Err(reason) = op.validate() {
                    return self.respond(token, id, Response::Invalid { reason });
                }
                if self.role != RoleKind::Leader {
                    return self.respond(token, id, self.not_leader());
                }
                if let Some(reply) = self.kv.cached_reply(session, seq) {
                    // Already applied: answer the retry without a new entry.
                    let reply = reply.clone();
                    return self.respond(token, id, Response::Ok(reply));
                }
                if self.pending() >= MAX_PENDING_REQUESTS {
                    let reason = "node busy: too many requests in flight; retry".into();
                    return self.respond(token, id, Response::Unavailable { reason });
                }
                let data = Command { session, seq, op }.encode();
                match self.raft.propose(data) {
                    Ok(index) => {
                        let waiting = Waiting { token, request_id: id };
                        let prev = self.pending_writes.insert(index, PendingWrite { waiting, term: self.term });
                        assert!(prev.is_none(), "two proposals got index {index}");
                    }
                    Err(e) => self.respond(token, id, propose_error(e)),
                }
            }
            Request::Read { op, stale: true } => {
                let reply = self.kv.read(&op);
                self.respond(token, id, Response::Ok(reply));
            }
            Request::Read { op, stale: false } => {
                if self.role != RoleKind::Leader {
                    return self.respond(token, id, self.not_leader());
                }
                if self.pending() >= MAX_PENDING_REQUESTS {
                    let reason = "node busy: too many requests in flight; retry".into();
                    return self.respond(token, id, Response::Unavailable { reason });
                }
                let read_id = self.next_read_id;
                self.next_read_id += 1;
                match self.raft.read_index(read_id) {
                    Ok(()) => {
                        let waiting = Waiting { token, request_id: id };
                        self.pending_reads.insert(read_id, PendingRead { waiting, op });
                    }
                    Err(e) => self.respond(token, id, propose_error(e)),
                }
            }
            Request::Status => {
                let status = self.status();
                self.respond(token, id, Response::Status(status));
            }
            Request::Isolate { peers } => {
                let peers: BTreeSet<NodeId> = peers.into_iter().filter(|p| *p != self.s.id).collect();
                if let Some(bad) = peers.iter().find(|p| !self.s.sockets.contains_key(p)) {
                    let reason = format!("unknown node id {bad}");
                    return self.respond(token, id, Response::Invalid { reason });
                }
                if peers != self.isolated {
                    if peers.is_empty() {
                        event!(self.log, self.term, "partition healed: talking to every peer");
                    } else {
                        event!(self.log, self.term, "partitioned: dropping traffic with {:?}", peers);
                    }
                }
                self.isolated = peers;
                self.respond(token, id, Response::Accepted);
            }
            Request::TransferLeader { to } => match self.raft.transfer_leadership(to) {
                Ok(()) => self.respond(token, id, Response::Accepted),
                Err(raft_core::TransferError::NotLeader(nl)) => {
                    self.respond(token, id, Response::NotLeader { leader: nl.leader })
                }
                Err(raft_core::TransferError::UnknownPeer(p)) => {
                    self.respond(token, id, Response::Invalid { reason: format!("unknown node id {p}") })
                }
            },
        }
    }

    fn status(&self) -> NodeStatus {
        let st = self.raft.status();
        NodeStatus {
            id: st.id,
            pid: std::process::id(),
            role: st.role,
            term: st.term,
            leader: st.leader,
            commit: st.commit,
            applied: self.kv.applied(),
            last_index: st.last_index,
            snapshot_index: self.snapshot_index,
            progress: st.progress,
            connected: self.peers.iter().filter(|(_, l)| l.connected).map(|(&p, _)| p).collect(),
            isolated: self.isolated.iter().copied().collect(),
        }
    }

    // ----- the core's output -------------------------------------------------------------

    /// Carries out Ready batches until the core has nothing more to say.
    fn process_ready(&mut self) -> Result<(), NodeError> {
        // Each pass can only make progress (persisted -> commit -> apply); bound it anyway.
        for _ in 0..16 {
            let rd = self.raft.ready();
            if rd.is_empty() {
                return Ok(());
            }
            self.handle_ready(rd)?;
        }
        Ok(())
    }

    fn handle_ready(&mut self, rd: Ready) -> Result<(), NodeError> {
        let Ready {
            soft_state: _,
            hard_state,
            entries,
            snapshot,
            messages,
            persisted_messages,
            committed,
            reads,
            dropped_reads,
            events,
        } = rd;
        for ev in &events {
            self.on_event(ev);
        }
        // 1. What promises nothing goes first: the leader's appends overlap its own fsync.
        for m in messages {
            self.send(m);
        }
        // Committed entries are durable on a majority already, so they may be applied and
        // answered before this batch's fsync (etcd applies in parallel with its WAL too):
        // otherwise every answer would also wait for the fsync of the *next* entries. Not
        // with a snapshot: the state machine must be restored from it first.
        let (committed, reads, dropped_reads) = if snapshot.is_none() {
            self.apply_and_answer(committed, reads, dropped_reads);
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (committed, reads, dropped_reads)
        };
        self.flush_all();
        // 2. Persist: snapshot, then hard state and entries in one write and one fsync.
        if let Some(snap) = &snapshot {
            self.storage.install_snapshot(snap)?;
        }
        // A hard state whose only change is the commit index needs no fsync of its own
        // (a restarted node relearns the commit index from the leader; etcd's MustSync
        // makes the same call): it rides along with the next batch of entries instead.
        // Term and vote changes are always made durable before anything is sent.
        if let Some(hs) = hard_state {
            self.unsynced_hard_state = Some(hs);
        }
        let must_sync = match self.unsynced_hard_state {
            Some(hs) => hs.term != self.synced_hard_state.term || hs.vote != self.synced_hard_state.vote,
            None => false,
        };
        if must_sync || !entries.is_empty() {
            let hs = self.unsynced_hard_state.take();
            self.storage.persist(hs.as_ref(), &entries)?;
            if let Some(hs) = hs {
                self.synced_hard_state = hs;
            }
        }
        // 3. Only now may the leader count itself.
        if let Some(last) = entries.last() {
            self.raft.persisted(last.index, last.term);
        }
        // 4. What promises durable state.
        for m in persisted_messages {
            self.send(m);
        }
        // 5. Install, apply, answer (when a snapshot came; else done above).
        if let Some(snap) = snapshot {
            self.install(snap)?;
        }
        self.apply_and_answer(committed, reads, dropped_reads);
        Ok(())
    }

    /// Applies committed entries in order, answering their clients, then serves the reads
    /// the core confirmed and turns away the ones it dropped.
    fn apply_and_answer(&mut self, committed: Vec<Entry>, reads: Vec<raft_core::ReadState>, dropped_reads: Vec<u64>) {
        for entry in committed {
            self.apply(entry);
        }
        for read in reads {
            if let Some(p) = self.pending_reads.remove(&read.id) {
                assert!(self.kv.applied() >= read.index, "read {} served before its index was applied", read.id);
                let reply = self.kv.read(&p.op);
                self.respond(p.waiting.token, p.waiting.request_id, Response::Ok(reply));
            }
        }
        for id in dropped_reads {
            if let Some(p) = self.pending_reads.remove(&id) {
                let body = self.not_leader();
                self.respond(p.waiting.token, p.waiting.request_id, body);
            }
        }
    }

    fn on_event(&mut self, ev: &Event) {
        if let Event::RoleChanged { role, term, .. } = ev {
            let was_leader = self.role == RoleKind::Leader;
            self.role = *role;
            self.term = *term;
            if was_leader && *role != RoleKind::Leader {
                self.fail_pending_on_step_down();
            }
        }
        event!(self.log, self.term, "{ev}");
    }

    /// A deposed leader cannot tell whether its uncommitted entries will commit under the
    /// next leader: every pending write is "unknown"; reads can simply be retried.
    fn fail_pending_on_step_down(&mut self) {
        let writes = std::mem::take(&mut self.pending_writes);
        let n = writes.len();
        for (_, p) in writes {
            let reason = "leader stepped down before the write committed; it may or may not apply".into();
            self.respond(p.waiting.token, p.waiting.request_id, Response::Unknown { reason });
        }
        let reads = std::mem::take(&mut self.pending_reads);
        let leader = self.raft.status().leader;
        for (_, p) in reads {
            self.respond(p.waiting.token, p.waiting.request_id, Response::NotLeader { leader });
        }
        if n > 0 {
            event!(self.log, self.term, "answered {n} pending writes as unknown after stepping down");
        }
    }

    fn install(&mut self, snap: Snapshot) -> Result<(), NodeError> {
        self.kv = KvStore::restore(&snap.data, snap.meta.index).map_err(|e| NodeError::Snapshot(e.to_string()))?;
        self.snapshot_index = snap.meta.index;
        self.applied_term = snap.meta.term;
        self.bytes_since_snapshot = 0;
        // Writes waiting at indexes the snapshot covers cannot be matched to their outcome.
        let covered: Vec<Index> = self.pending_writes.range(..=snap.meta.index).map(|(&i, _)| i).collect();
        for i in covered {
            let p = self.pending_writes.remove(&i).expect("listed above");
            let reason = "replaced by a snapshot before the outcome was known".into();
            self.respond(p.waiting.token, p.waiting.request_id, Response::Unknown { reason });
        }
        Ok(())
    }

    fn apply(&mut self, entry: Entry) {
        self.bytes_since_snapshot += entry.size_bytes() as u64;
        self.applied_term = entry.term;
        let (index, term) = (entry.index, entry.term);
        let applied = self.kv.apply(&entry);
        let Some(p) = self.pending_writes.remove(&index) else { return };
        let body = if p.term != term {
            // Our entry at this index was replaced by another leader's: it never committed.
            Response::Unavailable { reason: "leadership changed before the write committed; retry".into() }
        } else {
            match applied {
                Applied::Write { reply, .. } => Response::Ok(reply),
                Applied::Noop => unreachable!("a proposal is never a no-op"),
                Applied::Invalid(reason) => Response::Invalid { reason },
                // The first attempt's outcome is no longer remembered: it may have applied.
                Applied::TooOld { seq, .. } => Response::Unknown {
                    reason: format!("sequence number {seq} is older than the session's reply window"),
                },
            }
        };
        self.respond(p.waiting.token, p.waiting.request_id, body);
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let applied = self.kv.applied();
        let due = applied > self.snapshot_index
            && (applied - self.snapshot_index >= self.s.snapshot_entries
                || self.bytes_since_snapshot >= self.s.snapshot_bytes);
        if !due {
            return Ok(());
        }
        let t0 = Instant::now();
        let data = self.kv.snapshot();
        let t1 = Instant::now();
        let voters = self.s.sockets.keys().copied().collect();
        let snap = Snapshot { meta: SnapshotMeta { index: applied, term: self.applied_term, voters }, data };
        self.storage.compact(&snap)?;
        let t2 = Instant::now();
        let bytes = snap.data.len();
        self.raft.compact(applied, snap.data);
        event!(
            self.log,
            self.term,
            "snapshot at index={applied}: {bytes} bytes, encoded in {} ms, written in {} ms",
            (t1 - t0).as_millis(),
            (t2 - t1).as_millis()
        );
        self.snapshot_index = applied;
        self.bytes_since_snapshot = 0;
        self.process_ready()
    }
}

enum Frame {
    Hello(Hello),
    Message(Message),
    Request(ClientRequest),
}

fn propose_error(e: ProposeError) -> Response {
    match e {
        ProposeError::NotLeader(nl) => Response::NotLeader { leader: nl.leader },
        ProposeError::Busy => Response::Unavailable { reason: "leader busy (transfer or backlog); retry".into() },
    }
}
