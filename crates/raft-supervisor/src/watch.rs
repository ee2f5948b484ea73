//! `raft-supervisor watch`: the terminal shell around [`crate::render`].
//!
//! Ten times a second it asks the supervisor for the cluster (`SupervisorRequest::Watch`,
//! which answers at once with each node's latest status and starts the next round), reads
//! the lines appended to the event logs ([`crate::timeline::FileTail`]), and redraws.
//! Keys become control-socket requests sent from a short-lived thread, so a slow answer
//! (a restart waits for the node to stop) never freezes the screen; each action is logged
//! by the supervisor in `supervisor.events` and so shows up in the event stream.
//!
//! The terminal is put back (raw mode off, main screen, cursor shown) by one guard on
//! every way out: `q`, Ctrl-C, an error, and a panic (a hook restores it before the
//! panic message prints).

use crate::cli::CliError;
use crate::client::{self, effective_config};
use crate::render::{draw, key_action, message_rates, UiAction, WatchModel};
use crate::timeline::{event_files, merge, FileTail};
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use raft_config::ClusterConfig;
use raft_wire::supervisor::{SupervisorRequest, SupervisorResponse};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Time between refreshes: ten a second, as the issue asks; one status request each.
pub const REFRESH: Duration = Duration::from_millis(100);
/// How long one refresh waits for the supervisor (it answers `Watch` at once).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// Events kept for the stream: more than any screen shows.
pub const MAX_EVENTS: usize = 500;
/// Message rates are measured over about this long: one refresh apart, a heartbeat every
/// 50 ms would read as 0 or 10 per second in turn.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Actions in flight at once: a held-down key must not start a thread per repeat.
pub const MAX_PENDING_ACTIONS: usize = 4;
/// How much of each log is read at start: the recent past, not the whole history.
pub const INITIAL_TAIL_BYTES: u64 = 16 * 1024;

/// Restores the terminal when dropped.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard;
        crossterm::execute!(std::io::stdout(), EnterAlternateScreen, crossterm::cursor::Hide)?;
        Ok(guard)
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(std::io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

pub fn run(cfg: &ClusterConfig) -> Result<(), CliError> {
    let cfg = effective_config(cfg);
    // Fail before taking the screen when there is nothing to watch.
    client::request(&cfg, &SupervisorRequest::Watch, STATUS_TIMEOUT)?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        hook(info);
    }));
    let guard = TerminalGuard::enter().map_err(|e| CliError::failed(format!("cannot set up the terminal: {e}")))?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(|e| CliError::failed(format!("cannot set up the terminal: {e}")))?;
    let result = event_loop(&cfg, &mut terminal);
    drop(guard);
    result
}

fn event_loop(cfg: &ClusterConfig, terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>) -> Result<(), CliError> {
    let mut model = WatchModel::new(cfg.dir.display().to_string());
    let mut tails: BTreeMap<PathBuf, FileTail> = BTreeMap::new();
    let mut events: VecDeque<crate::timeline::Event> = VecDeque::new();
    // Answers of the last RATE_WINDOW, oldest first (about ten).
    let mut samples: VecDeque<(raft_wire::supervisor::ClusterStatus, Instant)> = VecDeque::new();
    let (done_tx, done_rx) = mpsc::channel::<String>();
    let mut pending = 0usize;
    let draw_err = |e: std::io::Error| CliError::failed(format!("cannot draw: {e}"));
    loop {
        let tick_start = Instant::now();
        // The cluster.
        match client::request(cfg, &SupervisorRequest::Watch, STATUS_TIMEOUT) {
            Ok(SupervisorResponse::Status(st)) => {
                while samples.len() > 1 && tick_start.duration_since(samples[1].1) >= RATE_WINDOW {
                    samples.pop_front();
                }
                if let Some((prev, at)) = samples.front() {
                    model.rates = message_rates(prev, &st, tick_start.duration_since(*at).as_secs_f64());
                }
                samples.push_back((st.clone(), tick_start));
                model.status = Some(st);
            }
            Ok(other) => model.message = format!("unexpected answer from the supervisor: {other:?}"),
            Err(e) => model.message = e.message,
        }
        // The events.
        for (path, source) in event_files(&cfg.dir) {
            tails.entry(path.clone()).or_insert_with(|| FileTail::from_end(path, source, INITIAL_TAIL_BYTES));
        }
        let new: Vec<_> = tails.values_mut().flat_map(|t| t.read_new()).collect();
        if !new.is_empty() {
            let mut all: Vec<_> = events.drain(..).collect();
            all.extend(new);
            events = merge(all).into();
            while events.len() > MAX_EVENTS {
                events.pop_front();
            }
            model.events = events.iter().cloned().collect();
        }
        while let Ok(line) = done_rx.try_recv() {
            pending -= 1;
            model.message = line;
        }
        let n = model.status.as_ref().map_or(0, |s| s.nodes.len());
        if n > 0 && model.selected >= n {
            model.selected = n - 1;
        }
        terminal.draw(|f| draw(&model, f.area(), f.buffer_mut())).map_err(draw_err)?;
        // Keys until the next refresh.
        let deadline = tick_start + REFRESH;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).map_err(draw_err)? {
                break;
            }
            let TermEvent::Key(key) = event::read().map_err(draw_err)? else { continue };
            if key.kind == KeyEventKind::Release {
                continue;
            }
            let ch = match key.code {
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => 'q',
                KeyCode::Char(c) => c,
                KeyCode::Left | KeyCode::Up => '←',
                KeyCode::Right | KeyCode::Down => '→',
                KeyCode::Esc => 'q',
                _ => continue,
            };
            match key_action(ch, &model) {
                None => {}
                Some(UiAction::Quit) => return Ok(()),
                Some(UiAction::Select(i)) => model.selected = i,
                Some(UiAction::Say(line)) => model.message = line,
                Some(UiAction::Request(_, what)) if pending >= MAX_PENDING_ACTIONS => {
                    model.message = format!("{what}: {pending} actions still waiting for the supervisor; try again");
                }
                Some(UiAction::Request(req, what)) => {
                    pending += 1;
                    model.message = format!("{what}...");
                    let cfg = cfg.clone();
                    let tx = done_tx.clone();
                    std::thread::spawn(move || {
                        let line = match client::request(&cfg, &req, client::COMMAND_TIMEOUT) {
                            Ok(SupervisorResponse::Ok(line)) => format!("{what}: {line}"),
                            Ok(SupervisorResponse::Error(line)) => format!("{what} refused: {line}"),
                            Ok(other) => format!("{what}: unexpected answer {other:?}"),
                            Err(e) => format!("{what} failed: {}", e.message),
                        };
                        let _ = tx.send(line);
                    });
                }
            }
            terminal.draw(|f| draw(&model, f.area(), f.buffer_mut())).map_err(draw_err)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_supervisor_watch_says_so_and_leaves_the_terminal_alone() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().to_path_buf(), ..Default::default() };
        let e = run(&cfg).unwrap_err();
        assert_eq!(e.code, crate::cli::EXIT_UNAVAILABLE);
        assert!(e.message.contains("raft-supervisor up"), "{}", e.message);
    }
}
