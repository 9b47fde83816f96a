//! Integrity check of a stored database (`leased validate-database`) and
//! backups (`leased backup`, `leased restore`).
//!
//! Each record must decode, sit under its own address, and no client may
//! hold two bound leases; every other key must be one the store writes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use super::codec;
use super::sled_store::{SledStore, SCHEMA_KEY};
use super::{LeaseStore, StoreError};
use crate::lease::CLIENT_KEY_MAX;

/// What [`SledStore::validate`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityReport {
    pub leases: usize,
    pub bound: usize,
    /// Each problem that makes the database inconsistent, for people.
    pub errors: Vec<String>,
}

impl IntegrityReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl SledStore {
    /// Reads every key and checks the records.
    pub fn validate(&self) -> Result<IntegrityReport, StoreError> {
        self.validate_counting(&mut |_| {})
    }

    /// [`SledStore::validate`], telling `progress` how many keys it has read
    /// (the records, then every key once more).
    pub fn validate_counting(&self, progress: &mut dyn FnMut(u64)) -> Result<IntegrityReport, StoreError> {
        let mut read = 0u64;
        let mut tick = || {
            read += 1;
            if read % 4096 == 0 {
                progress(read);
            }
        };
        // The checks below read the records' own keys.
        self.fold_all_journal()?;
        let mut report = IntegrityReport::default();
        let tree = self.raw_tree();
        let mut clients: HashMap<Vec<u8>, Vec<Ipv4Addr>> = HashMap::new();
        for item in tree.scan_prefix(b"i") {
            let (k, v) = item?;
            tick();
            let Ok(key_ip) = <[u8; 4]>::try_from(&k[1..]).map(Ipv4Addr::from) else {
                report.errors.push(format!("malformed lease key {:02x?}", &k[..]));
                continue;
            };
            match codec::decode(&v, &self.names()) {
                Ok(r) => {
                    report.leases += 1;
                    if r.ip != key_ip {
                        report.errors.push(format!("the record stored under {key_ip} is for {}", r.ip));
                    }
                    if r.state.is_bound() {
                        report.bound += 1;
                        clients.entry(r.client_key(&mut [0; CLIENT_KEY_MAX]).to_vec()).or_default().push(r.ip);
                    }
                }
                Err(e) => report.errors.push(format!("lease {key_ip}: {e}")),
            }
        }
        for (client, ips) in &clients {
            if ips.len() > 1 {
                report.errors.push(format!("client {:02x?} holds {} bound leases: {ips:?}", client, ips.len()));
            }
        }
        for item in tree.iter() {
            let (k, v) = item?;
            tick();
            match k.first() {
                Some(b'i') => {}
                Some(&super::history::CHUNK_PREFIX) => {
                    if let Err(e) = super::history::check_chunk(&k, &v) {
                        report.errors.push(format!("{e} (key {:02x?})", &k[..]));
                    }
                }
                Some(b'b') => {
                    if let Err(e) = super::history::decode_batch(&v, |_| {}) {
                        report.errors.push(format!("{e} (key {:02x?})", &k[..]));
                    }
                }
                Some(b'w') => {
                    if let Err(e) = super::journal::decode(&v, |_, _| {}) {
                        report.errors.push(format!("{e} (key {:02x?})", &k[..]));
                    }
                }
                Some(b'a') => {
                    if k.len() != 13 || serde_json::from_slice::<super::AnomalyRecord>(&v).is_err() {
                        report.errors.push(format!("anomaly record {:02x?} is damaged", &k[..]));
                    }
                }
                _ if &k[..] == SCHEMA_KEY => {}
                _ => report.errors.push(format!("unknown key {:02x?}", &k[..])),
            }
        }
        Ok(report)
    }

    /// Copies the database into a new one at `dest` (which must not exist)
    /// while the store keeps serving: key by key, so each lease is copied
    /// whole as it was at some moment of the copy, records of scopes the
    /// config no longer has included. Returns the number of keys copied.
    pub fn backup_to(&self, dest: &Path) -> Result<usize, StoreError> {
        self.backup_counting(dest, &mut |_| {})
    }

    /// [`SledStore::backup_to`], telling `progress` how many keys it has copied.
    pub fn backup_counting(&self, dest: &Path, progress: &mut dyn FnMut(u64)) -> Result<usize, StoreError> {
        if dest.exists() {
            return Err(StoreError::Engine(format!("{} exists already: back up into a new directory", dest.display())));
        }
        let copy = SledStore::open(dest, self.names().clone(), 16 << 20)?;
        // No journal batch is folded between the copy of its `i` keys and of its own.
        let _folding = self.hold_folds();
        let mut copied = 0;
        let mut batch = sled::Batch::default();
        for (i, item) in self.raw_tree().iter().enumerate() {
            let (k, v) = item?;
            batch.insert(k, v);
            copied += 1;
            if i % 1024 == 1023 {
                copy.raw_tree().apply_batch(std::mem::take(&mut batch))?;
                progress(copied as u64);
            }
        }
        copy.raw_tree().apply_batch(batch)?;
        copy.flush()?;
        Ok(copied)
    }
}

/// Replaces the database at `data_dir` with the backup at `backup`, after
/// checking the backup. The old database is kept beside it as
/// `DATA_DIR.before-restore`. Fails while a server holds the database.
/// `progress` hears how many keys of the backup its check has read.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    names: &codec::Names,
    progress: &mut dyn FnMut(u64),
) -> Result<usize, StoreError> {
    let checked = SledStore::open(backup, names.clone(), 16 << 20)?;
    let report = checked.validate_counting(progress)?;
    if !report.errors.is_empty() {
        return Err(StoreError::Engine(format!(
            "the backup at {} is damaged: {}",
            backup.display(),
            report.errors.join("; ")
        )));
    }
    drop(checked);
    if data_dir.exists() {
        // Opening fails while a running server holds the lock.
        drop(SledStore::open(data_dir, names.clone(), 1 << 20)?);
        let aside = data_dir.with_extension("before-restore");
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(data_dir, &aside)
            .map_err(|e| StoreError::Engine(format!("cannot move {} aside: {e}", data_dir.display())))?;
    }
    copy_dir(backup, data_dir).map_err(|e| StoreError::Engine(format!("cannot copy the backup: {e}")))?;
    Ok(report.leases)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
