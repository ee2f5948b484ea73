//! The picture `raft-supervisor watch` draws: a pure function from a [`WatchModel`]
//! (plain data: the supervisor's status, message rates, the latest events) to a ratatui
//! [`Buffer`], so every screen can be tested on ratatui's `TestBackend` without a
//! terminal. The key bindings are here too ([`key_action`]), as a pure function of the key
//! and the model; [`crate::watch`] is the thin shell that does the I/O.
//!
//! Every role has a colour and a symbol that reads without colour: `★` leader, `●`
//! follower, `◎` candidate, `○` pre-candidate, `?` running but not answering, `‖` paused,
//! `✕` down (stopped, crashed, failed, waiting to restart).

use crate::core::NodeId;
use crate::timeline::{Event, Source};
use raft_core::RoleKind;
use raft_node::format_timestamp;
use raft_wire::supervisor::{ClusterStatus, NodeRow, SupervisorRequest};
use raft_wire::{show_speed, show_tick_us, SPEED_MILLI_NORMAL};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};
use std::collections::BTreeMap;

/// Below this width the panels stack into one line per node and the network matrix is
/// dropped: side-by-side columns would not fit their text.
pub const NARROW_COLUMNS: u16 = 80;
/// Width of one cell of the network matrix (a rate up to 9999 msgs/s and a space).
const NETWORK_CELL: u16 = 5;
/// The speeds `+` and `-` step through (thousandths): 0.1x is slow enough to follow an
/// election by eye at the default tick.
pub const SPEED_STEPS: [u32; 8] = [20, 50, 100, 200, 500, 1000, 2000, 5000];

/// Everything one screen shows.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchModel {
    /// The cluster directory, for the title.
    pub dir: String,
    /// The supervisor's latest answer; None before the first one.
    pub status: Option<ClusterStatus>,
    /// Messages per second from one node to another, measured between the last two
    /// answers (see [`message_rates`]).
    pub rates: BTreeMap<(NodeId, NodeId), f64>,
    /// The latest events, oldest first.
    pub events: Vec<Event>,
    /// Index into `status.nodes` of the selected node.
    pub selected: usize,
    /// One line: the last action's answer, or why the supervisor cannot be reached.
    pub message: String,
}

impl WatchModel {
    pub fn new(dir: String) -> WatchModel {
        WatchModel {
            dir,
            status: None,
            rates: BTreeMap::new(),
            events: Vec::new(),
            selected: 0,
            message: String::new(),
        }
    }

    fn nodes(&self) -> &[NodeRow] {
        self.status.as_ref().map_or(&[], |s| &s.nodes)
    }

    pub fn selected_node(&self) -> Option<NodeId> {
        self.nodes().get(self.selected).map(|r| r.id)
    }

    /// The highest-term node that says it leads (as `leader` on the command line).
    pub fn leader(&self) -> Option<NodeId> {
        self.status.as_ref().and_then(crate::cli::leader_of)
    }
}

/// What a node looks like at a glance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    Leader,
    Follower,
    Candidate,
    PreCandidate,
    /// Running, but its status did not come.
    Unknown,
    Paused,
    Down,
}

impl Look {
    pub fn of(row: &NodeRow) -> Look {
        match row.process.as_str() {
            "paused" => return Look::Paused,
            "running" => {}
            _ => return Look::Down,
        }
        match row.live.as_ref().map(|l| l.role) {
            Some(RoleKind::Leader) => Look::Leader,
            Some(RoleKind::Follower) => Look::Follower,
            Some(RoleKind::Candidate) => Look::Candidate,
            Some(RoleKind::PreCandidate) => Look::PreCandidate,
            None => Look::Unknown,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Look::Leader => "★",
            Look::Follower => "●",
            Look::Candidate => "◎",
            Look::PreCandidate => "○",
            Look::Unknown => "?",
            Look::Paused => "‖",
            Look::Down => "✕",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Look::Leader => "LEADER",
            Look::Follower => "follower",
            Look::Candidate => "CANDIDATE",
            Look::PreCandidate => "pre-candidate",
            Look::Unknown => "not answering",
            Look::Paused => "paused",
            Look::Down => "down",
        }
    }

    pub fn color(self) -> Color {
        match self {
            Look::Leader => Color::Yellow,
            Look::Follower => Color::Green,
            Look::Candidate => Color::Magenta,
            Look::PreCandidate => Color::Cyan,
            Look::Unknown => Color::Red,
            Look::Paused => Color::Blue,
            Look::Down => Color::DarkGray,
        }
    }
}

/// Messages per second from each node to each peer between two answers `dt_secs` apart:
/// the growth of each sender's cumulative counter. A counter that went down (the sender
/// restarted) or a node missing from either answer gives no rate.
pub fn message_rates(prev: &ClusterStatus, cur: &ClusterStatus, dt_secs: f64) -> BTreeMap<(NodeId, NodeId), f64> {
    let mut out = BTreeMap::new();
    if dt_secs <= 0.0 {
        return out;
    }
    for row in &cur.nodes {
        let (Some(now), Some(before)) =
            (row.live.as_ref(), prev.nodes.iter().find(|r| r.id == row.id).and_then(|r| r.live.as_ref()))
        else {
            continue;
        };
        for &(peer, n) in &now.messages_sent {
            if let Some(&(_, b)) = before.messages_sent.iter().find(|(p, _)| *p == peer) {
                if n >= b && row.pid.is_some() && prev.nodes.iter().any(|r| r.id == row.id && r.pid == row.pid) {
                    out.insert((row.id, peer), (n - b) as f64 / dt_secs);
                }
            }
        }
    }
    out
}

/// Whether `a` and `b` are on the same side of the supervisor's partition.
fn same_side(partitions: &[Vec<NodeId>], a: NodeId, b: NodeId) -> bool {
    partitions.is_empty() || partitions.iter().any(|g| g.contains(&a) && g.contains(&b))
}

/// Draws the whole screen into `buf` over `area`.
pub fn draw(m: &WatchModel, area: Rect, buf: &mut Buffer) {
    let narrow = area.width < NARROW_COLUMNS;
    let [title, body, help] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(3)]).areas(area);
    title_line(m).render(title, buf);
    let [message, keys] = Layout::vertical([Constraint::Length(1), Constraint::Length(2)]).areas(help);
    Line::styled(m.message.clone(), Style::new().fg(Color::Cyan)).render(message, buf);
    help_keys(narrow).render(keys, buf);
    let n = m.nodes().len() as u16;
    // Full panels (a border and three lines) when they fit with room for events, else one
    // line per node.
    let full = !narrow && body.height >= n * 5 + 6;
    let panels_h = if full { n * 5 } else { n + 2 };
    let [top, events] = Layout::vertical([Constraint::Length(panels_h), Constraint::Min(3)]).areas(body);
    if narrow {
        compact_panels(m, top, buf);
    } else {
        // Borders, the row label, one cell per node.
        let net_w = (2 + 7 + NETWORK_CELL * n).clamp(30, area.width / 2);
        let [left, right] = Layout::horizontal([Constraint::Min(40), Constraint::Length(net_w)]).areas(top);
        if full {
            full_panels(m, left, buf);
        } else {
            compact_panels(m, left, buf);
        }
        network(m, right, buf);
    }
    event_stream(m, events, narrow, buf);
}

fn title_line(m: &WatchModel) -> Line<'static> {
    let mut spans =
        vec![Span::styled("raft watch ", Style::new().add_modifier(Modifier::BOLD)), Span::raw(m.dir.clone())];
    if let Some(st) = &m.status {
        // The tick as the nodes report it (they may lag the supervisor's speed briefly).
        let tick = st.nodes.iter().find_map(|r| r.live.as_ref()).map(|l| l.tick_us);
        let tick = tick.map_or(String::new(), |t| format!(" (tick {})", show_tick_us(t)));
        let speed = format!("  speed {}x{tick}", show_speed(st.speed_milli));
        let style = if st.speed_milli == SPEED_MILLI_NORMAL {
            Style::new()
        } else {
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
        };
        spans.push(Span::styled(speed, style));
        match m.leader() {
            Some(l) => {
                let term = st.nodes.iter().find(|r| r.id == l).and_then(|r| r.term).unwrap_or(0);
                spans.push(Span::raw(format!("  leader n{l} term {term}")));
            }
            None => spans.push(Span::styled("  no leader", Style::new().fg(Color::Red))),
        }
        if !st.partitions.is_empty() {
            spans.push(Span::styled(
                format!("  partitioned {}", crate::cli::show_groups(&st.partitions)),
                Style::new().fg(Color::Red),
            ));
        }
    } else {
        spans.push(Span::raw("  waiting for the supervisor..."));
    }
    Line::from(spans)
}

fn help_keys(narrow: bool) -> Paragraph<'static> {
    let keys = if narrow {
        "q quit 1-9 k:kill s:start p:pause r:restart L i h +/-"
    } else {
        "q quit  ←→/1-9 select  k kill  s start  p pause/resume  r restart  L kill leader  \
         i isolate leader  h heal  +/- speed  = 1x"
    };
    // The keys wrap onto a second line on a terminal too narrow for one.
    Paragraph::new(Line::styled(keys, Style::new().add_modifier(Modifier::REVERSED))).wrap(Wrap { trim: true })
}

/// The cluster-wide index window the log bars share, so bars compare across nodes:
/// `(lo, span)`, the cells standing for indexes `lo+1 ..= lo+span`. It ends at the
/// longest log and starts at the shortest one, or `width` entries back (one per cell)
/// when they are all close, or at 0 while the logs are shorter than the bar.
fn log_window(nodes: &[NodeRow], width: u64) -> (u64, u64) {
    let width = width.max(1);
    let hi = nodes.iter().filter_map(|r| r.last_index).max().unwrap_or(0);
    let shortest = nodes.iter().filter_map(|r| r.last_index).min().unwrap_or(hi);
    let lo = shortest.min(hi.saturating_sub(width));
    (lo, (hi - lo).max(1))
}

/// One node's log as a bar over `window`: `#` covered by its snapshot, `█` applied, `▓`
/// committed but not yet applied, `░` written but not committed, `·` not in its log.
/// On a leader, the line below marks each follower's match index with its id.
fn log_bar(row: &NodeRow, window: (u64, u64), width: u16) -> (String, Option<String>) {
    let (lo, span) = window;
    let w = u64::from(width.max(1));
    let at = |cell: u64| lo + (cell + 1) * span / w; // the last index a cell stands for
    let (snap, applied, commit, last) = (
        row.snapshot_index.unwrap_or(0),
        row.applied.unwrap_or(0),
        row.commit.unwrap_or(0),
        row.last_index.unwrap_or(0),
    );
    let bar: String = (0..w)
        .map(|c| {
            let i = at(c);
            if row.last_index.is_none() || i > last {
                '·'
            } else if i <= snap && snap > 0 {
                '#'
            } else if i <= applied {
                '█'
            } else if i <= commit {
                '▓'
            } else {
                '░'
            }
        })
        .collect();
    let markers = row.live.as_ref().filter(|l| l.role == RoleKind::Leader && !l.progress.is_empty()).map(|l| {
        let mut cells = vec![' '; w as usize];
        for p in &l.progress {
            // The cell whose range holds the match index (the first one at or before lo).
            let cell = (p.match_index.saturating_sub(lo) * w).div_ceil(span.max(1)) as usize;
            let cell = cell.saturating_sub(1).min(cells.len() - 1);
            // Several followers in one cell: `*` (the numbers after the bar say who).
            cells[cell] =
                if cells[cell] == ' ' { std::char::from_digit((p.id % 10) as u32, 10).unwrap_or('^') } else { '*' };
        }
        cells.into_iter().collect()
    });
    (bar, markers)
}

fn show_ids(ids: &[NodeId]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>().join(" ")
}

/// Ticks since the leader was heard against the election timeout, as ten cells.
fn contact_gauge(row: &NodeRow) -> String {
    let Some(l) = row.live.as_ref() else { return String::new() };
    let timeout = l.election_timeout_ticks.max(1);
    let filled = (l.election_elapsed_ticks.min(timeout) * 10 / timeout) as usize;
    let gauge = format!("[{}{}]", "■".repeat(filled), "□".repeat(10 - filled));
    let (elapsed, tick) = (l.election_elapsed_ticks, show_tick_us(l.tick_us));
    if l.role == RoleKind::Follower {
        format!("leader heard {gauge} {elapsed} of {timeout} ticks ago (tick {tick})")
    } else {
        // A (pre-)candidate's timer runs from its campaign: when full, it tries again.
        format!("campaigning {gauge} {elapsed} of {timeout} ticks, then again (tick {tick})")
    }
}

fn head_spans(m: &WatchModel, idx: usize, row: &NodeRow) -> Vec<Span<'static>> {
    let look = Look::of(row);
    let style = Style::new().fg(look.color()).add_modifier(Modifier::BOLD);
    let mut spans = vec![
        Span::raw(if idx == m.selected { "▶" } else { " " }),
        Span::styled(format!("{} n{} {:<13}", look.symbol(), row.id, look.name()), style),
    ];
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    spans.push(Span::raw(format!(
        " term {:<3} leader {:<3} {}",
        opt(row.term),
        row.leader.map_or("-".into(), |l| format!("n{l}")),
        match row.pid {
            Some(p) => format!("pid {p} {}", row.process),
            None => row.process.clone(),
        }
    )));
    // A learner (added, not yet promoted) or a removed node: said in so many words.
    if let Some(m) = row.member.as_deref().filter(|m| *m != "voter") {
        spans.push(Span::styled(format!("  [{m}]"), Style::new().add_modifier(Modifier::BOLD)));
    }
    spans
}

fn full_panels(m: &WatchModel, area: Rect, buf: &mut Buffer) {
    let nodes = m.nodes();
    let rows = Layout::vertical(nodes.iter().map(|_| Constraint::Length(5))).split(area);
    // The bar takes the panel's whole inner width; the numbers go on the gauge's line.
    let bar_w = area.width.saturating_sub(2).max(4);
    let window = log_window(nodes, u64::from(bar_w));
    for (idx, (row, rect)) in nodes.iter().zip(rows.iter()).enumerate() {
        let look = Look::of(row);
        let border = if idx == m.selected { Style::new().fg(Color::White) } else { Style::new().fg(Color::DarkGray) };
        let block = Block::new().borders(Borders::ALL).border_style(border).title(Line::from(head_spans(m, idx, row)));
        let (bar, markers) = log_bar(row, window, bar_w);
        let dim = matches!(look, Look::Down | Look::Paused | Look::Unknown);
        let bar_style = if dim { Style::new().fg(Color::DarkGray) } else { Style::new().fg(look.color()) };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut numbers = format!(
            "last {} commit {} applied {} snap {}",
            opt(row.last_index),
            opt(row.commit),
            opt(row.applied),
            opt(row.snapshot_index)
        );
        if let Some(l) = row.live.as_ref().filter(|_| markers.is_some()) {
            let matches: Vec<String> = l.progress.iter().map(|p| format!("n{} {}", p.id, p.match_index)).collect();
            numbers.push_str(&format!("   match {}", matches.join(" ")));
        }
        // A follower: its numbers and peers, then the gauge. The leader: the followers'
        // match markers under its bar, then its numbers and their match indexes.
        let (second, third) = match (markers, row.live.as_ref()) {
            (Some(m), Some(_)) => (m, numbers),
            (None, Some(l)) => {
                let cut = if l.isolated.is_empty() {
                    String::new()
                } else {
                    format!("  cut off from {}", show_ids(&l.isolated))
                };
                // Connected at the transport and not cut off by the partition.
                let reach: Vec<NodeId> = l.connected.iter().copied().filter(|p| !l.isolated.contains(p)).collect();
                (format!("{numbers}   reaches {}{cut}", show_ids(&reach)), contact_gauge(row))
            }
            _ => (numbers, String::new()),
        };
        let lines = vec![Line::styled(bar, bar_style), Line::raw(second), Line::raw(third)];
        Paragraph::new(lines).block(block).render(*rect, buf);
    }
}

fn compact_panels(m: &WatchModel, area: Rect, buf: &mut Buffer) {
    let nodes = m.nodes();
    // "▶★ n1 LEADER        t7   →n1  " is 31 columns; the bar and commit take the rest.
    let bar_w = area.width.saturating_sub(40).clamp(4, 60);
    let window = log_window(nodes, u64::from(bar_w));
    let mut lines = Vec::new();
    for (idx, row) in nodes.iter().enumerate() {
        let look = Look::of(row);
        let (bar, _) = log_bar(row, window, bar_w);
        lines.push(Line::from(vec![
            Span::raw(if idx == m.selected { "▶" } else { " " }),
            Span::styled(
                format!("{} n{} {:<13}", look.symbol(), row.id, look.name()),
                Style::new().fg(look.color()).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                " {:<4} {:<4} {bar} c{}",
                row.term.map_or("t-".into(), |t| format!("t{t}")),
                row.leader.map_or("→-".into(), |l| format!("→n{l}")),
                row.commit.map_or("-".into(), |c| c.to_string())
            )),
        ]));
    }
    Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title(" nodes ")).render(area, buf);
}

/// Who can reach whom, with messages per second from row to column. `××` marks a pair the
/// partition separates; a paused or stopped node's row and column are grey `·`.
fn network(m: &WatchModel, area: Rect, buf: &mut Buffer) {
    let nodes = m.nodes();
    let partitions = m.status.as_ref().map_or(&[][..], |s| &s.partitions[..]);
    let mut lines = vec![Line::raw(format!(
        "from\\to{}",
        nodes.iter().map(|r| format!("{:>5}", format!("n{}", r.id))).collect::<String>()
    ))];
    for from in nodes {
        let mut spans = vec![Span::styled(
            format!("{:<7}", format!("{} n{}", Look::of(from).symbol(), from.id)),
            Style::new().fg(Look::of(from).color()),
        )];
        for to in nodes {
            let cell = if from.id == to.id {
                Span::raw(format!("{:>5}", "-"))
            } else if !same_side(partitions, from.id, to.id) {
                Span::styled(format!("{:>5}", "××"), Style::new().fg(Color::Red))
            } else if Look::of(from) == Look::Down
                || Look::of(from) == Look::Paused
                || Look::of(to) == Look::Down
                || Look::of(to) == Look::Paused
            {
                Span::styled(format!("{:>5}", "·"), Style::new().fg(Color::DarkGray))
            } else {
                match m.rates.get(&(from.id, to.id)) {
                    Some(r) => Span::raw(format!("{:>5}", format!("{r:.0}"))),
                    None => Span::raw(format!("{:>5}", "?")),
                }
            };
            spans.push(cell);
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("msgs/s row→col ×× cut · down", Style::new().fg(Color::DarkGray)));
    Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" network ")).render(area, buf);
}

/// The latest events that fit, newest at the bottom.
fn event_stream(m: &WatchModel, area: Rect, narrow: bool, buf: &mut Buffer) {
    let block = Block::new().borders(Borders::TOP).title(" events (raft-supervisor timeline) ");
    let inner = block.inner(area);
    block.render(area, buf);
    let fit = inner.height as usize;
    let start = m.events.len().saturating_sub(fit);
    let lines: Vec<Line> = m.events[start..]
        .iter()
        .map(|e| {
            let ts = format_timestamp(e.ts_us);
            // HH:MM:SS.mmm: the date is the same for everything on screen.
            let time = if narrow { &ts[11..19] } else { &ts[11..23] };
            let term = e.term.map_or("-".to_string(), |t| format!("t{t}"));
            let color = match e.source {
                Source::Supervisor => Color::Cyan,
                Source::Node(_) if e.kind == "became-leader" => Color::Yellow,
                Source::Node(_) if e.kind.starts_with("became-candidate") => Color::Magenta,
                Source::Node(_) => Color::Reset,
            };
            Line::from(vec![
                Span::styled(format!("{time} "), Style::new().fg(Color::DarkGray)),
                Span::styled(format!("{:<10} {:<4} ", e.source.to_string(), term), Style::new().fg(color)),
                Span::styled(e.text.clone(), Style::new().fg(color)),
            ])
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}

/// What a key asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UiAction {
    Quit,
    Select(usize),
    /// Send this to the supervisor; the string says what, for the message line.
    Request(SupervisorRequest, String),
    /// Nothing to send; say this.
    Say(String),
}

impl WatchModel {
    /// The nodes the supervisor runs (removed ones are still shown, but not partitioned).
    pub fn member_ids(&self) -> Vec<NodeId> {
        self.nodes().iter().filter(|r| r.member.as_deref() != Some("removed")).map(|r| r.id).collect()
    }
}

/// The action of a key (a character; arrows come as `←`/`→`) on the screen `m` shows.
pub fn key_action(key: char, m: &WatchModel) -> Option<UiAction> {
    let n = m.nodes().len();
    let selected = m.selected_node();
    let on_selected = |f: fn(NodeId) -> SupervisorRequest, what: &str| match selected {
        Some(id) => UiAction::Request(f(id), format!("{what} n{id}")),
        None => UiAction::Say("no node selected yet".into()),
    };
    let speed = m.status.as_ref().map_or(SPEED_MILLI_NORMAL, |s| s.speed_milli);
    Some(match key {
        'q' | 'Q' => UiAction::Quit,
        '←' if n > 0 => UiAction::Select((m.selected + n - 1) % n),
        '→' if n > 0 => UiAction::Select((m.selected + 1) % n),
        '1'..='9' => {
            let i = key as usize - '1' as usize;
            if i < n {
                UiAction::Select(i)
            } else {
                UiAction::Say(format!("no node {}", i + 1))
            }
        }
        'k' => on_selected(SupervisorRequest::Kill, "kill"),
        's' => on_selected(SupervisorRequest::Start, "start"),
        'r' => on_selected(SupervisorRequest::Restart, "restart"),
        'p' => {
            let paused = m.nodes().get(m.selected).is_some_and(|r| r.process == "paused");
            if paused {
                on_selected(SupervisorRequest::Resume, "resume")
            } else {
                on_selected(SupervisorRequest::Pause, "pause")
            }
        }
        'K' | 'L' => match m.leader() {
            Some(l) => UiAction::Request(SupervisorRequest::Kill(l), format!("kill the leader n{l}")),
            None => UiAction::Say("no leader to kill right now".into()),
        },
        'i' => match m.leader() {
            Some(l) => match crate::cli::normalize_groups(&[vec![l]], &m.member_ids()) {
                Ok(groups) => {
                    UiAction::Request(SupervisorRequest::Partition(groups), format!("isolate the leader n{l}"))
                }
                Err(e) => UiAction::Say(e),
            },
            None => UiAction::Say("no leader to isolate right now".into()),
        },
        'h' => UiAction::Request(SupervisorRequest::Heal, "heal".into()),
        '+' | '-' => {
            let next = if key == '+' {
                SPEED_STEPS.iter().copied().find(|&s| s > speed)
            } else {
                SPEED_STEPS.iter().rev().copied().find(|&s| s < speed)
            };
            match next {
                Some(s) => UiAction::Request(SupervisorRequest::Speed(s), format!("speed {}x", show_speed(s))),
                None => UiAction::Say(format!("speed {}x is the end of the range", show_speed(speed))),
            }
        }
        '=' => UiAction::Request(SupervisorRequest::Speed(SPEED_MILLI_NORMAL), "speed 1.00x".into()),
        _ => return None,
    })
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
