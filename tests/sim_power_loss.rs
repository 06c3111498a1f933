//! Power-loss simulation: for each seed, random operations run on the simulated file system
//! through small segments; power is cut, or the process crashes (the page cache survives), at a
//! random operation (during recovery too); EIO (a failed sync loses its dirty pages, which reads
//! still see) and ENOSPC (sometimes on overwrites too, as on a copy-on-write file system) are
//! injected. After every reopen the log must be exactly the state after some prefix of the
//! submitted records, at least as long as the acknowledged prefix, and what a reopen showed
//! counts as acknowledged: a later power loss must not take it back. Finally a bit is flipped in
//! a segment a clean close made durable (the default open must fail there, and salvage must drop
//! exactly the records from the damaged one on), or a segment file is lost or shortened (open
//! must fail and change nothing).
//!
//! `RAFTWAL_SIM_SEEDS=n` runs seeds `0..n` (default 1500); `RAFTWAL_SIM_SEED=s` replays one.
//! A failure prints the seed and the operation trace.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use raftwal::inspect::frames;
use raftwal::sim::model::{History, Op, State};
use raftwal::sim::workload::{Generator, submit};
use raftwal::sim::{Fault, Rng, SimFs};
use raftwal::{Completion, Entry, Error, Options, RecoveryMode, SyncMode, Wal};

const DIR: &str = "/sim/wal";
const ROUNDS: usize = 4;
const OPS_PER_ROUND: usize = 120;
/// Survivor histories kept when recovered states are ambiguous.
const SURVIVOR_HISTORIES_MAX: usize = 64;

struct Run {
    seed: u64,
    rng: Rng,
    sim: SimFs,
    options: Options,
    trace: String,
    /// Every record on disk, in order, since the file system was empty: the surviving prefix of
    /// each round's records. Several histories when a recovered state matched more than one
    /// prefix (an append undone by a truncate returns the state to what it was).
    survivors: Vec<Vec<Op>>,
}

impl Run {
    fn log(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.trace, "{}", line.as_ref());
    }

    fn fail(&self, why: impl std::fmt::Display) -> ! {
        panic!(
            "seed {} failed: {why}\nreplay with RAFTWAL_SIM_SEED={}\ntrace:\n{}",
            self.seed, self.seed, self.trace
        );
    }

    fn open(&self, recovery: RecoveryMode) -> raftwal::Result<Wal> {
        let options = Options { recovery, ..self.options.clone() };
        Wal::open_with_fs(Arc::new(self.sim.process()), DIR, options)
    }

    /// Opens after a crash and checks the state against `history`; `None` if the open itself was
    /// cut short by a planned fault.
    fn reopen_and_check(&mut self, history: &History) -> Option<(Wal, State)> {
        let losses = self.sim.stops();
        let wal = match self.open(RecoveryMode::TornTail) {
            Ok(wal) => wal,
            Err(error) if self.sim.stops() > losses || is_injected(&error) => {
                self.log(format!("open cut short: {error}"));
                return None;
            }
            Err(error) => self.fail(format!("open failed: {error}")),
        };
        let state = match State::read(&wal) {
            Ok(state) => state,
            Err(error) if self.sim.stops() > losses || is_injected(&error) => {
                self.log(format!("read after open cut short: {error}"));
                return None;
            }
            Err(error) => self.fail(format!("read after open: {error}")),
        };
        let prefixes = history.matching_prefixes(&state);
        self.survivors = self
            .survivors
            .iter()
            .flat_map(|base| prefixes.iter().map(move |&records| [base, &history.ops()[..records]].concat()))
            .take(SURVIVOR_HISTORIES_MAX)
            .collect();
        match prefixes.first() {
            Some(&records) => {
                self.log(format!(
                    "reopened: {records} of {} records ({} acked) survive; {:?}",
                    history.ops().len(),
                    history.acked,
                    wal.recovery_report().torn_tail.as_ref().map(|cut| cut.offset)
                ));
            }
            None => self.fail(format!(
                "recovered state matches no prefix from {} to {} records\nrecovered: {state:?}\nacked: {:?}",
                history.acked,
                history.ops().len(),
                history.state_after(history.acked)
            )),
        }
        Some((wal, state))
    }

    /// Runs random operations until the planned faults stop the wal or the round ends.
    fn round(&mut self, wal: &Wal, history: &mut History) {
        let mut generator = Generator::new(&history.base);
        let mut waiting: Vec<(usize, Completion)> = Vec::new();
        let mut poisoned = false;
        for _ in 0..OPS_PER_ROUND {
            let choice =
                generator.next(&mut self.rng, history.current()).unwrap_or_else(|never| match never {});
            self.log(choice.to_string());
            match submit(wal, choice) {
                Ok((ops, done)) => {
                    history.submit(ops);
                    if let Some(done) = done {
                        waiting.push((history.ops().len(), done));
                    }
                    if self.rng.chance(10) {
                        match State::read(wal) {
                            Ok(now) if now != *history.current() => self.fail(format!(
                                "live state differs from the model\nwal: {now:?}\nmodel: {:?}",
                                history.current()
                            )),
                            Ok(_) => {}
                            Err(error) if is_injected(&error) => self.log(format!("read failed: {error}")),
                            Err(error) => self.fail(format!("read: {error}")),
                        }
                    }
                }
                Err(Error::Poisoned(cause)) => {
                    self.log(format!("poisoned: {cause}"));
                    poisoned = true;
                    break;
                }
                Err(error) if is_injected(&error) => self.log(format!("refused: {error}")),
                // With many groups' state in every segment's checkpoint, a large append may no
                // longer fit a small segment beside it: refused, with nothing changed.
                Err(error @ Error::TooLarge { .. }) => self.log(format!("refused: {error}")),
                Err(error) => self.fail(format!("operation failed: {error}")),
            }
            if self.rng.chance(30) && !self.settle(&mut waiting, history) {
                poisoned = true;
                break;
            }
        }
        poisoned |= !self.settle(&mut waiting, history);
        if poisoned {
            // Refuses all work until reopened.
            let refused = [
                wal.append(&[Entry { index: 0, term: 0, data: vec![] }]).err(),
                wal.sync().err(),
                wal.entries(0..1, 1).err(),
            ];
            if !refused.iter().all(|error| matches!(error, Some(Error::Poisoned(_)))) {
                self.fail(format!("a poisoned wal accepted work: {refused:?}"));
            }
        }
    }

    /// Waits for every outstanding completion; false once one fails.
    fn settle(&mut self, waiting: &mut Vec<(usize, Completion)>, history: &mut History) -> bool {
        for (records, done) in waiting.drain(..) {
            match done.wait() {
                Ok(()) => history.acked = history.acked.max(records),
                Err(error) => {
                    self.log(format!("completion failed: {error}"));
                    return false;
                }
            }
        }
        true
    }

    fn plan_faults(&mut self) {
        let stop = if self.rng.chance(30) { Fault::Crash } else { Fault::PowerLoss };
        self.sim.plan(1 + self.rng.below(600), stop);
        if self.rng.chance(25) {
            self.sim.plan(1 + self.rng.below(400), Fault::Eio);
        }
        if self.rng.chance(10) {
            let used: u64 = self
                .sim
                .paths()
                .iter()
                .filter_map(|path| self.sim.contents(path))
                .map(|bytes| bytes.len() as u64)
                .sum();
            self.sim.set_space(Some(used + self.rng.below(3 * self.options.segment_bytes)));
            self.sim.set_copy_on_write(self.rng.chance(30));
        }
    }
}

fn is_injected(error: &Error) -> bool {
    match error {
        Error::Io(error) => matches!(error.raw_os_error(), Some(5 | 28)),
        Error::Read { source, .. } => source.raw_os_error() == Some(5),
        Error::Poisoned(_) => true,
        _ => false,
    }
}

/// What one seed did.
struct Outcome {
    power_losses: u64,
    crashes: u64,
    /// Segments emptied by a purge and given a new life as spares.
    recycled: u64,
    /// Entries copied out of old segments.
    relocated: u64,
    /// The trace, with the file system's operation count: equal for two runs of one seed.
    trace: String,
    /// The call sites of `sync_dir` the run went through.
    sites: BTreeSet<String>,
}

/// Runs one seed.
fn run_seed(seed: u64) -> Outcome {
    run_seed_skipping(seed, None)
}

/// `run_seed` with the `sync_dir` calls of one call site doing nothing.
fn run_seed_skipping(seed: u64, skipped_site: Option<&str>) -> Outcome {
    let mut rng = Rng::new(seed);
    let sector = if rng.chance(50) { 512 } else { 4096 };
    let options = Options {
        segment_bytes: if rng.chance(50) { 4096 } else { 8192 },
        sync: if rng.chance(85) { SyncMode::Data } else { SyncMode::None },
        // Recycling mostly on, sometimes capped at one file, sometimes off (all deleted).
        recycled_segments_max: [4, 4, 1, 0][rng.below(4) as usize],
        // Mostly relocating the entries of lagging groups early, so that it meets power cuts.
        relocate_after_segments: [2, 3, 4, 8][rng.below(4) as usize],
        ..Options::default()
    };
    let mut run = Run {
        seed,
        sim: SimFs::new(seed, sector),
        rng,
        options,
        trace: String::new(),
        survivors: vec![Vec::new()],
    };
    run.sim.skip_dir_syncs_at(skipped_site);
    run.log(format!("sector {sector}, {:?}", run.options));
    let mut history = History::new(State::default());
    let (mut recycled, mut relocated) = (0, 0);
    for round in 0..ROUNDS {
        run.log(format!("-- round {round}"));
        run.plan_faults();
        let Some((wal, state)) = run.reopen_and_check(&history) else {
            run.sim.clear_plan();
            run.sim.set_space(None);
            continue;
        };
        history = History::new(state);
        run.round(&wal, &mut history);
        recycled += wal.stats().segments_recycled;
        relocated += wal.stats().entries_relocated;
        if run.options.sync == SyncMode::None {
            // Without fsyncs nothing is acknowledged as durable: only what `sync` covered.
            history.acked = 0;
        }
        if run.rng.chance(15) && wal.close().is_ok() {
            history.acked = history.ops().len();
        }
        if run.rng.chance(35) {
            // The next round restarts on the same boot; a later round cuts the power.
            run.log("crash");
            run.sim.crash();
        } else {
            run.sim.power_loss();
        }
        drop(wal);
        run.sim.clear_plan();
        run.sim.set_space(None);
        run.sim.set_copy_on_write(false);
    }
    run.sim.power_loss();
    let (wal, _) = run.reopen_and_check(&history).unwrap_or_else(|| run.fail("final open cut short"));
    match run.rng.below(10) {
        0..3 => flip_a_durable_bit(&mut run, wal),
        3 => lose_a_file(&mut run, wal),
        _ => drop(wal),
    }
    let ops = run.sim.ops();
    run.log(format!("{ops} file-system operations"));
    Outcome {
        power_losses: run.sim.power_losses(),
        crashes: run.sim.crashes(),
        recycled,
        relocated,
        sites: run.sim.dir_sync_sites(),
        trace: run.trace,
    }
}

/// Loses or shortens a segment file holding records: open must fail, and change nothing.
fn lose_a_file(run: &mut Run, wal: Wal) {
    if let Err(error) = wal.close() {
        run.fail(format!("clean close: {error}"));
    }
    drop(wal);
    let with_records: Vec<PathBuf> = segment_images(run).into_iter().map(|(path, _)| path).collect();
    let Some(victim) = with_records.last() else { return };
    let lose = run.rng.chance(50);
    if lose {
        // Losing the newest segment with no spare after it cannot be told from a log that never
        // got that far (docs/format.md).
        let spare_follows =
            run.sim.paths().iter().any(|path| path > victim && path.extension().is_some_and(|e| e == "seg"));
        if !spare_follows {
            return;
        }
        run.log(format!("lose {}", victim.display()));
        run.sim.lose(victim).unwrap();
    } else {
        let bytes = run.sim.contents(victim).unwrap().len() as u64;
        let cut = 64 + run.rng.below(bytes - 64);
        run.log(format!("shorten {} to {cut} bytes", victim.display()));
        run.sim.shorten(victim, cut).unwrap();
    }
    let after_damage: Vec<(PathBuf, Option<Vec<u8>>)> =
        run.sim.paths().into_iter().map(|path| (path.clone(), run.sim.contents(&path))).collect();
    match run.open(RecoveryMode::TornTail) {
        Err(Error::MissingSegments { .. }) if lose => {}
        Err(Error::Corruption { path, .. }) if !lose && path == *victim => {}
        other => run.fail(format!("open after losing or shortening a segment: {other:?}")),
    }
    let now: Vec<(PathBuf, Option<Vec<u8>>)> =
        run.sim.paths().into_iter().map(|path| (path.clone(), run.sim.contents(&path))).collect();
    if now != after_damage {
        run.fail("a failed open changed the files");
    }
}

/// The segment files holding records, oldest first, with their records.
fn segment_images(run: &Run) -> Vec<(PathBuf, Vec<RecordAt>)> {
    run.sim
        .paths()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .map(|path| {
            let found = records(&run.sim.contents(&path).unwrap());
            (path, found)
        })
        .filter(|(_, found)| !found.is_empty())
        .collect()
}

/// A record in a segment image: (offset, record_bytes, kind), with `RELOCATED` for the kind of
/// a relocated entry's copy.
type RecordAt = (usize, usize, u8);

/// Record offsets and kinds in a segment image, walking lengths from the header on.
fn records(bytes: &[u8]) -> Vec<RecordAt> {
    frames(bytes)
        .map(|frame| {
            let relocated = frame.kind == ENTRY && frame.flags & 1 != 0;
            (frame.offset as usize, frame.record_bytes, if relocated { RELOCATED } else { frame.kind })
        })
        .collect()
}

const ENTRY: u8 = 1;
const CHECKPOINT: u8 = 6;
const BATCH: u8 = 7;
/// Not a kind of the format: a copy of an entry moved out of an old segment, no change to the
/// model's state.
const RELOCATED: u8 = 0xff;

/// Flips a bit in a record that a clean close made durable: in a sealed segment, or in the
/// newest one before the batch record with which `close` claimed it durable.
fn flip_a_durable_bit(run: &mut Run, wal: Wal) {
    if let Err(error) = wal.close() {
        run.fail(format!("clean close: {error}"));
    }
    drop(wal);
    let segments = segment_images(run);
    let Some((_, newest)) = segments.last() else { return };
    // The claim itself is the one record whose damage is a torn tail: nothing claims it.
    // Without one (no room was left for it), damage in the newest segment's last batch is
    // rightly a torn tail: only sealed segments qualify then.
    let claimed = newest.last().is_some_and(|&(_, len, kind)| kind == BATCH && len == 40);
    let candidates = match claimed {
        true if newest.len() > 1 => segments.len(),
        _ => segments.len() - 1,
    };
    if candidates == 0 {
        return;
    }
    let victim = run.rng.below(candidates as u64) as usize;
    let (path, found) = &segments[victim];
    let choices = if victim == segments.len() - 1 { found.len() - 1 } else { found.len() };
    let (offset, len, _) = found[run.rng.below(choices as u64) as usize];
    let byte = offset + run.rng.below(len as u64) as usize;
    run.log(format!("flip a bit at {} offset {byte} (record at {offset})", path.display()));
    run.sim.flip_bit(path, byte as u64, run.rng.below(8) as u8).unwrap();

    match run.open(RecoveryMode::TornTail) {
        Err(Error::Corruption { path: at, offset: record, .. }) if at == *path && record == offset as u64 => {
        }
        other => run.fail(format!("open after a bit flip: {other:?}")),
    }
    let dropped = |segment: &(PathBuf, Vec<RecordAt>), from: usize| {
        segment
            .1
            .iter()
            .filter(|(at, _, kind)| *at >= from && ![BATCH, CHECKPOINT, RELOCATED].contains(kind))
            .count()
    };
    let lost = dropped(&segments[victim], offset)
        + segments[victim + 1..].iter().map(|s| dropped(s, 0)).sum::<usize>();
    // Salvage keeps exactly the records before the damaged one, unless that drops the oldest
    // checkpoint of a log whose older segments were deleted: then there is nothing to keep.
    let before_oldest_checkpoint = victim == 0
        && !path.ends_with(format!("{:020}.seg", 1))
        && found.iter().find(|(_, _, kind)| *kind == CHECKPOINT).is_none_or(|&(at, _, _)| offset <= at);
    let salvage = run.open(RecoveryMode::Salvage);
    if before_oldest_checkpoint {
        match salvage {
            Err(Error::Corruption { reason, .. }) if reason.contains("cannot salvage") => return,
            other => run.fail(format!("salvage past the oldest checkpoint: {other:?}")),
        }
    }
    let wal = salvage.unwrap_or_else(|error| run.fail(format!("salvage: {error}")));
    let salvaged = State::read(&wal).unwrap();
    let cut = wal.recovery_report().salvaged.clone().map(|salvage| (salvage.cut.path, salvage.cut.offset));
    if cut != Some((path.clone(), offset as u64)) {
        run.fail(format!("salvage cut at {cut:?}"));
    }
    run.log(format!(
        "salvage dropped {lost} records; missing dropped {:?}",
        wal.recovery_report().missing_dropped
    ));
    let missing_dropped = wal.recovery_report().missing_dropped.clone();
    let expected = |survivors: &Vec<Op>| {
        let mut expected = State::default();
        survivors[..survivors.len().checked_sub(lost)?].iter().for_each(|op| expected.apply(op));
        // Entries whose segments a purge after the cut had deleted are gone with it.
        for (id, missing) in &missing_dropped {
            let group = if *id == 0 { &mut expected } else { expected.groups.get_mut(id)? };
            if group.first() != Some(*missing.start()) {
                return None;
            }
            group.entries.retain(|index, _| index > missing.end());
            // Salvage records the drop as a purge, whose term it knows only as a lower bound:
            // the last compacted entry's before it.
            let term = group.purged.map_or(0, |purged| purged.term);
            group.purged = Some(raftwal::LogId { index: *missing.end(), term });
        }
        Some(expected)
    };
    let candidates: Vec<State> = run.survivors.iter().filter_map(expected).collect();
    if !candidates.contains(&salvaged) {
        run.fail(format!(
            "salvaged state is not the prefix before the damage\nsalvaged: {salvaged:?}\nexpected one of: {candidates:?}"
        ));
    }
    // What salvage changed (its cut, the files it deleted, the purges of missing entries) is
    // durable before `open` returns: after a power loss a default open finds the same log.
    run.sim.power_loss();
    drop(wal);
    match run.open(RecoveryMode::TornTail).map(|wal| State::read(&wal)) {
        Ok(Ok(state)) if state == salvaged => {}
        other => run.fail(format!("open after salvage and a power loss: {other:?}")),
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("RAFTWAL_SIM_SEED") {
        return vec![seed.parse().expect("RAFTWAL_SIM_SEED is a number")];
    }
    let count = std::env::var("RAFTWAL_SIM_SEEDS")
        .map_or(1500, |n| n.parse().expect("RAFTWAL_SIM_SEEDS is a number"));
    (0..count).collect()
}

#[test]
fn power_loss_simulation() {
    let seeds = seeds();
    let started = std::time::Instant::now();
    let (mut power_losses, mut crashes, mut recycled, mut relocated) = (0, 0, 0, 0);
    for &seed in &seeds {
        let outcome = run_seed(seed);
        power_losses += outcome.power_losses;
        crashes += outcome.crashes;
        recycled += outcome.recycled;
        relocated += outcome.relocated;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} seeds, {power_losses} simulated power losses and {crashes} process crashes, {recycled} segments recycled, {relocated} entries relocated, in {elapsed:.1?} ({:.0}/s)",
        seeds.len(),
        (power_losses + crashes) as f64 / elapsed.as_secs_f64()
    );
    // Power cuts must also meet recycled files, with their stale bytes after the log's end.
    assert!(seeds.len() < 100 || recycled > seeds.len() as u64, "{recycled} segments recycled");
    // And the copies of lagging groups' entries, whose originals' segments are gone.
    assert!(seeds.len() < 100 || relocated > 0, "no entry was relocated");
}

/// A seed replays exactly: raftwal's background work runs as steps the seed orders, so two runs
/// do the same file-system operations with the same outcomes.
#[test]
fn a_seed_replays_exactly() {
    let hash = |trace: &str| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        trace.hash(&mut hasher);
        hasher.finish()
    };
    for seed in [3, 17, 1699] {
        let (first, second) = (run_seed(seed).trace, run_seed(seed).trace);
        assert_eq!(hash(&first), hash(&second), "seed {seed} ran differently:\n{first}\n---\n{second}");
    }
}

/// The sites whose removal this simulation does not catch, each with the reason; the test below
/// requires every other site it meets to be caught.
const SITES_NOT_NEEDED_FOR_DURABILITY: [(&str, &str); 2] = [
    (
        "src/housekeeper.rs",
        "after deleting purged segments: a deletion a power loss takes back resurrects a segment \
         that replays consistently before the live ones, and the next purge deletes it again",
    ),
    (
        "src/recovery.rs",
        "caught elsewhere: salvage's deletions by repair_power_loss's \
         removing_any_directory_sync_of_repair_is_caught, the last one (the names recovery \
         found) by regressions' removing_the_sync_of_the_names_recovery_found_is_caught",
    ),
];

/// The `sync_dir` of `segment::forget_temp` (after a failed segment creation or recycling),
/// found in the source so that edits elsewhere in the file do not move it.
fn forget_temp_site() -> String {
    let source = include_str!("../src/segment.rs");
    let start = source.find("fn forget_temp(").expect("segment::forget_temp exists");
    let below = source[start..].lines().position(|line| line.contains("sync_dir")).expect("it syncs");
    format!("src/segment.rs:{}", source[..start].lines().count() + 1 + below)
}

/// Without the directory sync after a failed creation, a power loss can give a segment's name
/// to the failed file (64 bytes of header) and `open` fails; it takes two failures and a
/// power loss that keeps a later rename but loses the deletion before it, which the 400 seeds of
/// `removing_any_directory_sync_is_caught` do not meet. Seed 66865 is the first of the seeds run
/// in turn with that sync skipped to fail; a seed depends on the exact sequence of file
/// operations, so a change to it may need a new one.
#[test]
fn removing_the_sync_after_a_failed_segment_creation_is_caught() {
    const SEED: u64 = 66865;
    run_seed(SEED);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let skipped = std::panic::catch_unwind(|| run_seed_skipping(SEED, Some(&forget_temp_site())));
    std::panic::set_hook(hook);
    assert!(skipped.is_err(), "seed {SEED} no longer needs the sync at {}: find another", forget_temp_site());
}

/// Removing any one `sync_dir` call from the code (made a no-op at its call site) loses
/// acknowledged data or makes `open` fail under the simulation, except where
/// `SITES_NOT_NEEDED_FOR_DURABILITY` says why not. `RAFTWAL_SIM_SITE_SEEDS=n` bounds the seeds
/// tried per site (default 400).
#[test]
fn removing_any_directory_sync_is_caught() {
    let seeds: u64 = std::env::var("RAFTWAL_SIM_SITE_SEEDS")
        .map_or(400, |n| n.parse().expect("RAFTWAL_SIM_SITE_SEEDS is a number"));
    let sites: BTreeSet<String> = (0..40)
        .flat_map(|seed| run_seed(seed).sites)
        .filter(|site| site.starts_with("src/") && !site.starts_with("src/sim/"))
        .collect();
    assert!(sites.len() >= 5, "the simulation meets few sync_dir sites: {sites:?}");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut report = Vec::new();
    for site in &sites {
        // Caught by `removing_the_sync_after_a_failed_segment_creation_is_caught`.
        let exempt =
            SITES_NOT_NEEDED_FOR_DURABILITY.iter().find(|(file, _)| site.starts_with(file)).is_some()
                || *site == forget_temp_site();
        let caught = (0..seeds)
            .find(|&seed| std::panic::catch_unwind(|| run_seed_skipping(seed, Some(site))).is_err());
        report.push((site.clone(), caught, exempt));
    }
    std::panic::set_hook(hook);
    for (site, caught, exempt) in &report {
        eprintln!(
            "sync_dir at {site}: {}",
            match caught {
                Some(seed) => format!("removal caught by seed {seed}"),
                None if *exempt => "removal not caught here (see SITES_NOT_NEEDED_FOR_DURABILITY)".into(),
                None => "removal NOT caught".into(),
            }
        );
    }
    let missed: Vec<&String> = report
        .iter()
        .filter(|(_, caught, exempt)| caught.is_none() && !exempt)
        .map(|(site, ..)| site)
        .collect();
    assert!(missed.is_empty(), "removing these sync_dir calls went unnoticed in {seeds} seeds: {missed:?}");
}
