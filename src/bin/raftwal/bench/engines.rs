//! The engines the benchmark drives, behind one interface: raftwal always, and with the
//! `compare` feature tikv's raft-engine, raft-log and okaywal.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use hdrhistogram::Histogram;
use raftwal::{Entry, Options, Wal};

use super::Payloads;

pub type Error = String;

/// The steady state of a Raft log: after every `every` entries appended, everything but the
/// last `keep` is compacted away (raftwal: `purge`; raft-engine: `compact_to`, then
/// `purge_expired_files`), so the log stays about `keep` entries long.
#[derive(Clone, Copy, Debug)]
pub struct Purge {
    pub every: u64,
    pub keep: u64,
}

impl Purge {
    /// The last index to compact away, when appends moved the next index from `before` to
    /// `next` past a multiple of `every`; the same points for every engine.
    pub fn upto(self, before: u64, next: u64) -> Option<u64> {
        (next / self.every > before / self.every && next > self.keep).then(|| next - 1 - self.keep)
    }
}

/// One closed-loop writer of the independent workload.
pub trait Appender: Send {
    /// Appends one entry and returns once it is durable.
    fn append(&mut self, payload: &[u8]) -> Result<(), Error>;
}

pub trait Engine: Send + Sync {
    /// A writer for thread `thread` (raftwal: all threads share the one log; peers: each its
    /// own raft group).
    fn appender(&self, thread: usize) -> Box<dyn Appender + '_>;
    /// One submitter keeps `window` appends to one raft group in flight until `deadline`,
    /// purging as `purge` says; returns the entries completed, recording each one's
    /// submit-to-durable latency.
    fn pipelined(
        &self,
        payload: &Payloads,
        window: usize,
        deadline: Instant,
        latency: &mut Histogram<u64>,
        purge: Option<Purge>,
    ) -> Result<u64, Error>;
    /// Appends `entries` entries to one group without waiting for durability, then syncs
    /// once: a log to recover or read.
    fn fill(&self, payload: &Payloads, entries: u64) -> Result<(), Error>;
    /// Reads `count` entries starting at entry `from` (1-based) of the group `fill` wrote.
    fn read(&self, from: u64, count: u64) -> Result<u64, Error>;
    /// fdatasyncs issued so far, if the engine counts them.
    fn fsyncs(&self) -> Option<u64>;
    /// Heap bytes of the in-memory index per entry, if the engine reports it.
    fn index_bytes_per_entry(&self) -> Option<f64> {
        None
    }
    /// Time appenders have spent waiting for a preallocated segment so far, summed over
    /// appenders, if the engine reports it.
    fn segment_wait(&self) -> Option<Duration> {
        None
    }
}

/// Keeps `window` submissions in flight until `deadline`, then waits for the rest, recording the
/// latency each completion reports. Returns how many completed.
pub fn keep_in_flight(
    window: usize,
    deadline: Instant,
    latency: &mut Histogram<u64>,
    mut submit: impl FnMut() -> Result<(), Error>,
    mut completed: impl FnMut() -> Result<Duration, Error>,
) -> Result<u64, Error> {
    let mut in_flight = 0;
    let mut done = 0;
    while Instant::now() < deadline {
        while in_flight < window {
            submit()?;
            in_flight += 1;
        }
        latency.saturating_record(completed()?.as_micros() as u64);
        in_flight -= 1;
        done += 1;
    }
    for _ in 0..in_flight {
        latency.saturating_record(completed()?.as_micros() as u64);
        done += 1;
    }
    Ok(done)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Raftwal,
    #[cfg(feature = "compare")]
    RaftEngine,
    #[cfg(feature = "compare")]
    RaftLog,
    #[cfg(feature = "compare")]
    Okaywal,
}

/// The peers `--compare` adds, when built with the `compare` feature.
const PEERS: &[Kind] = &[
    #[cfg(feature = "compare")]
    Kind::RaftEngine,
    #[cfg(feature = "compare")]
    Kind::RaftLog,
    #[cfg(feature = "compare")]
    Kind::Okaywal,
];

impl Kind {
    pub fn all(compare: bool) -> Vec<Kind> {
        let peers = if compare { PEERS } else { &[] };
        std::iter::once(Kind::Raftwal).chain(peers.iter().copied()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Raftwal => "raftwal",
            #[cfg(feature = "compare")]
            Kind::RaftEngine => "raft-engine",
            #[cfg(feature = "compare")]
            Kind::RaftLog => "raft-log",
            #[cfg(feature = "compare")]
            Kind::Okaywal => "okaywal",
        }
    }

    /// okaywal takes part in the independent workload only: it has no asynchronous append, and
    /// its recovery hands entries to a manager instead of keeping a readable log.
    pub fn runs(self, workload: super::Workload) -> bool {
        let independent_only = match self {
            #[cfg(feature = "compare")]
            Kind::Okaywal => true,
            _ => false,
        };
        workload == super::Workload::Independent || !independent_only
    }

    pub fn open(self, dir: &Path) -> Result<Box<dyn Engine>, Error> {
        Ok(match self {
            Kind::Raftwal => Box::new(RaftwalEngine::open(dir)?),
            #[cfg(feature = "compare")]
            Kind::RaftEngine => Box::new(super::peers::RaftEngine::open(dir)?),
            #[cfg(feature = "compare")]
            Kind::RaftLog => Box::new(super::peers::RaftLog::open(dir)?),
            #[cfg(feature = "compare")]
            Kind::Okaywal => Box::new(super::peers::Okaywal::open(dir)?),
        })
    }
}

struct RaftwalEngine {
    wal: Wal,
    /// The next index; the independent writers take it in turn, as the API requires.
    next: Arc<Mutex<u64>>,
}

impl RaftwalEngine {
    fn open(dir: &Path) -> Result<RaftwalEngine, Error> {
        let wal = Wal::open(dir, Options::default()).map_err(|error| error.to_string())?;
        let next = wal.next_index().map_err(|error| error.to_string())?.unwrap_or(1);
        Ok(RaftwalEngine { wal, next: Arc::new(Mutex::new(next)) })
    }

    fn entry(index: u64, payload: &[u8]) -> Entry {
        Entry { index, term: 1, data: payload.to_vec() }
    }
}

struct RaftwalAppender<'a> {
    engine: &'a RaftwalEngine,
}

impl Appender for RaftwalAppender<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(), Error> {
        let done = {
            let mut next = self.engine.next.lock().expect("not poisoned");
            let done = self
                .engine
                .wal
                .append(&[RaftwalEngine::entry(*next, payload)])
                .map_err(|error| error.to_string())?;
            *next += 1;
            done
        };
        done.wait().map_err(|error| error.to_string())
    }
}

impl Engine for RaftwalEngine {
    fn appender(&self, _thread: usize) -> Box<dyn Appender + '_> {
        Box::new(RaftwalAppender { engine: self })
    }

    fn pipelined(
        &self,
        payload: &Payloads,
        window: usize,
        deadline: Instant,
        latency: &mut Histogram<u64>,
        purge: Option<Purge>,
    ) -> Result<u64, Error> {
        // Each callback hands back its append's latency.
        let (latencies, returned) = bounded::<Duration>(window);
        let mut next = *self.next.lock().expect("not poisoned");
        let completed = keep_in_flight(
            window,
            deadline,
            latency,
            || {
                let latencies = latencies.clone();
                let submitted = Instant::now();
                let entry = [RaftwalEngine::entry(next, payload.at(next))];
                self.wal
                    .append_with(&entry, move |result| {
                        if result.is_ok() {
                            let _ = latencies.send(submitted.elapsed());
                        }
                    })
                    .map_err(|error| error.to_string())?;
                next += 1;
                if let Some(upto) = purge.and_then(|purge| purge.upto(next - 1, next)) {
                    // Ordered after the appends before it; nothing waits for it.
                    drop(self.wal.purge(upto).map_err(|error| error.to_string())?);
                }
                Ok(())
            },
            || returned.recv_timeout(Duration::from_secs(10)).map_err(|_| "append failed".to_string()),
        )?;
        *self.next.lock().expect("not poisoned") = next;
        Ok(completed)
    }

    fn fill(&self, payload: &Payloads, entries: u64) -> Result<(), Error> {
        let mut next = self.next.lock().expect("not poisoned");
        let batch = (64 << 10) / (payload.len() as u64 + 64).max(1) + 1;
        let mut done = None;
        let end = *next + entries;
        while *next < end {
            let count = batch.min(end - *next);
            let chunk: Vec<Entry> =
                (*next..*next + count).map(|index| RaftwalEngine::entry(index, payload.at(index))).collect();
            done = Some(self.wal.append(&chunk).map_err(|error| error.to_string())?);
            *next += count;
        }
        if let Some(done) = done {
            done.wait().map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    fn read(&self, from: u64, count: u64) -> Result<u64, Error> {
        let first = self.wal.first_index().map_err(|error| error.to_string())?.unwrap_or(1);
        let read = self
            .wal
            .entries(first + from - 1..first + from - 1 + count, u64::MAX)
            .map_err(|error| error.to_string())?;
        Ok(read.len() as u64)
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.wal.stats().fsyncs)
    }

    fn segment_wait(&self) -> Option<Duration> {
        Some(Duration::from_micros(self.wal.stats().segment_wait_micros))
    }

    fn index_bytes_per_entry(&self) -> Option<f64> {
        let stats = self.wal.stats();
        (stats.index_entries > 0).then(|| stats.index_bytes as f64 / stats.index_entries as f64)
    }
}
