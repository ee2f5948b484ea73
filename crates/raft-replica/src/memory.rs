//! Snapshots held in memory, for stores that keep everything in memory (the simulator's
//! disk, raft-core's test harness): the bookkeeping of chunks sent and received, written
//! once. `raft-storage` does the same with files.

use raft_core::{Snapshot, SnapshotChunk, SnapshotMeta};

/// Up to `len` bytes of `snap`'s data from `offset`, and whether they reach its end.
/// `meta` must be `snap`'s: the core sends only the current snapshot.
pub fn chunk(snap: &Snapshot, meta: &SnapshotMeta, offset: u64, len: usize) -> (Vec<u8>, bool) {
    assert_eq!(&snap.meta, meta, "the core sends only the current snapshot");
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(snap.data.len());
    let end = start.saturating_add(len).min(snap.data.len());
    (snap.data[start..end].to_vec(), end == snap.data.len())
}

/// A snapshot arriving from the leader: its bytes so far, and whether it was sealed.
#[derive(Clone, Debug, Default)]
pub struct Incoming(Option<(Snapshot, bool)>);

impl Incoming {
    /// Appends a chunk; offset 0 starts a new snapshot. Chunks come in order (the core
    /// accepts only those): anything else is a bug.
    pub fn receive(&mut self, chunk: &SnapshotChunk) {
        if chunk.offset == 0 {
            self.0 = Some((Snapshot { meta: chunk.meta.clone(), data: Vec::new() }, false));
        }
        let Some((snap, false)) = &mut self.0 else { panic!("a chunk at {} of no snapshot", chunk.offset) };
        assert!(snap.meta == chunk.meta && snap.data.len() as u64 == chunk.offset, "chunks out of order");
        snap.data.extend_from_slice(&chunk.data);
    }

    /// The last chunk arrived: seals the snapshot and returns its bytes.
    pub fn seal(&mut self, meta: &SnapshotMeta) -> &[u8] {
        let Some((snap, sealed)) = &mut self.0 else { panic!("finish_received without a snapshot arriving") };
        assert_eq!(&snap.meta, meta, "another snapshot is arriving");
        *sealed = true;
        &snap.data
    }

    /// The sealed snapshot `meta`, to install.
    pub fn take_sealed(&mut self, meta: &SnapshotMeta) -> Snapshot {
        match self.0.take() {
            Some((snap, true)) if snap.meta == *meta => snap,
            _ => panic!("install_snapshot of {}@{} that was not received and sealed", meta.index, meta.term),
        }
    }

    /// Whether nothing is arriving.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// Drops what arrived (it did not verify, or the process died).
    pub fn discard(&mut self) {
        self.0 = None;
    }
}
