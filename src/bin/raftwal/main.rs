//! `raftwal`: inspect, repair and benchmark raftwal logs.
//!
//! Exit codes: 0 success (for `verify`: clean); 1 `verify` found only a torn tail, which
//! `repair` or the next open cuts; 2 corruption (`verify`), or `repair` refused to cut it without
//! `--salvage`; 3 any other error (no such directory, not a raftwal log, locked, unreadable).

mod bench;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "raftwal", version, about = "Inspect, repair and benchmark raftwal logs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segments, groups (their log bounds, hard state, snapshot meta) and damage.
    Stat {
        dir: PathBuf,
        /// Show only this group (repeatable); without it, the first groups (all with --json).
        #[arg(long = "group")]
        groups: Vec<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Entries and state records in log order.
    Dump {
        dir: PathBuf,
        /// First entry index to show.
        #[arg(long)]
        from: Option<u64>,
        /// Last entry index to show.
        #[arg(long)]
        to: Option<u64>,
        /// Only this group's records (and the checkpoints, with its bounds).
        #[arg(long)]
        group: Option<u64>,
        /// Whole payloads instead of a 32-byte preview.
        #[arg(long)]
        full: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Verifies every checksum: exit 0 clean, 1 torn tail only, 2 corruption.
    Verify {
        dir: PathBuf,
        /// Also print this group's entries (repeatable).
        #[arg(long = "group")]
        groups: Vec<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Cuts a torn tail, or with --salvage keeps the longest valid prefix; damaged files are
    /// first copied to *.broken. A healthy log is not touched.
    Repair {
        dir: PathBuf,
        #[arg(long)]
        salvage: bool,
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Durable throughput and latency on this disk, beside the disk's own limit.
    Bench(bench::Args),
}

const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Stat { dir, groups, json } => tools::stat(&dir, &groups, json),
        Command::Dump { dir, from, to, group, full, json } => {
            tools::dump(&dir, &tools::DumpFilter { from, to, group }, full, json)
        }
        Command::Verify { dir, groups, json } => tools::verify(&dir, &groups, json),
        Command::Repair { dir, salvage, dry_run } => tools::repair(&dir, salvage, dry_run),
        Command::Bench(args) => bench::run(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(raftwal::Error::Corruption { path, offset, reason }) => {
            eprintln!(
                "raftwal: corruption in {} at offset {offset}: {reason}; `repair --salvage` keeps the log before it",
                path.display()
            );
            ExitCode::from(tools::EXIT_CORRUPT)
        }
        Err(error) => {
            eprintln!("raftwal: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
