//! Standard policy `lease_times`: the `client_lease_times` rules of each
//! scope pick the lease time (the server clamps it to the scope's or
//! pool's min/max). The first rule whose every given criterion matches
//! wins: `mac_prefix` (any of a list), `vendor_class` (exact), and
//! `hostname_regex` (see [`regex`]).
//!
//! Config (written by the server from the scopes' `client_lease_times`):
//! `{"scopes": {"lan": [{"mac_prefix": ["00:11:22"], "lease_time": 43200}, ...]}}`
#![cfg_attr(target_arch = "wasm32", no_std)]
// Builds with rustc 1.63 too: no `is_none_or` (1.82) there.
#![allow(clippy::unnecessary_map_or)]

pub mod regex;

use leased_policy::text::{self, Arena, Span};
use leased_policy::{export_policy, host, json, Decision, Env, Policy, RequestView};

const MAX_RULES: usize = 64;
/// Compiled hostname patterns (each rule may have one).
const MAX_PATTERNS: usize = 16;
const MAX_PREFIXES: usize = 8;
const ARENA: usize = 4096;

/// A MAC prefix of `len` bytes: the first six bytes of a MAC, as a
/// 48-bit number, masked with `mask`, equal `value`.
#[derive(Clone, Copy)]
struct Prefix {
    value: u64,
    mask: u64,
    len: u8,
}

/// The first six bytes of `hw` (zeros past its end) as a 48-bit number.
fn head48(hw: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = hw.len().min(6);
    b[2..2 + n].copy_from_slice(&hw[..n]);
    u64::from_be_bytes(b)
}

#[derive(Clone, Copy)]
struct Rule {
    scope: u16,
    prefixes: [Prefix; MAX_PREFIXES],
    prefix_count: u8,
    vendor: Option<Span>,
    /// Index of its compiled hostname pattern.
    hostname: Option<u8>,
    lease_time: u32,
}

const EMPTY: Rule = Rule {
    scope: 0,
    prefixes: [Prefix { value: 0, mask: 0, len: 0 }; MAX_PREFIXES],
    prefix_count: 0,
    vendor: None,
    hostname: None,
    lease_time: 0,
};

pub struct LeaseTimes {
    rules: [Rule; MAX_RULES],
    count: usize,
    /// Vendor classes, copied out of the config.
    arena: Arena<ARENA>,
    patterns: [Option<regex::Program>; MAX_PATTERNS],
    pattern_count: usize,
}

fn refuse(what: &[u8]) -> Option<LeaseTimes> {
    host::log(host::ERROR, what);
    None
}

impl LeaseTimes {
    fn add(&mut self, scope: u16, rule: json::Value) -> Option<()> {
        let mut r = EMPTY;
        r.scope = scope;
        r.lease_time = rule.get("lease_time")?.as_u64()?.min(u32::MAX as u64) as u32;
        if let Some(list) = rule.get("mac_prefix") {
            for p in list.elements() {
                if r.prefix_count as usize == MAX_PREFIXES {
                    return None;
                }
                let (bytes, n) = text::parse_mac(p.as_str()?)?;
                let mask = (0xffff_ffff_ffff_u64 << (8 * (6 - n.min(6)))) & 0xffff_ffff_ffff;
                r.prefixes[r.prefix_count as usize] = Prefix { value: head48(&bytes) & mask, mask, len: n as u8 };
                r.prefix_count += 1;
            }
        }
        if let Some(v) = rule.get("vendor_class") {
            r.vendor = Some(self.arena.keep(v.as_str()?)?);
        }
        if let Some(h) = rule.get("hostname_regex") {
            if self.pattern_count == MAX_PATTERNS {
                return None;
            }
            self.patterns[self.pattern_count] = Some(regex::Program::compile(h.as_str()?)?);
            r.hostname = Some(self.pattern_count as u8);
            self.pattern_count += 1;
        }
        if self.count == MAX_RULES {
            return None;
        }
        self.rules[self.count] = r;
        self.count += 1;
        Some(())
    }

    fn matches(&self, r: &Rule, req: &RequestView) -> bool {
        let hw = req.chaddr();
        let prefixes = &r.prefixes[..r.prefix_count as usize];
        (prefixes.is_empty() || {
            let head = head48(hw);
            prefixes.iter().any(|p| hw.len() >= p.len as usize && head & p.mask == p.value)
        }) && r.vendor.map_or(true, |v| req.vendor_class() == Some(self.arena.get(v)))
            && r.hostname.map_or(true, |h| {
                let program = self.patterns[h as usize].as_ref();
                req.hostname().map_or(false, |name| program.map_or(false, |p| p.is_match(name)))
            })
    }
}

impl Policy for LeaseTimes {
    fn init(config: json::Value, env: &Env) -> Option<Self> {
        let mut p = LeaseTimes {
            rules: [EMPTY; MAX_RULES],
            count: 0,
            arena: Arena::new(),
            patterns: [None; MAX_PATTERNS],
            pattern_count: 0,
        };
        for (name, rules) in config.get("scopes")?.members() {
            let scope = match env.scope_id(name) {
                Some(s) => s,
                None => return refuse(b"lease_times: a rule names a scope the server does not have"),
            };
            for rule in rules.elements() {
                if p.add(scope, rule).is_none() {
                    return refuse(b"lease_times: a rule is malformed (mac_prefix, vendor_class, hostname_regex, lease_time) or there are too many");
                }
            }
        }
        Some(p)
    }

    fn eval(&mut self, req: &RequestView) -> Decision {
        let scope = req.scope();
        for r in &self.rules[..self.count] {
            if r.scope == scope && self.matches(r, req) {
                return Decision::CONTINUE.lease_time(r.lease_time);
            }
        }
        Decision::CONTINUE
    }
}

export_policy!(LeaseTimes);
