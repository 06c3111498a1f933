//! Reading and repairing a raftwal directory without opening a `Wal`: what the `raftwal stat`,
//! `dump`, `verify` and `repair` commands print and do. Every function takes the directory's
//! lock, so it refuses a directory an open `Wal` holds, and none creates a segment.

use std::path::{Path, PathBuf};

pub use crate::format::{Frame, frames};

use crate::error::{Error, Result};
use crate::format::{self, Checkpoint, FORMAT_VERSION, Kind, SEGMENT_HEADER_BYTES};
use crate::fs::{Fs, LockGuard, StdFs};
use crate::options::{FILE_MODE_DEFAULT, Options, RecoveryMode};
use crate::recovery::{self, Analysis, LOCK_FILE, RecoveryReport};
use crate::state::{HardState, SnapshotMeta};

/// Suffix of the copies `repair` keeps of the files it changes or deletes. `open` ignores them.
pub const BACKUP_SUFFIX: &str = ".broken";

/// What a directory holds.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Inspection {
    pub format_version: u32,
    /// Segments holding records, oldest first, up to any damaged one.
    pub segments: Vec<SegmentInfo>,
    /// Preallocated segments never written.
    pub spares: Vec<PathBuf>,
    /// Segment files after the damaged one, not read.
    pub unread: Vec<PathBuf>,
    /// Bytes of all segment files.
    pub bytes_on_disk: u64,
    /// Records verified.
    pub records: u64,
    /// The log as replayed up to any damage.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    pub next_index: Option<u64>,
    pub purged: Option<(u64, u64)>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMeta>,
    pub metadata: Option<Vec<u8>>,
    pub damage: Option<DamageInfo>,
}

/// One segment file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub id: u64,
    pub bytes: u64,
    pub records: u64,
    /// Offset after the last valid record.
    pub end: u64,
    /// The first and last entry records in the file, live or not.
    pub entries: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// A write a crash interrupted at the end of the newest segment: `open` cuts it.
    TornTail,
    /// Damage anywhere else: `open` fails; `repair --salvage` can cut the log there.
    Corruption,
}

/// The first damage found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DamageInfo {
    pub kind: DamageKind,
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// The last valid entry (index, term) before the damage.
    pub after: Option<(u64, u64)>,
    /// Bytes from `offset` to the last non-zero byte of the file: what a cut zeroes.
    pub bytes: u64,
}

/// The kinds of record, as the tools name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Entry,
    Truncate,
    Purge,
    HardState,
    Snapshot,
    Checkpoint,
    Batch,
    Metadata,
}

impl RecordKind {
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Entry => "entry",
            RecordKind::Truncate => "truncate",
            RecordKind::Purge => "purge",
            RecordKind::HardState => "hard_state",
            RecordKind::Snapshot => "snapshot",
            RecordKind::Checkpoint => "checkpoint",
            RecordKind::Batch => "batch",
            RecordKind::Metadata => "metadata",
        }
    }

    fn of(kind: Kind) -> RecordKind {
        match kind {
            Kind::Entry => RecordKind::Entry,
            Kind::Truncate => RecordKind::Truncate,
            Kind::Purge => RecordKind::Purge,
            Kind::HardState => RecordKind::HardState,
            Kind::Snapshot => RecordKind::Snapshot,
            Kind::Checkpoint => RecordKind::Checkpoint,
            Kind::Batch => RecordKind::Batch,
            Kind::Metadata => RecordKind::Metadata,
        }
    }
}

/// One valid record, in log order.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub segment: &'a Path,
    pub offset: u64,
    pub kind: RecordKind,
    pub index: u64,
    pub term: u64,
    pub payload: &'a [u8],
}

impl RecordView<'_> {
    /// The hard state a `HardState` record saves.
    pub fn hard_state(&self) -> Option<HardState> {
        let [term, vote, commit] = format::decode_u64s::<3>(self.payload)?;
        (self.kind == RecordKind::HardState).then_some(HardState { term, vote, commit })
    }

    /// The log's bounds `[first, next)` a `Checkpoint` record gives.
    pub fn checkpoint_bounds(&self) -> Option<(u64, u64)> {
        let checkpoint = Checkpoint::decode(self.payload).filter(|_| self.kind == RecordKind::Checkpoint)?;
        Some((checkpoint.first, checkpoint.next))
    }
}

/// Fails unless `dir` is a directory, with a message that says so.
fn check_is_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} is not a directory", dir.display()),
    )))
}

/// Locks and analyzes `dir`.
fn open_dir(fs: &dyn Fs, dir: &Path) -> Result<(Box<dyn LockGuard>, Analysis)> {
    // Refuse a directory that is not a log before creating a lock file in it.
    if recovery::segment_names(fs, dir)?.is_empty() {
        return Err(Error::NotALog(dir.to_path_buf()));
    }
    let lock = fs.lock(&dir.join(LOCK_FILE), FILE_MODE_DEFAULT).map_err(|error| match error.kind() {
        std::io::ErrorKind::WouldBlock => Error::Locked(dir.to_path_buf()),
        _ => Error::Io(error),
    })?;
    Ok((lock, recovery::analyze(fs, dir)?))
}

/// Reads `dir`: its segments, the log state and the first damage, changing nothing.
///
/// # Errors
/// `Locked` if an open `Wal` holds it; `ForeignFile` if it holds other files; `NotALog` if it
/// holds no segment; `Io` if it is not a directory or cannot be read.
pub fn inspect(dir: &Path) -> Result<Inspection> {
    check_is_dir(dir)?;
    let (_lock, analysis) = open_dir(&StdFs, dir)?;
    Ok(inspection(analysis))
}

fn inspection(analysis: Analysis) -> Inspection {
    let log = analysis.log.as_ref();
    let index = log.map(|log| &log.index).filter(|index| !index.is_empty());
    let file_bytes = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let segments: Vec<SegmentInfo> = analysis
        .summaries
        .iter()
        .map(|summary| SegmentInfo {
            path: summary.path.clone(),
            id: summary.id.0,
            bytes: summary.bytes,
            records: summary.records,
            end: summary.end,
            entries: summary.entries,
        })
        .collect();
    let spares: Vec<PathBuf> = analysis.spares.iter().map(|spare| spare.path.clone()).collect();
    let mut unread = analysis.later.clone();
    if let Some(damage) = analysis.damage.as_ref().filter(|damage| damage.segment.is_none()) {
        unread.insert(0, damage.path.clone());
    }
    let bytes_on_disk = segments.iter().map(|segment| segment.bytes).sum::<u64>()
        + spares.iter().chain(&unread).map(|path| file_bytes(path)).sum::<u64>();
    Inspection {
        format_version: FORMAT_VERSION,
        segments,
        spares,
        unread,
        bytes_on_disk,
        records: analysis.records,
        first_index: index.map(|index| index.first()),
        last_index: index.map(|index| index.next() - 1),
        next_index: log.and_then(|log| log.next_index()),
        purged: log.and_then(|log| log.purged),
        hard_state: log.and_then(|log| log.hard_state),
        snapshot: log.and_then(|log| log.snapshot.clone()),
        metadata: log.and_then(|log| log.metadata.clone()),
        damage: analysis.damage.map(|damage| DamageInfo {
            kind: if damage.torn { DamageKind::TornTail } else { DamageKind::Corruption },
            bytes: damage.cut_end.saturating_sub(damage.offset),
            path: damage.path,
            offset: damage.offset,
            reason: damage.reason,
            after: damage.after,
        }),
    }
}

/// Calls `visit` with every valid record of `dir` in log order, up to any damage.
///
/// # Errors
/// As `inspect`.
pub fn for_each_record(dir: &Path, mut visit: impl FnMut(RecordView<'_>)) -> Result<()> {
    check_is_dir(dir)?;
    let (_lock, analysis) = open_dir(&StdFs, dir)?;
    for (segment, summary) in analysis.segments.iter().zip(&analysis.summaries) {
        let bytes = segment.bytes_of(0);
        let mut at = SEGMENT_HEADER_BYTES;
        while (at as u64) < summary.end {
            let record = format::decode_record(&bytes[at..], segment.seed)
                .map_err(|fault| segment.corruption(at as u64, fault))?;
            visit(RecordView {
                segment: &segment.path,
                offset: at as u64,
                kind: RecordKind::of(record.head.kind),
                index: record.head.index,
                term: record.head.term,
                payload: record.payload,
            });
            at += record.bytes_aligned;
        }
    }
    Ok(())
}

/// What `repair` did, or with `dry_run` would do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Repaired {
    /// Copies of the files changed or deleted, made before anything changed (none on a dry run).
    pub backups: Vec<PathBuf>,
    /// What recovery cut and deleted (on a dry run, what it would).
    pub report: RecoveryReport,
    /// The last entry of the log after the repair (on a dry run, after the cut it would make).
    pub last_index: Option<u64>,
}

/// Repairs `dir` the way `open` would: cuts a torn tail, or with `salvage` keeps the longest
/// valid prefix. Each file it will change or delete is first copied to `<file>.broken`.
/// A healthy log is never touched: `Ok(None)`.
///
/// # Errors
/// `Corruption` if the damage is not a torn tail and `salvage` is off (or salvage is
/// impossible); otherwise as `inspect`.
pub fn repair(dir: &Path, salvage: bool, dry_run: bool) -> Result<Option<Repaired>> {
    check_is_dir(dir)?;
    repair_with_fs(&StdFs, dir, salvage, dry_run)
}

/// `repair` on another file system, such as a fault-injecting one.
///
/// # Errors
/// As `repair`.
pub fn repair_with_fs(fs: &dyn Fs, dir: &Path, salvage: bool, dry_run: bool) -> Result<Option<Repaired>> {
    let (_lock, analysis) = open_dir(fs, dir)?;
    let before = inspection(analysis);
    let Some(damage) = &before.damage else { return Ok(None) };
    let corrupt = damage.kind == DamageKind::Corruption;
    if corrupt && !salvage {
        return Err(Error::Corruption {
            path: damage.path.clone(),
            offset: damage.offset,
            reason: damage.reason.clone(),
        });
    }
    let cut = recovery::Cut {
        path: damage.path.clone(),
        offset: damage.offset,
        bytes_zeroed: damage.bytes,
        reason: damage.reason.clone(),
    };
    // A torn tail gets the same minimal cut with or without `salvage`.
    let dropped: Vec<PathBuf> = if corrupt {
        before.unread.iter().chain(&before.spares).filter(|path| **path != damage.path).cloned().collect()
    } else {
        Vec::new()
    };
    if dry_run {
        let report = if corrupt {
            RecoveryReport { salvaged: Some((cut, dropped)), ..RecoveryReport::default() }
        } else {
            RecoveryReport { torn_tail: Some(cut), ..RecoveryReport::default() }
        };
        return Ok(Some(Repaired { backups: Vec::new(), report, last_index: before.last_index }));
    }
    let backups = std::iter::once(&damage.path)
        .chain(&dropped)
        .map(|path| back_up(fs, dir, path))
        .collect::<Result<Vec<_>>>()?;
    // The backups' names must be durable before the originals change.
    fs.sync_dir(dir)?;
    let recovery = if corrupt { RecoveryMode::Salvage } else { RecoveryMode::TornTail };
    let recovered = recovery::recover(fs, dir, &Options { recovery, ..Options::default() })?;
    let index = &recovered.log.index;
    let after = (!index.is_empty()).then(|| index.next() - 1);
    Ok(Some(Repaired { backups, report: recovered.report, last_index: after }))
}

/// Copies `path` to the first free `<path>.broken`, `<path>.broken.2`, … and fsyncs the copy.
fn back_up(fs: &dyn Fs, dir: &Path, path: &Path) -> Result<PathBuf> {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let taken = fs.list(dir)?;
    let backup = (1..)
        .map(|n| {
            let suffix = if n == 1 { String::new() } else { format!(".{n}") };
            format!("{name}{BACKUP_SUFFIX}{suffix}")
        })
        .find(|candidate| !taken.contains(candidate))
        .map(|candidate| dir.join(candidate))
        .expect("some name is free");
    let original = fs.open(path)?;
    let mut bytes = vec![
        0;
        usize::try_from(original.size()?)
            .map_err(|_| Error::Io(std::io::ErrorKind::OutOfMemory.into()))?
    ];
    original.read_exact_at(&mut bytes, 0)?;
    let copy = fs.create_new(&backup, FILE_MODE_DEFAULT)?;
    copy.write_all_at(&bytes, 0)?;
    copy.sync_all()?;
    Ok(backup)
}
