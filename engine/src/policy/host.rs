//! The imports a policy may use (module `env`), and the store state behind them.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, error, info, warn};
use wasmtime::{Caller, Linker, Memory, StoreLimits};

/// Names of the imports of ABI v1.
pub const IMPORTS: [&str; 5] = ["log", "now_unix", "emit_anomaly", "pool_utilization", "lease_count"];
/// Log lines, and anomalies, a module may raise per second per shard; the
/// rest are counted and dropped.
const PER_SECOND: u32 = 10;

/// What policies may ask the server (implemented over the running server).
pub trait PolicyEnv: Send + Sync {
    fn now_unix(&self) -> i64;
    /// Share of addresses in use, 0.0..=1.0; `pool` 0xffff: the whole scope.
    fn pool_utilization(&self, scope: u16, pool: u16) -> f32;
    /// Active leases by MAC (0), hostname (1) or scope (2, key = u16 LE).
    fn lease_count(&self, kind: i32, key: &[u8]) -> u32;
    /// A policy raised an anomaly.
    fn anomaly(&self, policy: &str, kind: i32, evidence: &str);
}

/// [`PER_SECOND`] events a second; says how many it dropped when a new second starts.
struct Budget {
    what: &'static str,
    window: Instant,
    used: u32,
    dropped: u64,
}

impl Budget {
    fn new(what: &'static str) -> Self {
        Budget { what, window: Instant::now(), used: 0, dropped: 0 }
    }

    /// Whether one more event fits in this second.
    fn take(&mut self, policy: &str) -> bool {
        if self.window.elapsed().as_secs() >= 1 {
            if self.dropped > 0 {
                warn!(policy, dropped = self.dropped, "policy {} dropped (rate limit)", self.what);
            }
            (self.window, self.used, self.dropped) = (Instant::now(), 0, 0);
        }
        if self.used >= PER_SECOND {
            self.dropped += 1;
            return false;
        }
        self.used += 1;
        true
    }
}

/// Per instance: its limits, the server behind the imports, the budgets.
pub struct HostState {
    pub(super) limits: StoreLimits,
    /// The instance's memory, once instantiated: imports read the guest's
    /// bytes through it (no export lookup by name per call).
    pub(super) memory: Option<Memory>,
    env: Arc<dyn PolicyEnv>,
    policy: Arc<str>,
    logs: Budget,
    anomalies: Budget,
}

impl HostState {
    pub(super) fn new(policy: &str, limits: StoreLimits, env: Arc<dyn PolicyEnv>) -> Self {
        HostState {
            limits,
            memory: None,
            env,
            policy: policy.into(),
            logs: Budget::new("log lines"),
            anomalies: Budget::new("anomalies"),
        }
    }
}

/// Most guest bytes an import reads.
const GUEST_BYTES_MAX: usize = 1024;

/// Guest bytes `ptr..ptr+len` in place (at most [`GUEST_BYTES_MAX`]);
/// None when out of range or before the instance's memory is known.
fn guest<'c>(caller: &'c Caller<'_, HostState>, ptr: i32, len: i32) -> Option<&'c [u8]> {
    let memory = caller.data().memory?;
    let ptr = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?.min(GUEST_BYTES_MAX);
    memory.data(caller).get(ptr..ptr.checked_add(len)?)
}

pub(super) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "log", |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
        let state = caller.data_mut();
        if !state.logs.take(&state.policy) {
            return;
        }
        let Some(text) = guest(&caller, ptr, len).map(String::from_utf8_lossy) else { return };
        let policy = &caller.data().policy;
        match level {
            1 => error!(%policy, "{text}"),
            2 => warn!(%policy, "{text}"),
            3 => info!(%policy, "{text}"),
            _ => debug!(%policy, "{text}"),
        }
    })?;
    linker.func_wrap("env", "now_unix", |caller: Caller<'_, HostState>| caller.data().env.now_unix())?;
    linker.func_wrap("env", "emit_anomaly", |mut caller: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32| {
        let state = caller.data_mut();
        if !state.anomalies.take(&state.policy) {
            return;
        }
        let Some(evidence) = guest(&caller, ptr, len).map(String::from_utf8_lossy) else { return };
        let state = caller.data();
        state.env.anomaly(&state.policy, kind, &evidence);
    })?;
    linker.func_wrap("env", "pool_utilization", |caller: Caller<'_, HostState>, scope: i32, pool: i32| {
        caller.data().env.pool_utilization(scope as u16, pool as u16)
    })?;
    linker.func_wrap("env", "lease_count", |caller: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32| {
        let Some(key) = guest(&caller, ptr, len) else { return 0 };
        caller.data().env.lease_count(kind, key).min(i32::MAX as u32) as i32
    })?;
    Ok(())
}
