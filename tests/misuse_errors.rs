//! Misuse of the API gets a typed error and changes nothing.

#[macro_use]
mod common;

use common::{Fixture, FlakyFs, Model, entries, entry, open, small_segments};
use raftwal::{Entry, Error, Options, Wal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[test]
fn appends_that_do_not_continue_the_log_are_refused() {
    let Fixture { dir: _dir, wal, mut model, .. } = Fixture::new(Options::default());
    assert_matches!(wal.append(&[]), Err(Error::EmptyBatch));
    let gap = vec![entry(1, 1), entry(3, 1)];
    assert_matches!(wal.append(&gap), Err(Error::NotContiguous { expected: 2, got: 3 }));
    model.append(&wal, &entries(1..11, 1));
    assert_matches!(wal.append(&[entry(12, 1)]), Err(Error::NotContiguous { expected: 11, got: 12 }));
    assert_matches!(wal.append(&[entry(5, 1)]), Err(Error::NotContiguous { expected: 11, got: 5 }));
    model.purge(&wal, 4);
    assert_matches!(wal.append(&[entry(3, 1)]), Err(Error::NotContiguous { expected: 11, got: 3 }));
    model.check(&wal);
}

#[test]
fn reads_outside_the_log_are_refused() {
    let Fixture { dir: _dir, wal, mut model, .. } = Fixture::new(Options::default());
    assert_matches!(wal.entry(1), Err(Error::Unavailable { .. }));
    model.append(&wal, &entries(1..21, 2));
    model.purge(&wal, 5);
    assert_matches!(wal.entry(5), Err(Error::Compacted { index: 5, first: 6 }));
    assert_matches!(wal.entries(3..10, u64::MAX), Err(Error::Compacted { index: 3, .. }));
    assert_matches!(wal.entries(10..22, u64::MAX), Err(Error::Unavailable { index: 21, next: 21 }));
    assert_matches!(wal.term(4), Err(Error::Compacted { .. }));
    assert_eq!(wal.term(5).unwrap(), 2, "the purge point keeps its term");
    assert_matches!(wal.term(21), Err(Error::Unavailable { .. }));
    assert_eq!(wal.entries(8..8, u64::MAX).unwrap(), vec![]);
    model.check(&wal);
}

#[test]
fn entries_stop_at_max_bytes_but_return_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &Options::default());
    let batch: Vec<Entry> = (1..=10).map(|index| Entry { index, term: 1, data: vec![7; 100] }).collect();
    wal.append(&batch).unwrap().wait().unwrap();
    assert_eq!(wal.entries(1..11, 0).unwrap().len(), 1);
    assert_eq!(wal.entries(1..11, 350).unwrap().len(), 3);
    assert_eq!(wal.entries(1..11, u64::MAX).unwrap().len(), 10);
}

#[test]
fn truncate_and_purge_outside_the_log_are_refused() {
    let Fixture { dir: _dir, wal, mut model, .. } = Fixture::new(Options::default());
    assert_matches!(wal.purge(1), Err(Error::Unavailable { .. }), "purge of a fresh log");
    model.append(&wal, &entries(1..11, 1));
    model.purge(&wal, 3);
    assert_matches!(wal.truncate(2), Err(Error::Compacted { index: 2, first: 4 }));
    assert_matches!(wal.purge(11), Err(Error::Unavailable { index: 11, next: 11 }));
    // Truncating past the end and purging below the start drop nothing, and are fine.
    wal.truncate(50).unwrap().wait().unwrap();
    wal.purge(1).unwrap().wait().unwrap();
    model.check(&wal);
}

#[test]
fn oversized_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { batch_bytes_max: 64 << 10, ..small_segments() };
    let wal = open(dir.path(), &options);
    let big = Entry { index: 1, term: 1, data: vec![0; 100 << 10] };
    assert_matches!(wal.append(std::slice::from_ref(&big)), Err(Error::TooLarge { what: "append", .. }));
    let segment_sized = Entry { index: 1, term: 1, data: vec![0; 8192] };
    assert_matches!(wal.append(&[segment_sized]), Err(Error::TooLarge { .. }));
    Model::default().check(&wal);
    let snapshot = raftwal::SnapshotMeta { index: 5, term: 1, data: vec![0; 4096] };
    assert_matches!(wal.install_snapshot(snapshot), Err(Error::TooLarge { what: "snapshot meta", .. }));
    assert_matches!(wal.set_metadata(vec![0; 4096]), Err(Error::TooLarge { what: "metadata", .. }));
    assert_eq!(wal.metadata().unwrap(), None);
}

#[test]
fn a_directory_is_opened_by_one_wal_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &Options::default());
    assert_matches!(Wal::open(dir.path(), Options::default()), Err(Error::Locked(_)));
    wal.close().unwrap();
    assert_matches!(wal.append(&[entry(1, 1)]), Err(Error::Closed));
    assert_matches!(wal.close(), Err(Error::Closed));
    let again = Wal::open(dir.path(), Options::default()).expect("lock released by close");
    again.close().unwrap();
}

#[test]
fn a_directory_holding_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a wal").unwrap();
    match Wal::open(dir.path(), Options::default()) {
        Err(Error::ForeignFile(path)) => assert_eq!(path, dir.path().join("notes.txt")),
        other => panic!("expected a foreign file error, got {other:?}"),
    }
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for options in [
        Options { segment_bytes: 1000, ..Options::default() },
        Options { segment_bytes: 10_000, ..Options::default() },
        Options { batch_bytes_max: 8, ..Options::default() },
    ] {
        assert_matches!(Wal::open(dir.path(), options), Err(Error::InvalidOptions(_)));
    }
}

#[test]
fn failed_fsync_poisons_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FlakyFs::default());
    let faults = fs.faults.clone();
    let wal = Wal::open_with_fs(fs, dir.path(), Options::default()).unwrap();
    let mut model = Model::default();
    model.append(&wal, &entries(1..21, 1));

    faults.sync.store(true, Ordering::SeqCst);
    let pending = wal.append(&entries(21..31, 1)).unwrap();
    assert_matches!(pending.wait(), Err(Error::Poisoned(_)));
    faults.sync.store(false, Ordering::SeqCst);
    // Never retry an fsync and pretend: the wal refuses everything until reopened.
    assert_matches!(wal.append(&entries(31..32, 1)), Err(Error::Poisoned(_)));
    assert_matches!(wal.entry(1), Err(Error::Poisoned(_)));
    assert_matches!(wal.sync(), Err(Error::Poisoned(_)));
    assert_matches!(wal.close(), Err(Error::Poisoned(_)));
    drop(wal);

    let wal = open(dir.path(), &Options::default());
    // The acknowledged entries are there; the unacknowledged ones may or may not be.
    let last = wal.last_index().unwrap().unwrap();
    assert!(last == 20 || last == 30, "last index {last}");
    if last == 30 {
        model.entries.extend(entries(21..31, 1).into_iter().map(|entry| (entry.index, entry)));
        model.next = Some(31);
    }
    model.check(&wal);
}

#[test]
fn full_disk_on_preallocation_fails_the_append_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FlakyFs::default());
    let faults = fs.faults.clone();
    let options = small_segments();
    let wal = Wal::open_with_fs(fs, dir.path(), options.clone()).unwrap();
    let mut model = Model::default();
    model.append(&wal, &entries(1..11, 1));
    wal.sync().unwrap();
    faults.create.store(true, Ordering::SeqCst);
    // Use up the active segment and the spare; the next rotation needs a new file.
    let mut index = 11;
    let error = loop {
        match wal.append(&entries(index..index + 10, 1)) {
            Ok(done) => {
                done.wait().unwrap();
                model
                    .entries
                    .extend(entries(index..index + 10, 1).into_iter().map(|entry| (entry.index, entry)));
                model.next = Some(index + 10);
                index += 10;
            }
            Err(error) => break error,
        }
        assert!(index < 1000, "preallocation never failed");
    };
    match error {
        Error::Io(error) => assert_eq!(error.raw_os_error(), Some(28), "{error}"),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    model.check(&wal);
    faults.create.store(false, Ordering::SeqCst);
    model.append(&wal, &entries(index..index + 40, 1));
    model.check(&wal);
    drop(wal);
    let wal = open(dir.path(), &options);
    model.check(&wal);
}

/// Regression (found by fuzzing `decode`): an entry index of `u64::MAX` overflowed `index + 1`
/// and panicked, on replay and through the API alike.
#[test]
fn indexes_near_u64_max_get_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &Options::default());
    let at_max = Entry { index: u64::MAX, term: 1, data: vec![1] };
    assert_matches!(wal.append(std::slice::from_ref(&at_max)), Err(Error::IndexTooLarge { .. }));
    let wrapping = vec![Entry { index: u64::MAX - 1, term: 1, data: vec![] }, at_max];
    assert_matches!(wal.append(&wrapping), Err(Error::IndexTooLarge { .. }));
    let snapshot = raftwal::SnapshotMeta { index: u64::MAX, term: 1, data: vec![] };
    assert_matches!(wal.install_snapshot(snapshot), Err(Error::IndexTooLarge { .. }));
    assert_matches!(wal.entry(u64::MAX), Err(Error::Unavailable { .. }));
    let last = Entry { index: u64::MAX - 1, term: 1, data: vec![7] };
    wal.append(std::slice::from_ref(&last)).unwrap().wait().unwrap();
    assert_eq!(wal.entry(u64::MAX - 1).unwrap(), last);
    assert_matches!(wal.entry(u64::MAX), Err(Error::Unavailable { .. }));
    assert_eq!(wal.next_index().unwrap(), Some(u64::MAX));
}
