//! Crash recovery: torn tails, damaged bytes, missing and duplicated segments, leftovers.

mod common;
use common::*;
use raft_storage::{StorageError, StorageOptions};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Big enough that the test log stays in one segment, small enough to copy quickly.
const ONE_SEGMENT: StorageOptions = StorageOptions { fsync: false, segment_bytes: 64 * 1024 };

fn corrupt_file(r: Result<raft_storage::Recovery, StorageError>) -> (PathBuf, u64, String) {
    match r {
        Err(StorageError::Corrupt { file, offset, reason }) => (file, offset, reason),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(rec) => panic!("expected Corrupt, recovered {} entries", rec.restored.entries.len()),
    }
}

fn zero_range(path: &Path, from: u64, to: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0; (to - from) as usize], from).unwrap();
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

/// Writes 1..=9 and then entry 10 alone; returns (segment, offset of 10's record, end).
fn write_then_last(dir: &Path) -> (PathBuf, u64, u64) {
    let (mut st, _) = open(dir, ONE_SEGMENT);
    st.persist(Some(&hs(1, Some(1), 0)), &entries(1..=5, 1)).unwrap();
    st.persist(Some(&hs(1, Some(1), 5)), &entries(6..=9, 1)).unwrap();
    let start = st.wal_end();
    st.persist(None, &entries(10..=10, 1)).unwrap();
    let seg = st.segment_paths().pop().unwrap();
    (seg, start, st.wal_end())
}

#[test]
fn cut_at_every_byte_of_the_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let orig = tmp.path().join("orig");
    let (seg, start, end) = write_then_last(&orig);
    let seg_name = Path::new("wal").join(seg.file_name().unwrap());
    for cut in start..end {
        // Two shapes of a crash: the file ends at the cut (a short write to a growing
        // file), or the rest of the record never left the page cache (zeros of the
        // preallocated segment).
        for zeroed in [false, true] {
            let dir = tmp.path().join(format!("cut-{cut}-{zeroed}"));
            copy_dir(&orig, &dir);
            let seg = dir.join(&seg_name);
            if zeroed {
                zero_range(&seg, cut, end);
            } else {
                truncate(&seg, cut);
            }
            let (mut st, rec) = open(&dir, ONE_SEGMENT);
            assert_eq!(rec.restored.entries, entries(1..=9, 1), "cut at {cut}");
            assert_eq!(rec.restored.hard_state, hs(1, Some(1), 5));
            let note = format!("truncated torn record at {} offset {start}", seg_name.display());
            if cut > start {
                assert!(rec.notes.iter().any(|n| n.starts_with(&note)), "cut at {cut}: {:?}", rec.notes);
            } else {
                assert!(!rec.notes.iter().any(|n| n.contains("torn")), "nothing torn at {cut}: {:?}", rec.notes);
            }
            // The node goes on: rewrite 10 (another term), restart, all clean.
            st.persist(Some(&hs(2, None, 5)), &entries(10..=11, 2)).unwrap();
            drop(st);
            let (_, rec) = open(&dir, ONE_SEGMENT);
            let mut want = entries(1..=9, 1);
            want.extend(entries(10..=11, 2));
            assert_eq!(rec.restored.entries, want, "after rewrite, cut at {cut}");
            assert!(!rec.notes.iter().any(|n| n.contains("torn")), "{:?}", rec.notes);
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn cut_at_every_byte_of_a_batch_leaves_a_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let orig = tmp.path().join("orig");
    let (seg, start, end) = {
        let (mut st, _) = open(&orig, ONE_SEGMENT);
        st.persist(Some(&hs(1, Some(1), 2)), &entries(1..=3, 1)).unwrap();
        let start = st.wal_end();
        st.persist(Some(&hs(2, Some(2), 6)), &entries(4..=6, 2)).unwrap();
        (st.segment_paths().pop().unwrap(), start, st.wal_end())
    };
    let seg_name = Path::new("wal").join(seg.file_name().unwrap());
    let mut seen = std::collections::BTreeSet::new();
    for cut in start..=end {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&orig, &dir);
        zero_range(&dir.join(&seg_name), cut, end);
        let rec = reopen(&dir, ONE_SEGMENT).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let got = rec.restored.entries;
        let mut full = entries(1..=3, 1);
        full.extend(entries(4..=6, 2));
        assert!(got.len() >= 3 && full.starts_with(&got), "cut at {cut}: not a prefix: {got:?}");
        let h = rec.restored.hard_state;
        assert!(h == hs(1, Some(1), 2) || (h.term == 2 && h.vote == Some(2) && h.commit <= got.len() as u64));
        assert!(h.commit <= got.len() as u64, "commit clamped to the log");
        seen.insert(got.len());
        fs::remove_dir_all(&dir).unwrap();
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![3, 4, 5, 6]);
}

#[test]
fn torn_hard_state_keeps_entries_and_clamps_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, start, end) = {
        let (mut st, _) = open(tmp.path(), ONE_SEGMENT);
        st.persist(Some(&hs(1, Some(1), 0)), &entries(1..=2, 1)).unwrap();
        let start = st.wal_end();
        st.persist(Some(&hs(1, Some(1), 4)), &entries(3..=4, 1)).unwrap();
        (st.segment_paths().pop().unwrap(), start, st.wal_end())
    };
    // Keep the batch's hard state (the first record) and tear its last entry.
    zero_range(&seg, end - 20, end);
    let _ = start;
    let rec = reopen(tmp.path(), ONE_SEGMENT).unwrap();
    assert_eq!(rec.restored.entries, entries(1..=3, 1));
    assert_eq!(rec.restored.hard_state, hs(1, Some(1), 3));
    assert!(rec.notes.iter().any(|n| n.contains("clamped")), "{:?}", rec.notes);
}

#[test]
fn damage_before_the_tail_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, start, _) = write_then_last(tmp.path());
    flip(&seg, start - 30, 3);
    let (file, offset, reason) = corrupt_file(reopen(tmp.path(), ONE_SEGMENT));
    assert_eq!(file, seg);
    assert!(offset < start - 30, "offset {offset} names the damaged record");
    assert!(reason.contains("valid record follows"), "{reason}");
    let msg = StorageError::Corrupt { file, offset, reason }.to_string();
    assert!(msg.contains(&format!("offset {offset}")) && msg.contains(".log"), "{msg}");
}

#[test]
fn flipped_bit_in_the_last_record_refuses_to_start() {
    // A complete record with a bad checksum is damage, not a torn write: dropping it would
    // lose an entry whose persist returned.
    let tmp = tempfile::tempdir().unwrap();
    let (seg, start, end) = write_then_last(tmp.path());
    for (pos, bit) in [(start, 0), (start + 2, 7), (start + 5, 1), (start + 20, 4), (end - 1, 0)] {
        flip(&seg, pos, bit);
        let (file, offset, _) = corrupt_file(reopen(tmp.path(), ONE_SEGMENT));
        assert_eq!((file.as_path(), offset), (seg.as_path(), start), "flip at {pos}");
        flip(&seg, pos, bit);
        assert_eq!(reopen(tmp.path(), ONE_SEGMENT).unwrap().restored.entries.len(), 10);
    }
}

#[test]
fn torn_record_in_an_earlier_segment_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        for i in 1..=30 {
            st.persist(None, &entries(i..=i, 1)).unwrap();
        }
    }
    let segs = segments(tmp.path());
    let len = fs::metadata(&segs[0]).unwrap().len();
    truncate(&segs[0], len - 10);
    let (file, _, reason) = corrupt_file(reopen(tmp.path(), SMALL_SEGMENTS));
    assert_eq!(file, segs[0]);
    assert!(reason.contains("not the last segment"), "{reason}");
}

fn many_segments(dir: &Path) -> Vec<PathBuf> {
    let (mut st, _) = open(dir, SMALL_SEGMENTS);
    for i in 1..=40 {
        st.persist(Some(&hs(1, Some(1), i - 1)), &entries(i..=i, 1)).unwrap();
    }
    let segs = segments(dir);
    assert!(segs.len() >= 4, "{segs:?}");
    segs
}

fn first_index_of(p: &Path) -> u64 {
    p.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

#[test]
fn missing_segment_in_the_middle() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = many_segments(tmp.path());
    fs::remove_file(&segs[1]).unwrap();
    match reopen(tmp.path(), SMALL_SEGMENTS) {
        Err(e @ StorageError::MissingSegment { .. }) => {
            let StorageError::MissingSegment { file, previous, expected, found } = &e else { unreachable!() };
            assert_eq!((file, previous), (&segs[2], &segs[0]));
            assert_eq!((*expected, *found), (first_index_of(&segs[1]), first_index_of(&segs[2])));
            assert!(e.to_string().contains(&segs[2].display().to_string()), "{e}");
        }
        other => panic!("expected MissingSegment, got {:?}", other.map(|r| r.notes)),
    }
}

#[test]
fn missing_first_segment_is_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = many_segments(tmp.path());
    fs::remove_file(&segs[0]).unwrap();
    match reopen(tmp.path(), SMALL_SEGMENTS) {
        Err(StorageError::Gap { file, snapshot_index: 0, first_index }) => {
            assert_eq!(file, segs[1]);
            assert_eq!(first_index, first_index_of(&segs[1]));
        }
        other => panic!("expected Gap, got {:?}", other.map(|r| r.notes)),
    }
}

#[test]
fn duplicated_segment_under_another_name() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = many_segments(tmp.path());
    // A copy of segment 0 slipped in between 0 and 1 under a name that fits the order.
    let last = first_index_of(&segs[1]) - 1;
    let dup = segs[0].with_file_name(format!("{last:020}.log"));
    fs::copy(&segs[0], &dup).unwrap();
    let (file, offset, reason) = corrupt_file(reopen(tmp.path(), SMALL_SEGMENTS));
    assert_eq!(file, dup);
    assert!(reason.contains("overlapping") || reason.contains("begins with entry"), "{reason} at {offset}");
    fs::remove_file(&dup).unwrap();

    // A copy of the last segment after it: named for the next index, holding old entries.
    let next = first_index_of(segs.last().unwrap()) + 100;
    let dup = segs[0].with_file_name(format!("{next:020}.log"));
    fs::copy(segs.last().unwrap(), &dup).unwrap();
    let (file, _, _) = corrupt_file(reopen(tmp.path(), SMALL_SEGMENTS));
    assert_eq!(file, dup);
}

#[test]
fn overlapping_segments_that_disagree() {
    // Two logs with different segment boundaries; splice a segment of one into the other.
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    {
        let (mut st, _) = open(&a, SMALL_SEGMENTS);
        for i in 1..=40 {
            st.persist(None, &entries(i..=i, 1)).unwrap();
        }
        let (mut st, _) = open(&b, StorageOptions { segment_bytes: 1500, ..SMALL_SEGMENTS });
        for i in 1..=40 {
            st.persist(None, &entries(i..=i, 2)).unwrap();
        }
    }
    let seg_a = segments(&a);
    let foreign = segments(&b).into_iter().find(|p| !seg_a.iter().any(|q| q.file_name() == p.file_name())).unwrap();
    let planted = a.join("wal").join(foreign.file_name().unwrap());
    fs::copy(&foreign, &planted).unwrap();
    let r = reopen(&a, SMALL_SEGMENTS);
    match r {
        Err(StorageError::Corrupt { ref file, ref reason, .. }) => {
            assert!(reason.contains("overlapping"), "{reason}");
            assert!(file == &planted || seg_a.contains(file), "{}", file.display());
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|r| r.notes)),
    }
}

#[test]
fn leftover_snapshot_files_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(1, None, 20)), &entries(1..=20, 1)).unwrap();
        st.compact(&snap(10, 1, b"ten")).unwrap();
    }
    let snap_dir = tmp.path().join("snap");
    // A crash during the next snapshot's write, and one between rename and removal.
    fs::write(snap_dir.join("00000000000000000020-00000000000000000001.snap.tmp"), b"half a snapsh").unwrap();
    fs::write(snap_dir.join("00000000000000000005-00000000000000000001.snap"), b"older, not even read").unwrap();
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(snap(10, 1, b"ten").meta));
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(10, 1, b"ten")));
    assert_eq!(rec.restored.entries, entries(11..=20, 1));
    assert_eq!(snapshots(tmp.path()).len(), 1);
    assert!(rec.notes.iter().any(|n| n.contains("removed unfinished snapshot")), "{:?}", rec.notes);
    assert!(rec.notes.iter().any(|n| n.contains("removed older snapshot")), "{:?}", rec.notes);
}

#[test]
fn damaged_snapshot_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(None, &entries(1..=20, 1)).unwrap();
        st.compact(&snap(10, 1, &[7; 3000])).unwrap();
    }
    let file = snapshots(tmp.path()).pop().unwrap();
    flip(&file, 1500, 2);
    let (f, _, reason) = corrupt_file(reopen(tmp.path(), SMALL_SEGMENTS));
    assert_eq!(f, file);
    assert!(reason.contains("checksum"), "{reason}");
}

#[test]
fn interrupted_install_discards_the_other_history() {
    // A crash after the snapshot's rename but before the log was discarded: the log has
    // entry 10 with term 1, the snapshot says term 3.
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(3, Some(2), 0)), &entries(1..=15, 1)).unwrap();
        let (mut o, _) = open(other.path(), SMALL_SEGMENTS);
        o.persist(None, &entries(1..=10, 3)).unwrap();
        o.compact(&snap(10, 3, b"leader")).unwrap();
    }
    let s = snapshots(other.path()).pop().unwrap();
    fs::copy(&s, tmp.path().join("snap").join(s.file_name().unwrap())).unwrap();
    let (mut st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(snap(10, 3, b"leader").meta));
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(10, 3, b"leader")));
    assert!(rec.restored.entries.is_empty());
    assert_eq!(rec.restored.hard_state, hs(3, Some(2), 10));
    assert!(rec.notes.iter().any(|n| n.contains("interrupted snapshot install")), "{:?}", rec.notes);
    assert_eq!((st.first_index(), st.last_index()), (11, 10));
    st.persist(None, &entries(11..=12, 3)).unwrap();
    drop(st);
    assert_eq!(reopen(tmp.path(), SMALL_SEGMENTS).unwrap().restored.entries, entries(11..=12, 3));
}

#[test]
fn damaged_hard_state_file_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(1, Some(1), 0)), &entries(1..=5, 1)).unwrap();
        st.persist(Some(&hs(2, Some(2), 0)), &entries(3..=3, 2)).unwrap(); // truncation writes wal/hardstate
    }
    let file = tmp.path().join("wal/hardstate");
    assert!(file.exists());
    fs::write(tmp.path().join("wal/hardstate.tmp"), b"crash leftover").unwrap();
    let rec = reopen(tmp.path(), SMALL_SEGMENTS).unwrap();
    assert_eq!(rec.restored.hard_state, hs(2, Some(2), 0));
    assert!(!tmp.path().join("wal/hardstate.tmp").exists());
    flip(&file, 9, 0);
    let (f, _, _) = corrupt_file(reopen(tmp.path(), SMALL_SEGMENTS));
    assert_eq!(f, file);
}

#[test]
fn the_hard_state_file_outlives_truncated_records() {
    // The vote sits in a record that a conflict truncation cuts away; a crash loses the
    // rewritten batch. The hard-state file, written before the cut, still has the vote.
    let tmp = tempfile::tempdir().unwrap();
    let (seg, mark) = {
        let (mut st, _) = open(tmp.path(), ONE_SEGMENT);
        st.persist(Some(&hs(1, None, 0)), &entries(1..=3, 1)).unwrap();
        let mark = st.wal_end();
        st.persist(None, &entries(4..=5, 1)).unwrap();
        st.persist(Some(&hs(2, Some(3), 0)), &[]).unwrap();
        st.persist(None, &entries(4..=4, 2)).unwrap();
        (st.segment_paths().pop().unwrap(), mark)
    };
    let len = fs::metadata(&seg).unwrap().len();
    zero_range(&seg, mark, len.min(mark + 4096));
    let rec = reopen(tmp.path(), ONE_SEGMENT).unwrap();
    assert_eq!(rec.restored.entries, entries(1..=3, 1));
    assert_eq!(rec.restored.hard_state, hs(2, Some(3), 0));
}

/// Builds a log of 1..=60 in small segments, then returns its directory.
fn long_log(dir: &Path) {
    let (mut st, _) = open(dir, SMALL_SEGMENTS);
    st.persist(Some(&hs(1, Some(1), 0)), &[]).unwrap();
    for i in 1..=60 {
        st.persist(None, &entries(i..=i, 1)).unwrap();
    }
}

/// A snapshot file for index `s` of the `long_log`, written elsewhere.
fn snapshot_file(tmp: &Path, s: u64) -> PathBuf {
    let other = tmp.join(format!("other-{s}"));
    long_log(&other);
    let (mut st, _) = open(&other, SMALL_SEGMENTS);
    st.compact(&snap(s, 1, b"state")).unwrap();
    snapshots(&other).pop().unwrap()
}

#[test]
fn crash_between_compaction_snapshot_and_segment_removal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    long_log(&dir);
    let s = snapshot_file(tmp.path(), 40);
    fs::copy(&s, dir.join("snap").join(s.file_name().unwrap())).unwrap();
    let before = segments(&dir).len();
    let (_, rec) = open(&dir, SMALL_SEGMENTS);
    assert_eq!(rec.restored.entries, entries(41..=60, 1));
    assert!(segments(&dir).len() < before);
    assert!(rec.notes.iter().any(|n| n.contains("covered by the snapshot at 40")), "{:?}", rec.notes);
}

#[test]
fn crash_between_install_snapshot_and_log_discard() {
    // Same history: the log continues the snapshot and is kept (Figure 13, step 6).
    let tmp = tempfile::tempdir().unwrap();
    let orig = tmp.path().join("orig");
    long_log(&orig);
    let s = snapshot_file(tmp.path(), 45);
    fs::copy(&s, orig.join("snap").join(s.file_name().unwrap())).unwrap();
    // The install removes segments newest first: any prefix of the old log may remain.
    let n = segments(&orig).len();
    for keep in 0..=n {
        let dir = tmp.path().join(format!("keep-{keep}"));
        copy_dir(&orig, &dir);
        for seg in &segments(&dir)[keep..] {
            fs::remove_file(seg).unwrap();
        }
        let (mut st, rec) = open(&dir, SMALL_SEGMENTS);
        let last = st.last_index();
        assert!(last >= 45, "keeping {keep}");
        assert_eq!(rec.restored.entries, entries(46..=last, 1), "keeping {keep} segments");
        assert_eq!(rec.restored.hard_state.commit, 45);
        if keep > 0 {
            assert_eq!(rec.restored.hard_state, hs(1, Some(1), 45), "keeping {keep}");
        }
        // The node can append right after what it recovered.
        st.persist(None, &entries(last + 1..=last + 1, 2)).unwrap();
        drop(st);
        let rec = reopen(&dir, SMALL_SEGMENTS).unwrap();
        assert_eq!(rec.restored.entries.last().unwrap(), &entry(last + 1, 2), "keeping {keep}");
    }
}
