//! Where nodes listen and are dialled (issue 18): the `transport`, `addrs`,
//! `listen_host`, `insecure` and `tls_*` keys, and the one place that turns them into an
//! [`Endpoint`] per node and the TLS files per process.
//!
//! A file without these keys is the Unix-socket cluster of one machine: every node at
//! `<dir>/node-<id>/node.sock`. With `transport = "tcp"`, node N listens on and is
//! dialled at `addrs[N-1]`; a node id past the list (a node added with `add` without an
//! entry) is a clear error where its endpoint is asked for. Names in `addrs` are kept as
//! written and resolved when dialling, so Kubernetes DNS names work.

use crate::{ClusterConfig, ConfigError};
use std::path::PathBuf;

pub const DEFAULT_TLS_CA: &str = "certs/ca.crt";
pub const DEFAULT_TLS_CERT: &str = "certs/node-{id}.crt";
pub const DEFAULT_TLS_KEY: &str = "certs/node-{id}.key";
pub const DEFAULT_TLS_CLIENT_CERT: &str = "certs/client.crt";
pub const DEFAULT_TLS_CLIENT_KEY: &str = "certs/client.key";
/// Longest `host:port` entry: a DNS name is at most 253 bytes, plus `:65535`.
pub const MAX_ADDR_BYTES: usize = 260;

/// The one rule that places nodes in `addrs`: node N (from 1) is at `addrs[N-1]`.
/// `None` for id 0 or an id past the list.
pub fn addr_of(addrs: &[String], id: u64) -> Option<&str> {
    let i = usize::try_from(id.checked_sub(1)?).ok()?;
    addrs.get(i).map(String::as_str)
}

/// How the nodes of a cluster reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `<dir>/node-<id>/node.sock`; identity from `SO_PEERCRED` and the cluster key.
    Unix,
    /// TCP with mutual TLS: identity from certificates of the cluster's CA.
    Tls,
    /// Plain TCP (`insecure = true`): anyone who reaches the port is a client; peers
    /// still prove the cluster key.
    InsecureTcp,
}

/// One node's address: a Unix socket path or a TCP `host:port` (resolved when dialled).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => f.write_str(a),
        }
    }
}

/// The three files of one TLS identity, absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Splits `host:port` (`[v6]:port` too); the error says what is wrong.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.len() > MAX_ADDR_BYTES || host.contains(char::is_whitespace) {
        return Err(format!("{addr:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host, p)),
        _ => Err(format!("{addr:?}: port {port:?} is not in 1..=65535")),
    }
}

impl ClusterConfig {
    /// The transport the keys select (validated: `transport` is `unix` or `tcp`).
    pub fn transport_kind(&self) -> Transport {
        match (self.transport.as_str(), self.insecure) {
            ("tcp", false) => Transport::Tls,
            ("tcp", true) => Transport::InsecureTcp,
            _ => Transport::Unix,
        }
    }

    /// Where node `id` is dialled. A TCP node id past `addrs` is a config error.
    pub fn node_endpoint(&self, id: u64) -> Result<Endpoint, ConfigError> {
        if self.transport_kind() == Transport::Unix {
            return Ok(Endpoint::Unix(self.node_socket(id)));
        }
        match addr_of(&self.addrs, id) {
            Some(a) => Ok(Endpoint::Tcp(a.to_string())),
            None => Err(ConfigError::Invalid {
                key: "addrs",
                reason: format!(
                    "node {id} has no entry ({} listed); a node added with `add` needs one too",
                    self.addrs.len()
                ),
            }),
        }
    }

    /// What node `id` binds: its socket, or `listen_host` (default: its own host) with the
    /// port of its `addrs` entry.
    pub fn listen_endpoint(&self, id: u64) -> Result<Endpoint, ConfigError> {
        match self.node_endpoint(id)? {
            Endpoint::Tcp(a) if !self.listen_host.is_empty() => {
                let (_, port) = split_host_port(&a).map_err(|reason| ConfigError::Invalid { key: "addrs", reason })?;
                let host = &self.listen_host;
                Ok(Endpoint::Tcp(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }))
            }
            e => Ok(e),
        }
    }

    /// The host of node `id`'s `addrs` entry (for its certificate), `None` without one.
    pub fn node_host(&self, id: u64) -> Option<String> {
        let a = addr_of(&self.addrs, id)?;
        split_host_port(a).ok().map(|(h, _)| h.to_string())
    }

    fn tls_path(&self, template: &str, id: Option<u64>) -> PathBuf {
        let name = match id {
            Some(id) => template.replace("{id}", &id.to_string()),
            None => template.to_string(),
        };
        self.dir.join(name)
    }

    /// Node `id`'s TLS identity (`tls_ca`, `tls_cert`, `tls_key`).
    pub fn node_tls_paths(&self, id: u64) -> TlsPaths {
        TlsPaths {
            ca: self.tls_path(&self.tls_ca, Some(id)),
            cert: self.tls_path(&self.tls_cert, Some(id)),
            key: self.tls_path(&self.tls_key, Some(id)),
        }
    }

    /// The clients' TLS identity (`tls_ca`, `tls_client_cert`, `tls_client_key`).
    pub fn client_tls_paths(&self) -> TlsPaths {
        TlsPaths {
            ca: self.tls_path(&self.tls_ca, None),
            cert: self.tls_path(&self.tls_client_cert, None),
            key: self.tls_path(&self.tls_client_key, None),
        }
    }

    /// Checks that a TLS identity's files exist (a node at start, a client before
    /// dialling): the error names the key and the file, and says how to make them.
    pub fn check_tls_files(&self, paths: &TlsPaths) -> Result<(), ConfigError> {
        for (key, path) in [("tls_ca", &paths.ca), ("tls_cert", &paths.cert), ("tls_key", &paths.key)] {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{} does not exist; `raft-supervisor certs` makes a CA and certificates, or set \
                         insecure = true for plain TCP",
                        path.display()
                    ),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn validate_transport(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        match self.transport.as_str() {
            "unix" => {
                if !self.addrs.is_empty() {
                    return invalid("addrs", "is for transport = \"tcp\"; with \"unix\" nodes use node.sock".into());
                }
            }
            "tcp" => {
                if (self.addrs.len() as u64) < self.nodes {
                    return invalid(
                        "addrs",
                        format!(
                            "transport = \"tcp\" needs one \"host:port\" per node: {} listed, nodes = {}",
                            self.addrs.len(),
                            self.nodes
                        ),
                    );
                }
                if self.addrs.len() as u64 > crate::MAX_NODE_ID {
                    return invalid(
                        "addrs",
                        format!("{} entries, over MAX_NODE_ID ({})", self.addrs.len(), crate::MAX_NODE_ID),
                    );
                }
                for (i, a) in self.addrs.iter().enumerate() {
                    if let Err(e) = split_host_port(a) {
                        return invalid("addrs", format!("entry {} (node {}): {e}", i + 1, i + 1));
                    }
                }
                if !self.listen_host.is_empty() && self.listen_host.parse::<std::net::IpAddr>().is_err() {
                    return invalid(
                        "listen_host",
                        format!("{:?} is not an IP address (e.g. 0.0.0.0 or ::)", self.listen_host),
                    );
                }
            }
            other => return invalid("transport", format!("{other:?} is neither \"unix\" nor \"tcp\"")),
        }
        for (key, v) in [
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_cert", &self.tls_client_cert),
            ("tls_client_key", &self.tls_client_key),
        ] {
            if v.is_empty() {
                return invalid(key, "must name a file".into());
            }
        }
        Ok(())
    }
}
