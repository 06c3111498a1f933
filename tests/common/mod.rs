//! Helpers shared by the integration tests: deterministic entries, small-segment options, and a
//! reference model of the log that a `Wal` is checked against.
#![allow(dead_code, reason = "each test binary uses a different subset")]

/// Asserts that `value` matches `pattern`, and prints the value when it does not (which
/// `assert!(matches!(..))` cannot).
#[macro_export]
macro_rules! assert_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $value {
            $pattern $(if $guard)? => {}
            ref other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
    ($value:expr, $pattern:pat $(if $guard:expr)?, $($message:tt)+) => {
        match $value {
            $pattern $(if $guard)? => {}
            ref other => panic!("{}: expected {}, got {other:?}", format_args!($($message)+), stringify!($pattern)),
        }
    };
}

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raftwal::fs::{FileHandle, Fs, LockGuard, Mapping, StdFs};
use raftwal::inspect::{Frame, frames};
use raftwal::sim::model::{Op, State};
use raftwal::{Entry, Error, HardState, Options, SnapshotMeta, Wal};

/// Entry `index` of `term`, with a payload whose length and bytes depend on both.
pub fn entry(index: u64, term: u64) -> Entry {
    let len = ((index * 37 + term * 11) % 300 + 1) as usize;
    let data = (0..len).map(|at| (index as usize * 31 + term as usize * 7 + at) as u8).collect();
    Entry { index, term, data }
}

pub fn entries(indexes: std::ops::Range<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

/// Segments of 8 KiB: a few dozen small entries each, so tests cross many segment boundaries.
pub fn small_segments() -> Options {
    Options { segment_bytes: 8192, ..Options::default() }
}

/// Opens `dir`, waiting up to 2 s while it is `Locked`: `cargo test` runs a binary's tests as
/// threads of one process, and a test that spawns a child (the CLI tests do) may fork while
/// another test's `Wal` holds its `LOCK` open; the forked child shares the lock until it execs,
/// so a `close` in that window leaves the lock held for a moment longer (seen once in CI).
pub fn open(dir: &Path, options: &Options) -> Wal {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match Wal::open(dir, options.clone()) {
            Err(Error::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.expect("open"),
        }
    }
}

pub fn reopen(wal: Wal, dir: &Path, options: &Options) -> Wal {
    wal.close().expect("close");
    drop(wal);
    open(dir, options)
}

/// A log in a fresh temporary directory beside its model: the set-up of most tests. When
/// destructuring it, bind `dir` (`dir: _dir` if unused): a dropped `TempDir` deletes the
/// directory under the open log.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub options: Options,
    pub wal: Wal,
    pub model: Model,
}

impl Fixture {
    /// An empty log with `options`.
    pub fn new(options: Options) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let wal = open(dir.path(), &options);
        Fixture { dir, options, wal, model: Model::default() }
    }

    /// A log holding entries `indexes` of term 1, appended in pieces of `APPEND_PIECE`, each
    /// durable before the next.
    pub fn written(options: Options, indexes: std::ops::Range<u64>) -> Fixture {
        let mut fixture = Fixture::new(options);
        fixture.model.append(&fixture.wal, &entries(indexes, 1));
        fixture
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Closes the log and opens it again, and checks it against the model.
    pub fn reopen(&mut self) {
        // `close` closes every clone and releases the directory.
        self.wal = reopen(self.wal.clone(), self.dir.path(), &self.options);
        self.model.check(&self.wal);
    }

    /// Closes the log, for a test that changes its files next; the directory stays.
    pub fn close(self) -> (tempfile::TempDir, Model) {
        self.wal.close().expect("close");
        (self.dir, self.model)
    }
}

pub const APPEND_PIECE: usize = 10;

/// Appends entries of term 1 one at a time from the model's next index until `done` says stop;
/// returns the index that began each new segment.
pub fn append_singly(wal: &Wal, model: &mut Model, done: impl Fn(&Wal, u64) -> bool) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut index = model.next.unwrap_or(1);
    while !done(wal, index) {
        let segments = wal.stats().segments;
        model.append(wal, &entries(index..index + 1, 1));
        if wal.stats().segments > segments {
            starts.push(index);
        }
        index += 1;
    }
    starts
}

/// What the log should hold, kept by the test beside the `Wal`: the crate's reference model
/// (`raftwal::sim::model::State`), changed through the same operations as the `Wal`.
#[derive(Clone, Debug, Default)]
pub struct Model(pub State);

impl std::ops::Deref for Model {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for Model {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Model {
    /// Appends in pieces of `APPEND_PIECE` entries, so that no single append outgrows the
    /// small segments the tests use.
    pub fn append(&mut self, wal: &Wal, entries: &[Entry]) {
        for piece in entries.chunks(APPEND_PIECE) {
            wal.append(piece).expect("append").wait().expect("durable");
        }
        entries.iter().for_each(|entry| self.0.apply(&Op::Entry(entry.clone())));
    }

    pub fn truncate(&mut self, wal: &Wal, from: u64) {
        wal.truncate(from).expect("truncate").wait().expect("durable");
        self.0.apply(&Op::Truncate(from));
    }

    /// Purging below the first entry drops nothing, as in the `Wal`.
    pub fn purge(&mut self, wal: &Wal, upto: u64) {
        wal.purge(upto).expect("purge").wait().expect("durable");
        if self.entries.contains_key(&upto) {
            self.0.apply(&Op::Purge(upto));
        }
    }

    pub fn install_snapshot(&mut self, wal: &Wal, meta: SnapshotMeta) {
        wal.install_snapshot(meta.clone()).expect("install_snapshot").wait().expect("durable");
        self.0.apply(&Op::Snapshot(meta));
    }

    pub fn set_hard_state(&mut self, wal: &Wal, hard_state: HardState) {
        wal.set_hard_state(hard_state).expect("set_hard_state").wait().expect("durable");
        self.0.apply(&Op::HardState(hard_state));
    }

    pub fn set_metadata(&mut self, wal: &Wal, metadata: &[u8]) {
        wal.set_metadata(metadata.to_vec()).expect("set_metadata").wait().expect("durable");
        self.0.apply(&Op::Metadata(metadata.to_vec()));
    }

    /// Asserts that `wal` holds exactly what the model holds, entry by entry, and answers
    /// terms and out-of-range reads as it should.
    pub fn check(&self, wal: &Wal) {
        assert_eq!(State::read(wal).expect("read the wal"), self.0, "the wal differs from the model");
        if let (Some(first), Some(last)) = (self.first(), self.last()) {
            for want in self.entries.values() {
                assert_eq!(wal.term(want.index).unwrap(), want.term, "term of entry {}", want.index);
            }
            assert_matches!(wal.entry(last + 1), Err(Error::Unavailable { .. }));
            if first > 0 {
                assert_matches!(
                    wal.entry(first - 1),
                    Err(Error::Compacted { .. } | Error::Unavailable { .. })
                );
            }
        }
        if let Some(purged) = self.purged {
            assert_eq!(wal.term(purged.index).unwrap(), purged.term, "term of the purge point");
        }
    }
}

/// The real file system, with switches that make fsyncs or file creation fail.
#[derive(Debug, Default)]
pub struct FlakyFs {
    pub faults: Arc<Faults>,
}

#[derive(Debug, Default)]
pub struct Faults {
    /// fdatasync and fsync fail with EIO.
    pub sync: AtomicBool,
    /// Creating a file fails with ENOSPC.
    pub create: AtomicBool,
    /// Writing back a preallocation's zeros (`write_back`) sleeps 20 ms a chunk: a disk slower
    /// at making spares than the log is at filling them.
    pub slow_zeros: AtomicBool,
}

impl Faults {
    fn check(flag: &AtomicBool, errno: i32) -> io::Result<()> {
        if flag.load(Ordering::SeqCst) { Err(io::Error::from_raw_os_error(errno)) } else { Ok(()) }
    }
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

impl Fs for FlakyFs {
    fn create_dir_all(&self, dir: &Path, mode: u32) -> io::Result<()> {
        StdFs.create_dir_all(dir, mode)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(FlakyFile { inner: StdFs.open(path)?, faults: self.faults.clone() }))
    }
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn FileHandle>> {
        Faults::check(&self.faults.create, ENOSPC)?;
        Ok(Box::new(FlakyFile { inner: StdFs.create_new(path, mode)?, faults: self.faults.clone() }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
    fn lock(&self, path: &Path, mode: u32) -> io::Result<Box<dyn LockGuard>> {
        StdFs.lock(path, mode)
    }
    fn is_regular_file(&self, path: &Path) -> io::Result<bool> {
        StdFs.is_regular_file(path)
    }
    fn salt(&self) -> u64 {
        StdFs.salt()
    }
}

#[derive(Debug)]
struct FlakyFile {
    inner: Box<dyn FileHandle>,
    faults: Arc<Faults>,
}

impl FileHandle for FlakyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.faults.slow_zeros.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.inner.write_back(offset, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        Faults::check(&self.faults.sync, EIO)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        Faults::check(&self.faults.sync, EIO)?;
        self.inner.sync_all()
    }
    fn set_len(&self, bytes: u64) -> io::Result<()> {
        self.inner.set_len(bytes)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn mode(&self) -> io::Result<u32> {
        self.inner.mode()
    }
    fn map(&self) -> io::Result<Box<dyn Mapping>> {
        self.inner.map()
    }
}

/// Offsets of the records in a segment file, walking their lengths from the header on.
pub fn record_offsets(segment: &[u8]) -> Vec<u64> {
    frames(segment).map(|frame| frame.offset).collect()
}

/// Flips one bit of the byte at `offset` of the file at `path`.
pub fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// The newest segment file in `dir` holding records.
pub fn newest_with_records(dir: &Path) -> std::path::PathBuf {
    segment_paths(dir)
        .into_iter()
        .rev()
        .find(|path| !record_offsets(&std::fs::read(path).unwrap()).is_empty())
        .unwrap()
}

/// Segment files in `dir`, oldest first.
pub fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

/// Makes a cleanly closed segment look like one whose writer crashed: zeroes the batch records
/// at its end that `close` wrote to claim everything before them durable.
pub fn forget_clean_close(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let found: Vec<Frame> = frames(&bytes).collect();
    for frame in found.iter().rev().take_while(|frame| (frame.record_bytes, frame.kind) == (40, 7)) {
        bytes[frame.offset as usize..frame.offset as usize + 40].fill(0);
    }
    std::fs::write(path, bytes).unwrap();
}
