//! Start-up recovery: every stored lease back into the cache and the
//! address bitmaps, scanned in parallel (one IP range per core); then
//! clients holding two leases are resolved and leases that expired while
//! the server was down are expired. Damaged records are reported and
//! skipped; the rest recovers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{CodecError, LeaseStore, Names, StoreError};
use crate::lease::UnixTime;
use crate::server::{ChangeKind, LeaseChange, Restored, Server};

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub loaded: usize,
    /// Stale offers (never persisted on purpose) found anyway.
    pub skipped: usize,
    /// Records that could not be decoded.
    pub corrupt: usize,
    /// Records of scopes the config no longer has (left in the store).
    pub unknown_scope: usize,
    /// Leases on addresses now reserved for another client.
    pub displaced: usize,
    /// Leases on addresses no pool or reservation has any more (left in the store).
    pub outside_pools: usize,
    /// Clients found holding two leases.
    pub conflicts: usize,
    /// Leases that expired while the server was down.
    pub expired: usize,
    pub elapsed: Duration,
}

impl Names {
    /// The scope and pool names of a config, in the order the core uses.
    pub fn from_config(config: &crate::config::Config) -> Names {
        Names {
            scopes: config
                .scopes
                .iter()
                .map(|s| (s.name.clone(), s.pools.iter().map(|p| p.name.clone()).collect()))
                .collect(),
        }
    }

    /// The scope and pool names of a running core.
    pub fn of(server: &Server) -> Names {
        Names {
            scopes: server
                .scopes()
                .iter()
                .map(|s| (s.name.clone(), s.pools.iter().map(|p| p.name.clone()).collect()))
                .collect(),
        }
    }
}

/// Every how many stored leases one goes into the sample handed to
/// [`LeaseStore::scanned`] (sled's leaves hold 16), and at most how many
/// (see `SledStore`'s `scanned` for what fewer leave in memory).
const SAMPLE_EVERY: usize = 64;
const SAMPLE_MAX: usize = 2048;

/// Loads `store` into `server`. Returns the report and the changes
/// recovery made, which the caller persists before serving.
pub fn recover(store: &dyn LeaseStore, server: &Server, now: UnixTime) -> (RecoveryReport, Vec<LeaseChange>) {
    let started = Instant::now();
    let parts = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    let report = Mutex::new(RecoveryReport::default());
    let changes = Mutex::new(Vec::new());
    let samples = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for part in 0..parts {
            let (report, changes, samples) = (&report, &changes, &samples);
            s.spawn(move || {
                let mut local = RecoveryReport::default();
                let mut displaced = Vec::new();
                let mut sample = Vec::new();
                let mut seen = 0usize;
                store.scan(part, parts, &mut |item| match item {
                    Ok(record) => {
                        if seen % SAMPLE_EVERY == 0 {
                            sample.push(record.ip);
                        }
                        seen += 1;
                        match server.restore(record, now) {
                            Restored::Loaded => local.loaded += 1,
                            Restored::Skipped => local.skipped += 1,
                            Restored::OutsidePools => {
                                local.outside_pools += 1;
                                if local.outside_pools <= 10 {
                                    warn!("a stored lease is on an address outside every pool and reservation; left in the store");
                                }
                            }
                            Restored::Displaced(change) => {
                                local.loaded += 1;
                                local.displaced += 1;
                                displaced.push(change);
                            }
                        }
                    }
                    Err(StoreError::Corrupt { error: CodecError::UnknownScope(scope), key }) => {
                        local.unknown_scope += 1;
                        if local.unknown_scope <= 10 {
                            warn!(lease = %key, %scope, "stored lease belongs to a scope the config no longer has; left in the store");
                        }
                    }
                    Err(e) => {
                        local.corrupt += 1;
                        if local.corrupt <= 10 {
                            error!(error = %e, "skipping a damaged lease record");
                        }
                    }
                });
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.loaded += local.loaded;
                r.skipped += local.skipped;
                r.corrupt += local.corrupt;
                r.unknown_scope += local.unknown_scope;
                r.displaced += local.displaced;
                r.outside_pools += local.outside_pools;
                changes.lock().unwrap_or_else(|e| e.into_inner()).extend(displaced);
                samples.lock().unwrap_or_else(|e| e.into_inner()).extend(sample);
            });
        }
    });
    let samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    let stride = samples.len().div_ceil(SAMPLE_MAX).max(1);
    store.scanned(&samples.into_iter().step_by(stride).collect::<Vec<_>>());
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut changes = changes.into_inner().unwrap_or_else(|e| e.into_inner());
    let (resolved, conflicts) = server.finish_restore(now);
    report.conflicts = conflicts;
    changes.extend(resolved);
    let expired = server.sweep(now);
    report.expired = expired.iter().filter(|c| matches!(c.kind, ChangeKind::Expired | ChangeKind::Reclaimed)).count();
    changes.extend(expired);
    report.elapsed = started.elapsed();
    for (kind, n) in [
        ("corrupt", report.corrupt),
        ("unknown_scope", report.unknown_scope),
        ("displaced", report.displaced),
        ("conflict", report.conflicts),
    ] {
        if n > 0 {
            metrics::counter!(crate::metrics::RECOVERY_PROBLEMS, "kind" => kind).increment(n as u64);
        }
    }
    info!(
        loaded = report.loaded,
        expired_while_down = report.expired,
        conflicts = report.conflicts,
        displaced = report.displaced,
        outside_pools = report.outside_pools,
        corrupt = report.corrupt,
        unknown_scope = report.unknown_scope,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "lease store recovered"
    );
    (report, changes)
}
