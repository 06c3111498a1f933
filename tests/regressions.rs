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
    if let Some(lost) = names_relied_on_before_synced(None) {
        panic!("{lost}: acknowledged entries lost");
    }
}

/// The same scenario without recovery's last directory sync (the one that makes the names it
/// found durable): acknowledged entries are lost, so that sync is needed.
#[test]
fn removing_the_sync_of_the_names_recovery_found_is_caught() {
    let fs = raftwal::sim::SimFs::new(0, 512);
    drop(Wal::open_with_fs(std::sync::Arc::new(fs.process()), "/wal", small_segments()).unwrap());
    let last = fs.dir_sync_sites().into_iter().filter(|site| site.starts_with("src/recovery.rs")).max();
    let last = last.expect("recovery syncs the directory");
    assert!(
        names_relied_on_before_synced(Some(&last)).is_some(),
        "removing the sync at {last} went unnoticed"
    );
}

/// Crashes the process of the first open at each of its first operations in turn (a failed
/// operation would not do: a failed creation syncs the directory on its way out), opens again,
/// appends, cuts the power and opens once more; with recovery's `sync_dir` at `skipped_site` made a no-op. Which
/// run lost acknowledged entries, if one did.
fn names_relied_on_before_synced(skipped_site: Option<&str>) -> Option<String> {
    use raftwal::sim::{Fault, SimFs};
    use std::sync::Arc;
    let options = Options { segment_bytes: 4096, ..Options::default() };
    for failing_op in 0..24 {
        for seed in 0..8 {
            let fs = SimFs::new(seed, 512);
            fs.plan(failing_op, Fault::Crash);
            if let Ok(wal) = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone()) {
                drop(wal);
            }
            fs.clear_plan();
            fs.skip_dir_syncs_at(skipped_site);
            let wal = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone()).unwrap();
            fs.skip_dir_syncs_at(None);
            let acked = entries(1..3, 1);
            wal.append(&acked).unwrap().wait().unwrap();
            fs.power_loss();
            drop(wal);
            let reopened = Wal::open_with_fs(Arc::new(fs.process()), "/wal", options.clone());
            if reopened.and_then(|wal| wal.entries(1..3, u64::MAX)).ok() != Some(acked) {
                return Some(format!("crash at operation {failing_op}, seed {seed}"));
            }
        }
    }
    None
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

/// Failed as (issue 20, finding 1): salvage dropped the missing entries in memory only. The next
/// default open failed with `MissingEntries { first: 1, .. }`; after writes that started a new
/// segment, with "checkpoint disagrees with the log replayed before it", and a second salvage
/// cut away entries acknowledged after the first.
#[test]
fn regression_salvage_forgot_the_missing_entries_in_memory_only() {
    let (dir, _, _, _) = purged_then_damaged(4);
    let options = small_segments();
    let salvage = Options { recovery: RecoveryMode::Salvage, ..options.clone() };
    let wal = Wal::open(dir.path(), salvage.clone()).unwrap();
    let lost = wal.recovery_report().missing_dropped.get(&0).expect("missing entries reported").clone();
    let first = lost.end() + 1;
    assert_eq!(wal.first_index().unwrap(), Some(first));
    let purged = wal.purged().unwrap().expect("salvage records where the log now starts");
    assert_eq!(purged.index, *lost.end());
    assert!(purged.term <= 1, "a lower bound of the dropped entry's term: {purged:?}");
    let mut model = Model::default();
    model.0 = raftwal::sim::model::State::read(&wal).unwrap();
    // Writes after the salvage, across several new segments, each starting with a checkpoint.
    let segments = wal.stats().segments;
    append_singly(&wal, &mut model, |wal, _| wal.stats().segments >= segments + 3);
    model.check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    assert!(wal.recovery_report().missing_dropped.is_empty());
    model.check(&wal);
    wal.close().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), salvage).unwrap();
    assert!(wal.recovery_report().salvaged.is_none(), "a second salvage finds nothing to cut");
    model.check(&wal);
}

/// Failed as (issue 20, finding 1): `repair --salvage` left the same directory as a salvaging
/// open, which the next default open refused with `MissingEntries`.
#[test]
fn regression_repair_salvage_left_a_log_that_open_refused() {
    let (dir, _, _, _) = purged_then_damaged(4);
    let repaired = raftwal::inspect::repair(dir.path(), raftwal::inspect::RepairMode::Salvage)
        .unwrap()
        .expect("damage repaired");
    let lost = repaired.report.missing_dropped.get(&0).expect("missing entries reported").clone();
    let wal = open(dir.path(), &small_segments());
    assert_eq!(wal.first_index().unwrap(), Some(lost.end() + 1));
    assert_eq!(wal.purged().unwrap().map(|purged| purged.index), Some(*lost.end()));
}

/// Failed as (issue 20, finding 3): `submit` checked the largest index only on a group's first
/// append in the call; `[MAX - 1]` then `[MAX]` was acknowledged, and the next open failed with
/// "index 18446744073709551615 is above the largest allowed" (with overflow checks, `submit`
/// panicked on `last + 1`).
#[test]
fn regression_submit_checked_the_index_limit_only_on_a_groups_first_append() {
    let Fixture { dir, options, wal, .. } = Fixture::new(small_segments());
    let group = wal.create_group(5).unwrap();
    let at = |index| vec![raftwal::Entry { index, term: 1, data: b"x".to_vec() }];
    let (below, above) = (at(u64::MAX - 1), at(u64::MAX));
    let ops = [raftwal::GroupOp::Append(&group, &below), raftwal::GroupOp::Append(&group, &above)];
    assert!(matches!(wal.submit(&ops), Err(Error::IndexTooLarge { index: u64::MAX, .. })));
    assert_eq!(group.last_index().unwrap(), None, "all or nothing");
    group.append(&below).unwrap().wait().unwrap();
    let wal = reopen(wal, dir.path(), &options);
    assert_eq!(wal.group(5).unwrap().last_index().unwrap(), Some(u64::MAX - 1));
}

/// Failed as (issue 20, finding 2): `submit` skipped the checkpoint check of `set_metadata`
/// (in 8 KiB segments `set_metadata` refused a third 2,000-byte blob, `submit` took four), and
/// hard states grew the checkpoint unchecked; once it outgrew half a segment every operation
/// needing a new segment failed with `TooLarge`, the removals and purges that would shrink it
/// included, before and after a reopen.
#[test]
fn regression_the_checkpoint_outgrew_the_segment_and_wedged_the_log() {
    let blob = vec![9u8; 2000];
    let mut accepted = Vec::new();
    for batched in [false, true] {
        let Fixture { dir: _dir, wal, .. } = Fixture::new(small_segments());
        let groups: Vec<_> = (1..=4).map(|id| wal.create_group(id).unwrap()).collect();
        let count = groups
            .iter()
            .take_while(|group| match batched {
                false => group.set_metadata(blob.clone()).is_ok(),
                true => wal.submit(&[raftwal::GroupOp::Metadata(group, &blob)]).is_ok(),
            })
            .count();
        accepted.push(count);
    }
    assert_eq!(accepted[0], accepted[1], "alone and in submit: {accepted:?}");
    assert!(accepted[0] < 4, "four blobs of 2,000 bytes cannot all repeat in 8 KiB segments");

    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    let mut groups = Vec::new();
    for id in 1.. {
        match wal.create_group(id) {
            Ok(group) => groups.push(group),
            Err(Error::TooLarge { what: "checkpoint of all groups", .. }) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    // Every number at its largest: the checkpoint reaches its bound.
    let big = raftwal::HardState { term: u64::MAX, vote: u64::MAX, commit: u64::MAX };
    for group in &groups {
        let last = |index| raftwal::Entry { index, term: u64::MAX, data: Vec::new() };
        drop(group.append(&[last(u64::MAX - 2), last(u64::MAX - 1)]).unwrap());
        drop(group.purge(u64::MAX - 2).unwrap());
        group.set_hard_state(big).unwrap().wait().unwrap();
    }
    let default_entries = |wal: &Wal, model: &Model| {
        let (first, last) = (model.first().unwrap(), model.last().unwrap());
        let read = wal.entries(first..last + 1, u64::MAX).unwrap();
        assert!(read.iter().eq(model.entries.values()), "the default group's entries differ");
    };
    append_singly(&wal, &mut model, |wal, _| wal.stats().segments >= 4);
    default_entries(&wal, &model);
    let wal = reopen(wal, dir.path(), &options);
    default_entries(&wal, &model);
    append_singly(&wal, &mut model, |wal, _| wal.stats().segments >= 6);
    wal.set_metadata(Vec::new()).unwrap().wait().unwrap();
    wal.remove_group(groups.len() as u64).unwrap().wait().unwrap();
    let last = model.last().unwrap();
    model.purge(&wal, last - 1);
    let wal = reopen(wal, dir.path(), &options);
    default_entries(&wal, &model);
    assert_eq!(wal.group(1).unwrap().hard_state().unwrap(), Some(big));
    assert_eq!(wal.groups().unwrap().len(), groups.len(), "the default group and all but one");
}
