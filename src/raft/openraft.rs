//! The log store of [openraft](https://docs.rs/openraft/0.10.0-alpha.37) 0.10 (feature
//! `openraft`): [`LogStore`] implements `RaftLogStorage`, [`LogReader`] implements
//! `RaftLogReader`.
//!
//! Entries are encoded with MessagePack, log id included, into the payload of raftwal entries of
//! the same index: every serde type openraft accepts reads back, and an entry that would not is
//! refused at `append` with `Error::Codec` before anything is written (see `raft::store`). The
//! engine's term field is 0, since 0.10's leader ids are generic. The vote, the committed log id
//! and the last purged log id travel together in the `Wal`'s metadata, ordered with the entries.
//!
//! - `append` hands the entries to the group commit and returns at once; the `IOFlushed`
//!   callback runs on raftwal's committer thread after the fdatasync that covers them, in
//!   submission order.
//! - `save_vote` returns once the vote, and everything submitted before it, is durable; it
//!   awaits the group commit on openraft's runtime rather than blocking the task.
//! - `save_committed` rides along with the next write and does not wait.
//! - `purge` first records the purged log id, then drops the entries; opening finishes a purge
//!   that a crash cut between the two. A purge past the last entry empties the log, and the next
//!   append must follow the purged id.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::type_config::async_runtime::OneshotSender;
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{READ_BYTES_MAX, Shape, Store, io_error, is_read_error};
use crate::{Error, Group, Options, Wal};

type Inner<C> = Store<<C as RaftTypeConfig>::Entry, VoteOf<C>, LogIdOf<C>>;

/// openraft's `RaftLogStorage` over a [`Wal`]. Cloning gives another handle to the same log.
pub struct LogStore<C: RaftTypeConfig> {
    store: Arc<Inner<C>>,
}

/// A cheap handle that reads entries and the vote concurrently with appends.
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
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
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

    /// Takes over an opened `Wal`, which must hold an openraft 0.10 log or nothing.
    ///
    /// # Errors
    /// `Codec` if the `Wal` holds another adapter's metadata (or this one's in an encoding this version does not read); errors of the purge
    /// that a crash interrupted, which this finishes.
    pub fn from_wal(wal: Wal) -> Result<LogStore<C>, Error> {
        LogStore::from_group(Group::clone(&wal))
    }

    /// Takes over one group of a shared log, which must hold an openraft 0.10 log or nothing:
    /// one `LogStore` per Raft group, all sharing the log's batches and fdatasyncs.
    ///
    /// # Errors
    /// As [`LogStore::from_wal`].
    pub fn from_group(group: Group) -> Result<LogStore<C>, Error> {
        let shape = Shape {
            tag: b"openraft-0.10/2:",
            entry_index: |entry: &C::Entry| entry.index(),
            entry_term: |_| 0,
            log_id_index: |log_id: &LogIdOf<C>| log_id.index(),
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
impl<C: RaftTypeConfig> From<Error> for StorageError<C> {
    fn from(error: Error) -> StorageError<C> {
        let verb = if is_read_error(&error) { ErrorVerb::Read } else { ErrorVerb::Write };
        StorageError::from_io_error(ErrorSubject::Store, verb, error.into())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<C::Entry>> {
        self.store.read(range, u64::MAX).map_err(io_error)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        self.store.vote().map_err(io_error)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<C::Entry>> {
        self.store.read(start..end, READ_BYTES_MAX).map_err(io_error)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> io::Result<LogState<C>> {
        let last_purged_log_id = self.store.purged().map_err(io_error)?;
        let last_log_id = match self.store.last_entry().map_err(io_error)? {
            Some(entry) => Some(entry.log_id()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { store: self.store.clone() }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        let (durable, receiver) = C::oneshot();
        self.store
            .save_vote(vote.clone(), move |result| {
                let _ = durable.send(result);
            })
            .map_err(io_error)?;
        let result =
            receiver.await.map_err(|_| io::Error::other("the log closed before the vote was durable"))?;
        result.map_err(io_error)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        self.store.save_committed(committed).map_err(io_error)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        self.store.committed().map_err(io_error)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.store
            .append(entries, move |result| callback.io_completed(result.map_err(io_error)))
            .map_err(io_error)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> io::Result<()> {
        self.store.truncate(last_log_id.map_or(0, |log_id| log_id.index() + 1)).map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> io::Result<()> {
        self.store.purge(log_id).map_err(io_error)
    }
}
