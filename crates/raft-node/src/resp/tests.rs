//! The command layer's Redis wording and reply translation, without sockets.

use super::commands::{self, ConnState, Plan, Want};
use super::{NodeFacts, View};
use raft_core::RoleKind;
use raft_kv::{OpError, Reply};
use raft_resp::{Protocol, Value};

fn view() -> View {
    View {
        id: 2,
        node: NodeFacts {
            role: RoleKind::Follower,
            term: 3,
            leader: Some(1),
            commit: 10,
            applied: 9,
            last_index: 11,
            keys: 4,
        },
        clients: 1,
        fsync: true,
        quota_bytes: 0,
        port: 6381,
    }
}

fn conn() -> ConnState {
    ConnState {
        id: 7,
        proto: Protocol::Resp2,
        name: None,
        readonly: false,
        addr: "127.0.0.1:5000".into(),
        local_addr: "127.0.0.1:6381".into(),
    }
}

fn run(words: &[&str]) -> Plan {
    let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    commands::plan(&args, &mut conn(), &view())
}

fn reply(words: &[&str]) -> Value {
    match run(words) {
        Plan::Reply(v) | Plan::Close(v) => v,
        _ => panic!("{words:?} should be answered at once"),
    }
}

#[test]
fn unknown_commands_and_arity_are_worded_as_redis() {
    assert_eq!(
        reply(&["FOO", "a", "b"]),
        Value::Error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ".into())
    );
    assert_eq!(reply(&["foo"]), Value::Error("ERR unknown command 'foo', with args beginning with: ".into()));
    assert_eq!(reply(&["GET"]), Value::Error("ERR wrong number of arguments for 'get' command".into()));
    assert_eq!(reply(&["get", "a", "b"]), Value::Error("ERR wrong number of arguments for 'get' command".into()));
    assert_eq!(
        reply(&["MSET", "a", "1", "b"]),
        Value::Error("ERR wrong number of arguments for 'mset' command".into())
    );
    assert_eq!(reply(&["INCRBY", "n", "x"]), Value::Error("ERR value is not an integer or out of range".into()));
    assert_eq!(reply(&["SET", "k", "v", "NX", "XX"]), Value::Error("ERR syntax error".into()));
    assert_eq!(reply(&["SELECT", "1"]), Value::Error("ERR DB index is out of range".into()));
    assert_eq!(reply(&["HELLO", "4"]), Value::Error("NOPROTO unsupported protocol version".into()));
}

#[test]
fn expiry_is_refused_with_a_reason() {
    for words in [&["SET", "k", "v", "EX", "10"][..], &["EXPIRE", "k", "10"], &["SETEX", "k", "10", "v"]] {
        let Value::Error(e) = reply(words) else { panic!("{words:?}") };
        assert!(e.starts_with("ERR ") && e.contains("not deterministic across replicas"), "{e}");
    }
}

#[test]
fn local_commands_answer_at_once() {
    assert_eq!(reply(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(reply(&["ping", "hi"]), Value::bulk("hi"));
    assert_eq!(reply(&["ECHO", "x"]), Value::bulk("x"));
    assert_eq!(reply(&["SELECT", "0"]), Value::ok());
    assert_eq!(reply(&["COMMAND", "COUNT"]), Value::Int(commands::TABLE.len() as i64));
    let Value::Map(cfg) = reply(&["CONFIG", "GET", "*"]) else { panic!() };
    let get = |k: &str| cfg.iter().find(|(n, _)| *n == Value::bulk(k)).map(|(_, v)| v.clone());
    assert_eq!(get("appendonly"), Some(Value::bulk("yes")));
    assert_eq!(get("save"), Some(Value::bulk("")));
    assert_eq!(get("appendfsync"), Some(Value::bulk("always")));
    let Value::Bulk(info) = reply(&["INFO", "replication"]) else { panic!() };
    let info = String::from_utf8(info).unwrap();
    for line in ["role:slave", "raft_term:3", "raft_leader:1", "raft_commit_index:10", "raft_applied_index:9"] {
        assert!(info.contains(line), "{line} in {info}");
    }
    assert!(!info.contains("# Keyspace"), "only the section asked for");
}

#[test]
fn client_and_hello_change_the_connection() {
    let mut c = conn();
    let args = |w: &[&str]| w.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
    assert!(matches!(
        commands::plan(&args(&["CLIENT", "SETNAME", "me"]), &mut c, &view()),
        Plan::Reply(Value::Simple(_))
    ));
    assert_eq!(c.name.as_deref(), Some("me"));
    let Plan::Reply(Value::Map(hello)) = commands::plan(&args(&["HELLO", "3"]), &mut c, &view()) else { panic!() };
    assert_eq!(c.proto, Protocol::Resp3);
    assert!(hello.contains(&(Value::bulk("proto"), Value::Int(3))));
    assert!(hello.contains(&(Value::bulk("role"), Value::bulk("replica"))));
    commands::plan(&args(&["READONLY"]), &mut c, &view());
    assert!(c.readonly);
    commands::plan(&args(&["READWRITE"]), &mut c, &view());
    assert!(!c.readonly);
}

#[test]
fn cluster_replies_translate_to_redis_replies() {
    use commands::translate as t;
    assert_eq!(t(Want::Ok, Reply::Done), Value::ok());
    assert_eq!(t(Want::Set { get: false }, Reply::SetIf { applied: false, old: None }), Value::Nil);
    assert_eq!(t(Want::Set { get: true }, Reply::SetIf { applied: true, old: Some(b"o".to_vec()) }), Value::bulk("o"));
    assert_eq!(t(Want::SetNx, Reply::SetIf { applied: true, old: None }), Value::Int(1));
    assert_eq!(
        t(Want::Int, Reply::Failed(OpError::NotAnInteger)),
        Value::err("value is not an integer or out of range")
    );
    assert_eq!(t(Want::Type, Reply::Count(0)), Value::Simple("none".into()));
    assert_eq!(t(Want::Ttl, Reply::Count(1)), Value::Int(-1));
    let Value::Error(e) = t(Want::Keys, Reply::Scan { keys: vec![], next: Some("k".into()) }) else { panic!() };
    assert!(e.contains("use SCAN"), "{e}");
}
