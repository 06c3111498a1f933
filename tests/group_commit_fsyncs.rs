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
