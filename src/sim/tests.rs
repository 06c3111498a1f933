//! Tests of the simulated file system: what survives a power loss or a crash, names and
//! their directories, planned faults, unreadable sectors, the threaded view.

use super::*;

fn path(name: &str) -> PathBuf {
    Path::new("/wal").join(name)
}

#[test]
fn synced_data_survives_power_loss_and_unsynced_data_may_not() {
    for seed in 0..50 {
        let fs = SimFs::new(seed, 512);
        let file = fs.create_new(&path("a"), 0o600).unwrap();
        file.write_all_at(&[1; 2048], 0).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(Path::new("/wal")).unwrap();
        file.write_all_at(&[2; 2048], 1024).unwrap();
        fs.power_loss();
        assert!(file.sync_data().is_err(), "old handles fail after power loss");
        let bytes = fs.contents(&path("a")).unwrap();
        assert_eq!(&bytes[..1024], &[1; 1024], "seed {seed}: synced bytes changed");
        // Each sector is old, new, or (past the old end, where the size grew but the data
        // did not land) a hole of zeros.
        for sector in bytes[1024..].chunks(512) {
            assert!([0, 1, 2].iter().any(|value| sector.iter().all(|b| b == value)), "seed {seed}");
        }
    }
}

#[test]
fn unsynced_name_changes_survive_each_on_its_own() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let fs = SimFs::new(seed, 512);
        drop(fs.create_new(&path("a"), 0o600).unwrap());
        drop(fs.create_new(&path("b"), 0o600).unwrap());
        fs.rename(&path("a"), &path("c")).unwrap();
        fs.power_loss();
        outcomes.insert(fs.paths());
    }
    // a (renamed or not, the rename whole) and b each kept or lost, in every combination;
    // a rename kept without the creation before it leaves nothing.
    let expected: std::collections::BTreeSet<Vec<PathBuf>> = [
        vec![],
        vec![path("a")],
        vec![path("b")],
        vec![path("c")],
        vec![path("a"), path("b")],
        vec![path("b"), path("c")],
    ]
    .into_iter()
    .collect();
    assert_eq!(outcomes, expected);
}

#[test]
fn a_name_is_durable_once_its_own_directory_is_synced() {
    for seed in 0..20 {
        let fs = SimFs::new(seed, 512);
        fs.create_dir_all(Path::new("/wal"), 0o700).unwrap();
        drop(fs.create_new(&path("a"), 0o600).unwrap());
        fs.create_dir_all(Path::new("/other"), 0o700).unwrap();
        drop(fs.create_new(Path::new("/other/b"), 0o600).unwrap());
        fs.sync_dir(Path::new("/wal")).unwrap();
        fs.sync_dir(Path::new("/other")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        drop(fs.create_new(&path("c"), 0o600).unwrap());
        fs.sync_dir(Path::new("/other")).unwrap();
        fs.power_loss();
        let names = fs.paths();
        assert!(names.contains(&path("a")) && names.contains(&PathBuf::from("/other/b")), "seed {seed}");
        if seed == 0 {
            assert!(fs.dir_sync_sites().iter().all(|site| site.starts_with("src/sim/tests.rs:")));
        }
    }
    let mut lost = 0;
    for seed in 0..20 {
        let fs = SimFs::new(seed, 512);
        fs.create_dir_all(Path::new("/wal"), 0o700).unwrap();
        drop(fs.create_new(&path("a"), 0o600).unwrap());
        fs.sync_dir(Path::new("/wal")).unwrap();
        fs.power_loss();
        // The directory's own name was never synced: with it go the names in it.
        lost += usize::from(fs.paths().is_empty());
    }
    assert!(lost > 0 && lost < 20, "{lost} of 20");
}

#[test]
fn a_skipped_call_site_syncs_nothing() {
    let fs = SimFs::new(1, 512);
    let sync = |fs: &SimFs| fs.sync_dir(Path::new("/wal")).unwrap();
    sync(&fs);
    let site = fs.dir_sync_sites().into_iter().next().unwrap();
    fs.skip_dir_syncs_at(Some(&site));
    let lost = (0..20).filter(|_| {
        drop(fs.create_new(&path("b"), 0o600).unwrap());
        sync(&fs);
        fs.power_loss();
        let kept = fs.paths().contains(&path("b"));
        if kept {
            fs.remove(&path("b")).unwrap();
        }
        !kept
    });
    assert!(lost.count() > 0, "a skipped sync made the name durable");
}

#[test]
fn a_process_cut_off_by_a_power_loss_cannot_touch_the_next_image() {
    let fs = SimFs::new(3, 512);
    let old = fs.process();
    drop(old.create_new(&path("a"), 0o600).unwrap());
    old.sync_dir(Path::new("/wal")).unwrap();
    let lock = old.lock(&path("LOCK"), 0o600).unwrap();
    fs.power_loss();
    for refused in [
        old.remove(&path("a")).unwrap_err(),
        old.rename(&path("a"), &path("b")).unwrap_err(),
        old.open(&path("a")).err().unwrap(),
        old.create_new(&path("c"), 0o600).err().unwrap(),
        old.list(Path::new("/wal")).unwrap_err(),
        old.sync_dir(Path::new("/wal")).unwrap_err(),
        old.lock(&path("LOCK2"), 0o600).err().unwrap(),
    ] {
        assert_eq!(refused.raw_os_error(), Some(EIO), "{refused}");
    }
    assert_eq!(fs.paths(), [path("a")], "the old process changed the new image");
    drop(lock);
    let new = fs.process();
    drop(new.lock(&path("LOCK"), 0o600).expect("the lock died with its process"));
    new.rename(&path("a"), &path("b")).unwrap();
    assert_eq!(fs.paths(), [path("b")]);
}

#[test]
fn a_crash_ends_the_process_but_keeps_the_page_cache() {
    let fs = SimFs::new(5, 512);
    let old = fs.process();
    let file = old.create_new(&path("a"), 0o600).unwrap();
    let lock = old.lock(&path("LOCK"), 0o600).unwrap();
    file.write_all_at(&[7; 1024], 0).unwrap();
    fs.crash();
    assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO), "the dead process's handle");
    assert_eq!(old.list(Path::new("/wal")).unwrap_err().raw_os_error(), Some(EIO));
    drop(lock);
    let new = fs.process();
    drop(new.lock(&path("LOCK"), 0o600).expect("the lock died with its process"));
    let reopened = new.open(&path("a")).unwrap();
    let mut read = [0; 1024];
    reopened.read_exact_at(&mut read, 0).unwrap();
    assert_eq!(read, [7; 1024], "the next process reads the unsynced write from the cache");
    reopened.sync_data().unwrap();
    new.sync_dir(Path::new("/wal")).unwrap();
    fs.power_loss();
    assert_eq!(fs.contents(&path("a")), Some(vec![7; 1024]), "its sync made it durable");
}

#[test]
fn a_failed_sync_loses_the_dirty_pages_that_reads_still_see() {
    let fs = SimFs::new(9, 512);
    let file = fs.create_new(&path("a"), 0o600).unwrap();
    file.write_all_at(&[1; 512], 0).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(&[2; 512], 512).unwrap();
    fs.plan(0, Fault::Eio);
    assert!(file.sync_data().is_err());
    file.sync_data().expect("nothing is dirty any more: the retry succeeds");
    let mut read = [0; 512];
    file.read_exact_at(&mut read, 512).unwrap();
    assert_eq!(read, [2; 512], "the cache still shows the lost write");
    file.drop_cache(0, 0).unwrap();
    file.read_exact_at(&mut read, 512).unwrap();
    assert_eq!(read, [0; 512], "the disk never got it");
}

#[test]
fn a_threaded_view_runs_callbacks_nothing_waits_for() {
    let fs = SimFs::new(2, 512);
    let options = crate::Options { segment_bytes: 8192, ..crate::Options::default() };
    let wal = crate::Wal::open_with_fs(Arc::new(fs.threaded().process()), "/wal", options).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    wal.sync_with(move |result| sender.send(result).unwrap()).unwrap();
    let result = receiver.recv_timeout(std::time::Duration::from_secs(30));
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    wal.close().unwrap();
}

#[test]
fn planned_faults_fire_at_their_operation() {
    let fs = SimFs::new(7, 4096);
    let file = fs.create_new(&path("a"), 0o600).unwrap();
    fs.plan(1, Fault::Eio);
    file.write_all_at(b"x", 0).unwrap();
    assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
    file.sync_data().unwrap();
    fs.set_space(Some(10));
    assert_eq!(file.write_all_at(&[0; 20], 0).unwrap_err().raw_os_error(), Some(ENOSPC));
    fs.plan(0, Fault::PowerLoss);
    assert!(file.write_all_at(b"y", 0).is_err());
    assert_eq!(fs.power_losses(), 1);
}
