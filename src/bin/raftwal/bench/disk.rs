//! The disk's own limits, measured with plain files in the benchmark directory: what a perfect
//! log could reach on this disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::report;

/// One disk measurement: writes of `op_bytes`, each followed by fdatasync, or reads of it.
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
    /// 1 MiB reads of a written file, past the page cache (`O_DIRECT`): the bandwidth a cold
    /// open could read a log at.
    Read1m,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Overwrite4k => "disk_overwrite_4k",
            Pattern::Append4k => "disk_append_4k",
            Pattern::Sequential1m => "disk_sequential_1m",
            Pattern::Read1m => "disk_read_1m",
        }
    }

    pub fn op_bytes(self) -> usize {
        match self {
            Pattern::Overwrite4k | Pattern::Append4k => 4096,
            Pattern::Sequential1m | Pattern::Read1m => 1 << 20,
        }
    }
}

const PREALLOCATED_BYTES: u64 = 64 << 20;

/// A file of `PREALLOCATED_BYTES` of `byte`, durable.
fn preallocated(path: &Path, byte: u8) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    let block = vec![byte; 1 << 20];
    for at in (0..PREALLOCATED_BYTES).step_by(block.len()) {
        file.write_all_at(&block, at)?;
    }
    file.sync_all()?;
    Ok(file)
}

/// Reads the file at `path` 1 MiB at a time with `O_DIRECT`, round and round, for `seconds`.
fn read_direct(path: &Path, seconds: f64) -> io::Result<DiskRun> {
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)?;
    let mut buffer = vec![0u8; Pattern::Read1m.op_bytes() + ALIGN];
    let skip = buffer.as_ptr().align_offset(ALIGN);
    let block = &mut buffer[skip..skip + Pattern::Read1m.op_bytes()];
    let len = block.len() as u64;
    timed(seconds, |op| file.read_exact_at(block, op * len % PREALLOCATED_BYTES))
}

/// Runs `op` (given its number) again and again for `seconds`, timing each.
fn timed(seconds: f64, mut op: impl FnMut(u64) -> io::Result<()>) -> io::Result<DiskRun> {
    let mut latency = report::latency_histogram();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut ops = 0u64;
    while Instant::now() < deadline {
        let begun = Instant::now();
        op(ops)?;
        latency.saturating_record(begun.elapsed().as_micros() as u64);
        ops += 1;
    }
    Ok(DiskRun { ops, elapsed: started.elapsed(), latency })
}

/// Writes and fdatasyncs in `dir` for `seconds`.
pub fn measure(dir: &Path, pattern: Pattern, seconds: f64) -> io::Result<DiskRun> {
    let path = dir.join(pattern.name());
    let file = match pattern {
        Pattern::Append4k => {
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?
        }
        Pattern::Overwrite4k | Pattern::Sequential1m => preallocated(&path, 0)?,
        Pattern::Read1m => {
            // Not zeros: a virtual disk may answer reads of zero blocks without reading.
            drop(preallocated(&path, 0xa5)?);
            let run = read_direct(&path, seconds);
            std::fs::remove_file(&path)?;
            return run;
        }
    };
    let block = vec![0xa5u8; pattern.op_bytes()];
    let len = block.len() as u64;
    let run = timed(seconds, |op| {
        let offset = if pattern == Pattern::Append4k { op * len } else { op * len % PREALLOCATED_BYTES };
        file.write_all_at(&block, offset)?;
        file.sync_data()
    })?;
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(run)
}
