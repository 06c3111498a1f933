//! What the openraft tests need besides the log store: a type config and an in-memory state
//! machine that applies `"key=value"` commands.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use tokio::sync::Mutex;

openraft::declare_raft_types!(
    /// Commands and responses are strings; everything else is openraft's default.
    pub Config: D = String, R = String
);

pub type LogStore = raftwal::raft::openraft::LogStore<Config>;

/// The applied state: the key-value map, the last applied log id and membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogIdOf<Config>>,
    pub membership: StoredMembershipOf<Config>,
    pub data: BTreeMap<String, String>,
}

pub type Snapshot = SnapshotOf<Config, Vec<u8>>;

/// A state machine held in memory; its snapshot is the serialized `Applied`.
#[derive(Clone, Default)]
pub struct StateMachine {
    pub applied: Arc<Mutex<Applied>>,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
}

impl StateMachine {
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
        *self.snapshot.lock().await = Some(snapshot.clone());
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
                EntryPayload::Normal(command) => {
                    let (key, value) = command.split_once('=').unwrap_or((&command, ""));
                    applied.data.insert(key.to_string(), value.to_string());
                    command
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
        *self.snapshot.lock().await = Some(SnapshotOf::<Config, Vec<u8>> { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<Config, Vec<u8>>>> {
        Ok(self.snapshot.lock().await.clone())
    }
}
