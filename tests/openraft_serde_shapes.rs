//! openraft asks only that the application's data be a serde type. Every shape a serde type can
//! take reads back through both openraft adapters (0.10 and 0.9), from the open store and after a
//! reopen: `serde_json::Value`, internally, adjacently and externally tagged and untagged enums,
//! `flatten`, and fields skipped with `skip_serializing_if` or filled by `default`. A type whose
//! bytes would not read back is refused at `append`: nothing of the call is written and no
//! callback reports it durable.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::io::Cursor;

use openraft::entry::RaftEntry as _;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, RaftLogReader as _, RaftLogStorage as _};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::vote::RaftLeaderIdExt;
use openraft_v09::storage::{RaftLogStorage as _, RaftLogStorageExt as _};
use openraft_v09::{
    CommittedLeaderId, Entry as EntryV09, EntryPayload as PayloadV09, LogId as LogIdV09, RaftLogReader as _,
};
use raftwal::Options;
use raftwal::raft::openraft::LogStore;
use raftwal::raft::openraft_v09::LogStore as LogStoreV09;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
enum Internally {
    Set { key: String, value: serde_json::Value },
    Delete { key: String },
    Clear,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacently {
    Number(i64),
    Text(String),
    Pair(u8, Option<bool>),
    Unit,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Count(u64),
    Name(String),
    Point { x: f64, y: f64 },
    List(Vec<Untagged>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Externally {
    Unit,
    Newtype(i32),
    Tuple(u16, String),
    Struct { bytes: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Flattened {
    id: u64,
    #[serde(flatten)]
    header: Header,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Header {
    client: String,
    sequence: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Skipping {
    always: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip)]
    local: u8,
    #[serde(default = "seven")]
    defaulted: u32,
}

/// openraft 0.10 wants its data `Display`.
macro_rules! display_as_debug {
    ($($data:ty),*) => {$(
        impl fmt::Display for $data {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                Debug::fmt(self, f)
            }
        }
    )*};
}

display_as_debug!(Internally, Adjacently, Untagged, Externally, Flattened, Skipping, Mixed);

fn seven() -> u32 {
    7
}

fn json_values() -> Vec<serde_json::Value> {
    vec![
        json!(null),
        json!({ "op": "set", "key": "a", "value": [1, -2, 3.5, u64::MAX, i64::MIN], "nested": { "ok": true } }),
        json!("text"),
        json!([]),
        json!({}),
        json!(-0.25),
    ]
}

fn internally() -> Vec<Internally> {
    vec![
        Internally::Set { key: "k".into(), value: json!({ "a": [1, 2] }) },
        Internally::Delete { key: "k".into() },
        Internally::Clear,
    ]
}

fn adjacently() -> Vec<Adjacently> {
    vec![Adjacently::Number(-5), Adjacently::Text("t".into()), Adjacently::Pair(1, None), Adjacently::Unit]
}

fn untagged() -> Vec<Untagged> {
    vec![
        Untagged::Count(3),
        Untagged::Name("n".into()),
        Untagged::Point { x: 1.5, y: -2.0 },
        Untagged::List(vec![Untagged::Count(1), Untagged::Name("m".into())]),
    ]
}

fn externally() -> Vec<Externally> {
    vec![
        Externally::Unit,
        Externally::Newtype(-1),
        Externally::Tuple(9, "x".into()),
        Externally::Struct { bytes: vec![0, 255] },
    ]
}

fn flattened() -> Vec<Flattened> {
    vec![
        Flattened {
            id: 1,
            header: Header { client: "c".into(), sequence: 4 },
            rest: BTreeMap::from([("extra".to_string(), json!([1, "two"])), ("z".to_string(), json!(null))]),
        },
        Flattened { id: 2, header: Header { client: String::new(), sequence: 0 }, rest: BTreeMap::new() },
    ]
}

fn skipping() -> Vec<Skipping> {
    vec![
        Skipping { always: 1, note: None, tags: Vec::new(), local: 0, defaulted: 7 },
        Skipping { always: 2, note: Some("n".into()), tags: vec!["t".into()], local: 0, defaulted: 9 },
    ]
}

fn options() -> Options {
    Options { segment_bytes: 1 << 20, ..Options::default() }
}

/// One module per shape: a type config of each openraft version with that shape as its data; in
/// each adapter, the entries are appended (waiting for the flush callback), read back, and read
/// again after a reopen.
macro_rules! round_trips {
    ($($shape:ident: $data:ty = $values:expr;)*) => {$(
        mod $shape {
            use super::*;

            openraft::declare_raft_types!(Config: D = $data, R = ());
            openraft_v09::declare_raft_types!(ConfigV09: D = $data, R = ());

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_back_through_openraft_0_10() {
                let log_id = |index| LogIdOf::<Config>::new(LeaderId::new_committed(1, 1), index);
                let entries = $values
                    .into_iter()
                    .zip(1..)
                    .map(|(data, index)| EntryOf::<Config>::new_normal(log_id(index), data))
                    .collect::<Vec<_>>();
                let dir = tempfile::tempdir().unwrap();
                {
                    let mut store = LogStore::<Config>::open(dir.path(), options()).unwrap();
                    store.save_vote(&VoteOf::<Config>::new_committed(1, 1)).await.unwrap();
                    let (tx, rx) = Config::oneshot();
                    store.append(entries.clone(), IOFlushed::signal(tx)).await.unwrap();
                    rx.await.unwrap().unwrap();
                    let mut reader = store.get_log_reader().await;
                    assert_eq!(reader.try_get_log_entries(..).await.unwrap(), entries);
                    store.wal().close().unwrap();
                }
                let mut store = LogStore::<Config>::open(dir.path(), options()).unwrap();
                let last = entries.last().map(|entry| entry.log_id());
                assert_eq!(store.get_log_state().await.unwrap().last_log_id, last);
                let mut reader = store.get_log_reader().await;
                assert_eq!(reader.try_get_log_entries(..).await.unwrap(), entries, "after a reopen");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_back_through_openraft_0_9() {
                let entries = $values
                    .into_iter()
                    .zip(1..)
                    .map(|(data, index)| EntryV09::<ConfigV09> {
                        log_id: LogIdV09::new(CommittedLeaderId::new(1, 1), index),
                        payload: PayloadV09::Normal(data),
                    })
                    .collect::<Vec<_>>();
                let dir = tempfile::tempdir().unwrap();
                {
                    let mut store = LogStoreV09::<ConfigV09>::open(dir.path(), options()).unwrap();
                    store.save_vote(&openraft_v09::Vote::new_committed(1, 1)).await.unwrap();
                    store.blocking_append(entries.clone()).await.unwrap();
                    assert_eq!(store.try_get_log_entries(..).await.unwrap(), entries);
                    store.wal().close().unwrap();
                }
                let mut store = LogStoreV09::<ConfigV09>::open(dir.path(), options()).unwrap();
                let last = entries.last().map(|entry| entry.log_id);
                assert_eq!(store.get_log_state().await.unwrap().last_log_id, last);
                assert_eq!(store.try_get_log_entries(..).await.unwrap(), entries, "after a reopen");
            }
        }
    )*};
}

round_trips! {
    json_value: serde_json::Value = json_values();
    internally_tagged: Internally = internally();
    adjacently_tagged: Adjacently = adjacently();
    untagged_enum: Untagged = untagged();
    externally_tagged: Externally = externally();
    flatten: Flattened = flattened();
    skipped_and_default_fields: Skipping = skipping();
}

/// Written as a string, read as a number: what no encoding can read back.
#[derive(Clone, Debug, PartialEq)]
struct Lopsided(u64);

impl Serialize for Lopsided {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Lopsided {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lopsided, D::Error> {
        u64::deserialize(deserializer).map(Lopsided)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Mixed {
    Fine(u64),
    Lopsided(Lopsided),
}

openraft::declare_raft_types!(MixedConfig: D = Mixed, R = ());
openraft_v09::declare_raft_types!(MixedConfigV09: D = Mixed, R = ());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_would_not_read_back_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log_id = |index| LogIdOf::<MixedConfig>::new(LeaderId::new_committed(1, 1), index);
    let entry = |index: u64, data: Mixed| EntryOf::<MixedConfig>::new_normal(log_id(index), data);
    let mut store = LogStore::<MixedConfig>::open(dir.path(), options()).unwrap();
    let (tx, rx) = MixedConfig::oneshot();
    store.append(vec![entry(1, Mixed::Fine(1))], IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();

    let (tx, rx) = MixedConfig::oneshot();
    let refused = store
        .append(vec![entry(2, Mixed::Fine(2)), entry(3, Mixed::Lopsided(Lopsided(3)))], IOFlushed::signal(tx))
        .await
        .expect_err("an entry that does not read back is refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
    assert!(refused.to_string().contains("entry 3 would not read back"), "{refused}");
    assert!(rx.await.is_err(), "the callback of a refused append never runs: it is dropped");
    assert_eq!(store.wal().next_index().unwrap(), Some(2), "nothing of the refused call was written");
    store.wal().close().unwrap();

    let mut store = LogStore::<MixedConfig>::open(dir.path(), options()).unwrap();
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1)));
    let (tx, rx) = MixedConfig::oneshot();
    store.append(vec![entry(2, Mixed::Fine(2))], IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_would_not_read_back_is_refused_by_the_0_9_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |index: u64, data: Mixed| EntryV09::<MixedConfigV09> {
        log_id: LogIdV09::new(CommittedLeaderId::new(1, 1), index),
        payload: PayloadV09::Normal(data),
    };
    let mut store = LogStoreV09::<MixedConfigV09>::open(dir.path(), options()).unwrap();
    store.blocking_append(vec![entry(1, Mixed::Fine(1))]).await.unwrap();
    let refused = store
        .blocking_append(vec![entry(2, Mixed::Fine(2)), entry(3, Mixed::Lopsided(Lopsided(3)))])
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("entry 3 would not read back"), "{refused}");
    assert_eq!(store.wal().next_index().unwrap(), Some(2), "nothing of the refused call was written");
}
