//! A raft-rs cluster in one process: each node is a `RawNode` over a
//! `raftwal::raft::raft_rs::RaftStorage` (its own directory, or its group of a log the node
//! shares with other Raft groups: `SharedLogs`), on its own thread, talking to the others
//! through channels. Persistence takes raft-rs's "async ready" path: a `Ready`'s entries and
//! hard state are submitted to the group commit, and `on_persist_ready` runs when raftwal says
//! they are durable. Used by `tests/raft_rs_cluster.rs` and `examples/raft_rs_cluster.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfState, Entry, EntryType, Message};
use raft::{Config, RawNode, StateRole, Storage};
use raftwal::raft::raft_rs::RaftStorage;
use raftwal::{Options, Wal};

const TICK: Duration = Duration::from_millis(10);

enum Input {
    Raft(Message),
    Propose(Vec<u8>),
    Stop,
}

/// What a node has applied, and its view of the cluster.
#[derive(Clone, Debug, Default)]
pub struct NodeState {
    pub role: Option<StateRole>,
    pub term: u64,
    pub leader: u64,
    pub commit: u64,
    pub applied: u64,
    /// The key-value map the applied `key=value` commands built.
    pub data: BTreeMap<String, String>,
}

struct Running {
    thread: JoinHandle<()>,
    storage: RaftStorage,
}

/// Where a node's storage comes from.
pub trait Logs: Send + Sync {
    /// Opens node `id`'s storage, with `conf_state` if it has none yet.
    fn open(&self, id: u64, conf_state: ConfState) -> RaftStorage;
    /// Closes it once its node stopped.
    fn close(&self, id: u64, storage: &RaftStorage);
}

/// Each node's log in a directory of its own under `root`.
struct OwnDirectories {
    root: PathBuf,
}

impl Logs for OwnDirectories {
    fn open(&self, id: u64, conf_state: ConfState) -> RaftStorage {
        RaftStorage::open_with_conf_state(
            self.root.join(format!("node-{id}")),
            Options::default(),
            conf_state,
        )
        .expect("open the node's log")
    }

    fn close(&self, _: u64, storage: &RaftStorage) {
        let _ = storage.wal().close();
    }
}

/// One log per node, under `root`, shared by the node's Raft groups: each `Cluster` started
/// with `for_group` keeps its group there. A node's log closes with `stop_node`, once every
/// group's cluster has stopped the node.
#[derive(Clone)]
pub struct SharedLogs {
    root: PathBuf,
    group: u64,
    wals: Arc<Mutex<HashMap<u64, Wal>>>,
}

impl SharedLogs {
    pub fn new(root: &Path) -> SharedLogs {
        SharedLogs { root: root.to_path_buf(), group: 0, wals: Arc::default() }
    }

    /// The same logs, for group `group`'s cluster.
    pub fn for_group(&self, group: u64) -> Arc<dyn Logs> {
        Arc::new(SharedLogs { group, ..self.clone() })
    }

    /// Node `id`'s log, if it is open.
    pub fn wal(&self, id: u64) -> Option<Wal> {
        self.wals.lock().unwrap().get(&id).cloned()
    }

    /// Closes node `id`'s log; every group's cluster has stopped the node.
    pub fn stop_node(&self, id: u64) {
        if let Some(wal) = self.wals.lock().unwrap().remove(&id) {
            wal.close().expect("close the node's log");
        }
    }
}

impl Logs for SharedLogs {
    fn open(&self, id: u64, conf_state: ConfState) -> RaftStorage {
        let wal = self
            .wals
            .lock()
            .unwrap()
            .entry(id)
            .or_insert_with(|| {
                Wal::open(self.root.join(format!("node-{id}")), Options::default())
                    .expect("open the node's log")
            })
            .clone();
        let group = wal.group(self.group).or_else(|_| wal.create_group(self.group)).expect("the group");
        let storage = RaftStorage::from_group(group).expect("the group's storage");
        if storage.conf_state().expect("conf state") == ConfState::default() {
            storage.set_conf_state(&conf_state).expect("conf state").wait().expect("conf state durable");
        }
        storage
    }

    fn close(&self, _: u64, _: &RaftStorage) {}
}

/// Nodes `1..=n`, each with its storage from `logs`.
pub struct Cluster {
    root: PathBuf,
    logs: Arc<dyn Logs>,
    routes: Arc<RwLock<HashMap<u64, Sender<Input>>>>,
    states: HashMap<u64, Arc<Mutex<NodeState>>>,
    running: HashMap<u64, Running>,
    voters: Vec<u64>,
}

impl Cluster {
    /// Starts `nodes` nodes, each with a fresh directory under `root`.
    pub fn start(root: &Path, nodes: u64) -> Cluster {
        Cluster::start_with(root, nodes, Arc::new(OwnDirectories { root: root.to_path_buf() }))
    }

    /// Starts `nodes` nodes with their storage from `logs`.
    pub fn start_with(root: &Path, nodes: u64, logs: Arc<dyn Logs>) -> Cluster {
        let voters: Vec<u64> = (1..=nodes).collect();
        let mut cluster = Cluster {
            root: root.to_path_buf(),
            logs,
            routes: Arc::default(),
            states: HashMap::new(),
            running: HashMap::new(),
            voters: voters.clone(),
        };
        for id in voters {
            cluster.restart(id);
        }
        cluster
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    /// Starts node `id` from its directory (creating it the first time).
    pub fn restart(&mut self, id: u64) {
        assert!(!self.running.contains_key(&id), "node {id} is running");
        let conf_state = ConfState { voters: self.voters.clone(), ..Default::default() };
        let storage = self.logs.open(id, conf_state);
        let state = Arc::new(Mutex::new(NodeState::default()));
        self.states.insert(id, state.clone());
        let (sender, inbox) = channel();
        self.routes.write().unwrap().insert(id, sender);
        let node = Node::new(id, storage.clone(), inbox, self.routes.clone(), state);
        let thread = std::thread::Builder::new()
            .name(format!("raft-node-{id}"))
            .spawn(move || node.run())
            .expect("spawn node");
        self.running.insert(id, Running { thread, storage });
    }

    /// Stops node `id` as a crash would, but without losing what it acknowledged: its thread
    /// ends and its log is closed (a shared log once all its groups stopped).
    pub fn stop(&mut self, id: u64) {
        let running = self.running.remove(&id).expect("node is running");
        if let Some(sender) = self.routes.write().unwrap().remove(&id) {
            let _ = sender.send(Input::Stop);
        }
        running.thread.join().expect("node thread");
        self.logs.close(id, &running.storage);
    }

    pub fn state(&self, id: u64) -> NodeState {
        self.states[&id].lock().unwrap().clone()
    }

    pub fn running(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.running.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn storage(&self, id: u64) -> &RaftStorage {
        &self.running[&id].storage
    }

    /// The running node that leads, once the running nodes agree on one; waits up to `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let views: Vec<NodeState> = self.running().iter().map(|&id| self.state(id)).collect();
            let leader = views.iter().find(|view| view.role == Some(StateRole::Leader));
            if let Some(leader) = leader {
                let id =
                    self.running().into_iter().find(|&id| self.state(id).role == Some(StateRole::Leader));
                if views.iter().all(|view| view.leader == leader.leader && view.term == leader.term) {
                    return id;
                }
            }
            std::thread::sleep(TICK);
        }
        None
    }

    /// Proposes `key=value` commands through node `leader` and waits until it has applied them
    /// all, proposing again any that a leadership change dropped. Returns false on timeout.
    pub fn write(&self, leader: u64, commands: &[(String, String)], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut missing: Vec<&(String, String)> = commands.iter().collect();
        while Instant::now() < deadline {
            if let Some(sender) = self.routes.read().unwrap().get(&leader) {
                for (key, value) in &missing {
                    let _ = sender.send(Input::Propose(format!("{key}={value}").into_bytes()));
                }
            }
            let resend_at = Instant::now() + Duration::from_secs(2);
            while Instant::now() < resend_at.min(deadline) {
                let state = self.states[&leader].lock().unwrap();
                missing.retain(|(key, value)| state.data.get(key) != Some(value));
                drop(state);
                if missing.is_empty() {
                    return true;
                }
                std::thread::sleep(TICK);
            }
        }
        false
    }

    /// Waits until every running node has applied the same data and holds the same log.
    pub fn wait_converged(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let views: Vec<NodeState> = self.running().iter().map(|&id| self.state(id)).collect();
            let same_data = views.windows(2).all(|pair| pair[0].data == pair[1].data);
            let same_applied = views.windows(2).all(|pair| pair[0].applied == pair[1].applied);
            if same_data && same_applied && self.logs_equal() {
                return true;
            }
            std::thread::sleep(TICK * 5);
        }
        false
    }

    /// Whether every running node's log holds the same entries.
    pub fn logs_equal(&self) -> bool {
        let logs: Vec<Vec<Entry>> = self
            .running()
            .iter()
            .map(|&id| {
                let storage = self.storage(id);
                let (first, last) = (storage.first_index().unwrap(), storage.last_index().unwrap());
                storage
                    .entries(first, last + 1, None, raft::GetEntriesContext::empty(false))
                    .unwrap_or_default()
            })
            .collect();
        logs.windows(2).all(|pair| pair[0] == pair[1])
    }

    pub fn stop_all(&mut self) {
        for id in self.running() {
            self.stop(id);
        }
    }
}

/// One node's thread.
struct Node {
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    inbox: Receiver<Input>,
    routes: Arc<RwLock<HashMap<u64, Sender<Input>>>>,
    state: Arc<Mutex<NodeState>>,
    /// Ready numbers raftwal has made durable, sent from its committer thread.
    persisted: (Sender<u64>, Receiver<u64>),
    /// Messages each submitted `Ready` may send only once it is durable.
    held: VecDeque<(u64, Vec<Message>)>,
}

impl Node {
    fn new(
        id: u64,
        storage: RaftStorage,
        inbox: Receiver<Input>,
        routes: Arc<RwLock<HashMap<u64, Sender<Input>>>>,
        state: Arc<Mutex<NodeState>>,
    ) -> Node {
        let config = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, storage.clone(), &logger).expect("raft node");
        Node { raw, storage, inbox, routes, state, persisted: channel(), held: VecDeque::new() }
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            match self.inbox.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                Ok(input) => {
                    if !self.take(input) {
                        return;
                    }
                    while let Ok(input) = self.inbox.try_recv() {
                        if !self.take(input) {
                            return;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + TICK;
            }
            self.on_persisted();
            self.handle_ready();
            self.publish();
        }
    }

    /// Returns false on `Stop`.
    fn take(&mut self, input: Input) -> bool {
        match input {
            Input::Raft(message) => {
                let _ = self.raw.step(message);
            }
            Input::Propose(command) => {
                if self.raw.raft.state == StateRole::Leader {
                    let _ = self.raw.propose(Vec::new(), command);
                }
            }
            Input::Stop => return false,
        }
        true
    }

    fn send(&self, messages: Vec<Message>) {
        let routes = self.routes.read().unwrap();
        for message in messages {
            if let Some(sender) = routes.get(&message.to) {
                let _ = sender.send(Input::Raft(message));
            }
        }
    }

    /// Tells raft-rs which `Ready`s are durable, and sends the messages they held back.
    fn on_persisted(&mut self) {
        let Some(number) = self.persisted.1.try_iter().max() else { return };
        while self.held.front().is_some_and(|(held, _)| *held <= number) {
            let (_, messages) = self.held.pop_front().expect("checked");
            self.send(messages);
        }
        self.raw.on_persist_ready(number);
    }

    fn handle_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            drop(self.storage.apply_snapshot(ready.snapshot()).expect("apply snapshot"));
        }
        self.apply(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            drop(self.storage.append(ready.entries()).expect("append"));
        }
        if let Some(hard_state) = ready.hs() {
            drop(self.storage.set_hard_state(hard_state).expect("hard state"));
        }
        let number = ready.number();
        self.held.push_back((number, ready.take_persisted_messages()));
        let persisted = self.persisted.0.clone();
        self.storage
            .sync_with(move |result| {
                if result.is_ok() {
                    let _ = persisted.send(number);
                }
            })
            .expect("sync_with");
        self.raw.advance_append_async(ready);
        self.raw.advance_apply();
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        let mut state = self.state.lock().unwrap();
        for entry in entries {
            state.applied = entry.index;
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                continue;
            }
            let command = String::from_utf8_lossy(&entry.data).into_owned();
            let (key, value) = command.split_once('=').unwrap_or((&command, ""));
            state.data.insert(key.to_string(), value.to_string());
        }
    }

    fn publish(&self) {
        let mut state = self.state.lock().unwrap();
        let raft = &self.raw.raft;
        state.role = Some(raft.state);
        state.term = raft.term;
        state.leader = raft.leader_id;
        state.commit = raft.raft_log.committed;
    }
}
