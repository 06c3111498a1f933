//! 16 threads appending at once, each taking the next index range in turn: every completion is
//! observed in order, and the log holds exactly what was appended.

mod common;

use std::sync::{Arc, Mutex};

use common::{entry, open, reopen};
use raftwal::{Entry, Options};

const THREADS: u64 = 16;
const APPENDS_PER_THREAD: u64 = 100;
const ENTRIES_PER_APPEND: u64 = 3;

#[test]
fn sixteen_appenders_complete_in_order_and_log_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_bytes: 256 << 10, ..Options::default() };
    let wal = open(dir.path(), &options);
    // The next index to hand out; held while appending so ranges reach the log in order.
    let next = Arc::new(Mutex::new(1u64));
    // First index of each append, in the order its callback fired.
    let completed = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (wal, next, completed) = (wal.clone(), next.clone(), completed.clone());
            std::thread::spawn(move || {
                for _ in 0..APPENDS_PER_THREAD {
                    let done = {
                        let mut next = next.lock().unwrap();
                        let batch: Vec<Entry> = (*next..*next + ENTRIES_PER_APPEND)
                            .map(|index| entry(index, thread + 1))
                            .collect();
                        let first = *next;
                        let completed = completed.clone();
                        wal.append_with(&batch, move |result| {
                            result.expect("durable");
                            completed.lock().unwrap().push(first);
                        })
                        .unwrap();
                        let done = wal.append(&[entry(first + ENTRIES_PER_APPEND, thread + 1)]).unwrap();
                        *next += ENTRIES_PER_APPEND + 1;
                        done
                    };
                    done.wait().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total = THREADS * APPENDS_PER_THREAD * (ENTRIES_PER_APPEND + 1);
    let completed = completed.lock().unwrap().clone();
    assert_eq!(completed.len() as u64, THREADS * APPENDS_PER_THREAD);
    assert!(completed.windows(2).all(|pair| pair[0] < pair[1]), "callbacks out of order");

    let check = |wal: &raftwal::Wal| {
        assert_eq!((wal.first_index().unwrap(), wal.last_index().unwrap()), (Some(1), Some(total)));
        let read = wal.entries(1..total + 1, u64::MAX).unwrap();
        assert_eq!(read.len() as u64, total);
        for (got, index) in read.iter().zip(1..) {
            assert_eq!(got, &entry(index, got.term), "entry {index}");
            assert!((1..=THREADS).contains(&got.term));
        }
    };
    check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    check(&wal);
}

#[test]
fn readers_see_entries_while_appends_are_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_bytes: 64 << 10, ..Options::default() };
    let wal = open(dir.path(), &options);
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            for index in 1..=3000 {
                pending.push(wal.append(&[entry(index, 1)]).unwrap());
            }
            pending.into_iter().for_each(|done| done.wait().unwrap());
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        if let Some(last) = wal.last_index().unwrap() {
            let low = last.saturating_sub(50).max(1);
            for got in wal.entries(low..last + 1, u64::MAX).unwrap() {
                assert_eq!(got, entry(got.index, 1));
            }
            reads += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(wal.last_index().unwrap(), Some(3000));
}
