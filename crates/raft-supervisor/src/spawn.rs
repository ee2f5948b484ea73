//! The fork/exec layer: the only place that creates processes.
//!
//! Everything the child needs is prepared before `fork` (every `CString`, the argv
//! pointer array, the log and `/dev/null` descriptors, the exec-failure message), because
//! after `fork` only async-signal-safe calls are allowed until `exec`: the child is a copy
//! of a process whose other threads (if any) vanished mid-flight, possibly holding the
//! allocator's lock. The child therefore calls only raw `libc` functions: `dup2`,
//! `setpgid`, `prctl`, `getppid`, `signal`, `sigprocmask`, `execv`, `write`, `_exit`.

use std::ffi::{CString, OsStr};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A program and its arguments, converted to C strings once, before any fork.
pub struct ExecPlan {
    path: CString,
    /// Keeps the strings `argv_ptrs` points into alive.
    _argv: Vec<CString>,
    /// NULL-terminated, as `execv` wants it.
    argv_ptrs: Vec<*const libc::c_char>,
    exec_failed_msg: Vec<u8>,
}

impl ExecPlan {
    /// `argv[0]` is the program's file name.
    pub fn new(path: &Path, args: &[&OsStr]) -> io::Result<ExecPlan> {
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains a NUL byte")))
        };
        let path_c = cstr(path.as_os_str())?;
        let mut argv = vec![cstr(path.file_name().unwrap_or(path.as_os_str()))?];
        for a in args {
            argv.push(cstr(a)?);
        }
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let exec_failed_msg = format!("raft-supervisor: cannot execute {}\n", path.display()).into_bytes();
        Ok(ExecPlan { path: path_c, _argv: argv, argv_ptrs, exec_failed_msg })
    }
}

/// Forks and execs `plan` with stdin on `/dev/null` and stdout and stderr appended to
/// `log`, in a process group of its own (so a terminal's Ctrl-C reaches only the
/// supervisor, which then stops the nodes in order), and set to be SIGKILLed when the
/// supervisor dies (no orphans). Returns the child's pid.
pub fn spawn(plan: &ExecPlan, log: &Path) -> io::Result<u32> {
    let log = OpenOptions::new().create(true).append(true).mode(0o600).open(log)?;
    let devnull = OpenOptions::new().read(true).open("/dev/null")?;
    let (log_fd, null_fd) = (log.as_raw_fd(), devnull.as_raw_fd());
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: an empty signal set built on the stack; sigemptyset only writes to it.
    let empty_set = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        set
    };
    // SAFETY: after fork the child runs only async-signal-safe libc calls on data
    // prepared above, and leaves through execv or _exit; it never returns into Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => unsafe {
            libc::dup2(null_fd, 0);
            libc::dup2(log_fd, 1);
            libc::dup2(log_fd, 2);
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
            // The supervisor may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Ignored signals stay ignored across exec (Rust ignores SIGPIPE); a node
            // starts with default dispositions and an empty signal mask.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::sigprocmask(libc::SIG_SETMASK, &empty_set, std::ptr::null_mut());
            libc::execv(plan.path.as_ptr(), plan.argv_ptrs.as_ptr());
            let msg = &plan.exec_failed_msg;
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        },
        pid => Ok(pid as u32),
    }
}

/// Appends one line to a node's log (the supervisor's own notes: starts and exits).
/// Best effort: a log that cannot be written must not stop the supervisor.
pub fn note(log: &Path, line: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).mode(0o600).open(log) {
        let _ = writeln!(f, "--- raft-supervisor: {line} ---");
    }
}

/// The `raft-node` binary next to this executable.
pub fn node_binary() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| io::Error::other("the supervisor's executable has no directory"))?;
    Ok(dir.join("raft-node"))
}

/// Under `cargo run --bin raft-supervisor` on a fresh clone only the supervisor is built,
/// yet it needs `raft-node` beside it (and the learner will want `raft-cli` next). When
/// cargo launched us (it sets `$CARGO`), build the workspace's binaries in our own
/// profile once, saying so, so the README's one-command quick start works. An installed
/// supervisor (no `$CARGO`) never runs cargo.
pub fn build_missing_binaries(node_bin: &Path) {
    let Some(cargo) = std::env::var_os("CARGO") else { return };
    let Some(profile) = node_bin.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str()) else { return };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    if !manifest.is_file() {
        return;
    }
    eprintln!("raft-node is not built yet: building the workspace's binaries ({profile} profile) once...");
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("build").arg("--manifest-path").arg(&manifest).arg("--bins");
    if profile != "debug" {
        cmd.arg("--profile").arg(if profile == "release" { "release" } else { profile });
    }
    match cmd.status() {
        Ok(st) if st.success() => {}
        Ok(st) => eprintln!("cargo build failed ({st}); build by hand with `cargo build --release --bins`"),
        Err(e) => eprintln!("cannot run cargo ({e}); build by hand with `cargo build --release --bins`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    fn wait(pid: u32) -> WaitStatus {
        waitpid(Pid::from_raw(pid as i32), None).unwrap()
    }

    #[test]
    fn child_output_goes_to_the_log_and_argv_arrives() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("node.log");
        note(&log, "first");
        let plan = ExecPlan::new(
            Path::new("/bin/sh"),
            &["-c".as_ref(), "echo out $0 $1; echo err >&2".as_ref(), "a b".as_ref()],
        )
        .unwrap();
        let pid = spawn(&plan, &log).unwrap();
        assert_eq!(wait(pid), WaitStatus::Exited(Pid::from_raw(pid as i32), 0));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "--- raft-supervisor: first ---\nout a b\nerr\n");
    }

    #[test]
    fn child_has_its_own_process_group_and_no_stdin() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("node.log");
        let script = "[ $(ps -o pgid= -p $$) -eq $$ ] && echo own-group; read x || echo eof";
        let plan = ExecPlan::new(Path::new("/bin/sh"), &["-c".as_ref(), script.as_ref()]).unwrap();
        let pid = spawn(&plan, &log).unwrap();
        wait(pid);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("eof"), "{text}");
        if std::path::Path::new("/bin/ps").exists() || std::path::Path::new("/usr/bin/ps").exists() {
            assert!(text.contains("own-group"), "{text}");
        }
    }

    #[test]
    fn exec_failure_exits_127_with_a_message() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("node.log");
        let plan = ExecPlan::new(&t.path().join("missing-binary"), &[]).unwrap();
        let pid = spawn(&plan, &log).unwrap();
        assert_eq!(wait(pid), WaitStatus::Exited(Pid::from_raw(pid as i32), 127));
        assert!(std::fs::read_to_string(&log).unwrap().contains("cannot execute"));
    }

    #[test]
    fn nul_in_an_argument_is_an_error_before_forking() {
        assert!(ExecPlan::new(Path::new("/bin/true"), &["a\0b".as_ref()]).is_err());
    }
}
