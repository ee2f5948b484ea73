//! How `raft-node` ends, for whoever runs it: the supervisor, systemd, Kubernetes, a shell.
//!
//! A process manager decides from the exit code alone whether a restart can help: a bad
//! config, a data directory another node holds, or a damaged log will fail the same way
//! on every restart, so they get codes of their own (systemd's `RestartPreventExitStatus=`
//! in `deploy/raft-node@.service` lists them). Everything else (an I/O error at run time)
//! is 1, worth a restart. The one rule mapping a [`NodeError`] to its code is
//! [`ExitKind::of`]; `main.rs` prints the error's one line and exits with it.

use crate::NodeError;
use raft_replica::ReplicaError;
use raft_storage::StorageError;

/// A clean stop on SIGTERM or SIGINT: every acknowledged write is on disk.
pub const EXIT_CLEAN: u8 = 0;
/// Anything else, e.g. I/O at run time: a restart may help.
pub const EXIT_OTHER: u8 = 1;
/// Usage or a bad config (clap's own usage errors exit 2 as well): fix it, then start.
pub const EXIT_CONFIG: u8 = 2;
/// The data directory is held (flock) by another process: a node already runs on it.
pub const EXIT_HELD: u8 = 3;
/// The storage is corrupt in a way a crash cannot explain: the node refuses to start on it.
pub const EXIT_CORRUPT: u8 = 4;

/// Why the node ended, as a process manager needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Clean,
    Other,
    Config,
    Held,
    Corrupt,
}

impl ExitKind {
    /// The one place an error becomes an exit code.
    pub fn of(e: &NodeError) -> ExitKind {
        match e {
            NodeError::Config(_) => ExitKind::Config,
            NodeError::Storage(s) | NodeError::Replica(ReplicaError::Storage(s)) => ExitKind::of_storage(s),
            // The snapshot file on disk does not decode: damaged data, like a bad WAL record.
            NodeError::Replica(ReplicaError::DiskSnapshot(_)) => ExitKind::Corrupt,
            NodeError::Replica(ReplicaError::Start(_)) | NodeError::Listen { .. } | NodeError::Io(_) => ExitKind::Other,
        }
    }

    fn of_storage(s: &StorageError) -> ExitKind {
        match s {
            StorageError::Locked { .. } => ExitKind::Held,
            StorageError::Corrupt { .. } | StorageError::MissingSegment { .. } | StorageError::Gap { .. } => {
                ExitKind::Corrupt
            }
            StorageError::Io { .. } | StorageError::EntryTooLarge { .. } | StorageError::Poisoned { .. } => {
                ExitKind::Other
            }
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ExitKind::Clean => EXIT_CLEAN,
            ExitKind::Other => EXIT_OTHER,
            ExitKind::Config => EXIT_CONFIG,
            ExitKind::Held => EXIT_HELD,
            ExitKind::Corrupt => EXIT_CORRUPT,
        }
    }

    /// What to do about it, appended to the error's line on stderr.
    pub fn advice(self) -> &'static str {
        match self {
            ExitKind::Clean => "",
            ExitKind::Other => "the node may be restarted",
            ExitKind::Config => {
                "fix the config or the files it names (see cluster.example.toml), then start the node again"
            }
            ExitKind::Held => "stop the other node on this directory, or give this one its own `dir`",
            // StorageError::Corrupt's own text already says what wiping does; repeat the rule.
            ExitKind::Corrupt => "not restarting on damaged data",
        }
    }
}

// Distinct codes, so a process manager can tell them apart.
const _: () = assert!(EXIT_CLEAN != EXIT_OTHER && EXIT_OTHER != EXIT_CONFIG);
const _: () = assert!(EXIT_CONFIG != EXIT_HELD && EXIT_HELD != EXIT_CORRUPT && EXIT_CORRUPT != EXIT_OTHER);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_error_has_the_code_a_process_manager_needs() {
        let p = || PathBuf::from("/d/node-1/wal/0001.log");
        let io = || std::io::Error::other("disk on fire");
        let cases: Vec<(NodeError, u8)> = vec![
            (NodeError::Config("bad".into()), EXIT_CONFIG),
            (NodeError::Storage(StorageError::Locked { path: p() }), EXIT_HELD),
            (NodeError::Storage(StorageError::Corrupt { file: p(), offset: 8, reason: "crc".into() }), EXIT_CORRUPT),
            (
                NodeError::Storage(StorageError::MissingSegment { file: p(), previous: p(), expected: 5, found: 9 }),
                EXIT_CORRUPT,
            ),
            (NodeError::Storage(StorageError::Gap { file: p(), snapshot_index: 3, first_index: 9 }), EXIT_CORRUPT),
            // Found while the replica loads: the same rule.
            (NodeError::Replica(ReplicaError::Storage(StorageError::Locked { path: p() })), EXIT_HELD),
            (NodeError::Replica(ReplicaError::DiskSnapshot("bad".into())), EXIT_CORRUPT),
            (NodeError::Replica(ReplicaError::Start("x".into())), EXIT_OTHER),
            (NodeError::Storage(StorageError::Io { path: p(), source: io() }), EXIT_OTHER),
            (NodeError::Storage(StorageError::Poisoned { reason: "fsync".into() }), EXIT_OTHER),
            (NodeError::Listen { path: p(), source: io() }, EXIT_OTHER),
            (NodeError::Io(io()), EXIT_OTHER),
        ];
        for (e, code) in cases {
            let kind = ExitKind::of(&e);
            assert_eq!(kind.code(), code, "{e}");
            assert!(!kind.advice().is_empty(), "{e}: says what to do");
        }
        assert_eq!(ExitKind::Clean.code(), EXIT_CLEAN);
    }
}
