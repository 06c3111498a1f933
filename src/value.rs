//! The values the API takes and returns: plain data, no behaviour beyond construction.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// One entry of the log. The payload is opaque to raftwal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the log; each entry's is one more than the one before.
    pub index: u64,
    /// The term of the leader that created it.
    pub term: u64,
    /// The caller's bytes.
    pub data: Vec<u8>,
}

/// Raft's persistent vote state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// The candidate this node voted for in `term` (0: none, by raft-rs's convention).
    pub vote: u64,
    /// The highest index known to be committed.
    pub commit: u64,
}

/// What a snapshot covers: the log up to `index` (of `term`), plus the caller's opaque bytes
/// (membership, configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last entry the snapshot covers.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The caller's bytes.
    pub data: Vec<u8>,
}

/// The largest index an entry or snapshot may have, so that `index + 1` never overflows.
pub const INDEX_MAX: u64 = u64::MAX - 1;

/// An entry's position in the log: its index and the term it was written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    /// The entry's index.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
}

/// What `Wal::open` found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segments read, empty preallocated ones included.
    pub segments: usize,
    /// Bytes of records verified.
    pub record_bytes: u64,
    /// Records verified.
    pub records: u64,
    /// Segments deleted because the durable state no longer needed them (a purge whose deletion
    /// a crash interrupted), plus leftover partial preallocations.
    pub obsolete_files_deleted: usize,
    /// A torn write at the end of the newest segment, cut: where it began and how many bytes
    /// after it were zeroed.
    pub torn_tail: Option<Cut>,
    /// `RecoveryMode::Salvage` only: where damage cut the log, and the later segment files
    /// deleted with everything in them.
    pub salvaged: Option<Salvage>,
    /// `RecoveryMode::Salvage` only: entries at the front of the log whose segments a purge had
    /// deleted, when the cut also dropped that purge. They are gone; the log now starts after
    /// them. By group id.
    pub missing_dropped: BTreeMap<u64, RangeInclusive<u64>>,
    /// The ids of the groups recovered, ascending; the default group 0 among them.
    pub groups: Vec<u64>,
}

/// A place where recovery cut the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The segment file cut.
    pub path: PathBuf,
    /// Where the first bad byte was; the log ends before it.
    pub offset: u64,
    /// Bytes zeroed from `offset` on.
    pub bytes_zeroed: u64,
    /// What was wrong there.
    pub reason: String,
}

/// Where `RecoveryMode::Salvage` cut a damaged log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvage {
    /// Where the damage was and what the cut zeroed.
    pub cut: Cut,
    /// Later segment files, deleted with everything in them.
    pub deleted: Vec<PathBuf>,
}

/// Counters since open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Entries appended.
    pub entries: u64,
    /// `append` and `append_with` calls.
    pub appends: u64,
    /// Bytes handed to the OS by the committer.
    pub bytes_written: u64,
    /// fdatasyncs issued on segments (directory syncs not counted).
    pub fsyncs: u64,
    /// Write batches the committer took from the queue.
    pub batches: u64,
    /// Segment files created (preallocated spares included).
    pub segments_created: u64,
    /// Times an operation found the active segment full and no spare ready, and waited for the
    /// housekeeper to preallocate one.
    /// Appends stall there when the log is written faster than zeros can be.
    pub segment_waits: u64,
    /// Microseconds operations spent in those waits, summed over waiters.
    pub segment_wait_micros: u64,
    /// Segment files deleted after a purge.
    pub segments_deleted: u64,
    /// Segment files emptied by a purge and kept, with a new name and header, as spares.
    pub segments_recycled: u64,
    /// Spare preallocations that failed (the next append needing a segment tries again, and
    /// fails if that fails too), and deletions of obsolete segments that failed (the next open
    /// deletes them).
    pub housekeeping_errors: u64,
    /// Segment files holding the log now, spares not counted.
    pub segments: u64,
    /// Groups in the log now, the default group included.
    pub groups: u64,
    /// Entries copied out of old segments so that those could go (see
    /// `Options::relocate_after_segments`).
    pub entries_relocated: u64,
    /// Entries in the log.
    pub index_entries: u64,
    /// Heap bytes the in-memory index of those entries holds.
    pub index_bytes: u64,
    /// Microseconds `open` took, recovery included.
    pub open_micros: u64,
}

/// A group whose entries keep old segments on disk (see `Wal::lagging_groups`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaggingGroup {
    /// The group's id.
    pub id: u64,
    /// How many segments older than the active one its oldest entry is.
    pub segments_behind: u64,
}
