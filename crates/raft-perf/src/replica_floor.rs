//! `replica-floor`: the disk's floor under one write of a 5-replica cluster on this machine.
//!
//! A write commits once three of the five nodes have it on disk, and on one shared disk
//! the five flushes run at the same time and slow each other down. This probe measures
//! exactly that: five threads, each with its own preallocated file (as each node has its
//! own WAL segment), are released together by a barrier, each appends 4 KiB and calls
//! `fdatasync`; the round's figure is the time until the third of them has finished (a
//! majority of five). The median over many rounds is the floor a 1-client write's p50 is
//! held against (issue 16: at most 1.25 times this).
//!
//! Each thread times its own flush from the barrier's release; the round's figure is the
//! third smallest of the five. Threads, not processes: the kernel's flush path and the
//! disk are what is measured, and a thread's wake-up is the same as a process's.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Replicas in the measured cluster (the default `nodes`).
pub(crate) const REPLICAS: usize = 5;
/// Flushes that must finish before a write commits: a majority of [`REPLICAS`].
pub(crate) const QUORUM: usize = REPLICAS / 2 + 1;
/// Bytes appended per flush: one WAL append of a small batch rounds up to a page.
const APPEND_BYTES: usize = 4096;
/// Rounds measured by default; the median is reported (a few seconds on a slow disk).
pub(crate) const DEFAULT_ROUNDS: usize = 300;
/// Most rounds one run may ask for: each round writes 4 KiB into every file up front.
pub(crate) const MAX_ROUNDS: usize = 100_000;

/// The time until the `quorum`-th of the flushes finished, given each one's duration
/// (they all started together).
pub(crate) fn quorum_finish_us(mut durations_us: Vec<f64>, quorum: usize) -> f64 {
    assert!(quorum >= 1 && quorum <= durations_us.len(), "quorum {quorum} of {} flushes", durations_us.len());
    durations_us.sort_by(|a, b| a.total_cmp(b));
    durations_us[quorum - 1]
}

/// What one run measured, in microseconds: the median over the rounds of the quorum's
/// finish, and of a single flush (all five threads' flushes pooled) for comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplicaFloor {
    pub quorum_p50_us: f64,
    pub each_p50_us: f64,
}

/// Runs `rounds` rounds in `dir` (five files, removed at the end, also on an error).
pub(crate) fn measure(dir: &Path, rounds: usize) -> std::io::Result<ReplicaFloor> {
    assert!((1..=MAX_ROUNDS).contains(&rounds), "rounds {rounds} outside 1..={MAX_ROUNDS}");
    let paths: Vec<PathBuf> = (0..REPLICAS).map(|i| dir.join(format!("raft-perf-replica-{i}.dat"))).collect();
    let result = run(&paths, rounds);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    result
}

fn run(paths: &[PathBuf], rounds: usize) -> std::io::Result<ReplicaFloor> {
    // Write every block once first: the WAL appends into a preallocated, written segment,
    // so the flush measured is of data, not of extent conversion or file size.
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(p)?;
        f.write_all_at(&vec![0u8; rounds * APPEND_BYTES], 0)?;
        f.sync_all()?;
        files.push(f);
    }
    let start = Arc::new(Barrier::new(REPLICAS + 1));
    let (tx, rx) = mpsc::channel::<std::io::Result<f64>>();
    let workers: Vec<_> = files
        .into_iter()
        .map(|file: File| {
            let (start, tx) = (Arc::clone(&start), tx.clone());
            std::thread::spawn(move || {
                let block = vec![0x5au8; APPEND_BYTES];
                for round in 0..rounds {
                    start.wait();
                    let t = Instant::now();
                    let r = file
                        .write_all_at(&block, (round * APPEND_BYTES) as u64)
                        .and_then(|()| file.sync_data())
                        .map(|()| t.elapsed().as_secs_f64() * 1e6);
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut quorum = Vec::with_capacity(rounds);
    let mut each = Vec::with_capacity(rounds * REPLICAS);
    let mut failure = None;
    for _ in 0..rounds {
        start.wait();
        let mut round = Vec::with_capacity(REPLICAS);
        for _ in 0..REPLICAS {
            match rx.recv().expect("a worker ended before its rounds") {
                Ok(us) => round.push(us),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if round.len() == REPLICAS {
            each.extend_from_slice(&round);
            quorum.push(quorum_finish_us(round, QUORUM));
        }
    }
    for w in workers {
        w.join().expect("replica-floor worker panicked");
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(ReplicaFloor { quorum_p50_us: crate::median(quorum), each_p50_us: crate::median(each) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_ends_when_the_third_of_five_has_flushed() {
        assert_eq!(QUORUM, 3);
        assert_eq!(quorum_finish_us(vec![9.0, 1.0, 5.0, 3.0, 7.0], QUORUM), 5.0);
        assert_eq!(quorum_finish_us(vec![2.0, 2.0, 2.0, 8.0, 8.0], QUORUM), 2.0);
    }

    #[test]
    fn a_short_run_measures_and_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = measure(dir.path(), 5).unwrap();
        assert!(f.quorum_p50_us > 0.0 && f.each_p50_us > 0.0, "{f:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the five files are removed");
    }

    #[test]
    fn a_directory_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = measure(&dir.path().join("missing"), 5).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
