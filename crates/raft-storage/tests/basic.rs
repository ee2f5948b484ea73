//! Round trips, restarts after every kind of write, locking.

mod common;
use common::*;
use raft_storage::{Storage, StorageError, StorageOptions};
use std::fs;
use std::io::Read;

#[test]
fn fresh_directory_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node-1");
    let (st, rec) = open(&dir, SMALL_SEGMENTS);
    assert_eq!(rec.restored, raft_core::Restored::default());
    assert_eq!((st.first_index(), st.last_index()), (1, 0));
    assert!(dir.join("wal").is_dir() && dir.join("snap").is_dir());
}

/// A power cut after the first vote must not drop the node's directories: each one
/// created is fsynced into its parent, and only the ones created.
#[test]
fn created_directories_are_fsynced_into_their_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let deep = root.join("a/b/c");
    let synced = raft_storage::create_dir_durable(&deep).unwrap();
    assert_eq!(synced, vec![root.to_path_buf(), root.join("a"), root.join("a/b")]);
    assert!(deep.is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&deep).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(raft_storage::create_dir_durable(&deep).unwrap(), Vec::<std::path::PathBuf>::new(), "nothing new");
    std::fs::write(root.join("file"), b"x").unwrap();
    assert!(raft_storage::create_dir_durable(&root.join("file")).is_err(), "a file is not a directory");

    // Storage::open goes through it for the node directory, wal/ and snap/.
    let node = root.join("node-1");
    let (_st, rec) = open(&node, SMALL_SEGMENTS);
    let note = rec.notes.iter().find(|n| n.starts_with("created ")).unwrap_or_else(|| panic!("{:?}", rec.notes));
    for d in [node.clone(), node.join("wal"), node.join("snap")] {
        assert!(note.contains(&d.display().to_string()), "{note}");
    }
    drop(_st);
    let (_st, rec) = open(&node, SMALL_SEGMENTS);
    assert!(!rec.notes.iter().any(|n| n.starts_with("created ")), "a reopen creates nothing: {:?}", rec.notes);
}

#[test]
fn persist_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut st, _) = open(dir, SMALL_SEGMENTS);
        st.persist(Some(&hs(1, Some(1), 0)), &[]).unwrap();
        st.persist(None, &entries(1..=3, 1)).unwrap();
        st.persist(Some(&hs(2, Some(3), 2)), &entries(4..=30, 2)).unwrap();
        st.persist(Some(&hs(2, Some(3), 20)), &[]).unwrap();
        assert_eq!(st.last_index(), 30);
        assert_eq!(st.segment_paths().len(), 2, "a batch past the segment size starts a new one");
    }
    let (st, rec) = open(dir, SMALL_SEGMENTS);
    let mut want = entries(1..=3, 1);
    want.extend(entries(4..=30, 2));
    assert_eq!(rec.restored.entries, want);
    assert_eq!(rec.restored.hard_state, hs(2, Some(3), 20));
    assert_eq!((st.first_index(), st.last_index()), (1, 30));
    assert!(rec.notes.iter().any(|n| n.contains("recovered 30 entries")), "{:?}", rec.notes);
}

#[test]
fn default_options_with_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions::default();
    assert!(opts.fsync);
    assert_eq!(opts.segment_bytes, 64 << 20);
    {
        let (mut st, _) = open(tmp.path(), opts);
        st.persist(Some(&hs(1, None, 0)), &entries(1..=5, 1)).unwrap();
    }
    let (_, rec) = open(tmp.path(), opts);
    assert_eq!(rec.restored.entries, entries(1..=5, 1));
}

#[test]
fn second_open_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let (_st, _) = open(tmp.path(), SMALL_SEGMENTS);
    match Storage::open(tmp.path(), SMALL_SEGMENTS) {
        Err(StorageError::Locked { path }) => {
            assert_eq!(path, tmp.path());
            let msg = StorageError::Locked { path }.to_string();
            assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        }
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(_st);
    open(tmp.path(), SMALL_SEGMENTS);
}

#[test]
fn conflict_truncates_within_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions { fsync: true, segment_bytes: 1 << 20 };
    {
        let (mut st, _) = open(tmp.path(), opts);
        st.persist(Some(&hs(1, Some(1), 0)), &entries(1..=10, 1)).unwrap();
        st.persist(Some(&hs(2, Some(2), 3)), &entries(6..=8, 2)).unwrap();
        assert_eq!(st.last_index(), 8);
        st.persist(None, &entries(9..=9, 2)).unwrap();
    }
    let (mut st, rec) = open(tmp.path(), opts);
    let mut want = entries(1..=5, 1);
    want.extend(entries(6..=9, 2));
    assert_eq!(rec.restored.entries, want);
    assert_eq!(rec.restored.hard_state, hs(2, Some(2), 3));
    // And again after the restart, conflicting with what was written after the truncation.
    st.persist(Some(&hs(3, None, 3)), &entries(7..=7, 3)).unwrap();
    drop(st);
    let (_, rec) = open(tmp.path(), opts);
    want.truncate(6);
    want.push(entry(7, 3));
    assert_eq!(rec.restored.entries, want);
    assert_eq!(rec.restored.hard_state, hs(3, None, 3));
}

#[test]
fn conflict_truncates_across_segments_and_keeps_the_vote() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        for i in 1..=40 {
            st.persist(None, &entries(i..=i, 1)).unwrap();
        }
        // The vote is written in the last segment; the truncation deletes that segment.
        st.persist(Some(&hs(2, Some(2), 0)), &[]).unwrap();
        let before = st.segment_paths().len();
        assert!(before >= 4);
        st.persist(None, &entries(5..=6, 2)).unwrap();
        assert!(st.segment_paths().len() < before);
        assert_eq!(st.last_index(), 6);
    }
    let (mut st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    let mut want = entries(1..=4, 1);
    want.extend(entries(5..=6, 2));
    assert_eq!(rec.restored.entries, want);
    assert_eq!(rec.restored.hard_state, hs(2, Some(2), 0));
    // Appending after the truncation crosses segments again.
    for i in 7..=30 {
        st.persist(None, &entries(i..=i, 2)).unwrap();
    }
    drop(st);
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    want.extend(entries(7..=30, 2));
    assert_eq!(rec.restored.entries, want);
}

#[test]
fn conflict_at_the_first_entry_of_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    for i in 1..=20 {
        st.persist(None, &entries(i..=i, 1)).unwrap();
    }
    let second = st.segment_paths()[1].clone();
    let first_of_second: u64 = second.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    st.persist(None, &entries(first_of_second..=first_of_second, 2)).unwrap();
    drop(st);
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    let mut want = entries(1..=first_of_second - 1, 1);
    want.push(entry(first_of_second, 2));
    assert_eq!(rec.restored.entries, want);
}

#[test]
fn compaction_deletes_whole_segments_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    write_sixty_in_segments(&mut st);
    let before = segments(tmp.path());
    st.compact(&snap(35, 1, b"state at 35")).unwrap();
    let after = segments(tmp.path());
    assert!(after.len() < before.len());
    assert!(after.iter().all(|p| before.contains(p)), "no segment rewritten or created");
    let first_kept: u64 = after[0].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(first_kept <= 36);
    assert_eq!((st.first_index(), st.last_index()), (36, 60));
    drop(st);

    let (mut st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(snap(35, 1, b"state at 35").meta));
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(35, 1, b"state at 35")));
    assert_eq!(rec.restored.entries, entries(36..=60, 1));
    assert_eq!(rec.restored.hard_state, hs(1, Some(1), 60));
    // A second compaction replaces the snapshot file.
    st.compact(&snap(60, 1, b"state at 60")).unwrap();
    assert_eq!(snapshots(tmp.path()).len(), 1);
    assert_eq!(st.last_index(), 60);
    st.persist(None, &entries(61..=62, 1)).unwrap();
    drop(st);
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot.unwrap().index, 60);
    assert_eq!(rec.restored.entries, entries(61..=62, 1));
    assert_eq!(rec.restored.hard_state, hs(1, Some(1), 60));
}

#[test]
fn compaction_up_to_the_last_index_then_restart_and_append() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(1, None, 10)), &entries(1..=10, 1)).unwrap();
        st.compact(&snap(10, 1, b"ten")).unwrap();
        assert_eq!((st.first_index(), st.last_index()), (11, 10));
    }
    let (mut st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert!(rec.restored.entries.is_empty());
    assert_eq!((st.first_index(), st.last_index()), (11, 10));
    st.persist(None, &entries(11..=12, 1)).unwrap();
    drop(st);
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.entries, entries(11..=12, 1));
    assert_eq!(rec.restored.hard_state, hs(1, None, 10));
}

#[test]
fn install_snapshot_discards_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(2, Some(2), 3)), &entries(1..=20, 1)).unwrap();
        // The leader's snapshot ends at 15 with term 2: our entries 15.. conflict.
        st.install_snapshot_bytes(&snap(15, 2, b"leader state"), &hs(2, Some(2), 3)).unwrap();
        assert_eq!((st.first_index(), st.last_index()), (16, 15));
        assert_eq!(segments(tmp.path()).len(), 1);
        st.persist(Some(&hs(2, Some(2), 15)), &entries(16..=18, 2)).unwrap();
    }
    let (mut st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(snap(15, 2, b"leader state").meta));
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(15, 2, b"leader state")));
    assert_eq!(rec.restored.entries, entries(16..=18, 2));
    assert_eq!(rec.restored.hard_state, hs(2, Some(2), 15));
    // A snapshot far past the log (a lagging follower).
    // The batch that carried it also moved the term: the two are stored together.
    st.install_snapshot_bytes(&snap(100, 3, b"far ahead"), &hs(3, None, 15)).unwrap();
    drop(st);
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot.unwrap().index, 100);
    assert!(rec.restored.entries.is_empty());
    assert_eq!(rec.restored.hard_state, hs(3, None, 100));
    assert_eq!(snapshots(tmp.path()).len(), 1);
    assert_eq!((st.first_index(), st.last_index()), (101, 100));
}

/// A snapshot is stored with the hard state of the batch that carried it, so a node
/// restarts with a term at least the snapshot's (the crash windows inside the install
/// are raft-sim's business: its disk mirrors this order step by step).
#[test]
fn install_snapshot_stores_the_hard_state_first() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(1, Some(1), 2)), &entries(1..=3, 1)).unwrap();
        st.install_snapshot_bytes(&snap(40, 5, b"from a leader of term 5"), &hs(5, None, 2)).unwrap();
    }
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    let restored = rec.restored;
    assert_eq!(restored.hard_state.term, 5, "the term must travel with the snapshot");
    assert_eq!(restored.snapshot.as_ref().unwrap().term, 5);
    // raft-core accepts what was recovered.
    let config = raft_core::Config::new(1, vec![1, 2, 3], 7);
    assert!(raft_core::RawNode::new(config, restored).is_ok());
}

/// A snapshot arrives in chunks (bounded memory), is finished and read back through its
/// checksummed reader, then installed; a restart finds exactly its bytes.
#[test]
fn received_snapshot_in_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = snap(50, 4, b"").meta;
    let mut want = Vec::new();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(Some(&hs(4, None, 0)), &entries(1..=5, 1)).unwrap();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..10_000u32).map(|j| (i * 7 + j) as u8).collect();
            st.receive_chunk(&meta, want.len() as u64, &chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        let mut back = Vec::new();
        st.finish_received(&meta).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, want, "the reader gives back what arrived");
        assert_eq!(st.last_index(), 5, "nothing changes before the install");
        st.install_snapshot(&meta, &hs(4, None, 0)).unwrap();
        assert_eq!((st.first_index(), st.last_index()), (51, 50));
        let (chunk, done) = st.snapshot_chunk(&meta, 1_999_990, 100).unwrap();
        assert_eq!((chunk.as_slice(), done), (&want[1_999_990..], true));
        st.persist(None, &entries(51..=51, 4)).unwrap();
    }
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(meta.clone()));
    let s = st.load_snapshot().unwrap().unwrap();
    assert_eq!(s.meta, meta);
    assert_eq!(s.data, want);
    assert_eq!(rec.restored.entries, entries(51..=51, 4));
}

/// A received snapshot that is dropped (it did not verify) leaves nothing behind and
/// changes nothing.
#[test]
fn discarded_incoming_snapshot_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    st.persist(None, &entries(1..=5, 1)).unwrap();
    let meta = snap(9, 1, b"").meta;
    st.receive_chunk(&meta, 0, b"partial").unwrap();
    drop(st.finish_received(&meta).unwrap());
    st.discard_incoming();
    assert!(fs::read_dir(tmp.path().join("snap")).unwrap().next().is_none(), "no file may remain");
    assert_eq!(st.last_index(), 5);
    assert_eq!(st.load_snapshot().unwrap(), None);
}

/// A damaged byte in a snapshot is caught by the streaming reader at the end of the data:
/// the last read fails instead of handing out the bytes.
#[test]
fn snapshot_reader_checks_the_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(None, &entries(1..=20, 1)).unwrap();
        st.compact(&snap(10, 1, &[7; 3000])).unwrap();
        let mut all = Vec::new();
        st.snapshot_reader().unwrap().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, vec![7; 3000]);
        let file = fs::read_dir(tmp.path().join("snap")).unwrap().next().unwrap().unwrap().path();
        let mut bytes = fs::read(&file).unwrap();
        bytes[1500] ^= 4;
        fs::write(&file, bytes).unwrap();
        let err = st.snapshot_reader().unwrap().unwrap().read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}

#[test]
fn one_write_and_one_sync_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StorageOptions { fsync: true, segment_bytes: 1 << 20 };
    let (mut st, _) = open(tmp.path(), opts);
    let before = st.stats();
    for i in 0..20u64 {
        let h = hs(1, Some(1), i * 3);
        st.persist(Some(&h), &entries(i * 3 + 1..=i * 3 + 3, 1)).unwrap();
    }
    let d = st.stats();
    assert_eq!((d.batches - before.batches, d.writes - before.writes, d.syncs - before.syncs), (20, 20, 20));
}

#[test]
fn oversized_entry_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    st.persist(None, &entries(1..=2, 1)).unwrap();
    let end = st.wal_end();
    let big = raft_core::Entry {
        index: 4,
        term: 1,
        data: raft_core::EntryData::Command(vec![1; raft_storage::MAX_RECORD_BYTES]),
    };
    match st.persist(Some(&hs(1, None, 0)), &[entry(3, 1), big]) {
        Err(StorageError::EntryTooLarge { index: 4, .. }) => {}
        other => panic!("expected EntryTooLarge, got {other:?}"),
    }
    assert_eq!((st.wal_end(), st.last_index()), (end, 2));
    st.persist(None, &entries(3..=3, 1)).unwrap();
    drop(st);
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.entries, entries(1..=3, 1));
}

#[test]
#[should_panic(expected = "leaves a gap")]
fn a_gap_in_persisted_entries_is_a_bug() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    st.persist(None, &entries(1..=2, 1)).unwrap();
    let _ = st.persist(None, &entries(4..=4, 1));
}

#[test]
#[should_panic(expected = "terms go backwards")]
fn falling_terms_are_a_bug() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    let _ = st.persist(None, &[entry(1, 2), entry(2, 1)]);
}

#[test]
fn unexpected_files_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        st.persist(None, &entries(1..=2, 1)).unwrap();
    }
    std::fs::write(tmp.path().join("wal/README"), b"notes").unwrap();
    let (_, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.entries.len(), 2);
    assert!(rec.notes.iter().any(|n| n.contains("ignored unexpected file wal/README")), "{:?}", rec.notes);
    assert!(tmp.path().join("wal/README").exists());
}

/// A local snapshot written by a forked child while the log goes on; the parent puts it
/// in place when the child is done, and a restart finds it.
#[test]
fn background_compaction() {
    use raft_storage::Compaction;
    let tmp = tempfile::tempdir().unwrap();
    let meta = snap(35, 1, b"").meta;
    {
        let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
        write_sixty_in_segments(&mut st);
        let before = segments(tmp.path()).len();
        st.begin_compaction(&meta, &|w| w.write_all(b"state at 35")).unwrap();
        assert_eq!(st.compacting(), Some(&meta));
        st.persist(None, &entries(61..=61, 1)).unwrap();
        let done = st.poll_compaction(true).unwrap().unwrap();
        assert!(matches!(done, Compaction::Done { bytes: 11, .. }), "{done:?}");
        assert!(segments(tmp.path()).len() < before, "the writer removed the covered segments");
        assert_eq!(st.compacting(), None);
        assert_eq!((st.first_index(), st.last_index()), (36, 61));
        assert_eq!(st.poll_compaction(true).unwrap(), None, "nothing more to finish");
        // A writer that fails changes nothing.
        let later = snap(50, 1, b"").meta;
        st.begin_compaction(&later, &|_| Err(std::io::Error::other("disk full"))).unwrap();
        let failed = st.poll_compaction(true).unwrap().unwrap();
        assert!(matches!(failed, Compaction::Failed { .. }), "{failed:?}");
        assert_eq!(st.first_index(), 36);
    }
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(meta));
    assert_eq!(st.load_snapshot().unwrap().unwrap().data, b"state at 35");
    assert_eq!(rec.restored.entries, entries(36..=61, 1));
    assert!(!rec.notes.iter().any(|n| n.contains("unfinished")), "the failed writer left nothing: {:?}", rec.notes);
}

/// A snapshot installed from the leader while a local one was being written makes the
/// local one stale: it is dropped, not put in place over the newer one.
#[test]
fn background_compaction_overtaken_by_an_install() {
    use raft_storage::Compaction;
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    st.persist(Some(&hs(1, Some(1), 20)), &entries(1..=20, 1)).unwrap();
    st.begin_compaction(&snap(10, 1, b"").meta, &|w| w.write_all(b"ten")).unwrap();
    st.install_snapshot_bytes(&snap(100, 2, b"leader's"), &hs(2, None, 20)).unwrap();
    let stale = st.poll_compaction(true).unwrap().unwrap();
    assert!(matches!(stale, Compaction::Stale { .. }), "{stale:?}");
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(100, 2, b"leader's")));
    // The stale file is retired, not unlinked on the caller's thread; the next writer,
    // or the next open, removes it.
    assert_eq!(fs::read_dir(tmp.path().join("snap")).unwrap().count(), 2);
    drop(st);
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert!(rec.notes.iter().any(|n| n.contains("removed older snapshot")), "{:?}", rec.notes);
    assert_eq!(fs::read_dir(tmp.path().join("snap")).unwrap().count(), 1, "the stale file is gone");
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(100, 2, b"leader's")));
}

/// A writer that finished (and removed the segments its snapshot covers) before the
/// parent noticed does not trip a snapshot installed from the leader in between: the
/// install finds some segments already gone, and the finished snapshot is stale.
#[test]
fn an_install_after_the_writer_removed_covered_segments() {
    use raft_storage::Compaction;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let (mut st, _) = open(tmp.path(), SMALL_SEGMENTS);
    write_sixty_in_segments(&mut st);
    let first = segments(tmp.path())[0].clone();
    st.begin_compaction(&snap(35, 1, b"").meta, &|w| w.write_all(b"state at 35")).unwrap();
    // Wait (with a deadline) for the writer to have removed the first covered segment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.exists() {
        assert!(Instant::now() < deadline, "the writer never removed {first:?}");
        std::thread::yield_now();
    }
    st.install_snapshot_bytes(&snap(100, 2, b"leader's"), &hs(2, None, 60)).unwrap();
    let stale = st.poll_compaction(true).unwrap().unwrap();
    assert!(matches!(stale, Compaction::Stale { .. }), "{stale:?}");
    drop(st);
    let (st, rec) = open(tmp.path(), SMALL_SEGMENTS);
    assert_eq!(rec.restored.snapshot, Some(snap(100, 2, b"").meta));
    assert_eq!(st.load_snapshot().unwrap(), Some(snap(100, 2, b"leader's")));
}

/// Entries 1..=60 of term 1, one batch each (so they spread over several small
/// segments), all committed.
fn write_sixty_in_segments(st: &mut Storage) {
    st.persist(Some(&hs(1, Some(1), 0)), &[]).unwrap();
    for i in 1..=60 {
        st.persist(None, &entries(i..=i, 1)).unwrap();
    }
    st.persist(Some(&hs(1, Some(1), 60)), &[]).unwrap();
}
