//! What the openraft tests need besides the log store: a type config, an in-memory state
//! machine that applies `"key=value"` commands, and an in-process network.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::impls::BasicNode;
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use tokio::sync::Mutex;

openraft::declare_raft_types!(
    /// Commands are `Command`s, responses strings; everything else is openraft's default.
    pub Config: D = Command, R = String
);

/// A client's command, in serde shapes that a non-self-describing encoding cannot read back (the
/// adapter once encoded with postcard): an internally tagged enum, a `serde_json::Value`, and a
/// field left out when empty.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op")]
pub enum Command {
    Set {
        key: String,
        value: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
    },
    Delete {
        key: String,
    },
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Command {
    /// Sets `key` to the JSON string `value`.
    pub fn set(key: impl Into<String>, value: &str) -> Command {
        Command::Set { key: key.into(), value: serde_json::Value::from(value), request: None }
    }
}

pub type LogStore = raftwal::raft::openraft::LogStore<Config>;

/// The applied state: the key-value map, the last applied log id and membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogIdOf<Config>>,
    pub membership: StoredMembershipOf<Config>,
    pub data: BTreeMap<String, String>,
}

pub type Snapshot = SnapshotOf<Config, Vec<u8>>;

/// A state machine held in memory; its snapshot is the serialized `Applied`. Opened on a
/// directory, it keeps its latest snapshot there, so that a restarted node starts from it
/// (openraft purges the log behind snapshots).
#[derive(Clone, Default)]
pub struct StateMachine {
    pub applied: Arc<Mutex<Applied>>,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
    dir: Option<std::path::PathBuf>,
}

const SNAPSHOT_FILE: &str = "snapshot.json";

impl StateMachine {
    /// A state machine that saves its snapshots in `dir`, starting from the one saved there.
    pub fn open(dir: &std::path::Path) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let machine = StateMachine { dir: Some(dir.to_path_buf()), ..StateMachine::default() };
        match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let (meta, data): (SnapshotMetaOf<Config>, Vec<u8>) =
                    serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                let applied: Applied = serde_json::from_slice(&data).map_err(io::Error::other)?;
                *machine.applied.try_lock().expect("new") = applied;
                *machine.snapshot.try_lock().expect("new") = Some(Snapshot { meta, snapshot: data });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(machine)
    }

    /// Keeps `snapshot` as the current one, durably if the machine has a directory.
    async fn keep(&self, snapshot: Snapshot) -> io::Result<()> {
        if let Some(dir) = &self.dir {
            let bytes =
                serde_json::to_vec(&(&snapshot.meta, &snapshot.snapshot)).map_err(io::Error::other)?;
            let temp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
            let file = std::fs::File::create(&temp)?;
            std::io::Write::write_all(&mut &file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, dir.join(SNAPSHOT_FILE))?;
            std::fs::File::open(dir)?.sync_all()?;
        }
        *self.snapshot.lock().await = Some(snapshot);
        Ok(())
    }

    pub async fn data(&self) -> BTreeMap<String, String> {
        self.applied.lock().await.data.clone()
    }
}

impl RaftSnapshotBuilder<Config> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<Config, Vec<u8>>> {
        let applied = self.applied.lock().await.clone();
        let bytes = serde_json::to_vec(&applied).map_err(io::Error::other)?;
        let meta = SnapshotMetaOf::<Config> {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
        };
        let snapshot = SnapshotOf::<Config, Vec<u8>> { meta, snapshot: bytes };
        self.keep(snapshot.clone()).await?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<Config> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> io::Result<(Option<LogIdOf<Config>>, StoredMembershipOf<Config>)> {
        let applied = self.applied.lock().await;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<EntryResponder<Config>>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let mut applied = self.applied.lock().await;
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => String::new(),
                EntryPayload::Normal(Command::Set { key, value, .. }) => {
                    let value = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                    applied.data.insert(key.clone(), value);
                    key
                }
                EntryPayload::Normal(Command::Delete { key }) => {
                    applied.data.remove(&key);
                    key
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembershipOf::<Config>::new(Some(entry.log_id), membership);
                    String::new()
                }
            };
            drop(applied);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<Config>, snapshot: Vec<u8>) -> io::Result<()> {
        let applied: Applied = serde_json::from_slice(&snapshot).map_err(io::Error::other)?;
        *self.applied.lock().await = applied;
        self.keep(SnapshotOf::<Config, Vec<u8>> { meta: meta.clone(), snapshot }).await
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<Config, Vec<u8>>>> {
        Ok(self.snapshot.lock().await.clone())
    }
}

pub type Raft = openraft::Raft<Config, StateMachine>;

/// The in-process network: RPCs are calls on the target `Raft`, found by node id. A node that
/// is not registered is unreachable.
#[derive(Clone, Default)]
pub struct Router {
    pub nodes: Arc<std::sync::Mutex<BTreeMap<u64, Raft>>>,
}

/// A connection to one node through the router.
pub struct Connection {
    router: Router,
    target: u64,
}

impl Router {
    fn target(&self, id: u64) -> Result<Raft, Unreachable<Config>> {
        let nodes = self.nodes.lock().unwrap();
        nodes.get(&id).cloned().ok_or_else(|| {
            Unreachable::new(&io::Error::new(io::ErrorKind::NotConnected, format!("node {id} is down")))
        })
    }
}

fn unreachable(error: impl std::error::Error + 'static) -> Unreachable<Config> {
    Unreachable::new(&error)
}

impl RaftNetworkFactory<Config> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection { router: self.clone(), target }
    }
}

impl RaftNetworkV2<Config> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Config>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Config>, RPCError<Config>> {
        let target = self.router.target(self.target)?;
        target.append_entries(rpc).await.map_err(|error| RPCError::Unreachable(unreachable(error)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Config>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Config>, RPCError<Config>> {
        let target = self.router.target(self.target)?;
        target.vote(rpc).await.map_err(|error| RPCError::Unreachable(unreachable(error)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Config>,
        snapshot: Snapshot,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Config>, StreamingError<Config>> {
        let target = self.router.target(self.target)?;
        target
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|error| StreamingError::Unreachable(unreachable(error)))
    }
}
