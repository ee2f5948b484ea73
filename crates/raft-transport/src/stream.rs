//! The stream and listener enums, and dialling.

use crate::tls::{cert_names_node, ClientTls, NodeTls};
use crate::TLS_BUFFER_BYTES;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use raft_config::Endpoint;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// rustls over a non-blocking TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    tls: rustls::Connection,
}

impl TlsStream {
    fn new(tcp: TcpStream, mut tls: rustls::Connection) -> TlsStream {
        tls.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        TlsStream { tcp, tls }
    }

    /// Writes pending TLS records until the socket would block.
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket took no bytes")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A TLS session refused (a certificate of another CA, none, a bad record): the error a
/// TLS stream's read returns, so callers tell it from other I/O errors by type
/// ([`is_tls_refusal`]), not by its text. Shown as `TLS: <rustls' reason>`.
#[derive(Debug)]
pub struct TlsRefusal(pub String);

impl std::fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsRefusal {}

/// Whether an I/O error is a [`TlsRefusal`].
pub fn is_tls_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TlsRefusal>())
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        // Tell the other end why (the alert), then give up on the stream.
                        let _ = self.push();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, TlsRefusal(e.to_string())));
                    }
                    // Handshake replies and key updates go out as soon as they exist.
                    self.push()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push()?;
        let n = self.tls.writer().write(buf)?;
        self.push()?;
        if n == 0 && !buf.is_empty() {
            // rustls' buffer is full (the socket is not draining): come back on writable.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// A non-blocking stream of any transport.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// A connect's outcome, once the socket is writable.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Unix(s) => s.take_error(),
            Stream::Tcp(s) => s.take_error(),
            Stream::Tls(s) => s.tcp.take_error(),
        }
    }

    /// The uid of the process at the other end, from the kernel (`SO_PEERCRED`): Unix
    /// sockets only (TCP has no such thing).
    pub fn peer_uid(&self) -> Option<u32> {
        match self {
            Stream::Unix(s) => {
                nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials).ok().map(|c| c.uid())
            }
            Stream::Tcp(_) | Stream::Tls(_) => None,
        }
    }

    /// The other end's TCP address (`None` over Unix sockets, or before a connect ends).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Unix(_) => None,
            Stream::Tcp(s) => s.peer_addr().ok(),
            Stream::Tls(s) => s.tcp.peer_addr().ok(),
        }
    }

    /// Whether identity comes from certificates.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Whether the other end is plain TCP (anyone who reaches the port).
    pub fn is_plain_tcp(&self) -> bool {
        matches!(self, Stream::Tcp(_))
    }

    /// Over TLS: whether the other end's certificate (verified against the CA during the
    /// handshake) names node `id`. The error says what it is instead.
    pub fn check_peer_cert(&self, id: u64) -> Result<(), String> {
        let Stream::Tls(s) = self else { return Err("not a TLS stream".into()) };
        if s.tls.is_handshaking() {
            return Err("TLS handshake not finished".into());
        }
        match s.tls.peer_certificates().and_then(|c| c.first()) {
            None => Err("presented no certificate".into()),
            Some(cert) if cert_names_node(cert, id) => Ok(()),
            Some(_) => Err(format!("its certificate does not name {}", crate::node_name(id))),
        }
    }

    /// Over TLS: whether the other end presented a certificate of the CA (rustls refuses
    /// the handshake otherwise, so a finished handshake with a certificate is enough).
    pub fn has_peer_cert(&self) -> bool {
        match self {
            Stream::Tls(s) => !s.tls.is_handshaking() && s.tls.peer_certificates().is_some_and(|c| !c.is_empty()),
            _ => false,
        }
    }

    /// Writes TLS records rustls has pending (a handshake message with no frame queued).
    pub fn push_tls(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.push(),
            _ => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Tls(s) => s.tcp.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Tls(s) => s.tcp.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.deregister(r),
            Stream::Tcp(s) => s.deregister(r),
            Stream::Tls(s) => s.tcp.deregister(r),
        }
    }
}

/// A listening socket of any transport; with TLS, accepted streams are TLS servers.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener, Option<Arc<rustls::ServerConfig>>),
}

/// What one [`Listener::accept`] took off the queue.
pub enum Accepted {
    /// A new connection.
    Stream(Stream),
    /// A connection that could not be set up (a socket option, the TLS session): closed
    /// when this is dropped; the listener itself is fine.
    Dropped(io::Error),
}

impl Accepted {
    /// The stream, or the reason the connection was dropped (for tests and simple callers).
    pub fn stream(self) -> io::Result<Stream> {
        match self {
            Accepted::Stream(s) => Ok(s),
            Accepted::Dropped(e) => Err(e),
        }
    }
}

impl Listener {
    /// Binds `at`. A Unix socket file left by a dead process must be removed first (the
    /// caller holds the lock that proves it dead). TLS needs the node's identity.
    pub fn bind(at: &Endpoint, tls: Option<&NodeTls>) -> io::Result<Listener> {
        match at {
            Endpoint::Unix(path) => Ok(Listener::Unix(UnixListener::bind(path)?)),
            Endpoint::Tcp(addr) => {
                let sa = resolve(addr)?;
                Ok(Listener::Tcp(TcpListener::bind(sa)?, tls.map(|t| t.server.clone())))
            }
        }
    }

    /// Accepts one connection (`WouldBlock` when none waits). Over TLS the handshake runs
    /// on the stream's first reads and writes. The outer error is the listener's (EMFILE:
    /// try again later); [`Accepted::Dropped`] is one connection that could not be set up
    /// and is closed, the listener being fine (keep accepting).
    pub fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Unix(l) => Ok(Accepted::Stream(Stream::Unix(l.accept()?.0))),
            Listener::Tcp(l, tls) => {
                let (tcp, from) = l.accept()?;
                let dropped = |e: io::Error| Accepted::Dropped(io::Error::new(e.kind(), format!("from {from}: {e}")));
                if let Err(e) = tune(&tcp) {
                    return Ok(dropped(e));
                }
                match tls {
                    None => Ok(Accepted::Stream(Stream::Tcp(tcp))),
                    Some(config) => match rustls::ServerConnection::new(config.clone()) {
                        Ok(conn) => Ok(Accepted::Stream(Stream::Tls(Box::new(TlsStream::new(tcp, conn.into()))))),
                        Err(e) => Ok(dropped(io::Error::other(e))),
                    },
                }
            }
        }
    }

    /// The bound address (TCP; for tests that bind port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l, _) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.register(r, t, i),
            Listener::Tcp(l, _) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.reregister(r, t, i),
            Listener::Tcp(l, _) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.deregister(r),
            Listener::Tcp(l, _) => l.deregister(r),
        }
    }
}

/// Every node stream: no Nagle delay (Raft messages and answers are small and
/// latency-bound), and a bound on unacknowledged data ([`crate::TCP_USER_TIMEOUT_MS`]).
fn tune(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    nix::sys::socket::setsockopt(tcp, nix::sys::socket::sockopt::TcpUserTimeout, &crate::TCP_USER_TIMEOUT_MS)
        .map_err(io::Error::from)
}

/// Resolves `host:port` (a name is looked up now: an IP literal costs nothing).
fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address")))
}

/// A name's address as last looked up, off the caller's thread (see [`resolve_cached`]).
struct Lookup {
    addr: Option<SocketAddr>,
    error: Option<String>,
    at: std::time::Instant,
    pending: bool,
}

/// The names being looked up or known, and the channel to the lookup thread.
struct Resolver {
    names: std::sync::Mutex<std::collections::HashMap<String, Lookup>>,
    queue: std::sync::Mutex<std::sync::mpsc::Sender<String>>,
}

fn resolver() -> &'static Resolver {
    static RESOLVER: std::sync::OnceLock<Resolver> = std::sync::OnceLock::new();
    RESOLVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || {
                for name in rx {
                    let result = resolve(&name);
                    let mut names = resolver().names.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(l) = names.get_mut(&name) {
                        l.pending = false;
                        l.at = std::time::Instant::now();
                        match result {
                            Ok(a) => (l.addr, l.error) = (Some(a), None),
                            Err(e) => l.error = Some(e.to_string()),
                        }
                    }
                }
            })
            .expect("spawn the lookup thread");
        Resolver { names: Default::default(), queue: std::sync::Mutex::new(tx) }
    })
}

/// `host:port` without blocking: an IP literal at once; a name from the last lookup,
/// which a thread of its own refreshes when older than [`crate::DNS_REFRESH`] (so a
/// Kubernetes pod that moved is found again), and an error saying "looking up" until the
/// first lookup is done (the caller redials with backoff, by then it is). The names are
/// those of the config's `addrs`, so the table stays that small.
fn resolve_cached(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let r = resolver();
    let mut names = r.names.lock().unwrap_or_else(|e| e.into_inner());
    let now = std::time::Instant::now();
    let l = names.entry(addr.to_string()).or_insert(Lookup { addr: None, error: None, at: now, pending: false });
    if !l.pending && (l.addr.is_none() || now.duration_since(l.at) > crate::DNS_REFRESH) {
        l.pending = true;
        let _ = r.queue.lock().unwrap_or_else(|e| e.into_inner()).send(addr.to_string());
    }
    match (l.addr, &l.error) {
        (Some(a), _) => Ok(a),
        (None, Some(e)) => Err(io::Error::new(io::ErrorKind::NotFound, e.clone())),
        (None, None) => Err(io::Error::other(format!("looking up {addr}"))),
    }
}

/// Starts a non-blocking connect to node `node` at `to`; the first writable event says
/// whether it worked ([`Stream::take_error`]). With `tls`, the acceptor must prove it is
/// `node-<node>`. Never blocks: a name is looked up on another thread.
pub fn connect(to: &Endpoint, node: u64, tls: Option<&ClientTls>) -> io::Result<Stream> {
    match to {
        Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
        Endpoint::Tcp(addr) => {
            let tcp = TcpStream::connect(resolve_cached(addr)?)?;
            tune(&tcp)?;
            match tls {
                None => Ok(Stream::Tcp(tcp)),
                Some(t) => Ok(Stream::Tls(Box::new(TlsStream::new(tcp, t.session(node)?.into())))),
            }
        }
    }
}

/// A blocking stream with timeouts, for one-request-at-a-time clients.
pub enum BlockingStream {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

/// Connects to node `node` at `to` within `timeout` (the TLS handshake happens on the
/// first read or write, within the stream's timeouts).
pub fn connect_blocking(
    to: &Endpoint,
    node: u64,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> io::Result<BlockingStream> {
    let s = match to {
        Endpoint::Unix(path) => BlockingStream::Unix(std::os::unix::net::UnixStream::connect(path)?),
        Endpoint::Tcp(addr) => {
            let tcp = std::net::TcpStream::connect_timeout(&resolve(addr)?, timeout.max(Duration::from_millis(1)))?;
            tcp.set_nodelay(true)?;
            match tls {
                None => BlockingStream::Tcp(tcp),
                Some(t) => BlockingStream::Tls(Box::new(rustls::StreamOwned::new(t.session(node)?, tcp))),
            }
        }
    };
    s.set_timeouts(Some(timeout.max(Duration::from_millis(1))))?;
    Ok(s)
}

impl BlockingStream {
    fn tcp_or_unix(&self) -> Result<&std::net::TcpStream, &std::os::unix::net::UnixStream> {
        match self {
            BlockingStream::Unix(s) => Err(s),
            BlockingStream::Tcp(s) => Ok(s),
            BlockingStream::Tls(s) => Ok(&s.sock),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self.tcp_or_unix() {
            Ok(s) => s.set_read_timeout(t),
            Err(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self.tcp_or_unix() {
            Ok(s) => s.set_write_timeout(t),
            Err(s) => s.set_write_timeout(t),
        }
    }

    /// Read and write timeouts (`None`: wait for ever).
    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            BlockingStream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            BlockingStream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            BlockingStream::Tls(s) => {
                s.sock.set_read_timeout(t)?;
                s.sock.set_write_timeout(t)
            }
        }
    }
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Unix(s) => s.read(buf),
            BlockingStream::Tcp(s) => s.read(buf),
            BlockingStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Unix(s) => s.write(buf),
            BlockingStream::Tcp(s) => s.write(buf),
            BlockingStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlockingStream::Unix(s) => s.flush(),
            BlockingStream::Tcp(s) => s.flush(),
            BlockingStream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_refusals_are_told_by_type_not_text() {
        let e = io::Error::new(io::ErrorKind::InvalidData, TlsRefusal("bad certificate".into()));
        assert!(is_tls_refusal(&e));
        assert_eq!(e.to_string(), "TLS: bad certificate");
        assert!(!is_tls_refusal(&io::Error::other("TLS: lookalike text")), "the text alone is not one");
    }
    use crate::certs::{generate, CertPlan};
    use raft_wire::conn::FramedConn;
    use raft_wire::{ClientRequest, Request, WriteOp};
    use std::time::Instant;

    /// Spins until `f` says done, at most a few seconds (both ends live in this thread).
    fn drive(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::yield_now();
        }
    }

    fn identities(dir: &std::path::Path) -> (NodeTls, ClientTls) {
        generate(&CertPlan { dir: dir.to_path_buf(), nodes: vec![(1, None)], force: false }).unwrap();
        let p = |name: &str| raft_config::TlsPaths {
            ca: dir.join("ca.crt"),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        (NodeTls::load(&p("node-1")).unwrap(), ClientTls::load(&p("client")).unwrap())
    }

    /// A name is looked up off the caller's thread: the first call says so, a later one
    /// has the address; an IP literal needs no lookup.
    #[test]
    fn names_are_looked_up_off_the_loop_and_literals_at_once() {
        assert_eq!(resolve_cached("127.0.0.1:7001").unwrap(), "127.0.0.1:7001".parse().unwrap());
        assert_eq!(resolve_cached("[::1]:7001").unwrap(), "[::1]:7001".parse().unwrap());
        let mut got = None;
        drive("localhost resolves", || {
            got = resolve_cached("localhost:7001").ok();
            got.is_some()
        });
        let a = got.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 7001, "{a}");
    }

    /// Frames larger than rustls' buffer and the socket's cross a TLS stream whole and in
    /// order: a full buffer answers `WouldBlock` (the frame waits in the caller's queue),
    /// never a zero-length write, and handshake records go out with no frame queued.
    #[test]
    fn frames_cross_a_tls_stream_whole_and_in_order_through_backpressure() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = identities(dir.path());
        let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".into()), Some(&node)).unwrap();
        let at = Endpoint::Tcp(listener.local_addr().unwrap().to_string());
        let tx = connect(&at, 1, Some(&client)).unwrap();
        let mut rx = None;
        drive("accept", || {
            rx = listener.accept().and_then(Accepted::stream).ok();
            rx.is_some()
        });
        let (mut tx, mut rx) = (FramedConn::new(tx, usize::MAX), FramedConn::new(rx.unwrap(), usize::MAX));
        let big = |id| ClientRequest {
            id,
            body: Request::Write {
                session: 1,
                seq: id,
                op: WriteOp::Set { key: "k".into(), value: vec![id as u8; 3 << 20] },
            },
        };
        for id in 0..4 {
            tx.queue(&big(id)).unwrap();
        }
        let mut scratch = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        drive("four 3 MiB frames over TLS", || {
            tx.flush().expect("no write error: a full buffer is WouldBlock");
            // The dialer reads too (every user of a stream does): the handshake's answers.
            tx.read_available(&mut scratch, usize::MAX).expect("reads");
            rx.flush().expect("the acceptor's handshake records go out");
            rx.read_available(&mut scratch, usize::MAX).expect("reads");
            while let Some(r) = rx.next_frame::<ClientRequest>().unwrap() {
                got.push(r);
            }
            got.len() == 4
        });
        assert_eq!(got, (0..4).map(big).collect::<Vec<_>>());
        assert!(rx.stream.has_peer_cert(), "the acceptor saw the client's certificate");
        assert!(rx.stream.check_peer_cert(1).is_err(), "the client certificate names no node");
    }
}
