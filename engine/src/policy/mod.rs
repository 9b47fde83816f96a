//! The WebAssembly policy host (ARCHITECTURE §9, ABI "leased-policy v1").
//!
//! [`PolicySet::load`] compiles and checks every module once (exports and
//! their types, imports, ABI version, a trial `policy_init` with its
//! config), with wasmtime's pooling allocator, fuel and epoch interruption.
//! [`PolicySet::shard`] gives a shard its own long-lived instances
//! ([`ShardPolicies`], the core's [`PolicyHook`]): one memcpy of the request
//! view and one call per module per request. A module that traps, runs out
//! of fuel or time, or exceeds its memory is counted, logged (at most once a
//! second per module and shard), re-instantiated, and its `on_error`
//! decides; the server keeps serving.

mod env;
mod host;
pub mod standard;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use thiserror::Error;
use tracing::warn;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Memory, Module, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc,
};

pub use env::{ServerEnv, StandaloneEnv, UnixClock};
pub use host::{HostState, PolicyEnv};

use crate::metrics as m;
use crate::server::{PolicyAction, PolicyHook, Verdict, VIEW_MAX};

/// The ABI version this host speaks.
pub const ABI_VERSION: i32 = 1;
/// Fuel per call unless the module's config says otherwise (about 1 ms of work).
pub const DEFAULT_FUEL: u64 = 1_000_000;
/// Memory limit per instance unless the module's config says otherwise.
pub const DEFAULT_MEMORY: usize = 16 << 20;
/// The largest memory limit a module may ask for.
pub const MAX_MEMORY: usize = 64 << 20;
/// Wall-clock backstop: epoch ticks of [`TICK`] a call may run.
const DEADLINE_TICKS: u64 = 10;
const TICK: Duration = Duration::from_millis(10);

/// What to do with a request when a module fails on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Go on as if the module had said nothing.
    Allow,
    /// Drop the request.
    Deny,
}

/// One module to load.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: String,
    pub wasm: Vec<u8>,
    pub on_error: OnError,
    pub fuel: u64,
    pub memory: usize,
    /// The module's own config, JSON text.
    pub config: String,
}

/// Why a module cannot be loaded.
#[derive(Debug, Error)]
#[error("policy {name:?}: {reason}")]
pub struct PolicyError {
    pub name: String,
    pub reason: String,
}

fn refuse(name: &str, reason: impl std::fmt::Display) -> PolicyError {
    PolicyError { name: name.to_string(), reason: reason.to_string() }
}

struct Compiled {
    spec: PolicySpec,
    module: Module,
}

/// Increments the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Compiled, checked modules, shared by the shards.
pub struct PolicySet {
    engine: Engine,
    linker: Linker<HostState>,
    modules: Vec<Compiled>,
    env: Arc<dyn PolicyEnv>,
    /// The server's scopes and pools (JSON) for `policy_init`.
    scopes: String,
    shards: usize,
    _ticker: Ticker,
}

/// The module's exports of ABI v1, looked up once per instance.
struct Live {
    store: Store<HostState>,
    memory: Memory,
    input: usize,
    capacity: usize,
    output: usize,
    eval: TypedFunc<i32, i64>,
}

/// One decision in this many has its calls timed for
/// `leased_policy_duration_seconds`: reading the clock twice per call would
/// cost a fifth of a call.
const TIME_ONE_IN: u32 = 32;

/// Results of `leased_policy_calls_total`.
const RESULTS: [&str; 5] = ["ok", "out_of_fuel", "timeout", "memory", "trap"];

/// A shard's instances of every module, in config order.
pub struct ShardPolicies {
    set: Arc<PolicySet>,
    shard: usize,
    lives: Vec<Option<Live>>,
    calls: Vec<[Counter; 5]>,
    durations: Vec<Histogram>,
    /// Decisions so far, for sampling durations.
    tick: u32,
    /// The same counts, readable here (tests, the API).
    counts: Vec<[u64; 5]>,
    last_log: Vec<Option<Instant>>,
    /// The request view, written by the core before each decision.
    view: Box<[u8; VIEW_MAX]>,
}

fn engine() -> Result<Engine, String> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(512)
        .total_memories(512)
        .total_tables(512)
        .max_memory_size(MAX_MEMORY)
        .max_memories_per_module(1)
        .max_tables_per_module(1);
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        // The default memory reservation (4 GiB of address space per slot,
        // with guard pages) lets compiled code skip explicit bounds checks.
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os("LEASED_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| e.to_string())
}

/// Checks the exports ABI v1 asks for, and that imports are ours.
fn check_shape(module: &Module) -> Result<(), String> {
    use wasmtime::{ExternType, ValType};
    let func = |name: &str, params: &[ValType], results: &[ValType]| -> Result<(), String> {
        match module.get_export(name) {
            Some(ExternType::Func(f)) => {
                let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
                    a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
                };
                if same(&mut f.params(), params) && same(&mut f.results(), results) {
                    Ok(())
                } else {
                    Err(format!("export {name} has type {f}, ABI v1 wants {params:?} -> {results:?}"))
                }
            }
            Some(_) => Err(format!("export {name} is not a function")),
            None => Err(format!("missing export {name} (ABI v1)")),
        }
    };
    if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
        return Err("missing export memory (ABI v1)".into());
    }
    for name in ["policy_abi_version", "policy_in_ptr", "policy_in_cap", "policy_out_ptr"] {
        func(name, &[], &[ValType::I32])?;
    }
    func("policy_init", &[ValType::I32], &[ValType::I32])?;
    func("policy_eval", &[ValType::I32], &[ValType::I64])?;
    for import in module.imports() {
        if import.module() != "env" || !host::IMPORTS.contains(&import.name()) {
            return Err(format!(
                "imports {}.{}: a policy may import only env.{}",
                import.module(),
                import.name(),
                host::IMPORTS.join(", env.")
            ));
        }
    }
    Ok(())
}

impl PolicySet {
    /// Compiles and checks `specs` for a server of `shards` shards;
    /// `scopes` is the JSON array of the server's scopes and pool names
    /// that `policy_init` receives.
    pub fn load(
        specs: Vec<PolicySpec>,
        scopes: &str,
        shards: usize,
        env: Arc<dyn PolicyEnv>,
    ) -> Result<Arc<PolicySet>, PolicyError> {
        let engine = engine().map_err(|e| refuse("*", format!("cannot set up wasmtime: {e}")))?;
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(|e| refuse("*", e))?;
        let mut modules = Vec::new();
        for spec in specs {
            if spec.memory > MAX_MEMORY {
                return Err(refuse(&spec.name, format!("memory limit {} exceeds {} bytes", spec.memory, MAX_MEMORY)));
            }
            let module = Module::new(&engine, &spec.wasm)
                .map_err(|e| refuse(&spec.name, format!("not a valid module: {e:#}")))?;
            check_shape(&module).map_err(|e| refuse(&spec.name, e))?;
            modules.push(Compiled { spec, module });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| refuse("*", e))?;
        let set = Arc::new(PolicySet {
            engine,
            linker,
            modules,
            env,
            scopes: scopes.to_string(),
            shards: shards.max(1),
            _ticker: Ticker { stop, thread: Some(thread) },
        });
        // A trial instance of each: ABI version and init with its config.
        for i in 0..set.modules.len() {
            set.instantiate(i, 0)?;
        }
        Ok(set)
    }

    /// Names of the loaded modules, in order.
    pub fn names(&self) -> Vec<&str> {
        self.modules.iter().map(|m| m.spec.name.as_str()).collect()
    }

    /// A ready instance of module `i` for shard `shard`: checked, its
    /// `policy_init` run with the config.
    fn instantiate(&self, i: usize, shard: usize) -> Result<Live, PolicyError> {
        let c = &self.modules[i];
        let name = &c.spec.name;
        let init = format!(
            "{{\"scopes\": {}, \"shard\": {shard}, \"shards\": {}, \"config\": {}}}",
            self.scopes, self.shards, c.spec.config
        );
        let limits: StoreLimits =
            StoreLimitsBuilder::new().memory_size(c.spec.memory).instances(1).trap_on_grow_failure(true).build();
        let state = HostState::new(name, limits, self.env.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(c.spec.fuel.max(DEFAULT_FUEL)).map_err(|e| refuse(name, e))?;
        store.set_epoch_deadline(DEADLINE_TICKS);
        let instance = self.linker.instantiate(&mut store, &c.module).map_err(|e| refuse(name, format!("{e:#}")))?;
        // Known before any export runs: imports read guest bytes through it.
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| refuse(name, "no memory"))?;
        store.data_mut().memory = Some(memory);
        let get = |store: &mut Store<HostState>, export: &str| -> Result<i32, PolicyError> {
            let f = instance.get_typed_func::<(), i32>(&mut *store, export).map_err(|e| refuse(name, e))?;
            f.call(store, ()).map_err(|e| refuse(name, format!("{export} failed: {e:#}")))
        };
        let version = get(&mut store, "policy_abi_version")?;
        if version != ABI_VERSION {
            return Err(refuse(name, format!("ABI version {version}, this server speaks {ABI_VERSION}")));
        }
        let (input, capacity, output) =
            (get(&mut store, "policy_in_ptr")?, get(&mut store, "policy_in_cap")?, get(&mut store, "policy_out_ptr")?);
        let size = memory.data_size(&store);
        let inside = |at: i32, len: i32| at >= 0 && len >= 0 && (at as usize).saturating_add(len as usize) <= size;
        if !inside(input, capacity) || !inside(output, 2) {
            return Err(refuse(name, "its buffers lie outside its memory"));
        }
        if init.len() > capacity as usize {
            return Err(refuse(name, format!("config of {} bytes exceeds its input buffer of {capacity}", init.len())));
        }
        memory.write(&mut store, input as usize, init.as_bytes()).map_err(|e| refuse(name, e))?;
        let init_fn = instance.get_typed_func::<i32, i32>(&mut store, "policy_init").map_err(|e| refuse(name, e))?;
        match init_fn.call(&mut store, init.len() as i32) {
            Ok(0) => {}
            Ok(code) => return Err(refuse(name, format!("policy_init refused its config (code {code})"))),
            Err(e) => return Err(refuse(name, format!("policy_init failed: {e:#}"))),
        }
        let eval = instance.get_typed_func::<i32, i64>(&mut store, "policy_eval").map_err(|e| refuse(name, e))?;
        Ok(Live { store, memory, input: input as usize, capacity: capacity as usize, output: output as usize, eval })
    }

    /// Instances of every module for shard `shard`.
    pub fn shard(self: &Arc<Self>, shard: usize) -> Result<ShardPolicies, PolicyError> {
        let (mut lives, mut calls, mut durations) = (Vec::new(), Vec::new(), Vec::new());
        for (i, c) in self.modules.iter().enumerate() {
            lives.push(Some(self.instantiate(i, shard)?));
            let policy = c.spec.name.clone();
            calls.push(RESULTS.map(|r| metrics::counter!(m::POLICY_CALLS, "policy" => policy.clone(), "result" => r)));
            durations.push(metrics::histogram!(m::POLICY_DURATION, "policy" => policy));
        }
        let (last_log, counts) = (vec![None; lives.len()], vec![[0; 5]; lives.len()]);
        let view = Box::new([0; VIEW_MAX]);
        Ok(ShardPolicies { set: self.clone(), shard, lives, calls, durations, tick: 0, counts, last_log, view })
    }
}

/// Which of [`RESULTS`] an error of a call is.
fn classify(e: &wasmtime::Error) -> usize {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => 1,
        Some(Trap::Interrupt) => 2,
        _ if format!("{e:#}").contains("memory") => 3,
        _ => 4,
    }
}

impl ShardPolicies {
    /// Calls of module `i` by result: ok, out_of_fuel, timeout, memory, trap.
    pub fn results(&self, i: usize) -> [u64; 5] {
        self.counts[i]
    }

    /// Runs module `i` on `view`; `None` when it failed (already counted and logged).
    fn call(&mut self, i: usize, len: usize, timed: bool) -> Option<(i64, u16)> {
        let spec = &self.set.modules[i].spec;
        let live = match &mut self.lives[i] {
            Some(l) => l,
            None => match self.set.instantiate(i, self.shard) {
                Ok(l) => self.lives[i].insert(l),
                Err(e) => {
                    self.log(i, &format!("cannot re-create the instance: {e}"));
                    return None;
                }
            },
        };
        let len = len.min(live.capacity);
        let started = timed.then(Instant::now);
        let result = live
            .memory
            .write(&mut live.store, live.input, &self.view[..len])
            .map_err(wasmtime::Error::from)
            .and_then(|_| live.store.set_fuel(spec.fuel))
            .and_then(|_| {
                live.store.set_epoch_deadline(DEADLINE_TICKS);
                live.eval.call(&mut live.store, len as i32)
            });
        if let Some(t) = started {
            self.durations[i].record(t.elapsed().as_secs_f64());
        }
        match result {
            Ok(r) => {
                self.calls[i][0].increment(1);
                self.counts[i][0] += 1;
                let mut pool = [0u8; 2];
                if r >> 32 == 3 {
                    let _ = live.memory.read(&live.store, live.output, &mut pool);
                }
                Some((r, u16::from_le_bytes(pool)))
            }
            Err(e) => {
                let kind = classify(&e);
                self.calls[i][kind].increment(1);
                self.counts[i][kind] += 1;
                // The instance may be in any state now: start afresh next time.
                self.lives[i] = None;
                self.log(i, &format!("{} ({e:#}); on_error decides", RESULTS[kind]));
                None
            }
        }
    }

    fn log(&mut self, i: usize, what: &str) {
        let now = Instant::now();
        if self.last_log[i].is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            self.last_log[i] = Some(now);
            warn!(policy = %self.set.modules[i].spec.name, "policy failed: {what}");
        }
    }
}

impl PolicyHook for ShardPolicies {
    /// Modules run in order: the first deny or NAK ends it; the first pool
    /// choice holds; a later module's lease time overrides an earlier one's.
    fn view_buffer(&mut self) -> &mut [u8; VIEW_MAX] {
        &mut self.view
    }

    fn decide(&mut self, len: usize) -> Verdict {
        let mut verdict = Verdict::default();
        self.tick = self.tick.wrapping_add(1);
        let timed = self.tick % TIME_ONE_IN == 0;
        for i in 0..self.lives.len() {
            let Some((r, pool)) = self.call(i, len, timed) else {
                if self.set.modules[i].spec.on_error == OnError::Deny {
                    return Verdict { action: PolicyAction::Deny, lease_secs: 0 };
                }
                continue;
            };
            let secs = r as u32;
            if secs != 0 {
                verdict.lease_secs = secs;
            }
            match r >> 32 {
                1 => return Verdict { action: PolicyAction::Deny, ..verdict },
                2 => return Verdict { action: PolicyAction::Nak, ..verdict },
                3 if verdict.action == PolicyAction::Continue => verdict.action = PolicyAction::Pool(pool),
                _ => {}
            }
        }
        verdict
    }
}

/// The modules the shards run, replaced on reload: each shard re-creates
/// its instances when the generation moves.
#[derive(Default)]
pub struct LivePolicies {
    generation: std::sync::atomic::AtomicU64,
    set: parking_lot::RwLock<Option<Arc<PolicySet>>>,
}

impl LivePolicies {
    pub fn new(set: Option<Arc<PolicySet>>) -> Arc<Self> {
        Arc::new(LivePolicies { generation: Default::default(), set: parking_lot::RwLock::new(set) })
    }

    /// Puts `set` in place; shards pick it up at their next batch.
    pub fn replace(&self, set: Option<Arc<PolicySet>>) {
        *self.set.write() = set;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current generation (moves on every [`LivePolicies::replace`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Fresh instances of the current set for shard `shard` (None: no modules).
    pub fn instances(&self, shard: usize) -> Result<Option<ShardPolicies>, PolicyError> {
        self.set.read().as_ref().map(|s| s.shard(shard)).transpose()
    }
}
