//! Many Raft groups in one log: groups are created, written, removed and created again, survive
//! a reopen, share batches, and neither a removed group nor a lagging one keeps old segments.

mod common;

use common::{entries, entry, small_segments};
use raftwal::{Error, GroupOp, HardState, Options, SnapshotMeta, Wal};

fn open(dir: &std::path::Path, options: &Options) -> Wal {
    Wal::open(dir, options.clone()).expect("open")
}

#[test]
fn groups_are_independent_logs_that_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let wal = open(dir.path(), &options);
    let big = 1 << 40;
    let a = wal.create_group(5).unwrap();
    let b = wal.create_group(big).unwrap();
    assert!(matches!(wal.create_group(5), Err(Error::GroupExists { id: 5 })));
    // Interleaved, with overlapping indexes: each group has its own log.
    for index in 1..=60 {
        drop(wal.append(&[entry(index, 1)]).unwrap());
        drop(a.append(&[entry(index, 2)]).unwrap());
        if index % 2 == 0 {
            drop(b.append(&[entry(index / 2 + 100, 3)]).unwrap());
        }
    }
    drop(a.truncate(51).unwrap());
    drop(a.purge(10).unwrap());
    drop(b.set_hard_state(HardState { term: 3, vote: 9, commit: 110 }).unwrap());
    drop(b.set_metadata(b"b's configuration".to_vec()).unwrap());
    drop(a.install_snapshot(SnapshotMeta { index: 20, term: 2, data: b"a's membership".to_vec() }).unwrap());
    wal.sync().unwrap();
    assert_eq!(wal.groups().unwrap(), vec![0, 5, big]);
    wal.close().unwrap();

    let wal = open(dir.path(), &options);
    assert_eq!(wal.recovery_report().groups, vec![0, 5, big]);
    assert_eq!(wal.groups().unwrap(), vec![0, 5, big]);
    let (a, b) = (wal.group(5).unwrap(), wal.group(big).unwrap());
    assert_eq!(wal.entries(1..61, u64::MAX).unwrap(), entries(1..61, 1));
    assert_eq!((a.first_index().unwrap(), a.last_index().unwrap()), (Some(21), Some(50)));
    assert_eq!(a.entries(21..51, u64::MAX).unwrap(), entries(21..51, 2));
    assert_eq!(a.snapshot_meta().unwrap().unwrap().data, b"a's membership");
    assert_eq!(b.entries(101..131, u64::MAX).unwrap(), entries(101..131, 3));
    assert_eq!(b.hard_state().unwrap(), Some(HardState { term: 3, vote: 9, commit: 110 }));
    assert_eq!(b.metadata().unwrap().as_deref(), Some(&b"b's configuration"[..]));
    assert_eq!(wal.hard_state().unwrap(), None, "the default group's state is its own");
    assert_eq!(wal.stats().groups, 3);
}

#[test]
fn a_removed_group_created_again_starts_empty_and_old_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let wal = open(dir.path(), &options);
    let old = wal.create_group(9).unwrap();
    drop(old.append(&entries(1..40, 1)).unwrap());
    drop(old.set_hard_state(HardState { term: 1, vote: 1, commit: 39 }).unwrap());
    wal.remove_group(9).unwrap().wait().unwrap();
    assert!(matches!(old.append(&[entry(40, 1)]), Err(Error::NoGroup { id: 9 })));
    assert!(matches!(old.last_index(), Err(Error::NoGroup { id: 9 })));
    assert!(matches!(wal.group(9), Err(Error::NoGroup { id: 9 })));
    assert!(matches!(wal.remove_group(9), Err(Error::NoGroup { id: 9 })));
    assert!(matches!(wal.remove_group(0), Err(Error::DefaultGroup)));

    let new = wal.create_group(9).unwrap();
    assert_eq!((new.last_index().unwrap(), new.hard_state().unwrap()), (None, None));
    assert!(
        matches!(old.last_index(), Err(Error::NoGroup { id: 9 })),
        "an old handle does not reach the new group"
    );
    new.append(&entries(7..10, 4)).unwrap().wait().unwrap();
    wal.close().unwrap();

    let wal = open(dir.path(), &options);
    let new = wal.group(9).unwrap();
    assert_eq!(new.entries(7..10, u64::MAX).unwrap(), entries(7..10, 4));
    assert_eq!((new.first_index().unwrap(), new.hard_state().unwrap()), (Some(7), None));
}

#[test]
fn one_submit_carries_many_groups_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &Options::default());
    let groups: Vec<_> = (1..=50).map(|id| wal.create_group(id).unwrap()).collect();
    let batches: Vec<_> = (1..=50u64).map(|id| entries(1..4, id)).collect();
    let mut ops: Vec<GroupOp<'_>> =
        groups.iter().zip(&batches).map(|(group, batch)| GroupOp::Append(group, batch)).collect();
    ops.push(GroupOp::HardState(&groups[0], HardState { term: 1, vote: 1, commit: 3 }));
    wal.sync().unwrap();
    let fsyncs = wal.stats().fsyncs;
    wal.submit(&ops).unwrap().wait().unwrap();
    assert!(wal.stats().fsyncs - fsyncs <= 1, "one batch, one fdatasync");
    assert_eq!(wal.stats().entries, 150);

    // The third group's append does not continue its log: nothing of the call is submitted.
    let next: Vec<_> = (1..=3u64).map(|id| entries(4..5, id)).collect();
    let wrong = entries(9..10, 3);
    let ops = [
        GroupOp::Append(&groups[0], &next[0]),
        GroupOp::Append(&groups[1], &next[1]),
        GroupOp::Append(&groups[2], &wrong),
        GroupOp::Metadata(&groups[0], b"never"),
    ];
    assert!(matches!(wal.submit(&ops), Err(Error::NotContiguous { expected: 4, got: 9 })));
    assert_eq!(groups[0].last_index().unwrap(), Some(3));
    assert_eq!(groups[0].metadata().unwrap(), None);
    // Two appends to one group in one call continue each other.
    let (first, second) = (entries(4..6, 1), entries(6..8, 1));
    wal.submit(&[GroupOp::Append(&groups[0], &first), GroupOp::Append(&groups[0], &second)])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(groups[0].entries(1..8, u64::MAX).unwrap().len(), 7);
    // A handle of another log is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path(), &Options::default());
    let foreign = other.create_group(1).unwrap();
    let batch = entries(4..5, 1);
    assert!(matches!(wal.submit(&[GroupOp::Append(&foreign, &batch)]), Err(Error::NoGroup { id: 1 })));
    assert!(matches!(wal.submit(&[]), Err(Error::EmptyBatch)));
}

/// Segments are deleted once no group has an entry in them: here only after the last of three
/// groups purges, or is removed.
#[test]
fn a_segment_goes_once_no_group_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { recycled_segments_max: 0, relocate_after_segments: 1000, ..small_segments() };
    let wal = open(dir.path(), &options);
    let (a, b) = (wal.create_group(1).unwrap(), wal.create_group(2).unwrap());
    for index in 1..=200 {
        for group in [&*wal, &a, &b] {
            drop(group.append(&[entry(index, 1)]).unwrap());
        }
    }
    wal.sync().unwrap();
    let full = wal.stats().segments;
    assert!(full > 10, "{full} segments");
    wal.purge(190).unwrap().wait().unwrap();
    a.purge(190).unwrap().wait().unwrap();
    wal.quiesce();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(wal.stats().segments, full, "group 2 still needs every segment");
    wal.remove_group(2).unwrap().wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.stats().segments > 3 {
        assert!(std::time::Instant::now() < deadline, "{} segments left", wal.stats().segments);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let wal = common::reopen(wal, dir.path(), &options);
    assert_eq!(wal.entries(191..201, u64::MAX).unwrap(), entries(191..201, 1));
    assert_eq!(wal.group(1).unwrap().entries(191..201, u64::MAX).unwrap(), entries(191..201, 1));
}

/// A group written once and never again keeps its few entries in the oldest segment; relocation
/// copies them forward so that the log, purged by the busy group, stays small.
#[test]
fn a_lagging_group_does_not_keep_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { relocate_after_segments: 4, ..small_segments() };
    let wal = open(dir.path(), &options);
    let idle = wal.create_group(7).unwrap();
    drop(idle.append(&entries(1..4, 1)).unwrap());
    drop(idle.set_hard_state(HardState { term: 1, vote: 7, commit: 3 }).unwrap());
    for index in 1..=3000u64 {
        drop(wal.append(&[entry(index, 1)]).unwrap());
        if index % 20 == 0 {
            wal.purge(index - 10).unwrap().wait().unwrap();
        }
    }
    // Relocation and deletion run in the background, after the purges are durable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.stats().segments > 6 {
        assert!(std::time::Instant::now() < deadline, "{:?}", wal.stats());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let stats = wal.stats();
    assert!(stats.entries_relocated >= 3, "{stats:?}");
    assert_eq!(idle.entries(1..4, u64::MAX).unwrap(), entries(1..4, 1));
    let wal = common::reopen(wal, dir.path(), &options);
    let idle = wal.group(7).unwrap();
    assert_eq!(idle.entries(1..4, u64::MAX).unwrap(), entries(1..4, 1));
    assert_eq!(idle.hard_state().unwrap(), Some(HardState { term: 1, vote: 7, commit: 3 }));
}

/// A group that never purges holds more than relocation moves: it is left in place and named
/// as the one keeping the oldest segments.
#[test]
fn a_group_that_never_purges_is_named_as_lagging() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { relocate_after_segments: 4, ..small_segments() };
    let wal = open(dir.path(), &options);
    let hoarder = wal.create_group(3).unwrap();
    for index in 1..=3000u64 {
        drop(wal.append(&[entry(index, 1)]).unwrap());
        drop(hoarder.append(&[entry(index, 1)]).unwrap());
        if index % 20 == 0 {
            drop(wal.purge(index - 10).unwrap());
        }
    }
    wal.sync().unwrap();
    let lagging = wal.lagging_groups(2).unwrap();
    assert_eq!(lagging[0].id, 3, "{lagging:?}");
    assert!(lagging[0].segments_behind > 50, "{lagging:?}");
    assert_eq!(lagging.len(), 2);
    assert_eq!(lagging[1].id, 0);
    assert!(lagging[1].segments_behind <= 1, "{lagging:?}");
    assert_eq!(hoarder.entries(1..3001, u64::MAX).unwrap().len(), 3000);
}

#[test]
fn ten_thousand_groups_cost_two_segments_and_a_small_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Each group is charged about 100 bytes of the checkpoint's bound (every number at its
    // largest varint), which must stay within half a segment: 10,000 need 2 MiB segments.
    let options = Options { segment_bytes: 4 << 20, ..Options::default() };
    let wal = open(dir.path(), &options);
    for id in 1..=10_000 {
        wal.create_group(id).unwrap();
    }
    drop(wal.group(10_000).unwrap().append(&entries(1..3, 1)).unwrap());
    wal.sync().unwrap();
    assert!(wal.stats().segments <= 2, "{:?}", wal.stats());
    // Fill the first segment, so that the next starts with a checkpoint of every group.
    let big = vec![7u8; 64 << 10];
    for index in 1..=70 {
        drop(wal.append(&[raftwal::Entry { index, term: 1, data: big.clone() }]).unwrap());
    }
    let wal = common::reopen(wal, dir.path(), &options);
    assert_eq!(wal.groups().unwrap().len(), 10_001);
    assert_eq!(wal.group(10_000).unwrap().last_index().unwrap(), Some(2));
    wal.close().unwrap();
    let mut checkpoints = Vec::new();
    raftwal::inspect::for_each_record(dir.path(), |record| {
        if let Some(groups) = record.checkpoint_groups() {
            checkpoints.push((groups, record.payload.len()));
        }
    })
    .unwrap();
    let (groups, bytes) = *checkpoints.last().unwrap();
    eprintln!("checkpoint of {groups} idle groups: {bytes} bytes");
    assert_eq!(groups, 10_001);
    assert!(bytes <= 10_001 * 10, "a checkpoint of 10,001 idle groups takes {bytes} bytes");
}
