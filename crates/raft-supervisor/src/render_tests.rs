//! Screens drawn on ratatui's `TestBackend`: assertions on symbols and text, not on whole
//! screens, so layout polish does not break them but a wrong role, a missing partition or
//! a lost node does.

use super::*;
use raft_core::PeerProgress;
use raft_wire::supervisor::NodeLive;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn live(role: RoleKind, elapsed: u32) -> NodeLive {
    NodeLive {
        role,
        election_elapsed_ticks: elapsed,
        election_timeout_ticks: 20,
        tick_us: 10_000,
        speed_milli: 1000,
        progress: vec![],
        connected: vec![],
        isolated: vec![],
        messages_sent: vec![],
        messages_received: vec![],
    }
}

fn row(id: NodeId, process: &str, role: Option<RoleKind>, term: u64) -> NodeRow {
    let answering = role.is_some();
    NodeRow {
        id,
        pid: (process != "stopped").then_some(1000 + id as u32),
        process: process.into(),
        role: role.map_or("unknown".into(), |r| r.to_string()),
        term: answering.then_some(term),
        leader: answering.then_some(1),
        commit: answering.then_some(40),
        applied: answering.then_some(40),
        last_index: answering.then_some(42),
        snapshot_index: answering.then_some(10),
        levers: None,
        member: answering.then(|| "voter".into()),
        live: role.map(|r| live(r, 5)),
        redis_port: None,
    }
}

/// Five nodes: n1 leads term 7, n2 and n3 follow, n4 is a candidate, n5 a pre-candidate.
fn cluster() -> WatchModel {
    let mut leader = row(1, "running", Some(RoleKind::Leader), 7);
    leader.live.as_mut().unwrap().progress = (2..=5)
        .map(|id| PeerProgress {
            id,
            match_index: if id == 3 { 20 } else { 42 },
            next_index: 43,
            state: "replicate".into(),
            recently_active: true,
        })
        .collect();
    let mut m = WatchModel::new("/tmp/c".into());
    m.status = Some(ClusterStatus {
        nodes: vec![
            leader,
            row(2, "running", Some(RoleKind::Follower), 7),
            row(3, "running", Some(RoleKind::Follower), 7),
            row(4, "running", Some(RoleKind::Candidate), 8),
            row(5, "running", Some(RoleKind::PreCandidate), 7),
        ],
        partitions: vec![],
        speed_milli: 1000,
    });
    m
}

fn screen(m: &WatchModel, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(m, f.area(), f.buffer_mut())).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect()
}

fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
}

#[test]
fn every_role_has_its_symbol_and_name() {
    let s = screen(&cluster(), 140, 45);
    assert!(line_with(&s, "n1 LEADER").contains("★"));
    assert!(line_with(&s, "n2 follower").contains("●"));
    assert!(line_with(&s, "n4 CANDIDATE").contains("◎"));
    assert!(line_with(&s, "n5 pre-candidate").contains("○"));
    assert!(line_with(&s, "n4 CANDIDATE").contains("term 8"));
    assert!(line_with(&s, "raft watch").contains("leader n1 term 7"));
    // The log bar: snapshot, applied, then the two uncommitted entries.
    assert!(s.iter().any(|l| l.contains('#') && l.contains('█') && l.contains('░')), "{}", s.join("\n"));
    // On the leader, the lagging follower n3's marker sits left of the others'.
    // The match indexes are listed on the leader's last line, marked in the line above.
    let listed = s.iter().position(|l| l.contains("match n2 42 n3 20 n4 42 n5 42")).expect("match list");
    let markers = &s[listed - 1];
    assert!(markers.contains('3') && markers.contains('*'), "n3 alone, n2, n4 and n5 share a cell: {markers}");
    assert!(markers.find('3').unwrap() < markers.find('*').unwrap(), "{markers}");
    // A follower's gauge: 5 of 20 ticks since the leader was heard.
    assert!(s.iter().any(|l| l.contains("leader heard [■■□□□□□□□□] 5 of 20 ticks ago")), "{}", s.join("\n"));
    assert!(line_with(&s, "raft watch").contains("speed 1.00x (tick 10 ms)"));
    assert!(s.iter().any(|l| l.contains("campaigning [■■□□□□□□□□] 5 of 20 ticks")), "{}", s.join("\n"));
    assert!(line_with(&s, "k kill").contains("q quit"));
    assert!(line_with(&s, "network").contains("network"));
}

#[test]
fn a_partition_is_drawn_in_the_title_and_the_matrix() {
    let mut m = cluster();
    m.status.as_mut().unwrap().partitions = vec![vec![1], vec![2, 3, 4, 5]];
    m.rates.insert((2, 3), 12.0);
    m.status.as_mut().unwrap().nodes[1].live.as_mut().unwrap().connected = vec![1, 3, 4, 5];
    m.status.as_mut().unwrap().nodes[1].live.as_mut().unwrap().isolated = vec![1];
    let s = screen(&m, 140, 45);
    assert!(line_with(&s, "raft watch").contains("partitioned {1} {2,3,4,5}"));
    assert!(line_with(&s, "reaches n3 n4 n5  cut off from n1").contains("last 42"), "n2's panel");
    let n1_row = s.iter().find(|l| l.contains("★ n1 ") && l.contains("××")).expect("n1's matrix row");
    let n1_row = &n1_row[n1_row.rfind("★ n1 ").unwrap()..];
    assert_eq!(n1_row.matches("××").count(), 4, "n1 is cut from all four: {n1_row}");
    let n2 = s.iter().find(|l| l.contains("● n2  ") && l.contains("××")).expect("n2's matrix row");
    assert_eq!(n2.matches("××").count(), 1, "n2 is cut from n1 only: {n2}");
    assert!(n2.contains("12"), "n2 sends 12 msgs/s to n3: {n2}");
}

#[test]
fn paused_and_down_nodes_read_without_colour() {
    let mut m = cluster();
    let st = m.status.as_mut().unwrap();
    st.nodes[1] = row(2, "paused", None, 0);
    st.nodes[2] = row(3, "stopped", None, 0);
    st.nodes[3] = row(4, "running", None, 0);
    let s = screen(&m, 140, 45);
    assert!(line_with(&s, "n2 paused").contains("‖"));
    assert!(line_with(&s, "n3 down").contains("✕"));
    assert!(line_with(&s, "n4 not answering").contains("?"));
    // In the matrix the paused and the stopped node are greyed dots.
    let n2 = s.iter().find(|l| l.contains("‖ n2  ")).expect("n2's matrix row");
    assert!(n2.contains('·'), "{n2}");
}

#[test]
fn a_narrow_terminal_stacks_nodes_and_drops_the_matrix() {
    let mut m = cluster();
    m.events = vec![Event {
        ts_us: 1_796_111_977_702_914,
        source: Source::Node(1),
        term: Some(7),
        kind: "became-leader",
        text: "became leader term=7".into(),
    }];
    let s = screen(&m, 60, 24);
    for (id, sym) in [(1, "★"), (2, "●"), (3, "●"), (4, "◎"), (5, "○")] {
        let l = line_with(&s, &format!("{sym} n{id} "));
        assert!(l.contains(if id == 4 { "t8" } else { "t7" }) && l.contains("→n1"), "{l}");
        assert!(l.contains("c40"), "the commit index fits on a narrow line: {l}");
    }
    assert!(!s.iter().any(|l| l.contains("network")), "no matrix when narrow:\n{}", s.join("\n"));
    assert!(line_with(&s, "became leader term=7").contains("n1"));
    assert!(line_with(&s, "q quit").contains("k:kill"));
}

#[test]
fn events_show_newest_at_the_bottom_with_node_and_term() {
    let mut m = cluster();
    m.events = (0..100)
        .map(|i| Event {
            ts_us: 1_796_111_977_000_000 + i,
            source: if i % 10 == 0 { Source::Supervisor } else { Source::Node(2) },
            term: (i % 10 != 0).then_some(7),
            kind: "other",
            text: format!("event number {i}"),
        })
        .collect();
    let s = screen(&m, 140, 45);
    let last = s.iter().rposition(|l| l.contains("event number")).unwrap();
    assert!(s[last].contains("event number 99") && s[last].contains("n2") && s[last].contains("t7"), "{}", s[last]);
    assert!(line_with(&s, "event number 90").contains("supervisor"));
    assert!(!s.iter().any(|l| l.contains("event number 3 ")), "old events scroll away");
}

#[test]
fn keys_act_through_the_supervisor() {
    let mut m = cluster();
    assert_eq!(key_action('q', &m), Some(UiAction::Quit));
    assert_eq!(key_action('3', &m), Some(UiAction::Select(2)));
    assert_eq!(key_action('←', &m), Some(UiAction::Select(4)), "wraps around");
    assert!(matches!(key_action('9', &m), Some(UiAction::Say(_))));
    m.selected = 2;
    assert!(matches!(key_action('k', &m), Some(UiAction::Request(SupervisorRequest::Kill(3), _))));
    assert!(matches!(key_action('r', &m), Some(UiAction::Request(SupervisorRequest::Restart(3), _))));
    assert!(matches!(key_action('p', &m), Some(UiAction::Request(SupervisorRequest::Pause(3), _))));
    m.status.as_mut().unwrap().nodes[2].process = "paused".into();
    assert!(matches!(key_action('p', &m), Some(UiAction::Request(SupervisorRequest::Resume(3), _))));
    assert!(matches!(key_action('L', &m), Some(UiAction::Request(SupervisorRequest::Kill(1), _))));
    assert_eq!(
        key_action('i', &m).map(|a| match a {
            UiAction::Request(r, _) => r,
            other => panic!("{other:?}"),
        }),
        Some(SupervisorRequest::Partition(vec![vec![1], vec![2, 3, 4, 5]]))
    );
    assert!(matches!(key_action('-', &m), Some(UiAction::Request(SupervisorRequest::Speed(500), _))));
    assert!(matches!(key_action('+', &m), Some(UiAction::Request(SupervisorRequest::Speed(2000), _))));
    m.status.as_mut().unwrap().speed_milli = SPEED_STEPS[0];
    assert!(matches!(key_action('-', &m), Some(UiAction::Say(_))), "no slower step");
    assert_eq!(key_action('x', &m), None);
    // Without a leader the leader keys say so instead of sending anything.
    for r in &mut m.status.as_mut().unwrap().nodes {
        r.role = "follower".into();
    }
    assert!(matches!(key_action('L', &m), Some(UiAction::Say(_))));
    assert!(matches!(key_action('i', &m), Some(UiAction::Say(_))));
}

#[test]
fn rates_are_counter_growth_per_second_and_skip_restarts() {
    let mut before = cluster().status.unwrap();
    before.nodes[0].live.as_mut().unwrap().messages_sent = vec![(2, 100), (3, 50)];
    let mut after = before.clone();
    after.nodes[0].live.as_mut().unwrap().messages_sent = vec![(2, 150), (3, 50)];
    let r = message_rates(&before, &after, 0.5);
    assert_eq!(r.get(&(1, 2)), Some(&100.0));
    assert_eq!(r.get(&(1, 3)), Some(&0.0));
    // n1 restarted (new pid, counters from zero): no rate rather than a negative one.
    after.nodes[0].pid = Some(9999);
    after.nodes[0].live.as_mut().unwrap().messages_sent = vec![(2, 3)];
    assert!(message_rates(&before, &after, 0.5).is_empty());
    assert!(message_rates(&before, &before, 0.0).is_empty());
}

#[test]
fn a_tiny_terminal_draws_without_panicking() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (79, 10), (200, 8)] {
        let s = screen(&cluster(), w, h);
        assert_eq!(s.len(), h as usize);
    }
    screen(&WatchModel::new("/x".into()), 80, 24);
}

#[test]
fn a_lagging_node_has_a_shorter_bar_and_an_empty_log_none() {
    let mut ahead = row(1, "running", Some(RoleKind::Follower), 3);
    (ahead.snapshot_index, ahead.applied, ahead.commit, ahead.last_index) = (Some(0), Some(90), Some(95), Some(100));
    let mut behind = ahead.clone();
    (behind.applied, behind.commit, behind.last_index) = (Some(50), Some(50), Some(60));
    let window = log_window(&[ahead.clone(), behind.clone()], 200);
    assert_eq!(window, (0, 100), "the window starts at 0 while the logs are shorter than the bar");
    let (a, _) = log_bar(&ahead, window, 10);
    let (b, _) = log_bar(&behind, window, 10);
    assert_eq!(a, "█████████░", "applied to 90, one cell written but not committed");
    assert_eq!(b, "█████░····", "applied to 50, written to 60, nothing past it");
    // Long logs: the window starts at the shortest log, so the laggard's bar is all gaps.
    (ahead.applied, ahead.commit, ahead.last_index) = (Some(10_000), Some(10_000), Some(10_000));
    (behind.applied, behind.commit, behind.last_index) = (Some(9_000), Some(9_000), Some(9_000));
    let window = log_window(&[ahead.clone(), behind.clone()], 10);
    assert_eq!(window, (9_000, 1_000));
    assert_eq!(log_bar(&behind, window, 10).0, "··········");
    assert_eq!(log_bar(&ahead, window, 10).0, "██████████");
    // In sync: the last `width` entries, one per cell.
    assert_eq!(log_window(&[ahead.clone(), ahead.clone()], 10), (9_990, 10));
    let down = row(2, "stopped", None, 0);
    assert_eq!(log_bar(&down, window, 4).0, "····");
}

/// A node added at run time reads as a learner until promoted; a removed one says so.
#[test]
fn learners_and_removed_nodes_are_marked() {
    let mut m = cluster();
    let mut six = row(6, "running", Some(RoleKind::Follower), 7);
    six.member = Some("learner".into());
    let mut seven = row(7, "stopped", None, 0);
    seven.member = Some("removed".into());
    if let Some(st) = m.status.as_mut() {
        st.nodes.push(six);
        st.nodes.push(seven);
    }
    let s = screen(&m, 140, 60);
    assert!(line_with(&s, "n6 follower").contains("[learner]"));
    assert!(line_with(&s, "[removed]").contains("n7"));
    assert!(!s.join("\n").contains("[voter]"), "voters are not marked");
}
