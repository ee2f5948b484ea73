//! `wal-bench`: WAL appends per second with fsync, next to the raw `write + fdatasync`
//! rate of a plain file on the same disk, measured in the same run.
//!
//! ```text
//!   cargo run --release -p raft-storage --bin wal-bench [-- --dir PATH] [--seconds-per-row S] [--slice-ms MS]
//! ```
//!
//! Disks shared with other work are noisy, so the rows take short turns (100 ms, or one
//! operation with `--slice-ms 0`), round after round, and each row's rate is its
//! operations over the time spent in them: load that comes and goes hits every row
//! alike, and the ratios stay meaningful.

use raft_core::{Entry, EntryData, HardState};
use raft_storage::{Storage, StorageOptions};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of each entry's command, as in the issue.
const ENTRY_DATA_BYTES: usize = 100;
/// Batch sizes measured.
const BATCHES: [usize; 3] = [1, 16, 256];
/// Operations per row before measuring (first extent conversions, page cache).
const WARMUP_OPS: usize = 20;
/// Default turn length: short enough that load changes hit all rows alike, long enough
/// that each row runs as a stream of operations on its own file, as it would for real.
const DEFAULT_SLICE_MS: u64 = 100;
/// Default measuring time per row: a few seconds, so the whole run takes well under a minute.
const DEFAULT_SECONDS_PER_ROW: f64 = 3.0;

fn main() {
    let mut dir: Option<PathBuf> = None;
    let mut seconds = DEFAULT_SECONDS_PER_ROW;
    let mut slice_ms = DEFAULT_SLICE_MS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--seconds-per-row" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--slice-ms" => slice_ms = args.next().and_then(|s| s.parse().ok()).unwrap_or(slice_ms),
            "-h" | "--help" => {
                println!(
                    "usage: wal-bench [--dir PATH] [--seconds-per-row S] [--slice-ms MS (0: one operation per turn)]"
                );
                return;
            }
            other => {
                eprintln!("wal-bench: unknown argument {other:?}; try --help");
                std::process::exit(2);
            }
        }
    }
    let base = dir.unwrap_or_else(std::env::temp_dir).join(format!("wal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap_or_else(|e| die(&format!("cannot create {}: {e}", base.display())));
    let result = run(&base, seconds, Duration::from_millis(slice_ms));
    let _ = std::fs::remove_dir_all(&base);
    if let Err(e) = result {
        die(&e);
    }
}

fn die(msg: &str) -> ! {
    eprintln!("wal-bench: {msg}");
    std::process::exit(1);
}

/// One measured row.
trait Row {
    fn name(&self) -> String;
    /// Bytes handed to the kernel per operation.
    fn bytes_per_op(&self) -> usize;
    fn entries_per_op(&self) -> usize;
    /// Runs one operation (one write and one sync).
    fn op(&mut self) -> Result<(), String>;
    /// Syncs per operation so far, if known.
    fn syncs_per_op(&self) -> Option<f64>;
}

/// How a raw row writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RawMode {
    /// `write` appending to a growing file, then `fdatasync`: the reference.
    Append,
    /// The same with `fsync`, which also flushes metadata such as mtime.
    AppendFsync,
    /// `pwrite` inside a file preallocated with `fallocate`, then `fdatasync`: no size change.
    Preallocated,
}

/// One raw write and sync of a plain file per operation.
struct Raw {
    file: File,
    buf: Vec<u8>,
    mode: RawMode,
    offset: u64,
}

/// Space reserved for the preallocated raw row (it wraps around, which never happens
/// within a few seconds of 100-byte writes).
const RAW_PREALLOC_BYTES: u64 = 64 << 20;

impl Raw {
    fn new(path: &Path, bytes: usize, mode: RawMode) -> Result<Raw, String> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if mode == RawMode::Preallocated {
            nix::fcntl::fallocate(file.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, RAW_PREALLOC_BYTES as i64)
                .map_err(|e| format!("fallocate {}: {e}", path.display()))?;
            file.sync_all().map_err(|e| e.to_string())?;
        }
        Ok(Raw { file, buf: vec![0x5a; bytes], mode, offset: 0 })
    }
}

impl Row for Raw {
    fn name(&self) -> String {
        match self.mode {
            RawMode::Append => format!("raw write+fdatasync {}", human(self.buf.len())),
            RawMode::AppendFsync => format!("raw write+fsync {}", human(self.buf.len())),
            RawMode::Preallocated => format!("raw pwrite+fdatasync {}, preallocated", human(self.buf.len())),
        }
    }
    fn bytes_per_op(&self) -> usize {
        self.buf.len()
    }
    fn entries_per_op(&self) -> usize {
        0
    }
    fn op(&mut self) -> Result<(), String> {
        match self.mode {
            RawMode::Append => {
                self.file.write_all(&self.buf).map_err(|e| e.to_string())?;
                self.file.sync_data().map_err(|e| e.to_string())
            }
            RawMode::AppendFsync => {
                self.file.write_all(&self.buf).map_err(|e| e.to_string())?;
                self.file.sync_all().map_err(|e| e.to_string())
            }
            RawMode::Preallocated => {
                use std::os::unix::fs::FileExt;
                self.file.write_all_at(&self.buf, self.offset).map_err(|e| e.to_string())?;
                self.offset = (self.offset + self.buf.len() as u64) % (RAW_PREALLOC_BYTES - self.buf.len() as u64);
                self.file.sync_data().map_err(|e| e.to_string())
            }
        }
    }
    fn syncs_per_op(&self) -> Option<f64> {
        Some(1.0)
    }
}

fn human(bytes: usize) -> String {
    if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// `Storage::persist` of a batch of entries.
struct Wal {
    storage: Storage,
    batch: Vec<Entry>,
    with_hard_state: bool,
    next: u64,
    record_bytes: usize,
    /// Stats after setup, so the table counts only the measured batches.
    base: raft_storage::StorageStats,
}

impl Wal {
    fn new(dir: &Path, n: usize, with_hard_state: bool) -> Result<Wal, String> {
        let (storage, _) = Storage::open(dir, StorageOptions::default()).map_err(|e| e.to_string())?;
        let batch = (0..n)
            .map(|i| Entry { index: 0, term: 1, data: EntryData::Command(vec![(i % 251) as u8 + 1; ENTRY_DATA_BYTES]) })
            .collect();
        let base = storage.stats();
        let mut w = Wal { storage, batch, with_hard_state, next: 1, record_bytes: 0, base };
        let before = w.storage.wal_end();
        w.op()?;
        w.record_bytes = (w.storage.wal_end() - before) as usize;
        w.base = w.storage.stats();
        Ok(w)
    }
}

impl Row for Wal {
    fn name(&self) -> String {
        let hs = if self.with_hard_state { " + hard state" } else { "" };
        format!("WAL batch of {}{hs}", self.batch.len())
    }
    fn bytes_per_op(&self) -> usize {
        self.record_bytes
    }
    fn entries_per_op(&self) -> usize {
        self.batch.len()
    }
    fn op(&mut self) -> Result<(), String> {
        for (i, e) in self.batch.iter_mut().enumerate() {
            e.index = self.next + i as u64;
        }
        let hs = HardState { term: 1, vote: Some(1), commit: self.next - 1 };
        let hs = self.with_hard_state.then_some(&hs);
        self.storage.persist(hs, &self.batch).map_err(|e| e.to_string())?;
        self.next += self.batch.len() as u64;
        Ok(())
    }
    fn syncs_per_op(&self) -> Option<f64> {
        let s = self.storage.stats();
        let batches = s.batches - self.base.batches;
        (batches > 0).then(|| (s.syncs - self.base.syncs) as f64 / batches as f64)
    }
}

struct Measured {
    ops: u64,
    elapsed: Duration,
    /// The rate of each turn, to compare rows turn by turn.
    turns: Vec<f64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Median over the rounds of this row's rate divided by `other`'s in the same round:
    /// neighbouring turns see the same load, so this ratio shrugs off bursts.
    fn median_ratio(&self, other: &Measured) -> f64 {
        let mut r: Vec<f64> = self.turns.iter().zip(&other.turns).map(|(a, b)| a / b).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }
}

fn run(base: &Path, seconds_per_row: f64, slice: Duration) -> Result<(), String> {
    let mut rows: Vec<Box<dyn Row>> = vec![
        Box::new(Raw::new(&base.join("raw-4k"), 4096, RawMode::Append)?),
        Box::new(Raw::new(&base.join("raw-100"), 100, RawMode::Append)?),
        Box::new(Raw::new(&base.join("raw-100-fsync"), 100, RawMode::AppendFsync)?),
        Box::new(Raw::new(&base.join("raw-100-prealloc"), 100, RawMode::Preallocated)?),
    ];
    for n in BATCHES {
        rows.push(Box::new(Wal::new(&base.join(format!("wal-{n}")), n, false)?));
        if n == 1 {
            rows.push(Box::new(Wal::new(&base.join("wal-1-hs"), 1, true)?));
        }
    }
    let mut measured: Vec<Measured> =
        rows.iter().map(|_| Measured { ops: 0, elapsed: Duration::ZERO, turns: Vec::new() }).collect();
    for row in rows.iter_mut() {
        for _ in 0..WARMUP_OPS {
            row.op()?;
        }
    }
    let budget = Duration::from_secs_f64(seconds_per_row * rows.len() as f64);
    eprintln!(
        "wal-bench: {} rows taking turns of {} ms for {:.0} s in {} (fsync on)",
        rows.len(),
        slice.as_millis(),
        budget.as_secs_f64(),
        base.display()
    );
    let start = Instant::now();
    while start.elapsed() < budget {
        for (row, m) in rows.iter_mut().zip(measured.iter_mut()) {
            let t = Instant::now();
            let mut ops = 0;
            loop {
                row.op()?;
                ops += 1;
                if t.elapsed() >= slice {
                    break;
                }
            }
            let took = t.elapsed();
            m.ops += ops;
            m.elapsed += took;
            m.turns.push(ops as f64 / took.as_secs_f64());
        }
    }

    println!(
        "| row | bytes per write | writes/s (= batches/s) | entries/s | syncs per batch | vs raw 100 B | vs raw 4 KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (row, m) in rows.iter().zip(&measured) {
        let rate = m.rate();
        let entries = if row.entries_per_op() == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", rate * row.entries_per_op() as f64)
        };
        let syncs = row.syncs_per_op().map_or("-".to_string(), |s| format!("{s:.2}"));
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.2}x | {:.2}x |",
            row.name(),
            row.bytes_per_op(),
            rate,
            entries,
            syncs,
            m.median_ratio(&measured[1]),
            m.median_ratio(&measured[0])
        );
    }
    println!();
    println!(
        "{} rounds; ratios are medians of turn-by-turn ratios (rows alternate in {} ms turns).",
        measured[0].turns.len(),
        slice.as_millis()
    );
    Ok(())
}
