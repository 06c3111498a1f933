//! Memory and threads of idle groups, measured by counting the heap bytes and the threads the
//! process holds (a test binary of its own with one test: it installs a counting allocator, and
//! no other test's threads may count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use raftwal::{Options, Wal};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Enough that the buffers the log holds whatever its groups do not move the figure.
const GROUPS: u64 = 50_000;

#[test]
fn an_idle_group_takes_at_most_256_bytes_and_no_thread() {
    let dir = tempfile::tempdir().unwrap();
    // The checkpoint's bound charges about 100 bytes per group and must stay within half a
    // segment: 50,000 groups need 10 MiB segments.
    let wal = Wal::open(dir.path(), Options { segment_bytes: 16 << 20, ..Options::default() }).unwrap();
    wal.sync().unwrap();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = LIVE.load(Ordering::Relaxed);
    for id in 1..=GROUPS {
        wal.create_group(id).unwrap();
    }
    // Written and synced, twice: neither the queue nor the batch last written holds any of the
    // creation records any more.
    wal.sync().unwrap();
    wal.sync().unwrap();
    let per_group = (LIVE.load(Ordering::Relaxed) - before) / GROUPS as isize;
    eprintln!("{per_group} heap bytes per idle group");
    assert!(per_group <= 256, "{per_group} heap bytes per idle group");
    assert!(per_group > 0, "the groups are counted");
    assert_eq!(std::fs::read_dir("/proc/self/task").unwrap().count(), threads, "no thread per group");
}
