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

use super::record::{LeaseRecord, LeaseState};

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
}

/// The counter keys of a bound record; `None` for one that is not bound.
/// A key is 0 where the record does not count: no host name, or a
/// reservation (for its scope).
pub type Signature = Option<[u64; 3]>;

/// Bound leases per key.
pub struct ActiveCounts {
    counts: DashMap<u64, u32, RandomState>,
    hasher: RandomState,
}

impl Default for ActiveCounts {
    fn default() -> Self {
        ActiveCounts { counts: DashMap::with_hasher(RandomState::new()), hasher: RandomState::new() }
    }
}

impl ActiveCounts {
    fn key(&self, by: CountBy, bytes: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u8(by as u8);
        match by {
            CountBy::Hostname => bytes.iter().for_each(|b| h.write_u8(b.to_ascii_lowercase())),
            CountBy::Mac | CountBy::Scope => h.write(bytes),
        }
        // 0 stands for "no host name" in a signature.
        h.finish().max(1)
    }

    /// The keys `record` counts under.
    pub fn signature(&self, record: &LeaseRecord) -> Signature {
        if !record.state.is_bound() {
            return None;
        }
        let details = record.details.get();
        let host = if details.hostname.is_empty() { 0 } else { self.key(CountBy::Hostname, details.hostname) };
        // A scope's count is of dynamic leases: reservations are served whatever it says.
        let scope = if record.state == LeaseState::Reserved {
            0
        } else {
            self.key(CountBy::Scope, &record.scope.to_le_bytes())
        };
        Some([self.key(CountBy::Mac, record.hw.bytes()), host, scope])
    }

    /// Moves a record's contribution from `before` to `after`.
    pub fn shift(&self, before: Signature, after: Signature) {
        if before == after {
            return;
        }
        for key in before.iter().flatten().filter(|k| **k != 0) {
            if let Entry::Occupied(mut e) = self.counts.entry(*key) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        for key in after.iter().flatten().filter(|k| **k != 0) {
            *self.counts.entry(*key).or_insert(0) += 1;
        }
    }

    /// Bound leases with `key` (a MAC's bytes, a host name, or a scope id as
    /// little-endian u16).
    pub fn count(&self, by: CountBy, key: &[u8]) -> u32 {
        if by == CountBy::Hostname && key.is_empty() {
            return 0;
        }
        self.counts.get(&self.key(by, key)).map_or(0, |n| *n)
    }

    /// Number of keys with a count (none are kept at zero).
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.counts.len()
    }
}
