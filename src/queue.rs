//! The commit queue: operations encode their records into the [`Queue`] under the state lock,
//! and [`Durability`] says which of them are durable, waking those who wait. Plain data and
//! atomics; the committer (`commit`) drains the queue, the engine (`engine`) fills it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::thread::ThreadId;

use parking_lot_core::{DEFAULT_UNPARK_TOKEN, FilterOp, ParkToken};

use crate::error::Result;
use crate::format::SegmentId;
use crate::segment::Segment;

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

    pub fn publish(&self, seq: u64) {
        self.seq.store(seq, AtomicOrdering::Release);
        self.wake_durable();
    }

    /// Wakes up to [`WAKE_FANOUT`] parked waiters whose operations are durable now; each of
    /// them calls this again once awake, until none is left parked.
    pub fn wake_durable(&self) {
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
    pub fn wait(&self, seq: u64) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
