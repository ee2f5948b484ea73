//! One line per event, readable by people and parseable by tests:
//! `<YYYY-MM-DDTHH:MM:SS.uuuuuuZ> n<id> t<term> <what>`.

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

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (UTC, RFC 3339): the nodes share one clock, so
/// microseconds order the events of all five logs (`raft-supervisor timeline`), and the
/// date keeps that order across midnight.
pub fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_timestamp(now.as_micros() as u64)
}

/// The timestamp of `micros` since the Unix epoch, in the form of [`timestamp`].
pub fn format_timestamp(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        micros % 1_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`; no date crate for one conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
