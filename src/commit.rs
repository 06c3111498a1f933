//! Group commit. Operations encode their records into the [`Queue`] under the state lock and
//! return at once; the committer thread takes everything queued, writes it (one write per
//! segment touched), issues one fdatasync, and then completes every operation of the batch in
//! submission order. While it syncs, the next batch gathers.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot_core::{DEFAULT_UNPARK_TOKEN, FilterOp, ParkToken};

use crate::error::{Error, Result};
use crate::format::{RECORD_ALIGN, SegmentId};
use crate::housekeeper::Chore;
use crate::options::SyncMode;
use crate::segment::Segment;
use crate::stats::Counters;
use crate::wal::{Core, Shared};

/// Called once the operation it was given with is durable, or has failed.
pub type Callback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// Encoded records bound for one contiguous range of one segment.
pub struct Chunk {
    pub segment: Arc<Segment>,
    pub start: u64,
    pub buf: Vec<u8>,
}

impl Chunk {
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// The bytes at `offset` of the segment, if this chunk holds them.
    pub fn bytes_at(&self, segment: SegmentId, offset: u64) -> Option<&[u8]> {
        (self.segment.id == segment && (self.start..self.end()).contains(&offset))
            .then(|| &self.buf[(offset - self.start) as usize..])
    }
}

/// Operations submitted but not yet taken by the committer.
#[derive(Default)]
pub struct Queue {
    pub chunks: Vec<Chunk>,
    pub bytes: usize,
    /// Sequence number of the newest operation queued; 0 when none is.
    pub last_seq: u64,
    /// Operations queued.
    pub ops: u64,
    pub callbacks: Vec<Callback>,
    /// The thread that queued the first operation, and whether any other thread queued one.
    pub submitter: Option<ThreadId>,
    pub many_submitters: bool,
    /// fdatasync after this batch even in `SyncMode::None`.
    pub force_sync: bool,
    /// Once this batch is durable, segments below this id hold nothing live.
    pub delete_below: Option<SegmentId>,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.last_seq == 0
    }

    /// Notes which thread queued an operation.
    pub fn submitted_by(&mut self, thread: ThreadId) {
        match self.submitter {
            None => self.submitter = Some(thread),
            Some(first) => self.many_submitters |= first != thread,
        }
    }
}

/// Where completions wait: the newest durable sequence number, published without the state
/// lock, and wakes that spread through the waiters it made durable. (Waking waiters through a
/// condition variable requeues them on the state lock, so they wake one after another.)
///
/// Waking is a tree: the committer wakes [`WAKE_FANOUT`] of the waiters a batch made durable,
/// and every woken waiter wakes as many more before it returns. Made by the committer alone, the
/// wakes of a large batch run one after another on one core; spread over the woken threads they
/// run on all of them (figures in `docs/experiments.md`).
#[derive(Default)]
pub struct Durability {
    seq: AtomicU64,
    /// The committer failed or stopped: nothing more becomes durable.
    ended: AtomicBool,
}

/// How many waiters each wake passes the news on to.
const WAKE_FANOUT: usize = 2;

impl Durability {
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    pub fn is_durable(&self, seq: u64) -> bool {
        self.seq.load(AtomicOrdering::Acquire) >= seq
    }

    fn publish(&self, seq: u64) {
        self.seq.store(seq, AtomicOrdering::Release);
        self.wake_durable();
    }

    /// Wakes up to [`WAKE_FANOUT`] parked waiters whose operations are durable now; each of
    /// them calls this again once awake, until none is left parked.
    fn wake_durable(&self) {
        let durable = self.seq.load(AtomicOrdering::Acquire);
        let mut woken = 0;
        let filter = |token: ParkToken| {
            if woken == WAKE_FANOUT {
                FilterOp::Stop
            } else if token.0 as u64 <= durable {
                woken += 1;
                FilterOp::Unpark
            } else {
                FilterOp::Skip
            }
        };
        // SAFETY: the key is this struct's address, used by nothing else as a parking key.
        unsafe { parking_lot_core::unpark_filter(self.key(), filter, |_| DEFAULT_UNPARK_TOKEN) };
    }

    /// Nothing more will become durable: the committer failed or stopped.
    pub fn has_ended(&self) -> bool {
        self.ended.load(AtomicOrdering::Acquire)
    }

    pub fn end(&self) {
        self.ended.store(true, AtomicOrdering::Release);
        // SAFETY: as in `wake_durable`.
        unsafe { parking_lot_core::unpark_all(self.key(), DEFAULT_UNPARK_TOKEN) };
    }

    /// Blocks until `seq` is durable (true) or nothing more will be (false).
    ///
    /// No wake is lost: `publish` stores before it wakes, a waiter parks only if its operation
    /// is still pending under parking_lot's bucket lock, and the wakes stop only when a
    /// `wake_durable` finds no parked waiter at or below the durable sequence number.
    fn wait(&self, seq: u64) -> bool {
        loop {
            if self.is_durable(seq) {
                return true;
            }
            if self.has_ended() {
                return self.is_durable(seq);
            }
            let pending = || !self.is_durable(seq) && !self.has_ended();
            let token = ParkToken(usize::try_from(seq).unwrap_or(usize::MAX));
            // SAFETY: as in `wake_durable`.
            let parked =
                unsafe { parking_lot_core::park(self.key(), pending, || {}, |_, _| {}, token, None) };
            if parked.is_unparked() && self.is_durable(seq) {
                self.wake_durable();
            }
        }
    }
}

/// Resolves when the operation that returned it is durable (under the `Wal`'s sync mode), and
/// with it every operation submitted before it.
#[must_use = "an operation is durable only once its completion resolves"]
pub struct Completion {
    shared: Arc<Shared>,
    seq: u64,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").field("seq", &self.seq).finish()
    }
}

impl Completion {
    pub(crate) fn new(shared: Arc<Shared>, seq: u64) -> Completion {
        Completion { shared, seq }
    }

    /// Blocks until the operation is durable.
    ///
    /// # Errors
    /// `Error::Poisoned` if a write or fsync failed before the operation became durable;
    /// `Error::Closed` if the `Wal` stopped first.
    pub fn wait(self) -> Result<()> {
        let durability = &self.shared.durability;
        let durable = if self.shared.is_stepped() {
            self.shared.step_until(|| durability.is_durable(self.seq) || durability.has_ended());
            durability.is_durable(self.seq)
        } else {
            durability.wait(self.seq)
        };
        if durable {
            return Ok(());
        }
        match &self.shared.core.lock().poisoned {
            Some(cause) => Err(Error::Poisoned(cause.clone())),
            None => Err(Error::Closed),
        }
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether the operation is durable already. On a stepped file system (`Fs::stepped`)
    /// nothing becomes durable until some thread waits: poll `wait`, not this.
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.shared.durability.is_durable(self.seq)
    }
}

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
    fn queue_tells_one_submitter_from_many() {
        let mut queue = Queue::default();
        let me = std::thread::current().id();
        queue.submitted_by(me);
        queue.submitted_by(me);
        assert!(!queue.many_submitters, "one thread queued both");
        let other = std::thread::spawn(|| std::thread::current().id()).join().unwrap();
        queue.submitted_by(other);
        assert!(queue.many_submitters);
        queue.submitted_by(me);
        assert!(queue.many_submitters, "stays set until the queue is taken");
    }

    #[test]
    fn the_commit_delay_waits_only_for_a_few_submitters() {
        assert_eq!(expected_ops(false, 5, 200), 1, "one pipelining submitter: never wait");
        assert_eq!(expected_ops(true, 0, 0), 1);
        assert_eq!(expected_ops(true, 3, 13), 16, "the batch's submitters and those queued");
        assert_eq!(expected_ops(true, 0, COMMIT_DELAY_OPS_MAX), COMMIT_DELAY_OPS_MAX);
        assert_eq!(expected_ops(true, 1, COMMIT_DELAY_OPS_MAX), 1, "too many to wait for");
        assert_eq!(expected_ops(true, 10, 54), 1);
    }

    /// Each publish returns every waiter it made durable, through the tree of wakes, and no
    /// other. (A waiter woken too early parks again, so this cannot see extra wakes.)
    #[test]
    fn publishing_wakes_exactly_the_waiters_it_made_durable() {
        const WAITERS: u64 = 40;
        let durability = Arc::new(Durability::default());
        let (returned, returns) = std::sync::mpsc::channel();
        let waiters: Vec<_> = (1..=WAITERS)
            .map(|seq| {
                let durability = durability.clone();
                let returned = returned.clone();
                std::thread::spawn(move || returned.send((seq, durability.wait(seq))).unwrap())
            })
            .collect();
        let collect = |count: u64| {
            let mut seqs: Vec<u64> = (0..count)
                .map(|_| {
                    let (seq, durable) =
                        returns.recv_timeout(Duration::from_secs(10)).expect("a waiter woke");
                    assert!(durable);
                    seq
                })
                .collect();
            seqs.sort_unstable();
            seqs
        };
        // Let the waiters park, so that the wakes, not the first check, return them.
        std::thread::sleep(Duration::from_millis(200));
        durability.publish(WAITERS / 2);
        assert_eq!(collect(WAITERS / 2), (1..=WAITERS / 2).collect::<Vec<_>>());
        durability.publish(WAITERS);
        assert_eq!(collect(WAITERS / 2), (WAITERS / 2 + 1..=WAITERS).collect::<Vec<_>>());
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert!(returns.try_recv().is_err());
    }
}
