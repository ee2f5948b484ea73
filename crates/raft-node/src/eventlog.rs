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

/// Microseconds since the Unix epoch, now (the clock of [`timestamp`]).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
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

/// The inverse of [`format_timestamp`]: microseconds since the Unix epoch, or None for
/// anything not exactly of that form (`raft-supervisor timeline` reads logs with it).
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 27 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        let s = &text[from..to];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, m, sec, micros) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    if civil_from_days(days) != (year as i64, month as u32, day as u32) {
        return None; // 31 February and the like.
    }
    Some(((days as u64 * 86_400 + h * 3600 + m * 60 + sec) * 1_000_000) + micros)
}

/// (year, month, day) to days since 1970-01-01: Hinnant's `days_from_civil`, the inverse
/// of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_back_to_the_microsecond() {
        for micros in [0, 1, 951_782_400_000_000, 1_796_111_977_702_914, 4_102_444_799_999_999] {
            assert_eq!(parse_timestamp(&format_timestamp(micros)), Some(micros), "{}", format_timestamp(micros));
        }
        assert_eq!(parse_timestamp("2026-12-01T07:59:37.702914Z"), Some(1_796_111_977_702_914));
        for bad in [
            "",
            "2026-12-01T07:59:37Z",
            "2026-12-01 07:59:37.702914Z",
            "2026-02-31T07:59:37.702914Z",
            "2026-13-01T07:59:37.702914Z",
            "2026-12-01T24:00:00.000000Z",
            "2026-12-01T07:59:37.70291xZ",
            "+026-12-01T07:59:37.702914Z",
            "2026-12-01T07:59:37.702914",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
