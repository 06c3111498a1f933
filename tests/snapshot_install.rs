//! install_snapshot on an empty, a shorter and a longer log, with and without a matching entry.

#[macro_use]
mod common;

use common::{Fixture, Model, entries, open, reopen, small_segments};
use raftwal::{Error, SnapshotMeta};

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { index, term, data: format!("snapshot {index}/{term}").into_bytes() }
}

#[test]
fn snapshot_on_empty_shorter_and_longer_logs() {
    let options = small_segments();
    let cases: [(&str, u64, SnapshotMeta); 4] = [
        ("empty log", 0, meta(50, 3)),
        ("shorter log", 20, meta(50, 3)),
        ("longer log, matching term keeps the suffix", 100, meta(50, 1)),
        ("longer log, other term discards it", 100, meta(50, 2)),
    ];
    for (name, len, snapshot) in cases {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), &options);
        let mut model = Model::default();
        if len > 0 {
            model.append(&wal, &entries(1..len + 1, 1));
        }
        model.install_snapshot(&wal, snapshot.clone());
        model.check(&wal);
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
        let next = wal.next_index().unwrap().unwrap();
        let expected_next = if name.contains("keeps") { len + 1 } else { 51 };
        assert_eq!(next, expected_next, "{name}");
        model.append(&wal, &entries(next..next + 40, 4));
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
        assert_matches!(
            wal.install_snapshot(meta(49, 3)),
            Err(Error::StaleSnapshot { index: 49, compacted: 50 })
        );
        assert_eq!(wal.term(50).unwrap(), snapshot.term, "{name}");
    }
}

#[test]
fn snapshot_meta_survives_deletion_of_the_segment_it_was_written_in() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    model.append(&wal, &entries(1..10, 1));
    model.install_snapshot(&wal, meta(9, 1));
    model.append(&wal, &entries(10..600, 1));
    model.purge(&wal, 590);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
    // The snapshot record was written in the first segment, which the purge deleted: its meta
    // came back from the checkpoint at the start of a later segment.
    assert!(!dir.path().join(format!("{:020}.seg", 1)).exists(), "first segment still there");
    assert!(wal.stats().segments <= 2, "{} segments left", wal.stats().segments);
}
