//! The simulated disk: a [`Store`] that keeps what `raft-storage` would keep, step by
//! step, and loses what a real disk loses when the machine dies.
//!
//! Each storage call is carried out as the durable steps `raft-storage` takes, in its
//! order (see `Storage::persist`, `install_snapshot`, `compact`):
//!
//! * `persist`: on a conflict, the hard-state file with a commit index below the cut
//!   (one step), then the cut (one step); then ONE write of the hard-state record
//!   followed by the entries, and one fsync (one step). A crash during that write keeps
//!   any prefix of its records, as a WAL whose tail was torn;
//! * `install_snapshot`: the batch's term and vote (one step; its commit index never
//!   before the snapshot), the snapshot file (one step), the old log removed newest
//!   first (one step: a crash keeps a prefix of it), a fresh segment whose hard-state
//!   record has the snapshot's index as commit index (one step);
//! * a received snapshot's chunks are not durable steps (a temporary file, never
//!   synced: a crash loses them); sealing it is one step (its fsync);
//! * a compaction is written in the background (the node forks a writer): the image is
//!   taken when it starts and lands a few turns later, when the replica polls; a crash
//!   before that loses it. Landing it is the snapshot's rename (one step), then the
//!   covered log prefix is dropped (one step).
//!
//! The simulator arms a crash before a turn ([`SimDisk::arm_crash`]): after that many
//! steps the next one is cut short and every later call fails, as the storage of a dead
//! process would. The node is then thrown away and restarted from [`DiskImage::recover`],
//! which mirrors `Storage::open`: the newest snapshot, the log after it (discarded if it
//! continues another history: an interrupted install), the hard state, the commit index
//! clamped into the log.
//!
//! Everything written is also noted in a journal that the simulator drains after every
//! turn to feed its checkers (log matching, vote safety, snapshots).

use crate::rng::digest;
use raft_core::{Entry, EntryData, HardState, Index, Restored, Snapshot, SnapshotChunk, SnapshotMeta, Term};
use raft_replica::memory::{self, Incoming};
use raft_replica::{Compaction, Store};
use raft_storage::StorageError;
use std::cell::RefCell;
use std::io::{self, Cursor, Write};
use std::rc::Rc;
use std::time::Duration;

/// Polls a background snapshot stays unfinished at most: long enough that turns,
/// messages and crashes happen while it is being written.
const MAX_COMPACTION_POLLS: u64 = 6;

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Contiguous entries; normally starting right after the snapshot, lower after an
    /// install that a crash interrupted before the log was reset.
    pub log: Vec<Entry>,
}

impl DiskImage {
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    pub fn snapshot_term(&self) -> Term {
        self.snapshot.as_ref().map_or(0, |s| s.meta.term)
    }

    fn first_log_index(&self) -> Index {
        self.log.first().map_or(self.snapshot_index() + 1, |e| e.index)
    }

    /// The last index a restart would see (the log past the snapshot, or the snapshot).
    pub fn last_index(&self) -> Index {
        self.log.last().map_or(0, |e| e.index).max(self.snapshot_index())
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let first = self.first_log_index();
        if index < first || index <= self.snapshot_index() {
            return None;
        }
        self.log.get((index - first) as usize)
    }

    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        self.entry(index).map(|e| e.term)
    }

    /// What a restart reads back: `Storage::open`'s rules. Like `Storage::open`, it
    /// also tidies the disk to what it returns (discarded entries are gone for good).
    pub fn recover(&mut self) -> Result<Restored, String> {
        let s = self.snapshot_index();
        let first = self.first_log_index();
        if first > s + 1 {
            return Err(format!("the log starts at {first}, after the snapshot at {s}: a gap"));
        }
        // Storage::open's continuity rule, as it is: an entry at the snapshot's index must
        // have its term; without one, the first entry after it must not go back in term.
        let at_snapshot = self.log.iter().find(|e| e.index == s).map(|e| e.term);
        let after: Vec<Entry> = self.log.iter().filter(|e| e.index > s).cloned().collect();
        let continues = s == 0
            || match at_snapshot {
                Some(t) => t == self.snapshot_term(),
                None => after.first().is_none_or(|e| e.term >= self.snapshot_term()),
            };
        let entries = if continues { after } else { Vec::new() };
        let last = entries.last().map_or(s, |e| e.index);
        let mut hard_state = self.hard_state;
        hard_state.commit = hard_state.commit.min(last).max(s);
        self.log = entries.clone();
        self.hard_state = hard_state;
        Ok(Restored { hard_state, snapshot: self.snapshot.as_ref().map(|s| s.meta.clone()), entries })
    }

    fn write_entry(&mut self, e: &Entry) {
        let first = self.first_log_index();
        assert!(e.index >= first && e.index <= self.last_index() + 1, "the store was handed entry {e} out of place");
        self.log.truncate((e.index - first) as usize);
        self.log.push(e.clone());
    }
}

/// One thing written, for the checkers.
#[derive(Clone, Debug)]
pub enum DiskWrite {
    HardState { old: HardState, new: HardState },
    Entry { index: Index, term: Term, prev_term: Option<Term>, digest: u64 },
    Snapshot { index: Index, term: Term, digest: u64, installed: bool },
}

pub fn entry_digest(e: &Entry) -> u64 {
    match &e.data {
        EntryData::Noop => 0x6e6f_6f70,
        EntryData::Command(c) => digest(c),
        EntryData::Config(m) => {
            let ids: Vec<u8> = m.voters.iter().chain([&0]).chain(&m.learners).flat_map(|n| n.to_le_bytes()).collect();
            digest(&ids) ^ 0x636f_6e66
        }
    }
}

/// The state behind a disk: shared by the simulator (which keeps it across crashes and
/// reads it in its checkers) and the [`SimDisk`] handle the running replica owns.
#[derive(Debug, Default)]
pub struct DiskState {
    pub image: DiskImage,
    pub journal: Vec<DiskWrite>,
    /// Steps still allowed before the armed crash, and which prefix a torn write keeps.
    crash_in: Option<u32>,
    torn_seed: u64,
    crashed: bool,
    /// A snapshot arriving from the leader (volatile: a temporary file never synced),
    /// and whether it was sealed.
    incoming: Incoming,
    /// A background compaction: its image, and the polls left before it lands.
    writing: Option<(Snapshot, u64)>,
    /// Planted bug: an install writes the batch's commit index before the snapshot.
    #[cfg(feature = "bugs")]
    pub commit_before_snapshot: bool,
}

impl DiskState {
    /// A crash after `steps` more durable steps; `torn_seed` picks what a torn write keeps.
    pub fn arm_crash(&mut self, steps: u32, torn_seed: u64) {
        self.crash_in = Some(steps);
        self.torn_seed = torn_seed;
    }

    pub fn disarm(&mut self) {
        self.crash_in = None;
    }

    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// The machine restarted: the disk works again. What was in flight (an incoming
    /// snapshot, a background writer) died with the process.
    pub fn reboot(&mut self) {
        self.crashed = false;
        self.crash_in = None;
        self.incoming.discard();
        self.writing = None;
    }

    /// Starts a durable step: `false` means the crash strikes now.
    fn step(&mut self) -> bool {
        match &mut self.crash_in {
            Some(0) => {
                self.crash_in = None;
                self.crashed = true;
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }

    fn dead() -> StorageError {
        StorageError::Poisoned { reason: "simulated crash".into() }
    }

    fn write_hard_state(&mut self, hs: HardState) {
        let old = self.image.hard_state;
        self.image.hard_state = hs;
        self.journal.push(DiskWrite::HardState { old, new: hs });
    }

    fn write_entry(&mut self, e: &Entry) {
        let prev_term = self.image.term_at(e.index - 1);
        self.image.write_entry(e);
        self.journal.push(DiskWrite::Entry { index: e.index, term: e.term, prev_term, digest: entry_digest(e) });
    }

    fn write_snapshot(&mut self, snap: &Snapshot, installed: bool) {
        self.image.snapshot = Some(snap.clone());
        let (index, term, digest) = (snap.meta.index, snap.meta.term, digest(&snap.data));
        self.journal.push(DiskWrite::Snapshot { index, term, digest, installed });
    }

    /// One WAL write: the hard state record (if any), then the entries; torn if the
    /// crash strikes.
    fn write_records(&mut self, hs: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        let records = usize::from(hs.is_some()) + entries.len();
        let keep = if self.step() { records } else { (self.torn_seed % (records as u64 + 1)) as usize };
        let mut left = keep;
        if let Some(hs) = hs {
            if left == 0 {
                return Err(Self::dead());
            }
            left -= 1;
            self.write_hard_state(*hs);
        }
        for e in entries.iter().take(left) {
            self.write_entry(e);
        }
        if self.crashed {
            return Err(Self::dead());
        }
        Ok(())
    }

    /// `reset_log`: the old segments go newest first (a crash part-way keeps a prefix of
    /// the old log), then a fresh segment starts with the hard state, its commit index
    /// the snapshot's.
    fn reset_log(&mut self) -> Result<(), StorageError> {
        if !self.step() {
            let keep = (self.torn_seed % (self.image.log.len() as u64 + 1)) as usize;
            self.image.log.truncate(keep);
            return Err(Self::dead());
        }
        let s = self.image.snapshot_index();
        self.image.log.clear();
        if !self.step() {
            return Err(Self::dead());
        }
        let hs = self.image.hard_state;
        self.write_hard_state(HardState { commit: hs.commit.max(s), ..hs });
        Ok(())
    }
}

/// The handle a replica owns; the simulator keeps another to the same [`DiskState`].
pub struct SimDisk(pub Rc<RefCell<DiskState>>);

impl Store for SimDisk {
    fn persist(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed {
            return Err(DiskState::dead());
        }
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        if let Some(first) = entries.first().map(|e| e.index) {
            if first <= d.image.last_index() {
                // The hard state file, with a commit index below the cut, then the cut:
                // two steps, like `truncate_suffix`.
                let hs = *hard_state.unwrap_or(&d.image.hard_state);
                let capped = HardState { commit: hs.commit.min(first - 1), ..hs };
                if !d.step() {
                    return Err(DiskState::dead());
                }
                if capped != d.image.hard_state {
                    d.write_hard_state(capped);
                }
                if !d.step() {
                    return Err(DiskState::dead());
                }
                let start = d.image.first_log_index();
                d.image.log.truncate(first.saturating_sub(start) as usize);
            }
        }
        d.write_records(hard_state, entries)
    }

    fn install_snapshot(&mut self, meta: &SnapshotMeta, hard_state: &HardState) -> Result<(), StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed {
            return Err(DiskState::dead());
        }
        let snap = d.incoming.take_sealed(meta);
        let cur = d.image.hard_state;
        #[allow(unused_mut)]
        let mut first = HardState { commit: hard_state.commit.min(cur.commit), ..*hard_state };
        #[cfg(feature = "bugs")]
        if d.commit_before_snapshot {
            first = *hard_state;
        }
        if first != cur {
            d.write_records(Some(&first), &[])?;
        }
        if !d.step() {
            return Err(DiskState::dead());
        }
        d.write_snapshot(&snap, true);
        if !d.step() {
            return Err(DiskState::dead());
        }
        d.reset_log()
    }

    type Reader = Cursor<Vec<u8>>;

    fn snapshot_reader(&mut self) -> Result<Option<Cursor<Vec<u8>>>, StorageError> {
        Ok(self.0.borrow().image.snapshot.as_ref().map(|s| Cursor::new(s.data.clone())))
    }

    fn snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<(Vec<u8>, bool), StorageError> {
        let d = self.0.borrow();
        let snap = d.image.snapshot.as_ref().expect("snapshot_chunk without a snapshot");
        Ok(memory::chunk(snap, meta, offset, len))
    }

    fn snapshot_bytes(&self) -> u64 {
        self.0.borrow().image.snapshot.as_ref().map_or(0, |s| s.data.len() as u64)
    }

    fn receive_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed {
            return Err(DiskState::dead());
        }
        d.incoming.receive(chunk);
        Ok(())
    }

    fn finish_received(&mut self, meta: &SnapshotMeta) -> Result<Cursor<Vec<u8>>, StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed || !d.step() {
            return Err(DiskState::dead());
        }
        Ok(Cursor::new(d.incoming.seal(meta).to_vec()))
    }

    fn discard_received(&mut self) {
        self.0.borrow_mut().incoming.discard();
    }

    fn begin_compaction(
        &mut self,
        meta: &SnapshotMeta,
        write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed {
            return Err(DiskState::dead());
        }
        assert!(d.writing.is_none(), "a second background snapshot");
        let mut data = Vec::new();
        write(&mut data).expect("writing into memory cannot fail");
        // How long the writer takes: fixed by the image, so a seed replays exactly.
        let polls = digest(&data) % (MAX_COMPACTION_POLLS + 1);
        d.writing = Some((Snapshot { meta: meta.clone(), data }, polls));
        Ok(())
    }

    fn poll_compaction(&mut self, block: bool) -> Result<Option<Compaction>, StorageError> {
        let mut d = self.0.borrow_mut();
        if d.crashed {
            return Err(DiskState::dead());
        }
        match &mut d.writing {
            None => return Ok(None),
            Some((_, polls)) if *polls > 0 && !block => {
                *polls -= 1;
                return Ok(None);
            }
            Some(_) => {}
        }
        let (snap, _) = d.writing.take().expect("matched above");
        let meta = snap.meta.clone();
        if meta.index <= d.image.snapshot_index() {
            return Ok(Some(Compaction::Stale { meta }));
        }
        // The rename, then the covered segments' removal: two steps.
        if !d.step() {
            return Err(DiskState::dead());
        }
        d.write_snapshot(&snap, false);
        if !d.step() {
            return Err(DiskState::dead());
        }
        let s = meta.index;
        d.image.log.retain(|e| e.index > s);
        let bytes = snap.data.len() as u64;
        Ok(Some(Compaction::Done { meta, bytes, took: Duration::ZERO }))
    }
}
