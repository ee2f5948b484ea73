//! Issue 18: a node over TCP, with mutual TLS unless `insecure = true`. The event loop
//! stays the same: raft-transport's [`Stream`](raft_transport::Stream) and
//! [`Listener`](raft_transport::Listener) stand in for the Unix ones, and this module says
//! where each node is ([`NodeSettings::peer_endpoint`]) and builds the settings from the
//! config. Who may connect is decided in `conn` (`admit_client`, `admit_peer`).

use crate::server::{NodeError, NodeSettings};
use raft_config::{ClusterConfig, Endpoint, Transport};
use raft_core::NodeId;
use raft_transport::{ClientTls, NodeTls};

/// Every node's address and the identity to dial them with (the RESP front end's link
/// to the leader).
pub(crate) struct NodeAddrs {
    pub endpoints: std::collections::BTreeMap<NodeId, Endpoint>,
    pub tls: Option<ClientTls>,
}

/// TCP instead of Unix sockets.
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// Node N is dialled at `addrs[N-1]` (`host:port`, resolved when dialling).
    pub addrs: Vec<String>,
    /// What this node binds (`host:port`).
    pub listen: String,
    /// This node's TLS identity; `None` is plain TCP (`insecure = true`).
    pub tls: Option<NodeTls>,
}

impl TcpSettings {
    /// From the config, for node `id`: a node id past `addrs`, or TLS files that are
    /// missing or unreadable, is a config error (the node exits with the config code).
    pub fn from_config(cfg: &ClusterConfig, id: NodeId) -> Result<Option<TcpSettings>, NodeError> {
        let bad = |e: String| NodeError::Config(e);
        let tls = match cfg.transport_kind() {
            Transport::Unix => return Ok(None),
            Transport::InsecureTcp => None,
            Transport::Tls => {
                let paths = cfg.node_tls_paths(id);
                cfg.check_tls_files(&paths).map_err(|e| bad(e.to_string()))?;
                Some(NodeTls::load(&paths).map_err(|e| bad(e.to_string()))?)
            }
        };
        let listen = match cfg.listen_endpoint(id).map_err(|e| bad(e.to_string()))? {
            Endpoint::Tcp(a) => a,
            Endpoint::Unix(_) => unreachable!("a tcp transport has tcp endpoints"),
        };
        Ok(Some(TcpSettings { addrs: cfg.addrs.clone(), listen, tls }))
    }
}

impl NodeSettings {
    /// Where node `id` is dialled: its Unix socket (known at start, or derived for a
    /// member added at run time), or its `addrs` entry. `None`: not reachable.
    pub(crate) fn peer_endpoint(&self, id: NodeId) -> Option<Endpoint> {
        if id == 0 || id > raft_config::MAX_NODE_ID {
            return None;
        }
        match &self.tcp {
            Some(t) => raft_config::transport::addr_of(&t.addrs, id).map(|a| Endpoint::Tcp(a.to_string())),
            None => self.peer_path(id).map(Endpoint::Unix),
        }
    }

    /// What this node binds.
    pub(crate) fn listen_endpoint(&self) -> Result<Endpoint, NodeError> {
        match &self.tcp {
            Some(t) => Ok(Endpoint::Tcp(t.listen.clone())),
            None => self
                .sockets
                .get(&self.id)
                .map(|p| Endpoint::Unix(p.clone()))
                .ok_or_else(|| NodeError::Config(format!("node {} has no socket", self.id))),
        }
    }

    pub(crate) fn node_tls(&self) -> Option<&NodeTls> {
        self.tcp.as_ref().and_then(|t| t.tls.as_ref())
    }

    /// The identity this node dials with (peers, and the RESP front end's link).
    pub(crate) fn client_tls(&self) -> Option<&ClientTls> {
        self.node_tls().map(|t| &t.client)
    }

    /// The start-up line about the transport; plain TCP says loudly what it means.
    pub(crate) fn transport_line(&self) -> Option<String> {
        let t = self.tcp.as_ref()?;
        Some(match &t.tls {
            Some(_) => format!("transport: TCP with mutual TLS on {} (peers and clients need a certificate of the cluster's CA)", t.listen),
            None => format!(
                "WARNING: INSECURE transport: plain TCP on {} without TLS (insecure = true): ANY process that can reach \
                 this port is a client and can read and write every key; peers still prove the cluster key",
                t.listen
            ),
        })
    }
}
