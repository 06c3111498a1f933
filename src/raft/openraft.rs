//! The log store of [openraft](https://docs.rs/openraft/0.10.0-alpha.37) 0.10 (feature
//! `openraft`): [`LogStore`] implements `RaftLogStorage`, [`LogReader`] implements
//! `RaftLogReader`.
//!
//! Entries are encoded with postcard, log id included, into the payload of raftwal entries of
//! the same index; the engine's term field is 0, since openraft's leader ids are generic. The
//! vote, the committed log id and the last purged log id travel together in the `Wal`'s
//! metadata, ordered with the entries.
//!
//! - `append` hands the entries to the group commit and returns at once; the `IOFlushed`
//!   callback runs on raftwal's committer thread after the fdatasync that covers them, in
//!   submission order.
//! - `save_vote` returns once the vote, and everything submitted before it, is durable.
//! - `save_committed` rides along with the next write and does not wait.
//! - `purge` first records the purged log id, then drops the entries; `open` finishes a purge
//!   that a crash cut between the two. A purge past the last entry empties the log, and the next
//!   append must follow the purged id.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftLogReader, RaftTypeConfig};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Entry, Error, Options, SnapshotMeta, Wal};

/// Identifies this adapter's metadata, and its layout: postcard of `Saved` follows.
const METADATA_TAG: &[u8] = b"openraft-0.10/1:";

/// The most payload `limited_get_log_entries` returns at once (at least one entry).
const READ_BYTES_MAX: u64 = 4 << 20;

/// What openraft asks to keep besides the entries.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Saved<C: RaftTypeConfig>
where
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    purged: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> Clone for Saved<C>
where
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    fn clone(&self) -> Self {
        Saved { vote: self.vote.clone(), committed: self.committed.clone(), purged: self.purged.clone() }
    }
}

struct Shared<C: RaftTypeConfig>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    wal: Wal,
    /// The latest submitted metadata: what the log will hold once pending writes are durable.
    saved: Mutex<Saved<C>>,
}

/// openraft's `RaftLogStorage` over a [`Wal`]. Cloning gives another handle to the same log.
pub struct LogStore<C: RaftTypeConfig>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    shared: Arc<Shared<C>>,
}

/// A cheap handle that reads entries and the vote concurrently with appends.
pub struct LogReader<C: RaftTypeConfig>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    shared: Arc<Shared<C>>,
    _config: PhantomData<C>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    fn clone(&self) -> Self {
        LogStore { shared: self.shared.clone() }
    }
}

impl<C: RaftTypeConfig> Clone for LogReader<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    fn clone(&self) -> Self {
        LogReader { shared: self.shared.clone(), _config: PhantomData }
    }
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the log in `dir`.
    ///
    /// # Errors
    /// As [`Wal::open`], and `Corruption`-like `Io` errors if the metadata in the log is not
    /// this adapter's.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<LogStore<C>, Error> {
        LogStore::from_wal(Wal::open(dir, options)?)
    }

    /// Takes over an opened `Wal`, which must hold an openraft log or nothing.
    ///
    /// # Errors
    /// `Io` (`InvalidData`) if the `Wal` holds another adapter's metadata; errors of the
    /// purge that a crash interrupted, which this finishes.
    pub fn from_wal(wal: Wal) -> Result<LogStore<C>, Error> {
        let saved = match wal.metadata() {
            Some(bytes) => decode_saved::<C>(&bytes)?,
            None => Saved { vote: None, committed: None, purged: None },
        };
        let store = LogStore { shared: Arc::new(Shared { wal, saved: Mutex::new(saved) }) };
        let purged = store.shared.saved.lock().purged.clone();
        if let Some(purged) = purged {
            let interrupted = store.shared.wal.first_index().is_some_and(|first| first <= purged.index());
            if interrupted {
                store.drop_upto(purged.index())?.wait()?;
            }
        }
        Ok(store)
    }

    /// The underlying log, for stats and inspection.
    pub fn wal(&self) -> &Wal {
        &self.shared.wal
    }

    /// Submits the current metadata, ordered after everything submitted before.
    fn submit_saved(&self, change: impl FnOnce(&mut Saved<C>)) -> Result<crate::Completion, Error> {
        let mut saved = self.shared.saved.lock();
        change(&mut saved);
        let mut bytes = METADATA_TAG.to_vec();
        bytes.extend(postcard::to_stdvec(&*saved).map_err(codec_error)?);
        self.shared.wal.set_metadata(bytes)
    }

    /// Drops entries `(.., upto]`; past the end, empties the log so that it continues after
    /// `upto`.
    fn drop_upto(&self, upto: u64) -> Result<crate::Completion, Error> {
        let wal = &self.shared.wal;
        match wal.next_index() {
            Some(next) if upto < next => wal.purge(upto),
            _ => wal.install_snapshot(SnapshotMeta { index: upto, term: 0, data: Vec::new() }),
        }
    }
}

impl<C: RaftTypeConfig> LogReader<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    /// Entries in `range` that the log holds, up to `max_bytes` of payload (at least one).
    fn read(&self, range: impl RangeBounds<u64>, max_bytes: u64) -> io::Result<Vec<C::Entry>> {
        let wal = &self.shared.wal;
        let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) else {
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
        let entries = wal.entries(start..end, max_bytes).map_err(io_error)?;
        entries.iter().map(|entry| decode_entry::<C>(entry).map_err(io_error)).collect()
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
        self.read(range, u64::MAX)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        Ok(self.shared.saved.lock().vote.clone())
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<C::Entry>> {
        self.read(start..end, READ_BYTES_MAX)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<C::Entry>> {
        self.get_log_reader().await.try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        Ok(self.shared.saved.lock().vote.clone())
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
        let last_purged_log_id = self.shared.saved.lock().purged.clone();
        let last_entry = match self.shared.wal.last_index() {
            Some(last) => Some(self.shared.wal.entry(last).map_err(io_error)?),
            None => None,
        };
        let last_log_id = match last_entry {
            Some(entry) => Some(decode_entry::<C>(&entry).map_err(io_error)?.log_id()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { shared: self.shared.clone(), _config: PhantomData }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        let vote = vote.clone();
        self.submit_saved(|saved| saved.vote = Some(vote)).and_then(|done| done.wait()).map_err(io_error)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        self.submit_saved(|saved| saved.committed = committed).map(drop).map_err(io_error)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        Ok(self.shared.saved.lock().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded =
            entries.into_iter().map(|entry| encode_entry::<C>(&entry)).collect::<Result<Vec<_>, _>>();
        let encoded = encoded.map_err(io_error)?;
        if encoded.is_empty() {
            // Nothing to write, but the callback must still follow everything before it.
            let done = self.shared.wal.sync().map_err(io_error);
            callback.io_completed(done);
            return Ok(());
        }
        self.shared
            .wal
            .append_with(&encoded, move |result| callback.io_completed(result.map_err(io_error)))
            .map_err(io_error)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        let wal = &self.shared.wal;
        let from = wal.first_index().map_or(from, |first| from.max(first));
        wal.truncate(from).map(drop).map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> io::Result<()> {
        let upto = log_id.index();
        let already = self.shared.saved.lock().purged.as_ref().is_some_and(|purged| purged.index() >= upto);
        if already {
            return Ok(());
        }
        self.submit_saved(|saved| saved.purged = Some(log_id)).map(drop).map_err(io_error)?;
        self.drop_upto(upto).map(drop).map_err(io_error)
    }
}

fn encode_entry<C: RaftTypeConfig>(entry: &C::Entry) -> Result<Entry, Error>
where
    C::Entry: Serialize + DeserializeOwned,
{
    let data = postcard::to_stdvec(entry).map_err(codec_error)?;
    Ok(Entry { index: entry.index(), term: 0, data })
}

fn decode_entry<C: RaftTypeConfig>(entry: &Entry) -> Result<C::Entry, Error>
where
    C::Entry: Serialize + DeserializeOwned,
{
    let decoded: C::Entry = postcard::from_bytes(&entry.data).map_err(codec_error)?;
    if decoded.index() != entry.index {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("entry {} decodes to an openraft entry with index {}", entry.index, decoded.index()),
        )));
    }
    Ok(decoded)
}

fn decode_saved<C: RaftTypeConfig>(bytes: &[u8]) -> Result<Saved<C>, Error>
where
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    let body = bytes.strip_prefix(METADATA_TAG).ok_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "the log's metadata is not openraft 0.10 adapter's",
        ))
    })?;
    postcard::from_bytes(body).map_err(codec_error)
}

fn codec_error(error: postcard::Error) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidData, error))
}

/// openraft takes `io::Error`; raftwal's own kinds keep their message.
fn io_error(error: Error) -> io::Error {
    match error {
        Error::Io(error) => error,
        other => io::Error::other(other),
    }
}
