//! Every operation `Wal::submit` takes has the same checks and the same outcome whether it is
//! called alone (`Group::append`, `set_hard_state`, `set_metadata`) or batched: a batch succeeds
//! exactly when its operations, called alone one after another, all would, fails with the error
//! the first failing one gives, and leaves the log as they leave it. Random batches near every
//! limit (the index limit, the checkpoint's bound in small segments, contiguity) on two logs.

use std::sync::Arc;

use raftwal::sim::model::State;
use raftwal::sim::{Rng, SimFs};
use raftwal::{Entry, Group, GroupOp, HardState, Options, Wal};

/// One operation, owning its data, on the group at `group` in the test's list.
#[derive(Clone, Debug)]
enum Planned {
    Append(usize, Vec<Entry>),
    HardState(usize, HardState),
    Metadata(usize, Vec<u8>),
}

impl Planned {
    fn as_op<'a>(&'a self, groups: &'a [Group]) -> GroupOp<'a> {
        match self {
            Planned::Append(at, entries) => GroupOp::Append(&groups[*at], entries),
            Planned::HardState(at, hard_state) => GroupOp::HardState(&groups[*at], *hard_state),
            Planned::Metadata(at, metadata) => GroupOp::Metadata(&groups[*at], metadata),
        }
    }

    fn alone(&self, groups: &[Group]) -> raftwal::Result<()> {
        match self {
            Planned::Append(at, entries) => groups[*at].append(entries).map(drop),
            Planned::HardState(at, hard_state) => groups[*at].set_hard_state(*hard_state).map(drop),
            Planned::Metadata(at, metadata) => groups[*at].set_metadata(metadata.clone()).map(drop),
        }
    }
}

/// A number that is small, large, or the largest of its kind.
fn number(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.below(100),
        1 => rng.next_u64() >> rng.below(64),
        2 => u64::MAX - rng.below(3),
        _ => rng.next_u64(),
    }
}

fn plan(rng: &mut Rng, next: &mut [Option<u64>], groups: usize) -> Planned {
    let at = rng.below(groups as u64) as usize;
    match rng.below(10) {
        0..6 => {
            let count = 1 + rng.below(4);
            let first = match rng.below(10) {
                0 => u64::MAX - rng.below(5),
                1 => next[at].map_or(7, |next| next.saturating_add(1)),
                _ => next[at].unwrap_or(1),
            };
            let entries: Vec<Entry> = (0..count)
                .map_while(|offset| first.checked_add(offset))
                .map(|index| Entry { index, term: 1, data: vec![index as u8; rng.below(300) as usize] })
                .collect();
            if let Some(last) = entries.last() {
                next[at] = last.index.checked_add(1);
            }
            Planned::Append(at, entries)
        }
        6..8 => {
            Planned::HardState(at, HardState { term: number(rng), vote: number(rng), commit: number(rng) })
        }
        _ => {
            let len = [0, 50, 700, 1500, 2100][rng.below(5) as usize];
            Planned::Metadata(at, vec![rng.below(256) as u8; len])
        }
    }
}

fn open(seed: u64) -> (Wal, Vec<Group>) {
    let fs = SimFs::new(seed, 512);
    let options = Options { segment_bytes: 8192, ..Options::default() };
    let wal = Wal::open_with_fs(Arc::new(fs), "/wal", options).unwrap();
    let mut groups = vec![Group::clone(&wal)];
    groups.extend((1..=3).map(|id| wal.create_group(id).unwrap()));
    (wal, groups)
}

#[test]
fn a_batch_does_what_its_operations_do_alone() {
    let (mut batches_ok, mut batches_refused) = (0, 0);
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let (alone_wal, alone) = open(seed);
        let (batched_wal, batched) = open(seed);
        let mut next = vec![None; alone.len()];
        for round in 0..60 {
            let ops: Vec<Planned> =
                (0..1 + rng.below(4)).map(|_| plan(&mut rng, &mut next, alone.len())).collect();
            let applied_alone = ops.iter().map(|op| op.alone(&alone)).position(|result| result.is_err());
            let first_error = applied_alone.map(|at| format!("{:?}", ops[at].alone(&alone).unwrap_err()));
            let submitted: Vec<GroupOp<'_>> = ops.iter().map(|op| op.as_op(&batched)).collect();
            let batch = batched_wal.submit(&submitted);
            let context = format!("seed {seed}, round {round}, {ops:?}");
            match (applied_alone, batch) {
                (None, Ok(_)) => batches_ok += 1,
                (Some(at), Err(error)) => {
                    batches_refused += 1;
                    assert_eq!(Some(format!("{error:?}")), first_error, "{context}");
                    // All or nothing: the batch applied none; catch up with the ops alone did.
                    for op in &ops[..at] {
                        op.alone(&batched).unwrap();
                    }
                }
                (alone, batch) => panic!("{context}: alone failed at {alone:?}, the batch gave {batch:?}"),
            }
            assert_eq!(State::read(&alone_wal).unwrap(), State::read(&batched_wal).unwrap(), "{context}");
            // Resynchronise the generator with what the logs hold.
            for (at, group) in alone.iter().enumerate() {
                next[at] = group.next_index().unwrap();
            }
        }
        alone_wal.sync().unwrap();
        batched_wal.sync().unwrap();
    }
    assert!(batches_ok > 500 && batches_refused > 200, "{batches_ok} accepted, {batches_refused} refused");
}
