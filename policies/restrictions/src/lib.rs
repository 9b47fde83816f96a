//! Standard policy `restrictions`: a scope's `restrictions` and
//! `max_concurrent_leases` (ARCHITECTURE §5).
//!
//! - `block_macs`: every DISCOVER and REQUEST of those MACs is dropped.
//! - `max_leases_per_mac`, `max_leases_per_hostname`, `max_concurrent_leases`:
//!   a client that would get a new lease is refused when the MAC, its host
//!   name or the scope already holds that many bound leases, counted across
//!   all shards by the server (`lease_count`). Renewals and clients with a
//!   reservation are never refused by a count. A refused DISCOVER is
//!   dropped (no OFFER), a refused REQUEST is NAKed so the client stops
//!   using the address it asked for.
//!
//! Config (written by the server from the scopes' sections):
//! `{"scopes": {"lan": {"max_leases_per_mac": 1, "max_leases_per_hostname": 1,
//! "block_macs": ["00:00:00:00:00:00"], "max_concurrent_leases": 50}}}`
#![cfg_attr(target_arch = "wasm32", no_std)]
// Builds with rustc 1.63 too: no `is_none_or` (1.82) there.
#![allow(clippy::unnecessary_map_or)]

use leased_policy::text::{self, Text};
use leased_policy::{export_policy, host, json, Decision, Env, Policy, RequestView, Slot, DISCOVER, REQUEST};

const MAX_SCOPES: usize = 256;
const MAX_BLOCKED: usize = 4096;

/// One scope's limits; 0 = no limit. Its blocked MACs are
/// `blocked[first..first + count]`, sorted.
#[derive(Clone, Copy)]
struct Limits {
    per_mac: u32,
    per_hostname: u32,
    concurrent: u32,
    first: u16,
    count: u16,
}

const NONE: Limits = Limits { per_mac: 0, per_hostname: 0, concurrent: 0, first: 0, count: 0 };

pub struct Restrictions {
    /// By scope id.
    limits: [Limits; MAX_SCOPES],
    blocked_len: usize,
}

/// The blocked MACs of every scope, as 48-bit numbers (one compare each
/// in the search): a static, so that `init` does not build 32 KiB on the
/// module's 64 KiB stack.
static BLOCKED: Slot<[u64; MAX_BLOCKED]> = Slot::new([0; MAX_BLOCKED]);

fn blocked() -> &'static mut [u64; MAX_BLOCKED] {
    // SAFETY: the host calls one export at a time, and no caller keeps the reference.
    unsafe { BLOCKED.get() }
}

fn mac48(mac: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]])
}

fn refuse(what: &[u8]) -> Option<Restrictions> {
    host::log(host::ERROR, what);
    None
}

fn limit(rules: &json::Value, key: &str) -> Option<u32> {
    match rules.get(key) {
        None => Some(0),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(|n| n.min(u32::MAX as u64) as u32),
    }
}

impl Restrictions {
    fn add(&mut self, scope: u16, rules: json::Value) -> Option<()> {
        let mut l = NONE;
        l.per_mac = limit(&rules, "max_leases_per_mac")?;
        l.per_hostname = limit(&rules, "max_leases_per_hostname")?;
        l.concurrent = limit(&rules, "max_concurrent_leases")?;
        l.first = self.blocked_len as u16;
        if let Some(list) = rules.get("block_macs") {
            for mac in list.elements() {
                let (bytes, n) = text::parse_mac(mac.as_str()?)?;
                if n != 6 || self.blocked_len == MAX_BLOCKED {
                    return None;
                }
                blocked()[self.blocked_len] = mac48(&bytes);
                self.blocked_len += 1;
            }
        }
        l.count = (self.blocked_len - l.first as usize) as u16;
        blocked()[l.first as usize..self.blocked_len].sort_unstable();
        self.limits[scope as usize] = l;
        Some(())
    }

    fn is_blocked(&self, l: &Limits, mac: &[u8]) -> bool {
        let list = &blocked()[l.first as usize..(l.first + l.count) as usize];
        <&[u8; 6]>::try_from(mac).map_or(false, |m| list.binary_search(&mac48(m)).is_ok())
    }
}

/// Logs why a client was refused (the host keeps at most 10 lines a second).
fn note(req: &RequestView, why: &[u8], count: u32) {
    let mut line = Text::<160>::new();
    line.push(b"restrictions: refused ").mac(req.chaddr()).push(b": ").push(why);
    if count > 0 {
        line.push(b" (").num(count as u64).push(b" bound)");
    }
    host::log(host::INFO, line.as_bytes());
}

impl Policy for Restrictions {
    fn init(config: json::Value, env: &Env) -> Option<Self> {
        let mut p = Restrictions { limits: [NONE; MAX_SCOPES], blocked_len: 0 };
        for (name, rules) in config.get("scopes")?.members() {
            let scope = match env.scope_id(name) {
                Some(s) if (s as usize) < MAX_SCOPES => s,
                _ => return refuse(b"restrictions: a section names a scope the server does not have"),
            };
            if p.add(scope, rules).is_none() {
                return refuse(
                    b"restrictions: malformed (limits are positive integers, block_macs full MACs, at most 4096)",
                );
            }
        }
        Some(p)
    }

    fn eval(&mut self, req: &RequestView) -> Decision {
        let l = match self.limits.get(req.scope() as usize) {
            Some(l) => l,
            None => return Decision::CONTINUE,
        };
        let mac = req.chaddr();
        if l.count > 0 && self.is_blocked(l, mac) {
            note(req, b"blocked MAC", 0);
            return Decision::DENY;
        }
        let kind = req.message_type();
        let renewing = req.lease().map_or(false, |lease| lease.state.is_bound());
        if (kind != DISCOVER && kind != REQUEST) || renewing || req.reserved() {
            return Decision::CONTINUE;
        }
        let refused = if kind == REQUEST { Decision::NAK } else { Decision::DENY };
        if l.per_mac > 0 {
            let n = host::lease_count(host::BY_MAC, mac);
            if n >= l.per_mac {
                note(req, b"max_leases_per_mac", n);
                return refused;
            }
        }
        if let (true, Some(name)) = (l.per_hostname > 0, req.hostname()) {
            let n = host::lease_count(host::BY_HOSTNAME, name);
            if n >= l.per_hostname {
                note(req, b"max_leases_per_hostname", n);
                return refused;
            }
        }
        if l.concurrent > 0 {
            let n = host::lease_count(host::BY_SCOPE, &req.scope().to_le_bytes());
            if n >= l.concurrent {
                note(req, b"max_concurrent_leases", n);
                return refused;
            }
        }
        Decision::CONTINUE
    }
}

export_policy!(Restrictions);
