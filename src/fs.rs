//! The file-system seam. Every byte raftwal reads or writes, and every directory change, goes
//! through [`Fs`] and [`FileHandle`], so a fault-injecting file system can stand in for the real
//! one. [`StdFs`] is the real one; it is the only code in the crate that calls the OS.

// Every method fails with the error of the OS (or of the simulation) it calls; saying so on
// each would repeat it thirty times.
#![allow(clippy::missing_errors_doc)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A file system: directories, names and the files behind them.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates `dir` and its missing parents; those it creates get permission bits `mode`
    /// (before the umask).
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()>;
    /// Names of the entries in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Creates a file that must not exist yet, for reading and writing, with permission bits
    /// `mode` (before the umask).
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn FileHandle>>;
    /// Removes the name `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing any file named `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable. Tracks its caller, so that a
    /// simulated file system can tell the call sites apart (`SimFs::skip_dir_syncs_at`).
    #[track_caller]
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created with permission bits `mode` if missing), held
    /// until the guard drops. Fails with `io::ErrorKind::WouldBlock` when another holder has it.
    fn lock(&self, path: &Path, mode: u32) -> io::Result<Box<dyn LockGuard>>;
    /// Whether `path` is a regular file, not a symbolic link, directory or anything else.
    /// By default, true.
    fn is_regular_file(&self, path: &Path) -> io::Result<bool> {
        let _ = path;
        Ok(true)
    }
    /// A fresh salt for a new segment: unpredictable, so bytes from an earlier file that had
    /// the same id never validate in the new one.
    fn salt(&self) -> u64;
    /// `Some(seed)` asks a `Wal` on this file system to run its background work (group commit,
    /// preallocation, deletion) not on threads of its own but as steps on the threads that use
    /// it, whenever they wait for that work and at random points between operations, in an
    /// order drawn from `seed`: a simulation then replays exactly. Callbacks of `append_with` and
    /// `sync_with` must then not call the `Wal`, and they run only while some thread waits on the
    /// `Wal` (a `Completion`, `sync`, `quiesce`): a thread that only waits for a callback waits
    /// forever. By default `None`: background threads.
    fn stepped(&self) -> Option<u64> {
        None
    }
}

/// An open file.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes `[offset, offset + len)` back to the disk and waits for it, without flushing the
    /// disk's cache or any metadata: nothing is durable until a sync. Keeps a large write from
    /// queueing up all at once at the disk ahead of other writes. By default, does nothing.
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// fdatasync: the data written so far, and the metadata needed to read it, are durable.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync: data and all metadata are durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Drops the clean pages of `[offset, offset + len)` (`len` 0: to the end of the file),
    /// widened to whole pages, from the OS page cache, so that the next read comes from the disk.
    /// After a failed fsync Linux may mark pages clean that never reached the disk (fsyncgate),
    /// and reads keep returning them until they are evicted: recovery syncs and then drops a file
    /// before it trusts what it reads. Pages that are mapped stay. By default, does nothing.
    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Sets the file's size, cutting or extending it with zeros.
    fn set_len(&self, bytes: u64) -> io::Result<()>;
    /// The file's size.
    fn size(&self) -> io::Result<u64>;
    /// Where the file's first hole starts (its size if it has none): every byte before it is
    /// on the disk, written data or zeros, so writing there needs no block allocation. By
    /// default, the size: no holes.
    fn hole_start(&self) -> io::Result<u64> {
        self.size()
    }
    /// The file's permission bits.
    fn mode(&self) -> io::Result<u32>;
    /// A read-only view of the whole file as it is now. Only for files that are no longer
    /// written: the view must not change under its reader.
    fn map(&self) -> io::Result<Box<dyn Mapping>>;
}

/// The bytes of a mapped file.
pub trait Mapping: Send + Sync {
    /// The file's bytes.
    fn bytes(&self) -> &[u8];
}

/// Held while a directory is locked.
pub trait LockGuard: Send + Sync {}

/// The operating system's file system.
#[derive(Debug, Default)]
pub struct StdFs;

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?.map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned())).collect()
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(mode).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path, mode: u32) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    }

    fn is_regular_file(&self, path: &Path) -> io::Result<bool> {
        Ok(std::fs::symlink_metadata(path)?.file_type().is_file())
    }

    fn salt(&self) -> u64 {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos()),
        );
        hasher.finish()
    }
}

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    #[cfg(target_os = "linux")]
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let (offset, len) = (i64::try_from(offset), i64::try_from(len));
        let (Ok(offset), Ok(len)) = (offset, len) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: sync_file_range on a descriptor this `File` owns; it takes no pointers.
        match unsafe { libc::sync_file_range(self.0.as_raw_fd(), offset, len, flags) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    #[cfg(target_os = "linux")]
    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // The kernel drops only the pages wholly inside the range: widen it to whole pages.
        // SAFETY: sysconf takes no pointers.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        let start = offset / page * page;
        let end = if len == 0 { 0 } else { (offset + len).div_ceil(page) * page };
        let (Ok(start), Ok(span)) = (i64::try_from(start), i64::try_from(end.saturating_sub(start))) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: posix_fadvise on a descriptor this `File` owns; it takes no pointers.
        match unsafe { libc::posix_fadvise(self.0.as_raw_fd(), start, span, libc::POSIX_FADV_DONTNEED) } {
            0 => Ok(()),
            error => Err(io::Error::from_raw_os_error(error)),
        }
    }

    fn set_len(&self, bytes: u64) -> io::Result<()> {
        self.0.set_len(bytes)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn hole_start(&self) -> io::Result<u64> {
        use std::os::fd::AsRawFd;
        // Moves the file's offset, which raftwal never uses: it reads and writes at offsets. A
        // file system that does not know holes answers with the size.
        // SAFETY: an lseek on a descriptor this handle owns.
        match unsafe { libc::lseek(self.0.as_raw_fd(), 0, libc::SEEK_HOLE) } {
            -1 => Err(io::Error::last_os_error()),
            offset => Ok(offset as u64),
        }
    }

    fn mode(&self) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        Ok(self.0.metadata()?.permissions().mode() & 0o7777)
    }

    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        // SAFETY: segments are mapped only once they are sealed, and raftwal never writes a
        // sealed segment again; a lock file keeps other raftwal processes out of the directory.
        let map = unsafe { memmap2::Mmap::map(&self.0)? };
        Ok(Box::new(StdMapping(map)))
    }
}

struct StdMapping(memmap2::Mmap);

impl Mapping for StdMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

struct StdLock(#[allow(dead_code, reason = "held for its lock, released on drop")] File);

impl LockGuard for StdLock {}
