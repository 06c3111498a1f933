//! The one generator of random operations for the crash checks. The power-loss simulation draws
//! its choices from a seeded [`Rng`], the `crash_model` fuzz target from the fuzzer's bytes; both
//! submit them with [`submit`] and check the outcome against [`model`](super::model).

use std::convert::Infallible;
use std::fmt;

use arbitrary::Unstructured;

use super::model::{Op, State};
use crate::rng::Rng;
use crate::{Completion, Entry, Group, GroupOp, HardState, SnapshotMeta, Wal};

/// Where choices come from.
pub trait Source {
    type Error;
    /// A number in `low..=high`.
    ///
    /// # Errors
    /// When the source runs dry (a fuzzer's input); a seeded generator never does.
    fn in_range(&mut self, low: u64, high: u64) -> Result<u64, Self::Error>;

    /// True with probability `percent` / 100.
    ///
    /// # Errors
    /// As `in_range`.
    fn chance(&mut self, percent: u64) -> Result<bool, Self::Error> {
        Ok(self.in_range(0, 99)? < percent)
    }
}

impl Source for Rng {
    type Error = Infallible;

    fn in_range(&mut self, low: u64, high: u64) -> Result<u64, Infallible> {
        assert!(low <= high, "empty range {low}..={high}");
        Ok(match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        })
    }
}

impl Source for Unstructured<'_> {
    type Error = arbitrary::Error;

    fn in_range(&mut self, low: u64, high: u64) -> Result<u64, arbitrary::Error> {
        self.int_in_range(low..=high)
    }
}

/// An operation chosen for a `Wal`, before it is submitted.
#[derive(Clone, Debug)]
pub enum Choice {
    Append(Vec<Entry>),
    Truncate(u64),
    Purge(u64),
    HardState(HardState),
    Snapshot(SnapshotMeta),
    Metadata(Vec<u8>),
    Sync,
    CreateGroup(u64),
    RemoveGroup(u64),
    /// An operation on group `id` (not the default group).
    Group(u64, Box<Choice>),
    /// Appends to several groups (0: the default group) in one `Wal::submit`.
    Submit(Vec<(u64, Vec<Entry>)>),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Append(entries) => {
                let (first, last) = (entries[0].index, entries[entries.len() - 1].index);
                write!(f, "append {first}..={last} term {}", entries[0].term)
            }
            Choice::Truncate(from) => write!(f, "truncate {from}"),
            Choice::Purge(upto) => write!(f, "purge {upto}"),
            Choice::HardState(hard_state) => write!(f, "hard state {hard_state:?}"),
            Choice::Snapshot(meta) => write!(f, "snapshot {} term {}", meta.index, meta.term),
            Choice::Metadata(metadata) => write!(f, "metadata {} bytes", metadata.len()),
            Choice::Sync => f.write_str("sync"),
            Choice::CreateGroup(id) => write!(f, "create group {id}"),
            Choice::RemoveGroup(id) => write!(f, "remove group {id}"),
            Choice::Group(id, choice) => write!(f, "group {id}: {choice}"),
            Choice::Submit(appends) => {
                write!(f, "submit")?;
                for (id, entries) in appends {
                    let (first, last) = (entries[0].index, entries[entries.len() - 1].index);
                    write!(f, " [group {id}: {first}..={last}]")?;
                }
                Ok(())
            }
        }
    }
}

/// Chooses operations that the model can follow: appends that continue the log, truncations and
/// purges inside it, hard states, snapshots (keeping the log or not), metadata and syncs.
#[derive(Clone, Debug)]
pub struct Generator {
    /// The term of new entries; every truncation moves to a new one, as a new leader would.
    term: u64,
    /// Makes every hard state, snapshot and metadata distinct, so that no record leaves the
    /// state as it was and the prefix a recovered log matches is unambiguous.
    counter: u64,
}

/// The ids groups are created with: few, so that removed ids are created again.
const GROUP_IDS: u64 = 4;

impl Generator {
    /// A generator for a log recovered as `base`: its entries get a term above any there.
    pub fn new(base: &State) -> Generator {
        let groups = base.groups.values();
        let terms = std::iter::once(base)
            .chain(groups)
            .flat_map(|state| state.entries.values())
            .map(|entry| entry.term);
        Generator { term: terms.max().unwrap_or(0) + 1, counter: 0 }
    }

    /// The next operation for a log whose state is `state`: mostly on the default group, else
    /// on another group, creating or removing one, or appending to several at once.
    ///
    /// # Errors
    /// When `source` runs dry.
    pub fn next<S: Source>(&mut self, source: &mut S, state: &State) -> Result<Choice, S::Error> {
        let roll = source.in_range(0, 99)?;
        let live: Vec<u64> = state.groups.keys().copied().collect();
        if roll < 4 {
            let id = source.in_range(1, GROUP_IDS)?;
            return Ok(if state.groups.contains_key(&id) {
                Choice::RemoveGroup(id)
            } else {
                Choice::CreateGroup(id)
            });
        }
        if roll < 30 && !live.is_empty() {
            let id = live[source.in_range(0, live.len() as u64 - 1)? as usize];
            let choice = self.next_in_group(source, &state.groups[&id])?;
            return Ok(match choice {
                Choice::Sync => Choice::Sync,
                choice => Choice::Group(id, Box::new(choice)),
            });
        }
        if roll < 36 && !live.is_empty() {
            let mut appends = Vec::new();
            for (id, group) in
                std::iter::once((0, state)).chain(state.groups.iter().map(|(id, group)| (*id, group)))
            {
                if source.chance(60)? {
                    let start = match group.next {
                        Some(next) => next,
                        None => source.in_range(0, 2)?,
                    };
                    let Choice::Append(entries) = self.append(source, start)? else { unreachable!("append") };
                    appends.push((id, entries));
                }
            }
            if !appends.is_empty() {
                return Ok(Choice::Submit(appends));
            }
        }
        self.next_in_group(source, state)
    }

    /// The next operation for one group whose state is `state`.
    fn next_in_group<S: Source>(&mut self, source: &mut S, state: &State) -> Result<Choice, S::Error> {
        let Some(next) = state.next else {
            let start = source.in_range(0, 2)?;
            return self.append(source, start);
        };
        let low = state.first().unwrap_or(next);
        Ok(match source.in_range(0, 99)? {
            0..55 => return self.append(source, next),
            55..70 => {
                self.term += 1;
                Choice::Truncate(source.in_range(low, next)?)
            }
            70..78 if state.last().is_some() => {
                Choice::Purge(source.in_range(low, state.last().expect("checked"))?)
            }
            78..83 => Choice::Metadata(self.distinct_bytes(source, 120)?),
            83..88 => {
                self.counter += 1;
                let commit = source.in_range(0, next)?;
                Choice::HardState(HardState { term: self.term, vote: self.counter, commit })
            }
            88..95 => {
                let floor = state.purged.map_or(0, |purged| purged.index);
                let index = source.in_range(floor, next + 5)?;
                let keep = state.entries.get(&index).map(|entry| entry.term);
                let term = match keep {
                    Some(term) if source.chance(60)? => term,
                    _ => self.term,
                };
                Choice::Snapshot(SnapshotMeta { index, term, data: self.distinct_bytes(source, 56)? })
            }
            _ => Choice::Sync,
        })
    }

    fn append<S: Source>(&mut self, source: &mut S, start: u64) -> Result<Choice, S::Error> {
        let count = source.in_range(1, 3)?;
        let term = self.term;
        (start..start + count)
            .map(|index| {
                let len =
                    if source.chance(10)? { source.in_range(300, 1000)? } else { source.in_range(0, 120)? };
                let data = (0..len).map(|at| (index ^ term ^ at) as u8).collect();
                Ok(Entry { index, term, data })
            })
            .collect::<Result<Vec<Entry>, S::Error>>()
            .map(Choice::Append)
    }

    /// Eight bytes of the counter, then up to `pad_max` more.
    fn distinct_bytes<S: Source>(&mut self, source: &mut S, pad_max: u64) -> Result<Vec<u8>, S::Error> {
        self.counter += 1;
        let mut bytes = self.counter.to_le_bytes().to_vec();
        bytes.resize(8 + source.in_range(0, pad_max)? as usize, 0xab);
        Ok(bytes)
    }
}

/// Submits a choice; returns the records it wrote, in the model's terms, and its completion.
///
/// # Errors
/// The `Wal`'s.
pub fn submit(wal: &Wal, choice: Choice) -> crate::Result<(Vec<Op>, Option<Completion>)> {
    Ok(match choice {
        Choice::CreateGroup(id) => {
            wal.create_group(id)?;
            (vec![Op::CreateGroup(id)], None)
        }
        Choice::RemoveGroup(id) => (vec![Op::RemoveGroup(id)], Some(wal.remove_group(id)?)),
        Choice::Group(id, choice) => {
            let (ops, done) = submit_to(&wal.group(id)?, *choice)?;
            (ops.into_iter().map(|op| Op::Group(id, Box::new(op))).collect(), done)
        }
        Choice::Submit(appends) => {
            let groups =
                appends.iter().map(|(id, _)| wal.group(*id)).collect::<crate::Result<Vec<Group>>>()?;
            let ops: Vec<GroupOp<'_>> = groups
                .iter()
                .zip(&appends)
                .map(|(group, (_, entries))| GroupOp::Append(group, entries))
                .collect();
            let done = wal.submit(&ops)?;
            let records = appends
                .into_iter()
                .flat_map(|(id, entries)| {
                    entries.into_iter().map(move |entry| match id {
                        0 => Op::Entry(entry),
                        id => Op::Group(id, Box::new(Op::Entry(entry))),
                    })
                })
                .collect();
            (records, Some(done))
        }
        choice => submit_to(wal, choice)?,
    })
}

/// Submits a choice on one group.
fn submit_to(wal: &Group, choice: Choice) -> crate::Result<(Vec<Op>, Option<Completion>)> {
    Ok(match choice {
        Choice::Append(entries) => {
            let done = wal.append(&entries)?;
            (entries.into_iter().map(Op::Entry).collect(), Some(done))
        }
        Choice::Truncate(from) => {
            let writes = wal.next_index()?.is_some_and(|next| from < next);
            let done = wal.truncate(from)?;
            (if writes { vec![Op::Truncate(from)] } else { vec![] }, Some(done))
        }
        Choice::Purge(upto) => (vec![Op::Purge(upto)], Some(wal.purge(upto)?)),
        Choice::HardState(hard_state) => {
            (vec![Op::HardState(hard_state)], Some(wal.set_hard_state(hard_state)?))
        }
        Choice::Snapshot(meta) => {
            let done = wal.install_snapshot(meta.clone())?;
            (vec![Op::Snapshot(meta)], Some(done))
        }
        Choice::Metadata(metadata) => {
            let done = wal.set_metadata(metadata.clone())?;
            (vec![Op::Metadata(metadata)], Some(done))
        }
        Choice::Sync => {
            wal.sync()?;
            (vec![], None)
        }
        Choice::CreateGroup(_) | Choice::RemoveGroup(_) | Choice::Group(..) | Choice::Submit(_) => {
            unreachable!("log-wide choices go through `submit`")
        }
    })
}
