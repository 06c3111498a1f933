//! Power loss through the real kernel: raftwal with its real `StdFs` (pwrite, fdatasync, rename,
//! directory fsync, mmap, flock, posix_fadvise) on `CutFs`, a FUSE file system whose bytes live in
//! a simulated disk (`tests/cutfs`). The test binary runs itself as a child that appends and
//! prints each acknowledgement; the parent cuts the power (a random subset of the unsynced
//! writes survives, torn at sector boundaries), kills the child, remounts, opens the log itself
//! and checks that every acknowledged entry, and everything a restarted child was shown, is there
//! with its bytes. Between cuts the child is sometimes killed without a cut and restarted on the
//! same mount (the kernel's page cache kept), and an fsync sometimes fails (its writes lost while
//! the kernel's cache still shows them).
//!
//! It mounts a file system, so it needs `/dev/fuse` and root: `cargo test --test fuse_power_loss
//! -- --ignored` (`.ci/run` does, when FUSE is there). `RAFTWAL_FUSE_CUTS` sets the cuts (default
//! 100), `RAFTWAL_FUSE_SEED` the seed.

mod cutfs;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use cutfs::CutFs;
use raftwal::sim::{Fault, Rng, SimFs};
use raftwal::{Entry, Group, GroupOp, Options, Wal};

const CHILD_DIR: &str = "RAFTWAL_FUSE_CHILD_DIR";
const CHILD_TERM: &str = "RAFTWAL_FUSE_CHILD_TERM";
const LOG_DIR: &str = "/wal";

/// Small segments, so that cuts land in rotations and preallocations too; relocation early, so
/// that they land in it.
fn options() -> Options {
    Options { segment_bytes: 64 << 10, relocate_after_segments: 3, ..Options::default() }
}

fn entry(index: u64, term: u64) -> Entry {
    let len = 16 + ((index * 7 + term * 13) % 400) as usize;
    Entry {
        index,
        term,
        data: (0..len).map(|at| (index as usize * 31 + term as usize * 17 + at) as u8).collect(),
    }
}

/// The groups beside the default one: 1 and 2 purge as the default group does, 3 is removed and
/// created again now and then, 4 lags (it keeps 300 to 600 entries, so its oldest ones pin old
/// segments and are relocated out of them).
const GROUPS: u64 = 4;
/// The group that is removed and created again.
const RECREATED: u64 = 3;

/// The child: opens the log, prints `shown <last index> <its term>` (`0 0` if empty) for the
/// default group and `gshown <group> <last index> <term>` for the others (creating those
/// missing), then appends batches of its own term, each to the default group and to one other
/// group in one `Wal::submit`, printing `ack <last index of the batch> <term>` and `gack <group>
/// <last index> <term>` once each is durable, until killed or until an operation fails. It purges
/// all but the last 200 entries of the default group (of groups 1 and 2 all but 50 once they
/// hold 100, of group 4 all but 300 once it holds 600) as it goes,
/// so that emptied segments are recycled and cuts meet stale bytes; every 101 batches it removes
/// group 3 and creates it again; `relocated <n>` reports the entries relocated since open. Does
/// nothing when run as an ordinary test.
#[test]
fn child_appender() {
    let (Ok(dir), Ok(term)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_TERM)) else { return };
    let term: u64 = term.parse().expect("term");
    if let Err(error) = append_until_killed(Path::new(&dir), term) {
        println!("failed: {error}");
    }
}

fn append_until_killed(dir: &Path, term: u64) -> raftwal::Result<()> {
    let wal = Wal::open(dir, options())?;
    let shown = |group: &Group| -> raftwal::Result<(u64, u64)> {
        let last = group.last_index()?.unwrap_or(0);
        Ok((last, if last == 0 { 0 } else { group.term(last)? }))
    };
    let (last, last_term) = shown(&wal)?;
    println!("shown {last} {last_term}");
    let mut groups = Vec::new();
    for id in 1..=GROUPS {
        let group = wal.group(id).or_else(|_| wal.create_group(id))?;
        let (last, last_term) = shown(&group)?;
        println!("gshown {id} {last} {last_term}");
        groups.push(group);
    }
    let mut next = last + 1;
    loop {
        let batch: Vec<Entry> = (next..next + 1 + next % 3).map(|index| entry(index, term)).collect();
        let last = batch.last().expect("not empty").index;
        let group = &groups[(next % GROUPS) as usize];
        let group_next = group.next_index()?.unwrap_or(1);
        let group_batch: Vec<Entry> =
            (group_next..group_next + 1 + group_next % 2).map(|index| entry(index, term)).collect();
        let group_last = group_batch.last().expect("not empty").index;
        wal.submit(&[GroupOp::Append(&wal, &batch), GroupOp::Append(group, &group_batch)])?.wait()?;
        println!("ack {last} {term}");
        println!("gack {} {group_last} {term}", group.id());
        next = last + 1;
        if next % 16 == 0 && last > 200 {
            // Not waited for: the next append's durability covers it.
            drop(wal.purge(last - 200)?);
            for (group, keep) in groups.iter().zip([50, 50, u64::MAX, 300]) {
                let first = group.first_index()?.unwrap_or(0);
                if let Some(last) = group.last_index()?.filter(|last| last - first > 2 * keep) {
                    drop(group.purge(last - keep)?);
                }
            }
            println!("relocated {}", wal.stats().entries_relocated);
        }
        if next % 101 == 0 {
            wal.remove_group(RECREATED)?.wait()?;
            groups[(RECREATED - 1) as usize] = wal.create_group(RECREATED)?;
        }
    }
}

struct Appender {
    child: Child,
    lines: Receiver<String>,
}

impl Appender {
    fn start(log: &Path, term: u64) -> Appender {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["child_appender", "--exact", "--nocapture", "--quiet"])
            .env(CHILD_DIR, log)
            .env(CHILD_TERM, term.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Appender { child, lines }
    }

    /// Waits until the child has opened the log (or failed to), recording what it was shown.
    fn opened(&mut self, known: &mut Known) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_secs(20)) {
            known.record(&line);
        }
    }

    /// Waits for `acks` more acknowledgements (or the child's exit), recording what it reports.
    fn run(&mut self, acks: u64, known: &mut Known) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = 0;
        while seen < acks {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => seen += u64::from(known.record(&line)),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => panic!("the child stopped acknowledging"),
            }
        }
    }

    /// Kills the child and records everything it printed before dying.
    fn kill(mut self, known: &mut Known) {
        let _ = self.child.kill();
        self.child.wait().expect("wait for child");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            known.record(&line);
        }
    }
}

/// What must survive: entries acknowledged or shown to a restarted child, by index, with term;
/// for the default group and for each other group but the one removed and created again (whose
/// entries are only checked for their bytes).
#[derive(Default)]
struct Known {
    entries: BTreeMap<u64, u64>,
    groups: BTreeMap<u64, BTreeMap<u64, u64>>,
    acks: u64,
    /// The most entries one child relocated, as far as it said before it was killed (a figure
    /// for the summary: whether the housekeeper relocates before a short-lived child dies depends
    /// on timing; `sim_power_loss` requires relocation to happen).
    relocated: u64,
    /// What children that stopped on an error said, with how often.
    failures: BTreeMap<String, u64>,
}

impl Known {
    /// Records a child's line; true if it was an acknowledgement.
    fn record(&mut self, line: &str) -> bool {
        let numbers: Vec<u64> = line.split(' ').skip(1).filter_map(|word| word.parse().ok()).collect();
        match (line.split(' ').next(), numbers.as_slice()) {
            (Some("gack" | "gshown"), &[group, index, term]) if index > 0 && group != RECREATED => {
                self.groups.entry(group).or_default().insert(index, term);
                return false;
            }
            (Some("failed" | "failed:"), _) => {
                *self.failures.entry(line.to_owned()).or_default() += 1;
                return false;
            }
            (Some("relocated"), &[relocated]) => {
                self.relocated = self.relocated.max(relocated);
                return false;
            }
            _ => {}
        }
        let mut words = line.split(' ');
        let (Some(what), Some(index), Some(term)) = (words.next(), words.next(), words.next()) else {
            return false;
        };
        let (Ok(index), Ok(term)) = (index.parse(), term.parse()) else { return false };
        match what {
            "ack" | "shown" if index > 0 => {
                self.entries.insert(index, term);
                self.acks += u64::from(what == "ack");
                what == "ack"
            }
            _ => false,
        }
    }

    /// Opens the log and checks it holds everything known, with the right bytes, and only bytes
    /// that were written as entries; then everything it holds is known (the open made it so).
    fn check(&mut self, log: &Path, cut: u64) {
        let wal = Wal::open(log, options()).unwrap_or_else(|error| panic!("cut {cut}: open: {error}"));
        let last = wal.last_index().unwrap().unwrap_or(0);
        if let Some((&index, _)) = self.entries.last_key_value() {
            assert!(last >= index, "cut {cut}: the log ends at {last}, entry {index} was acknowledged");
        }
        check_group(&wal, &mut self.entries, cut);
        for id in wal.groups().unwrap().into_iter().filter(|id| *id != 0) {
            let mut scratch = BTreeMap::new();
            let known = if id == RECREATED { &mut scratch } else { self.groups.entry(id).or_default() };
            check_group(&wal.group(id).unwrap(), known, cut);
        }
        for (id, known) in &self.groups {
            assert!(known.is_empty() || wal.group(*id).is_ok(), "cut {cut}: group {id} is gone");
        }
        wal.close().unwrap();
    }
}

/// Checks that `group` holds every entry in `known` with its term, and only entries with the
/// bytes written; then adds what it holds to `known` (the open made it durable).
fn check_group(group: &Group, known: &mut BTreeMap<u64, u64>, cut: u64) {
    let id = group.id();
    let last = group.last_index().unwrap().unwrap_or(0);
    if let Some((&index, _)) = known.last_key_value() {
        assert!(last >= index, "cut {cut}: group {id} ends at {last}, entry {index} was acknowledged");
    }
    if last > 0 {
        let first = group.first_index().unwrap().expect("not empty");
        for got in group.entries(first..last + 1, u64::MAX).unwrap() {
            let index = got.index;
            assert_eq!(got, entry(index, got.term), "cut {cut}: group {id}, entry {index} has wrong bytes");
            if let Some(&term) = known.get(&index) {
                assert_eq!(got.term, term, "cut {cut}: group {id}, entry {index} lost its acknowledged term");
            }
            known.insert(index, got.term);
        }
    }
}

/// Makes the first record's sector of a random segment holding records unreadable; its path.
fn unreadable_sector(sim: &SimFs, rng: &mut Rng) -> Option<PathBuf> {
    let held: Vec<(PathBuf, u64)> = sim
        .paths()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .filter_map(|path| {
            let first = raftwal::inspect::frames(&sim.contents(&path)?).next()?.offset as u64;
            Some((path, first))
        })
        .collect();
    let (path, first) = held.get(rng.below(held.len().max(1) as u64) as usize)?.clone();
    sim.fail_reads(&path, first, 512).unwrap();
    Some(path)
}

fn mount(sim: &SimFs, at: &Path) -> fuser::BackgroundSession {
    let dirs: BTreeSet<PathBuf> = [PathBuf::from(LOG_DIR)].into();
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("raftwal-cutfs".into())];
    fuser::spawn_mount(CutFs::new(sim, dirs), at, &config).expect("mount")
}

/// Why this machine cannot run the test, if it cannot.
fn fuse_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("mounting needs root".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .err()
        .map(|error| format!("/dev/fuse: {error}"))
}

#[test]
#[ignore = "mounts a FUSE file system (root, /dev/fuse): cargo test --test fuse_power_loss -- --ignored"]
fn power_cuts_through_the_kernel_lose_no_acknowledged_entry() {
    if let Some(why) = fuse_unavailable() {
        panic!("FUSE is unavailable here ({why}): this test cannot run");
    }
    let cuts: u64 = std::env::var("RAFTWAL_FUSE_CUTS").map_or(100, |n| n.parse().expect("RAFTWAL_FUSE_CUTS"));
    let seed: u64 = std::env::var("RAFTWAL_FUSE_SEED").map_or(1, |n| n.parse().expect("RAFTWAL_FUSE_SEED"));
    let mut rng = Rng::new(seed);
    let sim = SimFs::new(seed, if rng.chance(50) { 512 } else { 4096 });
    let mountpoint = tempfile::tempdir().unwrap();
    let log = mountpoint.path().join(LOG_DIR.trim_start_matches('/'));
    let mut session = mount(&sim, mountpoint.path());
    let mut known = Known::default();
    let (mut term, mut restarts, mut failed_syncs, mut recycled, mut read_faults) = (1, 0, 0, 0, 0);
    let started = Instant::now();
    for cut in 0..cuts {
        // One to three processes on this boot: each but the last dies without a power cut (the
        // kernel's page cache and the file system's unsynced writes stay for the next), and an
        // operation sometimes fails with EIO (a failed fsync loses its writes).
        let lives = 1 + rng.below(3);
        for life in 0..lives {
            if rng.chance(20) {
                sim.plan(rng.below(60), Fault::Eio);
                failed_syncs += 1;
            }
            // Sometimes a sector of a segment holding records reads as EIO while the next child
            // opens (if the kernel's cache does not serve it): the child must fail with a read
            // error, never take it for damage, and lose nothing.
            let unreadable = rng.chance(10).then(|| unreadable_sector(&sim, &mut rng)).flatten();
            term += 1;
            let mut appender = Appender::start(&log, term);
            appender.opened(&mut known);
            if let Some(path) = unreadable {
                sim.fail_reads(&path, 0, 0).unwrap();
                read_faults += 1;
            }
            // Often cut soon after the open: before anything new is synced, what the open showed
            // must already be durable.
            let acks = if rng.chance(30) { rng.below(2) } else { rng.below(30) };
            appender.run(acks, &mut known);
            if life + 1 == lives {
                sim.power_loss();
            } else {
                restarts += 1;
            }
            appender.kill(&mut known);
        }
        sim.clear_plan();
        drop(session);
        session = mount(&sim, mountpoint.path());
        known.check(&log, cut);
        let found = raftwal::inspect::inspect(&log).expect("inspect after the check");
        recycled += found.segments.iter().filter(|segment| segment.recycled).count();
    }
    drop(session);
    eprintln!(
        "{cuts} power cuts through FUSE, {restarts} restarts without one, {failed_syncs} planned I/O errors, \
         {} acknowledgements, {} entries known in the default group and {} in {GROUPS} more, \
         {recycled} recycled segments seen holding the log, up to {} entries relocated by one child, in {:.1?}",
        known.acks,
        known.entries.len(),
        known.groups.values().map(BTreeMap::len).sum::<usize>(),
        known.relocated,
        started.elapsed()
    );
    eprintln!(
        "{read_faults} opens with an unreadable sector; children that stopped on an error: {:?}",
        known.failures
    );
    let misread: Vec<&String> = known.failures.keys().filter(|line| !line.contains("i/o error")).collect();
    assert!(misread.is_empty(), "children failed on something other than an i/o error: {misread:?}");
    assert!(cuts < 100 || recycled > 0, "no cut met a recycled segment");
}
