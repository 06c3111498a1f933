//! `stat`, `dump`, `verify` and `repair`: printing what `raftwal::inspect` finds and does.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;

use raftwal::Salvage;
use raftwal::inspect::{
    self, DamageInfo, DamageKind, GroupInfo, Inspection, RecordKind, RecordView, RepairMode, Repaired,
};
use serde_json::{Value, json};

pub const EXIT_TORN: u8 = 1;
pub const EXIT_CORRUPT: u8 = 2;

/// Groups shown in full by `stat` when none is named with `--group`.
const GROUPS_SHOWN: usize = 8;

pub fn stat(dir: &Path, groups: &[u64], json: bool) -> raftwal::Result<u8> {
    let found = inspect::inspect(dir)?;
    let shown = chosen(&found, groups)?;
    if json {
        println!("{}", stat_json(&found, &shown));
    } else {
        print_stat(dir, &found, &shown);
    }
    Ok(0)
}

/// The groups named, or all of them: an error names one the log does not hold.
fn chosen<'a>(found: &'a Inspection, ids: &[u64]) -> raftwal::Result<Vec<&'a GroupInfo>> {
    if ids.is_empty() {
        return Ok(found.groups.iter().collect());
    }
    ids.iter()
        .map(|&id| found.groups.iter().find(|group| group.id == id).ok_or(raftwal::Error::NoGroup { id }))
        .collect()
}

pub fn verify(dir: &Path, groups: &[u64], json: bool) -> raftwal::Result<u8> {
    let found = inspect::inspect(dir)?;
    let shown = chosen(&found, groups)?;
    Ok(print_verify(&found, &shown, !groups.is_empty(), json))
}

pub fn repair(dir: &Path, salvage: bool, dry_run: bool) -> raftwal::Result<u8> {
    let mode = if salvage { RepairMode::Salvage } else { RepairMode::TornTail };
    let outcome = if dry_run { inspect::plan_repair(dir, mode) } else { inspect::repair(dir, mode) };
    outcome.map(print_repair)
}

fn range(bounds: Option<RangeInclusive<u64>>) -> String {
    bounds.map_or_else(|| "-".into(), |bounds| format!("{}..={}", bounds.start(), bounds.end()))
}

fn group_entries(group: &GroupInfo) -> Option<RangeInclusive<u64>> {
    group.first_index.zip(group.last_index).map(|(first, last)| first..=last)
}

fn print_group(group: &GroupInfo) {
    let entries = group_entries(group);
    let count = entries.as_ref().map_or(0, |entries| entries.end() + 1 - entries.start());
    println!("group {}{}", group.id, if group.id == 0 { " (default)" } else { "" });
    println!("  entries      {} ({count})", range(entries));
    println!(
        "  next index   {}",
        group.next_index.map_or_else(|| "any (fresh log)".into(), |next| next.to_string())
    );
    println!(
        "  purged       {}",
        group.purged.map_or_else(|| "-".into(), |purged| format!("{} (term {})", purged.index, purged.term))
    );
    println!(
        "  hard state   {}",
        group.hard_state.map_or_else(
            || "-".into(),
            |hs| format!("term {} vote {} commit {}", hs.term, hs.vote, hs.commit)
        )
    );
    println!(
        "  snapshot     {}",
        group.snapshot.as_ref().map_or_else(
            || "-".into(),
            |meta| format!("index {} term {}, {} bytes of meta", meta.index, meta.term, meta.data.len())
        )
    );
    println!(
        "  metadata     {}",
        group.metadata.as_ref().map_or_else(|| "-".into(), |metadata| format!("{} bytes", metadata.len()))
    );
}

fn group_json(group: &GroupInfo) -> Value {
    json!({
        "id": group.id,
        "first_index": group.first_index,
        "last_index": group.last_index,
        "next_index": group.next_index,
        "purged": group.purged.map(|purged| json!({"index": purged.index, "term": purged.term})),
        "hard_state": group.hard_state.map(|hs| json!({"term": hs.term, "vote": hs.vote, "commit": hs.commit})),
        "snapshot": group.snapshot.as_ref().map(|meta| json!({"index": meta.index, "term": meta.term, "bytes": meta.data.len()})),
        "metadata_bytes": group.metadata.as_ref().map(Vec::len),
    })
}

fn print_stat(dir: &Path, found: &Inspection, shown: &[&GroupInfo]) {
    println!("directory    {}", dir.display());
    println!("format       version {}", found.format_version);
    println!(
        "segments     {} holding records, {} spare, {} bytes on disk",
        found.segments.len(),
        found.spares.len(),
        found.bytes_on_disk
    );
    for segment in &found.segments {
        // The entry records of several groups make no one range.
        let entries = match found.groups.len() {
            1 => format!(", entries {}", range(segment.entries.clone())),
            _ => String::new(),
        };
        println!(
            "  {}  {} bytes, {} records{entries}{}",
            file_name(&segment.path),
            segment.bytes,
            segment.records,
            if segment.recycled { ", recycled" } else { "" }
        );
    }
    println!("groups       {}", found.groups.len());
    let all = shown.len() == found.groups.len();
    for group in shown.iter().take(if all { GROUPS_SHOWN } else { usize::MAX }) {
        print_group(group);
    }
    if all && shown.len() > GROUPS_SHOWN {
        println!("  … {} more groups; --group ID shows one", shown.len() - GROUPS_SHOWN);
    }
    println!("damage       {}", found.damage.as_ref().map_or_else(|| "none".into(), describe));
}

fn describe(damage: &DamageInfo) -> String {
    let kind = match damage.kind {
        DamageKind::TornTail => "torn tail",
        DamageKind::Corruption => "corruption",
    };
    let after = damage
        .after
        .map_or_else(String::new, |after| format!(", after entry {} (term {})", after.index, after.term));
    format!("{kind} in {} at offset {}{after}: {}", damage.path.display(), damage.offset, damage.reason)
}

fn damage_json(damage: &DamageInfo) -> Value {
    json!({
        "kind": match damage.kind { DamageKind::TornTail => "torn_tail", DamageKind::Corruption => "corruption" },
        "path": damage.path,
        "offset": damage.offset,
        "reason": damage.reason,
        "after_index": damage.after.map(|after| after.index),
        "after_term": damage.after.map(|after| after.term),
        "bytes": damage.bytes,
    })
}

fn stat_json(found: &Inspection, shown: &[&GroupInfo]) -> Value {
    json!({
        "format_version": found.format_version,
        "segments": found.segments.iter().map(|segment| json!({
            "path": segment.path,
            "id": segment.id,
            "bytes": segment.bytes,
            "records": segment.records,
            "first_entry": segment.entries.as_ref().map(|entries| entries.start()),
            "last_entry": segment.entries.as_ref().map(|entries| entries.end()),
            "recycled": segment.recycled,
        })).collect::<Vec<_>>(),
        "spares": found.spares,
        "bytes_on_disk": found.bytes_on_disk,
        "group_count": found.groups.len(),
        "groups": shown.iter().map(|group| group_json(group)).collect::<Vec<_>>(),
        "damage": found.damage.as_ref().map(damage_json),
    })
}

fn print_verify(found: &Inspection, shown: &[&GroupInfo], named: bool, json: bool) -> u8 {
    let (status, code) = match found.damage.as_ref().map(|damage| damage.kind) {
        None => ("clean", 0),
        Some(DamageKind::TornTail) => ("torn_tail", EXIT_TORN),
        Some(DamageKind::Corruption) => ("corruption", EXIT_CORRUPT),
    };
    if json {
        println!(
            "{}",
            json!({
                "status": status,
                "segments": found.segments.len(),
                "records": found.records,
                "groups": found.groups.len(),
                "named_groups": shown.iter().filter(|_| named).map(|group| json!({
                    "id": group.id,
                    "first_index": group.first_index,
                    "last_index": group.last_index,
                })).collect::<Vec<_>>(),
                "damage": found.damage.as_ref().map(damage_json),
            })
        );
    } else {
        match &found.damage {
            None => println!(
                "clean: {} records of {} groups in {} segments verified",
                found.records,
                found.groups.len(),
                found.segments.len()
            ),
            Some(damage) => println!("{}", describe(damage)),
        }
        for group in shown.iter().filter(|_| named) {
            println!("group {}: entries {}", group.id, range(group_entries(group)));
        }
    }
    code
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// Up to 32 bytes (all with `full`): as text if printable UTF-8, else hex.
fn preview(payload: &[u8], full: bool) -> String {
    let shown = if full { payload } else { &payload[..payload.len().min(32)] };
    let more = if shown.len() < payload.len() { "…" } else { "" };
    match std::str::from_utf8(shown) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}{more}"),
        _ => format!("0x{}{more}", shown.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
    }
}

/// What `dump` shows.
pub struct DumpFilter {
    /// First entry index.
    pub from: Option<u64>,
    /// Last entry index.
    pub to: Option<u64>,
    /// Only the records of this group (its current incarnation) and the checkpoints.
    pub group: Option<u64>,
}

pub fn dump(dir: &Path, filter: &DumpFilter, full: bool, json: bool) -> raftwal::Result<u8> {
    // Group ids by slot: the groups that live now, and those created (and maybe removed) since
    // the oldest segment began, as the dump meets their creation.
    let found = inspect::inspect(dir)?;
    let mut ids: HashMap<u32, u64> = found.groups.iter().map(|group| (group.slot, group.id)).collect();
    let slot = match filter.group {
        Some(id) => Some(chosen(&found, &[id])?[0].slot),
        None => None,
    };
    let wanted = |record: &RecordView<'_>| {
        let in_range = record.kind != RecordKind::Entry
            || (filter.from.is_none_or(|from| record.index >= from)
                && filter.to.is_none_or(|to| record.index <= to));
        let in_group = record.kind == RecordKind::Checkpoint || slot.is_none_or(|slot| record.slot == slot);
        record.kind != RecordKind::Batch && in_range && in_group
    };
    inspect::for_each_record(dir, |record| {
        if let Some(id) = record.created_group() {
            ids.insert(record.slot, id);
        }
        if !wanted(&record) {
            return;
        }
        let group = ids.get(&record.slot).copied();
        if json {
            println!("{}", record_json(&record, group, filter.group, full));
        } else {
            println!("{}", record_text(&record, group, filter.group, full));
        }
    })?;
    Ok(0)
}

/// `group`: the id of the record's group, if known; `shown`: the group `--group` names, whose
/// bounds a checkpoint line gives (else its group count).
fn record_text(record: &RecordView<'_>, group: Option<u64>, shown: Option<u64>, full: bool) -> String {
    let owner = match (record.kind, group) {
        (RecordKind::Batch | RecordKind::Checkpoint, _) => String::new(),
        (_, Some(id)) => format!(" group {id}"),
        (_, None) => format!(" slot {}", record.slot),
    };
    let at = format!("{}@{}{owner}", file_name(record.segment), record.offset);
    match record.kind {
        RecordKind::Entry => format!(
            "{at} entry {} term {} {} bytes {}",
            record.index,
            record.term,
            record.payload.len(),
            preview(record.payload, full)
        ),
        RecordKind::Truncate => format!("{at} truncate from {}", record.index),
        RecordKind::Purge => format!("{at} purge up to {} (term {})", record.index, record.term),
        RecordKind::HardState => match record.hard_state() {
            Some(hs) => format!("{at} hard_state term {} vote {} commit {}", hs.term, hs.vote, hs.commit),
            None => format!("{at} hard_state (malformed)"),
        },
        RecordKind::Snapshot => format!(
            "{at} snapshot index {} term {} meta {}",
            record.index,
            record.term,
            preview(record.payload, full)
        ),
        RecordKind::Checkpoint => match (shown, record.checkpoint_groups()) {
            (_, None) => format!("{at} checkpoint (malformed)"),
            (Some(id), Some(_)) => match record.checkpoint_bounds(id) {
                Some(bounds) => {
                    format!("{at} checkpoint group {id} entries [{}, {})", bounds.start, bounds.end)
                }
                None => format!("{at} checkpoint without group {id}"),
            },
            (None, Some(count)) => format!("{at} checkpoint of {count} groups"),
        },
        RecordKind::GroupCreate => format!("{at} group_create"),
        RecordKind::GroupRemove => format!("{at} group_remove"),
        RecordKind::Batch => format!("{at} batch"),
        RecordKind::Metadata => format!("{at} metadata {}", preview(record.payload, full)),
        _ => format!("{at} {}", record.kind.name()),
    }
}

fn record_json(record: &RecordView<'_>, group: Option<u64>, shown: Option<u64>, full: bool) -> Value {
    let mut object = json!({
        "segment": file_name(record.segment),
        "offset": record.offset,
        "kind": record.kind.name(),
        "slot": record.slot,
        "group": group,
        "index": record.index,
        "term": record.term,
        "bytes": record.payload.len(),
    });
    match record.kind {
        RecordKind::Entry | RecordKind::Snapshot | RecordKind::Metadata => {
            object["preview"] = json!(preview(record.payload, full))
        }
        RecordKind::HardState => {
            if let Some(hs) = record.hard_state() {
                object["hard_state"] = json!({"term": hs.term, "vote": hs.vote, "commit": hs.commit});
            }
        }
        RecordKind::Checkpoint => {
            object["groups"] = json!(record.checkpoint_groups());
            if let Some(bounds) = shown.and_then(|id| record.checkpoint_bounds(id)) {
                object["first"] = json!(bounds.start);
                object["next"] = json!(bounds.end);
            }
        }
        _ => {}
    }
    object
}

fn print_repair(outcome: Option<Repaired>) -> u8 {
    match outcome {
        None => println!("healthy: nothing to repair, nothing touched"),
        Some(Repaired { backups, report, last_index, .. }) => {
            let done = if backups.is_empty() { "would cut" } else { "cut" };
            if let Some(cut) = &report.torn_tail {
                println!(
                    "{done} a torn tail in {} at offset {} ({} bytes)",
                    cut.path.display(),
                    cut.offset,
                    cut.bytes_zeroed
                );
            }
            if let Some(Salvage { cut, deleted }) = &report.salvaged {
                println!(
                    "{done} the log at {} offset {} ({}): {} bytes zeroed",
                    cut.path.display(),
                    cut.offset,
                    cut.reason,
                    cut.bytes_zeroed
                );
                for path in deleted {
                    println!(
                        "  {} segment {}",
                        if backups.is_empty() { "would delete" } else { "deleted" },
                        path.display()
                    );
                }
            }
            for (group, missing) in &report.missing_dropped {
                println!(
                    "  group {group}: entries {}..={} were lost with their deleted segments",
                    missing.start(),
                    missing.end()
                );
            }
            for backup in &backups {
                println!("  backup {}", backup.display());
            }
            let end = last_index
                .map_or_else(|| "holds no entries".into(), |index| format!("ends at entry {index}"));
            println!("the log {}{end}", if backups.is_empty() { "would then " } else { "now " });
        }
    }
    0
}
