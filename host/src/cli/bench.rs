//! `runner bench`: the engine's figures, printed. Targets (see the README):
//! instantiate <= 10 us median, a host call with its capability check
//! <= 300 ns and <= 2 us with journaling, `runner exec` of a cached gate
//! <= 15 ms as a whole process, and no recompilation on a second run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{load_policy, runtime, CommandResult, Exit, Failure};
use crate::backends::Backends;
use crate::caps::Grants;
use crate::engine::{Engine, Limits, Prepared};
use crate::imports::{Approval, HostState, RunContext};
use crate::journal::Journal;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The gate to compile, load, instantiate and exec.
    #[arg(long, default_value = "pods-ready")]
    gate: String,

    /// The test component whose `calls` mode makes N host calls.
    #[arg(long, value_name = "FILE", default_value_os_t = default_fixture())]
    calls_fixture: PathBuf,

    /// Instantiations to time.
    #[arg(long, default_value_t = 2000)]
    instantiations: usize,

    /// Host calls per timed run.
    #[arg(long, default_value_t = 200_000)]
    calls: u64,

    /// Whole-process `runner exec` runs to time.
    #[arg(long, default_value_t = 20)]
    execs: usize,
}

fn default_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dist/hostile-gate.wasm")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::PolicyFailed, e.to_string())
}

pub fn run(args: BenchArgs, _cache_dir: Option<PathBuf>) -> CommandResult {
    let gate = load_policy(&args.gate)?;
    let fixture = load_policy(&args.calls_fixture.to_string_lossy())?;
    let scratch = tempfile::tempdir().map_err(failure)?;
    let cache = scratch.path().join("cache");
    println!("runner bench ({} {}, {} KiB)", gate.name(), gate.manifest.version, gate.bytes.len() / 1024);

    let uncached = Engine::new(Limits::default(), None).map_err(failure)?;
    let compile = median((0..5).map(|_| timed(|| uncached.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    println!("compile                      {:>10.1} ms  (median of 5)", ms(compile));

    let engine = Arc::new(Engine::new(Limits::default(), Some(cache.clone())).map_err(failure)?);
    let first = engine.prepare(&gate).map_err(failure)?;
    let second = engine.prepare(&gate).map_err(failure)?;
    println!("second prepare recompiled    {:>10}      (first from cache: {}, second: {})", if second.from_cache { "no" } else { "YES" }, first.from_cache, second.from_cache);
    let load = median((0..50).map(|_| timed(|| engine.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    println!("cached load                  {:>10.1} us  (median of 50; read, deserialize, link)", us(load));

    let rt = runtime()?;
    let context = Arc::new(RunContext::new(Journal::disabled(), Backends::unavailable("bench"), false, Approval::Unattended));
    let host = |prepared: &Prepared, run: &Arc<RunContext>, grants: Grants| HostState::new(prepared.name.clone(), grants, Duration::from_secs(60), None, run.clone());
    let mut samples = Vec::with_capacity(args.instantiations);
    for _ in 0..args.instantiations {
        let state = host(&second, &context, Grants::default());
        let start = Instant::now();
        rt.block_on(engine.instantiate_only(&second, state)).map_err(failure)?;
        samples.push(start.elapsed());
    }
    println!("instantiate                  {:>10.2} us  (median of {}; fresh store each)", us(median(samples)), args.instantiations);

    let calls = engine.prepare(&fixture).map_err(failure)?;
    let journal_path = scratch.path().join("journal.jsonl");
    let journaled = Arc::new(RunContext::new(Journal::open(&journal_path, "bench".into()).map_err(failure)?, Backends::unavailable("bench"), false, Approval::Unattended));
    let runs = [
        ("calls", "trivial call, no journal", &context),
        ("calls", "trivial call, journaled", &journaled),
        ("checked-calls", "checked call, no journal", &context),
        ("checked-calls", "checked call, journaled", &journaled),
    ];
    for (mode, label, run) in runs {
        let mut per_call = Vec::new();
        for _ in 0..3 {
            let timed_run = |n: u64| -> Result<Duration, Failure> {
                let config = format!(r#"{{"mode":"{mode}","n":{n}}}"#);
                let state = host(&calls, run, Grants::read_only(fixture.manifest.requested()));
                let start = Instant::now();
                rt.block_on(engine.evaluate(&calls, state, &config)).map_err(failure)?.map_err(|e| failure(e.message))?;
                Ok(start.elapsed())
            };
            let baseline = timed_run(0)?;
            let full = timed_run(args.calls)?;
            per_call.push(full.saturating_sub(baseline) / args.calls as u32);
        }
        let call = if mode == "calls" { "clock.now" } else { "kube-read.get, capability checked" };
        println!("{label:<28} {:>10} ns  (median of 3 runs of {} {call} calls)", median(per_call).as_nanos(), args.calls);
    }

    let exe = std::env::current_exe().map_err(failure)?;
    let exec_once = || -> Result<Duration, Failure> {
        let start = Instant::now();
        Command::new(&exe)
            .args(["exec", &gate.path.to_string_lossy(), "--journal"])
            .arg(scratch.path().join("exec.jsonl"))
            .env("RUNNER_CACHE_DIR", &cache)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(failure)?;
        Ok(start.elapsed())
    };
    exec_once()?;
    let execs = (0..args.execs).map(|_| exec_once()).collect::<Result<Vec<_>, _>>()?;
    println!("runner exec (whole process)  {:>10.1} ms  (median of {}; cached gate)", ms(median(execs)), args.execs);
    println!("peak RSS of runner exec      {:>10.1} MiB", peak_child_rss_kib() as f64 / 1024.0);
    Ok(Exit::Success)
}

fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<Duration, E> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The largest resident set of any child process so far, in KiB.
fn peak_child_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}
