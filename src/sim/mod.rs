//! A simulated file system for crash testing (feature `sim`).
//!
//! [`SimFs`] keeps, for every file, the bytes a reader sees (volatile) apart from the bytes that
//! would survive a power loss (durable), and the writes in between. [`SimFs::power_loss`] decides
//! the fate of each unsynced write on its own, from the seed: lost, kept, or torn (a random
//! subset of its sectors kept). A name (create, rename, remove, and a directory made by
//! `create_dir_all`) is durable only once its directory is synced ([`Fs::sync_dir`] syncs that
//! directory alone); a power loss keeps or loses each unsynced name change on its own, a rename
//! whole, and a directory whose own name is lost takes every name in it along. [`SimFs::crash`] ends the
//! running process without a power loss: its handles and locks go, while the page cache (the
//! volatile images and the unsynced writes) stays for the next process on the same boot.
//!
//! Faults can be planned by operation number: a power loss, a process crash, an EIO, or ENOSPC
//! once the files hold a byte budget (optionally counting overwrites too, as a copy-on-write file
//! system does). A failed sync behaves as Linux's does (fsyncgate): the file's unsynced writes
//! are dropped, never to reach the disk, while reads keep returning them until
//! [`FileHandle::drop_cache`] evicts them. After a power loss or a crash every handle opened
//! before it fails with EIO, and so does every path operation through a [`SimFs::process`] view
//! taken before it, so a `Wal` still running in the old process cannot touch the files.
//!
//! Everything random comes from the seed. A `Wal` on a `SimFs` runs its background work as steps
//! (see [`Fs::stepped`]) whose order the seed also decides, so with one submitting thread a seed
//! replays exactly: the same operations, batches, faults and outcomes. The steps run only while a
//! thread waits on the `Wal` (a `Completion`, `sync`, `quiesce`), so a callback of `append_with` or
//! `sync_with` that nothing waits for never runs: a test that waits for one on a channel (as an
//! async Raft library does) hangs. [`SimFs::threaded`] gives a file system on which a `Wal` runs
//! its own threads instead, as on a real one; faults still come from the seed, the interleaving
//! of threads does not.

// The harnesses that this crate's tests and fuzz targets share: a reference model, a workload
// generator and the fuzz targets' bodies. Public so that `tests/` and `fuzz/` can reach them,
// hidden from the docs because they are not API and change with the tests.
#[doc(hidden)]
#[allow(clippy::must_use_candidate, clippy::missing_errors_doc, clippy::missing_panics_doc, missing_docs)]
pub mod fuzz;
#[doc(hidden)]
#[allow(clippy::must_use_candidate, clippy::missing_errors_doc, clippy::missing_panics_doc, missing_docs)]
pub mod model;
#[doc(hidden)]
#[allow(clippy::must_use_candidate, clippy::missing_errors_doc, clippy::missing_panics_doc, missing_docs)]
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub use crate::rng::Rng;

use crate::fs::{FileHandle, Fs, LockGuard, Mapping};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// What a planned fault does when its operation number comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Power is lost before the operation runs; it and everything after fail with EIO.
    PowerLoss,
    /// The operation fails with EIO and has no effect; a failing sync also drops the file's
    /// unsynced writes for good (they stay visible to reads until the cache is dropped).
    Eio,
    /// The process crashes before the operation runs (SIGKILL, OOM): it and everything after in
    /// that process fail with EIO; the page cache survives.
    Crash,
}

type Ino = u64;

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Writes since the last sync, oldest first: (offset, bytes).
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Permission bits, as created.
    mode: u32,
    /// Bytes `[start, end)` that every read fails on with EIO, as a bad sector would.
    unreadable: Option<(u64, u64)>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, Ino),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
    MakeDir(PathBuf),
}

impl DirOp {
    /// The directory whose sync makes this change durable.
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link(path, _) | DirOp::Unlink(path) | DirOp::Rename(_, path) | DirOp::MakeDir(path) => {
                path.parent()
            }
        }
    }
}

/// A call site of `Fs::sync_dir`: `file:line`.
pub type Site = String;

#[derive(Debug)]
struct World {
    rng: Rng,
    sector_bytes: usize,
    /// Bumped by every power loss and process crash; handles from an earlier generation fail.
    generation: u64,
    ops: u64,
    plan: BTreeMap<u64, Fault>,
    space_bytes: Option<u64>,
    /// Overwrites take new space too (a copy-on-write file system): ENOSPC is possible while
    /// writing into preallocated blocks.
    copy_on_write: bool,
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    names: BTreeMap<PathBuf, Ino>,
    durable_names: BTreeMap<PathBuf, Ino>,
    /// Directories made by `create_dir_all`, and those of them whose names are durable. Any
    /// other directory is taken to exist, durably.
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    dir_log: Vec<DirOp>,
    /// `sync_dir` calls from this site do nothing (to show that each one is needed).
    skipped_site: Option<Site>,
    /// The sites `sync_dir` was called from.
    sites: BTreeSet<Site>,
    locked: Vec<PathBuf>,
    power_losses: u64,
    crashes: u64,
}

impl World {
    /// Counts an operation and fires the fault planned for it, if any.
    fn begin(&mut self, generation: u64) -> io::Result<()> {
        if generation != self.generation {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let op = self.ops;
        self.ops += 1;
        match self.plan.remove(&op) {
            Some(Fault::PowerLoss) => {
                self.power_loss();
                Err(io::Error::from_raw_os_error(EIO))
            }
            Some(Fault::Crash) => {
                self.crash();
                Err(io::Error::from_raw_os_error(EIO))
            }
            Some(Fault::Eio) => Err(io::Error::from_raw_os_error(EIO)),
            None => Ok(()),
        }
    }

    /// The running process dies: its handles, views and locks go; the page cache stays.
    fn crash(&mut self) {
        self.crashes += 1;
        self.generation += 1;
        self.locked.clear();
    }

    fn power_loss(&mut self) {
        self.power_losses += 1;
        self.generation += 1;
        let sector = self.sector_bytes as u64;
        for inode in self.inodes.values_mut() {
            let mut image = inode.durable.clone();
            for (offset, bytes) in inode.unsynced.drain(..) {
                let fate = self.rng.below(3);
                if fate == 0 {
                    continue;
                }
                let end = offset + bytes.len() as u64;
                if image.len() < end as usize {
                    image.resize(end as usize, 0);
                }
                let mut at = offset;
                while at < end {
                    let sector_end = ((at / sector) + 1) * sector;
                    let piece_end = sector_end.min(end);
                    if fate == 1 || self.rng.chance(50) {
                        let from = (at - offset) as usize..(piece_end - offset) as usize;
                        image[at as usize..piece_end as usize].copy_from_slice(&bytes[from]);
                    }
                    at = piece_end;
                }
            }
            inode.volatile = image.clone();
            inode.durable = image;
        }
        let mut names = self.durable_names.clone();
        let mut dirs = self.durable_dirs.clone();
        for op in std::mem::take(&mut self.dir_log) {
            if self.rng.chance(50) {
                apply(&mut names, &mut dirs, op);
            }
        }
        // A directory that was made and lost takes its names along.
        let lost_dirs: Vec<PathBuf> = self.dirs.difference(&dirs).cloned().collect();
        names.retain(|path, _| !lost_dirs.iter().any(|dir| path.starts_with(dir)));
        dirs.retain(|dir| !lost_dirs.iter().any(|lost| dir.starts_with(lost)));
        self.names = names.clone();
        self.durable_names = names;
        self.dirs = dirs.clone();
        self.durable_dirs = dirs;
        let live: Vec<Ino> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        self.locked.clear();
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|inode| inode.volatile.len() as u64).sum()
    }

    fn inode(&mut self, ino: Ino) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

fn apply(names: &mut BTreeMap<PathBuf, Ino>, dirs: &mut BTreeSet<PathBuf>, op: DirOp) {
    match op {
        DirOp::MakeDir(path) => {
            dirs.insert(path);
        }
        DirOp::Link(path, ino) => {
            names.insert(path, ino);
        }
        DirOp::Unlink(path) => {
            names.remove(&path);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = names.remove(&from) {
                names.insert(to, ino);
            }
        }
    }
}

/// The simulated file system. Clones share one world.
///
/// Give a `Wal` a [`SimFs::process`] view: a power loss ends the process that was running, so
/// every later call through that view fails with EIO, path operations included. Through any
/// other view the file system carries on after a power loss as the next boot sees it.
#[derive(Clone, Debug)]
pub struct SimFs {
    world: Arc<Mutex<World>>,
    /// The generation whose process this view belongs to; `None` follows power losses.
    process: Option<u64>,
    /// A `Wal` on this view runs background threads, not steps.
    threaded: bool,
}

impl SimFs {
    /// An empty file system whose random choices come from `seed`; writes tear at
    /// `sector_bytes` boundaries.
    ///
    /// # Panics
    /// If `sector_bytes` is not a power of two.
    #[must_use]
    pub fn new(seed: u64, sector_bytes: usize) -> SimFs {
        assert!(sector_bytes.is_power_of_two(), "sector size {sector_bytes}");
        SimFs {
            world: Arc::new(Mutex::new(World {
                rng: Rng::new(seed),
                sector_bytes,
                generation: 0,
                ops: 0,
                plan: BTreeMap::new(),
                space_bytes: None,
                copy_on_write: false,
                inodes: BTreeMap::new(),
                next_ino: 1,
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs: BTreeSet::new(),
                durable_dirs: BTreeSet::new(),
                dir_log: Vec::new(),
                skipped_site: None,
                sites: BTreeSet::new(),
                locked: Vec::new(),
                power_losses: 0,
                crashes: 0,
            })),
            process: None,
            threaded: false,
        }
    }

    /// This file system, seen by a `Wal` that runs its committer and housekeeper on threads of
    /// its own (not as steps, see the module docs): for tests that wait for callbacks. Such a run
    /// does not replay exactly.
    #[must_use]
    pub fn threaded(&self) -> SimFs {
        SimFs { threaded: true, ..self.clone() }
    }

    /// This file system as the process running now sees it: once the power is lost, every call
    /// through the view, and through the handles and locks it gave out, fails with EIO.
    #[must_use]
    pub fn process(&self) -> SimFs {
        let generation = self.world.lock().generation;
        SimFs { world: self.world.clone(), process: Some(generation), threaded: self.threaded }
    }

    /// The generation the calls of this view run in.
    fn generation(&self, world: &World) -> u64 {
        self.process.unwrap_or(world.generation)
    }

    /// Operations run so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.world.lock().ops
    }

    /// Plans `fault` for the operation `after` operations from now.
    pub fn plan(&self, after: u64, fault: Fault) {
        let mut world = self.world.lock();
        let at = world.ops + after;
        world.plan.insert(at, fault);
    }

    /// Drops every planned fault that has not fired.
    pub fn clear_plan(&self) {
        self.world.lock().plan.clear();
    }

    /// Writes that would make the files hold more than `bytes` in all fail with ENOSPC.
    pub fn set_space(&self, bytes: Option<u64>) {
        self.world.lock().space_bytes = bytes;
    }

    /// Cuts the power now: see the module docs for what survives.
    pub fn power_loss(&self) {
        self.world.lock().power_loss();
    }

    /// Power losses so far, planned or not.
    #[must_use]
    pub fn power_losses(&self) -> u64 {
        self.world.lock().power_losses
    }

    /// Ends the running process now, without a power loss: see the module docs.
    pub fn crash(&self) {
        self.world.lock().crash();
    }

    /// Process crashes so far, planned or not.
    #[must_use]
    pub fn crashes(&self) -> u64 {
        self.world.lock().crashes
    }

    /// Power losses and process crashes so far: how many times the running process ended.
    #[must_use]
    pub fn stops(&self) -> u64 {
        let world = self.world.lock();
        world.power_losses + world.crashes
    }

    /// Whether overwrites of existing bytes need space too, as on a copy-on-write file system.
    pub fn set_copy_on_write(&self, copy_on_write: bool) {
        self.world.lock().copy_on_write = copy_on_write;
    }

    /// Makes every `sync_dir` call from `site` (`file:line` of the call, as `dir_sync_sites`
    /// lists them) do nothing, as if that line were removed from the code; `None` undoes it.
    pub fn skip_dir_syncs_at(&self, site: Option<&str>) {
        self.world.lock().skipped_site = site.map(str::to_owned);
    }

    /// The call sites `sync_dir` was called from so far (`file:line`).
    #[must_use]
    pub fn dir_sync_sites(&self) -> BTreeSet<Site> {
        self.world.lock().sites.clone()
    }

    /// Removes a file and makes that durable, as an operator's mistake or a lost directory
    /// block would.
    ///
    /// # Errors
    /// `NotFound` if no file has that name.
    pub fn lose(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        world.names.remove(path).ok_or(io::ErrorKind::NotFound)?;
        world.durable_names.remove(path);
        world.dir_log.retain(|op| !matches!(op, DirOp::Link(linked, _) if linked == path));
        Ok(())
    }

    /// Makes every read of a file's bytes `[offset, offset + len)` fail with EIO from now on,
    /// as a bad sector would (whatever the page cache holds), and so every mapping of the file
    /// (where a real one would raise SIGBUS at the access). Writes still succeed. A `len` of 0
    /// makes the file readable again.
    ///
    /// # Errors
    /// `NotFound` if no file has that name.
    pub fn fail_reads(&self, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        let ino = *world.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        world.inode(ino)?.unreadable = (len > 0).then_some((offset, offset + len));
        Ok(())
    }

    /// Cuts a file to `bytes`, durably, as a lost extent or a careless copy would.
    ///
    /// # Errors
    /// `NotFound` if no file has that name.
    pub fn shorten(&self, path: &Path, bytes: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        let ino = *world.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        let inode = world.inode(ino)?;
        for image in [&mut inode.durable, &mut inode.volatile] {
            image.truncate(bytes as usize);
        }
        inode.unsynced.retain(|(offset, _)| *offset < bytes);
        for (offset, data) in &mut inode.unsynced {
            data.truncate((bytes - *offset) as usize);
        }
        Ok(())
    }

    /// Flips one bit of a file's durable (and volatile) image, as a failing disk would.
    ///
    /// # Errors
    /// `NotFound` if no file has that name; `InvalidInput` if it is not longer than `offset`.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut world = self.world.lock();
        let ino = *world.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        let inode = world.inode(ino)?;
        for image in [&mut inode.durable, &mut inode.volatile] {
            let byte = image.get_mut(offset as usize).ok_or(io::ErrorKind::InvalidInput)?;
            *byte ^= 1 << (bit % 8);
        }
        Ok(())
    }

    /// The volatile bytes of a file, read without counting as an operation.
    #[must_use]
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let world = self.world.lock();
        let ino = world.names.get(path)?;
        Some(world.inodes[ino].volatile.clone())
    }

    /// Names of the files, in order.
    #[must_use]
    pub fn paths(&self) -> Vec<PathBuf> {
        self.world.lock().names.keys().cloned().collect()
    }

    fn handle(&self, ino: Ino, generation: u64) -> Box<dyn FileHandle> {
        Box::new(SimFile { world: self.world.clone(), ino, generation })
    }

    fn link(world: &mut World, path: &Path, ino: Ino) {
        world.names.insert(path.to_path_buf(), ino);
        world.dir_log.push(DirOp::Link(path.to_path_buf(), ino));
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path, _mode: u32) -> io::Result<()> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        for dir in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if dir.parent().is_some_and(|parent| !parent.as_os_str().is_empty())
                && world.dirs.insert(dir.to_path_buf())
            {
                world.dir_log.push(DirOp::MakeDir(dir.to_path_buf()));
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        Ok(world
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .collect())
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        let ino = *world.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(self.handle(ino, generation))
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn FileHandle>> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        if world.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = world.next_ino;
        world.next_ino += 1;
        world.inodes.insert(ino, Inode { mode, ..Inode::default() });
        SimFs::link(&mut world, path, ino);
        Ok(self.handle(ino, generation))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        world.names.remove(path).ok_or(io::ErrorKind::NotFound)?;
        world.dir_log.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        let ino = world.names.remove(from).ok_or(io::ErrorKind::NotFound)?;
        world.names.insert(to.to_path_buf(), ino);
        world.dir_log.push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    #[track_caller]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let caller = std::panic::Location::caller();
        let site = format!("{}:{}", caller.file(), caller.line());
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        world.begin(generation)?;
        world.sites.insert(site.clone());
        if world.skipped_site.as_ref() == Some(&site) {
            return Ok(());
        }
        let World { dir_log, durable_names, durable_dirs, .. } = &mut *world;
        let (synced, rest): (Vec<DirOp>, Vec<DirOp>) =
            dir_log.drain(..).partition(|op| op.dir() == Some(dir));
        *dir_log = rest;
        for op in synced {
            apply(durable_names, durable_dirs, op);
        }
        Ok(())
    }

    fn lock(&self, path: &Path, _mode: u32) -> io::Result<Box<dyn LockGuard>> {
        let mut world = self.world.lock();
        let generation = self.generation(&world);
        if generation != world.generation {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if world.locked.iter().any(|held| held == path) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        world.locked.push(path.to_path_buf());
        Ok(Box::new(SimLock { world: self.world.clone(), path: path.to_path_buf(), generation }))
    }

    fn salt(&self) -> u64 {
        self.world.lock().rng.next_u64()
    }

    fn stepped(&self) -> Option<u64> {
        (!self.threaded).then(|| self.world.lock().rng.next_u64())
    }
}

struct SimLock {
    world: Arc<Mutex<World>>,
    path: PathBuf,
    generation: u64,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut world = self.world.lock();
        if world.generation == self.generation {
            world.locked.retain(|held| *held != self.path);
        }
    }
}

#[derive(Debug)]
struct SimFile {
    world: Arc<Mutex<World>>,
    ino: Ino,
    generation: u64,
}

impl FileHandle for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        let inode = world.inode(self.ino)?;
        let end = offset + buf.len() as u64;
        if inode.unreadable.is_some_and(|(from, to)| offset < to && from < end) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let bytes = inode
            .volatile
            .get(offset as usize..offset as usize + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        let end = offset as usize + buf.len();
        let grows = if world.copy_on_write {
            buf.len() as u64
        } else {
            end.saturating_sub(world.inode(self.ino)?.volatile.len()) as u64
        };
        if let Some(space) = world.space_bytes
            && world.used_bytes() + grows > space
        {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let inode = world.inode(self.ino)?;
        if inode.volatile.len() < end {
            inode.volatile.resize(end, 0);
        }
        inode.volatile[offset as usize..end].copy_from_slice(buf);
        inode.unsynced.push((offset, buf.to_vec()));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut world = self.world.lock();
        if let Err(error) = world.begin(self.generation) {
            // An I/O error in a live process (not a power loss, a crash or a dead handle) is
            // fsyncgate: the kernel gives up on the dirty pages and marks them clean; reads
            // still return them until they are evicted.
            if world.generation == self.generation
                && let Ok(inode) = world.inode(self.ino)
            {
                inode.unsynced.clear();
            }
            return Err(error);
        }
        let inode = world.inode(self.ino)?;
        // Only what is dirty goes to the disk: pages a failed sync marked clean do not.
        for (offset, bytes) in inode.unsynced.drain(..) {
            overlay(&mut inode.durable, offset, &bytes);
        }
        inode.durable.resize(inode.volatile.len(), 0);
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        let sector = world.sector_bytes as u64;
        let inode = world.inode(self.ino)?;
        // Clean pages go and are read again from the disk; dirty ones stay.
        let mut image = inode.durable.clone();
        for (offset, bytes) in &inode.unsynced {
            overlay(&mut image, *offset, bytes);
        }
        image.resize(inode.volatile.len(), 0);
        let start = (offset / sector * sector).min(image.len() as u64) as usize;
        let end = match len {
            0 => image.len(),
            _ => ((offset + len).div_ceil(sector) * sector).min(image.len() as u64) as usize,
        };
        inode.volatile[start..end].copy_from_slice(&image[start..end]);
        Ok(())
    }

    fn set_len(&self, bytes: u64) -> io::Result<()> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        // Holes are not modelled: what a file grows by takes space at once.
        let grows = bytes.saturating_sub(world.inode(self.ino)?.volatile.len() as u64);
        if let Some(space) = world.space_bytes
            && world.used_bytes() + grows > space
        {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let inode = world.inode(self.ino)?;
        // Modelled as durable at once: raftwal never shrinks a file it relies on.
        inode.volatile.resize(bytes as usize, 0);
        inode.durable.resize(bytes as usize, 0);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        Ok(world.inode(self.ino)?.volatile.len() as u64)
    }

    fn mode(&self) -> io::Result<u32> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        Ok(world.inode(self.ino)?.mode)
    }

    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        let mut world = self.world.lock();
        world.begin(self.generation)?;
        let inode = world.inode(self.ino)?;
        if inode.unreadable.is_some() {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(Box::new(SimMapping(inode.volatile.clone())))
    }
}

/// Writes `bytes` at `offset` of `image`, growing it as needed.
fn overlay(image: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(bytes);
}

struct SimMapping(Vec<u8>);

impl Mapping for SimMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests;
