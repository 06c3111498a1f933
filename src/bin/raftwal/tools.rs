//! `stat`, `dump`, `verify` and `repair`: printing what `raftwal::inspect` finds and does.

use std::path::Path;

use std::ops::RangeInclusive;

use raftwal::Salvage;
use raftwal::inspect::{
    self, DamageInfo, DamageKind, Inspection, RecordKind, RecordView, RepairMode, Repaired,
};
use serde_json::{Value, json};

pub const EXIT_TORN: u8 = 1;
pub const EXIT_CORRUPT: u8 = 2;

pub fn stat(dir: &Path, json: bool) -> raftwal::Result<u8> {
    let found = inspect::inspect(dir)?;
    if json {
        println!("{}", stat_json(&found));
    } else {
        print_stat(dir, &found);
    }
    Ok(0)
}

pub fn verify(dir: &Path, json: bool) -> raftwal::Result<u8> {
    Ok(print_verify(&inspect::inspect(dir)?, json))
}

pub fn repair(dir: &Path, salvage: bool, dry_run: bool) -> raftwal::Result<u8> {
    let mode = if salvage { RepairMode::Salvage } else { RepairMode::TornTail };
    let outcome = if dry_run { inspect::plan_repair(dir, mode) } else { inspect::repair(dir, mode) };
    outcome.map(print_repair)
}

fn range(bounds: Option<RangeInclusive<u64>>) -> String {
    bounds.map_or_else(|| "-".into(), |bounds| format!("{}..={}", bounds.start(), bounds.end()))
}

fn print_stat(dir: &Path, found: &Inspection) {
    println!("directory    {}", dir.display());
    println!("format       version {}", found.format_version);
    println!(
        "segments     {} holding records, {} spare, {} bytes on disk",
        found.segments.len(),
        found.spares.len(),
        found.bytes_on_disk
    );
    for segment in &found.segments {
        println!(
            "  {}  {} bytes, {} records, entries {}{}",
            file_name(&segment.path),
            segment.bytes,
            segment.records,
            range(segment.entries.clone()),
            if segment.recycled { ", recycled" } else { "" }
        );
    }
    let entries = found.first_index.zip(found.last_index).map(|(first, last)| first..=last);
    let count = entries.as_ref().map_or(0, |entries| entries.end() + 1 - entries.start());
    println!("entries      {} ({count})", range(entries));
    println!(
        "next index   {}",
        found.next_index.map_or_else(|| "any (fresh log)".into(), |next| next.to_string())
    );
    println!(
        "purged       {}",
        found.purged.map_or_else(|| "-".into(), |purged| format!("{} (term {})", purged.index, purged.term))
    );
    println!(
        "hard state   {}",
        found.hard_state.map_or_else(
            || "-".into(),
            |hs| format!("term {} vote {} commit {}", hs.term, hs.vote, hs.commit)
        )
    );
    println!(
        "snapshot     {}",
        found.snapshot.as_ref().map_or_else(
            || "-".into(),
            |meta| format!("index {} term {}, {} bytes of meta", meta.index, meta.term, meta.data.len())
        )
    );
    println!(
        "metadata     {}",
        found.metadata.as_ref().map_or_else(|| "-".into(), |metadata| format!("{} bytes", metadata.len()))
    );
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

fn stat_json(found: &Inspection) -> Value {
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
        "first_index": found.first_index,
        "last_index": found.last_index,
        "next_index": found.next_index,
        "purged": found.purged.map(|purged| json!({"index": purged.index, "term": purged.term})),
        "hard_state": found.hard_state.map(|hs| json!({"term": hs.term, "vote": hs.vote, "commit": hs.commit})),
        "snapshot": found.snapshot.as_ref().map(|meta| json!({"index": meta.index, "term": meta.term, "bytes": meta.data.len()})),
        "metadata_bytes": found.metadata.as_ref().map(Vec::len),
        "damage": found.damage.as_ref().map(damage_json),
    })
}

fn print_verify(found: &Inspection, json: bool) -> u8 {
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
                "damage": found.damage.as_ref().map(damage_json),
            })
        );
    } else {
        match &found.damage {
            None => {
                println!("clean: {} records in {} segments verified", found.records, found.segments.len())
            }
            Some(damage) => println!("{}", describe(damage)),
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

pub fn dump(dir: &Path, from: Option<u64>, to: Option<u64>, full: bool, json: bool) -> raftwal::Result<u8> {
    let wanted = |record: &RecordView<'_>| {
        record.kind != RecordKind::Entry
            || (from.is_none_or(|from| record.index >= from) && to.is_none_or(|to| record.index <= to))
    };
    inspect::for_each_record(dir, |record| {
        if record.kind == RecordKind::Batch || !wanted(&record) {
            return;
        }
        if json {
            println!("{}", record_json(&record, full));
        } else {
            println!("{}", record_text(&record, full));
        }
    })?;
    Ok(0)
}

fn record_text(record: &RecordView<'_>, full: bool) -> String {
    let at = format!("{}@{}", file_name(record.segment), record.offset);
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
        RecordKind::Checkpoint => match record.checkpoint_bounds() {
            Some(bounds) => format!("{at} checkpoint entries [{}, {})", bounds.start, bounds.end),
            None => format!("{at} checkpoint (malformed)"),
        },
        RecordKind::Batch => format!("{at} batch"),
        RecordKind::Metadata => format!("{at} metadata {}", preview(record.payload, full)),
        _ => format!("{at} {}", record.kind.name()),
    }
}

fn record_json(record: &RecordView<'_>, full: bool) -> Value {
    let mut object = json!({
        "segment": file_name(record.segment),
        "offset": record.offset,
        "kind": record.kind.name(),
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
            if let Some(bounds) = record.checkpoint_bounds() {
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
