//! The log store of [raft-rs](https://docs.rs/raft/0.7) 0.7 (feature `raft-rs`): [`RaftStorage`]
//! implements `raft::Storage`, and has the write side `MemStorageCore` has (append with suffix
//! overwrite, hard state, conf state, snapshot, compaction), each returning a
//! [`Completion`] so that the "async ready" path (`advance_append_async`, `on_persist_ready`)
//! can be driven by group-commit completions.
//!
//! Entries are stored as their protobuf encoding in raftwal entries of the same index and
//! term. The hard state is raftwal's `HardState`; the conf state travels in the `Wal`'s
//! metadata, and a snapshot's conf state in its `SnapshotMeta`.
//!
//! `snapshot()` returns metadata only (index = the commit index, its term, the conf state),
//! as `MemStorage` does: the snapshot's data is the application's state machine, so an
//! application that sends snapshots wraps this storage and fills `data` in.

use std::sync::Arc;

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry as RaftEntry, HardState as RaftHardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::{Completion, Entry, Error, Group, HardState, Options, SnapshotMeta, Wal};

/// Identifies this adapter's metadata, and its layout: `{ snapshot_index u64 | ConfState }`,
/// the index of the snapshot the log held when the conf state was saved (0 if none), then the
/// protobuf conf state. A snapshot newer than that index carries the newer conf state.
const METADATA_TAG: &[u8] = b"raft-rs-0.7/1:";

/// raft-rs's `Storage` over a [`Wal`]. Cloning gives another handle to the same log.
#[derive(Clone)]
pub struct RaftStorage {
    wal: Group,
    /// Serialises the write side, whose operations read the log's state before they change it.
    writer: Arc<Mutex<()>>,
}

impl RaftStorage {
    /// Opens (or creates) the log in `dir`.
    ///
    /// # Errors
    /// As [`Wal::open`]; `Codec` if the log holds another adapter's metadata.
    pub fn open(dir: impl AsRef<std::path::Path>, options: Options) -> Result<RaftStorage, Error> {
        RaftStorage::from_wal(Wal::open(dir, options)?)
    }

    /// Takes over an opened `Wal`, which must hold a raft-rs log or nothing.
    ///
    /// # Errors
    /// `Codec` if the log holds another adapter's metadata.
    pub fn from_wal(wal: Wal) -> Result<RaftStorage, Error> {
        RaftStorage::from_group(Group::clone(&wal))
    }

    /// Takes over one group of a shared log, which must hold a raft-rs log or nothing: one
    /// `RaftStorage` per peer, as TiKV keeps a `PeerStorage` per region over one engine, all
    /// sharing the log's batches and fdatasyncs.
    ///
    /// # Errors
    /// As [`RaftStorage::from_wal`].
    pub fn from_group(wal: Group) -> Result<RaftStorage, Error> {
        let storage = RaftStorage { wal, writer: Arc::new(Mutex::new(())) };
        storage.conf_state()?;
        Ok(storage)
    }

    /// Like `open`, for a new node: sets the initial conf state if the log has none yet.
    ///
    /// # Errors
    /// As `open`, and the conf state's write.
    pub fn open_with_conf_state(
        dir: impl AsRef<std::path::Path>,
        options: Options,
        conf_state: ConfState,
    ) -> Result<RaftStorage, Error> {
        let storage = RaftStorage::open(dir, options)?;
        if storage.conf_state()? == ConfState::default() {
            storage.set_conf_state(&conf_state)?.wait()?;
        }
        Ok(storage)
    }

    /// The underlying log, for stats and inspection (and `close`).
    #[must_use]
    pub fn wal(&self) -> Wal {
        self.wal.wal()
    }

    /// The group of the log this storage keeps.
    #[must_use]
    pub fn group(&self) -> &Group {
        &self.wal
    }

    /// Appends `entries`, first dropping any entries from `entries[0].index` on (a Raft
    /// conflict). The entries are readable at once; the completion resolves when they are
    /// durable.
    ///
    /// # Errors
    /// `Compacted` if `entries[0]` is at or below the compaction point; `NotContiguous` if it
    /// leaves a gap after the last entry; as [`Group::append`].
    pub fn append(&self, entries: &[RaftEntry]) -> Result<Completion, Error> {
        let _writer = self.writer.lock();
        let encoded = self.prepare_append(entries)?;
        self.wal.append(&encoded)
    }

    /// Like `append`, but calls `callback` once the entries are durable, on raftwal's committer
    /// thread and in submission order (see [`Group::append_with`]): the place to call
    /// `RawNode::on_persist_ready`, through a channel.
    ///
    /// # Errors
    /// As `append`; on error the callback is dropped uncalled.
    pub fn append_with(
        &self,
        entries: &[RaftEntry],
        callback: impl FnOnce(Result<(), Error>) + Send + 'static,
    ) -> Result<(), Error> {
        let _writer = self.writer.lock();
        let encoded = self.prepare_append(entries)?;
        self.wal.append_with(&encoded, callback)
    }

    /// Encodes `entries` and truncates the log's conflicting suffix.
    fn prepare_append(&self, entries: &[RaftEntry]) -> Result<Vec<Entry>, Error> {
        let first = entries.first().ok_or(Error::EmptyBatch)?.index;
        // A fresh log takes any first index, as raftwal does; otherwise the entries must
        // overlap or continue the log.
        let fresh = self.wal.next_index()?.is_none();
        let first_index = self.first()?;
        if first < first_index && !fresh {
            return Err(Error::Compacted { index: first, first: first_index });
        }
        let next = self.last()? + 1;
        if first > next && !fresh {
            return Err(Error::NotContiguous { expected: next, got: first });
        }
        let encoded = entries
            .iter()
            .map(|entry| {
                let data = entry.write_to_bytes().map_err(codec_error)?;
                Ok(Entry { index: entry.index, term: entry.term, data })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if first < next && self.wal.last_index()?.is_some() {
            // The truncation and the append are ordered, so the completion of the append covers both.
            drop(self.wal.truncate(first)?);
        }
        Ok(encoded)
    }

    /// Calls `callback` once everything submitted before is durable (see [`Group::sync_with`]):
    /// after submitting a `Ready`'s entries and hard state, the place to learn that the whole
    /// `Ready` is persisted and call `RawNode::on_persist_ready`.
    ///
    /// # Errors
    /// As [`Group::sync_with`].
    pub fn sync_with(&self, callback: impl FnOnce(Result<(), Error>) + Send + 'static) -> Result<(), Error> {
        self.wal.sync_with(callback)
    }

    /// Saves the hard state, ordered after everything submitted before.
    ///
    /// # Errors
    /// As [`Group::set_hard_state`].
    pub fn set_hard_state(&self, hard_state: &RaftHardState) -> Result<Completion, Error> {
        self.wal.set_hard_state(HardState {
            term: hard_state.term,
            vote: hard_state.vote,
            commit: hard_state.commit,
        })
    }

    /// Saves the conf state, as an application does after applying a conf change.
    ///
    /// # Errors
    /// As [`Group::set_metadata`].
    pub fn set_conf_state(&self, conf_state: &ConfState) -> Result<Completion, Error> {
        let snapshot_index = self.wal.snapshot_meta()?.map_or(0, |meta| meta.index);
        let mut metadata = METADATA_TAG.to_vec();
        metadata.extend(snapshot_index.to_le_bytes());
        metadata.extend(conf_state.write_to_bytes().map_err(codec_error)?);
        self.wal.set_metadata(metadata)
    }

    /// The conf state: the one saved last, unless a snapshot applied after it (whose conf
    /// state write a crash lost) is newer. Empty on a new log.
    ///
    /// # Errors
    /// `Codec` if the metadata is not this adapter's.
    pub fn conf_state(&self) -> Result<ConfState, Error> {
        let snapshot = self.wal.snapshot_meta()?;
        let saved = match self.wal.metadata()? {
            Some(metadata) => {
                let body = metadata
                    .strip_prefix(METADATA_TAG)
                    .ok_or_else(|| metadata_error("it is not the raft-rs adapter's"))?;
                let (index, conf_state) =
                    body.split_first_chunk::<8>().ok_or_else(|| metadata_error("it is too short"))?;
                Some((
                    u64::from_le_bytes(*index),
                    ConfState::parse_from_bytes(conf_state).map_err(codec_error)?,
                ))
            }
            None => None,
        };
        match (saved, snapshot) {
            (Some((as_of, _)), Some(meta)) if meta.index > as_of => {
                ConfState::parse_from_bytes(&meta.data).map_err(codec_error)
            }
            (Some((_, conf_state)), _) => Ok(conf_state),
            (None, Some(meta)) => ConfState::parse_from_bytes(&meta.data).map_err(codec_error),
            (None, None) => Ok(ConfState::default()),
        }
    }

    /// Applies a snapshot received from the leader, as `MemStorageCore::apply_snapshot` does:
    /// the log then starts after the snapshot (entries after it stay only if the log holds the
    /// snapshot's last entry with its term), the hard state's commit moves to the snapshot's
    /// index, and the conf state becomes the snapshot's. The snapshot's data is not kept: it
    /// is the application's state machine.
    ///
    /// # Errors
    /// `StaleSnapshot` if the log is already compacted past the snapshot; as
    /// [`Group::install_snapshot`].
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> Result<Completion, Error> {
        let _writer = self.writer.lock();
        let meta = snapshot.get_metadata();
        let first = self.first()?;
        if first > meta.index {
            return Err(Error::StaleSnapshot { index: meta.index, compacted: first - 1 });
        }
        let conf_state = meta.get_conf_state();
        let data = conf_state.write_to_bytes().map_err(codec_error)?;
        drop(self.wal.install_snapshot(SnapshotMeta { index: meta.index, term: meta.term, data })?);
        let mut hard_state = self.wal.hard_state()?.unwrap_or_default();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = meta.index;
        drop(self.wal.set_hard_state(hard_state)?);
        self.set_conf_state(conf_state)
    }

    /// Drops the entries before `compact_index`, as `MemStorageCore::compact` does; at or below
    /// the first index there is nothing to drop, and it returns `None`.
    ///
    /// # Errors
    /// `Unavailable` if `compact_index` is past the last index + 1; as [`Group::purge`].
    pub fn compact(&self, compact_index: u64) -> Result<Option<Completion>, Error> {
        let _writer = self.writer.lock();
        let last = self.last()?;
        if compact_index > last + 1 {
            return Err(Error::Unavailable { index: compact_index, next: last + 1 });
        }
        if compact_index <= self.first()? {
            return Ok(None);
        }
        self.wal.purge(compact_index - 1).map(Some)
    }

    /// The first index raft-rs sees: the first entry's, else the one after the compaction point.
    fn first(&self) -> Result<u64, Error> {
        Ok(match self.wal.first_index()? {
            Some(first) => first,
            None => self.wal.next_index()?.unwrap_or(1),
        })
    }

    /// The last index raft-rs sees: the last entry's, else the compaction point.
    fn last(&self) -> Result<u64, Error> {
        match self.wal.last_index()? {
            Some(last) => Ok(last),
            None => Ok(self.first()? - 1),
        }
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        // `apply_snapshot` writes the snapshot before the hard state that commits it; if a crash
        // kept only the first, the snapshot still counts as committed.
        let hard_state = self.wal.hard_state().map_err(store_error)?.unwrap_or_default();
        let (snapshot_index, snapshot_term) =
            self.wal.snapshot_meta().map_err(store_error)?.map_or((0, 0), |meta| (meta.index, meta.term));
        let raft_hard_state = RaftHardState {
            term: hard_state.term.max(snapshot_term),
            vote: hard_state.vote,
            commit: hard_state.commit.max(snapshot_index),
            ..Default::default()
        };
        Ok(RaftState::new(raft_hard_state, self.conf_state().map_err(store_error)?))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<RaftEntry>> {
        let max_size = max_size.into();
        if low < self.first().map_err(store_error)? {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last().map_err(store_error)? + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        // raftwal limits by payload bytes, which never exceed the protobuf size it stores, so
        // it returns at least what `limit_size` keeps.
        let stored = self.wal.entries(low..high, max_size.unwrap_or(u64::MAX)).map_err(store_error)?;
        let mut entries = stored
            .iter()
            .map(|entry| {
                RaftEntry::parse_from_bytes(&entry.data).map_err(|error| store_error(codec_error(error)))
            })
            .collect::<raft::Result<Vec<_>>>()?;
        raft::util::limit_size(&mut entries, max_size);
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let purged = self.wal.purged().map_err(store_error)?;
        let first = self.wal.first_index().map_err(store_error)?;
        if index == 0 && purged.is_none() && first.is_none_or(|first| first > 0) {
            // raft-rs asks for the term of index 0 on an empty log; MemStorage answers 0.
            return Ok(0);
        }
        self.wal.term(index).map_err(|error| match error {
            Error::Compacted { .. } => raft::Error::Store(StorageError::Compacted),
            Error::Unavailable { .. } => raft::Error::Store(StorageError::Unavailable),
            other => store_error(other),
        })
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.first().map_err(store_error)
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.last().map_err(store_error)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let commit = self.wal.hard_state().map_err(store_error)?.map_or(0, |hard_state| hard_state.commit);
        if commit < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = commit;
        meta.term = self.term(commit)?;
        meta.set_conf_state(self.conf_state().map_err(store_error)?);
        Ok(snapshot)
    }
}

/// protobuf's generated messages read back whatever they wrote, so this is a damaged or foreign
/// value read from the log, or (at `append`) a message protobuf cannot write at all.
fn codec_error(error: protobuf::ProtobufError) -> Error {
    Error::Codec { what: "a raft-rs protobuf message".into(), reason: error.to_string() }
}

fn metadata_error(reason: &str) -> Error {
    Error::Codec { what: "the log's metadata".into(), reason: reason.into() }
}

fn store_error(error: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(error)))
}
