//! Watch a three-node raft-rs cluster on raftwal survive the loss of its leader:
//!
//! ```sh
//! cargo run --release --features raft-rs --example raft_rs_cluster
//! ```
//!
//! Each node is a `RawNode` on its own thread with its own raftwal directory, persisting through
//! group-commit callbacks. The example elects a leader, writes 10,000 commands through it,
//! stops it, waits for a new leader, writes 1,000 more, restarts the old leader from its
//! directory and waits until all three nodes hold the same log and the same data.

#[path = "../tests/raft_rs_support/mod.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::Cluster;

const TIMEOUT: Duration = Duration::from_secs(60);

fn show(cluster: &Cluster, started: Instant) {
    for id in cluster.running() {
        let state = cluster.state(id);
        println!(
            "  {:>7.2?}  node {id}: {:<12} term {:<3} leader {} commit {:<6} applied {:<6} keys {}",
            started.elapsed(),
            format!("{:?}", state.role.expect("published")),
            state.term,
            state.leader,
            state.commit,
            state.applied,
            state.data.len()
        );
    }
}

fn main() {
    let root = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    println!("three nodes, logs under {}", root.path().display());
    let mut cluster = Cluster::start(root.path(), 3);
    let leader = cluster.wait_for_leader(TIMEOUT).expect("a leader");
    println!("leader elected: node {leader}");
    show(&cluster, started);

    for chunk in 0..10 {
        let commands: Vec<(String, String)> =
            (chunk * 1000..(chunk + 1) * 1000).map(|at| (format!("key{at}"), format!("value{at}"))).collect();
        assert!(cluster.write(leader, &commands, TIMEOUT), "writes through node {leader}");
        let state = cluster.state(leader);
        println!("  {:>7.2?}  committed {:>6} (10,000 to write)", started.elapsed(), state.data.len());
    }
    show(&cluster, started);

    println!("stopping the leader, node {leader}");
    cluster.stop(leader);
    let new_leader = cluster.wait_for_leader(TIMEOUT).expect("a new leader");
    println!("new leader elected: node {new_leader}");
    let commands: Vec<(String, String)> =
        (10_000..11_000).map(|at| (format!("key{at}"), format!("value{at}"))).collect();
    assert!(cluster.write(new_leader, &commands, TIMEOUT), "writes through node {new_leader}");
    show(&cluster, started);

    println!("restarting node {leader} from its directory");
    cluster.restart(leader);
    assert!(cluster.wait_converged(TIMEOUT), "the nodes converge");
    show(&cluster, started);
    println!("all three nodes hold the same log and the same {} keys", cluster.state(leader).data.len());
    for id in cluster.running() {
        let stats = cluster.storage(id).wal().stats();
        println!(
            "  node {id} since its last start: {} entries appended in {} appends, {} fdatasyncs",
            stats.entries, stats.appends, stats.fsyncs
        );
    }
    cluster.stop_all();
}
