//! `CutFs`: a FUSE file system for power-loss tests through the real kernel. Mounted, it serves
//! a tree of directories and files whose bytes live in a [`SimFs`]: every write the kernel passes
//! down lands in the simulated page cache, an fsync makes it durable, and [`SimFs::power_loss`]
//! keeps a random subset of the unsynced writes, torn at sector boundaries (the idea of LazyFS).
//! raftwal runs above it with its real `StdFs`: pwrite, fdatasync, rename, fsync of the
//! directory, mmap, flock and posix_fadvise all go through the kernel's VFS.
//!
//! The mount serves one `SimFs::process` view: after a power loss every request fails with EIO,
//! so the process that was running cannot change what the next mount sees. A failed fsync drops
//! the file's unsynced writes (fsyncgate) and the file system then serves what its disk holds;
//! the kernel's own page cache above it may still show the lost bytes until they are evicted.
//! Directories are kept outside the simulation: they are durable as soon as they exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use raftwal::fs::{FileHandle, Fs};
use raftwal::sim::SimFs;

/// Attributes are not cached by the kernel: sizes change under it after a power loss.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = fuser::FUSE_ROOT_ID;

pub struct CutFs {
    sim: SimFs,
    /// Directories, by path; `/` is the root.
    dirs: BTreeSet<PathBuf>,
    /// Inode numbers handed to the kernel, both ways.
    inos: HashMap<u64, PathBuf>,
    paths: BTreeMap<PathBuf, u64>,
    next_ino: u64,
    handles: HashMap<u64, Box<dyn FileHandle>>,
    next_fh: u64,
}

fn errno(error: &io::Error) -> i32 {
    error.raw_os_error().unwrap_or(match error.kind() {
        io::ErrorKind::NotFound => libc::ENOENT,
        io::ErrorKind::AlreadyExists => libc::EEXIST,
        _ => libc::EIO,
    })
}

impl CutFs {
    /// Serves `sim` as the running process sees it now; `dirs` are the directories that exist.
    pub fn new(sim: &SimFs, dirs: BTreeSet<PathBuf>) -> CutFs {
        let mut dirs = dirs;
        dirs.insert(PathBuf::from("/"));
        let mut fs = CutFs {
            sim: sim.process(),
            dirs,
            inos: HashMap::new(),
            paths: BTreeMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
        };
        fs.inos.insert(ROOT, PathBuf::from("/"));
        fs.paths.insert(PathBuf::from("/"), ROOT);
        fs
    }

    fn ino(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.paths.get(path) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inos.insert(ino, path.to_path_buf());
        self.paths.insert(path.to_path_buf(), ino);
        ino
    }

    /// Drops the inode number of a path that no longer names a file.
    fn forget(&mut self, path: &Path) {
        if let Some(ino) = self.paths.remove(path) {
            self.inos.remove(&ino);
        }
    }

    fn path(&self, ino: u64) -> Option<PathBuf> {
        self.inos.get(&ino).cloned()
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<PathBuf> {
        Some(self.path(parent)?.join(name))
    }

    fn attr(&mut self, path: &Path) -> Result<FileAttr, i32> {
        let ino = self.ino(path);
        let (kind, size, perm) = if self.dirs.contains(path) {
            (FileType::Directory, 0, 0o755)
        } else {
            let file = self.sim.open(path).map_err(|error| errno(&error))?;
            (FileType::RegularFile, file.size().map_err(|error| errno(&error))?, 0o644)
        };
        let now = SystemTime::UNIX_EPOCH;
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn reply_attr(&mut self, path: &Path, reply: ReplyAttr) {
        match self.attr(path) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(error) => reply.error(error),
        }
    }

    fn reply_entry(&mut self, path: &Path, reply: ReplyEntry) {
        match self.attr(path) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(error) => reply.error(error),
        }
    }

    fn add_handle(&mut self, file: Box<dyn FileHandle>) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, file);
        fh
    }
}

impl Filesystem for CutFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(path) = self.child(parent, name) else { return reply.error(libc::ENOENT) };
        self.reply_entry(&path, reply);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let Some(path) = self.path(ino) else { return reply.error(libc::ENOENT) };
        self.reply_attr(&path, reply);
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let Some(path) = self.path(ino) else { return reply.error(libc::ENOENT) };
        if let Some(size) = size {
            let resized = self.sim.open(&path).and_then(|file| file.set_len(size));
            if let Err(error) = resized {
                return reply.error(errno(&error));
            }
        }
        self.reply_attr(&path, reply);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(path) = self.child(parent, name) else { return reply.error(libc::ENOENT) };
        self.dirs.insert(path.clone());
        self.reply_entry(&path, reply);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let Some(path) = self.child(parent, name) else { return reply.error(libc::ENOENT) };
        match self.sim.remove(&path) {
            Ok(()) => {
                self.forget(&path);
                reply.ok();
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        let (Some(from), Some(to)) = (self.child(parent, name), self.child(newparent, newname)) else {
            return reply.error(libc::ENOENT);
        };
        match self.sim.rename(&from, &to) {
            Ok(()) => {
                self.forget(&to);
                if let Some(ino) = self.paths.remove(&from) {
                    self.inos.insert(ino, to.clone());
                    self.paths.insert(to, ino);
                }
                reply.ok();
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let Some(path) = self.path(ino) else { return reply.error(libc::ENOENT) };
        match self.sim.open(&path) {
            Ok(file) => {
                let fh = self.add_handle(file);
                // As a local file system does, the kernel keeps a file's cached pages across
                // opens: after a failed fsync they go on showing what this file system lost.
                reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE);
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(file) = self.handles.get(&fh) else { return reply.error(libc::EBADF) };
        let read = (|| {
            let len = file.size()?;
            let offset = u64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let mut buf = vec![0; len.saturating_sub(offset).min(u64::from(size)) as usize];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })();
        match read {
            Ok(buf) => reply.data(&buf),
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.handles.get(&fh) else { return reply.error(libc::EBADF) };
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let Some(file) = self.handles.get(&fh) else { return reply.error(libc::EBADF) };
        match file.sync_data() {
            Ok(()) => reply.ok(),
            Err(error) => {
                // The writes the failed sync dropped are gone from this file system too; only
                // the kernel's page cache above it may still show them.
                let _ = file.drop_cache(0, 0);
                reply.error(errno(&error));
            }
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(&fh);
        reply.ok();
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let Some(dir) = self.path(ino) else { return reply.error(libc::ENOENT) };
        let files = match self.sim.list(&dir) {
            Ok(names) => names,
            Err(error) => return reply.error(errno(&error)),
        };
        let subdirs: Vec<String> = self
            .dirs
            .iter()
            .filter(|path| path.parent() == Some(&dir))
            .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .collect();
        let mut entries =
            vec![(ino, FileType::Directory, ".".to_string()), (ino, FileType::Directory, "..".to_string())];
        for name in subdirs {
            let ino = self.ino(&dir.join(&name));
            entries.push((ino, FileType::Directory, name));
        }
        for name in files {
            let ino = self.ino(&dir.join(&name));
            entries.push((ino, FileType::RegularFile, name));
        }
        for (at, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, at as i64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let Some(dir) = self.path(ino) else { return reply.error(libc::ENOENT) };
        match self.sim.sync_dir(&dir) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(path) = self.child(parent, name) else { return reply.error(libc::ENOENT) };
        let created = match self.sim.create_new(&path, mode) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 => {
                self.sim.open(&path)
            }
            created => created,
        };
        match created {
            Ok(file) => {
                let fh = self.add_handle(file);
                match self.attr(&path) {
                    Ok(attr) => reply.created(&TTL, &attr, 0, fh, fuser::consts::FOPEN_KEEP_CACHE),
                    Err(error) => reply.error(error),
                }
            }
            Err(error) => reply.error(errno(&error)),
        }
    }
}
