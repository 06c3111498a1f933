//! openraft 0.9's own storage conformance suite (`openraft::testing::Suite`, `storage-v2`), run
//! against `raftwal::raft::openraft_v09` with a minimal in-memory state machine, and a reopen
//! test.

use std::io::Cursor;
use std::sync::Arc;

use openraft_v09::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft_v09::testing::{StoreBuilder, Suite};
use openraft_v09::{
    Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, Vote,
};
use raftwal::Options;
use tempfile::TempDir;
use tokio::sync::Mutex;

openraft_v09::declare_raft_types!(
    /// Strings in and out; everything else is openraft 0.9's default.
    pub Config: D = String, R = String
);

type LogStore = raftwal::raft::openraft_v09::LogStore<Config>;

#[derive(Clone, Default)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft_v09::BasicNode>,
}

type Meta = SnapshotMeta<u64, openraft_v09::BasicNode>;
/// The current snapshot: its meta and data.
type Current = Option<(Meta, Vec<u8>)>;

/// Keeps what the suite inspects: the last applied log id and membership.
#[derive(Clone, Default)]
struct StateMachine {
    applied: Arc<Mutex<Applied>>,
    snapshot: Arc<Mutex<Current>>,
}

impl RaftSnapshotBuilder<Config> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Config>, StorageError<u64>> {
        let applied = self.applied.lock().await.clone();
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id: format!("{:?}", applied.last_applied),
        };
        *self.snapshot.lock().await = Some((meta.clone(), Vec::new()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(Vec::new())) })
    }
}

impl RaftStateMachine<Config> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, openraft_v09::BasicNode>), StorageError<u64>> {
        let applied = self.applied.lock().await;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Config>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied.lock().await;
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            if let EntryPayload::Membership(membership) = entry.payload {
                applied.membership = StoredMembership::new(Some(entry.log_id), membership);
            }
            responses.push(String::new());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft_v09::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let mut applied = self.applied.lock().await;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        *self.snapshot.lock().await = Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Config>>, StorageError<u64>> {
        Ok(self
            .snapshot
            .lock()
            .await
            .clone()
            .map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

struct Builder;

impl StoreBuilder<Config, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::open(dir.path(), Options::default()).expect("open");
        Ok((dir, store, StateMachine::default()))
    }
}

#[test]
fn openraft_v09_storage_suite() {
    Suite::test_all(Builder).expect("openraft 0.9's suite passes");
}

/// Each store on group 2 of a log whose group 1 holds another log's entries: the suite passes
/// as on a log of its own.
struct GroupBuilder;

impl StoreBuilder<Config, LogStore, StateMachine, TempDir> for GroupBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = raftwal::Wal::open(dir.path(), Options::default()).expect("open");
        let neighbour = wal.create_group(1).expect("group 1");
        let entries: Vec<raftwal::Entry> =
            (1..=100).map(|index| raftwal::Entry { index, term: 7, data: vec![index as u8; 64] }).collect();
        neighbour.append(&entries).expect("append").wait().expect("durable");
        let store = LogStore::from_group(wal.create_group(2).expect("group 2")).expect("store");
        Ok((dir, store, StateMachine::default()))
    }
}

#[test]
fn openraft_v09_storage_suite_on_a_shared_log() {
    Suite::test_all(GroupBuilder).expect("openraft 0.9's suite passes on a group of a shared log");
}

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(openraft_v09::CommittedLeaderId::new(term, node), index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_log_state_vote_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(3, 2);
    let entries: Vec<Entry<Config>> = (1..=30)
        .map(|index| Entry {
            log_id: log_id(3, 2, index),
            payload: EntryPayload::Normal(format!("k{index}")),
        })
        .collect();
    let expected = {
        let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
        store.blocking_append(entries.clone()).await.unwrap();
        store.save_vote(&vote).await.unwrap();
        store.save_committed(Some(log_id(3, 2, 20))).await.unwrap();
        store.purge(log_id(3, 2, 10)).await.unwrap();
        store.truncate(log_id(3, 2, 26)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        store.wal().close().unwrap();
        state
    };
    assert_eq!(
        (expected.last_purged_log_id, expected.last_log_id),
        (Some(log_id(3, 2, 10)), Some(log_id(3, 2, 25)))
    );
    let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get_log_state().await.unwrap(), expected);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 2, 20)));
    let read = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        read.iter().map(|entry| entry.log_id).collect::<Vec<_>>(),
        (11..=25).map(|index| log_id(3, 2, index)).collect::<Vec<_>>()
    );
    assert_eq!(store.wal().term(25).unwrap(), 3, "0.9's terms are recorded in the engine");
}
