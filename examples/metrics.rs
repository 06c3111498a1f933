//! A log's metrics in Prometheus's text format: installs `metrics-exporter-prometheus`'s
//! recorder (without its HTTP listener), appends from four threads, purges, and prints what a
//! scrape would return.
//!
//! `cargo run --release --features metrics --example metrics`

use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusBuilder;
use raftwal::{Entry, Options, Wal};

fn main() -> raftwal::Result<()> {
    // Histograms as summaries with these quantiles (the exporter's default has no 0.999).
    let recorder = PrometheusBuilder::new()
        .set_quantiles(&[0.5, 0.9, 0.99, 0.999])
        .expect("quantiles are in 0..=1")
        .build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no recorder installed yet");

    let dir = tempfile::tempdir()?;
    let wal = Wal::open(dir.path(), Options { segment_bytes: 1 << 20, ..Options::default() })?;
    let next = Arc::new(Mutex::new(1u64));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (wal, next) = (wal.clone(), next.clone());
            scope.spawn(move || -> raftwal::Result<()> {
                for _ in 0..500 {
                    let done = {
                        let mut next = next.lock().expect("no thread panics holding it");
                        let entry = Entry { index: *next, term: 1, data: vec![7; 4096] };
                        *next += 1;
                        wal.append(&[entry])?
                    };
                    done.wait()?;
                }
                Ok(())
            });
        }
    });
    wal.purge(1500)?.wait()?;
    wal.close()?;
    print!("{}", scrape.render());
    Ok(())
}
