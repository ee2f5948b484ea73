//! One line per event, readable by people and parseable by tests:
//! `<HH:MM:SS.mmm> n<id> t<term> <what>`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a node's event lines go.
#[derive(Clone, Debug)]
pub enum LogTarget {
    /// The binary: stdout, which the supervisor points at `node.log`.
    Stdout,
    /// In-process tests: one file per node, so each node's story can be read back.
    File(PathBuf),
}

pub struct EventLog {
    id: u64,
    out: Box<dyn Write + Send>,
}

/// `HH:MM:SS.mmm` in UTC: enough to line up the logs of the five nodes.
pub fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = now.as_millis() % 1000;
    let secs = now.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}.{:03}", secs / 3600, (secs / 60) % 60, secs % 60, ms)
}

impl EventLog {
    pub fn open(id: u64, target: &LogTarget) -> std::io::Result<EventLog> {
        let out: Box<dyn Write + Send> = match target {
            LogTarget::Stdout => Box::new(std::io::stdout()),
            LogTarget::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        Ok(EventLog { id, out })
    }

    /// Writes one event line. A failing log is ignored: the node's job is consensus.
    pub fn line(&mut self, term: u64, what: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "{} n{} t{term} {what}", timestamp(), self.id);
        let _ = self.out.flush();
    }
}

/// `event!(self.log, term, "format", args...)`
#[macro_export]
macro_rules! event {
    ($log:expr, $term:expr, $($arg:tt)*) => {
        $log.line($term, format_args!($($arg)*))
    };
}
