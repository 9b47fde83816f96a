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

/// Bound leases per key.
pub struct ActiveCounts {
    /// By key: already a hash, not hashed again.
    counts: DashMap<u64, u32, BuildNoHashHasher<u64>>,
    hasher: RandomState,
}

impl Default for ActiveCounts {
    fn default() -> Self {
        ActiveCounts { counts: DashMap::default(), hasher: RandomState::new() }
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

    /// Bound leases with `key` (a MAC's bytes, a host name, a scope id as
    /// little-endian u16, or a scope id and pool index as two).
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
