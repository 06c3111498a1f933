//! Opening a directory: find the segments, verify every record, replay them into a `LogState`,
//! and repair what a crash left behind, durably, before anything new is written.
//!
//! Where scanning a segment stops (a zero length, a bad record, the end of the file) decides
//! what happened there:
//! - the rest of the segment is zeros: the clean end of the log in that segment;
//! - the newest segment holding data, and no later valid batch record says the bytes at the stop
//!   were already durable: a torn tail, cut (in `RecoveryMode::TornTail`);
//! - anything else: corruption, reported with the file and offset (or, in
//!   `RecoveryMode::Salvage`, the log is cut there).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::{
    self, Checkpoint, Kind, Record, RecordFault, RecordHead, SEGMENT_HEADER_BYTES, SEGMENT_SUFFIX, SegmentId,
};
use crate::fs::{FileHandle, Fs};
use crate::groups::Groups;
use crate::index::Location;
use crate::options::{Options, RecoveryMode};
use crate::segment::{Segment, TEMP_SUFFIX, read_error};
use crate::value::{Cut, HardState, RecoveryReport, Salvage, SnapshotMeta};

pub const LOCK_FILE: &str = "LOCK";

/// Suffix of the copies `repair` keeps of the files it changes or deletes. `open` ignores them.
pub const BACKUP_SUFFIX: &str = ".broken";

/// The segment appends continue in.
pub struct Active {
    pub segment: Segment,
    pub offset: u64,
    /// No checkpoint record is in the segment yet; the first write must start with one.
    pub needs_checkpoint: bool,
}

pub struct Recovered {
    pub groups: Groups,
    /// Segments holding records, oldest first, sealed; the active one is not among them.
    pub sealed: Vec<Segment>,
    pub active: Option<Active>,
    /// Preallocated segments never written.
    pub spares: VecDeque<Segment>,
    pub next_segment_id: SegmentId,
    pub report: RecoveryReport,
}

/// The first damage a scan found.
#[derive(Clone, Debug)]
pub struct Damage {
    /// Position in `Analysis::segments` of the damaged segment; `None` when its header is bad
    /// (it is then not in `segments`).
    pub segment: Option<usize>,
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// A write a crash interrupted at the end of the newest segment, not corruption.
    pub torn: bool,
    /// End of the last non-zero bytes after `offset`: what a cut zeroes.
    pub cut_end: u64,
    /// The last entry (index, term) replayed before the damage.
    pub after: Option<(u64, u64)>,
}

/// What one segment held, as far as the scan got.
#[derive(Clone, Debug)]
pub struct SegmentSummary {
    pub id: SegmentId,
    pub path: PathBuf,
    pub bytes: u64,
    pub records: u64,
    /// Offset after the last valid record.
    pub end: u64,
    /// The first and last entry records in the segment, whether or not still live.
    pub entries: Option<(u64, u64)>,
    /// A recycled file: stale bytes follow its end mark.
    pub recycled: bool,
    checkpointed: bool,
}

/// A read-only scan of a directory: everything `recover` decides from.
pub struct Analysis {
    /// Segments with valid headers holding records, oldest first, up to any damaged one.
    pub segments: Vec<Segment>,
    pub summaries: Vec<SegmentSummary>,
    /// Blank preallocated segments after the last one holding records.
    pub spares: VecDeque<Segment>,
    /// The state replayed up to the first damage; `None` if no checkpoint was reached.
    pub groups: Option<Groups>,
    pub damage: Option<Damage>,
    /// Segment files after the damaged one, never read.
    pub later: Vec<PathBuf>,
    /// Files to delete once the log is known good (before an id gap; partial preallocations).
    pub obsolete: Vec<PathBuf>,
    /// The oldest segment id on disk (after the gap rule).
    pub oldest: Option<SegmentId>,
    pub records: u64,
    pub record_bytes: u64,
}

/// Scans `dir` without changing anything.
pub fn analyze(fs: &dyn Fs, dir: &Path) -> Result<Analysis> {
    let (ids, obsolete) = list_segments(fs, dir)?;
    let mut analysis = Analysis {
        segments: Vec::with_capacity(ids.len()),
        summaries: Vec::new(),
        spares: VecDeque::new(),
        groups: None,
        damage: None,
        later: Vec::new(),
        obsolete,
        oldest: ids.first().copied(),
        records: 0,
        record_bytes: 0,
    };
    for (at, &id) in ids.iter().enumerate() {
        let path = dir.join(id.file_name());
        let file = fs.open(&path)?;
        let bytes = file.size()?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        let readable = header.len().min(bytes as usize);
        file.read_exact_at(&mut header[..readable], 0).map_err(|source| read_error(&path, 0, source))?;
        let checked = format::decode_segment_header(&header[..readable], id)
            .map_err(|fault| fault.to_string())
            .and_then(|header| match header.bytes == bytes {
                true => Ok(header),
                // A segment file gets its size before it gets its name; no crash changes it.
                false => Err(format!("segment file is {bytes} bytes, its header says {}", header.bytes)),
            });
        match checked {
            Ok(header) => {
                // Records may go wherever the file is not a hole (a recycled file is written
                // throughout); `open` moves this to where the active segment's records end.
                let zeroed = if header.recycled { header.bytes } else { file.hole_start()? };
                analysis.segments.push(Segment::from_parts(id, header, path, file, zeroed));
            }
            Err(reason) => {
                analysis.damage = Some(Damage {
                    segment: None,
                    path,
                    offset: 0,
                    reason,
                    torn: false,
                    cut_end: 0,
                    after: None,
                });
                analysis.later = ids[at + 1..].iter().map(|id| dir.join(id.file_name())).collect();
                break;
            }
        }
    }
    for segment in &analysis.segments {
        segment.seal()?;
    }
    let prescans = prescan_all(&analysis.segments);
    while analysis.segments.last().is_some_and(|_| prescans[analysis.segments.len() - 1].blank) {
        let mut spare = analysis.segments.pop().expect("last exists");
        spare.unseal();
        analysis.spares.push_front(spare);
    }
    let newest = analysis.segments.last().map(|segment| segment.id);
    let mut replay = Replay { groups: None, records: 0, record_bytes: 0, last_entry: None };
    for (at, segment) in analysis.segments.iter().enumerate() {
        let prescan = &prescans[at];
        let scan = replay.segment(segment, prescan);
        let bytes = segment.bytes_of(0);
        let stop = scan.stop as usize;
        let tail = if scan.stop == prescan.end {
            prescan.tail
        } else {
            Tail::after(bytes, stop, segment.seed, segment.recycled)
        };
        analysis.summaries.push(SegmentSummary {
            id: segment.id,
            path: segment.path.clone(),
            bytes: segment.bytes,
            records: scan.records,
            end: scan.stop,
            entries: scan.entries,
            recycled: segment.recycled,
            checkpointed: scan.checkpointed,
        });
        // The end of the log: zeros after it, or in a recycled file its end mark and nothing
        // after it of this file's own.
        let clean_end = match segment.recycled {
            false => tail.last_nonzero.is_none(),
            true => Tail::end_marked(bytes, stop) && tail.live_after.is_none(),
        };
        if scan.fault.is_none() && clean_end {
            continue;
        }
        analysis.damage = Some(Damage {
            segment: Some(at),
            path: segment.path.clone(),
            offset: scan.stop,
            reason: scan.fault.clone().unwrap_or_else(|| "bytes after the end of the log".into()),
            torn: Some(segment.id) == newest && !tail.durable_claim && scan.replay_error.is_none(),
            // A cut zeroes whatever could validate again: in a recycled file, the end mark and
            // any record of its own after it (stale records of earlier lives never validate).
            cut_end: match segment.recycled {
                false => tail.last_nonzero.unwrap_or(stop),
                true => tail.live_after.unwrap_or(0).max(stop + format::RECORD_ALIGN).min(bytes.len()),
            } as u64,
            after: replay.last_entry,
        });
        analysis.later = analysis.segments[at + 1..].iter().map(|later| later.path.clone()).collect();
        analysis.segments.truncate(at + 1);
        break;
    }
    analysis.groups = replay.groups;
    analysis.records = replay.records;
    analysis.record_bytes = replay.record_bytes;
    Ok(analysis)
}

/// Opens a directory for a `Wal`: analyzes it, decides by `options.recovery` what to do about
/// damage, and only then repairs, durably.
pub fn recover(fs: &dyn Fs, dir: &Path, options: &Options) -> Result<Recovered> {
    settle(fs, dir)?;
    let analysis = analyze(fs, dir)?;
    let mut report = RecoveryReport {
        segments: analysis.summaries.len() + analysis.spares.len(),
        record_bytes: analysis.record_bytes,
        records: analysis.records,
        ..RecoveryReport::default()
    };
    let Analysis { mut segments, summaries, mut spares, groups, damage, later, obsolete, oldest, .. } =
        analysis;
    // Only a durable purge deletes segments, and its record sits in a segment that survives it,
    // after a checkpoint. With segment 1 gone and no checkpoint left, the segments that held the
    // log's state are gone too: an empty log would make the node forget its vote.
    let state_lost = groups.is_none() && oldest.is_some_and(|oldest| oldest != SegmentId(1));
    let mut dropped = Vec::new();
    if let Some(damage) = &damage {
        let cut = Cut {
            path: damage.path.clone(),
            offset: damage.offset,
            bytes_zeroed: damage.cut_end.saturating_sub(damage.offset),
            reason: damage.reason.clone(),
        };
        match options.recovery {
            RecoveryMode::TornTail if damage.torn => report.torn_tail = Some(cut),
            RecoveryMode::Salvage => {
                if state_lost {
                    // The cut drops the only checkpoint that says what the log held.
                    return Err(Error::Corruption {
                        path: damage.path.clone(),
                        offset: damage.offset,
                        reason: format!(
                            "{}; cannot salvage: the damage precedes the oldest checkpoint",
                            damage.reason
                        ),
                    });
                }
                if damage.segment.is_none() {
                    dropped.push(damage.path.clone());
                }
                dropped.extend(later.iter().cloned());
                dropped.extend(spares.drain(..).map(|spare| spare.path.clone()));
                report.salvaged = Some(Salvage { cut, deleted: dropped.clone() });
            }
            _ => {
                return Err(Error::Corruption {
                    path: damage.path.clone(),
                    offset: damage.offset,
                    reason: damage.reason.clone(),
                });
            }
        }
    }
    if let Some(oldest) = oldest.filter(|_| state_lost) {
        return Err(Error::MissingSegments { dir: dir.to_path_buf(), oldest: oldest.0 });
    }
    let mut groups = groups.unwrap_or_default();
    let missing: Vec<(u32, u64, u64)> = groups
        .iter()
        .filter_map(|(slot, state)| state.log.index.missing().map(|(first, last)| (slot, first, last)))
        .collect();
    // The state before the salvage's purges, for a checkpoint that must come before them.
    let checkpoint_before = (!missing.is_empty()).then(|| groups.encode_checkpoint());
    let mut purges = Vec::new();
    for (slot, first, last) in missing {
        // Only salvage may drop them: its cut (now, or in an earlier salvage that a crash
        // interrupted before its purges were durable) dropped the purge that justified deleting
        // these entries' segment (or the copy of an entry relocated out of it). Without salvage,
        // the segment was lost some other way.
        if options.recovery != RecoveryMode::Salvage {
            return Err(Error::MissingEntries { first, last });
        }
        let id = groups.id_of(slot).expect("listed groups exist");
        let log = groups.get(slot).expect("listed groups exist");
        // The log stays contiguous: everything up to the last missing entry goes, including
        // copies of relocated entries that survived between missing ones. The dropped entry's
        // term is unknown; terms never decrease along a log, so the last compacted entry's is a
        // lower bound, which never makes this log look newer than it is to an election.
        let term = log.purged.map_or(0, |purged| purged.term);
        let dropped = log.index.first()..=last;
        log.check_purge(last).map_err(|error| Error::Corruption {
            path: dir.to_path_buf(),
            offset: 0,
            reason: format!("cannot salvage group {id}: {error}"),
        })?;
        groups.change(slot, |log| log.apply_purge(last, term));
        purges.push(RecordHead { kind: Kind::Purge, flags: 0, group: slot, index: last, term });
        report.missing_dropped.insert(id, dropped);
    }
    report.groups = groups.ids();

    // Decided; now change the disk. A crash from here on leaves damage that the next open
    // repairs the same way.
    let mut active = None;
    if let Some(mut newest) = segments.pop() {
        let summary = &summaries[segments.len()];
        match &damage {
            Some(damage) if damage.segment.is_some() => {
                newest = zero_range(newest, damage.offset, damage.cut_end)?;
            }
            _ => newest.unseal(),
        }
        active =
            Some(Active { offset: summary.end, needs_checkpoint: !summary.checkpointed, segment: newest });
    }
    // Newest first, each deletion durable before the next: a crash or power loss part-way then
    // leaves a gap-free run of older segments, which the next open repairs the same way. Oldest
    // first, or several deletions unsynced (a power loss may keep any of them), could leave a
    // gap, and the gap rule would take the salvaged segments before it for the obsolete
    // leftovers of a purge.
    dropped.sort_unstable_by(|a, b| b.cmp(a));
    for path in &dropped {
        delete_files(fs, std::slice::from_ref(path))?;
        fs.sync_dir(dir)?;
    }
    // Only now that nothing live is missing is it safe to delete what the gap rule called
    // obsolete.
    delete_files(fs, &obsolete)?;
    report.obsolete_files_deleted = obsolete.len();
    // One sync makes the deletions durable, and the names found too, which may not be yet: a
    // crash, or a failed directory sync, can interrupt a segment's creation after its rename.
    // Appends are about to rely on them. A power loss before it may keep any of the deletions
    // and lose the others; the next open decides again, the same way.
    fs.sync_dir(dir)?;
    let mut sealed = segments;
    // The next id follows the newest surviving segment, so the ids on disk stay gapless even
    // after salvage deleted the newest ones.
    let newest = spares
        .back()
        .or(active.as_ref().map(|active| &active.segment))
        .or(sealed.last())
        .map(|segment| segment.id);
    let mut next_segment_id = newest.map_or(SegmentId(1), SegmentId::next);
    if let Some(checkpoint) = checkpoint_before {
        let target = Target { fs, dir, options, sealed: &mut sealed, spares: &mut spares, next_segment_id };
        active = Some(write_salvage(target, active, &checkpoint, &purges)?);
        next_segment_id = spares
            .back()
            .or(active.as_ref().map(|active| &active.segment))
            .map_or(next_segment_id, |segment| segment.id.next().max(next_segment_id));
    }
    Ok(Recovered { groups, sealed, active, spares, next_segment_id, report })
}

/// Where `write_salvage` may put its records.
struct Target<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    options: &'a Options,
    sealed: &'a mut Vec<Segment>,
    spares: &'a mut VecDeque<Segment>,
    next_segment_id: SegmentId,
}

/// Makes salvage's in-memory change durable: writes `purges` (of the entries salvage found
/// missing) after the log's end, behind a batch record and, in a segment with none yet, a
/// checkpoint of the state before them, and fdatasyncs them; in a new segment if the active one
/// has no room. A replay then ends where salvage did, so the next `open` needs no salvage, and a
/// checkpoint written later agrees with the log replayed before it. A crash before the sync
/// leaves the log as salvage found it, and the next salvage does the same again.
fn write_salvage(
    target: Target<'_>,
    active: Option<Active>,
    checkpoint: &[u8],
    purges: &[RecordHead],
) -> Result<Active> {
    let bytes_for = |needs_checkpoint: bool| {
        format::BATCH_RECORD_BYTES
            + if needs_checkpoint { format::record_bytes_aligned(checkpoint.len()) } else { 0 }
            + purges.len() * format::record_bytes_aligned(0)
    };
    let fits =
        |active: &Active| active.offset + bytes_for(active.needs_checkpoint) as u64 <= active.segment.bytes;
    let mut active = match active {
        Some(active) if fits(&active) => active,
        old => {
            let segment = match target.spares.pop_front() {
                Some(spare) => spare,
                None => Segment::create(
                    target.fs,
                    target.dir,
                    target.next_segment_id,
                    target.options.segment_bytes,
                    target.options.segment_bytes,
                    target.options.file_mode,
                )?,
            };
            if let Some(old) = old {
                old.segment.seal()?;
                target.sealed.push(old.segment);
            }
            let fresh = Active { offset: SEGMENT_HEADER_BYTES as u64, needs_checkpoint: true, segment };
            if !fits(&fresh) {
                return Err(Error::TooLarge {
                    what: "salvage's purges with the segment checkpoint",
                    bytes: bytes_for(true) as u64,
                    limit: target.options.segment_capacity(),
                });
            }
            fresh
        }
    };
    let seed = active.segment.seed;
    let mut buf = Vec::new();
    let batch = RecordHead { kind: Kind::Batch, flags: 0, group: 0, index: 0, term: 0 };
    let claim: [u8; format::BATCH_PAYLOAD_BYTES] = format::encode_u64s([active.offset]);
    format::encode_record(&mut buf, seed, batch, &claim);
    if active.needs_checkpoint {
        let head = RecordHead { kind: Kind::Checkpoint, flags: 0, group: 0, index: 0, term: 0 };
        format::encode_record(&mut buf, seed, head, checkpoint);
    }
    for purge in purges {
        format::encode_record(&mut buf, seed, *purge, &[]);
    }
    let end = active.offset + buf.len() as u64;
    // A recycled file's end is marked by a zero length word after the last record.
    if end + format::RECORD_ALIGN as u64 <= active.segment.bytes {
        buf.extend_from_slice(&[0; format::RECORD_ALIGN]);
    }
    let file = active.segment.file();
    file.write_all_at(&buf, active.offset)?;
    if let Err(error) = file.sync_data() {
        // As in `zero_range`: the records may never reach the disk while the cache shows them.
        let _ = file.drop_cache(active.offset, buf.len() as u64);
        return Err(error.into());
    }
    active.offset = end;
    active.needs_checkpoint = false;
    Ok(active)
}

/// Makes the disk, not the page cache, the source of what recovery reads.
///
/// A restart is not a reboot. After a process crash the cache may hold writes that were never
/// synced; after a failed fsync Linux may have marked pages clean that never reached the disk,
/// and reads keep returning them (fsyncgate). So, from the newest segment back to the newest
/// one whose first write began: fdatasync it (what the cache holds that the disk may not, the
/// disk holds now; what a failed sync lost stays lost) and drop it from the cache (what is read
/// next comes from the disk). Older segments were synced before the next one was first written.
///
/// After a clean close none of that is needed, and dropping the newest segment would make every
/// restart read it from the disk: when the cache shows the close claim as the last record and
/// the disk holds that claim too, everything before it is durable, and nothing came after it.
fn settle(fs: &dyn Fs, dir: &Path) -> Result<()> {
    let (ids, _) = list_segments(fs, dir)?;
    let mut files = Vec::new();
    let mut begun = None;
    for id in ids.iter().rev() {
        let file = fs.open(&dir.join(id.file_name()))?;
        file.sync_data()?;
        let mut first = [0u8; 4];
        let started = file.size()? >= (SEGMENT_HEADER_BYTES + first.len()) as u64
            && file.read_exact_at(&mut first, SEGMENT_HEADER_BYTES as u64).is_ok()
            && first != [0; 4];
        if started {
            begun = Some((*id, file));
            break;
        }
        files.push(file);
    }
    if let Some((id, file)) = begun {
        if closed_cleanly(&*file, id, &dir.join(id.file_name()))? {
            return Ok(());
        }
        files.push(file);
    }
    for file in &files {
        file.drop_cache(0, 0)?;
    }
    Ok(())
}

/// Whether segment `id` ends with the claim a clean `close` writes, in the cache and on the
/// disk: the last record is a batch record whose `durable_to` is its own offset, only zeros
/// follow it, and the same record, read again from the disk, validates.
fn closed_cleanly(file: &dyn FileHandle, id: SegmentId, path: &Path) -> Result<bool> {
    let claim = {
        let map = file.map().map_err(|source| read_error(path, 0, source))?;
        let bytes = map.bytes();
        let Ok(header) = format::decode_segment_header(bytes, id) else { return Ok(false) };
        let Some(last) = format::frames(bytes).last() else { return Ok(false) };
        let end = last.offset as usize + last.record_bytes.next_multiple_of(format::RECORD_ALIGN);
        // Nothing written after the claim: zeros, or in a recycled file the end mark, which the
        // next write would have overwritten.
        let nothing_after = match header.recycled {
            false => bytes.get(end..).is_some_and(is_blank),
            true => end <= bytes.len() && Tail::end_marked(bytes, end),
        };
        if last.record_bytes != format::BATCH_RECORD_BYTES || !nothing_after {
            return Ok(false);
        }
        // The mapping goes here: mapped pages cannot be dropped from the cache.
        (last.offset as usize, header.salt)
    };
    let (offset, salt) = claim;
    let mut record = [0u8; format::BATCH_RECORD_BYTES];
    file.drop_cache(offset as u64, record.len() as u64)?;
    file.read_exact_at(&mut record, offset as u64)
        .map_err(|source| read_error(path, offset as u64, source))?;
    Ok(format::batch_claim(&record, format::segment_seed(id, salt)) == Some(offset as u64))
}

/// The segment files in `dir`, in id order; an error if it holds a file raftwal did not write.
pub fn segment_names(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>> {
    let (ids, obsolete) = list_segments(fs, dir)?;
    let mut names: Vec<PathBuf> =
        obsolete.into_iter().chain(ids.iter().map(|id| dir.join(id.file_name()))).collect();
    names.retain(|path| !path.to_string_lossy().ends_with(TEMP_SUFFIX));
    names.sort();
    Ok(names)
}

/// The segment ids to replay, oldest first, and the files to delete once replay succeeded.
///
/// Segments are deleted oldest first, so a gap in the ids means everything before it was
/// being deleted when a crash struck (or the deletions were not yet durable): only the run
/// after the last gap is live. Leftover partial preallocations are obsolete too; any other
/// file is an error.
fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<(Vec<SegmentId>, Vec<PathBuf>)> {
    let mut ids = Vec::new();
    let mut obsolete = Vec::new();
    for name in fs.list(dir)? {
        // A symbolic link, directory or device is no file of ours, whatever its name: never
        // follow it.
        if !fs.is_regular_file(&dir.join(&name))? {
            return Err(Error::ForeignFile(dir.join(name)));
        }
        if name == LOCK_FILE || name.contains(BACKUP_SUFFIX) {
            continue;
        }
        if let Some(id) = SegmentId::parse(&name) {
            ids.push(id);
        } else if name.strip_suffix(TEMP_SUFFIX).and_then(SegmentId::parse).is_some() {
            obsolete.push(dir.join(&name));
        } else {
            return Err(Error::ForeignFile(dir.join(name)));
        }
    }
    ids.sort_unstable();
    let live_from = ids.windows(2).rposition(|pair| pair[1].0 != pair[0].0 + 1).map_or(0, |at| at + 1);
    obsolete.extend(ids.drain(..live_from).map(|id| dir.join(id.file_name())));
    Ok((ids, obsolete))
}

/// Deletes `paths`; the caller syncs the directory.
fn delete_files(fs: &dyn Fs, paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        debug_assert!(path.to_string_lossy().contains(SEGMENT_SUFFIX));
        fs.remove(path)?;
    }
    Ok(())
}

/// Overwrites `[from, to)` of a segment with zeros and makes that durable, so that nothing
/// that was there can validate again once new records are written in front of it.
fn zero_range(mut segment: Segment, from: u64, to: u64) -> Result<Segment> {
    const CHUNK_BYTES: u64 = 1 << 20;
    segment.unseal();
    if to > from {
        let zeros = vec![0u8; (to - from).min(CHUNK_BYTES) as usize];
        let mut at = from;
        while at < to {
            let len = (to - at).min(CHUNK_BYTES);
            segment.file().write_all_at(&zeros[..len as usize], at)?;
            at += len;
        }
        if let Err(error) = segment.file().sync_data() {
            // The zeros may never reach the disk while the cache shows them, and a later open
            // that trusts a clean close would take the cache's word for it: evict them.
            let _ = segment.file().drop_cache(from, to - from);
            return Err(error.into());
        }
    }
    Ok(segment)
}

fn is_blank(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(64);
    chunks.all(|chunk| chunk.iter().fold(0, |acc, byte| acc | byte) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

/// How many threads at most read segments at once while opening.
const PRESCAN_THREADS_MAX: usize = 8;

/// A segment read without replaying it, so that all of them can be read at once: checksums
/// and the zeros after the records are most of the work of opening a log, and only the replay
/// of the records must go in order.
struct Prescan {
    /// Nothing but zeros after the header: a preallocated spare if no later segment holds
    /// records.
    blank: bool,
    /// Where the chain of valid records from the header on ends.
    end: u64,
    /// Why the chain ends there, unless at zeros or the end of the file.
    fault: Option<String>,
    tail: Tail,
}

fn prescan(segment: &Segment) -> Prescan {
    let bytes = segment.bytes_of(0);
    let header = SEGMENT_HEADER_BYTES.min(bytes.len());
    let blank = if segment.recycled {
        // Stale bytes follow the end mark a recycled spare starts with: blank unless a write
        // of its own began (and was torn) there.
        Tail::end_marked(bytes, header)
            && Tail::after_recycled(bytes, header, segment.seed).live_after.is_none()
    } else {
        is_blank(&bytes[header..])
    };
    let mut scan = Prescan { blank, end: header as u64, fault: None, tail: Tail::default() };
    if scan.blank {
        return scan;
    }
    let mut at = header;
    while at < bytes.len() {
        match format::decode_record(&bytes[at..], segment.seed) {
            Ok(record) => at += record.bytes_aligned,
            Err(RecordFault::Empty) => break,
            Err(fault) => {
                scan.fault = Some(fault.to_string());
                break;
            }
        }
    }
    scan.end = at as u64;
    scan.tail = Tail::after(bytes, at, segment.seed, segment.recycled);
    scan
}

/// Below this many bytes of segments, a thread costs more to start than it saves.
const PRESCAN_THREAD_BYTES_MIN: u64 = 4 << 20;

/// Prescans every (sealed) segment, on up to `PRESCAN_THREADS_MAX` threads.
fn prescan_all(segments: &[Segment]) -> Vec<Prescan> {
    let bytes: u64 = segments.iter().map(|segment| segment.bytes).sum();
    let threads = if bytes < PRESCAN_THREAD_BYTES_MIN {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(segments.len())
            .min(PRESCAN_THREADS_MAX)
    };
    let slots: Vec<Mutex<Option<Prescan>>> = segments.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(segment) = segments.get(at) else { return };
            *slots[at].lock() = Some(prescan(segment));
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new().name("raftwal-open".into()).spawn_scoped(scope, work);
        }
        work();
    });
    slots.into_iter().map(|slot| slot.into_inner().expect("every segment was prescanned")).collect()
}

/// What lies after the place where scanning a segment stopped.
#[derive(Clone, Copy, Default)]
struct Tail {
    /// End of the last 8-byte word holding a nonzero byte.
    last_nonzero: Option<usize>,
    /// A valid batch record says bytes at or after the stop were durable before it was written.
    durable_claim: bool,
    /// Recycled segments only: the end of the last record after the stop that validates for
    /// this segment's seed. Stale records of earlier lives never do; the rest of a torn write
    /// can.
    live_after: Option<usize>,
}

impl Tail {
    fn after(bytes: &[u8], stop: usize, seed: u32, recycled: bool) -> Tail {
        if recycled {
            return Tail::after_recycled(bytes, stop, seed);
        }
        let mut tail = Tail::default();
        // The usual tail, the unwritten rest of the newest segment, is zeros: check those at
        // memory speed before walking word by word.
        if bytes.get(stop..).is_none_or(is_blank) {
            return tail;
        }
        let mut at = stop;
        while at + 8 <= bytes.len() {
            let word = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            if word != 0 {
                tail.last_nonzero = Some(at + 8);
                // Only a batch record can make a claim: a tail of random bytes costs one pass.
                if format::batch_claim(&bytes[at..], seed).is_some_and(|durable_to| durable_to > stop as u64)
                {
                    tail.durable_claim = true;
                }
            }
            at += format::RECORD_ALIGN;
        }
        tail
    }

    /// The tail of a recycled segment: stale bytes, in which only records of this segment's own
    /// seed matter (the rest of a torn write, or a batch record's claim).
    fn after_recycled(bytes: &[u8], stop: usize, seed: u32) -> Tail {
        let mut tail = Tail::default();
        let mut at = stop;
        while at + format::RECORD_ALIGN <= bytes.len() {
            if let Some(record_bytes) = format::valid_record_at(&bytes[at..], seed) {
                tail.live_after = Some(at + record_bytes);
                if format::batch_claim(&bytes[at..], seed).is_some_and(|durable_to| durable_to > stop as u64)
                {
                    tail.durable_claim = true;
                }
            }
            at += format::RECORD_ALIGN;
        }
        tail
    }

    /// Whether the log's end in a recycled segment is marked there: the zero length word every
    /// write leaves after its last record, or the end of the file.
    fn end_marked(bytes: &[u8], stop: usize) -> bool {
        bytes.get(stop..stop + format::RECORD_ALIGN).is_none_or(|word| word.iter().all(|&byte| byte == 0))
    }
}

/// How scanning one segment went.
struct SegmentScan {
    /// Offset after the last record replayed.
    stop: u64,
    /// Why scanning stopped before the end of the file, unless at a zero length.
    fault: Option<String>,
    /// A record validated but contradicts the log (a bug or a forged record, never a torn write).
    replay_error: Option<String>,
    checkpointed: bool,
    records: u64,
    entries: Option<(u64, u64)>,
}

struct Replay {
    groups: Option<Groups>,
    records: u64,
    record_bytes: u64,
    last_entry: Option<(u64, u64)>,
}

impl Replay {
    /// Replays the records `prescan` found valid, up to the first that contradicts the log.
    fn segment(&mut self, segment: &Segment, prescan: &Prescan) -> SegmentScan {
        let bytes = segment.bytes_of(0);
        let mut scan = SegmentScan {
            stop: SEGMENT_HEADER_BYTES as u64,
            fault: None,
            replay_error: None,
            checkpointed: false,
            records: 0,
            entries: None,
        };
        while scan.stop < prescan.end {
            let at = scan.stop as usize;
            let record = match format::decode_verified_record(&bytes[at..]) {
                Ok(record) => record,
                Err(fault) => {
                    // Only if the mapped bytes changed under us since the prescan.
                    scan.fault = Some(fault.to_string());
                    break;
                }
            };
            if let Err(reason) = self.apply(segment, at as u64, &record, &mut scan) {
                scan.fault = Some(reason.clone());
                scan.replay_error = Some(reason);
                break;
            }
            if record.head.kind == Kind::Entry {
                let index = record.head.index;
                scan.entries = Some(scan.entries.map_or((index, index), |(first, _)| (first, index)));
                self.last_entry = Some((index, record.head.term));
            }
            scan.records += 1;
            self.records += 1;
            self.record_bytes += record.bytes_aligned as u64;
            scan.stop += record.bytes_aligned as u64;
        }
        if scan.stop == prescan.end {
            scan.fault.clone_from(&prescan.fault);
        }
        scan
    }

    fn apply(
        &mut self,
        segment: &Segment,
        offset: u64,
        record: &Record<'_>,
        scan: &mut SegmentScan,
    ) -> Result<(), String> {
        let head = record.head;
        let known_flags = match head.kind {
            Kind::Snapshot => format::SNAPSHOT_KEEPS_LOG,
            Kind::Entry => format::ENTRY_RELOCATED,
            _ => 0,
        };
        if head.flags & !known_flags != 0 {
            return Err(format!("unknown flags {:#x} on a {:?} record", head.flags, head.kind));
        }
        if matches!(head.kind, Kind::Batch | Kind::Checkpoint) && head.group != 0 {
            return Err(format!("{:?} record names group slot {}", head.kind, head.group));
        }
        match head.kind {
            Kind::Batch => {
                return format::decode_u64s::<1>(record.payload)
                    .map(|_| ())
                    .ok_or_else(|| "bad batch record".into());
            }
            Kind::Checkpoint => {
                if scan.checkpointed {
                    return Err("second checkpoint in one segment".into());
                }
                scan.checkpointed = true;
                return match &self.groups {
                    None => {
                        let checkpoint =
                            Checkpoint::decode(record.payload).ok_or("bad checkpoint payload")?;
                        self.groups = Some(
                            Groups::from_checkpoint(&checkpoint).ok_or("checkpoint names a group twice")?,
                        );
                        Ok(())
                    }
                    // A checkpoint has one encoding: the state replayed so far must give its bytes.
                    Some(groups) if groups.encode_checkpoint() == record.payload => Ok(()),
                    Some(_) => Err("checkpoint disagrees with the log replayed before it".into()),
                };
            }
            _ if !scan.checkpointed => {
                return Err(format!("{:?} record before the segment's checkpoint", head.kind));
            }
            _ => {}
        }
        let groups = self.groups.as_mut().expect("a checkpoint came first");
        let fail = |error: Error| error.to_string();
        let slot = head.group;
        match head.kind {
            Kind::GroupCreate => {
                let [id] = format::decode_u64s::<1>(record.payload).ok_or("bad group create payload")?;
                if slot != groups.next_slot() {
                    return Err(format!("group {id} created in slot {slot}, not {}", groups.next_slot()));
                }
                groups.check_create(id).map_err(fail)?;
                groups.apply_create(slot, id);
                return Ok(());
            }
            Kind::GroupRemove => {
                let id = groups.id_of(slot).ok_or_else(|| format!("removes group slot {slot}, not live"))?;
                groups.check_remove(slot, id).map_err(fail)?;
                groups.apply_remove(slot);
                return Ok(());
            }
            _ => {}
        }
        let log = groups
            .get(slot)
            .ok_or_else(|| format!("{:?} record for group slot {slot}, not live", head.kind))?;
        match head.kind {
            Kind::Entry if head.flags == format::ENTRY_RELOCATED => {
                let term_matches = log.index.term(head.index).is_none_or(|term| term == head.term);
                if !log.index.contains(head.index) || !term_matches {
                    return Err(format!("relocated entry {} does not match the log", head.index));
                }
                let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
                let location = Location { segment: segment.id, offset };
                groups.change(slot, |log| log.index.relocate(head.index, head.term, location));
            }
            Kind::Entry => {
                log.check_append(head.index, head.index).map_err(fail)?;
                let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
                let location = Location { segment: segment.id, offset };
                groups.append(slot, |log| log.apply_entry(head.index, head.term, location));
            }
            Kind::Truncate => {
                log.check_truncate(head.index).map_err(fail)?;
                groups.change(slot, |log| log.apply_truncate(head.index));
            }
            Kind::Purge => {
                // Written only when it dropped something; during replay the entries it drops may
                // be missing, so the term comes from the record.
                log.check_purge(head.index).map_err(fail)?;
                if head.index >= log.index.first() {
                    groups.change(slot, |log| log.apply_purge(head.index, head.term));
                }
            }
            Kind::HardState => {
                let [term, vote, commit] =
                    format::decode_u64s::<3>(record.payload).ok_or("bad hard state payload")?;
                groups.change(slot, |log| log.hard_state = Some(HardState { term, vote, commit }));
            }
            Kind::Metadata => groups.change(slot, |log| log.metadata = Some(Box::from(record.payload))),
            Kind::Snapshot => {
                let meta = SnapshotMeta { index: head.index, term: head.term, data: record.payload.to_vec() };
                log.check_snapshot(&meta).map_err(fail)?;
                let keep_log = head.flags == format::SNAPSHOT_KEEPS_LOG;
                let at_purge_point = log.purged.is_some_and(|purged| purged.index == meta.index);
                if keep_log && !log.index.contains(meta.index) && !at_purge_point {
                    return Err(format!("snapshot at {} keeps a log that does not hold it", meta.index));
                }
                if keep_log && log.term_of(meta.index).is_some_and(|term| term != meta.term) {
                    return Err(format!(
                        "snapshot at {} keeps a log whose entry has another term",
                        meta.index
                    ));
                }
                groups.change(slot, |log| log.apply_snapshot(meta, keep_log));
            }
            Kind::Batch | Kind::Checkpoint | Kind::GroupCreate | Kind::GroupRemove => {
                unreachable!("handled above")
            }
        }
        Ok(())
    }
}
