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
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use raftwal::fs::{FileHandle, Fs};
use raftwal::sim::SimFs;

/// Attributes are not cached by the kernel: sizes change under it after a power loss.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = INodeNo::ROOT.0;
/// As a local file system does, the kernel keeps a file's cached pages across opens: after a
/// failed fsync they go on showing what this file system lost.
const KEEP_CACHE: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE;

/// The file system; the kernel's requests come in on one thread, each under the lock.
pub struct CutFs {
    state: Mutex<State>,
}

struct State {
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

fn errno(error: &io::Error) -> Errno {
    Errno::from_i32(error.raw_os_error().unwrap_or(match error.kind() {
        io::ErrorKind::NotFound => libc::ENOENT,
        io::ErrorKind::AlreadyExists => libc::EEXIST,
        _ => libc::EIO,
    }))
}

impl CutFs {
    /// Serves `sim` as the running process sees it now; `dirs` are the directories that exist.
    pub fn new(sim: &SimFs, dirs: BTreeSet<PathBuf>) -> CutFs {
        let mut dirs = dirs;
        dirs.insert(PathBuf::from("/"));
        let mut state = State {
            sim: sim.process(),
            dirs,
            inos: HashMap::new(),
            paths: BTreeMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
        };
        state.inos.insert(ROOT, PathBuf::from("/"));
        state.paths.insert(PathBuf::from("/"), ROOT);
        CutFs { state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic under the lock fails the test anyway; what it left is still worth serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
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

    fn path(&self, ino: INodeNo) -> Option<PathBuf> {
        self.inos.get(&ino.0).cloned()
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<PathBuf> {
        Some(self.path(parent)?.join(name))
    }

    fn attr(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        let ino = self.ino(path);
        let (kind, size, perm) = if self.dirs.contains(path) {
            (FileType::Directory, 0, 0o755)
        } else {
            let file = self.sim.open(path).map_err(|error| errno(&error))?;
            (FileType::RegularFile, file.size().map_err(|error| errno(&error))?, 0o644)
        };
        let now = SystemTime::UNIX_EPOCH;
        Ok(FileAttr {
            ino: INodeNo(ino),
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
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(error) => reply.error(error),
        }
    }

    fn add_handle(&mut self, file: Box<dyn FileHandle>) -> fuser::FileHandle {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, file);
        fuser::FileHandle(fh)
    }
}

impl Filesystem for CutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        let Some(path) = state.child(parent, name) else { return reply.error(Errno::ENOENT) };
        state.reply_entry(&path, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<fuser::FileHandle>, reply: ReplyAttr) {
        let mut state = self.state();
        let Some(path) = state.path(ino) else { return reply.error(Errno::ENOENT) };
        state.reply_attr(&path, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<fuser::FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let Some(path) = state.path(ino) else { return reply.error(Errno::ENOENT) };
        if let Some(size) = size {
            let resized = state.sim.open(&path).and_then(|file| file.set_len(size));
            if let Err(error) = resized {
                return reply.error(errno(&error));
            }
        }
        state.reply_attr(&path, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let Some(path) = state.child(parent, name) else { return reply.error(Errno::ENOENT) };
        state.dirs.insert(path.clone());
        state.reply_entry(&path, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        let Some(path) = state.child(parent, name) else { return reply.error(Errno::ENOENT) };
        match state.sim.remove(&path) {
            Ok(()) => {
                state.forget(&path);
                reply.ok();
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let (Some(from), Some(to)) = (state.child(parent, name), state.child(newparent, newname)) else {
            return reply.error(Errno::ENOENT);
        };
        match state.sim.rename(&from, &to) {
            Ok(()) => {
                state.forget(&to);
                if let Some(ino) = state.paths.remove(&from) {
                    state.inos.insert(ino, to.clone());
                    state.paths.insert(to, ino);
                }
                reply.ok();
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.state();
        let Some(path) = state.path(ino) else { return reply.error(Errno::ENOENT) };
        match state.sim.open(&path) {
            Ok(file) => {
                let fh = state.add_handle(file);
                reply.opened(fh, KEEP_CACHE);
            }
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: fuser::FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.state();
        let Some(file) = state.handles.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let read = (|| {
            let len = file.size()?;
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
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: fuser::FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let state = self.state();
        let Some(file) = state.handles.get(&fh.0) else { return reply.error(Errno::EBADF) };
        match file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: fuser::FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let state = self.state();
        let Some(file) = state.handles.get(&fh.0) else { return reply.error(Errno::EBADF) };
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
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: fuser::FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: fuser::FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut state = self.state();
        let Some(dir) = state.path(ino) else { return reply.error(Errno::ENOENT) };
        let files = match state.sim.list(&dir) {
            Ok(names) => names,
            Err(error) => return reply.error(errno(&error)),
        };
        let subdirs: Vec<String> = state
            .dirs
            .iter()
            .filter(|path| path.parent() == Some(&dir))
            .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .collect();
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (ino.0, FileType::Directory, "..".to_string()),
        ];
        for name in subdirs {
            let ino = state.ino(&dir.join(&name));
            entries.push((ino, FileType::Directory, name));
        }
        for name in files {
            let ino = state.ino(&dir.join(&name));
            entries.push((ino, FileType::RegularFile, name));
        }
        for (at, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), at as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: fuser::FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let state = self.state();
        let Some(dir) = state.path(ino) else { return reply.error(Errno::ENOENT) };
        match state.sim.sync_dir(&dir) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(&error)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let Some(path) = state.child(parent, name) else { return reply.error(Errno::ENOENT) };
        let created = match state.sim.create_new(&path, mode) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 => {
                state.sim.open(&path)
            }
            created => created,
        };
        match created {
            Ok(file) => {
                let fh = state.add_handle(file);
                match state.attr(&path) {
                    Ok(attr) => reply.created(&TTL, &attr, Generation(0), fh, KEEP_CACHE),
                    Err(error) => reply.error(error),
                }
            }
            Err(error) => reply.error(errno(&error)),
        }
    }
}
