//! Three openraft nodes in one process, each on its own raftwal directory: elect a leader,
//! write 10,000 entries through it, stop it, check that a new leader is elected and writes
//! continue, restart the old node from its directory, and check that all three logs and state
//! machines converge with nothing committed lost.

mod openraft_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft_support::{Command, LogStore, Raft, Router, StateMachine};
use raftwal::Options;

const WRITERS: u32 = 64;

struct Node {
    raft: Raft,
    store: LogStore,
    state_machine: StateMachine,
}

async fn start(router: &Router, root: &std::path::Path, id: u64) -> Node {
    let config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Default::default()
    };
    let config = Arc::new(config.validate().expect("valid config"));
    let dir = root.join(format!("node-{id}"));
    let store = LogStore::open(dir.join("log"), Options::default()).expect("open log");
    let state_machine = StateMachine::open(&dir.join("state")).expect("open state machine");
    let raft =
        Raft::new(id, config, router.clone(), store.clone(), state_machine.clone()).await.expect("raft");
    router.nodes.lock().unwrap().insert(id, raft.clone());
    Node { raft, store, state_machine }
}

async fn stop(router: &Router, node: Node, id: u64) {
    router.nodes.lock().unwrap().remove(&id);
    node.raft.shutdown().await.expect("shutdown");
    drop(node.raft);
    node.store.wal().close().expect("close the log");
}

/// Waits until the running nodes agree on a leader among them.
async fn agreed_leader(nodes: &BTreeMap<u64, Node>, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let leaders: BTreeSet<Option<u64>> =
            nodes.values().map(|node| node.raft.metrics().borrow_watched().current_leader).collect();
        if let [Some(leader)] = leaders.into_iter().collect::<Vec<_>>()[..]
            && nodes.contains_key(&leader)
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "no agreed leader within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `key{i}=value{i}` for `range` from `WRITERS` concurrent clients, each through the
/// node that leads; returns the leader at the end. A write refused because leadership moved
/// (an expired lease on a loaded machine) is sent again to the node that leads then, as a
/// client would; every write must be acknowledged.
async fn write(nodes: &BTreeMap<u64, Node>, range: std::ops::Range<u32>) -> u64 {
    let rafts: Arc<BTreeMap<u64, Raft>> =
        Arc::new(nodes.iter().map(|(id, node)| (*id, node.raft.clone())).collect());
    let clients: Vec<_> = (0..WRITERS)
        .map(|client| {
            let rafts = rafts.clone();
            let range = range.clone();
            tokio::spawn(async move {
                for at in range.filter(|at| at % WRITERS == client) {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        let leader =
                            rafts.values().find_map(|raft| raft.metrics().borrow_watched().current_leader);
                        let Some(raft) = leader.and_then(|leader| rafts.get(&leader)) else {
                            assert!(Instant::now() < deadline, "no leader to write key{at} through");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        match raft.client_write(Command::set(format!("key{at}"), &format!("value{at}"))).await
                        {
                            Ok(_) => break,
                            Err(error)
                                if error.forward_to_leader().is_some() && Instant::now() < deadline =>
                            {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(error) => panic!("write of key{at} not acknowledged: {error:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    agreed_leader(nodes, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_cluster_survives_a_leader_kill() {
    let root = tempfile::tempdir().unwrap();
    let router = Router::default();
    let started = Instant::now();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(&router, root.path(), id).await);
    }
    nodes[&1]
        .raft
        .initialize(BTreeMap::from([1, 2, 3].map(|id| (id, openraft::impls::BasicNode::default()))))
        .await
        .expect("initialize");
    agreed_leader(&nodes, Duration::from_secs(20)).await;
    let leader = write(&nodes, 0..10_000).await;
    let written = started.elapsed();

    let old = nodes.remove(&leader).unwrap();
    stop(&router, old, leader).await;
    agreed_leader(&nodes, Duration::from_secs(20)).await;
    let new_leader = write(&nodes, 10_000..11_000).await;
    assert_ne!(new_leader, leader);

    {
        // What the old leader's directory holds before it rejoins: everything it acknowledged.
        let mut store =
            LogStore::open(root.path().join(format!("node-{leader}/log")), Options::default()).unwrap();
        let last = store.get_log_state().await.unwrap().last_log_id.expect("a log").index;
        let committed = store.read_committed().await.unwrap().expect("a commit point").index;
        assert!(last >= committed && committed >= 10_000, "last {last}, committed {committed}");
        assert!(store.get_log_reader().await.read_vote().await.unwrap().is_some());
        store.wal().close().unwrap();
    }
    nodes.insert(leader, start(&router, root.path(), leader).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let target = nodes[&new_leader].raft.metrics().borrow_watched().last_log_index;
    loop {
        let applied: Vec<_> = nodes
            .values()
            .map(|node| node.raft.metrics().borrow_watched().last_applied.map(|log_id| log_id.index))
            .collect();
        if applied.iter().all(|index| *index >= target) {
            break;
        }
        assert!(Instant::now() < deadline, "not converged: applied {applied:?}, target {target:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let reference = nodes[&new_leader].state_machine.data().await;
    assert_eq!(reference.len(), 11_000);
    for at in 0..11_000 {
        assert_eq!(reference.get(&format!("key{at}")), Some(&format!("value{at}")), "key{at} lost");
    }
    let mut logs = Vec::new();
    for (id, node) in &mut nodes {
        assert_eq!(node.state_machine.data().await, reference, "node {id}'s state machine");
        let mut reader = node.store.get_log_reader().await;
        logs.push(reader.try_get_log_entries(..).await.unwrap());
        let state = node.store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|log_id| log_id.index), target, "node {id}'s last log id");
    }
    // Each node purges behind its own snapshots, so the logs start at different indexes; where
    // they overlap they must agree, and they end at the same entry.
    let common_first =
        logs.iter().map(|log| log.first().map_or(u64::MAX, |entry| entry.log_id.index)).max().unwrap();
    let overlaps: Vec<Vec<_>> = logs
        .iter()
        .map(|log| log.iter().filter(|entry| entry.log_id.index >= common_first).cloned().collect())
        .collect();
    assert!(!overlaps[0].is_empty(), "the logs share no entry");
    assert!(overlaps.windows(2).all(|pair| pair[0] == pair[1]), "the three logs differ");
    eprintln!(
        "openraft cluster: 10,000 writes in {written:.2?} ({WRITERS} clients), old leader {leader}, \
         new leader {new_leader}, converged after {:.2?}",
        started.elapsed()
    );
    for (id, node) in nodes {
        stop(&router, node, id).await;
    }
}
