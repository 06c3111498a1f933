//! Feature `metrics`: a log reports its events on the `metrics` facade, labelled with its
//! directory, and the figures agree with `Wal::stats`.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{entries, small_segments};
use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use raftwal::{Stats, Wal};

/// Every metric of the log in `dir`: (name, kind) → value.
type Scrape<'a> = HashMap<(String, MetricKind), &'a DebugValue>;

type Metric = (CompositeKey, Option<Unit>, Option<SharedString>, DebugValue);

fn scrape_of<'a>(snapshot: &'a [Metric], dir: &Path) -> Scrape<'a> {
    let label = dir.display().to_string();
    snapshot
        .iter()
        .filter(|(key, ..)| key.key().labels().any(|l| l.key() == "log" && l.value() == label))
        .map(|(key, _, _, value)| ((key.key().name().to_string(), key.kind()), value))
        .collect()
}

fn counter(scrape: &Scrape, name: &str) -> u64 {
    match scrape.get(&(name.to_string(), MetricKind::Counter)) {
        Some(DebugValue::Counter(value)) => *value,
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram(scrape: &Scrape, name: &str) -> Vec<f64> {
    match scrape.get(&(name.to_string(), MetricKind::Histogram)) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|value| value.0).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

/// Appends from two threads across several segments, purges, and closes.
fn work(wal: &Wal) -> Stats {
    std::thread::scope(|scope| {
        for thread in 0..2u64 {
            let wal = wal.clone();
            scope.spawn(move || {
                for round in 0..20 {
                    let first = 1 + (round * 2 + thread) * 10;
                    // Contiguity needs the two threads to take turns: each waits for its slot.
                    while wal.last_index().unwrap().unwrap_or(0) + 1 != first {
                        std::thread::yield_now();
                    }
                    wal.append(&entries(first..first + 10, 1)).unwrap().wait().unwrap();
                }
            });
        }
    });
    wal.purge(300).unwrap().wait().unwrap();
    wal.sync().unwrap();
    // Deletion is the housekeeper's: wait for it.
    while wal.stats().segments_deleted == 0 {
        std::thread::yield_now();
    }
    wal.stats()
}

#[test]
fn counters_and_histograms_move_with_the_log_and_agree_with_stats() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wal, other) = metrics::with_local_recorder(&recorder, || {
        (
            Wal::open(dir.path(), small_segments()).unwrap(),
            Wal::open(other_dir.path(), small_segments()).unwrap(),
        )
    });
    let stats = work(&wal);
    other.append(&entries(1..4, 1)).unwrap().wait().unwrap();
    let snapshot = snapshotter.snapshot().into_vec();
    let (scrape, other_scrape) = (scrape_of(&snapshot, dir.path()), scrape_of(&snapshot, other_dir.path()));

    assert_eq!(counter(&scrape, "raftwal_entries_total"), 400);
    assert_eq!(counter(&scrape, "raftwal_entries_total"), stats.entries);
    assert_eq!(counter(&scrape, "raftwal_appends_total"), 40);
    assert_eq!(counter(&scrape, "raftwal_bytes_written_total"), stats.bytes_written);
    assert!(stats.fsyncs > 0 && stats.batches > 0, "{stats:?}");
    assert_eq!(counter(&scrape, "raftwal_fsyncs_total"), stats.fsyncs);
    let fsyncs = histogram(&scrape, "raftwal_fsync_seconds");
    assert_eq!(fsyncs.len() as u64, stats.fsyncs);
    assert!(fsyncs.iter().all(|&seconds| seconds > 0.0 && seconds < 60.0), "{fsyncs:?}");
    let batch_operations = histogram(&scrape, "raftwal_batch_operations");
    assert_eq!(batch_operations.len() as u64, stats.batches);
    // 40 appends, one purge and one sync: the operations of every batch add up to them.
    assert_eq!(batch_operations.iter().sum::<f64>(), 42.0);
    assert_eq!(histogram(&scrape, "raftwal_batch_bytes").iter().sum::<f64>(), stats.bytes_written as f64);
    assert!(counter(&scrape, "raftwal_segments_created_total") >= 3, "small segments rotate");
    assert_eq!(counter(&scrape, "raftwal_segments_created_total"), stats.segments_created);
    assert_eq!(counter(&scrape, "raftwal_segments_deleted_total"), stats.segments_deleted);
    assert_eq!(histogram(&scrape, "raftwal_open_seconds").len(), 1);
    assert!(scrape.contains_key(&("raftwal_pending_operations".to_string(), MetricKind::Gauge)));

    // The other log's figures are its own.
    assert_eq!(counter(&other_scrape, "raftwal_entries_total"), 3);
    assert_eq!(counter(&other_scrape, "raftwal_appends_total"), 1);
}
