//! One segment file: created preallocated, written by the committer, read by anyone, mapped
//! once sealed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::format::{self, Kind, RECORD_HEADER_BYTES, SegmentHeader, SegmentId};
use crate::fs::{FileHandle, Fs, Mapping};
use crate::value::Entry;

/// Suffix of a segment being preallocated; such a file is never read and is deleted on open.
pub const TEMP_SUFFIX: &str = ".tmp";
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

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
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Segment {
    /// Creates segment `id` of `bytes` bytes: header, then zeros written (not just allocated)
    /// to the end, so later fdatasyncs need not commit size or extent changes. The file gets
    /// its final name only once it is complete and durable, and the directory is synced.
    pub fn create(fs: &dyn Fs, dir: &Path, id: SegmentId, bytes: u64, mode: u32) -> Result<Segment> {
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
            let zeros = vec![0u8; ZEROS_CHUNK_BYTES.min(bytes as usize)];
            let mut at = format::SEGMENT_HEADER_BYTES as u64;
            while at < bytes {
                let len = (bytes - at).min(ZEROS_CHUNK_BYTES as u64) as usize;
                file.write_all_at(&zeros[..len], at)?;
                // One chunk at a time to the disk: flushed all at once by the sync below, 64 MiB
                // of zeros would queue ahead of the log's own writes and fdatasyncs.
                file.write_back(at, len as u64)?;
                at += len as u64;
            }
            file.sync_all()?;
            fs.rename(&temp, &path)?;
            fs.sync_dir(dir)
        })();
        if let Err(error) = written {
            // Best effort: a leftover temp file is deleted on the next open anyway.
            let _ = fs.remove(&temp);
            return Err(error.into());
        }
        Ok(Segment::from_parts(id, SegmentHeader { salt, bytes, recycled: false }, path, file))
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
            // Best effort, as in `create`: the next open deletes a leftover temporary file.
            let _ = fs.remove(&temp);
            return Err(error.into());
        }
        Ok(Segment::from_parts(id, header, path, self.file))
    }

    pub fn from_parts(
        id: SegmentId,
        header: SegmentHeader,
        path: PathBuf,
        file: Box<dyn FileHandle>,
    ) -> Segment {
        Segment {
            id,
            seed: format::segment_seed(id, header.salt),
            path,
            bytes: header.bytes,
            recycled: header.recycled,
            file,
            map: OnceLock::new(),
        }
    }

    pub fn file(&self) -> &dyn FileHandle {
        &*self.file
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

/// `(first + i, offsets[i])`: never past the last index, so it cannot overflow.
/// The error of a failed read of `path` at `offset`.
pub fn read_error(path: &Path, offset: u64, source: std::io::Error) -> Error {
    Error::Read { path: path.to_path_buf(), offset, source }
}

fn indexed(first: u64, offsets: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    offsets.iter().enumerate().map(move |(at, &offset)| (first + at as u64, offset))
}
