//! Snapshots written off the event loop: a forked child streams the state machine's image
//! into a temporary file while the node goes on (copy-on-write, as Redis does).
//!
//! Why a fork and not a thread: the state machine is an ordinary map that the event loop
//! keeps changing. A thread would need a copy of it first (time and memory proportional
//! to the state, on the event loop) or a persistent map (slower for every write and
//! larger in memory). `fork` gives the child a frozen view of the whole process for the
//! cost of copying page tables (about 2 ms per GiB here); the kernel then copies only the
//! pages the parent writes to while the child runs. The node is single-threaded, so the
//! child inherits no lock held by another thread.
//!
//! The child only writes its temporary file and fsyncs it; the parent renames it into
//! place when it sees the child exit ([`Storage::poll_compaction`]), so every change of
//! the storage's own bookkeeping happens in one process, in one order. The child:
//! * closes its copy of the directory lock's descriptor, and asks the kernel to kill it
//!   if the node dies (`PR_SET_PDEATHSIG`), so a restarted node never waits for an
//!   orphan;
//! * lowers its priority (`nice` 10), so the event loops of the machine's nodes win the
//!   CPU over snapshot encoding;
//! * syncs its file every few MiB as it writes, so the disk never holds a whole
//!   snapshot of dirty pages that the nodes' WAL fsyncs would queue behind;
//! * leaves with `_exit`: no destructor of the parent's objects runs twice.

use crate::error::{IoContext, StorageError};
use crate::snapshot::{self, FileWriter};
use raft_core::SnapshotMeta;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `nice` increment of the snapshot writer: below the event loops, above idle.
const WRITER_NICE: libc::c_int = 10;

/// What became of a snapshot started with [`crate::Storage::begin_compaction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compaction {
    /// Written, renamed into place, the log up to `meta.index` dropped.
    Done { meta: SnapshotMeta, bytes: u64, took: Duration },
    /// A newer snapshot (installed from the leader) became current meanwhile: this one
    /// was discarded.
    Stale { meta: SnapshotMeta },
    /// The writer failed (a full disk, say); nothing changed. A later one may succeed.
    Failed { meta: SnapshotMeta, reason: String },
}

/// The running writer.
pub(crate) struct Writer {
    pub(crate) pid: nix::unistd::Pid,
    pub(crate) meta: SnapshotMeta,
    pub(crate) tmp: PathBuf,
    pub(crate) started: Instant,
}

impl Drop for Writer {
    /// A storage dropped with a writer running (the node stops): end it, reap it.
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Forks a child that writes `meta`'s snapshot into `snap_dir` under its temporary name
/// with `write`, fsyncs it and exits 0 (1 on an error, which it prints to stderr).
pub(crate) fn spawn(
    snap_dir: &Path,
    meta: &SnapshotMeta,
    lock_fd: RawFd,
    write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
) -> Result<Writer, StorageError> {
    let tmp = snap_dir.join(format!("{}{}", snapshot::file_name(meta.index, meta.term), snapshot::WRITING_SUFFIX));
    let parent = nix::unistd::getpid();
    // SAFETY: the node is single-threaded, so the child's copy of the process holds no
    // lock another thread held; the child runs only `child` and leaves with `_exit`.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child(snap_dir, meta, parent, lock_fd, write)
            }))
            .unwrap_or(2);
            // SAFETY: ends the child without running the parent's destructors (the
            // lock's `Drop` would unlock the directory for the parent too).
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            Ok(Writer { pid: child, meta: meta.clone(), tmp, started: Instant::now() })
        }
        Err(e) => Err(StorageError::io(snap_dir, io::Error::from(e))),
    }
}

fn child(
    snap_dir: &Path,
    meta: &SnapshotMeta,
    parent: nix::unistd::Pid,
    lock_fd: RawFd,
    write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
) -> i32 {
    // SAFETY: plain system calls on this process; the descriptor is the child's copy.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::close(lock_fd);
        libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICE);
    }
    if nix::unistd::getppid() != parent {
        return 1; // the node died before the line above took effect
    }
    let result = (|| -> Result<(), StorageError> {
        let mut w = FileWriter::create(snap_dir, meta, snapshot::WRITING_SUFFIX)?;
        w.sync_incrementally();
        write(&mut w).at(snap_dir)?;
        w.seal()?; // the parent renames it into place
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("snapshot writer for index={} failed: {e}", meta.index);
            1
        }
    }
}
