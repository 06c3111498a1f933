//! Helpers shared by the integration tests: deterministic entries, small-segment options, and a
//! reference model of the log that a `Wal` is checked against.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::path::Path;

use raftwal::{Entry, Error, HardState, Options, SnapshotMeta, Wal};

/// Entry `index` of `term`, with a payload whose length and bytes depend on both.
pub fn entry(index: u64, term: u64) -> Entry {
    let len = ((index * 37 + term * 11) % 300 + 1) as usize;
    let data = (0..len).map(|at| (index as usize * 31 + term as usize * 7 + at) as u8).collect();
    Entry { index, term, data }
}

pub fn entries(indexes: std::ops::Range<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

/// Segments of 8 KiB: a few dozen small entries each, so tests cross many segment boundaries.
pub fn small_segments() -> Options {
    Options { segment_bytes: 8192, ..Options::default() }
}

pub fn open(dir: &Path, options: &Options) -> Wal {
    Wal::open(dir, options.clone()).expect("open")
}

pub fn reopen(wal: Wal, dir: &Path, options: &Options) -> Wal {
    wal.close().expect("close");
    drop(wal);
    open(dir, options)
}

pub const APPEND_PIECE: usize = 10;

/// What the log should hold, kept by the test beside the `Wal`.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub entries: BTreeMap<u64, Entry>,
    /// `(index, term)` of the last compacted entry.
    pub purged: Option<(u64, u64)>,
    pub next: Option<u64>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMeta>,
}

impl Model {
    /// Appends in pieces of `APPEND_PIECE` entries, so that no single append outgrows the
    /// small segments the tests use.
    pub fn append(&mut self, wal: &Wal, entries: &[Entry]) {
        for piece in entries.chunks(APPEND_PIECE) {
            wal.append(piece).expect("append").wait().expect("durable");
        }
        for entry in entries {
            self.entries.insert(entry.index, entry.clone());
        }
        self.next = Some(entries.last().unwrap().index + 1);
    }

    pub fn truncate(&mut self, wal: &Wal, from: u64) {
        wal.truncate(from).expect("truncate").wait().expect("durable");
        self.entries.retain(|&index, _| index < from);
        // `truncate` accepts only `from` at or after the first index.
        if let Some(next) = self.next.as_mut() {
            *next = (*next).min(from);
        }
    }

    pub fn purge(&mut self, wal: &Wal, upto: u64) {
        wal.purge(upto).expect("purge").wait().expect("durable");
        if let Some(entry) = self.entries.get(&upto) {
            self.purged = Some((upto, entry.term));
        }
        self.entries.retain(|&index, _| index > upto);
    }

    pub fn install_snapshot(&mut self, wal: &Wal, meta: SnapshotMeta) {
        wal.install_snapshot(meta.clone()).expect("install_snapshot").wait().expect("durable");
        let keep = self.entries.get(&meta.index).is_some_and(|entry| entry.term == meta.term);
        if keep {
            self.entries.retain(|&index, _| index > meta.index);
        } else {
            self.entries.clear();
            self.next = Some(meta.index + 1);
        }
        self.purged = Some((meta.index, meta.term));
        self.snapshot = Some(meta);
    }

    pub fn set_hard_state(&mut self, wal: &Wal, hard_state: HardState) {
        wal.set_hard_state(hard_state).expect("set_hard_state").wait().expect("durable");
        self.hard_state = Some(hard_state);
    }

    /// Asserts that `wal` holds exactly what the model holds, entry by entry.
    pub fn check(&self, wal: &Wal) {
        let first = self.entries.keys().next().copied();
        let last = self.entries.keys().next_back().copied();
        assert_eq!(wal.first_index(), first, "first index");
        assert_eq!(wal.last_index(), last, "last index");
        assert_eq!(wal.next_index(), self.next, "next index");
        assert_eq!(wal.hard_state(), self.hard_state, "hard state");
        assert_eq!(wal.snapshot_meta(), self.snapshot, "snapshot meta");
        assert_eq!(wal.purged(), self.purged, "purged");
        if let (Some(first), Some(last)) = (first, last) {
            let read = wal.entries(first..last + 1, u64::MAX).expect("read all");
            let expected: Vec<Entry> = self.entries.values().cloned().collect();
            assert_eq!(read.len(), expected.len(), "entry count");
            for (got, want) in read.iter().zip(&expected) {
                assert_eq!(got, want, "entry {}", want.index);
                assert_eq!(wal.term(want.index).unwrap(), want.term);
            }
            assert!(matches!(wal.entry(last + 1), Err(Error::Unavailable { .. })));
            if first > 0 {
                assert!(matches!(wal.entry(first - 1), Err(Error::Compacted { .. } | Error::Unavailable { .. })));
            }
        }
        if let Some((index, term)) = self.purged {
            assert_eq!(wal.term(index).unwrap(), term, "term of the purge point");
        }
    }
}
