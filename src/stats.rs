//! What a log counts. Every event goes to `Counters`, which keeps the atomics behind
//! `Wal::stats` and, with feature `metrics`, reports the same event on the `metrics` facade
//! (Prometheus, StatsD and OpenTelemetry exporters plug into it), labelled `log` with the
//! log's directory. `Metrics::new` names and describes them; the README lists them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::value::Stats;

/// The counters of one open log.
pub struct Counters {
    counts: Counts,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[derive(Default)]
struct Counts {
    entries: AtomicU64,
    appends: AtomicU64,
    bytes_written: AtomicU64,
    fsyncs: AtomicU64,
    batches: AtomicU64,
    segments_created: AtomicU64,
    segment_waits: AtomicU64,
    segment_wait_micros: AtomicU64,
    segments_deleted: AtomicU64,
    segments_recycled: AtomicU64,
    entries_relocated: AtomicU64,
    housekeeping_errors: AtomicU64,
    open_micros: AtomicU64,
}

fn add(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

impl Counters {
    /// Counters for the log in `dir`; with feature `metrics`, registered with the recorder
    /// installed now.
    pub fn new(dir: &Path) -> Counters {
        #[cfg(not(feature = "metrics"))]
        let _ = dir;
        Counters {
            counts: Counts::default(),
            #[cfg(feature = "metrics")]
            metrics: Metrics::new(dir),
        }
    }

    pub fn appended(&self, entries: usize) {
        add(&self.counts.entries, entries as u64);
        add(&self.counts.appends, 1);
        #[cfg(feature = "metrics")]
        {
            self.metrics.entries.increment(entries as u64);
            self.metrics.appends.increment(1);
        }
    }

    /// A batch taken from the queue.
    pub fn batch(&self, operations: u64, bytes: u64) {
        add(&self.counts.batches, 1);
        #[cfg(feature = "metrics")]
        {
            self.metrics.batch_operations.record(operations as f64);
            self.metrics.batch_bytes.record(bytes as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (operations, bytes);
    }

    /// A batch made durable, with `pending` operations queued behind it.
    pub fn committed(&self, pending: u64) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.pending_operations.set(pending as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = pending;
    }

    pub fn written(&self, bytes: u64) {
        add(&self.counts.bytes_written, bytes);
        #[cfg(feature = "metrics")]
        {
            self.metrics.bytes_written.increment(bytes);
        }
    }

    pub fn synced(&self, took: Duration) {
        add(&self.counts.fsyncs, 1);
        #[cfg(feature = "metrics")]
        {
            self.metrics.fsyncs.increment(1);
            self.metrics.fsync_seconds.record(took.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }

    /// An operation waited `took` for a preallocated segment.
    pub fn waited_for_segment(&self, took: Duration) {
        add(&self.counts.segment_waits, 1);
        add(&self.counts.segment_wait_micros, micros(took));
        #[cfg(feature = "metrics")]
        {
            self.metrics.segment_waits.increment(1);
            self.metrics.segment_wait_seconds.record(took.as_secs_f64());
        }
    }

    pub fn segment_created(&self) {
        add(&self.counts.segments_created, 1);
        #[cfg(feature = "metrics")]
        {
            self.metrics.segments_created.increment(1);
        }
    }

    pub fn segments_deleted(&self, count: u64) {
        add(&self.counts.segments_deleted, count);
        #[cfg(feature = "metrics")]
        {
            self.metrics.segments_deleted.increment(count);
        }
    }

    pub fn relocated(&self, entries: u64) {
        add(&self.counts.entries_relocated, entries);
        #[cfg(feature = "metrics")]
        self.metrics.entries_relocated.increment(entries);
    }

    pub fn segment_recycled(&self) {
        add(&self.counts.segments_recycled, 1);
        #[cfg(feature = "metrics")]
        self.metrics.segments_recycled.increment(1);
    }

    /// A preallocation or a deletion failed.
    pub fn housekeeping_failed(&self) {
        add(&self.counts.housekeeping_errors, 1);
    }

    pub fn opened(&self, took: Duration) {
        add(&self.counts.open_micros, micros(took));
        #[cfg(feature = "metrics")]
        {
            self.metrics.open_seconds.record(took.as_secs_f64());
        }
    }

    /// The counters now; the caller fills in the log's size.
    pub fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            entries: load(&self.counts.entries),
            appends: load(&self.counts.appends),
            bytes_written: load(&self.counts.bytes_written),
            fsyncs: load(&self.counts.fsyncs),
            batches: load(&self.counts.batches),
            segments_created: load(&self.counts.segments_created),
            segment_waits: load(&self.counts.segment_waits),
            segment_wait_micros: load(&self.counts.segment_wait_micros),
            segments_deleted: load(&self.counts.segments_deleted),
            segments_recycled: load(&self.counts.segments_recycled),
            entries_relocated: load(&self.counts.entries_relocated),
            housekeeping_errors: load(&self.counts.housekeeping_errors),
            open_micros: load(&self.counts.open_micros),
            ..Stats::default()
        }
    }
}

/// The handles of one log's metrics, registered once at open so that reporting an event is a
/// call on a handle, not a lookup by name.
#[cfg(feature = "metrics")]
struct Metrics {
    entries: metrics::Counter,
    appends: metrics::Counter,
    bytes_written: metrics::Counter,
    fsyncs: metrics::Counter,
    fsync_seconds: metrics::Histogram,
    batch_operations: metrics::Histogram,
    batch_bytes: metrics::Histogram,
    pending_operations: metrics::Gauge,
    segment_waits: metrics::Counter,
    segment_wait_seconds: metrics::Histogram,
    segments_created: metrics::Counter,
    segments_deleted: metrics::Counter,
    segments_recycled: metrics::Counter,
    entries_relocated: metrics::Counter,
    open_seconds: metrics::Histogram,
}

#[cfg(feature = "metrics")]
impl Metrics {
    fn new(dir: &Path) -> Metrics {
        let log = dir.display().to_string();
        let counter = |name: &'static str, help: &'static str| {
            metrics::describe_counter!(name, help);
            metrics::counter!(name, "log" => log.clone())
        };
        let histogram = |name: &'static str, unit: metrics::Unit, help: &'static str| {
            metrics::describe_histogram!(name, unit, help);
            metrics::histogram!(name, "log" => log.clone())
        };
        use metrics::Unit::{Bytes, Count, Seconds};
        metrics::describe_gauge!(
            "raftwal_pending_operations",
            Count,
            "operations submitted and not yet durable, after each batch"
        );
        Metrics {
            entries: counter("raftwal_entries_total", "entries appended"),
            appends: counter("raftwal_appends_total", "append and append_with calls"),
            bytes_written: counter("raftwal_bytes_written_total", "bytes the committer handed to the OS"),
            fsyncs: counter("raftwal_fsyncs_total", "fdatasyncs of segments"),
            fsync_seconds: histogram("raftwal_fsync_seconds", Seconds, "latency of each fdatasync"),
            batch_operations: histogram("raftwal_batch_operations", Count, "operations in each write batch"),
            batch_bytes: histogram("raftwal_batch_bytes", Bytes, "bytes in each write batch"),
            pending_operations: metrics::gauge!("raftwal_pending_operations", "log" => log.clone()),
            segment_waits: counter(
                "raftwal_segment_waits_total",
                "operations that waited for a preallocated segment",
            ),
            segment_wait_seconds: histogram(
                "raftwal_segment_wait_seconds",
                Seconds,
                "how long each of those waited",
            ),
            segments_created: counter("raftwal_segments_created_total", "segment files preallocated"),
            segments_deleted: counter(
                "raftwal_segments_deleted_total",
                "segment files deleted after a purge",
            ),
            segments_recycled: counter(
                "raftwal_segments_recycled_total",
                "segment files emptied by a purge and kept as spares",
            ),
            entries_relocated: counter(
                "raftwal_entries_relocated_total",
                "entries copied out of old segments so that those could go",
            ),
            open_seconds: histogram("raftwal_open_seconds", Seconds, "time open took, recovery included"),
        }
    }
}
