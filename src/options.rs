//! How a `Wal` is opened and how it writes.

use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// When an acknowledged write is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Acknowledged ⇒ survives power loss: each batch is followed by fdatasync, and the
    /// completion fires only after it returned.
    #[default]
    Data,
    /// Acknowledged ⇒ in the OS page cache only; it survives a process crash, not power loss.
    /// `Group::sync` and `Wal::close` still make everything durable.
    None,
}

/// What `Wal::open` does with damage it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut a torn tail of the newest segment (a write that a crash interrupted); fail on any
    /// other damage, naming the segment file and offset.
    #[default]
    TornTail,
    /// Fail on any damage, a torn tail included. Opens only a log that was closed cleanly or
    /// whose crash left no partial write.
    Strict,
    /// Keep the longest valid prefix of the log and drop everything after the first damage,
    /// reporting what was dropped in `Wal::recovery_report`. Loses data Raft may have
    /// acknowledged: for operators recovering by hand, not for automatic restarts.
    Salvage,
}

/// Settings for `Wal::open`. Sizes are in bytes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Size of each segment file, preallocated in full before it is written.
    pub segment_bytes: u64,
    /// When an operation counts as done.
    pub sync: SyncMode,
    /// What `open` does with damage it finds.
    pub recovery: RecoveryMode,
    /// Appenders wait once this many bytes are queued for the next write; also the largest
    /// single append.
    pub batch_bytes_max: usize,
    /// Permission bits of the files raftwal creates (segments, `LOCK`), before the umask. The
    /// log directory, if `open` creates it, gets the same bits plus search (execute) wherever
    /// read is set. Private by default: a Raft log holds the application's data.
    pub file_mode: u32,
    /// How many segments emptied by a purge are kept, renamed and given a new header, as
    /// spares for later, instead of being deleted: a new segment then costs no zeros written.
    /// 0 deletes every emptied segment. Disk use grows by up to this many segments.
    pub recycled_segments_max: usize,
    /// Once the log holds more segments than this (the active one included), the live entries
    /// of the groups that keep the oldest ones (groups that lag, or never purge) are copied to
    /// the active segment, so that the oldest can be deleted; `Wal::lagging_groups` names those
    /// groups. At least 2.
    pub relocate_after_segments: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            sync: SyncMode::Data,
            recovery: RecoveryMode::TornTail,
            batch_bytes_max: 8 << 20,
            file_mode: FILE_MODE_DEFAULT,
            recycled_segments_max: 4,
            relocate_after_segments: 8,
        }
    }
}

/// Files readable and writable by their owner only, as etcd creates its WAL files.
pub const FILE_MODE_DEFAULT: u32 = 0o600;

/// Smallest segment: room for the header and a few small records.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Offsets within a segment are u32 in the index.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64 + 1;

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidOptions(why));
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return invalid(format!(
                "segment_bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if !self.segment_bytes.is_multiple_of(4096) {
            return invalid(format!("segment_bytes {} is not a multiple of 4096", self.segment_bytes));
        }
        if self.file_mode & !0o777 != 0 {
            return invalid(format!("file_mode {:#o} has bits beyond 0o777", self.file_mode));
        }
        if self.relocate_after_segments < 2 {
            return invalid(format!("relocate_after_segments {} is below 2", self.relocate_after_segments));
        }
        if self.batch_bytes_max < RECORD_HEADER_BYTES {
            return invalid(format!("batch_bytes_max {} is below one record header", self.batch_bytes_max));
        }
        Ok(())
    }

    /// The permission bits of a directory `open` creates: `file_mode`, searchable wherever
    /// it is readable.
    pub(crate) fn dir_mode(&self) -> u32 {
        self.file_mode | ((self.file_mode & 0o444) >> 2)
    }

    /// Bytes of a segment available to records.
    pub(crate) fn segment_capacity(&self) -> u64 {
        self.segment_bytes - SEGMENT_HEADER_BYTES as u64
    }
}
