//! What the openraft adapters' entry encoding costs: MessagePack with structs as maps, checked by
//! decoding it back before it is written (what `raftwal::raft::openraft` does at `append`),
//! against postcard (what it did before, which cannot read back every serde type openraft
//! accepts), per entry, and the decoding at read. Prints each encoding's size once.
//! `cargo bench --features openraft --bench codec -- --quick` for a short run.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::collections::BTreeSet;

use criterion::{Criterion, criterion_group, criterion_main};
use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::type_config::alias::{EntryOf, LogIdOf};
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, Membership};

openraft::declare_raft_types!(
    /// A key-value command as the application's data.
    Config: D = Command, R = ()
);

/// A typical replicated command: a key, a value and a request id.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Command {
    key: String,
    value: String,
    request: u64,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

type Entry = EntryOf<Config>;

fn log_id(index: u64) -> LogIdOf<Config> {
    LogIdOf::<Config>::new(LeaderId::new_committed(3, 1), index)
}

fn entries() -> Vec<(&'static str, Entry)> {
    let command = Command { key: "user/000042".into(), value: "v".repeat(100), request: 1 << 40 };
    let membership = Membership::new_with_defaults(vec![BTreeSet::from([1, 2, 3])], [1, 2, 3]);
    vec![
        ("command of 128 B", Entry::new(log_id(1_000_000), EntryPayload::Normal(command))),
        ("membership of 3", Entry::new(log_id(1_000_001), EntryPayload::Membership(membership))),
    ]
}

fn msgpack_checked(entry: &Entry) -> Vec<u8> {
    let bytes = rmp_serde::to_vec_named(entry).unwrap();
    let back: Entry = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back.index(), entry.index());
    bytes
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("openraft entry");
    for (name, entry) in entries() {
        let postcard = postcard::to_stdvec(&entry).unwrap();
        let msgpack = msgpack_checked(&entry);
        println!("{name}: postcard {} bytes, MessagePack {} bytes", postcard.len(), msgpack.len());
        group.bench_function(format!("{name}: postcard encode"), |b| {
            b.iter(|| postcard::to_stdvec(&entry).unwrap())
        });
        group.bench_function(format!("{name}: MessagePack encode"), |b| {
            b.iter(|| rmp_serde::to_vec_named(&entry).unwrap())
        });
        group.bench_function(format!("{name}: MessagePack encode + read-back check"), |b| {
            b.iter(|| msgpack_checked(&entry))
        });
        group.bench_function(format!("{name}: postcard decode"), |b| {
            b.iter(|| postcard::from_bytes::<Entry>(&postcard).unwrap())
        });
        group.bench_function(format!("{name}: MessagePack decode"), |b| {
            b.iter(|| rmp_serde::from_slice::<Entry>(&msgpack).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
