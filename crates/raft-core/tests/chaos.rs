//! A small randomized schedule over the test cluster: partitions, crashes, restarts,
//! compactions, lost and reordered messages. The safety checks in the harness run after
//! every round; at the end, with faults healed, the cluster must make progress.
//! (raft-sim does this at scale; this keeps the core honest on its own.)

mod common;
use common::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn run(seed: u64, n: u64, steps: usize, pre_vote: bool, check_quorum: bool) -> (u64, u64) {
    let mut rng = Lcg(seed);
    let mut c = Cluster::new(n, |cfg| {
        cfg.seed = seed;
        cfg.max_entries_per_append = 3;
        cfg.max_inflight_appends = 4;
        cfg.snapshot_chunk_bytes = 16;
        cfg.pre_vote = pre_vote;
        cfg.check_quorum = check_quorum;
    });
    c.verbose = true;
    let mut next_key = 0;
    for _ in 0..steps {
        match rng.below(100) {
            0..=49 => {
                for id in 1..=n {
                    c.tick(id);
                }
            }
            50..=69 => {
                if let Some(l) = c.leader() {
                    next_key += 1;
                    let _ = c.put(l, &format!("k{next_key}"), &format!("v{next_key}"));
                }
            }
            70..=74 => {
                let a = rng.below(n) + 1;
                c.partition(&[a]);
            }
            75..=79 => c.heal(),
            80..=81 => {
                let a = rng.below(n) + 1;
                if c.nodes[&a].up {
                    c.crash(a);
                } else {
                    c.restart(a);
                }
            }
            82..=84 => {
                let a = rng.below(n) + 1;
                if c.nodes[&a].up && c.nodes[&a].applied > c.node(a).status().snapshot_index {
                    c.compact(a);
                }
            }
            85..=89 => {
                // Lose or reorder some messages.
                let len = c.network.len();
                if len > 1 {
                    let i = rng.below(len as u64) as usize;
                    let m = c.network.remove(i).unwrap();
                    if rng.below(2) == 0 {
                        c.network.push_back(m);
                    }
                }
            }
            _ => {
                if let Some(l) = c.leader() {
                    let _ = c.node_mut(l).read_index(rng.next());
                }
            }
        }
        c.process_all();
        if rng.below(3) > 0 {
            c.deliver_round(None);
        }
        c.assert_logs_match();
    }
    let out = c.take_output();
    let snaps = out.matches("snapshot installed").count() as u64;
    let elections = out.matches("became leader").count() as u64;
    c.verbose = false;
    // Heal everything: a leader emerges and a new write commits everywhere.
    c.heal();
    for id in 1..=n {
        if !c.nodes[&id].up {
            c.restart(id);
        }
    }
    let mut committed = false;
    for _ in 0..200 {
        c.tick_all_stabilize(1);
        if let Some(l) = c.leader() {
            if let Ok(i) = c.put(l, "final", "yes") {
                c.tick_all_stabilize(20);
                committed = (1..=n).all(|id| c.node(id).commit_index() >= i);
                if committed {
                    break;
                }
            }
        }
    }
    assert!(committed, "seed {seed}: no progress after healing");
    for id in 1..=n {
        assert_eq!(c.nodes[&id].kv.get("final").map(String::as_str), Some("yes"), "seed {seed}: n{id}");
    }
    let kv1 = &c.nodes[&1].kv;
    for id in 2..=n {
        assert_eq!(&c.nodes[&id].kv, kv1, "seed {seed}: state machines diverged");
    }
    (snaps, elections)
}

#[test]
fn random_schedules_stay_safe_and_live() {
    let (mut snaps, mut elections) = (0, 0);
    for seed in 0..60 {
        let (s, e) = run(seed, if seed % 2 == 0 { 3 } else { 5 }, 1500, true, true);
        snaps += s;
        elections += e;
    }
    // The schedules must actually exercise snapshots and elections.
    assert!(snaps >= 10, "only {snaps} snapshots installed");
    assert!(elections >= 60, "only {elections} elections");
}

#[test]
fn random_schedules_without_prevote_or_checkquorum() {
    for seed in 100..140 {
        run(seed, 3 + 2 * (seed % 2), 1500, seed % 4 < 2, seed % 3 == 0);
    }
}
