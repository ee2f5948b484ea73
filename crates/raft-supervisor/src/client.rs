//! The commands that talk to a running supervisor over `<dir>/supervisor.sock`, plus
//! `logs` and `wipe`, which work on the directory itself.

use crate::cli::{
    check_node, leader_of, parse_groups, show_groups, CliError, Cmd, NodeTarget, EXIT_FAILED, EXIT_UNAVAILABLE,
};
use raft_config::ClusterConfig;
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::supervisor::{ClusterStatus, NodeRow, SupervisorRequest, SupervisorResponse};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a command waits for the supervisor's answer. `status` may wait for every node
/// to answer (bounded by the supervisor), a restart for nothing: seconds are plenty.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time `down` waits beyond the configured grace period (SIGKILL, reaping).
pub const DOWN_SLACK: Duration = Duration::from_secs(10);

/// The config of the cluster as its supervisor wrote it (`<dir>/cluster.toml`), so that
/// commands check node ids against the running cluster; `cfg` if there is none.
pub fn effective_config(cfg: &ClusterConfig) -> ClusterConfig {
    raft_config::load_file(&cfg.effective_config_path()).unwrap_or_else(|_| cfg.clone())
}

/// Sends one request and returns the answer. No supervisor: exit code 3 with a hint.
pub fn request(
    cfg: &ClusterConfig,
    req: &SupervisorRequest,
    timeout: Duration,
) -> Result<SupervisorResponse, CliError> {
    let path = cfg.supervisor_socket();
    let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => not_running(cfg),
        _ => CliError { code: EXIT_UNAVAILABLE, message: format!("cannot connect to {}: {e}", path.display()) },
    })?;
    let io_err = |e: io::Error| {
        let what = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("no answer within {} s", timeout.as_secs()),
            io::ErrorKind::UnexpectedEof => "it closed the connection".into(),
            _ => e.to_string(),
        };
        CliError::failed(format!("the supervisor at {} did not answer: {what}", path.display()))
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    write_frame(&mut stream, req).map_err(io_err)?;
    read_frame(&mut stream).map_err(io_err)
}

fn not_running(cfg: &ClusterConfig) -> CliError {
    CliError {
        code: EXIT_UNAVAILABLE,
        message: format!(
            "no supervisor is running for {}; start the cluster with `raft-supervisor up`",
            cfg.dir.display()
        ),
    }
}

/// Whether a supervisor answers on the control socket.
pub fn supervisor_answers(cfg: &ClusterConfig) -> bool {
    request(cfg, &SupervisorRequest::Status, COMMAND_TIMEOUT).is_ok()
}

/// The node a [`NodeTarget`] names: the id itself, or the leader as the running
/// supervisor's status shows it (exit 1 when no node leads right now).
pub fn resolve(cfg: &ClusterConfig, target: NodeTarget) -> Result<u64, CliError> {
    match target {
        NodeTarget::Id(id) => Ok(id),
        NodeTarget::Leader => match request(cfg, &SupervisorRequest::Status, COMMAND_TIMEOUT)? {
            SupervisorResponse::Status(st) => leader_of(&st).ok_or_else(|| {
                CliError::failed(
                    "no node is leader right now (none reports role leader); see `raft-supervisor status`, \
                     and name a node by its id",
                )
            }),
            SupervisorResponse::Error(line) => Err(CliError::failed(line)),
            SupervisorResponse::Ok(line) => Err(CliError::failed(format!("unexpected answer to status: {line}"))),
        },
    }
}

/// Runs one control command and prints its one-line answer.
pub fn command(cfg: &ClusterConfig, cmd: Cmd) -> Result<(), CliError> {
    let eff = effective_config(cfg);
    let node = |target| {
        let id = resolve(cfg, target)?;
        check_node(&eff, id).map(|_| id)
    };
    let mut timeout = COMMAND_TIMEOUT;
    let mut json = false;
    let req = match cmd {
        Cmd::Down => {
            timeout = Duration::from_millis(eff.shutdown_grace_ms) + DOWN_SLACK;
            SupervisorRequest::Down
        }
        Cmd::Status { json: j } => {
            json = j;
            SupervisorRequest::Status
        }
        Cmd::Kill { node: n } => SupervisorRequest::Kill(node(n)?),
        Cmd::Start { node: n } => SupervisorRequest::Start(node(n)?),
        Cmd::Restart { node: n } => SupervisorRequest::Restart(node(n)?),
        Cmd::Pause { node: n } => SupervisorRequest::Pause(node(n)?),
        Cmd::Resume { node: n } => SupervisorRequest::Resume(node(n)?),
        Cmd::Partition { groups } => {
            SupervisorRequest::Partition(parse_groups(&groups, &crate::cli::node_ids(&eff)).map_err(CliError::usage)?)
        }
        Cmd::Isolate { node: n } => SupervisorRequest::Partition(
            crate::cli::normalize_groups(&[vec![node(n)?]], &crate::cli::node_ids(&eff)).map_err(CliError::usage)?,
        ),
        Cmd::Add => {
            timeout = crate::shell::MEMBER_CHANGE_TIMEOUT + COMMAND_TIMEOUT;
            SupervisorRequest::Add
        }
        Cmd::Remove { node: n } => {
            timeout = crate::shell::MEMBER_CHANGE_TIMEOUT + COMMAND_TIMEOUT;
            SupervisorRequest::Remove(node(n)?)
        }
        Cmd::Transfer { node: n } => {
            timeout = crate::shell::MEMBER_CHANGE_TIMEOUT + COMMAND_TIMEOUT;
            SupervisorRequest::Transfer(node(n)?)
        }
        Cmd::Heal => SupervisorRequest::Heal,
        Cmd::Delay { delay, jitter, nodes } => {
            let delay_us = raft_wire::levers::parse_delay(&delay).map_err(CliError::usage)?;
            let jitter_us = match jitter {
                Some(j) => raft_wire::levers::parse_delay(&j).map_err(CliError::usage)?,
                None => 0,
            };
            let levers = raft_wire::levers::NetLevers { delay_us, jitter_us, loss_ppm: 0 };
            levers.check().map_err(CliError::usage)?;
            let nodes = lever_nodes(cfg, &eff, nodes)?;
            SupervisorRequest::Levers { nodes, delay: Some((delay_us, jitter_us)), loss_ppm: None }
        }
        Cmd::Loss { percent, nodes } => {
            let ppm = raft_wire::levers::parse_loss(&percent).map_err(CliError::usage)?;
            let nodes = lever_nodes(cfg, &eff, nodes)?;
            SupervisorRequest::Levers { nodes, delay: None, loss_ppm: Some(ppm) }
        }
        Cmd::Speed { factor } => SupervisorRequest::Speed(factor),
        Cmd::Up { .. }
        | Cmd::Logs { .. }
        | Cmd::Wipe
        | Cmd::Completions { .. }
        | Cmd::Timeline { .. }
        | Cmd::Watch
        | Cmd::Certs { .. } => {
            unreachable!("not a control command")
        }
    };
    match request(cfg, &req, timeout)? {
        SupervisorResponse::Ok(line) => {
            say(&line);
            Ok(())
        }
        SupervisorResponse::Error(line) => Err(CliError::failed(line)),
        SupervisorResponse::Status(st) if json => {
            say(&serde_json::to_string(&st).expect("status serializes"));
            Ok(())
        }
        SupervisorResponse::Status(st) => {
            print!("{}", status_table(&st));
            Ok(())
        }
    }
}

/// The node ids a lever command names (empty: all); `leader` resolved now.
fn lever_nodes(
    cfg: &ClusterConfig,
    eff: &ClusterConfig,
    nodes: Option<crate::levers::NodeSet>,
) -> Result<Vec<u64>, CliError> {
    use crate::levers::NodeSet;
    let ids = match nodes.unwrap_or(NodeSet::All) {
        NodeSet::All => return Ok(Vec::new()),
        NodeSet::Leader => vec![resolve(cfg, NodeTarget::Leader)?],
        NodeSet::Ids(ids) => ids,
    };
    for &id in &ids {
        check_node(eff, id)?;
    }
    Ok(ids)
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// The `status` table: one row per node, then the partitions.
pub fn status_table(st: &ClusterStatus) -> String {
    let header = [
        "node",
        "pid",
        "process",
        "role",
        "member",
        "term",
        "leader",
        "commit",
        "applied",
        "last index",
        "snapshot",
        "redis",
    ];
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let rows: Vec<[String; 12]> = st
        .nodes
        .iter()
        .map(|r: &NodeRow| {
            [
                r.id.to_string(),
                r.pid.map_or("-".into(), |p| p.to_string()),
                r.process.clone(),
                r.role.clone(),
                r.member.clone().unwrap_or_else(|| "-".into()),
                opt(r.term),
                opt(r.leader),
                opt(r.commit),
                opt(r.applied),
                opt(r.last_index),
                opt(r.snapshot_index),
                opt(r.redis_port.map(u64::from)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(&format!("{cell:<w$}"));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    if st.partitions.is_empty() {
        out.push_str("partitions: none\n");
    } else {
        out.push_str(&format!("partitions: {}\n", show_groups(&st.partitions)));
    }
    // The levers each node reports in force, when any node has some.
    let with: Vec<String> =
        st.nodes.iter().filter_map(|r| r.levers.filter(|l| !l.is_off()).map(|l| format!("n{}: {l}", r.id))).collect();
    if !with.is_empty() {
        out.push_str(&format!("network levers: {}\n", with.join("; ")));
    }
    out.push_str(&format!("speed: {}x\n", raft_wire::show_speed(st.speed_milli)));
    out
}

/// Largest read from a log in one go.
const LOG_CHUNK_BYTES: usize = 64 * 1024;

/// Prints a node's log; with `follow`, keeps printing what is appended until interrupted
/// (inotify wakes us; no polling).
pub fn logs(cfg: &ClusterConfig, id: u64, follow: bool) -> Result<(), CliError> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let cfg = effective_config(cfg);
    let path = cfg.node_log(id);
    let mut file = std::fs::File::open(&path).map_err(|e| {
        CliError::failed(format!(
            "cannot open the log of node {id} at {}: {e}; has the cluster been started?",
            path.display()
        ))
    })?;
    let watch = if follow {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| CliError::failed(format!("inotify: {e}")))?;
        let flags = AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
        ino.add_watch(&path, flags).map_err(|e| CliError::failed(format!("cannot watch {}: {e}", path.display())))?;
        Some(ino)
    } else {
        None
    };
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; LOG_CHUNK_BYTES];
    loop {
        // Copy everything there is now.
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if stdout.write_all(&buf[..n]).is_err() {
                        return Ok(()); // The reader went away (`| head`).
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CliError::failed(format!("reading {}: {e}", path.display()))),
            }
        }
        let _ = stdout.flush();
        let Some(ino) = &watch else { return Ok(()) };
        let events = match ino.read_events() {
            Ok(ev) => ev,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(CliError::failed(format!("inotify: {e}"))),
        };
        if events.iter().any(|e| e.mask.intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)) {
            let _ = file.read_to_end(&mut Vec::new());
            return Err(CliError::failed(format!("{} was removed", path.display())));
        }
        // A log truncated under us: start again from its beginning.
        if let (Ok(meta), Ok(pos)) = (file.metadata(), io::Seek::stream_position(&mut file)) {
            if meta.len() < pos {
                let _ = io::Seek::seek(&mut file, io::SeekFrom::Start(0));
            }
        }
    }
}

/// The first line of the effective config the supervisor writes; `wipe` only deletes a
/// `cluster.toml` that starts with it.
pub const EFFECTIVE_CONFIG_HEADER: &str = "# Effective raft cluster configuration, written by raft-supervisor.";

/// Deletes node data and the supervisor's files, unless a supervisor runs.
pub fn wipe(cfg: &ClusterConfig) -> Result<(), CliError> {
    let dir = &cfg.dir;
    if !dir.exists() {
        say(&format!("nothing to wipe: {} does not exist", dir.display()));
        return Ok(());
    }
    if crate::shell::lock_holder(cfg).is_some() || supervisor_answers(cfg) {
        return Err(CliError::failed(format!(
            "the cluster in {} is running; stop it with `raft-supervisor down` first",
            dir.display()
        )));
    }
    let fail =
        |p: &Path, e: io::Error| CliError { code: EXIT_FAILED, message: format!("cannot remove {}: {e}", p.display()) };
    let mut removed = 0;
    let entries =
        std::fs::read_dir(dir).map_err(|e| CliError::failed(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| CliError::failed(format!("cannot read {}: {e}", dir.display())))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let is_node_dir =
            name.strip_prefix("node-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_node_dir && entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path).map_err(|e| fail(&path, e))?;
            removed += 1;
        } else if name == raft_config::CONFIG_FILE_NAME {
            let ours = std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(EFFECTIVE_CONFIG_HEADER));
            if ours {
                std::fs::remove_file(&path).map_err(|e| fail(&path, e))?;
            }
        } else if [
            "supervisor.sock",
            "supervisor.log",
            "supervisor.lock",
            crate::timeline::SUPERVISOR_EVENTS_FILE,
            // The node set: a fresh cluster starts with the bootstrap nodes again.
            "members",
            ".members.tmp",
        ]
        .contains(&name.as_ref())
        {
            std::fs::remove_file(&path).map_err(|e| fail(&path, e))?;
        }
    }
    say(&format!("wiped {} ({removed} node directories)", dir.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, pid: Option<u32>, process: &str, role: &str, term: Option<u64>) -> NodeRow {
        NodeRow {
            id,
            pid,
            process: process.into(),
            role: role.into(),
            term,
            leader: term.map(|_| 1),
            commit: term.map(|_| 12),
            applied: term.map(|_| 12),
            last_index: term.map(|_| 13),
            snapshot_index: term.map(|_| 0),
            levers: term.map(|_| Default::default()),
            member: term.map(|_| "voter".into()),
            live: None,
            redis_port: pid.map(|_| 6379 + id as u16),
        }
    }

    #[test]
    fn table_and_json_shapes() {
        let st = ClusterStatus {
            nodes: vec![row(1, Some(4242), "running", "leader", Some(3)), row(2, None, "stopped", "unknown", None)],
            partitions: vec![vec![1], vec![2]],
            speed_milli: 100,
        };
        let table = status_table(&st);
        let expected = "\
node  pid   process  role     member  term  leader  commit  applied  last index  snapshot  redis
1     4242  running  leader   voter   3     1       12      12       13          0         6380
2     -     stopped  unknown  -       -     -       -       -        -           -         -
partitions: {1} {2}
speed: 0.10x
";
        assert_eq!(table, expected);
        let json: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "nodes": [
                    {"id": 1, "pid": 4242, "process": "running", "role": "leader", "term": 3, "leader": 1,
                     "commit": 12, "applied": 12, "last_index": 13, "snapshot_index": 0,
                     "levers": {"delay_us": 0, "jitter_us": 0, "loss_ppm": 0}, "member": "voter", "live": null,
                     "redis_port": 6380},
                    {"id": 2, "pid": null, "process": "stopped", "role": "unknown", "term": null, "leader": null,
                     "commit": null, "applied": null, "last_index": null, "snapshot_index": null,
                     "levers": null, "member": null, "live": null, "redis_port": null}
                ],
                "partitions": [[1], [2]],
                "speed_milli": 100
            })
        );
        let mut healed = ClusterStatus { partitions: vec![], ..st };
        assert!(status_table(&healed).ends_with("partitions: none\nspeed: 0.10x\n"));
        healed.nodes[0].levers = Some(raft_wire::levers::NetLevers { delay_us: 2_000_000, jitter_us: 0, loss_ppm: 0 });
        assert!(status_table(&healed).ends_with("partitions: none\nnetwork levers: n1: delay 2s\nspeed: 0.10x\n"));
    }

    #[test]
    fn no_supervisor_is_exit_3_with_a_hint() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().to_path_buf(), ..Default::default() };
        let e = request(&cfg, &SupervisorRequest::Status, COMMAND_TIMEOUT).unwrap_err();
        assert_eq!(e.code, EXIT_UNAVAILABLE);
        assert!(e.message.contains("raft-supervisor up"), "{}", e.message);
        // A stale socket file with nobody listening is the same.
        drop(std::os::unix::net::UnixListener::bind(cfg.supervisor_socket()).unwrap());
        let e = request(&cfg, &SupervisorRequest::Status, COMMAND_TIMEOUT).unwrap_err();
        assert_eq!(e.code, EXIT_UNAVAILABLE, "{}", e.message);
    }

    #[test]
    fn wipe_removes_node_dirs_and_our_files_only() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().to_path_buf(), nodes: 3, ..Default::default() };
        for id in 1..=3 {
            std::fs::create_dir_all(cfg.node_wal_dir(id)).unwrap();
            std::fs::write(cfg.node_log(id), "x").unwrap();
        }
        std::fs::create_dir_all(t.path().join("node-7")).unwrap();
        std::fs::write(cfg.effective_config_path(), cfg.to_toml()).unwrap();
        std::fs::write(cfg.supervisor_log(), "log").unwrap();
        std::fs::write(crate::members::path(&cfg), "7 added\n2 removed\n").unwrap();
        std::fs::write(t.path().join("notes.txt"), "mine").unwrap();
        std::fs::create_dir(t.path().join("node-x")).unwrap();
        wipe(&cfg).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left, vec!["node-x", "notes.txt"]);
        // A user's own cluster.toml in the dir is kept.
        std::fs::write(cfg.effective_config_path(), "nodes = 3\n").unwrap();
        wipe(&cfg).unwrap();
        assert!(cfg.effective_config_path().exists());
    }

    #[test]
    fn logs_of_a_missing_node_log_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().to_path_buf(), ..Default::default() };
        let e = logs(&cfg, 2, false).unwrap_err();
        assert_eq!(e.code, EXIT_FAILED);
        assert!(e.message.contains("node-2/node.log"), "{}", e.message);
    }
}
