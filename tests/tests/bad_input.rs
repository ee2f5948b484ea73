//! Bad input, end to end: garbage on a node's socket, a corrupted WAL, a bad config, and a
//! client with no cluster. Each is an error with a clear message, never a crash of
//! anything else and never a silent loss (DESIGN.md, rule 5).

use raft_e2e::*;
use raft_wire::{encode, Hello, MAX_FRAME_BYTES};
use std::process::Command;
use std::time::Duration;

/// Long enough for a node to notice a bad frame and close, with two busy cores.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn garbage_and_oversize_frames_close_the_connection_and_the_node_keeps_serving() {
    let c = Cluster::start(Opts::default());
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let follower = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    let hello = encode(&Hello::Client).expect("hello encodes");
    let oversize = ((MAX_FRAME_BYTES as u32) + 1).to_be_bytes().to_vec();
    let mut garbage_frame = 16u32.to_be_bytes().to_vec();
    garbage_frame.extend_from_slice(&[0xff; 16]);
    let garbage = garbage_frame.clone();
    let mut noise = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    let huge_key = [hello.clone(), claims_huge_key()].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a request whose key claims 64 TiB, in a small frame", huge_key),
        ("random bytes", noise),
        ("a garbage first frame", garbage_frame.clone()),
        ("an oversize length first", oversize.clone()),
        ("u32::MAX as the length", u32::MAX.to_be_bytes().to_vec()),
        ("garbage after a client hello", [hello.clone(), garbage_frame].concat()),
        ("an oversize length after a client hello", [hello, oversize].concat()),
    ];
    let cluster_id = raft_config::load_file(&c.config).expect("the test's config loads").cluster_id();
    for id in [leader, follower] {
        let pid = c.node_status(id).expect("node answers").pid;
        let other = if id == 1 { 2 } else { 1 };
        let peer = |cluster_id, node| encode(&Hello::Peer { cluster_id, node, nonce: [7; 32] }).expect("hello encodes");
        let mut cases = cases.clone();
        cases.push(("a peer hello from another cluster", peer(cluster_id ^ 1, other)));
        cases.push(("a peer hello claiming the node's own id", peer(cluster_id, id)));
        cases.push(("a peer hello from a node not in the cluster", peer(cluster_id, 9)));
        cases.push(("garbage after a valid peer hello", [peer(cluster_id, other), garbage.clone()].concat()));

        // A connection that stops in the middle of a frame holds nothing up.
        let mut stalled = std::os::unix::net::UnixStream::connect(c.node_socket(id)).expect("connect");
        std::io::Write::write_all(
            &mut stalled,
            &[encode(&Hello::Client).expect("hello"), vec![0, 0, 4, 0, 1, 2, 3]].concat(),
        )
        .expect("write a partial frame");
        let started = std::time::Instant::now();
        assert!(c.node_status(id).is_some(), "node {id} answers while another connection is mid-frame");
        assert!(started.elapsed() < Duration::from_secs(1), "and at once: {:?}", started.elapsed());

        for (what, bytes) in &cases {
            let closed = closes_after(&c.node_socket(id), bytes, CLOSE_TIMEOUT).expect("connect");
            assert!(closed, "node {id} did not close a connection that sent {what}");
            // Still serving, same process.
            let s = c.node_status(id).unwrap_or_else(|| panic!("node {id} stopped answering after {what}"));
            assert_eq!(s.pid, pid, "node {id} restarted after {what}");
        }
        drop(stalled);
        // One log line per closed connection says why.
        c.wait(&format!("node {id} to log every closed connection"), LEADER_TIMEOUT, || {
            (c.read_log(id).lines().filter(|l| l.contains(" closed: ")).count() >= cases.len()).then_some(())
        });
    }
    // The cluster as a whole is unharmed.
    let set = c.cli(&["set", "still", "here"]);
    assert_eq!(set.code, Some(0), "{}", set.describe());
    let get = c.cli(&["get", "still"]);
    assert_eq!(get.stdout, "here\n", "{}", get.describe());
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
    let st = c.sup_status().expect("status");
    assert!(st.nodes.iter().all(|n| n.process == "running"), "no node crashed: {st:?}");
}

/// A well-formed client request frame whose key length says 2^46 bytes (bincode varint:
/// marker 253, then a u64), with only a few bytes behind it: decoding must fail on the
/// claim, not try to allocate it.
fn claims_huge_key() -> Vec<u8> {
    use raft_wire::{ClientRequest, Request, WriteOp};
    let marker = b"KEYMARK";
    let req = ClientRequest {
        id: 1,
        body: Request::Write {
            session: 1,
            seq: 1,
            op: WriteOp::Set { key: String::from_utf8(marker.to_vec()).expect("ascii"), value: b"v".to_vec() },
        },
    };
    let frame = encode(&req).expect("request encodes");
    let body = &frame[4..];
    let mut needle = vec![marker.len() as u8];
    needle.extend_from_slice(marker);
    let pos = body.windows(needle.len()).position(|w| w == needle.as_slice()).expect("the key's length and bytes");
    let mut patched = body[..pos].to_vec();
    patched.push(253);
    patched.extend_from_slice(&(1u64 << 46).to_le_bytes());
    patched.extend_from_slice(&body[pos + 1..]);
    [(patched.len() as u32).to_be_bytes().to_vec(), patched].concat()
}

#[test]
fn corrupted_wal_byte_stops_that_node_and_the_rest_keep_serving() {
    // Give up after two crashes, quickly.
    let opts = Opts {
        restart_intensity: 2,
        restart_period_ms: 60_000,
        restart_backoff_min_ms: 50,
        restart_backoff_max_ms: 200,
        ..Opts::default()
    };
    let c = Cluster::start(opts);
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    // Fill the WAL with a few hundred records.
    let bench = c.cli(&["bench", "--requests", "500", "--read-ratio", "0", "--clients", "4", "--keys", "500"]);
    assert_eq!(bench.code, Some(0), "{}", bench.describe());
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);

    let victim = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    c.kill(victim);
    // Flip one byte inside the payload of the record in the middle of the newest segment:
    // damage no crash can explain, with valid records after it.
    let segment = wal_segments(&c.wal_dir(victim)).pop().expect("the victim has a WAL segment");
    let records = wal_record_offsets(&segment);
    assert!(records.len() >= 100, "{} holds the writes: {} records", segment.display(), records.len());
    let (rec, len) = records[records.len() / 2];
    let at = rec + 8 + u64::from(len) / 2;
    let flipped = {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&segment).expect("open segment");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).expect("read byte");
        b[0] ^= 0x5a;
        f.write_all_at(&b, at).expect("write byte");
        f.sync_all().expect("sync");
        b[0]
    };

    // `start` is accepted; the node refuses to run, is restarted twice, then given up on.
    c.control(raft_wire::supervisor::SupervisorRequest::Start(victim));
    c.wait(&format!("node {victim} shown as failed"), Duration::from_secs(30), || {
        let st = c.sup_status().ok()?;
        st.nodes.iter().any(|n| n.id == victim && n.process == "failed").then_some(())
    });
    let status = c.sup_ok(&["status"]).stdout;
    assert!(status.contains("failed"), "the status table shows it: {status}");

    // The node said why, naming the file.
    let name = segment.file_name().expect("file name").to_string_lossy().into_owned();
    let log = c.read_log(victim);
    assert!(log.contains(&name), "node {victim}'s log names the corrupt file {name}:\n{log}");
    // ... and the offset: of the damaged record, or of the byte itself.
    assert!(
        log.contains(&format!("offset {rec}")) || log.contains(&format!("offset {at}")),
        "node {victim}'s log names the offset of the damage ({rec} or {at}):\n{log}"
    );

    // The other four keep serving.
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&i| i != victim).collect();
    c.wait_leader(&others, LEADER_TIMEOUT);
    let set = c.cli(&["--timeout", "10s", "set", "after", "corruption"]);
    assert_eq!(set.code, Some(0), "{}", set.describe());
    let get = c.cli(&["get", "after"]);
    assert_eq!(get.stdout, "corruption\n", "{}", get.describe());
    c.wait_converged(&others, CONVERGE_TIMEOUT);
    // And the corrupt file was left for a person to look at, not "repaired" away.
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&segment).expect("segment still there"), &mut b, at)
        .expect("read byte");
    assert_eq!(b[0], flipped, "the damaged byte at offset {at} of {} is left as it was", segment.display());
}

/// Runs a binary with a config file and no cluster state around it.
fn run_with_config(bin: &std::path::Path, config: &std::path::Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config).args(args).env_remove("RAFT_CONFIG");
    run_limited(&mut cmd, COMMAND_LIMIT)
}

#[test]
fn bad_config_is_a_clear_error_naming_the_key() {
    let tmp = short_tempdir();
    let dir = tmp.path().join("c");
    let cases = [
        ("tickms = 10\n", "tickms"),
        ("tick_ms = \"fast\"\n", "tick_ms"),
        ("heartbeat_ticks = 20\nelection_ticks_min = 10\nelection_ticks_max = 30\n", "election_ticks_min"),
        ("nodes = 0\n", "nodes"),
        ("fsync = 3\n", "fsync"),
    ];
    for (i, (body, key)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("dir = {:?}\n{body}", dir.display().to_string())).expect("write config");
        for (bin, args) in [(&bins().supervisor, &["up"][..]), (&bins().cli, &["get", "x"][..])] {
            let out = run_with_config(bin, &path, args);
            assert_eq!(out.code, Some(2), "a bad config is exit 2: {}", out.describe());
            assert!(out.stderr.contains(&format!("`{key}`")), "the message names `{key}`: {}", out.describe());
            assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {}", out.describe());
        }
    }
    // A socket path over the Unix limit is refused up front, naming `dir`.
    let long = tmp.path().join("d".repeat(100));
    let path = tmp.path().join("long.toml");
    std::fs::write(&path, format!("dir = {:?}\n", long.display().to_string())).expect("write config");
    let out = run_with_config(&bins().supervisor, &path, &["up"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("`dir`") && out.stderr.contains("107"), "{}", out.describe());
    assert!(!long.exists(), "nothing was created for a refused config");
}

#[test]
fn cli_with_no_cluster_exits_3_and_says_how_to_start_one() {
    // `raft-cli get x` exactly as a newcomer types it: no --config, no $RAFT_CONFIG, no
    // ./cluster.toml, so the embedded default dir under $TMPDIR, where nothing runs.
    let tmp = short_tempdir();
    let mut cmd = Command::new(&bins().cli);
    cmd.args(["get", "x"]).current_dir(tmp.path()).env("TMPDIR", tmp.path()).env_remove("RAFT_CONFIG");
    let out = run_limited(&mut cmd, COMMAND_LIMIT);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert_eq!(out.stdout, "", "{}", out.describe());
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {}", out.describe());
    assert!(out.stderr.contains("raft-supervisor up"), "says how to start one: {}", out.describe());
    assert!(out.elapsed < Duration::from_secs(10), "and does not wait for the whole timeout: {:?}", out.elapsed);

    // The supervisor's commands say the same.
    let mut cmd = Command::new(&bins().supervisor);
    cmd.args(["status"]).current_dir(tmp.path()).env("TMPDIR", tmp.path()).env_remove("RAFT_CONFIG");
    let out = run_limited(&mut cmd, COMMAND_LIMIT);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(out.stderr.contains("raft-supervisor up"), "{}", out.describe());
}
