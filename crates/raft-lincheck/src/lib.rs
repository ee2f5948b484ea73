//! # raft-lincheck: is this key-value history linearizable?
//!
//! (Contract only; the search is built under issue 6.)
//!
//! A history is a list of [`Operation`]s, each with the time its client invoked it and
//! the time it learned the outcome. Keys are independent registers, so the history is
//! split per key and each key is checked on its own (P-compositionality), with the
//! Wing-Gong search and Lowe's memoisation of (linearized set, state) pairs.
//!
//! An operation whose outcome is unknown (the client timed out, or was told "unknown")
//! may have taken effect at any time after its invocation, or never: it is treated as
//! completing at infinity, and the search may also leave it out.

use serde::{Deserialize, Serialize};

/// What a client did to one key. Values are strings (the CLI's values).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Get,
    Set(String),
    Delete,
    /// Compare-and-set: `expected` None means "the key must be absent".
    Cas {
        expected: Option<String>,
        new: String,
    },
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A get returned this value (None: not found).
    Value(Option<String>),
    /// A set or delete succeeded.
    Done,
    /// A cas answered: swapped or not.
    Cas(bool),
    /// Surely not applied (exit code 3): the operation is dropped from the history.
    Failed,
    /// May or may not have been applied (exit code 4, timeout).
    Unknown,
}

/// One operation in a history. Times are in any monotonic unit (nanoseconds, ticks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u64,
    pub key: String,
    pub op: Op,
    pub invoke: u64,
    /// When the outcome was learned; ignored for `Unknown`.
    pub complete: u64,
    pub outcome: Outcome,
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists for `key`; `ops` is a smallest failing sub-history found.
    Violation {
        key: String,
        ops: Vec<Operation>,
    },
    /// The search hit its step budget (see `check_with_budget`): no verdict.
    Inconclusive {
        key: String,
    },
}

/// Checks a whole history, key by key.
pub fn check(_history: &[Operation]) -> Verdict {
    unimplemented!("issue 6")
}
