//! What each Redis command means here: arity and syntax checked as Redis does (with its
//! wording), then either answered at once from the connection and the node, or turned
//! into one request for the cluster ([`Plan::Cluster`]) with how to read its reply back
//! ([`Want`]). Pure apart from the connection state it is handed.

use super::View;
use raft_kv::{ReadOp, Reply, SetCond, WriteOp, MAX_KEYS_PER_LISTING, MAX_SCAN_EXAMINED};
use raft_resp::{Protocol, Value};
use std::time::Duration;

/// One command of the table: Redis's arity convention (N: exactly N arguments with the
/// name; -N: at least N), flags, key positions, group and summary (for `COMMAND` and
/// `COMMAND DOCS`, which redis-cli asks at start).
pub(crate) struct Spec {
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub keys: (i64, i64, i64),
    pub group: &'static str,
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    group: &'static str,
    summary: &'static str,
) -> Spec {
    Spec { name, arity, flags, keys, group, summary }
}

const W: &[&str] = &["write"];
const R: &[&str] = &["readonly"];
const F: &[&str] = &["fast"];
const NOKEY: (i64, i64, i64) = (0, 0, 0);
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);

pub(crate) const TABLE: &[Spec] = &[
    spec("ping", -1, F, NOKEY, "connection", "Returns the server's liveliness response."),
    spec("echo", 2, F, NOKEY, "connection", "Returns the given string."),
    spec("hello", -1, F, NOKEY, "connection", "Handshakes with the server (protocol 2 or 3)."),
    spec("quit", -1, F, NOKEY, "connection", "Closes the connection."),
    spec("select", 2, F, NOKEY, "connection", "Changes the selected database (only 0 exists)."),
    spec("auth", -2, F, NOKEY, "connection", "Authenticates (no password is configured)."),
    spec("client", -2, F, NOKEY, "connection", "CLIENT SETNAME, GETNAME, ID, INFO, SETINFO."),
    spec("readonly", 1, F, NOKEY, "cluster", "Serves this connection's reads from the local replica (stale)."),
    spec("readwrite", 1, F, NOKEY, "cluster", "Makes this connection's reads linearizable again."),
    spec("command", -1, F, NOKEY, "server", "Returns information about commands."),
    spec("config", -2, F, NOKEY, "server", "CONFIG GET parameter."),
    spec("info", -1, F, NOKEY, "server", "Returns information about the node and the cluster."),
    spec("dbsize", 1, R, NOKEY, "server", "Returns the number of keys."),
    spec("wait", 3, F, NOKEY, "generic", "Waits until followers hold this connection's writes."),
    spec("get", 2, R, ONE, "string", "Returns the string value of a key."),
    spec("set", -3, W, ONE, "string", "Sets the string value of a key (NX, XX, GET; no expiry)."),
    spec("mget", -2, R, ALL, "string", "Returns the values of one or more keys."),
    spec("mset", -3, W, (1, -1, 2), "string", "Sets several keys atomically (one log entry)."),
    spec("setnx", 3, W, ONE, "string", "Sets a key only when it does not exist."),
    spec("getset", 3, W, ONE, "string", "Sets a key and returns its previous value."),
    spec("getdel", 2, W, ONE, "string", "Returns a key's value and deletes it."),
    spec("del", -2, W, ALL, "generic", "Deletes one or more keys."),
    spec("exists", -2, R, ALL, "generic", "Counts how many of the keys exist."),
    spec("incr", 2, W, ONE, "string", "Increments the integer value of a key by one."),
    spec("incrby", 3, W, ONE, "string", "Increments the integer value of a key by a number."),
    spec("decr", 2, W, ONE, "string", "Decrements the integer value of a key by one."),
    spec("decrby", 3, W, ONE, "string", "Decrements the integer value of a key by a number."),
    spec("append", 3, W, ONE, "string", "Appends a string to the value of a key."),
    spec("strlen", 2, R, ONE, "string", "Returns the length of a string value."),
    spec("type", 2, R, ONE, "generic", "Returns the type of a key (string or none)."),
    spec("ttl", 2, R, ONE, "generic", "-1 for an existing key (keys never expire here), -2 otherwise."),
    spec("pttl", 2, R, ONE, "generic", "As TTL, in milliseconds."),
    spec("keys", 2, R, NOKEY, "generic", "Returns the keys that match a glob pattern (bounded)."),
    spec("scan", -2, R, NOKEY, "generic", "Iterates over the keys with a cursor."),
];

/// Commands refused on purpose: expiry would need the leader's clock in the log and
/// expiry evaluated in log time on every replica; without that, replicas would disagree.
const EXPIRY: &[&str] =
    &["expire", "pexpire", "expireat", "pexpireat", "setex", "psetex", "getex", "persist", "expiretime"];

pub(crate) fn find(name: &str) -> Option<&'static Spec> {
    TABLE.iter().find(|s| s.name == name)
}

/// What a command needs.
pub(crate) enum Plan {
    /// Answered at once.
    Reply(Value),
    /// Answered, then the connection is closed (`QUIT`).
    Close(Value),
    /// One request to the cluster (through the leader unless a stale read).
    Cluster { req: Req, want: Want },
    /// `WAIT`: ask the leader how far its followers are until enough hold the writes.
    Wait { replicas: i64, timeout: Duration },
    /// `SCAN`: the cursor (its first argument) is resolved by the caller.
    Scan { pattern: Option<String>, count: u32 },
}

/// The request a command makes of the cluster.
#[derive(Clone, Debug)]
pub(crate) enum Req {
    Write(WriteOp),
    Read(ReadOp),
}

/// How a cluster reply becomes the Redis reply of the command.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    /// `+OK` for `Done`.
    Ok,
    /// `SET`: `+OK` / nil, or the old value with `GET`.
    Set { get: bool },
    /// `SETNX`: 1 or 0.
    SetNx,
    /// A value or nil (`GET`, `GETDEL`, `GETSET`).
    Value,
    /// An integer (counts, lengths, `INCR`).
    Int,
    /// `MGET`.
    Values,
    /// `TYPE`.
    Type,
    /// `TTL` / `PTTL`: -1 or -2 from an existence count.
    Ttl,
    /// `KEYS`: the whole listing, or an error when it could not be done in one bounded read.
    Keys,
}

/// A connection's state that commands read or change.
pub(crate) struct ConnState {
    pub id: u64,
    pub proto: Protocol,
    pub name: Option<String>,
    pub readonly: bool,
    pub addr: String,
    pub local_addr: String,
}

fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

fn key(a: &[u8]) -> Result<String, Value> {
    String::from_utf8(a.to_vec()).map_err(|_| Value::err("keys must be UTF-8 text in this store"))
}

fn keys(args: &[Vec<u8>]) -> Result<Vec<String>, Value> {
    args.iter().map(|a| key(a)).collect()
}

fn int(a: &[u8]) -> Result<i64, Value> {
    raft_kv::redis_int(a).ok_or_else(|| Value::err("value is not an integer or out of range"))
}

fn syntax() -> Value {
    Value::err("syntax error")
}

/// Redis's answer to a command it does not know, word for word.
pub(crate) fn unknown_command(args: &[Vec<u8>]) -> Value {
    let mut listed = String::new();
    for a in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(a);
        let cut: String = text.chars().take(room).collect();
        listed.push_str(&format!("'{cut}' "));
    }
    let name: String = String::from_utf8_lossy(&args[0]).chars().take(128).collect();
    Value::err(format!("unknown command '{name}', with args beginning with: {listed}"))
}

fn arity_error(name: &str) -> Value {
    Value::err(format!("wrong number of arguments for '{name}' command"))
}

/// Decides what `args` (a non-empty command) needs.
pub(crate) fn plan(args: &[Vec<u8>], conn: &mut ConnState, view: &View) -> Plan {
    match plan_inner(args, conn, view) {
        Ok(p) => p,
        Err(v) => Plan::Reply(v),
    }
}

fn cluster(req: Req, want: Want) -> Result<Plan, Value> {
    Ok(Plan::Cluster { req, want })
}

fn plan_inner(args: &[Vec<u8>], conn: &mut ConnState, view: &View) -> Result<Plan, Value> {
    let name = lower(&args[0]);
    if EXPIRY.contains(&name.as_str()) {
        return Err(Value::err(format!(
            "'{name}': keys do not expire in this store (expiry is not deterministic across replicas)"
        )));
    }
    let Some(spec) = find(&name) else { return Err(unknown_command(args)) };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(arity_error(spec.name));
    }
    let a = &args[1..];
    let reply = |v| Ok(Plan::Reply(v));
    match spec.name {
        "ping" => match a {
            [] => reply(Value::Simple("PONG".into())),
            [m] => reply(Value::bulk(m.clone())),
            _ => Err(arity_error("ping")),
        },
        "echo" => reply(Value::bulk(a[0].clone())),
        "quit" => Ok(Plan::Close(Value::ok())),
        "select" => match int(&a[0]) {
            Ok(0) => reply(Value::ok()),
            Ok(_) => reply(Value::err("DB index is out of range")),
            Err(e) => Err(e),
        },
        "auth" => reply(Value::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )),
        "readonly" => {
            conn.readonly = true;
            reply(Value::ok())
        }
        "readwrite" => {
            conn.readonly = false;
            reply(Value::ok())
        }
        "hello" => hello(a, conn, view),
        "client" => client(a, conn),
        "command" => command(a, conn.proto),
        "config" => config(a, view),
        "info" => reply(Value::bulk(info(a, conn, view))),
        "dbsize" => cluster(Req::Read(ReadOp::Count), Want::Int),
        "wait" => {
            let replicas = int(&a[0])?;
            let ms = int(&a[1]).map_err(|_| Value::err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(Value::err("timeout is negative"));
            }
            Ok(Plan::Wait { replicas, timeout: Duration::from_millis(ms as u64) })
        }
        "get" => cluster(Req::Read(ReadOp::Get { key: key(&a[0])? }), Want::Value),
        "set" => set(a),
        "mget" => cluster(Req::Read(ReadOp::GetMany { keys: keys(a)? }), Want::Values),
        "mset" => {
            if a.len() & 1 != 0 {
                return Err(arity_error("mset"));
            }
            let pairs = a.chunks(2).map(|p| Ok((key(&p[0])?, p[1].clone()))).collect::<Result<_, Value>>()?;
            cluster(Req::Write(WriteOp::SetMany { pairs }), Want::Ok)
        }
        "setnx" => {
            let op = WriteOp::SetIf { key: key(&a[0])?, value: a[1].clone(), cond: SetCond::IfAbsent, get: false };
            cluster(Req::Write(op), Want::SetNx)
        }
        "getset" => {
            let op = WriteOp::SetIf { key: key(&a[0])?, value: a[1].clone(), cond: SetCond::Always, get: true };
            cluster(Req::Write(op), Want::Set { get: true })
        }
        "getdel" => cluster(Req::Write(WriteOp::GetDel { key: key(&a[0])? }), Want::Value),
        "del" => cluster(Req::Write(WriteOp::DeleteMany { keys: keys(a)? }), Want::Int),
        "exists" => cluster(Req::Read(ReadOp::Exists { keys: keys(a)? }), Want::Int),
        "incr" | "decr" | "incrby" | "decrby" => {
            let by = if a.len() == 2 { int(&a[1])? } else { 1 };
            let by = if spec.name.starts_with("decr") {
                by.checked_neg().ok_or_else(|| Value::err("decrement would overflow"))?
            } else {
                by
            };
            cluster(Req::Write(WriteOp::IncrBy { key: key(&a[0])?, by }), Want::Int)
        }
        "append" => cluster(Req::Write(WriteOp::Append { key: key(&a[0])?, value: a[1].clone() }), Want::Int),
        "strlen" => cluster(Req::Read(ReadOp::Strlen { key: key(&a[0])? }), Want::Int),
        "type" => cluster(Req::Read(ReadOp::Exists { keys: vec![key(&a[0])?] }), Want::Type),
        "ttl" | "pttl" => cluster(Req::Read(ReadOp::Exists { keys: vec![key(&a[0])?] }), Want::Ttl),
        "keys" => {
            let pattern = key(&a[0])?;
            let op = ReadOp::Scan {
                after: None,
                pattern: Some(pattern),
                count: MAX_KEYS_PER_LISTING,
                max_examined: MAX_SCAN_EXAMINED,
            };
            cluster(Req::Read(op), Want::Keys)
        }
        "scan" => scan(a),
        other => unreachable!("{other} is in the table but has no plan"),
    }
}

fn set(a: &[Vec<u8>]) -> Result<Plan, Value> {
    let (mut cond, mut get) = (SetCond::Always, false);
    for opt in &a[2..] {
        match lower(opt).as_str() {
            "nx" if cond == SetCond::Always => cond = SetCond::IfAbsent,
            "xx" if cond == SetCond::Always => cond = SetCond::IfPresent,
            "get" => get = true,
            "keepttl" => {}
            "ex" | "px" | "exat" | "pxat" => {
                return Err(Value::err(
                    "SET with an expiry is not supported: keys do not expire in this store \
                     (expiry is not deterministic across replicas)",
                ))
            }
            _ => return Err(syntax()),
        }
    }
    let (key, value) = (key(&a[0])?, a[1].clone());
    if cond == SetCond::Always && !get {
        return cluster(Req::Write(WriteOp::Set { key, value }), Want::Ok);
    }
    cluster(Req::Write(WriteOp::SetIf { key, value, cond, get }), Want::Set { get })
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`; the cursor is resolved by the caller.
fn scan(a: &[Vec<u8>]) -> Result<Plan, Value> {
    let (mut pattern, mut count) = (None, 10u32);
    let mut rest = a[1..].iter();
    while let Some(opt) = rest.next() {
        let Some(arg) = rest.next() else { return Err(syntax()) };
        match lower(opt).as_str() {
            "match" => pattern = Some(key(arg)?),
            "count" => {
                let n = int(arg)?;
                if n < 1 {
                    return Err(syntax());
                }
                count = n.min(MAX_SCAN_EXAMINED as i64) as u32;
            }
            "type" => {
                if lower(arg) != "string" {
                    // Every key is a string: nothing of another type exists.
                    pattern = Some("\u{0}no-key-matches[".into());
                }
            }
            _ => return Err(syntax()),
        }
    }
    Ok(Plan::Scan { pattern, count })
}

fn hello(a: &[Vec<u8>], conn: &mut ConnState, view: &View) -> Result<Plan, Value> {
    let mut rest = a.iter();
    if let Some(v) = rest.next() {
        match int(v) {
            Ok(2) => conn.proto = Protocol::Resp2,
            Ok(3) => conn.proto = Protocol::Resp3,
            _ => return Err(Value::Error("NOPROTO unsupported protocol version".into())),
        }
    }
    while let Some(opt) = rest.next() {
        match lower(opt).as_str() {
            "setname" => conn.name = Some(String::from_utf8_lossy(rest.next().ok_or_else(syntax)?).into_owned()),
            "auth" => return Err(Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into())),
            _ => return Err(syntax()),
        }
    }
    let s = |t: &str| Value::bulk(t);
    Ok(Plan::Reply(Value::Map(vec![
        (s("server"), s("redis")),
        // The Redis version whose commands and protocol this front end speaks (clients
        // decide what to send by it); `INFO server` says what actually answers.
        (s("version"), s(REDIS_VERSION)),
        (s("proto"), Value::Int(if conn.proto == Protocol::Resp3 { 3 } else { 2 })),
        (s("id"), Value::Int(conn.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s(if view.is_leader() { "master" } else { "replica" })),
        (s("modules"), Value::Array(vec![])),
    ])))
}

/// The Redis version whose protocol and commands this front end follows.
pub(crate) const REDIS_VERSION: &str = "7.0.0";

fn client(a: &[Vec<u8>], conn: &mut ConnState) -> Result<Plan, Value> {
    let sub = lower(&a[0]);
    let reply = |v| Ok(Plan::Reply(v));
    match (sub.as_str(), &a[1..]) {
        ("setname", [name]) => {
            if name.iter().any(|&b| b <= b' ' || b > b'~') {
                return reply(Value::err("Client names cannot contain spaces, newlines or special characters."));
            }
            conn.name = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
            reply(Value::ok())
        }
        ("getname", []) => reply(conn.name.clone().map_or(Value::Nil, Value::bulk)),
        ("id", []) => reply(Value::Int(conn.id as i64)),
        ("info", []) => reply(Value::bulk(client_info(conn))),
        // Client libraries announce themselves (redis-rs, redis-py); nothing to keep.
        ("setinfo", [_, _]) => reply(Value::ok()),
        ("setname" | "getname" | "id" | "info" | "setinfo", _) => Err(arity_error(&format!("client|{sub}"))),
        _ => reply(Value::err(format!("unknown subcommand '{}'. Try CLIENT HELP.", String::from_utf8_lossy(&a[0])))),
    }
}

pub(crate) fn client_info(conn: &ConnState) -> String {
    format!(
        "id={} addr={} laddr={} name={} db=0 resp={} readonly={}\n",
        conn.id,
        conn.addr,
        conn.local_addr,
        conn.name.as_deref().unwrap_or(""),
        if conn.proto == Protocol::Resp3 { 3 } else { 2 },
        u8::from(conn.readonly)
    )
}

fn command(a: &[Vec<u8>], proto: Protocol) -> Result<Plan, Value> {
    let s = |t: &str| Value::bulk(t);
    let info = |spec: &Spec| {
        Value::Array(vec![
            s(spec.name),
            Value::Int(spec.arity),
            Value::Array(spec.flags.iter().map(|f| Value::Simple((*f).into())).collect()),
            Value::Int(spec.keys.0),
            Value::Int(spec.keys.1),
            Value::Int(spec.keys.2),
        ])
    };
    let sub = a.first().map(|x| lower(x));
    let reply = |v| Ok(Plan::Reply(v));
    match sub.as_deref() {
        None => reply(Value::Array(TABLE.iter().map(info).collect())),
        Some("count") => reply(Value::Int(TABLE.len() as i64)),
        Some("info") => {
            let names: Vec<String> = a[1..].iter().map(|x| lower(x)).collect();
            reply(Value::Array(names.iter().map(|n| find(n).map_or(Value::Nil, info)).collect()))
        }
        Some("docs") => {
            let wanted: Vec<String> = a[1..].iter().map(|x| lower(x)).collect();
            let docs = TABLE
                .iter()
                .filter(|spec| wanted.is_empty() || wanted.iter().any(|w| w == spec.name))
                .map(|spec| {
                    let doc = Value::Map(vec![
                        (s("summary"), s(spec.summary)),
                        (s("since"), s("1.0.0")),
                        (s("group"), s(spec.group)),
                    ]);
                    (s(spec.name), doc)
                })
                .collect();
            let _ = proto;
            reply(Value::Map(docs))
        }
        Some(other) => reply(Value::err(format!("unknown subcommand '{other}'. Try COMMAND HELP."))),
    }
}

/// `CONFIG GET` answers what this cluster actually does: the log is an append-only file,
/// fsynced before every acknowledgement when `fsync` is on; there is no RDB schedule.
fn config(a: &[Vec<u8>], view: &View) -> Result<Plan, Value> {
    if lower(&a[0]) != "get" {
        return Err(Value::err(format!("unknown subcommand '{}'. Try CONFIG HELP.", String::from_utf8_lossy(&a[0]))));
    }
    if a.len() < 2 {
        return Err(arity_error("config|get"));
    }
    let params = [
        ("save", String::new()),
        ("appendonly", "yes".into()),
        ("appendfsync", if view.fsync { "always" } else { "no" }.into()),
        ("databases", "1".into()),
        ("maxmemory", view.quota_bytes.to_string()),
        ("port", view.port.to_string()),
    ];
    let mut out = Vec::new();
    for (name, value) in &params {
        if a[1..].iter().any(|p| raft_kv::glob_match(lower(p).as_bytes(), name.as_bytes())) {
            out.push((Value::bulk(*name), Value::bulk(value.clone())));
        }
    }
    Ok(Plan::Reply(Value::Map(out)))
}

fn info(a: &[Vec<u8>], conn: &ConnState, view: &View) -> Vec<u8> {
    let wanted: Vec<String> = a.iter().map(|x| lower(x)).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let mut out = String::new();
    if want("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nserver_name:raft-kv\r\nredis_mode:standalone\r\n\
             process_id:{}\r\ntcp_port:{}\r\nraft_node_id:{}\r\n\r\n",
            std::process::id(),
            view.port,
            view.id
        ));
    }
    if want("clients") {
        out.push_str(&format!("# Clients\r\nconnected_clients:{}\r\n\r\n", view.clients));
    }
    if want("replication") {
        let role = if view.is_leader() { "master" } else { "slave" };
        out.push_str(&format!(
            "# Replication\r\nrole:{role}\r\nraft_role:{}\r\nraft_term:{}\r\nraft_leader:{}\r\n\
             raft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_last_index:{}\r\nconnection_readonly:{}\r\n\r\n",
            view.node.role.to_string().to_lowercase(),
            view.node.term,
            view.node.leader.map_or("none".into(), |l| l.to_string()),
            view.node.commit,
            view.node.applied,
            view.node.last_index,
            u8::from(conn.readonly),
        ));
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        if view.node.keys > 0 {
            out.push_str(&format!("db0:keys={},expires=0,avg_ttl=0\r\n", view.node.keys));
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The Redis reply for a cluster answer to a command that wanted `want`.
pub(crate) fn translate(want: Want, reply: Reply) -> Value {
    match (want, reply) {
        (_, Reply::Failed(e)) => Value::err(e),
        (Want::Ok, Reply::Done) => Value::ok(),
        (Want::Set { get: false }, Reply::SetIf { applied, .. }) => {
            if applied {
                Value::ok()
            } else {
                Value::Nil
            }
        }
        (Want::Set { get: true }, Reply::SetIf { old, .. }) => Value::opt(old),
        (Want::SetNx, Reply::SetIf { applied, .. }) => Value::Int(i64::from(applied)),
        (Want::Value, Reply::Value(v)) => Value::opt(v),
        (Want::Int, Reply::Count(n)) => Value::Int(n.min(i64::MAX as u64) as i64),
        (Want::Int, Reply::Int(n)) => Value::Int(n),
        (Want::Values, Reply::Values(vs)) => Value::Array(vs.into_iter().map(Value::opt).collect()),
        (Want::Type, Reply::Count(n)) => Value::Simple(if n > 0 { "string" } else { "none" }.into()),
        (Want::Ttl, Reply::Count(n)) => Value::Int(if n > 0 { -1 } else { -2 }),
        (Want::Keys, Reply::Scan { keys, next: None }) => {
            Value::Array(keys.into_iter().map(|k| Value::bulk(k.into_bytes())).collect())
        }
        (Want::Keys, Reply::Scan { next: Some(_), .. }) => Value::err(format!(
            "KEYS stops at {MAX_SCAN_EXAMINED} keys examined or {MAX_KEYS_PER_LISTING} returned, \
             so one command cannot stall the node; use SCAN"
        )),
        (want, other) => Value::err(format!("internal: {want:?} got {other:?}")),
    }
}
