//! `Request::Log`: a bounded page of this node's in-memory log for `raft-cli log N`.
//! The work is proportional to the page (at most `MAX_LOG_ENTRIES_PER_REQUEST` entries,
//! each O(1) to find), never to the log: it runs on the event loop.

use raft_core::{Index, RawNode};
use raft_wire::logview::{LogEntryView, LogPage, MAX_LOG_ENTRIES_PER_REQUEST, MAX_LOG_REPLY_BYTES};
use raft_wire::Response;

/// The page of `raft`'s log from `from` (`None`: the last `limit` entries); `applied` is
/// the state machine's applied index.
pub fn page(raft: &RawNode, applied: Index, from: Option<Index>, limit: u32) -> Response {
    if limit == 0 || limit > MAX_LOG_ENTRIES_PER_REQUEST {
        return Response::Invalid {
            reason: format!("a log page holds 1 to {MAX_LOG_ENTRIES_PER_REQUEST} entries, not {limit}"),
        };
    }
    let (snapshot_index, snapshot_term) = raft.snapshot().map_or((0, 0), |s| (s.index, s.term));
    let first_index = snapshot_index + 1;
    let last_index = raft.last_index();
    let start = match from {
        Some(i) => i.max(first_index),
        None => last_index.saturating_sub(limit as Index - 1).max(first_index),
    };
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut index = start;
    while index <= last_index && entries.len() < limit as usize && bytes < MAX_LOG_REPLY_BYTES {
        let e = raft.entry(index).expect("every index between the snapshot and the last is in the log");
        let view = LogEntryView::of(e);
        bytes += view.size_bytes();
        entries.push(view);
        index += 1;
    }
    Response::Log(LogPage {
        first_index,
        last_index,
        commit: raft.commit_index(),
        applied,
        snapshot_index,
        snapshot_term,
        entries,
        more: index <= last_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Config, Entry, EntryData, HardState, Restored, SnapshotMeta};
    use raft_kv::{Command, WriteOp};
    use raft_wire::logview::{EntryKind, ShownOp, MAX_SHOWN_BYTES};

    fn node(snap: Index, last: Index) -> RawNode {
        let entries = (snap + 1..=last)
            .map(|index| {
                let data = if index % 2 == 1 {
                    EntryData::Noop
                } else {
                    let value = vec![b'v'; index as usize * 10];
                    EntryData::Command(
                        Command { session: 7, seq: index, op: WriteOp::Set { key: format!("k{index}"), value } }
                            .encode(),
                    )
                };
                Entry { index, term: 2, data }
            })
            .collect();
        let snapshot = (snap > 0).then(|| SnapshotMeta { index: snap, term: 1, voters: vec![1], learners: vec![] });
        let restored = Restored { hard_state: HardState { term: 2, vote: None, commit: last - 1 }, snapshot, entries };
        RawNode::new(Config::new(1, vec![1], 1), restored).unwrap()
    }

    fn page_of(raft: &RawNode, from: Option<Index>, limit: u32) -> LogPage {
        match page(raft, raft.commit_index(), from, limit) {
            Response::Log(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pages_start_after_the_snapshot_and_stop_at_the_limit() {
        let raft = node(10, 30);
        let p = page_of(&raft, Some(1), 5);
        assert_eq!((p.first_index, p.last_index, p.snapshot_index, p.snapshot_term), (11, 30, 10, 1));
        assert_eq!(p.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [11, 12, 13, 14, 15], "compacted ones gone");
        assert!(p.more);
        let p = page_of(&raft, None, 3);
        assert_eq!(p.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [28, 29, 30], "the tail by default");
        assert!(!p.more);
        assert!(page_of(&raft, Some(31), 3).entries.is_empty(), "past the end: nothing");
        assert_eq!(p.commit, 29);
    }

    #[test]
    fn writes_are_decoded_and_values_cut() {
        let raft = node(0, 20);
        let p = page_of(&raft, Some(1), 20);
        assert_eq!(p.entries[0].kind, EntryKind::Noop);
        match &p.entries[19].kind {
            EntryKind::Write { session: 7, seq: 20, op: ShownOp::Set { key, value } } => {
                assert_eq!(key.bytes, b"k20");
                assert_eq!((value.bytes.len(), value.len), (MAX_SHOWN_BYTES, 200));
                assert!(value.is_cut());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_limit_is_refused() {
        let raft = node(0, 4);
        for limit in [0, MAX_LOG_ENTRIES_PER_REQUEST + 1] {
            assert!(matches!(page(&raft, 0, None, limit), Response::Invalid { .. }), "{limit}");
        }
    }
}
