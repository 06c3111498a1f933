//! The engine's hot paths through the public API: append (encode, checksum, queue) by batch size
//! and sync mode, reads, and recovery (of an intact log, and of a segment whose last batch of
//! random bytes is torn). `cargo bench --bench engine -- --quick` for a short run.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raftwal::inspect::{RecordKind, for_each_record};
use raftwal::{Entry, Options, SyncMode, Wal};

const ENTRY_BYTES: usize = 128;

fn batch(first: u64, len: u64) -> Vec<Entry> {
    (first..first + len).map(|index| Entry { index, term: 1, data: vec![index as u8; ENTRY_BYTES] }).collect()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for sync in [SyncMode::None, SyncMode::Data] {
        for len in [1u64, 16, 256] {
            group.throughput(Throughput::Elements(len));
            group.bench_with_input(BenchmarkId::new(format!("{sync:?}"), len), &len, |b, &len| {
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::open(dir.path(), Options { sync, ..Options::default() }).unwrap();
                let mut next = 1;
                b.iter(|| {
                    wal.append(&batch(next, len)).unwrap().wait().unwrap();
                    next += len;
                });
            });
        }
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), Options { segment_bytes: 1 << 20, ..Options::default() }).unwrap();
    for first in (1..100_000).step_by(1000) {
        wal.append(&batch(first, 1000)).unwrap().wait().unwrap();
    }
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("sequential 1000 of 128 B", |b| {
        let mut first = 1;
        b.iter(|| {
            let got = wal.entries(first..first + 1000, u64::MAX).unwrap();
            assert_eq!(got.len(), 1000);
            first = first % 98_000 + 1000;
        });
    });
    // The newest entries sit in the active segment, which is read with pread, not a mapping:
    // what a leader reads to replicate what it just appended.
    let active = Wal::open(dir.path().join("active"), Options::default()).unwrap();
    active.append(&batch(1, 1000)).unwrap().wait().unwrap();
    group.throughput(Throughput::Elements(100));
    group.bench_function("recent 100 of 128 B from the active segment", |b| {
        b.iter(|| {
            let got = active.entries(901..1001, u64::MAX).unwrap();
            assert_eq!(got.len(), 100);
        });
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_bytes: 4 << 20, sync: SyncMode::None, ..Options::default() };
    let wal = Wal::open(dir.path(), options.clone()).unwrap();
    for first in (1..200_000).step_by(1000) {
        wal.append(&batch(first, 1000)).unwrap().wait().unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(200_000 * (ENTRY_BYTES as u64 + 32)));
    group.bench_function("open 200k entries", |b| {
        b.iter_batched(
            || (),
            |()| Wal::open(dir.path(), options.clone()).unwrap().close().unwrap(),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// Bytes that no run of zeros or repeated pattern makes cheap to scan (xorshift64).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The newest segment of a 64 MiB-segment log: 48 MiB of 1 MiB batches of random entries, then
/// one batch holding an 8 MiB entry of random bytes, closed. Returns the segment's path, the
/// offset of the last batch record and of the batch record `close` wrote after it.
fn log_ending_in_a_large_batch(dir: &Path) -> (std::path::PathBuf, u64, u64) {
    let options = Options { sync: SyncMode::None, ..Options::default() };
    let wal = Wal::open(dir, options).unwrap();
    let mut next = 1;
    for seed in 0..48 {
        let entries: Vec<Entry> = (0..256)
            .map(|at| Entry { index: next + at, term: 1, data: random_bytes(4064, seed * 256 + at) })
            .collect();
        wal.append(&entries).unwrap().wait().unwrap();
        next += 256;
    }
    let big = Entry { index: next, term: 1, data: random_bytes((8 << 20) - 64, 7) };
    wal.append(&[big]).unwrap().wait().unwrap();
    wal.close().unwrap();
    let mut batches = Vec::new();
    for_each_record(dir, |record| {
        if record.kind == RecordKind::Batch {
            batches.push((record.segment.to_path_buf(), record.offset));
        }
    })
    .unwrap();
    let (path, claim) = batches.pop().unwrap();
    let (_, last) = batches.pop().unwrap();
    (path, last, claim)
}

/// A torn tail of random bytes costs no more than reading it: opening a segment whose last
/// 8 MiB batch lost its first 4 KiB, against the same segment intact (both as after a crash:
/// the close's claim removed). Each open starts from a fresh copy, since the torn one is cut.
fn torn_tail(c: &mut Criterion) {
    let source = tempfile::tempdir().unwrap();
    let (segment, last, claim) = log_ending_in_a_large_batch(source.path());
    let original = std::fs::read(&segment).unwrap();
    let mut group = c.benchmark_group("torn tail");
    group.sample_size(10);
    for torn in [false, true] {
        let mut image = original.clone();
        image[claim as usize..claim as usize + 40].fill(0);
        if torn {
            image[last as usize..last as usize + 4096].fill(0);
        }
        let name = if torn { "open, 8 MiB last batch torn" } else { "open, intact" };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    for entry in std::fs::read_dir(source.path()).unwrap() {
                        let path = entry.unwrap().path();
                        if path.extension().is_some_and(|ext| ext == "seg") && path != segment {
                            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
                        }
                    }
                    let copy = dir.path().join(segment.file_name().unwrap());
                    std::fs::write(&copy, &image).unwrap();
                    // Written back, as the segment of a log that ran for a while would be.
                    std::fs::File::open(&copy).unwrap().sync_all().unwrap();
                    dir
                },
                |dir| {
                    let wal = Wal::open(dir.path(), Options::default()).unwrap();
                    assert_eq!(wal.recovery_report().torn_tail.is_some(), torn);
                    wal.close().unwrap();
                    dir
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, append, read, recovery, torn_tail);
criterion_main!(benches);
