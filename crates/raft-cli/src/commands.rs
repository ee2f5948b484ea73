//! The one-shot commands: set, get, del, cas, keys, status. Each returns what to print
//! and the exit code, so tests can call them without a process.

use crate::client::{Client, ClientError, Cluster};
use crate::EXIT_USAGE;
use crate::{EXIT_MISMATCH, EXIT_OK, EXIT_UNAVAILABLE};
use base64::Engine as _;
use raft_core::RoleKind;
use raft_wire::{ReadOp, Reply, WriteOp, MAX_KEYS_PER_LISTING, MAX_VALUE_BYTES};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// What a command produced: bytes for stdout, at most one line for stderr, an exit code.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Option<String>,
    pub code: i32,
}

impl Output {
    pub fn ok(text: impl Into<Vec<u8>>) -> Output {
        Output { stdout: text.into(), stderr: None, code: EXIT_OK }
    }

    pub fn fail(code: i32, message: impl Into<String>) -> Output {
        Output { stdout: Vec::new(), stderr: Some(message.into()), code }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl From<ClientError> for Output {
    fn from(e: ClientError) -> Output {
        Output::fail(e.exit_code(), e.to_string())
    }
}

fn unexpected(reply: Reply) -> Output {
    Output::fail(EXIT_UNAVAILABLE, format!("the cluster sent an unexpected reply {reply:?}; check the node versions"))
}

fn show_value(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "absent".into(),
    }
}

/// Where `set` takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource<'a> {
    /// The command-line argument itself.
    Arg(&'a str),
    /// `-`: standard input, byte for byte.
    Stdin,
    /// `--file PATH`, byte for byte.
    File(&'a Path),
}

impl<'a> ValueSource<'a> {
    /// `-` means standard input; anything else is the value.
    pub fn from_args(value: Option<&'a str>, file: Option<&'a Path>) -> ValueSource<'a> {
        match (value, file) {
            (_, Some(path)) => ValueSource::File(path),
            (Some("-"), None) => ValueSource::Stdin,
            (Some(v), None) => ValueSource::Arg(v),
            (None, None) => ValueSource::Arg(""),
        }
    }
}

/// Reads the value, at most [`MAX_VALUE_BYTES`] (a larger one is a usage error naming the
/// limit; reading stops one byte past it, so a huge input is never held in memory).
pub fn read_value(source: &ValueSource<'_>) -> Result<Vec<u8>, Output> {
    let too_big = |what: &str| {
        Output::fail(
            EXIT_USAGE,
            format!(
                "the value from {what} is over the limit of {MAX_VALUE_BYTES} bytes ({} KiB); store a smaller value",
                MAX_VALUE_BYTES / 1024
            ),
        )
    };
    match source {
        ValueSource::Arg(v) if v.len() > MAX_VALUE_BYTES => Err(too_big("the command line")),
        ValueSource::Arg(v) => Ok(v.as_bytes().to_vec()),
        ValueSource::Stdin => read_limited(std::io::stdin().lock())
            .map_err(|e| Output::fail(EXIT_USAGE, format!("cannot read the value from standard input: {e}")))?
            .ok_or_else(|| too_big("standard input")),
        ValueSource::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Output::fail(EXIT_USAGE, format!("cannot open {}: {e}", path.display())))?;
            read_limited(file)
                .map_err(|e| Output::fail(EXIT_USAGE, format!("cannot read {}: {e}", path.display())))?
                .ok_or_else(|| too_big(&path.display().to_string()))
        }
    }
}

/// All of `r` if it holds at most [`MAX_VALUE_BYTES`]; `None` if more.
pub fn read_limited(r: impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(MAX_VALUE_BYTES as u64 + 1).read_to_end(&mut buf)?;
    Ok((buf.len() <= MAX_VALUE_BYTES).then_some(buf))
}

/// A key the cluster would refuse (empty, too long) is a usage error before any request,
/// in the words the cluster uses for a write (so `get ""` and `set ""` say the same).
fn check_key(key: &str) -> Result<(), Output> {
    WriteOp::Delete { key: key.into() }
        .validate()
        .map_err(|reason| Output::fail(EXIT_USAGE, format!("invalid key: {reason}")))
}

/// How `get` prints a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GetFormat {
    /// The bytes, then a newline.
    #[default]
    Line,
    /// The exact bytes, nothing added.
    Raw,
    /// One JSON object, see [`value_json`].
    Json,
}

/// `{"key": K, "value": V}` when the value is UTF-8 (V a JSON string, every control
/// character escaped), else `{"key": K, "value_base64": B}` (standard base64 with padding).
pub fn value_json(key: &str, value: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(value) {
        Ok(text) => serde_json::json!({ "key": key, "value": text }),
        Err(_) => serde_json::json!({
            "key": key,
            "value_base64": base64::engine::general_purpose::STANDARD.encode(value),
        }),
    }
}

/// The value a [`value_json`] object holds.
pub fn value_from_json(v: &serde_json::Value) -> Option<Vec<u8>> {
    if let Some(text) = v.get("value").and_then(|t| t.as_str()) {
        return Some(text.as_bytes().to_vec());
    }
    base64::engine::general_purpose::STANDARD.decode(v.get("value_base64")?.as_str()?).ok()
}

pub fn set(client: &mut Client, key: &str, value: &[u8]) -> Output {
    if let Err(out) = check_key(key) {
        return out;
    }
    match client.write(WriteOp::Set { key: key.into(), value: value.to_vec() }) {
        Ok(Reply::Done) => Output::ok("OK\n"),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Prints the value alone (its bytes, then a newline; see [`GetFormat`]); exit 1 if not found.
pub fn get(client: &mut Client, key: &str, stale: bool, format: GetFormat) -> Output {
    if let Err(out) = check_key(key) {
        return out;
    }
    match client.read(ReadOp::Get { key: key.into() }, stale) {
        Ok(Reply::Value(Some(mut v))) => match format {
            GetFormat::Line => {
                v.push(b'\n');
                Output::ok(v)
            }
            GetFormat::Raw => Output::ok(v),
            GetFormat::Json => Output::ok(format!("{}\n", value_json(key, &v))),
        },
        Ok(Reply::Value(None)) => {
            Output::fail(EXIT_MISMATCH, format!("key {key:?} not found; set it with `raft-cli set`"))
        }
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Deleting a missing key succeeds (exit 0) and says so.
pub fn del(client: &mut Client, key: &str) -> Output {
    match client.write(WriteOp::Delete { key: key.into() }) {
        Ok(Reply::Deleted { existed: true }) => Output::ok("OK\n"),
        Ok(Reply::Deleted { existed: false }) => Output::ok("OK (key was not there)\n"),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// `expected` None: swap only if the key is absent. Exit 1 on mismatch, naming the value found.
pub fn cas(client: &mut Client, key: &str, expected: Option<&str>, new: &str) -> Output {
    if let Err(out) = check_key(key) {
        return out;
    }
    let op = WriteOp::Cas {
        key: key.into(),
        expected: expected.map(|e| e.as_bytes().to_vec()),
        new: new.as_bytes().to_vec(),
    };
    match client.write(op) {
        Ok(Reply::Cas { ok: true, .. }) => Output::ok("OK\n"),
        Ok(Reply::Cas { ok: false, current }) => Output::fail(EXIT_MISMATCH, cas_mismatch(key, expected, &current)),
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// The one line of a failed cas: what was found, what was expected, what to do.
pub fn cas_mismatch(key: &str, expected: Option<&str>, current: &Option<Vec<u8>>) -> String {
    let what = show_value(current);
    let wanted = show_value(&expected.map(|e| e.as_bytes().to_vec()));
    match (expected, current) {
        (Some(_), None) => format!(
            "cas mismatch: {key:?} is absent (expected {wanted}); to swap only if it is absent use \
             `raft-cli cas --expect-absent {key:?} NEW`"
        ),
        (None, Some(_)) => format!(
            "cas mismatch: {key:?} is {what} (expected absent, --expect-absent); \
             read it and retry with `raft-cli cas KEY EXPECTED NEW`"
        ),
        _ => format!("cas mismatch: {key:?} is {what} (expected {wanted}); read it and retry with the current value"),
    }
}

/// One key a line, sorted. A listing is capped at `MAX_KEYS_PER_LISTING`; hitting the cap
/// is said on stderr (exit 0 still: the keys printed are right).
/// With `json`, one JSON array of strings (every character escaped) and a newline.
pub fn keys(client: &mut Client, prefix: &str, stale: bool, json: bool) -> Output {
    match client.read(ReadOp::Keys { prefix: prefix.into(), limit: MAX_KEYS_PER_LISTING }, stale) {
        Ok(Reply::Keys(mut keys)) => {
            keys.sort();
            let mut out = if json {
                Output::ok(format!("{}\n", serde_json::Value::from(keys.clone())))
            } else {
                Output::ok(keys.iter().flat_map(|k| format!("{k}\n").into_bytes()).collect::<Vec<u8>>())
            };
            if keys.len() as u64 >= MAX_KEYS_PER_LISTING as u64 {
                out.stderr = Some(format!(
                    "listing stopped at {MAX_KEYS_PER_LISTING} keys; use a longer prefix to see the rest"
                ));
            }
            out
        }
        Ok(other) => unexpected(other),
        Err(e) => e.into(),
    }
}

/// Each node's status as a table. Exit 3 if no node answers.
pub fn status(cluster: &Cluster, timeout: Duration) -> Output {
    // Status is a quick local answer: a node that takes longer than a second is stuck.
    let per_node = timeout.min(Duration::from_secs(1));
    let mut rows = vec![[
        "node",
        "pid",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "last",
        "snapshot",
        "connected",
        "isolated",
    ]
    .map(String::from)
    .to_vec()];
    let mut answered = 0;
    let list = |ids: &[u64]| {
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        }
    };
    for (id, _) in &cluster.nodes {
        match cluster.node_status(*id, per_node) {
            Ok(s) => {
                answered += 1;
                let role = match s.role {
                    RoleKind::Leader => "leader",
                    RoleKind::Follower => "follower",
                    RoleKind::Candidate => "candidate",
                    // As in `raft-supervisor status` (DESIGN.md lists four roles): a pre-candidate
                    // is a candidate that has not bumped its term yet.
                    RoleKind::PreCandidate => "candidate",
                };
                rows.push(vec![
                    id.to_string(),
                    s.pid.to_string(),
                    role.into(),
                    s.term.to_string(),
                    s.leader.map_or("-".into(), |l| l.to_string()),
                    s.commit.to_string(),
                    s.applied.to_string(),
                    s.last_index.to_string(),
                    s.snapshot_index.to_string(),
                    list(&s.connected),
                    list(&s.isolated),
                ]);
            }
            Err(e) => {
                let mut row = vec![id.to_string(), "-".into(), "unreachable".into()];
                row.extend(std::iter::repeat_n("-".to_string(), 8));
                rows.push(row);
                let _ = e;
            }
        }
    }
    let mut out = Output::ok(render_table(&rows));
    if answered == 0 {
        out.code = EXIT_UNAVAILABLE;
        out.stderr = Some(if cluster.supervisor_reachable() {
            "no node answered; the supervisor is up: see `raft-supervisor status` and `raft-supervisor logs N`".into()
        } else {
            format!("no node answered at {}; start the cluster with `raft-supervisor up`", cluster.socket_pattern())
        });
    }
    out
}

/// Left-aligned columns separated by two spaces.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().enumerate().map(|(c, s)| format!("{s:<w$}", w = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_round_trip_text_and_binary() {
        let text = value_json("a\nb", b"line1\nline2\t\"q\"");
        assert_eq!(text, serde_json::json!({"key": "a\nb", "value": "line1\nline2\t\"q\""}));
        let printed = text.to_string();
        assert!(!printed.contains('\n'), "one line: {printed}");
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(value_from_json(&back).unwrap(), b"line1\nline2\t\"q\"");
        let all: Vec<u8> = (0..=255u8).collect();
        let bin = value_json("k", &all);
        assert!(bin.get("value").is_none(), "{bin}");
        assert_eq!(bin["value_base64"].as_str().unwrap().len(), 344, "256 bytes: 4 * ceil(256 / 3)");
        assert_eq!(value_from_json(&bin).unwrap(), all);
        assert_eq!(value_json("k", b"")["value"], "");
    }

    #[test]
    fn value_sources() {
        assert_eq!(ValueSource::from_args(Some("-"), None), ValueSource::Stdin);
        assert_eq!(ValueSource::from_args(Some("v"), None), ValueSource::Arg("v"));
        let p = Path::new("/f");
        assert_eq!(ValueSource::from_args(None, Some(p)), ValueSource::File(p));
        assert_eq!(read_value(&ValueSource::Arg("v")).unwrap(), b"v");
    }

    #[test]
    fn files_are_read_byte_for_byte_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        let all: Vec<u8> = (0..=255u8).collect();
        std::fs::write(&path, &all).unwrap();
        assert_eq!(read_value(&ValueSource::File(&path)).unwrap(), all);
        std::fs::write(&path, vec![7u8; MAX_VALUE_BYTES]).unwrap();
        assert_eq!(read_value(&ValueSource::File(&path)).unwrap().len(), MAX_VALUE_BYTES);
        std::fs::write(&path, vec![7u8; MAX_VALUE_BYTES + 1]).unwrap();
        let err = read_value(&ValueSource::File(&path)).unwrap_err();
        assert_eq!(err.code, EXIT_USAGE);
        assert!(err.stderr.as_deref().unwrap().contains("over the limit of 262144 bytes (256 KiB)"), "{err:?}");
        let err = read_value(&ValueSource::File(&dir.path().join("missing"))).unwrap_err();
        assert_eq!(err.code, EXIT_USAGE);
        assert!(err.stderr.unwrap().contains("cannot open"));
        assert_eq!(read_limited(&b"abc"[..]).unwrap(), Some(b"abc".to_vec()));
    }

    #[test]
    fn empty_keys_are_invalid_before_any_request() {
        let err = check_key("").unwrap_err();
        assert_eq!(err.code, EXIT_USAGE);
        assert_eq!(err.stderr.as_deref(), Some("invalid key: key must be 1 to 4096 bytes, got 0"));
        assert!(check_key("k").is_ok());
    }

    #[test]
    fn cas_mismatch_names_the_flag_for_absent() {
        let absent = cas_mismatch("k", Some("x"), &None);
        assert!(absent.contains("is absent") && absent.contains("--expect-absent"), "{absent}");
        let present = cas_mismatch("k", None, &Some(b"v".to_vec()));
        assert!(present.contains("\"v\"") && present.contains("--expect-absent"), "{present}");
        let plain = cas_mismatch("k", Some("x"), &Some(b"v".to_vec()));
        assert!(plain.contains("is \"v\" (expected \"x\")"), "{plain}");
    }
}
