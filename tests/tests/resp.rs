//! The RESP front end end to end (issue 15): a real Redis client library (`redis`),
//! redis-cli and redis-benchmark talk to the cluster's nodes over TCP. Every command the
//! front end offers, through a follower (forwarded to the leader) and the leader; a leader
//! killed in the middle of a pipelined load (no hang, no acknowledged write lost); bad
//! input (a protocol error and a closed connection, the node still serving); a cluster
//! without a majority (`-CLUSTERDOWN`).

use raft_e2e::*;
use raft_resp::{encode_command, parse_reply, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(15);

fn resp_cluster(nodes: u64) -> (Cluster, u32) {
    let base = free_redis_base(nodes);
    let c = Cluster::start(Opts { nodes, redis_port: base, ..Opts::default() });
    (c, base)
}

fn port(base: u32, id: u64) -> u16 {
    (base as u64 + id) as u16
}

/// A node other than `leader`.
fn follower(c: &Cluster, leader: u64) -> u64 {
    c.ids().into_iter().find(|&i| i != leader).expect("more than one node")
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a valid url");
    let con = client.get_connection_with_timeout(IO_TIMEOUT).expect("connect to the RESP port");
    con.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    con
}

fn cmd(words: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c
}

/// The error text of a command that must fail.
fn error(con: &mut redis::Connection, words: &[&str]) -> String {
    match cmd(words).query::<redis::Value>(con) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{words:?} should fail, got {v:?}"),
    }
}

/// A client that writes raw bytes and reads replies with raft-resp's parser.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    /// The next reply; `None` if the connection closed or nothing came within `timeout`.
    fn reply_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((v, used)) = parse_reply(&self.buf).expect("the node sends valid RESP") {
                self.buf.drain(..used);
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    fn reply(&mut self) -> Value {
        self.reply_within(IO_TIMEOUT).expect("a reply")
    }

    /// Whether the node closed the connection within `timeout` (after any replies).
    fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn every_command_works_through_a_follower_and_the_leader() {
    let (c, base) = resp_cluster(5);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let f = follower(&c, leader);
    for node in [f, leader] {
        let mut con = connect(port(base, node));
        let con = &mut con;
        let p = |k: &str| format!("n{node}:{k}");
        // Connection commands.
        assert_eq!(cmd(&["PING"]).query::<String>(con).unwrap(), "PONG");
        assert_eq!(cmd(&["PING", "hi"]).query::<String>(con).unwrap(), "hi");
        assert_eq!(cmd(&["ECHO", "x y"]).query::<String>(con).unwrap(), "x y");
        assert_eq!(cmd(&["SELECT", "0"]).query::<String>(con).unwrap(), "OK");
        assert!(error(con, &["SELECT", "1"]).contains("DB index is out of range"));
        assert_eq!(cmd(&["CLIENT", "SETNAME", "tester"]).query::<String>(con).unwrap(), "OK");
        assert_eq!(cmd(&["CLIENT", "GETNAME"]).query::<String>(con).unwrap(), "tester");
        let id: i64 = cmd(&["CLIENT", "ID"]).query(con).unwrap();
        let info: String = cmd(&["CLIENT", "INFO"]).query(con).unwrap();
        assert!(info.contains(&format!("id={id} ")) && info.contains("name=tester"), "{info}");
        let count: i64 = cmd(&["COMMAND", "COUNT"]).query(con).unwrap();
        assert!(count >= 30, "{count}");
        let commands: Vec<redis::Value> = cmd(&["COMMAND"]).query(con).unwrap();
        assert_eq!(commands.len() as i64, count);
        let docs: redis::Value = cmd(&["COMMAND", "DOCS", "get"]).query(con).unwrap();
        assert!(format!("{docs:?}").contains("string value of a key"), "{docs:?}");
        let cfg: Vec<String> = cmd(&["CONFIG", "GET", "appendonly"]).query(con).unwrap();
        assert_eq!(cfg, ["appendonly", "yes"]);
        let cfg: Vec<String> = cmd(&["CONFIG", "GET", "save"]).query(con).unwrap();
        assert_eq!(cfg, ["save", ""]);
        let info: String = cmd(&["INFO"]).query(con).unwrap();
        let role = if node == leader { "raft_role:leader" } else { "raft_role:follower" };
        for needle in ["# Server", "# Clients", "# Replication", role, &format!("raft_leader:{leader}"), "# Keyspace"] {
            assert!(info.contains(needle), "`{needle}` in INFO of n{node}: {info}");
        }

        // Strings.
        assert_eq!(cmd(&["SET", &p("a"), "1"]).query::<String>(con).unwrap(), "OK");
        assert_eq!(cmd(&["GET", &p("a")]).query::<Option<String>>(con).unwrap().as_deref(), Some("1"));
        assert_eq!(cmd(&["GET", &p("none")]).query::<Option<String>>(con).unwrap(), None);
        assert_eq!(cmd(&["SET", &p("a"), "2", "NX"]).query::<Option<String>>(con).unwrap(), None);
        assert_eq!(cmd(&["SET", &p("b"), "2", "XX"]).query::<Option<String>>(con).unwrap(), None);
        assert_eq!(
            cmd(&["SET", &p("a"), "3", "XX", "GET"]).query::<Option<String>>(con).unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(cmd(&["SETNX", &p("a"), "x"]).query::<i64>(con).unwrap(), 0);
        assert_eq!(cmd(&["SETNX", &p("c"), "x"]).query::<i64>(con).unwrap(), 1);
        assert_eq!(cmd(&["GETSET", &p("c"), "y"]).query::<Option<String>>(con).unwrap().as_deref(), Some("x"));
        assert_eq!(cmd(&["MSET", &p("m1"), "v1", &p("m2"), "v2"]).query::<String>(con).unwrap(), "OK");
        let got: Vec<Option<String>> = cmd(&["MGET", &p("m1"), &p("none"), &p("m2")]).query(con).unwrap();
        assert_eq!(got, [Some("v1".into()), None, Some("v2".into())]);
        assert_eq!(cmd(&["GETDEL", &p("m1")]).query::<Option<String>>(con).unwrap().as_deref(), Some("v1"));
        assert_eq!(cmd(&["EXISTS", &p("m1"), &p("m2"), &p("m2")]).query::<i64>(con).unwrap(), 2);
        assert_eq!(cmd(&["DEL", &p("m2"), &p("c"), &p("none")]).query::<i64>(con).unwrap(), 2);
        assert_eq!(cmd(&["INCR", &p("n")]).query::<i64>(con).unwrap(), 1);
        assert_eq!(cmd(&["INCRBY", &p("n"), "10"]).query::<i64>(con).unwrap(), 11);
        assert_eq!(cmd(&["DECR", &p("n")]).query::<i64>(con).unwrap(), 10);
        assert_eq!(cmd(&["DECRBY", &p("n"), "20"]).query::<i64>(con).unwrap(), -10);
        cmd(&["SET", &p("word"), "abc"]).query::<String>(con).unwrap();
        assert!(error(con, &["INCR", &p("word")]).contains("value is not an integer or out of range"));
        cmd(&["SET", &p("big"), &i64::MAX.to_string()]).query::<String>(con).unwrap();
        assert!(error(con, &["INCR", &p("big")]).contains("increment or decrement would overflow"));
        assert_eq!(cmd(&["APPEND", &p("s"), "ab"]).query::<i64>(con).unwrap(), 2);
        assert_eq!(cmd(&["APPEND", &p("s"), "cd"]).query::<i64>(con).unwrap(), 4);
        assert_eq!(cmd(&["STRLEN", &p("s")]).query::<i64>(con).unwrap(), 4);
        assert_eq!(cmd(&["TYPE", &p("s")]).query::<String>(con).unwrap(), "string");
        assert_eq!(cmd(&["TYPE", &p("none")]).query::<String>(con).unwrap(), "none");
        let mut keys: Vec<String> = cmd(&["KEYS", &format!("n{node}:[ab]*")]).query(con).unwrap();
        keys.sort();
        assert_eq!(keys, [p("a"), p("big")]);
        assert!(cmd(&["DBSIZE"]).query::<i64>(con).unwrap() >= 5);

        // Errors as Redis words them; expiry refused.
        let e = error(con, &["FROB", "x", "y"]);
        assert!(e.contains("unknown command 'FROB', with args beginning with: 'x' 'y'"), "{e}");
        assert!(error(con, &["GET"]).contains("wrong number of arguments for 'get' command"));
        assert!(error(con, &["SET", &p("a"), "1", "EX", "10"]).contains("keys do not expire"));
        assert!(error(con, &["EXPIRE", &p("a"), "10"]).contains("keys do not expire"));

        // WAIT: all four followers hold this connection's writes (the cluster is whole).
        assert_eq!(cmd(&["WAIT", "4", "5000"]).query::<i64>(con).unwrap(), 4);

        // READONLY reads this node's own state machine; READWRITE goes back.
        assert_eq!(cmd(&["READONLY"]).query::<String>(con).unwrap(), "OK");
        let stale = c.wait("the write reaches this node", Duration::from_secs(10), || {
            cmd(&["GET", &p("s")]).query::<Option<String>>(con).unwrap()
        });
        assert_eq!(stale, "abcd");
        assert_eq!(cmd(&["READWRITE"]).query::<String>(con).unwrap(), "OK");
    }
}

#[test]
fn scan_returns_every_key_once_across_calls_and_concurrent_writes() {
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    // `up` says how to connect; `status` shows each node's port.
    let line = format!("redis-cli -h 127.0.0.1 -p {}", port(base, 1));
    assert!(c.supervisor_output().contains(&line), "`{line}` in: {}", c.supervisor_output());
    let st = c.sup_status().unwrap();
    for n in &st.nodes {
        assert_eq!(n.redis_port, Some(port(base, n.id)), "{n:?}");
    }
    let mut con = connect(port(base, follower(&c, leader)));
    let keys: Vec<String> = (0..120).map(|i| format!("scan:{i:03}")).collect();
    for chunk in keys.chunks(40) {
        let mut m = redis::cmd("MSET");
        for k in chunk {
            m.arg(k).arg("v");
        }
        m.query::<String>(&mut con).unwrap();
    }
    cmd(&["SET", "other", "x"]).query::<String>(&mut con).unwrap();
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) =
            cmd(&["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "7"]).query(&mut con).unwrap();
        assert!(batch.len() <= 7, "COUNT bounds each call");
        seen.extend(batch);
        // Writes between calls: a new key before the cursor and one after it.
        cmd(&["SET", &format!("scan:new{calls}"), "v"]).query::<String>(&mut con).unwrap();
        calls += 1;
        assert!(calls < 100, "the scan ends");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no key returned twice");
    for k in &keys {
        assert!(seen.contains(k), "{k} was present throughout and must be returned");
    }
    assert!(!seen.contains(&"other".to_string()), "MATCH filters");
    assert!(error(&mut con, &["SCAN", "12345"]).contains("invalid cursor"));
}

#[test]
fn a_leader_killed_during_a_pipelined_load_loses_no_acknowledged_write() {
    let (c, base) = resp_cluster(5);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let f = follower(&c, leader);
    let mut raw = Raw::connect(port(base, f));
    const BATCH: usize = 50;
    const BATCHES: usize = 60;
    let mut acked: Vec<String> = Vec::new();
    let mut failed = 0;
    let mut acked_after_kill = 0;
    let mut killed = false;
    let started = Instant::now();
    for b in 0..BATCHES {
        let mut bytes = Vec::new();
        let keys: Vec<String> = (0..BATCH).map(|i| format!("fo:{b:03}:{i:02}")).collect();
        for k in &keys {
            bytes.extend(encode_command(&["SET", k, k]));
        }
        raw.send(&bytes);
        for k in keys {
            match raw.reply_within(Duration::from_secs(20)) {
                Some(Value::Simple(ok)) if ok == "OK" => {
                    acked.push(k);
                    if killed {
                        acked_after_kill += 1;
                    }
                }
                Some(Value::Error(e)) => {
                    assert!(e.starts_with("CLUSTERDOWN") || e.starts_with("TIMEOUT"), "an actionable error: {e}");
                    failed += 1;
                }
                other => panic!("no hang: every pipelined SET gets a reply, got {other:?}"),
            }
        }
        if b == BATCHES / 3 {
            c.kill(leader);
            killed = true;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(60), "the load went on");
    assert!(acked_after_kill > 0, "writes were acknowledged after the failover ({failed} failed)");
    let (new_leader, _) =
        c.wait_leader(&c.ids().into_iter().filter(|&i| i != leader).collect::<Vec<_>>(), Duration::from_secs(10));
    // Every acknowledged write is readable, through another node than the one written to.
    let reader = c.ids().into_iter().find(|&i| i != leader && i != f).unwrap();
    let mut con = connect(port(base, reader));
    for chunk in acked.chunks(500) {
        let mut m = redis::cmd("MGET");
        for k in chunk {
            m.arg(k);
        }
        let got: Vec<Option<String>> = m.query(&mut con).unwrap();
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v.as_deref(), Some(k.as_str()), "acknowledged SET {k} lost (new leader n{new_leader})");
        }
    }
}

#[test]
fn bad_input_gets_a_protocol_error_and_the_node_keeps_serving() {
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let p = port(base, follower(&c, leader));
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
        // A bulk length over the value limit (256 KiB) is refused before its bytes come.
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n", "invalid bulk length"),
        // More arguments than any command may have.
        (b"*1000000\r\n", "invalid multibulk length"),
        (b"SET \"unbalanced\r\n", "unbalanced quotes in request"),
    ];
    for (bytes, want) in cases {
        let mut raw = Raw::connect(p);
        raw.send(bytes);
        let reply = raw.reply();
        assert_eq!(reply, Value::Error(format!("ERR Protocol error: {want}")), "{:?}", String::from_utf8_lossy(bytes));
        assert!(raw.closed_within(Duration::from_secs(5)), "the connection is closed after a protocol error");
    }
    // An inline command line longer than 64 KiB.
    let mut raw = Raw::connect(p);
    raw.send(&vec![b'a'; 70 * 1024]);
    assert_eq!(raw.reply(), Value::Error("ERR Protocol error: too big inline request".into()));
    assert!(raw.closed_within(Duration::from_secs(5)));

    // A frame never finished: the node closes the connection after its timeout.
    let mut raw = Raw::connect(p);
    raw.send(b"*2\r\n$3\r\nGET\r\n$5\r\nab");
    let reply = raw.reply_within(PARTIAL_FRAME_TIMEOUT + Duration::from_secs(10));
    let Some(Value::Error(e)) = reply else { panic!("a protocol error, got {reply:?}") };
    assert!(e.contains("Protocol error: a frame was not finished"), "{e}");
    assert!(raw.closed_within(Duration::from_secs(5)));

    // Inline commands (telnet) and pipelining of them work; a key that is not UTF-8 is refused.
    let mut raw = Raw::connect(p);
    raw.send(b"PING\r\nSET tel \"a b\"\r\nGET tel\r\n");
    assert_eq!(raw.reply(), Value::Simple("PONG".into()));
    assert_eq!(raw.reply(), Value::Simple("OK".into()));
    assert_eq!(raw.reply(), Value::Bulk(b"a b".to_vec()));
    raw.send(b"*2\r\n$3\r\nGET\r\n$2\r\n\xff\xfe\r\n");
    let Value::Error(e) = raw.reply() else { panic!() };
    assert!(e.contains("UTF-8"), "{e}");
    // HELLO 3 switches to RESP3 (a map), QUIT answers and closes.
    raw.send(&encode_command(&["HELLO", "3"]));
    let hello = raw.reply();
    let Value::Map(hello) = hello else { panic!("HELLO 3 answers a RESP3 map, got {hello:?}") };
    assert!(hello.contains(&(Value::Bulk(b"proto".to_vec()), Value::Int(3))));
    raw.send(&encode_command(&["GET", "nope"]));
    assert_eq!(raw.reply(), Value::Nil);
    assert!(raw.buf.is_empty());
    // Pipelines longer than the per-connection window all get answered, in order.
    let mut many = Vec::new();
    for i in 0..1000 {
        many.extend(encode_command(&["ECHO", &i.to_string()]));
    }
    for i in 0..300 {
        many.extend(encode_command(&["SET", &format!("pipe{i}"), &i.to_string()]));
    }
    many.extend(encode_command(&["GET", "pipe299"]));
    raw.send(&many);
    for i in 0..1000 {
        assert_eq!(raw.reply(), Value::Bulk(i.to_string().into_bytes()));
    }
    for _ in 0..300 {
        assert_eq!(raw.reply(), Value::Simple("OK".into()));
    }
    assert_eq!(raw.reply(), Value::Bulk(b"299".to_vec()), "a read sees the writes pipelined before it");
    raw.send(b"QUIT\r\n");
    assert_eq!(raw.reply(), Value::Simple("OK".into()));
    assert!(raw.closed_within(Duration::from_secs(5)));

    // The node still serves, and logged the refusals.
    let mut con = connect(p);
    assert_eq!(cmd(&["GET", "tel"]).query::<String>(&mut con).unwrap(), "a b");
    let log = c.read_log(follower(&c, leader));
    assert!(log.contains("Protocol error: invalid multibulk length"), "{log}");
}

/// raft-node's `PARTIAL_FRAME_TIMEOUT` (this crate runs the binaries, it does not link them).
const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(3);

#[test]
fn without_a_majority_a_write_gets_clusterdown() {
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let survivor = follower(&c, leader);
    for id in c.ids().into_iter().filter(|&i| i != survivor) {
        c.kill(id);
    }
    let mut con = connect(port(base, survivor));
    let e = error(&mut con, &["SET", "k", "v"]);
    // The redis crate names the CLUSTERDOWN prefix `ClusterDown`.
    assert!(e.contains("ClusterDown") || e.contains("CLUSTERDOWN"), "{e}");
    assert!(e.contains("not applied"), "says the write surely was not applied: {e}");
    // Local commands still answer, and a stale read too.
    assert_eq!(cmd(&["PING"]).query::<String>(&mut con).unwrap(), "PONG");
    cmd(&["READONLY"]).query::<String>(&mut con).unwrap();
    assert_eq!(cmd(&["GET", "k"]).query::<Option<String>>(&mut con).unwrap(), None);
}

/// redis-cli and redis-benchmark from Debian's redis-tools (installed by .ci/run).
fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(std::env::var_os("RAFT_E2E_REQUIRE").is_none(), "{name} is missing (apt-get install redis-tools)");
        eprintln!("skipping: {name} not installed");
    }
    found
}

#[test]
fn redis_cli_and_redis_benchmark_work_against_the_cluster() {
    let (Some(cli), Some(bench)) = (tool("redis-cli"), tool("redis-benchmark")) else { return };
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let p = port(base, follower(&c, leader)).to_string();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(["-p", &p]).args(args);
        let out = run_limited(&mut cmd, Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "{}", out.describe());
        out.stdout
    };
    assert_eq!(run(&["PING"]), "PONG\n");
    assert_eq!(run(&["SET", "chelsea", "rules"]), "OK\n");
    assert_eq!(run(&["GET", "chelsea"]), "rules\n");
    assert_eq!(run(&["INCRBY", "n", "5"]), "5\n", "no tty: no type annotations");
    assert_eq!(run(&["MGET", "chelsea", "nope"]), "rules\n\n");
    assert_eq!(run(&["--scan", "--pattern", "chel*"]), "chelsea\n");
    let info = run(&["INFO", "replication"]);
    assert!(info.contains("raft_role:follower"), "{info}");
    // Commands on stdin, as a person pipes them.
    let mut piped = std::process::Command::new(&cli);
    piped.args(["-p", &p]).stdin(std::process::Stdio::piped());
    let out = {
        use std::process::Stdio;
        let mut child = piped.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"SET a 1\nAPPEND a 23\nGET a\n").unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n3\n123\n");

    let mut b = std::process::Command::new(&bench);
    b.args(["-p", &p, "-t", "set,get", "-n", "2000", "-q"]);
    let out = run_limited(&mut b, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!text.contains("ERR") && !text.contains("WARNING"), "redis-benchmark saw errors: {text}");
    for t in ["SET:", "GET:"] {
        assert!(text.contains(t) && text.contains("requests per second"), "{text}");
    }
}

#[test]
fn a_write_whose_leader_froze_gets_timeout_not_clusterdown() {
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let f = follower(&c, leader);
    let other = c.ids().into_iter().find(|&i| i != leader && i != f).unwrap();
    // Two of three left: the leader still commits with f, but f alone can elect nobody.
    c.kill(other);
    let mut raw = Raw::connect(port(base, f));
    let mut outcome = None;
    for attempt in 0..3 {
        raw.send(&encode_command(&["SET", "warm", "up"]));
        assert_eq!(raw.reply(), Value::Simple("OK".into()), "the link to the leader is open");
        // Frozen, not dead: f forwards the write before its election timer runs out, and
        // nobody answers it. Whether it was applied is unknown.
        c.pause(leader);
        raw.send(&encode_command(&["SET", "frozen", &attempt.to_string()]));
        let reply = raw.reply_within(Duration::from_secs(20)).expect("answered at the deadline, no hang");
        c.resume(leader);
        c.wait_leader(&[leader, f], Duration::from_secs(10));
        match reply {
            Value::Error(e) if e.starts_with("TIMEOUT") => {
                outcome = Some(e);
                break;
            }
            // f had already given up on the leader: the write surely was not sent.
            Value::Error(e) if e.starts_with("CLUSTERDOWN") => assert!(e.contains("not applied"), "{e}"),
            other => panic!("a frozen leader cannot answer: {other:?}"),
        }
    }
    let e = outcome.expect("one of three writes reached the frozen leader");
    assert!(e.contains("may or may not have been applied"), "{e}");
    // Whatever happened to it, the cluster serves again.
    raw.send(&encode_command(&["GET", "warm"]));
    assert_eq!(raw.reply(), Value::Bulk(b"up".to_vec()));
}

/// Issue 16: the front end skips the read that would only say `WouldBlock` after a short
/// one. A command whose second half comes later must still be read (a new edge clears
/// the skip), and a client that sends and closes at once must get its replies and its
/// close (the close may come in the same event as the data: read to the end then).
#[test]
fn a_command_sent_in_two_pieces_and_a_client_that_closes_right_after_sending_are_served() {
    let (c, base) = resp_cluster(3);
    let (leader, _) = c.wait_leader(&c.ids(), Duration::from_secs(10));
    let p = port(base, leader);
    for round in 0..20 {
        let key = format!("piece{round}");
        let whole = encode_command(&["SET", &key, "joined"]);
        let (first, second) = whole.split_at(whole.len() - 4);
        let mut raw = Raw::connect(p);
        raw.send(first);
        // A round trip on another connection: the node's one loop has taken the first
        // half's event by the time it answers this PING.
        let mut other = Raw::connect(p);
        other.send(b"PING\r\n");
        assert_eq!(other.reply(), Value::Simple("PONG".into()));
        raw.send(second);
        assert_eq!(raw.reply(), Value::Simple("OK".into()), "round {round}: the second half was read");

        let mut quick = Raw::connect(p);
        quick.send(&[encode_command(&["SET", &key, "again"]), encode_command(&["GET", &key])].concat());
        quick.s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(quick.reply(), Value::Simple("OK".into()));
        assert_eq!(quick.reply(), Value::Bulk(b"again".to_vec()));
        assert!(quick.closed_within(Duration::from_secs(5)), "round {round}: the node saw the client's close");
    }
}
