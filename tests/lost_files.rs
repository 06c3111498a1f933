//! `open` never destroys what it cannot prove obsolete: a lost or shortened segment file is an
//! error that names the damage, with every file left as it was; and damage in a segment that a
//! clean `close` made durable is corruption, never a torn tail to cut. Each test is a finding of
//! issue 12 and says how it failed before the fix.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Fixture, Model, newest_with_records, record_offsets, segment_paths, small_segments};
use raftwal::{Error, HardState, Options, SyncMode, Wal};

/// A closed log of 300 entries in several small segments, a hard state, and a spare after them
/// (the housekeeper makes it in the background; a loaded machine can take a while).
fn written_log(options: Options) -> (tempfile::TempDir, Model) {
    let mut fixture = Fixture::written(options, 1..301);
    fixture.model.set_hard_state(&fixture.wal, HardState { term: 1, vote: 3, commit: 300 });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while segment_paths(fixture.dir.path()).last() == Some(&newest_with_records(fixture.dir.path())) {
        assert!(std::time::Instant::now() < deadline, "no spare was preallocated");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    fixture.close()
}

/// Every file in `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Failed as: `open` returned an empty log (no entries, no vote) and deleted every older segment
/// as obsolete, reading the id gap the lost file left as an interrupted purge.
#[test]
fn regression_a_lost_newest_segment_wiped_the_log() {
    let (dir, _) = written_log(small_segments());
    let newest = newest_with_records(dir.path());
    assert_ne!(segment_paths(dir.path()).last(), Some(&newest), "a spare follows it");
    std::fs::remove_file(&newest).unwrap();
    let before = files(dir.path());
    match Wal::open(dir.path(), small_segments()) {
        Err(Error::MissingSegments { .. }) => {}
        other => panic!("open without the newest segment: {other:?}"),
    }
    assert_eq!(files(dir.path()), before, "open changed the directory");
}

/// Failed as: a newest segment cut at a record boundary opened without a report, its later
/// entries silently gone. The header now records the size the file was preallocated to.
#[test]
fn regression_a_shortened_newest_segment_lost_entries_silently() {
    let (dir, _) = written_log(small_segments());
    let newest = newest_with_records(dir.path());
    let offsets = record_offsets(&std::fs::read(&newest).unwrap());
    let cut = offsets[offsets.len() / 2];
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(cut).unwrap();
    let before = files(dir.path());
    match Wal::open(dir.path(), small_segments()) {
        Err(Error::Corruption { path, offset: 0, reason }) => {
            assert_eq!(path, newest);
            assert!(reason.contains(&format!("segment file is {cut} bytes")), "{reason}");
        }
        other => panic!("open of a shortened segment: {other:?}"),
    }
    assert_eq!(files(dir.path()), before, "open changed the directory");
}

/// Failed as: in `SyncMode::None`, after a clean `close`, one flipped bit in the newest segment
/// was cut as a torn tail, dropping 36 closed-and-synced entries; now `close` leaves a claim
/// that everything before it is durable.
#[test]
fn regression_a_flipped_bit_after_a_clean_close_was_cut_as_a_torn_tail() {
    for sync in [SyncMode::None, SyncMode::Data] {
        let options = Options { sync, ..small_segments() };
        let (dir, _) = written_log(options.clone());
        let newest = newest_with_records(dir.path());
        let mut bytes = std::fs::read(&newest).unwrap();
        let offsets = record_offsets(&bytes);
        // The last record before the close's claim: in SyncMode::Data, the last batch's.
        let victim = offsets[offsets.len() - 2];
        bytes[victim as usize + 20] ^= 0x08;
        std::fs::write(&newest, &bytes).unwrap();
        match Wal::open(dir.path(), options) {
            Err(Error::Corruption { path, offset, .. }) => assert_eq!((path, offset), (newest, victim)),
            other => panic!("{sync:?}: open after a bit flip: {other:?}"),
        }
    }
}
