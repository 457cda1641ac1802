//! `runner bench`: the engine's figures, printed. Targets (see the README):
//! instantiate <= 10 us median, a host call with its capability check
//! <= 300 ns and <= 2 us with journaling, `runner exec` of a cached gate
//! <= 15 ms as a whole process, and no recompilation on a second run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{CommandResult, Exit, Failure};
use crate::engine::{Engine, Limits};
use crate::run::{RunBuilder, load_policy, runtime};

/// `runner bench`'s arguments.
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

/// Measure and print the engine's figures.
pub fn run(args: BenchArgs, _cache_dir: Option<PathBuf>) -> CommandResult {
    let gate = load_policy(&args.gate)?;
    load_policy(&args.calls_fixture.to_string_lossy())?;
    let scratch = tempfile::tempdir().map_err(failure)?;
    let cache = scratch.path().join("cache");
    println!("runner bench ({} {}, {} KiB)", gate.name(), gate.manifest.version, gate.bytes.len() / 1024);

    let uncached = Engine::new(Limits::default(), None).map_err(failure)?;
    let compile = median((0..5).map(|_| timed(|| uncached.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    println!("compile                      {:>10.1} ms  (median of 5)", ms(compile));

    // A timed run of many host calls must not meet a gate's usual deadline.
    let limits = Limits { gate_deadline: Duration::from_secs(60), ..Limits::default() };
    let engine = Arc::new(Engine::new(limits, Some(cache.clone())).map_err(failure)?);
    let first = engine.prepare(&gate).map_err(failure)?;
    let second = engine.prepare(&gate).map_err(failure)?;
    println!(
        "second prepare recompiled    {:>10}      (first from cache: {}, second: {})",
        if second.from_cache { "no" } else { "YES" },
        first.from_cache,
        second.from_cache
    );
    let load = median((0..50).map(|_| timed(|| engine.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    println!("cached load                  {:>10.1} us  (median of 50; read, deserialize, link)", us(load));

    let rt = runtime()?;
    let offline = |policy: &str| RunBuilder::new(policy).offline("bench").engine(engine.clone());
    let instances = rt.block_on(offline(&args.gate).without_journal().build())?;
    let mut samples = Vec::with_capacity(args.instantiations);
    for _ in 0..args.instantiations {
        let host = instances.host();
        let start = Instant::now();
        rt.block_on(instances.instantiate(host)).map_err(failure)?;
        samples.push(start.elapsed());
    }
    println!("instantiate                  {:>10.2} us  (median of {}; fresh store each)", us(median(samples)), args.instantiations);

    let fixture = args.calls_fixture.to_string_lossy();
    let journal_path = scratch.path().join("journal.jsonl");
    let runs = [
        ("calls", "trivial call, no journal", false),
        ("calls", "trivial call, journaled", true),
        ("checked-calls", "checked call, no journal", false),
        ("checked-calls", "checked call, journaled", true),
    ];
    for (mode, label, journaled) in runs {
        let mut per_call = Vec::new();
        for _ in 0..3 {
            let timed_run = |n: u64| -> Result<Duration, Failure> {
                let config = serde_json::Map::from_iter([("mode".to_string(), mode.into()), ("n".to_string(), n.into())]);
                let builder = offline(&fixture).config_object(config);
                let run = rt.block_on(if journaled { builder.journal(journal_path.clone()) } else { builder.without_journal() }.build())?;
                let host = run.host();
                let start = Instant::now();
                let ending = rt.block_on(run.answer(host)).map_err(failure)?;
                let elapsed = start.elapsed();
                match ending.error {
                    Some(error) => Err(failure(error.message)),
                    None => Ok(elapsed),
                }
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
