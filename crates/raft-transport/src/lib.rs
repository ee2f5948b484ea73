//! # raft-transport: how a node is reached
//!
//! One stream type for every event loop of the workspace ([`Stream`]: a mio Unix stream,
//! a mio TCP stream, or rustls over a mio TCP stream) and one listener type
//! ([`Listener`]), so the node, the supervisor's node links, `raft-cli bench` and the RESP
//! front end's forwarding link drive all three the same way: `Read` + `Write` that answer
//! `WouldBlock` instead of waiting, registered with a mio `Poll`. Blocking clients
//! (`raft-cli`'s commands) get [`BlockingStream`] with read and write timeouts.
//!
//! Which one is used comes from the config ([`raft_config::Transport`]): Unix sockets
//! (one machine, identity from the kernel), TCP with mutual TLS (identity from
//! certificates of the cluster's CA), or plain TCP only with `insecure = true`.
//!
//! ## Identity over TLS
//!
//! A node's certificate names it as the DNS name `node-<id>` ([`node_name`]). A dialer
//! (a node, or a client) asks for `node-<id>` of the node it dials, so stock rustls
//! verification refuses an acceptor with a certificate of another CA or of another node.
//! An acceptor requires a client certificate of the CA (rustls' `WebPkiClientVerifier`)
//! and, when the other end says hello as peer N, checks that the certificate names
//! `node-N` ([`Stream::check_peer_cert`]). A client (the client certificate, role
//! `client`, or a node's own) is anyone with a certificate of the CA.
//!
//! ## The TLS stream on an edge-triggered loop
//!
//! rustls holds two buffers: TLS records to send and plaintext received. A read pulls
//! records from the socket until rustls has plaintext or the socket would block; every
//! read and write also pushes whatever records rustls has to send (handshake messages
//! included), and [`Stream::push_tls`] does so on a writable event with no frame queued.
//! rustls' own buffer limit bounds memory: a write it cannot take answers `WouldBlock`,
//! and the caller keeps the frame in its own bounded output queue.

pub mod certs;
mod stream;
mod tls;

pub use raft_config::{Endpoint, TlsPaths, Transport};
pub use stream::{connect, connect_blocking, is_tls_refusal, Accepted, BlockingStream, Listener, Stream, TlsRefusal};
pub use tls::{node_name, ClientTls, NodeTls, TlsError};

/// Plaintext and TLS records rustls may hold for one connection before a write answers
/// `WouldBlock`: bounds memory per connection, large enough for a full append batch to
/// go out in a few writes.
pub const TLS_BUFFER_BYTES: usize = 1 << 20;
/// How long bytes a node sent may stay unacknowledged before the kernel closes the TCP
/// stream (`TCP_USER_TIMEOUT`). After a partition, TCP's retransmission backoff would
/// otherwise leave a stream silent for minutes after the network heals; closed, it is
/// redialled within `PEER_RECONNECT_MAX_MS`. Far above any round trip a cluster can run
/// on (an election cannot work across a link this slow), so a live link never hits it.
pub const TCP_USER_TIMEOUT_MS: u32 = 5_000;
/// A name in `addrs` is looked up again when its last lookup is older than this, so a
/// node that moved (a rescheduled Kubernetes pod) is dialled at its new address within a
/// second or two; the lookup runs on its own thread, never on an event loop.
pub const DNS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The TLS identity a client of this cluster dials with (`raft-cli`, the supervisor's
/// node links): `Ok(None)` over Unix sockets or plain TCP; an error names the missing or
/// bad file and says how to make it.
pub fn client_tls(cfg: &raft_config::ClusterConfig) -> Result<Option<ClientTls>, String> {
    if cfg.transport_kind() != Transport::Tls {
        return Ok(None);
    }
    let paths = cfg.client_tls_paths();
    cfg.check_tls_files(&paths).map_err(|e| e.to_string())?;
    ClientTls::load(&paths).map(Some).map_err(|e| e.to_string())
}
