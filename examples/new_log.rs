//! What a new log costs: the time `Wal::open` and openraft's `LogStore::open` take on a new
//! directory (median and slowest of 30 each, each in a directory of its own), and the disk space
//! an idle new log holds once its background work is done (blocks allocated to its files, as
//! `du` counts them).
//!
//! `cargo run --release --features openraft --example new_log [DIR]` (DIR defaults to a
//! temporary directory).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use raftwal::raft::openraft::LogStore;
use raftwal::{Options, Wal};

const OPENS: usize = 30;

openraft::declare_raft_types!(
    /// Any application: only `open` is measured.
    Config: D = String, R = ()
);

fn allocated_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        bytes += entry?.metadata()?.blocks() * 512;
    }
    Ok(bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = match std::env::args_os().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let mut wal_times = Vec::with_capacity(OPENS);
    let mut store_times = Vec::with_capacity(OPENS);
    for at in 0..OPENS {
        let dir = base.path().join(format!("wal{at}"));
        let started = Instant::now();
        let wal = Wal::open(&dir, Options::default())?;
        wal_times.push(started.elapsed());
        if at == 0 {
            // Whatever the housekeeper does for a new idle log, it does within this.
            std::thread::sleep(Duration::from_secs(2));
            wal.close()?;
            println!("an idle new log holds {:.2} MiB", allocated_bytes(&dir)? as f64 / (1 << 20) as f64);
        } else {
            wal.close()?;
        }
        std::fs::remove_dir_all(&dir)?;

        let dir = base.path().join(format!("store{at}"));
        let started = Instant::now();
        let store = LogStore::<Config>::open(&dir, Options::default())?;
        store_times.push(started.elapsed());
        store.wal().close()?;
        std::fs::remove_dir_all(&dir)?;
    }
    for (what, times) in [("Wal::open", &mut wal_times), ("LogStore::open", &mut store_times)] {
        times.sort_unstable();
        println!(
            "{what} of a new log: median {:.2} ms, slowest {:.2} ms ({OPENS} opens)",
            times[OPENS / 2].as_secs_f64() * 1e3,
            times[OPENS - 1].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
