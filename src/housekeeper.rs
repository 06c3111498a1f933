//! The housekeeper thread: keeps a preallocated spare segment ready, so rotation never waits
//! for 64 MiB of zeros to be written, and deletes segments that a durable purge left with
//! nothing live.

use std::io;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::error::Error;
use crate::format::SegmentId;
use crate::segment::Segment;
use crate::wal::Shared;

/// Spare segments kept preallocated ahead of the active one.
pub const SPARES: usize = 1;

pub enum Chore {
    /// Preallocate spares until `SPARES` are ready.
    Replenish,
    /// A durable purge left segments below this id with nothing live: delete them.
    DeleteBelow(SegmentId),
    Stop,
}

/// The housekeeper thread: does chores until told to stop.
pub fn run(shared: &Shared, chores: &Receiver<Chore>) {
    for chore in chores {
        if !perform(shared, chore) {
            return;
        }
    }
}

/// Does one chore; false for `Chore::Stop`.
pub fn perform(shared: &Shared, chore: Chore) -> bool {
    match chore {
        Chore::Replenish => replenish(shared),
        Chore::DeleteBelow(below) => delete_below(shared, below),
        Chore::Stop => return false,
    }
    true
}

fn replenish(shared: &Shared) {
    loop {
        let id = {
            let mut core = shared.core.lock();
            if core.spares.len() >= SPARES || core.closing {
                return;
            }
            let id = core.next_segment_id;
            core.next_segment_id = id.next();
            id
        };
        let options = &shared.options;
        let created = Segment::create(&*shared.fs, &shared.dir, id, options.segment_bytes, options.file_mode);
        let mut core = shared.core.lock();
        match created {
            Ok(segment) => {
                shared.stats.segment_created();
                core.spares.push_back(Arc::new(segment));
                core.spare_error = None;
                shared.progress.notify_all();
            }
            Err(error) => {
                // Give the id back: ids on disk must stay gapless, since recovery reads a gap
                // as the end of a deletion.
                assert_eq!(core.next_segment_id, id.next(), "only the housekeeper allocates ids");
                shared.stats.housekeeping_failed();
                core.next_segment_id = id;
                core.spare_error = Some(match error {
                    Error::Io(error) => error,
                    other => io::Error::other(other.to_string()),
                });
                shared.progress.notify_all();
                return;
            }
        }
    }
}

/// Deletes oldest first, so a crash part-way leaves a gap-free run of newer segments.
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
    let mut failed = false;
    for segment in &doomed {
        failed |= shared.fs.remove(&segment.path).is_err();
    }
    failed |= shared.fs.sync_dir(&shared.dir).is_err();
    // A segment that could not be deleted, or whose deletion was not made durable, is found
    // again and deleted by the next open; nothing live is in it.
    shared.stats.segments_deleted(doomed.len() as u64);
    if failed {
        shared.stats.housekeeping_failed();
    }
}
