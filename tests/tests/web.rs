//! Issue 20 on the real cluster: `raft-supervisor web`'s HTTP API and event stream with a
//! plain HTTP client, and the page itself in headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by `.ci/run`).
//!
//! The WebDriver client is the few JSON calls these tests make (new session, go, find and
//! click, pointer actions, run a script, screenshot), written over ureq: smaller than a
//! WebDriver crate with its async runtime, and the protocol is a W3C standard.
//! Screenshots of each state are saved in `target/web-screenshots/`.

use raft_e2e::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the page may take to show what a test waits for (frames are 100 ms apart; an
/// election after a kill takes a few hundred).
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Limit on one HTTP call (an action waits for the supervisor; a restart for the node).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `web` and chromedriver may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(HTTP_TIMEOUT).build()
}

/// Kills a process this test started (and its process group, when it leads one) by pid
/// and reaps it.
fn kill_child(child: &mut Child, group: bool) {
    let pid = child.id() as i32;
    // SAFETY: kill(2) on the pid (or process group) of a child this test spawned and has
    // not yet reaped, so the pid cannot have been reused.
    unsafe {
        libc::kill(if group { -pid } else { pid }, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Dies with the test thread that started it (a crashed test leaves nothing behind).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A running `raft-supervisor web --port 0`: its base URL and token. Killed on drop.
struct Web {
    child: Child,
    base: String,
    token: String,
}

impl Web {
    fn start(c: &Cluster) -> Web {
        let mut cmd = Command::new(&bins().supervisor);
        cmd.arg("--config").arg(&c.config).args(["web", "--port", "0"]).env_remove("RAFT_CONFIG");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn raft-supervisor web");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_LIMIT);
        let mut web = Web { child, base: String::new(), token: String::new() };
        let line = line.expect("raft-supervisor web printed no URL");
        // "raft-supervisor web: open http://127.0.0.1:PORT/?token=HEX (Ctrl-C stops it)"
        let url =
            line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}"));
        let (base, token) = url.split_once("/?token=").unwrap_or_else(|| panic!("no token in {url}"));
        assert!(base.starts_with("http://127.0.0.1:"), "served on loopback by default: {base}");
        assert_eq!(token.len(), 32, "{token}");
        web.base = base.to_string();
        web.token = token.to_string();
        web
    }

    fn page_url(&self) -> String {
        format!("{}/?token={}", self.base, self.token)
    }

    /// POST an action with the token; (HTTP status, the answer's JSON).
    fn action(&self, body: &Value) -> (u16, Value) {
        let r =
            agent().post(&format!("{}/api/action", self.base)).set("X-Raft-Token", &self.token).send_json(body.clone());
        answer(r)
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        kill_child(&mut self.child, false);
    }
}

/// Status and JSON body of an HTTP answer, error statuses included.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match r {
        Ok(resp) => (resp.status(), resp.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("HTTP call failed: {e}"),
    }
}

/// Reads server-sent-event frames (`data: {...}` lines) from a stream.
struct Frames {
    lines: std::sync::mpsc::Receiver<String>,
}

impl Frames {
    fn open(web: &Web) -> Frames {
        let resp = agent()
            .get(&format!("{}/events?token={}", web.base, web.token))
            .call()
            .unwrap_or_else(|e| panic!("cannot open the stream: {e}"));
        assert_eq!(resp.content_type(), "text/event-stream");
        let reader = BufReader::new(resp.into_reader());
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        // Ends when the stream ends (the web process is killed at the end of the test) or
        // the receiver is gone.
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(data) = line.strip_prefix("data: ") {
                    if tx.send(data.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        Frames { lines: rx }
    }

    /// Frames until `f` says yes, or panics after `timeout`.
    fn until<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no stream frame with {what} within {timeout:?}"));
            let frame: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {line}"));
            if let Some(v) = f(&frame) {
                return v;
            }
        }
    }
}

fn frame_leader(frame: &Value) -> Option<(u64, u64)> {
    let nodes = frame["view"]["status"]["nodes"].as_array()?;
    nodes
        .iter()
        .filter(|n| n["role"] == "leader" && n["process"] == "running")
        .filter_map(|n| Some((n["id"].as_u64()?, n["term"].as_u64()?)))
        .max_by_key(|&(_, t)| t)
}

#[test]
fn http_api_and_event_stream() {
    let c = Cluster::start(Opts::default());
    let web = Web::start(&c);
    let a = agent();

    // The page: embedded, with the script inline and no outside references.
    let resp = a.get(&format!("{}/", web.base)).call().expect("the page");
    assert_eq!(resp.status(), 200);
    assert!(resp.content_type().starts_with("text/html"));
    let page = resp.into_string().unwrap();
    assert!(page.contains("<svg") && page.contains("EventSource"), "not the page");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "the page fetches nothing from elsewhere");

    // Everything else needs the token.
    let status_url = format!("{}/api/status", web.base);
    let (code, body) = answer(a.get(&status_url).call());
    assert_eq!(code, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("token"), "{body}");
    let (code, _) = answer(a.get(&format!("{status_url}?token={}", "0".repeat(32))).call());
    assert_eq!(code, 401, "a wrong token of the right length");
    c.wait("the status of five nodes", PAGE_TIMEOUT, || {
        let (code, body) = answer(a.get(&format!("{status_url}?token={}", web.token)).call());
        assert_eq!(code, 200, "{body}");
        (body["status"]["nodes"].as_array().map(Vec::len) == Some(5)).then_some(())
    });
    let (code, _) = answer(a.get(&format!("{}/events", web.base)).call());
    assert_eq!(code, 401, "the stream needs the token too");

    // Actions: refused without the token, from another origin, for another Host.
    let action_url = format!("{}/api/action", web.base);
    let kill1 = json!({"action": "kill", "node": 1});
    let (code, _) = answer(a.post(&action_url).send_json(kill1.clone()));
    assert_eq!(code, 401, "an action without the token");
    let (code, body) = answer(
        a.post(&action_url)
            .set("X-Raft-Token", &web.token)
            .set("Origin", "http://evil.example")
            .send_json(kill1.clone()),
    );
    assert_eq!(code, 403, "an action from another origin: {body}");
    let (code, _) = answer(
        a.post(&action_url).set("X-Raft-Token", &web.token).set("Host", "evil.example").send_json(kill1.clone()),
    );
    assert_eq!(code, 403, "an action for another Host (DNS rebinding)");
    let st = c.sup_status().unwrap();
    assert!(st.nodes.iter().all(|n| n.process == "running"), "no refused action reached the cluster: {st:?}");

    // Bad actions: each refused with a reason, the server still serving.
    let bad = |body: &str, code: u16| {
        let r = a
            .post(&action_url)
            .set("X-Raft-Token", &web.token)
            .set("Content-Type", "application/json")
            .send_string(body);
        let (got, answer) = answer(r);
        assert_eq!(got, code, "{body} -> {answer}");
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(!answer["message"].as_str().unwrap_or("").is_empty(), "{answer}");
    };
    bad("not json", 400);
    bad(r#"{"action":"kill","node":9}"#, 400);
    bad(r#"{"action":"explode"}"#, 400);
    bad(r#"{"action":"partition","groups":[[1,2],[2,3]]}"#, 400);
    bad(&"x".repeat(100_000), 413);
    let (code, _) = answer(a.get(&format!("{}/nothing?token={}", web.base, web.token)).call());
    assert_eq!(code, 404);
    let (code, _) = answer(a.get(&action_url).set("X-Raft-Token", &web.token).call());
    assert_eq!(code, 405);

    // The stream: statuses of five nodes with one leader, the leader's heartbeats, and
    // the events.
    let frames = Frames::open(&web);
    let (leader, term) = frames.until("a leader", PAGE_TIMEOUT, frame_leader);
    frames.until("the leader's heartbeats in the traffic", PAGE_TIMEOUT, |f| {
        let traffic = f["view"]["traffic"].as_array()?;
        traffic.iter().any(|m| m["from"] == leader && m["kind"] == "heartbeat" && m["term"] == term).then_some(())
    });

    // The client panel writes through the cluster and reads it back.
    let (code, body) = web.action(&json!({"action": "set", "key": "chelsea", "value": "rules"}));
    assert_eq!((code, &body["ok"]), (200, &json!(true)), "{body}");
    // The write travels: the leader's append carrying it is in the stream's traffic, and
    // every node's log cells end with it.
    let mut saw_append = false;
    frames.until("the leader's append with the write, and the entry in every log", PAGE_TIMEOUT, |f| {
        let traffic = f["view"]["traffic"].as_array()?;
        saw_append |=
            traffic.iter().any(|m| m["from"] == leader && m["kind"] == "append" && m["count"].as_u64() >= Some(1));
        let logs = f["view"]["logs"].as_object()?;
        let all = (1..=5).all(|id| {
            logs.get(&id.to_string())
                .and_then(|l| l.as_array())
                .is_some_and(|cells| cells.iter().any(|c| c[1].as_u64() == Some(term) && c[2] == "set chelsea rules"))
        });
        (saw_append && all).then_some(())
    });
    let (code, body) = web.action(&json!({"action": "get", "key": "chelsea"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "get chelsea: rules");
    assert_eq!(c.cli(&["get", "chelsea"]).stdout.trim(), "rules");

    // Kill the leader from the web: the supervisor does it, the stream shows the command
    // in its events and a new leader in a higher term.
    let (code, body) = web.action(&json!({"action": "kill", "node": leader}));
    assert_eq!(code, 200, "{body}");
    c.wait("the leader stopped", PAGE_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        (st.nodes.iter().find(|n| n.id == leader)?.process == "stopped").then_some(())
    });
    let mut saw_kill = false;
    let (new_leader, new_term) = frames.until("the kill and a new leader", PAGE_TIMEOUT, |f| {
        let events = f["events"].as_array()?;
        saw_kill |= events
            .iter()
            .any(|e| e["source"] == "supervisor" && e["text"].as_str().is_some_and(|t| t.contains("kill")));
        let (l, t) = frame_leader(f)?;
        (saw_kill && l != leader && t > term).then_some((l, t))
    });
    assert!(new_term > term && new_leader != leader);
    let (code, body) = web.action(&json!({"action": "start", "node": leader}));
    assert_eq!(code, 200, "{body}");

    // A partition and a heal through the API are what `status` reports.
    let (code, body) = web.action(&json!({"action": "partition", "groups": [[1, 2]]}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.sup_status().unwrap().partitions, vec![vec![1, 2], vec![3, 4, 5]]);
    let (code, body) = web.action(&json!({"action": "heal"}));
    assert_eq!(code, 200, "{body}");
    assert!(c.sup_status().unwrap().partitions.is_empty());

    // The other levers reach the cluster as `status` reports them.
    let (code, body) = web.action(&json!({"action": "delay", "ms": 100}));
    assert_eq!(code, 200, "{body}");
    c.wait("every running node to report the delay", PAGE_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        st.nodes
            .iter()
            .filter(|n| n.process == "running")
            .all(|n| n.levers.is_some_and(|l| l.delay_us == 100_000))
            .then_some(())
    });
    let (code, body) = web.action(&json!({"action": "delay", "ms": 0}));
    assert_eq!(code, 200, "{body}");
    let (code, body) = web.action(&json!({"action": "speed", "milli": 500}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.sup_status().unwrap().speed_milli, 500);
    let follower = c.ids().into_iter().find(|&id| id != leader && id != new_leader).unwrap();
    let (code, body) = web.action(&json!({"action": "pause", "node": follower}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.sup_status().unwrap().nodes.iter().find(|n| n.id == follower).unwrap().process, "paused");
    let (code, body) = web.action(&json!({"action": "resume", "node": follower}));
    assert_eq!(code, 200, "{body}");
    let (code, body) = web.action(&json!({"action": "transfer", "node": follower}));
    assert_eq!(code, 200, "{body}");
    c.wait("the transfer to make it leader", PAGE_TIMEOUT, || (c.stable_leader(&c.ids())?.0 == follower).then_some(()));
    // An action the supervisor refuses is a 409 with its reason.
    let (code, body) = web.action(&json!({"action": "start", "node": follower}));
    assert_eq!(code, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("already running"), "{body}");
}

/// Over `transport = "tcp"` the view dials the nodes at their `addrs` (there are no node
/// sockets): the stream carries every node's messages, log cells and vote.
#[test]
fn the_stream_carries_the_nodes_own_answers_over_tcp() {
    let nodes = 3;
    let base = free_redis_base(nodes);
    let addrs: Vec<String> = (1..=nodes).map(|n| format!("\"127.0.0.1:{}\"", base as u64 + n)).collect();
    let extra_toml = format!("transport = \"tcp\"\naddrs = [{}]\ninsecure = true\n", addrs.join(", "));
    let c = Cluster::start(Opts { nodes, extra_toml, ..Opts::default() });
    assert!(!c.dir.join("node-1").join("node.sock").exists(), "no Unix socket to fall back on");
    let web = Web::start(&c);
    let frames = Frames::open(&web);
    let (leader, term) = frames.until("a leader", PAGE_TIMEOUT, frame_leader);
    frames.until("the leader's heartbeats, and every node's log cells and vote", PAGE_TIMEOUT, |f| {
        let view = &f["view"];
        let heartbeat = view["traffic"]
            .as_array()?
            .iter()
            .any(|m| m["from"] == leader && m["kind"] == "heartbeat" && m["term"] == term);
        let every = |key: &str| (1..=nodes).all(|id| view[key].get(id.to_string()).is_some_and(|v| !v.is_null()));
        (heartbeat && every("logs") && every("votes")).then_some(())
    });
}

#[test]
fn the_stream_says_when_the_supervisor_is_gone_and_carries_on_after_up() {
    let mut c = Cluster::start(Opts::default());
    let web = Web::start(&c);
    let frames = Frames::open(&web);
    frames.until("a status", PAGE_TIMEOUT, |f| f["view"]["status"]["nodes"].as_array().map(|_| ()));
    c.sup_ok(&["down"]);
    c.wait_supervisor_exit(PAGE_TIMEOUT).expect("the supervisor exits after down");
    let error = frames.until("no supervisor", PAGE_TIMEOUT, |f| f["view"]["error"].as_str().map(str::to_string));
    assert!(error.contains("no supervisor"), "{error}");
    let c = c.up();
    let (leader, _) = frames.until("a leader after up", PAGE_TIMEOUT, frame_leader);
    assert!(c.ids().contains(&leader));

    // The token is kept in <dir>/web.token (0600): a restarted `web` serves the same URL,
    // so a page left open carries on.
    let token_file = c.dir.join("web.token");
    let mode = std::fs::metadata(&token_file).expect("web.token").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = web.token.clone();
    drop(web);
    let web = Web::start(&c);
    assert_eq!(web.token, token, "the same token after a restart");

    // A damaged or readable token file is refused with a clear line, nothing served.
    drop(web);
    std::fs::write(&token_file, "not a token").unwrap();
    let out = c.sup(&["web", "--port", "0"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("web.token") && out.stderr.contains("hex digits"), "{}", out.describe());
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = c.sup(&["web", "--port", "0"]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("chmod 600"), "{}", out.describe());
}

#[test]
fn up_with_web_serves_the_page_from_the_supervisor() {
    let c = Cluster::prepare(Opts::default());
    let log = c.dir.join("up-web.out");
    let mut cmd = Command::new(&bins().supervisor);
    cmd.arg("--config").arg(&c.config).args(["up", "--web", "0"]).env_remove("RAFT_CONFIG");
    cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&log).unwrap()).stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut up = UpWeb(cmd.spawn().expect("spawn raft-supervisor up --web"));
    let url = c.wait("up to print the page's URL", START_LIMIT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let line = text.lines().find(|l| l.starts_with("web: open "))?;
        Some(line.trim_start_matches("web: open ").to_string())
    });
    let (base, token) = url.split_once("/?token=").expect("a token in the URL");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let a = agent();
    c.wait("the page's status of five nodes with a leader", PAGE_TIMEOUT, || {
        let (code, body) = answer(a.get(&format!("{base}/api/status?token={token}")).call());
        assert_eq!(code, 200, "{body}");
        let nodes = body["status"]["nodes"].as_array()?;
        (nodes.len() == 5 && nodes.iter().any(|n| n["role"] == "leader")).then_some(())
    });
    let (code, _) = answer(a.post(&format!("{base}/api/action")).send_json(json!({"action": "heal"})));
    assert_eq!(code, 401, "actions need the token here too");
    c.sup_ok(&["down"]);
    let status = poll_until(PAGE_TIMEOUT, || up.0.try_wait().ok().flatten()).expect("up exits after down");
    assert!(status.success(), "{status:?}");
}

/// `up --web` run by the test itself (the harness's `Cluster::up` runs plain `up`); killed
/// by pid on drop if still running.
struct UpWeb(Child);

impl Drop for UpWeb {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill_child(&mut self.0, false);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The page in a real browser

/// chromium and chromedriver from Debian, or None (a skip, except under RAFT_E2E_REQUIRE).
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(b), Some(d)) => Some((b, d)),
        _ => {
            assert!(
                std::env::var_os("RAFT_E2E_REQUIRE").is_none(),
                "chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipping: chromium or chromedriver not installed");
            None
        }
    }
}

/// A chromedriver on a free port with one headless Chromium session. Dropping it ends the
/// session, then kills chromedriver's process group (it and the browser) by its pid.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(chromium: &std::path::Path, chromedriver: &std::path::Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // Its own process group, so the browser it starts dies with it.
        cmd.process_group(0);
        die_with_parent(&mut cmd);
        let driver = cmd.spawn().expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut b =
            Browser { driver, base: format!("http://127.0.0.1:{port}"), session: String::new(), _profile: profile };
        let a = agent();
        wait_for("chromedriver to listen", START_LIMIT, || {
            a.get(&format!("{}/status", b.base)).call().ok().and_then(|r| r.into_json::<Value>().ok())?["value"]
                ["ready"]
                .as_bool()
                .filter(|r| *r)
        });
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1500,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", b._profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}
        }}});
        let v = b.call("POST", "/session", Some(caps)).unwrap_or_else(|e| panic!("no browser session: {e}"));
        b.session = v["sessionId"].as_str().expect("a session id").to_string();
        b
    }

    /// One WebDriver command; its `value`, or the error it reports.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = agent().request(method, &url);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let (code, v) = answer(r);
        if code == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path} -> {code}: {v}"))
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    fn go(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    fn script(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    fn async_script(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/async", Some(json!({"script": script, "args": []})))
    }

    fn click(&self, css: &str) {
        let e = self.session_call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        let id = e[ELEMENT_KEY].as_str().expect("an element id").to_string();
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Real pointer input (what a user's mouse does): press at the first point, move
    /// through the others, release at the last. Viewport coordinates.
    fn pointer(&self, points: &[(i64, i64)]) {
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "x": points[0].0, "y": points[0].1, "origin": "viewport"}),
        ];
        actions.push(json!({"type": "pointerDown", "button": 0}));
        for &(x, y) in &points[1..] {
            actions.push(json!({"type": "pointerMove", "duration": 150, "x": x, "y": y, "origin": "viewport"}));
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        let body = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": actions}]});
        self.session_call("POST", "/actions", Some(body));
        self.session_call("DELETE", "/actions", None);
    }

    /// The centre of the first element matching `css`, in viewport coordinates.
    fn centre(&self, css: &str) -> (i64, i64) {
        let v = self.script(&format!(
            "const r = document.querySelector({css:?}).getBoundingClientRect(); return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)];"
        ));
        (v[0].as_i64().expect("x"), v[1].as_i64().expect("y"))
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64")).expect("a PNG");
        let dir = bins().supervisor.parent().and_then(|p| p.parent()).expect("target dir").join("web-screenshots");
        std::fs::create_dir_all(&dir).expect("create target/web-screenshots");
        std::fs::write(dir.join(name), png).expect("write a screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        kill_child(&mut self.driver, true);
    }
}

/// What the page shows: (node count, running leaders, the summary's leader and term,
/// each node's id and role).
#[derive(Debug)]
struct Shown {
    nodes: usize,
    leaders: usize,
    leader: Option<u64>,
    term: Option<u64>,
    roles: Vec<(u64, String, String)>,
}

fn shown(b: &Browser) -> Shown {
    let v = b.script(
        "const s = document.getElementById('summary');
         const nodes = [...document.querySelectorAll('#nodes .node')];
         return { nodes: nodes.length,
                  leaders: nodes.filter(n => n.dataset.role === 'leader' && n.dataset.process === 'running').length,
                  leader: s.dataset.leader, term: s.dataset.term,
                  roles: nodes.map(n => [+n.dataset.id, n.dataset.role, n.dataset.process]) };",
    );
    Shown {
        nodes: v["nodes"].as_u64().unwrap_or(0) as usize,
        leaders: v["leaders"].as_u64().unwrap_or(0) as usize,
        leader: v["leader"].as_str().and_then(|s| s.parse().ok()),
        term: v["term"].as_str().and_then(|s| s.parse().ok()),
        roles: v["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r[0].as_u64().unwrap_or(0),
                            r[1].as_str().unwrap_or("").into(),
                            r[2].as_str().unwrap_or("").into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[test]
fn the_page_in_headless_chromium() {
    let Some((chromium, chromedriver)) = browser_tools() else { return };
    let c = Cluster::start(Opts::default());
    let web = Web::start(&c);
    let b = Browser::start(&chromium, &chromedriver);
    b.go(&web.page_url());

    // Five nodes and exactly one leader.
    let (leader, term) = c.wait("the page to show five nodes and one leader", PAGE_TIMEOUT, || {
        let s = shown(&b);
        (s.nodes == 5 && s.leaders == 1).then_some(())?;
        Some((s.leader?, s.term?))
    });
    let st = c.sup_status().unwrap();
    assert_eq!(cli_leader(&st), Some(leader), "the page's leader is the supervisor's");
    // A write from the client panel, so the logs show entries.
    b.click("#btn-set");
    c.wait("the panel's set to answer", PAGE_TIMEOUT, || {
        let t = b.script("return document.getElementById('actions').textContent;");
        t.as_str()?.contains("set chelsea: OK").then_some(())
    });
    assert_eq!(c.cli(&["get", "chelsea"]).stdout.trim(), "rules");
    b.screenshot("1-five-nodes-one-leader.png");

    // A request from the page without the token is refused.
    let refused = b.async_script(
        "const done = arguments[arguments.length - 1];
         fetch('/api/action', {method: 'POST', headers: {'Content-Type': 'application/json'},
                               body: JSON.stringify({action: 'kill', node: 1})})
           .then(r => done(r.status), e => done(String(e)));",
    );
    assert_eq!(refused, json!(401));

    // Click the leader, then kill: the page shows a new leader in a higher term.
    b.pointer(&[b.centre(&format!("#nodes .node[data-id=\"{leader}\"] .body"))]);
    c.wait("the leader to be selected", PAGE_TIMEOUT, || {
        (b.script("return document.getElementById('sel').textContent;") == json!(format!("n{leader}"))).then_some(())
    });
    b.click("#btn-kill");
    let (new_leader, new_term) = c.wait("the page to show a new leader in a higher term", PAGE_TIMEOUT, || {
        let s = shown(&b);
        let (l, t) = (s.leader?, s.term?);
        let old = s.roles.iter().find(|r| r.0 == leader)?;
        (l != leader && t > term && old.2 == "stopped" && s.leaders == 1).then_some((l, t))
    });
    assert!(new_term > term);
    assert_eq!(c.sup_status().unwrap().nodes.iter().find(|n| n.id == leader).unwrap().process, "stopped");
    // The new leader won a majority of five: at least two others show their vote for it.
    c.wait("the page to show the votes for the new leader", PAGE_TIMEOUT, || {
        let v = b.script(&format!(
            "return [...document.querySelectorAll('#nodes .node')].filter(n => +n.dataset.term === {new_term} && \
             n.querySelector('.vote')?.textContent === 'voted n{new_leader}').length;"
        ));
        (v.as_u64()? >= 2).then_some(())
    });
    b.screenshot("2-leader-killed-new-leader.png");

    // Drag a follower into the island: `status` reports the partition.
    let follower = c.ids().into_iter().find(|&id| id != leader && id != new_leader).unwrap();
    let from = b.centre(&format!("#nodes .node[data-id=\"{follower}\"] .body"));
    let to = b.centre("#island");
    b.pointer(&[from, ((from.0 + to.0) / 2, (from.1 + to.1) / 2), to]);
    c.wait("status to report the dragged partition", PAGE_TIMEOUT, || {
        let out = c.sup(&["status", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let parts = v["partitions"].as_array()?;
        (parts.len() == 2 && parts[0] == json!([follower])).then_some(())
    });
    c.wait("the page to draw the node cut off", PAGE_TIMEOUT, || {
        let v = b.script(&format!(
            "const n = document.querySelector('#nodes .node[data-id=\"{follower}\"]'); \
             if (!n) return false; const r = n.getBoundingClientRect(), i = document.getElementById('island').getBoundingClientRect(); \
             return r.x >= i.x && r.right <= i.right && r.y >= i.y && r.bottom <= i.bottom;"
        ));
        (v == json!(true)).then_some(())
    });
    b.screenshot("3-partition-by-dragging.png");

    // Heal with the button, slow the cluster tenfold from the speed menu, and write from
    // the panel: the page draws the leader's append carrying the entry on its way.
    b.click("#btn-heal");
    c.wait("the heal", PAGE_TIMEOUT, || c.sup_status().ok()?.partitions.is_empty().then_some(()));
    b.click("#speed option[value=\"100\"]");
    c.wait("speed 0.1 on the cluster", PAGE_TIMEOUT, || (c.sup_status().ok()?.speed_milli == 100).then_some(()));
    c.wait("the healed node to catch up", PAGE_TIMEOUT, || {
        let st = c.sup_status().ok()?;
        let last = st.nodes.iter().find(|n| n.id == new_leader)?.last_index?;
        (st.nodes.iter().find(|n| n.id == follower)?.commit? >= last).then_some(())
    });
    b.script("document.getElementById('value').value = 'slowly';");
    b.click("#btn-set");
    c.wait("an append with the write drawn on its way", PAGE_TIMEOUT, || {
        let v = b.script(
            "return [...document.querySelectorAll('#msgs circle[data-kind=\"append\"]')].some(d => +d.dataset.count >= 1);",
        );
        (v == json!(true)).then_some(())
    });
    b.screenshot("4-slow-motion-write.png");
    c.wait("the panel's set to answer", PAGE_TIMEOUT, || {
        let t = b.script("return document.getElementById('actions').textContent;");
        t.as_str()?.contains("set chelsea: OK").then_some(())
    });
    assert_eq!(c.cli(&["get", "chelsea"]).stdout.trim(), "slowly");
}

/// The supervisor's leader (the highest-term running leader).
fn cli_leader(st: &raft_wire::supervisor::ClusterStatus) -> Option<u64> {
    st.nodes.iter().filter(|n| n.role == "leader" && n.process == "running").max_by_key(|n| n.term).map(|n| n.id)
}

#[test]
fn web_says_why_it_cannot_start() {
    // No cluster directory: nothing to show, and no token file made anywhere.
    let tmp = short_tempdir();
    let config = tmp.path().join("c.toml");
    let dir = tmp.path().join("nothing-here");
    std::fs::write(&config, format!("dir = {:?}\n", dir.display().to_string())).unwrap();
    let mut cmd = Command::new(&bins().supervisor);
    cmd.arg("--config").arg(&config).args(["web", "--port", "0"]).env_remove("RAFT_CONFIG");
    let out = run_limited(&mut cmd, START_LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("no cluster directory") && out.stderr.contains("raft-supervisor up"),
        "{}",
        out.describe()
    );
    assert!(!dir.exists());

    // A port already taken: one line naming it.
    std::fs::create_dir(&dir).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut cmd = Command::new(&bins().supervisor);
    cmd.arg("--config").arg(&config).args(["web", "--port", &port]).env_remove("RAFT_CONFIG");
    let out = run_limited(&mut cmd, START_LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", out.describe());

    // Bad arguments are usage errors (exit 2).
    for args in [&["web", "--port", "99999"][..], &["web", "--port", "http"], &["web", "extra"]] {
        let mut cmd = Command::new(&bins().supervisor);
        cmd.arg("--config").arg(&config).args(args).env_remove("RAFT_CONFIG");
        let out = run_limited(&mut cmd, START_LIMIT);
        assert_eq!(out.code, Some(2), "{}", out.describe());
    }
}
