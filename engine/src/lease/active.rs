//! Counts of bound leases by MAC, by host name and by scope, kept in step
//! with every change to the cache, so that restrictions spanning shards
//! (ARCHITECTURE §5 `restrictions`, `max_concurrent_leases`) cost a hash
//! lookup per request instead of a scan of a million leases.
//!
//! A record contributes to three counters while it is bound: one per key
//! in its [`Signature`]. Keys are keyed 64-bit hashes of (kind, bytes);
//! host names compare case-insensitively (RFC 4343).

use std::hash::{BuildHasher, Hasher};

use ahash::RandomState;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use nohash_hasher::BuildNoHashHasher;

use super::record::{HwAddr, LeaseDetails, LeaseRecord, LeaseState};

/// What [`ActiveCounts::count`] counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountBy {
    /// The client's hardware address.
    Mac,
    /// The client's host name (option 12), any case.
    Hostname,
    /// The scope (its id, little-endian u16): dynamic leases only, not
    /// those of clients with a reservation.
    Scope,
    /// A pool of a scope (scope id then pool index, little-endian u16s):
    /// dynamic leases only, as for `Scope`.
    Pool,
}

/// The counter keys of a bound record (MAC, host name, scope, pool);
/// `None` for one that is not bound. A key is 0 where the record does not
/// count: no host name, or a reservation (for its scope and pool).
pub type Signature = Option<[u64; 4]>;

/// What a record's [`Signature`] depends on, copied without hashing: a
/// change that leaves it equal (a renewal, most updates) costs a compare
/// instead of three keyed hashes.
pub struct Counted {
    state: LeaseState,
    scope: u16,
    pool: u16,
    hw: HwAddr,
    /// A copy of the details (inline, or a shared allocation): the host
    /// name is their first field.
    details: LeaseDetails,
}

impl Counted {
    /// The parts of `record` its signature is computed from.
    pub fn of(record: &LeaseRecord) -> Counted {
        Counted {
            state: record.state,
            scope: record.scope,
            pool: record.pool,
            hw: record.hw,
            details: record.details.clone(),
        }
    }

    /// Whether `record` has the same signature as the record this was taken of.
    fn same_keys(&self, record: &LeaseRecord) -> bool {
        let bound = self.state.is_bound();
        if bound != record.state.is_bound() {
            return false;
        }
        !bound
            || ((self.state == LeaseState::Reserved) == (record.state == LeaseState::Reserved)
                && self.scope == record.scope
                && self.pool == record.pool
                && self.hw == record.hw
                && self.details.get().hostname == record.details.get().hostname)
    }
}

/// Bound leases per key. Most keys (a MAC, a host name) count one lease:
/// those live in a set of bare keys, 8 bytes an entry instead of a map's
/// 16 (at 1M leases, 19 instead of 36 bytes a lease once the tables' load
/// is counted). A key counted twice or more moves to the map of counts.
///
/// A key is in at most one of the two. Every change and every count holds
/// the key's shard of `ones` (locked first, then `more`), so a key moving
/// between them is never seen in neither.
pub struct ActiveCounts {
    /// Keys counted once. Keys are already hashes, not hashed again.
    ones: DashMap<u64, (), BuildNoHashHasher<u64>>,
    /// Keys counted more than once, with their counts.
    more: DashMap<u64, u32, BuildNoHashHasher<u64>>,
    hasher: RandomState,
}

impl Default for ActiveCounts {
    fn default() -> Self {
        ActiveCounts { ones: DashMap::default(), more: DashMap::default(), hasher: RandomState::new() }
    }
}

impl ActiveCounts {
    fn key(&self, by: CountBy, bytes: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u8(by as u8);
        match by {
            CountBy::Hostname => {
                // Host names are at most 255 bytes (one option); lower-cased
                // into a stack buffer and hashed in one write.
                let mut lower = [0u8; 256];
                let n = bytes.len().min(lower.len());
                for (d, s) in lower.iter_mut().zip(&bytes[..n]) {
                    *d = s.to_ascii_lowercase();
                }
                h.write(&lower[..n]);
            }
            CountBy::Mac | CountBy::Scope | CountBy::Pool => h.write(bytes),
        }
        // 0 stands for "no host name" in a signature.
        h.finish().max(1)
    }

    /// The keys `record` counts under.
    pub fn signature(&self, record: &LeaseRecord) -> Signature {
        self.keys_of(record.state, [record.scope, record.pool], &record.hw, &record.details)
    }

    fn keys_of(&self, state: LeaseState, [scope, pool]: [u16; 2], hw: &HwAddr, details: &LeaseDetails) -> Signature {
        if !state.is_bound() {
            return None;
        }
        let hostname = details.get().hostname;
        let host = if hostname.is_empty() { 0 } else { self.key(CountBy::Hostname, hostname) };
        // Scopes and pools count dynamic leases: reservations are served whatever they say.
        let (scope, pool) = if state == LeaseState::Reserved {
            (0, 0)
        } else {
            let ([s0, s1], [p0, p1]) = (scope.to_le_bytes(), pool.to_le_bytes());
            (self.key(CountBy::Scope, &[s0, s1]), self.key(CountBy::Pool, &[s0, s1, p0, p1]))
        };
        Some([self.key(CountBy::Mac, hw.bytes()), host, scope, pool])
    }

    /// Moves a record's contribution from what it was when `before` was
    /// taken to what it is now; hashes only when its keys changed.
    pub fn update(&self, before: &Counted, now: &LeaseRecord) {
        if !before.same_keys(now) {
            let b = before;
            self.shift(self.keys_of(b.state, [b.scope, b.pool], &b.hw, &b.details), self.signature(now));
        }
    }

    /// Moves a record's contribution from `before` to `after`.
    pub fn shift(&self, before: Signature, after: Signature) {
        if before == after {
            return;
        }
        for key in before.iter().flatten().filter(|k| **k != 0) {
            self.decrement(*key);
        }
        for key in after.iter().flatten().filter(|k| **k != 0) {
            self.increment(*key);
        }
    }

    fn increment(&self, key: u64) {
        match self.ones.entry(key) {
            Entry::Occupied(one) => {
                // Into the map first: removing consumes the entry and its lock.
                self.more.insert(key, 2);
                one.remove();
            }
            Entry::Vacant(none) => match self.more.get_mut(&key) {
                Some(mut n) => *n += 1,
                None => {
                    none.insert(());
                }
            },
        }
    }

    fn decrement(&self, key: u64) {
        match self.ones.entry(key) {
            Entry::Occupied(one) => {
                one.remove();
            }
            Entry::Vacant(none) => {
                if let Entry::Occupied(mut n) = self.more.entry(key) {
                    if *n.get() > 2 {
                        *n.get_mut() -= 1;
                    } else {
                        n.remove();
                        none.insert(());
                    }
                }
            }
        }
    }

    /// Bound leases with `key` (a MAC's bytes, a host name, a scope id as
    /// little-endian u16, or a scope id and pool index as two).
    pub fn count(&self, by: CountBy, key: &[u8]) -> u32 {
        if by == CountBy::Hostname && key.is_empty() {
            return 0;
        }
        let key = self.key(by, key);
        match self.ones.entry(key) {
            Entry::Occupied(_) => 1,
            Entry::Vacant(_) => self.more.get(&key).map_or(0, |n| *n),
        }
    }

    /// Number of keys with a count (none are kept at zero).
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.ones.len() + self.more.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_count_moving_between_set_and_map_is_never_seen_missing() {
        let counts = ActiveCounts::default();
        let mac = [2, 0, 0, 0, 0, 1];
        let key = counts.key(CountBy::Mac, &mac);
        counts.increment(key);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // 1 → 2 → 1: the key moves to the map of counts and back.
                for _ in 0..200_000 {
                    counts.increment(key);
                    counts.decrement(key);
                }
                done.store(true, Ordering::Relaxed);
            });
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let n = counts.count(CountBy::Mac, &mac);
                assert!(n == 1 || n == 2, "count {n} after {reads} reads");
                reads += 1;
            }
        });
        assert_eq!(counts.count(CountBy::Mac, &mac), 1);
        // Three, then back to none: nothing is left behind in either.
        for _ in 0..2 {
            counts.increment(key);
        }
        assert_eq!(counts.count(CountBy::Mac, &mac), 3);
        for _ in 0..3 {
            counts.decrement(key);
        }
        assert_eq!((counts.count(CountBy::Mac, &mac), counts.keys()), (0, 0));
        counts.decrement(key);
        assert_eq!(counts.keys(), 0, "a key not counted stays absent");
    }
}
