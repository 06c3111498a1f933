//! The public `Wal`: operations validate, encode their records into the commit queue and
//! change the in-memory state under one lock, then return a `Completion`; the committer makes
//! them durable in order.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::commit::{Callback, Chunk, Committer, Completion, Durability, Queue};
use crate::error::{Error, Result};
use crate::format::{
    self, BATCH_PAYLOAD_BYTES, BATCH_RECORD_BYTES, HARD_STATE_PAYLOAD_BYTES, Kind, RecordHead,
    SEGMENT_HEADER_BYTES, SegmentId, record_bytes_aligned,
};
use crate::fs::{Fs, LockGuard, StdFs};
use crate::housekeeper::{self, Chore};
use crate::index::Location;
use crate::options::{Options, SyncMode};
use crate::recovery::{self, LOCK_FILE};
use crate::rng::Rng;
use crate::segment::Segment;
use crate::state::LogState;
use crate::stats::Counters;
use crate::value::{Entry, HardState, INDEX_MAX, LogId, RecoveryReport, SnapshotMeta, Stats};

/// State shared by the API, the committer and the housekeeper.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub options: Options,
    pub core: Mutex<Core>,
    /// The committer waits here for queued work.
    pub work: Condvar,
    /// Appenders wait here for queue space or a spare segment.
    pub progress: Condvar,
    /// Completions wait here.
    pub durability: Durability,
    pub stats: Counters,
    pub chores: Sender<Chore>,
    /// The background work, when it runs as steps on the callers' threads (see `Fs::stepped`)
    /// rather than on threads of its own.
    pub steps: Option<Mutex<Steps>>,
}

/// A stepped `Wal`'s background work, and the generator that orders it.
pub(crate) struct Steps {
    committer: Committer,
    chores: Receiver<Chore>,
    rng: Rng,
}

/// The chance, in percent, that a stepped `Wal` runs a step after an operation is submitted, so
/// that batch boundaries fall at random places.
const STEP_AFTER_SUBMIT_PERCENT: u64 = 30;

/// Everything behind the lock.
pub(crate) struct Core {
    pub log: LogState,
    /// Every segment file holding records, the active one included; not the spares.
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
    pub active: Arc<Segment>,
    /// Where the next record in the active segment goes.
    pub active_offset: u64,
    /// The active segment has no checkpoint yet: the next record written must be one.
    pub needs_checkpoint: bool,
    pub spares: VecDeque<Arc<Segment>>,
    /// Why the last preallocation failed; the next append that needs a new segment fails with
    /// it (and the one after that asks for a new attempt).
    pub spare_error: Option<io::Error>,
    pub next_segment_id: SegmentId,
    pub queue: Queue,
    /// Chunks the committer is writing; still read from memory until written.
    pub inflight: Arc<Vec<Chunk>>,
    /// Every record before this (segment, offset) has been handed to the OS.
    pub written: (SegmentId, u64),
    pub next_seq: u64,
    pub poisoned: Option<Arc<io::Error>>,
    /// Submitters wake the committer once this many operations are queued.
    pub wake_at: u64,
    /// No new operations; the committer drains the queue and stops.
    pub closing: bool,
}

impl Core {
    fn check_usable(&self) -> Result<()> {
        if let Some(cause) = &self.poisoned {
            return Err(Error::Poisoned(cause.clone()));
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Bytes a new chunk in the active segment adds before the operation's own records.
    fn overhead(&self) -> usize {
        let new_chunk = self.queue.chunks.last().is_none_or(|chunk| chunk.segment.id != self.active.id);
        let checkpoint = if self.needs_checkpoint { self.checkpoint_bytes() } else { 0 };
        (if new_chunk { BATCH_RECORD_BYTES } else { 0 }) + checkpoint
    }

    fn checkpoint_bytes(&self) -> usize {
        record_bytes_aligned(self.log.checkpoint().encoded_bytes())
    }

    fn room(&self) -> u64 {
        self.active.bytes.saturating_sub(self.active_offset)
    }

    /// Makes the next spare the active segment.
    fn rotate(&mut self, spare: Arc<Segment>) {
        assert!(spare.id > self.active.id, "segments rotate in id order");
        self.segments.insert(spare.id, spare.clone());
        self.active = spare;
        self.active_offset = SEGMENT_HEADER_BYTES as u64;
        self.needs_checkpoint = true;
        let active = self.active.id;
        self.log.index.shrink_sealed(active);
    }

    /// Encodes one record into the queue, opening a chunk (batch record, then a checkpoint if
    /// the segment has none) when the queue has no chunk for the active segment yet.
    fn emit(&mut self, sync: SyncMode, head: RecordHead, payload: &[u8]) -> Location {
        if self.queue.chunks.last().is_none_or(|chunk| chunk.segment.id != self.active.id) {
            self.open_chunk(sync);
        }
        let segment = self.active.id;
        let offset = self.active_offset;
        let chunk = self.queue.chunks.last_mut().expect("a chunk is open");
        debug_assert_eq!(chunk.end(), offset);
        let before = chunk.buf.len();
        format::encode_record(&mut chunk.buf, self.active.seed, head, payload);
        let bytes = chunk.buf.len() - before;
        self.active_offset += bytes as u64;
        self.queue.bytes += bytes;
        assert!(self.active_offset <= self.active.bytes, "record past the end of its segment");
        Location { segment, offset: u32::try_from(offset).expect("segments are at most 4 GiB") }
    }

    fn open_chunk(&mut self, sync: SyncMode) {
        let start = self.active_offset;
        // In SyncMode::Data the committer syncs each batch before it writes the next, so all
        // bytes before this chunk are durable by the time this chunk reaches the disk.
        let durable_to = match sync {
            SyncMode::Data => start,
            SyncMode::None => SEGMENT_HEADER_BYTES as u64,
        };
        self.open_chunk_claiming(sync, durable_to);
    }

    /// Opens a chunk whose batch record says every byte before `durable_to` was durable before
    /// this chunk reached the disk.
    fn open_chunk_claiming(&mut self, sync: SyncMode, durable_to: u64) {
        let start = self.active_offset;
        assert!(durable_to <= start, "a batch claims only bytes before it");
        self.queue.chunks.push(Chunk { segment: self.active.clone(), start, buf: Vec::new() });
        let head = RecordHead { kind: Kind::Batch, flags: 0, group: 0, index: 0, term: 0 };
        let payload: [u8; BATCH_PAYLOAD_BYTES] = format::encode_u64s([durable_to]);
        self.emit(sync, head, &payload);
        if self.needs_checkpoint {
            self.needs_checkpoint = false;
            let checkpoint = self.log.checkpoint().encode();
            let head = RecordHead { kind: Kind::Checkpoint, flags: 0, group: 0, index: 0, term: 0 };
            self.emit(sync, head, &checkpoint);
        }
    }

    /// At a clean close, once operation `synced` and everything before it are durable: queues
    /// a batch record that claims the whole active segment up to it was durable, so that a
    /// later open reports damage before it as corruption, not a torn write. Only if nothing was
    /// submitted since `synced` (else the claim could outrun those operations' sync). The claim
    /// makes no operation durable: if its write fails, the log is as after an unclean stop.
    fn claim_clean_end(&mut self, sync: SyncMode, synced: u64) {
        if self.next_seq != synced + 1 || !self.queue.is_empty() || self.overhead() as u64 > self.room() {
            return;
        }
        let end = self.active_offset;
        self.open_chunk_claiming(sync, end);
        self.queue.force_sync = true;
        self.seal_op(None);
    }

    /// Ends an operation: gives it the next sequence number.
    fn seal_op(&mut self, callback: Option<Callback>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.last_seq = seq;
        self.queue.ops += 1;
        self.queue.submitted_by(std::thread::current().id());
        self.queue.callbacks.extend(callback);
        seq
    }

    /// After a purge or snapshot: segments below the oldest one still holding an entry can go
    /// once this batch is durable. Forces a sync so deletion never runs ahead of the record.
    fn schedule_deletion(&mut self) {
        let below = self.log.index.oldest_segment().unwrap_or(self.active.id).min(self.active.id);
        self.queue.delete_below = Some(self.queue.delete_below.map_or(below, |earlier| earlier.max(below)));
        self.queue.force_sync = true;
    }

    /// Reads entry `index`, located at `location`: from the commit queue while it is not yet
    /// written, otherwise returns the segment to read it from outside the lock.
    fn source(&self, index: u64, location: Location) -> Result<Source> {
        let segment = self.segments.get(&location.segment).expect("indexed segments exist");
        let offset = u64::from(location.offset);
        if (location.segment, offset) < self.written {
            return Ok(Source::File(segment.clone(), offset));
        }
        let bytes = self
            .inflight
            .iter()
            .chain(&self.queue.chunks)
            .find_map(|chunk| chunk.bytes_at(location.segment, offset))
            .expect("an unwritten record is queued or in flight");
        segment.decode_entry(bytes, offset, index).map(Source::Read)
    }
}

/// The most bytes between the first and last record `entries` reads with one `pread`.
const RUN_BYTES: u64 = 1 << 20;

enum Source {
    File(Arc<Segment>, u64),
    Read(Entry),
}

impl Shared {
    /// Locks the core once it can take an operation of `bytes` bytes: the queue has space and
    /// the active segment has room (rotating to a spare if needed).
    fn lock_for(&self, bytes: usize) -> Result<MutexGuard<'_, Core>> {
        let mut stall = Stall { counters: &self.stats, since: None };
        let mut core = self.core.lock();
        loop {
            core.check_usable()?;
            if core.queue.bytes > 0 && core.queue.bytes + bytes > self.options.batch_bytes_max {
                // The committer may be holding the batch back for more operations; there is no
                // room for them.
                self.work.notify_one();
                self.wait_progress(&mut core);
                continue;
            }
            if (bytes + core.overhead()) as u64 <= core.room() {
                return Ok(core);
            }
            let fresh = BATCH_RECORD_BYTES + core.checkpoint_bytes() + bytes;
            if fresh as u64 > self.options.segment_capacity() {
                return Err(Error::TooLarge {
                    what: "operation with its segment checkpoint",
                    bytes: fresh as u64,
                    limit: self.options.segment_capacity(),
                });
            }
            if let Some(spare) = core.spares.pop_front() {
                core.rotate(spare);
                let _ = self.chores.send(Chore::Replenish);
                continue;
            }
            // An error from before this call is stale (space may be back): ask again, and fail
            // only with what the attempt made while this call waited says.
            if let Some(error) = core.spare_error.take()
                && stall.since.is_some()
            {
                return Err(Error::Io(error));
            }
            let _ = self.chores.send(Chore::Replenish);
            stall.since.get_or_insert_with(Instant::now);
            self.wait_progress(&mut core);
        }
    }

    pub fn is_stepped(&self) -> bool {
        self.steps.is_some()
    }

    /// Runs one piece of background work of a stepped `Wal`, a batch or a chore, chosen by its
    /// generator; false if there was none (or the `Wal` is not stepped).
    pub fn step(&self) -> bool {
        let Some(steps) = &self.steps else { return false };
        let mut steps = steps.lock();
        let commit_first = steps.rng.chance(50);
        for commit in [commit_first, !commit_first] {
            if commit {
                if let Some(batch) = steps.committer.take(self, false) {
                    steps.committer.commit(self, batch);
                    return true;
                }
            } else if let Ok(chore) = steps.chores.try_recv() {
                housekeeper::perform(self, chore);
                return true;
            }
        }
        false
    }

    /// Steps until `done` holds or no work is left.
    pub fn step_until(&self, done: impl Fn() -> bool) {
        while !done() && self.step() {}
    }

    /// Waits for the committer or the housekeeper to make progress; a stepped `Wal` makes it
    /// itself.
    fn wait_progress(&self, core: &mut MutexGuard<'_, Core>) {
        if self.is_stepped() {
            MutexGuard::unlocked(core, || {
                self.step();
            });
        } else {
            self.progress.wait(core);
        }
    }

    /// Ends the operation `core` holds and wakes the committer if it waits for this many.
    fn submit(
        &self,
        shared: &Arc<Shared>,
        mut core: MutexGuard<'_, Core>,
        callback: Option<Callback>,
    ) -> Completion {
        let seq = core.seal_op(callback);
        let wake = core.queue.ops >= core.wake_at;
        drop(core);
        if wake {
            self.work.notify_one();
        }
        if let Some(steps) = &self.steps
            && steps.lock().rng.chance(STEP_AFTER_SUBMIT_PERCENT)
        {
            self.step();
        }
        Completion::new(shared.clone(), seq)
    }
}

/// Counts one wait for a preallocated segment, however many wake-ups it took, when dropped.
struct Stall<'a> {
    counters: &'a Counters,
    since: Option<Instant>,
}

impl Drop for Stall<'_> {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            self.counters.waited_for_segment(since.elapsed());
        }
    }
}

/// A write-ahead log for one Raft node's log. Cheap to clone; all clones share one log.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` once closed.
    running: Mutex<Option<Running>>,
    report: RecoveryReport,
}

/// What an open `Wal` holds until it is closed.
struct Running {
    threads: Vec<JoinHandle<()>>,
    _lock: Box<dyn LockGuard>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = stop(&self.shared, &self.running);
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Wal>();
};

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.inner.shared.dir).finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens the log in `dir`, creating the directory if needed, and recovers it: every record
    /// is verified, a torn tail of the newest segment is cut durably, and the state is rebuilt.
    ///
    /// # Errors
    /// `Error::Locked` if another `Wal` has the directory open; `Error::ForeignFile` if it holds
    /// files raftwal did not write; `Error::Corruption` (naming file and offset) for damage that
    /// is not a torn tail, unless `options.recovery` says otherwise; `Error::Io` otherwise.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Wal> {
        Wal::open_with_fs(Arc::new(StdFs), dir, options)
    }

    /// `open` on another file system, such as a fault-injecting one.
    ///
    /// # Errors
    /// As `open`.
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: Options) -> Result<Wal> {
        let started = Instant::now();
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir, options.dir_mode())?;
        // The directory's own name must be durable before anything in it is relied on.
        if let Some(parent) = dir.parent() {
            fs.sync_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })?;
        }
        let lock = fs.lock(&dir.join(LOCK_FILE), options.file_mode).map_err(|error| match error.kind() {
            io::ErrorKind::WouldBlock => Error::Locked(dir.clone()),
            _ => Error::Io(error),
        })?;
        let recovered = recovery::recover(&*fs, &dir, &options)?;
        let mut next_segment_id = recovered.next_segment_id;
        let mut spares: VecDeque<Arc<Segment>> = recovered.spares.into_iter().map(Arc::new).collect();
        let (active, active_offset, needs_checkpoint) = match recovered.active {
            Some(active) => (Arc::new(active.segment), active.offset, active.needs_checkpoint),
            None => {
                let segment = match spares.pop_front() {
                    Some(spare) => spare,
                    None => {
                        let segment = Segment::create(
                            &*fs,
                            &dir,
                            next_segment_id,
                            options.segment_bytes,
                            options.file_mode,
                        )?;
                        next_segment_id = next_segment_id.next();
                        Arc::new(segment)
                    }
                };
                (segment, SEGMENT_HEADER_BYTES as u64, true)
            }
        };
        let mut segments: BTreeMap<SegmentId, Arc<Segment>> =
            recovered.sealed.into_iter().map(|segment| (segment.id, Arc::new(segment))).collect();
        segments.insert(active.id, active.clone());
        let (chores, chore_queue) = crossbeam_channel::unbounded();
        let steps = fs.stepped().map(|seed| {
            let committer = Committer::new(active.clone());
            Mutex::new(Steps { committer, chores: chore_queue.clone(), rng: Rng::new(seed) })
        });
        let stats = Counters::new(&dir);
        let shared = Arc::new(Shared {
            dir,
            fs,
            options,
            core: Mutex::new(Core {
                log: recovered.log,
                segments,
                written: (active.id, active_offset),
                active: active.clone(),
                active_offset,
                needs_checkpoint,
                spares,
                spare_error: None,
                next_segment_id,
                queue: Queue::default(),
                inflight: Arc::default(),
                next_seq: 1,
                poisoned: None,
                wake_at: 1,
                closing: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            durability: Durability::default(),
            stats,
            chores,
            steps,
        });
        let mut threads = Vec::new();
        if !shared.is_stepped() {
            let committer = Committer::new(active);
            let for_committer = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("raftwal-commit".into())
                    .spawn(move || committer.run(&for_committer))?,
            );
            let for_keeper = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("raftwal-housekeeper".into())
                    .spawn(move || housekeeper::run(&for_keeper, &chore_queue))?,
            );
        }
        let _ = shared.chores.send(Chore::Replenish);
        shared.stats.opened(started.elapsed());
        Ok(Wal {
            inner: Arc::new(Inner {
                shared,
                running: Mutex::new(Some(Running { threads, _lock: lock })),
                report: recovered.report,
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Appends entries, which must continue the log (the first one's index is the log's next
    /// index; on a fresh log, any index) and be contiguous. They are readable when this
    /// returns; the completion resolves once they are durable.
    ///
    /// # Errors
    /// `EmptyBatch`, `NotContiguous`, `TooLarge` (more than `batch_bytes_max`), `Poisoned`,
    /// `Closed`, or `Io` if a new segment could not be preallocated (disk full). On error
    /// nothing was appended.
    pub fn append(&self, entries: &[Entry]) -> Result<Completion> {
        self.append_inner(entries, None)
    }

    /// Like `append`, but calls `callback` from the committer thread once the entries are
    /// durable (or failed). Callbacks run in submission order, and before any `Completion` of
    /// the same or a later operation resolves. They hold up the next batch, so
    /// they must be short, and must not wait on this `Wal` (a `Completion`, or an append that
    /// waits for queue space), which would deadlock: hand the result to a channel instead.
    /// If `append_with` itself returns an error, the callback is dropped uncalled.
    ///
    /// # Errors
    /// As `append`.
    pub fn append_with(
        &self,
        entries: &[Entry],
        callback: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.append_inner(entries, Some(Box::new(callback))).map(drop)
    }

    fn append_inner(&self, entries: &[Entry], callback: Option<Callback>) -> Result<Completion> {
        let first = entries.first().ok_or(Error::EmptyBatch)?;
        for (offset, entry) in entries.iter().enumerate() {
            let expected = first
                .index
                .checked_add(offset as u64)
                .ok_or(Error::IndexTooLarge { index: first.index, max: INDEX_MAX })?;
            if entry.index != expected {
                return Err(Error::NotContiguous { expected, got: entry.index });
            }
        }
        let last = entries.last().expect("not empty").index;
        let bytes: usize = entries.iter().map(|entry| record_bytes_aligned(entry.data.len())).sum();
        let limit = self.shared().options.batch_bytes_max;
        if bytes > limit {
            return Err(Error::TooLarge { what: "append", bytes: bytes as u64, limit: limit as u64 });
        }
        let shared = self.shared();
        let sync = shared.options.sync;
        let mut core = shared.lock_for(bytes)?;
        core.log.check_append(first.index, last)?;
        for entry in entries {
            let head =
                RecordHead { kind: Kind::Entry, flags: 0, group: 0, index: entry.index, term: entry.term };
            let location = core.emit(sync, head, &entry.data);
            core.log.apply_entry(entry.index, entry.term, location);
        }
        let done = shared.submit(shared, core, callback);
        shared.stats.appended(entries.len());
        Ok(done)
    }

    /// Drops entries `[from, ..)`, as Raft does on a conflict. Truncating at or past the end
    /// drops nothing.
    ///
    /// # Errors
    /// `Compacted` if `from` is below the first index; `Poisoned`, `Closed`.
    pub fn truncate(&self, from: u64) -> Result<Completion> {
        let shared = self.shared();
        let mut core = shared.lock_for(record_bytes_aligned(0))?;
        core.log.check_truncate(from)?;
        if core.log.index.contains(from) {
            let head = RecordHead { kind: Kind::Truncate, flags: 0, group: 0, index: from, term: 0 };
            core.emit(shared.options.sync, head, &[]);
            core.log.apply_truncate(from);
        }
        Ok(shared.submit(shared, core, None))
    }

    /// Drops entries `(.., upto]`, after a snapshot covers them. Segment files left with no
    /// live entry are deleted once the purge is durable. Purging below the first index drops
    /// nothing.
    ///
    /// # Errors
    /// `Unavailable` if `upto` is at or past the next index; `Poisoned`, `Closed`.
    pub fn purge(&self, upto: u64) -> Result<Completion> {
        let shared = self.shared();
        let mut core = shared.lock_for(record_bytes_aligned(0))?;
        if let Some(term) = core.log.check_purge(upto)? {
            let head = RecordHead { kind: Kind::Purge, flags: 0, group: 0, index: upto, term };
            core.emit(shared.options.sync, head, &[]);
            core.log.apply_purge(upto, term);
            core.schedule_deletion();
        }
        Ok(shared.submit(shared, core, None))
    }

    /// Saves Raft's hard state, ordered after every operation submitted before it.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`.
    pub fn set_hard_state(&self, hard_state: HardState) -> Result<Completion> {
        let shared = self.shared();
        let mut core = shared.lock_for(record_bytes_aligned(HARD_STATE_PAYLOAD_BYTES))?;
        let HardState { term, vote, commit } = hard_state;
        let payload: [u8; HARD_STATE_PAYLOAD_BYTES] = format::encode_u64s([term, vote, commit]);
        let head = RecordHead { kind: Kind::HardState, flags: 0, group: 0, index: 0, term: 0 };
        core.emit(shared.options.sync, head, &payload);
        core.log.hard_state = Some(hard_state);
        Ok(shared.submit(shared, core, None))
    }

    /// Saves `metadata`, the caller's opaque bytes (a Raft library's vote, commit point or
    /// cluster configuration), ordered after every operation submitted before it. The latest
    /// one replaces any earlier and is read back by `metadata`.
    ///
    /// # Errors
    /// `TooLarge` if `metadata` exceeds a quarter of a segment (it is repeated at the start of
    /// each one); `Poisoned`, `Closed`.
    pub fn set_metadata(&self, metadata: Vec<u8>) -> Result<Completion> {
        let shared = self.shared();
        let limit = shared.options.segment_capacity() / 4;
        if metadata.len() as u64 > limit {
            return Err(Error::TooLarge { what: "metadata", bytes: metadata.len() as u64, limit });
        }
        let mut core = shared.lock_for(record_bytes_aligned(metadata.len()))?;
        let head = RecordHead { kind: Kind::Metadata, flags: 0, group: 0, index: 0, term: 0 };
        core.emit(shared.options.sync, head, &metadata);
        core.log.metadata = Some(metadata);
        Ok(shared.submit(shared, core, None))
    }

    /// Records a snapshot covering the log up to `meta.index`. If the log holds that entry
    /// with `meta.term`, the entries after it stay; otherwise the whole log is discarded and
    /// the next append must be `meta.index + 1` (Raft's InstallSnapshot rule).
    ///
    /// # Errors
    /// `StaleSnapshot` if the log is already compacted past `meta.index`; `TooLarge` if
    /// `meta.data` exceeds a quarter of a segment (it is repeated at the start of each one);
    /// `Poisoned`, `Closed`.
    pub fn install_snapshot(&self, meta: SnapshotMeta) -> Result<Completion> {
        let shared = self.shared();
        let limit = shared.options.segment_capacity() / 4;
        if meta.data.len() as u64 > limit {
            return Err(Error::TooLarge { what: "snapshot meta", bytes: meta.data.len() as u64, limit });
        }
        let mut core = shared.lock_for(record_bytes_aligned(meta.data.len()))?;
        core.log.check_snapshot(&meta)?;
        let keep_log = core.log.snapshot_keeps_log(&meta);
        let flags = if keep_log { format::SNAPSHOT_KEEPS_LOG } else { 0 };
        let head = RecordHead { kind: Kind::Snapshot, flags, group: 0, index: meta.index, term: meta.term };
        core.emit(shared.options.sync, head, &meta.data);
        core.log.apply_snapshot(meta, keep_log);
        core.schedule_deletion();
        Ok(shared.submit(shared, core, None))
    }

    /// Makes everything submitted so far durable, in any sync mode.
    ///
    /// # Errors
    /// `Poisoned` if the fsync failed; `Closed`.
    pub fn sync(&self) -> Result<()> {
        let shared = self.shared();
        let mut core = shared.core.lock();
        core.check_usable()?;
        core.queue.force_sync = true;
        shared.submit(shared, core, None).wait()
    }

    /// Like `sync`, but returns at once and calls `callback` from the committer thread once
    /// everything submitted before is durable, with the same ordering as `append_with`. The
    /// place to learn that a hard state or metadata write is durable without blocking. In
    /// `SyncMode::Data` it adds no fdatasync of its own: the batches before it are synced.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`; then the callback is dropped uncalled.
    pub fn sync_with(&self, callback: impl FnOnce(Result<()>) + Send + 'static) -> Result<()> {
        let shared = self.shared();
        let mut core = shared.core.lock();
        core.check_usable()?;
        if shared.options.sync == SyncMode::None {
            core.queue.force_sync = true;
        }
        drop(shared.submit(shared, core, Some(Box::new(callback))));
        Ok(())
    }

    /// Makes everything durable, stops the background threads and releases the directory.
    /// Every clone of this `Wal` fails with `Closed` afterwards. Dropping the last clone
    /// closes too, but cannot report errors.
    ///
    /// # Errors
    /// The error of the final sync, if any.
    pub fn close(&self) -> Result<()> {
        stop(self.shared(), &self.inner.running)
    }

    /// Reads entries `[range.start, range.end)`, stopping before the total payload would exceed
    /// `max_bytes`; at least one entry is returned if the range is not empty.
    ///
    /// # Errors
    /// `Compacted` or `Unavailable` if the range is not all in the log; `Corruption` if a record
    /// fails its checksum; `Poisoned`, `Closed`.
    pub fn entries(&self, range: Range<u64>, max_bytes: u64) -> Result<Vec<Entry>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let sources = {
            let core = self.shared().core.lock();
            core.check_usable()?;
            for bound in [range.start, range.end - 1] {
                if !core.log.index.contains(bound) {
                    return Err(core.log.out_of_range(bound));
                }
            }
            range
                .clone()
                .map(|index| {
                    // Recovery fails on missing entries, so this is for an index bug's sake.
                    let missing = Error::MissingEntries { first: index, last: index };
                    core.source(index, core.log.index.locate(index).ok_or(missing)?)
                })
                .collect::<Result<Vec<Source>>>()?
        };
        let mut entries = Vec::with_capacity(sources.len());
        let mut total = 0u64;
        let mut sources = range.zip(sources).peekable();
        while let Some((index, source)) = sources.next() {
            let read = match source {
                Source::File(segment, offset) => {
                    // Consecutive records of one segment are read together, up to RUN_BYTES apart.
                    let mut offsets = vec![offset];
                    while let Some((_, Source::File(next, at))) = sources.peek()
                        && Arc::ptr_eq(next, &segment)
                        && *at > offset
                        && *at - offset <= RUN_BYTES
                    {
                        offsets.push(*at);
                        sources.next();
                    }
                    segment.read_entries(index, &offsets)?
                }
                Source::Read(entry) => vec![entry],
            };
            for entry in read {
                total += entry.data.len() as u64;
                if total > max_bytes && !entries.is_empty() {
                    return Ok(entries);
                }
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Reads entry `index`.
    ///
    /// # Errors
    /// As `entries`.
    pub fn entry(&self, index: u64) -> Result<Entry> {
        let mut entries = self.entries(index..index.saturating_add(1), u64::MAX)?;
        match entries.pop() {
            Some(entry) => Ok(entry),
            // Only `u64::MAX` makes an empty range: never an entry's index.
            None => Err(self.shared().core.lock().log.out_of_range(index)),
        }
    }

    /// The term of entry `index`; also answers for the last compacted entry (the purge point or
    /// snapshot), as Raft's log matching needs.
    ///
    /// # Errors
    /// `Compacted`, `Unavailable`, `Poisoned`, `Closed`.
    pub fn term(&self, index: u64) -> Result<u64> {
        self.read(|log| log.term(index))?
    }

    /// The index of the first entry; `None` if the log holds no entries.
    ///
    /// # Errors
    /// `Poisoned`: the in-memory state may hold changes that never became durable; `Closed`.
    /// The same for every getter below.
    pub fn first_index(&self) -> Result<Option<u64>> {
        self.read(|log| (!log.index.is_empty()).then(|| log.index.first()))
    }

    /// The index of the last entry; `None` if the log holds no entries.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn last_index(&self) -> Result<Option<u64>> {
        self.read(|log| (!log.index.is_empty()).then(|| log.index.next() - 1))
    }

    /// The index the next append must start at; `None` on a fresh log, which accepts any.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn next_index(&self) -> Result<Option<u64>> {
        self.read(LogState::next_index)
    }

    /// The last compacted entry `(index, term)`, by purge or snapshot.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn purged(&self) -> Result<Option<LogId>> {
        self.read(|log| log.purged)
    }

    /// The hard state last saved by `set_hard_state`.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn hard_state(&self) -> Result<Option<HardState>> {
        self.read(|log| log.hard_state)
    }

    /// The snapshot meta last saved by `install_snapshot`.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>> {
        self.read(|log| log.snapshot.clone())
    }

    /// The metadata last saved by `set_metadata`.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn metadata(&self) -> Result<Option<Vec<u8>>> {
        self.read(|log| log.metadata.clone())
    }

    /// Reads the log state, unless the `Wal` is poisoned (its state may then hold changes that
    /// never reached the disk) or closed.
    fn read<T>(&self, read: impl FnOnce(&LogState) -> T) -> Result<T> {
        let core = self.shared().core.lock();
        core.check_usable()?;
        Ok(read(&core.log))
    }

    /// On a stepped file system (see `Fs::stepped`, as `SimFs` is), runs the background work
    /// (queued batches, preallocation, deletion) until none is left: a quiet point for a test to
    /// plan a fault from. Does nothing when the `Wal` has background threads.
    pub fn quiesce(&self) {
        self.shared().step_until(|| false);
    }

    /// What `open` found and repaired.
    #[must_use]
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Counters since open, and the log's size now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let core = shared.core.lock();
        let index = &core.log.index;
        Stats {
            segments: core.segments.len() as u64,
            index_entries: index.next() - index.first(),
            index_bytes: index.heap_bytes() as u64,
            ..shared.stats.snapshot()
        }
    }
}

/// Syncs, then stops the committer (after it drains the queue) and the housekeeper.
fn stop(shared: &Arc<Shared>, running: &Mutex<Option<Running>>) -> Result<()> {
    let mut running = running.lock();
    let Some(Running { threads, .. }) = running.as_mut() else {
        return Err(Error::Closed);
    };
    let synced = {
        let mut core = shared.core.lock();
        match core.check_usable() {
            Ok(()) => {
                core.queue.force_sync = true;
                Ok(shared.submit(shared, core, None))
            }
            Err(error) => Err(error),
        }
    }
    .and_then(|done| {
        let seq = done.seq();
        done.wait().map(|()| seq)
    });
    {
        let mut core = shared.core.lock();
        if let Ok(seq) = synced {
            core.claim_clean_end(shared.options.sync, seq);
        }
        core.closing = true;
        shared.work.notify_all();
        shared.progress.notify_all();
    }
    let _ = shared.chores.send(Chore::Stop);
    if shared.is_stepped() {
        // What the threads would do before they stop: commit what is queued, do the chores.
        shared.step_until(|| false);
        shared.durability.end();
    }
    for thread in threads.drain(..) {
        thread.join().expect("raftwal threads do not panic");
    }
    // Releases the directory lock.
    *running = None;
    synced.map(drop)
}
