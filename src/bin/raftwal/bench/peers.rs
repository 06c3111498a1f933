//! Peer engines for `--compare` (feature `compare`): tikv's raft-engine 0.4.2, raft-log 0.4 (the
//! log store of databend's meta service) and okaywal 0.3, each used the way its own
//! documentation suggests.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use hdrhistogram::Histogram;
use raft_proto::eraftpb::Entry;

use super::Payloads;
use super::engines::{Appender, Engine, Error, Purge, keep_in_flight};

#[derive(Clone)]
struct EntryType;

impl raft_engine::MessageExt for EntryType {
    type Entry = Entry;

    fn index(entry: &Entry) -> u64 {
        entry.index
    }
}

fn entry(index: u64, payload: &[u8]) -> Entry {
    Entry { index, term: 1, data: bytes::Bytes::copy_from_slice(payload), ..Default::default() }
}

fn error(error: impl std::fmt::Display) -> Error {
    error.to_string()
}

/// The raft group `fill`, `read` and `pipelined` use; independent threads use 1 + their number.
const GROUP: u64 = 1_000_000;

pub struct RaftEngine {
    engine: Arc<raft_engine::Engine>,
}

impl RaftEngine {
    pub fn open(dir: &Path) -> Result<RaftEngine, Error> {
        let config = raft_engine::Config { dir: dir.to_string_lossy().into_owned(), ..Default::default() };
        Ok(RaftEngine { engine: Arc::new(raft_engine::Engine::open(config).map_err(error)?) })
    }

    fn next_index(&self, group: u64) -> u64 {
        self.engine.last_index(group).map_or(1, |last| last + 1)
    }
}

struct RaftEngineAppender<'a> {
    engine: &'a raft_engine::Engine,
    group: u64,
    next: u64,
}

impl Appender for RaftEngineAppender<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(), Error> {
        let mut batch = raft_engine::LogBatch::with_capacity(1);
        batch.add_entries::<EntryType>(self.group, &[entry(self.next, payload)]).map_err(error)?;
        self.engine.write(&mut batch, true).map_err(error)?;
        self.next += 1;
        Ok(())
    }
}

impl Engine for RaftEngine {
    fn appender(&self, thread: usize) -> Box<dyn Appender + '_> {
        let group = 1 + thread as u64;
        Box::new(RaftEngineAppender { engine: &self.engine, group, next: self.next_index(group) })
    }

    /// One writer drains whatever the submitter has queued into one `LogBatch` per synced write,
    /// and compacts and purges between writes when `purge` says (TiKV does both from other
    /// threads; here they take the writer's time, as raftwal's purge takes its committer's).
    fn pipelined(
        &self,
        payload: &Payloads,
        window: usize,
        deadline: Instant,
        latency: &mut Histogram<u64>,
        purge: Option<Purge>,
    ) -> Result<u64, Error> {
        let (queue, queued): (Sender<Instant>, Receiver<Instant>) = bounded(window);
        let (done, finished) = unbounded::<Result<Duration, Error>>();
        let engine = self.engine.clone();
        let payload_owned = payload.clone();
        let mut next = self.next_index(GROUP);
        let writer = std::thread::spawn(move || {
            while let Ok(first) = queued.recv() {
                let submitted: Vec<Instant> = std::iter::once(first).chain(queued.try_iter()).collect();
                let entries: Vec<Entry> = (next..next + submitted.len() as u64)
                    .map(|index| entry(index, payload_owned.at(index)))
                    .collect();
                let mut batch = raft_engine::LogBatch::with_capacity(entries.len());
                let written = batch
                    .add_entries::<EntryType>(GROUP, &entries)
                    .and_then(|()| engine.write(&mut batch, true).map(drop))
                    .map_err(error);
                let before = next;
                next += submitted.len() as u64;
                for at in submitted {
                    let _ = done.send(written.clone().map(|()| at.elapsed()));
                }
                if let Some(upto) = purge.and_then(|purge| purge.upto(before, next)) {
                    engine.compact_to(GROUP, upto + 1);
                    if let Err(failed) = engine.purge_expired_files() {
                        eprintln!("raft-engine purge_expired_files: {failed}");
                    }
                }
            }
        });
        let completed = keep_in_flight(
            window,
            deadline,
            latency,
            || queue.send(Instant::now()).map_err(error),
            || finished.recv().map_err(error)?,
        );
        drop(queue);
        writer.join().map_err(|_| "writer panicked".to_string())?;
        completed
    }

    fn fill(&self, payload: &Payloads, entries: u64) -> Result<(), Error> {
        let mut next = self.next_index(GROUP);
        let end = next + entries;
        let per_batch = ((256 << 10) / payload.len().max(1) as u64).max(1);
        while next < end {
            let count = per_batch.min(end - next);
            let chunk: Vec<Entry> =
                (next..next + count).map(|index| entry(index, payload.at(index))).collect();
            let mut batch = raft_engine::LogBatch::with_capacity(chunk.len());
            batch.add_entries::<EntryType>(GROUP, &chunk).map_err(error)?;
            self.engine.write(&mut batch, false).map_err(error)?;
            next += count;
        }
        self.engine.sync().map_err(error)
    }

    fn read(&self, from: u64, count: u64) -> Result<u64, Error> {
        let first = self.engine.first_index(GROUP).unwrap_or(1);
        let mut out = Vec::with_capacity(count as usize);
        let begin = first + from - 1;
        self.engine
            .fetch_entries_to::<EntryType>(GROUP, begin, begin + count, None, &mut out)
            .map_err(error)?;
        Ok(out.len() as u64)
    }

    fn fsyncs(&self) -> Option<u64> {
        None
    }
}

pub struct Okaywal {
    wal: okaywal::WriteAheadLog,
}

impl Okaywal {
    pub fn open(dir: &Path) -> Result<Okaywal, Error> {
        Ok(Okaywal { wal: okaywal::WriteAheadLog::recover(dir, okaywal::LogVoid).map_err(error)? })
    }
}

struct OkaywalAppender<'a> {
    wal: &'a okaywal::WriteAheadLog,
}

impl Appender for OkaywalAppender<'_> {
    /// One entry per commit; okaywal commits are durable and share fsyncs across writers.
    fn append(&mut self, payload: &[u8]) -> Result<(), Error> {
        let mut writer = self.wal.begin_entry().map_err(error)?;
        writer.write_chunk(payload).map_err(error)?;
        writer.commit().map_err(error).map(drop)
    }
}

impl Engine for Okaywal {
    fn appender(&self, _thread: usize) -> Box<dyn Appender + '_> {
        Box::new(OkaywalAppender { wal: &self.wal })
    }

    fn pipelined(
        &self,
        _: &Payloads,
        _: usize,
        _: Instant,
        _: &mut Histogram<u64>,
        _: Option<Purge>,
    ) -> Result<u64, Error> {
        Err("okaywal has no asynchronous append".into())
    }

    fn fill(&self, _: &Payloads, _: u64) -> Result<(), Error> {
        Err("okaywal is measured on appends only".into())
    }

    fn read(&self, _: u64, _: u64) -> Result<u64, Error> {
        Err("okaywal is measured on appends only".into())
    }

    fn fsyncs(&self) -> Option<u64> {
        None
    }
}

/// raft-log's types: log ids `(term, index)`, payloads as bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RaftLogTypes;

type RaftLogCallback = std::sync::mpsc::SyncSender<std::io::Result<()>>;

impl raft_log::Types for RaftLogTypes {
    type LogId = (u64, u64);
    type LogPayload = Vec<u8>;
    type Vote = (u64, u64);
    type Callback = RaftLogCallback;
    type UserData = ();

    fn log_index(log_id: &(u64, u64)) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Vec<u8>) -> u64 {
        payload.len() as u64
    }
}

/// raft-log's API takes `&mut self`: one log behind the lock that needs, which is how an
/// application shares it. Every append is followed by `flush(true, callback)`; its worker
/// thread batches the flushes of appends queued meanwhile into one fsync.
pub struct RaftLog {
    log: std::sync::Mutex<raft_log::RaftLog<RaftLogTypes>>,
}

impl RaftLog {
    pub fn open(dir: &Path) -> Result<RaftLog, Error> {
        let config = Arc::new(raft_log::Config::new(dir.to_string_lossy()));
        Ok(RaftLog { log: std::sync::Mutex::new(raft_log::RaftLog::open(config).map_err(error)?) })
    }

    fn next_index(log: &raft_log::RaftLog<RaftLogTypes>) -> u64 {
        log.log_state().last().map_or(1, |(_, index)| index + 1)
    }

    /// Appends the next entry, its payload made from its index, and asks for a synced flush;
    /// `done` hears when it is durable. Returns the entry's index.
    fn submit(&self, payload: impl FnOnce(u64) -> Vec<u8>, done: RaftLogCallback) -> Result<u64, Error> {
        use raft_log::api::raft_log_writer::RaftLogWriter;
        let mut log = self.log.lock().map_err(error)?;
        let index = RaftLog::next_index(&log);
        log.append([((1, index), payload(index))]).map_err(error)?;
        log.flush(true, Some(done)).map_err(error)?;
        Ok(index)
    }
}

struct RaftLogAppender<'a> {
    log: &'a RaftLog,
}

impl Appender for RaftLogAppender<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(), Error> {
        let (done, durable) = std::sync::mpsc::sync_channel(1);
        self.log.submit(|_| payload.to_vec(), done)?;
        durable.recv().map_err(error)?.map_err(error)
    }
}

impl Engine for RaftLog {
    fn appender(&self, _thread: usize) -> Box<dyn Appender + '_> {
        Box::new(RaftLogAppender { log: self })
    }

    fn pipelined(
        &self,
        payload: &Payloads,
        window: usize,
        deadline: Instant,
        latency: &mut Histogram<u64>,
        purge: Option<Purge>,
    ) -> Result<u64, Error> {
        use raft_log::api::raft_log_writer::RaftLogWriter;
        let (done, durable) = std::sync::mpsc::sync_channel(window + 1);
        let mut submitted = std::collections::VecDeque::with_capacity(window);
        let submitted_at = std::cell::RefCell::new(&mut submitted);
        keep_in_flight(
            window,
            deadline,
            latency,
            || {
                let index = self.submit(|index| payload.at(index).to_vec(), done.clone())?;
                submitted_at.borrow_mut().push_back(Instant::now());
                if let Some(upto) = purge.and_then(|purge| purge.upto(index, index + 1)) {
                    let mut log = self.log.lock().map_err(error)?;
                    log.purge((1, upto)).map_err(error)?;
                }
                Ok(())
            },
            || {
                durable.recv().map_err(error)?.map_err(error)?;
                let at = submitted_at.borrow_mut().pop_front().ok_or("a completion nobody waited for")?;
                Ok(at.elapsed())
            },
        )
    }

    fn fill(&self, payload: &Payloads, entries: u64) -> Result<(), Error> {
        use raft_log::api::raft_log_writer::RaftLogWriter;
        let mut log = self.log.lock().map_err(error)?;
        let first = RaftLog::next_index(&log);
        log.append((first..first + entries).map(|index| ((1, index), payload.at(index).to_vec())))
            .map_err(error)?;
        let (done, durable) = std::sync::mpsc::sync_channel(1);
        log.flush(true, Some(done)).map_err(error)?;
        drop(log);
        durable.recv().map_err(error)?.map_err(error)
    }

    fn read(&self, from: u64, count: u64) -> Result<u64, Error> {
        let log = self.log.lock().map_err(error)?;
        let first = log.log_state().purged().map_or(1, |(_, index)| index + 1);
        let begin = first + from - 1;
        log.read(begin, begin + count).try_fold(0, |read, entry| entry.map(|_| read + 1)).map_err(error)
    }

    fn fsyncs(&self) -> Option<u64> {
        None
    }
}

/// raft-engine with every group a region of one engine, for the groups workloads.
pub struct RaftEngineGroups {
    engine: raft_engine::Engine,
}

impl RaftEngineGroups {
    pub fn open(dir: &Path) -> Result<RaftEngineGroups, Error> {
        let config = raft_engine::Config { dir: dir.to_string_lossy().into_owned(), ..Default::default() };
        Ok(RaftEngineGroups { engine: raft_engine::Engine::open(config).map_err(error)? })
    }
}

impl super::groups::GroupLog for RaftEngineGroups {
    fn append(&self, group: u64, index: u64, payload: &[u8]) -> Result<(), Error> {
        let mut batch = raft_engine::LogBatch::with_capacity(1);
        batch.add_entries::<EntryType>(group, &[entry(index, payload)]).map_err(error)?;
        self.engine.write(&mut batch, true).map(drop).map_err(error)
    }

    /// All appends in one `LogBatch`, one synced write: TiKV's store writer.
    fn append_many(&self, appends: &[(u64, u64)], payload: &Payloads) -> Result<(), Error> {
        let mut batch = raft_engine::LogBatch::with_capacity(appends.len());
        for &(group, index) in appends {
            batch
                .add_entries::<EntryType>(group, &[entry(index, payload.at(index + group))])
                .map_err(error)?;
        }
        self.engine.write(&mut batch, true).map(drop).map_err(error)
    }

    fn fsyncs(&self) -> Option<u64> {
        None
    }
}
