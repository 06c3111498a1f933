//! Bugs the power-loss simulation found, each pinned by a deterministic test on the real file
//! system. Each test says how the bug failed.

mod common;

use common::{
    Fixture, Model, append_singly, entries, open, record_offsets, reopen, segment_paths, small_segments,
};
use raftwal::{Error, Options, RecoveryMode, SnapshotMeta, Wal};

/// Appends one entry at a time until the log spans `segments` segments; returns the first
/// index of each segment after the first.
fn fill_segments(wal: &Wal, model: &mut Model, segments: u64) -> Vec<u64> {
    append_singly(wal, model, |wal, _| wal.stats().segments >= segments)
}

/// Failed as: every append needing a new segment returned "entity already exists", forever,
/// once a preallocation had failed and its `.tmp` file could not be removed.
#[test]
fn regression_leftover_temp_segment_blocked_preallocation_forever() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let wal = open(dir.path(), &options);
    // From 3 on: the housekeeper may be preallocating segment 2 right now, and a leftover
    // written over its temp file would damage the spare, not block it.
    for id in 3..=8u64 {
        let leftover = dir.path().join(format!("{id:020}.seg.tmp"));
        if !dir.path().join(format!("{id:020}.seg")).exists() {
            std::fs::write(leftover, b"partial").unwrap();
        }
    }
    let mut model = Model::default();
    fill_segments(&wal, &mut model, 5);
    model.check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
}

/// Failed as: open reported "entry index N is not the next index M" after a snapshot that kept
/// the log was followed by the deletion of the segment holding the snapshot's entry: replay
/// recomputed keep-or-discard from that entry's term, unknown once its segment was gone.
#[test]
fn regression_snapshot_replayed_after_its_entry_was_deleted() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    let starts = fill_segments(&wal, &mut model, 3);
    let kept_from = starts[0];
    let index = kept_from - 1;
    model.install_snapshot(&wal, SnapshotMeta { index, term: 1, data: b"conf".to_vec() });
    assert_eq!(wal.first_index().unwrap(), Some(kept_from), "the snapshot kept the log after it");
    model.append(&wal, &entries(model.next.unwrap()..model.next.unwrap() + 5, 1));
    let wal = reopen(wal, dir.path(), &options);
    assert!(!segment_paths(dir.path())[0].ends_with(format!("{:020}.seg", 1)), "segment 1 was deleted");
    model.check(&wal);
}

/// A log whose first segment a purge deleted, with a bit flipped in the (now oldest) second
/// segment at the record at `record` of its records.
fn purged_then_damaged(record: usize) -> (tempfile::TempDir, Model, std::path::PathBuf, u64) {
    let Fixture { dir, wal, mut model, .. } = Fixture::new(small_segments());
    let starts = fill_segments(&wal, &mut model, 4);
    model.purge(&wal, starts[0] - 1);
    wal.close().unwrap();
    drop(wal);
    let oldest = segment_paths(dir.path())[0].clone();
    assert!(oldest.ends_with(format!("{:020}.seg", 2)), "{oldest:?}");
    let mut bytes = std::fs::read(&oldest).unwrap();
    let offset = record_offsets(&bytes)[record];
    bytes[offset as usize + 20] ^= 4;
    std::fs::write(&oldest, bytes).unwrap();
    (dir, model, oldest, offset)
}

/// Failed as: salvage returned "entries a..=b are missing" when its cut dropped the purge whose
/// durability had allowed deleting those entries' segment.
#[test]
fn regression_salvage_cut_dropped_the_purge_that_deleted_a_segment() {
    let (dir, _, damaged, offset) = purged_then_damaged(4);
    let wal = Wal::open(dir.path(), Options { recovery: RecoveryMode::Salvage, ..small_segments() }).unwrap();
    let report = wal.recovery_report().clone();
    let cut = report.salvaged.expect("salvaged").cut;
    assert_eq!((cut.path, cut.offset), (damaged, offset));
    let lost = report.missing_dropped.get(&0).expect("the entries of the deleted segment are reported");
    assert_eq!(*lost.start(), 1);
    assert_eq!(wal.first_index().unwrap(), Some(lost.end() + 1));
}

/// Failed as: salvage opened an empty, fresh log (no hard state, any next index) when the
/// damage came before the checkpoint of the oldest segment left after a purge.
#[test]
fn regression_salvage_before_the_oldest_checkpoint_opened_an_empty_log() {
    let (dir, _, damaged, offset) = purged_then_damaged(0);
    match Wal::open(dir.path(), Options { recovery: RecoveryMode::Salvage, ..small_segments() }) {
        Err(Error::Corruption { path, offset: at, reason }) => {
            assert_eq!((path, at), (damaged, offset));
            assert!(reason.contains("cannot salvage"), "{reason}");
        }
        other => panic!("expected a refusal to salvage, got {other:?}"),
    }
}

/// Failed as: acknowledged entries vanished after a power loss. A failed directory sync cut the
/// first open short after a new segment had been renamed to its final name; the next open used
/// that segment without making its name durable, so the power loss could take the file away.
#[test]
fn regression_segment_name_relied_on_before_the_directory_was_synced() {
    use raftwal::sim::{Fault, SimFs};
    use std::sync::Arc;
    let options = Options { segment_bytes: 4096, ..Options::default() };
    for failing_op in 0..12 {
        for seed in 0..8 {
            let fs = SimFs::new(seed, 512);
            fs.plan(failing_op, Fault::Eio);
            if let Ok(wal) = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone()) {
                drop(wal);
            }
            fs.clear_plan();
            let wal = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone()).unwrap();
            let acked = entries(1..3, 1);
            wal.append(&acked).unwrap().wait().unwrap();
            fs.power_loss();
            drop(wal);
            let wal = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone()).unwrap();
            assert_eq!(
                wal.entries(1..3, u64::MAX).ok(),
                Some(acked),
                "EIO at operation {failing_op}, seed {seed}: acknowledged entries lost"
            );
        }
    }
}

/// Failed as: `install_snapshot` exactly at the purge point, with the purged entry's term,
/// discarded the whole log after it, where Raft's rule keeps the entries that follow.
#[test]
fn regression_a_snapshot_at_the_purge_point_dropped_the_log_after_it() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    model.append(&wal, &entries(1..21, 1));
    model.purge(&wal, 10);
    model.install_snapshot(&wal, SnapshotMeta { index: 10, term: 1, data: b"conf".to_vec() });
    assert_eq!(wal.first_index().unwrap(), Some(11), "the entries after the snapshot stay");
    model.check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
}
