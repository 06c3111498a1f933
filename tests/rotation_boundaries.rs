//! Rotation through hundreds of small segments, and truncation and purge at and across every
//! segment boundary, each checked again after a reopen.

mod common;

use common::{Fixture, Model, append_singly, entries, open, reopen, small_segments};

/// A closed log of entries 1..=200 in small segments, appended one at a time, with the model and
/// the index that began each segment after the first: copied for each boundary a test tries.
fn template() -> (tempfile::TempDir, Model, Vec<u64>) {
    let template = tempfile::tempdir().unwrap();
    let wal = open(template.path(), &small_segments());
    let mut model = Model::default();
    let starts = append_singly(&wal, &mut model, |_, index| index > 200);
    assert!(starts.len() >= 4, "boundaries at {starts:?}");
    wal.close().unwrap();
    (template, model, starts)
}

#[test]
fn rotation_over_hundreds_of_segments() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    for start in (1..10_000).step_by(50) {
        model.append(&wal, &entries(start..start + 50, 1));
    }
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segments > 200, "only {segments} files");
    model.check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
}

#[test]
fn truncate_at_every_index_around_segment_boundaries() {
    let options = small_segments();
    let (template, model, starts) = template();

    let points: Vec<u64> = starts.iter().flat_map(|&start| [start - 1, start, start + 1]).collect();
    for from in points {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let wal = open(dir.path(), &options);
        let mut model = model.clone();
        model.check(&wal);
        model.truncate(&wal, from);
        model.check(&wal);
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
        model.append(&wal, &entries(from..from + 70, 2));
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
    }
}

#[test]
fn purge_at_every_index_around_segment_boundaries_deletes_whole_segments() {
    let options = small_segments();
    let (template, model, starts) = template();

    let points: Vec<u64> = starts.iter().flat_map(|&start| [start - 1, start, start + 1]).collect();
    for upto in points {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let wal = open(dir.path(), &options);
        let mut model = model.clone();
        let segments_before = wal.stats().segments;
        model.purge(&wal, upto);
        model.check(&wal);
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
        // Every segment that held only entries at or below `upto` is gone.
        let whole_segments_purged = starts.iter().filter(|&&start| start <= upto + 1).count();
        assert_eq!(
            wal.stats().segments,
            segments_before - whole_segments_purged as u64,
            "purge to {upto}, boundaries {starts:?}"
        );
        // One preallocated spare, and the emptied segments kept for recycling.
        let spares = segment_files(dir.path()) as u64 - wal.stats().segments;
        assert!(spares <= 1 + options.recycled_segments_max as u64, "{spares} spare segment files");
        model.append(&wal, &entries(201..230, 1));
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
    }
}

#[test]
fn truncate_then_purge_across_segments() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    model.append(&wal, &entries(1..300, 1));
    model.truncate(&wal, 100);
    model.append(&wal, &entries(100..400, 2));
    model.truncate(&wal, 250);
    model.append(&wal, &entries(250..500, 3));
    model.purge(&wal, 120);
    model.check(&wal);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
    model.purge(&wal, 499);
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
    assert_eq!(wal.next_index().unwrap(), Some(500));
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn appends_that_outrun_preallocation_are_counted_as_segment_waits() {
    let dir = tempfile::tempdir().unwrap();
    let options = raftwal::Options { sync: raftwal::SyncMode::None, ..small_segments() };
    let wal = open(dir.path(), &options);
    wal.append(&entries(1..3, 1)).unwrap().wait().unwrap();
    assert_eq!(wal.stats().segment_waits, 0, "no rotation yet");

    // Each append fills most of an 8 KiB segment, and nothing waits for an fsync: the appender
    // needs a new segment far faster than the housekeeper can write and sync one.
    let big = |index| raftwal::Entry { index, term: 1, data: vec![7; 5000] };
    for index in 3..43 {
        drop(wal.append(&[big(index)]).unwrap());
    }
    wal.sync().unwrap();
    let stats = wal.stats();
    assert!(
        stats.segment_waits >= 1 && stats.segment_waits <= 40,
        "40 rotations, at most one wait each: {stats:?}"
    );
    assert!(stats.segment_wait_micros > 0, "{stats:?}");
    assert_eq!(wal.entry(42).unwrap().data, vec![7; 5000]);
}
