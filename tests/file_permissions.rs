//! Private by default: a Raft log holds the application's data, so the files raftwal creates are
//! readable by their owner only (`0600`, the directory `0700`, as etcd does), unless
//! `Options::file_mode` says otherwise; and `open` never follows a symbolic link or reads a
//! directory entry that is not a regular file.

#[macro_use]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Fixture, entries, segment_paths, small_segments};
use raftwal::{Error, Options, Wal};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Opens a new log in a directory `open` creates, appends a few segments' worth, and returns
/// the modes of the directory and of every file in it.
fn modes_of_a_new_log(options: Options) -> (u32, Vec<(String, u32)>) {
    // The usual umask, whatever the machine's, so that the modes asked for are the modes found.
    // SAFETY: umask has no preconditions; every test of this binary sets the same value.
    unsafe { libc::umask(0o022) };
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let wal = Wal::open(&dir, options).unwrap();
    common::Model::default().append(&wal, &entries(1..200, 1));
    wal.close().unwrap();
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), mode(&path))
        })
        .collect();
    (mode(&dir), files)
}

#[test]
fn files_are_private_by_default() {
    let (dir_mode, files) = modes_of_a_new_log(small_segments());
    assert_eq!(dir_mode, 0o700, "directory");
    assert!(files.len() > 3, "segments, a spare and the lock: {files:?}");
    for (name, mode) in files {
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn file_mode_chooses_other_bits() {
    let (dir_mode, files) = modes_of_a_new_log(Options { file_mode: 0o640, ..small_segments() });
    assert_eq!(dir_mode, 0o750, "directory: searchable where readable");
    for (name, mode) in files {
        assert_eq!(mode, 0o640, "{name}");
    }
    let invalid =
        Wal::open(tempfile::tempdir().unwrap().path(), Options { file_mode: 0o4600, ..small_segments() });
    assert_matches!(invalid, Err(Error::InvalidOptions(_)), "{invalid:?}");
}

#[test]
fn a_segment_that_is_a_symlink_or_not_a_file_is_refused() {
    let (dir, _) = Fixture::written(small_segments(), 1..200).close();

    // The newest segment replaced by a link to an identical copy elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let newest = segment_paths(dir.path()).pop().unwrap();
    let copy = elsewhere.path().join("copy.seg");
    std::fs::rename(&newest, &copy).unwrap();
    std::os::unix::fs::symlink(&copy, &newest).unwrap();
    match Wal::open(dir.path(), small_segments()) {
        Err(Error::ForeignFile(path)) => assert_eq!(path, newest),
        other => panic!("open with a symlinked segment: {other:?}"),
    }
    std::fs::remove_file(&newest).unwrap();
    std::fs::rename(&copy, &newest).unwrap();
    Wal::open(dir.path(), small_segments()).expect("the real file back").close().unwrap();

    // A directory with a segment's name.
    let next_id = segment_paths(dir.path()).len() + 1;
    let impostor = dir.path().join(format!("{next_id:020}.seg"));
    std::fs::create_dir(&impostor).unwrap();
    match Wal::open(dir.path(), small_segments()) {
        Err(Error::ForeignFile(path)) => assert_eq!(path, impostor),
        other => panic!("open with a directory named like a segment: {other:?}"),
    }
}

#[test]
fn repair_backups_keep_the_mode_of_the_file_they_copy() {
    // SAFETY: as in `modes_of_a_new_log`.
    unsafe { libc::umask(0o022) };
    let (dir, _) = Fixture::written(Options { file_mode: 0o640, ..small_segments() }, 1..200).close();
    let damaged = segment_paths(dir.path())[1].clone();
    let offset = common::record_offsets(&std::fs::read(&damaged).unwrap())[3];
    common::flip(&damaged, offset + 33);

    let repaired = raftwal::inspect::repair(dir.path(), raftwal::inspect::RepairMode::Salvage).unwrap();
    let backups = repaired.expect("damage to repair").backups;
    assert!(!backups.is_empty());
    for backup in backups {
        assert_eq!(mode(&backup), 0o640, "{}", backup.display());
    }
}
