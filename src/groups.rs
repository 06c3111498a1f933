//! The groups of one log: each group's `LogState` by slot, the caller's group ids, and which
//! segments each group's entries pin.
//!
//! A slot is the number a group gets when it is created, never given again (the checkpoint
//! carries the next one), so it names one incarnation of a group: records carry it, and a group
//! removed and created again under the same id gets a new slot and none of the old records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::format::{CHECKPOINT_HEADER_BYTES_MAX, Checkpoint, GroupCheckpoint, SegmentId, varint_bytes};
use crate::state::LogState;

/// The slot of the default group: id 0, in every log, never removed.
pub const DEFAULT_SLOT: u32 = 0;
/// The id of the default group.
pub const DEFAULT_GROUP: u64 = 0;

#[derive(Debug)]
pub struct GroupState {
    pub id: u64,
    pub log: LogState,
}

impl GroupState {
    fn checkpoint(&self, slot: u32) -> GroupCheckpoint<'_> {
        GroupCheckpoint { slot, id: self.id, log: self.log.checkpoint() }
    }
}

#[derive(Debug)]
pub struct Groups {
    /// Boxed: a map node then holds small values, and an idle group costs about its state.
    slots: HashMap<u32, Box<GroupState>>,
    ids: HashMap<u64, u32>,
    next_slot: u32,
    /// For each segment, the groups whose oldest stored entry is in it.
    pins: BTreeMap<SegmentId, BTreeSet<u32>>,
    /// Bytes the groups take in a checkpoint, kept up to date by every change so that sizing
    /// one does not walk thousands of groups.
    checkpoint_bytes: usize,
    /// The sum of the groups' `GroupCheckpoint::bytes_max`: the most their checkpoint can take
    /// until a group is created or a snapshot's data or metadata changes.
    checkpoint_bytes_max: usize,
}

impl Default for Groups {
    fn default() -> Self {
        let mut groups = Groups {
            slots: HashMap::new(),
            ids: HashMap::new(),
            next_slot: DEFAULT_SLOT,
            pins: BTreeMap::new(),
            checkpoint_bytes: 0,
            checkpoint_bytes_max: 0,
        };
        groups.apply_create(DEFAULT_SLOT, DEFAULT_GROUP);
        groups
    }
}

impl Groups {
    pub fn get(&self, slot: u32) -> Option<&LogState> {
        self.slots.get(&slot).map(|state| &state.log)
    }

    /// The live group in `slot`, or `NoGroup` naming `id` (the id the caller's handle had).
    pub fn live(&self, slot: u32, id: u64) -> Result<&LogState> {
        self.get(slot).ok_or(Error::NoGroup { id })
    }

    pub fn id_of(&self, slot: u32) -> Option<u64> {
        self.slots.get(&slot).map(|state| state.id)
    }

    pub fn slot_of(&self, id: u64) -> Option<u32> {
        self.ids.get(&id).copied()
    }

    /// The groups' ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.ids.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The groups, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &GroupState)> {
        self.slots.iter().map(|(slot, state)| (*slot, &**state))
    }

    /// The slot a group created now gets.
    pub fn next_slot(&self) -> u32 {
        self.next_slot
    }

    pub fn check_create(&self, id: u64) -> Result<()> {
        if self.ids.contains_key(&id) {
            return Err(Error::GroupExists { id });
        }
        if self.next_slot == u32::MAX {
            return Err(Error::TooLarge {
                what: "number of groups ever created",
                bytes: u64::MAX,
                limit: u64::from(u32::MAX),
            });
        }
        Ok(())
    }

    pub fn apply_create(&mut self, slot: u32, id: u64) {
        assert_eq!(slot, self.next_slot, "slots are given in order");
        assert!(!self.ids.contains_key(&id), "group {id} exists");
        let state = Box::new(GroupState { id, log: LogState::default() });
        self.checkpoint_bytes += state.checkpoint(slot).encoded_bytes();
        self.checkpoint_bytes_max += state.checkpoint(slot).bytes_max();
        self.slots.insert(slot, state);
        self.ids.insert(id, slot);
        self.next_slot += 1;
    }

    pub fn check_remove(&self, slot: u32, id: u64) -> Result<()> {
        self.live(slot, id)?;
        if slot == DEFAULT_SLOT {
            return Err(Error::DefaultGroup);
        }
        Ok(())
    }

    pub fn apply_remove(&mut self, slot: u32) {
        let state = self.slots.remove(&slot).expect("removed groups exist");
        self.checkpoint_bytes -= state.checkpoint(slot).encoded_bytes();
        self.checkpoint_bytes_max -= state.checkpoint(slot).bytes_max();
        self.ids.remove(&state.id);
        self.unpin(state.log.index.oldest_segment(), slot);
    }

    /// Changes group `slot`'s log, keeping its pin right.
    pub fn change<T>(&mut self, slot: u32, change: impl FnOnce(&mut LogState) -> T) -> T {
        let state = self.slots.get_mut(&slot).expect("changed groups exist");
        let bytes_before = state.checkpoint(slot).encoded_bytes();
        let bytes_max_before = state.checkpoint(slot).bytes_max();
        let before = state.log.index.oldest_segment();
        let out = change(&mut state.log);
        let after = state.log.index.oldest_segment();
        self.checkpoint_bytes = self.checkpoint_bytes - bytes_before + state.checkpoint(slot).encoded_bytes();
        self.checkpoint_bytes_max =
            self.checkpoint_bytes_max - bytes_max_before + state.checkpoint(slot).bytes_max();
        if before != after {
            self.unpin(before, slot);
            self.pin(after, slot);
        }
        out
    }

    /// Appends cannot make a group's oldest segment older, so they skip the pin check when the
    /// group's newest entry is stored (the check costs a walk over the group's spans).
    /// The common case costs no walk: once a group is anchored and its newest entry stored, an
    /// append changes only the checkpoint's `next - first`.
    pub fn append(&mut self, slot: u32, append: impl FnOnce(&mut LogState)) {
        let state = self.slots.get_mut(&slot).expect("appended groups exist");
        if state.log.anchored && state.log.index.ends_stored() {
            let len = |log: &LogState| varint_bytes(log.index.next() - log.index.first());
            let before = len(&state.log);
            append(&mut state.log);
            self.checkpoint_bytes = self.checkpoint_bytes - before + len(&state.log);
        } else {
            self.change(slot, append);
        }
    }

    fn pin(&mut self, segment: Option<SegmentId>, slot: u32) {
        if let Some(segment) = segment {
            self.pins.entry(segment).or_default().insert(slot);
        }
    }

    fn unpin(&mut self, segment: Option<SegmentId>, slot: u32) {
        if let Some(segment) = segment
            && let Some(slots) = self.pins.get_mut(&segment)
        {
            slots.remove(&slot);
            if slots.is_empty() {
                self.pins.remove(&segment);
            }
        }
    }

    /// Gives back the spare capacity of the indexes' spans in sealed segments.
    pub fn shrink_sealed(&mut self, active: SegmentId) {
        for state in self.slots.values_mut() {
            state.log.index.shrink_sealed(active);
        }
    }

    /// The oldest segment any group holds an entry in.
    pub fn oldest_segment(&self) -> Option<SegmentId> {
        self.pins.keys().next().copied()
    }

    /// The groups whose oldest entry is in a segment older than `below`, oldest first.
    pub fn pinning_below(&self, below: SegmentId) -> Vec<u32> {
        self.pins.range(..below).flat_map(|(_, slots)| slots.iter().copied()).collect()
    }

    /// Groups' ids and their oldest segments, oldest first, at most `limit`.
    pub fn oldest_pins(&self, limit: usize) -> Vec<(u64, SegmentId)> {
        self.pins
            .iter()
            .flat_map(|(segment, slots)| slots.iter().map(|slot| (self.slots[slot].id, *segment)))
            .take(limit)
            .collect()
    }

    /// Bytes of the checkpoint `encode_checkpoint` makes now.
    pub fn checkpoint_bytes(&self) -> usize {
        Checkpoint::header_bytes(self.next_slot, self.slots.len()) + self.checkpoint_bytes
    }

    /// The most bytes the checkpoint can take until a group is created, or a group's snapshot
    /// data or metadata changes: what an operation that grows it is checked against.
    pub fn checkpoint_bytes_max(&self) -> usize {
        CHECKPOINT_HEADER_BYTES_MAX + self.checkpoint_bytes_max
    }

    /// The payload of a checkpoint record of every group as it is now.
    pub fn encode_checkpoint(&self) -> Vec<u8> {
        let mut slots: Vec<u32> = self.slots.keys().copied().collect();
        slots.sort_unstable();
        let groups = slots.iter().map(|slot| self.slots[slot].checkpoint(*slot));
        let payload = Checkpoint::encode(self.next_slot, self.slots.len(), groups);
        debug_assert_eq!(payload.len(), self.checkpoint_bytes());
        assert!(payload.len() <= self.checkpoint_bytes_max(), "a checkpoint outgrew its bound");
        payload
    }

    /// The groups a checkpoint describes, when no older segment survives: their entries are
    /// missing until later purges drop them. `None` if it names an id twice.
    pub fn from_checkpoint(checkpoint: &Checkpoint<'_>) -> Option<Groups> {
        let mut groups = Groups {
            slots: HashMap::new(),
            ids: HashMap::new(),
            next_slot: checkpoint.next_slot,
            pins: BTreeMap::new(),
            checkpoint_bytes: 0,
            checkpoint_bytes_max: 0,
        };
        for group in &checkpoint.groups {
            if groups.ids.insert(group.id, group.slot).is_some() {
                return None;
            }
            groups.checkpoint_bytes += group.encoded_bytes();
            groups.checkpoint_bytes_max += group.bytes_max();
            let state = GroupState { id: group.id, log: LogState::from_checkpoint(group.log) };
            groups.slots.insert(group.slot, Box::new(state));
        }
        Some(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Location;

    fn at(segment: u64) -> Location {
        Location { segment: SegmentId(segment), offset: 64 }
    }

    #[test]
    fn pins_follow_each_groups_oldest_entry() {
        let mut groups = Groups::default();
        groups.apply_create(1, 77);
        groups.append(DEFAULT_SLOT, |log| log.apply_entry(1, 1, at(3)));
        groups.append(1, |log| log.apply_entry(5, 1, at(4)));
        groups.append(1, |log| log.apply_entry(6, 1, at(5)));
        assert_eq!(groups.oldest_segment(), Some(SegmentId(3)));
        assert_eq!(groups.pinning_below(SegmentId(5)), vec![DEFAULT_SLOT, 1]);
        groups.change(DEFAULT_SLOT, |log| log.apply_purge(1, 1));
        assert_eq!(groups.oldest_segment(), Some(SegmentId(4)));
        groups.change(1, |log| log.apply_purge(5, 1));
        assert_eq!(groups.oldest_segment(), Some(SegmentId(5)));
        assert_eq!(groups.oldest_pins(5), vec![(77, SegmentId(5))]);
        groups.apply_remove(1);
        assert_eq!(groups.oldest_segment(), None);
        assert!(matches!(groups.check_create(77), Ok(())));
        assert!(matches!(groups.check_remove(DEFAULT_SLOT, 0), Err(Error::DefaultGroup)));
        assert!(matches!(groups.check_remove(1, 77), Err(Error::NoGroup { id: 77 })));
    }

    #[test]
    fn a_recreated_group_gets_a_new_slot_and_an_empty_log() {
        let mut groups = Groups::default();
        groups.apply_create(1, 9);
        groups.append(1, |log| log.apply_entry(1, 1, at(1)));
        groups.apply_remove(1);
        groups.apply_create(groups.next_slot(), 9);
        assert_eq!(groups.slot_of(9), Some(2));
        assert!(groups.get(2).unwrap().index.is_empty());
        let payload = groups.encode_checkpoint();
        let restored = Groups::from_checkpoint(&Checkpoint::decode(&payload).unwrap()).unwrap();
        assert_eq!(restored.encode_checkpoint(), payload);
        assert_eq!(restored.ids(), vec![0, 9]);
    }
}
