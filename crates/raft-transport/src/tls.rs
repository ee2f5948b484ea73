//! Loading TLS identities from the files the config names, and the node-name check.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS file that cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("TLS setup with {path}: {why}")]
    Setup { path: PathBuf, why: String },
}

/// The DNS name a node's certificate carries and a dialer asks for: `node-<id>`.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |why: String| TlsError::Read { path: path.to_path_buf(), why };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty { path: path.to_path_buf(), what: "PEM certificate" });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read { path: path.to_path_buf(), why: e.to_string() })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| TlsError::Setup { path: path.to_path_buf(), why: e.to_string() })?;
    }
    Ok(Arc::new(roots))
}

fn client_config(roots: Arc<RootCertStore>, paths: &raft_config::TlsPaths) -> Result<Arc<ClientConfig>, TlsError> {
    let setup = |why: String| TlsError::Setup { path: paths.cert.clone(), why };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(&paths.cert)?, key(&paths.key)?)
        .map_err(|e| setup(e.to_string()))?;
    Ok(Arc::new(config))
}

/// A client's identity: dials nodes, presenting its certificate.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
}

impl ClientTls {
    pub fn load(paths: &raft_config::TlsPaths) -> Result<ClientTls, TlsError> {
        Ok(ClientTls { config: client_config(roots(&paths.ca)?, paths)? })
    }

    /// The rustls session for dialling node `id` (the acceptor must prove `node-<id>`).
    pub(crate) fn session(&self, id: u64) -> std::io::Result<rustls::ClientConnection> {
        let name = ServerName::try_from(node_name(id)).map_err(std::io::Error::other)?;
        rustls::ClientConnection::new(self.config.clone(), name).map_err(std::io::Error::other)
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

/// A node's identity: accepts peers and clients with certificates of the CA, and dials
/// peers (and, for the RESP front end's forwarding, the leader) with its own certificate.
#[derive(Clone)]
pub struct NodeTls {
    pub(crate) server: Arc<ServerConfig>,
    pub client: ClientTls,
}

impl NodeTls {
    pub fn load(paths: &raft_config::TlsPaths) -> Result<NodeTls, TlsError> {
        let roots = roots(&paths.ca)?;
        let setup = |why: String| TlsError::Setup { path: paths.cert.clone(), why };
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Setup { path: paths.ca.clone(), why: e.to_string() })?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&paths.cert)?, key(&paths.key)?)
            .map_err(|e| setup(e.to_string()))?;
        Ok(NodeTls { server: Arc::new(server), client: ClientTls { config: client_config(roots, paths)? } })
    }
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

/// Whether a certificate (already verified against the CA by the handshake) names node
/// `id`: webpki's own name matching, the check a dialer's verification does.
pub(crate) fn cert_names_node(cert: &CertificateDer<'_>, id: u64) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else { return false };
    let Ok(name) = ServerName::try_from(node_name(id)) else { return false };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}
