//! Three raft-rs nodes, each on its own raftwal directory: elect a leader, write 10,000
//! entries through it, stop it, check that a new leader is elected and writes continue, restart
//! the old node from its directory, and check that all three converge with nothing committed
//! lost.

mod raft_rs_support;

use std::time::{Duration, Instant};

use raft::Storage;
use raft_rs_support::Cluster;
use raftwal::Options;
use raftwal::raft::raft_rs::RaftStorage;

fn commands(range: std::ops::Range<u32>) -> Vec<(String, String)> {
    range.map(|at| (format!("key{at}"), format!("value{at}"))).collect()
}

#[test]
fn raft_rs_cluster_survives_a_leader_kill() {
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut cluster = Cluster::start(root.path(), 3);
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).expect("a leader is elected");
    let first_batch = commands(0..10_000);
    assert!(cluster.write(leader, &first_batch, Duration::from_secs(120)), "10,000 writes through {leader}");
    let written = started.elapsed();

    cluster.stop(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(20)).expect("a new leader is elected");
    assert_ne!(new_leader, leader);
    let second_batch = commands(10_000..11_000);
    assert!(cluster.write(new_leader, &second_batch, Duration::from_secs(60)), "writes continue");

    {
        // What the old leader's directory holds before it rejoins: everything it acknowledged.
        let storage = RaftStorage::open(cluster.dir(leader), Options::default()).unwrap();
        let state = storage.initial_state().unwrap();
        assert!(state.hard_state.commit > 10_000, "commit index {}", state.hard_state.commit);
        assert!(storage.last_index().unwrap() >= state.hard_state.commit);
        storage.wal().close().unwrap();
    }
    cluster.restart(leader);
    assert!(cluster.wait_converged(Duration::from_secs(60)), "all three converge");
    for id in cluster.running() {
        let state = cluster.state(id);
        for (key, value) in first_batch.iter().chain(&second_batch) {
            assert_eq!(state.data.get(key), Some(value), "node {id} lost committed {key}");
        }
    }
    eprintln!(
        "raft-rs cluster: 10,000 writes in {:.2?}, old leader {leader}, new leader {new_leader}, converged after {:.2?}",
        written,
        started.elapsed()
    );
    cluster.stop_all();
}
