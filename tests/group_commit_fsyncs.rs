//! Group commit, before and after: one appender pays an fsync per append; many concurrent
//! appenders share fsyncs, so there are far fewer fsyncs than appends.

mod common;

use std::sync::{Arc, Mutex};

use common::{entry, open};
use raftwal::Options;

const APPENDS: u64 = 800;

#[test]
fn concurrent_appenders_share_fsyncs() {
    let options = Options::default();

    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &options);
    for index in 1..=APPENDS {
        wal.append(&[entry(index, 1)]).unwrap().wait().unwrap();
    }
    let alone = wal.stats();
    assert_eq!(alone.appends, APPENDS);
    assert!(alone.fsyncs >= APPENDS, "one waiting appender: {alone:?}");
    drop(wal);

    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &options);
    let next = Arc::new(Mutex::new(1u64));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (wal, next) = (wal.clone(), next.clone());
            std::thread::spawn(move || {
                for _ in 0..APPENDS / 16 {
                    let done = {
                        let mut next = next.lock().unwrap();
                        let done = wal.append(&[entry(*next, 1)]).unwrap();
                        *next += 1;
                        done
                    };
                    done.wait().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    let shared = wal.stats();
    assert_eq!(shared.appends, APPENDS);
    eprintln!(
        "one appender: {} fsyncs for {APPENDS} appends; 16 appenders: {} fsyncs in {} batches",
        alone.fsyncs, shared.fsyncs, shared.batches
    );
    assert!(shared.fsyncs * 3 < APPENDS, "16 appenders: {shared:?}");
}

#[test]
fn sync_with_calls_back_after_what_came_before_without_an_fsync_of_its_own() {
    for sync in [raftwal::SyncMode::Data, raftwal::SyncMode::None] {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), &Options { sync, ..Options::default() });
        wal.sync().unwrap();
        let before = wal.stats().fsyncs;
        let (tx, rx) = std::sync::mpsc::channel();
        let done = wal.set_hard_state(raftwal::HardState { term: 1, vote: 1, commit: 0 }).unwrap();
        let observer = wal.clone();
        wal.sync_with(move |result| tx.send((result.is_ok(), observer.stats().fsyncs)).unwrap()).unwrap();
        let (ok, fsyncs_when_called) = rx.recv().unwrap();
        assert!(ok, "{sync:?}: the callback reports success");
        // The fsync count read inside the callback shows the hard state's fdatasync had
        // returned. Its `Completion` may resolve a moment later: callbacks run first.
        assert_eq!(
            fsyncs_when_called,
            before + 1,
            "{sync:?}: one fsync covers the hard state and the callback, before the call"
        );
        done.wait().unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        wal.sync_with(move |result| tx.send(result.is_ok()).unwrap()).unwrap();
        assert!(rx.recv().unwrap());
        let extra = wal.stats().fsyncs - fsyncs_when_called;
        match sync {
            raftwal::SyncMode::Data => assert_eq!(extra, 0, "nothing new to sync"),
            raftwal::SyncMode::None => assert_eq!(extra, 1, "durability was asked for"),
        }
    }
}
