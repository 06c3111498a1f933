//! Turning measurements into the table, the target check, JSON and a plot.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A latency histogram in microseconds, 1 µs to 60 s at 3 significant figures. (Bounds matter:
/// `saturating_record` clamps values above the current range instead of growing it.)
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

#[derive(Clone)]
pub struct Measurement {
    pub workload: &'static str,
    pub engine: &'static str,
    pub threads: usize,
    pub entry_bytes: usize,
    pub in_flight: usize,
    pub round: usize,
    pub entries: u64,
    pub elapsed: Duration,
    pub payload_bytes: u64,
    pub fsyncs: Option<u64>,
    pub latency: Option<Histogram<u64>>,
    pub cpu_seconds: Option<f64>,
    pub index_bytes_per_entry: Option<f64>,
    /// Time appenders waited for a preallocated segment, summed over appenders.
    pub segment_wait: Option<Duration>,
    /// Bytes written to the benchmark directory's block device during the run.
    pub device_write_bytes: Option<u64>,
}

impl Measurement {
    pub fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn fsyncs_per_sec(&self) -> Option<f64> {
        Some(self.fsyncs? as f64 / self.elapsed.as_secs_f64())
    }

    fn entries_per_fsync(&self) -> Option<f64> {
        let fsyncs = self.fsyncs.filter(|&fsyncs| fsyncs > 0)?;
        Some(self.entries as f64 / fsyncs as f64)
    }

    /// Bytes the process wrote to storage per byte of payload appended.
    fn device_bytes_per_byte(&self) -> Option<f64> {
        Some(self.device_write_bytes? as f64 / self.payload_bytes.max(1) as f64)
    }

    fn quantile_us(&self, quantile: f64) -> Option<u64> {
        Some(self.latency.as_ref().filter(|latency| !latency.is_empty())?.value_at_quantile(quantile))
    }

    fn key(&self) -> (&'static str, usize, usize, usize) {
        (self.workload, self.threads, self.entry_bytes, self.in_flight)
    }

    fn json(&self) -> Value {
        json!({
            "workload": self.workload,
            "engine": self.engine,
            "threads": self.threads,
            "entry_bytes": self.entry_bytes,
            "in_flight": self.in_flight,
            "round": self.round,
            "entries_per_sec": self.entries_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "fsyncs_per_sec": self.fsyncs_per_sec(),
            "entries_per_fsync": self.entries_per_fsync(),
            "p50_us": self.quantile_us(0.5),
            "p99_us": self.quantile_us(0.99),
            "p999_us": self.quantile_us(0.999),
            "cpu_seconds": self.cpu_seconds,
            "index_bytes_per_entry": self.index_bytes_per_entry,
            "segment_wait_ms": self.segment_wait.map(|wait| wait.as_secs_f64() * 1e3),
            "device_bytes_per_byte": self.device_bytes_per_byte(),
        })
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// Median over rounds of `value` for one engine in one configuration.
fn median_of(
    runs: &[&Measurement],
    engine: &str,
    value: impl Fn(&Measurement) -> Option<f64>,
) -> Option<f64> {
    median(runs.iter().filter(|run| run.engine == engine).filter_map(|run| value(run)).collect())
}

/// Median over rounds of raftwal's entries/s divided by `peer`'s in the same round.
fn median_ratio(runs: &[&Measurement], peer: &str) -> Option<f64> {
    let by_round = |engine: &str| -> BTreeMap<usize, f64> {
        runs.iter().filter(|run| run.engine == engine).map(|run| (run.round, run.entries_per_sec())).collect()
    };
    let (ours, theirs) = (by_round("raftwal"), by_round(peer));
    median(ours.iter().filter_map(|(round, ours)| Some(ours / theirs.get(round)?)).collect())
}

fn grouped(measurements: &[Measurement]) -> BTreeMap<(&'static str, usize, usize, usize), Vec<&Measurement>> {
    let mut groups: BTreeMap<_, Vec<&Measurement>> = BTreeMap::new();
    for measurement in measurements {
        groups.entry(measurement.key()).or_default().push(measurement);
    }
    groups
}

/// The engines in `runs`, in the order they first ran.
fn engines(runs: &[&Measurement]) -> Vec<&'static str> {
    let mut engines = Vec::new();
    for run in runs {
        if !engines.contains(&run.engine) {
            engines.push(run.engine);
        }
    }
    engines
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |value| format!("{value:.decimals$}"))
}

/// The disk's 4 KiB overwrite + fdatasync rate and p50, medians over rounds.
fn disk_overwrite(measurements: &[Measurement]) -> (Option<f64>, Option<f64>) {
    let runs: Vec<&Measurement> =
        measurements.iter().filter(|run| run.workload == "disk_overwrite_4k").collect();
    (
        median_of(&runs, "disk", |run| Some(run.entries_per_sec())),
        median_of(&runs, "disk", |run| run.quantile_us(0.5).map(|us| us as f64)),
    )
}

pub fn print(measurements: &[Measurement], compare: bool) {
    let (disk_rate, disk_p50) = disk_overwrite(measurements);
    println!(
        "{:<20} {:>3} {:>6} {:>4} {:<11} {:>11} {:>8} {:>9} {:>7} {:>7} {:>7} {:>8} {:>6} {:>8} {:>8}",
        "workload",
        "T",
        "bytes",
        "W",
        "engine",
        "entries/s",
        "MB/s",
        "fsyncs/s",
        "e/fsync",
        "p50us",
        "p99us",
        "p999us",
        "cpu s",
        "vs r-e",
        "ceiling"
    );
    for ((workload, threads, bytes, in_flight), runs) in grouped(measurements) {
        for engine in engines(&runs) {
            let per_sec = median_of(&runs, engine, |run| Some(run.entries_per_sec()));
            let ratio =
                (engine == "raftwal" && compare).then(|| median_ratio(&runs, "raft-engine")).flatten();
            let ceiling =
                (workload == "independent").then(|| Some(per_sec? / (threads as f64 * disk_rate?))).flatten();
            println!(
                "{:<20} {:>3} {:>6} {:>4} {:<11} {:>11} {:>8} {:>9} {:>7} {:>7} {:>7} {:>8} {:>6} {:>8} {:>8}",
                workload,
                threads,
                bytes,
                in_flight,
                engine,
                cell(per_sec, 0),
                cell(median_of(&runs, engine, |run| Some(run.mb_per_sec())), 1),
                cell(median_of(&runs, engine, Measurement::fsyncs_per_sec), 0),
                cell(median_of(&runs, engine, Measurement::entries_per_fsync), 1),
                cell(median_of(&runs, engine, |run| run.quantile_us(0.5).map(|us| us as f64)), 0),
                cell(median_of(&runs, engine, |run| run.quantile_us(0.99).map(|us| us as f64)), 0),
                cell(median_of(&runs, engine, |run| run.quantile_us(0.999).map(|us| us as f64)), 0),
                cell(median_of(&runs, engine, |run| run.cpu_seconds), 2),
                ratio.map_or_else(|| "".into(), |ratio| format!("{ratio:.2}x")),
                ceiling.map_or_else(|| "".into(), |share| format!("{:.0}%", share * 100.0)),
            );
        }
    }
    println!();
    print_segment_waits(measurements);
    print_device_writes(measurements);
    print_targets(measurements, compare, disk_p50);
}

/// Where raftwal's appends stalled because the housekeeper had no preallocated segment ready:
/// the median over rounds of the waits (summed over waiting appenders) as a share of the run.
fn print_segment_waits(measurements: &[Measurement]) {
    let mut header = false;
    for ((workload, threads, bytes, in_flight), runs) in grouped(measurements) {
        let share = median_of(&runs, "raftwal", |run| {
            Some(run.segment_wait?.as_secs_f64() / run.elapsed.as_secs_f64())
        });
        let Some(share) = share.filter(|share| *share >= 0.005) else { continue };
        if !header {
            println!("raftwal appends waiting for a preallocated segment (waits as a share of the run):");
            header = true;
        }
        println!("  {workload} T={threads} S={bytes} W={in_flight}: {:.0}%", share * 100.0);
    }
    if header {
        println!();
    }
}

/// Bytes each engine wrote to the device per byte appended, in the workloads that append one
/// stream (its record framing, preallocation zeros, compaction and rewrites all count).
fn print_device_writes(measurements: &[Measurement]) {
    let mut header = false;
    for ((workload, _, bytes, in_flight), runs) in grouped(measurements) {
        if workload != "pipelined" && workload != "steady" {
            continue;
        }
        for engine in engines(&runs) {
            let Some(ratio) = median_of(&runs, engine, Measurement::device_bytes_per_byte) else { continue };
            if !header {
                println!("bytes written to the disk per byte appended (/sys/dev/block/*/stat):");
                header = true;
            }
            println!("  {workload} S={bytes} W={in_flight} {engine}: {ratio:.2}");
        }
    }
    if header {
        println!();
    }
}

/// Each workload's medians for raftwal and raft-engine, by configuration: (entries/s ratio of
/// the per-round ratios, raftwal's p99, raft-engine's p99).
fn versus_raft_engine(group: &[&Measurement]) -> Option<(f64, Option<f64>, Option<f64>)> {
    let p99 = |engine| median_of(group, engine, |run| run.quantile_us(0.99).map(|us| us as f64));
    Some((median_ratio(group, "raft-engine")?, p99("raftwal"), p99("raft-engine")))
}

/// The targets of the design (issue 14's restatement), each with its measured figure.
fn print_targets(measurements: &[Measurement], compare: bool, disk_p50: Option<f64>) {
    let groups = grouped(measurements);
    let runs = |workload: &str, threads: usize, bytes: usize| -> Vec<&Measurement> {
        groups
            .iter()
            .filter(|((w, t, b, _), _)| *w == workload && *t == threads && *b == bytes)
            .flat_map(|(_, runs)| runs.iter().copied())
            .collect()
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!("targets (medians; ratios are medians of per-round ratios):");
    if compare {
        for ((workload, threads, bytes, _), group) in &groups {
            let Some((ratio, ours_p99, theirs_p99)) = versus_raft_engine(group) else { continue };
            match *workload {
                "independent" if *threads >= 16 && *bytes <= 4096 => println!(
                    "  independent T={threads} S={bytes}: {ratio:.2}x raft-engine (target >= 2x): {}",
                    verdict(ratio >= 2.0)
                ),
                "pipelined" => {
                    println!(
                        "  pipelined S={bytes}: {ratio:.2}x raft-engine (target >= 2x): {}",
                        verdict(ratio >= 2.0)
                    );
                    if let (Some(ours), Some(theirs)) = (ours_p99, theirs_p99) {
                        println!(
                            "  pipelined S={bytes}: p99 {ours:.0} us, raft-engine's {theirs:.0} us (target: not above): {}",
                            verdict(ours <= theirs)
                        );
                    }
                    if let Some(ratio) = median_ratio(group, "raft-log") {
                        println!(
                            "  pipelined S={bytes}: {ratio:.2}x raft-log (target: ahead): {}",
                            verdict(ratio > 1.0)
                        );
                    }
                }
                "steady" if *bytes <= 4096 => println!(
                    "  steady S={bytes}: {ratio:.2}x raft-engine (target >= 2x): {}",
                    verdict(ratio >= 2.0)
                ),
                _ => {}
            }
        }
    }
    let single = runs("independent", 1, 128);
    if let (Some(p50), Some(disk)) =
        (median_of(&single, "raftwal", |run| run.quantile_us(0.5).map(|us| us as f64)), disk_p50)
    {
        let ratio = p50 / disk;
        println!(
            "  T=1 p50: {p50:.0} us = {ratio:.2}x the disk's 4 KiB overwrite+fdatasync p50 (target <= 1.1x): {}",
            verdict(ratio <= 1.1)
        );
    }
    let sequential = runs("disk_sequential_1m", 1, 1 << 20);
    let disk_mb = median_of(&sequential, "disk", |run| Some(run.mb_per_sec()));
    for ((workload, _, bytes, _), group) in &groups {
        if *workload != "steady" || *bytes < 65536 {
            continue;
        }
        if let (Some(ours), Some(disk)) = (median_of(group, "raftwal", |run| Some(run.mb_per_sec())), disk_mb)
        {
            let share = ours / disk;
            println!(
                "  steady S={bytes}: {ours:.0} MB/s = {:.0}% of the disk's 1 MiB overwrite+fdatasync (target >= 80%): {}",
                share * 100.0,
                verdict(share >= 0.8)
            );
        }
        let waits = median_of(group, "raftwal", |run| {
            Some(run.segment_wait?.as_secs_f64() / run.elapsed.as_secs_f64())
        });
        if let Some(waits) = waits {
            println!(
                "  steady S={bytes}: waits for a spare {:.1}% of the run (target < 1%): {}",
                waits * 100.0,
                verdict(waits < 0.01)
            );
        }
        if let Some(amplification) = median_of(group, "raftwal", Measurement::device_bytes_per_byte) {
            println!(
                "  steady S={bytes}: {amplification:.2} bytes written to the device per byte appended (target <= 1.1): {}",
                verdict(amplification <= 1.1)
            );
        }
    }
    let recovery = runs("recovery", 1, 4096);
    if let Some(warm) = median_of(&recovery, "raftwal", |run| Some(run.mb_per_sec())) {
        println!(
            "  recovery, warm: {:.1} GB/s of log opened (target >= 10 GB/s): {}",
            warm / 1e3,
            verdict(warm >= 10_000.0)
        );
        let read = median_of(&runs("disk_read_1m", 1, 1 << 20), "disk", |run| Some(run.mb_per_sec()));
        match median_of(&runs("recovery_cold", 1, 4096), "raftwal", |run| Some(run.mb_per_sec())) {
            Some(cold) => {
                let share = read.map_or_else(String::new, |read| {
                    format!(" = {:.0}% of the disk's {read:.0} MB/s read", cold / read * 100.0)
                });
                println!(
                    "  recovery, cold: {cold:.0} MB/s{share} (target >= 80% of the disk's read): {}",
                    read.map_or("no disk_read_1m", |read| verdict(cold >= 0.8 * read))
                );
            }
            None => println!("  recovery, cold: not measured (dropping the page cache needs root)"),
        }
        if let Some(bytes) = median_of(&recovery, "raftwal", |run| run.index_bytes_per_entry) {
            println!("  index memory: {bytes:.1} bytes per entry (target <= 16): {}", verdict(bytes <= 16.0));
        }
    }
}

pub fn write_json(
    path: &Path,
    measurements: &[Measurement],
    more: impl Iterator<Item = Value>,
) -> std::io::Result<()> {
    let all: Vec<Value> = measurements.iter().map(Measurement::json).chain(more).collect();
    std::fs::write(path, serde_json::to_vec_pretty(&all).expect("json"))
}

fn engine_color(engine: &str) -> plotters::style::RGBAColor {
    use plotters::style::{BLACK, BLUE, Color, GREEN, RED};
    match engine {
        "raftwal" => RED.to_rgba(),
        "raft-engine" => BLUE.to_rgba(),
        "okaywal" => GREEN.to_rgba(),
        _ => BLACK.to_rgba(),
    }
}

/// `1200` as `1.2k`, `3400000` as `3.4M`: axis labels without a trailing `.0`.
fn short_count(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = format!("{scaled:.1}");
    format!("{}{suffix}", text.trim_end_matches(".0"))
}

/// `10^exponent` microseconds as `100 µs`, `1 ms`, `10 ms`.
fn decade_of_micros(exponent: f64) -> String {
    let micros = 10f64.powf(exponent).round();
    if micros >= 1e6 {
        format!("{} s", micros / 1e6)
    } else if micros >= 1e3 {
        format!("{} ms", micros / 1e3)
    } else {
        format!("{micros} µs")
    }
}

/// The labelled percentiles of the latency panel, HdrHistogram's convention: each one further
/// into the tail gets the same width, on an axis of `-log10(1 - quantile)`.
const PERCENTILES: [f64; 5] = [0.0, 0.9, 0.99, 0.999, 0.9999];

fn tail_position(quantile: f64) -> f64 {
    // Rounded so that 99.99 % lands on 4, not a hair past it.
    (-(1.0 - quantile).log10() * 1e6).round() / 1e6
}

/// One line per (engine, variant) on a panel whose axes are already transformed.
struct Panel<'a> {
    caption: String,
    x_desc: &'a str,
    y_desc: &'a str,
    /// Where the x labels go (whole units of the transformed axis), and what they say.
    x_labels: Vec<(f64, String)>,
    /// Where the y labels go (whole decades of a log10 axis), and what they say.
    y_labels: Vec<(f64, String)>,
    lines: BTreeMap<(&'static str, usize), Vec<(f64, f64)>>,
    /// How a line is named: engine and variant.
    name: fn(&str, usize) -> String,
}

fn draw_panel(
    area: &plotters::drawing::DrawingArea<plotters::backend::SVGBackend<'_>, plotters::coord::Shift>,
    panel: Panel<'_>,
) -> Result<(), String> {
    use plotters::prelude::*;
    // Whole units on both transformed axes: a label can only sit at a whole step.
    // (A step axis has key points from its start up to, not at, its end: end past the last.)
    let span = |values: Vec<f64>| {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (low, high) = ((low + 1e-9).floor(), (high - 1e-9).ceil().max(low.floor() + 1.0));
        low..high + 0.25
    };
    let points = || panel.lines.values().flatten();
    let x_range = span(points().map(|(x, _)| *x).chain(panel.x_labels.iter().map(|(x, _)| *x)).collect());
    let y_range = span(points().map(|(_, y)| *y).collect());
    let label = |labels: &[(f64, String)], at: f64| {
        labels
            .iter()
            .find(|(key, _)| (key - at).abs() < 1e-6)
            .map_or_else(String::new, |(_, text)| text.clone())
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.step(1.0), y_range.step(1.0))
        .map_err(|error| error.to_string())?;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .x_label_formatter(&|x| label(&panel.x_labels, *x))
        .y_label_formatter(&|y| label(&panel.y_labels, *y))
        .draw()
        .map_err(|error| error.to_string())?;
    let first_variant: BTreeMap<&str, usize> =
        panel.lines.keys().fold(BTreeMap::new(), |mut first, (engine, variant)| {
            first.entry(*engine).or_insert(*variant);
            first
        });
    // Markers where each point is a measurement; none on a sampled curve.
    let marker = if panel.lines.values().all(|line| line.len() <= 12) { 3 } else { 0 };
    for ((engine, variant), line) in &panel.lines {
        // One colour per engine on every panel; later variants of it in a lighter shade.
        let color = engine_color(engine);
        let color = if first_variant[engine] == *variant { color } else { color.mix(0.45) };
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)).point_size(marker))
            .map_err(|error| error.to_string())?
            .label((panel.name)(engine, *variant))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|error| error.to_string())
}

/// A label for every whole decade a log10 axis spans.
fn decade_labels(
    lines: &BTreeMap<(&'static str, usize), Vec<(f64, f64)>>,
    name: fn(f64) -> String,
) -> Vec<(f64, String)> {
    let ys = lines.values().flatten().map(|(_, y)| *y);
    let (low, high) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), y| (low.min(y), high.max(y)));
    if !low.is_finite() {
        return Vec::new();
    }
    ((low.floor() as i32)..=(high.ceil() as i32).max(low.floor() as i32 + 1))
        .map(|decade| (f64::from(decade), name(f64::from(decade))))
        .collect()
}

/// One panel per throughput workload that ran (entries/s, log scale, against threads for
/// `independent` and against entry size for `pipelined`) and the latency percentiles of every
/// engine at one thread and 128 B, on a log tail axis.
pub fn plot(path: &Path, measurements: &[Measurement]) -> Result<(), String> {
    use plotters::prelude::*;
    let groups = grouped(measurements);
    let mut independent: BTreeMap<(&'static str, usize), Vec<(f64, f64)>> = BTreeMap::new();
    let mut pipelined: BTreeMap<(&'static str, usize), Vec<(f64, f64)>> = BTreeMap::new();
    let mut steady: BTreeMap<(&'static str, usize), Vec<(f64, f64)>> = BTreeMap::new();
    let (mut threads_seen, mut sizes_seen, mut in_flight_seen) = (Vec::new(), Vec::new(), 0);
    for ((workload, threads, bytes, in_flight), runs) in &groups {
        for engine in engines(runs) {
            let Some(rate) = median_of(runs, engine, |run| Some(run.entries_per_sec())) else { continue };
            match *workload {
                "independent" => {
                    independent
                        .entry((engine, *bytes))
                        .or_default()
                        .push(((*threads as f64).log2(), rate.log10()));
                    threads_seen.push(*threads);
                }
                "pipelined" | "steady" => {
                    let lines = if *workload == "steady" { &mut steady } else { &mut pipelined };
                    lines.entry((engine, 0)).or_default().push(((*bytes as f64).log2(), rate.log10()));
                    sizes_seen.push(*bytes);
                    in_flight_seen = *in_flight;
                }
                _ => {}
            }
        }
    }
    for line in independent.values_mut().chain(pipelined.values_mut()).chain(steady.values_mut()) {
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    threads_seen.sort_unstable();
    threads_seen.dedup();
    sizes_seen.sort_unstable();
    sizes_seen.dedup();

    let mut latencies: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    for run in measurements
        .iter()
        .filter(|run| run.workload == "independent" && run.threads == 1 && run.entry_bytes == 128)
    {
        if let Some(latency) = &run.latency {
            let merged = latencies.entry(run.engine).or_insert_with(latency_histogram);
            merged.add(latency).expect("same precision");
        }
    }
    let latency_lines: BTreeMap<(&'static str, usize), Vec<(f64, f64)>> = latencies
        .iter()
        .filter(|(_, latency)| !latency.is_empty())
        .map(|(engine, latency)| {
            // 20 points per decade of the tail, from the median out to 99.99 %.
            let line = (6..=80)
                .map(|step| f64::from(step) / 20.0)
                .map(|position| 1.0 - 10f64.powf(-position))
                .map(|q| (tail_position(q), (latency.value_at_quantile(q).max(1) as f64).log10()))
                .collect();
            ((*engine, 0), line)
        })
        .collect();

    let mut panels = Vec::new();
    if !independent.is_empty() {
        panels.push(Panel {
            caption: "independent: one append in flight per thread".into(),
            x_desc: "threads",
            y_desc: "entries/s",
            x_labels: threads_seen.iter().map(|&t| ((t as f64).log2(), t.to_string())).collect(),
            y_labels: decade_labels(&independent, |decade| short_count(10f64.powf(decade))),
            lines: independent,
            name: |engine, bytes| format!("{engine} {}", size_name(bytes)),
        });
    }
    let by_size = [
        (format!("pipelined: one writer, {in_flight_seen} appends in flight"), pipelined),
        (format!("steady: pipelined, {in_flight_seen} in flight, purging"), steady),
    ];
    for (caption, lines) in by_size.into_iter().filter(|(_, lines)| !lines.is_empty()) {
        panels.push(Panel {
            caption,
            x_desc: "entry bytes",
            y_desc: "entries/s",
            x_labels: sizes_seen.iter().map(|&b| ((b as f64).log2(), size_name(b))).collect(),
            y_labels: decade_labels(&lines, |decade| short_count(10f64.powf(decade))),
            lines,
            name: |engine, _| engine.to_string(),
        });
    }
    if !latency_lines.is_empty() {
        panels.push(Panel {
            caption: "latency percentiles, 1 thread, 128 B".into(),
            x_desc: "percentile",
            y_desc: "append + fdatasync",
            x_labels: PERCENTILES.iter().map(|&q| (tail_position(q), format!("{}%", q * 100.0))).collect(),
            y_labels: decade_labels(&latency_lines, decade_of_micros),
            lines: latency_lines,
            name: |engine, _| engine.to_string(),
        });
    }
    if panels.is_empty() {
        return Err("no independent, pipelined or latency measurements to plot".into());
    }
    let root = SVGBackend::new(path, (560 * panels.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(|error| error.to_string())
}

/// `128 B`, `4 KiB`, `64 KiB`.
fn size_name(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
