//! The lease cache: every lease by IP, and each client's latest lease by
//! client key, in [`DashMap`]s shared by all shards. A client's entries are
//! only written by the shard that owns the client; an address's record is
//! only created by whoever claimed its bit in the allocator.

use std::net::Ipv4Addr;

use ahash::RandomState;
use dashmap::mapref::one::RefMut;
use dashmap::DashMap;

use super::record::{ClientKey, LeaseRecord};

/// Leases by IP and by client.
pub struct LeaseCache {
    by_ip: DashMap<u32, LeaseRecord, RandomState>,
    by_client: DashMap<ClientKey, u32, RandomState>,
}

impl Default for LeaseCache {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl LeaseCache {
    /// A cache with room for `n` leases before it grows.
    pub fn with_capacity(n: usize) -> Self {
        LeaseCache {
            by_ip: DashMap::with_capacity_and_hasher(n, RandomState::new()),
            by_client: DashMap::with_capacity_and_hasher(n, RandomState::new()),
        }
    }

    /// Number of records (any state).
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// A copy of the record at `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Option<LeaseRecord> {
        self.by_ip.get(&u32::from(ip)).map(|r| r.clone())
    }

    /// The record at `ip`, locked for update. Hold it briefly and touch no
    /// other record of the cache while holding it.
    pub fn get_mut(&self, ip: Ipv4Addr) -> Option<RefMut<'_, u32, LeaseRecord>> {
        self.by_ip.get_mut(&u32::from(ip))
    }

    /// The address of the latest record of the client with encoded key
    /// `key`. The record is that client's when looked at; check again under
    /// [`LeaseCache::get_mut`] before acting on it.
    pub fn client_ip(&self, key: &[u8]) -> Option<Ipv4Addr> {
        self.by_client.get(key).map(|ip| Ipv4Addr::from(*ip))
    }

    /// Whether the record at `ip` belongs to the client with encoded key `key`.
    pub fn is_owned_by(&self, ip: Ipv4Addr, key: &[u8]) -> bool {
        self.by_ip.get(&u32::from(ip)).is_some_and(|r| r.client.as_bytes() == key)
    }

    /// A copy of the latest record of the client with encoded key `key`.
    pub fn for_client(&self, key: &[u8]) -> Option<LeaseRecord> {
        let ip = self.client_ip(key)?;
        self.by_ip.get(&u32::from(ip)).filter(|r| r.client.as_bytes() == key).map(|r| r.clone())
    }

    /// Stores `record` at its IP and makes it its client's latest. A
    /// record it replaces loses its client's pointer, so the client index
    /// only ever names a client's own record.
    pub fn insert(&self, record: LeaseRecord) {
        let ip = u32::from(record.ip);
        match self.by_client.get_mut(record.client.as_bytes()) {
            Some(mut at) => *at = ip,
            None => {
                self.by_client.insert(record.client.clone(), ip);
            }
        }
        let client = record.client.clone();
        if let Some(old) = self.by_ip.insert(ip, record) {
            if old.client != client {
                self.by_client.remove_if(old.client.as_bytes(), |_, at| *at == ip);
            }
        }
    }

    /// Removes the record at `ip` if `pred` holds for it, and the client's
    /// pointer to it. Returns the removed record.
    pub fn remove_if(&self, ip: Ipv4Addr, pred: impl FnOnce(&LeaseRecord) -> bool) -> Option<LeaseRecord> {
        let (_, record) = self.by_ip.remove_if(&u32::from(ip), |_, r| pred(r))?;
        self.by_client.remove_if(record.client.as_bytes(), |_, at| *at == u32::from(ip));
        Some(record)
    }

    /// Stores a recovered record by address only; [`LeaseCache::index_clients`]
    /// builds the client index once every record is in.
    pub fn insert_recovered(&self, record: LeaseRecord) {
        self.by_ip.insert(u32::from(record.ip), record);
    }

    /// Points each client at its most recently updated record and returns
    /// the clients with two bound leases, as (older, newer) addresses.
    pub fn index_clients(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut latest: Vec<(ClientKey, u32, u32, bool)> =
            self.by_ip.iter().map(|r| (r.client.clone(), u32::from(r.ip), r.updated, r.state.is_bound())).collect();
        // Per client, oldest first; bound leases after unbound ones of the same time.
        latest.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        let mut conflicts = Vec::new();
        let mut bound_of_client: Option<u32> = None;
        for i in 0..latest.len() {
            let (client, ip, _, bound) = &latest[i];
            let same_client = i > 0 && latest[i - 1].0 == *client;
            if !same_client {
                bound_of_client = None;
            }
            if *bound {
                if let Some(older) = bound_of_client {
                    conflicts.push((Ipv4Addr::from(older), Ipv4Addr::from(*ip)));
                }
                bound_of_client = Some(*ip);
            }
            let last_of_client = latest.get(i + 1).is_none_or(|n| n.0 != *client);
            if last_of_client {
                // A client's bound lease wins over a later unbound record.
                self.by_client.insert(client.clone(), bound_of_client.unwrap_or(*ip));
            }
        }
        conflicts
    }

    /// Calls `f` on every record, one map shard locked at a time.
    pub fn for_each_mut(&self, mut f: impl FnMut(&mut LeaseRecord)) {
        for mut r in self.by_ip.iter_mut() {
            f(r.value_mut());
        }
    }

    /// Calls `f` on a copy-free view of every record.
    pub fn for_each(&self, mut f: impl FnMut(&LeaseRecord)) {
        for r in self.by_ip.iter() {
            f(r.value());
        }
    }
}
