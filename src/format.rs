//! On-disk encoding: segment header and record framing. Bytes in, bytes out, no I/O.
//!
//! The full specification, with the torn-write analysis, is `docs/format.md`; keep the two in
//! step. All integers are little-endian.
//!
//! Segment header, `SEGMENT_HEADER_BYTES` long, at offset 0 of every segment file:
//!
//! ```text
//! { magic [8] | version u32 | header_bytes u32 | segment_id u64 | salt u64 | segment_bytes u64 | flags u32 | reserved [16] | crc u32 }
//! ```
//!
//! `crc` is crc32c over the 60 bytes before it. `segment_bytes` is the size the file was
//! preallocated to: a file found shorter (or longer) lost bytes, which no crash can do. `flags`
//! bit 0 (`HEADER_RECYCLED`): the file is a purged segment given a new life, so the bytes after
//! the log's end are the records of earlier lives, not zeros, and the log's end is marked by a
//! zero `record_bytes` word that every write leaves after its last record (see
//! `docs/format.md`). After the header come records, each starting at an offset that is a
//! multiple of `RECORD_ALIGN`:
//!
//! ```text
//! { record_bytes u32 | crc u32 | kind u8 | flags u8 | tag u16 | group u32 | index u64 | term u64 | payload | zero pad }
//! ```
//!
//! `group` is the slot of the group the record belongs to (zero in `Batch` and `Checkpoint`
//! records, which belong to the whole log): a number the log gives each group it creates and
//! never gives again, so a group removed and created again under the same id does not see the
//! records of its earlier incarnation. `record_bytes` counts header and payload but not the pad, so it is never below
//! `RECORD_HEADER_BYTES` and a zero there means "no record here". `crc` is crc32c, seeded with
//! the segment's identity (`segment_seed`), over `record_bytes` and everything from `kind` to the
//! end of the payload: a record copied from another segment, or left over from an earlier life
//! of the file, does not validate. `tag` is the low 16 bits of that seed, so that such a record
//! is told apart before its checksum is computed (the stale bytes of a recycled file are mostly
//! whole records of an earlier life).

use std::fmt;

use crate::value::{HardState, LogId};

/// Identifies a segment file. Ids only grow within a directory and are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl SegmentId {
    /// The file name of this segment: 20 zero-padded decimal digits and `.seg`.
    pub fn file_name(self) -> String {
        format!("{:020}{}", self.0, SEGMENT_SUFFIX)
    }

    /// Parses a name made by `file_name`.
    pub fn parse(name: &str) -> Option<SegmentId> {
        let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(SegmentId)
    }

    pub fn next(self) -> SegmentId {
        SegmentId(self.0 + 1)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

pub const SEGMENT_SUFFIX: &str = ".seg";

pub const SEGMENT_MAGIC: [u8; 8] = *b"RAFTWAL\0";
/// Version 5: the layout described in this module. Version 4 had no groups (its checkpoint held
/// one log's state in fixed fields), version 3 neither header flags nor record tags, version 2 no `segment_bytes` in the header, version 1 no `Metadata` record; none was
/// released, and all are refused like any other version.
pub const FORMAT_VERSION: u32 = 5;
/// Header flag: a recycled file, whose bytes after the log's end are stale, not zeros.
pub const HEADER_RECYCLED: u32 = 1;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const HEADER_BYTES_AT: usize = VERSION_AT + 4;
const SEGMENT_ID_AT: usize = HEADER_BYTES_AT + 4;
const SALT_AT: usize = SEGMENT_ID_AT + 8;
const SEGMENT_BYTES_AT: usize = SALT_AT + 8;
const HEADER_FLAGS_AT: usize = SEGMENT_BYTES_AT + 8;
const HEADER_RESERVED_AT: usize = HEADER_FLAGS_AT + 4;
const HEADER_CRC_AT: usize = HEADER_RESERVED_AT + 16;
pub const SEGMENT_HEADER_BYTES: usize = HEADER_CRC_AT + 4;

const LEN_AT: usize = 0;
const CRC_AT: usize = LEN_AT + 4;
const KIND_AT: usize = CRC_AT + 4;
const FLAGS_AT: usize = KIND_AT + 1;
const TAG_AT: usize = FLAGS_AT + 1;
const GROUP_AT: usize = TAG_AT + 2;
const INDEX_AT: usize = GROUP_AT + 4;
const TERM_AT: usize = INDEX_AT + 8;
pub const RECORD_HEADER_BYTES: usize = TERM_AT + 8;
pub const RECORD_ALIGN: usize = 8;

const _: () = assert!(SEGMENT_HEADER_BYTES == 64);
const _: () = assert!(RECORD_HEADER_BYTES == 32);
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));

/// The largest record `record_bytes` can describe.
pub const RECORD_BYTES_MAX: usize = u32::MAX as usize;

/// What a record says. The numbers are part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// `index`, `term`, payload = the entry's data.
    Entry = 1,
    /// Drops entries `[index, ..)`. Empty payload.
    Truncate = 2,
    /// Drops entries `(.., index]`; `term` is the term of entry `index`. Empty payload.
    Purge = 3,
    /// Payload `{ term u64 | vote u64 | commit u64 }`.
    HardState = 4,
    /// Snapshot `index` and `term`; payload = the caller's opaque snapshot metadata. Flag
    /// `SNAPSHOT_KEEPS_LOG`: the log held entry `index` with `term`, so the entries after it
    /// stayed; without it the whole log was discarded. Recorded rather than recomputed, because
    /// on replay that entry may be in a segment deleted since.
    Snapshot = 5,
    /// First records of every segment: the log's bounds when the segment began, so that older
    /// segments can be deleted. Payload is `Checkpoint::encode`.
    Checkpoint = 6,
    /// First record of every write batch: payload `{ durable_to u64 }`, an offset in this
    /// segment below which every byte was durable before this record was written.
    Batch = 7,
    /// Payload = the caller's opaque metadata (an adapter's vote, commit point, configuration);
    /// the latest one replaces any earlier.
    Metadata = 8,
    /// Creates a group: `group` is its new slot (the checkpoint's `next_slot`, which it then
    /// advances), payload `{ id u64 }`, the caller's id, not held by a live group.
    GroupCreate = 9,
    /// Removes the group in slot `group`, with everything it holds. Empty payload.
    GroupRemove = 10,
}

impl Kind {
    pub(crate) fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Entry,
            2 => Kind::Truncate,
            3 => Kind::Purge,
            4 => Kind::HardState,
            5 => Kind::Snapshot,
            6 => Kind::Checkpoint,
            7 => Kind::Batch,
            8 => Kind::Metadata,
            9 => Kind::GroupCreate,
            10 => Kind::GroupRemove,
            _ => return None,
        })
    }

    /// The name the tools print.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Entry => "entry",
            Kind::Truncate => "truncate",
            Kind::Purge => "purge",
            Kind::HardState => "hard_state",
            Kind::Snapshot => "snapshot",
            Kind::Checkpoint => "checkpoint",
            Kind::Batch => "batch",
            Kind::Metadata => "metadata",
            Kind::GroupCreate => "group_create",
            Kind::GroupRemove => "group_remove",
        }
    }
}

/// The checksum seed of one segment, mixed into every record checksum in it.
pub fn segment_seed(id: SegmentId, salt: u64) -> u32 {
    let mut identity = [0u8; 16];
    identity[..8].copy_from_slice(&id.0.to_le_bytes());
    identity[8..].copy_from_slice(&salt.to_le_bytes());
    crc32c::crc32c(&identity)
}

/// Bytes a record with `payload_bytes` of payload takes, pad included.
pub const fn record_bytes_aligned(payload_bytes: usize) -> usize {
    (RECORD_HEADER_BYTES + payload_bytes).next_multiple_of(RECORD_ALIGN)
}

/// What a segment header says about its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub salt: u64,
    /// The size the file was preallocated to.
    pub bytes: u64,
    /// `HEADER_RECYCLED`: stale records of earlier lives may follow the log's end.
    pub recycled: bool,
}

pub fn encode_segment_header(id: SegmentId, header: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let SegmentHeader { salt, bytes, recycled } = header;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[MAGIC_AT..VERSION_AT].copy_from_slice(&SEGMENT_MAGIC);
    header[VERSION_AT..HEADER_BYTES_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[HEADER_BYTES_AT..SEGMENT_ID_AT].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
    header[SEGMENT_ID_AT..SALT_AT].copy_from_slice(&id.0.to_le_bytes());
    header[SALT_AT..SEGMENT_BYTES_AT].copy_from_slice(&salt.to_le_bytes());
    header[SEGMENT_BYTES_AT..HEADER_FLAGS_AT].copy_from_slice(&bytes.to_le_bytes());
    let flags = if recycled { HEADER_RECYCLED } else { 0 };
    header[HEADER_FLAGS_AT..HEADER_RESERVED_AT].copy_from_slice(&flags.to_le_bytes());
    let crc = crc32c::crc32c(&header[..HEADER_CRC_AT]);
    header[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    Short,
    Magic,
    Checksum,
    Version(u32),
    Flags(u32),
    WrongId(u64),
}

impl fmt::Display for HeaderFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderFault::Short => f.write_str("file shorter than a segment header"),
            HeaderFault::Magic => f.write_str("bad magic"),
            HeaderFault::Checksum => f.write_str("header checksum mismatch"),
            HeaderFault::Version(v) => write!(f, "unsupported format version {v}"),
            HeaderFault::Flags(flags) => write!(f, "unknown header flags {flags:#x}"),
            HeaderFault::WrongId(id) => write!(f, "header names segment {id}"),
        }
    }
}

/// Checks a segment header.
pub fn decode_segment_header(bytes: &[u8], expected: SegmentId) -> Result<SegmentHeader, HeaderFault> {
    let header = bytes.get(..SEGMENT_HEADER_BYTES).ok_or(HeaderFault::Short)?;
    if header[MAGIC_AT..VERSION_AT] != SEGMENT_MAGIC {
        return Err(HeaderFault::Magic);
    }
    if crc32c::crc32c(&header[..HEADER_CRC_AT]) != read_u32(header, HEADER_CRC_AT) {
        return Err(HeaderFault::Checksum);
    }
    let version = read_u32(header, VERSION_AT);
    if version != FORMAT_VERSION || read_u32(header, HEADER_BYTES_AT) as usize != SEGMENT_HEADER_BYTES {
        return Err(HeaderFault::Version(version));
    }
    let flags = read_u32(header, HEADER_FLAGS_AT);
    if flags & !HEADER_RECYCLED != 0 {
        return Err(HeaderFault::Flags(flags));
    }
    let id = read_u64(header, SEGMENT_ID_AT);
    if id != expected.0 {
        return Err(HeaderFault::WrongId(id));
    }
    Ok(SegmentHeader {
        salt: read_u64(header, SALT_AT),
        bytes: read_u64(header, SEGMENT_BYTES_AT),
        recycled: flags & HEADER_RECYCLED != 0,
    })
}

/// `Kind::Snapshot` flag: the entries after the snapshot index stayed.
pub const SNAPSHOT_KEEPS_LOG: u8 = 1;
/// `Kind::Entry` flag: a copy of a live entry, moved out of an older segment so that segment can
/// go; it takes the place of the entry with its index (the same term and data).
pub const ENTRY_RELOCATED: u8 = 1;

/// The fields of a record other than its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHead {
    pub kind: Kind,
    /// Kind-specific flags; zero unless the kind defines some.
    pub flags: u8,
    /// Its group field.
    pub group: u32,
    /// Its index field.
    pub index: u64,
    /// Its term field.
    pub term: u64,
}

/// Appends one record, pad included, to `buf`.
///
/// # Panics
/// If the record would be longer than `RECORD_BYTES_MAX`; callers bound payloads first.
pub fn encode_record(buf: &mut Vec<u8>, seed: u32, head: RecordHead, payload: &[u8]) {
    let record_bytes = RECORD_HEADER_BYTES + payload.len();
    assert!(record_bytes <= RECORD_BYTES_MAX, "record of {record_bytes} bytes");
    let start = buf.len();
    buf.extend_from_slice(&(record_bytes as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&[head.kind as u8, head.flags]);
    buf.extend_from_slice(&seed_tag(seed));
    buf.extend_from_slice(&head.group.to_le_bytes());
    buf.extend_from_slice(&head.index.to_le_bytes());
    buf.extend_from_slice(&head.term.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = record_crc(seed, &buf[start..start + record_bytes]);
    buf[start + CRC_AT..start + KIND_AT].copy_from_slice(&crc.to_le_bytes());
    buf.resize(start + record_bytes.next_multiple_of(RECORD_ALIGN), 0);
}

/// The tag every record of a segment carries: the low 16 bits of its seed.
fn seed_tag(seed: u32) -> [u8; 2] {
    (seed as u16).to_le_bytes()
}

fn record_crc(seed: u32, record: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(seed, &record[LEN_AT..CRC_AT]);
    crc32c::crc32c_append(crc, &record[KIND_AT..])
}

/// A record read back from bytes that validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub head: RecordHead,
    pub payload: &'a [u8],
    /// Bytes the record takes, pad included: the next record starts this far on.
    pub bytes_aligned: usize,
}

/// Why no record could be read at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFault {
    /// `record_bytes` is zero: nothing was written here (the end of a preallocated segment).
    Empty,
    /// Fewer bytes remain than a header, or than `record_bytes` says.
    Short,
    /// `record_bytes` is below the header size.
    BadLength,
    /// The checksum does not match: torn, stale or damaged bytes.
    Checksum,
    /// The checksum matches but the kind is unknown to this version.
    UnknownKind(u8),
}

impl fmt::Display for RecordFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordFault::Empty => f.write_str("no record"),
            RecordFault::Short => f.write_str("record runs past the end of the segment"),
            RecordFault::BadLength => f.write_str("record length below the header size"),
            RecordFault::Checksum => f.write_str("record checksum mismatch"),
            RecordFault::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
        }
    }
}

/// Reads the record at the start of `bytes`.
pub fn decode_record(bytes: &[u8], seed: u32) -> Result<Record<'_>, RecordFault> {
    decode(bytes, Some(seed))
}

/// Decodes a record that `decode_record` accepted at the same place of the same (unchanged)
/// bytes before, without computing its checksum again.
pub fn decode_verified_record(bytes: &[u8]) -> Result<Record<'_>, RecordFault> {
    decode(bytes, None)
}

fn decode(bytes: &[u8], seed: Option<u32>) -> Result<Record<'_>, RecordFault> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return if bytes.len() >= 4 && read_u32(bytes, LEN_AT) == 0 {
            Err(RecordFault::Empty)
        } else {
            Err(RecordFault::Short)
        };
    }
    let record_bytes = read_u32(bytes, LEN_AT) as usize;
    if record_bytes == 0 {
        return Err(RecordFault::Empty);
    }
    if record_bytes < RECORD_HEADER_BYTES {
        return Err(RecordFault::BadLength);
    }
    let record = bytes.get(..record_bytes).ok_or(RecordFault::Short)?;
    // A record of another seed fails its checksum too; the tag says so without computing it.
    if let Some(seed) = seed
        && (record[TAG_AT..GROUP_AT] != seed_tag(seed)
            || record_crc(seed, record) != read_u32(record, CRC_AT))
    {
        return Err(RecordFault::Checksum);
    }
    let kind = Kind::from_u8(record[KIND_AT]).ok_or(RecordFault::UnknownKind(record[KIND_AT]))?;
    Ok(Record {
        head: RecordHead {
            kind,
            flags: record[FLAGS_AT],
            group: read_u32(record, GROUP_AT),
            index: read_u64(record, INDEX_AT),
            term: read_u64(record, TERM_AT),
        },
        payload: &record[RECORD_HEADER_BYTES..],
        bytes_aligned: record_bytes.next_multiple_of(RECORD_ALIGN),
    })
}

/// A batch record's length, pad included (it needs none).
pub const BATCH_RECORD_BYTES: usize = RECORD_HEADER_BYTES + BATCH_PAYLOAD_BYTES;
const _: () = assert!(BATCH_RECORD_BYTES.is_multiple_of(RECORD_ALIGN));

/// The `durable_to` of the batch record that starts `bytes`, if a valid one does. Only words
/// with a batch record's length and kind are checksummed, so looking for one at every word of a
/// region costs one pass over it, whatever lengths its other words claim.
pub fn batch_claim(bytes: &[u8], seed: u32) -> Option<u64> {
    let candidate = bytes.len() >= BATCH_RECORD_BYTES
        && read_u32(bytes, LEN_AT) as usize == BATCH_RECORD_BYTES
        && bytes[KIND_AT] == Kind::Batch as u8;
    if !candidate {
        return None;
    }
    let record = decode_record(bytes, seed).ok()?;
    decode_u64s::<1>(record.payload).map(|[durable_to]| durable_to)
}

/// The aligned length of the record that starts `bytes`, if one that validates for `seed` does.
/// Only words framed like a record of this seed (its tag, a known kind, a length that fits) are
/// checksummed: the records of earlier lives in a recycled file carry other tags, so looking for
/// one at every word of such a region costs one pass of word compares.
#[inline]
pub fn valid_record_at(bytes: &[u8], seed: u32) -> Option<usize> {
    let header = bytes.get(..RECORD_HEADER_BYTES)?;
    // Cheapest first: of random bytes, one word in 2^21 gets past the tag and the kind.
    let framed = header[TAG_AT..GROUP_AT] == seed_tag(seed)
        && Kind::from_u8(header[KIND_AT]).is_some()
        && (RECORD_HEADER_BYTES..=bytes.len()).contains(&(read_u32(header, LEN_AT) as usize));
    if !framed {
        return None;
    }
    decode_record(bytes, seed).ok().map(|record| record.bytes_aligned)
}

/// A record's framing, read without checking its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Where the record starts in its segment.
    pub offset: u64,
    /// Its `record_bytes`: header and payload, pad excluded.
    pub record_bytes: usize,
    /// Its kind byte (see `docs/format.md`), whatever the value.
    pub kind: u8,
    /// Its flag bits.
    pub flags: u8,
    /// Its group field.
    pub group: u32,
    /// Its index field.
    pub index: u64,
    /// Its term field.
    pub term: u64,
}

/// The records of a segment image from the header on, walked by their lengths alone, up to a
/// zero length, a length below the header's, or one that runs past the end. For tools and tests
/// that look at the bytes; recovery verifies every record instead.
pub fn frames(segment: &[u8]) -> impl Iterator<Item = Frame> + '_ {
    let mut at = SEGMENT_HEADER_BYTES;
    std::iter::from_fn(move || {
        let header = segment.get(at..at.checked_add(RECORD_HEADER_BYTES)?)?;
        let record_bytes = read_u32(header, LEN_AT) as usize;
        if record_bytes < RECORD_HEADER_BYTES || record_bytes > segment.len() - at {
            return None;
        }
        let frame = Frame {
            offset: at as u64,
            record_bytes,
            kind: header[KIND_AT],
            flags: header[FLAGS_AT],
            group: read_u32(header, GROUP_AT),
            index: read_u64(header, INDEX_AT),
            term: read_u64(header, TERM_AT),
        };
        at += record_bytes.next_multiple_of(RECORD_ALIGN);
        Some(frame)
    })
}

/// `record_bytes` of the record header at the start of `header`.
pub fn record_bytes(header: &[u8; RECORD_HEADER_BYTES]) -> usize {
    read_u32(header, LEN_AT) as usize
}

/// Payload of a `Kind::Checkpoint` record: the whole state of every group when its segment
/// began, so that every older segment can be deleted without losing anything still live. All
/// numbers are LEB128 varints (7 bits a byte, low first), so an idle group costs about ten bytes:
///
/// ```text
/// { next_slot | groups | group* }
/// group = { slot | id | flags u8 | first | next - first
///           | [purged_index | purged_term]        if flags bit 1
///           | [hs_term | hs_vote | hs_commit]     if flags bit 2
///           | [snapshot_index | snapshot_term | snapshot_bytes | snapshot_data]  if flags bit 3
///           | [metadata_bytes | metadata]         if flags bit 4 }
/// ```
///
/// flags bit 0: anchored (the next index is fixed). Groups come in ascending slot order, every
/// slot below `next_slot`; slot 0 is the default group and is always there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    /// The slot the next created group gets: slots are never reused, so a record names one
    /// incarnation of a group.
    pub next_slot: u32,
    pub groups: Vec<GroupCheckpoint<'a>>,
}

/// One group's state in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCheckpoint<'a> {
    pub slot: u32,
    pub id: u64,
    pub log: LogCheckpoint<'a>,
}

/// One group's log state in a checkpoint, borrowing its byte fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCheckpoint<'a> {
    pub first: u64,
    pub next: u64,
    pub anchored: bool,
    pub purged: Option<LogId>,
    pub hard_state: Option<HardState>,
    /// The snapshot's last entry and its data.
    pub snapshot: Option<(LogId, &'a [u8])>,
    pub metadata: Option<&'a [u8]>,
}

const CHECKPOINT_ANCHORED: u8 = 1;
const CHECKPOINT_PURGED: u8 = 2;
const CHECKPOINT_HARD_STATE: u8 = 4;
const CHECKPOINT_SNAPSHOT: u8 = 8;
const CHECKPOINT_METADATA: u8 = 16;
const CHECKPOINT_FLAGS_KNOWN: u8 = CHECKPOINT_ANCHORED
    | CHECKPOINT_PURGED
    | CHECKPOINT_HARD_STATE
    | CHECKPOINT_SNAPSHOT
    | CHECKPOINT_METADATA;
pub const HARD_STATE_PAYLOAD_BYTES: usize = 24;
pub const BATCH_PAYLOAD_BYTES: usize = 8;
/// Payload of a `Kind::GroupCreate` record: `{ id u64 }`.
pub const GROUP_CREATE_PAYLOAD_BYTES: usize = 8;
/// The fewest bytes a group adds to a checkpoint.
pub const GROUP_CHECKPOINT_BYTES_MIN: usize = 5;
/// The most bytes a varint takes (a `u64`).
pub const VARINT_BYTES_MAX: usize = 10;
/// The most bytes a checkpoint's header takes: `next_slot` and the group count, both `u32`.
pub const CHECKPOINT_HEADER_BYTES_MAX: usize = 2 * varint_bytes_const(u32::MAX as u64);
/// The numbers of a group's checkpoint entry that operations change without a size check:
/// first, count, purged (index, term), hard state (term, vote, commit) and the snapshot's last
/// entry (index, term). Charged at their largest, whatever they hold now.
const GROUP_CHECKPOINT_NUMBERS: usize = 9;

impl<'a> Checkpoint<'a> {
    /// Bytes of the checkpoint's header, before its groups.
    pub fn header_bytes(next_slot: u32, groups: usize) -> usize {
        let mut counter = Counter(0);
        put_varint(&mut counter, u64::from(next_slot));
        put_varint(&mut counter, groups as u64);
        counter.0
    }

    /// Encodes a checkpoint of `count` groups, given in ascending slot order.
    pub fn encode<'g>(
        next_slot: u32,
        count: usize,
        groups: impl Iterator<Item = GroupCheckpoint<'g>>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(next_slot));
        put_varint(&mut out, count as u64);
        let mut written = 0;
        for group in groups {
            group.write(&mut out);
            written += 1;
        }
        assert_eq!(written, count, "checkpoint group count");
        out
    }

    /// Decodes a checkpoint, borrowing from `payload`; `None` if the bytes are not one this
    /// version writes. Every checkpoint has exactly one encoding, so equal states encode equal.
    pub fn decode(payload: &'a [u8]) -> Option<Checkpoint<'a>> {
        let mut input = payload;
        let next_slot = u32::try_from(take_varint(&mut input)?).ok()?;
        let count = take_varint(&mut input)?;
        // Every group takes at least GROUP_CHECKPOINT_BYTES_MIN: no count makes this allocate much.
        let mut groups =
            Vec::with_capacity(usize::try_from(count).ok()?.min(input.len() / GROUP_CHECKPOINT_BYTES_MIN));
        for _ in 0..count {
            let slot = u32::try_from(take_varint(&mut input)?).ok()?;
            let in_order = groups.last().is_none_or(|last: &GroupCheckpoint<'_>| last.slot < slot);
            let default_first = !groups.is_empty() || slot == 0;
            if !in_order || !default_first || slot >= next_slot {
                return None;
            }
            let id = take_varint(&mut input)?;
            let (&flags, rest) = input.split_first()?;
            input = rest;
            if flags & !CHECKPOINT_FLAGS_KNOWN != 0 {
                return None;
            }
            let first = take_varint(&mut input)?;
            let next = first.checked_add(take_varint(&mut input)?)?;
            let has = |bit| flags & bit != 0;
            let purged = match has(CHECKPOINT_PURGED) {
                true => Some(LogId { index: take_varint(&mut input)?, term: take_varint(&mut input)? }),
                false => None,
            };
            let hard_state = match has(CHECKPOINT_HARD_STATE) {
                true => Some(HardState {
                    term: take_varint(&mut input)?,
                    vote: take_varint(&mut input)?,
                    commit: take_varint(&mut input)?,
                }),
                false => None,
            };
            let snapshot = match has(CHECKPOINT_SNAPSHOT) {
                true => {
                    let last = LogId { index: take_varint(&mut input)?, term: take_varint(&mut input)? };
                    Some((last, take_bytes(&mut input)?))
                }
                false => None,
            };
            let metadata = match has(CHECKPOINT_METADATA) {
                true => Some(take_bytes(&mut input)?),
                false => None,
            };
            let anchored = has(CHECKPOINT_ANCHORED);
            let log = LogCheckpoint { first, next, anchored, purged, hard_state, snapshot, metadata };
            groups.push(GroupCheckpoint { slot, id, log });
        }
        (input.is_empty() && !groups.is_empty()).then_some(Checkpoint { next_slot, groups })
    }
}

impl GroupCheckpoint<'_> {
    /// The most bytes this group can take in a checkpoint without changing its snapshot data or
    /// metadata: its slot and id as they are, its flags, each number at its largest
    /// (`VARINT_BYTES_MAX`), its snapshot data and metadata as they are. Only creating a group,
    /// saving metadata and installing a snapshot change it; every other operation changes the
    /// checkpoint only within it.
    pub fn bytes_max(&self) -> usize {
        let blob =
            |bytes: Option<&[u8]>| bytes.map_or(0, |bytes| varint_bytes(bytes.len() as u64) + bytes.len());
        Self::idle_bytes_max(self.slot, self.id)
            + blob(self.log.snapshot.map(|(_, data)| data))
            + blob(self.log.metadata)
    }

    /// `bytes_max` of a group with neither snapshot data nor metadata.
    pub fn idle_bytes_max(slot: u32, id: u64) -> usize {
        varint_bytes(u64::from(slot)) + varint_bytes(id) + 1 + GROUP_CHECKPOINT_NUMBERS * VARINT_BYTES_MAX
    }

    /// Bytes this group takes in a checkpoint.
    pub fn encoded_bytes(&self) -> usize {
        let mut counter = Counter(0);
        self.write(&mut counter);
        counter.0
    }

    fn write(&self, out: &mut impl Sink) {
        let GroupCheckpoint { slot, id, log } = self;
        put_varint(out, u64::from(*slot));
        put_varint(out, *id);
        let flags = [
            (log.anchored, CHECKPOINT_ANCHORED),
            (log.purged.is_some(), CHECKPOINT_PURGED),
            (log.hard_state.is_some(), CHECKPOINT_HARD_STATE),
            (log.snapshot.is_some(), CHECKPOINT_SNAPSHOT),
            (log.metadata.is_some(), CHECKPOINT_METADATA),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .fold(0, |flags, (_, bit)| flags | bit);
        out.put(&[flags]);
        put_varint(out, log.first);
        put_varint(out, log.next - log.first);
        if let Some(purged) = log.purged {
            put_varint(out, purged.index);
            put_varint(out, purged.term);
        }
        if let Some(HardState { term, vote, commit }) = log.hard_state {
            for value in [term, vote, commit] {
                put_varint(out, value);
            }
        }
        if let Some((last, data)) = log.snapshot {
            put_varint(out, last.index);
            put_varint(out, last.term);
            put_bytes(out, data);
        }
        if let Some(metadata) = log.metadata {
            put_bytes(out, metadata);
        }
    }
}

/// Where `Checkpoint::write` puts bytes: a buffer, or a counter that only sizes them.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Bytes `value` takes as a varint.
pub fn varint_bytes(value: u64) -> usize {
    varint_bytes_const(value)
}

const fn varint_bytes_const(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    if bits == 0 { 1 } else { bits.div_ceil(7) }
}

const _: () = assert!(varint_bytes_const(u64::MAX) == VARINT_BYTES_MAX);

fn put_varint(out: &mut impl Sink, mut value: u64) {
    let mut buf = [0u8; 10];
    let mut len = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf[len] = low;
            len += 1;
            break;
        }
        buf[len] = low | 0x80;
        len += 1;
    }
    out.put(&buf[..len]);
}

fn put_bytes(out: &mut impl Sink, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.put(bytes);
}

/// Reads a varint off the front of `input`; `None` if it is cut off, longer than ten bytes,
/// overflows, or is not the shortest encoding (so that every value has one encoding).
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (at, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * at as u32;
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            if at > 0 && byte == 0 {
                return None;
            }
            *input = &input[at + 1..];
            return Some(value);
        }
    }
    None
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Some(bytes)
}

/// Writes `N` little-endian u64s into `B = N * 8` bytes.
pub fn encode_u64s<const N: usize, const B: usize>(values: [u64; N]) -> [u8; B] {
    const { assert!(N * 8 == B) };
    let mut out = [0u8; B];
    for (at, value) in values.into_iter().enumerate() {
        out[at * 8..at * 8 + 8].copy_from_slice(&value.to_le_bytes());
    }
    out
}

/// Reads `N` little-endian u64s from a payload of exactly `N * 8` bytes.
pub fn decode_u64s<const N: usize>(payload: &[u8]) -> Option<[u64; N]> {
    if payload.len() != N * 8 {
        return None;
    }
    Some(std::array::from_fn(|at| read_u64(payload, at * 8)))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u32 = 0x5eed;

    fn entry(index: u64, term: u64) -> RecordHead {
        RecordHead { kind: Kind::Entry, flags: 0, group: 0, index, term }
    }

    #[test]
    fn record_roundtrip() {
        let mut buf = Vec::new();
        encode_record(&mut buf, SEED, entry(7, 3), b"hello");
        encode_record(
            &mut buf,
            SEED,
            RecordHead { kind: Kind::Truncate, flags: 0, group: 9, index: 5, term: 0 },
            b"",
        );
        assert_eq!(buf.len(), record_bytes_aligned(5) + record_bytes_aligned(0));
        assert_eq!(buf.len() % RECORD_ALIGN, 0);

        let first = decode_record(&buf, SEED).unwrap();
        assert_eq!(first.head, entry(7, 3));
        assert_eq!(first.payload, b"hello");
        assert_eq!(first.bytes_aligned, record_bytes_aligned(5));
        let second = decode_record(&buf[first.bytes_aligned..], SEED).unwrap();
        assert_eq!(second.head.kind, Kind::Truncate);
        assert_eq!(second.head.group, 9);
        assert_eq!(second.payload, b"");
        assert_eq!(
            decode_record(&buf[first.bytes_aligned + second.bytes_aligned..], SEED),
            Err(RecordFault::Short)
        );
    }

    #[test]
    fn record_detects_corruption() {
        let mut buf = Vec::new();
        encode_record(&mut buf, SEED, entry(7, 3), b"payload bytes");
        let record_len = RECORD_HEADER_BYTES + 13;
        for at in 0..record_len {
            if (CRC_AT..KIND_AT).contains(&at) {
                continue;
            }
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[at] ^= 1 << bit;
                assert!(decode_record(&damaged, SEED).is_err(), "flip at byte {at} bit {bit}");
            }
        }
        let mut damaged = buf.clone();
        damaged[CRC_AT] ^= 1;
        assert_eq!(decode_record(&damaged, SEED), Err(RecordFault::Checksum));
        // The same bytes in another segment (another seed) do not validate.
        assert_eq!(decode_record(&buf, SEED + 1), Err(RecordFault::Checksum));
        // A torn record: the tail is cut off.
        assert_eq!(decode_record(&buf[..record_len - 1], SEED), Err(RecordFault::Short));
        assert_eq!(decode_record(&[0u8; 64], SEED), Err(RecordFault::Empty));
    }

    #[test]
    fn segment_header_roundtrip() {
        let fields = SegmentHeader { salt: 0xdead_beef, bytes: 1 << 20, recycled: true };
        let header = encode_segment_header(SegmentId(42), fields);
        assert_eq!(decode_segment_header(&header, SegmentId(42)), Ok(fields));
        assert_eq!(decode_segment_header(&header, SegmentId(43)), Err(HeaderFault::WrongId(42)));
    }

    #[test]
    fn segment_header_detects_corruption() {
        let header =
            encode_segment_header(SegmentId(42), SegmentHeader { salt: 7, bytes: 4096, recycled: false });
        for at in SEGMENT_MAGIC.len()..SEGMENT_HEADER_BYTES {
            let mut damaged = header;
            damaged[at] ^= 0x10;
            assert_eq!(
                decode_segment_header(&damaged, SegmentId(42)),
                Err(HeaderFault::Checksum),
                "flip at {at}"
            );
        }
        let mut damaged = header;
        damaged[0] ^= 1;
        assert_eq!(decode_segment_header(&damaged, SegmentId(42)), Err(HeaderFault::Magic));
        assert_eq!(decode_segment_header(&header[..10], SegmentId(42)), Err(HeaderFault::Short));
    }

    fn group(slot: u32, id: u64, log: LogCheckpoint<'_>) -> GroupCheckpoint<'_> {
        GroupCheckpoint { slot, id, log }
    }

    fn idle(first: u64) -> LogCheckpoint<'static> {
        LogCheckpoint {
            first,
            next: first,
            anchored: false,
            purged: None,
            hard_state: None,
            snapshot: None,
            metadata: None,
        }
    }

    fn encode(checkpoint: &Checkpoint<'_>) -> Vec<u8> {
        Checkpoint::encode(checkpoint.next_slot, checkpoint.groups.len(), checkpoint.groups.iter().copied())
    }

    fn sample_checkpoint() -> Checkpoint<'static> {
        Checkpoint {
            next_slot: 9,
            groups: vec![
                group(0, 0, idle(0)),
                group(
                    3,
                    u64::MAX,
                    LogCheckpoint {
                        first: 11,
                        next: 20,
                        anchored: true,
                        purged: Some(LogId { index: 10, term: 4 }),
                        hard_state: Some(HardState { term: 5, vote: 2, commit: u64::MAX }),
                        snapshot: Some((LogId { index: 10, term: 4 }, b"membership")),
                        metadata: Some(b"vote"),
                    },
                ),
                group(
                    8,
                    1 << 40,
                    LogCheckpoint {
                        anchored: true,
                        snapshot: Some((LogId::default(), b"")),
                        metadata: Some(b""),
                        ..idle(1)
                    },
                ),
            ],
        }
    }

    #[test]
    fn checkpoint_roundtrip() {
        let one = Checkpoint { next_slot: 1, groups: vec![group(0, 0, idle(0))] };
        for checkpoint in [one, sample_checkpoint()] {
            let bytes = encode(&checkpoint);
            let sized: usize = checkpoint.groups.iter().map(GroupCheckpoint::encoded_bytes).sum();
            assert_eq!(
                bytes.len(),
                Checkpoint::header_bytes(checkpoint.next_slot, checkpoint.groups.len()) + sized
            );
            assert_eq!(Checkpoint::decode(&bytes), Some(checkpoint));
        }
    }

    #[test]
    fn checkpoint_of_idle_groups_is_small() {
        let groups: Vec<_> = (0..10_000).map(|slot| group(slot, u64::from(slot) * 7, idle(0))).collect();
        let bytes = Checkpoint::encode(10_000, groups.len(), groups.into_iter()).len();
        assert!(bytes <= 10_000 * 10, "{bytes} bytes for 10,000 idle groups");
    }

    #[test]
    fn checkpoint_detects_corruption() {
        let bytes = encode(&sample_checkpoint());
        for cut in 0..bytes.len() {
            assert_eq!(Checkpoint::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(1);
        assert_eq!(Checkpoint::decode(&trailing), None);
        // Slot 3's flags byte (after next_slot, count, slot 0's five bytes, slot 3 and its id).
        let flags_at = 1 + 1 + 5 + 1 + 10;
        assert_eq!(bytes[flags_at], 0x1f);
        let mut unknown_flag = bytes.clone();
        unknown_flag[flags_at] |= 0x80;
        assert_eq!(Checkpoint::decode(&unknown_flag), None);
        let mut slot_past_next = bytes.clone();
        slot_past_next[0] = 8;
        assert_eq!(Checkpoint::decode(&slot_past_next), None, "slot 8 is not below next_slot");
        let no_default = Checkpoint { next_slot: 2, groups: vec![group(1, 1, idle(0))] };
        assert_eq!(Checkpoint::decode(&encode(&no_default)), None, "the default group is missing");
        let out_of_order = Checkpoint {
            next_slot: 3,
            groups: vec![group(0, 0, idle(0)), group(2, 1, idle(0)), group(1, 2, idle(0))],
        };
        assert_eq!(Checkpoint::decode(&encode(&out_of_order)), None);
    }

    #[test]
    fn varints_roundtrip_and_have_one_encoding() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_bytes(value));
            let mut input = &buf[..];
            assert_eq!(take_varint(&mut input), Some(value));
            assert!(input.is_empty());
        }
        assert_eq!(take_varint(&mut &[0x80, 0x00][..]), None, "a zero continuation is overlong");
        assert_eq!(take_varint(&mut &[0xff; 10][..]), None, "past 64 bits");
        assert_eq!(take_varint(&mut &[0x80][..]), None, "cut off");
    }

    #[test]
    fn segment_names() {
        let id = SegmentId(1234);
        assert_eq!(id.file_name(), "00000000000000001234.seg");
        assert_eq!(SegmentId::parse(&id.file_name()), Some(id));
        assert_eq!(SegmentId::parse("1234.seg"), None);
        assert_eq!(SegmentId::parse("0000000000000000123x.seg"), None);
        assert_eq!(SegmentId::parse("00000000000000001234.seg.tmp"), None);
    }
}
