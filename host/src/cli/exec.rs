//! `runner exec`: run a gate or a pattern against a target.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::{load_policy, runtime, CommandResult, Exit, Failure, OutputFormat};
use crate::backends::{Backends, Kube, Unavailable};
use crate::caps::{Capability, Grants};
use crate::engine::{Engine, EngineError, Limits, SlotRunner};
use crate::imports::{code_name, Approval, HostState, RunContext, RunRecord};
use crate::journal::{new_run_id, Journal};
use crate::policy::{config, Policy, World};
use crate::probe::{ProbeError, ProbeSummary, WriteProbe};
use crate::target::{Target, TargetError};
use crate::wit::pattern::PatternStatus;
use crate::wit::{ErrorCode, Outcome};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A bundled policy's name (`pods-ready`) or a component file.
    policy: String,

    /// Where to run: `lab` (the local cluster) or a target file.
    #[arg(long, default_value = "lab", value_name = "lab|FILE")]
    target: String,

    /// A configuration value, checked against the policy's schema. Repeatable.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// Bind a gate to one of a pattern's slots (a bundled name or a file). Repeatable.
    #[arg(long = "gate", value_name = "SLOT=NAME|FILE")]
    gates: Vec<String>,

    /// Allow a mutating capability (`kube:patch:apps/v1/StatefulSet`, `kube:*`). Repeatable.
    #[arg(long = "allow", value_name = "CAP")]
    allow: Vec<String>,

    /// A TOML file with `allow = ["CAP", ...]`, added to --allow.
    #[arg(long, value_name = "FILE")]
    grants: Option<PathBuf>,

    /// Let reads through, answer every mutation as if it succeeded, and print the plan.
    #[arg(long)]
    dry_run: bool,

    /// Approve every approval request without asking.
    #[arg(long)]
    approve: bool,

    /// Append the journal here (default: a new file under the state directory).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,

    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,

    /// While the policy runs, write numbered records to this database of the
    /// target (`postgres-cluster`) through its primary Service, as a client
    /// would; report the longest write gap and check afterwards that no
    /// acknowledged write was lost (a loss fails the run).
    #[arg(long, value_name = "DATABASE")]
    write_probe: Option<String>,

    /// The probe's writes per second.
    #[arg(long, value_name = "N", default_value_t = crate::probe::DEFAULT_RATE, value_parser = clap::value_parser!(u32).range(1..=5000))]
    probe_rate: u32,

    /// The table the PostgreSQL probe writes (created if missing); for MongoDB the collection in database `runner`.
    #[arg(long, value_name = "NAME", default_value = "runner_probe")]
    probe_table: String,

    /// Write every host interaction of the run (request, response or error) to this session file.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,

    /// Answer the component's host calls from this session file instead of the backends.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,

    /// Wall-clock limit (default: 30s for gates, 1h for patterns).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    deadline: Option<Duration>,

    /// Memory limit per component.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    memory: usize,

    /// Bytes a component may write to stdout, and to stderr.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    output_limit: usize,

    /// Core instances (and memories) per component.
    #[arg(long, value_name = "N", default_value_t = Limits::default().instances)]
    max_instances: usize,

    /// Tables per component.
    #[arg(long, value_name = "N", default_value_t = Limits::default().tables)]
    max_tables: usize,

    /// Elements per table.
    #[arg(long, value_name = "N", default_value_t = Limits::default().table_elements)]
    max_table_elements: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    config::duration_ms(text).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is not a duration (examples: 500ms, 30s, 1h)"))
}

/// Parse `256MiB`, `512M`, `1G`, `4096`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number.parse().map_err(|_| format!("`{text}` is not a size (examples: 64MiB, 1G, 4096)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}` has an unknown unit (use KiB, MiB or GiB)")),
    };
    number.checked_shl(shift).filter(|n| *n > 0).ok_or_else(|| format!("`{text}` is out of range"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    allow: Vec<String>,
}

fn allowed(args: &ExecArgs) -> Result<Vec<Capability>, Failure> {
    let mut texts = args.allow.clone();
    if let Some(path) = &args.grants {
        let text = std::fs::read_to_string(path).map_err(|e| Failure::bad_input(format!("{}: cannot read grants file: {e}", path.display())))?;
        let file: GrantsFile = toml::from_str(&text).map_err(|e| Failure::bad_input(format!("{}: {}", path.display(), e.message())))?;
        texts.extend(file.allow);
    }
    texts.iter().map(|t| t.parse::<Capability>().map_err(|e| Failure::bad_input(format!("--allow: {e}")))).collect()
}

/// The Kubernetes backend for `target`. A lab that is not running is not
/// an error here: every kube call then answers `unavailable` (exit 4), as
/// an unreachable cluster does, so reads of other kinds still run.
async fn kube_backend(target: &Target) -> Result<Arc<dyn Kube>, Failure> {
    match crate::backends::kube::connect(&target).await {
        Ok(backend) => Ok(Arc::new(backend)),
        Err(TargetError::Unreachable(message)) => Ok(Arc::new(Unavailable::because(message))),
        Err(TargetError::Bad(message)) => Err(Failure::bad_input(message)),
    }
}

/// The gate for every slot: the manifest's default unless `--gate` rebinds it.
pub(super) fn bind_gates(policy: &Policy, overrides: &[String]) -> Result<BTreeMap<String, Policy>, Failure> {
    let slots = &policy.manifest.gates;
    let mut chosen: BTreeMap<String, String> = slots.iter().map(|(slot, s)| (slot.clone(), s.default.clone())).collect();
    for text in overrides {
        let (slot, gate) = config::split_pair(text).map_err(|e| Failure::bad_input(format!("--gate: {e}")))?;
        if !slots.contains_key(&slot) {
            let known = if slots.is_empty() { "it has none".to_string() } else { slots.keys().cloned().collect::<Vec<_>>().join(", ") };
            return Err(Failure::bad_input(format!("--gate: `{}` has no slot `{slot}` (slots: {known})", policy.name())));
        }
        chosen.insert(slot, gate);
    }
    chosen
        .into_iter()
        .map(|(slot, gate)| {
            let bound = load_policy(&gate).map_err(|f| Failure::bad_input(format!("gate slot `{slot}`: {}", f.message)))?;
            if bound.manifest.world != World::Gate {
                return Err(Failure::bad_input(format!("gate slot `{slot}`: `{}` is a {}, not a gate", bound.name(), bound.manifest.world)));
            }
            Ok((slot, bound))
        })
        .collect()
}

/// How a run ended, before it is printed.
struct Ending {
    exit: Exit,
    outcome: String,
    reasons: Vec<String>,
    evidence: Value,
    error: Option<Value>,
}

pub fn run(args: ExecArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let target = Target::from_arg(&args.target).map_err(|e| Failure::bad_input(e.to_string()))?;
    let executed = execute(&args, &target, cache_dir)?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&executed.json()).unwrap_or_default()),
        OutputFormat::Text => print!("{}", executed.text()),
    }
    Ok(executed.exit())
}

/// Run a policy against `target`; what happened, not yet printed.
pub(super) fn execute(args: &ExecArgs, target: &Target, cache_dir: Option<PathBuf>) -> Result<Executed, Failure> {
    let started = Instant::now();
    let policy = load_policy(&args.policy)?;
    let pairs: Vec<(String, String)> = args.config.iter().map(|p| config::split_pair(p).map_err(|e| Failure::bad_input(format!("--config: {e}")))).collect::<Result<_, _>>()?;
    let config = config::build(&policy.manifest.config, &pairs).map_err(Failure::bad_input)?;
    for mismatch in policy.import_report.mismatches() {
        tracing::warn!("{}: {mismatch}", policy.name());
    }
    let allowed = allowed(args)?;
    if args.write_probe.is_some() && args.dry_run {
        return Err(Failure::bad_input("--write-probe writes to the database; a --dry-run changes nothing, so it takes no probe"));
    }
    let slots = bind_gates(&policy, &args.gates)?;
    let runtime = runtime()?;
    if args.write_probe.is_some() && args.replay.is_some() {
        return Err(Failure::bad_input("--write-probe writes to a live database; a --replay reaches none"));
    }
    let session = super::session::open(args.record.as_deref(), args.replay.as_deref(), &policy)?;
    let recorded_at = crate::journal::timestamp();
    let gate_names: BTreeMap<String, String> = slots.iter().map(|(slot, gate)| (slot.clone(), gate.name().to_string())).collect();
    let kube: Arc<dyn Kube> = if session.is_replaying() { Arc::new(Unavailable::because("replaying a session: no backend is reached")) } else { runtime.block_on(kube_backend(target))? };
    let run_id = new_run_id(policy.name());
    let journal_path = args.journal.clone().unwrap_or_else(|| Journal::default_path(&run_id));
    let journal = Journal::open(&journal_path, run_id).map_err(|e| Failure::bad_input(format!("{}: cannot open the journal: {e}", journal_path.display())))?;

    let mut limits = Limits {
        memory_bytes: args.memory,
        output_bytes: args.output_limit,
        instances: args.max_instances.max(1),
        tables: args.max_tables.max(1),
        table_elements: args.max_table_elements,
        ..Limits::default()
    };
    if let Some(deadline) = args.deadline {
        limits.gate_deadline = deadline;
        limits.pattern_deadline = deadline;
    }
    let budget = limits.deadline(policy.manifest.world);
    let engine = Arc::new(Engine::new(limits, cache_dir).map_err(|e| Failure::new(Exit::PolicyFailed, e.to_string()))?);
    let prepared = engine.prepare(&policy).map_err(engine_failure)?;
    tracing::debug!("{}: compiled artifact {}", policy.name(), if prepared.from_cache { "loaded from the cache" } else { "compiled and cached" });

    let probe = match &args.write_probe {
        Some(database) => Some(runtime.block_on(WriteProbe::start(target, kube.as_ref(), database, &args.probe_table, args.probe_rate)).map_err(|e| match e {
            ProbeError::Bad(message) => Failure::bad_input(message),
            ProbeError::Unreachable(message) => Failure::new(Exit::Unavailable, format!("{message} (nothing was run)")),
        })?),
        None => None,
    };
    let mut context = RunContext::new(journal, Backends::with_kube(kube, target), args.dry_run, Approval::from_flags(args.approve));
    context.session = session;
    if policy.manifest.world == World::Pattern {
        context.gates = Some(Arc::new(SlotRunner::new(engine.clone(), slots)));
    }
    let context = Arc::new(context);
    let grants = Grants::new(policy.manifest.requested(), allowed);
    let host = HostState::new(prepared.name.clone(), grants, budget, None, context.clone());
    let config_text = config.to_string();

    let ending = runtime.block_on(async {
        match policy.manifest.world {
            World::Gate => engine.evaluate(&prepared, host, &config_text).await.map(|r| match r {
                Ok(verdict) => {
                    let (exit, outcome) = match verdict.outcome {
                        Outcome::Pass => (Exit::Success, "pass"),
                        Outcome::Warn => (Exit::Success, "warn"),
                        Outcome::Fail => (Exit::PolicyFailed, "fail"),
                    };
                    let evidence = serde_json::from_str(&verdict.evidence).unwrap_or(Value::String(verdict.evidence));
                    Ending { exit, outcome: outcome.into(), reasons: verdict.reasons, evidence, error: None }
                }
                Err(error) => error_ending(error),
            }),
            World::Pattern => engine.run_pattern(&prepared, host, &config_text).await.map(|r| match r {
                Ok(result) => {
                    let (exit, outcome) = match result.status {
                        PatternStatus::Succeeded => (Exit::Success, "succeeded"),
                        PatternStatus::RolledBack => (Exit::PolicyFailed, "rolled-back"),
                    };
                    Ending { exit, outcome: outcome.into(), reasons: vec![result.summary], evidence: Value::Null, error: None }
                }
                Err(error) => error_ending(error),
            }),
        }
    });
    let probe = probe.map(WriteProbe::finish);
    let _ = context.journal.flush();
    super::session::close(&context.session, args.record.as_deref(), args.replay.as_deref(), &policy, &config, gate_names, recorded_at)?;
    let record = context.record.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut ending = ending.map_err(engine_failure)?;
    // A failure caused by a refused call or an unreachable backend says so in its exit code.
    if ending.exit == Exit::PolicyFailed {
        if !record.denied.is_empty() {
            ending.exit = Exit::Sandbox;
        } else if !record.unavailable.is_empty() {
            ending.exit = Exit::Unavailable;
        }
    }
    if let Some(summary) = probe.as_ref().filter(|s| !s.no_loss()) {
        ending.exit = Exit::PolicyFailed;
        ending.reasons.push(match &summary.verify_error {
            Some(e) => format!("write probe: the acknowledged writes could not be checked: {e}"),
            None => format!("write probe: {} acknowledged write(s) LOST, e.g. {}", summary.lost_writes, summary.lost_sample.join(", ")),
        });
    }
    let journal = context.journal.path().map(std::path::Path::to_path_buf);
    Ok(Executed { policy, ending, record, journal, dry_run: args.dry_run, wall: started.elapsed(), from_cache: prepared.from_cache, probe })
}

fn error_ending(error: crate::wit::Error) -> Ending {
    // A capability the sandbox refused turns this into exit 3 once the run's
    // record is read; a `denied` from the cluster itself (RBAC) is the policy failing.
    let exit = match error.code {
        ErrorCode::Unavailable => Exit::Unavailable,
        ErrorCode::Invalid => Exit::BadInput,
        _ => Exit::PolicyFailed,
    };
    let code = code_name(error.code);
    Ending { exit, outcome: "error".into(), reasons: vec![format!("{code}: {}", error.message)], evidence: Value::Null, error: Some(json!({"code": code, "message": error.message})) }
}

fn engine_failure(error: EngineError) -> Failure {
    let exit = match error {
        EngineError::Invalid(_) => Exit::BadInput,
        EngineError::Stopped { .. } => Exit::Sandbox,
        EngineError::Host(_) => Exit::PolicyFailed,
    };
    Failure::new(exit, error.to_string())
}

/// A finished run: the policy, how it ended, what it did, what the probe saw.
pub(super) struct Executed {
    pub policy: Policy,
    ending: Ending,
    pub record: RunRecord,
    journal: Option<PathBuf>,
    dry_run: bool,
    pub wall: Duration,
    from_cache: bool,
    pub probe: Option<ProbeSummary>,
}

impl Executed {
    /// The exit code the run earns.
    pub fn exit(&self) -> Exit {
        self.ending.exit
    }

    /// `succeeded`, `rolled-back`, `pass`, `fail`, `error`, ...
    pub fn outcome(&self) -> &str {
        &self.ending.outcome
    }

    /// The report as JSON (`--output json`).
    pub fn json(&self) -> Value {
        let m = &self.policy.manifest;
        json!({
            "policy": {"name": m.name, "version": m.version, "world": m.world, "digest": self.policy.digest, "path": self.policy.path},
            "outcome": self.ending.outcome,
            "exit_code": self.ending.exit as u8,
            "reasons": self.ending.reasons,
            "evidence": self.ending.evidence,
            "error": self.ending.error,
            "dry_run": self.dry_run,
            "plan": self.record.plan,
            "steps": self.record.steps,
            "gates": self.record.gates,
            "metrics": self.record.metrics,
            "denied": self.record.denied,
            "unavailable": self.record.unavailable,
            "journal": self.journal,
            "probe": self.probe,
            "wall_ms": self.wall.as_secs_f64() * 1000.0,
            "compiled_from_cache": self.from_cache,
        })
    }

    /// The report as text.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let m = &self.policy.manifest;
        let mut out = String::new();
        let _ = writeln!(out, "{} {} ({}) {}", m.name, m.version, m.world, short_digest(&self.policy.digest));
        for step in &self.record.steps {
            let _ = writeln!(out, "  step {:<28} {:<12} {:>9.1} ms  {}", step.name, step.outcome, step.ms, step.detail);
        }
        for gate in &self.record.gates {
            let _ = writeln!(out, "  gate {:<28} {:<12} {}  {}", gate.slot, gate.outcome, gate.gate, gate.reasons.join("; "));
        }
        for metric in &self.record.metrics {
            let _ = writeln!(out, "  metric {} = {} {}", metric.name, metric.value, metric.unit);
        }
        if let Some(probe) = &self.probe {
            let _ = writeln!(out, "  probe {}: {}", probe.what, probe.line());
            for error in &probe.errors {
                let _ = writeln!(out, "    write error {error}");
            }
        }
        let _ = writeln!(out, "{}", self.ending.outcome.to_uppercase());
        for reason in &self.ending.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        for line in self.record.denied.iter().chain(&self.record.unavailable) {
            let _ = writeln!(out, "  ! {line}");
        }
        if self.dry_run {
            let _ = writeln!(out, "plan: {} call(s) that change something or need a human; none was performed", self.record.plan.len());
            for (i, call) in self.record.plan.iter().enumerate() {
                let needs = call.needs_allow.as_ref().map(|c| format!("  [needs --allow {c}]")).unwrap_or_default();
                let _ = writeln!(out, "  {:>2}. {} {} {}{needs}", i + 1, call.component, call.call, call.args);
            }
        }
        if let Some(path) = &self.journal {
            let _ = writeln!(out, "journal: {}", path.display());
        }
        out
    }
}

/// `sha256:0123456789ab`: enough to recognise a digest.
pub fn short_digest(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }
}
