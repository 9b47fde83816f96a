//! The lease cache: every lease by address, and each client's latest lease.
//!
//! Records live in per-span page tables indexed by address offset (a span
//! is a scope's pool range, or a reservation outside it), 256 slots a page,
//! a page allocated when its first lease arrives. Each slot has its own
//! lock, so finding a lease is an array index, not a hash, and shards
//! never contend unless they touch the same address. The client index maps
//! a keyed 64-bit hash of the client key to an address: 12 bytes a client.
//! A hash collision (about 1 in 10^10 per pair of clients at 1M) only costs
//! a client its sticky address: ownership is always checked on the record.
//!
//! A client's entries are only written by the shard that owns the client;
//! an address's record is only created by whoever claimed its allocator bit.
//!
//! Every path that changes a record (insert, removal, [`RecordGuard`],
//! [`LeaseCache::for_each_mut`]) keeps the [`ActiveCounts`] in step.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

use ahash::RandomState;
use dashmap::DashMap;
use nohash_hasher::BuildNoHashHasher;
use parking_lot::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};

use super::active::{ActiveCounts, CountBy, Counted};
use super::record::{ClientKey, LeaseRecord, CLIENT_KEY_MAX};

const PAGE: usize = 256;

type Slot = RwLock<Option<LeaseRecord>>;

/// 256 slots of a span, allocated with the first lease among them. The
/// slots alone make 24 KiB, exactly one of the allocator's size classes:
/// with `used` beside them a page would take the next class, 28 KiB.
struct Page {
    slots: OnceLock<Box<[Slot; PAGE]>>,
    used: AtomicU32,
}

impl Page {
    /// The slots, if a record is in one of them.
    fn occupied(&self) -> Option<&[Slot; PAGE]> {
        self.slots.get().filter(|_| self.used.load(Ordering::Relaxed) > 0).map(|b| &**b)
    }
}

/// Consecutive addresses that may hold leases.
struct Span {
    base: u32,
    len: u32,
    pages: Box<[Page]>,
}

/// A client key's keyed 64-bit hash, as two u32 so that an index entry
/// (hash, address) takes 12 bytes instead of 16.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ClientHash([u32; 2]);

impl std::hash::Hash for ClientHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

/// Already a hash: the index does not hash it again.
impl nohash_hasher::IsEnabled for ClientHash {}

/// A write lock on one lease record. Hold it briefly and touch no other
/// record of the cache while holding it. Its release updates the counts
/// of bound leases if the change bound or unbound the record.
pub struct RecordGuard<'a> {
    record: MappedRwLockWriteGuard<'a, LeaseRecord>,
    active: &'a ActiveCounts,
    before: Counted,
}

impl std::ops::Deref for RecordGuard<'_> {
    type Target = LeaseRecord;
    fn deref(&self) -> &LeaseRecord {
        &self.record
    }
}

impl std::ops::DerefMut for RecordGuard<'_> {
    fn deref_mut(&mut self) -> &mut LeaseRecord {
        &mut self.record
    }
}

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        self.active.update(&self.before, &self.record);
    }
}

/// Leases by address and by client.
pub struct LeaseCache {
    /// Sorted by base; never overlapping.
    spans: Vec<Span>,
    /// Keyed by [`LeaseCache::client_hash`]: already a hash, not hashed again.
    by_client: DashMap<ClientHash, u32, BuildNoHashHasher<ClientHash>>,
    hasher: RandomState,
    len: AtomicUsize,
    active: ActiveCounts,
}

impl LeaseCache {
    /// A cache for leases on the addresses of `spans` (first address, count).
    pub fn new(spans: impl IntoIterator<Item = (Ipv4Addr, u32)>) -> Self {
        let mut spans: Vec<Span> = spans
            .into_iter()
            .filter(|s| s.1 > 0)
            .map(|(base, len)| Span {
                base: u32::from(base),
                len,
                pages: (0..(len as usize).div_ceil(PAGE))
                    .map(|_| Page { slots: OnceLock::new(), used: AtomicU32::new(0) })
                    .collect(),
            })
            .collect();
        spans.sort_by_key(|s| s.base);
        LeaseCache {
            spans,
            by_client: DashMap::default(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            active: ActiveCounts::default(),
        }
    }

    /// Whether `ip` can hold a lease in this cache.
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        self.locate(ip).is_some()
    }

    /// (span, page, slot) of `ip`.
    fn locate(&self, ip: Ipv4Addr) -> Option<(&Span, usize, usize)> {
        let ip = u32::from(ip);
        let at = self.spans.partition_point(|s| s.base <= ip).checked_sub(1)?;
        let span = &self.spans[at];
        let offset = (ip - span.base) as usize;
        (offset < span.len as usize).then_some((span, offset / PAGE, offset % PAGE))
    }

    fn slot(&self, ip: Ipv4Addr) -> Option<(&Page, &Slot)> {
        let (span, page, slot) = self.locate(ip)?;
        let page = &span.pages[page];
        Some((page, &page.slots.get()?[slot]))
    }

    fn slot_or_new(&self, ip: Ipv4Addr) -> Option<(&Page, &Slot)> {
        let (span, page, slot) = self.locate(ip)?;
        let page = &span.pages[page];
        let slots = page.slots.get_or_init(|| Box::new(std::array::from_fn(|_| RwLock::new(None))));
        Some((page, &slots[slot]))
    }

    fn client_hash(&self, key: &[u8]) -> ClientHash {
        let h = self.hasher.hash_one(key);
        ClientHash([h as u32, (h >> 32) as u32])
    }

    /// The client hash of `record`'s owner.
    fn hash_of(&self, record: &LeaseRecord) -> ClientHash {
        self.client_hash(record.client_key(&mut [0; CLIENT_KEY_MAX]))
    }

    /// Number of records (any state).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the record at `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Option<LeaseRecord> {
        self.slot(ip)?.1.read().clone()
    }

    /// `f` of the record at `ip`, read in place (no copy).
    pub fn read<T>(&self, ip: Ipv4Addr, f: impl FnOnce(&LeaseRecord) -> T) -> Option<T> {
        self.slot(ip)?.1.read().as_ref().map(f)
    }

    /// The record at `ip`, locked for update.
    pub fn get_mut(&self, ip: Ipv4Addr) -> Option<RecordGuard<'_>> {
        let record = RwLockWriteGuard::try_map(self.slot(ip)?.1.write(), Option::as_mut).ok()?;
        let before = Counted::of(&record);
        Some(RecordGuard { record, active: &self.active, before })
    }

    /// Bound (allocated or reserved) leases by MAC, host name or scope,
    /// across all shards: a hash lookup.
    pub fn active_count(&self, by: CountBy, key: &[u8]) -> u32 {
        self.active.count(by, key)
    }

    /// Whether the record at `ip` belongs to the client with encoded key `key`.
    pub fn is_owned_by(&self, ip: Ipv4Addr, key: &[u8]) -> bool {
        self.read(ip, |r| r.is_client(key)).unwrap_or(false)
    }

    /// The address of the latest record of the client with encoded key
    /// `key`: a hint, check ownership under [`LeaseCache::get_mut`].
    pub fn client_ip(&self, key: &[u8]) -> Option<Ipv4Addr> {
        self.by_client.get(&self.client_hash(key)).map(|ip| Ipv4Addr::from(*ip))
    }

    /// A copy of the latest record of the client with encoded key `key`.
    pub fn for_client(&self, key: &[u8]) -> Option<LeaseRecord> {
        self.get(self.client_ip(key)?).filter(|r| r.is_client(key))
    }

    /// Stores `record` at its address and makes it its client's latest; a
    /// record it replaces loses its client's pointer. False when the
    /// address is outside every span (the record is not kept).
    pub fn insert(&self, record: LeaseRecord) -> bool {
        self.insert_and(record, |_| {})
    }

    /// [`LeaseCache::insert`], calling `locked` with the record before its
    /// slot is unlocked: a change submitted there is ahead of any later
    /// one to the address.
    pub fn insert_and(&self, record: LeaseRecord, locked: impl FnOnce(&LeaseRecord)) -> bool {
        let ip = u32::from(record.ip);
        let client = self.hash_of(&record);
        let Some(old) = self.put(record, locked) else { return false };
        self.by_client.insert(client, ip);
        if let Some(old) = old {
            let old_client = self.hash_of(&old);
            if old_client != client {
                self.by_client.remove_if(&old_client, |_, at| *at == ip);
            }
        }
        true
    }

    /// Stores a recovered record by address only; [`LeaseCache::index_clients`]
    /// builds the client index once every record is in. False when outside every span.
    pub fn insert_recovered(&self, record: LeaseRecord) -> bool {
        self.put(record, |_| {}).is_some()
    }

    /// Puts `record` in its slot, calling `locked` with it there: None when
    /// there is no slot, else the record replaced.
    fn put(&self, record: LeaseRecord, locked: impl FnOnce(&LeaseRecord)) -> Option<Option<LeaseRecord>> {
        let (page, slot) = self.slot_or_new(record.ip)?;
        let after = self.active.signature(&record);
        let old = {
            let mut s = slot.write();
            let old = s.replace(record);
            if let Some(r) = s.as_ref() {
                locked(r);
            }
            old
        };
        self.active.shift(old.as_ref().and_then(|o| self.active.signature(o)), after);
        if old.is_none() {
            page.used.fetch_add(1, Ordering::Relaxed);
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Some(old)
    }

    /// Removes the record at `ip` if `pred` holds for it, and the client's
    /// pointer to it. Returns the removed record.
    pub fn remove_if(&self, ip: Ipv4Addr, pred: impl FnOnce(&LeaseRecord) -> bool) -> Option<LeaseRecord> {
        self.remove_if_and(ip, pred, |_| {})
    }

    /// [`LeaseCache::remove_if`], calling `locked` with the removed record
    /// before the address's lock is let go: nothing else can put a record
    /// at `ip` meanwhile (so a change submitted there is ahead of theirs).
    pub fn remove_if_and(
        &self,
        ip: Ipv4Addr,
        pred: impl FnOnce(&LeaseRecord) -> bool,
        locked: impl FnOnce(&LeaseRecord),
    ) -> Option<LeaseRecord> {
        let (page, slot) = self.slot(ip)?;
        let removed = {
            let mut s = slot.write();
            if !s.as_ref().is_some_and(pred) {
                return None;
            }
            let removed = s.take()?;
            locked(&removed);
            removed
        };
        page.used.fetch_sub(1, Ordering::Relaxed);
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.active.shift(self.active.signature(&removed), None);
        self.by_client.remove_if(&self.hash_of(&removed), |_, at| *at == u32::from(ip));
        Some(removed)
    }

    fn pages(&self) -> impl Iterator<Item = &[Slot; PAGE]> {
        self.spans.iter().flat_map(|s| s.pages.iter().filter_map(Page::occupied))
    }

    /// Calls `f` on each record at or above `from`, in address order, each
    /// read-locked in turn, until it returns false. Starting costs an index
    /// computation, not a walk: pages of a million leases stay cheap.
    pub fn scan_from(&self, from: Ipv4Addr, mut f: impl FnMut(&LeaseRecord) -> bool) {
        let from = u64::from(u32::from(from));
        for span in &self.spans {
            let (base, end) = (u64::from(span.base), u64::from(span.base) + u64::from(span.len));
            if end <= from {
                continue;
            }
            let first = from.saturating_sub(base) as usize;
            for (p, page) in span.pages.iter().enumerate().skip(first / PAGE) {
                let Some(slots) = page.occupied() else { continue };
                let start = if p == first / PAGE { first % PAGE } else { 0 };
                for slot in &slots[start..] {
                    if let Some(r) = slot.read().as_ref() {
                        if !f(r) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Calls `f` on every record, each locked for update in turn.
    /// `pause` is called after each page of 256 addresses, with no lock
    /// held: where a background caller lets others have the core.
    pub fn for_each_mut(&self, mut f: impl FnMut(&mut LeaseRecord), mut pause: impl FnMut()) {
        for slots in self.pages() {
            for slot in slots {
                if let Some(r) = slot.write().as_mut() {
                    let before = Counted::of(r);
                    f(r);
                    self.active.update(&before, r);
                }
            }
            pause();
        }
    }

    /// Calls `f` on every record, each read-locked in turn.
    pub fn for_each(&self, f: impl FnMut(&LeaseRecord)) {
        self.for_each_pausing(f, || {});
    }

    /// [`LeaseCache::for_each`], calling `pause` after each page of 256
    /// addresses, with no lock held.
    pub fn for_each_pausing(&self, mut f: impl FnMut(&LeaseRecord), mut pause: impl FnMut()) {
        for slots in self.pages() {
            for slot in slots {
                if let Some(r) = slot.read().as_ref() {
                    f(r);
                }
            }
            pause();
        }
    }

    /// Points each client at its most recently updated record and returns
    /// the clients with two bound leases, as (older, newer) addresses.
    pub fn index_clients(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut all: Vec<(ClientKey, u32, u32, bool)> = Vec::with_capacity(self.len());
        let mut key = [0; CLIENT_KEY_MAX];
        self.for_each(|r| {
            all.push((ClientKey::from_bytes(r.client_key(&mut key)), u32::from(r.ip), r.updated, r.state.is_bound()))
        });
        // Per client, oldest first; bound leases after unbound ones of the same time.
        all.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        self.by_client.clear();
        let mut conflicts = Vec::new();
        let mut bound_of_client: Option<u32> = None;
        for i in 0..all.len() {
            let (client, ip, _, bound) = &all[i];
            if i == 0 || all[i - 1].0 != *client {
                bound_of_client = None;
            }
            if *bound {
                if let Some(older) = bound_of_client {
                    conflicts.push((Ipv4Addr::from(older), Ipv4Addr::from(*ip)));
                }
                bound_of_client = Some(*ip);
            }
            if all.get(i + 1).is_none_or(|n| n.0 != *client) {
                // A client's bound lease wins over a later unbound record.
                self.by_client.insert(self.client_hash(client.as_bytes()), bound_of_client.unwrap_or(*ip));
            }
        }
        conflicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Details, HwAddr, LeaseDetails, LeaseState, DETAILS_MAX};

    fn record(last: u8, mac: u8, hostname: &[u8], state: LeaseState) -> LeaseRecord {
        let mut buf = [0; DETAILS_MAX];
        let details = Details { hostname, vendor_class: b"", client_id: &[last], circuit_id: b"", remote_id: b"" };
        LeaseRecord {
            ip: Ipv4Addr::new(198, 18, 0, last),
            state,
            scope: 0,
            pool: 0,
            hw: HwAddr::new(1, &[2, 0, 0, 0, 0, mac]),
            details: LeaseDetails::from_packed(details.pack(&mut buf)),
            start: 10,
            end: 20,
            last_seen: 10,
            created: 10,
            updated: 10,
            holds_address: true,
        }
    }

    #[test]
    fn a_page_of_slots_fills_an_allocator_size_class_exactly() {
        // 24 KiB is a size class of mimalloc (four per doubling above 1 KiB).
        assert_eq!(std::mem::size_of::<[Slot; PAGE]>(), 24 * 1024);
    }

    #[test]
    fn counts_bound_leases_by_mac_hostname_scope_and_pool_through_every_change() {
        let cache = LeaseCache::new([(Ipv4Addr::new(198, 18, 0, 0), 256)]);
        let mac = [2, 0, 0, 0, 0, 9];
        let counts = |c: &LeaseCache| {
            (
                c.active_count(CountBy::Mac, &mac),
                c.active_count(CountBy::Hostname, b"PRINTER"),
                c.active_count(CountBy::Scope, &0u16.to_le_bytes()) * 10 + c.active_count(CountBy::Pool, &[0, 0, 0, 0]),
            )
        };
        // Two client ids of one MAC, one offer that does not count.
        cache.insert(record(1, 9, b"printer", LeaseState::Allocated));
        cache.insert(record(2, 9, b"Printer", LeaseState::Reserved));
        cache.insert(record(3, 7, b"", LeaseState::Offered));
        assert_eq!(counts(&cache), (2, 2, 11), "a reservation does not count in its scope");
        // The offer is accepted (in place, through the guard).
        cache.get_mut(Ipv4Addr::new(198, 18, 0, 3)).unwrap().state = LeaseState::Allocated;
        assert_eq!(counts(&cache), (2, 2, 22));
        // A release through the guard, then a renamed host.
        cache.get_mut(Ipv4Addr::new(198, 18, 0, 1)).unwrap().state = LeaseState::Released;
        assert_eq!(counts(&cache), (1, 1, 11));
        {
            let mut g = cache.get_mut(Ipv4Addr::new(198, 18, 0, 2)).unwrap();
            let mut buf = [0; DETAILS_MAX];
            let d = Details { hostname: b"laptop", vendor_class: b"", client_id: b"", circuit_id: b"", remote_id: b"" };
            g.details = LeaseDetails::from_packed(d.pack(&mut buf));
            // Not counted anew until the lock is let go.
            assert_eq!(cache.active.count(CountBy::Hostname, b"printer"), 1);
        }
        assert_eq!(counts(&cache), (1, 0, 11));
        assert_eq!(cache.active_count(CountBy::Hostname, b"LAPTOP"), 1);
        // Replacing a bound record, a sweep expiring everything, removals.
        cache.insert(record(2, 9, b"printer", LeaseState::Allocated));
        assert_eq!(counts(&cache), (1, 1, 22));
        // Pinned while bound: leaves its scope's count only; then another MAC.
        cache.get_mut(Ipv4Addr::new(198, 18, 0, 2)).unwrap().state = LeaseState::Reserved;
        assert_eq!(counts(&cache), (1, 1, 11));
        cache.get_mut(Ipv4Addr::new(198, 18, 0, 2)).unwrap().hw = HwAddr::new(1, &[2, 0, 0, 0, 0, 8]);
        assert_eq!(counts(&cache), (0, 1, 11));
        // Scope count ×10 + pool 0's: moved to pool 1, it leaves pool 0 only.
        cache.get_mut(Ipv4Addr::new(198, 18, 0, 3)).unwrap().pool = 1;
        assert_eq!(counts(&cache), (0, 1, 10));
        assert_eq!(cache.active_count(CountBy::Pool, &[0, 0, 1, 0]), 1);
        cache.for_each_mut(|r| r.state = LeaseState::Expired, || {});
        assert_eq!(counts(&cache), (0, 0, 0));
        cache.insert(record(4, 9, b"printer", LeaseState::Allocated));
        assert_eq!(cache.remove_if(Ipv4Addr::new(198, 18, 0, 4), |_| true).unwrap().ip, Ipv4Addr::new(198, 18, 0, 4));
        assert_eq!(counts(&cache), (0, 0, 0));
        assert_eq!(cache.active.keys(), 0, "no counters are left behind");
        // Pages of the address space, from any address on (1 and 2 stayed, expired).
        for last in [5, 3, 200, 7] {
            cache.insert(record(last, last, b"", LeaseState::Allocated));
        }
        let from = |ip: u8, n: usize| {
            let mut seen = vec![];
            cache.scan_from(Ipv4Addr::new(198, 18, 0, ip), |r| {
                seen.push(r.ip.octets()[3]);
                seen.len() < n
            });
            seen
        };
        assert_eq!(
            (from(0, 9), from(4, 2), from(6, 9), from(201, 9)),
            (vec![1, 2, 3, 5, 7, 200], vec![5, 7], vec![7, 200], vec![])
        );
        assert_eq!(cache.active_count(CountBy::Hostname, b""), 0);
    }

    /// A walk over every record pauses after each page in use, not over
    /// pages never used.
    #[test]
    fn walks_pause_after_each_page_in_use() {
        let cache = LeaseCache::new([(Ipv4Addr::new(198, 18, 0, 0), 4 * 256)]);
        let at = |page: u8, last: u8| LeaseRecord {
            ip: Ipv4Addr::new(198, 18, page, last),
            ..record(last, last, b"", LeaseState::Allocated)
        };
        for (page, last) in [(0, 1), (0, 9), (2, 1), (3, 255)] {
            cache.insert(at(page, last));
        }
        let seen = std::cell::RefCell::new(Vec::new());
        let pause = || seen.borrow_mut().push(Ipv4Addr::UNSPECIFIED);
        cache.for_each_mut(|r| seen.borrow_mut().push(r.ip), pause);
        let pauses_after = |seen: &[Ipv4Addr]| {
            seen.iter()
                .enumerate()
                .filter(|(_, ip)| ip.is_unspecified())
                .map(|(i, _)| seen[i - 1].octets()[2])
                .collect::<Vec<_>>()
        };
        assert_eq!(pauses_after(&seen.borrow()), [0, 2, 3], "{:?}", seen.borrow());
        assert_eq!(seen.borrow().len(), 4 + 3);
        seen.borrow_mut().clear();
        cache.for_each_pausing(|r| seen.borrow_mut().push(r.ip), pause);
        assert_eq!(pauses_after(&seen.borrow()), [0, 2, 3]);
    }
}
