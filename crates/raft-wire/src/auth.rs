//! Peer authentication: a mutual HMAC-SHA256 challenge-response over the cluster key.
//!
//! Every cluster has one secret, `<dir>/cluster.key` (32 random bytes, mode 0600, made by
//! `raft-supervisor up`). A process that cannot read it cannot become a peer: a node's
//! inbound peer stream is accepted only after the dialer proved it holds the key, and a
//! node sends Raft messages only after the acceptor proved the same. The key itself never
//! travels; each side only shows a MAC over fresh nonces from *both* sides, so a recorded
//! exchange replayed later fails (the other side's nonce is new), and a MAC from one role
//! cannot be reflected as the other's (each MAC starts with its role's label).
//!
//! ```text
//!  dialer D                                                   acceptor A
//!    Hello::Peer { cluster_id, node: D, nonce: na }    ->
//!                                                      <-    PeerChallenge { node: A, nonce: nb,
//!                                                              mac: HMAC(key, "raft-peer-acceptor" | T) }
//!    (D checks A's mac; a wrong one closes the stream)
//!    PeerProof { mac: HMAC(key, "raft-peer-dialer" | T) } ->
//!                                                            (A checks D's mac; only now is the
//!                                                             stream a peer's, and Raft messages
//!                                                             follow on it, D -> A only)
//!
//!  T = cluster_id (8 bytes BE) | D (8 bytes BE) | A (8 bytes BE) | na (32) | nb (32)
//! ```
//!
//! The MACs are `hmac` + `sha2` (RustCrypto), compared with the crate's constant-time
//! `verify_slice`; nothing cryptographic is written here. Nonces come from the OS
//! (`/dev/urandom`). What this does not give: the frames after the hello carry no MAC,
//! so a process that can already replace a node's socket file (write access to the
//! cluster directory, which is 0700) could sit in the middle; the key and the
//! directory share one owner, so such a process could read the key anyway.

use crate::{Hello, PeerChallenge, PeerProof};
use hmac::{Hmac, Mac};
use raft_core::NodeId;
use sha2::Sha256;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Bytes of the cluster key: 256 bits, the HMAC-SHA256 block-size-friendly strength.
pub const KEY_BYTES: usize = 32;
/// Bytes of each side's nonce: random, so two handshakes never share one.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a MAC (HMAC-SHA256 output).
pub const MAC_BYTES: usize = 32;

pub type Nonce = [u8; NONCE_BYTES];
pub type MacBytes = [u8; MAC_BYTES];

const DIALER_LABEL: &[u8] = b"raft-peer-dialer";
const ACCEPTOR_LABEL: &[u8] = b"raft-peer-acceptor";

/// The per-cluster secret. Its `Debug` does not show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a key could not be read or made. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the cluster key {path}: {source} (raft-supervisor up creates it)")]
    Read { path: String, source: std::io::Error },
    #[error(
        "the cluster key {path} is {len} bytes, expected {KEY_BYTES}; remove it and run `raft-supervisor up` again"
    )]
    Length { path: String, len: u64 },
    #[error("the cluster key {path} has mode {mode:o}; others may read it: `chmod 600 {path}`")]
    Mode { path: String, mode: u32 },
    #[error("cannot create the cluster key {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("no random bytes from the OS: {0}")]
    Random(std::io::Error),
}

/// Fills `buf` from the OS's random source.
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// A fresh nonce from the OS.
pub fn random_nonce() -> std::io::Result<Nonce> {
    let mut n = [0u8; NONCE_BYTES];
    random_bytes(&mut n)?;
    Ok(n)
}

impl ClusterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ClusterKey {
        ClusterKey(bytes)
    }

    /// A new random key.
    pub fn generate() -> Result<ClusterKey, KeyError> {
        let mut k = [0u8; KEY_BYTES];
        random_bytes(&mut k).map_err(KeyError::Random)?;
        Ok(ClusterKey(k))
    }

    /// Reads the key file: exactly [`KEY_BYTES`] bytes, not readable by group or others.
    pub fn load(path: &Path) -> Result<ClusterKey, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let name = path.display().to_string();
        let read = |source| KeyError::Read { path: name.clone(), source };
        let mut f = std::fs::File::open(path).map_err(read)?;
        let meta = f.metadata().map_err(read)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Mode { path: name, mode });
        }
        if meta.len() != KEY_BYTES as u64 {
            return Err(KeyError::Length { path: name, len: meta.len() });
        }
        let mut k = [0u8; KEY_BYTES];
        f.read_exact(&mut k).map_err(read)?;
        Ok(ClusterKey(k))
    }

    /// Creates the key file with a new random key unless it exists: `O_CREAT|O_EXCL`,
    /// mode 0600, written, fsynced, and its directory fsynced so the key survives a power
    /// cut together with what the nodes persist. Returns whether a key was created.
    pub fn create_if_missing(path: &Path) -> Result<bool, KeyError> {
        let name = path.display().to_string();
        let create = |source| KeyError::Create { path: name.clone(), source };
        let key = ClusterKey::generate()?;
        let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(create(e)),
        };
        f.write_all(&key.0).and_then(|()| f.sync_all()).map_err(create)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(create)?;
        Ok(true)
    }

    fn mac(&self, label: &[u8], t: &Transcript) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        m.update(label);
        m.update(&t.cluster_id.to_be_bytes());
        m.update(&t.dialer.to_be_bytes());
        m.update(&t.acceptor.to_be_bytes());
        m.update(&t.dialer_nonce);
        m.update(&t.acceptor_nonce);
        m
    }

    /// The dialer's MAC over `t` (what [`PeerProof`] carries). For tests and tools that
    /// play a peer; a node uses [`DialerHandshake`].
    pub fn dialer_mac(&self, t: &Transcript) -> MacBytes {
        self.tag(DIALER_LABEL, t)
    }

    fn tag(&self, label: &[u8], t: &Transcript) -> MacBytes {
        self.mac(label, t).finalize().into_bytes().into()
    }

    fn verify(&self, label: &[u8], t: &Transcript, mac: &MacBytes) -> bool {
        self.mac(label, t).verify_slice(mac).is_ok()
    }
}

/// What both MACs cover: who dials whom in which cluster, and both nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub cluster_id: u64,
    pub dialer: NodeId,
    pub acceptor: NodeId,
    pub dialer_nonce: Nonce,
    pub acceptor_nonce: Nonce,
}

/// Why a handshake was refused (the node logs it and closes the connection).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("its proof does not match the cluster key (wrong key, or a replayed or forged hello)")]
    BadDialerMac,
    #[error("its challenge does not match the cluster key (wrong key, or not the node we dialled)")]
    BadAcceptorMac,
    #[error("answered as n{got}, but we dialled n{expected}")]
    WrongAcceptor { expected: NodeId, got: NodeId },
}

/// The dialer's side: send [`DialerHandshake::hello`], answer the acceptor's challenge.
#[derive(Clone, Debug)]
pub struct DialerHandshake {
    cluster_id: u64,
    me: NodeId,
    peer: NodeId,
    nonce: Nonce,
}

impl DialerHandshake {
    /// `nonce` must be fresh (see [`random_nonce`]).
    pub fn new(cluster_id: u64, me: NodeId, peer: NodeId, nonce: Nonce) -> DialerHandshake {
        DialerHandshake { cluster_id, me, peer, nonce }
    }

    /// The first frame on the stream.
    pub fn hello(&self) -> Hello {
        Hello::Peer { cluster_id: self.cluster_id, node: self.me, nonce: self.nonce }
    }

    /// Checks the acceptor's MAC; on success the proof to send, after which the stream is
    /// ours to send Raft messages on.
    pub fn on_challenge(&self, key: &ClusterKey, c: &PeerChallenge) -> Result<PeerProof, AuthError> {
        if c.node != self.peer {
            return Err(AuthError::WrongAcceptor { expected: self.peer, got: c.node });
        }
        let t = Transcript {
            cluster_id: self.cluster_id,
            dialer: self.me,
            acceptor: self.peer,
            dialer_nonce: self.nonce,
            acceptor_nonce: c.nonce,
        };
        if !key.verify(ACCEPTOR_LABEL, &t, &c.mac) {
            return Err(AuthError::BadAcceptorMac);
        }
        Ok(PeerProof { mac: key.tag(DIALER_LABEL, &t) })
    }
}

/// The acceptor's side, after a `Hello::Peer` whose cluster id and node id were checked.
#[derive(Clone, Debug)]
pub struct AcceptorHandshake {
    transcript: Transcript,
}

impl AcceptorHandshake {
    /// The challenge to send back to `dialer` (who sent `dialer_nonce`); `nonce` must be
    /// fresh.
    pub fn new(
        key: &ClusterKey,
        cluster_id: u64,
        me: NodeId,
        dialer: NodeId,
        dialer_nonce: Nonce,
        nonce: Nonce,
    ) -> (AcceptorHandshake, PeerChallenge) {
        let transcript = Transcript { cluster_id, dialer, acceptor: me, dialer_nonce, acceptor_nonce: nonce };
        let challenge = PeerChallenge { node: me, nonce, mac: key.tag(ACCEPTOR_LABEL, &transcript) };
        (AcceptorHandshake { transcript }, challenge)
    }

    /// The dialer this handshake is with.
    pub fn dialer(&self) -> NodeId {
        self.transcript.dialer
    }

    /// Checks the dialer's proof (constant-time); only `Ok` makes the stream a peer's.
    pub fn on_proof(&self, key: &ClusterKey, proof: &PeerProof) -> Result<(), AuthError> {
        if key.verify(DIALER_LABEL, &self.transcript, &proof.mac) {
            Ok(())
        } else {
            Err(AuthError::BadDialerMac)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: u64 = 0xC1A5_7E12;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes([b; KEY_BYTES])
    }

    /// One whole exchange: dialer `d` (key `kd`) to acceptor `a` (key `ka`).
    fn exchange(kd: &ClusterKey, ka: &ClusterKey) -> Result<(), AuthError> {
        let d = DialerHandshake::new(CLUSTER, 1, 2, random_nonce().unwrap());
        let Hello::Peer { cluster_id, node, nonce } = d.hello() else { panic!("a peer hello") };
        let (a, challenge) = AcceptorHandshake::new(ka, cluster_id, 2, node, nonce, random_nonce().unwrap());
        let proof = d.on_challenge(kd, &challenge)?;
        a.on_proof(ka, &proof)
    }

    #[test]
    fn the_right_key_works_both_ways() {
        let k = ClusterKey::generate().unwrap();
        exchange(&k, &k).unwrap();
    }

    #[test]
    fn a_wrong_key_is_refused_on_either_side() {
        // The dialer refuses an acceptor without the key before proving anything.
        assert_eq!(exchange(&key(1), &key(2)), Err(AuthError::BadAcceptorMac));
        // An acceptor refuses a dialer that cannot check its challenge and just answers.
        let (ka, kd) = (key(1), key(2));
        let d = DialerHandshake::new(CLUSTER, 1, 2, [7; NONCE_BYTES]);
        let (a, challenge) = AcceptorHandshake::new(&ka, CLUSTER, 2, 1, [7; NONCE_BYTES], [9; NONCE_BYTES]);
        // The dialer with the wrong key forges its proof over the same transcript.
        let t = Transcript {
            cluster_id: CLUSTER,
            dialer: 1,
            acceptor: 2,
            dialer_nonce: [7; NONCE_BYTES],
            acceptor_nonce: challenge.nonce,
        };
        let forged = PeerProof { mac: kd.tag(DIALER_LABEL, &t) };
        assert_eq!(a.on_proof(&ka, &forged), Err(AuthError::BadDialerMac));
        assert!(d.on_challenge(&kd, &challenge).is_err());
    }

    #[test]
    fn a_replayed_transcript_is_refused() {
        let k = key(5);
        // A recorded good exchange...
        let d = DialerHandshake::new(CLUSTER, 1, 2, [3; NONCE_BYTES]);
        let (a, challenge) = AcceptorHandshake::new(&k, CLUSTER, 2, 1, [3; NONCE_BYTES], random_nonce().unwrap());
        let proof = d.on_challenge(&k, &challenge).unwrap();
        a.on_proof(&k, &proof).unwrap();
        // ... replayed: same hello, same proof, but the acceptor's nonce is new.
        let (a2, challenge2) = AcceptorHandshake::new(&k, CLUSTER, 2, 1, [3; NONCE_BYTES], random_nonce().unwrap());
        assert_ne!(challenge2.nonce, challenge.nonce, "fresh nonces");
        assert_eq!(a2.on_proof(&k, &proof), Err(AuthError::BadDialerMac));
        // A replayed challenge to a dialer with a fresh nonce fails too.
        let d2 = DialerHandshake::new(CLUSTER, 1, 2, random_nonce().unwrap());
        assert_eq!(d2.on_challenge(&k, &challenge).map(drop), Err(AuthError::BadAcceptorMac));
        // And the acceptor's own MAC reflected back as a proof is refused (role labels).
        assert_eq!(a.on_proof(&k, &PeerProof { mac: challenge.mac }), Err(AuthError::BadDialerMac));
    }

    #[test]
    fn a_tampered_mac_or_transcript_is_refused() {
        let k = key(6);
        let d = DialerHandshake::new(CLUSTER, 1, 2, [1; NONCE_BYTES]);
        let (a, challenge) = AcceptorHandshake::new(&k, CLUSTER, 2, 1, [1; NONCE_BYTES], [2; NONCE_BYTES]);
        let proof = d.on_challenge(&k, &challenge).unwrap();
        for bit in [0, 77, 255] {
            let mut bad = proof.clone();
            bad.mac[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(a.on_proof(&k, &bad), Err(AuthError::BadDialerMac), "bit {bit}");
            let mut bad = challenge.clone();
            bad.mac[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(d.on_challenge(&k, &bad).map(drop), Err(AuthError::BadAcceptorMac), "bit {bit}");
        }
        let mut bad = challenge.clone();
        bad.nonce[0] ^= 1;
        assert_eq!(d.on_challenge(&k, &bad).map(drop), Err(AuthError::BadAcceptorMac), "tampered nonce");
        // A proof made for another node id, another cluster or another acceptor is refused.
        for (cluster, dialer, acceptor) in [(CLUSTER ^ 1, 1, 2), (CLUSTER, 3, 2), (CLUSTER, 1, 3)] {
            let t = Transcript {
                cluster_id: cluster,
                dialer,
                acceptor,
                dialer_nonce: [1; NONCE_BYTES],
                acceptor_nonce: [2; NONCE_BYTES],
            };
            assert_eq!(a.on_proof(&k, &PeerProof { mac: k.tag(DIALER_LABEL, &t) }), Err(AuthError::BadDialerMac));
        }
        // An answer from a node we did not dial.
        let mut other = challenge.clone();
        other.node = 3;
        assert_eq!(d.on_challenge(&k, &other).map(drop), Err(AuthError::WrongAcceptor { expected: 2, got: 3 }));
    }

    #[test]
    fn key_file_is_made_once_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cluster.key");
        assert!(matches!(ClusterKey::load(&path), Err(KeyError::Read { .. })));
        let missing = ClusterKey::load(&path).unwrap_err().to_string();
        assert!(missing.contains(&path.display().to_string()), "names the path: {missing}");
        assert!(ClusterKey::create_if_missing(&path).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (KEY_BYTES as u64, 0o600));
        let k = ClusterKey::load(&path).unwrap();
        assert!(!ClusterKey::create_if_missing(&path).unwrap(), "an existing key is kept");
        assert_eq!(ClusterKey::load(&path).unwrap(), k);
        assert_eq!(format!("{k:?}"), "ClusterKey(..)", "Debug shows no secret");
        // Others may not read it; a short file is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ClusterKey::load(&path), Err(KeyError::Mode { .. })));
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(ClusterKey::load(&path), Err(KeyError::Length { len: 5, .. })));
    }
}
