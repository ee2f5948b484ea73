//! Flip random bits anywhere in a node directory written through a random history of
//! appends, conflicts and compactions. Recovery must return exactly what was persisted
//! (every `persist` here returned) or refuse with `Corrupt` naming a file that was hit.
//! It must never panic and never return a wrong entry or hard state.

mod common;
use common::*;
use proptest::prelude::*;
use raft_core::{Entry, HardState};
use raft_storage::{StorageError, StorageOptions};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` entries; maybe in a new term; maybe with a hard state.
    Append { n: u64, new_term: bool, with_hs: bool },
    /// A new leader overwrites the last `back` entries (above the snapshot) with `n` new ones.
    Conflict { back: u64, n: u64 },
    /// Compact up to `back` entries before the end.
    Compact { back: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..12u64, any::<bool>(), any::<bool>()).prop_map(|(n, new_term, with_hs)| Op::Append { n, new_term, with_hs }),
        2 => (1..10u64, 1..6u64).prop_map(|(back, n)| Op::Conflict { back, n }),
        1 => (0..10u64).prop_map(|back| Op::Compact { back }),
    ]
}

/// What the storage should hold: the model of a node's disk.
struct Model {
    log: Vec<Entry>, // after the snapshot
    snap: (u64, u64),
    term: u64,
    hs: HardState,
}

impl Model {
    fn last(&self) -> u64 {
        self.log.last().map_or(self.snap.0, |e| e.index)
    }
}

fn run_history(dir: &Path, opts: StorageOptions, ops: &[Op]) -> Model {
    let (mut st, _) = open(dir, opts);
    let mut m = Model { log: Vec::new(), snap: (0, 0), term: 1, hs: hs(1, Some(1), 0) };
    st.persist(Some(&m.hs), &[]).unwrap();
    for op in ops {
        match *op {
            Op::Append { n, new_term, with_hs } => {
                if new_term {
                    m.term += 1;
                    m.hs = hs(m.term, None, m.hs.commit);
                }
                let batch = entries(m.last() + 1..=m.last() + n, m.term);
                let h = (with_hs || new_term).then_some(m.hs);
                st.persist(h.as_ref(), &batch).unwrap();
                m.log.extend(batch);
            }
            Op::Conflict { back, n } => {
                let floor = m.snap.0.max(m.hs.commit);
                let from = m.last().saturating_sub(back).max(floor) + 1;
                if from > m.last() {
                    continue;
                }
                m.term += 1;
                m.hs = hs(m.term, Some(2), m.hs.commit);
                let batch = entries(from..=from + n - 1, m.term);
                st.persist(Some(&m.hs), &batch).unwrap();
                m.log.retain(|e| e.index < from);
                m.log.extend(batch);
            }
            Op::Compact { back } => {
                let s = m.last().saturating_sub(back);
                if s <= m.snap.0 {
                    continue;
                }
                let t = m.log.iter().find(|e| e.index == s).unwrap().term;
                st.compact(&snap(s, t, format!("state at {s}").as_bytes())).unwrap();
                m.snap = (s, t);
                m.log.retain(|e| e.index > s);
                m.hs.commit = m.hs.commit.max(s);
                st.persist(Some(&m.hs), &[]).unwrap();
            }
        }
    }
    assert_eq!(st.last_index(), m.last());
    m
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["wal", "snap"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            v.push(e.unwrap().path());
        }
    }
    v.sort();
    v
}

fn check(dir: &Path, opts: StorageOptions, m: &Model, hit: &[PathBuf]) -> Result<(), TestCaseError> {
    match reopen(dir, opts) {
        Ok(rec) => {
            let r = rec.restored;
            prop_assert_eq!(r.snapshot.as_ref().map(|s| (s.index, s.term)).unwrap_or((0, 0)), m.snap);
            prop_assert!(r.entries == m.log, "entries differ; notes {:?}", rec.notes);
            prop_assert_eq!(r.hard_state, m.hs);
        }
        Err(StorageError::Corrupt { file, .. }) => {
            prop_assert!(hit.contains(&file), "Corrupt names {} which was not damaged", file.display());
        }
        Err(e) => prop_assert!(false, "unexpected error: {e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bit_flips(
        ops in prop::collection::vec(op(), 1..25),
        segment_bytes in 400..3000u64,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), 0..8u8), 1..4),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let opts = StorageOptions { fsync: false, segment_bytes };
        let m = run_history(tmp.path(), opts, &ops);
        // Untouched, everything comes back.
        check(tmp.path(), opts, &m, &[])?;
        let files = all_files(tmp.path());
        let mut hit = Vec::new();
        for (which, offset, bit) in flips {
            let path = which.get(&files);
            let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
            let len = f.metadata().unwrap().len();
            if len == 0 {
                continue;
            }
            // Half the flips go to the logical data near the start, where records are.
            let at = if offset % 2 == 0 { offset % len.min(4096) } else { offset % len };
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            b[0] ^= 1 << bit;
            f.write_all_at(&b, at).unwrap();
            hit.push(path.clone());
        }
        check(tmp.path(), opts, &m, &hit)?;
    }

    /// Flips aimed at the last record of the log, where a torn write is also possible.
    #[test]
    fn flips_in_the_final_record(n in 1..40u64, back in 1..120u64, bit in 0..8u8) {
        let tmp = tempfile::tempdir().unwrap();
        let opts = StorageOptions { fsync: false, segment_bytes: 64 * 1024 };
        let (end, seg) = {
            let (mut st, _) = open(tmp.path(), opts);
            st.persist(Some(&hs(1, Some(1), 0)), &entries(1..=n, 1)).unwrap();
            (st.wal_end(), st.segment_paths().pop().unwrap())
        };
        let at = end.saturating_sub(back);
        let f = OpenOptions::new().read(true).write(true).open(&seg).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 1 << bit;
        f.write_all_at(&b, at).unwrap();
        let m = Model { log: entries(1..=n, 1), snap: (0, 0), term: 1, hs: hs(1, Some(1), 0) };
        check(tmp.path(), opts, &m, &[seg])?;
    }
}
