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
//! The child does every slow step of a compaction, in the order recovery relies on: it
//! streams the image into a temporary file (syncing every few MiB), fsyncs it, renames it
//! into place and fsyncs the directory; only then does it remove the log segments it
//! covers and the snapshots the parent retired earlier, best effort (recovery removes
//! such leftovers anyway), and exit 0. An exit 0 means the snapshot is durable and in place. The parent, seeing
//! the child exit ([`crate::Storage::poll_compaction`]), only updates its bookkeeping: no
//! fsync and no unlink of large files on the event loop (measured at 1M keys, those cost
//! 50-170 ms a snapshot there). The snapshot this one replaces stays on disk until the
//! next writer removes it: the parent still has it open (laggards may be reading it), and
//! closing the last descriptor of an unlinked 100 MB file frees its blocks right there,
//! on the event loop (Redis closes such files on a background thread for the same
//! reason); closing it while it is still linked costs nothing. The segments covered were
//! fixed when the child was forked:
//! the parent only appends to the last segment, and a snapshot install meanwhile (which
//! replaces every segment) makes this snapshot stale, so nothing the child removes is
//! still needed. The child:
//! * closes its copy of the directory lock's descriptor and every other inherited one
//!   (sockets, the poll), and asks the kernel to kill it
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

/// What the writer is to do besides writing.
pub(crate) struct Plan<'a> {
    pub(crate) snap_dir: &'a Path,
    pub(crate) wal_dir: &'a Path,
    pub(crate) meta: &'a SnapshotMeta,
    /// Older snapshot files the parent no longer has open, to remove.
    pub(crate) retired: Vec<PathBuf>,
    /// The log segments wholly covered by this snapshot.
    pub(crate) covered: Vec<PathBuf>,
    pub(crate) lock_fd: RawFd,
}

/// The running writer.
pub(crate) struct Writer {
    pub(crate) pid: nix::unistd::Pid,
    pub(crate) meta: SnapshotMeta,
    pub(crate) tmp: PathBuf,
    /// Where the child renames the snapshot.
    pub(crate) path: PathBuf,
    /// First indexes of the segments the child removes.
    pub(crate) covered: Vec<raft_core::Index>,
    /// Retired snapshot files the child removes (given back if it does not get there).
    pub(crate) retired: Vec<PathBuf>,
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

/// Forks a child that carries out `plan`: writes `meta`'s snapshot with `write`, puts it
/// in place durably, then removes what it replaces (see the module docs). It exits 0 once
/// the snapshot is in place, 1 if it failed before (printing why to stderr; nothing
/// changed then but a temporary file, which it removes).
pub(crate) fn spawn(
    plan: Plan<'_>,
    covered: Vec<raft_core::Index>,
    write: &dyn Fn(&mut dyn Write) -> io::Result<()>,
) -> Result<Writer, StorageError> {
    let name = snapshot::file_name(plan.meta.index, plan.meta.term);
    let tmp = plan.snap_dir.join(format!("{name}{}", snapshot::WRITING_SUFFIX));
    let path = plan.snap_dir.join(&name);
    let parent = nix::unistd::getpid();
    // SAFETY: the node is single-threaded, so the child's copy of the process holds no
    // lock another thread held; the child runs only `child` and leaves with `_exit`.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&plan, parent, write))).unwrap_or(2);
            // SAFETY: ends the child without running the parent's destructors (the
            // lock's `Drop` would unlock the directory for the parent too).
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            let retired = plan.retired.clone();
            Ok(Writer { pid: child, meta: plan.meta.clone(), tmp, path, covered, retired, started: Instant::now() })
        }
        Err(e) => Err(StorageError::io(plan.snap_dir, io::Error::from(e))),
    }
}

fn child(plan: &Plan<'_>, parent: nix::unistd::Pid, write: &dyn Fn(&mut dyn Write) -> io::Result<()>) -> i32 {
    // SAFETY: plain system calls on this process; the descriptor is the child's copy.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::close(plan.lock_fd);
        libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICE);
        // Every other inherited descriptor too (the listening socket, peer and client
        // streams, the poll): a node killed while its writer runs must refuse connections
        // at once, not have the writer hold its socket open and reset them later.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
    }
    if nix::unistd::getppid() != parent {
        return 1; // the node died before the line above took effect
    }
    let meta = plan.meta;
    let result = (|| -> Result<(), StorageError> {
        let mut w = FileWriter::create(plan.snap_dir, meta, snapshot::WRITING_SUFFIX)?;
        w.sync_incrementally();
        write(&mut w).at(plan.snap_dir)?;
        let sealed = w.seal()?;
        let dir = std::fs::File::open(plan.snap_dir).at(plan.snap_dir)?;
        sealed.commit(&dir, plan.snap_dir)?;
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("snapshot writer for index={} failed: {e}", meta.index);
        return 1;
    }
    // In place and durable. What it replaces goes now, best effort: a file left behind is
    // a leftover that recovery removes.
    for old in &plan.retired {
        let _ = std::fs::remove_file(old);
    }
    for seg in &plan.covered {
        let _ = std::fs::remove_file(seg);
    }
    if let Ok(dir) = std::fs::File::open(plan.wal_dir) {
        let _ = dir.sync_all();
    }
    0
}
