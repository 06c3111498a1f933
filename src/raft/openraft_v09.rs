//! The log store of [openraft](https://docs.rs/openraft/0.9.25) 0.9 with `storage-v2`
//! (feature `openraft-v09`; the dependency is renamed so that it can sit beside 0.10):
//! [`LogStore`] implements `RaftLogStorage` and `RaftLogReader`, [`LogReader`] implements
//! `RaftLogReader`.
//!
//! The same store as the 0.10 adapter (`raftwal::raft::openraft`), with 0.9's types: entries
//! encoded with MessagePack into raftwal entries of the same index and term, and the vote,
//! committed log id and last purged log id in the `Wal`'s metadata, ordered with the entries.
//!
//! What 0.9 costs: its core waits for each `append`'s `LogFlushed` callback before it goes on
//! (0.10 submits appends without waiting), so one 0.9 node keeps one append in flight, and its
//! appends share an fdatasync only with other writers of the same `Wal`. Expect about one
//! fdatasync per replication round on a follower, where 0.10 can fold several into one.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft_v09::async_runtime::AsyncOneshotSendExt;
use openraft_v09::storage::{LogFlushed, RaftLogStorage};
use openraft_v09::{
    AsyncRuntime, ErrorSubject, ErrorVerb, LogId, LogState, NodeId, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{READ_BYTES_MAX, Shape, Store, io_error, is_read_error};
use crate::{Error, Group, Options, Wal};

type Inner<C> = Store<
    <C as RaftTypeConfig>::Entry,
    Vote<<C as RaftTypeConfig>::NodeId>,
    LogId<<C as RaftTypeConfig>::NodeId>,
>;

/// openraft 0.9's `RaftLogStorage` over a [`Wal`]. Cloning gives another handle to the same log.
pub struct LogStore<C: RaftTypeConfig> {
    store: Arc<Inner<C>>,
}

/// A cheap handle that reads entries concurrently with appends.
pub struct LogReader<C: RaftTypeConfig> {
    store: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore { store: self.store.clone() }
    }
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader { store: self.store.clone() }
    }
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the log in `dir`. This is blocking I/O: a new log costs a few
    /// fdatasyncs (milliseconds), an existing one is read and verified; from async code, call it
    /// inside `spawn_blocking`.
    ///
    /// # Errors
    /// As [`Wal::open`] and [`LogStore::from_wal`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<LogStore<C>, Error> {
        LogStore::from_wal(Wal::open(dir, options)?)
    }

    /// Takes over an opened `Wal`, which must hold an openraft 0.9 log or nothing.
    ///
    /// # Errors
    /// `Codec` if the `Wal` holds another adapter's metadata (or this one's in an encoding this version does not read); errors of the purge
    /// that a crash interrupted, which this finishes.
    pub fn from_wal(wal: Wal) -> Result<LogStore<C>, Error> {
        LogStore::from_group(Group::clone(&wal))
    }

    /// Takes over one group of a shared log, which must hold an openraft 0.9 log or nothing:
    /// one `LogStore` per Raft group, all sharing the log's batches and fdatasyncs.
    ///
    /// # Errors
    /// As [`LogStore::from_wal`].
    pub fn from_group(group: Group) -> Result<LogStore<C>, Error> {
        let shape = Shape {
            tag: b"openraft-0.9/2:",
            entry_index: |entry: &C::Entry| entry.get_log_id().index,
            entry_term: |entry: &C::Entry| entry.get_log_id().leader_id.term,
            log_id_index: |log_id: &LogId<C::NodeId>| log_id.index,
        };
        Ok(LogStore { store: Arc::new(Store::new(group, shape)?) })
    }

    /// The underlying log, for stats and inspection (and `close`).
    #[must_use]
    pub fn wal(&self) -> Wal {
        self.store.group.wal()
    }

    /// The group of the log this store keeps.
    #[must_use]
    pub fn group(&self) -> &Group {
        &self.store.group
    }
}

/// For setup code that returns openraft's errors (`LogStore::open(dir, options)?`): subject
/// `Store`, verb `Read` for errors of reading the log, `Write` for the rest, with raftwal's
/// message.
impl<NID: NodeId> From<Error> for StorageError<NID> {
    fn from(error: Error) -> StorageError<NID> {
        let verb = if is_read_error(&error) { ErrorVerb::Read } else { ErrorVerb::Write };
        StorageError::from_io_error(ErrorSubject::Store, verb, error.into())
    }
}

fn read_error<C: RaftTypeConfig>(error: Error) -> StorageError<C::NodeId> {
    StorageIOError::read_logs(&io_error(error)).into()
}

fn write_error<C: RaftTypeConfig>(error: Error) -> StorageError<C::NodeId> {
    StorageIOError::write_logs(&io_error(error)).into()
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C>
where
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.store.read(range, u64::MAX).map_err(read_error::<C>)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.store.read(start..end, READ_BYTES_MAX).map_err(read_error::<C>)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.store.read(range, u64::MAX).map_err(read_error::<C>)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id = self.store.purged().map_err(read_error::<C>)?;
        let last_log_id = match self.store.last_entry().map_err(read_error::<C>)? {
            Some(entry) => Some(entry.get_log_id().clone()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { store: self.store.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let write_error = |error| StorageIOError::write_vote(&io_error(error)).into();
        let (durable, receiver) = C::AsyncRuntime::oneshot();
        self.store
            .save_vote(vote.clone(), move |result| {
                let _ = durable.send(result);
            })
            .map_err(write_error)?;
        let closed = || Error::Io(std::io::Error::other("the log closed before the vote was durable"));
        receiver.await.unwrap_or_else(|_| Err(closed())).map_err(write_error)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.store.vote().map_err(read_error::<C>)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.store.save_committed(committed).map_err(write_error::<C>)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.store.committed().map_err(read_error::<C>)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.store
            .append(entries, move |result| callback.log_io_completed(result.map_err(io_error)))
            .map_err(write_error::<C>)
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.store.truncate(log_id.index).map_err(write_error::<C>)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.store.purge(log_id).map_err(write_error::<C>)
    }
}
