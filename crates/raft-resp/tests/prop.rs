//! Property tests: what the encoders write, the parsers read back whole; every strict
//! prefix of a valid frame is "incomplete", never an error (a frame split across reads is
//! never refused); arbitrary bytes never panic the parsers.

use proptest::prelude::*;
use raft_resp::{encode_command, parse_command, parse_reply, Frame, Limits, Protocol, Value};

const LIMITS: Limits = Limits { max_bulk_bytes: 512, max_args: 64, max_inline_bytes: 1024, max_command_bytes: 8192 };

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(Value::Simple),
        "ERR [a-z ]{0,12}".prop_map(Value::Error),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bulk),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..12)
}

proptest! {
    #[test]
    fn commands_round_trip(args in command()) {
        let bytes = encode_command(&args);
        prop_assert_eq!(parse_command(&bytes, &LIMITS).unwrap(), Some(Frame { args, used: bytes.len() }));
    }

    #[test]
    fn every_strict_prefix_of_a_command_is_incomplete(args in command()) {
        let bytes = encode_command(&args);
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse_command(&bytes[..cut], &LIMITS), Ok(None), "prefix of {} bytes", cut);
        }
    }

    #[test]
    fn every_strict_prefix_of_an_inline_command_is_incomplete(words in prop::collection::vec("[a-z0-9]{1,8}", 1..8)) {
        let line = format!("{}\r\n", words.join(" "));
        let bytes = line.as_bytes();
        let full = parse_command(bytes, &LIMITS).unwrap().unwrap();
        prop_assert_eq!(full.args, words.iter().map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>());
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse_command(&bytes[..cut], &LIMITS), Ok(None));
        }
    }

    #[test]
    fn replies_round_trip_in_resp3_and_lower_in_resp2(v in value()) {
        let three = v.to_bytes(Protocol::Resp3);
        prop_assert_eq!(parse_reply(&three).unwrap(), Some((v.clone(), three.len())));
        let two = v.to_bytes(Protocol::Resp2);
        prop_assert_eq!(parse_reply(&two).unwrap(), Some((v.lowered(), two.len())));
    }

    #[test]
    fn every_strict_prefix_of_a_reply_is_incomplete(v in value()) {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let bytes = v.to_bytes(proto);
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse_reply(&bytes[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_command(&bytes, &LIMITS);
        let _ = parse_reply(&bytes);
    }

    #[test]
    fn a_parsed_command_never_breaks_a_limit(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(Some(f)) = parse_command(&bytes, &LIMITS) {
            prop_assert!(f.args.len() <= LIMITS.max_args);
            prop_assert!(f.args.iter().all(|a| a.len() <= LIMITS.max_bulk_bytes));
            prop_assert!(f.used <= bytes.len());
        }
    }
}
