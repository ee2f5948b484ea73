//! `raft-supervisor up`: the thin shell around [`crate::core::Supervisor`].
//!
//! One mio `Poll` carries everything: the control listener and its connections, one
//! client connection per node (status polling and partition requests), and SIGCHLD,
//! SIGTERM, SIGINT and SIGHUP through signal-hook-mio. Every timer (restart backoff,
//! grace period, the next status round) becomes the poll timeout; nothing sleeps.
//! Children are reaped with `waitpid(WNOHANG)` in a loop bounded per turn.

use crate::cli::{normalize_groups, show_groups, CliError};
use crate::client::EFFECTIVE_CONFIG_HEADER;
use crate::core::{Action, Command, Event, ExitHow, NodeId, Policy, Report, Sig, Supervisor};
use crate::spawn::{self, ExecPlan};
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use raft_config::{ClusterConfig, ConfigSource};
use raft_core::{RoleKind, Term};
use raft_transport::Stream;
use raft_wire::conn::{FramedConn, ReadOutcome};
use raft_wire::levers::NetLevers;
use raft_wire::supervisor::{ClusterStatus, NodeLive, NodeRow, SupervisorRequest, SupervisorResponse};
use raft_wire::{show_speed, show_tick_us, SPEED_MILLI_MAX, SPEED_MILLI_MIN, SPEED_MILLI_NORMAL};
use raft_wire::{ClientRequest, ClientResponse, Hello, NodeStatus, Request, Response};
use serde::Serialize;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// Control connections open at once: a few concurrent commands; more is a runaway script.
pub const MAX_CONTROL_CONNECTIONS: usize = 32;
/// Children reaped per loop turn: bounds one turn's work; the rest are reaped next turn.
pub const MAX_REAPS_PER_TURN: usize = 64;
/// A node that leaves a request unanswered this long is shown as not answering, and its
/// connection is dropped (and reopened on the next round).
pub const NODE_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `status` waits for a fresh answer from every running node.
pub const STATUS_REPLY_WAIT: Duration = Duration::from_millis(500);
/// How often a (re)started node is asked to apply the current partition until it listens
/// and accepts: short, because until then it can talk across the partition.
pub const ISOLATE_RETRY: Duration = Duration::from_millis(5);
/// Bytes queued for a node or a control client that does not read: beyond this the
/// connection is dropped rather than buffered without bound.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;
/// `watch` shows a node's last answer up to this old (it asks ten times a second; an
/// older answer is from a node that stopped answering, shown as unknown).
pub const WATCH_FRESH: Duration = Duration::from_secs(1);
/// Bytes read from one connection per readiness event before other work gets a turn.
const READ_CHUNK_BYTES: usize = 64 * 1024;

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const NODE_TOKEN_BASE: usize = 16;
const CONTROL_TOKEN_BASE: usize = 1024;
const _: () = assert!(NODE_TOKEN_BASE as u64 + raft_config::MAX_NODES < CONTROL_TOKEN_BASE as u64);

/// Runs `up`. Returns when the cluster has been stopped (`down`, Ctrl-C, SIGTERM).
pub fn up(cfg: ClusterConfig, source: ConfigSource, detach: bool) -> Result<(), CliError> {
    let node_bin = spawn::node_binary().map_err(|e| CliError::failed(format!("cannot locate raft-node: {e}")))?;
    if !node_bin.is_file() {
        spawn::build_missing_binaries(&node_bin);
    }
    if !node_bin.is_file() {
        return Err(CliError::failed(format!(
            "raft-node not found at {}; it must sit next to raft-supervisor (build both with `cargo build --workspace`)",
            node_bin.display()
        )));
    }
    let fail = |what: String| move |e: io::Error| CliError::failed(format!("{what}: {e}"));
    // Each directory made is fsynced into its parent (a power cut must not drop them).
    raft_storage::create_dir_durable(&cfg.dir)
        .map_err(fail(format!("cannot create the cluster directory {}", cfg.dir.display())))?;
    let lock = acquire_lock(&cfg)?;
    // Say so when this `up` resumes an old cluster rather than starting a fresh one. We
    // hold the supervisor lock and no node runs yet, so reading the node directories
    // here races with nobody; each store is closed (its flock released) before any
    // node starts.
    if let Some(line) = existing_data_line(&cfg) {
        say_raw(&line);
    }
    // The peer secret: made once per cluster directory, kept across `up`s and restarts.
    let key_path = cfg.cluster_key_path();
    raft_wire::auth::ClusterKey::create_if_missing(&key_path).map_err(|e| CliError::failed(e.to_string()))?;
    write_effective_config(&cfg).map_err(fail(format!("cannot write {}", cfg.effective_config_path().display())))?;
    // The nodes to run: the bootstrap ones, plus those added, minus those removed.
    let members = crate::members::Members::load(&cfg).map_err(CliError::failed)?;
    // Over tcp: every member has an address (and, with TLS, its files); our identity.
    let node_tls = crate::certs::check_transport(&cfg, &members.ids())?;
    let mut plans = BTreeMap::new();
    for id in members.ids() {
        raft_storage::create_dir_durable(&cfg.node_dir(id))
            .map_err(fail(format!("cannot create {}", cfg.node_dir(id).display())))?;
        plans.insert(
            id,
            node_plan(&cfg, &node_bin, id).map_err(fail(format!("cannot prepare {}", node_bin.display())))?,
        );
    }
    let sock = cfg.supervisor_socket();
    // We hold the lock, so a socket file left here belongs to a supervisor that died.
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(fail(format!("cannot listen on {}", sock.display())))?;

    let ready = if detach { Some(detach_or_wait(&cfg)?) } else { None };
    // Only the process that runs the loop gets here.
    let _ = (&lock).write_all(format!("{}\n", std::process::id()).as_bytes());
    let mut shell = Shell::new(cfg, listener, plans, ready, lock, members, node_bin)?;
    shell.node_tls = node_tls;
    say_raw(&format!(
        "raft-supervisor {}: cluster in {} (config: {source}): {} nodes, tick {} ms; stop it with Ctrl-C or `raft-supervisor down`",
        std::process::id(),
        shell.cfg.dir.display(),
        shell.cfg.nodes,
        shell.cfg.tick_ms
    ));
    if let (Some(first), Some(last)) = (shell.cfg.redis_addr(1), shell.cfg.redis_addr(shell.cfg.nodes)) {
        say_raw(&format!(
            "redis: redis-cli -h {} -p {} (any node answers: ports {} to {})",
            first.ip(),
            first.port(),
            first.port(),
            last.port()
        ));
    }
    let result = shell.run();
    let _ = std::fs::remove_file(&sock);
    if let Err(e) = &result {
        shell.send_ready(&format!("err {e}"));
    }
    result.map_err(|e| CliError::failed(format!("supervisor failed: {e}")))
}

/// How node `id` is started: `raft-node --config <dir>/cluster.toml --id N`.
fn node_plan(cfg: &ClusterConfig, node_bin: &std::path::Path, id: NodeId) -> io::Result<ExecPlan> {
    let config_arg = cfg.effective_config_path();
    let id_arg = id.to_string();
    let args = ["--config".as_ref(), config_arg.as_os_str(), "--id".as_ref(), id_arg.as_ref()];
    ExecPlan::new(node_bin, &args)
}

/// A membership change (or transfer) asked of the leader for a control client: one at a
/// time, answered when the leader answers or at the deadline.
struct MemberChange {
    token: usize,
    req_id: u64,
    leader: NodeId,
    op: MemberOp,
    deadline: Instant,
    /// Requests sent so far.
    attempts: u32,
    /// When to ask again after an answer that a moment may change (no leader, another
    /// change in progress, the outcome unknown).
    resend_at: Option<Instant>,
}

/// Pause before asking the leader again for a membership change it could not take yet.
const MEMBER_CHANGE_RETRY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
enum MemberOp {
    Add(NodeId),
    Remove(NodeId),
    Transfer(NodeId),
}

/// How long the supervisor waits for the leader to commit a membership change: a round
/// trip to a majority normally; longer means the cluster has trouble, and the client is
/// told the change may still happen.
pub const MEMBER_CHANGE_TIMEOUT: Duration = Duration::from_secs(8);

/// What one node directory holds, as found by opening its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeData {
    pub term: Term,
    pub last_index: raft_core::Index,
    pub snapshot_index: raft_core::Index,
}

/// What each node directory with a WAL holds. Opens each store the way the node will (same
/// options), which runs the same recovery the node would run a moment later, then closes
/// it. A store that cannot be opened is skipped: its node will say why when it starts.
pub fn existing_data(cfg: &ClusterConfig) -> BTreeMap<NodeId, NodeData> {
    let mut found = BTreeMap::new();
    for id in cfg.node_ids() {
        if !cfg.node_wal_dir(id).is_dir() {
            continue;
        }
        let opts = raft_storage::StorageOptions { fsync: cfg.fsync, ..Default::default() };
        if let Ok((storage, _recovery)) = raft_storage::Storage::open(&cfg.node_dir(id), opts) {
            let data = NodeData {
                term: storage.hard_state().term,
                last_index: storage.last_index(),
                snapshot_index: storage.snapshot_meta().index,
            };
            drop(storage);
            found.insert(id, data);
        }
    }
    found
}

/// The one line `up` prints on a directory that already holds a cluster's data, or None
/// when there is nothing (or only empty logs) to resume.
pub fn existing_data_line(cfg: &ClusterConfig) -> Option<String> {
    describe_existing_data(&cfg.dir.display().to_string(), &existing_data(cfg))
}

/// See [`existing_data_line`]: the highest term and the longest log over the nodes.
pub fn describe_existing_data(dir: &str, found: &BTreeMap<NodeId, NodeData>) -> Option<String> {
    let term = found.values().map(|d| d.term).max()?;
    let last = found.values().map(|d| d.last_index).max()?;
    if term == 0 && last == 0 {
        return None;
    }
    let snap = found.values().map(|d| d.snapshot_index).max().unwrap_or(0);
    let snap = if snap > 0 { format!(" (snapshot at {snap})") } else { String::new() };
    Some(format!(
        "resuming existing data in {dir}: term {term}, log up to index {last}{snap} on {} node(s); \
         `raft-supervisor wipe` (with the cluster down) starts fresh",
        found.len()
    ))
}

/// Who holds `<dir>/supervisor.lock` (its pid as written there), if anyone does.
pub fn lock_holder(cfg: &ClusterConfig) -> Option<String> {
    let path = cfg.dir.join("supervisor.lock");
    let file = File::open(&path).ok()?;
    // SAFETY: flock on a descriptor we own; a shared non-blocking probe.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        return None; // Nobody holds it exclusively (our probe is released when `file` drops).
    }
    let pid = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
    Some(if pid.is_empty() { "unknown pid".into() } else { format!("pid {pid}") })
}

/// Takes `<dir>/supervisor.lock` for the life of this process: a second `up` on the same
/// directory finds it held and says so.
fn acquire_lock(cfg: &ClusterConfig) -> Result<File, CliError> {
    let path = cfg.dir.join("supervisor.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CliError::failed(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
        return Err(CliError::failed(format!(
            "a supervisor is already running for {} (pid {holder}); stop it with `raft-supervisor down`",
            cfg.dir.display()
        )));
    }
    file.set_len(0).map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(file)
}

/// Writes `<dir>/cluster.toml` atomically (temp file, fsync, rename).
fn write_effective_config(cfg: &ClusterConfig) -> io::Result<()> {
    let path = cfg.effective_config_path();
    let tmp = path.with_extension("toml.tmp");
    let text = cfg.to_toml();
    assert!(text.starts_with(EFFECTIVE_CONFIG_HEADER), "wipe recognises the effective config by its header");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// How long `up --detach` waits for a leader: generous, and longer for a slowed-down cluster.
fn detach_timeout(cfg: &ClusterConfig) -> Duration {
    let elections = Duration::from_millis(cfg.tick_ms * u64::from(cfg.election_ticks_max) * 20);
    elections.max(Duration::from_secs(30))
}

/// Forks into the background. The parent waits until the child reports a leader (or
/// fails) and exits; the child returns the write end of the readiness pipe and runs on.
fn detach_or_wait(cfg: &ClusterConfig) -> Result<OwnedFd, CliError> {
    let log_path = cfg.supervisor_log();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| CliError::failed(format!("cannot open {}: {e}", log_path.display())))?;
    let (rd, wr) = nix::unistd::pipe().map_err(|e| CliError::failed(format!("pipe: {e}")))?;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: the process is single-threaded here (no thread has been started yet), so
    // the child may run ordinary Rust code after fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| CliError::failed(format!("fork: {e}")))? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let code = wait_ready(rd, detach_timeout(cfg), cfg, child.as_raw() as u32);
            match code {
                Ok(()) => std::process::exit(0),
                Err(e) => Err(e),
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            let devnull = File::open("/dev/null").map_err(|e| CliError::failed(format!("/dev/null: {e}")))?;
            // SAFETY: dup2 onto the standard descriptors; both sources are open.
            unsafe {
                libc::dup2(devnull.as_raw_fd(), 0);
                libc::dup2(log.as_raw_fd(), 1);
                libc::dup2(log.as_raw_fd(), 2);
            }
            Ok(wr)
        }
    }
}

/// The detaching parent: waits for "ok <line>" or "err <line>" on the pipe.
fn wait_ready(rd: OwnedFd, timeout: Duration, cfg: &ClusterConfig, child: u32) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    let log = cfg.supervisor_log();
    let mut buf = Vec::new();
    let mut file = File::from(rd);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CliError::failed(format!(
                "no leader elected within {} s; the supervisor (pid {child}) keeps running: see `raft-supervisor status` and {}",
                timeout.as_secs(),
                log.display()
            )));
        }
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CliError::failed(format!("poll: {e}")));
        }
        if n == 0 {
            continue;
        }
        let mut chunk = [0u8; 512];
        let got = file.read(&mut chunk).unwrap_or(0);
        if got > 0 && buf.len() < 4096 {
            buf.extend_from_slice(&chunk[..got]);
        }
        if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..nl]).to_string();
            if let Some(ok) = line.strip_prefix("ok ") {
                say_raw(ok);
                say_raw(&format!(
                    "supervisor running in the background (pid {child}); its output goes to {}",
                    log.display()
                ));
                return Ok(());
            }
            return Err(CliError::failed(line.strip_prefix("err ").unwrap_or(&line).to_string()));
        }
        if got == 0 {
            return Err(CliError::failed(format!(
                "the supervisor exited before a leader was elected; see {}",
                log.display()
            )));
        }
    }
}

fn say_raw(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A control client's or a node link's connection: raft-wire's framed one, its output
/// bounded by [`MAX_QUEUED_BYTES`].
type Conn = FramedConn<Stream>;

fn new_conn(stream: Stream) -> Conn {
    FramedConn::new(stream, MAX_QUEUED_BYTES)
}

/// Queues one frame and writes what the socket takes. An error (the other end does not
/// read, or the socket failed) means: drop the connection.
fn send<T: Serialize>(conn: &mut Conn, msg: &T) -> io::Result<()> {
    conn.queue(msg).map_err(io::Error::other)?;
    conn.flush()
}

/// Reads what is available. Returns false once the other end has closed.
fn fill(conn: &mut Conn) -> io::Result<bool> {
    let mut scratch = [0u8; 8192];
    loop {
        match conn.read_available(&mut scratch, READ_CHUNK_BYTES)? {
            ReadOutcome::Open => return Ok(true),
            ReadOutcome::Closed => return Ok(false),
            ReadOutcome::More => {
                if conn.reader.buffered() > READ_CHUNK_BYTES + raft_wire::MAX_FRAME_BYTES {
                    return Err(io::Error::other("too much unread input"));
                }
            }
        }
    }
}

/// The supervisor's client connection to one node, and what it last heard.
#[derive(Default)]
struct NodeLink {
    /// The process this link belongs to; everything below is reset when it changes.
    pid: Option<u32>,
    conn: Option<Conn>,
    /// Outstanding status request: id and when it was sent.
    status_req: Option<(u64, Instant)>,
    /// Outstanding isolate request: id, peers, when sent.
    isolate_req: Option<(u64, Vec<NodeId>, Instant)>,
    /// The isolation this process has confirmed (a fresh process isolates nobody).
    isolation: Vec<NodeId>,
    /// Outstanding speed request: id, speed, when sent.
    speed_req: Option<(u64, u32, Instant)>,
    /// The speed this process has confirmed (None: not known yet; a fresh process runs
    /// at the configured speed, but says so only in its first status).
    speed: Option<u32>,
    status: Option<(NodeStatus, Instant)>,
    /// The network levers last sent to this process, and when.
    levers_sent: Option<(NetLevers, Instant)>,
}

struct StatusWaiter {
    token: usize,
    since: Instant,
    deadline: Instant,
}

struct Shell {
    cfg: ClusterConfig,
    started: Instant,
    poll: Poll,
    signals: Signals,
    listener: UnixListener,
    core: Supervisor,
    plans: BTreeMap<NodeId, ExecPlan>,
    links: BTreeMap<NodeId, NodeLink>,
    controls: BTreeMap<usize, Conn>,
    next_control: usize,
    /// Canonical groups (see [`normalize_groups`]); empty when the network is whole.
    partitions: Vec<Vec<NodeId>>,
    status_waiters: Vec<StatusWaiter>,
    down_waiters: Vec<usize>,
    next_round: Instant,
    next_isolate_try: Option<Instant>,
    /// The network levers asked for (`delay`, `loss`), kept on every running node.
    levers: crate::levers::Desired,
    next_request_id: u64,
    leader: Option<(NodeId, Term)>,
    /// `up --detach`: the pipe to the waiting parent, until a leader is reported.
    ready: Option<OwnedFd>,
    exit: bool,
    reap_again: bool,
    /// Held for the life of the process (see [`acquire_lock`]).
    _lock: File,
    /// The nodes this supervisor runs (`<dir>/members`).
    members: crate::members::Members,
    node_bin: std::path::PathBuf,
    member_change: Option<MemberChange>,
    /// `<dir>/supervisor.events`: our actions and observations as event lines, for
    /// `timeline` and `watch` (None if it cannot be opened: said once, then ignored).
    events: Option<File>,
    /// `raft-supervisor speed`, in thousandths: sent to every node, and again to every node
    /// that (re)starts.
    speed_milli: u32,
    /// Our client identity for the node links over TLS (`None`: Unix sockets or plain TCP).
    node_tls: Option<raft_transport::ClientTls>,
}

impl Shell {
    fn new(
        cfg: ClusterConfig,
        mut listener: UnixListener,
        plans: BTreeMap<NodeId, ExecPlan>,
        ready: Option<OwnedFd>,
        lock: File,
        members: crate::members::Members,
        node_bin: std::path::PathBuf,
    ) -> Result<Shell, CliError> {
        let err = |e: io::Error| CliError::failed(format!("cannot set up the event loop: {e}"));
        let poll = Poll::new().map_err(err)?;
        let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP]).map_err(err)?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE).map_err(err)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE).map_err(err)?;
        let core = Supervisor::new(Policy::from_config(&cfg), members.ids());
        let links = members.ids().into_iter().map(|id| (id, NodeLink::default())).collect();
        let now = Instant::now();
        let events_path = cfg.dir.join(crate::timeline::SUPERVISOR_EVENTS_FILE);
        let events = OpenOptions::new().create(true).append(true).mode(0o600).open(&events_path);
        if let Err(e) = &events {
            say_raw(&format!(
                "cannot open {}: {e}; timeline will miss the supervisor's actions",
                events_path.display()
            ));
        }
        Ok(Shell {
            events: events.ok(),
            speed_milli: SPEED_MILLI_NORMAL,
            node_tls: None,
            next_round: now + Duration::from_millis(cfg.status_poll_ms),
            cfg,
            started: now,
            poll,
            signals,
            listener,
            core,
            plans,
            links,
            controls: BTreeMap::new(),
            next_control: 0,
            partitions: Vec::new(),
            status_waiters: Vec::new(),
            down_waiters: Vec::new(),
            next_isolate_try: None,
            levers: crate::levers::Desired::default(),
            next_request_id: 1,
            leader: None,
            ready,
            exit: false,
            reap_again: false,
            _lock: lock,
            members,
            node_bin,
            member_change: None,
        })
    }

    fn say(&self, line: &str) {
        let t = self.started.elapsed();
        say_raw(&format!("[{:>4}.{:03}s] {line}", t.as_secs(), t.subsec_millis()));
    }

    /// Appends one event line to `supervisor.events` (a failing write is ignored: the
    /// cluster matters more than its history).
    fn event(&mut self, text: &str) {
        self.event_at(crate::timeline::now_us(), text);
    }

    /// The same, stamped `ts_us`: a command is logged once it succeeded, stamped when it
    /// arrived, so it sorts before the reports it caused (`node 3 started`).
    fn event_at(&mut self, ts_us: u64, text: &str) {
        if let Some(f) = self.events.as_mut() {
            let _ = writeln!(f, "{}", crate::timeline::supervisor_line(ts_us, text));
        }
    }

    fn run(&mut self) -> io::Result<()> {
        self.event(&format!("up: {} nodes, tick {} ms", self.cfg.nodes, self.cfg.tick_ms));
        self.feed(Event::Up);
        let mut events = Events::with_capacity(256);
        while !self.exit {
            let now = Instant::now();
            let timeout = if self.reap_again {
                Some(Duration::ZERO)
            } else {
                self.next_wakeup().map(|t| t.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut reap = std::mem::take(&mut self.reap_again);
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => {
                        let sigs: Vec<i32> = self.signals.pending().collect();
                        for sig in sigs {
                            if sig == SIGCHLD {
                                reap = true;
                            } else {
                                self.say(&format!("received {}", signal_name(sig)));
                                self.feed(Event::Command(Command::Shutdown));
                            }
                        }
                    }
                    LISTENER => self.accept(),
                    Token(t) if (NODE_TOKEN_BASE..CONTROL_TOKEN_BASE).contains(&t) => {
                        self.node_ready((t - NODE_TOKEN_BASE) as NodeId)
                    }
                    Token(t) => self.control_ready(t),
                }
            }
            if reap {
                self.reap();
            }
            self.on_time(Instant::now());
        }
        self.finish_down();
        Ok(())
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let mut t = self.core.next_deadline();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(Some(self.next_round));
        min(self.next_isolate_try);
        min(self.status_waiters.iter().map(|w| w.deadline).min());
        for link in self.links.values() {
            min(link.status_req.map(|(_, sent)| sent + NODE_REQUEST_TIMEOUT));
            min(link.isolate_req.as_ref().map(|(_, _, sent)| *sent + NODE_REQUEST_TIMEOUT));
            min(link.speed_req.map(|(_, _, sent)| sent + NODE_REQUEST_TIMEOUT));
        }
        t
    }

    /// Feeds one event to the core and carries out its actions (spawns feed back events).
    /// Returns the replies to the command, if the event was one.
    fn feed(&mut self, event: Event) -> Vec<Result<String, String>> {
        let now = Instant::now();
        let mut queue = VecDeque::from([event]);
        let mut replies = Vec::new();
        while let Some(ev) = queue.pop_front() {
            for action in self.core.on_event(ev, now) {
                match action {
                    Action::Spawn(id) => queue.push_back(self.spawn(id)),
                    Action::Signal { id, pid, sig } => self.signal(id, pid, sig),
                    Action::Report(r) => self.report(r, now),
                    Action::Reply(r) => replies.push(r),
                    Action::Exit => self.exit = true,
                }
            }
        }
        replies
    }

    fn spawn(&mut self, id: NodeId) -> Event {
        let log = self.cfg.node_log(id);
        spawn::note(&log, &format!("starting node {id}"));
        match spawn::spawn(&self.plans[&id], &log) {
            Ok(pid) => {
                self.reset_link(id, Some(pid));
                Event::Spawned { id, pid }
            }
            Err(e) => Event::SpawnFailed { id, error: e.to_string() },
        }
    }

    fn signal(&mut self, id: NodeId, pid: u32, sig: Sig) {
        let s = match sig {
            Sig::Term => Signal::SIGTERM,
            Sig::Kill => Signal::SIGKILL,
            Sig::Stop => Signal::SIGSTOP,
            Sig::Cont => Signal::SIGCONT,
        };
        // The pid is ours and not yet reaped (the core forgets it only on reaping), so it
        // cannot have been reused; ESRCH cannot happen and anything else is worth a line.
        if let Err(e) = kill(Pid::from_raw(pid as i32), s) {
            self.say(&format!("cannot send {} to node {id} (pid {pid}): {e}", s.as_str()));
        }
        if sig == Sig::Stop {
            // A frozen node answers nothing; stop waiting for it.
            if let Some(link) = self.links.get_mut(&id) {
                link.status = None;
            }
        }
    }

    fn report(&mut self, r: Report, now: Instant) {
        self.say(&r.to_string());
        self.event(&r.to_string());
        match &r {
            Report::Exited { id, pid, how, .. } => {
                spawn::note(&self.cfg.node_log(*id), &format!("node {id} (pid {pid}) {how}"));
                if self.links[id].pid == Some(*pid) {
                    self.reset_link(*id, None);
                }
                if self.leader.is_some_and(|(l, _)| l == *id) {
                    self.leader = None;
                }
            }
            Report::Started { .. } if !self.partitions.is_empty() || self.speed_milli != SPEED_MILLI_NORMAL => {
                self.next_isolate_try = Some(now)
            }
            Report::GaveUp { .. } | Report::NotRestarting { .. }
                if self.core.pids().is_empty() && self.core.next_deadline().is_none() =>
            {
                let log = self.cfg.node_log(1);
                let line = format!(
                    "every node has failed (see the node logs, e.g. {}); the supervisor (pid {}) keeps running: \
                     `raft-supervisor start N` retries, `raft-supervisor down` stops it",
                    log.display(),
                    std::process::id()
                );
                self.send_ready(&format!("err {line}"));
            }
            _ => {}
        }
    }

    fn reset_link(&mut self, id: NodeId, pid: Option<u32>) {
        let link = self.links.get_mut(&id).expect("a link per node");
        if let Some(mut c) = link.conn.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        *link = NodeLink { pid, ..NodeLink::default() };
    }

    fn reap(&mut self) {
        for _ in 0..MAX_REAPS_PER_TURN {
            let (pid, how) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitHow::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitHow::Signal(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => continue, // Stopped/continued are not asked for; nothing to do.
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    self.say(&format!("waitpid failed: {e}"));
                    return;
                }
            };
            self.feed(Event::Exited { pid: pid.as_raw() as u32, how });
        }
        self.reap_again = true;
    }

    fn on_time(&mut self, now: Instant) {
        if self.core.next_deadline().is_some_and(|d| d <= now) {
            self.feed(Event::Tick);
        }
        // Requests a node left unanswered: drop the connection, try again next round.
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for &id in &ids {
            let link = &self.links[&id];
            let stale = link.status_req.is_some_and(|(_, sent)| now >= sent + NODE_REQUEST_TIMEOUT)
                || link.isolate_req.as_ref().is_some_and(|(_, _, sent)| now >= *sent + NODE_REQUEST_TIMEOUT)
                || link.speed_req.is_some_and(|(_, _, sent)| now >= sent + NODE_REQUEST_TIMEOUT);
            if stale {
                self.drop_conn(id);
            }
        }
        if now >= self.next_round {
            self.next_round = now + Duration::from_millis(self.cfg.status_poll_ms);
            self.round(now);
        }
        if self.next_isolate_try.is_some_and(|t| now >= t) {
            self.next_isolate_try = None;
            for &id in &ids {
                self.enforce_isolation(id, now);
                self.enforce_speed(id, now);
            }
            let unconfirmed = ids.iter().any(|&id| {
                self.core.serving_pid(id).is_some()
                    && (self.links[&id].isolation != self.desired_isolation(id)
                        || self.links[&id].speed.unwrap_or(SPEED_MILLI_NORMAL) != self.speed_milli)
            });
            if unconfirmed {
                self.next_isolate_try = Some(now + ISOLATE_RETRY);
            }
        }
        self.answer_status_waiters(now);
        if self.member_change.as_ref().is_some_and(|c| c.resend_at.is_some_and(|t| now >= t) && now < c.deadline) {
            self.send_member_change(now);
        }
        if self.member_change.as_ref().is_some_and(|c| now >= c.deadline) {
            let c = self.member_change.take().expect("checked");
            let line = format!(
                "no answer from the leader (node {}) within {MEMBER_CHANGE_TIMEOUT:?} to {}; it may still happen: \
                 check `raft-supervisor status`",
                c.leader,
                describe_op(c.op)
            );
            self.respond(c.token, SupervisorResponse::Error(line));
        }
    }

    /// The nodes this supervisor runs now (removed ones are still listed by `status`).
    fn ids(&self) -> Vec<NodeId> {
        self.links.keys().copied().filter(|&id| !self.members.is_removed(id)).collect()
    }

    /// Asks the leader for a membership change (or a transfer) for control client `token`.
    fn begin_member_change(&mut self, token: usize, op: MemberOp, now: Instant) {
        if let Some(c) = &self.member_change {
            let line =
                format!("another membership change is in progress ({}); wait for it to finish", describe_op(c.op));
            return self.respond(token, SupervisorResponse::Error(line));
        }
        if let MemberOp::Add(id) = op {
            // Everything that can fail locally is done before the cluster is asked; the
            // node starts once the change has committed.
            if let Err(e) = self.prepare_added(id) {
                return self.respond(token, SupervisorResponse::Error(e));
            }
        }
        let deadline = now + MEMBER_CHANGE_TIMEOUT;
        self.member_change =
            Some(MemberChange { token, req_id: 0, leader: 0, op, deadline, attempts: 0, resend_at: None });
        self.send_member_change(now);
    }

    /// Sends the pending membership change to the leader, or waits for one.
    fn send_member_change(&mut self, now: Instant) {
        let Some(op) = self.member_change.as_ref().map(|c| c.op) else { return };
        let leader = self.leader.map(|(l, _)| l).filter(|&l| self.core.serving_pid(l).is_some());
        let body = match op {
            MemberOp::Add(id) => Request::Membership { change: raft_core::MembershipChange::AddLearner(id) },
            MemberOp::Remove(id) => Request::Membership { change: raft_core::MembershipChange::Remove(id) },
            MemberOp::Transfer(id) => Request::TransferLeader { to: id },
        };
        let req_id = self.request_id();
        let sent = leader.filter(|&l| self.send_to_node(l, &ClientRequest { id: req_id, body }));
        let c = self.member_change.as_mut().expect("checked above");
        match sent {
            Some(l) => {
                c.req_id = req_id;
                c.leader = l;
                c.attempts += 1;
                c.resend_at = None;
                if c.attempts == 1 {
                    self.say(&format!("asked the leader (node {l}) to {}", describe_op(op)));
                    self.event(&format!("asks n{l} to {}", describe_op(op)));
                }
            }
            // No leader reachable now (an election): ask again in a moment.
            None => c.resend_at = Some(now + MEMBER_CHANGE_RETRY),
        }
    }

    /// A new node's directory and exec plan, made before the cluster is asked to add it.
    fn prepare_added(&mut self, id: NodeId) -> Result<(), String> {
        let dir = self.cfg.node_dir(id);
        raft_storage::create_dir_durable(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let plan = node_plan(&self.cfg, &self.node_bin, id).map_err(|e| format!("cannot prepare node {id}: {e}"))?;
        self.plans.insert(id, plan);
        Ok(())
    }

    /// A node added at run time: its directory, its entry in `<dir>/members`, its process.
    fn start_added(&mut self, id: NodeId) -> Result<(), String> {
        self.members.add(id);
        self.members.save(&self.cfg).map_err(|e| format!("cannot record node {id} in <dir>/members: {e}"))?;
        self.core.supervise(id);
        self.links.insert(id, NodeLink::default());
        // Under a partition, the new node joins the leader's side, so it can catch up.
        let leader = self.leader.map(|(l, _)| l);
        if let Some(g) = self.partitions.iter_mut().find(|g| leader.is_some_and(|l| g.contains(&l))) {
            g.push(id);
            g.sort_unstable();
            let line = format!("node {id} joins the leader's side of the partition: {}", show_groups(&self.partitions));
            self.say(&line);
            self.apply_partitions(Instant::now());
        }
        let replies = self.feed(Event::Command(Command::Start(id)));
        if let Some(Err(e)) = replies.into_iter().next() {
            return Err(e);
        }
        Ok(())
    }

    /// Stops node `id` for good and records it as removed.
    fn retire(&mut self, id: NodeId) {
        self.members.remove(id);
        if let Err(e) = self.members.save(&self.cfg) {
            self.say(&format!("cannot record node {id} as removed in <dir>/members: {e}"));
        }
        if self.core.process(id).pid.is_some() {
            self.feed(Event::Command(Command::Kill(id)));
        }
    }

    /// The leader's answer to the pending membership change, if `r` is it.
    fn member_change_answer(&mut self, id: NodeId, r: &ClientResponse) -> bool {
        let Some(c) = self.member_change.as_ref().filter(|c| c.leader == id && c.req_id == r.id) else {
            return false;
        };
        let (token, op) = (c.token, c.op);
        let now = Instant::now();
        // The change is already made: an earlier attempt took effect (an added id is one
        // never used before, so only our own attempt can have added it; a node that is
        // not a member is what `remove` asks for, and it is stopped all the same).
        let already = match (&r.body, op) {
            (Response::Invalid { reason }, MemberOp::Add(_)) => reason.contains("already a member"),
            (Response::Invalid { reason }, MemberOp::Remove(_)) => reason.contains("is not a member"),
            _ => false,
        };
        let outcome = match (&r.body, op) {
            (Response::Ok(_), MemberOp::Add(n)) => self.start_added(n).map(|()| {
                format!("added node {n} as a learner; the leader promotes it to voter once it has caught up")
            }),
            _ if already => match op {
                MemberOp::Add(n) => self.start_added(n).map(|()| {
                    format!("added node {n} as a learner; the leader promotes it to voter once it has caught up")
                }),
                MemberOp::Remove(n) | MemberOp::Transfer(n) => {
                    self.retire(n);
                    Ok(format!("removed node {n} from the configuration and stopped it"))
                }
            },
            (Response::Ok(_), MemberOp::Remove(n)) => {
                self.retire(n);
                Ok(format!("removed node {n} from the configuration and stopped it"))
            }
            (Response::Accepted, MemberOp::Transfer(n)) => {
                Ok(format!("leadership transfer from node {id} to node {n} started"))
            }
            // A moment may change these (an election, the leader's own promotion of a
            // learner in progress, an outcome the next attempt will learn): ask again.
            (
                Response::NotLeader { .. }
                | Response::Unavailable { .. }
                | Response::Unknown { .. }
                | Response::Refused { .. },
                _,
            ) if now + MEMBER_CHANGE_RETRY < self.member_change.as_ref().expect("checked").deadline => {
                self.member_change.as_mut().expect("checked").resend_at = Some(now + MEMBER_CHANGE_RETRY);
                return true;
            }
            (Response::NotLeader { .. }, _) => Err(format!("node {id} is no longer the leader; try again")),
            (
                Response::Refused { reason }
                | Response::Invalid { reason }
                | Response::Unavailable { reason }
                | Response::Unknown { reason },
                _,
            ) => Err(reason.clone()),
            (other, _) => Err(format!("unexpected answer from node {id}: {other:?}")),
        };
        self.member_change = None;
        let resp = match outcome {
            Ok(line) => {
                self.event(&line);
                self.say(&line);
                SupervisorResponse::Ok(line)
            }
            Err(why) => {
                let line = format!("could not {}: {why}", describe_op(op));
                self.say(&line);
                SupervisorResponse::Error(line)
            }
        };
        self.respond(token, resp);
        true
    }

    /// Asks every answering node for its status.
    fn round(&mut self, now: Instant) {
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            if self.core.serving_pid(id).is_none() || self.links[&id].status_req.is_some() {
                continue;
            }
            let req_id = self.request_id();
            if self.send_to_node(id, &ClientRequest { id: req_id, body: Request::Status }) {
                self.links.get_mut(&id).expect("link").status_req = Some((req_id, now));
            }
            self.enforce_isolation(id, now);
            self.enforce_levers(id, now);
            self.enforce_speed(id, now);
        }
    }

    fn request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        self.next_request_id
    }

    /// Connects to the node if needed and sends `req`. False if the node cannot be reached.
    fn send_to_node(&mut self, id: NodeId, req: &ClientRequest) -> bool {
        let Some(pid) = self.core.serving_pid(id) else { return false };
        if self.links[&id].pid != Some(pid) {
            self.reset_link(id, Some(pid));
        }
        if self.links[&id].conn.is_none() {
            let Ok(at) = self.cfg.node_endpoint(id) else { return false };
            let Ok(mut stream) = raft_transport::connect(&at, id, self.node_tls.as_ref()) else { return false };
            let token = Token(NODE_TOKEN_BASE + id as usize);
            if self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                return false;
            }
            let mut conn = new_conn(stream);
            if send(&mut conn, &Hello::Client).is_err() {
                return false;
            }
            self.links.get_mut(&id).expect("link").conn = Some(conn);
        }
        let conn = self.links.get_mut(&id).expect("link").conn.as_mut().expect("connected above");
        if send(conn, req).is_err() {
            self.drop_conn(id);
            return false;
        }
        true
    }

    fn drop_conn(&mut self, id: NodeId) {
        let link = self.links.get_mut(&id).expect("link");
        if let Some(mut c) = link.conn.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        link.status_req = None;
        link.isolate_req = None;
        link.speed_req = None;
    }

    /// Sends the node the current speed if it has not confirmed it and no request is
    /// pending (like [`Shell::enforce_isolation`]).
    fn enforce_speed(&mut self, id: NodeId, now: Instant) {
        let speed = self.speed_milli;
        let link = &self.links[&id];
        // Unknown speed on a fresh link: its first status says it; the configured speed
        // needs no request.
        let known = link.speed.unwrap_or(SPEED_MILLI_NORMAL);
        if self.core.serving_pid(id).is_none() || known == speed || link.speed_req.is_some() {
            return;
        }
        let req_id = self.request_id();
        if self.send_to_node(id, &ClientRequest { id: req_id, body: Request::SetSpeed { factor_milli: speed } }) {
            self.links.get_mut(&id).expect("link").speed_req = Some((req_id, speed, now));
        }
    }

    /// Peers node `id` must not exchange messages with under the current partition.
    fn desired_isolation(&self, id: NodeId) -> Vec<NodeId> {
        match self.partitions.iter().find(|g| g.contains(&id)) {
            None => Vec::new(),
            Some(group) => self.ids().into_iter().filter(|p| !group.contains(p)).collect(),
        }
    }

    /// Sends the node its isolation if it has not confirmed it and no request is pending.
    fn enforce_isolation(&mut self, id: NodeId, now: Instant) {
        let desired = self.desired_isolation(id);
        let link = &self.links[&id];
        if self.core.serving_pid(id).is_none() || link.isolation == desired || link.isolate_req.is_some() {
            return;
        }
        let req_id = self.request_id();
        if self.send_to_node(id, &ClientRequest { id: req_id, body: Request::Isolate { peers: desired.clone() } }) {
            self.links.get_mut(&id).expect("link").isolate_req = Some((req_id, desired, now));
        }
    }

    /// Sends the node its network levers if its last status shows others and they were
    /// not sent within a request timeout (a restarted node reports none: it gets them).
    fn enforce_levers(&mut self, id: NodeId, now: Instant) {
        let desired = self.levers.get(id);
        let link = &self.links[&id];
        let in_force = link.status.as_ref().map(|(st, _)| st.levers);
        let recently_sent = link.levers_sent.is_some_and(|(l, at)| l == desired && now < at + NODE_REQUEST_TIMEOUT);
        if self.core.serving_pid(id).is_none() || in_force == Some(desired) || recently_sent {
            return;
        }
        let req_id = self.request_id();
        if self.send_to_node(id, &ClientRequest { id: req_id, body: Request::NetLevers(desired) }) {
            self.links.get_mut(&id).expect("link").levers_sent = Some((desired, now));
        }
    }

    fn node_ready(&mut self, id: NodeId) {
        let Some(link) = self.links.get_mut(&id) else { return };
        let Some(conn) = link.conn.as_mut() else { return };
        let alive = conn.flush().and_then(|_| fill(conn));
        let mut responses = Vec::new();
        let mut broken = !matches!(alive, Ok(true));
        loop {
            match conn.reader.next_frame::<ClientResponse>() {
                Ok(Some(r)) => responses.push(r),
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        for r in responses {
            self.node_response(id, r, now);
        }
        if broken {
            self.drop_conn(id);
        }
    }

    fn node_response(&mut self, id: NodeId, r: ClientResponse, now: Instant) {
        if self.member_change_answer(id, &r) {
            return;
        }
        let link = self.links.get_mut(&id).expect("link");
        match r.body {
            Response::Status(st) => {
                if link.status_req.is_some_and(|(rid, _)| rid == r.id) {
                    link.status_req = None;
                }
                let mut isolated = st.isolated.clone();
                isolated.sort_unstable();
                // The node's word is the truth about its isolation (it may have restarted).
                if link.isolate_req.is_none() {
                    link.isolation = isolated;
                }
                if link.speed_req.is_none() {
                    link.speed = Some(st.speed_milli);
                }
                link.status = Some((st, now));
                self.enforce_isolation(id, now);
                self.enforce_levers(id, now);
                self.enforce_speed(id, now);
                self.check_leader();
            }
            Response::Accepted if link.isolate_req.as_ref().is_some_and(|(rid, _, _)| *rid == r.id) => {
                let (_, peers, _) = link.isolate_req.take().expect("checked");
                link.isolation = peers;
            }
            Response::Accepted if link.speed_req.is_some_and(|(rid, _, _)| rid == r.id) => {
                let (_, speed, _) = link.speed_req.take().expect("checked");
                link.speed = Some(speed);
            }
            other => {
                if link.isolate_req.as_ref().is_some_and(|(rid, _, _)| *rid == r.id) {
                    link.isolate_req = None;
                    self.say(&format!("node {id} refused to apply the partition: {other:?}"));
                } else if link.speed_req.is_some_and(|(rid, _, _)| rid == r.id) {
                    // Not retried until the next status says otherwise; a node that
                    // refuses a speed in range is a bug worth a line, not a loop.
                    let (_, speed, _) = link.speed_req.take().expect("checked");
                    link.speed = Some(speed);
                    self.say(&format!("node {id} refused speed {}: {other:?}", show_speed(speed)));
                }
            }
        }
    }

    /// Announces a new leader: the highest-term leader among fresh answers.
    fn check_leader(&mut self) {
        let fresh = Duration::from_millis(self.cfg.status_poll_ms * 2) + NODE_REQUEST_TIMEOUT;
        let now = Instant::now();
        let best = self
            .links
            .iter()
            .filter(|(id, l)| l.pid.is_some() && self.core.serving_pid(**id) == l.pid)
            .filter_map(|(_, l)| l.status.as_ref())
            .filter(|(st, at)| now.duration_since(*at) <= fresh && st.role == RoleKind::Leader)
            .map(|(st, _)| (st.term, st.id))
            .max();
        if let Some((term, id)) = best {
            if self.leader != Some((id, term)) {
                self.leader = Some((id, term));
                let line = format!("leader elected: node {id} (term {term})");
                self.say(&line);
                self.send_ready(&format!("ok {line}"));
            }
        }
    }

    /// Tells a detaching parent how start-up went, once.
    fn send_ready(&mut self, line: &str) {
        if let Some(fd) = self.ready.take() {
            let mut f = File::from(fd);
            let _ = writeln!(f, "{line}");
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.controls.len() >= MAX_CONTROL_CONNECTIONS {
                        let mut c = new_conn(Stream::Unix(stream));
                        let _ =
                            send(&mut c, &SupervisorResponse::Error("too many control connections; try again".into()));
                        continue;
                    }
                    let token = CONTROL_TOKEN_BASE + self.next_control;
                    self.next_control += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.controls.insert(token, new_conn(Stream::Unix(stream)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.say(&format!("accept on the control socket failed: {e}"));
                    return;
                }
            }
        }
    }

    fn control_ready(&mut self, token: usize) {
        let Some(conn) = self.controls.get_mut(&token) else { return };
        let alive = conn.flush().and_then(|_| fill(conn));
        let mut requests = Vec::new();
        let mut bad = None;
        loop {
            match conn.reader.next_frame::<SupervisorRequest>() {
                Ok(Some(r)) => requests.push(r),
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        for req in requests {
            self.control_request(token, req);
        }
        if let Some(e) = bad {
            self.respond(token, SupervisorResponse::Error(format!("bad request: {e}")));
            self.close_control(token);
        } else if !matches!(alive, Ok(true)) {
            self.close_control(token);
        }
    }

    fn close_control(&mut self, token: usize) {
        if let Some(mut c) = self.controls.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn respond(&mut self, token: usize, resp: SupervisorResponse) {
        let failed = match self.controls.get_mut(&token) {
            Some(c) => send(c, &resp).is_err(),
            None => false,
        };
        if failed {
            self.close_control(token);
        }
    }

    fn control_request(&mut self, token: usize, req: SupervisorRequest) {
        let now = Instant::now();
        let command = |c| Some(Event::Command(c));
        // The event line a successful command leaves in supervisor.events.
        let received_us = crate::timeline::now_us();
        let action = match &req {
            SupervisorRequest::Kill(id) => Some(format!("kill n{id}")),
            SupervisorRequest::Start(id) => Some(format!("start n{id}")),
            SupervisorRequest::Restart(id) => Some(format!("restart n{id}")),
            SupervisorRequest::Pause(id) => Some(format!("pause n{id}")),
            SupervisorRequest::Resume(id) => Some(format!("resume n{id}")),
            _ => None,
        };
        let event = match req {
            SupervisorRequest::Status => {
                self.round(now);
                self.status_waiters.push(StatusWaiter { token, since: now, deadline: now + STATUS_REPLY_WAIT });
                self.answer_status_waiters(now);
                None
            }
            SupervisorRequest::Kill(id) => command(Command::Kill(id)),
            SupervisorRequest::Start(id) => command(Command::Start(id)),
            SupervisorRequest::Restart(id) => command(Command::Restart(id)),
            SupervisorRequest::Pause(id) => command(Command::Pause(id)),
            SupervisorRequest::Resume(id) => command(Command::Resume(id)),
            SupervisorRequest::Partition(groups) => {
                let resp = match normalize_groups(&groups, &self.ids()) {
                    Ok(groups) => {
                        self.partitions = groups;
                        let line = format!("partitioned: {}", show_groups(&self.partitions));
                        self.event(&format!("partition {}", show_groups(&self.partitions)));
                        self.apply_partitions(now);
                        self.say(&line);
                        SupervisorResponse::Ok(line)
                    }
                    Err(e) => SupervisorResponse::Error(e),
                };
                self.respond(token, resp);
                None
            }
            SupervisorRequest::Heal => {
                self.partitions.clear();
                self.apply_partitions(now);
                let mut line = "healed: every node can reach every other".to_string();
                if self.levers.clear() {
                    line.push_str("; network levers (delay, loss) cleared");
                    self.apply_levers(now);
                }
                self.event("heal");
                self.say(&line);
                self.respond(token, SupervisorResponse::Ok(line));
                None
            }
            SupervisorRequest::Levers { nodes, delay, loss_ppm } => {
                let resp = match self.levers.apply(&nodes, &self.ids(), delay, loss_ppm) {
                    Ok(line) => {
                        self.apply_levers(now);
                        self.say(&line);
                        SupervisorResponse::Ok(line)
                    }
                    Err(e) => SupervisorResponse::Error(e),
                };
                self.respond(token, resp);
                None
            }
            SupervisorRequest::Speed(milli) => {
                let resp = if (SPEED_MILLI_MIN..=SPEED_MILLI_MAX).contains(&milli) {
                    self.speed_milli = milli;
                    let tick_us = self.cfg.tick_ms * 1_000_000 / u64::from(milli);
                    let line = format!("speed {}x: tick {} on every node", show_speed(milli), show_tick_us(tick_us));
                    self.event(&format!("speed {}x", show_speed(milli)));
                    let ids: Vec<NodeId> = self.links.keys().copied().collect();
                    for id in ids {
                        // A request in flight carries the old speed: re-check on its answer.
                        self.links.get_mut(&id).expect("link").speed_req = None;
                        self.enforce_speed(id, now);
                    }
                    self.next_isolate_try = Some(now + ISOLATE_RETRY);
                    self.say(&line);
                    SupervisorResponse::Ok(line)
                } else {
                    SupervisorResponse::Error(format!(
                        "speed {} is out of range: give a factor in {}..={}",
                        show_speed(milli),
                        show_speed(SPEED_MILLI_MIN),
                        show_speed(SPEED_MILLI_MAX)
                    ))
                };
                self.respond(token, resp);
                None
            }
            SupervisorRequest::Add => {
                match self.members.next_id() {
                    // Over tcp the new node needs an addrs entry (and its certificate) first.
                    Some(id) => match crate::certs::check_transport(&self.cfg, &[id]) {
                        Err(e) => self
                            .respond(token, SupervisorResponse::Error(format!("cannot add node {id}: {}", e.message))),
                        Ok(_) => self.begin_member_change(token, MemberOp::Add(id), now),
                    },
                    None => self.respond(
                        token,
                        SupervisorResponse::Error(format!("no node id left: ids stop at {}", raft_config::MAX_NODE_ID)),
                    ),
                }
                None
            }
            SupervisorRequest::Remove(id) | SupervisorRequest::Transfer(id) if !self.ids().contains(&id) => {
                self.respond(token, SupervisorResponse::Error(no_node(id, &self.ids())));
                None
            }
            SupervisorRequest::Remove(id) => {
                self.begin_member_change(token, MemberOp::Remove(id), now);
                None
            }
            SupervisorRequest::Transfer(id) => {
                self.begin_member_change(token, MemberOp::Transfer(id), now);
                None
            }
            SupervisorRequest::Watch => {
                self.round(now);
                let since = now.checked_sub(WATCH_FRESH).unwrap_or(self.started);
                let st = self.cluster_status(since);
                self.respond(token, SupervisorResponse::Status(st));
                None
            }
            SupervisorRequest::Down => {
                self.event("down");
                self.say("`down` requested");
                self.down_waiters.push(token);
                command(Command::Shutdown)
            }
        };
        if let Some(Event::Command(
            Command::Kill(id) | Command::Start(id) | Command::Restart(id) | Command::Pause(id) | Command::Resume(id),
        )) = event
        {
            if self.members.is_removed(id) {
                let line = format!("node {id} was removed from the cluster; `raft-supervisor add` starts a new node");
                return self.respond(token, SupervisorResponse::Error(line));
            }
            if !self.core.supervises(id) {
                return self.respond(token, SupervisorResponse::Error(no_node(id, &self.ids())));
            }
        }
        if let Some(event) = event {
            let is_down = matches!(event, Event::Command(Command::Shutdown));
            let replies = self.feed(event);
            assert!(replies.len() <= 1, "one reply per command, got {replies:?}");
            if !self.partitions.is_empty() {
                // A resumed (or started) node learns the partition at once, not next round.
                self.next_isolate_try = Some(now);
            }
            if !is_down {
                let resp = match replies.into_iter().next() {
                    Some(Ok(line)) => {
                        if let Some(action) = &action {
                            self.event_at(received_us, action);
                        }
                        self.say(&format!("> {line}"));
                        SupervisorResponse::Ok(line)
                    }
                    Some(Err(line)) => SupervisorResponse::Error(line),
                    None => SupervisorResponse::Error("the supervisor had no answer".into()),
                };
                self.respond(token, resp);
            }
        }
    }

    /// Sends every running node its isolation now; nodes that cannot be reached yet (or
    /// restart later) are retried on a short timer until they confirm.
    fn apply_partitions(&mut self, now: Instant) {
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            // A request in flight carries the old wish: let the confirmation be re-checked.
            self.links.get_mut(&id).expect("link").isolate_req = None;
            self.enforce_isolation(id, now);
        }
        self.next_isolate_try = Some(now + ISOLATE_RETRY);
    }

    /// Sends every running node its levers now (the status rounds retry the others).
    fn apply_levers(&mut self, now: Instant) {
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            self.links.get_mut(&id).expect("link").levers_sent = None;
            self.enforce_levers(id, now);
        }
    }

    fn answer_status_waiters(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.status_waiters.len() {
            let w = &self.status_waiters[i];
            let since = w.since;
            let all_answered = self.links.iter().all(|(id, l)| {
                self.core.serving_pid(*id).is_none()
                    || l.conn.is_none()
                    || l.status.as_ref().is_some_and(|(_, at)| *at >= since)
            });
            if all_answered || now >= w.deadline {
                let w = self.status_waiters.swap_remove(i);
                let st = self.cluster_status(since);
                self.respond(w.token, SupervisorResponse::Status(st));
            } else {
                i += 1;
            }
        }
    }

    fn cluster_status(&self, since: Instant) -> ClusterStatus {
        // Membership as the leader sees it (its configuration is the newest committed or
        // about to be).
        // Without a leader (an election under way), the newest term's view will do.
        let membership = self
            .leader
            .and_then(|(l, _)| self.links.get(&l))
            .and_then(|link| link.status.as_ref())
            .or_else(|| self.links.values().filter_map(|l| l.status.as_ref()).max_by_key(|(st, _)| st.term));
        let membership = membership.map(|(st, _)| &st.membership);
        let nodes = self
            .links
            .keys()
            .copied()
            .map(|id| {
                let view = self.core.process(id);
                let link = &self.links[&id];
                let st = link
                    .status
                    .as_ref()
                    .filter(|(_, at)| *at >= since)
                    .filter(|_| self.core.serving_pid(id).is_some() && link.pid == view.pid)
                    .map(|(st, _)| st);
                NodeRow {
                    id,
                    pid: view.pid,
                    process: view.state.to_string(),
                    role: st.map_or("unknown", |s| role_name(s.role)).to_string(),
                    term: st.map(|s| s.term),
                    leader: st.and_then(|s| s.leader),
                    commit: st.map(|s| s.commit),
                    applied: st.map(|s| s.applied),
                    last_index: st.map(|s| s.last_index),
                    snapshot_index: st.map(|s| s.snapshot_index),
                    levers: st.map(|s| s.levers),
                    member: if self.members.is_removed(id) {
                        Some("removed".to_string())
                    } else {
                        membership.map(|m| {
                            match m.kind(id) {
                                raft_core::MemberKind::Voter => "voter",
                                raft_core::MemberKind::Learner => "learner",
                                // Not in the configuration and not removed by us: being added.
                                raft_core::MemberKind::None => "none",
                            }
                            .to_string()
                        })
                    },
                    live: st.map(|s| NodeLive {
                        role: s.role,
                        election_elapsed_ticks: s.election_elapsed_ticks,
                        election_timeout_ticks: s.election_timeout_ticks,
                        tick_us: s.tick_us,
                        speed_milli: s.speed_milli,
                        progress: s.progress.clone(),
                        connected: s.connected.clone(),
                        isolated: s.isolated.clone(),
                        messages_sent: s.messages_sent.clone(),
                        messages_received: s.messages_received.clone(),
                    }),
                    redis_port: self.cfg.redis_addr(id).map(|a| a.port()),
                }
            })
            .collect();
        ClusterStatus { nodes, partitions: self.partitions.clone(), speed_milli: self.speed_milli }
    }

    /// Shutdown is complete: answer `down`, flush what we can.
    fn finish_down(&mut self) {
        self.say("all nodes stopped; supervisor exiting");
        let tokens = std::mem::take(&mut self.down_waiters);
        for t in tokens {
            self.respond(t, SupervisorResponse::Ok(format!("cluster in {} stopped", self.cfg.dir.display())));
            if let Some(c) = self.controls.get_mut(&t) {
                // Small replies fit the socket buffer; a client that does not read loses it.
                let _ = c.flush();
            }
        }
        self.send_ready("err the cluster was stopped before a leader was elected");
    }
}

/// `no node 9: the nodes are 1, 2, 3, 4, 5, 6`.
fn no_node(id: NodeId, ids: &[NodeId]) -> String {
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("no node {id}: the nodes are {}", list.join(", "))
}

fn describe_op(op: MemberOp) -> String {
    match op {
        MemberOp::Add(id) => format!("add node {id}"),
        MemberOp::Remove(id) => format!("remove node {id}"),
        MemberOp::Transfer(id) => format!("transfer leadership to node {id}"),
    }
}

fn role_name(r: RoleKind) -> &'static str {
    match r {
        RoleKind::Leader => "leader",
        RoleKind::Follower => "follower",
        // DESIGN.md lists four roles; a PreVote probe is a candidacy not yet begun.
        RoleKind::Candidate | RoleKind::PreCandidate => "candidate",
    }
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_data_is_one_line_with_term_index_and_wipe() {
        let d = |term, last_index, snapshot_index| NodeData { term, last_index, snapshot_index };
        assert_eq!(describe_existing_data("/d", &BTreeMap::new()), None, "nothing there");
        let fresh = BTreeMap::from([(1, d(0, 0, 0)), (2, d(0, 0, 0))]);
        assert_eq!(describe_existing_data("/d", &fresh), None, "empty logs are nothing to resume");
        let old = BTreeMap::from([(1, d(14, 130_000, 129_500)), (2, d(13, 129_990, 0))]);
        let line = describe_existing_data("/d", &old).unwrap();
        assert_eq!(
            line,
            "resuming existing data in /d: term 14, log up to index 130000 (snapshot at 129500) on 2 node(s); \
             `raft-supervisor wipe` (with the cluster down) starts fresh"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_fresh_directory_has_no_existing_data() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().to_path_buf(), nodes: 3, ..Default::default() };
        assert!(existing_data(&cfg).is_empty());
        assert_eq!(existing_data_line(&cfg), None);
        assert!(!cfg.node_dir(1).exists(), "looking creates nothing");
    }
}
