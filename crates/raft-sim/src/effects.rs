//! The simulator's [`Effects`]: everything a replica does to the outside world during a
//! turn is recorded in order, with what its disk held at that moment, and handed to the
//! simulator's checkers and network after the turn.

use crate::disk::DiskState;
use crate::rng::digest;
use raft_core::{Entry, HardState, Index, Message, SnapshotMeta, Term};
use raft_kv::{Applied, KvStore};
use raft_replica::{Effects, Waiter};
use raft_wire::Response;
use std::cell::RefCell;
use std::rc::Rc;

/// What the node's disk held when a message left: persist-before-you-speak is checked
/// against this, not against the end of the turn.
#[derive(Clone, Copy, Debug)]
pub struct DiskFacts {
    pub hard_state: HardState,
    pub last_index: Index,
    pub snapshot_index: Index,
}

/// One effect of a turn.
pub enum Output {
    Send {
        msg: Message,
        disk: DiskFacts,
    },
    Respond {
        to: Waiter,
        response: Response,
    },
    /// An entry applied to the state machine.
    Applied {
        entry: Entry,
        result: Applied,
    },
    Restored {
        index: Index,
        term: Term,
        digest: u64,
    },
    Log(String),
}

pub struct SimFx {
    disk: Rc<RefCell<DiskState>>,
    trace: bool,
    out: Vec<Output>,
}

impl SimFx {
    pub fn new(disk: Rc<RefCell<DiskState>>, trace: bool) -> SimFx {
        SimFx { disk, trace, out: Vec::new() }
    }

    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
}

impl Effects for SimFx {
    fn send(&mut self, msg: Message) {
        let d = self.disk.borrow();
        let disk = DiskFacts {
            hard_state: d.image.hard_state,
            last_index: d.image.last_index(),
            snapshot_index: d.image.snapshot_index(),
        };
        self.out.push(Output::Send { msg, disk });
    }

    fn respond(&mut self, to: Waiter, response: Response) {
        self.out.push(Output::Respond { to, response });
    }

    fn log(&mut self, _term: Term, line: std::fmt::Arguments<'_>) {
        if self.trace {
            self.out.push(Output::Log(line.to_string()));
        }
    }

    fn applied(&mut self, entry: &Entry, result: &Applied) {
        self.out.push(Output::Applied { entry: entry.clone(), result: result.clone() });
    }

    fn restored(&mut self, meta: &SnapshotMeta, kv: &KvStore) {
        self.out.push(Output::Restored { index: meta.index, term: meta.term, digest: digest(&kv.snapshot()) });
    }
}
