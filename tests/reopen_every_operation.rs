//! Open, write, close and reopen after every kind of operation: the state survives exactly.

mod common;

use common::{Fixture, Model, entries, open, reopen, small_segments};
use raftwal::{HardState, Options, SnapshotMeta};

/// One operation, applied to the model and the wal together.
type Step = dyn Fn(&mut Model, &raftwal::Wal);

#[test]
fn reopen_after_each_operation_kind() {
    for options in [Options::default(), small_segments()] {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = open(dir.path(), &options);
        let mut model = Model::default();
        model.check(&wal);

        let steps: Vec<(&str, Box<Step>)> = vec![
            ("append", Box::new(|m, w| m.append(w, &entries(1..41, 1)))),
            ("hard state", Box::new(|m, w| m.set_hard_state(w, HardState { term: 1, vote: 3, commit: 20 }))),
            ("metadata", Box::new(|m, w| m.set_metadata(w, b"vote 1 for 3, committed 20"))),
            ("truncate", Box::new(|m, w| m.truncate(w, 31))),
            ("append after truncate", Box::new(|m, w| m.append(w, &entries(31..61, 2)))),
            ("purge", Box::new(|m, w| m.purge(w, 12))),
            (
                "snapshot keeping the suffix",
                Box::new(|m, w| {
                    m.install_snapshot(w, SnapshotMeta { index: 20, term: 1, data: b"conf: 1,2,3".to_vec() })
                }),
            ),
            (
                "hard state again",
                Box::new(|m, w| m.set_hard_state(w, HardState { term: 2, vote: 1, commit: 55 })),
            ),
            (
                "snapshot discarding the log",
                Box::new(|m, w| {
                    m.install_snapshot(w, SnapshotMeta { index: 100, term: 5, data: vec![9; 300] })
                }),
            ),
            ("append after snapshot", Box::new(|m, w| m.append(w, &entries(101..131, 5)))),
            ("metadata again", Box::new(|m, w| m.set_metadata(w, &[7; 700]))),
            ("purge everything", Box::new(|m, w| m.purge(w, 130))),
            ("append after purging everything", Box::new(|m, w| m.append(w, &entries(131..135, 6)))),
        ];
        for (name, step) in steps {
            step(&mut model, &wal);
            model.check(&wal);
            wal = reopen(wal, dir.path(), &options);
            eprintln!("after {name}: {:?}", wal.recovery_report());
            model.check(&wal);
            assert!(wal.recovery_report().torn_tail.is_none(), "clean close left a torn tail after {name}");
        }
        wal.close().unwrap();
    }
}

#[test]
fn fresh_log_starts_at_any_index_and_survives_reopen_empty() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default();
    let wal = open(dir.path(), &options);
    let wal = reopen(wal, dir.path(), &options);
    Model::default().check(&wal);
    let mut model = Model::default();
    model.append(&wal, &entries(0..5, 0));
    let wal = reopen(wal, dir.path(), &options);
    model.check(&wal);
}

#[test]
fn drop_without_close_keeps_acknowledged_entries() {
    let Fixture { dir, options, wal, mut model } = Fixture::new(small_segments());
    for start in (1..200).step_by(10) {
        model.append(&wal, &entries(start..start + 10, 3));
    }
    drop(wal);
    let wal = open(dir.path(), &options);
    model.check(&wal);
}
