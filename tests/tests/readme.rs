//! The README's shown outputs against a real run, so they cannot drift again (issue 19).
//!
//! The walkthrough's commands (`$ raft-supervisor ...`, `$ raft-cli ...` in indented
//! blocks) run in order on a real cluster, and every line the README shows under a
//! command must appear, by its shape, in what the command printed. A shape is the line
//! with every number made `N`, paths made `PATH`, session ids made `X` and runs of
//! spaces made one: wording, columns, markers and the log line format are compared;
//! timestamps, pids, indexes and which node happens to lead are not. `status` commands
//! are retried until they show the README's shapes (an election takes a moment); node
//! log excerpts must appear in some node's log by the end of the run.

use raft_e2e::*;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// One `$ command` of the README and the lines shown under it.
#[derive(Debug)]
struct Shown {
    command: String,
    lines: Vec<String>,
}

/// What the README shows, in order: commands with their output, and node log excerpts
/// (indented blocks of log lines without a command).
fn parse_readme(text: &str) -> (Vec<Shown>, Vec<String>, Vec<String>) {
    let mut commands: Vec<Shown> = Vec::new();
    let mut excerpts = Vec::new();
    let mut json_lines = Vec::new();
    let mut in_command = false;
    for line in text.lines() {
        let Some(body) = line.strip_prefix("    ") else {
            in_command = false;
            continue;
        };
        if let Some(cmd) = body.strip_prefix("$ ") {
            let cmd = cmd.split("  #").next().unwrap().trim().to_string();
            in_command = cmd.starts_with("raft-supervisor") || cmd.starts_with("raft-cli");
            if in_command {
                commands.push(Shown { command: cmd, lines: Vec::new() });
            }
        } else if in_command {
            if body.trim() != "..." {
                commands.last_mut().unwrap().lines.push(body.to_string());
            }
        } else if is_log_line(body) || body.starts_with("--- raft-supervisor: ") {
            excerpts.push(body.to_string());
        } else if body.starts_with("{\"nodes\":") {
            json_lines.push(body.to_string());
        }
    }
    (commands, excerpts, json_lines)
}

/// `2026-12-01T03:02:27.418338Z n2 t2 ...`
fn is_log_line(line: &str) -> bool {
    let s = shape(line);
    s.starts_with("N-N-NTN:N:N.NZ nN tN ")
}

/// The line with numbers, paths and session ids abstracted and spaces collapsed.
fn shape(line: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut session = false;
    for word in line.split_whitespace() {
        let w = if session {
            "X".to_string()
        } else if let Some(i) = word.find('/') {
            // A path, perhaps after `(` or `config:`; keep what closes it.
            let tail: String = word[i..].chars().rev().take_while(|c| matches!(c, ')' | ':' | ',' | ';')).collect();
            format!("{}PATH{}", &word[..i], tail.chars().rev().collect::<String>())
        } else {
            word.to_string()
        };
        session = word == "(session";
        words.push(w);
    }
    let joined = words.join(" ");
    // `(config: embedded defaults)` or `(config: PATH ($RAFT_CONFIG))`: where it came from.
    let joined = match joined.find("(config: ") {
        Some(a) => match joined[a..].find("): ") {
            Some(b) => format!("{}(config: X){}", &joined[..a], &joined[a + b + 1..]),
            None => joined,
        },
        None => joined,
    };
    let mut out = String::new();
    let mut in_number = false;
    for c in joined.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The README lines whose shape is not among `actual`'s.
fn missing(expected: &[String], actual: &str) -> Vec<String> {
    let have: BTreeSet<String> = actual.lines().map(shape).collect();
    expected.iter().filter(|l| !have.contains(&shape(l))).cloned().collect()
}

/// Runs a README command line on the test cluster (with its `--config`).
fn run(c: &Cluster, command: &str) -> Out {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words[0] {
        "raft-supervisor" => c.sup(&words[1..]),
        "raft-cli" => c.cli(&words[1..]),
        other => panic!("not a command of ours: {other}"),
    }
}

fn all_logs(c: &Cluster) -> String {
    c.ids().into_iter().map(|id| c.read_log(id)).collect::<Vec<_>>().join("\n")
}

/// The `"key":` names of the first node object of a `status --json` line, in order.
fn first_node_keys(line: &str) -> Vec<String> {
    let start = line.find("[{").expect("a nodes array") + 2;
    // The object ends at its own closing brace (nested objects, and the README's
    // `{...}`, are balanced).
    let mut depth = 0usize;
    let end = line[start..]
        .char_indices()
        .find(|&(_, ch)| match ch {
            '{' => {
                depth += 1;
                false
            }
            '}' if depth == 0 => true,
            '}' => {
                depth -= 1;
                false
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .expect("node object");
    // Only the object's own keys: nested objects (`levers`, `live`) are compared as a key.
    let mut depth = 0usize;
    let top: String = line[start..start + end]
        .chars()
        .filter(|&ch| {
            let keep = depth == 0 && ch != '{' && ch != '}';
            match ch {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            keep
        })
        .collect();
    top.split('"').collect::<Vec<_>>().windows(2).filter(|w| w[1].starts_with(':')).map(|w| w[0].to_string()).collect()
}

#[test]
fn shapes_are_what_the_functions_promise() {
    assert_eq!(
        shape("2026-12-01T03:02:27.419590Z n2 t2 appended entries 3..44 from n1 (42 entries)"),
        "N-N-NTN:N:N.NZ nN tN appended entries N..N from nN (N entries)"
    );
    assert_eq!(shape("1     13246  running  leader    2     1"), "N N running leader N N");
    assert_eq!(
        shape("2  1  applied  set \"chelsea\" = \"rules\"  (session 984313b063d2ccd7 seq 1)"),
        "N N applied set \"chelsea\" = \"rules\" (session X seq N)"
    );
    assert_eq!(
        shape("raft-supervisor 1: cluster in /tmp/x (config: /tmp/x/e.toml ($RAFT_CONFIG)): 5 nodes"),
        shape("raft-supervisor 2: cluster in /tmp/raft-cluster-0 (config: embedded defaults): 5 nodes")
    );
    assert_eq!(shape("listening on /tmp/a/node-4/node.sock"), "listening on PATH");
    assert!(is_log_line("2026-12-01T03:03:50.218258Z n4 t1 leader elected n1 term=1"));
    assert_eq!(
        first_node_keys(r#"{"nodes":[{"id":1,"levers":{"delay_us":0},"live":{...},"n":2}, ...],"partitions":[]}"#),
        ["id", "levers", "live", "n"]
    );
}

#[test]
fn the_readme_walkthrough_matches_a_real_run() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let (commands, excerpts, json_lines) = parse_readme(&readme);
    assert!(commands.len() >= 20, "the walkthrough's commands were found: {commands:#?}");
    assert!(!excerpts.is_empty() && json_lines.len() == 1, "{excerpts:?} {json_lines:?}");
    // The README shows the Redis ports a default cluster serves.
    let c = Cluster::start(Opts { snapshot_entries: 500, redis_port: free_redis_base(5), ..Opts::default() });
    // `kill leader` in the README names the node it killed; later commands name it too.
    let mut killed: Option<(String, String)> = None;
    let mut deferred: Vec<String> = Vec::new();
    for shown in &commands {
        let mut command = shown.command.clone();
        if let Some((readme_id, real_id)) = &killed {
            command = command.replace(&format!("start {readme_id}"), &format!("start {real_id}"));
        }
        if command == "raft-supervisor up" {
            // The supervisor announces the leader at its next status poll: wait for it.
            let mut gone = Vec::new();
            let seen = poll_until(WAIT, || {
                gone = missing(&shown.lines[1..], &c.supervisor_output());
                gone.is_empty().then_some(())
            });
            let out = c.supervisor_output();
            assert!(seen.is_some(), "README lines of `up` not in its output: {gone:#?}\n{out}");
            let first = out.lines().next().unwrap_or_default();
            assert_eq!(shape(first), shape(&shown.lines[0]), "the first line of `up`");
            continue;
        }
        if command.contains(" logs ") {
            // Node log lines: checked against every node's log at the end of the run.
            deferred.extend(shown.lines.iter().cloned());
            continue;
        }
        // A timeline shows what a kill just caused: the election may still be under way.
        let retry =
            command.ends_with(" status") || command.ends_with("status --peers") || command.contains(" timeline");
        // Status-like commands are asked again until they show the README's shapes; the
        // others must show them at once.
        let mut last = (Vec::new(), String::new());
        let shown_ok = poll_until(if retry { WAIT } else { Duration::ZERO }, || {
            let out = run(&c, &command);
            let text = format!("{}{}", out.stdout, out.stderr);
            let gone = missing(&shown.lines, &text);
            if out.code == Some(0) && gone.is_empty() {
                return Some(out);
            }
            last = (gone, out.describe());
            None
        });
        let Some(out) = shown_ok else {
            panic!(
                "`{command}`: the README shows lines this run did not print: {:#?}\n{}\n{}",
                last.0,
                last.1,
                c.dump()
            );
        };
        if command.ends_with("kill leader") && !shown.lines.is_empty() {
            let id = |s: &str| s.split_whitespace().nth(1).map(str::to_string);
            killed = Some((id(&shown.lines[0]).unwrap(), id(&out.stdout).unwrap()));
        }
    }
    // `status --json`: the README's node object has the fields, in order, that a real one has.
    let json = c.sup_ok(&["status", "--json"]).stdout;
    assert_eq!(first_node_keys(&json_lines[0]), first_node_keys(&json), "README: {}\nreal: {json}", json_lines[0]);
    // What the README's log excerpts show happening that the walkthrough did not: a
    // follower catching up by snapshot (`snapshot_entries = 500`), a clean restart. The
    // walkthrough's last `kill leader` (the timeline example) leaves a node down: start
    // it, so the nodes picked below run.
    let st = c.sup_status().expect("status");
    for n in st.nodes.iter().filter(|n| n.process == "stopped" && n.member.as_deref() != Some("removed")) {
        c.start_node(n.id);
    }
    let (leader, _) = c.wait_leader(&c.ids(), WAIT);
    let lagger = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.kill(lagger);
    let bench = c.cli(&["bench", "--requests", "1200", "--read-ratio", "0"]);
    assert_eq!(bench.code, Some(0), "{}", bench.describe());
    c.start_node(lagger);
    let other = c.ids().into_iter().find(|&id| id != leader && id != lagger).unwrap();
    // Its snapshot is written by a forked child: restart it once one is in place, so its
    // restart restores from a snapshot as the README shows.
    c.wait("a snapshot on the node to restart", WAIT, || {
        c.node_status(other).filter(|s| s.snapshot_index > 0).map(|_| ())
    });
    c.sup_ok(&["restart", &other.to_string()]);
    c.cli(&["set", "chelsea", "rules"]);
    deferred.extend(excerpts);
    let mut gone = Vec::new();
    let found = poll_until(WAIT, || {
        gone = missing(&deferred, &all_logs(&c));
        gone.is_empty().then_some(())
    });
    assert!(found.is_some(), "README log lines no node logged: {gone:#?}\n{}", c.dump());
}
