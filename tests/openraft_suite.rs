//! openraft 0.10's own log-store conformance suite, run against `raftwal::raft::openraft`, and
//! a reopen test: what the store saved is what it finds after a close.

mod openraft_support;

use openraft::StorageError;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::vote::RaftLeaderIdExt;
use openraft_support::{Command, Config, LogStore, StateMachine};
use raftwal::Options;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<Config, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<Config>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::open(dir.path(), Options::default()).expect("open");
        Ok((dir, store, StateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_log_store_suite() {
    Suite::test_all(Builder).await.expect("openraft's suite passes");
}

/// Each store on group 2 of a log whose group 1 holds another log's entries: the suite passes
/// as on a log of its own.
struct GroupBuilder;

impl StoreBuilder<Config, LogStore, StateMachine, TempDir> for GroupBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<Config>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_log_store_suite_on_a_shared_log() {
    Suite::test_all(GroupBuilder).await.expect("openraft's suite passes on a group of a shared log");
}

fn log_id(term: u64, node: u64, index: u64) -> LogIdOf<Config> {
    LogIdOf::<Config>::new(openraft::impls::leader_id_adv::LeaderId::new_committed(term, node), index)
}

/// Appends and waits for the flush callback.
async fn append(store: &mut LogStore, entries: Vec<openraft::type_config::alias::EntryOf<Config>>) {
    let (tx, rx) = Config::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_log_state_vote_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let vote = VoteOf::<Config>::new_committed(3, 2);
    let entries: Vec<_> = (1..=30)
        .map(|index| {
            openraft::type_config::alias::EntryOf::<Config>::new_normal(
                log_id(3, 2, index),
                Command::set(format!("k{index}"), &format!("v{index}")),
            )
        })
        .collect();
    let expected_state = {
        let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
        append(&mut store, entries.clone()).await;
        store.save_vote(&vote).await.unwrap();
        store.save_committed(Some(log_id(3, 2, 20))).await.unwrap();
        store.purge(log_id(3, 2, 10)).await.unwrap();
        store.truncate_after(Some(log_id(3, 2, 25))).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        store.wal().close().unwrap();
        state
    };
    assert_eq!(expected_state.last_purged_log_id, Some(log_id(3, 2, 10)));
    assert_eq!(expected_state.last_log_id, Some(log_id(3, 2, 25)));

    let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get_log_state().await.unwrap(), expected_state);
    assert_eq!(store.get_log_reader().await.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 2, 20)));
    let mut reader = store.get_log_reader().await;
    let read = reader.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(read, entries[10..25].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_past_the_end_continues_after_the_purged_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
    store.purge(log_id(1, 0, 20)).await.unwrap();
    store.wal().close().unwrap();
    let mut store = LogStore::open(dir.path(), Options::default()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (Some(log_id(1, 0, 20)), Some(log_id(1, 0, 20)))
    );
    let entry = openraft::type_config::alias::EntryOf::<Config>::new_blank(log_id(2, 1, 21));
    append(&mut store, vec![entry.clone()]).await;
    assert_eq!(store.get_log_reader().await.try_get_log_entries(..).await.unwrap(), vec![entry]);
}
