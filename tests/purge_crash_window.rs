//! A crash between a durable purge and the deletion of the segments it emptied: the files come
//! back (all of them, or only some, leaving a gap in the ids), and the purged entries must not.

mod common;

use common::{Model, entries, open, segment_paths, small_segments};

#[test]
fn purged_entries_stay_purged_when_segment_deletions_are_lost() {
    let options = small_segments();
    for restore in ["all deleted files", "only the oldest", "all but the oldest"] {
        let dir = tempfile::tempdir().unwrap();
        let saved = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), &options);
        let mut model = Model::default();
        model.append(&wal, &entries(1..400, 1));
        wal.sync().unwrap();
        for path in segment_paths(dir.path()) {
            std::fs::copy(&path, saved.path().join(path.file_name().unwrap())).unwrap();
        }
        model.purge(&wal, 250);
        wal.close().unwrap();
        drop(wal);

        let deleted: Vec<_> = segment_paths(saved.path())
            .into_iter()
            .filter(|path| !dir.path().join(path.file_name().unwrap()).exists())
            .collect();
        assert!(deleted.len() >= 3, "purge deleted {} segments", deleted.len());
        let restored: &[_] = match restore {
            "all deleted files" => &deleted,
            "only the oldest" => &deleted[..1],
            _ => &deleted[1..],
        };
        for path in restored {
            std::fs::copy(path, dir.path().join(path.file_name().unwrap())).unwrap();
        }

        let wal = open(dir.path(), &options);
        model.check(&wal);
        assert_eq!(wal.first_index().unwrap(), Some(251), "{restore}");
        for path in restored {
            let name = path.file_name().unwrap();
            // Files a gap cut off are deleted by open; whole runs are replayed and deleted by the
            // next purge.
            let still_there = dir.path().join(name).exists();
            if restore == "only the oldest" {
                assert!(!still_there, "{restore}: {name:?} should be gone");
            }
        }
        model.append(&wal, &entries(400..420, 2));
        model.purge(&wal, 300);
        let wal = common::reopen(wal, dir.path(), &options);
        model.check(&wal);
        for path in restored {
            assert!(!dir.path().join(path.file_name().unwrap()).exists(), "{restore}: {path:?} came back");
        }
    }
}
