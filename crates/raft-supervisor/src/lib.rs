//! # raft-supervisor: start, watch and break a local Raft cluster
//!
//! `raft-supervisor up` forks one `raft-node` process per node, restarts the ones that
//! crash, and takes commands (`kill`, `pause`, `partition`, `status`, `down`, ...) from
//! other invocations of itself over `<dir>/supervisor.sock`.
//!
//! The crate is split the way the rest of the workspace is, decisions apart from effects:
//!
//! * [`core`]: the decision state machine. `on_event(event, now) -> Vec<Action>`: which
//!   node to start, restart, signal or give up on, under an Erlang/OTP-style restart
//!   intensity and a doubling backoff. No I/O, no clock; unit-tested by feeding events.
//! * [`spawn`]: fork and exec, with only async-signal-safe calls between the two.
//! * [`shell`]: the `up` event loop. One mio `Poll` for the control socket, the node
//!   connections (status polling, partition requests) and the signals (SIGCHLD,
//!   SIGTERM, SIGINT, SIGHUP); timers are the poll timeout.
//! * [`client`]: the one-shot commands: one request to the control socket, one line out.
//! * [`timeline`]: parsing and merging the event lines of every node and of the
//!   supervisor (`<dir>/supervisor.events`) into one order; pure. [`timeline_cmd`] prints
//!   it (`raft-supervisor timeline`).
//! * [`render`]: `watch`'s screen as a pure function of a `WatchModel`, and its keys;
//!   [`watch`] is the terminal shell (ratatui + crossterm) around it.
//! * [`cli`]: argument parsing and exit codes (0 ok, 1 refused or failed, 2 usage,
//!   3 no supervisor running).
//!
//! Invariants: every node process is a child of the supervisor, in its own process group,
//! and dies with it (PR_SET_PDEATHSIG); a pid is forgotten only once it has been reaped
//! (so a signal never reaches a recycled pid); `<dir>/supervisor.lock` (flock) is held by
//! exactly one running supervisor per directory.

pub mod certs;
pub mod cli;
pub mod client;
pub mod core;
pub mod levers;
pub mod members;
pub mod render;
pub mod shell;
pub mod spawn;
pub mod timeline;
pub mod timeline_cmd;
pub mod watch;
