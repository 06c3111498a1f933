//! raftwal: a segmented, checksummed, group-committing write-ahead log, built to be the log
//! store of a Raft node.
//!
//! Many appends, from many threads or one pipelined leader, share one write and one fdatasync.
//! The log can be truncated (a Raft conflict) and purged (after a snapshot); the hard state and
//! snapshot meta go through the same ordered pipeline as the entries; and `open` recovers to a
//! state that holds every acknowledged entry and never serves a corrupt one.
//!
//! ```
//! use raftwal::{Entry, HardState, Options, Wal};
//!
//! # fn main() -> raftwal::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let wal = Wal::open(dir.path(), Options::default())?;
//! let entries: Vec<Entry> =
//!     (1..=3).map(|index| Entry { index, term: 1, data: vec![index as u8; 16] }).collect();
//! let done = wal.append(&entries)?; // readable now
//! assert_eq!(wal.entry(2)?.data, vec![2; 16]);
//! done.wait()?; // durable now
//! wal.set_hard_state(HardState { term: 1, vote: 7, commit: 3 })?.wait()?;
//! wal.close()?;
//!
//! let wal = Wal::open(dir.path(), Options::default())?;
//! assert_eq!((wal.first_index()?, wal.last_index()?), (Some(1), Some(3)));
//! assert_eq!(wal.hard_state()?, Some(HardState { term: 1, vote: 7, commit: 3 }));
//! # Ok(())
//! # }
//! ```
//!
//! See `ARCHITECTURE.md` for how it works and `docs/format.md` for the bytes on disk.
//!
//! Features: `sim` adds the `sim` module, a simulated file system with power loss and fault injection,
//! and the fuzz harnesses; `cli` builds the `raftwal` tool; `compare` lets its benchmark run
//! raft-engine and okaywal side by side; `openraft` (openraft 0.10), `openraft-v09` (openraft
//! 0.9 with `storage-v2`) and `raft-rs` (raft 0.7) add the log-store adapters in [`raft`].
//! [`inspect`] reads and repairs a directory without opening a `Wal`.

mod commit;
mod engine;
mod error;
mod format;
pub mod fs;
mod groups;
mod housekeeper;
mod index;
pub mod inspect;
mod options;
mod queue;
pub mod raft;
mod recovery;
mod rng;
mod segment;
#[cfg(feature = "sim")]
pub mod sim;
mod state;
mod stats;
mod value;
mod wal;

// The whole public API. Everything else is private to the crate.
//
// The log and how it is opened:
pub use options::{FILE_MODE_DEFAULT, Options, RecoveryMode, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SyncMode};
pub use wal::{Group, GroupOp, Wal};
// What an operation returns until it is durable:
pub use engine::Completion;
// The values the API takes and returns, all in `value`:
pub use value::{
    Cut, Entry, HardState, INDEX_MAX, LaggingGroup, LogId, RecoveryReport, Salvage, SnapshotMeta, Stats,
};
// The one error type:
pub use error::{Error, Result};
// Modules: `fs` (the file-system seam, for `Wal::open_with_fs`), `inspect` (the operator
// tools' library), `raft` (the adapters, by feature) and `sim` (the simulated file system, by
// feature).
