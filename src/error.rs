//! The one error type of the crate.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in raftwal.
///
/// Misuse of the API and damaged files get their own variants; I/O failures carry the OS error.
/// After [`Error::Poisoned`] the `Wal` refuses all work until it is reopened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS failed an operation (a full disk, a failed fsync, a missing directory).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    /// Reading a segment file failed (EIO from a bad sector): nothing was changed because of
    /// it, and a failed read of an entry does not poison the `Wal`.
    #[error("i/o error reading {path} at offset {offset}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Where the failed read began.
        offset: u64,
        /// The OS error.
        source: io::Error,
    },

    /// A write or fsync failed earlier; what was written since the last successful fsync may be
    /// lost, so the `Wal` accepts no more work. Reopen it to re-read the durable state.
    #[error("wal is poisoned by an earlier i/o failure: {0}")]
    Poisoned(Arc<io::Error>),

    /// `close` was called on this `Wal` or a clone of it.
    #[error("wal is closed")]
    Closed,

    /// Another `Wal` (in this or another process) holds the directory's lock file.
    #[error("directory {0} is locked by another open wal")]
    Locked(PathBuf),

    /// The directory holds a file raftwal did not write.
    #[error("directory holds a file that is not part of a wal: {0}")]
    ForeignFile(PathBuf),

    /// The directory holds no segment file (only the operator tools refuse this; `Wal::open`
    /// starts a new log).
    #[error("{0} holds no raftwal segments")]
    NotALog(PathBuf),

    /// Bytes on disk failed validation somewhere that is not a torn tail.
    #[error("corruption in {path} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Where in it the first bad byte is.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },

    /// Entries the durable state says exist are in no segment (a segment file was lost).
    #[error("entries {first}..={last} are missing from the segment files")]
    MissingEntries {
        /// The first missing entry.
        first: u64,
        /// The last missing entry.
        last: u64,
    },

    /// Segment files that held the log's state (its hard state, snapshot and entries) are
    /// gone: the oldest segment left holds no checkpoint. `open` deleted nothing.
    #[error("segment files before {oldest} held the log's state and are missing from {dir}")]
    MissingSegments {
        /// The log directory.
        dir: PathBuf,
        /// The id of the oldest segment left.
        oldest: u64,
    },

    /// An appended entry's index is not the log's next index.
    #[error("entry index {got} is not the next index {expected}")]
    NotContiguous {
        /// The log's next index.
        expected: u64,
        /// The first index appended.
        got: u64,
    },

    /// An entry or snapshot index above `max` (`u64::MAX - 1`, so the next index always exists).
    #[error("index {index} is above the largest allowed, {max}")]
    IndexTooLarge {
        /// The index given.
        index: u64,
        /// The largest allowed.
        max: u64,
    },

    /// The requested index lies before the first index: purged or in a snapshot.
    #[error("index {index} is compacted; the log starts at {first}")]
    Compacted {
        /// The index asked for.
        index: u64,
        /// The log's first index.
        first: u64,
    },

    /// The requested index lies after the last index.
    #[error("index {index} is not in the log (next index {next})")]
    Unavailable {
        /// The index asked for.
        index: u64,
        /// The log's next index.
        next: u64,
    },

    /// No live group has this id: it was never created, or was removed.
    #[error("no group {id}")]
    NoGroup {
        /// The id asked for.
        id: u64,
    },

    /// A group with this id exists already.
    #[error("group {id} exists")]
    GroupExists {
        /// The id asked for.
        id: u64,
    },

    /// The default group (id 0) is in every log and cannot be removed.
    #[error("the default group cannot be removed")]
    DefaultGroup,

    /// An append was given no entries.
    #[error("empty entry batch")]
    EmptyBatch,

    /// An append or a snapshot is too large for one segment or one batch.
    #[error("{what} of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },

    /// `install_snapshot` was given a snapshot older than the log's compaction point.
    #[error("snapshot at index {index} is older than the compacted prefix ending at {compacted}")]
    StaleSnapshot {
        /// The snapshot's index.
        index: u64,
        /// The log's last compacted index.
        compacted: u64,
    },

    /// `Options` do not make sense together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// A Raft adapter could not store a value of the Raft library so that it reads back, or
    /// read back one that does not decode. At `append` and when saving a vote this is checked
    /// before anything is written: the value is refused, nothing of it reaches the log, and no
    /// callback reports it durable.
    #[error("{what}: {reason}")]
    Codec {
        /// The value, or the log's bytes, that failed.
        what: String,
        /// What the codec said.
        reason: String,
    },
}

/// For code whose errors are `io::Error`s (openraft 0.10's storage traits): the OS error where
/// there is one, `InvalidData` for damaged or undecodable bytes, `InvalidInput` for misuse,
/// each with raftwal's message.
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        if let Error::Io(error) = error {
            return error;
        }
        let kind = match &error {
            Error::Read { source, .. } => source.kind(),
            Error::Corruption { .. }
            | Error::MissingEntries { .. }
            | Error::MissingSegments { .. }
            | Error::Codec { .. } => io::ErrorKind::InvalidData,
            Error::NotContiguous { .. }
            | Error::IndexTooLarge { .. }
            | Error::EmptyBatch
            | Error::TooLarge { .. }
            | Error::StaleSnapshot { .. }
            | Error::InvalidOptions(_)
            | Error::DefaultGroup
            | Error::GroupExists { .. } => io::ErrorKind::InvalidInput,
            Error::Compacted { .. } | Error::Unavailable { .. } | Error::NoGroup { .. } => {
                io::ErrorKind::NotFound
            }
            Error::Locked(_) => io::ErrorKind::WouldBlock,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// `std::result::Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
