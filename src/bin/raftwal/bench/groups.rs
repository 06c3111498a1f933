//! The `groups` workloads: G Raft groups in one process, D closed-loop drivers each owning G/D of
//! them and appending one entry to each in turn. `groups` appends through each group's own call;
//! `groups-writer` hands the appends to one store writer, which merges whatever is queued, of all
//! groups, into one call (TiKV's store writer). Engines: raftwal with all groups in one log,
//! raftwal with one log per group (up to `PER_GROUP_LOGS_MAX` groups), and with `--compare`
//! raft-engine with all groups (regions) in one engine.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, unbounded};
use serde_json::{Value, json};

use super::Payloads;
use super::engines::Error;

/// The most groups raftwal runs with one log each: every log has its threads and its
/// preallocated segments.
pub const PER_GROUP_LOGS_MAX: u64 = 256;

/// Segment size of the one-log-per-group engine: with the 64 MiB default, 256 logs would
/// preallocate 32 GiB.
const PER_GROUP_SEGMENT_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Each driver appends through its groups' own calls.
    Direct,
    /// Drivers queue their appends; one writer submits everything queued in one call.
    StoreWriter,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Direct => "groups",
            Variant::StoreWriter => "groups-writer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupEngine {
    /// raftwal, every group in one log.
    OneLog,
    /// raftwal, one log per group.
    PerGroupLogs,
    /// raft-engine, every group a region of one engine.
    #[cfg(feature = "compare")]
    RaftEngine,
}

impl GroupEngine {
    pub fn all(compare: bool) -> Vec<GroupEngine> {
        let peers: &[GroupEngine] = &[
            #[cfg(feature = "compare")]
            GroupEngine::RaftEngine,
        ];
        let peers = if compare { peers } else { &[] };
        [GroupEngine::OneLog, GroupEngine::PerGroupLogs].into_iter().chain(peers.iter().copied()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            GroupEngine::OneLog => "raftwal",
            GroupEngine::PerGroupLogs => "raftwal-per-group",
            #[cfg(feature = "compare")]
            GroupEngine::RaftEngine => "raft-engine",
        }
    }

    pub fn runs(self, groups: u64) -> bool {
        self != GroupEngine::PerGroupLogs || groups <= PER_GROUP_LOGS_MAX
    }

    fn open(self, dir: &Path, groups: u64) -> Result<Box<dyn GroupLog>, Error> {
        Ok(match self {
            GroupEngine::OneLog => Box::new(OneLog::open(dir, groups)?),
            GroupEngine::PerGroupLogs => Box::new(PerGroupLogs::open(dir, groups)?),
            #[cfg(feature = "compare")]
            GroupEngine::RaftEngine => Box::new(super::peers::RaftEngineGroups::open(dir)?),
        })
    }
}

/// Groups `1..=G` of one engine.
pub trait GroupLog: Send + Sync {
    /// Appends entry `index` to `group`; returns once it is durable.
    fn append(&self, group: u64, index: u64, payload: &[u8]) -> Result<(), Error>;
    /// Appends one entry to each `(group, index)` in one call; returns once all are durable.
    fn append_many(&self, appends: &[(u64, u64)], payload: &Payloads) -> Result<(), Error>;
    /// fdatasyncs issued so far, if the engine counts them.
    fn fsyncs(&self) -> Option<u64>;
}

/// One measurement of a groups workload.
#[derive(Clone, Debug)]
pub struct GroupRun {
    pub variant: Variant,
    pub engine: &'static str,
    pub groups: u64,
    pub drivers: usize,
    pub entry_bytes: usize,
    pub round: usize,
    pub entries: u64,
    pub elapsed: Duration,
    pub fsyncs: Option<u64>,
    /// Threads the engine added to the process, counted right after open.
    pub engine_threads: usize,
    /// Bytes the engine's files take on the disk after the run (allocated blocks).
    pub disk_bytes: u64,
    /// Growth of the process's resident set from before open to the end of the run.
    pub rss_bytes: i64,
    /// Time to open the engine again after the run, and find every group.
    pub open: Duration,
}

impl GroupRun {
    fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    pub fn json(&self) -> Value {
        json!({
            "workload": self.variant.name(),
            "engine": self.engine,
            "groups": self.groups,
            "threads": self.drivers,
            "entry_bytes": self.entry_bytes,
            "round": self.round,
            "entries": self.entries,
            "seconds": self.elapsed.as_secs_f64(),
            "entries_per_sec": self.entries_per_sec(),
            "fsyncs": self.fsyncs,
            "fsyncs_per_sec": self.fsyncs.map(|fsyncs| fsyncs as f64 / self.elapsed.as_secs_f64()),
            "engine_threads": self.engine_threads,
            "disk_bytes": self.disk_bytes,
            "rss_bytes": self.rss_bytes,
            "open_seconds": self.open.as_secs_f64(),
        })
    }
}

/// Runs one configuration of one engine in a fresh directory `dir`.
#[allow(clippy::too_many_arguments, reason = "one configuration's parameters")]
pub fn measure(
    engine: GroupEngine,
    dir: &Path,
    variant: Variant,
    groups: u64,
    drivers: usize,
    payload: &Payloads,
    seconds: Duration,
    round: usize,
) -> Result<GroupRun, Error> {
    let (threads, rss) = (os_threads(), rss_bytes());
    let log: Arc<dyn GroupLog> = Arc::from(engine.open(dir, groups)?);
    let engine_threads = os_threads().saturating_sub(threads);
    std::thread::sleep(super::SETTLE);
    let fsyncs = log.fsyncs();
    let started = Instant::now();
    let entries = match variant {
        Variant::Direct => direct(&log, groups, drivers, payload, started + seconds)?,
        Variant::StoreWriter => store_writer(&log, groups, drivers, payload, started + seconds)?,
    };
    let elapsed = started.elapsed();
    let fsyncs = log.fsyncs().zip(fsyncs).map(|(after, before)| after - before);
    let rss_bytes = rss_bytes() - rss;
    drop(log);
    let disk_bytes = disk_bytes(dir);
    let opened = Instant::now();
    drop(engine.open(dir, groups)?);
    let open = opened.elapsed();
    Ok(GroupRun {
        variant,
        engine: engine.name(),
        groups,
        drivers,
        entry_bytes: payload.len(),
        round,
        entries,
        elapsed,
        fsyncs,
        engine_threads,
        disk_bytes,
        rss_bytes,
        open,
    })
}

/// The groups driver `driver` of `drivers` owns.
fn owned(groups: u64, drivers: usize, driver: usize) -> Vec<u64> {
    (1..=groups).filter(|group| (group % drivers as u64) as usize == driver).collect()
}

/// Each driver appends one entry to each of its groups in turn, each durable before the next.
fn direct(
    log: &Arc<dyn GroupLog>,
    groups: u64,
    drivers: usize,
    payload: &Payloads,
    deadline: Instant,
) -> Result<u64, Error> {
    let total = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..drivers)
            .map(|driver| {
                let (log, total) = (log.clone(), &total);
                scope.spawn(move || -> Result<(), Error> {
                    let mine = owned(groups, drivers, driver);
                    let mut next = 1;
                    while Instant::now() < deadline && !mine.is_empty() {
                        for &group in &mine {
                            log.append(group, next, payload.at(next + group))?;
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        next += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| worker.join().map_err(|_| "driver panicked".to_string())?)
    })?;
    Ok(total.into_inner())
}

/// Each driver queues one append to each of its groups in turn and waits for it; one writer
/// takes everything queued and appends it in one call.
fn store_writer(
    log: &Arc<dyn GroupLog>,
    groups: u64,
    drivers: usize,
    payload: &Payloads,
    deadline: Instant,
) -> Result<u64, Error> {
    let (queue, queued) = unbounded::<((u64, u64), Sender<Result<(), Error>>)>();
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        let writer = {
            let log = log.clone();
            scope.spawn(move || {
                while let Ok(first) = queued.recv() {
                    let waiting: Vec<_> = std::iter::once(first).chain(queued.try_iter()).collect();
                    let appends: Vec<(u64, u64)> = waiting.iter().map(|(append, _)| *append).collect();
                    let written = log.append_many(&appends, payload);
                    for (_, reply) in waiting {
                        let _ = reply.send(written.clone());
                    }
                }
            })
        };
        let workers: Vec<_> = (0..drivers)
            .map(|driver| {
                let (queue, stop, total, failure) = (queue.clone(), &stop, &total, &failure);
                scope.spawn(move || {
                    let mine = owned(groups, drivers, driver);
                    let (reply, replied) = bounded(1);
                    let mut next = 1;
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && !mine.is_empty() {
                        for &group in &mine {
                            let outcome = queue
                                .send(((group, next), reply.clone()))
                                .map_err(|error| error.to_string())
                                .and_then(|()| replied.recv().map_err(|error| error.to_string())?);
                            if let Err(error) = outcome {
                                *failure.lock().expect("not poisoned") = Some(error);
                                stop.store(true, Ordering::Relaxed);
                                return;
                            }
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        next += 1;
                    }
                })
            })
            .collect();
        drop(queue);
        for worker in workers {
            let _ = worker.join();
        }
        let _ = writer.join();
    });
    match failure.into_inner().expect("not poisoned") {
        Some(error) => Err(error),
        None => Ok(total.into_inner()),
    }
}

/// A warm open of a raftwal log holding `mib` MiB of entries spread over `groups` groups (one
/// appended to each in turn), beside the open of a log holding the same bytes in one group:
/// reading and verifying those bytes, which every open does.
#[derive(Clone, Debug)]
pub struct OpenRun {
    pub groups: u64,
    pub entry_bytes: usize,
    pub round: usize,
    pub bytes: u64,
    pub open: Duration,
    /// The open of the same bytes in one group, in the same round.
    pub one_group_open: Duration,
}

impl OpenRun {
    pub fn json(&self) -> Value {
        json!({
            "workload": "groups-recovery",
            "engine": "raftwal",
            "groups": self.groups,
            "threads": 1,
            "entry_bytes": self.entry_bytes,
            "round": self.round,
            "payload_bytes": self.bytes,
            "open_seconds": self.open.as_secs_f64(),
            "one_group_open_seconds": self.one_group_open.as_secs_f64(),
        })
    }
}

/// Fills a log in `dir` with `mib` MiB over `groups` groups, closes it, and times a warm open.
fn fill_and_open(dir: &Path, groups: u64, mib: u64, payload: &Payloads) -> Result<(u64, Duration), Error> {
    let entries = (mib << 20) / payload.len() as u64;
    {
        let log = OneLog::open(dir, groups)?;
        let per_call = 1024.min(entries);
        let mut written = 0;
        while written < entries {
            let appends: Vec<(u64, u64)> = (written..written + per_call.min(entries - written))
                .map(|n| (1 + n % groups, 1 + n / groups))
                .collect();
            log.append_many(&appends, payload)?;
            written += appends.len() as u64;
        }
        log.wal.close().map_err(|error| error.to_string())?;
    }
    let opened = Instant::now();
    let log = OneLog::open(dir, groups)?;
    let open = opened.elapsed();
    drop(log);
    Ok((entries * payload.len() as u64, open))
}

/// One round of the groups-recovery workload: `groups` groups, then one group, `mib` MiB each.
pub fn measure_open(
    root: &Path,
    groups: u64,
    mib: u64,
    payload: &Payloads,
    round: usize,
) -> Result<OpenRun, Error> {
    let many = tempfile::tempdir_in(root).map_err(|error| error.to_string())?;
    let (bytes, open) = fill_and_open(many.path(), groups, mib, payload)?;
    drop(many);
    let one = tempfile::tempdir_in(root).map_err(|error| error.to_string())?;
    let (_, one_group_open) = fill_and_open(one.path(), 1, mib, payload)?;
    Ok(OpenRun { groups, entry_bytes: payload.len(), round, bytes, open, one_group_open })
}

/// Prints the opens of logs of many groups against those of one group of the same bytes.
pub fn print_opens(runs: &[OpenRun]) {
    if runs.is_empty() {
        return;
    }
    let ratios: Vec<f64> =
        runs.iter().map(|run| run.open.as_secs_f64() / run.one_group_open.as_secs_f64()).collect();
    let run = &runs[0];
    println!(
        "groups-recovery: warm open of {} MiB in {} groups {:.0} ms, in one group {:.0} ms (medians); median ratio {:.2}x",
        run.bytes >> 20,
        run.groups,
        median(runs.iter().map(|run| run.open.as_secs_f64() * 1e3).collect()),
        median(runs.iter().map(|run| run.one_group_open.as_secs_f64() * 1e3).collect()),
        median(ratios)
    );
    println!();
}

/// Space reclamation with some groups never purging: G groups, D drivers, every group purged to
/// its last `STEADY_KEEP` entries after each of its appends except every hundredth group, which
/// never purges. Segments of `STEADY_SEGMENT_BYTES`, relocation after
/// `STEADY_RELOCATE_AFTER` of them, so that many segments are emptied and relocated within a run.
#[derive(Clone, Debug)]
pub struct SteadyRun {
    pub groups: u64,
    pub drivers: usize,
    pub entry_bytes: usize,
    pub round: usize,
    pub entries: u64,
    pub elapsed: Duration,
    /// Payload bytes appended.
    pub appended: u64,
    /// Bytes raftwal handed to the OS (records, checkpoints, relocated copies).
    pub written: u64,
    /// Sectors the block device wrote, in bytes.
    pub device_written: Option<u64>,
    pub relocated: u64,
    /// Segments holding the log at the end, and at most during the run.
    pub segments_end: u64,
    pub segments_max: u64,
    /// Payload bytes the never-purging groups hold at the end.
    pub kept: u64,
}

pub const STEADY_KEEP: u64 = 16;
const STEADY_SEGMENT_BYTES: u64 = 4 << 20;
const STEADY_RELOCATE_AFTER: usize = 8;

impl SteadyRun {
    pub fn json(&self) -> Value {
        json!({
            "workload": "groups-steady",
            "engine": "raftwal",
            "groups": self.groups,
            "threads": self.drivers,
            "entry_bytes": self.entry_bytes,
            "round": self.round,
            "entries": self.entries,
            "seconds": self.elapsed.as_secs_f64(),
            "entries_per_sec": self.entries as f64 / self.elapsed.as_secs_f64(),
            "payload_bytes": self.appended,
            "bytes_written": self.written,
            "device_write_bytes": self.device_written,
            "entries_relocated": self.relocated,
            "segments_end": self.segments_end,
            "segments_max": self.segments_max,
            "never_purged_bytes": self.kept,
        })
    }
}

/// One run of the groups-steady workload in `dir`.
pub fn measure_steady(
    dir: &Path,
    groups: u64,
    drivers: usize,
    payload: &Payloads,
    seconds: Duration,
    round: usize,
) -> Result<SteadyRun, Error> {
    let options = raftwal::Options {
        segment_bytes: STEADY_SEGMENT_BYTES,
        relocate_after_segments: STEADY_RELOCATE_AFTER,
        ..raftwal::Options::default()
    };
    let log = OneLog::open_with(dir, groups, options)?;
    std::thread::sleep(super::SETTLE);
    let device = super::device_write_bytes(dir);
    let before = log.wal.stats();
    let started = Instant::now();
    let deadline = started + seconds;
    let total = AtomicU64::new(0);
    let segments_max = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<(), Error> {
        let watcher = scope.spawn(|| {
            while Instant::now() < deadline {
                segments_max.fetch_max(log.wal.stats().segments, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let workers: Vec<_> = (0..drivers)
            .map(|driver| {
                let (log, total) = (&log, &total);
                scope.spawn(move || -> Result<(), Error> {
                    let mine = owned(groups, drivers, driver);
                    let mut next = 1;
                    while Instant::now() < deadline && !mine.is_empty() {
                        for &group in &mine {
                            log.append(group, next, payload.at(next + group))?;
                            if group % 100 != 0 && next > STEADY_KEEP {
                                let purged = log.groups[group as usize - 1].purge(next - STEADY_KEEP);
                                drop(purged.map_err(|error| error.to_string())?);
                            }
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        next += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "driver panicked".to_string())??;
        }
        watcher.join().map_err(|_| "watcher panicked".to_string())
    })?;
    let elapsed = started.elapsed();
    log.wal.sync().map_err(|error| error.to_string())?;
    let after = log.wal.stats();
    let entries = total.into_inner();
    let kept = (1..=groups)
        .filter(|group| group % 100 == 0)
        .filter_map(|group| log.groups[group as usize - 1].last_index().ok().flatten())
        .sum::<u64>()
        * payload.len() as u64;
    Ok(SteadyRun {
        groups,
        drivers,
        entry_bytes: payload.len(),
        round,
        entries,
        elapsed,
        appended: entries * payload.len() as u64,
        written: after.bytes_written - before.bytes_written,
        device_written: super::device_write_bytes(dir).zip(device).map(|(after, before)| after - before),
        relocated: after.entries_relocated - before.entries_relocated,
        segments_end: after.segments,
        segments_max: segments_max.into_inner(),
        kept,
    })
}

/// Prints each groups-steady run.
pub fn print_steady(runs: &[SteadyRun]) {
    for run in runs {
        let per = |bytes: u64| bytes as f64 / run.appended.max(1) as f64;
        println!(
            "groups-steady G={} D={} S={} (1% never purge): {:.0} entries/s; written/appended {:.2}, device {}; {} entries relocated ({:.1}% of appended); segments {} at the end, {} at most ({} MiB each); never-purged groups hold {:.1} MiB",
            run.groups,
            run.drivers,
            run.entry_bytes,
            run.entries as f64 / run.elapsed.as_secs_f64(),
            per(run.written),
            run.device_written.map_or_else(|| "-".into(), |bytes| format!("{:.2}", per(bytes))),
            run.relocated,
            run.relocated as f64 * 100.0 / run.entries.max(1) as f64,
            run.segments_end,
            run.segments_max,
            STEADY_SEGMENT_BYTES >> 20,
            run.kept as f64 / (1 << 20) as f64,
        );
    }
    if !runs.is_empty() {
        println!();
    }
}

fn entry(index: u64, payload: &[u8]) -> raftwal::Entry {
    raftwal::Entry { index, term: 1, data: payload.to_vec() }
}

/// raftwal, every group in one log.
struct OneLog {
    wal: raftwal::Wal,
    /// Handle of group `g` at `g - 1`.
    groups: Vec<raftwal::Group>,
}

impl OneLog {
    fn open(dir: &Path, groups: u64) -> Result<OneLog, Error> {
        OneLog::open_with(dir, groups, raftwal::Options::default())
    }

    fn open_with(dir: &Path, groups: u64, options: raftwal::Options) -> Result<OneLog, Error> {
        let wal = raftwal::Wal::open(dir, options).map_err(|error| error.to_string())?;
        let handles = (1..=groups)
            .map(|id| wal.group(id).or_else(|_| wal.create_group(id)))
            .collect::<raftwal::Result<Vec<_>>>()
            .map_err(|error| error.to_string())?;
        Ok(OneLog { wal, groups: handles })
    }
}

impl GroupLog for OneLog {
    fn append(&self, group: u64, index: u64, payload: &[u8]) -> Result<(), Error> {
        let group = &self.groups[group as usize - 1];
        let done = group.append(&[entry(index, payload)]).map_err(|error| error.to_string())?;
        done.wait().map_err(|error| error.to_string())
    }

    fn append_many(&self, appends: &[(u64, u64)], payload: &Payloads) -> Result<(), Error> {
        let batches: Vec<[raftwal::Entry; 1]> =
            appends.iter().map(|&(group, index)| [entry(index, payload.at(index + group))]).collect();
        let ops: Vec<raftwal::GroupOp<'_>> = appends
            .iter()
            .zip(&batches)
            .map(|(&(group, _), batch)| raftwal::GroupOp::Append(&self.groups[group as usize - 1], batch))
            .collect();
        let done = self.wal.submit(&ops).map_err(|error| error.to_string())?;
        done.wait().map_err(|error| error.to_string())
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.wal.stats().fsyncs)
    }
}

/// raftwal, one log per group, each in a directory of its own.
struct PerGroupLogs {
    wals: Vec<raftwal::Wal>,
}

impl PerGroupLogs {
    fn open(dir: &Path, groups: u64) -> Result<PerGroupLogs, Error> {
        let options =
            raftwal::Options { segment_bytes: PER_GROUP_SEGMENT_BYTES, ..raftwal::Options::default() };
        let wals = (1..=groups)
            .map(|group| raftwal::Wal::open(dir.join(format!("group-{group}")), options.clone()))
            .collect::<raftwal::Result<Vec<_>>>()
            .map_err(|error| error.to_string())?;
        Ok(PerGroupLogs { wals })
    }
}

impl GroupLog for PerGroupLogs {
    fn append(&self, group: u64, index: u64, payload: &[u8]) -> Result<(), Error> {
        let done = self.wals[group as usize - 1]
            .append(&[entry(index, payload)])
            .map_err(|error| error.to_string())?;
        done.wait().map_err(|error| error.to_string())
    }

    /// One append per log, all in flight at once, then waits for all.
    fn append_many(&self, appends: &[(u64, u64)], payload: &Payloads) -> Result<(), Error> {
        let done = appends
            .iter()
            .map(|&(group, index)| {
                self.wals[group as usize - 1].append(&[entry(index, payload.at(index + group))])
            })
            .collect::<raftwal::Result<Vec<_>>>()
            .map_err(|error| error.to_string())?;
        done.into_iter().try_for_each(|done| done.wait().map_err(|error| error.to_string()))
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.wals.iter().map(|wal| wal.stats().fsyncs).sum())
    }
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// The process's resident set, from `/proc/self/statm` (pages of 4 KiB).
fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|pages| pages.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => disk_bytes(&entry.path()),
            Ok(metadata) => metadata.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Prints one line per configuration and engine: medians over rounds, and raftwal's median
/// per-round ratio to raft-engine.
pub fn print(runs: &[GroupRun]) {
    if runs.is_empty() {
        return;
    }
    println!(
        "{:<14} {:>6} {:>3} {:>6} {:<18} {:>10} {:>9} {:>7} {:>7} {:>10} {:>9} {:>8} {:>8}",
        "workload",
        "G",
        "D",
        "bytes",
        "engine",
        "entries/s",
        "fsyncs/s",
        "e/fsync",
        "threads",
        "disk MiB",
        "rss MiB",
        "open ms",
        "vs r-e"
    );
    let mut keys: Vec<(Variant, u64, usize, usize)> =
        runs.iter().map(|run| (run.variant, run.groups, run.drivers, run.entry_bytes)).collect();
    keys.sort_by_key(|&(variant, groups, drivers, bytes)| (variant.name(), groups, drivers, bytes));
    keys.dedup();
    for key in keys {
        let same: Vec<&GroupRun> = runs
            .iter()
            .filter(|run| (run.variant, run.groups, run.drivers, run.entry_bytes) == key)
            .collect();
        let mut engines: Vec<&'static str> = Vec::new();
        for run in &same {
            if !engines.contains(&run.engine) {
                engines.push(run.engine);
            }
        }
        for engine in engines {
            let of = |value: &dyn Fn(&GroupRun) -> f64| {
                median(same.iter().filter(|run| run.engine == engine).map(|run| value(run)).collect())
            };
            let ratio = (engine == "raftwal")
                .then(|| {
                    let ratios: Vec<f64> = same
                        .iter()
                        .filter(|run| run.engine == "raftwal")
                        .filter_map(|ours| {
                            let theirs = same
                                .iter()
                                .find(|run| run.engine == "raft-engine" && run.round == ours.round)?;
                            Some(ours.entries_per_sec() / theirs.entries_per_sec())
                        })
                        .collect();
                    (!ratios.is_empty()).then(|| median(ratios))
                })
                .flatten();
            let fsyncs = |run: &GroupRun| {
                run.fsyncs.map_or(f64::NAN, |fsyncs| fsyncs as f64 / run.elapsed.as_secs_f64())
            };
            let per_fsync = |run: &GroupRun| {
                run.fsyncs.filter(|&f| f > 0).map_or(f64::NAN, |fsyncs| run.entries as f64 / fsyncs as f64)
            };
            println!(
                "{:<14} {:>6} {:>3} {:>6} {:<18} {:>10.0} {:>9.0} {:>7.1} {:>7.0} {:>10.1} {:>9.1} {:>8.1} {:>8}",
                key.0.name(),
                key.1,
                key.2,
                key.3,
                engine,
                of(&GroupRun::entries_per_sec),
                of(&fsyncs),
                of(&per_fsync),
                of(&|run| run.engine_threads as f64),
                of(&|run| run.disk_bytes as f64 / (1 << 20) as f64),
                of(&|run| run.rss_bytes as f64 / (1 << 20) as f64),
                of(&|run| run.open.as_secs_f64() * 1e3),
                ratio.map_or_else(String::new, |ratio| format!("{ratio:.2}x")),
            );
        }
    }
    println!();
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
