//! Damage on disk: a flipped byte where data was durable fails `open` with the file and offset;
//! a torn tail in the newest segment is cut and appending goes on; the recovery modes choose.

mod common;

use std::path::{Path, PathBuf};

use common::{
    Fixture, Model, entries, flip, forget_clean_close, open, reopen, segment_paths, small_segments,
};
use raftwal::inspect::frames;
use raftwal::{Error, Options, RecoveryMode, Salvage, Wal};

const ENTRIES: u64 = 300;

/// A closed log of `ENTRIES` entries spread over several small segments, each entry appended
/// and synced alone.
/// A closed log of `ENTRIES` entries in small segments, one batch each.
fn written_log() -> (tempfile::TempDir, Model) {
    let mut fixture = Fixture::new(small_segments());
    for index in 1..=ENTRIES {
        fixture.model.append(&fixture.wal, &entries(index..index + 1, 1));
    }
    fixture.close()
}

/// Entry records of a segment file: (offset, index).
fn entry_records(path: &Path) -> Vec<(u64, u64)> {
    frames(&std::fs::read(path).unwrap())
        .filter(|frame| frame.kind == 1)
        .map(|frame| (frame.offset, frame.index))
        .collect()
}

/// The newest segment file that holds records (the one after it, if any, is a blank spare).
fn newest_with_records(dir: &Path) -> PathBuf {
    segment_paths(dir).into_iter().rev().find(|path| !entry_records(path).is_empty()).unwrap()
}

fn open_with(dir: &Path, recovery: RecoveryMode) -> raftwal::Result<Wal> {
    Wal::open(dir, Options { recovery, ..small_segments() })
}

#[test]
fn flipped_byte_in_a_sealed_segment_fails_open_naming_file_and_offset() {
    let (dir, _) = written_log();
    let sealed = segment_paths(dir.path())[0].clone();
    let (offset, _) = entry_records(&sealed)[5];
    flip(&sealed, offset + 40);
    for mode in [RecoveryMode::TornTail, RecoveryMode::Strict] {
        match open_with(dir.path(), mode) {
            Err(Error::Corruption { path, offset: at, .. }) => {
                assert_eq!((path.as_path(), at), (sealed.as_path(), offset), "{mode:?}");
            }
            other => panic!("{mode:?}: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn flipped_byte_before_later_durable_batches_of_the_newest_segment_is_corruption() {
    let (dir, _) = written_log();
    let newest = newest_with_records(dir.path());
    let records = entry_records(&newest);
    assert!(records.len() > 3, "newest segment has {} entries", records.len());
    let (offset, _) = records[1];
    flip(&newest, offset + 35);
    match open_with(dir.path(), RecoveryMode::TornTail) {
        Err(Error::Corruption { path, offset: at, .. }) => assert_eq!((path, at), (newest, offset)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn torn_tail_is_cut_and_appending_continues() {
    for tear in ["zeros after the first sector", "garbage in the last record"] {
        let (dir, mut model) = written_log();
        let newest = newest_with_records(dir.path());
        let &(offset, index) = entry_records(&newest).last().unwrap();
        assert_eq!(index, ENTRIES);
        forget_clean_close(&newest);
        let mut bytes = std::fs::read(&newest).unwrap();
        match tear {
            "zeros after the first sector" => bytes[offset as usize + 20..].fill(0),
            _ => bytes[offset as usize + 36..offset as usize + 60].fill(0xa5),
        }
        std::fs::write(&newest, bytes).unwrap();
        assert!(
            matches!(open_with(dir.path(), RecoveryMode::Strict), Err(Error::Corruption { .. })),
            "{tear}"
        );

        let options = small_segments();
        let wal = open(dir.path(), &options);
        let cut = wal.recovery_report().torn_tail.clone().expect("torn tail reported");
        assert_eq!((cut.path.as_path(), cut.offset), (newest.as_path(), offset), "{tear}");
        model.entries.pop_last();
        model.next = Some(ENTRIES);
        model.check(&wal);
        model.append(&wal, &entries(ENTRIES..ENTRIES + 50, 2));
        let wal = reopen(wal, dir.path(), &options);
        model.check(&wal);
        assert!(wal.recovery_report().torn_tail.is_none(), "{tear}: the repair was not durable");
    }
}

#[test]
fn salvage_keeps_the_valid_prefix_and_reports_what_it_dropped() {
    let (dir, mut model) = written_log();
    let paths = segment_paths(dir.path());
    let damaged = paths[1].clone();
    let (offset, index) = entry_records(&damaged)[3];
    flip(&damaged, offset + 33);

    let wal = open_with(dir.path(), RecoveryMode::Salvage).unwrap();
    let Salvage { cut, deleted: dropped } = wal.recovery_report().salvaged.clone().expect("salvage reported");
    assert_eq!((cut.path.as_path(), cut.offset), (damaged.as_path(), offset));
    assert_eq!(dropped, paths[2..].to_vec(), "later segments, and the blank spare, dropped");
    model.entries.retain(|&at, _| at < index);
    model.next = Some(index);
    model.check(&wal);
    model.append(&wal, &entries(index..index + 30, 3));
    wal.close().unwrap();
    drop(wal);
    let wal = open_with(dir.path(), RecoveryMode::TornTail).unwrap();
    model.check(&wal);
    // Regression: salvage once kept the spare after the segments it deleted, leaving a gap in
    // the ids that the next open read as "everything before it is obsolete". Appending through
    // several rotations after salvage must keep the whole log.
    for start in (index + 30..index + 400).step_by(10) {
        model.append(&wal, &entries(start..start + 10, 3));
    }
    let wal = reopen(wal, dir.path(), &small_segments());
    model.check(&wal);
}

#[test]
fn damaged_segment_header_is_corruption() {
    let (dir, _) = written_log();
    let first = segment_paths(dir.path())[0].clone();
    flip(&first, 20);
    match open_with(dir.path(), RecoveryMode::TornTail) {
        Err(Error::Corruption { path, offset: 0, reason }) => {
            assert_eq!(path, first);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn reads_verify_checksums_after_open() {
    let (dir, _) = written_log();
    let wal = open(dir.path(), &small_segments());
    let sealed = segment_paths(dir.path())[0].clone();
    let (offset, index) = entry_records(&sealed)[2];
    flip(&sealed, offset + 36);
    match wal.entry(index) {
        Err(Error::Corruption { path, offset: at, .. }) => assert_eq!((path, at), (sealed, offset)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn range_reads_from_the_active_segment_verify_every_record() {
    use std::os::unix::fs::FileExt;
    let Fixture { dir, wal, mut model, .. } = Fixture::new(Options::default());
    model.append(&wal, &entries(1..51, 1));
    let active = newest_with_records(dir.path());
    let records: std::collections::BTreeMap<u64, u64> =
        entry_records(&active).into_iter().map(|(offset, index)| (index, offset)).collect();
    let file = std::fs::OpenOptions::new().write(true).open(&active).unwrap();
    // A flipped payload byte in entry 20, and a record length in entry 30 that runs far past
    // the end of any read.
    file.write_all_at(&[0xff], records[&20] + 40).unwrap();
    file.write_all_at(&0xffff_fff0u32.to_le_bytes(), records[&30]).unwrap();

    assert_eq!(wal.entries(1..20, u64::MAX).unwrap().len(), 19, "the records before the damage read");
    for (range, damaged) in [(1..51, 20), (21..51, 30), (25..31, 30)] {
        match wal.entries(range.clone(), u64::MAX) {
            Err(Error::Corruption { path, offset, .. }) => {
                assert_eq!((path, offset), (active.clone(), records[&damaged]))
            }
            other => panic!("{range:?}: expected corruption at entry {damaged}, got {other:?}"),
        }
    }
    assert_eq!(wal.entries(31..51, u64::MAX).unwrap().len(), 20, "the records after the damage read");
}
