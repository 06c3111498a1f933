//! Writes a log from several threads, truncates, purges, saves hard state and a snapshot,
//! closes, reopens and checks every entry, printing what it measured on the way.
//!
//! `cargo run --release --example demo [DIR]` (a temporary directory by default).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use raftwal::{Entry, HardState, Options, SnapshotMeta, Wal};

const THREADS: u64 = 8;
const APPENDS_PER_THREAD: u64 = 2_000;
const ENTRY_BYTES: usize = 128;

fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, data: (0..ENTRY_BYTES).map(|at| (index as usize + at) as u8).collect() }
}

fn main() -> raftwal::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);
    let options = Options::default();
    let wal = Wal::open(&dir, options.clone())?;
    println!("opened {} ({:?})", dir.display(), wal.recovery_report());

    // Each thread takes the next index under a lock and waits for durability outside it, so
    // appends from different threads share fsyncs.
    let next = Arc::new(Mutex::new(wal.next_index()?.unwrap_or(1)));
    let start_index = *next.lock().unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (wal, next) = (wal.clone(), next.clone());
            std::thread::spawn(move || -> raftwal::Result<()> {
                for _ in 0..APPENDS_PER_THREAD {
                    let done = {
                        let mut next = next.lock().unwrap();
                        let done = wal.append(&[entry(*next, 1)])?;
                        *next += 1;
                        done
                    };
                    done.wait()?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("appender panicked")?;
    }
    let elapsed = started.elapsed();
    let stats = wal.stats();
    let appended = THREADS * APPENDS_PER_THREAD;
    println!(
        "{appended} durable appends of {ENTRY_BYTES} B from {THREADS} threads in {:.2?}: {:.0} entries/s, \
         {} fsyncs ({:.1} entries per fsync)",
        elapsed,
        appended as f64 / elapsed.as_secs_f64(),
        stats.fsyncs,
        appended as f64 / stats.fsyncs.max(1) as f64
    );

    let last = start_index + appended - 1;
    wal.truncate(last - 99)?.wait()?;
    let replaced: Vec<Entry> = (last - 99..=last).map(|index| entry(index, 2)).collect();
    wal.append(&replaced)?.wait()?;
    wal.set_hard_state(HardState { term: 2, vote: 1, commit: last })?.wait()?;
    let compact_to = start_index + appended / 2;
    wal.install_snapshot(SnapshotMeta { index: compact_to, term: 1, data: b"voters: 1,2,3".to_vec() })?
        .wait()?;
    println!("truncated and rewrote the last 100 entries in term 2, snapshot at {compact_to}");
    wal.close()?;

    let started = Instant::now();
    let wal = Wal::open(&dir, options)?;
    let report = wal.recovery_report().clone();
    println!(
        "reopened in {:.2?}: {} records, {} bytes verified in {} segments",
        started.elapsed(),
        report.records,
        report.record_bytes,
        report.segments
    );
    assert_eq!(wal.first_index()?, Some(compact_to + 1));
    assert_eq!(wal.last_index()?, Some(last));
    assert_eq!(wal.hard_state()?, Some(HardState { term: 2, vote: 1, commit: last }));
    for got in wal.entries(compact_to + 1..last + 1, u64::MAX)? {
        let term = if got.index > last - 100 { 2 } else { 1 };
        assert_eq!(got, entry(got.index, term), "entry {}", got.index);
    }
    let stats = wal.stats();
    println!(
        "all {} entries read back intact; index holds {} bytes ({:.1} per entry)",
        stats.index_entries,
        stats.index_bytes,
        stats.index_bytes as f64 / stats.index_entries.max(1) as f64
    );
    wal.close()
}
