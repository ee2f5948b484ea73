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

/// Whether `host` would make a certificate name an identity (`node-<n>`, `client`).
/// webpki matches DNS names ignoring ASCII case and a trailing dot, so this compares the
/// same way: `Node-2` and `node-2.` are node 2's name too.
fn reserved(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
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
        write(&plan.dir.join(format!("{name}.key")), &key.serialize_pem(), true)?;
        Ok::<_, CertError>(cert.der().clone())
    };
    // Each certificate is checked with the handshake's own name matching: node N's names
    // node N and no other node id there can be, the client's names none (identity from
    // credentials). At most MAX_NODE_ID checks a certificate: cheap, once per `certs`.
    let ids = 1..=raft_config::MAX_NODE_ID;
    for (id, host) in &plan.nodes {
        let mut names = vec![crate::node_name(*id)];
        names.extend(host.clone());
        // A node is a server to its peers and clients, and a client of its peers.
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let der = leaf(names, &format!("raft node {id}"), usages, &format!("node-{id}"))?;
        for other in ids.clone() {
            let names = crate::tls::cert_names_node(&der, other);
            assert_eq!(names, other == *id, "node {id}'s certificate naming node {other}: {names}");
        }
    }
    let der = leaf(vec![CLIENT_NAME.into()], "raft client", vec![ExtendedKeyUsagePurpose::ClientAuth], "client")?;
    assert!(!ids.clone().any(|id| crate::tls::cert_names_node(&der, id)), "the client certificate names a node");
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use std::os::unix::fs::PermissionsExt;

    fn plan(dir: &Path, force: bool) -> CertPlan {
        CertPlan {
            dir: dir.to_path_buf(),
            nodes: vec![(1, Some("10.0.0.1".into())), (2, Some("db-2.example".into()))],
            force,
        }
    }

    fn cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    #[test]
    fn node_certificates_name_their_node_only_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let written = generate(&plan(dir.path(), false)).unwrap();
        assert_eq!(written.len(), 8, "ca, two nodes, client: a crt and a key each");
        for p in &written {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let secret = p.extension().is_some_and(|e| e == "key");
            assert_eq!(mode, if secret { 0o600 } else { 0o644 }, "{}", p.display());
        }
        let n1 = cert(&dir.path().join("node-1.crt"));
        assert!(crate::tls::cert_names_node(&n1, 1));
        assert!(!crate::tls::cert_names_node(&n1, 2), "node 1's certificate is not node 2's");
        assert!(!crate::tls::cert_names_node(&n1, 11), "no prefix match: node-1 is not node-11");
        let client = cert(&dir.path().join("client.crt"));
        assert!((1..=2).all(|id| !crate::tls::cert_names_node(&client, id)), "the client certificate names no node");
        // The identities load as rustls configurations.
        let paths = |name: &str| raft_config::TlsPaths {
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join(format!("{name}.crt")),
            key: dir.path().join(format!("{name}.key")),
        };
        crate::NodeTls::load(&paths("node-2")).unwrap();
        crate::ClientTls::load(&paths("client")).unwrap();
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        generate(&plan(dir.path(), false)).unwrap();
        let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let e = generate(&plan(dir.path(), false)).unwrap_err();
        assert!(matches!(&e, CertError::Exists(p) if p.ends_with("ca.crt")), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), ca, "nothing overwritten");
        generate(&plan(dir.path(), true)).unwrap();
        assert_ne!(std::fs::read(dir.path().join("ca.crt")).unwrap(), ca, "--force makes a new CA");
    }

    #[test]
    fn a_host_that_would_claim_another_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // webpki matches names ignoring case and a trailing dot: so does the refusal.
        for host in ["node-2", "client", "Node-2", "node-2.", "NODE-2.", "Client", "client."] {
            let p = CertPlan { dir: dir.path().to_path_buf(), nodes: vec![(1, Some(host.into()))], force: false };
            assert!(matches!(generate(&p), Err(CertError::ReservedHost(h)) if h == host));
        }
        assert!(!dir.path().join("ca.crt").exists(), "nothing written");
    }

    #[test]
    fn unreadable_tls_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let paths = raft_config::TlsPaths {
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join("x.crt"),
            key: dir.path().join("x.key"),
        };
        let e = crate::ClientTls::load(&paths).unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
    }
}
