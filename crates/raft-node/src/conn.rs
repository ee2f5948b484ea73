//! The node's connections: raft-wire's [`FramedConn`] (frame reader, output buffer,
//! non-blocking reads with a budget and flushes) over a [`Stream`] of raft-transport (a
//! Unix socket, TCP, or TLS over TCP), plus what only
//! the node needs: who is on the other end, whether an outbound connect is still under
//! way, and when the connection was opened. A `Conn` derefs to its `FramedConn`, so
//! `conn.queue(..)`, `conn.read_available(..)`, `conn.reader` and `conn.stream` are the
//! shared type's.

use raft_core::NodeId;
use raft_transport::Stream;
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
    framed: FramedConn<Stream>,
    pub kind: Kind,
    /// The handshake under way, if the connection is in a `*Auth` kind.
    pub handshake: Option<Handshake>,
    /// The uid of the process at the other end (`SO_PEERCRED`), `None` if unknown.
    pub peer_uid: Option<u32>,
    /// An outbound connect in progress: the first writable event completes it.
    pub connecting: bool,
    /// When the connection was accepted or dialled (for the hello timeout).
    pub opened: Instant,
    /// Over TCP, the other end's address as accepted (for refusal lines); `None` over
    /// Unix sockets and on dialled streams (their line names the peer's address).
    pub remote: Option<std::net::SocketAddr>,
    /// Its TLS session was refused (raft-transport's typed `TlsRefusal`): such a close
    /// on a dialled peer stream is logged once per distinct reason.
    pub tls_refused: bool,
}

impl Conn {
    pub fn new(stream: Stream, kind: Kind) -> Conn {
        let peer_uid = stream.peer_uid();
        let remote = stream.peer_addr();
        Conn {
            framed: FramedConn::new(stream, NO_OUTPUT_BOUND),
            kind,
            handshake: None,
            peer_uid,
            connecting: false,
            tls_refused: false,
            opened: Instant::now(),
            remote,
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

    /// `" from <addr>"` over TCP, for log lines about this connection; empty otherwise.
    pub fn remote_suffix(&self) -> String {
        self.remote.map_or(String::new(), |a| format!(" from {a}"))
    }

    /// Whether this connection may be a client. Who may is decided by what the other end
    /// has: over a Unix socket its uid from the kernel (`SO_PEERCRED`: our uid, root, or
    /// in `allowed_uids`); over TLS a certificate of the cluster's CA (the handshake
    /// checked it; `allowed_uids` does not apply); over plain TCP (`insecure = true`)
    /// anyone who reached the port, as the node said loudly at start.
    pub fn admit_client(&self, our_uid: u32, allowed_uids: &[u32]) -> Result<(), String> {
        let stream = &self.framed.stream;
        if stream.is_tls() {
            return if stream.has_peer_cert() {
                Ok(())
            } else {
                Err("refused client: no certificate of the cluster's CA".into())
            };
        }
        if stream.is_plain_tcp() {
            return Ok(());
        }
        let uid = self.peer_uid;
        if !uid.is_some_and(|u| u == our_uid || u == 0 || allowed_uids.contains(&u)) {
            return Err(format!(
                "refused client uid {}: not the node's uid {our_uid}, root, or in allowed_uids",
                uid.map_or("unknown".into(), |u| u.to_string()),
            ));
        }
        Ok(())
    }

    /// Whether the other end may be peer `node` (on either side of the handshake). Over a
    /// Unix socket: our uid or root. Over TLS: its certificate names `node-<node>` (on an
    /// outbound stream the handshake already checked it; asked again, it costs nothing).
    /// Over plain TCP: nothing more than the cluster key, checked by the handshake.
    pub fn admit_peer(&self, node: NodeId, our_uid: u32) -> Result<(), String> {
        let stream = &self.framed.stream;
        if stream.is_tls() {
            return stream.check_peer_cert(node);
        }
        if stream.is_plain_tcp() {
            return Ok(());
        }
        if !self.peer_uid.is_some_and(|u| u == our_uid || u == 0) {
            return Err(format!(
                "uid {} is neither the node's ({our_uid}) nor root",
                self.peer_uid.map_or("unknown".into(), |u| u.to_string()),
            ));
        }
        Ok(())
    }
}

impl Deref for Conn {
    type Target = FramedConn<Stream>;

    fn deref(&self) -> &FramedConn<Stream> {
        &self.framed
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut FramedConn<Stream> {
        &mut self.framed
    }
}
