//! [`PolicyEnv`] over the running server (or none): what the imports answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::{error, warn};

use super::PolicyEnv;
use crate::config::ANOMALY_KINDS;
use crate::lease::CountBy;
use crate::metrics as m;
use crate::server::SharedServer;
use crate::store::{AnomalyRecord, SledStore};

/// Unix seconds.
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The imports' view of a running server.
pub struct ServerEnv {
    server: SharedServer,
    /// Where anomalies are recorded (None: only logged and counted).
    store: Option<Arc<SledStore>>,
    clock: UnixClock,
}

impl ServerEnv {
    /// Over `server` and the system clock.
    pub fn new(server: SharedServer, store: Option<Arc<SledStore>>) -> Self {
        ServerEnv { server, store, clock: Arc::new(system_now) }
    }

    /// With another clock (tests that let time pass).
    pub fn with_clock(self, clock: UnixClock) -> Self {
        ServerEnv { clock, ..self }
    }
}

/// Unix seconds by the system clock.
fn system_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The imports' view when no server runs (`leased check-config` loads the
/// modules as `serve` would): the system clock, no lease, no address in
/// use; an anomaly raised meanwhile is only logged.
pub struct StandaloneEnv;

impl PolicyEnv for StandaloneEnv {
    fn now_unix(&self) -> i64 {
        system_now()
    }

    fn pool_utilization(&self, _scope: u16, _pool: u16) -> f32 {
        0.0
    }

    fn lease_count(&self, _kind: i32, _key: &[u8]) -> u32 {
        0
    }

    fn anomaly(&self, policy: &str, kind: i32, evidence: &str) {
        warn!(policy, kind, evidence, "anomaly raised with no server running");
    }
}

/// The interface's name for an index, else the number.
fn interface_name(index: u64) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(index as u32, buf.as_mut_ptr()) };
    if name.is_null() {
        return index.to_string();
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// The relay port or interface an anomaly's evidence names.
fn relay_of(evidence: &Value) -> Option<String> {
    if let Some(relay) = evidence.get("relay").and_then(Value::as_str) {
        return Some(match evidence.get("circuit_id").and_then(Value::as_str) {
            Some(circuit) => format!("{relay} circuit {circuit}"),
            None => relay.to_string(),
        });
    }
    evidence.get("interface").and_then(Value::as_u64).map(|i| format!("interface {}", interface_name(i)))
}

impl PolicyEnv for ServerEnv {
    fn now_unix(&self) -> i64 {
        (self.clock)()
    }

    fn pool_utilization(&self, scope: u16, pool: u16) -> f32 {
        // Called from a shard that holds the read side already: a recursive read.
        let server = self.server.read_recursive();
        let Some(s) = server.scopes().get(scope as usize) else { return 0.0 };
        s.usage((pool != u16::MAX).then_some(pool as usize)).ratio() as f32
    }

    fn lease_count(&self, kind: i32, key: &[u8]) -> u32 {
        let by = match kind {
            0 => CountBy::Mac,
            1 => CountBy::Hostname,
            2 => CountBy::Scope,
            _ => return 0,
        };
        self.server.read_recursive().cache().active_count(by, key)
    }

    fn anomaly(&self, policy: &str, kind: i32, evidence: &str) {
        let kind = ANOMALY_KINDS.get(kind as usize).copied().unwrap_or("unknown");
        metrics::counter!(m::ANOMALIES, "kind" => kind).increment(1);
        let evidence: Value = serde_json::from_str(evidence).unwrap_or_else(|_| Value::String(evidence.to_string()));
        let mac = evidence.get("mac").and_then(Value::as_str).map(str::to_string);
        let relay = relay_of(&evidence);
        warn!(policy, kind, mac, relay, %evidence, "anomaly");
        let Some(store) = &self.store else { return };
        let time = self.now_unix().max(0) as u64;
        let record = AnomalyRecord { time, kind: kind.into(), policy: policy.into(), mac, relay, evidence };
        if let Err(e) = store.record_anomaly(&record) {
            error!(policy, kind, error = %e, "cannot record the anomaly");
        }
    }
}
