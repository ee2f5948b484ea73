//! The network levers of issue 19, end to end: `raft-supervisor delay` makes replication
//! visibly slower (followers learn a commit late), `loss 100` on the leader looks like a
//! partition, a restarted node gets its levers back, `heal` clears them, and bad input
//! is refused with exit 2.

use raft_e2e::*;
use raft_wire::levers::NetLevers;
use raft_wire::WriteOp;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn set(key: &str) -> WriteOp {
    WriteOp::Set { key: key.into(), value: b"v".to_vec() }
}

fn levers_of(c: &Cluster, id: NodeId) -> Option<NetLevers> {
    c.node_status(id).map(|s| s.levers)
}

#[test]
fn a_delay_on_the_leader_makes_followers_learn_commits_late() {
    // Slow ticks, so a one-second delay stays below the election timeout (1.5 s and up)
    // and the leader keeps its place while its messages crawl.
    let c = Cluster::start(Opts { nodes: 3, tick_ms: 100, ..Opts::default() });
    let (leader, _) = c.wait_leader(&c.ids(), WAIT);
    let out = c.sup_ok(&["delay", "1s", "leader"]);
    assert!(
        out.stdout.starts_with(&format!("network levers: delay 1s on node {leader}; none on nodes")),
        "{}",
        out.describe()
    );
    c.wait("the leader reports its delay", WAIT, || {
        (levers_of(&c, leader)? == NetLevers { delay_us: 1_000_000, jitter_us: 0, loss_ppm: 0 }).then_some(())
    });
    let st = c.sup_ok(&["status"]);
    assert!(st.stdout.contains(&format!("network levers: n{leader}: delay 1s")), "{}", st.stdout);
    let followers: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
    // While a write is in flight the leader has appended it and no follower has it: the
    // append is held back for a second (without the lever it arrives within a turn).
    // And right after the write is acknowledged, no follower knows it committed yet: the
    // commit index reaches them in a message held back too.
    let mut unreplicated = 0;
    let mut commit_unknown = 0;
    for k in 0..3 {
        let before = c.node_status(leader).expect("leader answers").last_index;
        let cluster = c.client_cluster();
        let writer = std::thread::spawn(move || {
            let mut client = Client::new(cluster, Duration::from_secs(20)).without_leader_file();
            client.write(set(&format!("slow{k}")))
        });
        let last = c.wait("the leader appends the write", WAIT, || {
            c.node_status(leader).map(|s| s.last_index).filter(|&l| l > before)
        });
        if followers.iter().all(|&f| c.node_status(f).is_some_and(|s| s.last_index < last)) {
            unreplicated += 1;
        }
        writer.join().expect("writer thread").expect("the leader still commits, slowly");
        let commit = c.node_status(leader).expect("leader answers").commit;
        if followers.iter().all(|&f| c.node_status(f).is_some_and(|s| s.commit < commit)) {
            commit_unknown += 1;
        }
    }
    assert!(unreplicated >= 2, "followers had the entry at once in {} of 3 writes\n{}", 3 - unreplicated, c.dump());
    assert!(commit_unknown >= 1, "no write showed the followers behind the leader's commit\n{}", c.dump());
    // `delay off`: the followers catch up, and everyone reports no levers.
    c.sup_ok(&["delay", "off"]);
    c.wait_converged(&c.ids(), WAIT);
    c.wait("levers off everywhere", WAIT, || {
        c.ids().iter().all(|&id| levers_of(&c, id) == Some(NetLevers::default())).then_some(())
    });
    let log = c.read_log(leader);
    assert!(log.contains("network levers on messages to peers: delay 1s (was none"), "{log}");
}

#[test]
fn loss_of_everything_the_leader_sends_looks_like_a_partition() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let (old, term) = c.wait_leader(&c.ids(), WAIT);
    c.sup_ok(&["loss", "100", &old.to_string()]);
    let rest: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != old).collect();
    let (new, new_term) = c.wait_leader(&rest, WAIT);
    assert!(new != old && new_term > term);
    c.client_only(&rest, Duration::from_secs(10)).write(set("after")).expect("the others carry on");
    // The status shows the lever; heal clears it and the old leader catches up.
    let json = c.sup_ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    let row = v["nodes"].as_array().unwrap().iter().find(|r| r["id"] == old).unwrap();
    assert_eq!(row["levers"]["loss_ppm"], 1_000_000, "{row}");
    let out = c.sup_ok(&["heal"]);
    assert!(out.stdout.contains("network levers (delay, loss) cleared"), "{}", out.describe());
    c.wait_converged(&c.ids(), WAIT);
    assert!(c.node_data(old).contains_key("after"));
}

#[test]
fn a_restarted_node_gets_its_levers_back() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    c.sup_ok(&["delay", "20ms", "--jitter", "10ms", "2"]);
    c.sup_ok(&["loss", "5", "2,3"]);
    let want2 = NetLevers { delay_us: 20_000, jitter_us: 10_000, loss_ppm: 50_000 };
    c.wait("n2 has both levers", WAIT, || (levers_of(&c, 2)? == want2).then_some(()));
    assert_eq!(levers_of(&c, 1), Some(NetLevers::default()), "n1 untouched");
    let pid = c.node_status(2).unwrap().pid;
    c.sup_ok(&["restart", "2"]);
    c.wait("n2 restarted with its levers", WAIT, || {
        let s = c.node_status(2)?;
        (s.pid != pid && s.levers == want2).then_some(())
    });
    // Still a working cluster (5% loss and a short delay are survivable).
    c.client(Duration::from_secs(10)).write(set("k")).unwrap();
}

#[test]
fn bad_lever_arguments_are_usage_errors() {
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    for args in [
        &["delay", "11s"][..],
        &["delay", "100"],
        &["delay", "100ms", "--jitter", "200ms"],
        &["delay", "100ms", "9"],
        &["loss", "150"],
        &["loss", "ten"],
        &["loss", "10", "1,x"],
    ] {
        let out = c.sup(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.describe());
        assert!(!out.stderr.trim().is_empty(), "{args:?}");
    }
    assert!(c.ids().iter().all(|&id| levers_of(&c, id) == Some(NetLevers::default())), "nothing changed");
}

/// A client speaking to a node directly gets a clear refusal for levers past the bounds
/// (and for a log page past its limit); the node keeps its levers and keeps serving.
#[test]
fn a_node_refuses_levers_and_log_pages_past_their_bounds() {
    use raft_wire::{Request, Response};
    let c = Cluster::start(Opts { nodes: 3, ..Opts::default() });
    let timeout = Duration::from_secs(5);
    let mut conn = raft_cli::conn::NodeConn::connect(1, &c.node_socket(1), timeout).expect("connect to n1");
    let bad = [
        NetLevers { delay_us: raft_wire::levers::MAX_DELAY_US + 1, jitter_us: 0, loss_ppm: 0 },
        NetLevers { delay_us: 10, jitter_us: 11, loss_ppm: 0 },
        NetLevers { delay_us: 0, jitter_us: 0, loss_ppm: raft_wire::levers::LOSS_PPM_ALL + 1 },
    ];
    for levers in bad {
        match conn.call(Request::NetLevers(levers), std::time::Instant::now() + timeout) {
            Ok(Response::Invalid { reason }) => assert!(!reason.is_empty()),
            other => panic!("{levers:?} was not refused: {other:?}"),
        }
    }
    let too_many = raft_wire::logview::MAX_LOG_ENTRIES_PER_REQUEST + 1;
    match conn.call(Request::Log { from: None, limit: too_many }, std::time::Instant::now() + timeout) {
        Ok(Response::Invalid { reason }) => assert!(reason.contains("1000"), "{reason}"),
        other => panic!("a page of {too_many} was not refused: {other:?}"),
    }
    assert_eq!(levers_of(&c, 1), Some(NetLevers::default()));
    c.client(Duration::from_secs(10)).write(set("still")).expect("n1 and the cluster still serve");
}
