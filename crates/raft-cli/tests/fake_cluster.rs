//! The client against scripted fake nodes that speak the real wire protocol: leader
//! discovery, hints, retries that keep session and seq, and the exit codes that depend on
//! exactly what the cluster answered (3 versus 4). A fake makes each case certain, which
//! a real cluster's timing cannot; the real-cluster tests are in `real_cluster.rs`.

use clap::Parser;
use raft_cli::args::Cli;
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::{ClientRequest, ClientResponse, Hello, NodeStatus, ReadOp, Reply, Request, Response, WriteOp};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a fake node behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Serves everything from the shared store.
    Leader,
    /// Answers NotLeader with this hint.
    Follower(Option<u64>),
    /// Reads requests, never answers (a paused process).
    Silent,
    /// Answers Unavailable.
    Unavailable,
    /// Applies writes but answers Unknown the first `n` times for each (session, seq).
    UnknownFirst(u32),
    /// Applies a write, then drops the connection without answering (crash after append).
    ApplyThenHangUp,
    /// A leader whose state is at its quota: refuses every write, serves reads.
    Refusing,
}

#[derive(Default)]
struct Store {
    map: BTreeMap<String, Vec<u8>>,
    replies: HashMap<(u64, u64), Reply>,
    /// Every write received, as (node, session, seq), including duplicates.
    received: Vec<(u64, u64, u64)>,
    /// Writes actually applied (not deduplicated).
    applied: u64,
    unknown_given: HashMap<(u64, u64), u32>,
}

impl Store {
    fn apply(&mut self, session: u64, seq: u64, op: &WriteOp) -> Reply {
        if let Some(r) = self.replies.get(&(session, seq)) {
            return r.clone();
        }
        self.applied += 1;
        let reply = match op {
            WriteOp::Set { key, value } => {
                self.map.insert(key.clone(), value.clone());
                Reply::Done
            }
            WriteOp::Delete { key } => Reply::Deleted { existed: self.map.remove(key).is_some() },
            WriteOp::Cas { key, expected, new } => {
                let current = self.map.get(key).cloned();
                let ok = &current == expected;
                if ok {
                    self.map.insert(key.clone(), new.clone());
                }
                Reply::Cas { ok, current }
            }
            other => panic!("raft-cli never sends {other:?}"),
        };
        self.replies.insert((session, seq), reply.clone());
        reply
    }

    fn read(&self, op: &ReadOp) -> Reply {
        match op {
            ReadOp::Get { key } => Reply::Value(self.map.get(key).cloned()),
            ReadOp::Keys { prefix, .. } => {
                // Unsorted on purpose: the client sorts.
                let mut keys: Vec<String> = self.map.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
                keys.reverse();
                Reply::Keys(keys)
            }
            other => panic!("raft-cli never sends {other:?}"),
        }
    }
}

struct Fake {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    dir: PathBuf,
    modes: Arc<Mutex<HashMap<u64, Mode>>>,
    store: Arc<Mutex<Store>>,
}

impl Fake {
    /// Nodes 1..=n; `modes` has one entry per node that is up (others have no socket).
    fn start(n: u64, modes: &[(u64, Mode)]) -> Fake {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cluster.toml");
        std::fs::write(&config, format!("dir = \"c\"\nnodes = {n}\n")).unwrap();
        let dir = tmp.path().join("c");
        let fake = Fake {
            _tmp: tmp,
            config,
            dir: dir.clone(),
            modes: Arc::new(Mutex::new(modes.iter().copied().collect())),
            store: Arc::default(),
        };
        for &(id, _) in modes {
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let listener = UnixListener::bind(node_dir.join("node.sock")).unwrap();
            let (modes, store) = (fake.modes.clone(), fake.store.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let (modes, store) = (modes.clone(), store.clone());
                    thread::spawn(move || serve(id, stream, modes, store));
                }
            });
        }
        fake
    }

    fn set_mode(&self, id: u64, mode: Mode) {
        self.modes.lock().unwrap().insert(id, mode);
    }

    fn cli(&self, args: &[&str]) -> raft_cli::commands::Output {
        let mut full = vec!["raft-cli", "--config", self.config.to_str().unwrap()];
        full.extend_from_slice(args);
        raft_cli::run(Cli::parse_from(full))
    }

    fn leader_file(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("cli-leader")).ok().map(|s| s.trim().to_string())
    }

    fn writes_received(&self) -> Vec<(u64, u64, u64)> {
        self.store.lock().unwrap().received.clone()
    }
}

fn serve(id: u64, mut stream: UnixStream, modes: Arc<Mutex<HashMap<u64, Mode>>>, store: Arc<Mutex<Store>>) {
    let Ok(Hello::Client) = read_frame::<Hello, _>(&mut stream) else { return };
    loop {
        let Ok(req) = read_frame::<ClientRequest, _>(&mut stream) else { return };
        let mode = modes.lock().unwrap()[&id];
        let body = match (&req.body, mode) {
            (_, Mode::Silent) => continue,
            (Request::Status, _) => Response::Status(status(id, mode)),
            (_, Mode::Follower(hint)) => Response::NotLeader { leader: hint },
            (_, Mode::Unavailable) => Response::Unavailable { reason: "no leader".into() },
            (Request::Write { session, seq, .. }, Mode::Refusing) => {
                store.lock().unwrap().received.push((id, *session, *seq));
                Response::Refused { reason: QUOTA_REASON.into() }
            }
            (Request::Write { session, seq, op }, mode) => {
                let mut s = store.lock().unwrap();
                s.received.push((id, *session, *seq));
                let reply = s.apply(*session, *seq, op);
                match mode {
                    Mode::ApplyThenHangUp => return,
                    Mode::UnknownFirst(n) => {
                        let given = s.unknown_given.entry((*session, *seq)).or_default();
                        if *given < n {
                            *given += 1;
                            Response::Unknown { reason: "leadership lost after append".into() }
                        } else {
                            Response::Ok(reply)
                        }
                    }
                    _ => Response::Ok(reply),
                }
            }
            (Request::Read { op, .. }, _) => Response::Ok(store.lock().unwrap().read(op)),
            _ => Response::Invalid { reason: "not supported by the fake".into() },
        };
        if write_frame(&mut stream, &ClientResponse { id: req.id, body }).is_err() {
            return;
        }
    }
}

fn status(id: u64, mode: Mode) -> NodeStatus {
    NodeStatus {
        id,
        pid: 1000 + id as u32,
        role: if mode == Mode::Leader { raft_core::RoleKind::Leader } else { raft_core::RoleKind::Follower },
        term: 3,
        leader: Some(1),
        commit: 10,
        applied: 10,
        last_index: 11,
        snapshot_index: 0,
        progress: vec![],
        connected: vec![],
        isolated: vec![],
        membership: raft_core::Membership::voters(1..=3),
        levers: Default::default(),
        messages_sent: vec![],
        messages_received: vec![],
        election_elapsed_ticks: 0,
        election_timeout_ticks: 10,
        tick_us: 10_000,
        speed_milli: 1000,
    }
}

use Mode::*;

/// What a node at its quota says (raft-replica builds the real one).
const QUOTA_REASON: &str = "the state would pass the quota of 4.0 KiB (4096 bytes, quota_bytes in cluster.toml): \
                            it holds 4080 bytes and this write adds 204; delete keys, or raise quota_bytes and \
                            restart the cluster (raft-supervisor down, then up)";

#[test]
fn a_write_refused_for_the_quota_exits_3_at_once_without_retrying() {
    let fake = Fake::start(3, &[(1, Follower(Some(2))), (2, Refusing), (3, Follower(Some(2)))]);
    let start = Instant::now();
    let out = fake.cli(&["--timeout", "30s", "set", "k", "v"]);
    assert_eq!(out.code, 3, "{:?}", out.stderr);
    assert!(start.elapsed() < Duration::from_secs(5), "no retry loop: {:?}", start.elapsed());
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr.as_deref(), Some(format!("write refused: {QUOTA_REASON}").as_str()));
    assert_eq!(fake.writes_received().len(), 1, "refused once, never retried: {:?}", fake.writes_received());
    assert_eq!(fake.leader_file().as_deref(), Some("2"), "the refusing node is the leader");
    // Reads go on.
    assert_eq!(fake.cli(&["get", "k"]).code, 1);
}

#[test]
fn a_refused_retry_of_a_write_in_doubt_is_still_unknown_exit_4() {
    // The cached leader takes the write and never answers; the next leader refuses the
    // retry: the first attempt may still commit, so the outcome is unknown, not "refused".
    let fake = Fake::start(2, &[(1, Silent), (2, Refusing)]);
    std::fs::write(fake.dir.join("cli-leader"), "1\n").unwrap();
    let out = fake.cli(&["--timeout", "5s", "set", "k", "v"]);
    assert_eq!(out.code, 4, "{:?}", out.stderr);
    let err = out.stderr.unwrap();
    assert!(err.contains("may or may not") && err.contains("quota_bytes"), "{err}");
}

#[test]
fn bench_counts_refused_writes_as_failed_and_finishes() {
    let fake = Fake::start(1, &[(1, Refusing)]);
    let out = fake.cli(&["bench", "--clients", "2", "--requests", "100", "--read-ratio", "0", "--json"]);
    assert_eq!(out.code, 3, "no request succeeded: {:?}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!((v["ok"].as_u64(), v["failed"].as_u64()), (Some(0), Some(100)), "{v}");
    assert_eq!(v["errors"]["refused"], 100, "{v}");
    assert_eq!(fake.writes_received().len(), 100, "each write sent once");
}

#[test]
fn follows_hints_from_a_stale_cached_leader_and_remembers_the_new_one() {
    let fake = Fake::start(3, &[(1, Follower(Some(3))), (2, Follower(Some(3))), (3, Leader)]);
    std::fs::write(fake.dir.join("cli-leader"), "2\n").unwrap();
    let out = fake.cli(&["set", "chelsea", "rules"]);
    assert_eq!((out.code, out.stdout_text().as_str()), (0, "OK\n"), "{:?}", out.stderr);
    assert_eq!(fake.leader_file().as_deref(), Some("3"));
    // One write reached the leader: the follower was asked first and said no.
    assert_eq!(fake.writes_received().len(), 1);
    let out = fake.cli(&["get", "chelsea"]);
    assert_eq!((out.code, out.stdout_text().as_str()), (0, "rules\n"));
}

#[test]
fn tries_every_node_when_nobody_knows_the_leader_and_some_are_down() {
    // Node 1 has no socket; node 2 knows nothing; node 4 is the leader.
    let fake = Fake::start(4, &[(2, Follower(None)), (3, Follower(None)), (4, Leader)]);
    let out = fake.cli(&["set", "k", "v"]);
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    assert_eq!(fake.leader_file().as_deref(), Some("4"));
}

#[test]
fn get_missing_key_exits_1_and_value_prints_alone() {
    let fake = Fake::start(1, &[(1, Leader)]);
    let out = fake.cli(&["get", "nope"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.unwrap().contains("not found"));
    fake.cli(&["set", "k", "two words"]);
    let out = fake.cli(&["get", "k", "--stale"]);
    assert_eq!((out.code, out.stdout), (0, b"two words\n".to_vec()));
}

#[test]
fn cas_swaps_or_exits_1_with_the_current_value() {
    let fake = Fake::start(1, &[(1, Leader)]);
    assert_eq!(fake.cli(&["cas", "--expect-absent", "k", "a"]).code, 0);
    let out = fake.cli(&["cas", "--expect-absent", "k", "b"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.unwrap().contains("\"a\""));
    let out = fake.cli(&["cas", "k", "zzz", "b"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.as_deref().unwrap().starts_with("cas mismatch"), "{:?}", out.stderr);
    assert_eq!(fake.cli(&["cas", "k", "a", "b"]).code, 0);
    assert_eq!(fake.cli(&["get", "k"]).stdout_text(), "b\n");
}

#[test]
fn del_and_keys_sorted() {
    let fake = Fake::start(1, &[(1, Leader)]);
    for k in ["b", "a", "c", "other"] {
        assert_eq!(fake.cli(&["set", k, "1"]).code, 0);
    }
    assert_eq!(fake.cli(&["keys"]).stdout_text(), "a\nb\nc\nother\n");
    assert_eq!(fake.cli(&["del", "c"]).code, 0);
    assert_eq!(fake.cli(&["del", "c"]).stdout_text(), "OK (key was not there)\n");
    assert_eq!(fake.cli(&["keys", "o"]).stdout_text(), "other\n");
    assert_eq!(fake.cli(&["keys", "zz"]).stdout_text(), "");
}

#[test]
fn only_refusals_until_the_timeout_exit_3_not_applied() {
    let fake = Fake::start(3, &[(1, Follower(None)), (2, Unavailable), (3, Follower(Some(2)))]);
    let start = Instant::now();
    let out = fake.cli(&["--timeout", "600ms", "set", "k", "v"]);
    assert_eq!(out.code, 3, "{:?}", out.stderr);
    let err = out.stderr.unwrap();
    assert!(err.contains("not applied") && err.contains("raft-supervisor status"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(fake.writes_received().is_empty());
}

#[test]
fn silent_leader_makes_a_write_unknown_exit_4_but_a_read_exit_3() {
    let fake = Fake::start(3, &[(1, Silent), (2, Follower(Some(1))), (3, Follower(Some(1)))]);
    let out = fake.cli(&["--timeout", "800ms", "set", "k", "v"]);
    assert_eq!(out.code, 4, "{:?}", out.stderr);
    let err = out.stderr.unwrap();
    assert!(err.contains("may or may not"), "{err}");
    let out = fake.cli(&["--timeout", "800ms", "get", "k"]);
    assert_eq!(out.code, 3, "{:?}", out.stderr);
}

#[test]
fn paused_cached_leader_does_not_eat_the_whole_timeout() {
    // Node 1 (cached) is silent; node 2 took over. A write must still succeed.
    let fake = Fake::start(3, &[(1, Silent), (2, Leader), (3, Follower(Some(2)))]);
    std::fs::write(fake.dir.join("cli-leader"), "1\n").unwrap();
    let out = fake.cli(&["--timeout", "5s", "set", "k", "v"]);
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    assert_eq!(fake.leader_file().as_deref(), Some("2"));
}

#[test]
fn unknown_answer_is_retried_with_the_same_session_and_seq_and_applied_once() {
    let fake = Fake::start(1, &[(1, UnknownFirst(2))]);
    let out = fake.cli(&["set", "k", "v"]);
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    let received = fake.writes_received();
    assert_eq!(received.len(), 3, "{received:?}");
    assert!(received.windows(2).all(|w| w[0] == w[1]), "same node, session, seq each time: {received:?}");
    assert_eq!(fake.store.lock().unwrap().applied, 1);
}

#[test]
fn unknown_until_the_timeout_exits_4() {
    let fake = Fake::start(1, &[(1, UnknownFirst(u32::MAX))]);
    let out = fake.cli(&["--timeout", "500ms", "set", "k", "v"]);
    assert_eq!(out.code, 4, "{:?}", out.stderr);
}

#[test]
fn leader_crash_after_append_then_retry_on_the_new_leader_applies_once() {
    // Node 1 applies and hangs up; the client goes round, node 2 (sharing the state
    // machine, as a new leader would) answers the retry from the session cache.
    let fake = Fake::start(2, &[(1, ApplyThenHangUp), (2, Leader)]);
    std::fs::write(fake.dir.join("cli-leader"), "1\n").unwrap();
    let out = fake.cli(&["cas", "--expect-absent", "k", "v"]);
    assert_eq!(out.code, 0, "a retried cas must get its first answer, not a mismatch: {:?}", out.stderr);
    let received = fake.writes_received();
    assert_eq!(received.len(), 2);
    assert_eq!((received[0].1, received[0].2), (received[1].1, received[1].2));
    assert_eq!(fake.store.lock().unwrap().applied, 1);
}

#[test]
fn sessions_differ_between_invocations() {
    let fake = Fake::start(1, &[(1, Leader)]);
    fake.cli(&["set", "a", "1"]);
    fake.cli(&["set", "a", "2"]);
    let r = fake.writes_received();
    assert_ne!(r[0].1, r[1].1, "each client has its own random session");
    assert_eq!(fake.cli(&["get", "a"]).stdout_text(), "2\n");
}

#[test]
fn status_table_shows_unreachable_nodes() {
    let fake = Fake::start(3, &[(1, Leader), (3, Follower(Some(1)))]);
    let out = fake.cli(&["status"]);
    assert_eq!(out.code, 0);
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("node") && lines[0].contains("applied"));
    assert!(lines[1].contains("leader") && lines[1].contains("1001"));
    assert!(lines[2].contains("unreachable"), "{text}");
    assert!(lines[3].contains("follower"));
}

#[test]
fn bench_against_the_fake_reports_json() {
    let fake = Fake::start(3, &[(1, Follower(Some(2))), (2, Leader), (3, Follower(Some(2)))]);
    std::fs::write(fake.dir.join("cli-leader"), "1\n").unwrap();
    let out = fake.cli(&[
        "bench",
        "--clients",
        "4",
        "--requests",
        "2000",
        "--keys",
        "10",
        "--value-size",
        "16",
        "--read-ratio",
        "0.5",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["ok"], 2000);
    assert_eq!(v["failed"], 0);
    assert!(v["throughput"].as_f64().unwrap() > 0.0);
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() >= v["latency_ms"]["p50"].as_f64().unwrap());
    let s = fake.store.lock().unwrap();
    assert_eq!(s.applied, v["writes"].as_u64().unwrap(), "each write applied once");
}

#[test]
fn bench_follows_a_leader_change_without_applying_twice() {
    let fake = Fake::start(2, &[(1, Leader), (2, Follower(Some(1)))]);
    let modes = fake.modes.clone();
    let store = fake.store.clone();
    // Move the leadership once the bench is well under way (a condition, not a delay), so
    // requests are in flight when node 1 starts answering NotLeader.
    let flip = thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store.lock().unwrap().applied < 200 && std::time::Instant::now() < deadline {
            thread::yield_now();
        }
        modes.lock().unwrap().insert(1, Follower(Some(2)));
        modes.lock().unwrap().insert(2, Leader);
    });
    let out = fake.cli(&["bench", "--clients", "3", "--requests", "3000", "--read-ratio", "0", "--json"]);
    flip.join().unwrap();
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["ok"], 3000);
    assert!(v["errors"]["redirects"].as_u64().unwrap() > 0, "the bench must have been redirected: {v}");
    assert_eq!(fake.store.lock().unwrap().applied, 3000);
    fake.set_mode(1, Leader);
}
