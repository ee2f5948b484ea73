//! `raft-supervisor timeline`: the thin shell that reads the logs of a cluster directory
//! and prints [`crate::timeline`]'s merge.

use crate::cli::CliError;
use crate::core::NodeId;
use crate::timeline::{event_files, merge, now_us, Event, FileTail, Filter};
use raft_config::ClusterConfig;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How often `--follow` looks for new lines: people read it, so a fifth of a second is
/// immediate, and polling five small files that often costs nothing.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Prints the merged events; with `follow`, keeps printing new ones (each poll's batch
/// merged in order) until interrupted or the reader goes away.
pub fn run(
    cfg: &ClusterConfig,
    follow: bool,
    since: Option<Duration>,
    node: Option<NodeId>,
    json: bool,
) -> Result<(), CliError> {
    let filter = Filter { since_us: since.map(|d| now_us().saturating_sub(d.as_micros() as u64)), node };
    let files = event_files(&cfg.dir);
    if !files.iter().any(|(p, _)| p.exists()) {
        return Err(CliError::failed(format!(
            "no event logs in {}: has the cluster been started (`raft-supervisor up`)?",
            cfg.dir.display()
        )));
    }
    let mut tails: BTreeMap<PathBuf, FileTail> = BTreeMap::new();
    let mut out = std::io::stdout().lock();
    loop {
        // Node directories that appear later (a cluster started after us) are picked up.
        for (path, source) in event_files(&cfg.dir) {
            tails.entry(path.clone()).or_insert_with(|| FileTail::new(path, source));
        }
        let mut batch = Vec::new();
        // Drain: a long history arrives in several bounded reads.
        loop {
            for t in tails.values_mut() {
                batch.extend(t.read_new());
            }
            if tails.values().all(|t| t.caught_up()) {
                break;
            }
        }
        if print(&mut out, merge(batch), &filter, json).is_err() {
            return Ok(()); // The reader went away (`| head`): done, not an error.
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

fn print(out: &mut impl Write, events: Vec<Event>, filter: &Filter, json: bool) -> std::io::Result<()> {
    for e in events.iter().filter(|e| filter.keeps(e)) {
        let line = if json { e.json() } else { e.line() };
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_logs_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig { dir: t.path().join("never-started"), ..Default::default() };
        let e = run(&cfg, false, None, None, false).unwrap_err();
        assert_eq!(e.code, crate::cli::EXIT_FAILED);
        assert!(e.message.contains("has the cluster been started"), "{}", e.message);
    }
}
