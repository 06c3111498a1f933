//! One segment file: created at its full size with its first bytes zeroed, zeroed in full
//! before the writer enters it, written by the committer, read by anyone, mapped once sealed.
//!
//! A new segment file has its header's size from the start (so a shortened file is still
//! damage that `open` reports), but past its first bytes it is a hole, which takes no disk
//! space. Records go only where zeros were written and synced (`zeroed`), so that the fdatasync
//! of a batch never commits a block allocation, and a full disk fails the housekeeper's zeroing,
//! which a waiting writer reports as an error, never the committer's write, which would poison
//! the log. A spare is made small and zeroed in full in the background (as soon as the writer
//! enters a segment of the full size; in a new log's small first segment, once it is half full);
//! the writer rotates into it only once that is done. Only the committer ever syncs a file the
//! committer writes: a failed fsync drops every dirty page of the file (and reports it once per
//! open file), so the housekeeper's sync of the active segment could lose records unseen.
//!
//! The first segment of a new log is small (`FIRST_SEGMENT_BYTES`) and zeroed while `open`
//! waits: a new log costs a few milliseconds and a MiB, not a segment's worth of zeros, and a log
//! that never fills half a segment holds about as much disk as it has data.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::format::{self, Kind, RECORD_HEADER_BYTES, SegmentHeader, SegmentId};
use crate::fs::{FileHandle, Fs, Mapping};
use crate::value::Entry;

/// Suffix of a segment being preallocated; such a file is never read and is deleted on open.
pub const TEMP_SUFFIX: &str = ".tmp";
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

/// The capacity of a new log's first segment (or `Options::segment_bytes` if smaller), zeroed in
/// full while `open` waits.
pub const FIRST_SEGMENT_BYTES: u64 = 1 << 20;
/// How much of a spare is zeroed when it is made (header included), at most: a quarter of a
/// small segment (so that the simulation's small segments zero the rest later too).
pub const SPARE_ZEROED_BYTES: u64 = 64 << 10;

/// How far past the last record's start a multi-entry read reads, to take that record in the
/// same `pread`.
const READ_AHEAD_BYTES: u64 = 4096;

pub struct Segment {
    pub id: SegmentId,
    /// The checksum seed every record in this segment is sealed with.
    pub seed: u32,
    pub path: PathBuf,
    pub bytes: u64,
    /// A purged segment given a new life: the bytes after the log's end are stale, and every
    /// write must leave a zero length word after its last record to mark the end.
    pub recycled: bool,
    file: Box<dyn FileHandle>,
    map: OnceLock<Box<dyn Mapping>>,
    /// Every byte before this is a record or a zero written and synced; after it, the file may
    /// be a hole. Records are placed only before it; the housekeeper zeroes only spares, after
    /// it, and moves it once its zeros are durable.
    zeroed: AtomicU64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Segment {
    /// Creates segment `id` of `bytes` bytes: header, zeros up to `initial`, a hole after them.
    /// The file gets its final name only once it is complete and durable, and the directory is
    /// synced.
    pub fn create(
        fs: &dyn Fs,
        dir: &Path,
        id: SegmentId,
        bytes: u64,
        initial: u64,
        mode: u32,
    ) -> Result<Segment> {
        let initial = initial.clamp(format::SEGMENT_HEADER_BYTES as u64, bytes);
        let path = dir.join(id.file_name());
        let temp = dir.join(format!("{}{TEMP_SUFFIX}", id.file_name()));
        let salt = fs.salt();
        let file = match fs.create_new(&temp, mode) {
            // A partial preallocation whose cleanup failed: ours to replace.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                fs.remove(&temp)?;
                fs.create_new(&temp, mode)?
            }
            created => created?,
        };
        let written = (|| {
            let header = SegmentHeader { salt, bytes, recycled: false };
            file.write_all_at(&format::encode_segment_header(id, header), 0)?;
            write_zeros(&*file, format::SEGMENT_HEADER_BYTES as u64, initial)?;
            file.set_len(bytes)?;
            file.sync_all()?;
            fs.rename(&temp, &path)?;
            fs.sync_dir(dir)
        })();
        if let Err(error) = written {
            forget_temp(fs, dir, &temp);
            return Err(error.into());
        }
        Ok(Segment::from_parts(id, SegmentHeader { salt, bytes, recycled: false }, path, file, initial))
    }

    /// Gives this segment, emptied by a purge and no longer read, a new life as segment `id`,
    /// without rewriting its bytes: its name goes first (durably, so that the old name never
    /// holds the new header), then a new header with a new salt, so that none of its old records
    /// validates, and a zero length word where the first record will go; then its new name.
    /// Until that rename it is a temporary file, which `open` deletes.
    pub fn recycle(mut self, fs: &dyn Fs, dir: &Path, id: SegmentId) -> Result<Segment> {
        self.unseal();
        let path = dir.join(id.file_name());
        let temp = dir.join(format!("{}{TEMP_SUFFIX}", id.file_name()));
        let salt = fs.salt();
        let header = SegmentHeader { salt, bytes: self.bytes, recycled: true };
        let renewed = (|| {
            fs.rename(&self.path, &temp)?;
            fs.sync_dir(dir)?;
            let mut start = format::encode_segment_header(id, header).to_vec();
            start.extend_from_slice(&[0; format::RECORD_ALIGN]);
            self.file.write_all_at(&start, 0)?;
            self.file.sync_data()?;
            fs.rename(&temp, &path)?;
            fs.sync_dir(dir)
        })();
        if let Err(error) = renewed {
            forget_temp(fs, dir, &temp);
            return Err(error.into());
        }
        let zeroed = self.zeroed();
        Ok(Segment::from_parts(id, header, path, self.file, zeroed))
    }

    /// A segment whose bytes before `zeroed` are records or zeros on the disk.
    pub fn from_parts(
        id: SegmentId,
        header: SegmentHeader,
        path: PathBuf,
        file: Box<dyn FileHandle>,
        zeroed: u64,
    ) -> Segment {
        Segment {
            id,
            seed: format::segment_seed(id, header.salt),
            path,
            bytes: header.bytes,
            recycled: header.recycled,
            file,
            map: OnceLock::new(),
            zeroed: AtomicU64::new(zeroed.min(header.bytes)),
        }
    }

    pub fn file(&self) -> &dyn FileHandle {
        &*self.file
    }

    /// Where records may go up to: see the field.
    pub fn zeroed(&self) -> u64 {
        self.zeroed.load(Ordering::Acquire)
    }

    /// Records now end at `end`, written by recovery before anything else writes this segment.
    pub fn zeroed_at_least(&self, end: u64) {
        self.zeroed.fetch_max(end.min(self.bytes), Ordering::AcqRel);
    }

    /// Whether the whole segment is zeroed: a spare is rotated in only then.
    pub fn is_zeroed(&self) -> bool {
        self.zeroed() >= self.bytes
    }

    /// Zeroes the rest of the segment and makes it durable before records may go there (the
    /// housekeeper's chore, on a spare only: nothing else writes it meanwhile).
    pub fn zero_rest(&self) -> std::io::Result<()> {
        let from = self.zeroed();
        if from < self.bytes {
            write_zeros(&*self.file, from, self.bytes)?;
            self.file.sync_data()?;
            self.zeroed.store(self.bytes, Ordering::Release);
        }
        Ok(())
    }

    /// Maps the segment for reads. Call only once nothing will write it again.
    pub fn seal(&self) -> Result<()> {
        if self.map.get().is_none() {
            let map = self.file.map().map_err(|source| read_error(&self.path, 0, source))?;
            let _ = self.map.set(map);
        }
        Ok(())
    }

    /// The mapped bytes from `from` on; empty unless sealed.
    pub fn bytes_of(&self, from: u64) -> &[u8] {
        self.map.get().and_then(|map| map.bytes().get(from as usize..)).unwrap_or_default()
    }

    /// Drops the mapping before the segment is written again (recovery's repair, or appends
    /// continuing in the newest segment).
    pub fn unseal(&mut self) {
        self.map.take();
    }

    pub fn corruption(&self, offset: u64, reason: impl ToString) -> Error {
        Error::Corruption { path: self.path.clone(), offset, reason: reason.to_string() }
    }

    /// Reads `buf.len()` bytes at `offset`; a failure names this file and the offset.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|source| read_error(&self.path, offset, source))
    }

    /// Reads and verifies the entry record at `offset`, which the index says holds `index`.
    pub fn read_entry(&self, offset: u64, index: u64) -> Result<Entry> {
        match self.map.get() {
            Some(map) => {
                let bytes = map.bytes().get(offset as usize..).unwrap_or_default();
                self.decode_entry(bytes, offset, index)
            }
            None => {
                let mut header = [0u8; RECORD_HEADER_BYTES];
                self.read_at(&mut header, offset)?;
                let len = format::record_bytes(&header) as u64;
                if len < RECORD_HEADER_BYTES as u64 || offset + len > self.bytes {
                    return Err(self.corruption(offset, format!("record length {len}")));
                }
                let mut record = vec![0u8; len as usize];
                self.read_at(&mut record, offset)?;
                self.decode_entry(&record, offset, index)
            }
        }
    }

    /// Reads consecutive entries `first..` whose records start at `offsets`, increasing, all
    /// written. Without a mapping, one `pread` covers them all, plus `READ_AHEAD_BYTES` for the
    /// last record; a record longer than that is read on its own.
    pub fn read_entries(&self, first: u64, offsets: &[u64]) -> Result<Vec<Entry>> {
        let (Some(&start), Some(&last)) = (offsets.first(), offsets.last()) else { return Ok(Vec::new()) };
        if self.map.get().is_some() || offsets.len() == 1 {
            return indexed(first, offsets).map(|(index, offset)| self.read_entry(offset, index)).collect();
        }
        debug_assert!(offsets.is_sorted(), "records are read in log order");
        let end = (last + READ_AHEAD_BYTES).min(self.bytes);
        let mut span = vec![0u8; (end - start) as usize];
        self.read_at(&mut span, start)?;
        indexed(first, offsets)
            .map(|(index, offset)| {
                let bytes = &span[(offset - start) as usize..];
                let len =
                    format::record_bytes(bytes.first_chunk().expect("a record header fits before the end"));
                if len > bytes.len() {
                    return self.read_entry(offset, index);
                }
                self.decode_entry(bytes, offset, index)
            })
            .collect()
    }

    /// Verifies an entry record in `bytes`, which starts at `offset` of this segment.
    pub fn decode_entry(&self, bytes: &[u8], offset: u64, index: u64) -> Result<Entry> {
        let record =
            format::decode_record(bytes, self.seed).map_err(|fault| self.corruption(offset, fault))?;
        if record.head.kind != Kind::Entry || record.head.index != index {
            return Err(self.corruption(
                offset,
                format!("expected entry {index}, found {:?} {}", record.head.kind, record.head.index),
            ));
        }
        Ok(Entry { index, term: record.head.term, data: record.payload.to_vec() })
    }
}

/// Deletes the temporary file of a failed creation or recycling, and syncs the directory, both
/// best effort (the next open deletes a leftover temporary file anyway). The sync matters: the
/// next attempt for the same id uses the same temporary name, and a power loss that kept its
/// rename but neither this deletion nor its own creation (names are durable only once their
/// directory is synced, each on its own) would give the segment's name to this failed file.
fn forget_temp(fs: &dyn Fs, dir: &Path, temp: &Path) {
    let _ = fs.remove(temp);
    let _ = fs.sync_dir(dir);
}

/// How much of a spare of `bytes` bytes is zeroed when it is made.
pub fn spare_zeroed(bytes: u64) -> u64 {
    (bytes / 4).clamp(format::SEGMENT_HEADER_BYTES as u64, SPARE_ZEROED_BYTES)
}

/// Writes zeros to `[from, to)` of `file`, a chunk at a time to the disk: flushed all at once by
/// a later sync, many MiB of zeros would queue ahead of the log's own writes and fdatasyncs.
fn write_zeros(file: &dyn FileHandle, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZEROS_CHUNK_BYTES.min((to - from) as usize)];
    let mut at = from;
    while at < to {
        let len = (to - at).min(ZEROS_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..len], at)?;
        file.write_back(at, len as u64)?;
        at += len as u64;
    }
    Ok(())
}

/// The error of a failed read of `path` at `offset`.
pub fn read_error(path: &Path, offset: u64, source: std::io::Error) -> Error {
    Error::Read { path: path.to_path_buf(), offset, source }
}

/// `(first + i, offsets[i])`: never past the last index, so it cannot overflow.
fn indexed(first: u64, offsets: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    offsets.iter().enumerate().map(move |(at, &offset)| (first + at as u64, offset))
}
