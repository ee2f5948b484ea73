//! One framed, non-blocking connection, for every event loop that speaks this protocol:
//! the node (peers and clients), the supervisor (its control socket and its links to the
//! nodes) and `raft-cli bench`.
//!
//! A [`FramedConn`] owns a stream that returns `WouldBlock` instead of waiting (a mio
//! socket, or a std one set non-blocking), a [`FrameReader`] for what came in, and an
//! output buffer for what waits to go out. Driving it is four calls:
//!
//! * [`FramedConn::queue`]: encode one frame into the output buffer. The buffer is bounded
//!   (`max_out_bytes`): a frame that would take it over the bound is refused with
//!   [`QueueError::Full`] and nothing of it is queued, so a peer that does not read costs
//!   bounded memory and the caller decides what to do (usually drop the connection).
//! * [`FramedConn::flush`]: write as much of the output as the socket takes now.
//! * [`FramedConn::read_available`]: read what is there, at most `budget` bytes per call,
//!   so one sender that never pauses cannot hold a loop turn; [`ReadOutcome::More`] says
//!   the budget ran out first (with edge-triggered mio the caller must come back without
//!   waiting for another event).
//! * [`FramedConn::next_frame`]: decode the next whole frame, if one is complete.
//!
//! Nothing here blocks, sleeps or reads a clock.

use crate::{encode_into, FrameReader, WireError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Bytes already written at the front of the output buffer before `flush` moves the rest
/// down: a connection that never drains completely must not grow its buffer for ever,
/// and moving on every partial write would copy the tail again and again.
const COMPACT_AFTER_BYTES: usize = 1 << 20;

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The message does not encode (or is over [`crate::MAX_FRAME_BYTES`]).
    #[error(transparent)]
    Encode(#[from] WireError),
    /// The output buffer would go over its bound: the other end is not reading.
    #[error("output queue full: {queued} bytes waiting, the frame needs {frame} more, the limit is {limit}")]
    Full { queued: usize, frame: usize, limit: usize },
}

/// What a read pass found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Still open, everything available was read.
    Open,
    /// Still open, and more may be waiting: the budget ran out first. mio is
    /// edge-triggered, so the caller must come back without waiting for a new event.
    More,
    /// The other end closed its side.
    Closed,
}

/// A non-blocking stream with a frame reader and a bounded output buffer.
pub struct FramedConn<S> {
    pub stream: S,
    /// What has been read and not yet decoded.
    pub reader: FrameReader,
    out: Vec<u8>,
    /// How much of `out` is already written.
    out_pos: usize,
    max_out_bytes: usize,
}

impl<S: Read + Write> FramedConn<S> {
    /// A connection whose output buffer holds at most `max_out_bytes` unwritten bytes.
    pub fn new(stream: S, max_out_bytes: usize) -> FramedConn<S> {
        FramedConn { stream, reader: FrameReader::new(), out: Vec::new(), out_pos: 0, max_out_bytes }
    }

    /// The bound on unwritten output.
    pub fn max_out_bytes(&self) -> usize {
        self.max_out_bytes
    }

    /// Encodes one frame at the end of the output buffer (nothing is written yet). On an
    /// error nothing of the frame is queued.
    pub fn queue<T: Serialize>(&mut self, msg: &T) -> Result<(), QueueError> {
        let start = self.out.len();
        encode_into(msg, &mut self.out)?;
        let frame = self.out.len() - start;
        let queued = start - self.out_pos;
        if queued + frame > self.max_out_bytes {
            self.out.truncate(start);
            return Err(QueueError::Full { queued, frame, limit: self.max_out_bytes });
        }
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Forgets everything queued (the connection is about to be dropped or replaced).
    pub fn clear_output(&mut self) {
        self.out.clear();
        self.out_pos = 0;
    }

    /// Writes as much queued output as the socket takes now.
    pub fn flush(&mut self) -> io::Result<()> {
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
            self.clear_output();
        } else if self.out_pos > COMPACT_AFTER_BYTES {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        // A stream with its own buffer (TLS: handshake records, sealed frames) writes it
        // now; a plain socket's flush does nothing.
        match self.stream.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads what is available into the frame reader, stopping once `budget` bytes were
    /// read (`scratch` is the read buffer; its size is the most one read call takes).
    pub fn read_available(&mut self, scratch: &mut [u8], budget: usize) -> io::Result<ReadOutcome> {
        self.read_pass(scratch, budget, false)
    }

    /// [`FramedConn::read_available`] that also ends at a short read (fewer bytes than
    /// `scratch` holds), saving the read that would return `WouldBlock`: on a kernel
    /// socket (Unix or plain TCP) a short read means its buffer was empty at that moment,
    /// and edge-triggered readiness reports bytes that arrive later as a new event. Not
    /// for TLS (it holds decrypted bytes of its own) nor when the event also reported
    /// the other end's close (no later event would come for it): there, read to the end.
    pub fn read_until_short(&mut self, scratch: &mut [u8], budget: usize) -> io::Result<ReadOutcome> {
        self.read_pass(scratch, budget, true)
    }

    fn read_pass(&mut self, scratch: &mut [u8], budget: usize, stop_at_short: bool) -> io::Result<ReadOutcome> {
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
                    if stop_at_short && n < scratch.len() {
                        return Ok(ReadOutcome::Open);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next whole frame, if one has arrived; an error means the stream is garbage
    /// (close it).
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        self.reader.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientRequest, Request};
    use std::os::unix::net::UnixStream;

    fn pair() -> (FramedConn<UnixStream>, FramedConn<UnixStream>) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (FramedConn::new(a, usize::MAX), FramedConn::new(b, usize::MAX))
    }

    #[test]
    fn queued_frames_arrive_whole_and_in_order() {
        let (mut tx, mut rx) = pair();
        for id in 0..100u64 {
            tx.queue(&ClientRequest { id, body: Request::Status }).unwrap();
        }
        assert!(tx.queued_bytes() > 0);
        let mut scratch = vec![0u8; 7]; // tiny reads: frames arrive in pieces
        let mut got = Vec::new();
        while got.len() < 100 {
            tx.flush().unwrap();
            assert_eq!(rx.read_available(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
            while let Some(req) = rx.next_frame::<ClientRequest>().unwrap() {
                got.push(req.id);
            }
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn a_closed_peer_reads_as_closed() {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        drop(a);
        let mut rx = FramedConn::new(b, usize::MAX);
        assert_eq!(rx.read_available(&mut [0u8; 64], usize::MAX).unwrap(), ReadOutcome::Closed);
    }

    #[test]
    fn reads_stop_at_the_budget_and_say_there_is_more() {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        a.write_all(&[7u8; 10_000]).unwrap();
        let mut rx = FramedConn::new(b, usize::MAX);
        let mut scratch = vec![0u8; 1000];
        assert_eq!(rx.read_available(&mut scratch, 3000).unwrap(), ReadOutcome::More);
        assert_eq!(rx.reader.buffered(), 3000);
        assert_eq!(rx.read_available(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
        assert_eq!(rx.reader.buffered(), 10_000);
    }

    /// A stream that counts its read calls.
    struct Counted {
        inner: UnixStream,
        reads: usize,
    }
    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.inner.read(buf)
        }
    }
    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inner.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn a_short_read_ends_the_pass_without_the_read_that_would_block() {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut rx = FramedConn::new(Counted { inner: b, reads: 0 }, usize::MAX);
        let mut scratch = vec![0u8; 1000];
        // Nothing there: one read, which would block.
        assert_eq!(rx.read_until_short(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
        assert_eq!(rx.stream.reads, 1);
        // 2,500 bytes: two full reads and a short one, all of it, no fourth read.
        a.write_all(&[7u8; 2500]).unwrap();
        assert_eq!(rx.read_until_short(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
        assert_eq!((rx.stream.reads, rx.reader.buffered()), (4, 2500));
        // read_available reads on until the socket says it would block.
        a.write_all(&[7u8; 10]).unwrap();
        assert_eq!(rx.read_available(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
        assert_eq!((rx.stream.reads, rx.reader.buffered()), (6, 2510));
        // The budget still applies, and a close still reads as closed.
        a.write_all(&[7u8; 3000]).unwrap();
        assert_eq!(rx.read_until_short(&mut scratch, 2000).unwrap(), ReadOutcome::More);
        assert_eq!(rx.read_until_short(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open);
        assert_eq!(rx.reader.buffered(), 5510);
        drop(a);
        assert_eq!(rx.read_until_short(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Closed);
    }

    #[test]
    fn output_over_the_bound_is_refused_whole_and_the_rest_still_flows() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let one = crate::encode(&ClientRequest { id: 1, body: Request::Status }).unwrap().len();
        let mut tx = FramedConn::new(a, 3 * one);
        let mut rx = FramedConn::new(b, usize::MAX);
        for id in 0..3 {
            tx.queue(&ClientRequest { id, body: Request::Status }).unwrap();
        }
        let err = tx.queue(&ClientRequest { id: 3, body: Request::Status }).unwrap_err();
        assert!(
            matches!(err, QueueError::Full { queued, frame, limit } if queued == 3 * one && frame == one && limit == 3 * one)
        );
        assert_eq!(tx.queued_bytes(), 3 * one, "nothing of the refused frame is queued");
        tx.flush().unwrap();
        assert_eq!(tx.queued_bytes(), 0);
        tx.queue(&ClientRequest { id: 4, body: Request::Status }).unwrap();
        tx.flush().unwrap();
        rx.read_available(&mut [0u8; 256], usize::MAX).unwrap();
        let mut ids = Vec::new();
        while let Some(r) = rx.next_frame::<ClientRequest>().unwrap() {
            ids.push(r.id);
        }
        assert_eq!(ids, [0, 1, 2, 4], "the refused frame left the stream's framing intact");
    }

    #[test]
    fn a_partial_write_keeps_the_rest_for_the_next_flush() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut tx = FramedConn::new(a, usize::MAX);
        let mut rx = FramedConn::new(b, usize::MAX);
        // More than a socket buffer holds: the first flush stops at WouldBlock.
        let big = ClientRequest {
            id: 9,
            body: Request::Write {
                session: 1,
                seq: 1,
                op: crate::WriteOp::Set { key: "k".into(), value: vec![1; 4 << 20] },
            },
        };
        tx.queue(&big).unwrap();
        tx.flush().unwrap();
        assert!(tx.queued_bytes() > 0, "a socket pair does not take 4 MiB at once");
        let mut scratch = vec![0u8; 64 * 1024];
        let got = loop {
            tx.flush().unwrap();
            rx.read_available(&mut scratch, usize::MAX).unwrap();
            if let Some(r) = rx.next_frame::<ClientRequest>().unwrap() {
                break r;
            }
        };
        assert_eq!(got.id, 9);
        assert_eq!(tx.queued_bytes(), 0);
    }
}
