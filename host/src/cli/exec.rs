//! `runner exec`: run a gate or a pattern against a target.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::render::report_text;
use super::{CommandResult, Failure, OutputFormat};
use crate::engine::Limits;
use crate::imports::Approval;
use crate::policy::config;
use crate::run::{DEFAULT_PROBE_TABLE, RunBuilder};
use crate::target::{Fleet, Target};

/// `runner exec`'s arguments.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A bundled policy's name (`pods-ready`) or a component file.
    #[arg(required_unless_present_any = ["resume", "residual"])]
    policy: Option<String>,

    /// Continue a killed or stopped run where it was (its id from `runner runs`):
    /// with the arguments it was started with, its policy answered from the
    /// run's log up to where it had come (reaching no cluster), then live.
    /// Only --approve, --approval-timeout, --deadline, --config (for a secret
    /// that was not kept), -o and --report may be given beside it.
    #[arg(long, value_name = "RUN-ID", conflicts_with = "policy")]
    resume: Option<String>,

    /// Retry exactly what run RUN-ID left undone, as a new run: its
    /// arguments, with the configuration its pattern attached for the retry
    /// (`retry-config` in `rollout.json`: staged-rollout's residual set at the
    /// same frozen target). Takes the same flags beside it as --resume.
    #[arg(long, value_name = "RUN-ID", conflicts_with = "resume")]
    residual: Option<String>,

    /// Where to run: `lab`, a target file, or a kubeconfig (default: the
    /// current kubeconfig context as kubectl picks it, else the lab).
    #[arg(long, value_name = "lab|FILE")]
    target: Option<String>,

    #[command(flatten)]
    cluster: super::ClusterArgs,

    /// A fleet file: the clusters (members) the pattern reaches through
    /// `fleet.*`, each its own target. Without `--target`, the pattern's
    /// other calls reach no cluster.
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,

    /// With no terminal to ask on, how long an approval waits for `runner approve RUN-ID`
    /// (or `runner reject`) from another process; without it, it fails at once (unless --approve).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline)]
    approval_timeout: Option<std::time::Duration>,

    /// A configuration value, checked against the policy's schema. Repeatable.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// Bind a gate to one of a pattern's slots (a bundled name or a file). Repeatable.
    #[arg(long = "gate", value_name = "SLOT=NAME|FILE")]
    gates: Vec<String>,

    /// Bind a pattern to one of a pattern's pattern slots (a bundled name or
    /// a file; `SLOT/INNER=...` for a slot of the pattern bound to SLOT). Repeatable.
    #[arg(long = "pattern", value_name = "SLOT=NAME|FILE")]
    patterns: Vec<String>,

    /// Write the documents the policy attaches (`report.attach`) into DIR
    /// (default: a folder named after the run id beside the journal).
    #[arg(long, value_name = "DIR")]
    attachments: Option<PathBuf>,

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

    /// Most the run may journal, as SIZE or SIZE,CALLS (default 256MiB,1000000); past it the run stops (exit 3).
    #[arg(long, value_name = "SIZE[,CALLS]", value_parser = parse_journal_limit)]
    journal_limit: Option<crate::journal::Limit>,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,

    /// Also write a self-contained report for a change ticket to FILE.html or FILE.md (checked writable before the run).
    #[arg(long, value_name = "FILE.html|FILE.md")]
    report: Option<PathBuf>,

    /// A gate's `warn` counts as `fail` (exit 1): the gate run, and every gate a pattern runs (a WARN preflight stops it).
    #[arg(long)]
    fail_on_warn: bool,

    /// While the policy runs, write numbered records to this database of the
    /// target (`postgres-cluster`) through its primary Service, as a client
    /// would; report the longest write gap and check afterwards that no
    /// acknowledged write was lost (a loss fails the run).
    #[arg(long, value_name = "DATABASE")]
    write_probe: Vec<String>,

    /// The probe's writes per second.
    #[arg(long, value_name = "N", default_value_t = crate::probe::DEFAULT_RATE, value_parser = clap::value_parser!(u32).range(1..=5000))]
    probe_rate: u32,

    /// The table the PostgreSQL probe writes (created if missing); for MongoDB the collection in database `runner`.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROBE_TABLE)]
    probe_table: String,

    /// While the policy runs, GET this URL (`http://IP[:PORT]/PATH`;
    /// `localhost` is 127.0.0.1, no other name is resolved) at
    /// --http-probe-rate, each request with a 1 s timeout, and report the
    /// failed requests, the longest gap between successful answers, the
    /// latencies and which backend answered (`X-Runner-Backend`, or the body
    /// of `/version`) per second. A failed request does not fail the run.
    /// Allowed with --dry-run (a GET changes nothing), not with --replay. Repeatable.
    #[arg(long, value_name = "URL")]
    http_probe: Vec<String>,

    /// Each HTTP probe's requests per second.
    #[arg(long, value_name = "N", default_value_t = crate::probe::http::DEFAULT_RATE, value_parser = clap::value_parser!(u32).range(1..=1000))]
    http_probe_rate: u32,

    /// Write every host interaction of the run (request, response or error) to this session file.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,

    /// Answer the component's host calls from this session file instead of the backends.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,

    /// Wall-clock limit (default: 30s for gates, 1h for patterns).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline)]
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

/// A deadline: a duration that leaves the component some time (`0s` would
/// let it start and then stop it at once, halfway through its first call).
fn parse_deadline(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err(format!("`{text}`: a deadline must be longer than 0 (nothing would run)")),
        deadline => Ok(deadline),
    }
}

/// `64MiB` or `64MiB,100000`: bytes, and optionally calls.
fn parse_journal_limit(text: &str) -> Result<crate::journal::Limit, String> {
    let (size, calls) = text.split_once(',').map_or((text, None), |(size, calls)| (size, Some(calls)));
    let mut limit = crate::journal::Limit { bytes: parse_size(size)? as u64, ..Default::default() };
    if let Some(calls) = calls {
        limit.lines = calls.trim().parse().map_err(|_| format!("`{calls}` is not a number of calls"))?;
    }
    Ok(limit)
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

/// Run the policy as the flags say; print its report.
pub fn run(args: ExecArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let (args, invocation) = match (args.resume.clone(), args.residual.clone()) {
        (Some(id), _) => (from_run(&id, args, From::Resume)?.0, None),
        (None, Some(id)) => {
            let (args, argv) = from_run(&id, args, From::Residual)?;
            if args.residual.is_some() {
                eprintln!("run {id} left nothing to retry: its residual set is empty");
                return Ok(super::Exit::Success);
            }
            (args, Some(invocation(argv)))
        }
        (None, None) => (args, Some(invocation(std::env::args().skip_while(|a| a != "exec").skip(1).collect()))),
    };
    let fleet = args.fleet.as_deref().map(Fleet::read).transpose().map_err(|e| Failure::bad_input(e.to_string()))?;
    // A fleet run's own calls reach a cluster only when one is named.
    let target = match (&fleet, &args.target) {
        (Some(_), None) if !args.cluster.given() => None,
        _ => Some(args.cluster.select(args.target.clone())?),
    };
    let output = args.output;
    let report = super::report_file::around(args.report.clone(), || {
        let resume = args.resume.clone();
        let mut run = builder(args, target, cache_dir);
        if let Some(fleet) = fleet {
            run = run.fleet(fleet);
        }
        match (resume, invocation) {
            (Some(id), _) => run = run.resume(id),
            (None, Some(invocation)) => run = run.invocation(invocation),
            (None, None) => {}
        }
        run.run()
    })?;
    match output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&report.json()),
        OutputFormat::Text => print!("{}", report_text(&report)),
    }
    // A stop is also the one error line on stderr, as every other failure is.
    match &report.ending.stopped {
        Some(stop) => Err(Failure::new(report.exit(), stop.clone()).after_report()),
        None => Ok(report.exit()),
    }
}

/// The run the flags describe, against `target` (`None`: no cluster of its own).
fn builder(args: ExecArgs, target: Option<Target>, cache_dir: Option<PathBuf>) -> RunBuilder {
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
    let mut builder = RunBuilder::new(args.policy.unwrap_or_default())
        .config_pairs(args.config)
        .allow_flags(args.allow, args.grants)
        .gates(args.gates)
        .patterns(args.patterns)
        .limits(limits, cache_dir)
        .dry_run(args.dry_run)
        .fail_on_warn(args.fail_on_warn)
        .approval(Approval::from_flags(args.approve))
        .approval_timeout(args.approval_timeout.unwrap_or_default());
    builder = match target {
        Some(target) => builder.target(target),
        None => builder.offline("a fleet's orchestrator (it reaches members through fleet.*)"),
    };
    for database in args.write_probe {
        builder = builder.write_probe(database, args.probe_table.clone(), args.probe_rate);
    }
    for url in args.http_probe {
        builder = builder.http_probe(url, args.http_probe_rate);
    }
    if let Some(path) = args.record {
        builder = builder.record(path);
    }
    if let Some(path) = args.replay {
        builder = builder.replay(path);
    }
    if let Some(dir) = args.attachments {
        builder = builder.attachments(dir);
    }
    if let Some(path) = args.journal {
        builder = builder.journal(path);
    }
    if let Some(limit) = args.journal_limit {
        builder = builder.journal_limit(limit);
    }
    builder
}

/// What `--resume` needs to start this run again: its arguments after
/// `exec` (`argv`), the directory they are relative to, and the environment
/// that picks a cluster. A `--config` value under a secret-looking key is not kept.
fn invocation(argv: Vec<String>) -> serde_json::Value {
    let env: serde_json::Map<String, serde_json::Value> =
        RESUMED_ENV.iter().filter_map(|name| std::env::var(name).ok().map(|value| (name.to_string(), value.into()))).collect();
    serde_json::json!({"argv": redact_config_values(argv), "cwd": std::env::current_dir().ok(), "env": env})
}

/// The environment variables that pick what a run reaches.
const RESUMED_ENV: &[&str] = &[crate::target::LAB_DIR_ENV, "KUBECONFIG", "RUNNER_POLICY_PATH"];

fn redact_config_values(mut argv: Vec<String>) -> Vec<String> {
    let secret = |pair: &str| pair.split_once('=').is_some_and(|(key, _)| crate::journal::redact::is_secret_key(key));
    let hidden = |pair: &str| format!("{}={NOT_KEPT}", pair.split_once('=').map_or(pair, |(key, _)| key));
    for i in 0..argv.len() {
        let flag_before = i > 0 && matches!(argv[i - 1].as_str(), "--config" | "-c");
        if flag_before && secret(&argv[i]) {
            argv[i] = hidden(&argv[i]);
        } else if let Some(pair) = argv[i].strip_prefix("--config=").filter(|pair| secret(pair)) {
            argv[i] = format!("--config={}", hidden(pair));
        }
    }
    argv
}

/// What a secret's value is kept as.
const NOT_KEPT: &str = "[not kept]";

/// Which use of an earlier run's arguments.
#[derive(Clone, Copy, PartialEq)]
enum From {
    /// `--resume`: the same run, continued.
    Resume,
    /// `--residual`: a new run of what it left.
    Residual,
}

/// The arguments run `id` was started with, with what this command may
/// change applied over them, and (for `--residual`) the configuration its
/// pattern attached for a retry; also the arguments as a list, for the new
/// run's own `invocation.json`. `--residual` of a run that left nothing
/// comes back with `residual` still set.
fn from_run(id: &str, now: ExecArgs, from: From) -> Result<(ExecArgs, Vec<String>), Failure> {
    let flag = if from == From::Resume { "--resume" } else { "--residual" };
    let changed = [
        ("--target", now.target.is_some() || now.cluster.given()),
        ("--fleet", now.fleet.is_some()),
        ("--gate", !now.gates.is_empty()),
        ("--pattern", !now.patterns.is_empty()),
        ("--allow", !now.allow.is_empty() || now.grants.is_some()),
        ("--dry-run", now.dry_run),
        ("--journal", now.journal.is_some()),
        ("--record", now.record.is_some()),
        ("--replay", now.replay.is_some()),
        ("--write-probe", !now.write_probe.is_empty()),
        ("--http-probe", !now.http_probe.is_empty()),
        ("--attachments", now.attachments.is_some()),
    ];
    if let Some((given, _)) = changed.iter().find(|(_, given)| *given) {
        return Err(Failure::bad_input(format!("{flag} {id} runs with the arguments the run was started with: {given} cannot be given beside it")));
    }
    let run_dir = crate::runs::RunDir::existing(&crate::runs::root(), id).map_err(|e| Failure::bad_input(e.to_string()))?;
    let state = run_dir.state().ok_or_else(|| Failure::bad_input(format!("run {id}: its run.json cannot be read")))?;
    if let Some(policy) = &now.policy
        && from == From::Residual
        && crate::run::load_policy(policy)?.name() != state.policy
    {
        return Err(Failure::bad_input(format!("run {id} ran `{}`, not `{policy}`", state.policy)));
    }
    let invocation = run_dir
        .invocation()
        .ok_or_else(|| Failure::bad_input(format!("run {id} was not started by `runner exec` (it kept no invocation.json): {flag} cannot use it")))?;
    let mut argv: Vec<String> =
        serde_json::from_value(invocation["argv"].clone()).map_err(|e| Failure::bad_input(format!("run {id}: invocation.json: {e}")))?;
    // A secret that was not kept must be given again; a resume changes nothing else of the configuration.
    let given: Vec<&str> = now.config.iter().filter_map(|pair| pair.split_once('=').map(|(key, _)| key)).collect();
    let suffix = format!("={NOT_KEPT}");
    let not_kept: Vec<&str> = argv.iter().filter_map(|a| a.strip_suffix(&suffix).map(|k| k.trim_start_matches("--config="))).collect();
    if let Some(missing) = not_kept.iter().find(|k| !given.contains(k)) {
        return Err(Failure::bad_input(format!("run {id} was configured with a secret `{missing}`, which was not kept: pass --config {missing}=... again")));
    }
    if let Some(other) = given.iter().find(|k| from == From::Resume && !not_kept.contains(k)) {
        return Err(Failure::bad_input(format!(
            "--resume {id} runs the run's own configuration: `{other}` was kept and cannot be changed (--config beside --resume only gives a secret that was not kept)"
        )));
    }
    if let Some(dir) = invocation["cwd"].as_str()
        && let Err(e) = std::env::set_current_dir(dir)
    {
        return Err(Failure::bad_input(format!("run {id} was started in {dir}, which cannot be entered now ({e}): its relative paths mean nothing elsewhere")));
    }
    for name in RESUMED_ENV {
        if let Some(value) = invocation["env"][name].as_str() {
            // SAFETY: the command line is still being read: no other thread runs yet.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let parse = |argv: &[String]| -> Result<ExecArgs, Failure> {
        #[derive(clap::Parser)]
        struct Saved {
            #[command(flatten)]
            args: ExecArgs,
        }
        let saved = <Saved as clap::Parser>::try_parse_from(std::iter::once("exec").chain(argv.iter().map(String::as_str)))
            .map_err(|e| Failure::bad_input(format!("run {id}: its saved arguments no longer parse: {e}")))?;
        Ok(saved.args)
    };
    if from == From::Residual {
        let retry = retry_config(id, &state, &parse(&argv)?)?;
        let Some(retry) = retry else {
            let mut args = now;
            args.residual = Some(id.to_string());
            return Ok((args, argv));
        };
        for (key, value) in retry {
            let value = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            argv.extend(["--config".to_string(), format!("{key}={value}")]);
        }
    }
    argv.extend(now.config.iter().flat_map(|pair| ["--config".to_string(), pair.clone()]));
    let mut args = parse(&argv)?;
    args.resume = (from == From::Resume).then(|| id.to_string());
    args.approve |= now.approve;
    args.approval_timeout = now.approval_timeout.or(args.approval_timeout);
    args.deadline = now.deadline.or(args.deadline);
    args.report = now.report.or(args.report);
    args.output = now.output;
    Ok((args, argv))
}

/// The configuration run `id`'s pattern attached for a retry of what it
/// left (`retry-config` in its `rollout.json`); `None` when it left nothing.
fn retry_config(id: &str, state: &crate::runs::RunState, saved: &ExecArgs) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Failure> {
    let dir = match (&saved.attachments, &state.journal) {
        (Some(dir), _) => dir.clone(),
        (None, Some(journal)) => journal.parent().unwrap_or(std::path::Path::new(".")).join(id),
        (None, None) => return Err(Failure::bad_input(format!("run {id} kept no journal, so no attachments: it has no residual set"))),
    };
    let path = dir.join("rollout.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::bad_input(format!("run {id}: cannot read {} ({e}): its pattern attached no residual set", path.display())))?;
    let rollout: serde_json::Value = serde_json::from_str(&text).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    match &rollout["retry-config"] {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(config) => Ok(Some(config.clone())),
        other => Err(Failure::bad_input(format!("{}: `retry-config` is {other}, not an object", path.display()))),
    }
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

    #[test]
    fn secret_config_values_are_not_kept_for_a_resume() {
        let argv = ["staged-rollout", "--config", "api-token=abc", "-c", "stages=dev", "--config=db-password=x", "--config", "members=a"];
        let kept = invocation(argv.iter().map(|a| a.to_string()).collect());
        assert_eq!(
            kept["argv"],
            serde_json::json!([
                "staged-rollout",
                "--config",
                "api-token=[not kept]",
                "-c",
                "stages=dev",
                "--config=db-password=[not kept]",
                "--config",
                "members=a"
            ])
        );
    }
}
