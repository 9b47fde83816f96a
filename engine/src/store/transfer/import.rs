//! Rows read from a file into the store, checked against the config: each
//! lease must sit in a configured scope, in a pool (or the reserved range)
//! or on its own client's reservation. A later entry for an address wins,
//! and a client keeps one bound lease (the one that ends last). Importing
//! the same file twice changes nothing the second time.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use super::LeaseRow;
use crate::hex;
use crate::lease::{ClientKey, Details, LeaseDetails, LeaseRecord, LeaseState, CLIENT_KEY_MAX, DETAILS_MAX, NO_POOL};
use crate::server::{ChangeKind, LeaseChange, Server};
use crate::store::{LeaseStore, SledStore, StoreError};

/// One entry of an import file.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // Nearly every entry is a Row: boxing would only add an allocation each.
pub enum Incoming {
    /// A lease to import, from `line`.
    Row { line: usize, row: LeaseRow },
    /// An entry the format itself leaves out (Kea: not in the default
    /// state; both: already ended), counted by reason.
    Filtered { line: usize, reason: &'static str },
    /// An entry that cannot be read.
    Bad { line: usize, reason: String },
}

/// An entry not imported, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub ip: Option<Ipv4Addr>,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Entries read from the file.
    pub read: usize,
    /// Leases written (new, or different from the stored one).
    pub imported: usize,
    /// Leases already stored exactly so.
    pub unchanged: usize,
    /// Entries replaced by a later one for the same address or client.
    pub superseded: usize,
    /// Entries the format leaves out, by reason.
    pub filtered: BTreeMap<&'static str, usize>,
    /// Entries refused, with their line and reason.
    pub skipped: Vec<Skipped>,
}

/// The record `row` becomes under `server`'s config, or why it cannot.
fn record_of(row: &LeaseRow, server: &Server) -> Result<LeaseRecord, String> {
    let hw = row.hw()?;
    let mut state = row.lease_state()?;
    if state == LeaseState::Offered {
        return Err("an offer (offers are never kept)".into());
    }
    let bytes = |what: &str, v: &Option<String>| -> Result<Vec<u8>, String> {
        v.as_deref().map_or(Ok(vec![]), |h| hex::parse(h).ok_or_else(|| format!("{what} {h:?} is not hex")))
    };
    let (client_id, circuit_id, remote_id) = (
        bytes("client_id", &row.client_id)?,
        bytes("circuit_id", &row.circuit_id)?,
        bytes("remote_id", &row.remote_id)?,
    );
    let scopes = server.scopes();
    let named = scopes.iter().position(|s| row.scope.as_deref() == Some(s.name.as_str()) && s.subnet.contains(&row.ip));
    let si = named
        .or_else(|| scopes.iter().position(|s| s.subnet.contains(&row.ip)))
        .ok_or_else(|| format!("no configured scope holds {}", row.ip))?;
    let scope = &scopes[si];
    let hostname = row.hostname.as_deref().unwrap_or_default().as_bytes();
    let own = scope.reservation_for(hw.htype, hw.bytes(), Some(hostname).filter(|h| !h.is_empty()));
    match scope.reservation_at(row.ip) {
        Some(r) if own.is_none_or(|o| o.ip != row.ip) => {
            let whom = r.mac.map_or_else(
                || format!("host name {:?}", r.hostname.as_deref().unwrap_or_default()),
                |m| crate::lease::HwAddr::new(1, &m).to_string(),
            );
            return Err(format!("{} is reserved for {whom}", row.ip));
        }
        Some(_) if state.is_bound() => state = LeaseState::Reserved,
        Some(_) => {}
        None if !server.cache().covers(row.ip) => {
            return Err(format!("{} is outside the pools of scope {:?}", row.ip, scope.name))
        }
        None if state == LeaseState::Reserved => state = LeaseState::Allocated,
        None => {}
    }
    let details = Details {
        hostname,
        vendor_class: row.vendor_class.as_deref().unwrap_or_default().as_bytes(),
        client_id: &client_id,
        circuit_id: &circuit_id,
        remote_id: &remote_id,
    };
    let mut packed = [0u8; DETAILS_MAX];
    Ok(LeaseRecord {
        ip: row.ip,
        state,
        scope: si as u16,
        pool: scope.pool_of(row.ip).map_or(NO_POOL, |p| p as u16),
        hw,
        details: LeaseDetails::from_packed(details.pack(&mut packed)),
        start: row.start,
        end: row.end,
        last_seen: row.last_seen,
        created: row.created,
        updated: row.updated,
        holds_address: false,
    })
}

/// Checks `entries` against `server`'s config and writes what passes to
/// `store` (durable when this returns). `progress` hears how many leases
/// have been written.
pub fn import(
    entries: Vec<Incoming>,
    server: &Server,
    store: &SledStore,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport { read: entries.len(), ..Default::default() };
    // Records stay where they were read (they are large to move); choices
    // are made on indexes into `leases` and marked in `keep`.
    let mut leases: Vec<(usize, LeaseRecord)> = Vec::with_capacity(entries.len());
    let mut keep: Vec<bool> = Vec::with_capacity(entries.len());
    // The later entry for an address wins.
    let mut by_ip: HashMap<Ipv4Addr, usize> = HashMap::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Incoming::Bad { line, reason } => report.skipped.push(Skipped { line, ip: None, reason }),
            Incoming::Filtered { reason, .. } => *report.filtered.entry(reason).or_default() += 1,
            Incoming::Row { line, row } => match record_of(&row, server) {
                Ok(record) => {
                    let i = leases.len();
                    let mut wins = true;
                    if let Some(j) = by_ip.insert(record.ip, i) {
                        report.superseded += 1;
                        if leases[j].0 > line {
                            by_ip.insert(record.ip, j);
                            wins = false;
                        } else {
                            keep[j] = false;
                        }
                    }
                    leases.push((line, record));
                    keep.push(wins);
                }
                Err(reason) => report.skipped.push(Skipped { line, ip: Some(row.ip), reason }),
            },
        }
    }
    drop(by_ip);
    let kept = |keep: &[bool]| (0..leases.len()).filter(|&i| keep[i]).collect::<Vec<usize>>();
    // A client keeps one bound lease: the one that ends last (the later line on a tie).
    let mut order = kept(&keep);
    order.sort_by_key(|&i| leases[i].0);
    let mut bound: HashMap<ClientKey, usize> = HashMap::with_capacity(order.len());
    let mut key = [0; CLIENT_KEY_MAX];
    for &i in &order {
        let r = &leases[i].1;
        if !r.state.is_bound() {
            continue;
        }
        let client = ClientKey::from_bytes(r.client_key(&mut key));
        if let Some(&j) = bound.get(&client) {
            let loser = if leases[j].1.end > r.end { i } else { j };
            keep[loser] = false;
            report.superseded += 1;
            if loser == i {
                continue;
            }
        }
        bound.insert(client, i);
    }
    drop(bound);
    let mut order = kept(&keep);
    order.sort_unstable_by_key(|&i| leases[i].1.ip);
    let records = order.into_iter().map(|i| leases[i].1.clone());
    // Into an empty store (a migration), nothing needs comparing.
    let empty = store.is_empty();
    let mut changes = Vec::with_capacity(records.len());
    for record in records {
        let stored = if empty { None } else { store.get(record.ip)? };
        if stored.as_ref() == Some(&record) {
            report.unchanged += 1;
            continue;
        }
        changes.push(LeaseChange { kind: ChangeKind::Allocated, record });
    }
    let written = write_parallel(store, &changes, progress)?;
    report.imported = written as usize;
    Ok(report)
}

/// Most writer threads of an import.
const WRITERS: usize = 4;
/// Changes a writer writes between progress updates.
const WRITE_CHUNK: usize = 1024;

/// Writes `changes` from up to [`WRITERS`] threads, each its own share of
/// addresses with [`SledStore::write_each`] (sled's inserts are nearly all
/// of an import's time, and batches would queue behind one lock), then
/// flushes; the number written. `progress` hears from this thread.
fn write_parallel(
    store: &SledStore,
    changes: &[LeaseChange],
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, WRITERS);
    let share = changes.len().div_ceil(threads).max(1);
    let written = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = changes
            .chunks(share)
            .map(|part| {
                s.spawn(|| {
                    for chunk in part.chunks(WRITE_CHUNK) {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = store.write_each(chunk) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        while !writers.iter().all(|w| w.is_finished()) {
            progress(written.load(Ordering::Relaxed));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        writers.into_iter().try_for_each(|w| w.join().expect("an import writer panicked"))
    })?;
    store.flush()?;
    let written = written.load(Ordering::Relaxed);
    progress(written);
    Ok(written)
}
