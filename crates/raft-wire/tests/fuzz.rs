//! Proptest runs of the fuzz targets in `raft_wire::fuzz` (the cargo-fuzz targets in the
//! workspace's `fuzz/` call the same functions): arbitrary bytes, and streams of valid
//! frames of every top-level type with arbitrary damage. None may panic.
//! `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use raft_core::{Entry, EntryData, Message, MessageBody, SnapshotMeta};
use raft_wire::supervisor::{SupervisorRequest, SupervisorResponse};
use raft_wire::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// One valid frame of each top-level type, with field values at the edges.
fn valid_frames() -> Vec<Vec<u8>> {
    let m = |body| Message { from: 1, to: 2, term: u64::MAX, body };
    let entries = vec![
        Entry { index: 5, term: 3, data: EntryData::Noop },
        Entry { index: 6, term: 3, data: EntryData::Command(vec![0xff; 40]) },
    ];
    let meta = SnapshotMeta { index: u64::MAX, term: 0, voters: vec![1, 2, 3], learners: vec![] };
    let mut f = vec![
        encode(&Hello::Client).unwrap(),
        encode(&ClientRequest {
            id: u64::MAX,
            body: Request::Write { session: 1, seq: 2, op: WriteOp::Set { key: "k".into(), value: b"v".to_vec() } },
        })
        .unwrap(),
        encode(&ClientRequest { id: 0, body: Request::Isolate { peers: vec![0, u64::MAX] } }).unwrap(),
        encode(&ClientResponse { id: 3, body: Response::Unknown { reason: "é".into() } }).unwrap(),
        encode(&SupervisorRequest::Partition(vec![vec![1, 2], vec![3]])).unwrap(),
        encode(&SupervisorResponse::Error("no".into())).unwrap(),
    ];
    for body in [
        MessageBody::Append { base_index: 4, base_term: 3, entries, commit: u64::MAX },
        MessageBody::InstallSnapshot { meta, offset: 7, data: vec![1, 2, 3], done: true },
        MessageBody::AppendResponse { success: false, match_index: 1, reject_hint_index: 2, reject_hint_term: 3 },
        MessageBody::Heartbeat { commit: 0, read_seq: u64::MAX },
        MessageBody::Vote { last_index: 1, last_term: 1, transfer: true },
        MessageBody::TimeoutNow,
    ] {
        f.push(encode(&m(body)).unwrap());
    }
    f
}

#[derive(Clone, Debug)]
enum Damage {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Splice {
        at: usize,
        bytes: Vec<u8>,
    },
    /// A length or count written over: big-endian (frame lengths) or a varint prefix.
    Word {
        at: usize,
        value: u32,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (any::<usize>(), prop_oneof![Just(0xfb), Just(0xfc), Just(0xfd), Just(0xff), any::<u8>()])
            .prop_map(|(at, byte)| Damage::Set { at, byte }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
        (any::<usize>(), prop_oneof![Just(0), Just(u32::MAX), Just(8 << 20), Just((8 << 20) + 1), any::<u32>()])
            .prop_map(|(at, value)| Damage::Word { at, value }),
    ]
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let n = bytes.len().max(1);
        match d {
            Damage::Flip { at, bit } if !bytes.is_empty() => bytes[at % n] ^= 1 << bit,
            Damage::Set { at, byte } if !bytes.is_empty() => bytes[at % n] = *byte,
            Damage::Truncate { at } => bytes.truncate(at % (n + 1)),
            Damage::Splice { at, bytes: b } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Damage::Word { at, value } if bytes.len() >= 4 => {
                let at = at % (bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// A connection's bytes: a selector byte (reader type and chunk size), then arbitrary
/// bytes or a run of valid frames with damage.
fn connection() -> impl Strategy<Value = Vec<u8>> {
    let frames = valid_frames();
    let n = frames.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (any::<u8>(), prop::collection::vec(0..n, 1..6), prop::collection::vec(damage(), 0..4)).prop_map(
            move |(sel, picks, d)| {
                let mut bytes = vec![sel];
                for p in picks {
                    bytes.extend_from_slice(&frames[p]);
                }
                // The selector byte is not part of the stream's framing: keep it apart.
                let tail = apply(bytes.split_off(1), &d);
                bytes.extend(tail);
                bytes
            }
        ),
    ]
}

/// Frame bodies: arbitrary, or a valid body with damage.
fn frame_body() -> impl Strategy<Value = Vec<u8>> {
    let bodies: Vec<Vec<u8>> = valid_frames().into_iter().map(|f| f[LEN_BYTES..].to_vec()).collect();
    let n = bodies.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (0..n, prop::collection::vec(damage(), 1..4)).prop_map(move |(i, d)| apply(bodies[i].clone(), &d)),
    ]
}

#[test]
fn frame_streams_never_panic() {
    runner(cases(5000))
        .run(&connection(), |b| {
            fuzz::frames(&b);
            // Without the selector byte too: the stream then starts at a frame boundary.
            fuzz::frames(b.get(1..).unwrap_or_default());
            Ok(())
        })
        .unwrap();
}

#[test]
fn frame_bodies_never_panic() {
    runner(cases(5000))
        .run(&frame_body(), |b| {
            fuzz::body(&b);
            Ok(())
        })
        .unwrap();
}

/// The valid frames themselves pass every check of the targets.
#[test]
fn valid_frames_pass_the_targets() {
    for f in valid_frames() {
        fuzz::body(&f[LEN_BYTES..]);
        for sel in 0..7u8 {
            let mut b = vec![sel];
            b.extend_from_slice(&f);
            fuzz::frames(&b);
        }
    }
}

/// With `FUZZ_SEED_DIR` set, writes the valid frames as seed inputs for the cargo-fuzz
/// targets `frames` and `frame_body` (`$FUZZ_SEED_DIR/<target>/seed-N`).
#[test]
fn seed_corpus() {
    let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    for (target, strip) in [("frames", 0), ("frame_body", LEN_BYTES)] {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        for (i, f) in valid_frames().into_iter().enumerate() {
            std::fs::write(dir.join(target).join(format!("seed-{i}")), &f[strip..]).unwrap();
        }
    }
}
