//! What both openraft adapters (0.10 and 0.9) share, free of openraft's types: entries encoded
//! with MessagePack into raftwal entries of the same index, and the vote, committed log id and
//! last purged log id kept together in the `Wal`'s metadata, ordered with the entries.
//!
//! Why MessagePack (rmp-serde, structs as maps with their field names): openraft asks only that
//! the application's types be serde types, and a format that is not self-describing (postcard,
//! bincode) cannot read back `serde_json::Value`, internally tagged or untagged enums, `flatten`
//! or a field skipped with `skip_serializing_if`; such an entry would be acknowledged durable and
//! never read again, and the node could not start on its log. Each value is also decoded once
//! before it is written: a type whose `Deserialize` does not accept what its `Serialize` wrote (a
//! hand-written pair that disagrees, say) is refused with `Error::Codec` before anything of the
//! call reaches the log, so whatever a callback reports durable reads back.
//!
//! `E`, `V` and `L` are the adapter's entry, vote and log id types; `Shape` tells how to get an
//! index (and a term, where the version exposes one) out of them.

use std::io;
use std::ops::{Bound, RangeBounds};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Completion, Entry, Error, Group, SnapshotMeta};

/// The most payload a limited read returns at once (at least one entry).
pub const READ_BYTES_MAX: u64 = 4 << 20;

/// How an adapter's types look to the store.
pub struct Shape<E, L> {
    /// Identifies the adapter's metadata and the encoding of its values: `name/version:`, then
    /// `Saved` in MessagePack. Version 2 is MessagePack; version 1 was postcard, never released.
    pub tag: &'static [u8],
    pub entry_index: fn(&E) -> u64,
    /// The term raftwal records with an entry; informational (`raftwal dump`).
    pub entry_term: fn(&E) -> u64,
    pub log_id_index: fn(&L) -> u64,
}

/// What openraft asks to keep besides the entries.
#[derive(Clone, Serialize, Deserialize)]
pub struct Saved<V, L> {
    pub vote: Option<V>,
    pub committed: Option<L>,
    pub purged: Option<L>,
}

pub struct Store<E, V, L> {
    pub group: Group,
    shape: Shape<E, L>,
    /// The latest submitted metadata: what the log holds once pending writes are durable.
    saved: Mutex<Saved<V, L>>,
}

impl<E, V, L> Store<E, V, L>
where
    E: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned + Clone,
    L: Serialize + DeserializeOwned + Clone,
{
    /// Takes over `group`, which must hold this adapter's log or nothing, and finishes a purge
    /// that a crash cut between its metadata and its purge record.
    pub fn new(group: Group, shape: Shape<E, L>) -> Result<Self, Error> {
        let saved = match group.metadata()? {
            Some(bytes) => {
                let body = bytes.strip_prefix(shape.tag).ok_or_else(|| foreign(&bytes, shape.tag))?;
                rmp_serde::from_slice(body).map_err(|error| codec("the log's openraft metadata", error))?
            }
            None => Saved { vote: None, committed: None, purged: None },
        };
        let store = Store { group, shape, saved: Mutex::new(saved) };
        if let Some(purged) = store.purged()? {
            let upto = (store.shape.log_id_index)(&purged);
            if store.group.first_index()?.is_some_and(|first| first <= upto) {
                store.drop_upto(upto)?.wait()?;
            }
        }
        Ok(store)
    }

    pub fn vote(&self) -> Result<Option<V>, Error> {
        self.read_saved(|saved| saved.vote.clone())
    }

    pub fn committed(&self) -> Result<Option<L>, Error> {
        self.read_saved(|saved| saved.committed.clone())
    }

    pub fn purged(&self) -> Result<Option<L>, Error> {
        self.read_saved(|saved| saved.purged.clone())
    }

    /// Reads the latest submitted metadata, unless the `Wal` is poisoned: then it may never have
    /// reached the disk.
    fn read_saved<T>(&self, read: impl FnOnce(&Saved<V, L>) -> T) -> Result<T, Error> {
        self.group.next_index()?;
        Ok(read(&self.saved.lock()))
    }

    /// Submits the metadata after `change`, ordered after everything submitted before.
    fn save(&self, change: impl FnOnce(&mut Saved<V, L>)) -> Result<Completion, Error> {
        let mut saved = self.saved.lock();
        change(&mut saved);
        let mut bytes = self.shape.tag.to_vec();
        let what = || "the vote and log ids".to_string();
        let encoded = encode(&*saved, what)?;
        rmp_serde::from_slice::<Saved<V, L>>(&encoded)
            .map_err(|error| refused(what(), codec(what(), error)))?;
        bytes.extend(encoded);
        self.group.set_metadata(bytes)
    }

    /// Saves the vote; `durable` runs once it, and everything before it, is durable.
    pub fn save_vote(
        &self,
        vote: V,
        durable: impl FnOnce(Result<(), Error>) + Send + 'static,
    ) -> Result<(), Error> {
        drop(self.save(|saved| saved.vote = Some(vote))?);
        self.group.sync_with(durable)
    }

    /// Saves the committed log id along with the next write, without waiting.
    pub fn save_committed(&self, committed: Option<L>) -> Result<(), Error> {
        self.save(|saved| saved.committed = committed).map(drop)
    }

    /// Hands `entries` to the group commit; `flushed` runs once they are durable. Entries at or
    /// below the purge point are already compacted and are skipped (openraft 0.9's suite appends
    /// such entries after purging past the end of an empty log).
    pub fn append(
        &self,
        entries: impl IntoIterator<Item = E>,
        flushed: impl FnOnce(Result<(), Error>) + Send + 'static,
    ) -> Result<(), Error> {
        let purged = self.purged()?.map(|purged| (self.shape.log_id_index)(&purged));
        let encoded = entries
            .into_iter()
            .filter(|entry| purged.is_none_or(|purged| (self.shape.entry_index)(entry) > purged))
            .map(|entry| {
                let index = (self.shape.entry_index)(&entry);
                let data = encode(&entry, || format!("entry {index}"))?;
                // Decoded back once (the index checked too): what would not read back is refused.
                self.decode(index, &data).map_err(|error| refused(format!("entry {index}"), error))?;
                Ok(Entry { index, term: (self.shape.entry_term)(&entry), data })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if encoded.is_empty() {
            // Nothing to write, but the callback must still follow everything before it.
            return self.group.sync_with(flushed);
        }
        self.group.append_with(&encoded, flushed)
    }

    /// Drops entries `[from, ..)`, never below the first entry.
    pub fn truncate(&self, from: u64) -> Result<(), Error> {
        let from = self.group.first_index()?.map_or(from, |first| from.max(first));
        self.group.truncate(from).map(drop)
    }

    /// Drops entries `(.., log_id]`: records the purged log id first, then the purge.
    pub fn purge(&self, log_id: L) -> Result<(), Error> {
        let upto = (self.shape.log_id_index)(&log_id);
        if self.purged()?.is_some_and(|purged| (self.shape.log_id_index)(&purged) >= upto) {
            return Ok(());
        }
        drop(self.save(|saved| saved.purged = Some(log_id))?);
        self.drop_upto(upto).map(drop)
    }

    /// Drops entries `(.., upto]`; past the end, empties the log so that it continues after
    /// `upto`.
    fn drop_upto(&self, upto: u64) -> Result<Completion, Error> {
        match self.group.next_index()? {
            Some(next) if upto < next => self.group.purge(upto),
            _ => self.group.install_snapshot(SnapshotMeta { index: upto, term: 0, data: Vec::new() }),
        }
    }

    /// The last entry, if the log holds any.
    pub fn last_entry(&self) -> Result<Option<E>, Error> {
        match self.group.last_index()? {
            Some(last) => self.decode(last, &self.group.entry(last)?.data).map(Some),
            None => Ok(None),
        }
    }

    /// The entries in `range` that the log holds, up to `max_bytes` of payload (at least one).
    pub fn read(&self, range: impl RangeBounds<u64>, max_bytes: u64) -> Result<Vec<E>, Error> {
        let (Some(first), Some(last)) = (self.group.first_index()?, self.group.last_index()?) else {
            return Ok(Vec::new());
        };
        let start = match range.start_bound() {
            Bound::Included(&start) => start,
            Bound::Excluded(&start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(first);
        let end = match range.end_bound() {
            Bound::Included(&end) => end.saturating_add(1),
            Bound::Excluded(&end) => end,
            Bound::Unbounded => u64::MAX,
        }
        .min(last + 1);
        if start >= end {
            return Ok(Vec::new());
        }
        self.group
            .entries(start..end, max_bytes)?
            .iter()
            .map(|entry| self.decode(entry.index, &entry.data))
            .collect()
    }

    /// The openraft entry that raftwal entry `index` holds.
    fn decode(&self, index: u64, data: &[u8]) -> Result<E, Error> {
        let decoded: E =
            rmp_serde::from_slice(data).map_err(|error| codec(format!("entry {index}"), error))?;
        let decoded_index = (self.shape.entry_index)(&decoded);
        if decoded_index != index {
            return Err(Error::Codec {
                what: format!("entry {index}"),
                reason: format!("decodes to an openraft entry with index {decoded_index}"),
            });
        }
        Ok(decoded)
    }
}

/// `value` in MessagePack.
fn encode<T: Serialize>(value: &T, what: impl Fn() -> String) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(value).map_err(|error| codec(what(), error))
}

/// The error of decoding back `what`, a value about to be written: it would not read back, so
/// it is refused before anything of it reaches the log.
fn refused(what: String, error: Error) -> Error {
    let reason = match error {
        Error::Codec { reason, .. } => reason,
        other => other.to_string(),
    };
    Error::Codec { what: format!("{what} would not read back (refused: nothing written)"), reason }
}

fn codec(what: impl Into<String>, reason: impl ToString) -> Error {
    Error::Codec { what: what.into(), reason: reason.to_string() }
}

/// The error for metadata that is not this adapter's: another adapter's, or this one's in an
/// encoding this version does not read.
fn foreign(metadata: &[u8], tag: &[u8]) -> Error {
    let shown = |bytes: &[u8]| {
        let end = bytes.iter().position(|&byte| byte == b':').map_or(bytes.len().min(32), |colon| colon + 1);
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    Error::Codec {
        what: "the log's metadata".into(),
        reason: format!(
            "it starts with {:?}, not {:?}: another adapter's log, or another encoding",
            shown(metadata),
            shown(tag)
        ),
    }
}

/// openraft reports `io::Error`s.
pub fn io_error(error: Error) -> io::Error {
    error.into()
}

/// Whether `error` came from reading the log (damage, a failed read, an index outside it), for
/// the verb of openraft's `StorageError`.
pub fn is_read_error(error: &Error) -> bool {
    matches!(
        error,
        Error::Read { .. }
            | Error::Corruption { .. }
            | Error::MissingEntries { .. }
            | Error::MissingSegments { .. }
            | Error::Compacted { .. }
            | Error::Unavailable { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, Wal};

    /// Entries are `(index, text)`, votes and log ids plain indexes.
    type TestStore = Store<(u64, String), u64, u64>;

    fn shape() -> Shape<(u64, String), u64> {
        Shape {
            tag: b"test/2:",
            entry_index: |entry| entry.0,
            entry_term: |_| 1,
            log_id_index: |index| *index,
        }
    }

    fn append(store: &TestStore, range: std::ops::RangeInclusive<u64>) {
        let (tx, rx) = std::sync::mpsc::channel();
        store
            .append(range.map(|index| (index, format!("entry {index}"))), move |result| {
                tx.send(result).unwrap()
            })
            .unwrap();
        rx.recv().unwrap().unwrap();
    }

    #[test]
    fn open_finishes_a_purge_whose_record_a_crash_lost() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Options::default()).unwrap();
        let store = TestStore::new(Group::clone(&wal), shape()).unwrap();
        append(&store, 1..=10);
        // The crash window: the purged log id is durable, the purge record is not.
        store.save(|saved| saved.purged = Some(5)).unwrap().wait().unwrap();
        assert_eq!(wal.first_index().unwrap(), Some(1));
        wal.close().unwrap();

        let wal = Wal::open(dir.path(), Options::default()).unwrap();
        assert_eq!(wal.first_index().unwrap(), Some(1), "the engine alone still holds the purged entries");
        let store = TestStore::new(Group::clone(&wal), shape()).unwrap();
        assert_eq!(
            (wal.first_index().unwrap(), wal.purged().unwrap()),
            (Some(6), Some(crate::LogId { index: 5, term: 1 }))
        );
        assert_eq!(store.read(.., u64::MAX).unwrap().first().map(|entry| entry.0), Some(6));
    }

    #[test]
    fn entries_at_or_below_the_purge_point_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            TestStore::new(Group::clone(&Wal::open(dir.path(), Options::default()).unwrap()), shape())
                .unwrap();
        store.purge(4).unwrap();
        assert_eq!(store.group.next_index().unwrap(), Some(5), "a purge past the end of an empty log");
        append(&store, 3..=6);
        assert_eq!(
            store.read(.., u64::MAX).unwrap(),
            vec![(5, "entry 5".to_string()), (6, "entry 6".to_string())]
        );
        append(&store, 1..=2);
        assert_eq!(store.last_entry().unwrap().map(|entry| entry.0), Some(6), "nothing appended");
    }

    #[test]
    fn another_adapters_metadata_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), Options::default()).unwrap();
        wal.set_metadata(b"raft-rs-0.7/1:".to_vec()).unwrap().wait().unwrap();
        assert!(matches!(TestStore::new(Group::clone(&wal), shape()), Err(Error::Codec { .. })));
        wal.set_metadata(b"test/1:".to_vec()).unwrap().wait().unwrap();
        let refused =
            TestStore::new(Group::clone(&wal), shape()).err().expect("an older encoding is refused");
        assert!(refused.to_string().contains(r#""test/1:", not "test/2:""#), "{refused}");
    }
}
