//! Replies: what a command answers, encoded for the connection's protocol version.

use crate::{err, length_line, parse_int, ProtocolError};

/// The protocol a connection speaks: RESP2 until it sends `HELLO 3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// One reply. RESP3-only kinds ([`Value::Nil`] as `_`, [`Value::Map`]) are lowered for
/// RESP2 by [`Value::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`: a short status line (no CR or LF inside).
    Simple(String),
    /// `-ERR ...`: the text starts with the error's code (`ERR`, `CLUSTERDOWN`, ...).
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    Array(Vec<Value>),
    /// Pairs: a flat array of keys and values in RESP2, `%` in RESP3.
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    /// `-ERR <text>`.
    pub fn err(text: impl std::fmt::Display) -> Value {
        Value::Error(format!("ERR {text}"))
    }

    pub fn bulk(b: impl Into<Vec<u8>>) -> Value {
        Value::Bulk(b.into())
    }

    /// A value or a nil.
    pub fn opt(b: Option<Vec<u8>>) -> Value {
        b.map_or(Value::Nil, Value::Bulk)
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut Vec<u8>) {
        fn line(out: &mut Vec<u8>, prefix: u8, text: &str) {
            out.push(prefix);
            // A status or error line cannot hold CR or LF; replace them rather than
            // break the stream (error texts quote client input).
            out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
        match self {
            Value::Simple(s) => line(out, b'+', s),
            Value::Error(s) => line(out, b'-', s),
            Value::Int(n) => line(out, b':', &n.to_string()),
            Value::Bulk(b) => {
                line(out, b'$', &b.len().to_string());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Nil => match proto {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Value::Array(items) => {
                line(out, b'*', &items.len().to_string());
                for v in items {
                    v.encode(proto, out);
                }
            }
            Value::Map(pairs) => {
                match proto {
                    Protocol::Resp2 => line(out, b'*', &(pairs.len() * 2).to_string()),
                    Protocol::Resp3 => line(out, b'%', &pairs.len().to_string()),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
        }
    }

    /// The encoding alone.
    pub fn to_bytes(&self, proto: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(proto, &mut out);
        out
    }

    /// What a RESP2 client reads back from `self`'s RESP2 encoding.
    pub fn lowered(&self) -> Value {
        match self {
            Value::Array(items) => Value::Array(items.iter().map(Value::lowered).collect()),
            Value::Map(pairs) => Value::Array(pairs.iter().flat_map(|(k, v)| [k.lowered(), v.lowered()]).collect()),
            other => other.clone(),
        }
    }
}

/// Most elements a parsed reply array may claim: [`parse_reply`] is for tests and tools,
/// and a damaged count must not make it allocate.
const MAX_REPLY_ELEMENTS: i64 = 1 << 24;
/// Deepest nesting [`parse_reply`] follows: recursion is bounded.
const MAX_REPLY_DEPTH: usize = 64;

/// Reads one reply from the start of `buf`: `Ok(None)` if more bytes are needed.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn text_line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &buf[at..];
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..cr], at + cr + 2))
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, ProtocolError> {
    if depth > MAX_REPLY_DEPTH {
        return err("reply nested too deep");
    }
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    match kind {
        b'+' | b'-' => {
            let Some((line, next)) = text_line(buf, at) else { return Ok(None) };
            let text = String::from_utf8_lossy(&line[1..]).into_owned();
            Ok(Some((if kind == b'+' { Value::Simple(text) } else { Value::Error(text) }, next)))
        }
        b'_' => {
            let Some((line, next)) = length_line(buf, at)? else { return Ok(None) };
            if line.len() != 1 {
                return err("bad null");
            }
            Ok(Some((Value::Nil, next)))
        }
        b':' => {
            let Some((line, next)) = length_line(buf, at)? else { return Ok(None) };
            let n = parse_int(&line[1..]).ok_or_else(|| ProtocolError("bad integer".into()))?;
            Ok(Some((Value::Int(n), next)))
        }
        b'$' => {
            let Some((line, data)) = length_line(buf, at)? else { return Ok(None) };
            let len = parse_int(&line[1..]).ok_or_else(|| ProtocolError("bad bulk length".into()))?;
            if len == -1 {
                return Ok(Some((Value::Nil, data)));
            }
            if len < 0 {
                return err("bad bulk length");
            }
            let len = len as usize;
            if buf.len() < data + len + 2 {
                return Ok(None);
            }
            if &buf[data + len..data + len + 2] != b"\r\n" {
                return err("expected CRLF after a bulk string");
            }
            Ok(Some((Value::Bulk(buf[data..data + len].to_vec()), data + len + 2)))
        }
        b'*' | b'%' => {
            let Some((line, mut next)) = length_line(buf, at)? else { return Ok(None) };
            let n = parse_int(&line[1..]).ok_or_else(|| ProtocolError("bad length".into()))?;
            if n == -1 && kind == b'*' {
                return Ok(Some((Value::Nil, next)));
            }
            if !(0..=MAX_REPLY_ELEMENTS).contains(&n) {
                return err("bad length");
            }
            let mut items = Vec::new();
            let elements = if kind == b'%' { n * 2 } else { n };
            for _ in 0..elements {
                let Some((v, after)) = parse_at(buf, next, depth + 1)? else { return Ok(None) };
                items.push(v);
                next = after;
            }
            if kind == b'*' {
                return Ok(Some((Value::Array(items), next)));
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Ok(Some((Value::Map(pairs), next)))
        }
        other => err(format!("unknown reply type '{}'", other as char)),
    }
}
