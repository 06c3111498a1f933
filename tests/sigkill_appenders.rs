//! Real processes killed with SIGKILL while appending: the test binary runs itself as a child
//! (`child_appender`), whose threads append and print each index once it is durable. The parent
//! kills it at a random moment, reopens the log, and checks that every printed index is there
//! and the log is a valid prefix. `RAFTWAL_KILL_ROUNDS` sets the rounds (default 20).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftwal::sim::Rng;
use raftwal::{Entry, Options, Wal};

const CHILD_DIR: &str = "RAFTWAL_KILL_CHILD_DIR";

fn options() -> Options {
    Options { segment_bytes: 1 << 20, ..Options::default() }
}

fn entry(index: u64) -> Entry {
    let len = 16 + (index % 200) as usize;
    Entry { index, term: 1, data: (0..len).map(|at| (index as usize * 13 + at) as u8).collect() }
}

/// The child: appends from 8 threads until killed, printing `ack <index>` after each append is
/// durable. Does nothing when run as an ordinary test.
#[test]
fn child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let wal = Wal::open(&dir, options()).expect("child open");
    let next = Arc::new(Mutex::new(wal.next_index().unwrap().unwrap_or(1)));
    let appenders: Vec<_> = (0..8)
        .map(|_| {
            let (wal, next) = (wal.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let (index, done) = {
                        let mut next = next.lock().unwrap();
                        let count = 1 + *next % 3;
                        let batch: Vec<Entry> = (*next..*next + count).map(entry).collect();
                        let done = wal.append(&batch).expect("append");
                        *next += count;
                        (*next - 1, done)
                    };
                    done.wait().expect("durable");
                    println!("ack {index}");
                }
            })
        })
        .collect();
    // The appenders never stop: the parent kills this process. If one panics, its acks stop
    // and the parent's count of acknowledged appends catches it.
    drop(appenders);
    loop {
        std::thread::park();
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_entry() {
    let rounds: u64 = std::env::var("RAFTWAL_KILL_ROUNDS").map_or(20, |n| n.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(0x5161_4b11);
    let mut acked_total = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_appender", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut highest = 0u64;
            let mut count = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(index) = line.strip_prefix("ack ") {
                    highest = highest.max(index.parse().unwrap());
                    count += 1;
                }
            }
            (highest, count)
        });
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        child.kill().unwrap();
        child.wait().unwrap();
        let (highest_acked, acks) = reader.join().unwrap();
        acked_total += acks;

        let wal = Wal::open(dir.path(), options()).unwrap();
        let (first, last) = (wal.first_index().unwrap().unwrap_or(1), wal.last_index().unwrap().unwrap_or(0));
        assert!(last >= highest_acked, "round {round}: acknowledged {highest_acked}, recovered up to {last}");
        let read = wal.entries(first..last + 1, u64::MAX).unwrap();
        assert_eq!(read.len() as u64, last + 1 - first);
        for got in &read {
            assert_eq!(got, &entry(got.index), "round {round}");
        }
        wal.close().unwrap();
    }
    assert!(acked_total > rounds * 10, "the child acknowledged only {acked_total} appends");
    eprintln!("{rounds} kills, {acked_total} acknowledged appends checked");
}
