//! A non-blocking stream with a frame reader and a bounded output buffer.

use mio::net::UnixStream;
use raft_core::NodeId;
use raft_wire::{FrameReader, WireError};
use serde::Serialize;
use std::io::{self, Read, Write};

/// Who is on the other end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Accepted; waiting for its hello.
    Unidentified,
    /// A peer's stream to us (we only read from it).
    PeerIn(NodeId),
    /// Our stream to a peer (we only write to it).
    PeerOut(NodeId),
    Client,
}

pub struct Conn {
    pub stream: UnixStream,
    pub kind: Kind,
    pub reader: FrameReader,
    out: Vec<u8>,
    out_pos: usize,
    /// An outbound connect in progress: the first writable event completes it.
    pub connecting: bool,
    /// When the connection was accepted or dialled (for the hello timeout).
    pub opened: std::time::Instant,
}

/// What a read pass found.
pub enum ReadOutcome {
    /// Still open, everything available was read.
    Open,
    /// Still open, and more may be waiting: the per-turn budget ran out first. mio is
    /// edge-triggered, so the caller must come back without waiting for a new event.
    More,
    /// The peer closed its end.
    Closed,
}

impl Conn {
    pub fn new(stream: UnixStream, kind: Kind) -> Conn {
        Conn {
            stream,
            kind,
            reader: FrameReader::new(),
            out: Vec::new(),
            out_pos: 0,
            connecting: false,
            opened: std::time::Instant::now(),
        }
    }

    /// Reads what is available into the frame reader, at most `budget` bytes, so one
    /// sender that never pauses cannot hold the loop (and everyone else) in one read pass.
    pub fn read_available(&mut self, scratch: &mut [u8], budget: usize) -> io::Result<ReadOutcome> {
        let mut read = 0;
        loop {
            if read >= budget {
                return Ok(ReadOutcome::More);
            }
            match self.stream.read(scratch) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => {
                    self.reader.extend(&scratch[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one frame.
    pub fn queue<T: Serialize>(&mut self, msg: &T) -> Result<(), WireError> {
        raft_wire::encode_into(msg, &mut self.out)
    }

    pub fn queued_bytes(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes as much queued output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.connecting {
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket took no bytes")),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > (1 << 20) {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }
}
