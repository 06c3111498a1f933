//! Adapters that make a [`Wal`](crate::Wal) the log store of a Raft library: type conversions
//! and each library's storage rules, no engine logic. Each adapter is behind its own feature.

#[cfg(feature = "openraft")]
pub mod openraft;
#[cfg(feature = "openraft-v09")]
pub mod openraft_v09;
#[cfg(any(feature = "openraft", feature = "openraft-v09"))]
mod store;

#[cfg(feature = "raft-rs")]
pub mod raft_rs;
