//! The config compiled for the packet path: scope selection tables, pools
//! as allocator segments, reservations by MAC and hostname, encoded options.

use ahash::AHashMap as HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use wildmatch::WildMatch;

use super::options::EncodedOptions;
use super::BuildError;
use crate::config::{self, AddrRange, LeaseTimes, Secs};
use crate::lease::AddressMap;

/// What the server knows of a local interface at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub ifindex: u32,
    /// The interface's IPv4 network, for scopes that give no subnet.
    pub net: Option<Ipv4Net>,
}

/// A scope ready to serve.
pub struct ScopeRt {
    pub name: String,
    pub subnet: Ipv4Net,
    pub ifindex: Option<u32>,
    pub times: LeaseTimes,
    pub pools: Vec<PoolRt>,
    /// Addresses kept for reservations (`max_reservations`), before the default pool.
    pub reserved_range: Option<AddrRange>,
    pub reservations: Vec<ReservationRt>,
    by_mac: HashMap<[u8; 6], usize>,
    /// Lower-cased host names (bytes: a client's option 12 need not be UTF-8).
    by_hostname: HashMap<Box<[u8]>, usize>,
    by_ip: HashMap<Ipv4Addr, usize>,
    pub options: EncodedOptions,
    /// In-use bits of every pool address of the scope.
    pub map: AddressMap,
}

/// Size and use of a pool or a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size: u64,
    pub taken: u64,
}

impl Usage {
    /// Share of addresses taken, 0.0..=1.0 (0 for an empty range).
    pub fn ratio(&self) -> f64 {
        if self.size == 0 {
            0.0
        } else {
            self.taken as f64 / self.size as f64
        }
    }
}

/// A pool: the segments of its range that no nested pool owns.
pub struct PoolRt {
    pub name: String,
    pub range: AddrRange,
    pub segments: Vec<AddrRange>,
    pub times: LeaseTimes,
    allow: Vec<WildMatch>,
}

/// A reservation with its options ready.
pub struct ReservationRt {
    pub ip: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
    pub hostname: Option<String>,
    pub lease_time: Option<Secs>,
    pub boot_file: Option<Vec<u8>>,
    pub options: EncodedOptions,
}

impl PoolRt {
    /// Whether a client may take addresses from this pool: open pools take
    /// everyone, others match an `allow` glob on hostname or vendor class.
    pub fn admits(&self, hostname: Option<&str>, vendor_class: Option<&str>) -> bool {
        self.allow.is_empty() || self.allow_matches(hostname, vendor_class)
    }

    /// Whether one of the pool's `allow` globs names this client.
    pub fn allow_matches(&self, hostname: Option<&str>, vendor_class: Option<&str>) -> bool {
        self.allow.iter().any(|g| hostname.is_some_and(|h| g.matches(h)) || vendor_class.is_some_and(|v| g.matches(v)))
    }

    /// Whether `ip` is one of this pool's own addresses.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.segments.iter().any(|s| s.contains(ip))
    }
}

impl ScopeRt {
    /// Addresses of pool `pool` (its own segments; `None`: every pool of
    /// the scope) and how many of them are taken (leased, offered, held).
    pub fn usage(&self, pool: Option<usize>) -> Usage {
        let mut u = Usage::default();
        for (i, p) in self.pools.iter().enumerate() {
            if pool.is_some_and(|want| want != i) {
                continue;
            }
            for seg in &p.segments {
                u.taken += self.map.count_taken(seg.start, seg.end);
                u.size += u64::from(u32::from(seg.end) - u32::from(seg.start)) + 1;
            }
        }
        u
    }

    /// Compiles a scope; `iface` describes its interface, if it has one.
    pub fn new(scope: &config::Scope, iface: Option<InterfaceInfo>) -> Result<Self, BuildError> {
        let subnet =
            scope.subnet.or(iface.and_then(|i| i.net)).ok_or_else(|| BuildError::NoSubnet(scope.name.clone()))?;
        let lo = scope.pools.iter().map(|p| u32::from(p.range.start)).min().unwrap_or(u32::from(subnet.network()));
        let hi = scope.pools.iter().map(|p| u32::from(p.range.end)).max().unwrap_or(lo);
        let map = AddressMap::new(Ipv4Addr::from(lo), hi - lo + 1);
        let pools = scope
            .pools
            .iter()
            .map(|p| PoolRt {
                name: p.name.clone(),
                range: p.range,
                segments: own_segments(&p.range, scope.pools.iter().map(|q| q.range)),
                times: p.times,
                allow: p.allow.iter().map(|g| WildMatch::new_case_insensitive(g)).collect(),
            })
            .collect();
        let base_options = EncodedOptions::new(&scope.options, subnet);
        let mut rt = ScopeRt {
            name: scope.name.clone(),
            subnet,
            ifindex: iface.map(|i| i.ifindex),
            times: scope.times,
            pools,
            reserved_range: scope.reserved_range,
            reservations: Vec::new(),
            by_mac: HashMap::new(),
            by_hostname: HashMap::new(),
            by_ip: HashMap::new(),
            options: base_options,
            map,
        };
        for r in &scope.reservations {
            let i = rt.reservations.len();
            if let Some(mac) = r.mac {
                rt.by_mac.insert(mac.0, i);
            }
            if let (true, Some(h)) = (r.allow_any_mac, &r.hostname) {
                rt.by_hostname.insert(h.to_ascii_lowercase().into_bytes().into(), i);
            }
            rt.by_ip.insert(r.ip, i);
            // A reserved address inside a pool is never handed to anyone else.
            rt.map.claim(r.ip);
            rt.reservations.push(ReservationRt {
                ip: r.ip,
                mac: r.mac.map(|m| m.0),
                hostname: r.hostname.clone(),
                lease_time: r.lease_time,
                boot_file: r.options.boot_file.clone().or(scope.options.boot_file.clone()).map(String::into_bytes),
                options: EncodedOptions::new(&scope.options.overlaid(&r.options), subnet),
            });
        }
        Ok(rt)
    }

    /// The reservation of a client, by MAC (Ethernet) or by hostname.
    pub fn reservation_for(&self, htype: u8, hw: &[u8], hostname: Option<&[u8]>) -> Option<&ReservationRt> {
        let by_mac = (htype == 1).then(|| <[u8; 6]>::try_from(hw).ok()).flatten().and_then(|m| self.by_mac.get(&m));
        let by_name = || {
            let h = hostname.filter(|_| !self.by_hostname.is_empty())?;
            let mut buf = [0u8; 255];
            let lower = buf.get_mut(..h.len())?;
            lower.copy_from_slice(h);
            lower.make_ascii_lowercase();
            self.by_hostname.get(&*lower)
        };
        by_mac.or_else(by_name).map(|&i| &self.reservations[i])
    }

    /// The reservation of `ip`, whoever holds it.
    pub fn reservation_at(&self, ip: Ipv4Addr) -> Option<&ReservationRt> {
        self.by_ip.get(&ip).map(|&i| &self.reservations[i])
    }

    /// The pool owning `ip`, if any.
    pub fn pool_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.pools.iter().position(|p| p.owns(ip))
    }
}

/// `range` minus the pools nested inside it.
fn own_segments(range: &AddrRange, all: impl Iterator<Item = AddrRange>) -> Vec<AddrRange> {
    let mut inner: Vec<AddrRange> = all.filter(|r| r != range && range.covers(r)).collect();
    inner.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut next = u32::from(range.start) as u64;
    for r in inner {
        let (s, e) = (u32::from(r.start) as u64, u32::from(r.end) as u64);
        if s > next {
            out.push(AddrRange::new(Ipv4Addr::from(next as u32), Ipv4Addr::from((s - 1) as u32)));
        }
        next = next.max(e + 1);
    }
    if next <= u32::from(range.end) as u64 {
        out.push(AddrRange::new(Ipv4Addr::from(next as u32), range.end));
    }
    out
}

/// Finds the scope of a packet by address (subnet or relay address) or interface.
pub struct ScopeIndex {
    /// (network, broadcast, scope), sorted by network; subnets never overlap.
    subnets: Vec<(u32, u32, usize)>,
    relays: HashMap<Ipv4Addr, usize>,
    interfaces: Vec<(u32, usize)>,
}

impl ScopeIndex {
    pub fn new(scopes: &[ScopeRt], config: &[config::Scope]) -> Self {
        let mut subnets: Vec<_> = scopes
            .iter()
            .enumerate()
            .map(|(i, s)| (u32::from(s.subnet.network()), u32::from(s.subnet.broadcast()), i))
            .collect();
        subnets.sort();
        let relays =
            config.iter().enumerate().flat_map(|(i, s)| s.relay_addresses.iter().map(move |a| (*a, i))).collect();
        let interfaces = scopes.iter().enumerate().filter_map(|(i, s)| s.ifindex.map(|x| (x, i))).collect();
        ScopeIndex { subnets, relays, interfaces }
    }

    /// The scope whose subnet holds `ip`.
    pub fn by_address(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        let at = self.subnets.partition_point(|s| s.0 <= ip).checked_sub(1)?;
        let (_, broadcast, scope) = self.subnets[at];
        (ip <= broadcast).then_some(scope)
    }

    /// The scope of a relay agent: its subnet holds giaddr or it lists giaddr.
    pub fn by_relay(&self, giaddr: Ipv4Addr) -> Option<usize> {
        self.relays.get(&giaddr).copied().or_else(|| self.by_address(giaddr))
    }

    /// The scope served on interface `ifindex`.
    pub fn by_interface(&self, ifindex: u32) -> Option<usize> {
        self.interfaces.iter().find(|i| i.0 == ifindex).map(|i| i.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_pools_own_their_addresses() {
        let r = |s: &str| s.parse::<AddrRange>().unwrap();
        let outer = r("198.18.1.0-198.18.1.255");
        let all = [outer, r("198.18.1.10-198.18.1.19"), r("198.18.1.100-198.18.1.255")];
        assert_eq!(
            own_segments(&outer, all.into_iter()),
            vec![r("198.18.1.0-198.18.1.9"), r("198.18.1.20-198.18.1.99")]
        );
        assert_eq!(own_segments(&all[1], all.into_iter()), vec![all[1]]);
    }
}
