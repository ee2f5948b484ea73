//! The client: leader discovery, retries, exactly-once writes.
//!
//! ## Finding the leader
//!
//! The last leader this machine's clients saw is kept in `<dir>/cli-leader` and tried
//! first. A `NotLeader` answer with a hint sends the request there next; without a hint
//! the client goes round every node in id order. After a whole round with no success
//! it backs off (doubling, capped) and goes round again, until `--timeout`.
//!
//! ## Never twice, and honest about "maybe"
//!
//! A write carries the client's session id (random) and a sequence number, and keeps
//! both on every retry, so the state machine applies it at most once (thesis §6.3).
//! The client tracks whether the write may have been applied: once a request went out
//! and no definite answer came back (timeout, connection lost, `Unknown`), the outcome
//! is in doubt, and if no later retry gets a definite answer before the deadline the
//! error is [`ClientError::Unknown`] (exit 4). `NotLeader` and `Unavailable` are definite
//! "not applied" answers, so a write that only ever got those is
//! [`ClientError::Unavailable`] (exit 3). `Refused` (the state's size quota) is definite
//! too and ends the request at once, as [`ClientError::Refused`] (exit 3): retrying
//! cannot help until keys are deleted or the quota raised.
//!
//! Each attempt on one node is bounded by a slice of the timeout, so a paused (SIGSTOP)
//! leader that accepts connections but never answers does not eat the whole budget.

use crate::conn::{CallError, NodeConn};
use raft_config::ClusterConfig;
use raft_core::NodeId;
use raft_transport::{ClientTls, Endpoint};
use raft_wire::{NodeStatus, ReadOp, Reply, Request, Response, WriteOp};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The leader cache file's name inside the cluster directory.
pub const LEADER_FILE: &str = "cli-leader";
/// First pause after a round of nodes without a leader: about one heartbeat.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Longest pause between rounds: an election settles well within this.
const BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Shortest time given to one attempt on one node (a loaded leader with fsync needs it).
const ATTEMPT_MIN: Duration = Duration::from_millis(250);
/// Longest time given to one attempt before trying elsewhere (a paused node never answers).
const ATTEMPT_MAX: Duration = Duration::from_secs(1);
/// Hint hops followed in a row before going round instead (two nodes pointing at each other).
const MAX_HINT_HOPS: usize = 8;

/// Why a request did not succeed. Each maps to one exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Exit 3: no leader could be reached; a write was surely not applied.
    #[error("{0}")]
    Unavailable(String),
    /// Exit 4: a write may or may not have been applied.
    #[error("{0}")]
    Unknown(String),
    /// Exit 2: the cluster refused the request itself (bad key, value too large).
    #[error("{0}")]
    Invalid(String),
    /// Exit 3: the cluster refused the write on purpose (its state would pass the quota):
    /// surely not applied, and not retried, since a retry would get the same answer.
    #[error("{0}")]
    Refused(String),
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Unavailable(_) | ClientError::Refused(_) => crate::EXIT_UNAVAILABLE,
            ClientError::Unknown(_) => crate::EXIT_UNKNOWN,
            ClientError::Invalid(_) => crate::EXIT_USAGE,
        }
    }
}

/// Where a cluster's sockets are.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub nodes: Vec<(NodeId, PathBuf)>,
    pub supervisor_socket: PathBuf,
    /// Over tcp (issue 18): node N at `addrs[N-1]`, and the client's TLS identity (or why
    /// it could not be loaded). `None`: the Unix sockets of `nodes`.
    pub tcp: Option<TcpClient>,
}

/// How a client reaches nodes over TCP.
#[derive(Clone, Debug)]
pub struct TcpClient {
    pub addrs: Vec<String>,
    /// `Ok(None)`: plain TCP (`insecure = true`); `Err`: the TLS files are missing or bad.
    pub tls: Result<Option<ClientTls>, String>,
}

impl TcpClient {
    /// From the config: the addresses and, unless `insecure`, the client certificate.
    pub fn from_config(cfg: &ClusterConfig) -> Option<TcpClient> {
        if cfg.transport_kind() == raft_config::Transport::Unix {
            return None;
        }
        Some(TcpClient { addrs: cfg.addrs.clone(), tls: raft_transport::client_tls(cfg) })
    }
}

impl Cluster {
    /// The bootstrap nodes (`1..=nodes`) and every node added at run time: a `node-<id>`
    /// directory in the cluster directory (`raft-supervisor add` makes one for each), so
    /// the client reaches members the config's `nodes` count does not name.
    pub fn from_config(cfg: &ClusterConfig) -> Cluster {
        let mut c = Cluster {
            dir: cfg.dir.clone(),
            nodes: cfg.node_ids().into_iter().map(|id| (id, cfg.node_socket(id))).collect(),
            supervisor_socket: cfg.supervisor_socket(),
            tcp: TcpClient::from_config(cfg),
        };
        c.rescan();
        c
    }

    /// Adds the nodes whose `node-<id>` directory appeared since (added at run time).
    pub fn rescan(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let id = name.to_str().and_then(|n| n.strip_prefix("node-")).and_then(|n| n.parse::<NodeId>().ok());
                if let Some(id) = id.filter(|&id| ClusterConfig::is_node_id(id) && self.socket(id).is_none()) {
                    self.nodes.push((id, self.dir.join(format!("node-{id}")).join("node.sock")));
                }
            }
        }
        self.nodes.sort_unstable_by_key(|(id, _)| *id);
    }

    /// Where node `id` is dialled: its Unix socket, or its `addrs` entry over tcp.
    pub fn endpoint(&self, id: NodeId) -> Option<Endpoint> {
        match &self.tcp {
            Some(t) => raft_config::transport::addr_of(&t.addrs, id).map(|a| Endpoint::Tcp(a.to_string())),
            None => self.socket(id).map(|p| Endpoint::Unix(p.to_path_buf())),
        }
    }

    /// Why this client cannot dial at all (TLS files missing or bad), if so.
    pub fn config_error(&self) -> Option<&str> {
        self.tls().err()
    }

    /// The client's TLS identity: `None` over Unix sockets or plain TCP; `Err` why the
    /// TLS files could not be used (then nothing may be dialled: never plain TCP instead).
    pub fn tls(&self) -> Result<Option<&ClientTls>, &str> {
        match &self.tcp {
            Some(TcpClient { tls: Err(e), .. }) => Err(e),
            Some(TcpClient { tls: Ok(t), .. }) => Ok(t.as_ref()),
            None => Ok(None),
        }
    }

    /// A client connection to node `id` over the cluster's transport.
    pub fn dial(&self, id: NodeId, timeout: Duration) -> Result<NodeConn, CallError> {
        let at = self
            .endpoint(id)
            .ok_or_else(|| CallError::Connect(std::io::Error::other(format!("node {id} has no address"))))?;
        let tls = self.tls().map_err(|e| CallError::Connect(std::io::Error::other(e.to_string())))?;
        NodeConn::connect_to(id, &at, tls, timeout)
    }

    pub fn socket(&self, id: NodeId) -> Option<&Path> {
        self.nodes.iter().find(|(n, _)| *n == id).map(|(_, p)| p.as_path())
    }

    /// `<dir>/node-*/node.sock`, or over tcp the `addrs`, for messages.
    pub fn socket_pattern(&self) -> String {
        match &self.tcp {
            Some(t) => t.addrs.join(", "),
            None => format!("{}/node-*/node.sock", self.dir.display()),
        }
    }

    fn leader_file(&self) -> PathBuf {
        self.dir.join(LEADER_FILE)
    }

    /// The leader the last client saw, if the file names a node of this cluster.
    pub fn cached_leader(&self) -> Option<NodeId> {
        let text = std::fs::read_to_string(self.leader_file()).ok()?;
        let id: NodeId = text.trim().parse().ok()?;
        self.socket(id).map(|_| id)
    }

    /// Remembers the leader for the next client. Best effort: a client works without it.
    /// Written to a temporary name and renamed, so concurrent clients never read half.
    pub fn remember_leader(&self, id: NodeId) {
        if !self.dir.is_dir() {
            return;
        }
        let tmp = self.dir.join(format!(".{LEADER_FILE}.{}", std::process::id()));
        if std::fs::write(&tmp, format!("{id}\n")).is_ok() && std::fs::rename(&tmp, self.leader_file()).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Whether anything answers on the supervisor socket (then nodes may be restarting).
    pub fn supervisor_reachable(&self) -> bool {
        UnixStream::connect(&self.supervisor_socket).is_ok()
    }

    /// One node's status on a fresh connection.
    pub fn node_status(&self, id: NodeId, timeout: Duration) -> Result<NodeStatus, String> {
        if self.socket(id).is_none() {
            return Err(format!("node {id} is not in the config"));
        }
        let deadline = Instant::now() + timeout;
        let mut conn = self.dial(id, timeout).map_err(|e| e.to_string())?;
        match conn.call(Request::Status, deadline) {
            Ok(Response::Status(s)) => Ok(s),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A random u64 for session ids and seeds: /dev/urandom, else time ^ pid. Never 0.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    let v = if from_urandom {
        u64::from_le_bytes(b)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ ((std::process::id() as u64) << 32)
    };
    v.max(1)
}

/// What kind of request this is, for routing and for the meaning of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Write,
    /// Linearizable read: the leader must answer.
    Read,
    /// Any node answers from its own state.
    StaleRead,
}

/// A client with one session. Not thread-safe: one per thread.
pub struct Client {
    cluster: Cluster,
    timeout: Duration,
    attempt_timeout: Duration,
    session: u64,
    next_seq: u64,
    conn: Option<NodeConn>,
    leader: Option<NodeId>,
    /// What `<dir>/cli-leader` says (as far as this client knows).
    leader_on_file: Option<NodeId>,
    /// Persist the leader to `<dir>/cli-leader` on change (off for bench/chaos threads,
    /// which keep it in memory).
    persist_leader: bool,
    /// Where a stale read goes first (spreads stale reads over the nodes).
    stale_cursor: usize,
}

impl Client {
    pub fn new(cluster: Cluster, timeout: Duration) -> Client {
        let leader = cluster.cached_leader();
        let attempt_timeout = (timeout / 4).clamp(ATTEMPT_MIN, ATTEMPT_MAX).min(timeout);
        Client {
            cluster,
            timeout,
            attempt_timeout,
            session: random_u64(),
            next_seq: 1,
            conn: None,
            leader,
            leader_on_file: leader,
            persist_leader: true,
            stale_cursor: 0,
        }
    }

    /// Keeps the leader in memory only (for many clients in one process).
    pub fn without_leader_file(mut self) -> Client {
        self.persist_leader = false;
        self
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.attempt_timeout = (timeout / 4).clamp(ATTEMPT_MIN, ATTEMPT_MAX).min(timeout);
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The leader this client last saw answer.
    pub fn known_leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Applies a write exactly once (retrying with the same session and seq).
    pub fn write(&mut self, op: WriteOp) -> Result<Reply, ClientError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.execute(Request::Write { session: self.session, seq, op }, Kind::Write)
    }

    /// A read: linearizable through the leader, or `stale` from any node.
    pub fn read(&mut self, op: ReadOp, stale: bool) -> Result<Reply, ClientError> {
        let kind = if stale { Kind::StaleRead } else { Kind::Read };
        self.execute(Request::Read { op, stale }, kind)
    }

    /// The nodes in the order to try them: from `first` on, wrapping around.
    fn round_from(&self, first: Option<NodeId>) -> VecDeque<NodeId> {
        let ids: Vec<NodeId> = self.cluster.nodes.iter().map(|(id, _)| *id).collect();
        let start = first.and_then(|f| ids.iter().position(|&i| i == f)).unwrap_or(0);
        ids.iter().cycle().skip(start).take(ids.len()).copied().collect()
    }

    fn connection(&mut self, id: NodeId) -> Result<&mut NodeConn, CallError> {
        if self.conn.as_ref().is_some_and(|c| c.node != id) {
            self.conn = None;
        }
        if self.conn.is_none() {
            assert!(self.cluster.socket(id).is_some(), "only configured nodes are tried");
            self.conn = Some(self.cluster.dial(id, self.attempt_timeout)?);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// Sends `body` until one node gives a definite answer or the timeout runs out: choose
    /// a node ([`Client::choose_node`]), send the request, whose session and seq are fixed
    /// inside `body` ([`Client::send`]), then read the answer ([`Client::on_response`],
    /// [`Client::on_call_error`]): done, follow a hint, or try elsewhere.
    fn execute(&mut self, body: Request, kind: Kind) -> Result<Reply, ClientError> {
        let first = self.first_node(kind);
        let mut p = Progress::new(Instant::now() + self.timeout, self.round_from(first));
        while let Some((target, attempt_deadline)) = self.choose_node(&mut p) {
            match self.send(target, &body, attempt_deadline) {
                Ok(response) => {
                    if let Some(done) = self.on_response(&mut p, kind, target, response) {
                        return done;
                    }
                }
                Err(e) => self.on_call_error(&mut p, kind, target, e),
            }
        }
        Err(self.give_up(kind, p))
    }

    /// The node to try first: the known leader, or for a stale read the next node in turn
    /// (spreads stale reads over the cluster).
    fn first_node(&mut self, kind: Kind) -> Option<NodeId> {
        match kind {
            Kind::StaleRead => {
                self.stale_cursor += 1;
                let ids = &self.cluster.nodes;
                Some(ids[self.stale_cursor % ids.len()].0)
            }
            _ => self.leader,
        }
    }

    /// The next node to try and the deadline of that attempt (a slice of the timeout), or
    /// `None` to give up: the timeout ran out, or a whole round found nothing running. At
    /// the end of a round without success it backs off, then starts a new round from the
    /// leader as now known.
    fn choose_node(&self, p: &mut Progress) -> Option<(NodeId, Instant)> {
        loop {
            let now = Instant::now();
            if now >= p.deadline {
                return None;
            }
            if let Some(target) = p.queue.pop_front() {
                return Some((target, p.deadline.min(now + self.attempt_timeout)));
            }
            if p.round_all_unreachable && !p.answered_by_any && !self.cluster.supervisor_reachable() {
                // Nothing is running: no point waiting for the timeout.
                return None;
            }
            p.back_off();
            p.hops = 0;
            p.round_all_unreachable = true;
            p.queue = self.round_from(self.leader);
        }
    }

    /// One attempt: connects to `target` unless already connected there, sends `body` and
    /// waits for its answer until `deadline`.
    fn send(&mut self, target: NodeId, body: &Request, deadline: Instant) -> Result<Response, CallError> {
        self.connection(target)?.call(body.clone(), deadline)
    }

    /// An attempt that got no answer: drop the connection, forget `target` as leader, and
    /// note whether a write may have been applied (it went out and no answer came).
    fn on_call_error(&mut self, p: &mut Progress, kind: Kind, target: NodeId, e: CallError) {
        self.conn = None;
        match &e {
            CallError::Connect(_) => {}
            CallError::Send(_) => p.round_all_unreachable = false,
            CallError::NoAnswer(why) => {
                p.round_all_unreachable = false;
                if kind == Kind::Write {
                    p.in_doubt = Some(format!("the write was sent to node {target}, which did not answer ({why})"));
                }
            }
        }
        p.last_problem = Some(format!("node {target}: {e}"));
        if self.leader == Some(target) {
            self.leader = None;
        }
    }

    /// Reads one answer: `Some` ends the request (success, or a refusal no retry can fix);
    /// `None` goes on with the next node, which a `NotLeader` hint or an `Unknown` may
    /// have changed.
    fn on_response(
        &mut self,
        p: &mut Progress,
        kind: Kind,
        target: NodeId,
        response: Response,
    ) -> Option<Result<Reply, ClientError>> {
        p.answered_by_any = true;
        p.round_all_unreachable = false;
        match response {
            Response::Ok(reply) => {
                if kind != Kind::StaleRead {
                    self.learn_leader(target);
                }
                return Some(Ok(reply));
            }
            Response::NotLeader { leader } => self.follow_hint(p, target, leader),
            Response::Unavailable { reason } => {
                p.last_problem = Some(format!("node {target}: unavailable: {reason}"));
            }
            Response::Unknown { reason } => {
                // The same session and seq make a retry safe; it may well get the answer.
                // The final message says the outcome is unknown; a reason that says so too
                // (raft-replica's "...; it may or may not apply") would say it twice.
                let reason = without_outcome_note(&reason);
                p.in_doubt = Some(format!("node {target}: {reason}"));
                p.last_problem = p.in_doubt.clone();
                p.back_off();
                self.leader = None;
                p.queue = self.round_from(Some(target));
            }
            Response::Invalid { reason } => {
                return Some(Err(ClientError::Invalid(format!("the cluster refused the request: {reason}"))));
            }
            Response::Refused { reason } => {
                // Definite: nothing was applied, and the answer will not change by retrying.
                // (A refused retry of a write answered `Unknown` before is still in doubt.)
                self.learn_leader(target);
                return Some(Err(match p.in_doubt.take() {
                    None => ClientError::Refused(format!("write refused: {reason}")),
                    Some(why) => ClientError::Unknown(format!(
                        "outcome unknown: {why}; a retry was then refused ({reason}); the write may or may not \
                         have been applied, read the key to find out"
                    )),
                }));
            }
            other => {
                p.last_problem = Some(format!("node {target} answered {other:?}"));
            }
        }
        None
    }

    /// `target` answered as leader: remember it here and, if asked to, in `<dir>/cli-leader`.
    fn learn_leader(&mut self, target: NodeId) {
        self.leader = Some(target);
        if self.persist_leader && self.leader_on_file != Some(target) {
            self.cluster.remember_leader(target);
            self.leader_on_file = Some(target);
        }
    }

    /// `target` is not the leader: try the node it names next (at most `MAX_HINT_HOPS`
    /// hints in a round, so two nodes naming each other cannot loop).
    fn follow_hint(&mut self, p: &mut Progress, target: NodeId, leader: Option<NodeId>) {
        p.last_problem = Some(match leader {
            Some(l) => format!("node {target} is not the leader (it says node {l} is)"),
            None => format!("node {target} is not the leader and knows none"),
        });
        if self.leader == Some(target) {
            self.leader = leader;
        }
        if let Some(l) = leader.filter(|&l| l != target && self.cluster.socket(l).is_some()) {
            if p.hops < MAX_HINT_HOPS {
                p.hops += 1;
                p.queue.retain(|&n| n != l);
                p.queue.push_front(l);
            }
        }
    }

    /// The error once no attempt succeeded: unknown if a write may have been applied,
    /// unavailable otherwise, with the last problem seen and what to do.
    fn give_up(&self, kind: Kind, p: Progress) -> ClientError {
        let within = crate::args::format_duration(self.timeout);
        if let (Kind::Write, Some(why)) = (kind, p.in_doubt) {
            return ClientError::Unknown(format!(
                "outcome unknown after {within}: {why}; the write may or may not have been applied, \
                 read the key to find out"
            ));
        }
        let not_applied = if kind == Kind::Write { "; the write was not applied" } else { "" };
        if !p.answered_by_any && !self.cluster.supervisor_reachable() {
            // Over TCP the supervisor may be on another host, and the reason (a refused
            // certificate, say) matters more than the hint.
            let why = match (&self.cluster.tcp, &p.last_problem) {
                (Some(_), Some(last)) => format!(" (last: {last})"),
                _ => String::new(),
            };
            return ClientError::Unavailable(format!(
                "no node answered at {}{why}{not_applied}; start the cluster with `raft-supervisor up`",
                self.cluster.socket_pattern()
            ));
        }
        let last = p.last_problem.unwrap_or_else(|| "no node tried".into());
        let what = if kind == Kind::StaleRead { "no node answered" } else { "no leader answered" };
        ClientError::Unavailable(format!(
            "{what} within {within} (last: {last}){not_applied}; check `raft-supervisor status`, \
             then retry or raise --timeout"
        ))
    }
}

/// Where one request's retry loop stands.
struct Progress {
    /// When the request gives up (`--timeout` after it started).
    deadline: Instant,
    /// The nodes still to try in this round, in order.
    queue: VecDeque<NodeId>,
    /// Why the outcome of a write is in doubt, if it is.
    in_doubt: Option<String>,
    /// The most recent reason an attempt failed, for the message.
    last_problem: Option<String>,
    /// Some node answered at all (then the cluster is there, if without a leader).
    answered_by_any: bool,
    /// Every node tried in the current round failed to connect.
    round_all_unreachable: bool,
    /// The next pause between rounds (doubling up to `BACKOFF_MAX`).
    backoff: Duration,
    /// Leader hints followed in this round.
    hops: usize,
}

impl Progress {
    fn new(deadline: Instant, queue: VecDeque<NodeId>) -> Progress {
        Progress {
            deadline,
            queue,
            in_doubt: None,
            last_problem: None,
            answered_by_any: false,
            round_all_unreachable: true,
            backoff: BACKOFF_MIN,
            hops: 0,
        }
    }

    /// Pauses for the current backoff (never past the deadline) and doubles it.
    fn back_off(&mut self) {
        std::thread::sleep(self.backoff.min(self.deadline.saturating_duration_since(Instant::now())));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads exactly one frame from a fresh connection to the supervisor, with a deadline.
pub fn supervisor_call(
    socket: &Path,
    request: &raft_wire::supervisor::SupervisorRequest,
    timeout: Duration,
) -> io::Result<raft_wire::supervisor::SupervisorResponse> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    raft_wire::blocking::write_frame(&mut stream, request)?;
    raft_wire::blocking::read_frame(&mut stream)
}

/// A node's reason for an unknown outcome without its own "it may or may not apply": the
/// client's message ends by saying that once.
pub fn without_outcome_note(reason: &str) -> &str {
    reason.trim_end_matches("; it may or may not apply")
}

#[cfg(test)]
mod outcome_tests {
    #[test]
    fn unknown_is_said_once() {
        let r = "leader stepped down before the write committed; it may or may not apply";
        assert_eq!(super::without_outcome_note(r), "leader stepped down before the write committed");
        assert_eq!(super::without_outcome_note("other"), "other");
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    /// Nodes added at run time have a `node-<id>` directory: the client tries them too,
    /// and nothing else in the directory is taken for a node.
    #[test]
    fn added_nodes_are_found_by_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["node-2", "node-7", "node-65", "node-x", "nodes-9"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let cfg = ClusterConfig { dir: dir.path().to_path_buf(), nodes: 3, ..ClusterConfig::default() };
        let c = Cluster::from_config(&cfg);
        let ids: Vec<NodeId> = c.nodes.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 2, 3, 7], "bootstrap nodes plus node-7; 65 is past MAX_NODE_ID");
        assert_eq!(c.socket(7), Some(dir.path().join("node-7/node.sock").as_path()));
    }
}

#[cfg(test)]
mod tcp_tests {
    use super::*;

    fn tcp_config(dir: &Path, insecure: bool) -> ClusterConfig {
        let text = format!(
            "dir = {dir:?}\nnodes = 2\ntransport = \"tcp\"\naddrs = [\"127.0.0.1:1\", \"db-2.example:7001\"]\ninsecure = {insecure}\n"
        );
        ClusterConfig::from_toml(&text).unwrap()
    }

    /// Over tcp the client dials the addrs entries, and only those.
    #[test]
    fn tcp_nodes_are_dialled_at_their_addrs_entry() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster::from_config(&tcp_config(dir.path(), true));
        assert_eq!(c.endpoint(2), Some(Endpoint::Tcp("db-2.example:7001".into())));
        assert_eq!(c.endpoint(3), None, "no entry, no address");
        assert_eq!(c.socket_pattern(), "127.0.0.1:1, db-2.example:7001");
        assert!(c.config_error().is_none(), "plain tcp needs no files");
    }

    /// With TLS and no certificates, the client refuses to dial and says what to run.
    #[test]
    fn missing_client_certificates_are_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster::from_config(&tcp_config(dir.path(), false));
        let e = c.config_error().expect("no certificates yet");
        assert!(e.contains("ca.crt") && e.contains("raft-supervisor certs"), "{e}");
        let err = c.dial(1, Duration::from_millis(100)).err().expect("refused before dialling");
        assert!(matches!(err, CallError::Connect(_)), "{err}");
    }
}
