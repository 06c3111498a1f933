//! A reference model of the log for crash checking: what each record does, the state after any
//! prefix of the submitted records, and which prefixes a recovered `Wal` can match.

use std::collections::BTreeMap;

use crate::{Entry, Error, Group, HardState, LogId, SnapshotMeta, Wal};

/// One record's worth of change, in submission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Entry(Entry),
    Truncate(u64),
    Purge(u64),
    HardState(HardState),
    Snapshot(SnapshotMeta),
    Metadata(Vec<u8>),
    /// Creates group `id`, empty.
    CreateGroup(u64),
    /// Removes group `id` with everything it holds.
    RemoveGroup(u64),
    /// One record of group `id` (not the default group, whose records are the other ops).
    Group(u64, Box<Op>),
}

/// The log as the model sees it: the default group's state, and the other groups'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub entries: BTreeMap<u64, Entry>,
    pub next: Option<u64>,
    pub purged: Option<LogId>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMeta>,
    pub metadata: Option<Vec<u8>>,
    /// The groups other than the default one, by id.
    pub groups: BTreeMap<u64, State>,
}

impl State {
    /// Applies one record, with the `Wal`'s rules.
    ///
    /// # Panics
    /// On a purge of an entry the state does not hold; the `Wal` writes no such record.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Entry(entry) => {
                self.entries.insert(entry.index, entry.clone());
                self.next = Some(entry.index + 1);
            }
            Op::Truncate(from) => {
                self.entries.retain(|&index, _| index < *from);
                self.next = self.next.map(|next| next.min(*from));
            }
            Op::Purge(upto) => {
                let term = self.entries[upto].term;
                self.entries.retain(|&index, _| index > *upto);
                self.purged = Some(LogId { index: *upto, term });
            }
            Op::HardState(hard_state) => self.hard_state = Some(*hard_state),
            Op::Snapshot(meta) => {
                let term = self.entries.get(&meta.index).map(|entry| entry.term);
                let term = term
                    .or(self.purged.filter(|purged| purged.index == meta.index).map(|purged| purged.term));
                if term == Some(meta.term) {
                    self.entries.retain(|&index, _| index > meta.index);
                } else {
                    self.entries.clear();
                    self.next = Some(meta.index + 1);
                }
                self.purged = Some(LogId { index: meta.index, term: meta.term });
                self.snapshot = Some(meta.clone());
            }
            Op::Metadata(metadata) => self.metadata = Some(metadata.clone()),
            Op::CreateGroup(id) => {
                assert!(self.groups.insert(*id, State::default()).is_none(), "group {id} exists");
            }
            Op::RemoveGroup(id) => {
                self.groups.remove(id).expect("removed groups exist");
            }
            Op::Group(id, op) => self.groups.get_mut(id).expect("group ops go to live groups").apply(op),
        }
    }

    pub fn first(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }

    pub fn last(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    /// What `wal` holds now, all groups.
    ///
    /// # Errors
    /// The `Wal`'s read errors.
    pub fn read(wal: &Wal) -> Result<State, Error> {
        let mut state = State::read_group(wal)?;
        for id in wal.groups()?.into_iter().filter(|&id| id != 0) {
            state.groups.insert(id, State::read_group(&wal.group(id)?)?);
        }
        Ok(state)
    }

    /// What one group holds now.
    ///
    /// # Errors
    /// The `Wal`'s read errors.
    pub fn read_group(wal: &Group) -> Result<State, Error> {
        let entries = match (wal.first_index()?, wal.last_index()?) {
            (Some(first), Some(last)) => wal
                .entries(first..last + 1, u64::MAX)?
                .into_iter()
                .map(|entry| (entry.index, entry))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(State {
            entries,
            next: wal.next_index()?,
            purged: wal.purged()?,
            hard_state: wal.hard_state()?,
            snapshot: wal.snapshot_meta()?,
            metadata: wal.metadata()?,
            groups: BTreeMap::new(),
        })
    }
}

/// The records submitted since a verified state, and how many of them are acknowledged.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub base: State,
    ops: Vec<Op>,
    /// Acknowledged records: always a prefix, since completions resolve in order.
    pub acked: usize,
    /// `base` with every submitted record applied.
    current: State,
}

impl History {
    pub fn new(base: State) -> History {
        History { current: base.clone(), base, ops: Vec::new(), acked: 0 }
    }

    /// Records submitted records, in order.
    pub fn submit(&mut self, ops: impl IntoIterator<Item = Op>) {
        for op in ops {
            self.current.apply(&op);
            self.ops.push(op);
        }
    }

    /// The records submitted so far.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The state with every submitted record applied: what the live `Wal` must show.
    pub fn current(&self) -> &State {
        &self.current
    }

    pub fn state_after(&self, records: usize) -> State {
        let mut state = self.base.clone();
        self.ops[..records].iter().for_each(|op| state.apply(op));
        state
    }

    /// The prefixes, from the acknowledged one up, that `state` equals. A recovered log must
    /// match at least one: it holds every acknowledged record and nothing never submitted.
    pub fn matching_prefixes(&self, state: &State) -> Vec<usize> {
        let mut after = self.state_after(self.acked);
        let mut matching = Vec::new();
        for records in self.acked..=self.ops.len() {
            if after == *state {
                matching.push(records);
            }
            if let Some(op) = self.ops.get(records) {
                after.apply(op);
            }
        }
        matching
    }
}
