//! `runner bench`: the engine's figures, printed. Targets (see the README):
//! instantiate <= 10 us median, a host call with its capability check
//! <= 300 ns and <= 2 us with journaling, `runner exec` of a cached gate
//! <= 15 ms as a whole process, and no recompilation on a second run; a
//! pull of a cached digest <= 5 ms with no network; a
//! staged rollout over a fleet (`--fleet-members`, 1000 by default) at
//! <= 10 ms of the runner's own time per member, and its resume from the
//! run log (see `bench_fleet.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::distribution::signature::{self, NamedKey, SignedLayer, SigningKey};
use crate::distribution::trust::Trust;
use crate::distribution::{self, Reference, Settings};
use crate::engine::{Engine, Limits};
use crate::run::{RunBuilder, load_policy, runtime};

#[path = "bench_fleet.rs"]
mod fleet;

/// `runner bench`'s arguments.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The gate to compile, load, instantiate and exec.
    #[arg(long, default_value = "pods-ready")]
    gate: String,

    /// The Python gate measured beside the Rust one (`policies/python/`, built
    /// by scripts/build-policies); skipped when it is not found.
    #[arg(long, default_value = "pod-restarts")]
    python_gate: String,

    /// Instantiations and evaluations of the Python gate to time.
    #[arg(long, default_value_t = 50)]
    python_runs: usize,

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

    /// Fleet members of the staged-rollout figures (dev 1%, test 9%, prod the
    /// rest; each member a sandboxed aks-upgrade sub-run on canned answers),
    /// then its resume from the run log at member N/2; 0 skips them.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    fleet_members: usize,

    /// Measure only the fleet figures, in this process (`runner bench` runs
    /// them so, in a child process of its own).
    #[arg(long, hide = true)]
    fleet_only: bool,

    /// Report format: the figures as text lines, or one document at the end.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// The figures as they are measured: a text line each at once, or kept for one document.
struct Figures {
    output: OutputFormat,
    kept: serde_json::Map<String, serde_json::Value>,
}

impl Figures {
    fn add(&mut self, key: &str, value: serde_json::Value, line: String) {
        if self.output == OutputFormat::Text {
            println!("{line}");
        } else {
            self.kept.insert(key.to_string(), value);
        }
    }
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
    fleet::check_members(args.fleet_members)?;
    if args.fleet_only {
        let mut figures = Figures { output: args.output, kept: serde_json::Map::new() };
        fleet::measure(args.fleet_members, &mut figures)?;
        if args.output != OutputFormat::Text {
            args.output.print(&figures.kept);
        }
        return Ok(Exit::Success);
    }
    let gate = load_policy(&args.gate)?;
    load_policy(&args.calls_fixture.to_string_lossy())?;
    let scratch = tempfile::tempdir().map_err(failure)?;
    let cache = scratch.path().join("cache");
    let mut figures = Figures { output: args.output, kept: serde_json::Map::new() };
    figures.add(
        "gate",
        serde_json::json!({"name": gate.name(), "version": gate.manifest.version, "kib": gate.bytes.len() / 1024}),
        format!("runner bench ({} {}, {} KiB)", gate.name(), gate.manifest.version, gate.bytes.len() / 1024),
    );

    let uncached = Engine::new(Limits::default(), None).map_err(failure)?;
    let compile = median((0..5).map(|_| timed(|| uncached.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    figures.add("compile_ms", ms(compile).into(), format!("compile                      {:>10.1} ms  (median of 5)", ms(compile)));

    // A timed run of many host calls must not meet a gate's usual deadline.
    let limits = Limits { gate_deadline: Duration::from_secs(60), ..Limits::default() };
    let engine = Arc::new(Engine::new(limits, Some(cache.clone())).map_err(failure)?);
    let first = engine.prepare(&gate).map_err(failure)?;
    let second = engine.prepare(&gate).map_err(failure)?;
    figures.add(
        "second_prepare_recompiled",
        (!second.from_cache).into(),
        format!(
            "second prepare recompiled    {:>10}      (first from cache: {}, second: {})",
            if second.from_cache { "no" } else { "YES" },
            first.from_cache,
            second.from_cache
        ),
    );
    let load = median((0..50).map(|_| timed(|| engine.prepare(&gate).map(drop))).collect::<Result<_, _>>().map_err(failure)?);
    figures.add("cached_load_us", us(load).into(), format!("cached load                  {:>10.1} us  (median of 50; read, deserialize, link)", us(load)));

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
    let instantiate = us(median(samples));
    figures.add(
        "instantiate_us",
        instantiate.into(),
        format!("instantiate                  {instantiate:>10.2} us  (median of {}; fresh store each)", args.instantiations),
    );

    let fixture = args.calls_fixture.to_string_lossy();
    let journal_path = scratch.path().join("journal.jsonl");
    let runs = [
        ("calls", "trivial call, no journal", "trivial_call_ns", false),
        ("calls", "trivial call, journaled", "trivial_call_journaled_ns", true),
        ("checked-calls", "checked call, no journal", "checked_call_ns", false),
        ("checked-calls", "checked call, journaled", "checked_call_journaled_ns", true),
    ];
    for (mode, label, key, journaled) in runs {
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
        let ns = median(per_call).as_nanos() as u64;
        figures.add(key, ns.into(), format!("{label:<28} {ns:>10} ns  (median of 3 runs of {} {call} calls)", args.calls));
    }

    let exe = std::env::current_exe().map_err(failure)?;
    let exec_once = || timed_exec(&exe, &gate.path, &scratch.path().join("exec.jsonl"), &cache);
    exec_once()?;
    let execs = (0..args.execs).map(|_| exec_once()).collect::<Result<Vec<_>, _>>()?;
    let exec_ms = ms(median(execs));
    figures.add("exec_ms", exec_ms.into(), format!("runner exec (whole process)  {exec_ms:>10.1} ms  (median of {}; cached gate)", args.execs));
    let rss = peak_child_rss_kib() as f64 / 1024.0;
    figures.add("exec_peak_rss_mib", rss.into(), format!("peak RSS of runner exec      {rss:>10.1} MiB"));
    distribution_figures(&args, &mut figures, scratch.path())?;
    python_figures(&args, &mut figures, &rt, &exe, scratch.path())?;
    // After the figures above: the child's peak would count among the children's.
    if args.fleet_members > 0 {
        fleet::in_child(args.fleet_members, &mut figures)?;
    }
    if args.output != OutputFormat::Text {
        args.output.print(&figures.kept);
    }
    Ok(Exit::Success)
}

/// The Python gate: `runner exec` compiling it (no cache: what a first run
/// costs without `runner build`) and loading it from the cache (`runner
/// build` compiles into it), then instantiation and one evaluation (a host
/// call answered offline), each beside the Rust gate's.
fn python_figures(args: &BenchArgs, figures: &mut Figures, rt: &tokio::runtime::Runtime, exe: &Path, scratch: &Path) -> Result<(), Failure> {
    let Ok(python) = load_policy(&args.python_gate) else {
        figures.add("python_gate", serde_json::Value::Null, format!("python gate `{}` not found: build it with scripts/build-policies", args.python_gate));
        return Ok(());
    };
    figures.add(
        "python_gate",
        serde_json::json!({"name": python.name(), "version": python.manifest.version, "kib": python.bytes.len() / 1024}),
        format!("python gate ({} {}, {} KiB)", python.name(), python.manifest.version, python.bytes.len() / 1024),
    );
    let cache = scratch.join("python-cache");
    let exec_python = || timed_exec(exe, &python.path, &scratch.join("python-exec.jsonl"), &cache);
    let cold = exec_python()?;
    figures.add(
        "python_exec_cold_s",
        cold.as_secs_f64().into(),
        format!("python exec, cold compile    {:>10.1} s   (first run without runner build)", cold.as_secs_f64()),
    );
    let cached = ms(median((0..5).map(|_| exec_python()).collect::<Result<Vec<_>, _>>()?));
    figures.add(
        "python_exec_cached_ms",
        cached.into(),
        format!("python exec, after build     {cached:>10.1} ms  (median of 5; compiled by runner build, from the cache)"),
    );

    let engine = Arc::new(Engine::new(Limits::default(), Some(cache)).map_err(failure)?);
    let policies = [("rust", args.gate.as_str()), ("python", args.python_gate.as_str())];
    for (language, policy) in policies {
        let run = rt.block_on(RunBuilder::new(policy).offline("bench").engine(engine.clone()).without_journal().build())?;
        let mut instantiations = Vec::with_capacity(args.python_runs);
        let mut evaluations = Vec::with_capacity(args.python_runs);
        for _ in 0..args.python_runs {
            let start = Instant::now();
            rt.block_on(run.instantiate(run.host())).map_err(failure)?;
            instantiations.push(start.elapsed());
            let start = Instant::now();
            rt.block_on(run.answer(run.host())).map_err(failure)?;
            evaluations.push(start.elapsed());
        }
        let (instantiate, evaluate) = (us(median(instantiations)), us(median(evaluations)));
        figures.add(
            &format!("{language}_gate_instantiate_us"),
            instantiate.into(),
            format!("{language:<6} gate instantiate      {instantiate:>10.1} us  (median of {}; {policy})", args.python_runs),
        );
        figures.add(
            &format!("{language}_gate_evaluate_us"),
            evaluate.into(),
            format!(
                "{language:<6} gate evaluate         {evaluate:>10.1} us  (median of {}; instantiate + one kube-read.list answered offline)",
                args.python_runs
            ),
        );
    }
    Ok(())
}

/// One whole-process `runner exec` of `component` with the compiled cache
/// `cache`. The gate's verdict does not matter (no cluster answers it);
/// a refused load (exit 2) or a crash does: the figure would time nothing.
fn timed_exec(exe: &Path, component: &Path, journal: &Path, cache: &Path) -> Result<Duration, Failure> {
    let start = Instant::now();
    let output = Command::new(exe)
        .args(["exec", &component.to_string_lossy(), "--journal"])
        .arg(journal)
        .env("RUNNER_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(failure)?;
    let elapsed = start.elapsed();
    match output.status.code() {
        Some(code) if code != Exit::BadInput as i32 => Ok(elapsed),
        _ => Err(failure(format!("runner exec {} did not run: {}", component.display(), String::from_utf8_lossy(&output.stderr).trim()))),
    }
}

/// Policies by reference, with no registry: the gate pushed into an image
/// layout in the scratch directory (which also fills the blob cache) and
/// signed there. Then a pull of its digest from the cache, named at a
/// registry where nothing listens (any network call would fail it), the
/// verification of one cosign signature, and a pull from the layout whose
/// trust rule requires that signature.
fn distribution_figures(args: &BenchArgs, figures: &mut Figures, scratch: &Path) -> Result<(), Failure> {
    let distribution_failure = |e: distribution::DistributionError| failure(e.to_string());
    let layout = scratch.join("layout");
    let key = SigningKey::generate();
    let public = scratch.join("bench.pub");
    std::fs::write(&public, key.public_key().to_pem()).map_err(failure)?;
    let trust_file = scratch.join("trust.yaml");
    std::fs::write(&trust_file, "sources:\n  - match: \"oci-layout/**\"\n    keys: [bench.pub]\n").map_err(failure)?;
    let unchecked = Settings::new(scratch.join("oci"));
    let checked = Settings { trust: Trust::load(&trust_file).map_err(failure)?, ..Settings::new(scratch.join("oci")) };
    let runs = 100;
    for (language, name) in [("rust", args.gate.as_str()), ("python", args.python_gate.as_str())] {
        let Ok(policy) = load_policy(name) else { continue };
        let tagged = Reference::parse(&format!("oci-layout:{}:{language}", layout.display())).map_err(distribution_failure)?;
        let pushed = distribution::push(&policy.bytes, &tagged, &unchecked).map_err(distribution_failure)?;
        distribution::sign(&tagged, &key, &unchecked).map_err(distribution_failure)?;
        // Port 9 (discard) on loopback: nothing listens there.
        let cached = Reference::parse(&format!("oci://127.0.0.1:9/bench/{}@{}", policy.name(), pushed.manifest_digest)).map_err(distribution_failure)?;
        let pulls = (0..runs).map(|_| timed(|| distribution::fetch(&cached, &unchecked))).collect::<Result<Vec<_>, _>>().map_err(distribution_failure)?;
        let pull = ms(median(pulls));
        let kib = pushed.size / 1024;
        figures.add(
            &format!("{language}_pull_cached_digest_ms"),
            pull.into(),
            format!("pull of a cached digest      {pull:>10.2} ms  (median of {runs}; {name}, {kib} KiB, digests checked, no network)"),
        );
        let verified = (0..runs).map(|_| timed(|| distribution::fetch(&tagged, &checked))).collect::<Result<Vec<_>, _>>().map_err(distribution_failure)?;
        let verified = ms(median(verified));
        figures.add(
            &format!("{language}_pull_layout_verified_ms"),
            verified.into(),
            format!("pull from a layout, signed   {verified:>10.2} ms  (median of {runs}; {name}: trust rule, signature, digests)"),
        );
    }
    let digest = distribution::cache::digest_of(b"bench");
    let payload = signature::payload("bench", &digest);
    let layers = [SignedLayer { signature: key.sign(&payload), payload }];
    let keys = [NamedKey { name: "bench.pub".into(), key: key.public_key() }];
    let verifications = (0..runs).map(|_| timed(|| signature::verify(&layers, &keys, &digest))).collect::<Result<Vec<_>, _>>().map_err(failure)?;
    let verify = us(median(verifications));
    figures.add(
        "verify_signature_us",
        verify.into(),
        format!("verify a cosign signature    {verify:>10.1} us  (median of {runs}; ECDSA P-256 over the simple-signing payload)"),
    );
    Ok(())
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
