//! A new log is small and quick to make: its first segment is 1 MiB, its spare a file of the
//! segment size that is a hole past its first bytes. Segments are zeroed before records go there
//! (a spare once the active segment is half full, the rest of a segment in steps ahead of the
//! writer); what is written across them, and after a reopen into a segment zeroed only in part,
//! reads back.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Model, segment_paths};
use raftwal::sim::model::Op;
use raftwal::{Entry, Options, Wal};

/// Blocks allocated to the files of `dir`, as `du` counts them.
fn allocated_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().metadata().unwrap().blocks() * 512).sum()
}

/// Waits for the housekeeper's spare after the first segment.
fn wait_for_spare(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while segment_paths(dir).len() < 2 {
        assert!(Instant::now() < deadline, "no spare was made");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_new_idle_log_holds_a_small_first_segment_and_a_sparse_spare() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(&[Entry { index: 1, term: 1, data: b"one".to_vec() }]).unwrap().wait().unwrap();
    wait_for_spare(dir.path());
    wal.close().unwrap();
    let sizes: Vec<u64> =
        segment_paths(dir.path()).iter().map(|path| std::fs::metadata(path).unwrap().len()).collect();
    assert_eq!(sizes, vec![1 << 20, Options::default().segment_bytes], "the first segment, then the spare");
    let allocated = allocated_bytes(dir.path());
    assert!(allocated <= 8 << 20, "a new idle log holds {allocated} bytes of disk");

    let wal = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.entry(1).unwrap().data, b"one");
}

#[test]
fn entries_across_segments_zeroed_ahead_of_the_writer_read_back_after_reopens() {
    let options = Options { segment_bytes: 8 << 20, ..Options::default() };
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let batch = |first: u64| -> Vec<Entry> {
        (first..first + 64).map(|index| Entry { index, term: 1, data: vec![index as u8; 4000] }).collect()
    };
    let mut next = 1;
    for round in 0..3 {
        let wal = Wal::open(dir.path(), options.clone()).unwrap();
        model.check(&wal);
        // About 10 MiB a round, pipelined: past the zeroed part of a spare rotated in early,
        // and, after a reopen, on into a segment whose zeroing the last round left unfinished.
        let mut pending = Vec::new();
        for _ in 0..40 {
            let entries = batch(next);
            next += entries.len() as u64;
            pending.push(wal.append(&entries).unwrap());
            entries.into_iter().for_each(|entry| model.apply(&Op::Entry(entry)));
        }
        for done in pending {
            done.wait().unwrap();
        }
        model.check(&wal);
        assert!(segment_paths(dir.path()).len() > 1 + round, "round {round} wrote into a new segment");
        wal.close().unwrap();
    }
    let wal = Wal::open(dir.path(), options).unwrap();
    model.check(&wal);
}
