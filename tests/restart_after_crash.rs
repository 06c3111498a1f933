//! A restart is not a reboot: a process that crashed, or whose fsync failed, leaves a page cache
//! that holds what the disk does not. Whatever a restarted `Wal` shows must survive a later power
//! loss, and a poisoned `Wal` shows nothing that may not be durable. Each test is a finding of
//! issue 12 and says how it failed before the fix.

#[macro_use]
mod common;

use std::sync::Arc;

use common::entries;
use raftwal::sim::model::State;
use raftwal::sim::{Fault, SimFs};
use raftwal::{Error, HardState, Options, SyncMode, Wal};

const DIR: &str = "/restart/wal";
const SEEDS: u64 = 24;

fn open(sim: &SimFs, sync: SyncMode) -> Wal {
    let options = Options { segment_bytes: 8192, sync, ..Options::default() };
    Wal::open_with_fs(Arc::new(sim.process()), DIR, options).expect("open")
}

/// Kills the process `wal` runs in, keeping the page cache, and drops the dead `Wal`.
fn crash(sim: &SimFs, wal: Wal) {
    sim.crash();
    drop(wal);
}

/// Failed as: after a crash left appended entries in the page cache only, the restarted `Wal`
/// showed them without syncing them; a power loss then took them back (most seeds).
#[test]
fn regression_entries_a_restart_showed_were_lost_to_a_later_power_loss() {
    for seed in 0..SEEDS {
        let sim = SimFs::new(seed, 512);
        let wal = open(&sim, SyncMode::None);
        for piece in (1..13).step_by(3) {
            wal.append(&entries(piece..piece + 3, 1)).unwrap().wait().unwrap();
        }
        crash(&sim, wal);
        let wal = open(&sim, SyncMode::Data);
        let shown = State::read(&wal).unwrap();
        assert_eq!(shown.last(), Some(12), "seed {seed}: the cache held every write");
        wal.sync_with(|_| {}).unwrap();
        sim.power_loss();
        drop(wal);
        let wal = open(&sim, SyncMode::Data);
        assert_eq!(State::read(&wal).unwrap(), shown, "seed {seed}: what the restart showed was lost");
    }
}

/// Failed as: a truncation the crashed process never synced was shown by the restarted `Wal`
/// (`last_index() == 1`), and after a power loss entries 2..3 came back (7 of 10 seeds).
#[test]
fn regression_a_truncation_a_restart_showed_was_undone_by_a_later_power_loss() {
    for seed in 0..SEEDS {
        let sim = SimFs::new(seed, 512);
        let wal = open(&sim, SyncMode::Data);
        wal.append(&entries(1..4, 1)).unwrap().wait().unwrap();
        wal.close().unwrap();
        drop(wal);
        let wal = open(&sim, SyncMode::None);
        wal.truncate(2).unwrap().wait().unwrap();
        crash(&sim, wal);
        let wal = open(&sim, SyncMode::Data);
        assert_eq!(wal.last_index().unwrap(), Some(1), "seed {seed}");
        sim.power_loss();
        drop(wal);
        let wal = open(&sim, SyncMode::Data);
        assert_eq!(wal.last_index().unwrap(), Some(1), "seed {seed}: truncated entries came back");
    }
}

/// Failed as: after an fdatasync failed, the cache still showed the batch it lost; a reopen on
/// the same boot accepted it and appended after it, and after a power loss `open` failed with
/// `Corruption` (6 of 6 seeds), the hole where the lost batch was lying before durable ones.
#[test]
fn regression_a_reopen_after_a_failed_fsync_trusted_pages_the_disk_never_got() {
    for seed in 0..SEEDS {
        let sim = SimFs::new(seed, 512);
        let wal = open(&sim, SyncMode::Data);
        wal.append(&entries(1..4, 1)).unwrap().wait().unwrap();
        wal.quiesce();
        // The committer's next operations: write the batch, then sync it. The sync fails.
        sim.plan(1, Fault::Eio);
        let failed = wal.append(&entries(4..6, 1)).unwrap().wait();
        assert_matches!(failed, Err(Error::Poisoned(_)), "seed {seed}: {failed:?}");
        assert!(wal.close().is_err(), "a poisoned wal cannot close cleanly");
        drop(wal);

        let wal = open(&sim, SyncMode::Data);
        assert_eq!(wal.last_index().unwrap(), Some(3), "seed {seed}: the lost batch is not on the disk");
        wal.append(&entries(4..6, 2)).unwrap().wait().unwrap();
        sim.power_loss();
        drop(wal);
        let wal = open(&sim, SyncMode::Data);
        let state = State::read(&wal).unwrap();
        assert_eq!(state.last(), Some(5), "seed {seed}");
        assert_eq!(state.entries[&4].term, 2, "seed {seed}: the entry acknowledged after the reopen");
    }
}

/// Failed as: after `set_hard_state` failed, `hard_state()` returned the vote that never reached
/// the disk (while `term()` returned `Poisoned`); so did the other getters.
#[test]
fn regression_getters_of_a_poisoned_wal_returned_state_that_was_not_durable() {
    let sim = SimFs::new(1, 512);
    let wal = open(&sim, SyncMode::Data);
    wal.append(&entries(1..4, 1)).unwrap().wait().unwrap();
    wal.quiesce();
    sim.plan(1, Fault::Eio);
    let vote = HardState { term: 2, vote: 7, commit: 3 };
    assert_matches!(wal.set_hard_state(vote).unwrap().wait(), Err(Error::Poisoned(_)));
    let poisoned = |result: raftwal::Result<()>, what: &str| match result {
        Err(Error::Poisoned(_)) => {}
        other => panic!("{what} of a poisoned wal: {other:?}"),
    };
    poisoned(wal.hard_state().map(drop), "hard_state");
    poisoned(wal.first_index().map(drop), "first_index");
    poisoned(wal.last_index().map(drop), "last_index");
    poisoned(wal.next_index().map(drop), "next_index");
    poisoned(wal.purged().map(drop), "purged");
    poisoned(wal.snapshot_meta().map(drop), "snapshot_meta");
    poisoned(wal.metadata().map(drop), "metadata");
    poisoned(wal.term(1).map(drop), "term");
}

/// Failed as: after the background preallocation of a spare hit ENOSPC, the first append that
/// needed a new segment once space was back still failed with that old ENOSPC.
#[test]
fn regression_the_first_append_after_space_came_back_failed_with_the_old_enospc() {
    let sim = SimFs::new(2, 512);
    let wal = open(&sim, SyncMode::Data);
    wal.quiesce();
    // Room for the active segment and its spare, not for a third.
    sim.set_space(Some(2 * 8192 + 4096));
    let mut next = 1;
    let mut append = |wal: &Wal| {
        let done = wal.append(&entries(next..next + 3, 1));
        next += 3;
        done
    };
    // Into the spare; the housekeeper's attempt at the next spare fails in the background.
    while wal.stats().segments < 2 {
        append(&wal).unwrap().wait().unwrap();
    }
    wal.quiesce();
    assert_eq!(wal.stats().housekeeping_errors, 1, "the preallocation of the next spare failed");
    sim.set_space(None);
    while wal.stats().segments < 3 {
        append(&wal).expect("space is back").wait().unwrap();
    }
}
