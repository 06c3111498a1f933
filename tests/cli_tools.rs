//! The `raftwal` binary against healthy, torn, corrupted and wrong directories: output, exit
//! codes, backups, and that a healthy log is never touched.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Model, entries, forget_clean_close, open, record_offsets, segment_paths, small_segments};
use raftwal::{HardState, Wal};

fn raftwal(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftwal")).args(args).arg(dir).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A closed log of entries 1..=120 over several 8 KiB segments, with a hard state.
fn sample_log(dir: &Path) {
    let wal = open(dir, &small_segments());
    let mut model = Model::default();
    for index in 1..=120 {
        model.append(&wal, &entries(index..index + 1, 1));
    }
    model.set_hard_state(&wal, HardState { term: 1, vote: 2, commit: 100 });
    wal.close().unwrap();
}

fn snapshot_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn healthy_log_stat_dump_verify_and_untouched_by_repair() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());

    let stat = raftwal(&["stat"], dir.path());
    assert_eq!(stat.status.code(), Some(0), "{}", stderr(&stat));
    let text = stdout(&stat);
    assert!(text.contains("entries      1..=120 (120)"), "{text}");
    assert!(text.contains("hard state   term 1 vote 2 commit 100"), "{text}");
    assert!(text.contains("damage       none"), "{text}");

    let stat = raftwal(&["stat", "--json"], dir.path());
    let json: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    assert_eq!(json["group_count"], 1);
    let default = &json["groups"][0];
    assert_eq!(default["id"], 0);
    assert_eq!(default["first_index"], 1);
    assert_eq!(default["last_index"], 120);
    assert_eq!(default["hard_state"]["commit"], 100);
    assert!(json["segments"].as_array().unwrap().len() > 2);
    assert!(json["damage"].is_null());

    let dump = raftwal(&["dump", "--from", "10", "--to", "12", "--json"], dir.path());
    assert_eq!(dump.status.code(), Some(0));
    let records: Vec<serde_json::Value> =
        stdout(&dump).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let entry_indexes: Vec<u64> = records
        .iter()
        .filter(|record| record["kind"] == "entry")
        .map(|record| record["index"].as_u64().unwrap())
        .collect();
    assert_eq!(entry_indexes, vec![10, 11, 12]);
    assert!(records.iter().any(|record| record["kind"] == "hard_state" && record["hard_state"]["vote"] == 2));
    assert!(records.iter().any(|record| record["kind"] == "checkpoint"));

    let verify = raftwal(&["verify"], dir.path());
    assert_eq!(verify.status.code(), Some(0));
    assert!(stdout(&verify).starts_with("clean: "), "{}", stdout(&verify));

    let before = snapshot_files(dir.path());
    let repair = raftwal(&["repair", "--salvage"], dir.path());
    assert_eq!(repair.status.code(), Some(0));
    assert!(stdout(&repair).contains("healthy"), "{}", stdout(&repair));
    assert_eq!(snapshot_files(dir.path()), before, "repair touched a healthy log");
}

#[test]
fn torn_tail_verifies_as_1_and_repair_cuts_it_with_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let newest = segment_paths(dir.path())
        .into_iter()
        .rev()
        .find(|path| record_offsets(&std::fs::read(path).unwrap()).len() > 2)
        .unwrap();
    forget_clean_close(&newest);
    let last = *record_offsets(&std::fs::read(&newest).unwrap()).last().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[last as usize + 40..last as usize + 48].fill(0xee);
    std::fs::write(&newest, &bytes).unwrap();

    let verify = raftwal(&["verify", "--json"], dir.path());
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(json["status"], "torn_tail");
    assert_eq!(json["damage"]["offset"], last);

    let dry = raftwal(&["repair", "--dry-run"], dir.path());
    assert_eq!(dry.status.code(), Some(0));
    assert!(stdout(&dry).contains("would cut a torn tail"), "{}", stdout(&dry));
    assert_eq!(std::fs::read(&newest).unwrap(), bytes, "dry run changed the file");

    let repair = raftwal(&["repair"], dir.path());
    assert_eq!(repair.status.code(), Some(0), "{}", stderr(&repair));
    assert!(stdout(&repair).contains(&format!("at offset {last}")), "{}", stdout(&repair));
    let backup = newest.with_file_name(format!("{}.broken", newest.file_name().unwrap().to_string_lossy()));
    assert_eq!(std::fs::read(&backup).unwrap(), bytes, "backup is the damaged file");
    assert_eq!(raftwal(&["verify"], dir.path()).status.code(), Some(0));
    let wal = Wal::open(dir.path(), small_segments()).expect("opens beside its backup");
    // The torn record was the last one written: the hard state.
    assert_eq!((wal.last_index().unwrap(), wal.hard_state().unwrap()), (Some(120), None));
}

#[test]
fn corruption_verifies_as_2_and_only_salvage_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let sealed = segment_paths(dir.path())[1].clone();
    let offset = record_offsets(&std::fs::read(&sealed).unwrap())[6];
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes[offset as usize + 36] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();

    let verify = raftwal(&["verify"], dir.path());
    assert_eq!(verify.status.code(), Some(2));
    let text = stdout(&verify);
    assert!(text.contains(&format!("corruption in {} at offset {offset}", sealed.display())), "{text}");
    assert!(text.contains("after entry"), "{text}");

    let refused = raftwal(&["repair"], dir.path());
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--salvage"), "{}", stderr(&refused));

    let before = snapshot_files(dir.path());
    let dry = raftwal(&["repair", "--salvage", "--dry-run"], dir.path());
    assert_eq!(dry.status.code(), Some(0));
    assert!(stdout(&dry).contains("would delete"), "{}", stdout(&dry));
    assert_eq!(snapshot_files(dir.path()), before, "dry run changed files");

    let repair = raftwal(&["repair", "--salvage"], dir.path());
    assert_eq!(repair.status.code(), Some(0), "{}", stderr(&repair));
    assert!(stdout(&repair).contains("backup"), "{}", stdout(&repair));
    assert_eq!(raftwal(&["verify"], dir.path()).status.code(), Some(0));
    let broken = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().contains(".broken"))
        .count();
    assert!(broken >= 2, "the damaged segment and the dropped ones are backed up ({broken})");
}

#[test]
fn bad_input_gets_one_line_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let file = dir.path().join("file");
    std::fs::write(&file, "hello").unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "hello").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (path, says) in [
        (&missing, "no such directory"),
        (&file, "not a directory"),
        (&foreign, "not part of a wal"),
        (&empty, "holds no raftwal segments"),
    ] {
        for command in ["stat", "dump", "verify", "repair"] {
            let output = raftwal(&[command], path);
            assert_eq!(output.status.code(), Some(3), "{command} {path:?}");
            let text = stderr(&output);
            assert_eq!(text.lines().count(), 1, "{command} {path:?}: {text}");
            assert!(text.contains(says), "{command} {path:?}: {text}");
        }
    }
    assert!(!foreign.join("LOCK").exists(), "a lock file was created in a foreign directory");

    let log = dir.path().join("log");
    sample_log(&log);
    let wal = open(&log, &small_segments());
    let locked = raftwal(&["verify"], &log);
    assert_eq!(locked.status.code(), Some(3));
    assert!(stderr(&locked).contains("locked"), "{}", stderr(&locked));
    drop(wal);
}

#[test]
fn newer_format_version_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    sample_log(dir.path());
    let first = segment_paths(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[8..12].copy_from_slice(&6u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&first, bytes).unwrap();
    let output = raftwal(&["stat"], dir.path());
    assert_eq!(output.status.code(), Some(0), "stat reports damage rather than failing");
    assert!(stdout(&output).contains("unsupported format version 6"), "{}", stdout(&output));
    let verify = raftwal(&["verify"], dir.path());
    assert_eq!(verify.status.code(), Some(2));
    assert_eq!(stdout(&verify).lines().count(), 1);
}

#[test]
fn groups_are_listed_and_each_shown_by_group() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), &small_segments());
    wal.append(&entries(1..4, 1)).unwrap().wait().unwrap();
    let region = wal.create_group(42).unwrap();
    region.append(&entries(10..40, 2)).unwrap().wait().unwrap();
    region.set_hard_state(HardState { term: 2, vote: 3, commit: 30 }).unwrap().wait().unwrap();
    let gone = wal.create_group(7).unwrap();
    gone.append(&entries(1..3, 1)).unwrap().wait().unwrap();
    wal.remove_group(7).unwrap().wait().unwrap();
    wal.close().unwrap();

    let stat = raftwal(&["stat", "--group", "42"], dir.path());
    assert_eq!(stat.status.code(), Some(0), "{}", stderr(&stat));
    let text = stdout(&stat);
    eprintln!("{text}");
    assert!(text.contains("groups       2"), "{text}");
    assert!(text.contains("group 42\n  entries      10..=39 (30)"), "{text}");
    assert!(text.contains("  hard state   term 2 vote 3 commit 30"), "{text}");
    assert!(!text.contains("group 0"), "only the group asked for: {text}");
    let json: serde_json::Value =
        serde_json::from_slice(&raftwal(&["stat", "--json"], dir.path()).stdout).unwrap();
    let ids: Vec<u64> =
        json["groups"].as_array().unwrap().iter().map(|group| group["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![0, 42]);
    assert_eq!(json["groups"][1]["last_index"], 39);

    let dump = raftwal(&["dump", "--group", "42", "--from", "38"], dir.path());
    let text = stdout(&dump);
    eprintln!("{text}");
    let entry_lines: Vec<&str> = text.lines().filter(|line| line.contains(" entry ")).collect();
    assert_eq!(entry_lines.len(), 2, "{text}");
    assert!(entry_lines.iter().all(|line| line.contains("group 42 entry")), "{text}");
    assert!(!text.contains("group 7"), "{text}");
    let all = stdout(&raftwal(&["dump"], dir.path()));
    assert!(all.contains("group 7 group_create") && all.contains("group 7 group_remove"), "{all}");

    let verify = raftwal(&["verify", "--group", "42"], dir.path());
    assert_eq!(verify.status.code(), Some(0));
    assert!(stdout(&verify).contains("group 42: entries 10..=39"), "{}", stdout(&verify));
    let missing = raftwal(&["stat", "--group", "7"], dir.path());
    assert_eq!(missing.status.code(), Some(3), "a removed group is not in the log");
}
