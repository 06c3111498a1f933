//! `raftwal bench`: durable-append throughput and latency on this disk, beside the disk's own
//! limit and (with `--compare`) beside raft-engine, raft-log and okaywal. Engines run
//! interleaved, one round of each in turn, so that a disk that changes speed on its own moves
//! them all alike; the report gives each engine's median and the median of per-round ratios.

mod disk;
mod engines;
mod groups;
#[cfg(feature = "compare")]
mod peers;
mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use disk::Pattern;
use engines::{Engine, Kind, Purge};
use report::Measurement;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// The disk's own limits: 4 KiB overwrite, 4 KiB append, 1 MiB sequential, each + fdatasync.
    Disk,
    /// T closed-loop threads, one entry per durable append.
    Independent,
    /// One submitter keeping W appends in flight to one raft group.
    Pipelined,
    /// Pipelined, with a purge every `--purge-every-mib` that keeps the log `--keep-mib` long:
    /// a Raft log's steady state, where segments are emptied and replaced all the time. Measured
    /// after an unmeasured warm-up of a quarter of `--steady-seconds`.
    Steady,
    /// Time to open a log after writing it: warm (the log in the page cache) and, as root, cold
    /// (after `sync; echo 3 > /proc/sys/vm/drop_caches`), beside the disk's own sequential read.
    Recovery,
    /// Sequential range reads and random point reads.
    Read,
    /// G Raft groups (`--groups`), D closed-loop drivers (`--group-drivers`) each owning G/D of
    /// them and appending one entry to each in turn, each durable before the next.
    Groups,
    /// `groups`, with every append handed to one store writer, which submits all that is queued,
    /// of all groups, in one call.
    GroupsWriter,
    /// A warm open of raftwal's log holding `--recovery-mib` MiB over the largest `--groups`
    /// count, beside the open of the same bytes in one group.
    GroupsRecovery,
    /// Space reclamation: the largest `--groups` count, each group purged as it goes except one
    /// in a hundred, which never purges; for `--steady-seconds`. Bytes written per byte appended,
    /// entries relocated, segments on disk.
    GroupsSteady,
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory to benchmark in; each run uses a fresh temporary directory inside it.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Thread counts for the independent workload.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16, 64])]
    threads: Vec<usize>,
    /// Entry sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 4096])]
    entry_bytes: Vec<usize>,
    /// Appends in flight for the pipelined workload.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Entry size of the large-entry pipelined run, compared with the disk's bandwidth.
    #[arg(long, default_value_t = 65536)]
    large_entry_bytes: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.5)]
    seconds: f64,
    /// Rounds per configuration (engines interleaved within each round).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// MiB of log written for the recovery and read workloads.
    #[arg(long, default_value_t = 128)]
    recovery_mib: u64,
    /// Steady workload: MiB of entries appended between purges.
    #[arg(long, default_value_t = 16)]
    purge_every_mib: u64,
    /// Steady workload: MiB of entries each purge keeps.
    #[arg(long, default_value_t = 64)]
    keep_mib: u64,
    /// Seconds per measurement of the steady workload: long enough for many segments to be
    /// emptied and replaced.
    #[arg(long, default_value_t = 4.0)]
    steady_seconds: f64,
    /// Group counts for the groups workloads.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 100, 1000, 10000])]
    groups: Vec<u64>,
    /// Driver threads for the groups workloads.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 64])]
    group_drivers: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values = ["disk", "independent", "pipelined", "steady", "recovery", "read", "groups", "groups-writer", "groups-recovery", "groups-steady"])]
    workloads: Vec<Workload>,
    /// Also run raft-engine 0.4.2, raft-log 0.4 and okaywal 0.3 (needs the `compare` feature).
    #[arg(long)]
    compare: bool,
    /// A short smoke run (about 30 s with --compare): fewer configurations, shorter runs.
    #[arg(long)]
    quick: bool,
    /// Write every measurement as a JSON array to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw entries/s against threads and a latency CDF to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

impl Args {
    fn apply_quick(&mut self) {
        if self.quick {
            self.threads = vec![1, 16];
            self.entry_bytes = vec![128];
            self.in_flight = 64;
            self.seconds = 0.4;
            self.rounds = 2;
            self.recovery_mib = 16;
            self.large_entry_bytes = 65536;
            self.steady_seconds = 0.8;
            self.purge_every_mib = 4;
            self.keep_mib = 16;
            self.groups = vec![100, 1000];
            self.group_drivers = vec![16];
        }
    }
}

/// One measurement to take: a workload in one configuration.
#[derive(Clone, Copy, Debug)]
struct Config {
    workload: Workload,
    threads: usize,
    entry_bytes: usize,
    in_flight: usize,
}

fn plan(args: &Args) -> Vec<Config> {
    let mut configs = Vec::new();
    let config =
        |workload, threads, entry_bytes, in_flight| Config { workload, threads, entry_bytes, in_flight };
    for &workload in &args.workloads {
        match workload {
            Workload::Disk => {}
            Workload::Independent => {
                for &bytes in &args.entry_bytes {
                    configs.extend(args.threads.iter().map(|&threads| config(workload, threads, bytes, 1)));
                }
            }
            Workload::Pipelined | Workload::Steady => {
                let sizes = args.entry_bytes.iter().chain([&args.large_entry_bytes]);
                configs.extend(sizes.map(|&bytes| config(workload, 1, bytes, args.in_flight)));
            }
            Workload::Recovery | Workload::Read => configs.push(config(workload, 1, 4096, 1)),
            Workload::Groups | Workload::GroupsWriter | Workload::GroupsRecovery | Workload::GroupsSteady => {
            }
        }
    }
    configs
}

pub fn run(mut args: Args) -> raftwal::Result<u8> {
    args.apply_quick();
    if args.compare && !cfg!(feature = "compare") {
        eprintln!(
            "raftwal: --compare needs the `compare` feature: cargo run --release --features compare -- bench --compare"
        );
        return Ok(3);
    }
    std::fs::create_dir_all(&args.dir)?;
    let kinds = Kind::all(args.compare);
    let configs = plan(&args);
    let disk_runs = if args.workloads.contains(&Workload::Disk) { 4 * args.rounds } else { 0 };
    let runs_per_round: usize =
        configs.iter().map(|config| kinds.iter().filter(|kind| kind.runs(config.workload)).count()).sum();
    let group_runs_per_round = group_configs(&args).len();
    let opens = usize::from(args.workloads.contains(&Workload::GroupsRecovery))
        + usize::from(args.workloads.contains(&Workload::GroupsSteady));
    let total = disk_runs + (runs_per_round + group_runs_per_round + opens) * args.rounds;
    let progress =
        if std::io::stderr().is_terminal() { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    progress.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("valid template"));

    let mut measurements = Vec::new();
    for round in 0..args.rounds {
        if args.workloads.contains(&Workload::Disk) {
            for pattern in [Pattern::Overwrite4k, Pattern::Append4k, Pattern::Sequential1m, Pattern::Read1m] {
                progress.set_message(pattern.name());
                measurements.push(measure_disk(&args.dir, pattern, args.seconds, round)?);
                progress.inc(1);
            }
        }
    }
    for config in &configs {
        for round in 0..args.rounds {
            for &kind in kinds.iter().filter(|kind| kind.runs(config.workload)) {
                progress.set_message(format!(
                    "{:?} {} T={} S={}",
                    config.workload,
                    kind.name(),
                    config.threads,
                    config.entry_bytes
                ));
                let dir = tempfile::tempdir_in(&args.dir)?;
                let taken = measure(kind, dir.path(), config, &args, round).map_err(|error| {
                    raftwal::Error::Io(std::io::Error::other(format!(
                        "{} {:?}: {error}",
                        kind.name(),
                        config.workload
                    )))
                })?;
                measurements.extend(taken);
                progress.inc(1);
            }
        }
    }
    let group_runs = run_groups(&args, &progress)?;
    let mut opens = Vec::new();
    if args.workloads.contains(&Workload::GroupsRecovery) {
        let count = args.groups.iter().copied().max().unwrap_or(1);
        let payload = Payloads::new(4096);
        for round in 0..args.rounds {
            progress.set_message(format!("groups-recovery G={count}"));
            opens.push(
                groups::measure_open(&args.dir, count, args.recovery_mib, &payload, round)
                    .map_err(|error| raftwal::Error::Io(std::io::Error::other(error)))?,
            );
            progress.inc(1);
        }
    }
    let mut steady = Vec::new();
    if args.workloads.contains(&Workload::GroupsSteady) {
        let count = args.groups.iter().copied().max().unwrap_or(1);
        let drivers = args.group_drivers.first().copied().unwrap_or(16);
        let payload = Payloads::new(args.entry_bytes.first().copied().unwrap_or(128));
        for round in 0..args.rounds {
            progress.set_message(format!("groups-steady G={count}"));
            let dir = tempfile::tempdir_in(&args.dir)?;
            let seconds = Duration::from_secs_f64(args.steady_seconds);
            steady.push(
                groups::measure_steady(dir.path(), count, drivers, &payload, seconds, round)
                    .map_err(|error| raftwal::Error::Io(std::io::Error::other(error)))?,
            );
            progress.inc(1);
        }
    }
    progress.finish_and_clear();

    report::print(&measurements, args.compare);
    groups::print(&group_runs);
    groups::print_opens(&opens);
    groups::print_steady(&steady);
    if let Some(path) = &args.json {
        let more = group_runs
            .iter()
            .map(groups::GroupRun::json)
            .chain(opens.iter().map(groups::OpenRun::json))
            .chain(steady.iter().map(groups::SteadyRun::json));
        report::write_json(path, &measurements, more)?;
    }
    if let Some(path) = &args.plot {
        report::plot(path, &measurements)
            .map_err(|error| raftwal::Error::Io(std::io::Error::other(error)))?;
    }
    Ok(0)
}

/// The groups workloads' configurations: (variant, G, D, entry bytes, engine).
fn group_configs(args: &Args) -> Vec<(groups::Variant, u64, usize, usize, groups::GroupEngine)> {
    let variants =
        [(Workload::Groups, groups::Variant::Direct), (Workload::GroupsWriter, groups::Variant::StoreWriter)];
    let mut configs = Vec::new();
    for (workload, variant) in variants {
        if !args.workloads.contains(&workload) {
            continue;
        }
        for &count in &args.groups {
            for &drivers in &args.group_drivers {
                for &bytes in &args.entry_bytes {
                    for engine in
                        groups::GroupEngine::all(args.compare).into_iter().filter(|engine| engine.runs(count))
                    {
                        configs.push((variant, count, drivers.min(count as usize).max(1), bytes, engine));
                    }
                }
            }
        }
    }
    configs.dedup();
    configs
}

/// Runs the groups workloads, engines interleaved within each round.
fn run_groups(args: &Args, progress: &ProgressBar) -> raftwal::Result<Vec<groups::GroupRun>> {
    let configs = group_configs(args);
    let seconds = Duration::from_secs_f64(args.seconds);
    let mut runs = Vec::new();
    // Each round runs every configuration, the engines of one configuration one after another.
    for round in 0..args.rounds {
        for &(variant, count, drivers, bytes, engine) in &configs {
            progress.set_message(format!(
                "{} {} G={count} D={drivers} S={bytes}",
                variant.name(),
                engine.name()
            ));
            let dir = tempfile::tempdir_in(&args.dir)?;
            let payload = Payloads::new(bytes);
            let run = groups::measure(engine, dir.path(), variant, count, drivers, &payload, seconds, round)
                .map_err(|error| {
                    raftwal::Error::Io(std::io::Error::other(format!(
                        "{} {}: {error}",
                        engine.name(),
                        variant.name()
                    )))
                })?;
            runs.push(run);
            progress.inc(1);
        }
    }
    Ok(runs)
}

fn measure_disk(dir: &Path, pattern: Pattern, seconds: f64, round: usize) -> raftwal::Result<Measurement> {
    let scratch = tempfile::tempdir_in(dir)?;
    let cpu = cpu_seconds();
    let run = disk::measure(scratch.path(), pattern, seconds)?;
    Ok(Measurement {
        workload: pattern.name(),
        engine: "disk",
        threads: 1,
        entry_bytes: pattern.op_bytes(),
        in_flight: 1,
        round,
        entries: run.ops,
        elapsed: run.elapsed,
        payload_bytes: run.ops * pattern.op_bytes() as u64,
        fsyncs: Some(run.ops),
        latency: Some(run.latency),
        cpu_seconds: cpu_since(cpu),
        index_bytes_per_entry: None,
        segment_wait: None,
        device_write_bytes: None,
    })
}

/// Lets the engine's background work after open (raftwal preallocates a spare segment) finish
/// before measuring.
pub const SETTLE: Duration = Duration::from_millis(300);

fn measure(
    kind: Kind,
    dir: &Path,
    config: &Config,
    args: &Args,
    round: usize,
) -> Result<Vec<Measurement>, String> {
    let payload = Payloads::new(config.entry_bytes);
    let engine = kind.open(dir)?;
    std::thread::sleep(SETTLE);
    let base = Measurement {
        workload: "",
        engine: kind.name(),
        threads: config.threads,
        entry_bytes: config.entry_bytes,
        in_flight: config.in_flight,
        round,
        entries: 0,
        elapsed: Duration::ZERO,
        payload_bytes: 0,
        fsyncs: None,
        latency: None,
        cpu_seconds: None,
        index_bytes_per_entry: None,
        segment_wait: None,
        device_write_bytes: None,
    };
    let seconds = Duration::from_secs_f64(args.seconds);
    Ok(match config.workload {
        Workload::Disk => unreachable!("the disk is measured apart"),
        Workload::Groups | Workload::GroupsWriter | Workload::GroupsRecovery | Workload::GroupsSteady => {
            unreachable!("the groups workloads run apart")
        }
        Workload::Independent => vec![independent(&*engine, &payload, config.threads, seconds, base)?],
        Workload::Pipelined | Workload::Steady => {
            let (purge, seconds, workload) = if config.workload == Workload::Steady {
                // Entries per MiB, counting a record header's worth of overhead per entry.
                let per_mib = (1u64 << 20) / (payload.len() as u64 + 64);
                let purge = Purge { every: per_mib * args.purge_every_mib, keep: per_mib * args.keep_mib };
                (Some(purge), Duration::from_secs_f64(args.steady_seconds), "steady")
            } else {
                (None, seconds, "pipelined")
            };
            if purge.is_some() {
                // Into the steady state first, unmeasured: a log as long as it is kept, its first
                // purges done (the first segments of a fresh log can only be new ones).
                let warm_up = Duration::from_secs_f64(args.steady_seconds / 4.0);
                let mut ignored = report::latency_histogram();
                engine.pipelined(
                    &payload,
                    config.in_flight,
                    Instant::now() + warm_up,
                    &mut ignored,
                    purge,
                )?;
            }
            let (fsyncs, cpu, started) = (engine.fsyncs(), cpu_seconds(), Instant::now());
            let (waited, written) = (engine.segment_wait(), device_write_bytes(dir));
            let mut latency = report::latency_histogram();
            let entries =
                engine.pipelined(&payload, config.in_flight, started + seconds, &mut latency, purge)?;
            vec![Measurement {
                segment_wait: engine.segment_wait().zip(waited).map(|(after, before)| after - before),
                device_write_bytes: device_write_bytes(dir)
                    .zip(written)
                    .map(|(after, before)| after - before),
                workload,
                entries,
                elapsed: started.elapsed(),
                payload_bytes: entries * payload.len() as u64,
                fsyncs: engine.fsyncs().zip(fsyncs).map(|(after, before)| after - before),
                latency: Some(latency),
                cpu_seconds: cpu_since(cpu),
                ..base
            }]
        }
        Workload::Recovery | Workload::Read => {
            let entries = (args.recovery_mib << 20) / payload.len() as u64;
            engine.fill(&payload, entries)?;
            drop(engine);
            let timed_open = |workload| -> Result<(Measurement, Box<dyn Engine>), String> {
                let (cpu, started) = (cpu_seconds(), Instant::now());
                let engine = kind.open(dir)?;
                let opened = Measurement {
                    workload,
                    entries,
                    elapsed: started.elapsed(),
                    payload_bytes: entries * payload.len() as u64,
                    cpu_seconds: cpu_since(cpu),
                    index_bytes_per_entry: engine.index_bytes_per_entry(),
                    ..base.clone()
                };
                Ok((opened, engine))
            };
            // Warm: the pages the fill wrote are in the cache, as after a process restart.
            let (recovery, engine) = timed_open("recovery")?;
            if config.workload == Workload::Recovery {
                drop(engine);
                let mut opens = vec![recovery];
                if drop_page_cache().is_ok() {
                    opens.push(timed_open("recovery_cold")?.0);
                }
                opens
            } else {
                std::thread::sleep(SETTLE);
                read(&*engine, entries, payload.len(), seconds, base)?
            }
        }
    })
}

fn independent(
    engine: &dyn Engine,
    payload: &Payloads,
    threads: usize,
    seconds: Duration,
    base: Measurement,
) -> Result<Measurement, String> {
    let (fsyncs, cpu, started) = (engine.fsyncs(), cpu_seconds(), Instant::now());
    let waited = engine.segment_wait();
    let deadline = started + seconds;
    let runs = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || -> Result<(u64, Histogram<u64>), String> {
                    let mut appender = engine.appender(thread);
                    let mut latency = report::latency_histogram();
                    let mut done = 0;
                    while Instant::now() < deadline {
                        let begun = Instant::now();
                        appender.append(payload.at((thread as u64) << 32 | done))?;
                        latency.saturating_record(begun.elapsed().as_micros() as u64);
                        done += 1;
                    }
                    Ok((done, latency))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("worker panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let elapsed = started.elapsed();
    let mut latency = report::latency_histogram();
    let mut entries = 0;
    for (done, histogram) in runs {
        entries += done;
        latency.add(histogram).expect("same precision");
    }
    Ok(Measurement {
        workload: "independent",
        entries,
        elapsed,
        payload_bytes: entries * payload.len() as u64,
        fsyncs: engine.fsyncs().zip(fsyncs).map(|(after, before)| after - before),
        segment_wait: engine.segment_wait().zip(waited).map(|(after, before)| after - before),
        latency: Some(latency),
        cpu_seconds: cpu_since(cpu),
        ..base
    })
}

/// Sequential reads of 1000 entries, then random reads of one, each for `seconds`.
fn read(
    engine: &dyn Engine,
    entries: u64,
    entry_bytes: usize,
    seconds: Duration,
    base: Measurement,
) -> Result<Vec<Measurement>, String> {
    const RANGE: u64 = 1000;
    let mut out = Vec::new();
    for (workload, count) in [("read_sequential", RANGE), ("read_random", 1)] {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let mut read = 0;
        let mut from = 1;
        while started.elapsed() < seconds {
            if count == 1 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                from = 1 + state % entries;
            } else {
                from = if from + count > entries { 1 } else { from + count };
            }
            read += engine.read(from, count.min(entries + 1 - from))?;
        }
        out.push(Measurement {
            workload,
            entries: read,
            elapsed: started.elapsed(),
            payload_bytes: read * entry_bytes as u64,
            cpu_seconds: cpu_since(cpu),
            in_flight: count as usize,
            ..base.clone()
        });
    }
    Ok(out)
}

/// Entry payloads: pseudo-random bytes, different for every entry. raft-engine compresses each
/// batch above 8 KiB with LZ4; a payload repeated from entry to entry would compress across
/// the entries of a batch and measure its compressor rather than its log.
#[derive(Clone)]
pub struct Payloads {
    pool: Arc<Vec<u8>>,
    bytes: usize,
}

/// Bytes of random data the payloads are cut from: far more than LZ4's 64 KiB window.
const PAYLOAD_POOL_BYTES: usize = 16 << 20;

impl Payloads {
    pub fn new(bytes: usize) -> Payloads {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let pool = (0..PAYLOAD_POOL_BYTES + bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Payloads { pool: Arc::new(pool), bytes }
    }

    pub fn len(&self) -> usize {
        self.bytes
    }

    /// The payload of entry `n`: consecutive entries are cut about 1 MB apart in the pool.
    pub fn at(&self, n: u64) -> &[u8] {
        let start = (n.wrapping_mul(1_000_003) % PAYLOAD_POOL_BYTES as u64) as usize;
        &self.pool[start..start + self.bytes]
    }
}

/// Bytes written so far to the block device that holds `dir` (sectors written, from
/// `/sys/dev/block/MAJOR:MINOR/stat`): the log's writes, its preallocation's zeros, a peer's
/// compaction, and the file system's journal alike; and anything else writing to that device,
/// so the benchmark wants a quiet machine. `None` off a block device (tmpfs). Not `write_bytes`
/// of `/proc/self/io`: on ext4 it counted about 216 KiB for each fdatasync of a 5 KiB write.
pub fn device_write_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(dir).ok()?.dev();
    let major = ((device >> 8) & 0xfff) | ((device >> 32) & !0xfff);
    let minor = (device & 0xff) | ((device >> 12) & !0xff);
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    // The seventh field counts 512-byte sectors written.
    let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// Writes back and drops the whole page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`), so
/// the next open reads the disk. Needs root.
pub fn drop_page_cache() -> std::io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
}

/// User + system CPU seconds of this process so far, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    const TICKS_PER_SECOND: f64 = 100.0;
    Some(ticks / TICKS_PER_SECOND)
}

fn cpu_since(before: Option<f64>) -> Option<f64> {
    Some(cpu_seconds()? - before?)
}
