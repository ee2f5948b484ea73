use super::*;

const LIMITS: Limits = Limits { max_bulk_bytes: 16, max_args: 4, max_inline_bytes: 32, max_command_bytes: 40 };

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn parse(buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    parse_command(buf, &LIMITS)
}

#[test]
fn a_multibulk_command_parses_and_says_how_much_it_took() {
    let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
    let f = parse(buf).unwrap().unwrap();
    assert_eq!(f.args, args(&["GET", "k"]));
    let g = parse(&buf[f.used..]).unwrap().unwrap();
    assert_eq!(g.args, args(&["PING"]));
    assert_eq!(f.used + g.used, buf.len());
}

#[test]
fn binary_bulk_strings_keep_every_byte() {
    let f = parse(b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\0\xff\r\n").unwrap().unwrap();
    assert_eq!(f.args[1], b"\r\n\0\xff");
}

#[test]
fn inline_commands_split_like_redis() {
    assert_eq!(parse(b"SET k v\r\n").unwrap().unwrap().args, args(&["SET", "k", "v"]));
    assert_eq!(parse(b"  get   k\n").unwrap().unwrap().args, args(&["get", "k"]));
    assert_eq!(parse(b"SET k \"a b\\n\"\r\n").unwrap().unwrap().args, args(&["SET", "k", "a b\n"]));
    assert_eq!(parse(b"SET k '\\'x'\r\n").unwrap().unwrap().args, args(&["SET", "k", "'x"]));
    assert_eq!(parse(b"ECHO \"\\x41\"\r\n").unwrap().unwrap().args, args(&["ECHO", "A"]));
    let empty = parse(b"\r\n").unwrap().unwrap();
    assert!(empty.args.is_empty());
    assert_eq!(empty.used, 2);
}

#[test]
fn empty_arrays_are_skipped_like_redis() {
    assert_eq!(parse(b"*0\r\n").unwrap().unwrap(), Frame { args: vec![], used: 4 });
    assert_eq!(parse(b"*-1\r\n").unwrap().unwrap(), Frame { args: vec![], used: 5 });
}

#[test]
fn malformed_frames_are_protocol_errors_in_redis_words() {
    let e = |b: &[u8]| parse(b).unwrap_err().0;
    assert_eq!(e(b"*x\r\n"), "invalid multibulk length");
    assert_eq!(e(b"*5\r\n"), "invalid multibulk length", "over max_args");
    assert_eq!(e(b"*1\r\n+GET\r\n"), "expected '$', got '+'");
    assert_eq!(e(b"*1\r\n$17\r\n"), "invalid bulk length", "over max_bulk_bytes");
    assert_eq!(e(b"*1\r\n$-2\r\n"), "invalid bulk length");
    assert_eq!(e(b"*1\r\n$1\r\nab\r\n"), "expected CRLF after a bulk string");
    assert_eq!(e(b"*3\r\n$16\r\naaaaaaaaaaaaaaaa\r\n$16\r\naaaaaaaaaaaaaaaa\r\n$16\r\n"), "command over 40 bytes");
    assert_eq!(e(b"SET \"k v\r\n"), "unbalanced quotes in request");
    assert_eq!(e(b"SET \"k\"v\r\n"), "unbalanced quotes in request");
    assert_eq!(e(&[b'a'; 33]), "too big inline request");
    assert_eq!(e(b"a b c d e\r\n"), "too many arguments in inline request");
    assert_eq!(e(b"*1\r\n$1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), "length line too long");
    assert_eq!(e(b"*1\rx"), "expected CRLF after a length");
}

#[test]
fn a_bulk_claim_over_the_limit_is_refused_before_its_bytes_arrive() {
    // Only the header arrived: the claim alone is refused, nothing waits for 1 GB.
    assert!(parse(b"*2\r\n$3\r\nSET\r\n$1000000000\r\n").is_err());
}

#[test]
fn replies_encode_in_both_protocols() {
    let v = Value::Map(vec![(Value::bulk("a"), Value::Nil), (Value::bulk("b"), Value::Int(-3))]);
    assert_eq!(v.to_bytes(Protocol::Resp3), b"%2\r\n$1\r\na\r\n_\r\n$1\r\nb\r\n:-3\r\n");
    assert_eq!(v.to_bytes(Protocol::Resp2), b"*4\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n:-3\r\n");
    assert_eq!(Value::ok().to_bytes(Protocol::Resp2), b"+OK\r\n");
    assert_eq!(Value::err("x\r\ny").to_bytes(Protocol::Resp2), b"-ERR x  y\r\n", "no CRLF inside a line");
}

#[test]
fn replies_parse_back() {
    let (v, used) = parse_reply(b"*3\r\n+OK\r\n$-1\r\n:7\r\nrest").unwrap().unwrap();
    assert_eq!(v, Value::Array(vec![Value::ok(), Value::Nil, Value::Int(7)]));
    assert_eq!(used, 18);
    assert!(parse_reply(b"?x\r\n").is_err());
    assert_eq!(parse_reply(b"*-1\r\n").unwrap().unwrap().0, Value::Nil);
}

#[test]
fn encode_command_is_what_parse_command_reads() {
    let a = args(&["MSET", "k", "v"]);
    let bytes = encode_command(&a);
    assert_eq!(parse(&bytes).unwrap().unwrap(), Frame { args: a, used: bytes.len() });
}
