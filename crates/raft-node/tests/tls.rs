//! Issue 18 in one process: three real nodes over TCP with mutual TLS on 127.0.0.1,
//! certificates made by raft-transport's `certs` (what `raft-supervisor certs` writes).
//! Election, replication and a leader loss over TLS; and each kind of stranger refused
//! with one log line while the node serves on: a peer with a certificate of another CA,
//! a peer whose certificate names another node (on the accepting and the dialling side),
//! a client with no certificate, and a client that does not speak TLS.

use raft_core::RoleKind;
use raft_node::{LogTarget, NodeSettings, Server, TcpSettings};
use raft_transport::certs::{generate, CertPlan};
use raft_transport::{connect_blocking, ClientTls, Endpoint, NodeTls, TlsPaths};
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{Node, Nodes, TestClient};

const CLUSTER_ID: u64 = 0x7115;

/// Writes a CA and certificates for nodes 1..=n and a client into `dir`.
fn make_certs(dir: &Path, n: u64) {
    let plan = CertPlan {
        dir: dir.to_path_buf(),
        nodes: (1..=n).map(|id| (id, Some("127.0.0.1".into()))).collect(),
        force: false,
    };
    generate(&plan).expect("certificates are written");
}

fn node_paths(dir: &Path, id: u64) -> TlsPaths {
    TlsPaths {
        ca: dir.join("ca.crt"),
        cert: dir.join(format!("node-{id}.crt")),
        key: dir.join(format!("node-{id}.key")),
    }
}

fn client_paths(dir: &Path) -> TlsPaths {
    TlsPaths { ca: dir.join("ca.crt"), cert: dir.join("client.crt"), key: dir.join("client.key") }
}

/// Ports the kernel hands out now: bound, read and released (a port taken in between
/// would fail the node's bind, which the test reports).
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// The cluster; stops every node loop on drop, also when a test fails.
struct Cluster {
    /// First, so the node loops stop before the temp dir goes.
    nodes: Nodes,
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    settings: BTreeMap<u64, NodeSettings>,
    client: ClientTls,
}

impl Cluster {
    /// `n` nodes; node `id` uses the certificate of `cert_of(id)` (itself, unless a test
    /// hands one node another node's certificate).
    fn new(n: u64, cert_of: impl Fn(u64) -> u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        make_certs(&certs, n);
        let addrs: Vec<String> = free_ports(n as usize).into_iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let key = raft_wire::auth::ClusterKey::generate().unwrap();
        let settings = (1..=n)
            .map(|id| {
                let node_dir = dir.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&node_dir).unwrap();
                let tls = NodeTls::load(&node_paths(&certs, cert_of(id))).expect("node identity loads");
                let s = NodeSettings {
                    id,
                    // Over tcp only the keys matter: the nodes known at start.
                    sockets: (1..=n).map(|p| (p, PathBuf::from("unused"))).collect(),
                    bootstrap: (1..=n).collect(),
                    cluster_dir: None,
                    log: LogTarget::File(node_dir.join("node.log")),
                    redis: None,
                    tcp: Some(TcpSettings {
                        addrs: addrs.clone(),
                        listen: addrs[id as usize - 1].clone(),
                        tls: Some(tls),
                    }),
                    node_dir,
                    cluster_id: CLUSTER_ID,
                    cluster_key: key.clone(),
                    allowed_uids: Vec::new(),
                    tick: Duration::from_millis(10),
                    heartbeat_ticks: 5,
                    election_ticks_min: 15,
                    election_ticks_max: 30,
                    pre_vote: true,
                    check_quorum: true,
                    fsync: false,
                    snapshot_entries: 10_000,
                    snapshot_ratio: 0.0,
                    promote_lag: raft_core::PROMOTE_LAG_ENTRIES,
                    snapshot_bytes: u64::MAX,
                    quota_bytes: 0,
                    seed: id * 7919,
                    handle_signals: false,
                };
                (id, s)
            })
            .collect();
        let client = ClientTls::load(&client_paths(&certs)).expect("client identity loads");
        let mut c = Cluster { nodes: Nodes::default(), dir, addrs, settings, client };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn start(&mut self, id: u64) {
        let server = Server::open(self.settings[&id].clone()).expect("node opens");
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().expect("node runs"));
        self.nodes.insert(id, Node { stop, thread: Some(thread) });
    }

    fn stop(&mut self, id: u64) {
        let mut node = self.nodes.remove(&id).expect("running");
        node.stop.stop();
        node.thread.take().unwrap().join().expect("node thread ends cleanly");
    }

    fn at(&self, id: u64) -> Endpoint {
        Endpoint::Tcp(self.addrs[id as usize - 1].clone())
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}/node.log"))).unwrap_or_default()
    }

    fn lines(&self, id: u64, needle: &str) -> usize {
        self.log(id).lines().filter(|l| l.contains(needle)).count()
    }
}

impl TestClient for Cluster {
    fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn request(&self, id: u64, body: Request) -> Option<Response> {
        let mut s = connect_blocking(&self.at(id), id, Some(&self.client), Duration::from_secs(2)).ok()?;
        write_frame(&mut s, &Hello::Client).ok()?;
        write_frame(&mut s, &ClientRequest { id: 1, body }).ok()?;
        let resp: ClientResponse = read_frame(&mut s).ok()?;
        assert_eq!(resp.id, 1);
        Some(resp.body)
    }
}

fn value(v: &str) -> Option<Response> {
    Some(Response::Ok(Reply::Value(Some(v.as_bytes().to_vec()))))
}

#[test]
fn three_nodes_over_mutual_tls_elect_replicate_and_survive_the_leader() {
    let mut c = Cluster::new(3, |id| id);
    let leader = c.wait_leader();
    for id in 1..=3 {
        assert!(c.log(id).contains("transport: TCP with mutual TLS"), "n{id}:\n{}", c.log(id));
        assert!(!c.log(id).contains("TLS: "), "no TLS refusal among the cluster's own nodes:\n{}", c.log(id));
    }
    for i in 0..10 {
        c.set(1, i + 1, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(c.get(leader, "k9", false), value("v9"));
    c.stop(leader);
    let new_leader = c.wait_leader();
    assert_ne!(new_leader, leader);
    c.set(1, 11, "after", "loss");
    assert_eq!(c.get(new_leader, "after", false), value("loss"));
    assert_eq!(c.get(new_leader, "k0", false), value("v0"), "the old leader's writes survived over TLS");
}

/// Says hello as peer `claims` to node 1 with `identity`, then reads until the node
/// closes the connection (it must: nothing a stranger sends is answered).
fn stranger_peer(c: &Cluster, identity: &ClientTls, claims: u64) {
    let Ok(mut s) = connect_blocking(&c.at(1), 1, Some(identity), Duration::from_secs(2)) else { return };
    let hello = Hello::Peer { cluster_id: CLUSTER_ID, node: claims, nonce: [7; 32] };
    if write_frame(&mut s, &hello).is_ok() {
        let got: std::io::Result<PeerChallenge> = read_frame(&mut s);
        assert!(got.is_err(), "a refused peer gets no challenge: {got:?}");
    }
}

#[test]
fn a_peer_with_a_certificate_of_another_ca_is_refused_with_one_line() {
    let c = Cluster::new(3, |id| id);
    c.wait_leader();
    let other = c.dir.path().join("other-ca");
    make_certs(&other, 3);
    let before = c.lines(1, "TLS: ");
    // It trusts our CA (so it goes through with the handshake) but holds node 2's
    // certificate of another CA: node 1 must refuse it, not the other way round.
    let foreign = node_paths(&other, 2);
    let stranger = ClientTls::load(&TlsPaths { ca: c.certs().join("ca.crt"), ..foreign }).unwrap();
    stranger_peer(&c, &stranger, 2);
    c.wait_until("node 1 logs the refusal", || c.lines(1, "TLS: ") > before);
    assert!(c.status(1).is_some(), "node 1 serves on");
    assert_eq!(c.lines(1, "TLS: "), before + 1, "one line:\n{}", c.log(1));
    let line = c.log(1).lines().rfind(|l| l.contains("TLS: ")).unwrap().to_string();
    assert!(line.contains("from 127.0.0.1:"), "names the address: {line}");
    assert!(line.contains("invalid peer certificate"), "says why: {line}");
}

#[test]
fn a_peer_whose_certificate_names_another_node_is_refused_with_one_line() {
    let c = Cluster::new(3, |id| id);
    c.wait_leader();
    // Node 3's own certificate, of the right CA, claiming to be node 2.
    let node3 = NodeTls::load(&node_paths(&c.certs(), 3)).unwrap().client;
    stranger_peer(&c, &node3, 2);
    let needle = "refused peer n2: its certificate does not name node-2";
    c.wait_until("node 1 logs the refusal", || c.lines(1, needle) > 0);
    assert!(c.status(1).is_some(), "node 1 serves on");
    assert_eq!(c.lines(1, needle), 1, "{}", c.log(1));
    // The client certificate is no peer either.
    stranger_peer(&c, &c.client, 2);
    c.wait_until("node 1 logs the second refusal", || c.lines(1, needle) > 1);
    assert_eq!(c.lines(1, needle), 2, "{}", c.log(1));
}

#[test]
fn a_dialler_refuses_a_listener_with_another_nodes_certificate_once_however_often_it_redials() {
    // Node 3 serves with node 2's certificate: whoever dials node 3 refuses it.
    let c = Cluster::new(3, |id| if id == 3 { 2 } else { id });
    let refusal = "refused peer n3 at ";
    c.wait_until("node 1 refuses node 3's listener", || c.lines(1, refusal) > 0);
    // Node 3 sees each of node 1's attempts end in an alert: wait for several redials.
    c.wait_until("node 1 redials node 3 a few times", || c.lines(3, "TLS: ") >= 4);
    assert_eq!(c.lines(1, refusal), 1, "the same refusal is said once:\n{}", c.log(1));
    let line = c.log(1).lines().find(|l| l.contains(refusal)).unwrap().to_string();
    assert!(line.contains(&c.addrs[2]) && line.contains("node-3"), "names the address and the name: {line}");
    // Nodes 1 and 2 still make a majority and elect a leader.
    let leader = c.wait_leader_among(&[1, 2]);
    assert!(leader == 1 || leader == 2);
}

impl Cluster {
    fn wait_leader_among(&self, ids: &[u64]) -> u64 {
        common::poll(&format!("one leader among {ids:?}"), || {
            let leaders: Vec<u64> = ids
                .iter()
                .filter_map(|&id| self.status(id))
                .filter(|s| s.role == RoleKind::Leader)
                .map(|s| s.id)
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        })
    }
}

#[test]
fn a_client_without_a_certificate_or_without_tls_is_refused_with_one_line_each() {
    let c = Cluster::new(3, |id| id);
    c.wait_leader();
    let before = c.lines(1, "TLS: ");
    // TLS, the right CA, but no client certificate.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types_certs(&c.certs().join("ca.crt")) {
        roots.add(cert).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("node-1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(&c.addrs[0]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    if write_frame(&mut s, &Hello::Client).is_ok()
        && write_frame(&mut s, &ClientRequest { id: 1, body: Request::Status }).is_ok()
    {
        let got: std::io::Result<ClientResponse> = read_frame(&mut s);
        assert!(got.is_err(), "a client without a certificate gets no answer: {got:?}");
    }
    c.wait_until("node 1 logs the refusal", || c.lines(1, "TLS: ") > before);
    assert_eq!(c.lines(1, "TLS: "), before + 1, "{}", c.log(1));

    // Plain TCP to a TLS port: the hello is no TLS record.
    let mut tcp = std::net::TcpStream::connect(&c.addrs[0]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_frame(&mut tcp, &Hello::Client).unwrap();
    let _ = write_frame(&mut tcp, &ClientRequest { id: 1, body: Request::Status });
    let got: std::io::Result<ClientResponse> = read_frame(&mut tcp);
    assert!(got.is_err(), "plain TCP gets no answer: {got:?}");
    c.wait_until("node 1 logs the second refusal", || c.lines(1, "TLS: ") > before + 1);
    assert!(c.status(1).is_some(), "node 1 serves on");
    assert_eq!(c.lines(1, "TLS: "), before + 2, "{}", c.log(1));
}

fn rustls_pki_types_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path).unwrap().map(|c| c.unwrap()).collect()
}
