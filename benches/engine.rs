//! The engine's hot paths through the public API: append (encode, checksum, queue) by batch size
//! and sync mode, reads, and recovery. `cargo bench --bench engine -- --quick` for a short run.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
