//! Group commit. Operations encode their records into the commit queue under the state lock
//! and return at once; the committer thread takes everything queued, writes it (one write per
//! segment touched), issues one fdatasync, and then completes every operation of the batch in
//! submission order. While it syncs, the next batch gathers.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Chore, Core, Shared};
use crate::error::Error;
use crate::format::{RECORD_ALIGN, SegmentId};
use crate::options::SyncMode;
use crate::queue::{Callback, Chunk};
use crate::segment::Segment;
use crate::stats::Counters;

/// The longest the committer holds a batch back waiting for more operations.
pub const COMMIT_DELAY_MAX: Duration = Duration::from_micros(200);

/// The most operations the committer waits for. Gathering more is slower than letting them
/// form the next batch while this one syncs: with many closed-loop appenders on two cores,
/// gathering all of them took longer than writing and syncing their batch (figures in
/// `docs/experiments.md`).
pub const COMMIT_DELAY_OPS_MAX: u64 = 32;

/// How many operations to hold the next batch back for, after a batch of `batch_ops` with
/// `queued` more already waiting; 1 means "do not wait".
fn expected_ops(many_submitters: bool, queued: u64, batch_ops: u64) -> u64 {
    let expected = queued + batch_ops;
    if many_submitters && expected <= COMMIT_DELAY_OPS_MAX { expected.max(1) } else { 1 }
}

/// The committer's state from one batch to the next.
///
/// Adaptive commit delay: when a batch completes, the operations already queued plus the ones
/// whose waiters it just woke are the next batch the submitters will likely produce. The
/// committer holds the next batch until that many have arrived, for at most
/// `COMMIT_DELAY_MAX`, so closed-loop submitters end up in one batch instead of leapfrogging
/// in two. When one thread queued the whole batch, nothing waits: a lone submitter, however
/// many operations it keeps in flight, queues them one after another, and its next ones are
/// better gathered while this batch syncs than before it starts. Nor does it wait for more than
/// `COMMIT_DELAY_OPS_MAX`: so many submitters are better split into two batches that gather
/// while the other syncs.
pub struct Committer {
    /// The segment the last write went to.
    current: Arc<Segment>,
    /// Operations to hold the next batch back for.
    expected: u64,
}

impl Committer {
    pub fn new(current: Arc<Segment>) -> Committer {
        Committer { current, expected: 1 }
    }

    /// The committer thread: commits batches until the log closes.
    pub fn run(mut self, shared: &Shared) {
        while let Some(batch) = self.take(shared, true) {
            self.commit(shared, batch);
        }
        shared.durability.end();
    }

    /// Takes the queued operations as a batch. With `wait` (the committer thread), waits for
    /// them and applies the commit delay, and returns `None` only once the log is closing and
    /// nothing is queued; without (a stepped `Wal`), returns `None` when nothing is queued.
    pub fn take(&mut self, shared: &Shared, wait: bool) -> Option<Batch> {
        let mut core = shared.core.lock();
        while wait && core.queue.is_empty() && !core.closing {
            core.wake_at = 1;
            shared.work.wait(&mut core);
        }
        if core.queue.is_empty() {
            return None;
        }
        // Waiting is pointless once the queue is full: appenders are blocked on it.
        let room = |core: &Core| core.queue.bytes < shared.options.batch_bytes_max;
        let expected = self.expected;
        if wait && core.queue.ops < expected && room(&core) && !core.closing {
            core.wake_at = expected;
            let deadline = Instant::now() + COMMIT_DELAY_MAX;
            while core.queue.ops < expected && room(&core) && !core.closing {
                if shared.work.wait_until(&mut core, deadline).timed_out() {
                    break;
                }
            }
        }
        // Busy until the batch is done: submitters need not wake the committer.
        core.wake_at = u64::MAX;
        let batch = std::mem::take(&mut core.queue);
        shared.stats.batch(batch.ops, batch.bytes as u64);
        core.inflight = Arc::new(batch.chunks);
        shared.progress.notify_all();
        Some(Batch {
            chunks: core.inflight.clone(),
            ops: batch.ops,
            last_seq: batch.last_seq,
            callbacks: batch.callbacks,
            // In `SyncMode::Data` every earlier batch was synced: a batch without records
            // (callbacks only) has nothing to sync unless asked.
            sync: batch.force_sync || (shared.options.sync == SyncMode::Data && !core.inflight.is_empty()),
            delete_below: batch.delete_below,
            many_submitters: batch.many_submitters,
            poisoned: core.poisoned.clone(),
        })
    }

    /// Writes and syncs a batch, then completes its operations in order.
    pub fn commit(&mut self, shared: &Shared, batch: Batch) {
        let result = match &batch.poisoned {
            Some(cause) => Err(cause.clone()),
            None => write(shared, &mut self.current, &batch).map_err(Arc::new),
        };
        // Callbacks run before waiters wake, so a waiter on any operation of this batch or a
        // later one finds every earlier callback already called.
        for callback in batch.callbacks {
            let outcome = result.clone().map_err(Error::Poisoned);
            // A panicking callback must not take the committer, and every later completion,
            // down with it.
            let _ = catch_unwind(AssertUnwindSafe(|| callback(outcome)));
        }
        {
            let mut core = shared.core.lock();
            match &result {
                Ok(()) => {
                    if let Some(last) = batch.chunks.last() {
                        core.written = (last.segment.id, last.end());
                    }
                }
                Err(cause) => {
                    core.poisoned.get_or_insert_with(|| cause.clone());
                }
            }
            core.inflight = Arc::default();
            shared.stats.committed(core.next_seq - 1 - batch.last_seq);
            self.expected = expected_ops(batch.many_submitters, core.queue.ops, batch.ops);
        }
        match &result {
            Ok(()) => shared.durability.publish(batch.last_seq),
            Err(_) => shared.durability.end(),
        }
        if result.is_ok()
            && let Some(below) = batch.delete_below
        {
            // The housekeeper stops only after the committer, so it is still listening.
            let _ = shared.chores.send(Chore::DeleteBelow(below));
        }
    }
}

pub struct Batch {
    chunks: Arc<Vec<Chunk>>,
    ops: u64,
    last_seq: u64,
    callbacks: Vec<Callback>,
    sync: bool,
    delete_below: Option<SegmentId>,
    many_submitters: bool,
    poisoned: Option<Arc<io::Error>>,
}

/// The end of the log in a recycled segment: a record length of zero, one alignment unit long.
const END_MARK: [u8; RECORD_ALIGN] = [0; RECORD_ALIGN];

/// Writes a batch and syncs it. Before the first write to a new segment, the previous one is
/// synced and sealed, so only the newest segment can ever hold a torn write.
fn write(shared: &Shared, current: &mut Arc<Segment>, batch: &Batch) -> io::Result<()> {
    let stats = &shared.stats;
    for chunk in batch.chunks.iter() {
        if chunk.segment.id != current.id {
            assert!(chunk.segment.id > current.id, "segments are written in order");
            sync(stats, current)?;
            // Without a mapping, reads of the sealed segment fall back to pread.
            let _ = current.seal();
            *current = chunk.segment.clone();
        }
        current.file().write_all_at(&chunk.buf, chunk.start)?;
        stats.written(chunk.buf.len() as u64);
        // In a recycled file the bytes after the log are stale, not zeros: a zero length word
        // marks the end, durable with the batch (the next batch writes over it).
        let end = chunk.start + chunk.buf.len() as u64;
        if current.recycled && end + END_MARK.len() as u64 <= current.bytes {
            current.file().write_all_at(&END_MARK, end)?;
        }
    }
    if batch.sync {
        sync(stats, current)?;
    }
    Ok(())
}

fn sync(stats: &Counters, segment: &Segment) -> io::Result<()> {
    let started = Instant::now();
    segment.file().sync_data()?;
    stats.synced(started.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_delay_waits_only_for_a_few_submitters() {
        assert_eq!(expected_ops(false, 5, 200), 1, "one pipelining submitter: never wait");
        assert_eq!(expected_ops(true, 0, 0), 1);
        assert_eq!(expected_ops(true, 3, 13), 16, "the batch's submitters and those queued");
        assert_eq!(expected_ops(true, 0, COMMIT_DELAY_OPS_MAX), COMMIT_DELAY_OPS_MAX);
        assert_eq!(expected_ops(true, 1, COMMIT_DELAY_OPS_MAX), 1, "too many to wait for");
        assert_eq!(expected_ops(true, 10, 54), 1);
    }
}
