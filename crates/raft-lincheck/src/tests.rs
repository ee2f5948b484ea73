//! Hand-made histories with known answers, and random histories generated from a
//! sequential model (linearizable by construction).

use super::*;
use std::time::{Duration, Instant};

fn op(client: u64, key: &str, op: Op, invoke: u64, complete: u64, outcome: Outcome) -> Operation {
    Operation { client, key: key.into(), op, invoke, complete, outcome }
}
fn set(c: u64, v: &str, i: u64, r: u64) -> Operation {
    op(c, "k", Op::Set(v.into()), i, r, Outcome::Done)
}
fn set_unknown(c: u64, v: &str, i: u64) -> Operation {
    op(c, "k", Op::Set(v.into()), i, 0, Outcome::Unknown)
}
fn del(c: u64, i: u64, r: u64) -> Operation {
    op(c, "k", Op::Delete, i, r, Outcome::Done)
}
fn get(c: u64, v: Option<&str>, i: u64, r: u64) -> Operation {
    op(c, "k", Op::Get, i, r, Outcome::Value(v.map(String::from)))
}
fn cas(c: u64, expected: Option<&str>, new: &str, ok: bool, i: u64, r: u64) -> Operation {
    op(c, "k", Op::Cas { expected: expected.map(String::from), new: new.into() }, i, r, Outcome::Cas(ok))
}

fn assert_ok(h: &[Operation]) {
    assert_eq!(check(h), Verdict::Linearizable, "history:\n{}", show(h));
}
fn assert_violation(h: &[Operation]) -> Vec<Operation> {
    match check(h) {
        Verdict::Violation { ops, .. } => {
            assert!(!ops.is_empty());
            // The witness is a sub-history and fails on its own.
            for o in &ops {
                assert!(h.contains(o), "witness op {o} not in the history");
            }
            assert!(matches!(check(&ops), Verdict::Violation { .. }), "witness must fail on its own");
            ops
        }
        other => panic!("expected a violation, got {other:?} for\n{}", show(h)),
    }
}
fn show(h: &[Operation]) -> String {
    h.iter().map(|o| format!("  {o}\n")).collect()
}

#[test]
fn empty_history_is_linearizable() {
    assert_ok(&[]);
}

#[test]
fn sequential_history_is_linearizable() {
    assert_ok(&[get(1, None, 0, 1), set(1, "a", 2, 3), get(2, Some("a"), 4, 5), del(1, 6, 7), get(2, None, 8, 9)]);
}

#[test]
fn concurrent_writes_either_order_is_fine() {
    // Two overlapping sets; readers after both may see either, but they must agree.
    let base = [set(1, "a", 0, 10), set(2, "b", 5, 15)];
    for v in ["a", "b"] {
        let mut h = base.to_vec();
        h.push(get(3, Some(v), 20, 21));
        h.push(get(4, Some(v), 22, 23));
        assert_ok(&h);
    }
    // Reads concurrent with the writes can see the old value, then the new.
    assert_ok(&[set(1, "a", 0, 10), get(2, None, 1, 2), get(3, Some("a"), 3, 4), get(2, Some("a"), 5, 6)]);
    // But two readers after both writes cannot disagree.
    let mut h = base.to_vec();
    h.push(get(3, Some("a"), 20, 21));
    h.push(get(4, Some("b"), 22, 23));
    assert_violation(&h);
}

#[test]
fn stale_read_is_a_violation() {
    let h = [set(1, "a", 0, 1), set(1, "b", 2, 3), get(2, Some("a"), 4, 5)];
    let w = assert_violation(&h);
    assert_eq!(w.len(), 3, "every op matters: {w:?}");
}

#[test]
fn read_from_the_future_is_a_violation() {
    assert_violation(&[get(2, Some("a"), 0, 1), set(1, "a", 2, 3)]);
}

#[test]
fn flip_flopping_reads_are_a_violation() {
    // a, then b, then a again, with the writes long done: no order explains it.
    assert_violation(&[
        set(1, "a", 0, 10),
        set(2, "b", 0, 10),
        get(3, Some("a"), 11, 12),
        get(3, Some("b"), 13, 14),
        get(3, Some("a"), 15, 16),
    ]);
}

#[test]
fn lost_acknowledged_write_is_a_violation() {
    let w = assert_violation(&[set(1, "a", 0, 1), get(2, None, 2, 3)]);
    assert_eq!(w.len(), 2);
    // Lost after a successful read too.
    assert_violation(&[set(1, "a", 0, 1), get(2, Some("a"), 2, 3), get(2, None, 4, 5)]);
}

#[test]
fn lost_delete_is_a_violation() {
    assert_violation(&[set(1, "a", 0, 1), del(1, 2, 3), get(2, Some("a"), 4, 5)]);
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The write completes at 5 and the read starts at 5: the read may precede it.
    assert_ok(&[set(1, "a", 0, 5), get(2, None, 5, 6)]);
    assert_violation(&[set(1, "a", 0, 5), get(2, None, 6, 7)]);
}

#[test]
fn unknown_write_that_shows_up_later_is_fine() {
    assert_ok(&[set_unknown(1, "a", 0), get(2, None, 5, 6), get(2, Some("a"), 100, 101)]);
    // Even long after the client gave up, and after other writes.
    assert_ok(&[set_unknown(1, "a", 0), set(2, "b", 10, 11), get(2, Some("b"), 12, 13), get(3, Some("a"), 50, 51)]);
}

#[test]
fn unknown_write_that_never_shows_up_is_fine() {
    assert_ok(&[set_unknown(1, "a", 0), get(2, None, 5, 6), get(2, None, 100, 101)]);
    assert_ok(&[set_unknown(1, "a", 0)]);
    assert_ok(&[set(1, "b", 0, 1), set_unknown(1, "a", 2), get(2, Some("b"), 100, 101)]);
}

#[test]
fn unknown_write_cannot_show_up_before_it_was_invoked() {
    assert_violation(&[get(2, Some("a"), 0, 1), set_unknown(1, "a", 5)]);
}

#[test]
fn unknown_write_cannot_appear_and_vanish() {
    // Takes effect once: a, then gone with no delete, is not explained.
    assert_violation(&[set_unknown(1, "a", 0), get(2, Some("a"), 5, 6), get(2, None, 7, 8)]);
}

#[test]
fn failed_ops_are_dropped() {
    let failed = op(1, "k", Op::Set("a".into()), 0, 1, Outcome::Failed);
    assert_ok(&[failed.clone(), get(2, None, 2, 3)]);
    assert_violation(&[failed, get(2, Some("a"), 2, 3)]);
}

#[test]
fn unknown_get_is_ignored() {
    assert_ok(&[set(1, "a", 0, 1), op(2, "k", Op::Get, 2, 0, Outcome::Unknown)]);
}

#[test]
fn cas_race_on_same_expected_value_both_succeeding_is_a_violation() {
    let w = assert_violation(&[
        set(1, "v0", 0, 1),
        cas(2, Some("v0"), "x", true, 2, 10),
        cas(3, Some("v0"), "y", true, 2, 10),
    ]);
    assert_eq!(w.len(), 3, "{w:?}");
    // The same race from absent.
    assert_violation(&[cas(2, None, "x", true, 0, 10), cas(3, None, "y", true, 0, 10)]);
}

#[test]
fn cas_race_with_one_winner_is_fine() {
    assert_ok(&[
        set(1, "v0", 0, 1),
        cas(2, Some("v0"), "x", true, 2, 10),
        cas(3, Some("v0"), "y", false, 2, 10),
        get(1, Some("x"), 11, 12),
    ]);
    // The loser's mismatch must be explained by the winner having gone first.
    assert_violation(&[set(1, "v0", 0, 1), cas(3, Some("v0"), "y", false, 2, 3), cas(2, Some("v0"), "x", true, 4, 5)]);
}

#[test]
fn cas_from_absent() {
    assert_ok(&[cas(1, None, "a", true, 0, 1), get(2, Some("a"), 2, 3), cas(1, None, "b", false, 4, 5)]);
    assert_violation(&[set(1, "z", 0, 1), cas(1, None, "a", true, 2, 3)]);
}

#[test]
fn unknown_cas_may_or_may_not_swap() {
    let unknown = |i| op(2, "k", Op::Cas { expected: Some("v0".into()), new: "x".into() }, i, 0, Outcome::Unknown);
    assert_ok(&[set(1, "v0", 0, 1), unknown(2), get(3, Some("x"), 10, 11)]);
    assert_ok(&[set(1, "v0", 0, 1), unknown(2), get(3, Some("v0"), 10, 11)]);
    // It can only swap from v0.
    assert_violation(&[set(1, "w", 0, 1), unknown(2), get(3, Some("x"), 10, 11)]);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = vec![set(1, "a", 0, 1), get(2, Some("a"), 2, 3)];
    h.push(op(1, "other", Op::Set("z".into()), 0, 1, Outcome::Done));
    h.push(op(2, "other", Op::Get, 2, 3, Outcome::Value(None)));
    match check(&h) {
        Verdict::Violation { key, ops } => {
            assert_eq!(key, "other");
            assert!(ops.iter().all(|o| o.key == "other"));
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn out_of_range_times_are_input_not_a_panic() {
    // complete before invoke: treated as completing at invoke.
    assert_ok(&[set(1, "a", 10, 3), get(2, Some("a"), 11, 12)]);
    // A mismatched outcome on a write is treated as unknown.
    assert_ok(&[op(1, "k", Op::Set("a".into()), 0, 1, Outcome::Value(None)), get(2, None, 2, 3)]);
}

#[test]
fn json_roundtrip() {
    let h = vec![
        set(1, "a", 0, 1),
        set_unknown(2, "b", 3),
        cas(3, None, "c", false, 4, 5),
        op(4, "k", Op::Delete, 6, 7, Outcome::Failed),
        get(5, Some("a"), 8, 9),
    ];
    let text = history_to_json(&h);
    assert_eq!(history_from_json(&text).unwrap(), h);
    assert!(history_from_json("[{\"nope\": 1}]").is_err());
}

#[test]
fn budget_gives_inconclusive() {
    // Many overlapping unknown writes and reads make a large search space.
    let mut h = Vec::new();
    for i in 0..40 {
        h.push(set_unknown(i, &format!("v{i}"), 0));
    }
    for i in 0..40 {
        h.push(get(100 + i, Some(&format!("v{}", 39 - i)), 1000 + 2 * i, 1001 + 2 * i));
    }
    assert!(matches!(check_with_budget(&h, 50), Verdict::Inconclusive { .. }));
}

#[test]
fn many_unobserved_unknown_writes_stay_fast() {
    // Forty timed-out writes nobody ever read, among reads and acknowledged writes: without
    // pruning, each could be linearized in any gap (2^40 choices).
    let mut h = Vec::new();
    for i in 0..40u64 {
        h.push(set_unknown(i, &format!("lost{i}"), 10 * i));
        h.push(set(100, &format!("w{i}"), 10 * i + 1, 10 * i + 2));
        h.push(get(101, Some(&format!("w{i}")), 10 * i + 3, 10 * i + 4));
    }
    h.push(get(101, None, 1000, 1001)); // a lost write: violation
    let start = Instant::now();
    assert!(matches!(check_with_budget(&h, 1_000_000), Verdict::Violation { .. }));
    h.pop();
    assert_eq!(check_with_budget(&h, 1_000_000), Verdict::Linearizable);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn unknown_write_read_only_through_a_failed_cas_is_kept() {
    // The failed cas needs the state to differ from "a" at its point: only the unknown
    // write of "b" explains it, so it must not be pruned.
    assert_ok(&[set(1, "a", 0, 1), set_unknown(2, "b", 2), cas(3, Some("a"), "c", false, 10, 11)]);
    assert_violation(&[set(1, "a", 0, 1), cas(3, Some("a"), "c", false, 10, 11)]);
}

// ---------------------------------------------------------------------------------------
// Random histories.

/// SplitMix64: a tiny seeded generator, enough for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A history linearizable by construction: ops take effect at increasing linearization
/// points on a sequential model; each op's interval covers its point and reaches out
/// by up to `spread` on both sides, so up to about `2 * spread / 10` ops overlap.
fn random_valid_history(seed: u64, n: usize, keys: usize, spread: u64) -> Vec<Operation> {
    random_history(seed, n, keys, spread, false)
}

/// As [`random_valid_history`]; with `failed_cas_as_reads` a cas that did not swap is
/// recorded as a read of the value it found, as `raft-cli chaos` records it.
fn random_history(seed: u64, n: usize, keys: usize, spread: u64, failed_cas_as_reads: bool) -> Vec<Operation> {
    let mut rng = Rng(seed);
    let mut state: HashMap<String, Option<String>> = HashMap::new();
    let mut history = Vec::new();
    for i in 0..n {
        let point = 1_000 + 10 * i as u64;
        let key = format!("k{}", rng.below(keys as u64));
        let cur = state.entry(key.clone()).or_default();
        let value = format!("v{i}");
        let fate = rng.below(20);
        let the_op = match rng.below(10) {
            0..=3 => Op::Get,
            4..=5 => Op::Set(value.clone()),
            6 => Op::Delete,
            _ => {
                // Expect the current value most of the time, so cas often succeeds.
                let expected =
                    if rng.below(3) > 0 { cur.clone() } else { Some(format!("v{}", rng.below(i as u64 + 1))) };
                Op::Cas { expected, new: value.clone() }
            }
        };
        let outcome_if_applied = |cur: &mut Option<String>| match &the_op {
            Op::Get => Outcome::Value(cur.clone()),
            Op::Set(v) => {
                *cur = Some(v.clone());
                Outcome::Done
            }
            Op::Delete => {
                *cur = None;
                Outcome::Done
            }
            Op::Cas { expected, new } => {
                let ok = cur == expected;
                if ok {
                    *cur = Some(new.clone());
                }
                Outcome::Cas(ok)
            }
        };
        let outcome = match fate {
            0 => Outcome::Failed, // not applied
            1 => {
                // Unknown: applied or not, at random.
                if rng.below(2) == 0 {
                    outcome_if_applied(cur);
                }
                Outcome::Unknown
            }
            _ => outcome_if_applied(cur),
        };
        let invoke = point - rng.below(spread);
        let complete = point + rng.below(spread);
        let (the_op, outcome) = match (the_op, outcome) {
            (Op::Cas { .. }, Outcome::Cas(false)) if failed_cas_as_reads => (Op::Get, Outcome::Value(cur.clone())),
            other => other,
        };
        history.push(Operation { client: i as u64 % 8, key, op: the_op, invoke, complete, outcome });
    }
    history
}

#[test]
fn random_valid_histories_are_linearizable_and_fast() {
    let start = Instant::now();
    for seed in 0..20 {
        let h = random_valid_history(seed, 2_000, 3, 40);
        assert_eq!(check(&h), Verdict::Linearizable, "seed {seed}");
    }
    // One big one with a lot of concurrency.
    let h = random_valid_history(99, 20_000, 5, 60);
    assert_eq!(check(&h), Verdict::Linearizable);
    assert!(start.elapsed() < Duration::from_secs(20), "too slow: {:?}", start.elapsed());
}

#[test]
fn corrupted_random_histories_are_caught_and_shrunk() {
    let mut caught = 0;
    for seed in 0..20 {
        let mut h = random_valid_history(1000 + seed, 500, 2, 30);
        // Make one acknowledged read return a value that was never written.
        let Some(i) = h.iter().position(|o| o.op == Op::Get && matches!(o.outcome, Outcome::Value(_))) else {
            continue;
        };
        // A value written much later: a read from the future.
        let key = h[i].key.clone();
        let Some(later) =
            h.iter().skip(i + 1).filter(|o| o.key == key && o.invoke > h[i].complete).find_map(|o| {
                match (&o.op, &o.outcome) {
                    (Op::Set(v), Outcome::Done) => Some(v.clone()),
                    _ => None,
                }
            })
        else {
            continue;
        };
        h[i].outcome = Outcome::Value(Some(later));
        let w = assert_violation(&h);
        assert!(w.len() <= 4, "seed {seed}: witness of {} ops:\n{}", w.len(), show(&w));
        caught += 1;
    }
    assert!(caught >= 10, "only {caught} corruptions made");
}

#[test]
fn large_violation_shrinks_quickly_to_a_few_ops() {
    // The shape of a chaos history: a few hot keys, unknown outcomes, failed cas as reads.
    let mut h = random_history(7, 5_000, 5, 40, true);
    // Lose an acknowledged write in the middle: the read right after it sees the old value.
    let (w, _) = h
        .iter()
        .enumerate()
        .skip(2_500)
        .find(|(_, o)| matches!((&o.op, &o.outcome), (Op::Set(_), Outcome::Done)))
        .expect("a set");
    let after = h[w].complete;
    let before_value: Option<String> = h
        .iter()
        .take(w)
        .rev()
        .filter(|o| o.key == h[w].key)
        .find_map(|o| match (&o.op, &o.outcome) {
            (Op::Set(v), Outcome::Done) if o.complete < h[w].invoke => Some(Some(v.clone())),
            _ => None,
        })
        .flatten();
    let key = h[w].key.clone();
    h.push(Operation {
        client: 99,
        key,
        op: Op::Get,
        invoke: after + 1,
        complete: after + 2,
        outcome: Outcome::Value(before_value),
    });
    let start = Instant::now();
    let w = assert_violation(&h);
    assert!(start.elapsed() < Duration::from_secs(10), "shrinking took {:?}", start.elapsed());
    assert!(w.len() <= 6, "witness of {} ops:\n{}", w.len(), show(&w));
}
