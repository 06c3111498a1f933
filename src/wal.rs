//! The façade: the public `Wal`, `Group` and `GroupOp`. Operations validate, encode their records
//! into the commit queue and change the in-memory state under one lock (the `engine`), then
//! return a `Completion`; the committer (`commit`) makes them durable in order. `open` starts the
//! committer and the housekeeper, as threads or, on a stepped file system, as steps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Receiver;
use parking_lot::{Condvar, Mutex};

use crate::commit::Committer;
use crate::engine::{Background, Chore, Completion, Core, RUN_BYTES, Shared, Source, check_checkpoint_bound};
use crate::error::{Error, Result};
use crate::format::{
    self, GROUP_CREATE_PAYLOAD_BYTES, GroupCheckpoint, HARD_STATE_PAYLOAD_BYTES, Kind, RecordHead,
    SEGMENT_HEADER_BYTES, SEGMENT_SUFFIX, SegmentId, record_bytes_aligned, varint_bytes,
};
use crate::fs::{Fs, LockGuard, StdFs};
use crate::groups::{DEFAULT_GROUP, DEFAULT_SLOT};
use crate::housekeeper;
use crate::options::{Options, SyncMode};
use crate::queue::{Callback, Durability, Queue};
use crate::recovery::{self, LOCK_FILE};
use crate::rng::Rng;
use crate::segment::{self, Segment};
use crate::state::{self, LogState};
use crate::stats::Counters;
use crate::value::{Entry, HardState, INDEX_MAX, LaggingGroup, LogId, RecoveryReport, SnapshotMeta, Stats};

/// A stepped `Wal`'s background work, and the generator that orders it.
struct Steps {
    committer: Committer,
    chores: Receiver<Chore>,
    rng: Rng,
}

impl Background for Steps {
    fn step(&mut self, shared: &Shared) -> bool {
        let commit_first = self.rng.chance(50);
        for commit in [commit_first, !commit_first] {
            if commit {
                if let Some(batch) = self.committer.take(shared, false) {
                    self.committer.commit(shared, batch);
                    return true;
                }
            } else if let Ok(chore) = self.chores.try_recv() {
                housekeeper::perform(shared, chore);
                return true;
            }
        }
        false
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.chance(percent)
    }
}

/// A write-ahead log for one Raft node: one directory, one commit queue, for all of the node's
/// Raft groups. Cheap to clone; all clones share one log.
///
/// A `Wal` derefs to its default group (id 0, in every log, never removed), so a node with one
/// Raft group uses it as its log: `wal.append(..)`. More groups come from `create_group`;
/// `submit` takes operations of many groups at once.
#[derive(Clone)]
pub struct Wal {
    default: Group,
}

/// One Raft group's log within a `Wal`: the per-log API (append, truncate, purge, hard state,
/// metadata, snapshot, reads). Cheap to clone, `Send + Sync`.
///
/// Everything submitted to a group is durable in submission order. Across groups the order is
/// the same: all operations of all groups go through one queue, so when a completion resolves,
/// every operation submitted before it, to any group, is durable too.
///
/// Once its group is removed, a handle fails with `NoGroup`, also after a group with the same id
/// is created again: the new group is a new incarnation, which the old handle does not reach.
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
    slot: u32,
    id: u64,
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
    send_sync::<Group>();
};

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.default.inner.shared.dir).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("id", &self.id).field("slot", &self.slot).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Wal {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.default
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
        // The directory's own name, and those of any parents `create_dir_all` made, must be
        // durable before anything in it is relied on. Until a segment exists, an earlier open may
        // have made them and stopped before syncing them; once one does, that open synced them.
        // A directory this process may not read was not made by it (it makes them readable by
        // their owner): the syncs stop below it.
        if !fs.list(&dir)?.iter().any(|name| name.ends_with(SEGMENT_SUFFIX)) {
            for (at, parent) in dir.ancestors().skip(1).enumerate() {
                let top = parent.as_os_str().is_empty();
                match fs.sync_dir(if top { Path::new(".") } else { parent }) {
                    Err(error) if at > 0 && error.kind() == io::ErrorKind::PermissionDenied => break,
                    synced => synced?,
                }
                if top {
                    break;
                }
            }
        }
        let lock = fs.lock(&dir.join(LOCK_FILE), options.file_mode).map_err(|error| match error.kind() {
            io::ErrorKind::WouldBlock => Error::Locked(dir.clone()),
            _ => Error::Io(error),
        })?;
        let recovered = recovery::recover(&*fs, &dir, &options)?;
        let mut next_segment_id = recovered.next_segment_id;
        let mut spares: VecDeque<Arc<Segment>> = recovered.spares.into_iter().map(Arc::new).collect();
        let (active, active_offset, needs_checkpoint) = match recovered.active {
            Some(active) => {
                active.segment.zeroed_at_least(active.offset);
                (Arc::new(active.segment), active.offset, active.needs_checkpoint)
            }
            None => {
                let segment = match spares.pop_front() {
                    Some(spare) => spare,
                    None => {
                        let first = options.segment_bytes.min(segment::FIRST_SEGMENT_BYTES);
                        let segment =
                            Segment::create(&*fs, &dir, next_segment_id, first, first, options.file_mode)?;
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
            Mutex::new(Box::new(Steps { committer, chores: chore_queue.clone(), rng: Rng::new(seed) })
                as Box<dyn Background>)
        });
        let stats = Counters::new(&dir);
        let shared = Arc::new(Shared {
            dir,
            fs,
            options,
            core: Mutex::new(Core {
                groups: recovered.groups,
                segments,
                written: (active.id, active_offset),
                active: active.clone(),
                active_offset,
                needs_checkpoint,
                spares,
                room_error: None,
                spare_asked: false,
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
        {
            // A spare at once, if only a small one: the first segment of a new log asks for it
            // to be zeroed only once it is half full.
            let mut core = shared.core.lock();
            let end = core.active_offset;
            if !core.ask_ahead(end, shared.options.segment_bytes, &shared.chores) {
                let _ = shared.chores.send(Chore::Replenish);
            }
        }
        shared.stats.opened(started.elapsed());
        let inner = Arc::new(Inner {
            shared,
            running: Mutex::new(Some(Running { threads, _lock: lock })),
            report: recovered.report,
        });
        Ok(Wal { default: Group { inner, slot: DEFAULT_SLOT, id: DEFAULT_GROUP } })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.default.inner.shared
    }

    /// Makes everything durable, stops the background threads and releases the directory.
    /// Every clone of this `Wal` fails with `Closed` afterwards. Dropping the last clone
    /// closes too, but cannot report errors.
    ///
    /// # Errors
    /// The error of the final sync, if any.
    pub fn close(&self) -> Result<()> {
        stop(self.shared(), &self.default.inner.running)
    }

    /// Creates group `id`, empty, and returns its handle. Its creation is ordered like any
    /// operation: it is durable once anything submitted after it is (to any group), or after
    /// `sync`; a crash before that forgets it.
    ///
    /// # Errors
    /// `GroupExists`; `TooLarge` if the log has created 2^32 - 1 groups, or if the checkpoint
    /// every segment starts with would not fit a segment any more; `Poisoned`, `Closed`.
    pub fn create_group(&self, id: u64) -> Result<Group> {
        let shared = self.shared();
        let bytes = record_bytes_aligned(GROUP_CREATE_PAYLOAD_BYTES);
        let mut core = shared.lock_for(bytes)?;
        core.groups.check_create(id)?;
        let slot = core.groups.next_slot();
        let before = core.groups.checkpoint_bytes_max();
        check_checkpoint_bound(&shared.options, before, before + GroupCheckpoint::idle_bytes_max(slot, id))?;
        let head = RecordHead { kind: Kind::GroupCreate, flags: 0, group: slot, index: 0, term: 0 };
        let payload: [u8; GROUP_CREATE_PAYLOAD_BYTES] = format::encode_u64s([id]);
        core.emit(shared.options.sync, head, &payload);
        core.groups.apply_create(slot, id);
        drop(shared.submit(shared, core, None));
        Ok(Group { inner: self.default.inner.clone(), slot, id })
    }

    /// Removes group `id` with everything it holds; its handles fail with `NoGroup` from now on.
    /// Segments it alone kept are deleted once the removal is durable. A group created later
    /// with the same id starts empty.
    ///
    /// # Errors
    /// `NoGroup`; `DefaultGroup` for id 0; `Poisoned`, `Closed`.
    pub fn remove_group(&self, id: u64) -> Result<Completion> {
        let shared = self.shared();
        let mut core = shared.lock_for(record_bytes_aligned(0))?;
        let slot = core.groups.slot_of(id).ok_or(Error::NoGroup { id })?;
        core.groups.check_remove(slot, id)?;
        let head = RecordHead { kind: Kind::GroupRemove, flags: 0, group: slot, index: 0, term: 0 };
        core.emit(shared.options.sync, head, &[]);
        core.groups.apply_remove(slot);
        core.schedule_deletion();
        Ok(shared.submit(shared, core, None))
    }

    /// The handle of group `id`.
    ///
    /// # Errors
    /// `NoGroup`; `Poisoned`, `Closed`.
    pub fn group(&self, id: u64) -> Result<Group> {
        let core = self.shared().core.lock();
        core.check_usable()?;
        let slot = core.groups.slot_of(id).ok_or(Error::NoGroup { id })?;
        Ok(Group { inner: self.default.inner.clone(), slot, id })
    }

    /// The ids of the groups in the log, ascending; the default group 0 among them. Right after
    /// `open`, the groups it recovered.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`.
    pub fn groups(&self) -> Result<Vec<u64>> {
        let core = self.shared().core.lock();
        core.check_usable()?;
        Ok(core.groups.ids())
    }

    /// Submits operations of many groups with one lock acquisition and one completion, as a
    /// store writer does with the ready appends of its Raft groups. All or nothing: if one fails
    /// its checks, none is submitted. In order, so a group may appear more than once.
    ///
    /// # Errors
    /// `EmptyBatch` if `ops` is empty; `TooLarge` if their records exceed `batch_bytes_max`;
    /// any error an operation alone would return (`NoGroup`, `NotContiguous`, ...).
    pub fn submit(&self, ops: &[GroupOp<'_>]) -> Result<Completion> {
        self.submit_inner(ops, None)
    }

    /// Like `submit`, with a callback as `Group::append_with` has.
    ///
    /// # Errors
    /// As `submit`.
    pub fn submit_with(
        &self,
        ops: &[GroupOp<'_>],
        callback: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.submit_inner(ops, Some(Box::new(callback))).map(drop)
    }

    /// The one path of every append, hard state and metadata operation, alone or batched: the
    /// checks of each operation against the log as the operations before it in `ops` leave it,
    /// all before anything is queued, then their records and state changes.
    fn submit_inner(&self, ops: &[GroupOp<'_>], callback: Option<Callback>) -> Result<Completion> {
        if ops.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let shared = self.shared();
        let mut bytes = 0;
        let mut appended = 0;
        for (at, op) in ops.iter().enumerate() {
            let checked = match *op {
                GroupOp::Append(_, entries) => check_contiguous(entries).map(|()| {
                    appended += entries.len();
                    entries.iter().map(|entry| record_bytes_aligned(entry.data.len())).sum()
                }),
                GroupOp::HardState(..) => Ok(record_bytes_aligned(HARD_STATE_PAYLOAD_BYTES)),
                GroupOp::Metadata(_, metadata) => {
                    check_checkpointed_bytes(&shared.options, "metadata", metadata.len())
                        .map(|()| record_bytes_aligned(metadata.len()))
                }
            };
            let group = op.group();
            let checked = match Arc::ptr_eq(&group.inner, &self.default.inner) {
                true => checked,
                false => Err(Error::NoGroup { id: group.id }),
            };
            match checked {
                Ok(op_bytes) => bytes += op_bytes,
                // The error an operation alone would give, unless one before it fails first.
                Err(error) => {
                    if at > 0 {
                        let core = shared.core.lock();
                        core.check_usable()?;
                        check_in_order(&core, &shared.options, &ops[..at])?;
                    }
                    return Err(error);
                }
            }
        }
        let limit = shared.options.batch_bytes_max;
        if bytes > limit {
            let what = match ops {
                [GroupOp::Append(..)] => "append",
                [_] => "operation",
                _ => "submitted operations",
            };
            return Err(Error::TooLarge { what, bytes: bytes as u64, limit: limit as u64 });
        }
        let mut core = shared.lock_for(bytes)?;
        check_in_order(&core, &shared.options, ops)?;
        let sync = shared.options.sync;
        for op in ops {
            let slot = op.group().slot;
            match *op {
                GroupOp::Append(_, entries) => core.append(sync, slot, entries),
                GroupOp::HardState(_, hard_state) => core.set_hard_state(sync, slot, hard_state),
                GroupOp::Metadata(_, metadata) => core.set_metadata(sync, slot, metadata.to_vec()),
            }
        }
        let done = shared.submit(shared, core, callback);
        if appended > 0 {
            shared.stats.appended(appended);
        }
        Ok(done)
    }

    /// The groups whose entries keep the oldest segments, oldest first, at most `limit`: the
    /// ones to snapshot and purge (or remove) when the log holds more than it should. Their
    /// entries are relocated to the newest segment once the log holds more than
    /// `Options::relocate_after_segments` segments.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`.
    pub fn lagging_groups(&self, limit: usize) -> Result<Vec<LaggingGroup>> {
        let core = self.shared().core.lock();
        core.check_usable()?;
        let active = core.active.id;
        Ok(core
            .groups
            .oldest_pins(limit)
            .into_iter()
            .map(|(id, segment)| LaggingGroup { id, segments_behind: active.0 - segment.0 })
            .collect())
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
        &self.default.inner.report
    }

    /// Counters since open, and the log's size now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let core = shared.core.lock();
        let indexes = core.groups.iter().map(|(_, state)| &state.log.index);
        let (entries, bytes) = indexes.fold((0, 0), |(entries, bytes), index| {
            (entries + (index.next() - index.first()), bytes + index.heap_bytes() as u64)
        });
        Stats {
            segments: core.segments.len() as u64,
            groups: core.groups.len() as u64,
            index_entries: entries,
            index_bytes: bytes,
            ..shared.stats.snapshot()
        }
    }
}

impl Group {
    /// The group's id.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The log this group is in.
    #[must_use]
    pub fn wal(&self) -> Wal {
        Wal { default: Group { inner: self.inner.clone(), slot: DEFAULT_SLOT, id: DEFAULT_GROUP } }
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
        self.wal().submit_inner(&[GroupOp::Append(self, entries)], callback)
    }

    /// Drops entries `[from, ..)`, as Raft does on a conflict. Truncating at or past the end
    /// drops nothing.
    ///
    /// # Errors
    /// `Compacted` if `from` is below the first index; `Poisoned`, `Closed`.
    pub fn truncate(&self, from: u64) -> Result<Completion> {
        let shared = self.shared();
        let mut core = shared.lock_for(record_bytes_aligned(0))?;
        let log = core.groups.live(self.slot, self.id)?;
        log.check_truncate(from)?;
        if log.index.contains(from) {
            let head = RecordHead { kind: Kind::Truncate, flags: 0, group: self.slot, index: from, term: 0 };
            core.emit(shared.options.sync, head, &[]);
            core.groups.change(self.slot, |log| log.apply_truncate(from));
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
        if let Some(term) = core.groups.live(self.slot, self.id)?.check_purge(upto)? {
            let head = RecordHead { kind: Kind::Purge, flags: 0, group: self.slot, index: upto, term };
            core.emit(shared.options.sync, head, &[]);
            core.groups.change(self.slot, |log| log.apply_purge(upto, term));
            core.schedule_deletion();
        }
        Ok(shared.submit(shared, core, None))
    }

    /// Saves Raft's hard state, ordered after every operation submitted before it.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`.
    pub fn set_hard_state(&self, hard_state: HardState) -> Result<Completion> {
        self.wal().submit_inner(&[GroupOp::HardState(self, hard_state)], None)
    }

    /// Saves `metadata`, the caller's opaque bytes (a Raft library's vote, commit point or
    /// cluster configuration), ordered after every operation submitted before it. The latest
    /// one replaces any earlier and is read back by `metadata`.
    ///
    /// # Errors
    /// `TooLarge` if `metadata` exceeds a quarter of a segment (it is repeated at the start of
    /// each one); `Poisoned`, `Closed`.
    pub fn set_metadata(&self, metadata: Vec<u8>) -> Result<Completion> {
        self.wal().submit_inner(&[GroupOp::Metadata(self, &metadata)], None)
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
        check_checkpointed_bytes(&shared.options, "snapshot meta", meta.data.len())?;
        let mut core = shared.lock_for(record_bytes_aligned(meta.data.len()))?;
        let log = core.groups.live(self.slot, self.id)?;
        log.check_snapshot(&meta)?;
        let old = log.snapshot.as_ref().map(|old| old.data.len());
        let before = core.groups.checkpoint_bytes_max();
        let after = before - blob_bytes(old) + blob_bytes(Some(meta.data.len()));
        check_checkpoint_bound(&shared.options, before, after)?;
        let log = core.groups.live(self.slot, self.id)?;
        let keep_log = log.snapshot_keeps_log(&meta);
        let flags = if keep_log { format::SNAPSHOT_KEEPS_LOG } else { 0 };
        let head =
            RecordHead { kind: Kind::Snapshot, flags, group: self.slot, index: meta.index, term: meta.term };
        core.emit(shared.options.sync, head, &meta.data);
        core.groups.change(self.slot, |log| log.apply_snapshot(meta, keep_log));
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
            let log = core.groups.live(self.slot, self.id)?;
            for bound in [range.start, range.end - 1] {
                if !log.index.contains(bound) {
                    return Err(log.out_of_range(bound));
                }
            }
            range
                .clone()
                .map(|index| {
                    // Recovery fails on missing entries, so this is for an index bug's sake.
                    let missing = Error::MissingEntries { first: index, last: index };
                    core.source(index, log.index.locate(index).ok_or(missing)?)
                })
                .collect::<Result<Vec<Source>>>()?
        };
        let mut entries = Vec::with_capacity(sources.len());
        let mut total = 0u64;
        let mut sources = range.zip(sources).peekable();
        while let Some((index, source)) = sources.next() {
            let read = match source {
                Source::File(segment, offset) => {
                    // Consecutive records of one segment are read together, up to RUN_BYTES apart,
                    // while each lies after the one before (a relocated entry's copy may lie after
                    // the next entry's record).
                    let mut offsets = vec![offset];
                    while let Some((_, Source::File(next, at))) = sources.peek()
                        && Arc::ptr_eq(next, &segment)
                        && *at > offsets[offsets.len() - 1]
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
            None => self.read(|log| log.out_of_range(index)).and_then(Err),
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
        self.read(|log| log.snapshot.as_deref().cloned())
    }

    /// The metadata last saved by `set_metadata`.
    ///
    /// # Errors
    /// As `first_index`.
    pub fn metadata(&self) -> Result<Option<Vec<u8>>> {
        self.read(|log| log.metadata.as_deref().map(<[u8]>::to_vec))
    }

    /// Reads the log state, unless the `Wal` is poisoned (its state may then hold changes that
    /// never reached the disk) or closed.
    fn read<T>(&self, read: impl FnOnce(&LogState) -> T) -> Result<T> {
        let core = self.shared().core.lock();
        core.check_usable()?;
        Ok(read(core.groups.live(self.slot, self.id)?))
    }
}

/// One operation of `Wal::submit`, on the group whose handle it holds.
#[derive(Clone, Copy, Debug)]
pub enum GroupOp<'a> {
    /// `Group::append`.
    Append(&'a Group, &'a [Entry]),
    /// `Group::set_hard_state`.
    HardState(&'a Group, HardState),
    /// `Group::set_metadata`.
    Metadata(&'a Group, &'a [u8]),
}

impl GroupOp<'_> {
    fn group(&self) -> &Group {
        match self {
            GroupOp::Append(group, _) | GroupOp::HardState(group, _) | GroupOp::Metadata(group, _) => group,
        }
    }
}

/// Checks each of `ops` against the log as the operations before it leave it: an append must
/// continue its group's log and stay within `INDEX_MAX`, and metadata must not grow the
/// checkpoint's bound past its limit.
fn check_in_order(core: &Core, options: &Options, ops: &[GroupOp<'_>]) -> Result<()> {
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut metadata: HashMap<u32, Option<usize>> = HashMap::new();
    let mut bound = core.groups.checkpoint_bytes_max();
    for (at, op) in ops.iter().enumerate() {
        // What an operation leaves matters only to those after it: a call of one operation (the
        // single-operation API) allocates nothing here.
        let more = at + 1 < ops.len();
        let group = op.group();
        let log = core.groups.live(group.slot, group.id)?;
        match *op {
            GroupOp::Append(_, entries) => {
                let (first, last) = (entries[0].index, entries[entries.len() - 1].index);
                let expected = next.get(&group.slot).copied().or_else(|| log.next_index());
                state::check_continues(expected, first, last)?;
                if more {
                    next.insert(group.slot, last.checked_add(1).expect("checked: last <= INDEX_MAX"));
                }
            }
            GroupOp::HardState(..) => {}
            GroupOp::Metadata(_, bytes) => {
                let old =
                    metadata.get(&group.slot).copied().unwrap_or(log.metadata.as_ref().map(|old| old.len()));
                let (before, after) = (blob_bytes(old), blob_bytes(Some(bytes.len())));
                check_checkpoint_bound(options, bound, bound - before + after)?;
                bound = bound - before + after;
                if more {
                    metadata.insert(group.slot, Some(bytes.len()));
                }
            }
        }
    }
    Ok(())
}

/// Bytes a byte field of `len` bytes (if present) takes in a checkpoint: its length, then it.
fn blob_bytes(len: Option<usize>) -> usize {
    len.map_or(0, |len| varint_bytes(len as u64) + len)
}

/// Checks that `entries` are not empty and their indexes follow one another.
fn check_contiguous(entries: &[Entry]) -> Result<()> {
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
    Ok(())
}

/// Metadata and snapshot meta are repeated in every segment's checkpoint: at most a quarter of
/// a segment each.
fn check_checkpointed_bytes(options: &Options, what: &'static str, bytes: usize) -> Result<()> {
    let limit = options.segment_capacity() / 4;
    if bytes as u64 > limit {
        return Err(Error::TooLarge { what, bytes: bytes as u64, limit });
    }
    Ok(())
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
