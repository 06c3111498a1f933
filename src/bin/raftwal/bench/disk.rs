//! The disk's own limits, measured with plain files in the benchmark directory: what a perfect
//! log could reach on this disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::report;

/// One disk measurement: writes of `write_bytes`, each followed by fdatasync.
pub struct DiskRun {
    pub ops: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// 4 KiB writes over a file already written with zeros: no size or extent change to sync.
    Overwrite4k,
    /// 4 KiB writes at the end of a growing file: every fdatasync commits a size change.
    Append4k,
    /// 1 MiB writes over a file already written with zeros.
    Sequential1m,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Overwrite4k => "disk_overwrite_4k",
            Pattern::Append4k => "disk_append_4k",
            Pattern::Sequential1m => "disk_sequential_1m",
        }
    }

    pub fn write_bytes(self) -> usize {
        match self {
            Pattern::Overwrite4k | Pattern::Append4k => 4096,
            Pattern::Sequential1m => 1 << 20,
        }
    }
}

const PREALLOCATED_BYTES: u64 = 64 << 20;

fn preallocated(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    for at in (0..PREALLOCATED_BYTES).step_by(zeros.len()) {
        file.write_all_at(&zeros, at)?;
    }
    file.sync_all()?;
    Ok(file)
}

/// Writes and fdatasyncs in `dir` for `seconds`.
pub fn measure(dir: &Path, pattern: Pattern, seconds: f64) -> io::Result<DiskRun> {
    let path = dir.join(pattern.name());
    let file = match pattern {
        Pattern::Append4k => {
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?
        }
        Pattern::Overwrite4k | Pattern::Sequential1m => preallocated(&path)?,
    };
    let block = vec![0xa5u8; pattern.write_bytes()];
    let mut latency = report::latency_histogram();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut ops = 0u64;
    while Instant::now() < deadline {
        let offset = (ops * block.len() as u64) % PREALLOCATED_BYTES;
        let offset = if pattern == Pattern::Append4k { ops * block.len() as u64 } else { offset };
        let begun = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        latency.saturating_record(begun.elapsed().as_micros() as u64);
        ops += 1;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(DiskRun { ops, elapsed, latency })
}
