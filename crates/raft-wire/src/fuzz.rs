//! Fuzz targets for everything a socket hands a node, the supervisor or a client:
//! frame splitting ([`next_frame`]), the buffered reader ([`FrameReader`]), the
//! non-blocking connection ([`FramedConn`]) and [`decode_body`] of every top-level type
//! (the hello and the peer handshake's challenge and proof, with the acceptor's check
//! of any proof; client requests and responses, raft-core's peer messages, node status,
//! the supervisor's requests and responses). Whatever the bytes, each must answer
//! "frame", "need more" or an error, never panic; a frame that decodes must encode back
//! to a value that decodes equal, and every strict prefix of that frame must read as
//! "need more". The proptests in `tests/fuzz.rs` and the cargo-fuzz targets in the
//! workspace's `fuzz/` both call these functions.

use crate::conn::FramedConn;
use crate::supervisor::{SupervisorRequest, SupervisorResponse};
use crate::*;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::io::{self, Read, Write};

/// `data` as the bytes of one connection: split into frames with [`next_frame`], each
/// body decoded as every top-level type; then the same bytes through a [`FrameReader`]
/// and a [`FramedConn`] in chunks whose sizes come from the data.
pub fn frames(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some(range)) = next_frame(rest) {
        body(&rest[range.clone()]);
        rest = &rest[range.end..];
    }
    let chunk = data.first().map_or(1, |&b| 1 + b as usize % 64);
    match data.first().map_or(0, |b| b % 7) {
        0 => stream::<Hello>(data, chunk),
        1 => stream::<ClientRequest>(data, chunk),
        2 => stream::<ClientResponse>(data, chunk),
        3 => stream::<raft_core::Message>(data, chunk),
        4 => stream::<NodeStatus>(data, chunk),
        5 => stream::<SupervisorRequest>(data, chunk),
        _ => stream::<SupervisorResponse>(data, chunk),
    }
}

/// `data` as one frame body, decoded as every top-level type.
pub fn body(data: &[u8]) {
    decode_checked::<Hello>(data);
    decode_checked::<PeerChallenge>(data);
    decode_checked::<PeerProof>(data);
    peer_proof(data);
    decode_checked::<ClientRequest>(data);
    decode_checked::<ClientResponse>(data);
    decode_checked::<raft_core::Message>(data);
    decode_checked::<NodeStatus>(data);
    decode_checked::<SupervisorRequest>(data);
    decode_checked::<SupervisorResponse>(data);
}

/// The acceptor's side of the peer hello (`auth`) with whatever proof the bytes hold: it
/// must refuse (a MAC made without the key), never panic.
fn peer_proof(data: &[u8]) {
    let Ok(proof) = decode_body::<PeerProof>(data) else { return };
    let key = auth::ClusterKey::from_bytes([7; auth::KEY_BYTES]);
    let (hs, _) = auth::AcceptorHandshake::new(&key, 1, 1, 2, [1; 32], [2; 32]);
    assert!(hs.on_proof(&key, &proof).is_err(), "a proof from fuzzed bytes was accepted");
}

fn decode_checked<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(v) = decode_body::<T>(data) else { return };
    let Ok(frame) = encode(&v) else { return };
    let back: T = decode_body(&frame[LEN_BYTES..]).expect("a frame we encoded decodes");
    assert_eq!(back, v, "decode -> encode -> decode changed the value");
    for cut in [0, 1, LEN_BYTES - 1, LEN_BYTES, frame.len() / 2, frame.len() - 1] {
        if cut < frame.len() {
            assert!(matches!(next_frame(&frame[..cut]), Ok(None)), "a {cut}-byte prefix is not 'need more'");
        }
    }
    assert_eq!(next_frame(&frame).expect("whole frame"), Some(LEN_BYTES..frame.len()));
}

/// Reads `data` as a connection of `T` frames arriving `chunk` bytes at a time, through
/// a [`FrameReader`] and a [`FramedConn`]; both must yield the same frames and stop at
/// the same error (where a node closes the connection).
fn stream<T: DeserializeOwned + PartialEq + Debug>(data: &[u8], chunk: usize) {
    let mut reader = FrameReader::new();
    let mut via_reader = Vec::new();
    let mut reader_failed = false;
    'feed: for c in data.chunks(chunk) {
        reader.extend(c);
        loop {
            match reader.next_frame::<T>() {
                Ok(Some(v)) => via_reader.push(v),
                Ok(None) => break,
                Err(_) => {
                    reader_failed = true;
                    break 'feed;
                }
            }
        }
        assert!(reader.buffered() <= data.len());
    }

    let mut conn = FramedConn::new(Chunked { data, pos: 0, chunk }, 1024);
    let mut scratch = vec![0u8; chunk];
    let mut via_conn = Vec::new();
    let mut conn_failed = false;
    'read: loop {
        let outcome = conn.read_available(&mut scratch, 3 * chunk).expect("in-memory reads do not fail");
        loop {
            match conn.next_frame::<T>() {
                Ok(Some(v)) => via_conn.push(v),
                Ok(None) => break,
                Err(_) => {
                    conn_failed = true;
                    break 'read;
                }
            }
        }
        if outcome != conn::ReadOutcome::More {
            break;
        }
    }
    assert_eq!(via_reader, via_conn, "FrameReader and FramedConn disagree");
    assert_eq!(reader_failed, conn_failed, "FrameReader and FramedConn disagree on the error");
}

/// A stream that hands out `data` at most `chunk` bytes per read, then would block.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.data.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
