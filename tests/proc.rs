//! A `raft-node` started by the test itself, as systemd or Kubernetes would start it
//! (`raft-node --config PATH --id N`, no supervisor), and the WAL's framing for tests that
//! damage it.
//!
//! [`NodeProc`] is the test's child with `PR_SET_PDEATHSIG` (a crashed test leaves
//! nothing); its stdout and stderr go to files the test reads; drop SIGKILLs it by pid and
//! reaps it, also when the test panics (after printing the output's tail).

use crate::{poll_until, tail};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Lines of a node's output shown when a test fails.
const TAIL_LINES: usize = 30;

/// One process the test started, output to `<out>.out` and `<out>.err`.
pub struct NodeProc {
    child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub pid: u32,
    status: Option<ExitStatus>,
}

impl NodeProc {
    /// Spawns `cmd` (stdin closed) with its output in `<out>.out` / `<out>.err`.
    pub fn spawn(mut cmd: Command, out: &Path) -> NodeProc {
        let stdout = out.with_extension("out");
        let stderr = out.with_extension("err");
        let o = std::fs::File::create(&stdout).expect("create the stdout file");
        let e = std::fs::File::create(&stderr).expect("create the stderr file");
        cmd.stdin(Stdio::null()).stdout(o).stderr(e).env_remove("RAFT_CONFIG");
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the child
        // if the test thread that started it dies.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let pid = child.id();
        NodeProc { child: Some(child), stdout, stderr, pid, status: None }
    }

    pub fn output(&self) -> String {
        std::fs::read(&self.stdout).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn errors(&self) -> String {
        std::fs::read(&self.stderr).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Whether it has exited (and then its status, reaped once).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().ok().flatten();
            }
        }
        self.status
    }

    /// Waits until its stdout contains `text`; panics with its output after `timeout` or if
    /// it exits first.
    pub fn wait_output(&mut self, text: &str, timeout: Duration) {
        let found = poll_until(timeout, || {
            if self.output().contains(text) {
                return Some(true);
            }
            self.exited().map(|_| false)
        });
        match found {
            Some(true) => {}
            Some(false) => {
                panic!("pid {} exited ({:?}) before printing {text:?}\n{}", self.pid, self.status, self.describe())
            }
            None => panic!("pid {} did not print {text:?} within {timeout:?}\n{}", self.pid, self.describe()),
        }
    }

    /// Waits for it to exit on its own; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match poll_until(timeout, || self.exited()) {
            Some(s) => s,
            None => panic!("pid {} still runs after {timeout:?}\n{}", self.pid, self.describe()),
        }
    }

    /// Sends `sig` to it (by pid, only while it is our unreaped child).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.exited().is_none() {
            // SAFETY: kill(2) of our own child, not yet reaped, so the pid is still its.
            unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.status.is_none() {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
        }
    }

    /// Its output's tails, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "--- stdout of pid {} ({}):\n{}\n--- stderr:\n{}",
            self.pid,
            self.stdout.display(),
            tail(&self.stdout, TAIL_LINES),
            tail(&self.stderr, TAIL_LINES)
        )
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== at the failure:\n{}", self.describe());
        }
        self.kill();
    }
}

/// The WAL segments of a node's `wal/` directory (`*.log`), oldest first.
pub fn wal_segments(wal: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(wal)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Offsets and lengths of the records in a segment, by the framing raft-storage documents:
/// `u32 len | u32 crc | len bytes`, little endian, ending at a zero header (the
/// preallocated rest of the file) or at the end of the file.
pub fn wal_record_offsets(segment: &Path) -> Vec<(u64, u32)> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(segment).expect("open segment");
    let size = f.metadata().expect("metadata").len();
    let mut out = Vec::new();
    let mut at = 0u64;
    // Bounded: each record is at least 9 bytes, and at most a million are looked at.
    while at + 8 <= size && out.len() < 1_000_000 {
        let mut header = [0u8; 8];
        f.read_exact_at(&mut header, at).expect("read header");
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        if len == 0 || at + 8 + u64::from(len) > size {
            break;
        }
        out.push((at, len));
        at += 8 + u64::from(len);
    }
    out
}

/// Flips one byte inside the payload of the middle record of `segment` (damage no crash
/// can explain, with valid records after it) and returns the record's offset and the
/// byte's. Panics unless the segment holds at least `min_records`.
pub fn damage_middle_record(segment: &Path, min_records: usize) -> (u64, u64) {
    use std::os::unix::fs::FileExt;
    let records = wal_record_offsets(segment);
    assert!(
        records.len() >= min_records,
        "{} holds {} records, fewer than {min_records}",
        segment.display(),
        records.len()
    );
    let (rec, len) = records[records.len() / 2];
    let at = rec + 8 + u64::from(len) / 2;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment).expect("open segment");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).expect("write byte");
    f.sync_all().expect("sync");
    (rec, at)
}
