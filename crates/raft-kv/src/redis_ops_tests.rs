//! The operations added for the RESP front end: Redis's semantics, applied alike on
//! every node, exactly once per (session, seq), and counted by the size quota.

use super::*;
use proptest::prelude::*;

fn apply(s: &mut KvStore, op: WriteOp) -> Reply {
    let index = s.applied() + 1;
    let data = EntryData::Command(Command { session: 1, seq: index, op }.encode());
    match s.apply(&Entry { index, term: 1, data }) {
        Applied::Write { reply, .. } => reply,
        other => panic!("not a write: {other:?}"),
    }
}
fn set(k: &str, v: &str) -> WriteOp {
    WriteOp::Set { key: k.into(), value: v.into() }
}
fn get(s: &KvStore, k: &str) -> Option<Vec<u8>> {
    match s.read(&ReadOp::Get { key: k.into() }) {
        Reply::Value(v) => v,
        other => panic!("{other:?}"),
    }
}
fn set_if(k: &str, v: &str, cond: SetCond, get: bool) -> WriteOp {
    WriteOp::SetIf { key: k.into(), value: v.into(), cond, get }
}

#[test]
fn set_nx_xx_and_get_follow_redis() {
    let mut s = KvStore::new();
    assert_eq!(apply(&mut s, set_if("k", "1", SetCond::IfPresent, false)), Reply::SetIf { applied: false, old: None });
    assert_eq!(get(&s, "k"), None, "XX on a missing key sets nothing");
    assert_eq!(apply(&mut s, set_if("k", "1", SetCond::IfAbsent, true)), Reply::SetIf { applied: true, old: None });
    assert_eq!(
        apply(&mut s, set_if("k", "2", SetCond::IfAbsent, true)),
        Reply::SetIf { applied: false, old: Some(b"1".to_vec()) }
    );
    assert_eq!(get(&s, "k"), Some(b"1".to_vec()), "NX on a present key sets nothing");
    assert_eq!(
        apply(&mut s, set_if("k", "3", SetCond::Always, true)),
        Reply::SetIf { applied: true, old: Some(b"1".to_vec()) }
    );
    assert_eq!(get(&s, "k"), Some(b"3".to_vec()));
}

#[test]
fn getdel_and_multi_key_delete_count_what_existed() {
    let mut s = KvStore::new();
    apply(&mut s, set("a", "1"));
    apply(&mut s, set("b", "2"));
    assert_eq!(apply(&mut s, WriteOp::GetDel { key: "a".into() }), Reply::Value(Some(b"1".to_vec())));
    assert_eq!(apply(&mut s, WriteOp::GetDel { key: "a".into() }), Reply::Value(None));
    let del = WriteOp::DeleteMany { keys: vec!["a".into(), "b".into(), "c".into()] };
    assert_eq!(apply(&mut s, del), Reply::Count(1));
    assert!(s.is_empty());
    assert_eq!(s.state_bytes(), 0);
}

#[test]
fn mset_applies_every_pair_in_one_entry() {
    let mut s = KvStore::new();
    let pairs = vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec()), ("a".into(), b"3".to_vec())];
    assert_eq!(apply(&mut s, WriteOp::SetMany { pairs }), Reply::Done);
    assert_eq!(s.applied(), 1, "one entry");
    assert_eq!((get(&s, "a"), get(&s, "b")), (Some(b"3".to_vec()), Some(b"2".to_vec())), "the last pair wins");
    let keys = vec!["a".into(), "zz".into(), "b".into()];
    assert_eq!(s.read(&ReadOp::GetMany { keys }), Reply::Values(vec![Some(b"3".to_vec()), None, Some(b"2".to_vec())]));
    let keys = vec!["a".into(), "a".into(), "zz".into()];
    assert_eq!(s.read(&ReadOp::Exists { keys }), Reply::Count(2), "a repeated key counts each time");
    assert_eq!(s.read(&ReadOp::Count), Reply::Count(2));
}

#[test]
fn incrby_has_redis_integer_semantics_and_errors() {
    let mut s = KvStore::new();
    let incr = |by| WriteOp::IncrBy { key: "n".into(), by };
    assert_eq!(apply(&mut s, incr(1)), Reply::Int(1), "a missing key counts from 0");
    assert_eq!(apply(&mut s, incr(-5)), Reply::Int(-4));
    assert_eq!(get(&s, "n"), Some(b"-4".to_vec()));
    apply(&mut s, set("n", "9223372036854775806"));
    assert_eq!(apply(&mut s, incr(1)), Reply::Int(i64::MAX));
    assert_eq!(apply(&mut s, incr(1)), Reply::Failed(OpError::Overflow));
    assert_eq!(get(&s, "n"), Some(i64::MAX.to_string().into_bytes()), "an overflow changes nothing");
    for bad in ["abc", " 1", "01", "1.0", ""] {
        apply(&mut s, set("n", bad));
        assert_eq!(apply(&mut s, incr(1)), Reply::Failed(OpError::NotAnInteger), "{bad:?}");
        assert_eq!(get(&s, "n"), Some(bad.as_bytes().to_vec()));
    }
    assert_eq!(OpError::NotAnInteger.to_string(), "value is not an integer or out of range");
    assert_eq!(OpError::Overflow.to_string(), "increment or decrement would overflow");
}

#[test]
fn append_and_strlen() {
    let mut s = KvStore::new();
    assert_eq!(apply(&mut s, WriteOp::Append { key: "k".into(), value: b"ab".to_vec() }), Reply::Count(2));
    assert_eq!(apply(&mut s, WriteOp::Append { key: "k".into(), value: b"cd".to_vec() }), Reply::Count(4));
    assert_eq!(s.read(&ReadOp::Strlen { key: "k".into() }), Reply::Count(4));
    assert_eq!(s.read(&ReadOp::Strlen { key: "none".into() }), Reply::Count(0));
    apply(&mut s, WriteOp::Set { key: "k".into(), value: vec![0; MAX_VALUE_BYTES] });
    let over = WriteOp::Append { key: "k".into(), value: b"x".to_vec() };
    assert_eq!(apply(&mut s, over), Reply::Failed(OpError::TooLarge));
    assert_eq!(s.read(&ReadOp::Strlen { key: "k".into() }), Reply::Count(MAX_VALUE_BYTES as u64));
}

#[test]
fn a_retried_incr_applies_once() {
    let mut s = KvStore::new();
    let e = |index| Entry {
        index,
        term: 1,
        data: EntryData::Command(
            Command { session: 5, seq: 1, op: WriteOp::IncrBy { key: "n".into(), by: 1 } }.encode(),
        ),
    };
    s.apply(&e(1));
    let retry = s.apply(&e(2));
    assert!(matches!(retry, Applied::Write { reply: Reply::Int(1), duplicate: true, .. }), "{retry:?}");
    assert_eq!(get(&s, "n"), Some(b"1".to_vec()));
}

#[test]
fn scan_resumes_after_the_last_key_and_matches_globs() {
    let mut s = KvStore::new();
    for k in ["a1", "a2", "b1", "b2", "b3", "c1"] {
        apply(&mut s, set(k, "v"));
    }
    let scan = |after: Option<&str>, pattern: Option<&str>, count| {
        s.read(&ReadOp::Scan {
            after: after.map(Into::into),
            pattern: pattern.map(Into::into),
            count,
            max_examined: 100,
        })
    };
    let first = scan(None, None, 4);
    assert_eq!(
        first,
        Reply::Scan { keys: vec!["a1".into(), "a2".into(), "b1".into(), "b2".into()], next: Some("b2".into()) }
    );
    assert_eq!(scan(Some("b2"), None, 4), Reply::Scan { keys: vec!["b3".into(), "c1".into()], next: None });
    // The literal prefix narrows the range; the glob filters inside it.
    assert_eq!(scan(None, Some("b[13]"), 10), Reply::Scan { keys: vec!["b1".into(), "b3".into()], next: None });
    assert_eq!(
        scan(None, Some("*1"), 10),
        Reply::Scan { keys: vec!["a1".into(), "b1".into(), "c1".into()], next: None }
    );
    // The examination budget bounds the work even when nothing matches.
    let bounded = s.read(&ReadOp::Scan { after: None, pattern: Some("*z".into()), count: 10, max_examined: 2 });
    assert_eq!(bounded, Reply::Scan { keys: vec![], next: Some("a2".into()) });
}

#[test]
fn multi_key_writes_are_validated() {
    let too_many = WriteOp::DeleteMany { keys: vec!["k".into(); MAX_KEYS_PER_OP + 1] };
    assert!(too_many.validate().unwrap_err().contains("keys"));
    assert!(WriteOp::DeleteMany { keys: vec![] }.validate().is_err());
    let empty_key = WriteOp::SetMany { pairs: vec![("a".into(), vec![]), (String::new(), vec![])] };
    assert!(empty_key.validate().unwrap_err().contains("key must be"));
    let big = WriteOp::SetMany { pairs: (0..20).map(|i| (format!("k{i}"), vec![0; MAX_VALUE_BYTES])).collect() };
    assert!(big.validate().unwrap_err().contains("over the limit"));
}

fn any_op() -> impl Strategy<Value = WriteOp> {
    let key = || (0u8..5).prop_map(|k| format!("k{k}"));
    let value = || {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            (-1000i64..1000).prop_map(|n| n.to_string().into_bytes())
        ]
    };
    let cond = prop_oneof![Just(SetCond::Always), Just(SetCond::IfAbsent), Just(SetCond::IfPresent)];
    prop_oneof![
        (key(), value()).prop_map(|(key, value)| WriteOp::Set { key, value }),
        (key(), value(), cond, any::<bool>()).prop_map(|(key, value, cond, get)| WriteOp::SetIf {
            key,
            value,
            cond,
            get
        }),
        key().prop_map(|key| WriteOp::GetDel { key }),
        proptest::collection::vec(key(), 1..4).prop_map(|keys| WriteOp::DeleteMany { keys }),
        proptest::collection::vec((key(), value()), 1..4).prop_map(|pairs| WriteOp::SetMany { pairs }),
        (key(), prop_oneof![Just(i64::MAX), Just(i64::MIN), -10i64..10])
            .prop_map(|(key, by)| WriteOp::IncrBy { key, by }),
        (key(), value()).prop_map(|(key, value)| WriteOp::Append { key, value }),
    ]
}

proptest! {
    /// The state is a function of the log: two stores applying the same ops agree, a
    /// snapshot restores to the same store; the quota's byte count stays exact and
    /// `growth` never under-predicts (the quota must not be passed unseen).
    #[test]
    fn new_ops_are_deterministic_and_counted(ops in proptest::collection::vec(any_op(), 1..50)) {
        let (mut a, mut b) = (KvStore::new(), KvStore::new());
        for op in ops {
            let before = a.state_bytes();
            let growth = a.growth(&op);
            prop_assert!(growth <= KvStore::growth_bound(&op), "the bound is never below the growth: {op:?}");
            let ra = apply(&mut a, op.clone());
            let rb = apply(&mut b, op);
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(a.state_bytes(), a.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>());
            prop_assert!(a.state_bytes().saturating_sub(before) <= growth);
        }
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(KvStore::restore(&a.snapshot(), a.applied()).unwrap(), a);
    }
}
