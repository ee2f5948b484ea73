//! Proptest runs of the fuzz targets in `raft_storage::fuzz` (the cargo-fuzz targets in
//! the workspace's `fuzz/` call the same functions): arbitrary bytes, and valid files
//! with arbitrary damage, through the WAL scanner, the hard-state file, the snapshot
//! reader and `Storage::open`. None may panic. `PROPTEST_CASES` scales every run (the
//! file-based ones run a tenth of it: each opens a directory).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use raft_storage::fuzz;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// A change to a valid file: what a bad disk, a crash or a hostile hand does.
#[derive(Clone, Debug)]
enum Damage {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Splice {
        at: usize,
        bytes: Vec<u8>,
    },
    /// A 4-byte little-endian number (a length, a CRC) written over.
    Word {
        at: usize,
        value: u32,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Set { at, byte }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
        (any::<usize>(), prop_oneof![Just(0), Just(u32::MAX), Just(1 << 31), any::<u32>()])
            .prop_map(|(at, value)| Damage::Word { at, value }),
    ]
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let n = bytes.len().max(1);
        match d {
            Damage::Flip { at, bit } if !bytes.is_empty() => bytes[at % n] ^= 1 << bit,
            Damage::Set { at, byte } if !bytes.is_empty() => bytes[at % n] = *byte,
            Damage::Truncate { at } => bytes.truncate(at % (n + 1)),
            Damage::Splice { at, bytes: b } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Damage::Word { at, value } if bytes.len() >= 4 => {
                let at = at % (bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// Arbitrary bytes, or a valid segment (some padding after it, as a preallocated file
/// has) with damage.
fn segment_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (0..20u64, 0..64usize, prop::collection::vec(damage(), 0..4)).prop_map(|(n, pad, d)| {
            let mut b = fuzz::valid_segment(n);
            b.resize(b.len() + pad, 0);
            apply(b, &d)
        }),
    ]
}

fn snapshot_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::read(fuzz::valid_snapshot_file(dir.path(), b"the state machine image")).unwrap()
    };
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        // Valid magic, then anything.
        prop::collection::vec(any::<u8>(), 0..128).prop_map(|tail| [b"RAFTSNP1".as_slice(), &tail].concat()),
        prop::collection::vec(damage(), 0..4).prop_map(move |d| apply(valid.clone(), &d)),
    ]
}

/// A directory for file-based runs: tmpfs when there is one (fsyncs cost nothing).
fn scratch() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

#[test]
fn wal_segment_scanner_never_panics() {
    runner(cases(5000))
        .run(&segment_bytes(), |b| {
            fuzz::wal_segment(&b);
            fuzz::hard_state_file(&b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn snapshot_reader_never_panics() {
    runner(cases(5000))
        .run(&snapshot_bytes(), |b| {
            fuzz::snapshot_file(&b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn storage_open_on_an_arbitrary_segment_never_panics() {
    runner(cases(5000) / 10)
        .run(&segment_bytes(), |b| {
            let dir = scratch();
            fuzz::open_with_segment(dir.path(), &b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn storage_open_on_an_arbitrary_snapshot_never_panics() {
    runner(cases(5000) / 10)
        .run(&snapshot_bytes(), |b| {
            let dir = scratch();
            fuzz::open_with_snapshot(dir.path(), &b);
            Ok(())
        })
        .unwrap();
}

/// With `FUZZ_SEED_DIR` set, writes a valid segment and a valid snapshot file as seed
/// inputs for the cargo-fuzz targets that read them.
#[test]
fn seed_corpus() {
    let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    let tmp = tempfile::tempdir().unwrap();
    let snap = std::fs::read(fuzz::valid_snapshot_file(tmp.path(), b"the state machine image")).unwrap();
    let mut padded = fuzz::valid_segment(5);
    padded.resize(padded.len() + 64, 0);
    for (target, inputs) in [
        ("wal_segment", vec![fuzz::valid_segment(5), padded.clone()]),
        ("wal_open", vec![fuzz::valid_segment(5), padded]),
        ("snapshot_file", vec![snap.clone()]),
        ("snapshot_open", vec![snap]),
    ] {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        for (i, b) in inputs.into_iter().enumerate() {
            std::fs::write(dir.join(target).join(format!("seed-{i}")), b).unwrap();
        }
    }
}
