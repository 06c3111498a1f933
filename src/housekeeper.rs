//! The housekeeper thread: keeps a preallocated spare segment ready, so rotation never waits
//! for 64 MiB of zeros to be written, and recycles or deletes segments that a durable purge left
//! with nothing live. A recycled segment is the cheapest spare: a new name and a new header, no
//! zeros.

use std::io;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::error::Error;
use crate::format::{SegmentId, record_bytes_aligned};
use crate::index::Location;
use crate::segment::Segment;
use crate::value::Entry;
use crate::wal::{Core, Shared};

/// Spare segments kept preallocated ahead of the active one.
pub const SPARES: usize = 1;

pub enum Chore {
    /// Preallocate spares until `SPARES` are ready.
    Replenish,
    /// A durable purge left segments below this id with nothing live: delete them.
    DeleteBelow(SegmentId),
    /// The log holds more than `Options::relocate_after_segments` segments: copy the entries
    /// that keep the oldest ones to the active segment.
    Relocate,
    Stop,
}

/// The housekeeper thread: does chores until told to stop. Of the chores waiting, the deletions
/// go first, as one: recycling an emptied segment makes the spare that a preallocation would
/// otherwise write 64 MiB of zeros for. Then one preallocation, however many were asked for
/// (an appender waiting for a spare asks at every wake-up), so that the deletions queued
/// meanwhile are next; a pile of preallocations ahead of them would keep a fast writer's log
/// growing however much it purged.
pub fn run(shared: &Shared, chores: &Receiver<Chore>) {
    while let Ok(first) = chores.recv() {
        let (mut below, mut replenish, mut relocate, mut stop) = (None, false, false, false);
        for chore in std::iter::once(first).chain(chores.try_iter()) {
            match chore {
                Chore::DeleteBelow(id) => below = below.max(Some(id)),
                Chore::Replenish => replenish = true,
                Chore::Relocate => relocate = true,
                Chore::Stop => stop = true,
            }
        }
        let chores = below
            .map(Chore::DeleteBelow)
            .into_iter()
            .chain(replenish.then_some(Chore::Replenish))
            .chain(relocate.then_some(Chore::Relocate));
        for chore in chores.chain(stop.then_some(Chore::Stop)) {
            if !perform(shared, chore) {
                return;
            }
        }
    }
}

/// Does one chore; false for `Chore::Stop`.
pub fn perform(shared: &Shared, chore: Chore) -> bool {
    match chore {
        Chore::Replenish => replenish(shared),
        Chore::DeleteBelow(below) => delete_below(shared, below),
        Chore::Relocate => relocate(shared),
        Chore::Stop => return false,
    }
    true
}

/// Preallocates one spare if fewer than `SPARES` are ready, and asks for another round if still
/// short. One per chore: a writer that uses spares as fast as they come would otherwise keep
/// this loop going forever, and the deletions and recycling queued behind it would never run
/// (space would never come back, and every new segment would be zeros).
fn replenish(shared: &Shared) {
    let id = {
        let mut core = shared.core.lock();
        if core.spares.len() >= SPARES || core.closing {
            return;
        }
        take_id(&mut core)
    };
    let options = &shared.options;
    let created = Segment::create(&*shared.fs, &shared.dir, id, options.segment_bytes, options.file_mode);
    let mut core = shared.core.lock();
    match created {
        Ok(segment) => {
            shared.stats.segment_created();
            core.spares.push_back(Arc::new(segment));
            core.spare_error = None;
            if core.spares.len() < SPARES {
                // Behind whatever chores are queued already.
                let _ = shared.chores.send(Chore::Replenish);
            }
        }
        Err(error) => {
            give_back_id(&mut core, id);
            shared.stats.housekeeping_failed();
            core.spare_error = Some(match error {
                Error::Io(error) => error,
                other => io::Error::other(other.to_string()),
            });
        }
    }
    shared.progress.notify_all();
}

/// Recycles or deletes, oldest first, so a crash part-way leaves a gap-free run of newer
/// segments (recycling renames a segment away before anything else, like a deletion).
fn delete_below(shared: &Shared, below: SegmentId) {
    let doomed: Vec<Arc<Segment>> = {
        let mut core = shared.core.lock();
        let below = below.min(core.active.id);
        let ids: Vec<SegmentId> = core.segments.range(..below).map(|(id, _)| *id).collect();
        ids.iter().filter_map(|id| core.segments.remove(id)).collect()
    };
    if doomed.is_empty() {
        return;
    }
    let mut deleted = 0;
    let mut failed = false;
    for segment in doomed {
        // Only a segment nobody else holds (no reader, no mapping) can be written again.
        let path = match Arc::try_unwrap(segment) {
            Ok(segment) if wants_recycled(shared, &segment) => {
                failed |= !recycle(shared, segment);
                continue;
            }
            Ok(segment) => segment.path,
            Err(held) => held.path.clone(),
        };
        failed |= shared.fs.remove(&path).is_err();
        deleted += 1;
    }
    failed |= shared.fs.sync_dir(&shared.dir).is_err();
    // A segment that could not be deleted, or whose deletion was not made durable, is found
    // again and deleted by the next open; nothing live is in it.
    shared.stats.segments_deleted(deleted);
    if failed {
        shared.stats.housekeeping_failed();
    }
}

/// The most entries of one group relocated at once. Relocation is for groups that lag with a
/// few live entries; a group with more in old segments is one that never purges, and copying
/// its log again and again would multiply the bytes written: it is left in place and named by
/// `Wal::lagging_groups`, for the application to snapshot and purge.
pub const RELOCATE_ENTRIES_MAX: usize = 1024;

/// A round of relocation copies at most this fraction of the bytes it frees (1/4): the write
/// amplification it adds stays at or below 25 %.
const RELOCATE_COST_DIVISOR: u64 = 4;

/// Copies the live entries that keep old segments to the active segment, so that those
/// segments can go. Old: older than the newest `Options::relocate_after_segments`, and older
/// than the oldest entry of any group with more than `RELOCATE_ENTRIES_MAX` there (those
/// segments stay anyway). Entries are read outside the lock; each group's copies are one
/// operation, queued only if the group did not change meanwhile. Nothing is copied if the copies
/// would exceed a quarter of the bytes freed; what does not fit now (the queue or the active
/// segment is full) waits for the next rotation.
fn relocate(shared: &Shared) {
    let (plan, freed) = {
        let core = shared.core.lock();
        if core.closing || core.poisoned.is_some() {
            return;
        }
        let Some(&horizon) = core.segments.keys().nth_back(shared.options.relocate_after_segments - 1) else {
            return;
        };
        let mut candidates: Vec<(u32, Vec<(u64, Location)>)> = core
            .groups
            .pinning_below(horizon)
            .into_iter()
            .map(|slot| {
                (slot, core.groups.get(slot).expect("pinning groups exist").index.stored_below(horizon))
            })
            .collect();
        let below = candidates
            .iter()
            .filter(|(_, located)| located.len() > RELOCATE_ENTRIES_MAX)
            .filter_map(|(_, located)| located.iter().map(|(_, at)| at.segment).min())
            .fold(horizon, SegmentId::min);
        candidates.retain_mut(|(_, located)| {
            located.retain(|(_, at)| at.segment < below);
            !located.is_empty()
        });
        let freed = core.segments.range(..below).map(|(_, segment)| segment.bytes).sum::<u64>();
        let plan: Vec<_> = candidates
            .into_iter()
            .map(|(slot, located)| {
                let segments: Vec<Arc<Segment>> =
                    located.iter().map(|(_, at)| core.segments[&at.segment].clone()).collect();
                (slot, located, segments)
            })
            .collect();
        (plan, freed)
    };
    let mut copies = Vec::with_capacity(plan.len());
    for (slot, located, segments) in plan {
        let entries: Result<Vec<Entry>, Error> = located
            .iter()
            .zip(&segments)
            .map(|((index, at), segment)| segment.read_entry(u64::from(at.offset), *index))
            .collect();
        match entries {
            Ok(entries) => copies.push((slot, located, entries)),
            Err(_) => {
                // Readers of these entries get the same error; the next open reports the damage.
                shared.stats.housekeeping_failed();
                return;
            }
        }
    }
    let bytes_of =
        |entries: &[Entry]| entries.iter().map(|entry| record_bytes_aligned(entry.data.len())).sum::<usize>();
    let cost: usize = copies.iter().map(|(_, _, entries)| bytes_of(entries)).sum();
    if cost as u64 > freed / RELOCATE_COST_DIVISOR {
        return;
    }
    for (slot, located, entries) in copies {
        let Ok(Some(mut core)) = shared.try_lock_for(bytes_of(&entries)) else { return };
        let unchanged = core
            .groups
            .get(slot)
            .is_some_and(|log| located.iter().all(|(index, at)| log.index.locate(*index) == Some(*at)));
        if unchanged {
            core.relocate(shared.options.sync, slot, &entries);
            core.schedule_deletion();
            shared.submit_detached(core);
            shared.stats.relocated(entries.len() as u64);
        }
    }
}

/// Whether an emptied segment should become a spare: the cap allows one more, and it has the
/// size new segments get.
fn wants_recycled(shared: &Shared, segment: &Segment) -> bool {
    let core = shared.core.lock();
    let recycled = core.spares.iter().filter(|spare| spare.recycled).count();
    recycled < shared.options.recycled_segments_max
        && segment.bytes == shared.options.segment_bytes
        && !core.closing
}

/// Gives an emptied segment the next id and makes it a spare; false if that failed. Then the id
/// is given back, and the file is gone or left to the next open, which deletes it (a temporary
/// name, or an id below the durable purge).
fn recycle(shared: &Shared, segment: Segment) -> bool {
    let id = take_id(&mut shared.core.lock());
    let recycled = segment.recycle(&*shared.fs, &shared.dir, id);
    let mut core = shared.core.lock();
    match recycled {
        Ok(spare) => {
            core.spares.push_back(Arc::new(spare));
            shared.stats.segment_recycled();
            shared.progress.notify_all();
            true
        }
        Err(_) => {
            give_back_id(&mut core, id);
            false
        }
    }
}

/// The next segment id, for a spare in the making. Only the housekeeper takes ids.
fn take_id(core: &mut Core) -> SegmentId {
    let id = core.next_segment_id;
    core.next_segment_id = id.next();
    id
}

/// Gives back the id of a spare that could not be made: ids on disk must stay gapless, since
/// recovery reads a gap as the end of a deletion.
fn give_back_id(core: &mut Core, id: SegmentId) {
    assert_eq!(core.next_segment_id, id.next(), "only the housekeeper allocates ids");
    core.next_segment_id = id;
}
