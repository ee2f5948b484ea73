//! The frame codec: `u32` big-endian length, then bincode 2 (serde) bytes.

use serde::{de::DeserializeOwned, Serialize};

/// The largest frame accepted, in bytes. A snapshot chunk (512 KiB) or an append
/// (at most 1 MiB of payload) plus headers fits well below it; anything larger is
/// garbage or hostile and is refused before allocating.
pub const MAX_FRAME_BYTES: usize = 8 << 20;
/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// Malformed input on a connection. Each closes that connection only.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversize { len: usize, max: usize },
    #[error("frame does not decode: {0}")]
    Decode(String),
    #[error("frame has {0} trailing bytes after the message")]
    Trailing(usize),
    #[error("value does not encode: {0}")]
    Encode(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decoding is limited to [`MAX_FRAME_BYTES`]: bincode allocates a string or vector for
/// the length the input *claims* before reading it, so without a limit a 15-byte frame
/// claiming a 64 TiB key would abort the process. With it, the claim is refused first.
fn decode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes `msg` as one frame (length prefix included) appended to `out`.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = bincode::serde::encode_into_std_write(msg, out, config()) {
        // Never leave half a frame behind: the stream would lose its framing.
        out.truncate(start);
        return Err(WireError::Encode(e.to_string()));
    }
    let len = out.len() - start - LEN_BYTES;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(WireError::Oversize { len, max: MAX_FRAME_BYTES });
    }
    out[start..start + LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Encodes `msg` as one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Decodes a frame body (without its length prefix). All of it must be used.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (msg, used) =
        bincode::serde::decode_from_slice(body, decode_config()).map_err(|e| WireError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::Trailing(body.len() - used));
    }
    Ok(msg)
}

/// Splits complete frames off the front of a receive buffer.
///
/// Returns `Ok(Some(body range))` for the first complete frame, `Ok(None)` when more
/// bytes are needed, and `Err` as soon as the length prefix is over the limit (before
/// the body is buffered, let alone allocated).
pub fn next_frame(buf: &[u8]) -> Result<Option<std::ops::Range<usize>>, WireError> {
    if buf.len() < LEN_BYTES {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..LEN_BYTES].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::Oversize { len, max: MAX_FRAME_BYTES });
    }
    if buf.len() < LEN_BYTES + len {
        return Ok(None);
    }
    Ok(Some(LEN_BYTES..LEN_BYTES + len))
}

/// A receive buffer that yields whole frames as they complete.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Decodes the next complete frame, if one is buffered.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let avail = &self.buf[self.start..];
        match next_frame(avail)? {
            None => {
                // Compact so the buffer does not grow without bound.
                if self.start > 0 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(None)
            }
            Some(range) => {
                let msg = decode_body(&avail[range.clone()]);
                self.start += range.end;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                msg.map(Some)
            }
        }
    }
}

/// Blocking helpers for simple clients (raft-cli one-shot commands, the supervisor,
/// tests): write one frame, read one frame.
pub mod blocking {
    use super::*;
    use std::io::{self, Read, Write};

    /// Writes `msg` as one frame.
    pub fn write_frame<T: Serialize, W: Write>(w: &mut W, msg: &T) -> io::Result<()> {
        let bytes = encode(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        w.write_all(&bytes)
    }

    /// Reads one frame and decodes it. A clean EOF before the length is `UnexpectedEof`.
    pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> io::Result<T> {
        let mut len = [0u8; LEN_BYTES];
        r.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, WireError::Oversize { len, max: MAX_FRAME_BYTES }));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        decode_body(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn roundtrip_through_reader_byte_by_byte() {
        let req = ClientRequest {
            id: 7,
            body: Request::Write { session: 1, seq: 2, op: WriteOp::Set { key: "k".into(), value: b"v".to_vec() } },
        };
        let mut bytes = encode(&Hello::Client).unwrap();
        encode_into(&req, &mut bytes).unwrap();
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        let mut hello = None;
        for b in bytes {
            r.extend(&[b]);
            if hello.is_none() {
                hello = r.next_frame::<Hello>().unwrap();
                continue;
            }
            if let Some(m) = r.next_frame::<ClientRequest>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(hello, Some(Hello::Client));
        assert_eq!(got, vec![req]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn oversize_length_is_refused_before_the_body_arrives() {
        let mut r = FrameReader::new();
        r.extend(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes());
        match r.next_frame::<Hello>() {
            Err(WireError::Oversize { len, max }) => {
                assert_eq!(len, MAX_FRAME_BYTES + 1);
                assert_eq!(max, MAX_FRAME_BYTES);
            }
            other => panic!("expected oversize error, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut r = FrameReader::new();
        let mut frame = 5u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
        r.extend(&frame);
        assert!(r.next_frame::<ClientRequest>().is_err());
    }

    #[test]
    fn a_hostile_length_inside_a_frame_is_an_error_not_an_allocation() {
        // ClientRequest { id: 1, Write { session: 1, seq: 1, Set { key: <claims 2^46 bytes> ..
        let mut body = vec![1, 0, 1, 1, 0, 253];
        body.extend_from_slice(&(1u64 << 46).to_le_bytes());
        assert!(matches!(decode_body::<ClientRequest>(&body), Err(WireError::Decode(_))));
        // The same for a peer message: a vector of entries claiming 2^40 elements.
        let mut body = vec![1, 2, 3, 4, 0, 0, 253]; // from, to, term, Append, base 0@0, entries:
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode_body::<raft_core::Message>(&body).is_err());
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut body = encode(&Hello::Client).unwrap()[LEN_BYTES..].to_vec();
        body.push(0);
        assert!(matches!(decode_body::<Hello>(&body), Err(WireError::Trailing(1))));
    }
}
