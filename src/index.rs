//! The in-memory map from log index to where the entry's record lies, and its term.
//!
//! Entries `[first, next)` are covered by spans, one per run of entries in one segment, each
//! holding a u32 offset per entry: 4 bytes an entry. Terms are kept as runs (Raft terms change
//! rarely), so a term lookup is a binary search over a short list.
//!
//! A span may be *missing*: entries the durable state says exist whose segment was deleted.
//! Recovery creates these from a checkpoint; they must be purged before the log is used.

use std::collections::VecDeque;

use crate::format::SegmentId;

/// Where an entry's record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: SegmentId,
    pub offset: u32,
}

#[derive(Debug)]
enum Span {
    Stored { segment: SegmentId, first: u64, offsets: Vec<u32> },
    Missing { first: u64, len: u64 },
}

impl Span {
    fn first(&self) -> u64 {
        match self {
            Span::Stored { first, .. } | Span::Missing { first, .. } => *first,
        }
    }

    fn len(&self) -> u64 {
        match self {
            Span::Stored { offsets, .. } => offsets.len() as u64,
            Span::Missing { len, .. } => *len,
        }
    }

    /// Keeps the first `keep` entries.
    fn keep_front(&mut self, keep: u64) {
        match self {
            Span::Stored { offsets, .. } => offsets.truncate(keep as usize),
            Span::Missing { len, .. } => *len = keep,
        }
    }

    /// The entries before `index` and those after it, as spans; `index` is in this span.
    fn split_around(self, index: u64) -> (Option<Span>, Option<Span>) {
        let before = index - self.first();
        let (left, right) = match self {
            Span::Stored { segment, first, mut offsets } => {
                let after = offsets.split_off(before as usize + 1);
                offsets.truncate(before as usize);
                (
                    Span::Stored { segment, first, offsets },
                    Span::Stored { segment, first: index + 1, offsets: after },
                )
            }
            Span::Missing { first, len } => (
                Span::Missing { first, len: before },
                Span::Missing { first: index + 1, len: len - before - 1 },
            ),
        };
        (Some(left).filter(|span| span.len() > 0), Some(right).filter(|span| span.len() > 0))
    }

    /// Drops the first `drop` entries.
    fn drop_front(&mut self, drop: u64) {
        match self {
            Span::Stored { first, offsets, .. } => {
                offsets.drain(..drop as usize);
                *first += drop;
            }
            Span::Missing { first, len } => {
                *first += drop;
                *len -= drop;
            }
        }
    }
}

/// The term of entries `[first, next run's first)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TermRun {
    first: u64,
    term: Option<u64>,
}

/// Entries `[first, next)` of the log: where each is stored and its term.
#[derive(Debug)]
pub struct Index {
    first: u64,
    next: u64,
    spans: VecDeque<Span>,
    terms: VecDeque<TermRun>,
}

impl Index {
    /// An empty index whose next entry is `next`.
    pub fn empty_at(next: u64) -> Index {
        Index { first: next, next, spans: VecDeque::new(), terms: VecDeque::new() }
    }

    pub fn first(&self) -> u64 {
        self.first
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn is_empty(&self) -> bool {
        self.first == self.next
    }

    pub fn contains(&self, index: u64) -> bool {
        (self.first..self.next).contains(&index)
    }

    /// Adds entry `next` stored at `location`.
    ///
    /// # Panics
    /// If `index` is not `next`: callers check contiguity first.
    pub fn push(&mut self, index: u64, term: u64, location: Location) {
        assert_eq!(index, self.next, "index push out of order");
        match self.spans.back_mut() {
            Some(Span::Stored { segment, offsets, .. }) if *segment == location.segment => {
                debug_assert!(offsets.last().is_none_or(|&last| last < location.offset));
                offsets.push(location.offset);
            }
            _ => self.spans.push_back(Span::Stored {
                segment: location.segment,
                first: index,
                offsets: vec![location.offset],
            }),
        }
        self.push_term(index, Some(term));
        self.next += 1;
    }

    /// Adds entries `[next, next + len)` whose records are lost.
    pub fn push_missing(&mut self, len: u64) {
        if len == 0 {
            return;
        }
        self.spans.push_back(Span::Missing { first: self.next, len });
        self.push_term(self.next, None);
        self.next += len;
    }

    fn push_term(&mut self, index: u64, term: Option<u64>) {
        if self.terms.back().is_none_or(|run| run.term != term) {
            self.terms.push_back(TermRun { first: index, term });
        }
    }

    /// Drops entries `[from, next)`.
    pub fn truncate(&mut self, from: u64) {
        let from = from.max(self.first);
        if from >= self.next {
            return;
        }
        while let Some(span) = self.spans.back_mut() {
            if span.first() >= from {
                self.spans.pop_back();
            } else {
                span.keep_front(from - span.first());
                break;
            }
        }
        while self.terms.back().is_some_and(|run| run.first >= from) {
            self.terms.pop_back();
        }
        self.next = from;
    }

    /// Drops entries `[first, upto]`; if that is all of them, the index is left empty with
    /// `upto + 1` as its next index.
    pub fn purge(&mut self, upto: u64) {
        if upto < self.first {
            return;
        }
        if upto + 1 >= self.next {
            *self = Index::empty_at(upto + 1);
            return;
        }
        let new_first = upto + 1;
        while let Some(span) = self.spans.front_mut() {
            if span.first() + span.len() <= new_first {
                self.spans.pop_front();
            } else {
                span.drop_front(new_first.saturating_sub(span.first()));
                break;
            }
        }
        while self.terms.len() > 1 && self.terms[1].first <= new_first {
            self.terms.pop_front();
        }
        if let Some(run) = self.terms.front_mut() {
            run.first = run.first.max(new_first);
        }
        self.first = new_first;
    }

    fn span_of(&self, index: u64) -> Option<&Span> {
        if !self.contains(index) {
            return None;
        }
        let at = self.spans.partition_point(|span| span.first() <= index);
        Some(&self.spans[at - 1])
    }

    /// Where entry `index` is stored; `None` if it is not in the index or its record is lost.
    pub fn locate(&self, index: u64) -> Option<Location> {
        match self.span_of(index)? {
            Span::Stored { segment, first, offsets } => {
                Some(Location { segment: *segment, offset: offsets[(index - first) as usize] })
            }
            Span::Missing { .. } => None,
        }
    }

    /// The term of entry `index`; `None` if it is not in the index or its record is lost.
    pub fn term(&self, index: u64) -> Option<u64> {
        if !self.contains(index) {
            return None;
        }
        let at = self.terms.partition_point(|run| run.first <= index);
        self.terms[at - 1].term
    }

    /// The entries whose records are lost, as an inclusive range.
    pub fn missing(&self) -> Option<(u64, u64)> {
        let mut missing = self.spans.iter().filter_map(|span| match span {
            Span::Missing { first, len } => Some((*first, first + len - 1)),
            Span::Stored { .. } => None,
        });
        let (first, mut last) = missing.next()?;
        for (_, span_last) in missing {
            last = span_last;
        }
        Some((first, last))
    }

    /// The oldest segment holding an entry of the index. Not always the first span's: relocated
    /// entries sit in a newer segment than the entries after them.
    pub fn oldest_segment(&self) -> Option<SegmentId> {
        self.spans
            .iter()
            .filter_map(|span| match span {
                Span::Stored { segment, .. } => Some(*segment),
                Span::Missing { .. } => None,
            })
            .min()
    }

    /// Whether the newest entry's record is stored (not missing).
    pub fn ends_stored(&self) -> bool {
        matches!(self.spans.back(), Some(Span::Stored { .. }))
    }

    /// How many entries are stored in segments older than `below`: `stored_below`'s length,
    /// counted without walking the entries.
    pub fn count_below(&self, below: SegmentId) -> u64 {
        self.spans
            .iter()
            .map(|span| match span {
                Span::Stored { segment, offsets, .. } if *segment < below => offsets.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// The entries stored in segments older than `below`, in index order, with where they are.
    pub fn stored_below(&self, below: SegmentId) -> Vec<(u64, Location)> {
        let mut found = Vec::new();
        for span in &self.spans {
            if let Span::Stored { segment, first, offsets } = span
                && *segment < below
            {
                let located = offsets.iter().map(|&offset| Location { segment: *segment, offset });
                found.extend((*first..).zip(located));
            }
        }
        found
    }

    /// Moves entry `index`, of `term`, to `location`, where a copy of its record was written.
    /// The entry's span is split around it; the copy joins the span before it when that span
    /// ends, in the same segment, with the copy of the entry before. During replay the entry may
    /// be missing (its old segment is deleted): the copy fills it in, and gives it its term.
    ///
    /// # Panics
    /// Unless the index holds entry `index` and, if its term is known, with `term`: callers
    /// check first.
    pub fn relocate(&mut self, index: u64, term: u64, location: Location) {
        assert!(self.contains(index), "entry {index} is not in the index");
        let known = self.term(index);
        assert!(known.is_none_or(|known| known == term), "entry {index} relocated with another term");
        let mut at = self.spans.partition_point(|span| span.first() <= index) - 1;
        let span = self.spans.remove(at).expect("the span holding the entry");
        let (left, right) = span.split_around(index);
        if let Some(left) = left {
            self.spans.insert(at, left);
            at += 1;
        }
        match at.checked_sub(1).map(|before| &mut self.spans[before]) {
            Some(Span::Stored { segment, offsets, .. })
                if *segment == location.segment
                    && offsets.last().is_some_and(|&last| last < location.offset) =>
            {
                offsets.push(location.offset);
            }
            _ => {
                self.spans.insert(
                    at,
                    Span::Stored { segment: location.segment, first: index, offsets: vec![location.offset] },
                );
                at += 1;
            }
        }
        if let Some(right) = right {
            self.spans.insert(at, right);
        }
        if known.is_none() {
            self.set_term(index, term);
        }
    }

    /// Gives entry `index` a term, splitting the run that holds it.
    fn set_term(&mut self, index: u64, term: u64) {
        let at = self.terms.partition_point(|run| run.first <= index) - 1;
        let run = self.terms[at];
        let run_end = self.terms.get(at + 1).map_or(self.next, |next| next.first);
        let mut pieces = Vec::with_capacity(3);
        if run.first < index {
            pieces.push(TermRun { first: run.first, term: run.term });
        }
        pieces.push(TermRun { first: index, term: Some(term) });
        if index + 1 < run_end {
            pieces.push(TermRun { first: index + 1, term: run.term });
        }
        self.terms.remove(at);
        for (offset, piece) in pieces.into_iter().enumerate() {
            self.terms.insert(at + offset, piece);
        }
        // Merge runs of one term that now touch.
        let mut merged: VecDeque<TermRun> = VecDeque::with_capacity(self.terms.len());
        for run in self.terms.drain(..) {
            if merged.back().is_none_or(|last| last.term != run.term) {
                merged.push_back(run);
            }
        }
        self.terms = merged;
    }

    /// Heap bytes the index holds, capacity included.
    pub fn heap_bytes(&self) -> usize {
        let offsets: usize = self
            .spans
            .iter()
            .map(|span| match span {
                Span::Stored { offsets, .. } => offsets.capacity() * size_of::<u32>(),
                Span::Missing { .. } => 0,
            })
            .sum();
        offsets + self.spans.capacity() * size_of::<Span>() + self.terms.capacity() * size_of::<TermRun>()
    }

    /// Gives back spare capacity of spans that will not grow again.
    pub fn shrink_sealed(&mut self, active: SegmentId) {
        for span in &mut self.spans {
            if let Span::Stored { segment, offsets, .. } = span
                && *segment != active
            {
                offsets.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u32) -> Location {
        Location { segment: SegmentId(segment), offset }
    }

    /// Index of entries 1..=30: three segments of ten, terms 1 (1..=12), 2 (13..=25), 3.
    fn sample() -> Index {
        let mut index = Index::empty_at(1);
        for i in 1..=30u64 {
            let term = match i {
                ..=12 => 1,
                13..=25 => 2,
                _ => 3,
            };
            index.push(i, term, at((i - 1) / 10, ((i as u32 - 1) % 10) * 64));
        }
        index
    }

    fn check_against_model(index: &Index, first: u64, next: u64) {
        assert_eq!((index.first(), index.next()), (first, next));
        for i in 0..40 {
            let expected = (first..next).contains(&i).then(|| {
                let term = match i {
                    ..=12 => 1,
                    13..=25 => 2,
                    _ => 3,
                };
                (term, at((i - 1) / 10, ((i as u32 - 1) % 10) * 64))
            });
            let got = index.term(i).zip(index.locate(i));
            assert_eq!(got, expected, "entry {i}");
        }
    }

    #[test]
    fn push_and_locate() {
        let index = sample();
        check_against_model(&index, 1, 31);
        assert_eq!(index.oldest_segment(), Some(SegmentId(0)));
        assert_eq!(index.missing(), None);
    }

    #[test]
    fn truncate_at_every_point() {
        for from in 0..=32 {
            let mut index = sample();
            index.truncate(from);
            check_against_model(&index, 1, from.clamp(1, 31));
        }
    }

    #[test]
    fn purge_at_every_point() {
        for upto in 0..=32 {
            let mut index = sample();
            index.purge(upto);
            let first = (upto + 1).max(1);
            check_against_model(&index, first, 31.max(first));
            if upto < 30 {
                assert_eq!(index.oldest_segment(), Some(SegmentId((first - 1) / 10)));
            } else {
                assert!(index.is_empty());
                assert_eq!(index.oldest_segment(), None);
            }
        }
    }

    #[test]
    fn truncate_then_push_again() {
        let mut index = sample();
        index.truncate(15);
        index.push(15, 9, at(7, 8));
        assert_eq!(index.term(14), Some(2));
        assert_eq!(index.term(15), Some(9));
        assert_eq!(index.locate(15), Some(at(7, 8)));
        assert_eq!(index.next(), 16);
    }

    #[test]
    fn missing_entries_are_reported_until_purged() {
        let mut index = Index::empty_at(5);
        index.push_missing(10);
        index.push(15, 4, at(3, 64));
        assert_eq!(index.missing(), Some((5, 14)));
        assert_eq!(index.locate(7), None);
        assert_eq!(index.term(7), None);
        index.purge(10);
        assert_eq!(index.missing(), Some((11, 14)));
        index.purge(14);
        assert_eq!(index.missing(), None);
        assert_eq!(index.term(15), Some(4));
    }

    #[test]
    fn relocating_in_index_order_moves_each_entry() {
        let mut index = sample();
        index.purge(4);
        // Entries 5..=10 are in segment 0; move them to segment 5, then those of segment 1.
        let old = index.stored_below(SegmentId(1));
        assert_eq!(old.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (5..=10).collect::<Vec<_>>());
        assert_eq!(index.count_below(SegmentId(1)), 6);
        assert_eq!(index.count_below(SegmentId(3)), 26);
        for (n, (i, _)) in old.iter().enumerate() {
            index.relocate(*i, 1, at(5, 64 * n as u32));
        }
        assert_eq!(index.oldest_segment(), Some(SegmentId(1)));
        assert_eq!(index.locate(7), Some(at(5, 128)));
        assert_eq!(index.term(7), Some(1));
        for i in 11..=20 {
            index.relocate(i, if i <= 12 { 1 } else { 2 }, at(5, 64 * (i as u32 - 5)));
        }
        assert_eq!(index.oldest_segment(), Some(SegmentId(2)));
        assert_eq!(index.stored_below(SegmentId(2)), Vec::new());
        assert_eq!(index.locate(20), Some(at(5, 64 * 15)));
        assert_eq!(index.locate(21), Some(at(2, 0)));
        index.truncate(8);
        assert_eq!(index.oldest_segment(), Some(SegmentId(5)));
        index.push(8, 4, at(6, 0));
        assert_eq!(index.locate(8), Some(at(6, 0)));
    }

    #[test]
    fn relocating_missing_entries_restores_them_and_their_terms() {
        let mut index = Index::empty_at(5);
        index.push_missing(4);
        index.push(9, 3, at(2, 0));
        // Out of order, as replay meets the copies of entries whose old segments are gone.
        index.relocate(7, 3, at(7, 0));
        index.relocate(5, 2, at(8, 0));
        index.relocate(6, 3, at(8, 64));
        assert_eq!(index.locate(6), Some(at(8, 64)));
        assert_eq!(index.locate(7), Some(at(7, 0)));
        assert_eq!(
            (index.term(5), index.term(6), index.term(8), index.term(9)),
            (Some(2), Some(3), None, Some(3))
        );
        assert_eq!(index.missing(), Some((8, 8)));
        index.relocate(8, 3, at(8, 192));
        assert_eq!(index.missing(), None);
        assert_eq!(index.oldest_segment(), Some(SegmentId(2)));
        assert_eq!(index.locate(8), Some(at(8, 192)));
        assert_eq!(index.terms.len(), 2, "runs of one term merge: {:?}", index.terms);
    }

    #[test]
    fn memory_per_entry() {
        let mut index = Index::empty_at(0);
        for i in 0..1_000_000u64 {
            index.push(i, i / 1000, at(i / 100_000, (i % 100_000) as u32 * 8));
        }
        index.shrink_sealed(SegmentId(9));
        let per_entry = index.heap_bytes() as f64 / 1e6;
        eprintln!("index: {per_entry:.2} bytes per entry");
        assert!(per_entry <= 16.0, "{per_entry} bytes per entry");
    }
}
