//! Rough throughput of the core alone: a 3-node cluster in one thread, messages handed
//! over directly, proposals in batches. `cargo run --release -p raft-core --example throughput`

use raft_core::*;
use std::collections::VecDeque;
use std::time::Instant;

fn main() {
    let ids = vec![1, 2, 3];
    let mut nodes: Vec<RawNode> =
        ids.iter().map(|&id| RawNode::new(Config::new(id, ids.clone(), 7), Restored::default()).unwrap()).collect();
    nodes[0].campaign();
    let mut net: VecDeque<Message> = VecDeque::new();
    let mut applied = 0u64;
    let total: u64 = 1_000_000;
    let batch = 100;
    let mut proposed = 0u64;
    let start = Instant::now();
    let mut turns = 0u64;
    while applied < total {
        if nodes[0].role() == RoleKind::Leader && proposed < total {
            for _ in 0..batch {
                if nodes[0].propose(vec![0u8; 64]).is_ok() {
                    proposed += 1;
                }
            }
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            let rd = n.ready();
            net.extend(rd.messages);
            if let Some(e) = rd.entries.last() {
                n.persisted(e.index, e.term);
            }
            net.extend(rd.persisted_messages);
            if i == 0 {
                applied += rd.committed.iter().filter(|e| matches!(e.data, EntryData::Command(_))).count() as u64;
            }
            for _ in rd.committed {}
        }
        while let Some(m) = net.pop_front() {
            let to = m.to as usize - 1;
            nodes[to].step(m).unwrap();
        }
        turns += 1;
    }
    let el = start.elapsed();
    println!(
        "{total} entries committed and applied in {:.2?} ({:.0} entries/s, {turns} turns)",
        el,
        total as f64 / el.as_secs_f64()
    );
}
