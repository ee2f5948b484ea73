//! # raft-resp: the Redis serialization protocol, pure
//!
//! What a Redis client sends and what it expects back, with no sockets: a node's RESP
//! front end (`raft-node`'s `resp` module) feeds it the bytes a connection delivered and
//! writes out the bytes it encodes.
//!
//! * [`parse_command`] reads one command from the start of a buffer: a RESP2 array of bulk
//!   strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every client library sends) or an
//!   inline command (`GET k\r\n`, what a person types into `telnet`). It answers
//!   "complete" (the arguments and how many bytes they took), "incomplete" (wait for more
//!   bytes) or "invalid" (a [`ProtocolError`] worded as Redis words it; the connection
//!   is then closed). Every strict prefix of a valid frame is "incomplete", never
//!   "invalid": a frame split across reads is never refused (property-tested).
//! * [`Value`] is a reply; [`Value::encode`] writes it in RESP2 or RESP3 (`HELLO 3`).
//!   RESP3-only types are lowered for a RESP2 connection as Redis does (a map becomes a
//!   flat array, a null a null bulk string).
//! * [`parse_reply`] reads a reply back (tests, and any client-side use).
//!
//! ## Limits
//!
//! Nothing is allocated on a length claim before it is checked against [`Limits`]: a
//! bulk string over `max_bulk_bytes`, an array over `max_args` elements, an inline line
//! over `max_inline_bytes` or a command whose bulk strings add up to more than
//! `max_command_bytes` is invalid at once, before its bytes arrive. So a connection's
//! buffer never needs to hold more than one command at its limit.

mod inline;
mod reply;
pub use reply::{parse_reply, Protocol, Value};

/// A command frame is refused before its bytes are buffered when it breaks one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (one argument).
    pub max_bulk_bytes: usize,
    /// Most arguments in one command (the command name included).
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
    /// Most bytes of bulk strings in one command, all arguments together.
    pub max_command_bytes: usize,
}

/// Redis's own inline limit (`PROTO_INLINE_MAX_SIZE`): a line typed by a person is short.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 64 * 1024;
/// The longest array or bulk length line that can be valid (`*` or `$`, a sign, 20
/// digits, CRLF): a longer one without its CRLF is refused, not waited for.
const MAX_LENGTH_LINE_BYTES: usize = 32;

/// A client broke the protocol; the text follows `-ERR Protocol error: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

fn err<T>(why: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(why.into()))
}

/// One parsed command frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The arguments, the command name first. Empty for an empty line or `*0`, which
    /// Redis skips without an answer.
    pub args: Vec<Vec<u8>>,
    /// Bytes of the buffer this frame took.
    pub used: usize,
}

/// Reads one command from the start of `buf`: `Ok(None)` if more bytes are needed.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => inline::parse_inline(buf, limits),
    }
}

/// Finds the CRLF-terminated line starting at `at`: `Ok(None)` when it is not complete
/// yet, an error when it is longer than any valid length line.
fn length_line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[at..];
    match rest.iter().take(MAX_LENGTH_LINE_BYTES).position(|&b| b == b'\r') {
        Some(cr) => {
            if rest.len() < cr + 2 {
                return Ok(None);
            }
            if rest[cr + 1] != b'\n' {
                return err("expected CRLF after a length");
            }
            Ok(Some((&rest[..cr], at + cr + 2)))
        }
        None if rest.len() >= MAX_LENGTH_LINE_BYTES => err("length line too long"),
        None => Ok(None),
    }
}

fn parse_int(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
    let Some((line, mut at)) = length_line(buf, 0)? else { return Ok(None) };
    let Some(count) = parse_int(&line[1..]) else { return err("invalid multibulk length") };
    if count <= 0 {
        // Redis skips `*0` and `*-1` as empty commands.
        return Ok(Some(Frame { args: Vec::new(), used: at }));
    }
    if count as u64 > limits.max_args as u64 {
        return err("invalid multibulk length");
    }
    let count = count as usize;
    let mut args = Vec::with_capacity(count.min(64));
    let mut total = 0usize;
    for _ in 0..count {
        let Some(&first) = buf.get(at) else { return Ok(None) };
        if first != b'$' {
            return err(format!("expected '$', got '{}'", first as char));
        }
        let Some((line, data)) = length_line(buf, at)? else { return Ok(None) };
        let len = match parse_int(&line[1..]) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk_bytes as u64 => n as usize,
            _ => return err("invalid bulk length"),
        };
        total += len;
        if total > limits.max_command_bytes {
            return err(format!("command over {} bytes", limits.max_command_bytes));
        }
        if buf.len() < data + len + 2 {
            return Ok(None);
        }
        if &buf[data + len..data + len + 2] != b"\r\n" {
            return err("expected CRLF after a bulk string");
        }
        args.push(buf[data..data + len].to_vec());
        at = data + len + 2;
    }
    Ok(Some(Frame { args, used: at }))
}

/// Encodes a command as clients send it: an array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests;
