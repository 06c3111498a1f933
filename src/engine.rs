//! The engine behind the façade: the state every thread shares (`Shared`), the state behind its
//! lock (`Core`: the groups, the segments, the commit queue), how an operation makes room and
//! becomes records, and `Completion`. The committer (`commit`) and the housekeeper
//! (`housekeeper`) work on it; the façade (`wal`) drives them. Imports point one way: this module
//! uses neither of them, and reaches a stepped `Wal`'s background work through `Background`.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::format::{
    self, BATCH_PAYLOAD_BYTES, BATCH_RECORD_BYTES, HARD_STATE_PAYLOAD_BYTES, Kind, RecordHead,
    SEGMENT_HEADER_BYTES, SegmentId, record_bytes_aligned,
};
use crate::fs::Fs;
use crate::groups::Groups;
use crate::index::Location;
use crate::options::{Options, SyncMode};
use crate::queue::{Callback, Chunk, Durability, Queue};
use crate::segment::Segment;
use crate::stats::Counters;
use crate::value::{Entry, HardState};

/// Spare segments kept ready ahead of the active one.
pub const SPARES: usize = 1;

pub enum Chore {
    /// Make spares until `SPARES` are ready.
    Replenish,
    /// Zero the next spare in full.
    Zero,
    /// A durable purge left segments below this id with nothing live: delete them.
    DeleteBelow(SegmentId),
    /// The log holds more than `Options::relocate_after_segments` segments: copy the entries
    /// that keep the oldest ones to the active segment.
    Relocate,
    Stop,
}

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
    pub steps: Option<Mutex<Box<dyn Background>>>,
}

/// A stepped `Wal`'s background work (see `Fs::stepped`): the committer's batches and the
/// housekeeper's chores, run on the callers' threads in an order a seeded generator draws. The
/// façade (`wal`) implements it; the engine only calls it.
pub(crate) trait Background: Send {
    /// Runs one piece of background work; false if there was none.
    fn step(&mut self, shared: &Shared) -> bool;
    /// True with probability `percent` / 100, from the generator.
    fn chance(&mut self, percent: u64) -> bool;
}

/// The chance, in percent, that a stepped `Wal` runs a step after an operation is submitted, so
/// that batch boundaries fall at random places.
pub const STEP_AFTER_SUBMIT_PERCENT: u64 = 30;

/// Everything behind the lock.
pub(crate) struct Core {
    pub groups: Groups,
    /// Every segment file holding records, the active one included; not the spares.
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
    pub active: Arc<Segment>,
    /// Where the next record in the active segment goes.
    pub active_offset: u64,
    /// The active segment has no checkpoint yet: the next record written must be one.
    pub needs_checkpoint: bool,
    pub spares: VecDeque<Arc<Segment>>,
    /// Why the housekeeper's last attempt to make or zero a spare failed; the next append that
    /// needs a new segment fails with it (and the one after that asks for a new attempt).
    pub room_error: Option<io::Error>,
    /// The zeroed spare the active segment asks for (`Core::ask_ahead`) was asked for.
    pub spare_asked: bool,
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
    pub fn check_usable(&self) -> Result<()> {
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

    pub fn checkpoint_bytes(&self) -> usize {
        record_bytes_aligned(self.groups.checkpoint_bytes())
    }

    /// Room for records in the active segment: up to where it is zeroed (the whole segment but
    /// for a newest segment recovered with holes in it).
    fn room(&self) -> u64 {
        self.active.zeroed().saturating_sub(self.active_offset)
    }

    /// Asks the housekeeper for the spare zeroed in full, once records reach `end` of the active
    /// segment: at once in a segment of the full size (`segment_bytes`), since zeroing the
    /// spare takes about as long as filling the segment; only in its second half in a new log's
    /// small first segment, so that a log that never gets that far holds little disk. True if it
    /// asked.
    pub fn ask_ahead(&mut self, end: u64, segment_bytes: u64, chores: &Sender<Chore>) -> bool {
        let due = if self.active.bytes < segment_bytes { self.active.bytes / 2 } else { 0 };
        if self.spare_asked || end < due {
            return false;
        }
        self.spare_asked = true;
        let _ = chores.send(if self.spares.is_empty() { Chore::Replenish } else { Chore::Zero });
        true
    }

    /// Makes the next spare the active segment.
    fn rotate(&mut self, spare: Arc<Segment>) {
        assert!(spare.id > self.active.id, "segments rotate in id order");
        self.segments.insert(spare.id, spare.clone());
        self.active = spare;
        self.active_offset = SEGMENT_HEADER_BYTES as u64;
        self.needs_checkpoint = true;
        self.spare_asked = false;
        let active = self.active.id;
        self.groups.shrink_sealed(active);
    }

    /// Encodes one record into the queue, opening a chunk (batch record, then a checkpoint if
    /// the segment has none) when the queue has no chunk for the active segment yet.
    pub fn emit(&mut self, sync: SyncMode, head: RecordHead, payload: &[u8]) -> Location {
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
        assert!(self.active_offset <= self.active.zeroed(), "record past the zeroed part of its segment");
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
            let checkpoint = self.groups.encode_checkpoint();
            let head = RecordHead { kind: Kind::Checkpoint, flags: 0, group: 0, index: 0, term: 0 };
            self.emit(sync, head, &checkpoint);
        }
    }

    /// At a clean close, once operation `synced` and everything before it are durable: queues
    /// a batch record that claims the whole active segment up to it was durable, so that a
    /// later open reports damage before it as corruption, not a torn write. Only if nothing was
    /// submitted since `synced` (else the claim could outrun those operations' sync). The claim
    /// makes no operation durable: if its write fails, the log is as after an unclean stop.
    pub fn claim_clean_end(&mut self, sync: SyncMode, synced: u64) {
        if self.next_seq != synced + 1 || !self.queue.is_empty() || self.overhead() as u64 > self.room() {
            return;
        }
        let end = self.active_offset;
        self.open_chunk_claiming(sync, end);
        self.queue.force_sync = true;
        self.seal_op(None);
    }

    /// Ends an operation: gives it the next sequence number.
    pub fn seal_op(&mut self, callback: Option<Callback>) -> u64 {
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
    pub fn schedule_deletion(&mut self) {
        let below = self.groups.oldest_segment().unwrap_or(self.active.id).min(self.active.id);
        self.queue.delete_below = Some(self.queue.delete_below.map_or(below, |earlier| earlier.max(below)));
        self.queue.force_sync = true;
    }

    /// Reads entry `index`, located at `location`: from the commit queue while it is not yet
    /// written, otherwise returns the segment to read it from outside the lock.
    pub fn source(&self, index: u64, location: Location) -> Result<Source> {
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
    /// Queues and applies entries already checked to continue group `slot`'s log.
    pub fn append(&mut self, sync: SyncMode, slot: u32, entries: &[Entry]) {
        for entry in entries {
            let head =
                RecordHead { kind: Kind::Entry, flags: 0, group: slot, index: entry.index, term: entry.term };
            let location = self.emit(sync, head, &entry.data);
            self.groups.append(slot, |log| log.apply_entry(entry.index, entry.term, location));
        }
    }

    pub fn set_hard_state(&mut self, sync: SyncMode, slot: u32, hard_state: HardState) {
        let HardState { term, vote, commit } = hard_state;
        let payload: [u8; HARD_STATE_PAYLOAD_BYTES] = format::encode_u64s([term, vote, commit]);
        let head = RecordHead { kind: Kind::HardState, flags: 0, group: slot, index: 0, term: 0 };
        self.emit(sync, head, &payload);
        self.groups.change(slot, |log| log.hard_state = Some(hard_state));
    }

    pub fn set_metadata(&mut self, sync: SyncMode, slot: u32, metadata: Vec<u8>) {
        let head = RecordHead { kind: Kind::Metadata, flags: 0, group: slot, index: 0, term: 0 };
        self.emit(sync, head, &metadata);
        self.groups.change(slot, |log| log.metadata = Some(metadata.into_boxed_slice()));
    }

    /// Queues copies of group `slot`'s entries, checked to be where the index says, and points
    /// the index at the copies.
    pub fn relocate(&mut self, sync: SyncMode, slot: u32, entries: &[Entry]) {
        for entry in entries {
            let head = RecordHead {
                kind: Kind::Entry,
                flags: format::ENTRY_RELOCATED,
                group: slot,
                index: entry.index,
                term: entry.term,
            };
            let location = self.emit(sync, head, &entry.data);
            self.groups.change(slot, |log| log.index.relocate(entry.index, entry.term, location));
        }
    }
}

/// Refuses an operation that changes the checkpoint's bound (`Groups::checkpoint_bytes_max`)
/// from `before` to `after` bytes if it grows the bound past `checkpoint_bytes_limit`: every
/// segment starts with a checkpoint, and any operation must fit beside it. The bound covers
/// every number at its largest varint, so appends, hard states, purges, truncations and removals
/// never need this check; an operation that does not grow the bound always passes it.
pub fn check_checkpoint_bound(options: &Options, before: usize, after: usize) -> Result<()> {
    if after <= before {
        return Ok(());
    }
    let bytes = record_bytes_aligned(after) as u64;
    let limit = checkpoint_bytes_limit(options);
    if bytes > limit {
        return Err(Error::TooLarge { what: "checkpoint of all groups", bytes, limit });
    }
    Ok(())
}

/// The most bytes the checkpoint record's bound may reach: half a segment, so that every
/// operation that shrinks the checkpoint (or leaves its bound as it is) fits in a new segment
/// beside it.
pub fn checkpoint_bytes_limit(options: &Options) -> u64 {
    options.segment_capacity() / 2
}

/// The most bytes between the first and last record `entries` reads with one `pread`.
pub const RUN_BYTES: u64 = 1 << 20;

pub enum Source {
    File(Arc<Segment>, u64),
    Read(Entry),
}

impl Shared {
    /// Locks the core once it can take an operation of `bytes` bytes: the queue has space and
    /// the active segment has room (rotating to a spare if needed).
    pub fn lock_for(&self, bytes: usize) -> Result<MutexGuard<'_, Core>> {
        let mut stall = Stall { counters: &self.stats, since: None };
        let mut core = self.core.lock();
        loop {
            match self.make_room(&mut core, bytes, stall.since.is_some())? {
                Room::Ready => return Ok(core),
                Room::QueueFull => {}
                Room::Waiting => {
                    stall.since.get_or_insert_with(Instant::now);
                }
            }
            self.wait_progress(&mut core);
        }
    }

    /// `lock_for` for background work, which must not wait (the housekeeper would wait for
    /// itself): `None` unless the operation fits now.
    pub fn try_lock_for(&self, bytes: usize) -> Result<Option<MutexGuard<'_, Core>>> {
        let mut core = self.core.lock();
        Ok(match self.make_room(&mut core, bytes, false)? {
            Room::Ready => Some(core),
            Room::QueueFull | Room::Waiting => None,
        })
    }

    /// Makes room in the active segment for an operation of `bytes` bytes, rotating to a spare
    /// if one is ready. `waited`: this operation has waited for a spare already, so the error
    /// of a preallocation made meanwhile is its answer.
    fn make_room(&self, core: &mut Core, bytes: usize, waited: bool) -> Result<Room> {
        loop {
            core.check_usable()?;
            if core.queue.bytes > 0 && core.queue.bytes + bytes > self.options.batch_bytes_max {
                // The committer may be holding the batch back for more operations; there is no
                // room for them.
                self.work.notify_one();
                return Ok(Room::QueueFull);
            }
            if (bytes + core.overhead()) as u64 <= core.room() {
                let end = core.active_offset + (bytes + core.overhead()) as u64;
                core.ask_ahead(end, self.options.segment_bytes, &self.chores);
                return Ok(Room::Ready);
            }
            let fresh = BATCH_RECORD_BYTES + core.checkpoint_bytes() + bytes;
            if fresh as u64 > self.options.segment_capacity() {
                return Err(Error::TooLarge {
                    what: "operation with its segment checkpoint",
                    bytes: fresh as u64,
                    limit: self.options.segment_capacity(),
                });
            }
            if core.spares.front().is_some_and(|spare| spare.is_zeroed()) {
                let spare = core.spares.pop_front().expect("a spare is ready");
                // The next operation asks for the next spare (`Core::ask_ahead`).
                core.rotate(spare);
                if core.segments.len() > self.options.relocate_after_segments {
                    let _ = self.chores.send(Chore::Relocate);
                }
                continue;
            }
            // An error from before this call is stale (space may be back): ask again, and fail
            // only with what the attempt made while this call waited says.
            if let Some(error) = core.room_error.take()
                && waited
            {
                return Err(Error::Io(error));
            }
            let _ = self.chores.send(if core.spares.is_empty() { Chore::Replenish } else { Chore::Zero });
            return Ok(Room::Waiting);
        }
    }

    pub fn is_stepped(&self) -> bool {
        self.steps.is_some()
    }

    /// Runs one piece of background work of a stepped `Wal`, a batch or a chore, chosen by its
    /// generator; false if there was none (or the `Wal` is not stepped).
    pub fn step(&self) -> bool {
        let Some(steps) = &self.steps else { return false };
        steps.lock().step(self)
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

    /// Ends an operation of the `Wal`'s own (no one waits for it) and wakes the committer if it
    /// waits for this many.
    pub fn submit_detached(&self, mut core: MutexGuard<'_, Core>) {
        core.seal_op(None);
        let wake = core.queue.ops >= core.wake_at;
        drop(core);
        if wake {
            self.work.notify_one();
        }
    }

    /// Ends the operation `core` holds and wakes the committer if it waits for this many.
    pub fn submit(
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
            && steps.lock().chance(STEP_AFTER_SUBMIT_PERCENT)
        {
            self.step();
        }
        Completion::new(shared.clone(), seq)
    }
}

/// Why an operation cannot be queued yet.
enum Room {
    Ready,
    /// The queue holds `batch_bytes_max` already.
    QueueFull,
    /// The active segment is full, and no spare is ready (or zeroed yet): the operation waits
    /// for the housekeeper.
    Waiting,
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
/// Resolves when the operation that returned it is durable (under the `Wal`'s sync mode), and
/// with it every operation submitted before it.
#[must_use = "an operation is durable only once its completion resolves"]
pub struct Completion {
    shared: Arc<Shared>,
    seq: u64,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").field("seq", &self.seq).finish()
    }
}

impl Completion {
    pub(crate) fn new(shared: Arc<Shared>, seq: u64) -> Completion {
        Completion { shared, seq }
    }

    /// Blocks until the operation is durable.
    ///
    /// # Errors
    /// `Error::Poisoned` if a write or fsync failed before the operation became durable;
    /// `Error::Closed` if the `Wal` stopped first.
    pub fn wait(self) -> Result<()> {
        let durability = &self.shared.durability;
        let durable = if self.shared.is_stepped() {
            self.shared.step_until(|| durability.is_durable(self.seq) || durability.has_ended());
            durability.is_durable(self.seq)
        } else {
            durability.wait(self.seq)
        };
        if durable {
            return Ok(());
        }
        match &self.shared.core.lock().poisoned {
            Some(cause) => Err(Error::Poisoned(cause.clone())),
            None => Err(Error::Closed),
        }
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether the operation is durable already. On a stepped file system (`Fs::stepped`)
    /// nothing becomes durable until some thread waits: poll `wait`, not this.
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.shared.durability.is_durable(self.seq)
    }
}
