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
                        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")));
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
    /// on the stream's first reads and writes.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l) => Ok(Stream::Unix(l.accept()?.0)),
            Listener::Tcp(l, tls) => {
                let (tcp, _) = l.accept()?;
                // Raft messages and answers are small and latency-bound.
                tcp.set_nodelay(true)?;
                match tls {
                    None => Ok(Stream::Tcp(tcp)),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                        Ok(Stream::Tls(Box::new(TlsStream::new(tcp, conn.into()))))
                    }
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

/// Resolves `host:port` (a name is looked up now: an IP literal costs nothing).
fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address")))
}

/// Starts a non-blocking connect to node `node` at `to`; the first writable event says
/// whether it worked ([`Stream::take_error`]). With `tls`, the acceptor must prove it is
/// `node-<node>`.
pub fn connect(to: &Endpoint, node: u64, tls: Option<&ClientTls>) -> io::Result<Stream> {
    match to {
        Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
        Endpoint::Tcp(addr) => {
            let tcp = TcpStream::connect(resolve(addr)?)?;
            tcp.set_nodelay(true)?;
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
