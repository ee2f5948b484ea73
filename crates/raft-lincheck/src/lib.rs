//! # raft-lincheck: is this key-value history linearizable?
//!
//! A history is a list of [`Operation`]s, each with the time its client invoked it and
//! the time it learned the outcome. Keys are independent registers, so the history is
//! split per key and each key is checked on its own (P-compositionality, Horn & Kroening),
//! with the Wing-Gong search and Lowe's memoisation of (linearized set, state) pairs.
//!
//! ## The model
//!
//! Each key is a register that starts absent. `Set` stores a value, `Delete` makes it
//! absent, `Get` must return the current value, and `Cas { expected, new }` swaps iff the
//! current value equals `expected` (`None`: absent) and must report whether it did.
//!
//! ## Outcomes
//!
//! * [`Outcome::Failed`]: surely not applied; the operation is dropped.
//! * [`Outcome::Unknown`]: may have taken effect at any time after its invocation, or
//!   never. It is treated as completing at infinity, and the search may also leave it
//!   out. An unknown `Get` constrains nothing and is dropped.
//! * An outcome that does not fit the operation (a `Set` answered with a value, a `Get`
//!   answered `Done`) is treated as the weakest thing it could mean: unknown for a write,
//!   dropped for a read. Histories come from files, so this is input, not a bug.
//!
//! Two operations whose times touch (one completes at `t`, the other is invoked at `t`)
//! count as concurrent: with a coarse clock the checker must not invent an order.
//!
//! ## The search
//!
//! Call and return events are sorted by time into a doubly linked list. The search walks
//! the list: at a call it tries to linearize that operation now (the model accepts it,
//! and the pair (linearized set, new state) was not seen before), lifting its call and
//! return out of the list and starting again from the front; at a return it has met an
//! operation that had to be linearized already, so it backtracks. The history is
//! linearizable when every operation with a known outcome is linearized (what is left
//! are unknown operations, which may have never happened).
//!
//! ## Shrinking
//!
//! For a violation, [`Verdict::Violation`] carries a small sub-history of that key that
//! is still not linearizable. Shrinking only drops an operation when doing so cannot
//! invent a violation the full history does not have: reads and failed cas only add
//! constraints, so dropping them is always sound; a write is dropped only while no kept
//! operation observes its value and no failed cas is kept (a failed cas observes "some
//! other value", which any write may have provided). So every op in the witness matters,
//! and the witness is wrong for a reason the full history shares.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

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

/// Search steps allowed per key by [`check`]: enough for histories of tens of thousands
/// of operations with realistic concurrency, small enough that a pathological history
/// (hundreds of overlapping unknown writes) gives up within seconds instead of hanging.
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 20_000_000;

/// Search steps allowed for each trial while shrinking a violation: a trial that runs
/// out counts as "not shown to fail", so the op stays in the witness.
const SHRINK_MAX_STEPS: u64 = 2_000_000;
/// Search steps for the whole shrink (about a minute at worst); past it the smallest
/// witness found so far is reported.
const SHRINK_TOTAL_STEPS: u64 = 50_000_000;

/// Checks a whole history, key by key, with [`DEFAULT_MAX_STEPS_PER_KEY`].
pub fn check(history: &[Operation]) -> Verdict {
    check_with_budget(history, DEFAULT_MAX_STEPS_PER_KEY)
}

/// Checks a whole history, key by key, giving up on a key (with
/// [`Verdict::Inconclusive`]) after `max_steps_per_key` search steps. Keys are checked in
/// sorted order; the first violation found is returned (shrunk). An inconclusive key is
/// reported only if no other key is in violation.
pub fn check_with_budget(history: &[Operation], max_steps_per_key: u64) -> Verdict {
    let mut inconclusive = None;
    for (key, ops) in split_by_key(history) {
        let mut budget = max_steps_per_key;
        match check_key(&ops, &mut budget) {
            KeyResult::Ok => {}
            KeyResult::OutOfBudget => {
                inconclusive.get_or_insert(key);
            }
            KeyResult::Violation => {
                let ops = shrink(ops);
                return Verdict::Violation { key, ops };
            }
        }
    }
    match inconclusive {
        Some(key) => Verdict::Inconclusive { key },
        None => Verdict::Linearizable,
    }
}

/// Groups operations by key, in sorted key order, keeping each key's ops in input order.
pub fn split_by_key(history: &[Operation]) -> BTreeMap<String, Vec<Operation>> {
    let mut map: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    for op in history {
        map.entry(op.key.clone()).or_default().push(op.clone());
    }
    map
}

/// Serialises a history as pretty JSON (an array of operations), for `--history FILE`.
pub fn history_to_json(history: &[Operation]) -> String {
    serde_json::to_string_pretty(history).expect("operations always serialise")
}

/// Parses a history written by [`history_to_json`].
pub fn history_from_json(text: &str) -> Result<Vec<Operation>, serde_json::Error> {
    serde_json::from_str(text)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get => write!(f, "get"),
            Op::Set(v) => write!(f, "set {v:?}"),
            Op::Delete => write!(f, "del"),
            Op::Cas { expected: Some(e), new } => write!(f, "cas {e:?} -> {new:?}"),
            Op::Cas { expected: None, new } => write!(f, "cas <absent> -> {new:?}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(Some(v)) => write!(f, "{v:?}"),
            Outcome::Value(None) => write!(f, "<not found>"),
            Outcome::Done => write!(f, "ok"),
            Outcome::Cas(true) => write!(f, "swapped"),
            Outcome::Cas(false) => write!(f, "mismatch"),
            Outcome::Failed => write!(f, "failed"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

/// One line: `client 3 [1200 .. 1450] k=x set "v1" => ok` (`..` with no end: unknown).
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.outcome == Outcome::Unknown {
            write!(f, "client {} [{} .. ] {:?} {} => {}", self.client, self.invoke, self.key, self.op, self.outcome)
        } else {
            write!(
                f,
                "client {} [{} .. {}] {:?} {} => {}",
                self.client, self.invoke, self.complete, self.key, self.op, self.outcome
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// The per-key search.

#[derive(Debug, PartialEq, Eq)]
enum KeyResult {
    Ok,
    Violation,
    OutOfBudget,
}

/// The register's state: an interned value id, [`ABSENT`] for no value.
type State = u32;
const ABSENT: State = 0;

/// An operation reduced to what the search needs, values interned.
#[derive(Clone, Copy, Debug)]
enum ModelOp {
    /// A get that returned this state.
    Read(State),
    /// A set or delete (state `ABSENT`), known or unknown outcome.
    Write(State),
    /// A cas with its known answer.
    Cas { expected: State, new: State, ok: bool },
    /// A cas whose answer is unknown: swaps if it can; not swapping is the same as not
    /// happening.
    CasUnknown { expected: State, new: State },
}

impl ModelOp {
    /// The state after this op runs on `s`, or None if its recorded outcome is impossible.
    fn step(self, s: State) -> Option<State> {
        match self {
            ModelOp::Read(v) => (s == v).then_some(s),
            ModelOp::Write(v) => Some(v),
            ModelOp::Cas { expected, new, ok: true } => (s == expected).then_some(new),
            ModelOp::Cas { expected, ok: false, .. } => (s != expected).then_some(s),
            ModelOp::CasUnknown { expected, new } => Some(if s == expected { new } else { s }),
        }
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, State>,
}

impl Interner {
    fn id(&mut self, v: &Option<String>) -> State {
        match v {
            None => ABSENT,
            Some(v) => {
                let next = self.ids.len() as State + 1;
                *self.ids.entry(v.clone()).or_insert(next)
            }
        }
    }
}

/// An op ready for the search: its model op, times, and whether it may be left out.
struct Prepared {
    model: ModelOp,
    invoke: u64,
    /// `u64::MAX` for unknown outcomes.
    complete: u64,
    unknown: bool,
}

/// Reduces one key's ops to model ops; Failed ops and unknown reads are dropped.
fn prepare(ops: &[Operation]) -> Vec<Prepared> {
    let mut interner = Interner::default();
    let mut out = Vec::with_capacity(ops.len());
    for o in ops {
        let known = |model| Some((model, false));
        let unknown_write = |model| Some((model, true));
        let modelled = match (&o.op, &o.outcome) {
            (_, Outcome::Failed) => None,
            (Op::Get, Outcome::Value(v)) => known(ModelOp::Read(interner.id(v))),
            (Op::Get, _) => None,
            (Op::Set(v), Outcome::Done) => known(ModelOp::Write(interner.id(&Some(v.clone())))),
            (Op::Set(v), _) => unknown_write(ModelOp::Write(interner.id(&Some(v.clone())))),
            (Op::Delete, Outcome::Done) => known(ModelOp::Write(ABSENT)),
            (Op::Delete, _) => unknown_write(ModelOp::Write(ABSENT)),
            (Op::Cas { expected, new }, Outcome::Cas(ok)) => {
                let expected = interner.id(expected);
                let new = interner.id(&Some(new.clone()));
                known(ModelOp::Cas { expected, new, ok: *ok })
            }
            (Op::Cas { expected, new }, _) => {
                let expected = interner.id(expected);
                let new = interner.id(&Some(new.clone()));
                unknown_write(ModelOp::CasUnknown { expected, new })
            }
        };
        if let Some((model, unknown)) = modelled {
            let complete = if unknown { u64::MAX } else { o.complete.max(o.invoke) };
            out.push(Prepared { model, invoke: o.invoke, complete, unknown });
        }
    }
    out
}

/// A fixed-size set of op indices, hashable for the memo cache.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(n: usize) -> BitSet {
        BitSet(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn is_subset_of(&self, other: &BitSet) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

/// Lowe's memo of configurations already explored, with dominance for unknown ops.
///
/// A configuration is (definite ops linearized, unknown ops linearized, state). Two with
/// the same definite set and state, where the first linearized a subset of the second's
/// unknown ops: every way to finish from the second also works from the first (it may
/// simply never linearize the extra unknown ops). So once the first was seen, the second
/// need not be explored. Without this, k pending unknown ops multiply the search by 2^k.
#[derive(Default)]
struct Memo {
    seen: HashMap<(BitSet, State), Vec<BitSet>>,
}

impl Memo {
    /// Records a configuration; false if it, or one that dominates it, was seen before.
    fn insert(&mut self, definite: &BitSet, unknown: &BitSet, state: State) -> bool {
        let known = self.seen.entry((definite.clone(), state)).or_default();
        if known.iter().any(|k| k.is_subset_of(unknown)) {
            return false;
        }
        known.retain(|k| !unknown.is_subset_of(k));
        known.push(unknown.clone());
        true
    }
}

/// Call and return events in time order, as a doubly linked list over a vector.
/// Slot 0 is the head sentinel; `NIL` ends the list.
struct EventList {
    /// For each slot: (op index, is call). Slot 0 unused.
    ev: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each call slot: the slot of its return.
    ret_of: Vec<usize>,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

impl EventList {
    fn new(ops: &[Prepared]) -> EventList {
        // (time, 0 for call / 1 for return, op): calls sort before returns at equal times
        // so that touching intervals count as concurrent.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            events.push((o.invoke, 0, i));
            events.push((o.complete, 1, i));
        }
        events.sort_unstable();
        let n = events.len() + 1;
        let mut list =
            EventList { ev: vec![(0, false); n], next: vec![NIL; n], prev: vec![NIL; n], ret_of: vec![NIL; n] };
        let mut call_slot = vec![NIL; ops.len()];
        for (k, &(_, kind, op)) in events.iter().enumerate() {
            let slot = k + 1;
            list.ev[slot] = (op, kind == 0);
            list.prev[slot] = slot - 1;
            list.next[slot - 1] = slot;
            if kind == 0 {
                call_slot[op] = slot;
            } else {
                assert!(call_slot[op] != NIL, "a return sorts after its call");
                list.ret_of[call_slot[op]] = slot;
            }
        }
        list
    }

    fn unlink(&mut self, slot: usize) {
        let (p, n) = (self.prev[slot], self.next[slot]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, slot: usize) {
        let (p, n) = (self.prev[slot], self.next[slot]);
        self.next[p] = slot;
        if n != NIL {
            self.prev[n] = slot;
        }
    }

    /// Removes a call and its return. Unlinking keeps the removed slots' own pointers, so
    /// [`EventList::unlift`] (relinking in reverse order, dancing-links style) restores the
    /// list exactly, as long as lifts are undone last-in first-out, which the stack ensures.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.ret_of[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.ret_of[call]);
        self.relink(call);
    }
}

/// Wing-Gong search with Lowe's memo cache on one key's operations.
/// `budget` is the number of search steps left; the steps taken are subtracted.
fn check_key(ops: &[Operation], budget: &mut u64) -> KeyResult {
    let pruned = prune_unobserved_unknowns(ops);
    let prepared = prepare(&pruned);
    search(&prepared, budget)
}

/// Drops unknown-outcome writes whose value no operation observes, when the key has no
/// failed cas. This keeps the search small: every unknown op stays pending to the end of
/// the history, and each one the search may or may not linearize doubles the states.
///
/// Sound (the verdict is unchanged): an unknown op may be left out anyway, so dropping it
/// can only lose linearizations that need it. Take one, and remove `u` from it. Until the
/// next write the state would have been `u`'s value, which no read or cas observes; a
/// plain write after it does not care; an unknown cas there either did not swap (then it
/// may as well not have happened) or expected `u`'s value (excluded). Only a failed cas
/// could have relied on "some value other than e", hence that condition. Dropping an
/// unknown cas can unobserve another value, so this runs to a fixpoint.
fn prune_unobserved_unknowns(ops: &[Operation]) -> Vec<Operation> {
    let mut ops: Vec<Operation> = ops.iter().filter(|o| o.outcome != Outcome::Failed).cloned().collect();
    if ops.iter().any(is_failed_cas) {
        return ops;
    }
    loop {
        let observed: HashSet<Option<&String>> = ops.iter().filter_map(observes).collect();
        let unobserved =
            |o: &Operation| o.outcome == Outcome::Unknown && writes(o).is_some_and(|v| !observed.contains(&v));
        let keep: Vec<bool> = ops.iter().map(|o| !unobserved(o)).collect();
        if keep.iter().all(|&k| k) {
            return ops;
        }
        let mut keep = keep.into_iter();
        ops.retain(|_| keep.next().expect("one flag per op"));
    }
}

fn search(ops: &[Prepared], budget: &mut u64) -> KeyResult {
    if ops.iter().all(|o| o.unknown) {
        return KeyResult::Ok;
    }
    let mut list = EventList::new(ops);
    // Each op's bit: in the definite set or in the unknown set.
    let mut slot = Vec::with_capacity(ops.len());
    let (mut n_definite, mut n_unknown) = (0, 0);
    for o in ops {
        let counter = if o.unknown { &mut n_unknown } else { &mut n_definite };
        slot.push((o.unknown, *counter));
        *counter += 1;
    }
    let mut definite = BitSet::new(n_definite);
    let mut unknown = BitSet::new(n_unknown);
    let bits = |op: usize, on: bool, definite: &mut BitSet, unknown: &mut BitSet| {
        let (is_unknown, i) = slot[op];
        let set = if is_unknown { unknown } else { definite };
        if on {
            set.set(i)
        } else {
            set.clear(i)
        }
    };
    let mut memo = Memo::default();
    // (call slot, state before it) for every op linearized so far, in order.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = ABSENT;
    let mut entry = list.next[HEAD];
    loop {
        if entry == NIL {
            // Only reachable if every event was lifted: everything linearized.
            return KeyResult::Ok;
        }
        if *budget == 0 {
            return KeyResult::OutOfBudget;
        }
        *budget -= 1;
        let (op, is_call) = list.ev[entry];
        if is_call {
            if let Some(new_state) = ops[op].model.step(state) {
                bits(op, true, &mut definite, &mut unknown);
                if memo.insert(&definite, &unknown, new_state) {
                    stack.push((entry, state));
                    state = new_state;
                    list.lift(entry);
                    entry = list.next[HEAD];
                    continue;
                }
                bits(op, false, &mut definite, &mut unknown);
            }
            entry = list.next[entry];
        } else {
            if ops[op].unknown {
                // Returns at infinity sort last, so every op with a known outcome has
                // been linearized; the unknown ones left may never have happened.
                return KeyResult::Ok;
            }
            // This op should have been linearized by now: undo the last choice.
            let Some((call, before)) = stack.pop() else {
                return KeyResult::Violation;
            };
            let (undone, _) = list.ev[call];
            bits(undone, false, &mut definite, &mut unknown);
            state = before;
            list.unlift(call);
            entry = list.next[call];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shrinking.

/// What value (or absence) an op's recorded outcome depends on having been written.
fn observes(o: &Operation) -> Option<Option<&String>> {
    match (&o.op, &o.outcome) {
        (_, Outcome::Failed) => None,
        (Op::Get, Outcome::Value(v)) => Some(v.as_ref()),
        (Op::Cas { expected, .. }, Outcome::Cas(true) | Outcome::Unknown) => Some(expected.as_ref()),
        _ => None,
    }
}

/// The value an op may write (`Some(None)`: a delete), if it is a write.
fn writes(o: &Operation) -> Option<Option<&String>> {
    match (&o.op, &o.outcome) {
        (_, Outcome::Failed) => None,
        (Op::Set(v), _) => Some(Some(v)),
        (Op::Delete, _) => Some(None),
        (Op::Cas { new, .. }, Outcome::Cas(true) | Outcome::Unknown) => Some(Some(new)),
        (Op::Cas { new, .. }, Outcome::Done | Outcome::Value(_)) => Some(Some(new)),
        _ => None,
    }
}

fn is_failed_cas(o: &Operation) -> bool {
    matches!((&o.op, &o.outcome), (Op::Cas { .. }, Outcome::Cas(false)))
}

/// Whether dropping `removed` from a history leaves `kept` failing only for reasons the
/// whole history shares: reads and failed cas only constrain, so they may always go; a
/// write may go only if no kept op observes its value and no failed cas is kept.
fn sound_removal<'a>(kept: impl Iterator<Item = &'a Operation> + Clone, removed: &[&Operation]) -> bool {
    let removed_writes: Vec<Option<&String>> = removed.iter().filter_map(|o| writes(o)).collect();
    if removed_writes.is_empty() {
        return true;
    }
    kept.clone().all(|o| !is_failed_cas(o) && observes(o).is_none_or(|v| !removed_writes.contains(&v)))
}

/// Whether `ops` is shown to be non-linearizable within one trial's budget, taken out
/// of the shrink's total.
fn fails(ops: &[Operation], total: &mut u64) -> bool {
    let mut budget = SHRINK_MAX_STEPS.min(*total);
    let before = budget;
    let result = check_key(ops, &mut budget);
    *total -= before - budget;
    result == KeyResult::Violation
}

/// Greedy delta debugging: drop chunks of halving size, down to single ops, while the
/// history stays non-linearizable and each drop is sound (see [`sound_removal`]); repeat
/// single-op passes until nothing more can go.
fn shrink(mut ops: Vec<Operation>) -> Vec<Operation> {
    // Failed ops carry no information; drop them first.
    ops.retain(|o| o.outcome != Outcome::Failed);
    let mut total = SHRINK_TOTAL_STEPS;
    let mut chunk = (ops.len() / 2).max(1);
    while total > 0 {
        let mut changed = false;
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            let removed: Vec<&Operation> = ops[start..end].iter().collect();
            let kept = ops[..start].iter().chain(ops[end..].iter());
            if sound_removal(kept.clone(), &removed) {
                let candidate: Vec<Operation> = kept.cloned().collect();
                if fails(&candidate, &mut total) {
                    ops = candidate;
                    changed = true;
                    continue;
                }
            }
            start = end;
        }
        if chunk > 1 {
            chunk /= 2;
        } else if !changed {
            break;
        }
    }
    ops.sort_by_key(|o| (o.invoke, o.complete));
    ops
}

#[cfg(test)]
mod tests;
