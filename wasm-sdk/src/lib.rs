//! The SDK for leased policy modules: ABI "leased-policy v1" (ARCHITECTURE §9).
//!
//! A policy is a type implementing [`Policy`]; [`export_policy!`] emits the
//! module's exports around it. The host writes the module's JSON config and
//! then, for every DHCP request it decides, a [`RequestView`] into the
//! module's input buffer and calls `policy_eval`; the policy answers with a
//! [`Decision`]. No allocator: state lives in the policy value, which the
//! SDK keeps in a static.
//!
//! ```ignore
//! use leased_policy::{export_policy, json, Decision, Env, Policy, RequestView};
//!
//! struct Guests { pool: u16 }
//! impl Policy for Guests {
//!     fn init(config: json::Value, env: &Env) -> Option<Self> {
//!         Some(Guests { pool: env.pool_id(0, config.get("pool")?.as_str()?)? })
//!     }
//!     fn eval(&mut self, req: &RequestView) -> Decision {
//!         match req.vendor_class() {
//!             Some(b"android-dhcp") => Decision::pool(self.pool).lease_time(3600),
//!             _ => Decision::CONTINUE,
//!         }
//!     }
//! }
//! export_policy!(Guests);
//! ```
#![no_std]

pub mod host;
pub mod json;
pub mod text;
mod view;

pub use view::{Lease, LeaseState, OptionsIter, RequestView, DISCOVER, HEADER_LEN, REQUEST};

/// The ABI version this SDK speaks; `policy_abi_version` returns it.
pub const ABI_VERSION: i32 = 1;
/// Size of the input buffer (config JSON, then each request view).
pub const IN_CAP: usize = 16 * 1024;
/// Size of the output buffer.
pub const OUT_CAP: usize = 1024;

/// What the server does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on as the server would (later policies still run).
    Continue,
    /// Drop the request silently.
    Deny,
    /// Refuse it with a DHCPNAK (REQUEST only; a DISCOVER is dropped).
    Nak,
    /// Take the address from this pool of the client's scope.
    Pool(u16),
}

/// A policy's answer: an action and optionally a lease time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// Lease seconds to grant (clamped by the scope); 0 leaves it to the server.
    pub lease_secs: u32,
}

impl Decision {
    pub const CONTINUE: Decision = Decision { action: Action::Continue, lease_secs: 0 };
    pub const DENY: Decision = Decision { action: Action::Deny, lease_secs: 0 };
    pub const NAK: Decision = Decision { action: Action::Nak, lease_secs: 0 };

    /// Take the address from pool `pool` (its index in the scope's `pools`).
    pub const fn pool(pool: u16) -> Decision {
        Decision { action: Action::Pool(pool), lease_secs: 0 }
    }

    /// Grant `secs` seconds (the scope's min/max still apply).
    pub const fn lease_time(self, secs: u32) -> Decision {
        Decision { action: self.action, lease_secs: secs }
    }

    /// The `policy_eval` result: `action << 32 | lease_secs`; a chosen
    /// pool goes into the first two bytes of the output buffer.
    pub fn encode(self, out: &mut [u8]) -> i64 {
        let action: i64 = match self.action {
            Action::Continue => 0,
            Action::Deny => 1,
            Action::Nak => 2,
            Action::Pool(p) => {
                if out.len() >= 2 {
                    out[..2].copy_from_slice(&p.to_le_bytes());
                }
                3
            }
        };
        (action << 32) | self.lease_secs as i64
    }
}

/// What `policy_init` receives besides the module's own config: the
/// server's scopes and their named pools, in config order, so a policy can
/// turn the pool names of its config into the ids of [`Decision::pool`].
///
/// It also says which shard this instance serves: each shard thread runs
/// its own instance, and a client's packets always reach the same shard
/// (steered by its MAC), so per-client state is exact; state per relay
/// port or interface sees about `1 / shards` of its traffic.
///
/// The host writes `{"scopes": [{"name": "lan", "pools": ["servers", "guests"]}, ...],
/// "shard": 0, "shards": 2, "config": {...}}`. Names borrowed from it
/// live only during `init`: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    scopes: json::Value<'a>,
    shard: u16,
    shards: u16,
}

impl<'a> Env<'a> {
    /// Number of scopes.
    pub fn scopes(&self) -> u16 {
        self.scopes.elements().count() as u16
    }

    /// Id of scope `name`.
    pub fn scope_id(&self, name: &[u8]) -> Option<u16> {
        self.scopes.elements().position(|s| s.get("name").and_then(|n| n.as_str()) == Some(name)).map(|i| i as u16)
    }

    /// Name of scope `scope`.
    pub fn scope_name(&self, scope: u16) -> Option<&'a [u8]> {
        self.scopes.elements().nth(scope as usize)?.get("name")?.as_str()
    }

    fn pools(&self, scope: u16) -> Option<json::Elements<'a>> {
        Some(self.scopes.elements().nth(scope as usize)?.get("pools")?.elements())
    }

    /// Id of pool `name` in scope `scope`.
    pub fn pool_id(&self, scope: u16, name: &[u8]) -> Option<u16> {
        self.pools(scope)?.position(|p| p.as_str() == Some(name)).map(|i| i as u16)
    }

    /// Number of pools of scope `scope`.
    pub fn pool_count(&self, scope: u16) -> u16 {
        self.pools(scope).map_or(0, |p| p.count() as u16)
    }

    /// Name of pool `pool` of scope `scope`.
    pub fn pool_name(&self, scope: u16, pool: u16) -> Option<&'a [u8]> {
        self.pools(scope)?.nth(pool as usize)?.as_str()
    }

    /// This instance's shard (0-based).
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// Number of shards (at least 1).
    pub fn shards(&self) -> u16 {
        self.shards.max(1)
    }
}

/// Splits the `policy_init` input into the module's config and its [`Env`].
#[doc(hidden)]
pub fn init_input(input: &[u8]) -> (json::Value<'_>, Env<'_>) {
    let all = json::Value::new(input);
    let config = all.get("config").unwrap_or(json::Value::new(b"{}"));
    let scopes = all.get("scopes").unwrap_or(json::Value::new(b"[]"));
    let number = |key: &str| all.get(key).and_then(|v| v.as_u64()).map_or(0, |n| n.min(u16::MAX as u64) as u16);
    (config, Env { scopes, shard: number("shard"), shards: number("shards") })
}

/// A policy module's logic.
pub trait Policy: Sized {
    /// Builds the policy from its JSON config; `None` refuses the config
    /// (the server then refuses to load the module).
    fn init(config: json::Value, env: &Env) -> Option<Self>;
    /// Decides one request.
    fn eval(&mut self, req: &RequestView) -> Decision;
}

/// A static the module owns: the host calls the exports one at a time.
#[doc(hidden)]
pub struct Slot<T>(pub core::cell::UnsafeCell<T>);

// SAFETY: a wasm module instance runs one call at a time, on one thread.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub const fn new(v: T) -> Self {
        Slot(core::cell::UnsafeCell::new(v))
    }
    /// # Safety
    /// No other reference to the contents may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        &mut *self.0.get()
    }
}

/// Emits the ABI v1 exports for a [`Policy`] type.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        static __LEASED_IN: $crate::Slot<[u8; $crate::IN_CAP]> = $crate::Slot::new([0; $crate::IN_CAP]);
        static __LEASED_OUT: $crate::Slot<[u8; $crate::OUT_CAP]> = $crate::Slot::new([0; $crate::OUT_CAP]);
        static __LEASED_POLICY: $crate::Slot<Option<$policy>> = $crate::Slot::new(None);

        #[no_mangle]
        pub extern "C" fn policy_abi_version() -> i32 {
            $crate::ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn policy_in_ptr() -> i32 {
            __LEASED_IN.0.get() as i32
        }
        #[no_mangle]
        pub extern "C" fn policy_in_cap() -> i32 {
            $crate::IN_CAP as i32
        }
        #[no_mangle]
        pub extern "C" fn policy_out_ptr() -> i32 {
            __LEASED_OUT.0.get() as i32
        }
        #[no_mangle]
        pub extern "C" fn policy_init(len: i32) -> i32 {
            // SAFETY: the host calls one export at a time.
            let input = unsafe { __LEASED_IN.get() };
            let len = (len.max(0) as usize).min(input.len());
            let (config, env) = $crate::init_input(&input[..len]);
            match <$policy as $crate::Policy>::init(config, &env) {
                Some(p) => {
                    // SAFETY: as above.
                    unsafe { *__LEASED_POLICY.get() = Some(p) };
                    0
                }
                None => 1,
            }
        }
        #[no_mangle]
        pub extern "C" fn policy_eval(len: i32) -> i64 {
            // SAFETY: the host calls one export at a time.
            let (input, out, policy) = unsafe { (__LEASED_IN.get(), __LEASED_OUT.get(), __LEASED_POLICY.get()) };
            let len = (len.max(0) as usize).min(input.len());
            match (policy, $crate::RequestView::new(&input[..len])) {
                (Some(p), Some(req)) => $crate::Policy::eval(p, &req).encode(out),
                _ => $crate::Decision::CONTINUE.encode(out),
            }
        }
    };
}

#[cfg(all(target_arch = "wasm32", not(test), feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
