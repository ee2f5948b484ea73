//! Who may talk to a node, end to end: a peer must prove it holds `<dir>/cluster.key`
//! (raft_wire::auth), and a process must run as the nodes' uid, root, or a uid in
//! `allowed_uids` (SO_PEERCRED). Each refusal is one line in node.log and a closed
//! connection; the cluster keeps serving. The uid tests need root (to setuid a forked
//! child to `nobody`); the tests run as root here and in CI.

use raft_e2e::*;
use raft_wire::auth::{random_nonce, ClusterKey, DialerHandshake, Transcript, KEY_BYTES};
use raft_wire::blocking::{read_frame, write_frame};
use raft_wire::{encode, ClientRequest, Hello, PeerChallenge, PeerProof, Request};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The unprivileged uid (and gid) the forked child takes: `nobody`.
const NOBODY: u32 = 65534;
/// Long enough for a node to answer or close, with two busy cores.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

fn cluster_id(c: &Cluster) -> u64 {
    raft_config::load_file(&c.config).expect("the test's config loads").cluster_id()
}

fn closed(s: &mut UnixStream) -> bool {
    closed_within(s, ANSWER_TIMEOUT)
}

/// Says hello to `node`'s socket as peer `claim`, with a fresh nonce; returns the stream,
/// the handshake and the node's challenge.
fn peer_hello(c: &Cluster, node: NodeId, claim: NodeId) -> (UnixStream, DialerHandshake, PeerChallenge) {
    let mut s = UnixStream::connect(c.node_socket(node)).expect("connect");
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    let d = DialerHandshake::new(cluster_id(c), claim, node, random_nonce().expect("nonce"));
    write_frame(&mut s, &d.hello()).expect("send hello");
    let challenge: PeerChallenge = read_frame(&mut s).expect("the node answers a peer hello with its challenge");
    (s, d, challenge)
}

#[test]
fn a_peer_without_the_key_is_refused_and_the_cluster_keeps_serving() {
    let c = Cluster::start(Opts::default());
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let target = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    let claim = c.ids().into_iter().find(|&i| i != target).expect("another node");
    let pid = c.node_status(target).expect("node answers").pid;

    // `up` made the key: 32 bytes, readable by the owner only.
    let key_path = c.dir.join("cluster.key");
    let meta = std::fs::metadata(&key_path).expect("raft-supervisor up created cluster.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (KEY_BYTES as u64, 0o600));
    let key = ClusterKey::load(&key_path).expect("the key loads");

    // A process with a key of its own: it cannot check the node's challenge, and the
    // proof it can make is refused.
    let wrong = ClusterKey::generate().expect("a key");
    let (mut s, d, challenge) = peer_hello(&c, target, claim);
    assert!(d.on_challenge(&wrong, &challenge).is_err());
    let Hello::Peer { nonce, .. } = d.hello() else { unreachable!("a peer hello") };
    let t = Transcript {
        cluster_id: cluster_id(&c),
        dialer: claim,
        acceptor: target,
        dialer_nonce: nonce,
        acceptor_nonce: challenge.nonce,
    };
    write_frame(&mut s, &PeerProof { mac: wrong.dialer_mac(&t) }).expect("send proof");
    assert!(closed(&mut s), "a proof made with the wrong key closes the connection");

    // A process with no key at all sends what it has: nothing that checks out.
    let (mut s, _, _) = peer_hello(&c, target, claim);
    write_frame(&mut s, &PeerProof { mac: [0; 32] }).expect("send proof");
    assert!(closed(&mut s), "a guessed proof closes the connection");

    // A replay of a good exchange: the node's nonce is fresh, so the old proof fails.
    let (mut good, d, challenge) = peer_hello(&c, target, claim);
    let proof = d.on_challenge(&key, &challenge).expect("the node proves it holds the key");
    write_frame(&mut good, &proof).expect("send proof");
    assert!(!closed(&mut good), "with the key the stream is a peer's and stays open");
    drop(good);
    let mut s = UnixStream::connect(c.node_socket(target)).expect("connect");
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    write_frame(&mut s, &d.hello()).expect("replay the hello");
    let again: PeerChallenge = read_frame(&mut s).expect("a challenge");
    assert_ne!(again.nonce, challenge.nonce, "every challenge is fresh");
    write_frame(&mut s, &proof).expect("replay the proof");
    assert!(closed(&mut s), "a replayed proof closes the connection");

    // One line per refusal in the node's log, naming the peer and why.
    let line = format!("refused peer n{claim}: its proof does not match the cluster key");
    c.wait(&format!("node {target} to log three refusals"), LEADER_TIMEOUT, || {
        (c.read_log(target).lines().filter(|l| l.contains(&line)).count() >= 3).then_some(())
    });
    // The node is the same process and the cluster takes writes.
    assert_eq!(c.node_status(target).map(|s| s.pid), Some(pid), "node {target} still runs");
    let set = c.cli(&["set", "after", "refusals"]);
    assert_eq!(set.code, Some(0), "{}", set.describe());
    let get = c.cli(&["get", "after"]);
    assert_eq!(get.stdout, "refusals\n", "{}", get.describe());
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
}

#[test]
fn a_node_without_its_key_refuses_to_start_naming_the_path() {
    let tmp = short_tempdir();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, Opts::default().to_toml(tmp.path())).expect("write config");
    let mut cmd = std::process::Command::new(&bins().node);
    cmd.arg("--config").arg(&config).args(["--id", "1"]);
    let out = run_limited(&mut cmd, COMMAND_LIMIT);
    // Set-up a restart cannot fix, like a bad config (raft_node::exit::EXIT_CONFIG).
    assert_eq!(out.code, Some(2), "{}", out.describe());
    let key = tmp.path().join("cluster.key");
    assert!(out.stderr.contains(&key.display().to_string()), "names the key file: {}", out.describe());
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {}", out.describe());
}

/// What a forked child running as another uid saw after saying hello.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The node answered (a status response).
    Answered,
    /// The node closed the connection.
    Closed,
    /// connect() failed with EACCES: the file system kept it out before the node could.
    NoAccess,
    /// Anything else (exit code of the child).
    Other(i32),
}

/// Forks a child that drops to `uid` (gid too, no supplementary groups), connects to
/// `socket`, sends `bytes` and reports through its exit status whether the node answered
/// or closed. After the fork the child makes raw system calls only.
fn connect_as(uid: u32, socket: &Path, bytes: &[u8]) -> Seen {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is prepared before the fork.
    // SAFETY: an all-zero sockaddr_un is valid; we fill in family and path.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len(), "socket path fits");
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let tv = libc::timeval { tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: fork in a test process; the child only makes async-signal-safe raw system
    // calls on memory prepared above and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: raw system calls on valid pointers; no allocation, no locks.
        unsafe {
            libc::alarm(20);
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setgid, uid) != 0
                || libc::syscall(libc::SYS_setuid, uid) != 0
            {
                libc::_exit(40);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                libc::_exit(41);
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) != 0 {
                libc::_exit(if *libc::__errno_location() == libc::EACCES { 30 } else { 42 });
            }
            let mut off = 0;
            while off < bytes.len() {
                let n = libc::write(fd, bytes[off..].as_ptr() as *const libc::c_void, bytes.len() - off);
                if n <= 0 {
                    break; // Closed on us already: the read below sees it.
                }
                off += n as usize;
            }
            let tvp = &tv as *const libc::timeval as *const libc::c_void;
            let tvlen = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tvp, tvlen);
            let mut buf = [0u8; 64];
            let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
            libc::_exit(match n {
                n if n > 0 => 0,
                0 => 10,
                _ if *libc::__errno_location() == libc::ECONNRESET => 10,
                _ => 43,
            });
        }
    }
    /// Kills and reaps the child if the test fails before it exits.
    struct Child(libc::pid_t, bool);
    impl Drop for Child {
        fn drop(&mut self) {
            if !self.1 {
                // SAFETY: our own child, not yet reaped.
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, std::ptr::null_mut(), 0);
                }
            }
        }
    }
    let mut child = Child(pid, false);
    let status = wait_for(&format!("child {pid} running as uid {uid}"), Duration::from_secs(30), || {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        (unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid).then_some(status)
    });
    child.1 = true;
    assert!(libc::WIFEXITED(status), "child ended by a signal: {status:#x}");
    match libc::WEXITSTATUS(status) {
        0 => Seen::Answered,
        10 => Seen::Closed,
        30 => Seen::NoAccess,
        other => Seen::Other(other),
    }
}

/// The directories down to the node's socket become traversable and the socket
/// connectable by anyone, so that the node's SO_PEERCRED check, not the file system, is
/// what a process of another uid meets. (In this test only: a real cluster dir is 0700.)
fn open_up_socket(c: &Cluster, id: NodeId) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    set(&c.dir, 0o711);
    set(&c.node_dir(id), 0o711);
    set(&c.node_socket(id), 0o666);
}

fn client_hello() -> Vec<u8> {
    let hello = encode(&Hello::Client).expect("hello");
    let status = encode(&ClientRequest { id: 1, body: Request::Status }).expect("request");
    [hello, status].concat()
}

fn peer_hello_bytes(c: &Cluster, claim: NodeId) -> Vec<u8> {
    encode(&Hello::Peer { cluster_id: cluster_id(c), node: claim, nonce: [1; 32] }).expect("hello")
}

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the uid tests run as root (to setuid a child to nobody)");
}

#[test]
fn a_client_of_another_uid_is_refused_by_its_credentials() {
    require_root();
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let target = leader;
    let claim = c.ids().into_iter().find(|&i| i != target).expect("another node");

    // As the cluster directory is made (0700), nobody cannot even reach the socket.
    assert_eq!(connect_as(NOBODY, &c.node_socket(target), &client_hello()), Seen::NoAccess);

    // With the path opened up, the node itself refuses: by SO_PEERCRED, not by claims.
    open_up_socket(&c, target);
    assert_eq!(connect_as(NOBODY, &c.node_socket(target), &client_hello()), Seen::Closed, "a client as nobody");
    assert_eq!(connect_as(NOBODY, &c.node_socket(target), &peer_hello_bytes(&c, claim)), Seen::Closed, "a peer");
    // Root (our own uid here) is let in.
    assert_eq!(connect_as(0, &c.node_socket(target), &client_hello()), Seen::Answered, "root is allowed");

    let log = c.read_log(target);
    assert!(log.contains(&format!("refused client uid {NOBODY}")), "node {target} logs the client:\n{log}");
    assert!(log.contains(&format!("refused peer n{claim}: uid {NOBODY}")), "node {target} logs the peer:\n{log}");
    let set = c.cli(&["set", "after", "nobody"]);
    assert_eq!(set.code, Some(0), "{}", set.describe());
    c.wait_converged(&c.ids(), CONVERGE_TIMEOUT);
}

#[test]
fn allowed_uids_lets_another_uid_in_as_a_client_but_not_as_a_peer() {
    require_root();
    let c = Cluster::start(Opts { nodes: 3, allowed_uids: vec![NOBODY], ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), LEADER_TIMEOUT);
    let claim = c.ids().into_iter().find(|&i| i != leader).expect("another node");
    open_up_socket(&c, leader);
    assert_eq!(connect_as(NOBODY, &c.node_socket(leader), &client_hello()), Seen::Answered, "nobody is allowed");
    // allowed_uids is for clients: a peer must still be the nodes' uid or root.
    assert_eq!(connect_as(NOBODY, &c.node_socket(leader), &peer_hello_bytes(&c, claim)), Seen::Closed);
    let log = c.read_log(leader);
    assert!(!log.contains("refused client uid"), "{log}");
    assert!(log.contains(&format!("refused peer n{claim}: uid {NOBODY}")), "{log}");
}
