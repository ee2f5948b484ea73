//! # raft-e2e: the real binaries, as processes, in a temp dir
//!
//! The tests in `tests/tests/*.rs` start a real `raft-supervisor` (which forks five real
//! `raft-node`s) in a fresh directory under `/tmp`, drive it with the real `raft-cli` and
//! with the supervisor's control socket, and look at what the nodes say on their own
//! sockets and in their `node.log`s. Nothing is mocked. In-process clients ([`Client`],
//! [`Load`]) are raft-cli's own library, so tests drive what users run.
//!
//! The supervisor's and raft-cli's end-to-end tests use this harness too (as a
//! dev-dependency), so there is one way to start, wait on and clean up a real cluster.
//!
//! ## How a test uses it
//!
//! ```no_run
//! use raft_e2e::*;
//! let c = Cluster::start(Opts::default());          // up, and a leader elected
//! assert_eq!(c.cli(&["set", "k", "v"]).code, Some(0));
//! let (leader, _term) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
//! c.kill(leader);                                    // raft-supervisor kill
//! // ... on drop: `down`, then SIGKILL of every process of this cluster, by pid.
//! ```
//!
//! ## Rules the harness keeps
//!
//! * **Binaries of this build.** They are found next to the test executable
//!   (`target/<profile>/`), and `cargo build --bins` of the three binary crates runs once
//!   per test process with the same profile first, so a test never runs stale binaries
//!   (set `E2E_NO_BUILD=1` to skip that and use what is there).
//! * **Short paths.** Unix socket paths must stay under 107 bytes, so every cluster lives
//!   in `/tmp/rcXXXXXX`.
//! * **No sleeping as synchronisation.** Every wait is [`wait_for`]: poll a condition until
//!   a deadline, and on timeout fail with what was last seen plus the cluster's status and
//!   log tails. Every child process runs under a time limit ([`run_limited`]).
//! * **Nothing outlives a test.** The supervisor is a child of the test with
//!   `PR_SET_PDEATHSIG` (and the nodes die with it). On drop, also when the test panics:
//!   `down` over the control socket, then SIGKILL of the supervisor and of every node pid
//!   the harness saw or finds in `/proc` with this cluster's unique directory on its
//!   command line.
//! * **One cluster at a time.** Two cores run five nodes at a 10 ms tick comfortably, but
//!   not two clusters plus a load generator without spurious elections, so clusters are
//!   serialised by a process-wide lock (test binaries already run one after another).

pub mod deploy;
pub mod netcluster;
pub mod netns;
pub mod proc;
pub use proc::{damage_middle_record, wal_record_offsets, wal_segments, NodeProc};

use raft_cli::client::ClientError;
use raft_cli::conn::NodeConn;
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::supervisor::{ClusterStatus, SupervisorRequest, SupervisorResponse};
use raft_wire::{ReadOp, Reply, Request, Response, WriteOp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The clients are raft-cli's own library: what the tests drive is what users run.
pub use raft_cli::client::{random_u64, Client};
pub use raft_core::{Index, NodeId, RoleKind, Term};
pub use raft_wire::NodeStatus;

/// How long a cluster may take from `up` to an elected leader (generous: two cores are
/// shared with the build and other tests).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an election may take after a fault (many election timeouts of at most 300 ms).
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the nodes may take to agree on one commit and apply it after the faults stop.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on one `raft-cli` or `raft-supervisor` process.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Time given to a node to answer a status request (a paused node never does).
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(25);
/// Lines of each log shown when a test fails.
const LOG_TAIL_LINES: usize = 30;

// ---------------------------------------------------------------------------------------
// Binaries

/// Paths of the three binaries of this build.
#[derive(Debug, Clone)]
pub struct Bins {
    pub supervisor: PathBuf,
    pub node: PathBuf,
    pub cli: PathBuf,
}

/// The binaries, built once per test process with the profile of the running test.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Result<Bins, String>> = OnceLock::new();
    match BINS.get_or_init(locate_and_build) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn locate_and_build() -> Result<Bins, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?
        .to_path_buf();
    let bins = Bins {
        supervisor: profile_dir.join("raft-supervisor"),
        node: profile_dir.join("raft-node"),
        cli: profile_dir.join("raft-cli"),
    };
    if std::env::var_os("E2E_NO_BUILD").is_none() {
        let profile = profile_dir.file_name().and_then(|p| p.to_str()).unwrap_or("debug").to_string();
        let target_dir = profile_dir.parent().ok_or("no target dir")?;
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace dir")?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "--bins", "-p", "raft-node", "-p", "raft-supervisor", "-p", "raft-cli"])
            .arg("--target-dir")
            .arg(target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = run_limited(&mut cmd, Duration::from_secs(1800));
        if out.code != Some(0) {
            return Err(format!("building the binaries failed:\n{}", out.describe()));
        }
    }
    for b in [&bins.supervisor, &bins.node, &bins.cli] {
        if !b.is_file() {
            return Err(format!("{} not found; build with `cargo build --bins`", b.display()));
        }
    }
    Ok(bins)
}

// ---------------------------------------------------------------------------------------
// Processes with a time limit

/// What a finished (or timed-out) process left behind.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code; `None` if it was killed by a signal or timed out.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// The command line, for messages.
    pub command: String,
}

impl Out {
    /// Everything about the run, for an assertion message.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {} after {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.command,
            if self.timed_out { "TIMED OUT".to_string() } else { format!("exit {:?}", self.code) },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` to completion (stdin closed, output captured), killing it after `limit`.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Out {
    let command = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    let readers = [drain(child.stdout.take().expect("piped")), drain(child.stderr.take().expect("piped"))];
    let deadline = start + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    // A grandchild that kept the pipe open must not hang the test: bounded collection.
    let [stdout, stderr] = readers.map(|rx| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default());
    Out { code: status.and_then(|s| s.code()), stdout, stderr, elapsed: start.elapsed(), timed_out, command }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what` and the last
/// thing `describe` says.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Checks `f` every [`POLL`] until it returns `Some` or `timeout` has passed (then
/// `None`). The one polling loop of the harness: every wait is a condition with a deadline.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// Config

/// The settings a test chooses; written as the cluster's TOML file.
#[derive(Debug, Clone)]
pub struct Opts {
    pub nodes: u64,
    pub tick_ms: u64,
    pub fsync: bool,
    pub snapshot_entries: u64,
    pub snapshot_bytes: u64,
    /// State-size quota (0: none).
    pub quota_bytes: u64,
    pub restart_intensity: u32,
    pub restart_period_ms: u64,
    pub restart_backoff_min_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub shutdown_grace_ms: u64,
    pub status_poll_ms: u64,
    /// Extra uids that may connect as clients.
    pub allowed_uids: Vec<u32>,
    /// RESP front end base port (node N on `redis_port + N`). 0 (the default here, not
    /// the cluster's 6379): tests run in parallel must not share ports; a test that
    /// speaks RESP takes a free base from [`free_redis_base`].
    pub redis_port: u32,
    /// More config lines, appended as written (issue 18's `transport`, `addrs`, ...).
    /// When set, the harness reads the layout from the written file (see `layout`).
    pub extra_toml: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            nodes: 5,
            tick_ms: 10,
            fsync: true,
            snapshot_entries: 10_000,
            snapshot_bytes: 16 << 20,
            quota_bytes: raft_config::DEFAULT_QUOTA_BYTES,
            restart_intensity: 5,
            restart_period_ms: 30_000,
            restart_backoff_min_ms: 100,
            restart_backoff_max_ms: 1_000,
            shutdown_grace_ms: 1_000,
            status_poll_ms: 100,
            allowed_uids: Vec::new(),
            redis_port: 0,
            extra_toml: String::new(),
        }
    }
}

impl Opts {
    pub fn to_toml(&self, dir: &Path) -> String {
        format!(
            "# written by the raft-e2e harness\n\
             dir = {dir:?}\n\
             nodes = {}\n\
             tick_ms = {}\n\
             fsync = {}\n\
             snapshot_entries = {}\n\
             snapshot_bytes = {}\n\
             quota_bytes = {}\n\
             restart_intensity = {}\n\
             restart_period_ms = {}\n\
             restart_backoff_min_ms = {}\n\
             restart_backoff_max_ms = {}\n\
             shutdown_grace_ms = {}\n\
             status_poll_ms = {}\n\
             allowed_uids = {:?}\n\
             redis_port = {}\n{}",
            self.nodes,
            self.tick_ms,
            self.fsync,
            self.snapshot_entries,
            self.snapshot_bytes,
            self.quota_bytes,
            self.restart_intensity,
            self.restart_period_ms,
            self.restart_backoff_min_ms,
            self.restart_backoff_max_ms,
            self.shutdown_grace_ms,
            self.status_poll_ms,
            self.allowed_uids,
            self.redis_port,
            self.extra_toml,
            dir = dir.display().to_string(),
        )
    }
}

/// Client timeout for a command that should succeed: long enough for an election (a
/// test's kill or partition may have started one) and a retry after it.
pub const CLI_OK_TIMEOUT: &str = "10s";

/// A base port for the RESP front end such that `base + 1 ..= base + nodes` are free
/// on 127.0.0.1 now (each port is checked by binding it). Drawn below Linux's ephemeral
/// range (32768 and up), so outgoing connections cannot take the ports before the nodes
/// bind them.
pub fn free_redis_base(nodes: u64) -> u32 {
    let mut seed = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for _ in 0..100 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let base = 10_000 + ((seed >> 33) % 20_000) as u16;
        let all_free = (1..=nodes).all(|n| std::net::TcpListener::bind(("127.0.0.1", base + n as u16)).is_ok());
        if all_free {
            return base as u32;
        }
    }
    panic!("no run of {nodes} free ports found on 127.0.0.1 in 100 tries");
}

/// A fresh directory with a short path (`/tmp/rcXXXXXX`), removed on drop.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rc").tempdir_in("/tmp").expect("create a temp dir in /tmp")
}

// ---------------------------------------------------------------------------------------
// The cluster

/// One cluster at a time in a test process (the namespace clusters take it too).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A test that panicked while holding it poisoned it; its cluster is gone all the same.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running cluster: supervisor plus nodes, in its own temp dir. Stopped and killed on drop.
pub struct Cluster {
    pub opts: Opts,
    /// The cluster directory (`dir` in the config).
    pub dir: PathBuf,
    /// The config file every command gets with `--config`.
    pub config: PathBuf,
    tmp: Option<tempfile::TempDir>,
    supervisor: Option<Child>,
    /// Every node pid seen in a status answer.
    pids: Mutex<BTreeSet<u32>>,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Writes the config, starts `raft-supervisor up` and waits for a leader.
    pub fn start(opts: Opts) -> Cluster {
        let c = Cluster::prepare(opts);
        c.up()
    }

    /// Writes the config into a fresh dir without starting anything.
    pub fn prepare(opts: Opts) -> Cluster {
        let bins = bins();
        let guard = serial();
        let tmp = short_tempdir();
        let dir = tmp.path().to_path_buf();
        let config = dir.join("e2e.toml");
        std::fs::write(&config, opts.to_toml(&dir)).expect("write the config");
        assert!(bins.supervisor.is_file());
        Cluster {
            opts,
            dir,
            config,
            tmp: Some(tmp),
            supervisor: None,
            pids: Mutex::new(BTreeSet::new()),
            _serial: guard,
        }
    }

    /// Starts `raft-supervisor up` as a child (output to `<dir>/supervisor.out`) and
    /// waits until every node runs and a leader is elected.
    pub fn up(mut self) -> Cluster {
        let out = std::fs::File::create(self.dir.join("supervisor.out")).expect("create supervisor.out");
        let err = out.try_clone().expect("dup");
        let mut cmd = Command::new(&bins().supervisor);
        cmd.arg("--config").arg(&self.config).arg("up").stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.env_remove("RAFT_CONFIG");
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the
        // supervisor if the test thread that started it dies (a crashed test leaves nothing).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.supervisor = Some(cmd.spawn().expect("spawn raft-supervisor up"));
        // The supervisor's node set, not `ids()`: a cluster that grew with `add` restarts
        // with its added nodes (kept in <dir>/members), and one of them may win the election.
        let ids = self.wait("every node running", START_TIMEOUT, || {
            self.check_supervisor_alive();
            let st = self.sup_status().ok()?;
            st.nodes.iter().all(|n| n.process == "running").then(|| st.nodes.iter().map(|n| n.id).collect::<Vec<_>>())
        });
        self.wait_leader(&ids, START_TIMEOUT);
        self
    }

    /// Node ids `1..=nodes`.
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.opts.nodes).collect()
    }

    /// The file layout comes from raft-config, the one place that defines it.
    fn layout(&self) -> raft_config::ClusterConfig {
        if !self.opts.extra_toml.is_empty() {
            return raft_config::load_file(&self.config).expect("the harness's config loads");
        }
        raft_config::ClusterConfig { dir: self.dir.clone(), nodes: self.opts.nodes, ..Default::default() }
    }

    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.layout().node_dir(id)
    }

    pub fn node_socket(&self, id: NodeId) -> PathBuf {
        self.layout().node_socket(id)
    }

    pub fn node_log(&self, id: NodeId) -> PathBuf {
        self.layout().node_log(id)
    }

    pub fn wal_dir(&self, id: NodeId) -> PathBuf {
        self.layout().node_wal_dir(id)
    }

    pub fn supervisor_socket(&self) -> PathBuf {
        self.layout().supervisor_socket()
    }

    /// raft-cli's view of this cluster: node sockets and the supervisor's.
    pub fn client_cluster(&self) -> raft_cli::client::Cluster {
        raft_cli::client::Cluster::from_config(&self.layout())
    }

    /// raft-cli's client (leader discovery, retries, exactly-once writes) with a fresh
    /// session over every node, giving up after `timeout`.
    pub fn client(&self, timeout: Duration) -> Client {
        Client::new(self.client_cluster(), timeout).without_leader_file()
    }

    /// The same client restricted to `ids`: it never talks to the other nodes, not even
    /// when one of `ids` names another as leader.
    pub fn client_only(&self, ids: &[NodeId], timeout: Duration) -> Client {
        let mut cluster = self.client_cluster();
        cluster.nodes.retain(|(id, _)| ids.contains(id));
        Client::new(cluster, timeout).without_leader_file()
    }

    /// The supervisor's pid (it is this test's child).
    pub fn supervisor_pid(&self) -> u32 {
        self.supervisor.as_ref().expect("the supervisor was started").id()
    }

    /// Pids of the running nodes, as the supervisor reports them.
    pub fn node_pids(&self) -> Vec<u32> {
        self.sup_status().expect("supervisor status").nodes.iter().filter_map(|n| n.pid).collect()
    }

    /// What the supervisor started by [`Cluster::up`] printed (stdout and stderr).
    pub fn supervisor_output(&self) -> String {
        std::fs::read_to_string(self.dir.join("supervisor.out")).unwrap_or_default()
    }

    /// Waits up to `timeout` for the supervisor started by [`Cluster::up`] to exit (after
    /// `down` or a signal); its exit status, or `None` if it is still running.
    pub fn wait_supervisor_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.supervisor.as_mut().expect("the supervisor was started");
        poll_until(timeout, || child.try_wait().ok().flatten())
    }

    /// SIGKILL to the supervisor (it gets no chance to stop its nodes), then reaps it.
    pub fn kill_supervisor(&mut self) {
        let child = self.supervisor.as_mut().expect("the supervisor was started");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Panics (with the supervisor's output) if the supervisor exited.
    fn check_supervisor_alive(&self) {
        // try_wait needs &mut; a read of /proc is enough to tell.
        if let Some(child) = &self.supervisor {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                panic!("raft-supervisor exited early:\n{}", tail(&self.dir.join("supervisor.out"), 60));
            }
        }
    }

    // ---- commands as processes

    /// `raft-cli --config <cfg> ARGS`, limited to [`COMMAND_LIMIT`].
    pub fn cli(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&bins().cli);
        cmd.arg("--config").arg(&self.config).args(args).env_remove("RAFT_CONFIG");
        run_limited(&mut cmd, COMMAND_LIMIT)
    }

    /// `raft-cli --timeout` [`CLI_OK_TIMEOUT`] `ARGS`, which must succeed (exit 0; on
    /// failure the panic shows the cluster); returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let mut full = vec!["--timeout", CLI_OK_TIMEOUT];
        full.extend_from_slice(args);
        let out = self.cli(&full);
        assert_eq!(out.code, Some(0), "{}\n{}", out.describe(), self.dump());
        out.stdout
    }

    /// `raft-supervisor --config <cfg> ARGS`, limited to [`COMMAND_LIMIT`].
    pub fn sup(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&bins().supervisor);
        cmd.arg("--config").arg(&self.config).args(args).env_remove("RAFT_CONFIG");
        run_limited(&mut cmd, COMMAND_LIMIT)
    }

    /// Runs `raft-supervisor ARGS` and panics unless it exits 0.
    pub fn sup_ok(&self, args: &[&str]) -> Out {
        let out = self.sup(args);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        out
    }

    // ---- the supervisor's control socket

    /// One request on `supervisor.sock`.
    pub fn sup_request(&self, req: &SupervisorRequest) -> io::Result<SupervisorResponse> {
        let mut s = UnixStream::connect(self.supervisor_socket())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write_frame(&mut s, req)?;
        read_frame(&mut s)
    }

    /// The supervisor's status; remembers every node pid in it.
    pub fn sup_status(&self) -> Result<ClusterStatus, String> {
        match self.sup_request(&SupervisorRequest::Status) {
            Ok(SupervisorResponse::Status(st)) => {
                let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
                pids.extend(st.nodes.iter().filter_map(|n| n.pid));
                Ok(st)
            }
            Ok(other) => Err(format!("unexpected answer to status: {other:?}")),
            Err(e) => Err(format!("supervisor status: {e}")),
        }
    }

    /// Sends a control request and panics unless the supervisor says Ok.
    pub fn control(&self, req: SupervisorRequest) -> String {
        let _ = self.sup_status(); // remember the pids before they change
        match self.sup_request(&req) {
            Ok(SupervisorResponse::Ok(line)) => line,
            other => panic!("supervisor refused {req:?}: {other:?}\n{}", self.dump()),
        }
    }

    /// `kill N` (SIGKILL), then waits until the supervisor shows it stopped and reaped (it
    /// shows "stopped" as soon as the signal is sent; the pid stays in the row until the
    /// reap, and until then the dying process may still accept on its socket).
    pub fn kill(&self, id: NodeId) {
        self.control(SupervisorRequest::Kill(id));
        // "stopped" shows at once; the pid goes only once the process is reaped, and until
        // then (a SIGKILL waits out an fsync in progress) its socket still accepts.
        self.wait(&format!("node {id} stopped and reaped"), START_TIMEOUT, || {
            let st = self.sup_status().ok()?;
            st.nodes.iter().any(|n| n.id == id && n.process == "stopped" && n.pid.is_none()).then_some(())
        });
    }

    /// `start N`, then waits until the supervisor shows it running.
    pub fn start_node(&self, id: NodeId) {
        self.control(SupervisorRequest::Start(id));
        self.wait(&format!("node {id} running"), START_TIMEOUT, || {
            let st = self.sup_status().ok()?;
            st.nodes.iter().any(|n| n.id == id && n.process == "running" && n.pid.is_some()).then_some(())
        });
    }

    pub fn pause(&self, id: NodeId) {
        self.control(SupervisorRequest::Pause(id));
    }

    pub fn resume(&self, id: NodeId) {
        self.control(SupervisorRequest::Resume(id));
    }

    pub fn partition(&self, groups: &[&[NodeId]]) {
        self.control(SupervisorRequest::Partition(groups.iter().map(|g| g.to_vec()).collect()));
    }

    pub fn heal(&self) {
        self.control(SupervisorRequest::Heal);
    }

    // ---- the nodes' own sockets

    /// One node's status on a fresh connection, or `None` if it does not answer in time.
    pub fn node_status(&self, id: NodeId) -> Option<NodeStatus> {
        let s = self.client_cluster().node_status(id, STATUS_TIMEOUT).ok()?;
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).insert(s.pid);
        Some(s)
    }

    /// Status of each of `ids` (None: not answering).
    pub fn statuses(&self, ids: &[NodeId]) -> Vec<(NodeId, Option<NodeStatus>)> {
        ids.iter().map(|&id| (id, self.node_status(id))).collect()
    }

    /// A leader among `among` that a majority of the cluster follows in its term.
    pub fn stable_leader(&self, among: &[NodeId]) -> Option<(NodeId, Term)> {
        let quorum = (self.opts.nodes / 2 + 1) as usize;
        let mut ids = self.ids();
        ids.extend(among.iter().filter(|id| !ids.contains(id)).collect::<Vec<_>>());
        let st: Vec<NodeStatus> = self.statuses(&ids).into_iter().filter_map(|(_, s)| s).collect();
        let leader =
            st.iter().filter(|s| s.role == RoleKind::Leader && among.contains(&s.id)).max_by_key(|s| s.term)?;
        let following = st.iter().filter(|s| s.term == leader.term && s.leader == Some(leader.id)).count();
        (following >= quorum).then_some((leader.id, leader.term))
    }

    /// Waits for [`Cluster::stable_leader`] among `among`.
    pub fn wait_leader(&self, among: &[NodeId], timeout: Duration) -> (NodeId, Term) {
        self.wait(&format!("a leader among {among:?} followed by a majority"), timeout, || self.stable_leader(among))
    }

    /// Waits until all of `ids` answer, one of them leads the rest in one term, the
    /// leader's whole log is committed and every one of them applied it. Returns that index.
    pub fn wait_converged(&self, ids: &[NodeId], timeout: Duration) -> Index {
        self.wait(&format!("nodes {ids:?} to converge on one applied index"), timeout, || {
            let st: Vec<NodeStatus> = self.statuses(ids).into_iter().map(|(_, s)| s).collect::<Option<_>>()?;
            let leader = st.iter().find(|s| s.role == RoleKind::Leader)?;
            let all_agree = st.iter().all(|s| {
                s.term == leader.term
                    && s.leader == Some(leader.id)
                    && s.commit == leader.last_index
                    && s.applied == leader.last_index
                    && s.last_index == leader.last_index
            });
            all_agree.then_some(leader.applied)
        })
    }

    /// `wait_for` that adds the cluster's status and log tails to the failure message.
    pub fn wait<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        poll_until(timeout, f)
            .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}\n{}", self.dump()))
    }

    // ---- logs

    /// The node's log as text ("" if it has none yet).
    pub fn read_log(&self, id: NodeId) -> String {
        std::fs::read(self.node_log(id)).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// From every node.log: term -> the nodes that logged "became leader term=T".
    pub fn leaders_by_term(&self) -> BTreeMap<Term, BTreeSet<NodeId>> {
        let mut out: BTreeMap<Term, BTreeSet<NodeId>> = BTreeMap::new();
        for id in self.ids() {
            for term in parse_became_leader(&self.read_log(id)) {
                out.entry(term).or_default().insert(id);
            }
        }
        out
    }

    /// Election safety (§5.2), from the logs: at most one leader per term.
    pub fn assert_one_leader_per_term(&self) {
        let by_term = self.leaders_by_term();
        assert!(!by_term.is_empty(), "no node logged `became leader`\n{}", self.dump());
        for (term, nodes) in &by_term {
            assert!(nodes.len() == 1, "two leaders in term {term}: nodes {nodes:?}\n{}", self.dump());
        }
    }

    // ---- data

    /// Every key and value a node holds, by stale reads from that node alone.
    pub fn node_data(&self, id: NodeId) -> BTreeMap<String, Vec<u8>> {
        let mut c = NodeConn::connect(id, &self.node_socket(id), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to node {id}: {e}"));
        let in_secs = |s| Instant::now() + Duration::from_secs(s);
        let keys = match c.call(
            Request::Read {
                op: ReadOp::Keys { prefix: String::new(), limit: raft_wire::MAX_KEYS_PER_LISTING },
                stale: true,
            },
            in_secs(10),
        ) {
            Ok(Response::Ok(Reply::Keys(k))) => k,
            other => panic!("keys from node {id}: {other:?}"),
        };
        assert!((keys.len() as u64) < raft_wire::MAX_KEYS_PER_LISTING as u64, "too many keys to compare");
        let mut data = BTreeMap::new();
        for key in keys {
            let v = match c.call(Request::Read { op: ReadOp::Get { key: key.clone() }, stale: true }, in_secs(5)) {
                Ok(Response::Ok(Reply::Value(Some(v)))) => v,
                other => panic!("get {key:?} from node {id}: {other:?}"),
            };
            data.insert(key, v);
        }
        data
    }

    /// A status table and the tail of every log, for failure messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        match self.sup_status() {
            Ok(st) => {
                let _ = writeln!(s, "--- supervisor status: partitions {:?}", st.partitions);
                for n in st.nodes {
                    let _ = writeln!(s, "  {n:?}");
                }
            }
            Err(e) => {
                let _ = writeln!(s, "--- supervisor status: {e}");
            }
        }
        let _ = writeln!(s, "--- node status (direct):");
        for id in self.ids() {
            match self.node_status(id) {
                Some(n) => {
                    let _ = writeln!(
                        s,
                        "  n{id}: {:?} term {} leader {:?} commit {} applied {} last {} snap {} connected {:?} isolated {:?}",
                        n.role,
                        n.term,
                        n.leader,
                        n.commit,
                        n.applied,
                        n.last_index,
                        n.snapshot_index,
                        n.connected,
                        n.isolated
                    );
                }
                None => {
                    let _ = writeln!(s, "  n{id}: not answering");
                }
            }
        }
        let _ = writeln!(s, "--- supervisor.out:\n{}", tail(&self.dir.join("supervisor.out"), LOG_TAIL_LINES));
        for id in self.ids() {
            let _ = writeln!(s, "--- node-{id}/node.log:\n{}", tail(&self.node_log(id), LOG_TAIL_LINES));
        }
        s
    }

    /// Pids of live processes whose command line names this cluster's directory.
    fn our_live_pids(&self) -> Vec<u32> {
        let needle = self.dir.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        let mut out = Vec::new();
        for e in entries.flatten().take(1 << 20) {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("=== cluster in {} at the failure:\n{}", self.dir.display(), self.dump());
        } else {
            let _ = self.sup_status(); // learn the latest pids
        }
        // 1. Ask the supervisor to stop everything.
        if let Some(mut child) = self.supervisor.take() {
            let _ = self.sup_request(&SupervisorRequest::Down);
            let grace = Duration::from_millis(self.opts.shutdown_grace_ms) + Duration::from_secs(3);
            let _ = poll_until(grace, || child.try_wait().ok().flatten());
            // 2. SIGKILL whatever is left, by pid: the supervisor (our child) ...
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // ... and every node of this cluster: the pids seen, if they still are ours, and
        // whatever /proc shows running with this cluster's directory on its command line.
        let needle = self.dir.to_string_lossy().into_owned();
        let seen: Vec<u32> = self.pids.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        for pid in seen.into_iter().chain(self.our_live_pids()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) && pid != std::process::id() {
                // SAFETY: plain kill(2) of a pid whose command line names our unique dir.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        if panicking || std::env::var_os("E2E_KEEP").is_some() {
            if let Some(tmp) = self.tmp.take() {
                eprintln!("=== kept the cluster directory {}", tmp.keep().display());
            }
        }
    }
}

/// The terms in which a log says this node became leader (`... became leader term=T`).
pub fn parse_became_leader(log: &str) -> Vec<Term> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("became leader")?..];
            let t = &rest[rest.find("term=")? + 5..];
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut s = lines[lines.len().saturating_sub(n)..].join("\n");
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------------------
// Raw bytes on a node's socket

/// Sends raw bytes on a fresh connection to `path` and reports whether the node closed
/// the connection within `timeout` (reads EOF or a reset).
pub fn closes_after(path: &Path, bytes: &[u8], timeout: Duration) -> Result<bool, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    // The node may close before reading everything; a broken pipe then is fine.
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {} // an error frame, perhaps; keep reading until EOF
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(true), // reset by peer
        }
    }
}

// ---------------------------------------------------------------------------------------
// Background load with a record of what was acknowledged

/// What a [`Load`] did: each write's key and value by outcome.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub acked: Vec<(String, Vec<u8>)>,
    pub unknown: Vec<(String, Vec<u8>)>,
    pub failed: Vec<(String, Vec<u8>)>,
}

impl LoadReport {
    /// Checks `data` (a node's whole map) against the writes: every acknowledged write is
    /// there, every surely-failed write is not, an unknown one is there or not. Each key
    /// was written once, with a unique value.
    pub fn check(&self, data: &BTreeMap<String, Vec<u8>>, who: &str) {
        for (k, v) in &self.acked {
            assert_eq!(data.get(k), Some(v), "{who}: acknowledged write {k:?} is lost");
        }
        for (k, v) in &self.failed {
            assert_eq!(data.get(k), None, "{who}: write {k:?} was reported as surely not applied, yet it is there");
            let _ = v;
        }
        for (k, v) in &self.unknown {
            if let Some(got) = data.get(k) {
                assert_eq!(got, v, "{who}: unknown write {k:?} holds a value nobody wrote");
            }
        }
    }
}

/// Client threads writing unique keys (`<prefix>-<thread>-<n>`) one at a time, each
/// through its own raft-cli [`Client`], until stopped, recording every outcome.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handles: Vec<std::thread::JoinHandle<LoadReport>>,
}

/// Most writes one load thread makes, whatever happens.
const LOAD_MAX_OPS_PER_THREAD: u64 = 200_000;
/// Longest a load thread runs, whatever happens.
const LOAD_MAX_TIME: Duration = Duration::from_secs(300);

impl Load {
    /// `threads` writers over `cluster` (see [`Cluster::client_cluster`]); a write not
    /// acknowledged within `op_timeout` is recorded as failed or unknown, as the client says.
    pub fn start(cluster: raft_cli::client::Cluster, prefix: &str, threads: usize, op_timeout: Duration) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|t| {
                let (stop, acked, cluster) = (stop.clone(), acked.clone(), cluster.clone());
                let prefix = format!("{prefix}-{t}");
                std::thread::spawn(move || {
                    let mut client = Client::new(cluster, op_timeout).without_leader_file();
                    let mut report = LoadReport::default();
                    let started = Instant::now();
                    for n in 0..LOAD_MAX_OPS_PER_THREAD {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > LOAD_MAX_TIME {
                            break;
                        }
                        let key = format!("{prefix}-{n:06}");
                        let value = format!("{key}={}", random_u64()).into_bytes();
                        match client.write(WriteOp::Set { key: key.clone(), value: value.clone() }) {
                            Ok(_) => {
                                report.acked.push((key, value));
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(ClientError::Unknown(_)) => report.unknown.push((key, value)),
                            Err(ClientError::Unavailable(_) | ClientError::Invalid(_) | ClientError::Refused(_)) => {
                                report.failed.push((key, value))
                            }
                        }
                    }
                    report
                })
            })
            .collect();
        Load { stop, acked, handles }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the threads (each finishes its current write) and merges their reports.
    pub fn stop(mut self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = LoadReport::default();
        for h in std::mem::take(&mut self.handles) {
            let r = h.join().expect("load thread panicked");
            all.acked.extend(r.acked);
            all.unknown.extend(r.unknown);
            all.failed.extend(r.failed);
        }
        all
    }
}

impl Drop for Load {
    /// A test that panics mid-load stops its threads too.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Whether the other end closed `s` (EOF or reset) within `timeout`; bytes it sends
/// meanwhile are read and dropped. For tests of refusals: a node closes the connection.
pub fn closed_within(s: &mut UnixStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).expect("set a read timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}
