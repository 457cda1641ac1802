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
    policy: String,

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
    let fleet = args.fleet.as_deref().map(Fleet::read).transpose().map_err(|e| Failure::bad_input(e.to_string()))?;
    // A fleet run's own calls reach a cluster only when one is named.
    let target = match (&fleet, &args.target) {
        (Some(_), None) if !args.cluster.given() => None,
        _ => Some(args.cluster.select(args.target.clone())?),
    };
    let output = args.output;
    let report = super::report_file::around(args.report.clone(), || {
        let mut run = builder(args, target, cache_dir);
        if let Some(fleet) = fleet {
            run = run.fleet(fleet);
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
    let mut builder = RunBuilder::new(args.policy)
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
