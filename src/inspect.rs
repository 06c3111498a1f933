//! Reading and repairing a raftwal directory without opening a `Wal`: what the `raftwal stat`,
//! `dump`, `verify` and `repair` commands print and do. Every function takes the directory's
//! lock, so it refuses a directory an open `Wal` holds, and none creates a segment.

use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

pub use crate::format::{Frame, Kind as RecordKind, frames};
pub use crate::recovery::BACKUP_SUFFIX;

use crate::error::{Error, Result};
use crate::format::{self, Checkpoint, FORMAT_VERSION, SEGMENT_HEADER_BYTES};
use crate::fs::{Fs, LockGuard, StdFs};
use crate::groups::DEFAULT_SLOT;
use crate::options::{FILE_MODE_DEFAULT, Options, RecoveryMode};
use crate::recovery::{self, Analysis, LOCK_FILE};
use crate::value::{Cut, HardState, LogId, RecoveryReport, Salvage, SnapshotMeta};

/// What a directory holds.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The format version of the segments (all share it).
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
    /// The groups as replayed up to any damage, by id; empty if no checkpoint was reached.
    pub groups: Vec<GroupInfo>,
    /// The first damage found, if any.
    pub damage: Option<DamageInfo>,
}

/// One group's log as `inspect` replayed it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group's id (0: the default group).
    pub id: u64,
    /// The slot its records carry: which incarnation of the id this is.
    pub slot: u32,
    /// The first entry of the group's log as replayed up to any damage; `None` if it holds none.
    pub first_index: Option<u64>,
    /// Its last entry.
    pub last_index: Option<u64>,
    /// The index the next append must have, once that is fixed.
    pub next_index: Option<u64>,
    /// The last entry compacted away, by a purge or a snapshot.
    pub purged: Option<LogId>,
    /// The last hard state saved.
    pub hard_state: Option<HardState>,
    /// The last snapshot installed.
    pub snapshot: Option<SnapshotMeta>,
    /// The last metadata saved.
    pub metadata: Option<Vec<u8>>,
}

/// One segment file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its segment id, from its name.
    pub id: u64,
    /// Its size.
    pub bytes: u64,
    /// Valid records in it.
    pub records: u64,
    /// Offset after the last valid record.
    pub end: u64,
    /// The indexes of the first and last entry records in the file, live or not, of any group.
    pub entries: Option<RangeInclusive<u64>>,
    /// A segment emptied by a purge and given a new life: stale bytes of its earlier lives
    /// follow the log's end.
    pub recycled: bool,
}

/// What the first damage of a directory is, by what `open` does with it.
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
    /// A torn tail or corruption.
    pub kind: DamageKind,
    /// The damaged segment file.
    pub path: PathBuf,
    /// Where the first bad byte is.
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
    /// The last valid entry before the damage.
    pub after: Option<LogId>,
    /// Bytes from `offset` to the last non-zero byte of the file: what a cut zeroes.
    pub bytes: u64,
}

/// One valid record, in log order.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// The segment file holding it.
    pub segment: &'a Path,
    /// Where it starts in that file.
    pub offset: u64,
    /// What it says.
    pub kind: RecordKind,
    /// The slot of the group it belongs to (see [`GroupInfo::slot`]); 0 in `Batch` and
    /// `Checkpoint` records, which belong to the whole log.
    pub slot: u32,
    /// Its index field (see [`RecordKind`] for what it means in each kind).
    pub index: u64,
    /// Its term field.
    pub term: u64,
    /// Its payload, verified.
    pub payload: &'a [u8],
}

impl RecordView<'_> {
    /// The hard state a `HardState` record saves.
    #[must_use]
    pub fn hard_state(&self) -> Option<HardState> {
        let [term, vote, commit] = format::decode_u64s::<3>(self.payload)?;
        (self.kind == RecordKind::HardState).then_some(HardState { term, vote, commit })
    }

    /// The number of groups a `Checkpoint` record holds.
    #[must_use]
    pub fn checkpoint_groups(&self) -> Option<usize> {
        let checkpoint = Checkpoint::decode(self.payload).filter(|_| self.kind == RecordKind::Checkpoint)?;
        Some(checkpoint.groups.len())
    }

    /// The entries `first..next` of group `id` when the segment of a `Checkpoint` record began;
    /// `None` if the record is not a checkpoint or the group was not in the log then.
    #[must_use]
    pub fn checkpoint_bounds(&self, id: u64) -> Option<Range<u64>> {
        let checkpoint = Checkpoint::decode(self.payload).filter(|_| self.kind == RecordKind::Checkpoint)?;
        let group = checkpoint.groups.iter().find(|group| group.id == id)?;
        Some(group.log.first..group.log.next)
    }

    /// The group id a `GroupCreate` record gives its slot.
    #[must_use]
    pub fn created_group(&self) -> Option<u64> {
        let [id] = format::decode_u64s::<1>(self.payload)?;
        (self.kind == RecordKind::GroupCreate).then_some(id)
    }
}

/// Locks and analyzes `dir`.
fn open_dir(fs: &dyn Fs, dir: &Path) -> Result<(Box<dyn LockGuard>, Analysis)> {
    // Refuse a directory that is not a log before creating a lock file in it.
    if let Err(error) = fs.list(dir) {
        let what = match error.raw_os_error() {
            Some(libc::ENOENT) => "no such directory",
            Some(libc::ENOTDIR) => "not a directory",
            _ => "cannot be listed",
        };
        return Err(Error::Io(std::io::Error::new(
            error.kind(),
            format!("{} {what} ({error})", dir.display()),
        )));
    }
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
    let (_lock, analysis) = open_dir(&StdFs, dir)?;
    Ok(inspection(&StdFs, analysis))
}

fn inspection(fs: &dyn Fs, analysis: Analysis) -> Inspection {
    let groups = analysis.groups.as_ref().map_or_else(Vec::new, |groups| {
        let mut infos: Vec<GroupInfo> = groups
            .iter()
            .map(|(slot, state)| {
                let log = &state.log;
                let index = Some(&log.index).filter(|index| !index.is_empty());
                GroupInfo {
                    id: state.id,
                    slot,
                    first_index: index.map(|index| index.first()),
                    last_index: index.map(|index| index.next() - 1),
                    next_index: log.next_index(),
                    purged: log.purged,
                    hard_state: log.hard_state,
                    snapshot: log.snapshot.as_deref().cloned(),
                    metadata: log.metadata.as_deref().map(<[u8]>::to_vec),
                }
            })
            .collect();
        infos.sort_unstable_by_key(|info| info.id);
        infos
    });
    let file_bytes = |path: &Path| fs.open(path).and_then(|file| file.size()).unwrap_or(0);
    let segments: Vec<SegmentInfo> = analysis
        .summaries
        .iter()
        .map(|summary| SegmentInfo {
            path: summary.path.clone(),
            id: summary.id.0,
            bytes: summary.bytes,
            records: summary.records,
            end: summary.end,
            entries: summary.entries.map(|(first, last)| first..=last),
            recycled: summary.recycled,
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
        groups,
        damage: analysis.damage.map(|damage| DamageInfo {
            kind: if damage.torn { DamageKind::TornTail } else { DamageKind::Corruption },
            bytes: damage.cut_end.saturating_sub(damage.offset),
            path: damage.path,
            offset: damage.offset,
            reason: damage.reason,
            after: damage.after.map(|(index, term)| LogId { index, term }),
        }),
    }
}

/// Calls `visit` with every valid record of `dir` in log order, up to any damage.
///
/// # Errors
/// As `inspect`.
pub fn for_each_record(dir: &Path, mut visit: impl FnMut(RecordView<'_>)) -> Result<()> {
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
                kind: record.head.kind,
                slot: record.head.group,
                index: record.head.index,
                term: record.head.term,
                payload: record.payload,
            });
            at += record.bytes_aligned;
        }
    }
    Ok(())
}

/// What `repair` may cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairMode {
    /// Only a torn tail, as `open` would; damage anywhere else is an error.
    TornTail,
    /// Keep the longest valid prefix: cut at the first damage wherever it is, and delete the
    /// segment files after it.
    Salvage,
}

/// What `repair` did, or `plan_repair` would do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Repaired {
    /// Copies of the files changed or deleted, made before anything changed (none on a dry run).
    pub backups: Vec<PathBuf>,
    /// What recovery cut and deleted (on a dry run, what it would).
    pub report: RecoveryReport,
    /// The last entry of the default group's log after the repair (on a dry run, after the cut
    /// it would make).
    pub last_index: Option<u64>,
}

/// Repairs `dir` the way `open` would: cuts a torn tail, or with `RepairMode::Salvage` keeps
/// the longest valid prefix. Each file it will change or delete is first copied to
/// `<file>.broken`, with the original's permission bits, and the copies' names are made durable
/// before anything changes. A healthy log is never touched: `Ok(None)`.
///
/// # Errors
/// `Corruption` if the damage is not a torn tail and the mode is `TornTail` (or salvage is
/// impossible); otherwise as `inspect`.
pub fn repair(dir: &Path, mode: RepairMode) -> Result<Option<Repaired>> {
    repair_with_fs(&StdFs, dir, mode)
}

/// What `repair` would do, changing nothing.
///
/// # Errors
/// As `repair`.
pub fn plan_repair(dir: &Path, mode: RepairMode) -> Result<Option<Repaired>> {
    run_repair(&StdFs, dir, mode, false)
}

/// `repair` on another file system, such as a fault-injecting one.
///
/// # Errors
/// As `repair`.
pub fn repair_with_fs(fs: &dyn Fs, dir: &Path, mode: RepairMode) -> Result<Option<Repaired>> {
    run_repair(fs, dir, mode, true)
}

fn run_repair(fs: &dyn Fs, dir: &Path, mode: RepairMode, write: bool) -> Result<Option<Repaired>> {
    let (_lock, analysis) = open_dir(fs, dir)?;
    let before = inspection(fs, analysis);
    let Some(damage) = &before.damage else { return Ok(None) };
    let corrupt = damage.kind == DamageKind::Corruption;
    if corrupt && mode == RepairMode::TornTail {
        return Err(Error::Corruption {
            path: damage.path.clone(),
            offset: damage.offset,
            reason: damage.reason.clone(),
        });
    }
    let cut = Cut {
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
    if !write {
        let report = if corrupt {
            RecoveryReport { salvaged: Some(Salvage { cut, deleted: dropped }), ..RecoveryReport::default() }
        } else {
            RecoveryReport { torn_tail: Some(cut), ..RecoveryReport::default() }
        };
        return Ok(Some(Repaired {
            backups: Vec::new(),
            report,
            last_index: before.groups.first().and_then(|group| group.last_index),
        }));
    }
    let backups = std::iter::once(&damage.path)
        .chain(&dropped)
        .map(|path| back_up(fs, dir, path))
        .collect::<Result<Vec<_>>>()?;
    // The backups' names must be durable before the originals change.
    fs.sync_dir(dir)?;
    let recovery = if corrupt { RecoveryMode::Salvage } else { RecoveryMode::TornTail };
    let recovered = recovery::recover(fs, dir, &Options { recovery, ..Options::default() })?;
    let index = &recovered.groups.get(DEFAULT_SLOT).expect("the default group is in every log").index;
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
    let copy = fs.create_new(&backup, original.mode()?)?;
    copy.write_all_at(&bytes, 0)?;
    copy.sync_all()?;
    Ok(backup)
}
