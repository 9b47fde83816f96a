//! The tutorial's policy: Android phones (vendor class `android-dhcp`) get
//! their address from the pool named in the config, with 1 h leases.
//!
//! Config: `{ "vendor_class": "android-dhcp", "pool": "guests", "lease_time": 3600 }`
#![cfg_attr(target_arch = "wasm32", no_std)]

use leased_policy::{export_policy, json, Decision, Env, Policy, RequestView};

/// Scopes the policy keeps a pool id for.
const MAX_SCOPES: usize = 64;

struct Guests {
    /// The vendor class to match, copied out of the config.
    class: [u8; 64],
    class_len: usize,
    /// Per scope, the id of the pool to use (u16::MAX: the scope has none).
    pool: [u16; MAX_SCOPES],
    lease_time: u32,
}

impl Policy for Guests {
    fn init(config: json::Value, env: &Env) -> Option<Self> {
        let class = config.get("vendor_class")?.as_str()?;
        let pool_name = config.get("pool")?.as_str()?;
        let mut p = Guests {
            class: [0; 64],
            class_len: class.len().min(64),
            pool: [u16::MAX; MAX_SCOPES],
            lease_time: config.get("lease_time").and_then(|v| v.as_u64()).unwrap_or(3600) as u32,
        };
        p.class[..p.class_len].copy_from_slice(&class[..p.class_len]);
        for scope in 0..env.scopes().min(MAX_SCOPES as u16) {
            p.pool[scope as usize] = env.pool_id(scope, pool_name).unwrap_or(u16::MAX);
        }
        Some(p)
    }

    fn eval(&mut self, req: &RequestView) -> Decision {
        if req.vendor_class() != Some(&self.class[..self.class_len]) {
            return Decision::CONTINUE;
        }
        match self.pool.get(req.scope() as usize) {
            Some(&pool) if pool != u16::MAX => Decision::pool(pool).lease_time(self.lease_time),
            _ => Decision::CONTINUE.lease_time(self.lease_time),
        }
    }
}

export_policy!(Guests);
