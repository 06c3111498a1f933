//! EIO on reads (a bad sector, on the simulated file system): `open` fails with a typed error
//! naming the file and changes nothing; a failed read of an entry is returned to the reader and
//! leaves the log writable.

use std::path::PathBuf;
use std::sync::Arc;

use raftwal::inspect::frames;
use raftwal::sim::SimFs;
use raftwal::{Entry, Error, Options, Wal};

const DIR: &str = "/wal";

fn options() -> Options {
    Options { segment_bytes: 8192, ..Options::default() }
}

fn entries(indexes: std::ops::Range<u64>) -> Vec<Entry> {
    indexes.map(|index| Entry { index, term: 1, data: vec![index as u8; 100] }).collect()
}

fn segments(fs: &SimFs) -> Vec<PathBuf> {
    fs.paths().into_iter().filter(|path| path.extension().is_some_and(|ext| ext == "seg")).collect()
}

/// The segments holding records, oldest first, each with the offset of its first record.
fn with_records(fs: &SimFs) -> Vec<(PathBuf, u64)> {
    segments(fs)
        .into_iter()
        .filter_map(|path| {
            let first = frames(&fs.contents(&path).unwrap()).next()?.offset as u64;
            Some((path, first))
        })
        .collect()
}

fn image(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    fs.paths().into_iter().map(|path| (path.clone(), fs.contents(&path).unwrap())).collect()
}

#[test]
fn open_fails_on_an_unreadable_sector_naming_the_file_and_changes_nothing() {
    for victim in [0, 1] {
        let fs = SimFs::new(victim, 512);
        let wal = Wal::open_with_fs(Arc::new(fs.process()), DIR, options()).unwrap();
        for index in 1..=100 {
            wal.append(&entries(index..index + 1)).unwrap().wait().unwrap();
        }
        wal.close().unwrap();
        drop(wal);
        // The oldest segment (sealed), or the newest holding records (the active one).
        let found = with_records(&fs);
        assert!(found.len() > 2, "{found:?}");
        let (path, first) = if victim == 0 { found[0].clone() } else { found[found.len() - 1].clone() };
        fs.fail_reads(&path, first, 512).unwrap();
        let before = image(&fs);
        match Wal::open_with_fs(Arc::new(fs.process()), DIR, options()) {
            Err(Error::Read { path: at, source, .. }) => {
                assert_eq!(at, path);
                assert_eq!(source.raw_os_error(), Some(5), "{source}");
            }
            other => panic!("open on an unreadable sector of {}: {other:?}", path.display()),
        }
        assert_eq!(image(&fs), before, "open changed the files");
    }
}

#[test]
fn a_failed_read_of_an_entry_is_returned_and_the_log_stays_writable() {
    let fs = SimFs::new(3, 512);
    let wal = Wal::open_with_fs(Arc::new(fs.process()), DIR, options()).unwrap();
    wal.append(&entries(1..11)).unwrap().wait().unwrap();
    // Entries 1..=10 sit in the active segment, read with pread: make its records unreadable.
    let (active, first) = with_records(&fs).remove(0);
    fs.fail_reads(&active, first, 8192).unwrap();
    match wal.entries(1..11, u64::MAX) {
        Err(Error::Read { path, offset, .. }) => {
            assert_eq!(path, active);
            assert!((first..8192).contains(&offset), "{offset}");
        }
        other => panic!("read of unreadable entries: {other:?}"),
    }
    // Writes go on, and so do reads of what is readable.
    wal.append(&entries(11..61)).unwrap().wait().unwrap();
    assert_eq!(wal.entries(50..61, u64::MAX).unwrap(), entries(50..61));
    assert!(wal.hard_state().is_ok(), "the failed read poisoned the log");
    wal.sync().unwrap();
}
