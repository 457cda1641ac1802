//! The engine: compiles components once per digest, keeps the compiled
//! artifact on disk, and runs each call in a fresh, limited sandbox.
//!
//! Limits: a wall-clock deadline enforced by epoch interruption, a memory
//! cap, instance and table limits, bounded stdout/stderr. WASI is linked
//! because Rust's standard library needs it, but with nothing ambient: no
//! files, no network, no environment variables, no stdin.
//!
//! The engine knows components and sandboxes, not databases: every host call
//! goes to [`crate::imports`].

mod cache;
mod gates;
mod output;
mod patterns;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::imports::HostState;
use crate::policy::{Policy, World};
use crate::wit::gate::GatePre;
use crate::wit::pattern::{PatternPre, PatternResult};
use crate::wit::{Error, Verdict};

pub use cache::default_dir as default_cache_dir;
pub use gates::SlotRunner;
pub use output::Output;
pub use patterns::{BoundPattern, PatternSlots};

/// How often the epoch advances; deadlines are this precise.
const TICK: Duration = Duration::from_millis(10);

/// The sandbox's limits. Every one has a default and can be changed.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock time a gate may run.
    pub gate_deadline: Duration,
    /// Wall-clock time a pattern may run.
    pub pattern_deadline: Duration,
    /// Linear memory one component may use, in bytes.
    pub memory_bytes: usize,
    /// Bytes a component may write to stdout and to stderr, each.
    pub output_bytes: usize,
    /// Core instances per component.
    pub instances: usize,
    /// Tables per component.
    pub tables: usize,
    /// Elements per table.
    pub table_elements: usize,
    /// Components that may be alive at once (a pattern and its gates).
    pub concurrent_components: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            gate_deadline: Duration::from_secs(30),
            pattern_deadline: Duration::from_secs(3600),
            memory_bytes: 256 << 20,
            output_bytes: 1 << 20,
            // A componentize-py gate has 38 core instances (the interpreter, libc, its WASI stubs).
            instances: 64,
            tables: 32,
            table_elements: 100_000,
            concurrent_components: 16,
        }
    }
}

impl Limits {
    /// The deadline for a component of `world`.
    pub fn deadline(&self, world: World) -> Duration {
        match world {
            World::Gate => self.gate_deadline,
            World::Pattern => self.pattern_deadline,
        }
    }
}

pub use crate::imports::Stop;

/// What went wrong outside the component's own answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The component cannot run in this host (exit code 2).
    #[error("{0}")]
    Invalid(String),
    /// The sandbox stopped the component (exit code 3).
    #[error("{component}: stopped by the sandbox: {reason}")]
    Stopped {
        /// The component's name.
        component: String,
        /// What stopped it (deadline, memory, output, trap).
        reason: String,
    },
    /// The host itself failed.
    #[error("{0}")]
    Host(String),
}

/// A component compiled and linked, ready to be instantiated many times.
pub struct Prepared {
    /// The component's name, from its manifest.
    pub name: Arc<str>,
    /// Its world.
    pub world: World,
    /// Whether the compiled artifact came from the on-disk cache.
    pub from_cache: bool,
    pre: Pre,
}

enum Pre {
    Gate(GatePre<StoreData>),
    Pattern(PatternPre<StoreData>),
}

impl Pre {
    fn instance_pre(&self) -> &InstancePre<StoreData> {
        match self {
            Pre::Gate(pre) => pre.instance_pre(),
            Pre::Pattern(pre) => pre.instance_pre(),
        }
    }
}

/// Everything a store holds for one component instance.
pub struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    stdout: Output,
    stderr: Output,
    host: HostState,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Enforces the memory cap and counts, remembering whether it refused.
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memory_exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            return Err(Stop::Memory.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

/// Compiles, caches and runs components.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<StoreData>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
}

impl Engine {
    /// An engine with `limits`, caching compiled components in `cache_dir`.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
        let mut pool = PoolingAllocationConfig::default();
        let components = limits.concurrent_components;
        pool.total_component_instances(components)
            .total_core_instances(components * limits.instances as u32)
            .total_memories(components * 4)
            .total_tables(components * 4)
            .total_stacks(components)
            .max_core_instances_per_component(limits.instances as u32)
            .max_memories_per_component(4)
            .max_tables_per_component(limits.tables as u32)
            .table_elements(limits.table_elements)
            .max_memory_size(limits.memory_bytes);
        let mut config = Config::new();
        config.epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Host(format!("cannot start wasmtime: {e}")))?;
        spawn_epoch_ticker(&engine);
        let mut linker: Linker<StoreData> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| EngineError::Host(e.to_string()))?;
        crate::imports::add_to_linker(&mut linker, |data| &mut data.host).map_err(|e| EngineError::Host(e.to_string()))?;
        Ok(Engine { engine, linker, limits, cache_dir })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compile (or load from the cache) and link a policy.
    pub fn prepare(&self, policy: &Policy) -> Result<Prepared, EngineError> {
        let (component, from_cache) = cache::load_or_compile(&self.engine, self.cache_dir.as_deref(), policy)?;
        let invalid = |e: wasmtime::Error| EngineError::Invalid(format!("{}: {}", policy.path.display(), error_chain(&e)));
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        // Check the exports against the world now, not at the first call.
        let pre = match policy.manifest.world {
            World::Gate => GatePre::new(pre).map(Pre::Gate),
            World::Pattern => PatternPre::new(pre).map(Pre::Pattern),
        }
        .map_err(|e| EngineError::Invalid(format!("{}: does not match the `{}` world: {}", policy.path.display(), policy.manifest.world, error_chain(&e))))?;
        Ok(Prepared { name: policy.manifest.name.as_str().into(), world: policy.manifest.world, from_cache, pre })
    }

    /// Run a gate's `evaluate` in a fresh sandbox.
    pub async fn evaluate(&self, gate: &Prepared, host: HostState, config: &str) -> Result<Result<Verdict, Error>, EngineError> {
        let deadline = host.deadline;
        let Pre::Gate(pre) = &gate.pre else { return Err(EngineError::Invalid(format!("{} is not a gate", gate.name))) };
        let mut store = self.store(gate, host);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_evaluate(&mut store, config).await
        };
        let result = with_deadline(deadline, call).await;
        finish(result, &store)
    }

    /// Run a pattern's `run` in a fresh sandbox.
    pub async fn run_pattern(&self, pattern: &Prepared, host: HostState, config: &str) -> Result<Result<PatternResult, Error>, EngineError> {
        let deadline = host.deadline;
        let Pre::Pattern(pre) = &pattern.pre else { return Err(EngineError::Invalid(format!("{} is not a pattern", pattern.name))) };
        let mut store = self.store(pattern, host);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, config).await
        };
        let result = with_deadline(deadline, call).await;
        finish(result, &store)
    }

    /// Instantiate and drop, for the benchmark.
    pub async fn instantiate_only(&self, prepared: &Prepared, host: HostState) -> Result<(), EngineError> {
        let mut store = self.store(prepared, host);
        let result = prepared.pre.instance_pre().instantiate_async(&mut store).await.map(drop);
        finish(result, &store)
    }

    fn store(&self, prepared: &Prepared, host: HostState) -> Store<StoreData> {
        let stdout = Output::new(prepared.name.clone(), "stdout", self.limits.output_bytes);
        let stderr = Output::new(prepared.name.clone(), "stderr", self.limits.output_bytes);
        // Nothing ambient: no environment, arguments, preopened directories,
        // network or stdin (WasiCtxBuilder grants none of these by default).
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        let limiter = Limiter {
            memory_bytes: self.limits.memory_bytes,
            table_elements: self.limits.table_elements,
            instances: self.limits.instances,
            tables: self.limits.tables,
            memory_exceeded: false,
        };
        let remaining = host.deadline.saturating_duration_since(Instant::now());
        let mut store = Store::new(&self.engine, StoreData { wasi, table: ResourceTable::new(), limiter, stdout, stderr, host });
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline((remaining.as_millis() / TICK.as_millis()) as u64 + 1);
        store
    }
}

/// Advance the epoch every [`TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("runner-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Epoch interruption stops wasm code at the deadline; this also stops a host
/// call that would outlive it, one second later at most.
async fn with_deadline<T>(deadline: Instant, call: impl std::future::Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    match tokio::time::timeout_at((deadline + Duration::from_secs(1)).into(), call).await {
        Ok(result) => result,
        Err(_) => Err(Stop::Deadline.into()),
    }
}

/// Turn a failed call into the reason the sandbox stopped the component.
fn finish<T>(result: wasmtime::Result<T>, store: &Store<StoreData>) -> Result<T, EngineError> {
    let error = match result {
        Ok(value) => {
            store.data().stdout.flush_partial();
            store.data().stderr.flush_partial();
            return Ok(value);
        }
        Err(error) => error,
    };
    let data = store.data();
    let component = data.host.component.to_string();
    let stopped = |reason: String| EngineError::Stopped { component: component.clone(), reason };
    let limits_memory = data.limiter.memory_bytes;
    let stderr = data.stderr.recent();
    let allocation_failed = stderr.iter().any(|l| l.contains("memory allocation of"));
    if let Some(stop) = error.downcast_ref::<Stop>() {
        let reason = match stop {
            Stop::Deadline => format!("deadline exceeded: still running after {:.1} s", deadline_of(data).as_secs_f64()),
            Stop::Memory => memory_reason(limits_memory),
            Stop::Output { .. } | Stop::Journal(_) | Stop::Limit(_) | Stop::Requested(_) => stop.to_string(),
        };
        return Err(stopped(reason));
    }
    if data.limiter.memory_exceeded || allocation_failed {
        return Err(stopped(memory_reason(limits_memory)));
    }
    if data.stdout.exceeded() || data.stderr.exceeded() {
        let stream = if data.stdout.exceeded() { "stdout" } else { "stderr" };
        return Err(stopped(Stop::Output { stream, limit: data.stdout.limit() }.to_string()));
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        let reason = match trap {
            Trap::Interrupt => format!("deadline exceeded: still running after {:.1} s", deadline_of(data).as_secs_f64()),
            Trap::StackOverflow => "stack overflow: the component used more than its wasm stack".to_string(),
            Trap::UnreachableCodeReached => match panic_message(&stderr) {
                Some(message) => format!("the component panicked: {message}"),
                None => "the component aborted (unreachable code reached)".to_string(),
            },
            Trap::MemoryOutOfBounds => "out-of-bounds memory access (a Rust component whose stack overflows into its data ends this way)".to_string(),
            other => format!("trap: {other}"),
        };
        return Err(stopped(reason));
    }
    // Instantiation failures and other host-side errors.
    Err(stopped(error_chain(&error)))
}

fn memory_reason(limit: usize) -> String {
    format!("memory limit exceeded: the component tried to grow past {} MiB", limit >> 20)
}

fn deadline_of(data: &StoreData) -> Duration {
    data.host.deadline.saturating_duration_since(data.host.started)
}

/// The panic line Rust's standard library writes to stderr, without the
/// location prefix (`panicked at src/lib.rs:3:5:` then the message).
fn panic_message(stderr: &[String]) -> Option<String> {
    let at = stderr.iter().position(|line| line.contains("panicked at"))?;
    let message = stderr.get(at + 1).cloned().unwrap_or_default();
    Some(if message.is_empty() { stderr[at].clone() } else { message })
}

/// An error and its causes on one line.
pub fn error_chain(error: &wasmtime::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
