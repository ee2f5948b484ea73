//! # raft-config: the one `cluster.toml` every binary reads
//!
//! A cluster is described by one flat TOML file. Every key is optional and has a default
//! (see `cluster.example.toml` at the top of the repository, which a test keeps in step
//! with [`ClusterConfig::default`]); an unknown key is an error that names the key, and so
//! is every invalid value.
//!
//! ## Where the file comes from
//!
//! [`ClusterConfig::load`] looks, in order, at `--config PATH`, then `$RAFT_CONFIG`, then
//! `./cluster.toml`, and falls back to the embedded default, whose directory is
//! `${TMPDIR:-/tmp}/raft-cluster-<uid>`. So `raft-supervisor up` and `raft-cli get k` find
//! each other from any directory with no file at all.
//!
//! A relative `dir` in a file is taken relative to that file's directory; `load` always
//! returns an absolute, lexically normalised `dir` (no `.` or `..`, symlinks untouched).
//! Every path of the cluster's layout comes from one method here ([`ClusterConfig::node_dir`],
//! [`ClusterConfig::cluster_key_path`], ...).
//!
//! The supervisor writes the effective config ([`ClusterConfig::to_toml`]) to
//! `<dir>/cluster.toml` and starts every node with that path, so all processes of one
//! cluster agree on every value, including [`ClusterConfig::cluster_id`].
//!
//! ## Invariants after validation
//!
//! `1 <= nodes <= MAX_NODES`; `MAX_CATCH_UP_TICKS < heartbeat_ticks < election_ticks_min <
//! election_ticks_max`;
//! every Unix socket path fits in [`MAX_SOCKET_PATH_BYTES`]; `dir` is UTF-8 and non-empty;
//! `restart_backoff_min_ms <= restart_backoff_max_ms`.

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};

pub mod transport;
pub use transport::{Endpoint, TlsPaths, Transport};

/// Most nodes in one cluster: five is the design point; nine keeps a one-machine cluster
/// (and the O(n^2) peer connections) small while still allowing a 4-failure quorum.
pub const MAX_NODES: u64 = 9;
/// The largest id a node may have: the bootstrap nodes are `1..=nodes`, nodes added at
/// run time (`raft-supervisor add`) take the next free ids. 64 keeps socket paths short
/// and every table of nodes small.
pub const MAX_NODE_ID: u64 = 64;
/// Longest Unix socket path in bytes: `sun_path` is 108 bytes on Linux, one for the NUL.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;
/// Longest tick: beyond a minute a cluster is not slowed down for watching, it is stuck.
pub const MAX_TICK_MS: u64 = 60_000;
/// Longest restart period, backoff or grace period: an hour is already far beyond any use.
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// Largest restart intensity: more crashes than this in one period is a crash loop.
pub const MAX_RESTART_INTENSITY: u32 = 1_000;
/// Largest config file read: a flat file of a few dozen keys is a few KiB.
pub const MAX_CONFIG_FILE_BYTES: u64 = 64 * 1024;
/// Ticks a node replays at most after its event loop was late (a slow fsync, SIGSTOP).
/// Enough to absorb a slow fsync without losing time, and below every timeout the config
/// allows ([`ClusterConfig::validate`] refuses `heartbeat_ticks` or `election_ticks_min`
/// at or below it): a node resumed after a stall first hears what its peers sent
/// meanwhile instead of firing heartbeat or election rounds in one burst. raft-node
/// re-exports it; it lives here so the config can be checked against it.
pub const MAX_CATCH_UP_TICKS: u32 = 4;
/// Default state-size quota, 2 GiB (etcd's default `quota-backend-bytes` too): far more
/// than a learner's cluster holds, while a node at the quota (the whole state in memory,
/// plus a second copy while a snapshot is encoded or restored) still restarts within a
/// few GiB of memory.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// Largest quota accepted: a state beyond this could not be held in memory by one
/// process of this design (the whole map lives in each node), so a larger value is a typo.
pub const MAX_QUOTA_BYTES: u64 = 1 << 40;
/// The file name looked up in the current directory, and the name of the effective config
/// inside the cluster directory.
pub const CONFIG_FILE_NAME: &str = "cluster.toml";
/// The environment variable naming a config file.
pub const CONFIG_ENV: &str = "RAFT_CONFIG";

/// Everything about a cluster that all its processes must agree on.
///
/// Field names are the TOML keys. Durations carry their unit in the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster directory: sockets, node data and logs live here.
    pub dir: PathBuf,
    /// Number of voting nodes, with ids `1..=nodes`.
    pub nodes: u64,
    /// Milliseconds per Raft tick. Raise it to slow the whole cluster down for watching.
    pub tick_ms: u64,
    /// fsync the WAL and snapshots before acknowledging. Off is only for benchmarks.
    pub fsync: bool,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u32,
    /// Election timeout lower bound (inclusive), in ticks.
    pub election_ticks_min: u32,
    /// Election timeout upper bound (exclusive), in ticks.
    pub election_ticks_max: u32,
    /// §9.6 PreVote: a node probes before disrupting the cluster with a new term.
    pub pre_vote: bool,
    /// §6.2 CheckQuorum: a leader that hears from no majority steps down.
    pub check_quorum: bool,
    /// Take a snapshot once this many entries were applied since the last one.
    pub snapshot_entries: u64,
    /// Take a snapshot once the log since the last one holds this many bytes.
    pub snapshot_bytes: u64,
    /// ... and only once the log since the last snapshot is at least this many times that
    /// snapshot's size, so snapshot work per write stays constant as the state grows.
    pub snapshot_ratio: f64,
    /// Quota on the state's size (bytes of keys plus values): the leader refuses a write
    /// that would take the state past it (raft-cli exit 3). 0 turns it off. Every node
    /// holds the whole state in memory, so a restart must fit it: see [`DEFAULT_QUOTA_BYTES`].
    pub quota_bytes: u64,
    /// OTP intensity: a node that crashes more than this many times within
    /// `restart_period_ms` is given up on (shown as failed). 0: never restart.
    pub restart_intensity: u32,
    /// OTP period for `restart_intensity`, in milliseconds.
    pub restart_period_ms: u64,
    /// First restart delay after a crash; doubles on each further crash.
    pub restart_backoff_min_ms: u64,
    /// Cap of the doubling restart delay.
    pub restart_backoff_max_ms: u64,
    /// After SIGTERM, how long a node may take to exit before it gets SIGKILL.
    pub shutdown_grace_ms: u64,
    /// How often the supervisor asks each node for its status (to report leader changes).
    pub status_poll_ms: u64,
    /// Uids, besides the nodes' own uid and root, whose processes may connect to a node as
    /// clients (checked with `SO_PEERCRED`). Peers must always be the same uid or root.
    pub allowed_uids: Vec<u32>,
    /// The RESP (Redis protocol) front end: node N listens on `redis_port + N`; 0 turns
    /// it off.
    pub redis_port: u32,
    /// The address the RESP front end binds (an IP address). Anyone who can reach it is
    /// a client: there is no uid check on TCP (see docs/architecture.md).
    pub redis_bind: String,
    /// A learner (a node added with `raft-supervisor add`) is promoted to voter once its
    /// log is within this many entries of the leader's (thesis §4.2.1).
    pub promote_lag: u64,
    /// How nodes listen and dial: `"unix"` (`<dir>/node-<id>/node.sock`) or `"tcp"` (see
    /// [`transport`]).
    pub transport: String,
    /// tcp only, required with it: node N listens on and is dialled at `addrs[N-1]`
    /// (`"host:port"`, names resolved when dialling).
    pub addrs: Vec<String>,
    /// tcp: the host a node binds; empty: the host of its own `addrs` entry.
    pub listen_host: String,
    /// tcp without TLS; the node logs it loudly at start.
    pub insecure: bool,
    /// TLS files, relative to `dir`; `{id}` is replaced by the node id.
    pub tls_ca: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// The client identity of `raft-cli` and the supervisor's node links.
    pub tls_client_cert: String,
    pub tls_client_key: String,
}

/// Largest `promote_lag`: a learner further behind than this is far from caught up.
pub const MAX_PROMOTE_LAG: u64 = 1_000_000;

/// Default `redis_port`: Redis's own, so node N serves RESP on 6379 + N (6380 to 6384).
pub const DEFAULT_REDIS_PORT: u32 = 6379;

/// Default `snapshot_ratio`: chosen by measurement (docs/performance.md, "Choosing
/// snapshot_ratio"): at 1,000,000 keys, 0.25 / 0.5 / 1.0 gave 31.8K / 37K / 40.9K
/// writes/s, p99 54 / 40-46 / 31 ms, RSS 247 / 272 / 290 MiB per node. A node keeps the
/// log since its last snapshot in memory, so this is also how much memory the log may
/// take beside the state (as much again, at most).
pub const DEFAULT_SNAPSHOT_RATIO: f64 = 1.0;
/// Largest `snapshot_ratio`: beyond this the in-memory log dwarfs the state it replays.
pub const MAX_SNAPSHOT_RATIO: f64 = 16.0;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            dir: default_dir(),
            nodes: 5,
            tick_ms: 10,
            fsync: true,
            heartbeat_ticks: 5,
            election_ticks_min: 15,
            election_ticks_max: 30,
            pre_vote: true,
            check_quorum: true,
            snapshot_entries: 10_000,
            snapshot_bytes: 16 << 20,
            snapshot_ratio: DEFAULT_SNAPSHOT_RATIO,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            restart_intensity: 5,
            restart_period_ms: 30_000,
            restart_backoff_min_ms: 100,
            restart_backoff_max_ms: 5_000,
            shutdown_grace_ms: 3_000,
            status_poll_ms: 200,
            allowed_uids: Vec::new(),
            redis_port: DEFAULT_REDIS_PORT,
            redis_bind: "127.0.0.1".into(),
            promote_lag: raft_core::PROMOTE_LAG_ENTRIES,
            transport: "unix".into(),
            addrs: Vec::new(),
            listen_host: String::new(),
            insecure: false,
            tls_ca: transport::DEFAULT_TLS_CA.into(),
            tls_cert: transport::DEFAULT_TLS_CERT.into(),
            tls_key: transport::DEFAULT_TLS_KEY.into(),
            tls_client_cert: transport::DEFAULT_TLS_CLIENT_CERT.into(),
            tls_client_key: transport::DEFAULT_TLS_CLIENT_KEY.into(),
        }
    }
}

/// Where the effective configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Explicit(PathBuf),
    /// `$RAFT_CONFIG`.
    Env(PathBuf),
    /// `./cluster.toml`.
    CurrentDir(PathBuf),
    /// No file: the built-in defaults.
    Embedded,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Explicit(p) => write!(f, "{} (--config)", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (${CONFIG_ENV})", p.display()),
            ConfigSource::CurrentDir(p) => write!(f, "{} (current directory)", p.display()),
            ConfigSource::Embedded => f.write_str("embedded defaults"),
        }
    }
}

/// A config that cannot be used. Each message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is {len} bytes, over the limit of {max} bytes")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{origin}: unknown key `{key}`{}{}", line.map_or(String::new(), |l| format!(" on line {l}")),
        suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?")))]
    UnknownKey {
        origin: String,
        key: String,
        /// 1-based line of the key in the file, when known.
        line: Option<usize>,
        /// The nearest valid key, when one is close enough to be a likely misspelling.
        suggestion: Option<String>,
    },
    #[error("{origin}: key `{key}`: {message}")]
    BadValue { origin: String, key: String, message: String },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("invalid `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("invalid `dir`: socket path {path} is {len} bytes, over the Unix limit of {max}; choose a shorter `dir`")]
    SocketPathTooLong { path: PathBuf, len: usize, max: usize },
}

impl ConfigError {
    /// The TOML key at fault, when one is.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::BadValue { key, .. } => Some(key),
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::SocketPathTooLong { .. } => Some("dir"),
            _ => None,
        }
    }
}

/// `${TMPDIR:-/tmp}/raft-cluster-<uid>`: per user, so two users of one machine do not
/// share a cluster, and the same from every working directory.
pub fn default_dir() -> PathBuf {
    default_dir_from(std::env::var_os("TMPDIR"))
}

fn default_dir_from(tmpdir: Option<OsString>) -> PathBuf {
    let base = match tmpdir {
        Some(t) if !t.is_empty() => PathBuf::from(t),
        _ => PathBuf::from("/tmp"),
    };
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    normalize(&base.join(format!("raft-cluster-{uid}")))
}

impl ClusterConfig {
    /// Finds, reads and validates the config: `explicit` (`--config`), then
    /// `$RAFT_CONFIG`, then `./cluster.toml`, then the embedded default.
    pub fn load(explicit: Option<&Path>) -> Result<(ClusterConfig, ConfigSource), ConfigError> {
        let cwd = std::env::current_dir().map_err(|e| ConfigError::Read { path: PathBuf::from("."), source: e })?;
        load_from(explicit, std::env::var_os(CONFIG_ENV), &cwd)
    }

    /// Parses and validates a config text. A relative `dir` stays relative (use
    /// [`ClusterConfig::load`] to resolve it against the file's directory).
    pub fn from_toml(text: &str) -> Result<ClusterConfig, ConfigError> {
        let cfg = parse(text, "config")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as flat TOML, every key present; [`ClusterConfig::from_toml`] of it
    /// gives back an equal config.
    pub fn to_toml(&self) -> String {
        assert!(self.dir.to_str().is_some(), "dir must be UTF-8 (validate() checks it)");
        let body = toml::to_string(self).expect("a flat struct of strings, integers and bools serializes");
        format!("# Effective raft cluster configuration, written by raft-supervisor.\n{body}")
    }

    /// Node ids: `1..=nodes`.
    pub fn node_ids(&self) -> Vec<u64> {
        (1..=self.nodes).collect()
    }

    /// Whether `id` is a node of this cluster.
    pub fn is_node(&self, id: u64) -> bool {
        (1..=self.nodes).contains(&id)
    }

    /// Whether `id` can name a node of this cluster, bootstrap or added: `1..=MAX_NODE_ID`.
    pub fn is_node_id(id: u64) -> bool {
        (1..=MAX_NODE_ID).contains(&id)
    }

    /// `<dir>/node-<id>`.
    pub fn node_dir(&self, id: u64) -> PathBuf {
        assert!(Self::is_node_id(id), "node id {id} is not in 1..={MAX_NODE_ID}");
        self.dir.join(format!("node-{id}"))
    }

    /// `<dir>/node-<id>/node.sock`: peers and clients connect here.
    pub fn node_socket(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("node.sock")
    }

    /// The TCP address node `id` serves RESP on, `None` when the front end is off.
    pub fn redis_addr(&self, id: u64) -> Option<std::net::SocketAddr> {
        assert!(Self::is_node_id(id), "node id {id} is not in 1..={MAX_NODE_ID}");
        if self.redis_port == 0 {
            return None;
        }
        let ip: std::net::IpAddr = self.redis_bind.parse().expect("validate() checks redis_bind");
        // validate() leaves a port for every bootstrap node; a node added later past
        // port 65535 serves no RESP.
        let port = u16::try_from(self.redis_port as u64 + id).ok()?;
        Some(std::net::SocketAddr::new(ip, port))
    }

    /// `<dir>/node-<id>/node.log`: the node's stdout and stderr.
    pub fn node_log(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("node.log")
    }

    /// `<dir>/node-<id>/wal`: log segments.
    pub fn node_wal_dir(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("wal")
    }

    /// `<dir>/node-<id>/snap`: snapshot files.
    pub fn node_snap_dir(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("snap")
    }

    /// `<dir>/cluster.key`: the per-cluster peer secret (mode 0600), made by
    /// `raft-supervisor up` when missing and read by every node at start.
    pub fn cluster_key_path(&self) -> PathBuf {
        self.dir.join("cluster.key")
    }

    /// `<dir>/supervisor.sock`: the running supervisor's control socket.
    pub fn supervisor_socket(&self) -> PathBuf {
        self.dir.join("supervisor.sock")
    }

    /// `<dir>/supervisor.log`: output of a detached supervisor.
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }

    /// `<dir>/cluster.toml`: the effective config the supervisor hands to its nodes.
    pub fn effective_config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE_NAME)
    }

    /// A stable id of this cluster. Nodes exchange it in their hello so a node of another
    /// cluster is refused. Over Unix sockets: 64-bit FNV-1a of the bytes of `dir` (absolute
    /// and normalised when loaded with [`ClusterConfig::load`]), which all nodes share.
    /// Over TCP each host has a `dir` of its own (any path), so the id is FNV-1a of what
    /// every host's config does share: `tcp:` and the `addrs` list, comma-joined.
    pub fn cluster_id(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        if self.transport == "tcp" {
            return fnv1a(format!("tcp:{}", self.addrs.join(",")).as_bytes());
        }
        fnv1a(self.dir.as_os_str().as_bytes())
    }

    /// The tick as a [`std::time::Duration`].
    pub fn tick(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tick_ms)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.dir.as_os_str().is_empty() {
            return invalid("dir", "must not be empty".into());
        }
        if self.dir.to_str().is_none() {
            return invalid("dir", format!("{} is not valid UTF-8", self.dir.display()));
        }
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return invalid("nodes", format!("{} is not in 1..={MAX_NODES}", self.nodes));
        }
        if !(1..=MAX_TICK_MS).contains(&self.tick_ms) {
            return invalid("tick_ms", format!("{} is not in 1..={MAX_TICK_MS}", self.tick_ms));
        }
        if self.heartbeat_ticks == 0 {
            return invalid("heartbeat_ticks", "must be at least 1".into());
        }
        if self.heartbeat_ticks <= MAX_CATCH_UP_TICKS {
            return invalid(
                "heartbeat_ticks",
                format!(
                    "{} must be greater than MAX_CATCH_UP_TICKS ({MAX_CATCH_UP_TICKS}), the ticks a late node replays \
                     at once (election_ticks_min, at {}, must be greater still)",
                    self.heartbeat_ticks, self.election_ticks_min
                ),
            );
        }
        if self.election_ticks_min <= MAX_CATCH_UP_TICKS {
            return invalid(
                "election_ticks_min",
                format!(
                    "{} must be greater than MAX_CATCH_UP_TICKS ({MAX_CATCH_UP_TICKS}) and heartbeat_ticks ({}), or a late \
                     node replaying ticks starts an election before it hears its peers",
                    self.election_ticks_min, self.heartbeat_ticks
                ),
            );
        }
        if self.election_ticks_min <= self.heartbeat_ticks {
            return invalid(
                "election_ticks_min",
                format!(
                    "{} must be greater than heartbeat_ticks ({}), or followers time out between heartbeats",
                    self.election_ticks_min, self.heartbeat_ticks
                ),
            );
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return invalid(
                "election_ticks_max",
                format!(
                    "{} must be greater than election_ticks_min ({}); the timeout is drawn from [min, max)",
                    self.election_ticks_max, self.election_ticks_min
                ),
            );
        }
        if self.snapshot_entries == 0 {
            return invalid("snapshot_entries", "must be at least 1".into());
        }
        if self.snapshot_bytes == 0 {
            return invalid("snapshot_bytes", "must be at least 1".into());
        }
        if !(0.0..=MAX_SNAPSHOT_RATIO).contains(&self.snapshot_ratio) {
            return invalid(
                "snapshot_ratio",
                format!("{} must be between 0 and {MAX_SNAPSHOT_RATIO}", self.snapshot_ratio),
            );
        }
        if self.promote_lag > MAX_PROMOTE_LAG {
            return invalid("promote_lag", format!("{} is over {MAX_PROMOTE_LAG} entries", self.promote_lag));
        }
        if self.quota_bytes > MAX_QUOTA_BYTES {
            return invalid(
                "quota_bytes",
                format!("{} is over the limit of {MAX_QUOTA_BYTES} (1 TiB); 0 turns the quota off", self.quota_bytes),
            );
        }
        if self.redis_port != 0 && self.redis_port as u64 + self.nodes > u16::MAX as u64 {
            return invalid(
                "redis_port",
                format!(
                    "{} leaves no port for node {} (ports end at 65535); 0 turns the RESP front end off",
                    self.redis_port, self.nodes
                ),
            );
        }
        if self.redis_bind.parse::<std::net::IpAddr>().is_err() {
            return invalid(
                "redis_bind",
                format!("{:?} is not an IP address (e.g. 127.0.0.1 or ::1)", self.redis_bind),
            );
        }
        if self.restart_intensity > MAX_RESTART_INTENSITY {
            return invalid(
                "restart_intensity",
                format!("{} is over the limit of {MAX_RESTART_INTENSITY}", self.restart_intensity),
            );
        }
        for (key, value) in [
            ("restart_period_ms", self.restart_period_ms),
            ("restart_backoff_min_ms", self.restart_backoff_min_ms),
            ("restart_backoff_max_ms", self.restart_backoff_max_ms),
            ("status_poll_ms", self.status_poll_ms),
        ] {
            if !(1..=MAX_DURATION_MS).contains(&value) {
                return invalid(key, format!("{value} is not in 1..={MAX_DURATION_MS}"));
            }
        }
        if self.shutdown_grace_ms > MAX_DURATION_MS {
            return invalid("shutdown_grace_ms", format!("{} is over {MAX_DURATION_MS}", self.shutdown_grace_ms));
        }
        if self.restart_backoff_max_ms < self.restart_backoff_min_ms {
            return invalid(
                "restart_backoff_max_ms",
                format!(
                    "{} must be at least restart_backoff_min_ms ({})",
                    self.restart_backoff_max_ms, self.restart_backoff_min_ms
                ),
            );
        }
        self.validate_transport()?;
        // The longest socket path is the highest-numbered node's (ids have the most digits).
        for path in [self.supervisor_socket(), self.node_socket(self.nodes)] {
            let len = path.as_os_str().len();
            if len > MAX_SOCKET_PATH_BYTES {
                return Err(ConfigError::SocketPathTooLong { path, len, max: MAX_SOCKET_PATH_BYTES });
            }
        }
        Ok(())
    }
}

/// [`ClusterConfig::load`] with its environment passed in, for tests.
pub fn load_from(
    explicit: Option<&Path>,
    env: Option<OsString>,
    cwd: &Path,
) -> Result<(ClusterConfig, ConfigSource), ConfigError> {
    let (path, source) = if let Some(p) = explicit {
        let p = cwd.join(p);
        (p.clone(), ConfigSource::Explicit(p))
    } else if let Some(e) = env.filter(|e| !e.is_empty()) {
        let p = cwd.join(e);
        (p.clone(), ConfigSource::Env(p))
    } else {
        let p = cwd.join(CONFIG_FILE_NAME);
        if !p.exists() {
            let cfg = ClusterConfig::default();
            cfg.validate()?;
            return Ok((cfg, ConfigSource::Embedded));
        }
        (p.clone(), ConfigSource::CurrentDir(p))
    };
    let cfg = load_file(&path)?;
    Ok((cfg, source))
}

/// Reads, parses and validates one file; a relative `dir` is resolved against the file's
/// directory.
pub fn load_file(path: &Path) -> Result<ClusterConfig, ConfigError> {
    use std::io::Read;
    let read_err = |e| ConfigError::Read { path: path.to_path_buf(), source: e };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::TooLarge { path: path.to_path_buf(), len, max: MAX_CONFIG_FILE_BYTES });
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE_BYTES).read_to_string(&mut text).map_err(read_err)?;
    let mut cfg = parse(&text, &path.display().to_string())?;
    let base = path.parent().unwrap_or(Path::new("/"));
    cfg.dir = normalize(&base.join(&cfg.dir));
    cfg.validate()?;
    Ok(cfg)
}

/// Parses without validating. Maps toml's errors onto errors that name the key.
fn parse(text: &str, origin: &str) -> Result<ClusterConfig, ConfigError> {
    toml::from_str::<ClusterConfig>(text).map_err(|e| classify(&e, text, origin))
}

fn classify(e: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let message = e.message().trim().to_string();
    let origin = origin.to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let key = rest[..end].to_string();
            let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let valid = backticked(rest.get(end + 1..).unwrap_or(""));
            let suggestion = nearest_key(&key, valid.iter().map(String::as_str));
            return ConfigError::UnknownKey { origin, key, line, suggestion };
        }
    }
    // A type or value error carries the span of the value; the key is what precedes
    // `=` on that line.
    if let Some(span) = e.span() {
        let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
        let line = &text[line_start..line_end];
        if let Some(eq) = line.find('=') {
            let key = line[..eq].trim().trim_matches('"').to_string();
            if !key.is_empty() && line_start + eq < span.start {
                let lineno = text[..line_start].matches('\n').count() + 1;
                let message = if message.is_empty() { "missing or malformed value".to_string() } else { message };
                return ConfigError::BadValue { origin, key, message: format!("{message} (line {lineno})") };
            }
        }
    }
    let message = match e.span() {
        Some(span) => format!("{message} (line {})", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => message,
    };
    ConfigError::Syntax { origin, message }
}

/// The names between backticks in toml's "expected one of `a`, `b`" list.
fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// Most edits away a key may be from a valid one and still be suggested: two catches a
/// swap (`tick_sm`) or a missing or extra letter or two, without suggesting unrelated keys.
const MAX_SUGGESTION_DISTANCE: usize = 2;

/// The valid key nearest to `key` by [`edit_distance`], if within
/// [`MAX_SUGGESTION_DISTANCE`] (and nearer than the key is long, so `x` suggests nothing).
pub fn nearest_key<'a>(key: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<String> {
    valid
        .into_iter()
        .map(|v| (edit_distance(key, v), v))
        .filter(|&(d, _)| d <= MAX_SUGGESTION_DISTANCE && d < key.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, v)| v.to_string())
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two adjacent characters each cost one (so `tick_sm` is one edit from `tick_ms`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Makes `p` free of `.` and `..` components without touching the file system (so the
/// result, and the cluster id, do not depend on whether the directory exists yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                // `/..` is `/`.
                Some(Component::RootDir) => {}
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// 64-bit FNV-1a: tiny, stable across versions and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests;
