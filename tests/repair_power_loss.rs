//! `repair --salvage` under power loss, on the simulated file system: it copies every segment it
//! will change or delete to `*.broken` before touching it, so a power cut at any of its
//! file-system operations leaves each segment's damaged bytes durable somewhere, either at its
//! own name or in a backup; and running it again finishes the job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftwal::inspect::{RepairMode, frames, repair_with_fs};
use raftwal::sim::{Fault, Rng, SimFs};
use raftwal::{Entry, Options, RecoveryMode, Wal};

const DIR: &str = "/repair/wal";
const SEEDS: u64 = 300;

fn options() -> Options {
    Options { segment_bytes: 4096, ..Options::default() }
}

/// A closed log of several segments with a bit flipped in a record of the oldest: corruption
/// that only salvage repairs, dropping that segment's tail and every later segment.
fn damaged_log(sim: &SimFs, rng: &mut Rng) {
    let wal = Wal::open_with_fs(Arc::new(sim.process()), DIR, options()).unwrap();
    for index in 1..=60 {
        let data = vec![index as u8; 40 + (index as usize * 7) % 60];
        wal.append(&[Entry { index, term: 1, data }]).unwrap().wait().unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let oldest = segments(sim).remove(0);
    let records: Vec<_> = frames(&sim.contents(&oldest).unwrap()).collect();
    let victim = records[records.len() / 2 + rng.below(records.len() as u64 / 2) as usize];
    sim.flip_bit(&oldest, victim.offset + 33, rng.below(8) as u8).unwrap();
}

fn segments(sim: &SimFs) -> Vec<PathBuf> {
    sim.paths().into_iter().filter(|path| path.extension().is_some_and(|ext| ext == "seg")).collect()
}

fn is_backup_of(path: &Path, segment: &Path) -> bool {
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    path.file_name().is_some_and(|file| file.to_string_lossy().starts_with(&format!("{name}.broken")))
}

#[test]
fn a_power_cut_during_repair_never_loses_the_only_copy_of_a_segment() {
    let completed = (0..SEEDS).filter(|&seed| repair_with_a_power_cut(seed, None)).count() as u64;
    assert!(completed > 0 && completed < SEEDS, "cuts fell before and after the end: {completed} completed");
}

/// Removing any one `sync_dir` call that repair goes through (made a no-op at its call site):
/// the backups' names made durable before the originals change, each salvage deletion made
/// durable before the next, the final sync of recovery. A power cut then loses the only copy of
/// a segment, or leaves a log that repairing again does not make openable, in some seed.
#[test]
fn removing_any_directory_sync_of_repair_is_caught() {
    let sim = SimFs::new(0, 512);
    damaged_log(&sim, &mut Rng::new(0));
    repair_with_fs(&sim.process(), Path::new(DIR), RepairMode::Salvage).unwrap();
    let sites: Vec<String> = sim
        .dir_sync_sites()
        .into_iter()
        .filter(|site| site.starts_with("src/inspect.rs") || site.starts_with("src/recovery.rs"))
        .collect();
    assert!(sites.len() >= 3, "{sites:?}");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let missed: Vec<&String> = sites
        .iter()
        .filter(|site| {
            let removed = |seed| std::panic::catch_unwind(|| repair_with_a_power_cut(seed, Some(site)));
            (0..SEEDS).all(|seed| removed(seed).is_ok())
        })
        .collect();
    std::panic::set_hook(hook);
    // Recovery's last sync makes the obsolete files' deletions and the names an interrupted
    // creation left durable: neither happens in this test, and `sim_power_loss`'s
    // `removing_any_directory_sync_is_caught` catches its removal. Every other site is caught here.
    let last_of_recovery = sites.iter().filter(|site| site.starts_with("src/recovery.rs")).max();
    assert!(
        missed.iter().all(|site| Some(*site) == last_of_recovery),
        "removing these sync_dir calls went unnoticed: {missed:?} of {sites:?}"
    );
}

/// Repairs a damaged log with a power cut at a random operation, checks that every segment's
/// damaged bytes survive somewhere, and repairs again; whether the first repair completed.
fn repair_with_a_power_cut(seed: u64, skipped_site: Option<&str>) -> bool {
    let mut completed = false;
    {
        let mut rng = Rng::new(seed);
        let sim = SimFs::new(seed, 512);
        damaged_log(&sim, &mut rng);
        sim.skip_dir_syncs_at(skipped_site);
        let before: Vec<(PathBuf, Vec<u8>)> =
            segments(&sim).into_iter().map(|path| (path.clone(), sim.contents(&path).unwrap())).collect();
        sim.plan(rng.below(150), Fault::PowerLoss);
        let outcome = repair_with_fs(&sim.process(), Path::new(DIR), RepairMode::Salvage);
        if sim.power_losses() == 0 {
            let repaired = outcome.unwrap_or_else(|error| panic!("seed {seed}: repair failed: {error}"));
            assert!(repaired.is_some(), "seed {seed}: the damage was not found");
            completed = true;
        }
        sim.clear_plan();
        sim.power_loss();
        for (segment, bytes) in &before {
            let kept = sim.contents(segment).as_ref() == Some(bytes)
                || sim
                    .paths()
                    .iter()
                    .any(|path| is_backup_of(path, segment) && sim.contents(path).as_ref() == Some(bytes));
            assert!(kept, "seed {seed}: the damaged bytes of {} survive nowhere", segment.display());
        }
        // Whatever the cut left, repairing again finishes, and the log then opens.
        repair_with_fs(&sim.process(), Path::new(DIR), RepairMode::Salvage)
            .unwrap_or_else(|error| panic!("seed {seed}: second repair: {error}"));
        let strict = Options { recovery: RecoveryMode::TornTail, ..options() };
        Wal::open_with_fs(Arc::new(sim.process()), DIR, strict)
            .unwrap_or_else(|error| panic!("seed {seed}: open after repair: {error}"))
            .close()
            .unwrap();
    }
    completed
}
