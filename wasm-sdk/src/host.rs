//! What the host offers a policy (imports from module `env`).
//!
//! Outside wasm32 (e.g. unit tests of a policy on the build machine) these
//! do nothing and return neutral values.

/// Log levels for [`log`].
pub const ERROR: i32 = 1;
pub const WARN: i32 = 2;
pub const INFO: i32 = 3;
pub const DEBUG: i32 = 4;

/// [`lease_count`] kinds.
pub const BY_MAC: i32 = 0;
pub const BY_HOSTNAME: i32 = 1;
pub const BY_SCOPE: i32 = 2;

/// [`emit_anomaly`] kinds (ARCHITECTURE §5 `anomaly_detection.detect`).
pub const EXCESSIVE_LEASES: i32 = 0;
pub const RAPID_RENEWALS: i32 = 1;
pub const UNUSUAL_PATTERNS: i32 = 2;
pub const POOL_EXHAUSTION: i32 = 3;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn now_unix() -> i64;
        pub fn emit_anomaly(kind: i32, ptr: *const u8, len: i32);
        pub fn pool_utilization(scope: i32, pool: i32) -> f32;
        pub fn lease_count(kind: i32, ptr: *const u8, len: i32) -> i32;
    }
}

/// Logs `message` through the server's log (rate-limited there).
pub fn log(level: i32, message: &[u8]) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory.
    unsafe {
        imports::log(level, message.as_ptr(), message.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// The server's clock, seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call.
    unsafe {
        imports::now_unix()
    }
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Raises an anomaly of `kind` ([`EXCESSIVE_LEASES`], [`RAPID_RENEWALS`],
/// [`UNUSUAL_PATTERNS`], [`POOL_EXHAUSTION`]) with its evidence: a JSON
/// object, whose `mac` and `relay` members (strings), when present, the
/// server records as the anomaly's subject. At most 10 a second per
/// instance are recorded; the rest are counted.
pub fn emit_anomaly(kind: i32, evidence: &[u8]) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory.
    unsafe {
        imports::emit_anomaly(kind, evidence.as_ptr(), evidence.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (kind, evidence);
}

/// Share of `pool`'s addresses in use in `scope` (0.0 ..= 1.0); pool
/// 0xffff is the whole scope.
pub fn pool_utilization(scope: u16, pool: u16) -> f32 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call.
    unsafe {
        imports::pool_utilization(scope as i32, pool as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (scope, pool);
        0.0
    }
}

/// Active leases across all shards: `BY_MAC` (key = hardware address),
/// `BY_HOSTNAME` (key = host name) or `BY_SCOPE` (key = scope id, u16 LE).
pub fn lease_count(kind: i32, key: &[u8]) -> u32 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory.
    unsafe {
        imports::lease_count(kind, key.as_ptr(), key.len() as i32).max(0) as u32
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (kind, key);
        0
    }
}
