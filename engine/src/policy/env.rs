//! [`PolicyEnv`] over the running server: what the imports answer.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::PolicyEnv;
use crate::lease::LeaseState;
use crate::server::SharedServer;

/// The imports' view of a running server.
pub struct ServerEnv {
    pub server: SharedServer,
}

const KINDS: [&str; 4] = ["excessive_leases", "rapid_renewals", "unusual_patterns", "pool_exhaustion"];

impl PolicyEnv for ServerEnv {
    fn now_unix(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }

    fn pool_utilization(&self, scope: u16, pool: u16) -> f32 {
        // Called from a shard that holds the read side already: a recursive read.
        let server = self.server.read_recursive();
        let Some(s) = server.scopes().get(scope as usize) else { return 0.0 };
        let segments: Vec<_> = match s.pools.get(pool as usize) {
            Some(p) => p.segments.iter().collect(),
            None => s.pools.iter().flat_map(|p| p.segments.iter()).collect(),
        };
        let (mut taken, mut size) = (0u64, 0u64);
        for seg in segments {
            taken += s.map.count_taken(seg.start, seg.end);
            size += u64::from(u32::from(seg.end) - u32::from(seg.start)) + 1;
        }
        if size == 0 {
            0.0
        } else {
            taken as f32 / size as f32
        }
    }

    /// A scan of the cache: correct, but O(leases); restrictions that span
    /// shards need an index before they run per packet at scale.
    fn lease_count(&self, kind: i32, key: &[u8]) -> u32 {
        let server = self.server.read_recursive();
        let mut n = 0;
        server.cache().for_each(|r| {
            let active = matches!(r.state, LeaseState::Allocated | LeaseState::Reserved);
            let hit = match kind {
                0 => r.hw.bytes() == key,
                1 => !key.is_empty() && r.details.get().hostname == key,
                2 => key.len() == 2 && u16::from_le_bytes([key[0], key[1]]) == r.scope,
                _ => false,
            };
            n += u32::from(active && hit);
        });
        n
    }

    fn anomaly(&self, policy: &str, kind: i32, evidence: &str) {
        let kind = KINDS.get(kind as usize).copied().unwrap_or("unknown");
        warn!(policy, kind, evidence, "anomaly");
    }
}
