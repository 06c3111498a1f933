//! The logical state of one group's log: its entries' bounds and index, the purge point, the hard state
//! and the snapshot meta. Live operations and recovery replay both change it through the same
//! `check_*` and `apply_*` pairs, so a replayed log ends exactly where the live one was.

use crate::error::{Error, Result};
use crate::format::LogCheckpoint;
use crate::index::{Index, Location};
use crate::value::{HardState, INDEX_MAX, LogId, SnapshotMeta};

fn check_index(index: u64) -> Result<()> {
    if index > INDEX_MAX {
        return Err(Error::IndexTooLarge { index, max: INDEX_MAX });
    }
    Ok(())
}

/// Checks that entries `first..=last` may follow a log whose next index is `expected` (`None`:
/// any): the one rule of every append, alone, batched or replayed.
pub fn check_continues(expected: Option<u64>, first: u64, last: u64) -> Result<()> {
    check_index(last)?;
    match expected {
        Some(expected) if expected != first => Err(Error::NotContiguous { expected, got: first }),
        _ => Ok(()),
    }
}

#[derive(Debug)]
pub struct LogState {
    pub index: Index,
    /// Set once the log has held an entry, a purge or a snapshot: from then on the next entry's
    /// index is fixed. A fresh log accepts any first index (openraft starts at 0, raft-rs at 1).
    pub anchored: bool,
    /// The last compacted entry (index, term), by purge or snapshot.
    pub purged: Option<LogId>,
    pub hard_state: Option<HardState>,
    /// Boxed, as the metadata: most groups have neither, and an idle group must stay small.
    pub snapshot: Option<Box<SnapshotMeta>>,
    /// The caller's opaque metadata, last saved by `Group::set_metadata`.
    pub metadata: Option<Box<[u8]>>,
}

impl Default for LogState {
    fn default() -> Self {
        LogState {
            index: Index::empty_at(0),
            anchored: false,
            purged: None,
            hard_state: None,
            snapshot: None,
            metadata: None,
        }
    }
}

impl LogState {
    /// The index the next appended entry must have; `None` while any index is accepted.
    pub fn next_index(&self) -> Option<u64> {
        self.anchored.then(|| self.index.next())
    }

    /// Checks that entries `first..=last` may be appended.
    pub fn check_append(&self, first: u64, last: u64) -> Result<()> {
        check_continues(self.next_index(), first, last)
    }

    pub fn apply_entry(&mut self, index: u64, term: u64, location: Location) {
        if !self.anchored {
            self.index = Index::empty_at(index);
            self.anchored = true;
        }
        self.index.push(index, term, location);
    }

    /// Truncating at or after the next index drops nothing and is allowed.
    pub fn check_truncate(&self, from: u64) -> Result<()> {
        let first = self.index.first();
        if self.anchored && from < first {
            return Err(Error::Compacted { index: from, first });
        }
        Ok(())
    }

    pub fn apply_truncate(&mut self, from: u64) {
        self.index.truncate(from);
    }

    /// Returns the term of entry `upto` if purging there drops anything, `None` if it is a no-op.
    pub fn check_purge(&self, upto: u64) -> Result<Option<u64>> {
        let next = self.index.next();
        if !self.anchored || upto >= next {
            return Err(Error::Unavailable { index: upto, next });
        }
        if upto < self.index.first() {
            return Ok(None);
        }
        // A purge point inside a missing span only exists during replay, which takes the term
        // from the record instead.
        Ok(self.index.term(upto))
    }

    pub fn apply_purge(&mut self, upto: u64, term: u64) {
        self.index.purge(upto);
        self.purged = Some(LogId { index: upto, term });
        self.anchored = true;
    }

    pub fn check_snapshot(&self, meta: &SnapshotMeta) -> Result<()> {
        check_index(meta.index)?;
        match self.purged {
            Some(LogId { index: compacted, .. }) if meta.index < compacted => {
                Err(Error::StaleSnapshot { index: meta.index, compacted })
            }
            _ => Ok(()),
        }
    }

    /// Raft's InstallSnapshot rule: if the log holds the snapshot's last entry with the same
    /// term, entries after it stay; otherwise the whole log is discarded.
    pub fn snapshot_keeps_log(&self, meta: &SnapshotMeta) -> bool {
        self.term_of(meta.index) == Some(meta.term)
    }

    /// The term of entry `index` if the log holds it or it is the last compacted entry.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        match self.purged {
            Some(LogId { index: purged, term }) if purged == index => Some(term),
            _ => self.index.term(index),
        }
    }

    /// Applies a snapshot, keeping the entries after it if `keep_log` (decided by
    /// `snapshot_keeps_log` when the snapshot was installed).
    pub fn apply_snapshot(&mut self, meta: SnapshotMeta, keep_log: bool) {
        if keep_log {
            self.index.purge(meta.index);
        } else {
            self.index = Index::empty_at(meta.index + 1);
        }
        self.purged = Some(LogId { index: meta.index, term: meta.term });
        self.anchored = true;
        self.snapshot = Some(Box::new(meta));
    }

    /// The term of entry `index`, also answering for the last compacted entry.
    pub fn term(&self, index: u64) -> Result<u64> {
        if let Some(term) = self.index.term(index) {
            return Ok(term);
        }
        match self.purged {
            Some(LogId { index: purged, term }) if purged == index => Ok(term),
            _ => Err(self.out_of_range(index)),
        }
    }

    /// The error for an index the log does not hold.
    pub fn out_of_range(&self, index: u64) -> Error {
        let first = self.index.first();
        if index < first && self.anchored {
            Error::Compacted { index, first }
        } else {
            Error::Unavailable { index, next: self.index.next() }
        }
    }

    pub fn checkpoint(&self) -> LogCheckpoint<'_> {
        LogCheckpoint {
            first: self.index.first(),
            next: self.index.next(),
            anchored: self.anchored,
            purged: self.purged,
            hard_state: self.hard_state,
            snapshot: self
                .snapshot
                .as_ref()
                .map(|meta| (LogId { index: meta.index, term: meta.term }, &meta.data[..])),
            metadata: self.metadata.as_deref(),
        }
    }

    /// The state a checkpoint describes, when no older segment survives: its entries are
    /// missing until a later purge drops them.
    pub fn from_checkpoint(checkpoint: LogCheckpoint<'_>) -> LogState {
        let mut index = Index::empty_at(checkpoint.first);
        index.push_missing(checkpoint.next.saturating_sub(checkpoint.first));
        LogState {
            index,
            anchored: checkpoint.anchored,
            purged: checkpoint.purged,
            hard_state: checkpoint.hard_state,
            snapshot: checkpoint.snapshot.map(|(last, data)| {
                Box::new(SnapshotMeta { index: last.index, term: last.term, data: data.to_vec() })
            }),
            metadata: checkpoint.metadata.map(Box::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SegmentId;

    fn with_entries(first: u64, next: u64, term: u64) -> LogState {
        let mut state = LogState::default();
        for i in first..next {
            state.apply_entry(i, term, Location { segment: SegmentId(1), offset: (i * 64) as u32 });
        }
        state
    }

    #[test]
    fn fresh_log_accepts_any_first_index_then_only_the_next() {
        let state = LogState::default();
        assert!(state.check_append(0, 0).is_ok());
        assert!(state.check_append(77, 80).is_ok());
        assert!(matches!(state.check_append(u64::MAX, u64::MAX), Err(Error::IndexTooLarge { .. })));
        let state = with_entries(5, 8, 1);
        assert!(state.check_append(8, 8).is_ok());
        assert!(matches!(state.check_append(9, 9), Err(Error::NotContiguous { expected: 8, got: 9 })));
        assert!(matches!(state.check_append(4, 4), Err(Error::NotContiguous { .. })));
    }

    #[test]
    fn purge_bounds() {
        let mut state = with_entries(1, 11, 2);
        assert!(matches!(state.check_purge(11), Err(Error::Unavailable { .. })));
        assert_eq!(state.check_purge(0).unwrap(), None);
        assert_eq!(state.check_purge(4).unwrap(), Some(2));
        state.apply_purge(4, 2);
        assert_eq!(state.term(4).unwrap(), 2);
        assert!(matches!(state.term(3), Err(Error::Compacted { index: 3, first: 5 })));
        assert!(matches!(state.check_truncate(4), Err(Error::Compacted { .. })));
        state.apply_purge(10, 2);
        assert!(state.index.is_empty());
        assert_eq!(state.next_index(), Some(11));
    }

    #[test]
    fn snapshot_keeps_a_matching_suffix_and_discards_otherwise() {
        let install = |state: &mut LogState, meta: SnapshotMeta| {
            let keep = state.snapshot_keeps_log(&meta);
            state.apply_snapshot(meta, keep);
        };
        let mut state = with_entries(1, 11, 3);
        install(&mut state, SnapshotMeta { index: 6, term: 3, data: vec![] });
        assert_eq!((state.index.first(), state.index.next()), (7, 11));

        let mut state = with_entries(1, 11, 3);
        install(&mut state, SnapshotMeta { index: 6, term: 4, data: vec![] });
        assert_eq!((state.index.first(), state.index.next()), (7, 7));

        let mut state = with_entries(1, 4, 3);
        install(&mut state, SnapshotMeta { index: 20, term: 5, data: vec![] });
        assert_eq!(state.next_index(), Some(21));
        assert_eq!(state.term(20).unwrap(), 5);
        assert!(matches!(
            state.check_snapshot(&SnapshotMeta { index: 19, term: 5, data: vec![] }),
            Err(Error::StaleSnapshot { index: 19, compacted: 20 })
        ));
    }

    #[test]
    fn checkpoint_roundtrip_marks_entries_missing() {
        let mut state = with_entries(3, 9, 1);
        state.apply_purge(4, 1);
        state.hard_state = Some(HardState { term: 1, vote: 2, commit: 6 });
        let restored = LogState::from_checkpoint(state.checkpoint());
        assert_eq!(restored.checkpoint(), state.checkpoint());
        assert_eq!(restored.index.missing(), Some((5, 8)));
    }
}
