//! The node's connections: raft-wire's [`FramedConn`] (frame reader, output buffer,
//! non-blocking reads with a budget and flushes) over a [`Stream`] of raft-transport (a
//! Unix socket, TCP, or TLS over TCP), plus what only
//! the node needs: who is on the other end, whether an outbound connect is still under
//! way, and when the connection was opened. A `Conn` derefs to its `FramedConn`, so
//! `conn.queue(..)`, `conn.read_available(..)`, `conn.reader` and `conn.stream` are the
//! shared type's.

use mio::{Interest, Registry, Token};
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
    /// Its registration for writable events (see [`Writability`]).
    writability: Writability,
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
            writability: Writability::new(),
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

    /// Registers for writable events only while they are needed: a connect under way, or
    /// output the socket did not take (and always over TLS; see [`Writability`]).
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let pending = self.connecting || self.framed.queued_bytes() > 0;
        self.writability.update(registry, &mut self.framed.stream, token, pending)
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

/// A stream's registration for writable events, changed only when the need changes: the
/// one rule for the node's streams and the RESP front end's link to the leader.
///
/// Writable interest is on only while a write waits on it (a connect under way, output the
/// socket did not take) or over TLS (rustls may hold records of its own to write).
/// Otherwise a stream is registered readable only: a Unix socket raises a writable edge
/// every time the other end reads from it, so a stream registered for writes would wake
/// its node once for every message the peer consumed (one extra wake-up per append on a
/// follower, and per follower on the leader). Adding the interest back reports a writable
/// socket at once (epoll checks readiness on `EPOLL_CTL_MOD`), so no edge is missed.
pub struct Writability {
    registered: bool,
}

impl Writability {
    /// The interest a stream is registered with at first: a connect completes, and a TLS
    /// handshake may write, on a writable event.
    pub const FIRST_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

    /// For a stream just registered with [`Writability::FIRST_INTEREST`].
    pub fn new() -> Writability {
        Writability { registered: true }
    }

    /// Re-registers `stream` if whether it needs writable events changed; `pending` says
    /// a write waits on one.
    pub fn update(&mut self, registry: &Registry, stream: &mut Stream, token: Token, pending: bool) -> io::Result<()> {
        let want = pending || stream.is_tls();
        if want != self.registered {
            let interest = if want { Writability::FIRST_INTEREST } else { Interest::READABLE };
            registry.reregister(stream, token, interest)?;
            self.registered = want;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::io::Read;
    use std::time::Duration;

    const TOKEN: Token = Token(7);

    /// Whether a poll of at most `wait` reports TOKEN writable.
    fn writable_event(poll: &mut Poll, wait: Duration) -> bool {
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(wait)).unwrap();
        events.iter().any(|e| e.token() == TOKEN && e.is_writable())
    }

    fn drain(peer: &mut std::os::unix::net::UnixStream) -> usize {
        let (mut n, mut buf) = (0, vec![0u8; 1 << 16]);
        loop {
            match peer.read(&mut buf) {
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return n,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The peer reading what was sent does not wake the sender (a Unix socket raises a
    /// writable edge on every such read), yet output the socket could not take is still
    /// written out when room appears.
    #[test]
    fn writable_interest_only_while_output_waits() {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut peer = peer;
        let mut poll = Poll::new().unwrap();
        let mut stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
        poll.registry().register(&mut stream, TOKEN, Writability::FIRST_INTEREST).unwrap();
        let mut conn = Conn::new(stream, Kind::Client);
        writable_event(&mut poll, Duration::ZERO); // The first edge: a new socket has room.

        // A small message: written at once, then readable interest only.
        conn.queue(&raft_wire::ClientRequest { id: 1, body: raft_wire::Request::Status }).unwrap();
        conn.flush().unwrap();
        conn.update_interest(poll.registry(), TOKEN).unwrap();
        assert!(drain(&mut peer) > 0);
        assert!(!writable_event(&mut poll, Duration::from_millis(50)), "the peer's read woke the sender");

        // More than the socket holds: the rest waits, writable interest comes back, and
        // each time the peer reads, the writable event lets the rest go out.
        let big = raft_wire::ClientRequest {
            id: 2,
            body: raft_wire::Request::Write {
                session: 1,
                seq: 1,
                op: raft_kv::WriteOp::Set { key: "k".into(), value: vec![7; 4 << 20] },
            },
        };
        conn.queue(&big).unwrap();
        conn.flush().unwrap();
        assert!(conn.queued_bytes() > 0, "4 MiB fit in a socket buffer: the test proves nothing");
        conn.update_interest(poll.registry(), TOKEN).unwrap();
        let mut received = 0;
        for _ in 0..10_000 {
            if conn.queued_bytes() == 0 {
                break;
            }
            received += drain(&mut peer);
            assert!(writable_event(&mut poll, Duration::from_secs(5)), "output waits and no writable event came");
            conn.flush().unwrap();
            conn.update_interest(poll.registry(), TOKEN).unwrap();
        }
        assert_eq!(conn.queued_bytes(), 0);
        received += drain(&mut peer);
        assert!(received > 4 << 20);
        assert!(
            !writable_event(&mut poll, Duration::from_millis(50)),
            "writable interest stayed after the output left"
        );
    }
}
