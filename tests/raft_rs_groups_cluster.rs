//! Three raft-rs nodes running eight Raft groups, each node with one raftwal log for all eight
//! (one `RaftStorage` per group over its group of the node's log, as TiKV keeps a
//! `PeerStorage` per region over one engine): write through every group's leader, stop the node
//! that leads the most groups, check that every group elects a new leader and writes continue,
//! restart the node from its log, and check that all groups converge with nothing committed
//! lost.

mod raft_rs_support;

use std::time::{Duration, Instant};

use raft::Storage;
use raft_rs_support::{Cluster, SharedLogs};

const GROUPS: u64 = 8;
const NODES: u64 = 3;

fn commands(group: u64, range: std::ops::Range<u32>) -> Vec<(String, String)> {
    range.map(|at| (format!("g{group}-key{at}"), format!("value{at}"))).collect()
}

#[test]
fn eight_groups_on_shared_logs_survive_a_node_kill() {
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let logs = SharedLogs::new(root.path());
    let mut clusters: Vec<Cluster> =
        (1..=GROUPS).map(|group| Cluster::start_with(root.path(), NODES, logs.for_group(group))).collect();
    let leaders: Vec<u64> = clusters
        .iter()
        .map(|cluster| cluster.wait_for_leader(Duration::from_secs(30)).expect("each group elects a leader"))
        .collect();
    let first: Vec<_> = (1..=GROUPS).map(|group| commands(group, 0..500)).collect();
    // Every group's writes in flight at once, so that they share the nodes' fdatasyncs.
    std::thread::scope(|scope| {
        for ((cluster, leader), batch) in clusters.iter().zip(&leaders).zip(&first) {
            scope.spawn(move || assert!(cluster.write(*leader, batch, Duration::from_secs(120)), "writes"));
        }
    });
    let written = started.elapsed();
    for id in 1..=NODES {
        let wal = logs.wal(id).unwrap();
        assert_eq!(wal.groups().unwrap(), (0..=GROUPS).collect::<Vec<_>>());
        let stats = wal.stats();
        eprintln!("node {id}: {} entries in {} fdatasyncs", stats.entries, stats.fsyncs);
    }

    // The node leading the most groups goes down, for all of its groups at once.
    let victim = (1..=NODES).max_by_key(|id| leaders.iter().filter(|leader| *leader == id).count()).unwrap();
    for cluster in &mut clusters {
        cluster.stop(victim);
    }
    logs.stop_node(victim);
    let second: Vec<_> = (1..=GROUPS).map(|group| commands(group, 500..600)).collect();
    for (cluster, batch) in clusters.iter().zip(&second) {
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).expect("a new leader");
        assert_ne!(leader, victim);
        assert!(cluster.write(leader, batch, Duration::from_secs(60)), "writes continue");
    }

    {
        // What the stopped node's log holds before it rejoins: every group, each with what it
        // acknowledged.
        let wal = raftwal::Wal::open(clusters[0].dir(victim), raftwal::Options::default()).unwrap();
        assert_eq!(wal.groups().unwrap(), (0..=GROUPS).collect::<Vec<_>>());
        for group in 1..=GROUPS {
            let storage = raftwal::raft::raft_rs::RaftStorage::from_group(wal.group(group).unwrap()).unwrap();
            let state = storage.initial_state().unwrap();
            assert!(state.hard_state.commit >= 500, "group {group}: commit {}", state.hard_state.commit);
            assert!(storage.last_index().unwrap() >= state.hard_state.commit);
        }
        wal.close().unwrap();
    }
    for cluster in &mut clusters {
        cluster.restart(victim);
    }
    for (group, cluster) in (1..=GROUPS).zip(&clusters) {
        assert!(cluster.wait_converged(Duration::from_secs(60)), "group {group} converges");
        for id in cluster.running() {
            let state = cluster.state(id);
            for (key, value) in first[group as usize - 1].iter().chain(&second[group as usize - 1]) {
                assert_eq!(state.data.get(key), Some(value), "group {group}, node {id} lost committed {key}");
            }
        }
    }
    eprintln!(
        "{GROUPS} groups x {NODES} nodes: 4,000 writes in {written:.2?}, node {victim} stopped and restarted, converged after {:.2?}",
        started.elapsed()
    );
    for cluster in &mut clusters {
        cluster.stop_all();
    }
    for id in 1..=NODES {
        logs.stop_node(id);
    }
}
