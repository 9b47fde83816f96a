//! Standard policy `anomaly`: `analytics.anomaly_detection` (ARCHITECTURE §5).
//!
//! What it watches, in windows of a minute from a key's first event:
//! - `excessive_leases`: new leases (a REQUEST of a client without a bound
//!   lease) per MAC, and per relay circuit (giaddr and circuit-id: one
//!   subscriber port), above `excessive_leases_per_minute`;
//! - `rapid_renewals`: renewals per MAC above `rapid_renewals_per_minute`;
//! - `unusual_patterns`: new clients (a DISCOVER of a client the server has
//!   no record of) behind one relay port or interface above
//!   `new_clients_per_minute`: the DHCP starvation attack;
//! - `pool_exhaustion`: a pool's utilisation crossing
//!   `pool_utilization_warning`, then `_critical` (percent), checked every
//!   10 s per scope by shard 0's instance only, so it is raised once.
//!
//! Each is raised once per key and window, with its evidence as JSON.
//! `actions`: `alert` records it in the server (store, metrics), `log`
//! writes a warning, `block` drops the offending MAC's requests, or new
//! clients behind the offending relay port or interface (renewals go on),
//! for `block_cooldown` seconds.
//!
//! Each shard runs its own instance and sees every packet of a MAC (the
//! server steers by MAC) but only about `1 / shards` of a relay port's or
//! an interface's clients: thresholds per relay port and interface are
//! divided by the number of shards.
//!
//! Config: `{"detect": ["excessive_leases", ...], "thresholds":
//! {"excessive_leases_per_minute": 10, "rapid_renewals_per_minute": 5,
//! "new_clients_per_minute": 60, "pool_utilization_warning": 80,
//! "pool_utilization_critical": 95}, "actions": ["alert", "log"],
//! "block_cooldown": 300}`
#![cfg_attr(target_arch = "wasm32", no_std)]
// Builds with rustc 1.63 too: no `is_none_or` (1.82) there.
#![allow(clippy::unnecessary_map_or)]
// ... nor `div_ceil` (1.73).
#![allow(clippy::manual_div_ceil)]

mod table;

use leased_policy::text::{Arena, Span, Text};
use leased_policy::{export_policy, host, json, Decision, Env, Policy, RequestView, Slot, DISCOVER, REQUEST};
use table::{Entry, Table};

/// Seconds between two utilisation checks of a scope.
const POOL_CHECK_EVERY: u32 = 10;
const MAX_POOLS: usize = 256;
const NAMES: usize = 8192;
const KINDS: [&[u8]; 4] = [b"excessive_leases", b"rapid_renewals", b"unusual_patterns", b"pool_exhaustion"];

/// Per MAC and per relay port / interface: statics, so that `init` does
/// not build them on the module's stack.
static MACS: Slot<Table<8192>> = Slot::new(Table::EMPTY);
static SOURCES: Slot<Table<1024>> = Slot::new(Table::EMPTY);

/// A pool whose utilisation is watched.
#[derive(Clone, Copy)]
struct Watched {
    scope: u16,
    pool: u16,
    scope_name: Span,
    pool_name: Span,
    /// 0 below warning, 1 warning, 2 critical: raised when it rises.
    level: u8,
}

pub struct Anomaly {
    /// Of [`KINDS`].
    detect: [bool; 4],
    excessive: u32,
    rapid: u32,
    new_clients: u32,
    /// Per relay circuit, and per relay port or interface, divided among the shards.
    excessive_per_source: u32,
    new_clients_per_source: u32,
    warning: f32,
    critical: f32,
    alert: bool,
    log: bool,
    block: bool,
    cooldown: u32,
    /// Shard 0 watches the pools.
    watch_pools: bool,
    pools: [Watched; MAX_POOLS],
    pool_count: usize,
    /// Last check per scope.
    checked: [u32; MAX_POOLS],
    names: Arena<NAMES>,
}

fn refuse(what: &[u8]) -> Option<Anomaly> {
    host::log(host::ERROR, what);
    None
}

/// A 64-bit hash of a tag and bytes, eight bytes per step (a multiply
/// and a rotate, then a final mix); never 0 (0 marks a free slot).
fn hash(tag: u8, parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (tag as u64).wrapping_mul(K);
    for part in parts {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        // The length keeps ("ab", "") apart from ("a", "b").
        h = (h ^ u64::from_le_bytes(last) ^ (part.len() as u64) << 56).wrapping_mul(K).rotate_left(29);
    }
    // Final mix (murmur3's): the table indexes by the high bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h | 1
}

/// Which relay port or interface a request came through.
fn source_key(req: &RequestView) -> u64 {
    if req.relayed() {
        hash(b'r', &[&req.giaddr(), req.circuit_id().unwrap_or(b"")])
    } else {
        hash(b'i', &[&req.ifindex().to_le_bytes()])
    }
}

/// Evidence members naming the request's client and where it came from.
fn evidence(req: &RequestView, mac_key: &[u8]) -> Text<512> {
    let mut out = Text::new();
    out.push(b"{").mac_member(mac_key, req.chaddr());
    if req.relayed() {
        out.ip_member(b"relay", req.giaddr());
        if let Some(circuit) = req.circuit_id() {
            out.str_member(b"circuit_id", circuit);
        }
    } else {
        out.num_member(b"interface", req.ifindex() as u64);
    }
    out
}

fn per_shard(threshold: u32, shards: u16) -> u32 {
    let shards = shards.max(1) as u32;
    (threshold + shards - 1) / shards
}

impl Anomaly {
    fn watch(&mut self, env: &Env) -> Option<()> {
        for scope in 0..env.scopes() {
            for pool in 0..env.pool_count(scope) {
                if self.pool_count == MAX_POOLS {
                    return None;
                }
                let scope_name = self.names.keep(env.scope_name(scope)?)?;
                let pool_name = self.names.keep(env.pool_name(scope, pool)?)?;
                self.pools[self.pool_count] = Watched { scope, pool, scope_name, pool_name, level: 0 };
                self.pool_count += 1;
            }
        }
        Some(())
    }

    /// Raises anomaly `kind` with `evidence` (a JSON object's members) per `actions`.
    fn raise(&self, kind: usize, evidence: &mut Text<512>, blocked: bool) {
        if blocked {
            evidence.str_member(b"action", b"block").num_member(b"cooldown_secs", self.cooldown as u64);
        }
        evidence.push(b"}");
        if self.alert {
            host::emit_anomaly(kind as i32, evidence.as_bytes());
        }
        if self.log {
            let mut line = Text::<600>::new();
            line.push(b"anomaly ").push(KINDS[kind]).push(b": ").push(evidence.as_bytes());
            host::log(host::WARN, line.as_bytes());
        }
    }

    /// Counts one more event of `kind` on `entry`, in the counter `field`
    /// picks; past `threshold` (once a window) raises it, the evidence
    /// naming the client as `subject`, and blocks the entry's key if
    /// `block` is an action. True when it blocks.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        kind: usize,
        entry: &mut Entry,
        field: fn(&mut Entry) -> &mut u16,
        threshold: u32,
        now: u32,
        req: &RequestView,
        subject: &[u8],
    ) -> bool {
        let counter = field(entry);
        *counter = counter.saturating_add(1);
        let n = *counter as u32;
        if n <= threshold || entry.raised & (1 << kind) != 0 {
            return false;
        }
        entry.raised |= 1 << kind;
        let mut evidence = evidence(req, subject);
        evidence.num_member(b"count", n as u64).num_member(b"threshold", threshold as u64);
        evidence.num_member(b"window_secs", table::WINDOW as u64);
        if self.block {
            entry.blocked_until = now.saturating_add(self.cooldown);
        }
        self.raise(kind, &mut evidence, self.block);
        self.block
    }

    fn check_pools(&mut self, scope: u16, now: u32) {
        let last = match self.checked.get_mut(scope as usize) {
            Some(last) => last,
            None => return,
        };
        if *last != 0 && now.wrapping_sub(*last) < POOL_CHECK_EVERY {
            return;
        }
        *last = now;
        for i in 0..self.pool_count {
            let w = self.pools[i];
            if w.scope != scope {
                continue;
            }
            let used = host::pool_utilization(w.scope, w.pool) * 100.0;
            let level = if used >= self.critical {
                2
            } else if used >= self.warning {
                1
            } else {
                0
            };
            self.pools[i].level = level;
            if level > w.level {
                let mut evidence = Text::<512>::new();
                evidence.push(b"{").str_member(b"scope", self.names.get(w.scope_name));
                evidence.str_member(b"pool", self.names.get(w.pool_name));
                evidence.str_member(b"level", if level == 2 { b"critical" } else { b"warning" });
                evidence.num_member(b"utilization_percent", used as u64);
                let threshold = if level == 2 { self.critical } else { self.warning };
                evidence.num_member(b"threshold_percent", threshold as u64);
                self.raise(3, &mut evidence, false);
            }
        }
    }
}

impl Policy for Anomaly {
    fn init(config: json::Value, env: &Env) -> Option<Self> {
        let mut p = Anomaly {
            detect: [false; 4],
            excessive: 10,
            rapid: 5,
            new_clients: 60,
            excessive_per_source: 0,
            new_clients_per_source: 0,
            warning: 80.0,
            critical: 95.0,
            alert: false,
            log: false,
            block: false,
            cooldown: 300,
            watch_pools: env.shard() == 0,
            pools: [Watched { scope: 0, pool: 0, scope_name: Span::default(), pool_name: Span::default(), level: 0 };
                MAX_POOLS],
            pool_count: 0,
            checked: [0; MAX_POOLS],
            names: Arena::new(),
        };
        for kind in config.get("detect")?.elements() {
            match KINDS.iter().position(|k| Some(*k) == kind.as_str()) {
                Some(i) => p.detect[i] = true,
                None => return refuse(b"anomaly: detect names an unknown kind"),
            }
        }
        if let Some(t) = config.get("thresholds") {
            for (key, slot) in [
                ("excessive_leases_per_minute", &mut p.excessive),
                ("rapid_renewals_per_minute", &mut p.rapid),
                ("new_clients_per_minute", &mut p.new_clients),
            ] {
                if let Some(v) = t.get(key) {
                    *slot = v.as_u64().filter(|n| *n > 0)?.min(u16::MAX as u64) as u32;
                }
            }
            for (key, slot) in
                [("pool_utilization_warning", &mut p.warning), ("pool_utilization_critical", &mut p.critical)]
            {
                if let Some(v) = t.get(key) {
                    *slot = v.as_u64()?.min(100) as f32;
                }
            }
        }
        for action in config.get("actions")?.elements() {
            match action.as_str() {
                Some(b"alert") => p.alert = true,
                Some(b"log") => p.log = true,
                Some(b"block") => p.block = true,
                _ => return refuse(b"anomaly: actions are alert, log, block"),
            }
        }
        if let Some(c) = config.get("block_cooldown") {
            p.cooldown = c.as_u64().filter(|n| *n > 0)?.min(u32::MAX as u64) as u32;
        }
        p.excessive_per_source = per_shard(p.excessive, env.shards());
        p.new_clients_per_source = per_shard(p.new_clients, env.shards());
        if p.detect[3] && p.watch_pools && p.watch(env).is_none() {
            return refuse(b"anomaly: too many pools to watch (256) or names too long");
        }
        // A fresh instance: forget what an earlier config counted.
        // SAFETY: the host calls one export at a time.
        unsafe {
            *MACS.get() = Table::EMPTY;
            *SOURCES.get() = Table::EMPTY;
        }
        Some(p)
    }

    fn eval(&mut self, req: &RequestView) -> Decision {
        let now = match req.now() {
            0 => host::now_unix() as u32,
            t => t,
        };
        let kind = req.message_type();
        if self.detect[3] && self.watch_pools {
            self.check_pools(req.scope(), now);
        }
        // SAFETY: the host calls one export at a time; nothing else holds these.
        let (macs, sources) = unsafe { (MACS.get(), SOURCES.get()) };
        let mac = req.chaddr();
        let mac_key = hash(b'm', &[mac]);
        if macs.blocked(mac_key, now) {
            return Decision::DENY;
        }
        let lease = req.lease();
        let bound = lease.map_or(false, |l| l.state.is_bound());
        let new_client = kind == DISCOVER && lease.is_none();
        let new_lease = kind == REQUEST && !bound && !req.reserved();
        let renewal = kind == REQUEST && bound;
        if !(new_client || new_lease || renewal) {
            return Decision::CONTINUE;
        }
        // Where it came from matters to new clients and leases only.
        let source = if renewal { 0 } else { source_key(req) };
        if !renewal && sources.blocked(source, now) {
            return Decision::DENY;
        }
        let mut blocked = false;
        if new_lease && self.detect[0] {
            let e = macs.entry(mac_key, now);
            blocked |= self.event(0, e, |e| &mut e.new_leases, self.excessive, now, req, b"mac");
            // Per circuit only: behind a bare giaddr or an interface is a whole network.
            if req.relayed() && req.circuit_id().is_some() {
                let s = sources.entry(source, now);
                blocked |= self.event(0, s, |e| &mut e.new_leases, self.excessive_per_source, now, req, b"last_mac");
            }
        }
        if renewal && self.detect[1] {
            let e = macs.entry(mac_key, now);
            blocked |= self.event(1, e, |e| &mut e.renewals, self.rapid, now, req, b"mac");
        }
        if new_client && self.detect[2] {
            let s = sources.entry(source, now);
            blocked |= self.event(2, s, |e| &mut e.new_clients, self.new_clients_per_source, now, req, b"last_mac");
        }
        if blocked {
            Decision::DENY
        } else {
            Decision::CONTINUE
        }
    }
}

export_policy!(Anomaly);
