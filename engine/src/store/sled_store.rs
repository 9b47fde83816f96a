//! [`LeaseStore`] on sled (=0.34.7): one tree, keys by prefix.
//!
//! | key | value |
//! |---|---|
//! | `i` ip | the record ([`super::codec`]) |
//! | `w` seq (u64 BE) | a batch of lease changes, not yet folded ([`super::journal`]) |
//! | `b` seq (u64 BE) | a batch of history events, not yet folded ([`super::history`]) |
//! | `g` hlen hw n (u32 BE) | a client's history, folded: chunk `n` of its events ([`super::history`]) |
//! | `a` time (u64 BE) seq (u32 BE) | an [`AnomalyRecord`] (JSON) |
//! | `m` "schema" | schema version (u32 LE) |
//!
//! Schema 1 kept a key per lease and also a by-client (`c`) and a
//! by-expiry (`e`) index; nothing read them (recovery loads every record
//! and the lease cache indexes them in memory), and they were two of the
//! three sled inserts of each lease: 40 % of the server's CPU per lease
//! (bench/README.md). Opening a schema 1 store removes them. Schema 2 wrote
//! history as one `h` key per event and each lease straight into its `i`
//! key; schema 3 writes each committed batch as `b` and `w` keys (values of
//! at most [`VALUE_MAX`]) and folds them into `h` and `i` keys later.
//! Schema 4 folds history into chunks of events per client (`g`) instead
//! of `h` keys: opening a schema 2 or 3 store moves its `h` keys into
//! chunks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};

use super::batches;
use super::codec::{self, Names};
use super::history::{self, HistoryEvent};
use super::journal;
use super::{LeaseStore, StoreError};
use crate::lease::LeaseRecord;
use crate::server::{ChangeKind, LeaseChange};

/// Version of the key layout and record formats this build writes.
pub const SCHEMA_VERSION: u32 = 4;
/// Schema 2 plus a by-client and a by-expiry index.
const SCHEMA_WITH_INDEXES: u32 = 1;
/// Schema 3 without history batches (`b` keys).
const SCHEMA_UNBATCHED: u32 = 2;
/// Schema 4 with one `h` key per folded history event.
const SCHEMA_EVENT_KEYS: u32 = 3;
pub(super) const SCHEMA_KEY: &[u8] = b"mschema";

/// Key deletions applied `chunk` at a time.
struct Deletes<'t> {
    tree: &'t sled::Tree,
    batch: sled::Batch,
    pending: usize,
    chunk: usize,
}

impl Deletes<'_> {
    fn remove(&mut self, key: sled::IVec) -> Result<(), StoreError> {
        self.batch.remove(key);
        self.pending += 1;
        if self.pending >= self.chunk {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if self.pending > 0 {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.pending = 0;
        }
        Ok(())
    }
}

/// What one [`SledStore::compact`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    pub history: usize,
    pub anomalies: usize,
}

/// Most bytes of a journal or history value (one may pass it by a record).
/// sled 0.34 writes an item over a quarter of its 512 KiB segment — a
/// value, or a leaf (up to ~17 keys before it splits) when sled rewrites
/// it whole — to a file of its own, which it never fsyncs: a power cut
/// could lose changes a flush had reported durable. Flat out, whole
/// committer batches as one value made ~50 such files a second, 0.2–1 MB
/// each; values of 4 KiB keep a leaf under 100 KiB.
pub const VALUE_MAX: usize = 4096;

/// The file sled 0.34 keeps its log in, in the database's directory.
const LOG_FILE: &str = "db";

/// A sled database holding the leases.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    /// Replaced on reload, when scopes or pools were added or reordered.
    names: parking_lot::RwLock<Names>,
    /// Tells apart anomalies recorded in the same second.
    anomaly_seq: std::sync::atomic::AtomicU32,
    /// History batches, and their events not yet folded.
    history: batches::Appender,
    /// Journal batches, and their lease changes not yet folded.
    journal: batches::Appender,
    /// Held by whoever folds, and by a backup for its whole copy: journal
    /// batches must be applied one at a time, oldest first, and a copy
    /// must not see a batch folded between its `i` and `w` keys.
    folding: parking_lot::Mutex<()>,
    /// sled's log file (`db` in its directory), synced after each flush:
    /// sled 0.34 writes its log with `sync_file_range`, which neither
    /// empties the disk's write cache nor commits the file system's record
    /// of the blocks the log appends, so a power cut could take what a
    /// flush had reported durable.
    log: std::fs::File,
}

/// What waits to be folded: lease changes and history events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub journal: u64,
    pub history: u64,
}

/// Entries folded in one atomic sled batch (at least one written batch):
/// sled's batches hold every other writer for their length, so each stays
/// near a millisecond.
pub const FOLD_BUDGET: u64 = 256;

/// An anomaly a policy raised (ARCHITECTURE §5 `anomaly_detection`), as
/// recorded for the API and operators.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnomalyRecord {
    /// Unix seconds.
    pub time: u64,
    /// `excessive_leases`, `rapid_renewals`, `unusual_patterns` or `pool_exhaustion`.
    pub kind: String,
    /// The policy module that raised it.
    pub policy: String,
    /// The client it is about, if one.
    pub mac: Option<String>,
    /// The relay port or interface it is about, if one.
    pub relay: Option<String>,
    /// What the module saw (its JSON object, or its text).
    pub evidence: serde_json::Value,
}

fn ip_key(ip: Ipv4Addr) -> [u8; 5] {
    let o = ip.octets();
    [b'i', o[0], o[1], o[2], o[3]]
}

impl SledStore {
    /// Opens (or creates) the database at `path`; `names` maps the running
    /// config's scope and pool indexes to the names records carry.
    pub fn open(path: &Path, names: Names, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_bytes).flush_every_ms(None).open()?;
        let tree = db.open_tree("leases")?;
        let display = path.display().to_string();
        match tree.get(SCHEMA_KEY)? {
            Some(v) => match u32::from_le_bytes(v.as_ref().try_into().unwrap_or([0xff; 4])) {
                SCHEMA_VERSION => {}
                found @ (SCHEMA_WITH_INDEXES | SCHEMA_UNBATCHED | SCHEMA_EVENT_KEYS) => {
                    upgrade(&db, &tree, &display, found)?
                }
                found => return Err(StoreError::SchemaMismatch { path: display, found, expected: SCHEMA_VERSION }),
            },
            None if tree.is_empty() => {
                tree.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes())?;
                db.flush()?;
            }
            None => return Err(StoreError::NoSchema(display)),
        }
        let log = std::fs::File::open(path.join(LOG_FILE)).map_err(|e| {
            StoreError::Engine(format!("cannot open sled's log {}: {e}", path.join(LOG_FILE).display()))
        })?;
        // Where the batches go on, and how many entries wait to be folded.
        let history = batches::Appender::new(history::PREFIX, batches::written(&tree, history::PREFIX)?);
        let journal = batches::Appender::new(journal::PREFIX, batches::written(&tree, journal::PREFIX)?);
        let store = SledStore {
            journal,
            history,
            db,
            tree,
            names: parking_lot::RwLock::new(names),
            anomaly_seq: Default::default(),
            folding: Default::default(),
            log,
        };
        Ok(store)
    }

    /// The record stored for `ip` (the latest journaled change of it, if
    /// one is not folded yet).
    pub fn get(&self, ip: Ipv4Addr) -> Result<Option<LeaseRecord>, StoreError> {
        let decode = |v: &[u8]| {
            codec::decode(v, &self.names.read()).map_err(|error| StoreError::Corrupt { key: ip.to_string(), error })
        };
        for item in self.tree.scan_prefix([journal::PREFIX]).rev() {
            let (_, value) = item?;
            let mut latest = None;
            let _ = journal::decode(&value, |at, record| {
                if at == ip {
                    latest = Some(record);
                }
            });
            if let Some(record) = latest {
                return record.map(decode).transpose();
            }
        }
        match self.tree.get(ip_key(ip))? {
            None => Ok(None),
            Some(v) => decode(&v).map(Some),
        }
    }

    /// What waits to be folded.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            journal: self.journal.unfolded.load(Ordering::Relaxed),
            history: self.history.unfolded.load(Ordering::Relaxed),
        }
    }

    /// Folds written batches, oldest first, into the keys readers use: the
    /// lease journal first, then history; about `budget` entries (at least
    /// one batch) in one atomic sled batch. Returns the entries folded
    /// (none once nothing waits).
    pub fn fold(&self, budget: u64) -> Result<u64, StoreError> {
        match self.fold_journal(budget)? {
            0 => self.fold_history(budget),
            n => Ok(n),
        }
    }

    /// Folds journal batches into `i` keys (see [`SledStore::fold`]). A
    /// damaged batch (sled checksums what it writes: a disk fault) cannot
    /// be applied: it is logged as an error, with what it held, and
    /// removed; the leases it changed keep their earlier records, as with
    /// a damaged record at recovery.
    pub fn fold_journal(&self, budget: u64) -> Result<u64, StoreError> {
        let _folding = self.folding.lock();
        self.fold_batches(journal::PREFIX, budget, &self.journal.unfolded, |key, value, batch| {
            let applied = journal::decode(value, |ip, record| match record {
                Some(r) => batch.insert(&ip_key(ip), r),
                None => batch.remove(&ip_key(ip)),
            });
            let changes = journal::batch_len(value).unwrap_or(0);
            if let Err(e) = applied {
                tracing::error!(batch = journal::seq(key), changes, error = %e, "lease changes lost: journal batch dropped");
            }
            u64::from(changes)
        }, |_| Ok(()))
    }

    /// Holds off folding (a backup's copy) while the guard lives.
    pub(super) fn hold_folds(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.folding.lock()
    }

    /// The lease history of the client with hardware address `hw`, oldest
    /// first: its folded events and those of batches not yet folded.
    pub fn history(&self, hw: &[u8]) -> Result<Vec<HistoryEvent>, StoreError> {
        // Batches first: one folded meanwhile is then read again in chunks.
        let batches: Vec<sled::IVec> = self.tree.scan_prefix([history::PREFIX]).values().collect::<Result<_, _>>()?;
        let chunks: Vec<sled::IVec> =
            self.tree.scan_prefix(history::client_prefix(hw)).values().collect::<Result<_, _>>()?;
        let mut events = Vec::new();
        // A damaged batch or chunk is reported by validate-database.
        for value in &batches {
            let _ = history::decode_batch(value, |e| {
                if e.hw == hw {
                    events.push(e);
                }
            });
        }
        for value in &chunks {
            events.extend(history::decode_chunk(hw, value).into_iter().flatten());
        }
        Ok(history::merge(events))
    }

    /// Folds history batches into their clients' chunks (see
    /// [`SledStore::fold`]). A damaged batch is dropped with a warning
    /// (history is not lease data).
    pub fn fold_history(&self, budget: u64) -> Result<u64, StoreError> {
        let _folding = self.folding.lock();
        // Grouped by client: a client's chunk is rewritten once per fold.
        let clients: std::cell::RefCell<BTreeMap<Vec<u8>, Vec<history::Packed>>> = Default::default();
        let apply = |key: &[u8], value: &[u8], _: &mut sled::Batch| {
            let folded = history::decode_batch(value, |e| {
                clients.borrow_mut().entry(e.hw.to_vec()).or_default().push(history::pack(&e));
            });
            if let Err(e) = folded {
                tracing::warn!(batch = history::batch_seq(key), error = %e, "history batch dropped");
            }
            // Counted as written (its header), so that the backlog drains.
            u64::from(history::batch_len(value).unwrap_or(0))
        };
        let tree = &self.tree;
        self.fold_batches(history::PREFIX, budget, &self.history.unfolded, apply, |batch| {
            clients.take().iter().try_for_each(|(hw, events)| append_history(tree, batch, hw, events))
        })
    }

    /// Applies the batches under `prefix`, oldest first, until `budget`
    /// entries (at least one batch), each batch removed in the same atomic
    /// sled batch that adds what `apply` made of it (and `complete` then
    /// adds); counts them off `backlog`, and sets it to zero once no batch
    /// is left.
    fn fold_batches(
        &self,
        prefix: u8,
        budget: u64,
        backlog: &AtomicU64,
        mut apply: impl FnMut(&[u8], &[u8], &mut sled::Batch) -> u64,
        complete: impl FnOnce(&mut sled::Batch) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let (mut batches, mut entries) = (0, 0u64);
        for item in self.tree.scan_prefix([prefix]) {
            let (key, value) = item?;
            entries += apply(&key, &value, &mut batch);
            batch.remove(key);
            batches += 1;
            if entries >= budget {
                break;
            }
        }
        if batches == 0 {
            backlog.store(0, Ordering::Relaxed);
            return Ok(0);
        }
        complete(&mut batch)?;
        self.tree.apply_batch(batch)?;
        let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(entries)));
        Ok(entries.max(1))
    }

    /// Records `anomaly` (durable with the next flush of the store).
    pub fn record_anomaly(&self, anomaly: &AnomalyRecord) -> Result<(), StoreError> {
        let seq = self.anomaly_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut key = [0u8; 13];
        key[0] = b'a';
        key[1..9].copy_from_slice(&anomaly.time.to_be_bytes());
        key[9..].copy_from_slice(&seq.to_be_bytes());
        let value = serde_json::to_vec(anomaly).map_err(|e| StoreError::Engine(e.to_string()))?;
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// The latest `limit` anomalies, newest first.
    pub fn anomalies(&self, limit: usize) -> Result<Vec<AnomalyRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"a").rev().take(limit) {
            let (k, v) = item?;
            let record = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Engine(format!("anomaly record {k:02x?} is damaged: {e}")))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Deletes history and anomalies older than `history_before`, about
    /// `chunk` keys per batch so that the committer is never held up for
    /// long. Returns what it removed (history: events).
    pub fn compact(&self, history_before: u32, chunk: usize) -> Result<Compaction, StoreError> {
        let mut done = Compaction::default();
        let mut stale = Vec::new();
        for item in self.tree.scan_prefix([history::CHUNK_PREFIX]) {
            let (k, v) = item?;
            if history::holds_older(&v, history_before) {
                stale.push(k);
                if stale.len() >= chunk {
                    done.history += self.trim_history(&std::mem::take(&mut stale), history_before)?;
                }
            }
        }
        done.history += self.trim_history(&stale, history_before)?;
        let mut deletes = Deletes { tree: &self.tree, batch: sled::Batch::default(), pending: 0, chunk };
        for item in self.tree.scan_prefix(b"a") {
            let (k, _) = item?;
            let time = k.get(1..9).map(|t| u64::from_be_bytes(t.try_into().unwrap_or_default()));
            if time.is_none_or(|t| t >= u64::from(history_before)) {
                break;
            }
            deletes.remove(k)?;
            done.anomalies += 1;
        }
        deletes.finish()?;
        Ok(done)
    }

    /// Removes the events older than `before` from the chunks `keys`, read
    /// again with folding held off (a fold may have appended to one since).
    /// Returns the events removed.
    fn trim_history(&self, keys: &[sled::IVec], before: u32) -> Result<usize, StoreError> {
        let _folding = self.folding.lock();
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for key in keys {
            let Some(value) = self.tree.get(key)? else { continue };
            let (kept, n) = history::trim(&value, before);
            match (n, kept.is_empty()) {
                (0, _) => continue,
                (_, true) => batch.remove(key),
                (_, false) => batch.insert(key, kept),
            }
            removed += n;
        }
        self.tree.apply_batch(batch)?;
        Ok(removed)
    }

    /// Writes each change as a sled operation of its own, not as one batch:
    /// sled applies batches one at a time, single-key writes in parallel,
    /// so bulk loads (imports) write from several threads. A lease is one
    /// key, so each stays whole; the changes as a set are not atomic. The
    /// journal is folded first (a later fold of it would undo these).
    pub fn write_each(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
        self.fold_all_journal()?;
        let mut buf = Vec::with_capacity(128);
        let names = self.names.read();
        for change in changes {
            match value_of(change, &names, &mut buf) {
                Some(value) => self.tree.insert(ip_key(change.record.ip), value)?,
                None => self.tree.remove(ip_key(change.record.ip))?,
            };
        }
        Ok(())
    }

    /// The scope and pool names records are read with.
    pub fn names(&self) -> parking_lot::RwLockReadGuard<'_, Names> {
        self.names.read()
    }

    /// Maps indexes to the names of a reloaded config. Changes submitted
    /// under the old config must be written first (`Committer::sync`).
    pub fn set_names(&self, names: Names) {
        *self.names.write() = names;
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// The underlying tree, for tests that damage records on purpose.
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }
}

impl LeaseStore for SledStore {
    /// Journal keys for the batch ([`super::journal`]), as few as values of
    /// at most [`VALUE_MAX`] allow ([`batches::Append`]: a failed write,
    /// retried, leaves nothing twice), folded into the records' keys later.
    fn write(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
        let names = self.names.read();
        let mut append = self.journal.begin(&self.tree);
        let mut rest = changes;
        while !rest.is_empty() {
            let mut value = Vec::with_capacity(VALUE_MAX + 1024);
            let mut w = journal::BatchWriter::new(&mut value);
            let mut taken = 0;
            for change in rest {
                let encode = (change.kind != ChangeKind::Purged).then_some(|out: &mut Vec<u8>| {
                    codec::encode(&change.record, &names, out);
                });
                w.push(change.record.ip, encode);
                taken += 1;
                if w.bytes() >= VALUE_MAX {
                    break;
                }
            }
            rest = &rest[taken..];
            let n = w.finish();
            append.insert(value, n)?;
        }
        append.done();
        Ok(())
    }

    /// History keys for the batch ([`super::history`]), values of at most
    /// [`VALUE_MAX`].
    fn write_history(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
        let mut append = self.history.begin(&self.tree);
        for part in changes.chunks(VALUE_MAX / history::EVENT_MAX) {
            let mut value = Vec::with_capacity(VALUE_MAX);
            let n = history::encode_batch(part, &mut value);
            if n > 0 {
                append.insert(value, n)?;
            }
        }
        append.done();
        Ok(())
    }

    fn fold(&self, budget: u64) -> Result<u64, StoreError> {
        SledStore::fold(self, budget)
    }

    fn backlog(&self) -> Backlog {
        SledStore::backlog(self)
    }

    /// sled's flush, then `fdatasync` of its log: what the flush wrote is
    /// on the disk itself, past its write cache, and findable after a
    /// power cut.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data().map_err(|e| StoreError::Engine(format!("syncing sled's log: {e}")))
    }

    /// Records in address order, each as its latest write: the `i` keys
    /// merged with what the journal holds that is not folded yet (read
    /// once per call, so a scan costs the journal's size, not a fold).
    fn scan(&self, part: usize, parts: usize, f: &mut dyn FnMut(Result<LeaseRecord, StoreError>)) {
        let lo = (part * 256 / parts) as u32;
        let hi = ((part + 1) * 256 / parts) as u32;
        let journal = match self.journal_latest() {
            Ok(j) => j,
            Err(e) => return f(Err(e)),
        };
        let last = if hi >= 256 { u32::MAX } else { (hi << 24) - 1 };
        let mut pending = journal.range(lo << 24..=last).peekable();
        let start = vec![b'i', lo as u8];
        let iter = if hi >= 256 {
            self.tree.range(start..[b'j'].to_vec())
        } else {
            self.tree.range(start..vec![b'i', hi as u8])
        };
        let names = self.names.read();
        let decode = |key: &[u8], value: &[u8]| {
            codec::decode(value, &names).map_err(|error| StoreError::Corrupt { key: describe_key(key), error })
        };
        let emit_journal = |ip: u32, record: &Option<Vec<u8>>, f: &mut dyn FnMut(Result<LeaseRecord, StoreError>)| {
            if let Some(v) = record {
                f(decode(&ip_key(Ipv4Addr::from(ip)), v));
            }
        };
        for item in iter {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    f(Err(e.into()));
                    continue;
                }
            };
            let ip = key_ip(&k).map(u32::from);
            while let Some((&jip, record)) = pending.next_if(|(&jip, _)| ip.is_some_and(|ip| jip < ip)) {
                emit_journal(jip, record, f);
            }
            match pending.next_if(|(&jip, _)| Some(jip) == ip) {
                Some((&jip, record)) => emit_journal(jip, record, f),
                None => f(decode(&k, &v)),
            }
        }
        for (&jip, record) in pending {
            emit_journal(jip, record, f);
        }
    }

    /// Stored leases, the journal's writes counted in.
    fn len(&self) -> usize {
        let Ok(journal) = self.journal_latest() else { return self.tree.scan_prefix(b"i").count() };
        let mut n = self.tree.scan_prefix(b"i").count();
        for (&ip, record) in &journal {
            let stored = self.tree.contains_key(ip_key(Ipv4Addr::from(ip))).unwrap_or(false);
            match (stored, record.is_some()) {
                (false, true) => n += 1,
                (true, false) => n -= 1,
                _ => {}
            }
        }
        n
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// sled 0.34 evicts from one of its 256 LRU shards (by page id) only
    /// once 64 accesses have queued there, so a full scan leaves up to 64
    /// pages a shard resident whatever the cache's capacity (~21 MB of
    /// heap at 1M leases). Reading a sampled lease 65 times in a row fills
    /// its page's queue with that page alone: the shard evicts down to its
    /// capacity and keeps just that page queued. Server RSS after
    /// recovering 1M leases with a 1 MiB sled cache: 293 → 264 MB with
    /// 2048 sampled leases (512: 288 MB, 1024: 270, 4096: 264), in 0.1–0.25 s.
    fn scanned(&self, sample: &[Ipv4Addr]) {
        for &ip in sample {
            for _ in 0..=64 {
                // Only the access counts: a failed read leaves a page cached, no more.
                let _ = self.tree.get(ip_key(ip));
            }
        }
    }
}

impl SledStore {
    /// Folds every journal batch (before a bulk write straight into the
    /// `i` keys, which a later fold of older batches would undo); returns
    /// the changes folded. Flushes as it goes, so that sled never holds a
    /// large backlog's pages in memory at once.
    pub fn fold_all_journal(&self) -> Result<u64, StoreError> {
        let mut folded = 0;
        for step in 1.. {
            match self.fold_journal(16 * FOLD_BUDGET)? {
                0 => break,
                n => folded += n,
            }
            if step % 16 == 0 {
                self.db.flush()?;
            }
        }
        if folded > 0 {
            self.db.flush()?;
        }
        Ok(folded)
    }

    /// The latest write of each address the journal holds (None: removed),
    /// by address as a number.
    fn journal_latest(&self) -> Result<BTreeMap<u32, Option<Vec<u8>>>, StoreError> {
        let mut latest = BTreeMap::new();
        for value in self.tree.scan_prefix([journal::PREFIX]).values() {
            // Damaged: as the fold will, leave its leases as they were (the fold logs it).
            let _ = journal::decode(&value?, |ip, record| {
                latest.insert(u32::from(ip), record.map(<[u8]>::to_vec));
            });
        }
        Ok(latest)
    }
}

/// The address of an `i` key.
fn key_ip(key: &[u8]) -> Option<Ipv4Addr> {
    match key {
        [b'i', a, b, c, d] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => None,
    }
}

/// What `change` stores under its address (encoded into `buf`); None
/// when the record goes (a purge).
fn value_of<'b>(change: &LeaseChange, names: &Names, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    if change.kind == ChangeKind::Purged {
        return None;
    }
    buf.clear();
    codec::encode(&change.record, names, buf);
    Some(buf.as_slice())
}

/// Appends `events` to the chunks of client `hw` in `batch` (its last
/// chunk as `tree` has it).
fn append_history(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    hw: &[u8],
    events: &[history::Packed],
) -> Result<(), StoreError> {
    let last = tree.scan_prefix(history::client_prefix(hw)).next_back().transpose()?;
    let last = last.as_ref().and_then(|(k, v)| Some((history::chunk_of(k)?.1, &v[..])));
    for (n, value) in history::append(last, events) {
        batch.insert(history::chunk_key(hw, n), value);
    }
    Ok(())
}

/// Upgrades a schema 1, 2 or 3 store: removes schema 1's by-client and
/// by-expiry indexes, moves the history of `h` keys (one per event) into
/// chunks, client by client — in batches of about a thousand keys, so
/// that sled never holds them all at once — then marks it with this
/// schema and flushes. Interrupted, it runs again at the next open: each
/// client's events move in one atomic batch.
fn upgrade(db: &sled::Db, tree: &sled::Tree, path: &str, from: u32) -> Result<(), StoreError> {
    let mut deletes = Deletes { tree, batch: sled::Batch::default(), pending: 0, chunk: 1024 };
    let mut removed = 0usize;
    if from == SCHEMA_WITH_INDEXES {
        for prefix in [b"c", b"e"] {
            for item in tree.scan_prefix(prefix) {
                deletes.remove(item?.0)?;
                removed += 1;
            }
        }
    }
    deletes.finish()?;
    let moved = move_legacy_history(tree)?;
    tree.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes())?;
    db.flush()?;
    tracing::info!(path, removed, history_events = moved, from, to = SCHEMA_VERSION, "lease store upgraded");
    Ok(())
}

/// Moves schema 3's `h` keys into chunks (see [`upgrade`]); a malformed
/// key is dropped with a warning. Returns the events moved.
fn move_legacy_history(tree: &sled::Tree) -> Result<usize, StoreError> {
    let (mut moved, mut pending) = (0, 0);
    let mut batch = sled::Batch::default();
    let mut client: (Vec<u8>, Vec<history::Packed>) = Default::default();
    let mut finish_client = |batch: &mut sled::Batch, client: &mut (Vec<u8>, Vec<history::Packed>)| {
        let (hw, events) = std::mem::take(client);
        moved += events.len();
        if events.is_empty() {
            return Ok(());
        }
        append_history(tree, batch, &hw, &events)
    };
    for item in tree.scan_prefix([history::LEGACY_PREFIX]) {
        let (k, v) = item?;
        let Some(e) = history::legacy_event(&k, &v) else {
            tracing::warn!(key = ?&k[..], "malformed history key dropped");
            batch.remove(k);
            continue;
        };
        if e.hw != client.0.as_slice() {
            finish_client(&mut batch, &mut client)?;
            if pending >= 1024 {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
            client.0 = e.hw.to_vec();
        }
        client.1.push(history::pack(&e));
        batch.remove(k);
        pending += 1;
    }
    finish_client(&mut batch, &mut client)?;
    tree.apply_batch(batch)?;
    Ok(moved)
}

fn describe_key(k: &[u8]) -> String {
    match k {
        [b'i', a, b, c, d] => Ipv4Addr::new(*a, *b, *c, *d).to_string(),
        other => format!("{other:02x?}"),
    }
}
