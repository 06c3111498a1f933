//! Fuzzing harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays
//! their corpora on stable Rust. Each panics when raftwal breaks a promise, and only then.

use std::path::Path;
use std::sync::Arc;

use arbitrary::{Result as ArbitraryResult, Unstructured};

use super::model::{History, State};
use super::workload::{Generator, submit};
use super::{Fault, SimFs};
use crate::format::{self, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SegmentId};
use crate::{Completion, Error, Options, RecoveryMode, SyncMode, Wal};

const DIR: &str = "/fuzz/wal";

/// Arbitrary bytes as the segment files of a log: `open` must not panic, and a log it opens must
/// read back without error.
///
/// Byte 0 picks how many segments (1 to 3) the rest is split into; bit 0 of byte 1 asks for every
/// well-framed record to get a valid checksum, so that fuzzing reaches the replay rules instead
/// of stopping at the first checksum; bit 1 marks the segments recycled (stale bytes may follow
/// the log's end).
pub fn decode(data: &[u8]) {
    let (Some(&count), Some(&flags)) = (data.first(), data.get(1)) else { return };
    let count = 1 + usize::from(count % 3);
    let body = &data[2..];
    let fs = SimFs::new(0, 512);
    let piece = body.len().div_ceil(count).max(1);
    for (at, chunk) in body.chunks(piece).chain(std::iter::repeat_n(&[][..], count)).take(count).enumerate() {
        let id = SegmentId(at as u64 + 1);
        let salt = 0x5eed + at as u64;
        let bytes = (SEGMENT_HEADER_BYTES + chunk.len()) as u64;
        let mut image = format::encode_segment_header(
            id,
            format::SegmentHeader { salt, bytes, recycled: flags & 2 != 0 },
        )
        .to_vec();
        image.extend_from_slice(chunk);
        if flags & 1 != 0 {
            seal_records(&mut image, format::segment_seed(id, salt));
        }
        write_file(&fs, &Path::new(DIR).join(id.file_name()), &image);
    }
    for recovery in [RecoveryMode::TornTail, RecoveryMode::Strict, RecoveryMode::Salvage] {
        let options = Options { segment_bytes: 4096, recovery, ..Options::default() };
        if let Ok(wal) = Wal::open_with_fs(Arc::new(fs.process()), DIR, options) {
            State::read(&wal).expect("a log that opened reads back");
            wal.close().expect("close");
        }
    }
}

/// Gives every record that is framed within the image a valid checksum for `seed`.
fn seal_records(image: &mut [u8], seed: u32) {
    let framed: Vec<format::Frame> = format::frames(image).collect();
    for frame in framed {
        let Some(kind) = format::Kind::from_u8(frame.kind) else { return };
        let at = frame.offset as usize;
        let head = format::RecordHead {
            kind,
            flags: frame.flags,
            group: frame.group,
            index: frame.index,
            term: frame.term,
        };
        let mut sealed = Vec::with_capacity(frame.record_bytes);
        let payload = &image[at + RECORD_HEADER_BYTES..at + frame.record_bytes];
        format::encode_record(&mut sealed, seed, head, payload);
        image[at..at + frame.record_bytes].copy_from_slice(&sealed[..frame.record_bytes]);
    }
}

fn write_file(fs: &SimFs, path: &Path, bytes: &[u8]) {
    use crate::fs::Fs;
    let file = fs.create_new(path, 0o600).expect("create");
    file.write_all_at(bytes, 0).expect("write");
    file.sync_all().expect("sync");
    fs.sync_dir(path.parent().expect("in a directory")).expect("sync dir");
}

/// An operation sequence with power losses and I/O errors, read from `data`, run on the
/// simulated file system: after every reopen the log must equal the state after some prefix of
/// the submitted records that includes every acknowledged one.
pub fn crash_model(data: &[u8]) {
    let mut input = Unstructured::new(data);
    // Running out of input just ends the run early.
    let _ = run_crash_model(&mut input);
}

fn run_crash_model(input: &mut Unstructured<'_>) -> ArbitraryResult<()> {
    let fs = SimFs::new(input.arbitrary()?, if input.arbitrary()? { 512 } else { 4096 });
    let options = Options {
        segment_bytes: if input.arbitrary()? { 4096 } else { 8192 },
        sync: if input.ratio(1, 8)? { SyncMode::None } else { SyncMode::Data },
        recycled_segments_max: input.int_in_range(0..=4)?,
        relocate_after_segments: input.int_in_range(2..=8)?,
        ..Options::default()
    };
    let mut history = History::default();
    for _ in 0..input.int_in_range(1..=4)? {
        let stop = if input.ratio(1, 3)? { Fault::Crash } else { Fault::PowerLoss };
        fs.plan(input.int_in_range(1..=400)?, stop);
        if input.ratio(1, 4)? {
            fs.plan(input.int_in_range(1..=300)?, Fault::Eio);
        }
        if let Some(wal) = reopen(&fs, &options, &mut history) {
            let outcome = run_ops(input, &wal, &mut history, options.sync);
            // A crash leaves the page cache to the next process; a later power loss must not
            // take back what that process was shown.
            if input.ratio(1, 3)? {
                fs.crash();
            } else {
                fs.power_loss();
            }
            drop(wal);
            outcome?;
        }
        fs.clear_plan();
    }
    fs.power_loss();
    reopen(&fs, &options, &mut history).expect("the last open has no faults planned");
    Ok(())
}

/// Opens, checks the recovered state against `history`, and starts a new history from it.
fn reopen(fs: &SimFs, options: &Options, history: &mut History) -> Option<Wal> {
    let stops = fs.stops();
    let cut_short = |error: &Error| fs.stops() > stops || injected(error);
    let wal = match Wal::open_with_fs(Arc::new(fs.process()), DIR, options.clone()) {
        Ok(wal) => wal,
        Err(error) if cut_short(&error) => return None,
        Err(error) => panic!("open failed: {error}"),
    };
    let state = match State::read(&wal) {
        Ok(state) => state,
        Err(error) if cut_short(&error) => return None,
        Err(error) => panic!("read after open failed: {error}"),
    };
    assert!(
        !history.matching_prefixes(&state).is_empty(),
        "recovered state matches no prefix from {} to {} records\nrecovered: {state:?}\nacked: {:?}",
        history.acked,
        history.ops().len(),
        history.state_after(history.acked)
    );
    *history = History::new(state);
    Some(wal)
}

fn injected(error: &Error) -> bool {
    match error {
        Error::Io(error) => matches!(error.raw_os_error(), Some(5 | 28)),
        Error::Read { source, .. } => source.raw_os_error() == Some(5),
        Error::Poisoned(_) => true,
        _ => false,
    }
}

fn run_ops(
    input: &mut Unstructured<'_>,
    wal: &Wal,
    history: &mut History,
    sync: SyncMode,
) -> ArbitraryResult<()> {
    let mut waiting: Vec<(usize, Completion)> = Vec::new();
    let mut generator = Generator::new(&history.base);
    let mut outcome = Ok(());
    for _ in 0..64 {
        let submitted = match generator.next(input, history.current()) {
            Ok(choice) => submit(wal, choice),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        };
        match submitted {
            Ok((ops, done)) => {
                history.submit(ops);
                waiting.extend(done.map(|done| (history.ops().len(), done)));
            }
            Err(Error::Poisoned(_)) => break,
            // A checkpoint of many groups can leave a small segment no room for a large append.
            Err(error) if injected(&error) || matches!(error, Error::TooLarge { .. }) => {}
            Err(error) => panic!("operation failed: {error}"),
        }
    }
    for (records, done) in waiting {
        match done.wait() {
            Ok(()) if sync == SyncMode::Data => history.acked = history.acked.max(records),
            Ok(()) => {}
            Err(_) => break,
        }
    }
    outcome
}
