//! One blocking client connection to one node: hello, then request/response by id.

use raft_core::NodeId;
use raft_transport::{BlockingStream, ClientTls, Endpoint};
use raft_wire::{blocking::write_frame, ClientRequest, ClientResponse, FrameReader, Hello, Request, Response};
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes read from the socket per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a call got no answer. The difference matters for writes: only `NoAnswer` may
/// have applied anything.
#[derive(Debug)]
pub enum CallError {
    /// The connection could not be opened (or the hello not sent): nothing was sent.
    Connect(io::Error),
    /// The request frame did not get out whole. A node only acts on whole frames, so
    /// nothing was applied.
    Send(io::Error),
    /// The request went out but no answer came (timeout, closed, garbage): a write may
    /// have been applied.
    NoAnswer(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::Send(e) => write!(f, "cannot send: {e}"),
            CallError::NoAnswer(why) => write!(f, "no answer: {why}"),
        }
    }
}

/// A client connection to one node.
pub struct NodeConn {
    pub node: NodeId,
    stream: BlockingStream,
    reader: FrameReader,
    next_id: u64,
}

impl NodeConn {
    /// Connects and sends the `Hello::Client` frame.
    pub fn connect(node: NodeId, path: &Path, timeout: Duration) -> Result<NodeConn, CallError> {
        NodeConn::connect_to(node, &Endpoint::Unix(path.to_path_buf()), None, timeout)
    }

    /// Connects over any transport (with `tls`, the node must prove it is `node-<node>`
    /// and we present the client certificate) and sends the `Hello::Client` frame.
    pub fn connect_to(
        node: NodeId,
        at: &Endpoint,
        tls: Option<&ClientTls>,
        timeout: Duration,
    ) -> Result<NodeConn, CallError> {
        let mut stream = raft_transport::connect_blocking(at, node, tls, timeout).map_err(CallError::Connect)?;
        // Over TLS the handshake happens here: a refused certificate is a failed connect.
        write_frame(&mut stream, &Hello::Client).map_err(CallError::Connect)?;
        Ok(NodeConn { node, stream, reader: FrameReader::new(), next_id: 1 })
    }

    /// Sends one request and waits until `deadline` for the response with its id;
    /// responses to earlier, abandoned requests on this connection are skipped.
    pub fn call(&mut self, body: Request, deadline: Instant) -> Result<Response, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(CallError::Send(io::Error::new(io::ErrorKind::TimedOut, "deadline passed before sending")));
        }
        self.stream.set_write_timeout(Some(remaining)).map_err(CallError::Send)?;
        write_frame(&mut self.stream, &ClientRequest { id, body }).map_err(CallError::Send)?;
        self.wait_for(id, deadline)
    }

    fn wait_for(&mut self, id: u64, deadline: Instant) -> Result<Response, CallError> {
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            while let Some(resp) =
                self.reader.next_frame::<ClientResponse>().map_err(|e| CallError::NoAnswer(e.to_string()))?
            {
                if resp.id == id {
                    return Ok(resp.body);
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CallError::NoAnswer("timed out".into()));
            }
            self.stream.set_read_timeout(Some(remaining)).map_err(|e| CallError::NoAnswer(e.to_string()))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(CallError::NoAnswer("connection closed by the node".into())),
                Ok(n) => self.reader.extend(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(CallError::NoAnswer("timed out".into()))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CallError::NoAnswer(e.to_string())),
            }
        }
    }
}
