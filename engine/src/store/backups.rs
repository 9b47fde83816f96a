//! Scheduled backups (`database.backup`): each one a directory
//! `leases-<unix time>` under the backup path, made with
//! [`SledStore::backup_to`] while serving; older ones than the retention
//! are removed. `serve` calls [`take_backup`] every `interval`.

use std::path::{Path, PathBuf};

use super::{SledStore, StoreError};
use crate::lease::UnixTime;

const PREFIX: &str = "leases-";

/// Writes a new backup of `store` under `dir`, named for `now`.
pub fn take_backup(store: &SledStore, dir: &Path, now: UnixTime) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine(format!("cannot create {}: {e}", dir.display())))?;
    let target = dir.join(format!("{PREFIX}{now}"));
    store.backup_to(&target)?;
    Ok(target)
}

/// The backups under `dir`, oldest first, with their times.
pub fn list(dir: &Path) -> Vec<(UnixTime, PathBuf)> {
    let mut found: Vec<(UnixTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let time = name.to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
            Some((time, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Removes backups older than `retention` seconds at `now`, always keeping
/// the newest. Returns the directories removed.
pub fn prune(dir: &Path, retention: u32, now: UnixTime) -> Result<Vec<PathBuf>, StoreError> {
    let all = list(dir);
    let mut removed = Vec::new();
    for (time, path) in all.iter().take(all.len().saturating_sub(1)) {
        if now.saturating_sub(*time) > retention {
            std::fs::remove_dir_all(path)
                .map_err(|e| StoreError::Engine(format!("cannot remove {}: {e}", path.display())))?;
            removed.push(path.clone());
        }
    }
    Ok(removed)
}
