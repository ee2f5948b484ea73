//! The node's connections: raft-wire's [`FramedConn`] (frame reader, output buffer,
//! non-blocking reads with a budget and flushes) over a mio Unix stream, plus what only
//! the node needs: who is on the other end, whether an outbound connect is still under
//! way, and when the connection was opened. A `Conn` derefs to its `FramedConn`, so
//! `conn.queue(..)`, `conn.read_available(..)`, `conn.reader` and `conn.stream` are the
//! shared type's.

use mio::net::UnixStream;
use raft_core::NodeId;
use raft_wire::conn::FramedConn;
pub use raft_wire::conn::ReadOutcome;
use std::io;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

/// The output bound given to the shared type: none. The event loop checks
/// `queued_bytes()` against its own limit for each kind of connection after queueing
/// (a slow client is disconnected, a stuck peer stream is redialled) instead of refusing
/// one frame, which would leave a client request unanswered.
const NO_OUTPUT_BOUND: usize = usize::MAX;

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
    framed: FramedConn<UnixStream>,
    pub kind: Kind,
    /// An outbound connect in progress: the first writable event completes it.
    pub connecting: bool,
    /// When the connection was accepted or dialled (for the hello timeout).
    pub opened: Instant,
}

impl Conn {
    pub fn new(stream: UnixStream, kind: Kind) -> Conn {
        Conn { framed: FramedConn::new(stream, NO_OUTPUT_BOUND), kind, connecting: false, opened: Instant::now() }
    }

    /// Writes as much queued output as the socket takes; nothing while the connect is
    /// still in progress (a write then would fail).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.connecting {
            return Ok(());
        }
        self.framed.flush()
    }
}

impl Deref for Conn {
    type Target = FramedConn<UnixStream>;

    fn deref(&self) -> &FramedConn<UnixStream> {
        &self.framed
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut FramedConn<UnixStream> {
        &mut self.framed
    }
}
