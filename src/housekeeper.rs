//! The housekeeper thread: keeps a spare segment ready (made small, zeroed in full once the
//! writer asks for it: see `Core::ask_ahead`), so that rotation does not wait for zeros, and
//! recycles or deletes segments that a durable purge left with nothing live. A recycled segment is the cheapest
//! spare: a new name and a new header, no zeros.

use std::io;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::engine::{Chore, Core, SPARES, Shared};
use crate::error::Error;
use crate::format::{self, SegmentId, record_bytes_aligned};
use crate::index::Location;
use crate::segment::{self, Segment};

/// The housekeeper thread: does chores until told to stop. Of the chores waiting, zeroing the
/// next spare goes first (a writer may be waiting for it); then the deletions, as one:
/// recycling an emptied segment makes the spare that would otherwise be zeroed. Then one new
/// spare, however many were asked for (an appender waiting for a spare asks at every wake-up),
/// so that the deletions queued meanwhile are next; a pile of new spares ahead of them would
/// keep a fast writer's log growing however much it purged.
pub fn run(shared: &Shared, chores: &Receiver<Chore>) {
    while let Ok(first) = chores.recv() {
        let (mut zero, mut below, mut replenish, mut relocate, mut stop) = (false, None, false, false, false);
        for chore in std::iter::once(first).chain(chores.try_iter()) {
            match chore {
                Chore::DeleteBelow(id) => below = below.max(Some(id)),
                Chore::Zero => zero = true,
                Chore::Replenish => replenish = true,
                Chore::Relocate => relocate = true,
                Chore::Stop => stop = true,
            }
        }
        let chores = zero
            .then_some(Chore::Zero)
            .into_iter()
            .chain(below.map(Chore::DeleteBelow))
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
        Chore::Zero => zero(shared),
        Chore::Replenish => replenish(shared),
        Chore::DeleteBelow(below) => delete_below(shared, below),
        Chore::Relocate => relocate(shared),
        Chore::Stop => return false,
    }
    true
}

/// Zeroes the rest of the next spare; then the writer may rotate into it. A failure (a full
/// disk) is the answer of a writer that waits for it.
fn zero(shared: &Shared) {
    let Some(spare) = shared.core.lock().spares.front().cloned() else { return };
    if spare.is_zeroed() {
        return;
    }
    let zeroed = spare.zero_rest();
    // Under the lock, so that a writer that found the spare not ready yet is already waiting.
    let mut core = shared.core.lock();
    match zeroed {
        Ok(()) => core.room_error = None,
        Err(error) => {
            shared.stats.housekeeping_failed();
            core.room_error = Some(error);
        }
    }
    drop(core);
    shared.progress.notify_all();
}

/// Makes one spare if fewer than `SPARES` are ready, and asks for another round if still
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
    let created = Segment::create(
        &*shared.fs,
        &shared.dir,
        id,
        options.segment_bytes,
        segment::spare_zeroed(options.segment_bytes),
        options.file_mode,
    );
    let mut core = shared.core.lock();
    match created {
        Ok(segment) => {
            shared.stats.segment_created();
            if core.spare_asked && core.spares.is_empty() {
                // The active segment asked for it zeroed already.
                let _ = shared.chores.send(Chore::Zero);
            }
            core.spares.push_back(Arc::new(segment));
            core.room_error = None;
            if core.spares.len() < SPARES {
                // Behind whatever chores are queued already.
                let _ = shared.chores.send(Chore::Replenish);
            }
        }
        Err(error) => {
            give_back_id(&mut core, id);
            shared.stats.housekeeping_failed();
            core.room_error = Some(match error {
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
    // Recycling synced the directory already; a deletion needs it. A segment that could not be
    // deleted, or whose deletion was not made durable, is found again and deleted by the next
    // open; nothing live is in it.
    if deleted > 0 {
        failed |= shared.fs.sync_dir(&shared.dir).is_err();
    }
    shared.stats.segments_deleted(deleted);
    if failed {
        shared.stats.housekeeping_failed();
    }
}

/// Relocation frees a segment only if copying its live entries writes at most this fraction of
/// it (1/4): the write amplification it adds stays at or below 25 %. A segment mostly live (the
/// entries of groups that never purge) stays; `Wal::lagging_groups` names those groups, for the
/// application to snapshot and purge.
const RELOCATE_COST_DIVISOR: u64 = 4;

/// The most entries one segment's relocation copies. Counting them under the lock is cheap;
/// listing and reading them is not, so a segment holding more live entries than this (a log
/// that is not purged, whose segments are all live) is passed over at once, without work
/// under the lock that would hold up appends at every rotation.
const RELOCATE_ENTRIES_MAX: u64 = 1 << 16;

/// Frees the segments older than the newest `Options::relocate_after_segments`, oldest first, by
/// copying the live entries that keep each one to the active segment. Per segment: the entries
/// are read outside the lock, and each group's copies are one operation, queued only if the
/// group did not change meanwhile. Stops at the first segment whose copies would cost too much
/// (segments go oldest first, so the later ones could not go either), or that does not fit now
/// (the queue or the active segment is full): the next rotation tries again.
fn relocate(shared: &Shared) {
    let old: Vec<SegmentId> = {
        let core = shared.core.lock();
        let keep = shared.options.relocate_after_segments;
        core.segments.keys().rev().skip(keep).rev().copied().collect()
    };
    for segment in old {
        if !relocate_segment(shared, segment) {
            return;
        }
    }
}

/// One group's entries to copy: its slot, each entry's index and place, and the segment there.
type Relocation = (u32, Vec<(u64, Location)>, Vec<Arc<Segment>>);

/// Copies the live entries in `segment` (and any older one) to the active segment; false if it
/// could not (too costly, no room now, closing, or a read failed).
fn relocate_segment(shared: &Shared, segment: SegmentId) -> bool {
    let (plan, bytes) = {
        let core = shared.core.lock();
        if core.closing || core.poisoned.is_some() {
            return false;
        }
        let Some(bytes) = core.segments.get(&segment).map(|held| held.bytes) else { return true };
        let pinning = core.groups.pinning_below(segment.next());
        let live: u64 = pinning
            .iter()
            .map(|&slot| {
                core.groups.get(slot).expect("pinning groups exist").index.count_below(segment.next())
            })
            .sum();
        // Every copy takes at least a record header.
        let cheapest = live * format::RECORD_HEADER_BYTES as u64;
        if live > RELOCATE_ENTRIES_MAX || cheapest > bytes / RELOCATE_COST_DIVISOR {
            return false;
        }
        let plan: Vec<Relocation> = pinning
            .into_iter()
            .map(|slot| {
                let located =
                    core.groups.get(slot).expect("pinning groups exist").index.stored_below(segment.next());
                let segments = located.iter().map(|(_, at)| core.segments[&at.segment].clone()).collect();
                (slot, located, segments)
            })
            .collect();
        (plan, bytes)
    };
    let budget = bytes / RELOCATE_COST_DIVISOR;
    let mut copies = Vec::with_capacity(plan.len());
    let mut cost = 0;
    for (slot, located, segments) in plan {
        let mut entries = Vec::with_capacity(located.len());
        for ((index, at), held) in located.iter().zip(&segments) {
            let Ok(entry) = held.read_entry(u64::from(at.offset), *index) else {
                // Readers of this entry get the same error; the next open reports the damage.
                shared.stats.housekeeping_failed();
                return false;
            };
            cost += record_bytes_aligned(entry.data.len()) as u64;
            if cost > budget {
                return false;
            }
            entries.push(entry);
        }
        copies.push((slot, located, entries));
    }
    for (slot, located, entries) in copies {
        let bytes = entries.iter().map(|entry| record_bytes_aligned(entry.data.len())).sum();
        let Ok(Some(mut core)) = shared.try_lock_for(bytes) else { return false };
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
    true
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
