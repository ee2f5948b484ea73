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
    /// Said hello as this peer; we sent our challenge and wait for its proof that it holds
    /// the cluster key. Still counted and timed out as unidentified.
    PeerInAuth(NodeId),
    /// An authenticated peer's stream to us (we only read Raft messages from it).
    PeerIn(NodeId),
    /// Our stream to a peer: hello sent, waiting for its challenge. Nothing else is sent.
    PeerOutAuth(NodeId),
    /// Our authenticated stream to a peer (we only write Raft messages to it).
    PeerOut(NodeId),
    Client,
}

/// The half-done peer handshake of a connection in `PeerInAuth` or `PeerOutAuth`.
pub enum Handshake {
    Acceptor(raft_wire::auth::AcceptorHandshake),
    Dialer(raft_wire::auth::DialerHandshake),
}

pub struct Conn {
    framed: FramedConn<UnixStream>,
    pub kind: Kind,
    /// The handshake under way, if the connection is in a `*Auth` kind.
    pub handshake: Option<Handshake>,
    /// The uid of the process at the other end (`SO_PEERCRED`), `None` if unknown.
    pub peer_uid: Option<u32>,
    /// An outbound connect in progress: the first writable event completes it.
    pub connecting: bool,
    /// When the connection was accepted or dialled (for the hello timeout).
    pub opened: Instant,
}

impl Conn {
    pub fn new(stream: UnixStream, kind: Kind) -> Conn {
        let peer_uid = peer_uid(&stream);
        Conn {
            framed: FramedConn::new(stream, NO_OUTPUT_BOUND),
            kind,
            handshake: None,
            peer_uid,
            connecting: false,
            opened: Instant::now(),
        }
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

/// The uid of the process at the other end of a Unix stream, from the kernel
/// (`SO_PEERCRED`: the connecting process's credentials at `connect`, or the listener's
/// at `listen`), so it cannot be claimed, only had.
pub fn peer_uid(stream: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok().map(|c| c.uid())
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
