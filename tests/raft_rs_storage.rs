//! raft-rs's own `MemStorage` unit tests (raft 0.7, `src/storage.rs`), rewritten against
//! `raftwal::raft::raft_rs::RaftStorage`, plus a reopen test. Where `MemStorage` panics on
//! misuse, the adapter returns a typed error, and the tests check that instead.

#[macro_use]
mod common;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};
use raftwal::Options;
use raftwal::raft::raft_rs::RaftStorage;

fn new_entry(index: u64, term: u64) -> Entry {
    Entry { index, term, ..Default::default() }
}

fn new_snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = index;
    snapshot.mut_metadata().term = term;
    snapshot.mut_metadata().mut_conf_state().voters = voters;
    snapshot
}

fn size_of(entry: &Entry) -> u64 {
    u64::from(entry.compute_size())
}

/// A storage in a fresh directory holding entries 3, 4, 5 with terms 3, 4, 5.
fn storage_with_3_4_5() -> (tempfile::TempDir, RaftStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = RaftStorage::open(dir.path(), Options::default()).unwrap();
    storage.append(&[new_entry(3, 3), new_entry(4, 4), new_entry(5, 5)]).unwrap().wait().unwrap();
    (dir, storage)
}

fn all_entries(storage: &RaftStorage) -> Vec<Entry> {
    let (first, last) = (storage.first_index().unwrap(), storage.last_index().unwrap());
    storage.entries(first, last + 1, None, GetEntriesContext::empty(false)).unwrap()
}

#[test]
fn storage_term() {
    let (_dir, storage) = storage_with_3_4_5();
    let tests = [
        (2, Err(raft::Error::Store(StorageError::Compacted))),
        (3, Ok(3)),
        (4, Ok(4)),
        (5, Ok(5)),
        (6, Err(raft::Error::Store(StorageError::Unavailable))),
    ];
    for (index, want) in tests {
        assert_eq!(storage.term(index), want, "term({index})");
    }
}

#[test]
fn storage_entries() {
    let (_dir, storage) = storage_with_3_4_5();
    storage.append(&[new_entry(6, 6)]).unwrap().wait().unwrap();
    let ents = [new_entry(3, 3), new_entry(4, 4), new_entry(5, 5), new_entry(6, 6)];
    let max = u64::MAX;
    let tests = [
        (2, 6, max, Err(raft::Error::Store(StorageError::Compacted))),
        (3, 4, max, Ok(vec![new_entry(3, 3)])),
        (4, 5, max, Ok(vec![new_entry(4, 4)])),
        (4, 6, max, Ok(vec![new_entry(4, 4), new_entry(5, 5)])),
        (4, 7, max, Ok(vec![new_entry(4, 4), new_entry(5, 5), new_entry(6, 6)])),
        // Even with a zero limit, the first entry is returned.
        (4, 7, 0, Ok(vec![new_entry(4, 4)])),
        (4, 7, size_of(&ents[1]) + size_of(&ents[2]), Ok(vec![new_entry(4, 4), new_entry(5, 5)])),
        (
            4,
            7,
            size_of(&ents[1]) + size_of(&ents[2]) + size_of(&ents[3]) / 2,
            Ok(vec![new_entry(4, 4), new_entry(5, 5)]),
        ),
        (
            4,
            7,
            size_of(&ents[1]) + size_of(&ents[2]) + size_of(&ents[3]) - 1,
            Ok(vec![new_entry(4, 4), new_entry(5, 5)]),
        ),
        (
            4,
            7,
            size_of(&ents[1]) + size_of(&ents[2]) + size_of(&ents[3]),
            Ok(vec![new_entry(4, 4), new_entry(5, 5), new_entry(6, 6)]),
        ),
        // MemStorage panics past the last index; the adapter says Unavailable.
        (4, 8, max, Err(raft::Error::Store(StorageError::Unavailable))),
    ];
    for (at, (low, high, max_size, want)) in tests.into_iter().enumerate() {
        let got = storage.entries(low, high, max_size, GetEntriesContext::empty(false));
        assert_eq!(got, want, "#{at}: entries({low}, {high}, {max_size})");
    }
}

#[test]
fn storage_last_index() {
    let (_dir, storage) = storage_with_3_4_5();
    assert_eq!(storage.last_index(), Ok(5));
    storage.append(&[new_entry(6, 5)]).unwrap().wait().unwrap();
    assert_eq!(storage.last_index(), Ok(6));
}

#[test]
fn storage_first_index() {
    let (_dir, storage) = storage_with_3_4_5();
    assert_eq!(storage.first_index(), Ok(3));
    storage.compact(4).unwrap().expect("drops entry 3").wait().unwrap();
    assert_eq!(storage.first_index(), Ok(4));
}

#[test]
fn storage_compact() {
    // (compact index, first index after, its term, entries left)
    for (compact, want_first, want_term, want_len) in [(2, 3, 3, 3), (3, 3, 3, 3), (4, 4, 4, 2), (5, 5, 5, 1)]
    {
        let (_dir, storage) = storage_with_3_4_5();
        if let Some(done) = storage.compact(compact).unwrap() {
            done.wait().unwrap();
        }
        let first = storage.first_index().unwrap();
        assert_eq!(first, want_first, "compact({compact})");
        let term = storage.entries(first, first + 1, 1, GetEntriesContext::empty(false)).unwrap()[0].term;
        assert_eq!(term, want_term, "compact({compact})");
        assert_eq!(all_entries(&storage).len(), want_len, "compact({compact})");
    }
    let (_dir, storage) = storage_with_3_4_5();
    assert_matches!(storage.compact(7), Err(raftwal::Error::Unavailable { .. }));
}

#[test]
fn storage_create_snapshot() {
    let conf_state = ConfState { voters: vec![1, 2, 3], ..Default::default() };
    for (commit, request, want) in [
        (4, 0, Ok(new_snapshot(4, 4, vec![1, 2, 3]))),
        (5, 5, Ok(new_snapshot(5, 5, vec![1, 2, 3]))),
        // MemStorage stretches the snapshot to the requested index; the adapter has none
        // that recent yet.
        (5, 6, Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))),
    ] {
        let (_dir, storage) = storage_with_3_4_5();
        let hard_state = HardState { commit, term: commit, ..Default::default() };
        storage.set_hard_state(&hard_state).unwrap().wait().unwrap();
        storage.set_conf_state(&conf_state).unwrap().wait().unwrap();
        assert_eq!(storage.snapshot(request, 0), want, "commit {commit}, request {request}");
    }
}

#[test]
fn storage_append() {
    let tests = [
        (
            vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5)],
            Some(vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5)]),
        ),
        (
            vec![new_entry(3, 3), new_entry(4, 6), new_entry(5, 6)],
            Some(vec![new_entry(3, 3), new_entry(4, 6), new_entry(5, 6)]),
        ),
        (
            vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5), new_entry(6, 5)],
            Some(vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5), new_entry(6, 5)]),
        ),
        // Overwriting compacted entries is refused (MemStorage panics).
        (vec![new_entry(2, 3), new_entry(3, 3), new_entry(4, 5)], None),
        // Truncate the existing entries and append.
        (vec![new_entry(4, 5)], Some(vec![new_entry(3, 3), new_entry(4, 5)])),
        // Direct append.
        (
            vec![new_entry(6, 6)],
            Some(vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5), new_entry(6, 6)]),
        ),
        // A gap after the last entry is refused (MemStorage panics).
        (vec![new_entry(8, 6)], None),
    ];
    for (at, (entries, want)) in tests.into_iter().enumerate() {
        let (dir, storage) = storage_with_3_4_5();
        let result = storage.append(&entries);
        match want {
            Some(want) => {
                result.unwrap().wait().unwrap();
                assert_eq!(all_entries(&storage), want, "#{at}");
                storage.wal().close().unwrap();
                let reopened = RaftStorage::open(dir.path(), Options::default()).unwrap();
                assert_eq!(all_entries(&reopened), want, "#{at} after reopen");
            }
            None => {
                assert!(result.is_err(), "#{at}");
                assert_eq!(all_entries(&storage), vec![new_entry(3, 3), new_entry(4, 4), new_entry(5, 5)]);
            }
        }
    }
}

#[test]
fn storage_apply_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RaftStorage::open(dir.path(), Options::default()).unwrap();
    storage.apply_snapshot(&new_snapshot(4, 4, vec![1, 2, 3])).unwrap().wait().unwrap();
    assert_eq!((storage.first_index(), storage.last_index(), storage.term(4)), (Ok(5), Ok(4), Ok(4)));
    let state = storage.initial_state().unwrap();
    assert_eq!((state.hard_state.commit, state.hard_state.term), (4, 4));
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_matches!(
        storage.apply_snapshot(&new_snapshot(3, 3, vec![1, 2, 3])),
        Err(raftwal::Error::StaleSnapshot { .. })
    );
}

#[test]
fn fresh_storage_answers_like_an_empty_mem_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RaftStorage::open(dir.path(), Options::default()).unwrap();
    assert_eq!((storage.first_index(), storage.last_index(), storage.term(0)), (Ok(1), Ok(0), Ok(0)));
    assert!(!storage.initial_state().unwrap().initialized());
    assert_eq!(storage.entries(1, 1, None, GetEntriesContext::empty(false)), Ok(vec![]));
}

#[test]
fn reopen_keeps_entries_hard_state_conf_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let conf_state = ConfState { voters: vec![1, 2, 3], learners: vec![4], ..Default::default() };
    let hard_state = HardState { term: 7, vote: 2, commit: 12, ..Default::default() };
    let entries: Vec<Entry> = (1..=20)
        .map(|index| {
            let mut entry = new_entry(index, 7);
            entry.data = format!("command {index}").into_bytes().into();
            entry
        })
        .collect();
    {
        let storage =
            RaftStorage::open_with_conf_state(dir.path(), Options::default(), conf_state.clone()).unwrap();
        storage.append(&entries).unwrap().wait().unwrap();
        storage.set_hard_state(&hard_state).unwrap().wait().unwrap();
        storage.compact(6).unwrap().expect("drops 1..=5").wait().unwrap();
        storage.wal().close().unwrap();
    }
    let storage = RaftStorage::open(dir.path(), Options::default()).unwrap();
    let state = storage.initial_state().unwrap();
    assert_eq!((state.hard_state, state.conf_state), (hard_state, conf_state));
    assert_eq!((storage.first_index(), storage.last_index(), storage.term(5)), (Ok(6), Ok(20), Ok(7)));
    assert_eq!(all_entries(&storage), entries[5..].to_vec());
}

#[test]
fn a_snapshot_whose_hard_state_and_conf_state_a_crash_lost_still_starts_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let old_conf = ConfState { voters: vec![1, 2, 3], ..Default::default() };
    let new_conf = ConfState { voters: vec![1, 2, 3, 4], ..Default::default() };
    {
        let storage = RaftStorage::open_with_conf_state(dir.path(), Options::default(), old_conf).unwrap();
        let entries: Vec<Entry> = (1..=10).map(|index| new_entry(index, 2)).collect();
        storage.append(&entries).unwrap().wait().unwrap();
        let hard_state = HardState { term: 2, vote: 1, commit: 10, ..Default::default() };
        storage.set_hard_state(&hard_state).unwrap().wait().unwrap();
        // `apply_snapshot` writes the snapshot, then the hard state, then the conf state; keep
        // only the first, as a crash between them can.
        let data = new_conf.write_to_bytes().unwrap();
        let meta = raftwal::SnapshotMeta { index: 50, term: 4, data };
        storage.wal().install_snapshot(meta).unwrap().wait().unwrap();
        storage.wal().close().unwrap();
    }
    let storage = RaftStorage::open(dir.path(), Options::default()).unwrap();
    let state = storage.initial_state().unwrap();
    assert_eq!((state.hard_state.term, state.hard_state.commit), (4, 50));
    assert_eq!(state.conf_state, new_conf);
    assert_eq!((storage.first_index(), storage.last_index()), (Ok(51), Ok(50)));
    let config = raft::Config { id: 1, ..Default::default() };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let node =
        raft::RawNode::new(&config, storage.clone(), &logger).expect("raft-rs accepts the recovered state");
    assert_eq!(node.raft.raft_log.committed, 50);

    // A conf state saved after the snapshot wins over the snapshot's.
    let later = ConfState { voters: vec![1, 2], ..Default::default() };
    storage.set_conf_state(&later).unwrap().wait().unwrap();
    assert_eq!(storage.initial_state().unwrap().conf_state, later);
}
