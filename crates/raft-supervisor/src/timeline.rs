//! `raft-supervisor timeline`: every node's event lines and the supervisor's actions merged
//! into one stream in the order they happened.
//!
//! All processes run on one host and stamp their lines with the same clock to the
//! microsecond (`YYYY-MM-DDTHH:MM:SS.uuuuuuZ n<id> t<term> <text>`, see raft-node's
//! `eventlog`), so sorting by timestamp is the order of events. Ties (two lines in the
//! same microsecond) go supervisor first, then by node id, then in file order: a
//! supervisor action is usually the cause of what nodes log in the same instant.
//!
//! Lines that are not event lines:
//! * `--- raft-supervisor: starting node 3 ---` banners, which the supervisor writes into
//!   `node.log` before each start, are skipped: the same fact is in `supervisor.events`
//!   with a timestamp.
//! * Anything else (a panic message, a line the node wrote to stderr, a torn line) is
//!   kept, with term null and event kind `output`, at the time of the event line before it
//!   in the same file (it was written after that one), so crashes stay visible.
//!
//! Everything here is pure (text in, events out) except [`FileTail`], which reads files
//! incrementally for `--follow` and for `watch`.

use crate::core::NodeId;
use raft_node::{format_timestamp, parse_timestamp};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The supervisor's own event lines, beside the node directories.
pub const SUPERVISOR_EVENTS_FILE: &str = "supervisor.events";
/// Most bytes one [`FileTail::read_new`] call takes from one file: a huge backlog is
/// read over several polls instead of all at once.
pub const MAX_READ_BYTES_PER_POLL: usize = 4 << 20;
/// A line longer than this is cut (its remainder dropped) rather than buffered without
/// bound: event lines are short, so only a garbled file has such lines.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Who wrote an event. Orders the supervisor first (see the module docs on ties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Supervisor,
    Node(NodeId),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Supervisor => f.write_str("supervisor"),
            Source::Node(id) => write!(f, "n{id}"),
        }
    }
}

/// One line of the merged stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    pub source: Source,
    /// None for the supervisor's actions and for lines that are not event lines.
    pub term: Option<u64>,
    /// A short kind derived from the text ([`event_kind`]).
    pub kind: &'static str,
    /// The text after the term.
    pub text: String,
}

impl Event {
    /// The line as the logs write it (`... n3 t7 became leader term=7`; `-` for no term).
    pub fn line(&self) -> String {
        let term = self.term.map_or("-".to_string(), |t| format!("t{t}"));
        format!("{} {} {term} {}", format_timestamp(self.ts_us), self.source, self.text)
    }

    /// One JSON object (DESIGN.md: ts_us, source, term, event, text).
    pub fn json(&self) -> String {
        serde_json::json!({
            "ts_us": self.ts_us,
            "source": self.source.to_string(),
            "term": self.term,
            "event": self.kind,
            "text": self.text,
        })
        .to_string()
    }
}

/// The supervisor's event line for `text` at `ts_us` (same format as the nodes', source
/// `supervisor`, no term).
pub fn supervisor_line(ts_us: u64, text: &str) -> String {
    format!("{} supervisor - {text}", format_timestamp(ts_us))
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

/// What one line of a log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Event(Event),
    /// A supervisor banner: skipped.
    Banner,
    /// Not an event line: kept as `output` text (see the module docs).
    Other(String),
}

/// Parses one line (without its newline). `file_source` is whose file it is: a line that
/// claims another source is not trusted as an event line.
pub fn parse_line(line: &str, file_source: Source) -> Parsed {
    let line = line.trim_end_matches('\r');
    if line.starts_with("--- raft-supervisor:") {
        return Parsed::Banner;
    }
    let mut parts = line.splitn(4, ' ');
    let (Some(ts), Some(src), Some(term), text) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Parsed::Other(line.to_string());
    };
    let Some(ts_us) = parse_timestamp(ts) else { return Parsed::Other(line.to_string()) };
    let source = match src {
        "supervisor" => Source::Supervisor,
        _ => match src.strip_prefix('n').and_then(|n| n.parse::<NodeId>().ok()) {
            Some(id) => Source::Node(id),
            None => return Parsed::Other(line.to_string()),
        },
    };
    if source != file_source {
        return Parsed::Other(line.to_string());
    }
    let term = match term {
        "-" => None,
        _ => match term.strip_prefix('t').and_then(|t| t.parse::<u64>().ok()) {
            Some(t) => Some(t),
            None => return Parsed::Other(line.to_string()),
        },
    };
    let text = text.unwrap_or("").to_string();
    Parsed::Event(Event { ts_us, source, term, kind: event_kind(source, &text), text })
}

/// Event kinds, first match wins: (source is the supervisor, text starts with, text
/// contains, kind). Node lines come from raft-core's `Event` Display, raft-replica and
/// raft-node's transport; supervisor lines from [`crate::shell`]'s actions and reports.
const KINDS: &[(bool, &str, &str, &str)] = &[
    (false, "became leader", "", "became-leader"),
    (false, "became candidate", "", "became-candidate"),
    (false, "became pre-candidate", "", "became-pre-candidate"),
    (false, "became follower", "", "became-follower"),
    (false, "pre-vote granted", "", "pre-vote-granted"),
    (false, "pre-vote denied", "", "pre-vote-denied"),
    (false, "vote granted", "", "vote-granted"),
    (false, "vote denied", "", "vote-denied"),
    (false, "leader elected", "", "leader-elected"),
    (false, "stepping down", "", "stepped-down"),
    (false, "snapshot send started", "", "snapshot-sending"),
    (false, "snapshot sent", "", "snapshot-sent"),
    (false, "snapshot installed", "", "snapshot-installed"),
    (false, "snapshot from", "refused", "snapshot-refused"),
    (false, "snapshot at index", "", "snapshot-taken"),
    (false, "log compacted", "", "compacted"),
    (false, "state restored", "", "restored"),
    (false, "leadership transfer", "started", "transfer-started"),
    (false, "leadership transfer", "aborted", "transfer-aborted"),
    (false, "configuration ", "in effect", "configuration"),
    (false, "removed from the configuration", "", "removed"),
    (false, "truncated uncommitted", "", "truncated"),
    (false, "caught up with", "", "caught-up"),
    (false, "appended entries", "", "appended"),
    (false, "stepped down:", "", "stepped-down"),
    (false, "proposed ", "", "proposed"),
    (false, "network levers", "", "levers"),
    (false, "peer n", "connected", "peer-connected"),
    (false, "peer n", "lost", "peer-lost"),
    (false, "partitioned", "", "partitioned"),
    (false, "partition healed", "", "healed"),
    (false, "speed ", "", "speed"),
    (false, "listening on", "", "listening"),
    (false, "shutting down", "", "shutting-down"),
    (false, "slow ", "", "slow"),
    (false, "storage recovered", "", "recovered"),
    (false, "storage:", "", "storage"),
    (false, "", "refused", "refused"),
    (false, "", "closed", "connection-closed"),
    (true, "kill ", "", "kill"),
    (true, "start ", "", "start"),
    (true, "restart ", "", "restart"),
    (true, "pause ", "", "pause"),
    (true, "resume ", "", "resume"),
    (true, "partition ", "", "partition"),
    (true, "heal", "", "heal"),
    (true, "speed ", "", "speed"),
    (true, "asks n", "", "membership-asked"),
    (true, "added node ", "", "added"),
    (true, "removed node ", "", "removed"),
    (true, "leadership transfer ", "", "transfer"),
    (true, "node ", " unexpectedly", "crashed"),
    (true, "node ", " started (pid", "started"),
    (true, "node ", " restarting in", "restarting"),
    (true, "node ", " could not be started", "spawn-failed"),
    (true, "node ", " failed:", "gave-up"),
    (true, "node ", " crashed;", "crashed"),
    (true, "node ", " killed by", "exited"),
    (true, "node ", " exited with", "exited"),
    (true, "stopping ", "", "shutting-down"),
    (true, "up ", "", "up"),
    (true, "down", "", "down"),
];

/// The short kind of an event line's text (`other` when no rule matches).
pub fn event_kind(source: Source, text: &str) -> &'static str {
    let sup = source == Source::Supervisor;
    KINDS
        .iter()
        .find(|(s, prefix, contains, _)| *s == sup && text.starts_with(prefix) && text.contains(contains))
        .map_or("other", |k| k.3)
}

/// Parses a whole log: every event, and non-event lines as `output` at the time of the
/// event before them (0 before the first).
pub fn parse_log(text: &str, source: Source) -> Vec<Event> {
    let mut out = Vec::new();
    let mut last_ts = 0;
    for line in text.lines() {
        push_line(&mut out, &mut last_ts, line, source);
    }
    out
}

fn push_line(out: &mut Vec<Event>, last_ts: &mut u64, line: &str, source: Source) {
    match parse_line(line, source) {
        Parsed::Event(e) => {
            *last_ts = e.ts_us;
            out.push(e);
        }
        Parsed::Banner => {}
        Parsed::Other(text) if text.trim().is_empty() => {}
        Parsed::Other(text) => out.push(Event { ts_us: *last_ts, source, term: None, kind: "output", text }),
    }
}

/// Merges events into one order: by time, ties supervisor first then by node, and in
/// their given order otherwise (a stable sort).
pub fn merge(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|e| (e.ts_us, e.source));
    events
}

/// Which events to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events at or after this time (microseconds since the epoch).
    pub since_us: Option<u64>,
    /// Only this node's events (the supervisor's actions are kept when they name the
    /// node: `kill n3`, `node 3 ...`).
    pub node: Option<NodeId>,
}

impl Filter {
    pub fn keeps(&self, e: &Event) -> bool {
        if self.since_us.is_some_and(|s| e.ts_us < s) {
            return false;
        }
        match (self.node, e.source) {
            (None, _) => true,
            (Some(n), Source::Node(id)) => n == id,
            (Some(n), Source::Supervisor) => names_node(&e.text, n),
        }
    }
}

/// Whether a supervisor line is about node `n` (`kill n3`, `node 3 (pid ..)`, or a
/// partition, which concerns everyone).
fn names_node(text: &str, n: NodeId) -> bool {
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let id = n.to_string();
    let tagged = format!("n{n}");
    words.iter().any(|w| *w == tagged)
        || words.windows(2).any(|w| w[0] == "node" && w[1] == id)
        || text.starts_with("partition ")
        || text.starts_with("heal")
        || text.starts_with("speed ")
}

/// Parses `--since`: `90s`, `5m`, `2h`, `500ms`, `1d` (a number and a unit).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a duration: write a number and a unit, like 500ms, 90s, 5m, 2h or 1d");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(ms_per).ok_or_else(|| format!("`{text}` is too long a duration"))?;
    Ok(std::time::Duration::from_millis(ms))
}

/// The log files of a cluster directory and whose they are: `node-<id>/node.log` of every
/// node directory there, and `supervisor.events`.
pub fn event_files(dir: &Path) -> Vec<(PathBuf, Source)> {
    let mut files = vec![(dir.join(SUPERVISOR_EVENTS_FILE), Source::Supervisor)];
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut nodes: Vec<NodeId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("node-")).and_then(|n| n.parse().ok()))
            .collect();
        nodes.sort_unstable();
        files.extend(nodes.into_iter().map(|id| (dir.join(format!("node-{id}")).join("node.log"), Source::Node(id))));
    }
    files
}

/// Reads one log incrementally: each call returns the complete lines appended since the
/// last one. A file that shrank (wiped, recreated) is read again from its start.
pub struct FileTail {
    path: PathBuf,
    source: Source,
    offset: u64,
    partial: Vec<u8>,
    last_ts: u64,
    /// The last read stopped at [`MAX_READ_BYTES_PER_POLL`] with more to read.
    behind: bool,
}

impl FileTail {
    /// Starts at the beginning of the file.
    pub fn new(path: PathBuf, source: Source) -> FileTail {
        FileTail { path, source, offset: 0, partial: Vec::new(), last_ts: 0, behind: false }
    }

    /// Starts `max_bytes` before the file's end (at the next line), for a view that shows
    /// only the latest events.
    pub fn from_end(path: PathBuf, source: Source, max_bytes: u64) -> FileTail {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut t = FileTail::new(path, source);
        if len > max_bytes {
            t.offset = len - max_bytes;
            t.partial = b"\x00skip".to_vec(); // The first (cut) line is dropped.
        }
        t
    }

    /// Whether the last [`FileTail::read_new`] reached the end of the file as it was.
    pub fn caught_up(&self) -> bool {
        !self.behind
    }

    /// New complete lines as events. A missing file is no events (not started yet).
    pub fn read_new(&mut self) -> Vec<Event> {
        self.behind = false;
        let Ok(mut f) = std::fs::File::open(&self.path) else { return Vec::new() };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let got = f.take(MAX_READ_BYTES_PER_POLL as u64).read_to_end(&mut buf).unwrap_or(0);
        self.offset += got as u64;
        self.behind = self.offset < len;
        self.take_lines(&buf)
    }

    fn take_lines(&mut self, buf: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        let mut rest = buf;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            if line.starts_with(b"\x00skip") {
                continue;
            }
            push_line(&mut out, &mut self.last_ts, &String::from_utf8_lossy(&line), self.source);
        }
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_796_111_977_702_914; // 2026-12-01T07:59:37.702914Z

    fn ts(us: u64) -> String {
        format_timestamp(T0 + us)
    }

    #[test]
    fn node_and_supervisor_lines_parse() {
        let line = format!("{} n3 t7 became leader term=7", ts(0));
        let Parsed::Event(e) = parse_line(&line, Source::Node(3)) else { panic!("{line}") };
        assert_eq!(
            e,
            Event {
                ts_us: T0,
                source: Source::Node(3),
                term: Some(7),
                kind: "became-leader",
                text: "became leader term=7".into()
            }
        );
        assert_eq!(e.line(), line, "a line prints back as it was");
        let sup = supervisor_line(T0 + 5, "kill n3");
        assert_eq!(sup, "2026-12-01T07:59:37.702919Z supervisor - kill n3");
        let Parsed::Event(s) = parse_line(&sup, Source::Supervisor) else { panic!() };
        assert_eq!((s.term, s.kind, s.source), (None, "kill", Source::Supervisor));
        assert_eq!(s.line(), sup);
    }

    #[test]
    fn kinds_come_from_one_table() {
        let n = Source::Node(1);
        let cases = [
            (n, "became leader term=7", "became-leader"),
            (n, "became candidate term=7", "became-candidate"),
            (n, "became pre-candidate term=6", "became-pre-candidate"),
            (n, "became follower term=7 leader=n2", "became-follower"),
            (n, "vote granted to n2 term=7", "vote-granted"),
            (n, "vote denied to n2 term=7: already voted in this term", "vote-denied"),
            (n, "pre-vote granted to n2 term=8", "pre-vote-granted"),
            (n, "pre-vote denied to n2 term=8: heard from the leader", "pre-vote-denied"),
            (n, "leader elected n2 term=7", "leader-elected"),
            (n, "snapshot installed index=40 term=3", "snapshot-installed"),
            (n, "snapshot sent to n4 index=40 term=3", "snapshot-sent"),
            (n, "log compacted up to index=40 term=3", "compacted"),
            (n, "peer n4 lost: closed", "peer-lost"),
            (n, "peer n4 connected", "peer-connected"),
            (n, "speed 0.10x: tick 100 ms", "speed"),
            (n, "partitioned: dropping traffic with {4, 5}", "partitioned"),
            (n, "storage recovered 3001 entries, snapshot index=0, commit=2998", "recovered"),
            (n, "something new", "other"),
            (Source::Supervisor, "kill n3", "kill"),
            (Source::Supervisor, "node 3 (pid 12) killed by SIGKILL", "exited"),
            (Source::Supervisor, "node 3 (pid 12) killed by SIGSEGV unexpectedly", "crashed"),
            (Source::Supervisor, "node 3 started (pid 13)", "started"),
            (Source::Supervisor, "partition {1,2} {3,4,5}", "partition"),
            (Source::Supervisor, "speed 0.10x", "speed"),
            // A node's text never gets a supervisor kind, and vice versa.
            (n, "kill n3", "other"),
            (Source::Supervisor, "became leader term=7", "other"),
        ];
        for (src, text, kind) in cases {
            assert_eq!(event_kind(src, text), kind, "{src} {text}");
        }
    }

    #[test]
    fn merge_orders_across_files_with_ties_supervisor_first() {
        let n1 = format!("{} n1 t2 a\n{} n1 t2 c\n{} n1 t3 e\n", ts(10), ts(30), ts(50));
        let n2 = format!("{} n2 t2 b\n{} n2 t3 d\n{} n2 t3 d2\n", ts(20), ts(50), ts(50));
        let sup = format!("{}\n", supervisor_line(T0 + 50, "kill n1"));
        let mut all = parse_log(&n2, Source::Node(2));
        all.extend(parse_log(&n1, Source::Node(1)));
        all.extend(parse_log(&sup, Source::Supervisor));
        let texts: Vec<String> = merge(all).into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["a", "b", "c", "kill n1", "e", "d", "d2"]);
    }

    #[test]
    fn malformed_lines_are_output_at_the_previous_time_and_banners_skipped() {
        let log = format!(
            "--- raft-supervisor: starting node 2 ---\n{} n2 t1 listening on /x\nthread 'main' panicked at x.rs:1\n\
             {} n3 t1 claims another node\n2026-99-01T00:00:00.000000Z n2 t1 bad date\n{} n2 tX bad term\n\n",
            ts(5),
            ts(6),
            ts(7)
        );
        let ev = parse_log(&log, Source::Node(2));
        assert_eq!(ev.len(), 5, "{ev:?}");
        assert_eq!(ev[0].kind, "listening");
        for e in &ev[1..] {
            assert_eq!((e.kind, e.term, e.ts_us, e.source), ("output", None, T0 + 5, Source::Node(2)), "{e:?}");
        }
        assert!(ev[1].text.contains("panicked"));
        // Before any event line, output sits at time 0 (first in a merge).
        assert_eq!(parse_log("oops\n", Source::Node(1))[0].ts_us, 0);
    }

    #[test]
    fn filters_by_time_and_node() {
        let sup = |us, text: &str| Event {
            ts_us: T0 + us,
            source: Source::Supervisor,
            term: None,
            kind: event_kind(Source::Supervisor, text),
            text: text.into(),
        };
        let node =
            |us, id| Event { ts_us: T0 + us, source: Source::Node(id), term: Some(1), kind: "other", text: "x".into() };
        let since = Filter { since_us: Some(T0 + 10), node: None };
        assert!(!since.keeps(&node(9, 1)));
        assert!(since.keeps(&node(10, 1)));
        let n3 = Filter { since_us: None, node: Some(3) };
        assert!(n3.keeps(&node(0, 3)));
        assert!(!n3.keeps(&node(0, 1)));
        assert!(n3.keeps(&sup(0, "kill n3")));
        assert!(n3.keeps(&sup(0, "node 3 (pid 9) killed by SIGKILL")));
        assert!(!n3.keeps(&sup(0, "kill n33")));
        assert!(!n3.keeps(&sup(0, "node 13 started (pid 9)")));
        assert!(n3.keeps(&sup(0, "partition {1,2} {3,4,5}")), "a partition concerns every node");
    }

    #[test]
    fn json_lines_carry_the_contract_fields() {
        let e = Event {
            ts_us: T0,
            source: Source::Node(3),
            term: Some(7),
            kind: "vote-granted",
            text: "vote granted to n2 term=7".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ts_us": T0, "source": "n3", "term": 7, "event": "vote-granted", "text": "vote granted to n2 term=7"})
        );
        let s = Event { ts_us: T0, source: Source::Supervisor, term: None, kind: "kill", text: "kill n3".into() };
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s.json()).unwrap()["term"], serde_json::Value::Null);
    }

    #[test]
    fn durations_parse_with_clear_errors() {
        use std::time::Duration;
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "10", "10x", "-5s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).unwrap_err().contains("duration"), "{bad}");
        }
        assert!(parse_duration("999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn a_tail_reads_appended_lines_once_and_restarts_on_truncation() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let mut tail = FileTail::new(path.clone(), Source::Node(1));
        assert!(tail.read_new().is_empty(), "a missing file is no events");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        write!(f, "{} n1 t1 a\n{} n1 t1 b", ts(1), ts(2)).unwrap();
        let got: Vec<String> = tail.read_new().into_iter().map(|e| e.text).collect();
        assert_eq!(got, ["a"], "the unfinished line waits");
        writeln!(f, " and more").unwrap();
        let got: Vec<String> = tail.read_new().into_iter().map(|e| e.text).collect();
        assert_eq!(got, ["b and more"]);
        assert!(tail.read_new().is_empty());
        std::fs::write(&path, format!("{} n1 t2 fresh\n", ts(3))).unwrap();
        let got: Vec<String> = tail.read_new().into_iter().map(|e| e.text).collect();
        assert_eq!(got, ["fresh"], "a truncated file is read from its start");
        // from_end drops the cut first line.
        let mut end = FileTail::from_end(path.clone(), Source::Node(1), 10);
        assert!(end.read_new().is_empty());
    }
}
