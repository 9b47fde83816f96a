//! Lease persistence (ARCHITECTURE §2, Durability): a [`LeaseStore`] trait,
//! its sled implementation, the group-commit [`Committer`] that makes lease
//! changes durable in batches, and [`recover`], which loads a store into a
//! server at start.

pub mod backups;
mod batches;
mod codec;
mod committer;
mod events;
mod history;
mod integrity;
mod journal;
mod mailbox;
mod maintenance;
mod recovery;
mod sled_store;
pub mod transfer;

use std::net::Ipv4Addr;

use thiserror::Error;

pub use codec::{decode, encode, CodecError, Names, FORMAT_V1};
pub(crate) use committer::STORE_OPS;
pub use committer::{Committer, CommitterOptions, Durability, DurableWaiter, ShardWriter, Waker};
pub use events::LeaseEvents;
pub use history::HistoryEvent;
pub use integrity::{restore, IntegrityReport};
pub use maintenance::{Clock, Maintenance, MaintenanceOptions};
pub use recovery::{recover, RecoveryReport};
pub use sled_store::{AnomalyRecord, Backlog, Compaction, SledStore, FOLD_BUDGET, SCHEMA_VERSION};

use crate::lease::LeaseRecord;
use crate::server::LeaseChange;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("the database at {path} has schema version {found}, this leased needs {expected}: migrate it (export with the old version, import with this one)")]
    SchemaMismatch { path: String, found: u32, expected: u32 },
    #[error("the database at {0} has leases but no schema version: it was not written by leased")]
    NoSchema(String),
    #[error("lease record for {key} is damaged: {error}")]
    Corrupt { key: String, error: CodecError },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// Where leases persist.
pub trait LeaseStore: Send + Sync + 'static {
    /// Writes `changes` in order (not yet durable). A crash may keep a
    /// prefix of them; a call that failed, retried with the same
    /// changes, writes each once.
    fn write(&self, changes: &[LeaseChange]) -> Result<(), StoreError>;
    /// Records `changes` in per-client history (not needed for an ACK;
    /// written off the commit path). Stores without history ignore it.
    fn write_history(&self, _changes: &[LeaseChange]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Moves about `budget` entries of written batches (lease changes,
    /// then history) into the form readers use; returns how many (none
    /// once nothing waits). Stores that write everything in its final
    /// form at once move nothing.
    fn fold(&self, _budget: u64) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// What waits to be folded.
    fn backlog(&self) -> Backlog {
        Backlog::default()
    }
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Calls `f` with each stored lease whose first address byte falls in
    /// part `part` of `parts` equal parts, so recovery can scan in parallel.
    fn scan(&self, part: usize, parts: usize, f: &mut dyn FnMut(Result<LeaseRecord, StoreError>));
    /// Number of stored leases.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Called after a full scan (recovery) with addresses spread over what
    /// it read, so that the store can shrink the caches the scan filled.
    fn scanned(&self, _sample: &[Ipv4Addr]) {}
}
