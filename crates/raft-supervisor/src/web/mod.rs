//! `raft-supervisor web`: the cluster as a live web page (RaftScope on the real processes).
//!
//! Its own process, a client of the running supervisor like `watch`: it survives `down`
//! and `up` (the page shows "no supervisor" meanwhile and carries on when one answers).
//! Three kinds of thread, none of which ever holds a lock while doing I/O:
//!
//! * the **poller** asks the supervisor for the cluster ten times a second
//!   (`SupervisorRequest::Watch`), asks each running node for the messages it sent since
//!   and its newest log entries ([`nodes`]), reads the lines appended to the event logs,
//!   and publishes one [`View`]: the latest look and a bounded ring of recent events;
//! * the **acceptor** (the thread that called [`run`]) takes HTTP requests from tiny_http
//!   and answers the page and the status at once; an action runs on a short-lived thread
//!   (at most [`MAX_ACTIONS_IN_FLIGHT`]) because a restart waits for the node to stop;
//! * one **stream** thread per open page (at most [`MAX_STREAMS`]) writes server-sent
//!   events: it sleeps until the view changes, then sends the latest status and the events
//!   that client has not seen. A slow client skips statuses (it gets only the newest), so
//!   memory is bounded by the ring and the rate by the poller, whatever the clients do.
//!
//! Access: the page is served on 127.0.0.1 by default; everything but the page itself
//! needs the random token the command prints in its URL, and requests whose Host is not
//! ours or whose Origin is another site's are refused ([`api::check_request`]).

pub mod api;
pub mod nodes;

use crate::cli::CliError;
use crate::client::{self, effective_config};
use crate::core::NodeId;
use crate::timeline::{event_files, merge, FileTail};
use api::{Plan, Refusal};
use raft_config::ClusterConfig;
use raft_wire::supervisor::{ClusterStatus, SupervisorRequest, SupervisorResponse};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The page, script and style in one file, embedded: nothing is fetched from elsewhere.
pub const PAGE_HTML: &str = include_str!("page.html");

/// Time between two looks at the cluster, and so between two stream frames: ten a second
/// animates smoothly and costs the supervisor one cheap `Watch` answer each.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long one look waits for the supervisor (it answers `Watch` at once).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an action waits for the supervisor's answer (a restart waits for the node).
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the client panel's `set` and `get` try before saying the cluster is down.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pages streaming at once: a classroom's projector and a few laptops, not a public site;
/// each is a thread.
pub const MAX_STREAMS: usize = 16;
/// Actions running at once: a double click must not start a thread per click.
pub const MAX_ACTIONS_IN_FLIGHT: usize = 4;
/// Recent events kept for the page's list and timeline (older ones it already has).
pub const EVENT_RING: usize = 500;
/// Events in one frame at most: a page that fell behind gets the newest, not a flood.
pub const MAX_EVENTS_PER_FRAME: usize = 200;
/// How much of each event log is read at start: the recent past, not the whole history.
pub const INITIAL_TAIL_BYTES: u64 = 16 * 1024;
/// The browser's reconnect delay after the stream breaks (server-sent events `retry:`).
pub const SSE_RETRY_MS: u64 = 1000;

/// What the poller publishes and the streams send.
#[derive(Default)]
struct View {
    /// Bumped on every publish; streams wait for it to move.
    seq: u64,
    /// `{"status": ..., "error": ...}` of the latest look, as JSON.
    status_json: String,
    /// The node ids of the latest status, to check actions against.
    ids: Vec<NodeId>,
    /// Recent events as JSON lines, each with its number (numbers increase by one).
    events: VecDeque<(u64, String)>,
    next_event: u64,
}

struct Shared {
    view: Mutex<View>,
    changed: Condvar,
    streams: AtomicUsize,
    actions: AtomicUsize,
    token: String,
    hosts: api::Hosts,
    cfg: ClusterConfig,
}

/// Holds one of a bounded number of slots; gives it back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        let mut n = counter.load(Ordering::SeqCst);
        loop {
            if n >= max {
                return None;
            }
            match counter.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(Slot(counter)),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the access token is kept, so that a page left open keeps working when `web` (or
/// `up --web`) restarts: mode 0600 in the cluster directory, which only its owner can enter.
pub const WEB_TOKEN_FILE: &str = "web.token";

/// The token of `<dir>/web.token`, made (from /dev/urandom) when the file is missing.
pub fn load_or_create_token(cfg: &ClusterConfig) -> Result<String, CliError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = cfg.dir.join(WEB_TOKEN_FILE);
    let bad = |what: String| CliError::failed(format!("the web token file {}: {what}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path).map_err(|e| bad(e.to_string()))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "mode {:o} lets others read it: `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
            api::parse_token_file(&text).map_err(bad)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = api::new_token().map_err(|e| bad(format!("no random bytes: {e}")))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| bad(format!("cannot create it: {e}")))?;
            f.write_all(format!("{token}\n").as_bytes()).map_err(|e| bad(format!("cannot write it: {e}")))?;
            Ok(token)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Serves the page until killed. Prints the URL (with the token) on stdout first.
pub fn run(cfg: &ClusterConfig, bind: &str, port: u16) -> Result<(), CliError> {
    let cfg = effective_config(cfg);
    if !cfg.dir.is_dir() {
        return Err(CliError::failed(format!(
            "no cluster directory {}; start the cluster with `raft-supervisor up` first",
            cfg.dir.display()
        )));
    }
    let (url, acceptor) = start(&cfg, bind, port)?;
    println!("raft-supervisor web: open {url} (Ctrl-C stops it)");
    let _ = std::io::stdout().flush();
    let _ = acceptor.join();
    Ok(())
}

/// Binds, starts the poller and the acceptor threads, and returns the URL to open (with
/// the token) and the acceptor's handle. `up --web` calls this inside the supervisor.
pub fn start(cfg: &ClusterConfig, bind: &str, port: u16) -> Result<(String, std::thread::JoinHandle<()>), CliError> {
    let token = load_or_create_token(cfg)?;
    let server = tiny_http::Server::http((bind, port))
        .map_err(|e| CliError::failed(format!("cannot listen on {bind}:{port}: {e}")))?;
    let port = server.server_addr().to_ip().map_or(port, |a| a.port());
    let host = if bind.contains(':') { format!("[{bind}]") } else { bind.to_string() };
    let shared = Arc::new(Shared {
        view: Mutex::new(View {
            status_json: r#"{"status":null,"error":"no look at the cluster yet"}"#.into(),
            ..View::default()
        }),
        changed: Condvar::new(),
        streams: AtomicUsize::new(0),
        actions: AtomicUsize::new(0),
        hosts: api::allowed_hosts(&host, port),
        token,
        cfg: cfg.clone(),
    });
    let thread_err = |e: std::io::Error| CliError::failed(format!("cannot start a thread: {e}"));
    {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new().name("web-poller".into()).spawn(move || poller(&shared)).map_err(thread_err)?;
    }
    let url = format!("http://{host}:{port}/?token={}", shared.token);
    let acceptor = std::thread::Builder::new()
        .name("web-acceptor".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                handle(&shared, request);
            }
        })
        .map_err(thread_err)?;
    Ok((url, acceptor))
}

/// The poller: one look at the cluster and the event logs per [`POLL_INTERVAL`], forever.
fn poller(shared: &Shared) {
    let mut tails: BTreeMap<PathBuf, FileTail> = BTreeMap::new();
    let mut probe = nodes::NodeProbe::default();
    loop {
        let started = Instant::now();
        let (status, error) = match client::request(&shared.cfg, &SupervisorRequest::Watch, STATUS_TIMEOUT) {
            Ok(SupervisorResponse::Status(st)) => (Some(st), None),
            Ok(other) => (None, Some(format!("unexpected answer from the supervisor: {other:?}"))),
            Err(e) => (None, Some(e.message)),
        };
        for (path, source) in event_files(&shared.cfg.dir) {
            tails.entry(path.clone()).or_insert_with(|| FileTail::from_end(path, source, INITIAL_TAIL_BYTES));
        }
        let new = merge(tails.values_mut().flat_map(|t| t.read_new()).collect());
        let look = status.as_ref().map(|st| probe.look(&shared.cfg, st)).unwrap_or_default();
        publish(shared, status.as_ref(), error.as_deref(), &look, new.iter().map(|e| e.json()));
        std::thread::sleep(POLL_INTERVAL.saturating_sub(started.elapsed()));
    }
}

fn publish(
    shared: &Shared,
    status: Option<&ClusterStatus>,
    error: Option<&str>,
    look: &nodes::NodesLook,
    events: impl Iterator<Item = String>,
) {
    let status_json = serde_json::json!({
        "status": status,
        "error": error,
        "traffic": look.traffic,
        "traffic_missed": look.traffic_missed,
        "logs": look.logs,
        "votes": look.votes,
    })
    .to_string();
    let mut v = shared.view.lock().expect("web view lock");
    v.seq += 1;
    v.status_json = status_json;
    if let Some(st) = status {
        v.ids = st.nodes.iter().map(|r| r.id).collect();
    }
    for e in events {
        let n = v.next_event;
        v.next_event += 1;
        v.events.push_back((n, e));
        if v.events.len() > EVENT_RING {
            v.events.pop_front();
        }
    }
    drop(v);
    shared.changed.notify_all();
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header")
}

fn json_response(status: u16, body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"))
}

fn refuse(request: tiny_http::Request, r: Refusal) {
    let body = serde_json::json!({ "ok": false, "message": r.message }).to_string();
    let _ = request.respond(json_response(r.status, body));
}

fn header_value<'a>(request: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

fn handle(shared: &Arc<Shared>, mut request: tiny_http::Request) {
    let url = request.url().to_string();
    let path = api::path_of(&url).to_string();
    let method = request.method().clone();
    let host = header_value(&request, "Host");
    // The page itself is no secret (the token comes in its URL); only its Host is checked.
    if method == tiny_http::Method::Get && (path == "/" || path == "/index.html") {
        if host.is_some_and(|h| shared.hosts.allows(h)) {
            let response = tiny_http::Response::from_string(PAGE_HTML)
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
                .with_header(header("Cache-Control", "no-store"))
                .with_header(header("X-Frame-Options", "DENY"))
                .with_header(header(
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ));
            let _ = request.respond(response);
        } else {
            refuse(request, Refusal { status: 403, message: "this Host is not this server".into() });
        }
        return;
    }
    let checked = api::check_request(
        host,
        header_value(&request, "Origin"),
        header_value(&request, "X-Raft-Token"),
        &url,
        &shared.token,
        &shared.hosts,
    );
    if let Err(r) = checked {
        return refuse(request, r);
    }
    match (method, path.as_str()) {
        (tiny_http::Method::Get, "/events") => {
            let shared2 = Arc::clone(shared);
            let Some(slot) = Slot::take(&shared.streams, MAX_STREAMS) else {
                return refuse(
                    request,
                    Refusal { status: 503, message: format!("{MAX_STREAMS} pages are open already") },
                );
            };
            std::mem::forget(slot); // given back by the stream thread
            let spawned = std::thread::Builder::new().name("web-stream".into()).spawn(move || {
                let _slot = Slot(&shared2.streams);
                stream(&shared2, request.into_writer());
            });
            if spawned.is_err() {
                shared.streams.fetch_sub(1, Ordering::SeqCst);
            }
        }
        (tiny_http::Method::Get, "/api/status") => {
            let body = shared.view.lock().expect("web view lock").status_json.clone();
            let _ = request.respond(json_response(200, body));
        }
        (tiny_http::Method::Post, "/api/action") => {
            if request.body_length().is_some_and(|n| n > api::MAX_BODY_BYTES) {
                let message = format!("an action is at most {} bytes", api::MAX_BODY_BYTES);
                return refuse(request, Refusal { status: 413, message });
            }
            let mut body = Vec::new();
            let read = request.as_reader().take(api::MAX_BODY_BYTES as u64 + 1).read_to_end(&mut body);
            if read.is_err() || body.len() > api::MAX_BODY_BYTES {
                let message = format!("an action is at most {} bytes", api::MAX_BODY_BYTES);
                return refuse(request, Refusal { status: 413, message });
            }
            let ids = {
                let v = shared.view.lock().expect("web view lock");
                if v.ids.is_empty() {
                    crate::cli::node_ids(&shared.cfg)
                } else {
                    v.ids.clone()
                }
            };
            let plan = match api::parse_action(&body, &ids) {
                Ok(p) => p,
                Err(r) => return refuse(request, r),
            };
            let Some(slot) = Slot::take(&shared.actions, MAX_ACTIONS_IN_FLIGHT) else {
                let message = format!("{MAX_ACTIONS_IN_FLIGHT} actions are still running; try again in a moment");
                return refuse(request, Refusal { status: 429, message });
            };
            std::mem::forget(slot);
            let shared2 = Arc::clone(shared);
            let spawned = std::thread::Builder::new().name("web-action".into()).spawn(move || {
                let _slot = Slot(&shared2.actions);
                let (status, ok, message) = execute(&shared2.cfg, plan);
                let body = serde_json::json!({ "ok": ok, "message": message }).to_string();
                let _ = request.respond(json_response(status, body));
            });
            if spawned.is_err() {
                shared.actions.fetch_sub(1, Ordering::SeqCst);
            }
        }
        (_, "/events" | "/api/status" | "/api/action") => {
            refuse(request, Refusal { status: 405, message: "wrong method for this path".into() })
        }
        _ => refuse(request, Refusal { status: 404, message: format!("nothing at {path}") }),
    }
}

/// Carries out one action: (HTTP status, ok, the line to show).
fn execute(cfg: &ClusterConfig, plan: Plan) -> (u16, bool, String) {
    use raft_cli::client::{Client, Cluster};
    use raft_wire::{ReadOp, Reply, WriteOp};
    match plan {
        Plan::Supervisor(req) => match client::request(cfg, &req, ACTION_TIMEOUT) {
            Ok(SupervisorResponse::Ok(text)) => (200, true, text),
            Ok(SupervisorResponse::Status(_)) => (200, true, "done".into()),
            Ok(SupervisorResponse::Error(text)) => (409, false, text),
            Err(e) => (503, false, e.message),
        },
        Plan::Set { key, value } => {
            let mut c = Client::new(Cluster::from_config(cfg), CLIENT_TIMEOUT);
            match c.write(WriteOp::Set { key: key.clone(), value: value.into_bytes() }) {
                Ok(Reply::Done) => (200, true, format!("set {key}: OK")),
                Ok(other) => (200, true, format!("set {key}: {other:?}")),
                Err(e) => (503, false, format!("set {key}: {e}")),
            }
        }
        Plan::Get { key } => {
            let mut c = Client::new(Cluster::from_config(cfg), CLIENT_TIMEOUT);
            match c.read(ReadOp::Get { key: key.clone() }, false) {
                Ok(Reply::Value(Some(v))) => (200, true, format!("get {key}: {}", String::from_utf8_lossy(&v))),
                Ok(Reply::Value(None)) => (200, true, format!("get {key}: not found")),
                Ok(other) => (200, true, format!("get {key}: {other:?}")),
                Err(e) => (503, false, format!("get {key}: {e}")),
            }
        }
    }
}

/// One page's stream: headers, then a frame each time the view moves, until the page goes.
fn stream(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nretry: {SSE_RETRY_MS}\n\n"
    );
    if out.write_all(head.as_bytes()).and_then(|_| out.flush()).is_err() {
        return;
    }
    let mut seen_seq = 0u64;
    // The first frame carries the whole ring: the page starts with the recent past.
    let mut next_event = 0u64;
    loop {
        let frame = {
            let mut v = shared.view.lock().expect("web view lock");
            while v.seq == seen_seq {
                v = shared.changed.wait(v).expect("web view lock");
            }
            seen_seq = v.seq;
            let (frame, next) = frame_for(&v, next_event);
            next_event = next;
            frame
        };
        if out.write_all(frame.as_bytes()).and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

/// One server-sent event for a page that has had the events before `client_next`: the
/// latest look and the events since (at most [`MAX_EVENTS_PER_FRAME`], the newest; how many
/// it missed is in `skipped_events`). Returns the frame and the page's next event number.
fn frame_for(v: &View, client_next: u64) -> (String, u64) {
    let first_kept = v.events.front().map_or(v.next_event, |e| e.0);
    let from = client_next.max(first_kept).max(v.next_event.saturating_sub(MAX_EVENTS_PER_FRAME as u64));
    let skipped = from - client_next.min(from);
    let events: Vec<&str> = v.events.iter().filter(|(n, _)| *n >= from).map(|(_, e)| e.as_str()).collect();
    assert!(events.len() <= MAX_EVENTS_PER_FRAME, "a frame carries at most {MAX_EVENTS_PER_FRAME} events");
    let mut f = String::with_capacity(v.status_json.len() + 256 * events.len() + 64);
    f.push_str("data: {\"seq\":");
    f.push_str(&v.seq.to_string());
    f.push_str(",\"skipped_events\":");
    f.push_str(&skipped.to_string());
    f.push_str(",\"view\":");
    f.push_str(&v.status_json);
    f.push_str(",\"events\":[");
    f.push_str(&events.join(","));
    f.push_str("]}\n\n");
    (f, v.next_event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(events: std::ops::Range<u64>) -> View {
        View {
            seq: 7,
            status_json: r#"{"status":null,"error":"x"}"#.into(),
            ids: vec![],
            events: events.clone().map(|n| (n, format!("{{\"n\":{n}}}"))).collect(),
            next_event: events.end,
        }
    }

    fn parse(frame: &str) -> serde_json::Value {
        let data = frame.strip_prefix("data: ").and_then(|f| f.strip_suffix("\n\n")).expect("one SSE data line");
        assert!(!data.contains('\n'), "one line");
        serde_json::from_str(data).expect("JSON")
    }

    fn numbers(v: &serde_json::Value) -> Vec<u64> {
        v["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect()
    }

    #[test]
    fn frames_carry_the_new_events_and_count_the_missed() {
        // A fresh page gets what the ring holds, up to a frame's worth (the newest).
        let v = view(0..10);
        let (f, next) = frame_for(&v, 0);
        let j = parse(&f);
        assert_eq!(
            (numbers(&j), next, j["seq"].as_u64(), j["skipped_events"].as_u64()),
            ((0..10).collect(), 10, Some(7), Some(0))
        );
        assert_eq!(j["view"]["error"], "x");
        // Later frames: only what came since.
        let (f, next) = frame_for(&view(0..13), 10);
        assert_eq!((numbers(&parse(&f)), next), (vec![10, 11, 12], 13));
        assert!(numbers(&parse(&frame_for(&view(0..13), 13).0)).is_empty());
        // A page that fell behind the ring, or past a frame's worth: the newest, and a count.
        let big = EVENT_RING as u64 + 50;
        let (f, _) = frame_for(&view(50..big), 3);
        let j = parse(&f);
        assert_eq!(numbers(&j).len(), MAX_EVENTS_PER_FRAME);
        assert_eq!(*numbers(&j).last().unwrap(), big - 1);
        assert_eq!(j["skipped_events"].as_u64(), Some(big - MAX_EVENTS_PER_FRAME as u64 - 3));
    }
}
