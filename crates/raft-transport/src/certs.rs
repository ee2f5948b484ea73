//! `raft-supervisor certs`: a small CA and the certificates of a test or a first
//! deployment (rcgen). Node `N`'s certificate carries the DNS name `node-N` (its
//! identity) plus the host of its `addrs` entry; the client certificate carries the DNS
//! name `client` (its role). Keys are written mode 0600; nothing is overwritten unless
//! asked.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Spare node ids `certs` covers beyond `nodes`, for nodes added later with `add`.
pub const SPARE_NODE_CERTS: u64 = 4;
/// The name a client certificate carries (its role).
pub const CLIENT_NAME: &str = "client";

/// What to make.
pub struct CertPlan {
    pub dir: PathBuf,
    /// `(id, host of its addrs entry)` for every node certificate.
    pub nodes: Vec<(u64, Option<String>)>,
    pub force: bool,
}

/// Why certificates were not written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0} already exists; pass --force to replace every certificate and key (peers then need the new ones)")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("certificate generation: {0}")]
    Gen(String),
    #[error("host {0:?} of an addrs entry would claim another identity (node-<n> or client names are reserved)")]
    ReservedHost(String),
}

fn gen(e: rcgen::Error) -> CertError {
    CertError::Gen(e.to_string())
}

/// The files `plan` writes, in order.
pub fn files(plan: &CertPlan) -> Vec<PathBuf> {
    let mut v = vec![plan.dir.join("ca.crt"), plan.dir.join("ca.key")];
    for (id, _) in &plan.nodes {
        v.push(plan.dir.join(format!("node-{id}.crt")));
        v.push(plan.dir.join(format!("node-{id}.key")));
    }
    v.push(plan.dir.join("client.crt"));
    v.push(plan.dir.join("client.key"));
    v
}

fn reserved(host: &str) -> bool {
    host == CLIENT_NAME
        || host.strip_prefix("node-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes the CA, the node certificates and the client certificate; returns the files.
pub fn generate(plan: &CertPlan) -> Result<Vec<PathBuf>, CertError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let all = files(plan);
    if !plan.force {
        if let Some(p) = all.iter().find(|p| p.exists()) {
            return Err(CertError::Exists(p.clone()));
        }
    }
    for (_, host) in &plan.nodes {
        if let Some(h) = host.as_deref().filter(|h| reserved(h)) {
            return Err(CertError::ReservedHost(h.to_string()));
        }
    }
    let mkdir = |source| CertError::Write { path: plan.dir.clone(), source };
    std::fs::create_dir_all(&plan.dir).map_err(mkdir)?;

    let ca_key = KeyPair::generate().map_err(gen)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.distinguished_name.push(DnType::CommonName, "raft cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).map_err(gen)?;
    write(&plan.dir.join("ca.crt"), &ca.pem(), false)?;
    write(&plan.dir.join("ca.key"), &ca_key.serialize_pem(), true)?;

    let leaf = |names: Vec<String>, cn: &str, usages: Vec<ExtendedKeyUsagePurpose>, name: &str| {
        let key = KeyPair::generate().map_err(gen)?;
        let mut params = CertificateParams::new(names).map_err(gen)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(gen)?;
        write(&plan.dir.join(format!("{name}.crt")), &cert.pem(), false)?;
        write(&plan.dir.join(format!("{name}.key")), &key.serialize_pem(), true)
    };
    for (id, host) in &plan.nodes {
        let mut names = vec![crate::node_name(*id)];
        names.extend(host.clone());
        // A node is a server to its peers and clients, and a client of its peers.
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        leaf(names, &format!("raft node {id}"), usages, &format!("node-{id}"))?;
    }
    leaf(vec![CLIENT_NAME.into()], "raft client", vec![ExtendedKeyUsagePurpose::ClientAuth], "client")?;
    Ok(all)
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write { path: path.to_path_buf(), source };
    let _ = std::fs::remove_file(path); // --force: a fresh file gets the right mode
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}
